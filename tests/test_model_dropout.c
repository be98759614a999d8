// rlhf_model's training dropout (embd_dropout, resid_dropout; include/rlhf.h),
// which LaMo's training forwards use (src/ctrl/lamo.c):
//   * nn's counter-based masks keep about 1 - p of the elements, scaled by
//     1/(1-p), the same ones for the same key;
//   * p = 0 leaves the forward bit-identical to a model that never set it, and
//     dropping it again after a dropout forward gives the first outputs back;
//   * with p > 0 the forward changes, repeats bit for bit with the same seed, and
//     activation checkpointing keeps every gradient bit-identical;
//   * the backward goes through the masks: central differences (mask fixed by
//     the seed) of input_embeds and of weights behind both residual sites.
#include <math.h>
#include <string.h>

#include "nn/nn.h"
#include "rlhf.h"
#include "test.h"

static int keep_rate(void) {
    enum { n = 200000 };
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)),
          *z = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) x[i] = 1.0f;
    double ps[] = {0.1, 0.3};
    for (int q = 0; q < 2; q++) {
        double p = ps[q];
        uint64_t key = dropout_key(42, (uint64_t)q + 1);
        dropout_apply(y, x, n, key, p, 0);
        long kept = 0, bad = 0;
        for (int i = 0; i < n; i++) {
            kept += y[i] != 0.0f;
            bad += y[i] != 0.0f && y[i] != (float)(1.0 / (1.0 - p));
        }
        double rate = (double)kept / n;
        CHECKF(fabs(rate - (1 - p)) < 0.005, "p %g: keep rate %.4f", p, rate);
        CHECK(bad == 0);
        dropout_apply(z, x, n, key, p, 0);
        CHECK(memcmp(y, z, n * sizeof(float)) == 0);  // same key, same mask
        dropout_apply(z, x, n, dropout_key(43, (uint64_t)q + 1), p, 0);
        CHECK(memcmp(y, z, n * sizeof(float)) != 0);
        dropout_apply(z, y, n, key, p, 0);  // backward = the same call: masked twice, scaled twice
        for (int i = 0; i < n; i++) CHECK_CLOSE(z[i], y[i] / (1 - p), 1e-6, 1e-6);
    }
    free(x), free(y), free(z);
    return 0;
}

enum { B_ = 2, T_ = 6, N_ = B_ * T_ };

static rlhf_config cfg_of(rlhf_arch arch) {
    rlhf_config c = {.arch = arch, .n_layer = 2, .n_head = 4,
                     .n_kv_head = arch == ARCH_LLAMA ? 2 : 4, .n_embd = 16,
                     .d_ff = arch == ARCH_LLAMA ? 24 : 0, .vocab_size = 23, .max_seq_len = 12,
                     .tied = 0};
    config_fill_defaults(&c);
    return c;
}

typedef struct {
    int tgt[N_];
    uint8_t mask[N_];
    float dlogp[N_];
    float *dhidden, *embeds;
} data;

// sum dlogp * logp + dhidden . hidden over real positions
static double objective(const rlhf_model *m, const data *d) {
    int C = m->cfg.n_embd;
    double s = 0;
    for (int i = 0; i < N_; i++) {
        if (!d->mask[i]) continue;
        s += (double)d->dlogp[i] * m->logp[i];
        for (int k = 0; k < C; k++) s += (double)d->dhidden[(size_t)i * C + k] * m->hidden[(size_t)i * C + k];
    }
    return s;
}

static void set_drop(rlhf_model *m, float p) {
    m->embd_dropout = p > 0 ? 0.2f : 0.0f, m->resid_dropout = p, m->dropout_seed = 77;
}

