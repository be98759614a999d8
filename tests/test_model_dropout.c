// rlhf_model's training dropout (embd_dropout, resid_dropout, attn_dropout;
// include/rlhf.h), which LaMo's training forwards use (src/ctrl/lamo.c):
//   * nn's counter-based masks keep about 1 - p of the elements, scaled by
//     1/(1-p), the same ones for the same key;
//   * the attention kernel's probability dropout (attn_dropout, nn.h) keeps about
//     1 - p of the visible probabilities, p = 0 is bit-identical to the kernel
//     without it, a share of the batch's rows given its first token's index
//     draws the whole batch's masks for them, and its backward agrees with
//     central differences through the fixed masks while a backward that leaves
//     the mask out does not;
//   * p = 0 leaves the forward bit-identical to a model that never set it, and
//     dropping it again after a dropout forward gives the first outputs back;
//   * with p > 0 the forward changes, repeats bit for bit with the same seed, and
//     activation checkpointing keeps every gradient bit-identical;
//   * the backward goes through the masks: central differences (mask fixed by
//     the seed) of input_embeds and of weights behind every site, with all three
//     kinds on and with the attention probabilities' alone.
#include <math.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"
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

// ---- the attention kernel's probability dropout (src/nn/attention.c) ----

// The kernel compares integer draws with nn_drop_cut(p) instead of dropout_kept's
// draw * 2^-53 >= p: the same decision for every draw, checked at the cut and either side
// of it for p's that are not binary fractions, and on random draws.
static int drop_cut_exact(void) {
    double ps[] = {0.1, 0.25, 0.3, 1.0 / 3, 0.999999, 1e-17, 0.0};
    long bad = 0;
    for (int q = 0; q < 7; q++) {
        uint64_t cut = nn_drop_cut(ps[q]);
        for (int e = -2; e <= 2; e++) {
            if (cut == 0 && e < 0) continue;
            uint64_t x = cut + (uint64_t)(int64_t)e;
            bad += ((double)x * 0x1.0p-53 >= ps[q]) != (x >= cut);
        }
        for (uint64_t i = 0; i < 20000; i++) {
            uint64_t x = nn_drop_draw(dropout_key(3, (uint64_t)q), i);
            bad += dropout_kept(dropout_key(3, (uint64_t)q), i, ps[q]) != (x >= cut);
        }
    }
    CHECKF(bad == 0, "%ld decisions differ", bad);
    return 0;
}

// qkv (B,T,(NH+2NKV)HS) of normal draws times scale
static float *random_qkv(int B, int T, int NH, int NKV, int HS, float scale, uint64_t seed) {
    long n = (long)B * T * (NH + 2 * NKV) * HS;
    float *x = malloc((size_t)n * sizeof(float));
    rlhf_rng r;
    rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = scale * rng_normal(&r);
    return x;
}

