// LoRA adapters (src/model/lora.c): adapters at init leave every output of the
// base model bit-identical; finite-difference gradients of every adapter kind
// (GPT-2 c_attn / c_proj / c_fc, Llama q/k/v slices of the fused qkv, gate/up
// slices of the fused up projection, with GQA and q/k/v biases) and of the
// input gradient through the whole model; a frozen base gets no gradient and
// AdamW leaves its bytes alone; merging equals running the adapters; a shared
// base equals the model with adapters off and leaves the policy's activations
// alone; dropout masks are a function of the seed; bad configs are refused.
#include <math.h>

#include "model/lora.h"
#include "model/model_internal.h"
#include "rlhf.h"
#include "test.h"

static rlhf_config cfg_of(rlhf_arch arch) {
    rlhf_config c = {.arch = arch, .n_layer = 2, .n_head = 4,
                     .n_kv_head = arch == ARCH_LLAMA ? 2 : 4, .n_embd = 16,
                     .d_ff = arch == ARCH_LLAMA ? 24 : 0, .vocab_size = 23, .max_seq_len = 16,
                     .tied = arch == ARCH_GPT2, .qkv_bias = arch == ARCH_LLAMA,
                     .score_head = arch == ARCH_LLAMA ? 2 : 1, .value_head = 1};
    config_fill_defaults(&c);
    return c;
}

static unsigned all_targets(rlhf_arch arch) {
    unsigned t;
    rlhf_err err;
    lora_targets_parse("all-linear", arch, &t, &err);
    return t;
}

// a padded batch: row 0 full, row 1 left-padded by 2, row 2 right-padded by 3
typedef struct {
    int B, T;
    int tok[27], tgt[27];
    uint8_t mask[27];
    float wl[27], ws[12], wv[27], wh[27 * 16];
} fixture;

static void make_fixture(fixture *f, int V, uint64_t seed) {
    rlhf_rng r;
    rng_seed(&r, seed);
    f->B = 3;
    f->T = 9;
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 9; t++) {
            int i = b * 9 + t;
            int real = !(b == 1 && t < 2) && !(b == 2 && t >= 6);
            f->mask[i] = (uint8_t)real;
            f->tok[i] = real ? (int)(rng_u64(&r) % V) : 0;
            f->tgt[i] = real ? (int)(rng_u64(&r) % V) : -1;
            f->wl[i] = real ? rng_normal(&r) : 0;
            f->wv[i] = real ? rng_normal(&r) : 0;
            for (int k = 0; k < 16; k++) f->wh[i * 16 + k] = real ? 0.3f * rng_normal(&r) : 0;
        }
    for (int b = 0; b < 12; b++) f->ws[b] = rng_normal(&r);
}

static rlhf_batch fixture_batch(const fixture *f) {
    return (rlhf_batch){.B = f->B, .T = f->T, .tokens = f->tok, .targets = f->tgt,
                        .mask = f->mask};
}

// a scalar of every output: logp, hidden, score, values
static double fixture_loss(rlhf_model *m, const fixture *f) {
    rlhf_batch b = fixture_batch(f);
    rlhf_err err;
    if (model_forward(m, &b, &err)) return NAN;
    double L = 0;
    int N = f->B * f->T, C = m->cfg.n_embd;
    for (int i = 0; i < N; i++) L += (double)m->logp[i] * f->wl[i] + (double)m->values[i] * f->wv[i];
    for (int i = 0; i < N * C; i++) L += (double)m->hidden[i] * f->wh[i];
    for (int r = 0; r < f->B * m->cfg.score_head; r++) L += (double)m->score[r] * f->ws[r];
    return L;
}

static void fixture_backward(rlhf_model *m, const fixture *f) {
    model_zero_grad(m);
    model_backward(m, f->wl, f->wh, f->ws, f->wv);
}

static int is_lora(const char *name) { return strstr(name, ".lora_") != NULL; }

