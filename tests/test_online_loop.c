// The model's LM head at a temperature with an entropy gradient, end to end
// through a tiny model: finite differences of
//   L = sum_i wl_i logp_i + we_i H_i,   logp, H of softmax(logits / T)
// (m->logit_temperature = T, model_backward_entropy) for GPT-2 and Llama at
// T = 0.7 and 1; and T = 1 without an entropy gradient giving exactly
// model_backward's gradients. (The head alone is checked against torch by
// tests/online_loop_test.py.)
#include <math.h>

#include "rlhf.h"
#include "test.h"

static rlhf_config tiny_cfg(rlhf_arch arch) {
    rlhf_config c = {.arch = arch, .n_layer = 2, .n_head = 4, .n_kv_head = arch == ARCH_LLAMA ? 2 : 4,
                     .n_embd = 16, .d_ff = arch == ARCH_LLAMA ? 24 : 0, .vocab_size = 23,
                     .max_seq_len = 16, .tied = arch == ARCH_GPT2};
    config_fill_defaults(&c);
    return c;
}

enum { B = 2, T = 7 };
typedef struct {
    int tok[B * T], tgt[B * T];
    uint8_t mask[B * T];
    float wl[B * T], we[B * T];
} fixture;

static void make_fixture(fixture *f, int V) {
    rlhf_rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < B * T; i++) {
        int real = !(i >= T && i < T + 2);  // row 1 left-padded by 2
        f->mask[i] = (uint8_t)real;
        f->tok[i] = real ? (int)(rng_u64(&r) % V) : 0;
        f->tgt[i] = real && i % T != 0 ? (int)(rng_u64(&r) % V) : -1;  // a row start: no target
        f->wl[i] = real ? rng_normal(&r) : 0;
        f->we[i] = real ? rng_normal(&r) : 0;
    }
}

static double loss_of(rlhf_model *m, const fixture *f) {
    rlhf_batch b = {.B = B, .T = T, .tokens = f->tok, .targets = f->tgt, .mask = f->mask};
    rlhf_err err;
    m->want_entropy = 1;
    if (model_forward(m, &b, &err)) return NAN;
    double L = 0;
    for (int i = 0; i < B * T; i++) L += (double)m->logp[i] * f->wl[i] + (double)m->entropy[i] * f->we[i];
    return L;
}

static int gradcheck(rlhf_arch arch, float temperature) {
    rlhf_config c = tiny_cfg(arch);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 7, &err) == 0);
    rlhf_rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.15f * rng_normal(&r);
    m->logit_temperature = temperature;
    fixture f;
    make_fixture(&f, c.vocab_size);
    loss_of(m, &f);
    model_zero_grad(m);
    model_backward_entropy(m, f.wl, f.we, NULL, NULL, NULL);
    int checked = 0, bad = 0;
    double worst = 0;
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const rlhf_tensor *t = &m->tensors[ti];
        for (int k = 0; k < 5; k++) {
            size_t j = t->offset + (size_t)(rng_u64(&r) % t->numel);
            float save = m->params[j], eps = 1e-2f * fmaxf(1.0f, fabsf(save));
            m->params[j] = save + eps;
            double lp = loss_of(m, &f);
            m->params[j] = save - eps;
            double lm = loss_of(m, &f);
            m->params[j] = save;
            double fd = (lp - lm) / (2.0 * eps), an = m->grads[j];
            double e = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
            if (e > worst) worst = e;
            if (e > 2e-2) {
                bad++;
                printf("  %s[%zu]: finite difference %.6g, backward %.6g\n", t->name, j - t->offset, fd, an);
            }
            checked++;
        }
    }
    printf("  %s T=%g: %d parameters checked, worst relative error %.2e\n",
           arch == ARCH_LLAMA ? "llama" : "gpt2", temperature, checked, worst);
    CHECK(bad == 0);
    model_free(m);
    return 0;
}

static int test_logp_entropy_gradcheck_gpt2_t07(void) { return gradcheck(ARCH_GPT2, 0.7f); }
static int test_logp_entropy_gradcheck_llama_t07(void) { return gradcheck(ARCH_LLAMA, 0.7f); }
static int test_logp_entropy_gradcheck_gpt2_t1(void) { return gradcheck(ARCH_GPT2, 1.0f); }

// temperature 1 (or unset) and no entropy gradient: model_backward's numbers exactly
static int test_t1_bit_identical(void) {
    rlhf_config c = tiny_cfg(ARCH_LLAMA);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 9, &err) == 0);
    fixture f;
    make_fixture(&f, c.vocab_size);
    size_t n = model_n_trainable(m);
    float *g0 = malloc(n * sizeof(float));
    float lp0[B * T];
    loss_of(m, &f);
    memcpy(lp0, m->logp, sizeof lp0);
    model_zero_grad(m);
    model_backward(m, f.wl, NULL, NULL, NULL);
    memcpy(g0, m->grads, n * sizeof(float));
    m->logit_temperature = 1.0f;
    loss_of(m, &f);
    CHECK(memcmp(lp0, m->logp, sizeof lp0) == 0);
    model_zero_grad(m);
    model_backward_entropy(m, f.wl, NULL, NULL, NULL, NULL);
    CHECK(memcmp(g0, m->grads, n * sizeof(float)) == 0);
    // and T != 1 does change them (the test can fail)
    m->logit_temperature = 0.7f;
    loss_of(m, &f);
    CHECK(memcmp(lp0, m->logp, sizeof lp0) != 0);
    free(g0);
    model_free(m);
    return 0;
}

int main(void) {
    RUN(test_logp_entropy_gradcheck_gpt2_t07);
    RUN(test_logp_entropy_gradcheck_llama_t07);
    RUN(test_logp_entropy_gradcheck_gpt2_t1);
    RUN(test_t1_bit_identical);
    TEST_EXIT();
}