// With q = 0 every visible probability is 1/(t+1), and with HS = T and v[s] the one-hot e_s
// the output row of query t is its dropped probabilities: the kept ones are 1/(t+1)/(1-p),
// about 1 - p of them. Then p = 0 against the kernel without dropout, bit for bit, and the
// rows from 3 on run alone with token0 = 3 T: the whole batch's outputs for them.
static int attn_keep_rate(void) {
    enum { B = 8, T = 96, NH = 4, HS = T, R = 3 * NH * HS, OR = NH * HS };
    float *qkv = calloc((size_t)B * T * R, sizeof(float));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) qkv[((long)b * T + t) * R + (2 * NH + h) * HS + t] = 1.0f;
    float *out = malloc(sizeof(float) * B * T * OR), *att = malloc(sizeof(float) * B * NH * T * T);
    double p = 0.3;
    attn_dropout d = {.p = p, .key = dropout_key(11, 5), .token0 = 0};
    attention_forward_drop(out, att, qkv, NULL, NULL, B, T, NH, NH, HS, &d);
    long kept = 0, seen = 0, bad = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++)
                for (int s = 0; s < T; s++) {
                    float y = out[((long)b * T + t) * OR + h * HS + s];
                    double want = 1.0 / (t + 1) / (1 - p);
                    if (s > t) {
                        bad += y != 0.0f;
                        continue;
                    }
                    seen++, kept += y != 0.0f;
                    bad += y != 0.0f && fabs(y - want) > 1e-6 * want;
                    // the documented key: (query token, head, key) in the whole batch
                    uint64_t idx = (((uint64_t)b * T + t) * NH + h) * T + s;
                    bad += (y != 0.0f) != dropout_kept(d.key, idx, p);
                }
    double rate = (double)kept / seen;  // 149k draws: sd 0.0012
    CHECKF(fabs(rate - (1 - p)) < 0.005, "keep rate %.4f of %ld", rate, seen);
    CHECKF(bad == 0, "%ld outputs not 1/(t+1)/(1-p) where dropout_kept, 0 elsewhere", bad);
    printf("  attention probabilities, p %.1f: keep rate %.4f of %ld\n", p, rate, seen);
    // a share of the rows (as an MPI rank runs it) draws the whole batch's masks for them
    enum { LO = 3 };
    float *part = malloc(sizeof(float) * B * T * OR), *att2 = malloc(sizeof(float) * B * NH * T * T);
    attn_dropout dp = d;
    dp.token0 = (uint64_t)LO * T;
    attention_forward_drop(part, att2, qkv + (long)LO * T * R, NULL, NULL, B - LO, T, NH, NH, HS,
                           &dp);
    CHECK(memcmp(part, out + (long)LO * T * OR, sizeof(float) * (B - LO) * T * OR) == 0);
    CHECK(memcmp(att2, att + (long)LO * NH * T * T, sizeof(float) * (B - LO) * NH * T * T) == 0);
    // p = 0 (and NULL): the kernel without dropout, bit for bit, on random inputs
    float *x = random_qkv(2, 70, 2, 1, 8, 1.0f, 4);
    float *o0 = malloc(sizeof(float) * 2 * 70 * 16), *o1 = malloc(sizeof(float) * 2 * 70 * 16);
    attention_forward(o0, att, x, NULL, NULL, 2, 70, 2, 1, 8);
    attn_dropout z = {.p = 0, .key = 1, .token0 = 7};
    attention_forward_drop(o1, att2, x, NULL, NULL, 2, 70, 2, 1, 8, &z);
    CHECK(memcmp(o0, o1, sizeof(float) * 2 * 70 * 16) == 0);
    CHECK(memcmp(att, att2, sizeof(float) * 2 * 2 * 70 * 70) == 0);
    free(qkv), free(out), free(att), free(part), free(att2), free(x), free(o0), free(o1);
    return 0;
}

// sum w . out of attention_forward_drop (in double)
static double attn_objective(const float *qkv, const float *w, float *out, float *att,
                             const uint8_t *mask, int B, int T, int NH, int NKV, int HS,
                             const attn_dropout *d) {
    attention_forward_drop(out, att, qkv, mask, NULL, B, T, NH, NKV, HS, d);
    double s = 0;
    for (long i = 0; i < (long)B * T * NH * HS; i++) s += (double)w[i] * out[i];
    return s;
}