static int check_arch(rlhf_arch arch) {
    rlhf_config c = cfg_of(arch);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 5, &err) == 0);
    int C = c.n_embd;
    size_t NC = (size_t)N_ * C, G = model_n_trainable(m);
    data d;
    rlhf_rng r;
    rng_seed(&r, 3);
    d.dhidden = malloc(NC * sizeof(float)), d.embeds = malloc(NC * sizeof(float));
    for (int i = 0; i < N_; i++) {
        d.mask[i] = !(i / T_ == 1 && i % T_ < 2);  // row 1 left-padded by 2
        d.tgt[i] = d.mask[i] ? (int)(rng_u64(&r) % (uint64_t)c.vocab_size) : -1;
        d.dlogp[i] = rng_normal(&r);
    }
    for (size_t i = 0; i < NC; i++) d.embeds[i] = rng_normal(&r), d.dhidden[i] = 0.1f * rng_normal(&r);
    rlhf_batch eb = {.B = B_, .T = T_, .tokens = NULL, .targets = d.tgt, .mask = d.mask};
    m->input_embeds = d.embeds;
    float *gin = malloc(NC * sizeof(float)), *gin2 = malloc(NC * sizeof(float));
    float *logp0 = malloc(N_ * sizeof(float)), *logp1 = malloc(N_ * sizeof(float));
    float *g1 = malloc(G * sizeof(float));
    // no dropout; then p = 0 with a seed: bit-identical
    CHECK(model_forward(m, &eb, &err) == 0);
    memcpy(logp0, m->logp, N_ * sizeof(float));
    m->dropout_seed = 99;
    CHECK(model_forward(m, &eb, &err) == 0);
    CHECK(memcmp(logp0, m->logp, N_ * sizeof(float)) == 0);
    // dropout on: other outputs, the same ones again with the same seed
    set_drop(m, 0.3f);
    model_zero_grad(m);
    m->input_embeds_grad = gin;
    CHECK(model_forward(m, &eb, &err) == 0);
    memcpy(logp1, m->logp, N_ * sizeof(float));
    CHECK(memcmp(logp0, logp1, N_ * sizeof(float)) != 0);
    model_backward(m, d.dlogp, d.dhidden, NULL, NULL);
    memcpy(g1, m->grads, G * sizeof(float));
    // checkpointing recomputes the blocks: the same masks, the same gradients
    m->grad_ckpt = 1;
    m->input_embeds_grad = gin2;
    model_zero_grad(m);
    CHECK(model_forward(m, &eb, &err) == 0);
    CHECK(memcmp(logp1, m->logp, N_ * sizeof(float)) == 0);
    model_backward(m, d.dlogp, d.dhidden, NULL, NULL);
    CHECK(memcmp(gin, gin2, NC * sizeof(float)) == 0);
    CHECK(memcmp(g1, m->grads, G * sizeof(float)) == 0);
    m->grad_ckpt = 0;
    m->input_embeds_grad = NULL;
    // central differences with the masks fixed (same seed): input vectors and weights
    // behind the embedding, attention-output and MLP-output dropout
    const rlhf_tensor *ao = model_find_tensor(m, "layers.0.attn.out.weight");
    const rlhf_tensor *md = model_find_tensor(m, "layers.1.mlp.down.weight");
    const rlhf_tensor *up = model_find_tensor(m, "layers.0.mlp.up.weight");
    CHECK(ao && md && up);
    float *pts[10];
    double an[10];
    int n = 0, ie[] = {3, 2 * C + 5, 7 * C + 1, 11 * C + 15};
    for (int q = 0; q < 4; q++) pts[n] = d.embeds + ie[q], an[n++] = gin[ie[q]];
    const rlhf_tensor *ts[] = {ao, ao, md, md, up, up};
    size_t off[] = {7, 101, 13, 200, 31, 250};
    for (int q = 0; q < 6; q++) {
        size_t o = ts[q]->offset + off[q];
        pts[n] = m->params + o, an[n++] = g1[o - m->n_frozen];
    }
    double worst = 0;
    for (int q = 0; q < n; q++) {
        float keep = *pts[q];
        double h = 1e-2, f[2];
        for (int s = 0; s < 2; s++) {
            *pts[q] = keep + (float)(s ? -h : h);
            CHECK(model_forward(m, &eb, &err) == 0);
            f[s] = objective(m, &d);
        }
        *pts[q] = keep;
        double fd = (f[0] - f[1]) / (2 * h);
        double e = fabs(fd - an[q]) / (1e-2 + fabs(fd));
        if (getenv("VERBOSE")) printf("  %d fd %.6g an %.6g\n", q, fd, an[q]);
        if (e > worst) worst = e;
    }
    CHECKF(worst < 2e-2, "worst relative error %.3g", worst);
    printf("  %s: finite differences through the masks, worst rel err %.2g\n",
           arch == ARCH_GPT2 ? "gpt2" : "llama", worst);
    // off again: the first outputs
    set_drop(m, 0.0f);
    CHECK(model_forward(m, &eb, &err) == 0);
    CHECK(memcmp(logp0, m->logp, N_ * sizeof(float)) == 0);
    m->input_embeds = NULL;
    free(gin), free(gin2), free(logp0), free(logp1), free(g1), free(d.dhidden), free(d.embeds);
    model_free(m);
    return 0;
}

static int gpt2_dropout(void) { return check_arch(ARCH_GPT2); }
static int llama_dropout(void) { return check_arch(ARCH_LLAMA); }

int main(void) {
    RUN(keep_rate);
    RUN(gpt2_dropout);
    RUN(llama_dropout);
    TEST_EXIT();
}