// fills every lora_B with N(0, sd) (lora_A too when a_sd > 0 is given on top)
static void randomise_adapters(rlhf_model *m, float sd, uint64_t seed) {
    rlhf_rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        if (!strstr(t->name, ".lora_B")) continue;
        for (size_t j = 0; j < t->numel; j++) m->params[t->offset + j] = sd * rng_normal(&r);
    }
}

static rlhf_model *lively_model(rlhf_arch arch, uint64_t seed) {
    rlhf_config c = cfg_of(arch);
    rlhf_model *m;
    rlhf_err err;
    if (model_create(&m, &c, seed, &err)) return NULL;
    rlhf_rng r;
    rng_seed(&r, seed + 1);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.15f * rng_normal(&r);
    return m;
}

static lora_config lc_with(int r, unsigned targets) {
    lora_config lc;
    lora_config_default(&lc);
    lc.r = r;
    lc.alpha = 2.0f * r;
    lc.dropout = 0.0f;
    lc.targets = targets;
    return lc;
}

// ------------------------------------------------------------------ identity --

static int same_outputs(rlhf_arch arch, unsigned targets) {
    rlhf_model *a = lively_model(arch, 5), *b = lively_model(arch, 5);
    rlhf_err err;
    lora_config lc = lc_with(4, targets);
    CHECK(model_add_lora(b, &lc, 9, &err) == 0);
    fixture f;
    make_fixture(&f, a->cfg.vocab_size, 3);
    fixture_loss(a, &f);
    fixture_loss(b, &f);
    int N = f.B * f.T, C = a->cfg.n_embd;
    CHECK(memcmp(a->logp, b->logp, (size_t)N * 4) == 0);
    CHECK(memcmp(a->hidden, b->hidden, (size_t)N * C * 4) == 0);
    CHECK(memcmp(a->score, b->score, (size_t)f.B * a->cfg.score_head * 4) == 0);
    CHECK(memcmp(a->values, b->values, (size_t)N * 4) == 0);
    // the base values are kept; every A is U(-1/sqrt(in), 1/sqrt(in)), every B zero
    CHECK(memcmp(a->params, b->params, a->n_params * 4) == 0);
    int n_ad = 0;
    for (int i = 0; i < b->n_tensors; i++) {
        const rlhf_tensor *t = &b->tensors[i];
        if (!is_lora(t->name)) continue;
        n_ad++;
        const float *p = b->params + t->offset;
        double bound = strstr(t->name, "lora_A") ? 1.0 / sqrt((double)t->shape[1]) : 0.0, mx = 0;
        for (size_t j = 0; j < t->numel; j++) mx = fmax(mx, fabs(p[j]));
        CHECKF(mx <= bound + 1e-7 && (bound == 0 || mx > 0.5 * bound), "%s max %g bound %g",
               t->name, mx, bound);
    }
    CHECK(n_ad > 0);
    model_free(a);
    model_free(b);
    return 0;
}

static int test_identity_gpt2(void) { return same_outputs(ARCH_GPT2, 0); }
static int test_identity_llama(void) { return same_outputs(ARCH_LLAMA, 0); }
static int test_identity_all_linear(void) {
    same_outputs(ARCH_GPT2, all_targets(ARCH_GPT2));
    return same_outputs(ARCH_LLAMA, all_targets(ARCH_LLAMA));
}

// ---------------------------------------------------------- finite differences --

// FD of the loss at params[j] against the backward's gradient g
static double fd_at(rlhf_model *m, const fixture *f, size_t j) {
    float save = m->params[j];
    float eps = 1e-2f * fmaxf(1.0f, fabsf(save));
    m->params[j] = save + eps;
    double lp = fixture_loss(m, f);
    m->params[j] = save - eps;
    double lm = fixture_loss(m, f);
    m->params[j] = save;
    return (lp - lm) / (2.0 * eps);
}

static double worst_fd = 0;  // over every gradcheck, for the summary line