// The kernel's backward through the probabilities' dropout against central differences of
// q, k and v entries (masks fixed by the key; grouped-query heads, padding, T past one
// query block); then the same backward told no dropout (the mask left out) must disagree.
static int attn_drop_grad(void) {
    enum { B = 2, T = 70, NH = 2, NKV = 1, HS = 4, R = (NH + 2 * NKV) * HS, OR = NH * HS };
    float *qkv = random_qkv(B, T, NH, NKV, HS, 0.8f, 21), *w = random_qkv(B, T, 1, 0, OR, 1.0f, 22);
    uint8_t mask[B * T];
    for (int i = 0; i < B * T; i++) mask[i] = !(i / T == 1 && i % T < 5);  // row 1 left-padded
    float *out = malloc(sizeof(float) * B * T * OR), *att = malloc(sizeof(float) * B * NH * T * T);
    float *scratch = malloc(sizeof(float) * B * NH * T * T);
    float *g = calloc((size_t)B * T * R, sizeof(float)), *g0 = calloc((size_t)B * T * R, sizeof(float));
    attn_dropout d = {.p = 0.3, .key = dropout_key(5, 9), .token0 = 140};
    attn_objective(qkv, w, out, att, mask, B, T, NH, NKV, HS, &d);
    attention_backward_drop(g, scratch, w, qkv, att, B, T, NH, NKV, HS, &d);
    attention_backward_drop(g0, scratch, w, qkv, att, B, T, NH, NKV, HS, NULL);
    double worst = 0, worst0 = 0;
    rlhf_rng r;
    rng_seed(&r, 23);
    for (int q = 0; q < 48; q++) {
        // q, k and v columns in turn, rows of both batch rows (not padding)
        int b = q % 2, t = 5 + (int)(rng_u64(&r) % (T - 5)), col = (q % 3) * 4 + (int)(rng_u64(&r) % 4);
        long i = ((long)b * T + t) * R + col;
        float keep = qkv[i];
        double h = 1e-2, f[2];
        for (int s = 0; s < 2; s++) {
            qkv[i] = keep + (float)(s ? -h : h);
            f[s] = attn_objective(qkv, w, out, att, mask, B, T, NH, NKV, HS, &d);
        }
        qkv[i] = keep;
        double fd = (f[0] - f[1]) / (2 * h);
        double e = fabs(fd - g[i]) / (1e-2 + fabs(fd)), e0 = fabs(fd - g0[i]) / (1e-2 + fabs(fd));
        if (e > worst) worst = e;
        if (e0 > worst0) worst0 = e0;
    }
    CHECKF(worst < 1e-2, "worst relative error %.3g", worst);
    CHECKF(worst0 > 0.1, "the backward without the mask agrees (worst %.3g)", worst0);
    printf("  attention kernel: finite differences through the masks, worst rel err %.2g; "
           "mask left out of the backward: %.2g\n", worst, worst0);
    free(qkv), free(w), free(out), free(att), free(scratch), free(g), free(g0);
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

// the sites' p: the embedding output, the residual branches, the attention probabilities
typedef struct {
    float embd, resid, attn;
} drops;

static void set_drop(rlhf_model *m, drops p) {
    m->embd_dropout = p.embd, m->resid_dropout = p.resid, m->attn_dropout = p.attn;
    m->dropout_seed = 77;
}

static int check_arch(rlhf_arch arch, drops on) {
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
    m->dropout_seed = 99, m->dropout_token0 = 5;
    m->embd_dropout = m->resid_dropout = m->attn_dropout = 0.0f;
    CHECK(model_forward(m, &eb, &err) == 0);
    CHECK(memcmp(logp0, m->logp, N_ * sizeof(float)) == 0);
    m->dropout_token0 = 0;
    // dropout on: other outputs, the same ones again with the same seed
    set_drop(m, on);
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
    // behind the embedding, attention-probability, attention-output and MLP-output dropout
    // (q, k and v rows of both layers' qkv: the probabilities' masks weight all three)
    const rlhf_tensor *ao = model_find_tensor(m, "layers.0.attn.out.weight");
    const rlhf_tensor *md = model_find_tensor(m, "layers.1.mlp.down.weight");
    const rlhf_tensor *up = model_find_tensor(m, "layers.0.mlp.up.weight");
    const rlhf_tensor *q0 = model_find_tensor(m, "layers.0.attn.qkv.weight");
    const rlhf_tensor *q1 = model_find_tensor(m, "layers.1.attn.qkv.weight");
    CHECK(ao && md && up && q0 && q1);
    float *pts[16];
    double an[16];
    int n = 0, ie[] = {3, 2 * C + 5, 7 * C + 1, 11 * C + 15};
    for (int q = 0; q < 4; q++) pts[n] = d.embeds + ie[q], an[n++] = gin[ie[q]];
    // qkv rows: q 0..15, k 16..(16 + kv width), v after it
    size_t kv = (size_t)c.n_kv_head * (C / c.n_head), kq = (size_t)C * C, vq = kq + kv * C;
    const rlhf_tensor *ts[] = {ao, ao, md, md, up, up, q0, q0, q0, q1, q1, q1};
    size_t off[] = {7, 101, 13, 200, 31, 250, 37, kq + 19, vq + 23, 141, kq + 70, vq + 5};
    for (int q = 0; q < 12; q++) {
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
    printf("  %s (embd %g, resid %g, attn %g): finite differences through the masks, worst rel "
           "err %.2g\n", arch == ARCH_GPT2 ? "gpt2" : "llama", on.embd, on.resid, on.attn, worst);
    // off again: the first outputs
    set_drop(m, (drops){0, 0, 0});
    CHECK(model_forward(m, &eb, &err) == 0);
    CHECK(memcmp(logp0, m->logp, N_ * sizeof(float)) == 0);
    m->input_embeds = NULL;
    free(gin), free(gin2), free(logp0), free(logp1), free(g1), free(d.dhidden), free(d.embeds);
    model_free(m);
    return 0;
}

static const drops ALL = {0.2f, 0.3f, 0.25f}, ATTN = {0, 0, 0.3f};
static int gpt2_dropout(void) { return check_arch(ARCH_GPT2, ALL); }
static int llama_dropout(void) { return check_arch(ARCH_LLAMA, ALL); }
static int gpt2_attn_dropout(void) { return check_arch(ARCH_GPT2, ATTN); }
static int llama_attn_dropout(void) { return check_arch(ARCH_LLAMA, ATTN); }

int main(void) {
    RUN(keep_rate);
    RUN(drop_cut_exact);
    RUN(attn_keep_rate);
    RUN(attn_drop_grad);
    RUN(gpt2_dropout);
    RUN(llama_dropout);
    RUN(gpt2_attn_dropout);
    RUN(llama_attn_dropout);
    TEST_EXIT();
}
