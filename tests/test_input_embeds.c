// rlhf_model.input_embeds / input_embeds_grad (include/rlhf.h): vectors in place of
// the token embedding (LaMo's decision transformer runs a language model this way).
//   * the embedding rows of the tokens given as input_embeds reproduce the token
//     forward bit for bit (GPT-2 with learned positions, Llama with GQA, padding);
//   * the backward gives the same gradients for every tensor but wte (which gets
//     none: an untied model's wte gradient stays 0), and input_embeds_grad is
//     d loss / d input_embeds, checked by central differences in double;
//   * activation checkpointing leaves input_embeds_grad bit-identical.
#include <string.h>

#include "rlhf.h"
#include "test.h"

static rlhf_config cfg_of(rlhf_arch arch) {
    rlhf_config c = {.arch = arch, .n_layer = 2, .n_head = 4,
                     .n_kv_head = arch == ARCH_LLAMA ? 2 : 4, .n_embd = 16,
                     .d_ff = arch == ARCH_LLAMA ? 24 : 0, .vocab_size = 29, .max_seq_len = 12,
                     .tied = 0, .qkv_bias = arch == ARCH_LLAMA, .value_head = 1};
    config_fill_defaults(&c);
    return c;
}

enum { B_ = 2, T_ = 7, N_ = B_ * T_ };

typedef struct {
    int tok[N_], tgt[N_];
    uint8_t mask[N_];
    float dlogp[N_], dvalues[N_];
    float *dhidden, *embeds;
} data;

// row 1 left-padded by 2
static void make(data *d, const rlhf_model *m, uint64_t seed) {
    int V = m->cfg.vocab_size, C = m->cfg.n_embd;
    rlhf_rng r;
    rng_seed(&r, seed);
    d->dhidden = malloc((size_t)N_ * C * sizeof(float));
    d->embeds = calloc((size_t)N_ * C, sizeof(float));
    for (int i = 0; i < N_; i++) {
        int real = !(i / T_ == 1 && i % T_ < 2);
        d->mask[i] = (uint8_t)real;
        d->tok[i] = real ? (int)(rng_u64(&r) % V) : 0;
        d->tgt[i] = real ? (int)(rng_u64(&r) % V) : -1;
        d->dlogp[i] = rng_normal(&r);
        d->dvalues[i] = rng_normal(&r);
        if (real) memcpy(d->embeds + (size_t)i * C, m->w.wte + (size_t)d->tok[i] * C, C * sizeof(float));
    }
    for (int i = 0; i < N_ * C; i++) d->dhidden[i] = 0.1f * rng_normal(&r);
}

// the scalar whose gradient the backward computes: sum dlogp*logp + dhidden.hidden + dvalues*values
static double objective(const rlhf_model *m, const data *d) {
    int C = m->cfg.n_embd;
    double s = 0;
    for (int i = 0; i < N_; i++) {
        if (!d->mask[i]) continue;
        s += (double)d->dlogp[i] * m->logp[i] + (double)d->dvalues[i] * m->values[i];
        for (int k = 0; k < C; k++) s += (double)d->dhidden[(size_t)i * C + k] * m->hidden[(size_t)i * C + k];
    }
    return s;
}