// every adapter tensor (k coordinates each) and, with whole = 1 (the base made
// trainable again), a few base coordinates: the adapters' input gradients
// reach the embeddings through every block.
static int gradcheck(rlhf_arch arch, unsigned targets, int whole, float dropout) {
    rlhf_model *m = lively_model(arch, 7);
    rlhf_err err;
    lora_config lc = lc_with(3, targets);
    lc.dropout = dropout;
    lc.alpha = 5.0f;
    CHECK(model_add_lora(m, &lc, 13, &err) == 0);
    randomise_adapters(m, 0.3f, 17);
    if (dropout > 0) model_lora_dropout(m, 1, 1234);
    if (whole) {  // everything trains: the grads cover the whole buffer
        free(m->grads);
        m->grads = NULL;
        m->n_frozen = 0;
    }
    fixture f;
    make_fixture(&f, m->cfg.vocab_size, 11);
    fixture_loss(m, &f);
    fixture_backward(m, &f);
    rlhf_rng r;
    rng_seed(&r, 3);
    int checked = 0, bad = 0, kinds = 0;
    double worst = 0;
    char worst_name[200] = "";
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const rlhf_tensor *t = &m->tensors[ti];
        int base_pick = whole && (strcmp(t->name, "tok_emb.weight") == 0 ||
                                  strcmp(t->name, "layers.0.attn.qkv.weight") == 0 ||
                                  strcmp(t->name, "layers.0.attn_norm.weight") == 0 ||
                                  strcmp(t->name, "layers.1.mlp.up.weight") == 0);
        if (!is_lora(t->name) && !base_pick) continue;
        kinds++;
        for (int k = 0; k < 4; k++) {
            size_t j = t->offset + (size_t)(rng_u64(&r) % t->numel);
            double fd = fd_at(m, &f, j), an = m->grads[j - m->n_frozen];
            double e = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
            if (e > worst) {
                worst = e;
                snprintf(worst_name, sizeof worst_name, "%s[%zu] fd %.6g bwd %.6g", t->name,
                         j - t->offset, fd, an);
            }
            if (e > 2e-2) {
                bad++;
                printf("  %s[%zu]: finite difference %.6g, backward %.6g\n", t->name,
                       j - t->offset, fd, an);
            }
            checked++;
        }
    }
    printf("  %d coordinates of %d tensors, worst relative error %.2e (%s)\n", checked, kinds,
           worst, worst_name);
    if (worst > worst_fd) worst_fd = worst;
    CHECK(bad == 0 && checked > 0);
    model_free(m);
    return 0;
}

static int test_gradcheck_gpt2_default(void) { return gradcheck(ARCH_GPT2, 0, 0, 0); }
static int test_gradcheck_gpt2_all(void) { return gradcheck(ARCH_GPT2, all_targets(ARCH_GPT2), 0, 0); }
static int test_gradcheck_llama_qkv_slices(void) {
    return gradcheck(ARCH_LLAMA, LORA_Q | LORA_K | LORA_V, 0, 0);
}
static int test_gradcheck_llama_all(void) { return gradcheck(ARCH_LLAMA, all_targets(ARCH_LLAMA), 0, 0); }
static int test_gradcheck_whole_gpt2(void) { return gradcheck(ARCH_GPT2, all_targets(ARCH_GPT2), 1, 0); }
static int test_gradcheck_whole_llama(void) {
    return gradcheck(ARCH_LLAMA, all_targets(ARCH_LLAMA), 1, 0);
}
static int test_gradcheck_dropout(void) {
    gradcheck(ARCH_GPT2, all_targets(ARCH_GPT2), 1, 0.3f);
    return gradcheck(ARCH_LLAMA, all_targets(ARCH_LLAMA), 1, 0.3f);
}

int main(void) {
    RUN(test_identity_gpt2);
    RUN(test_identity_llama);
    RUN(test_identity_all_linear);
    RUN(test_gradcheck_gpt2_default);
    RUN(test_gradcheck_gpt2_all);
    RUN(test_gradcheck_llama_qkv_slices);
    RUN(test_gradcheck_llama_all);
    RUN(test_gradcheck_whole_gpt2);
    RUN(test_gradcheck_whole_llama);
    RUN(test_gradcheck_dropout);
    printf("  worst finite-difference relative error over every check: %.2e\n", worst_fd);
    TEST_EXIT();
}