static int check_arch(rlhf_arch arch) {
    rlhf_config c = cfg_of(arch);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 7, &err) == 0);
    int C = c.n_embd;
    size_t NC = (size_t)N_ * C, G = model_n_trainable(m);
    data d;
    make(&d, m, 11);
    rlhf_batch tb = {.B = B_, .T = T_, .tokens = d.tok, .targets = d.tgt, .mask = d.mask};
    rlhf_batch eb = {.B = B_, .T = T_, .tokens = NULL, .targets = d.tgt, .mask = d.mask};
    // tokens
    model_zero_grad(m);
    CHECK(model_forward(m, &tb, &err) == 0);
    float *logp0 = malloc(N_ * sizeof(float)), *hid0 = malloc(NC * sizeof(float));
    memcpy(logp0, m->logp, N_ * sizeof(float));
    memcpy(hid0, m->hidden, NC * sizeof(float));
    model_backward(m, d.dlogp, d.dhidden, NULL, d.dvalues);
    float *g0 = malloc(G * sizeof(float));
    memcpy(g0, m->grads, G * sizeof(float));
    // the same rows as vectors
    float *gin = malloc(NC * sizeof(float)), *gin_ck = malloc(NC * sizeof(float));
    m->input_embeds = d.embeds;
    m->input_embeds_grad = gin;
    model_zero_grad(m);
    CHECK(model_forward(m, &eb, &err) == 0);
    CHECK(memcmp(logp0, m->logp, N_ * sizeof(float)) == 0);
    for (int i = 0; i < N_; i++)
        if (d.mask[i]) CHECK(memcmp(hid0 + (size_t)i * C, m->hidden + (size_t)i * C, C * sizeof(float)) == 0);
    model_backward(m, d.dlogp, d.dhidden, NULL, d.dvalues);
    const rlhf_tensor *wte = model_find_tensor(m, "tok_emb.weight");
    CHECK(wte != NULL);
    size_t w0 = wte->offset - m->n_frozen, wn = (size_t)c.vocab_size * C;
    int same = 1, wte_zero = 1;
    for (size_t i = 0; i < G; i++) {
        if (i >= w0 && i < w0 + wn) wte_zero &= m->grads[i] == 0.0f;
        else same &= m->grads[i] == g0[i];
    }
    CHECK(same);
    if (!c.tied) CHECK(wte_zero);  // tied (GPT-2): wte's gradient is the LM head's alone
    // checkpointing: the same input gradient
    m->input_embeds_grad = gin_ck;
    m->grad_ckpt = 1;
    CHECK(model_forward(m, &eb, &err) == 0);
    model_backward(m, d.dlogp, d.dhidden, NULL, d.dvalues);
    CHECK(memcmp(gin, gin_ck, NC * sizeof(float)) == 0);
    m->grad_ckpt = 0;
    // central differences on a few entries (real positions), padding rows get 0
    m->input_embeds_grad = NULL;
    double worst = 0;
    int idx[] = {0, 5, 3 * C + 2, 9 * C + 7, (N_ - 1) * C + C - 1};
    for (int q = 0; q < 5; q++) {
        float keep = d.embeds[idx[q]];
        double h = 1e-3, f[2];
        for (int s = 0; s < 2; s++) {
            d.embeds[idx[q]] = keep + (float)(s ? -h : h);
            CHECK(model_forward(m, &eb, &err) == 0);
            f[s] = objective(m, &d);
        }
        d.embeds[idx[q]] = keep;
        double fd = (f[0] - f[1]) / (2 * h), an = gin[idx[q]];
        double rel = fabs(fd - an) / (1e-2 + fabs(fd));
        if (getenv("VERBOSE")) printf("  %d fd %.6g an %.6g\n", idx[q], fd, an);
        if (rel > worst) worst = rel;
    }
    CHECKF(worst < 2e-2, "worst relative error %.3g", worst);
    for (int i = 0; i < N_; i++)
        if (!d.mask[i])
            for (int k = 0; k < C; k++) CHECK(gin[(size_t)i * C + k] == 0.0f);
    m->input_embeds = NULL;
    CHECK(model_forward(m, &tb, &err) == 0);  // back to tokens: the first outputs again
    CHECK(memcmp(logp0, m->logp, N_ * sizeof(float)) == 0);
    free(logp0), free(hid0), free(g0), free(gin), free(gin_ck), free(d.dhidden), free(d.embeds);
    model_free(m);
    return 0;
}

static int gpt2_embeds(void) { return check_arch(ARCH_GPT2); }
static int llama_embeds(void) { return check_arch(ARCH_LLAMA); }

static int batch_without_tokens_refused(void) {
    rlhf_config c = cfg_of(ARCH_GPT2);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 1, &err) == 0);
    rlhf_batch b = {.B = 1, .T = 3};
    CHECK(model_forward(m, &b, &err) == -1);
    CHECK(strstr(err.msg, "without tokens") != NULL);
    model_free(m);
    return 0;
}

int main(void) {
    RUN(gpt2_embeds);
    RUN(llama_embeds);
    RUN(batch_without_tokens_refused);
    return test_total_fail_ ? 1 : 0;
}
