// Whole-model tests: finite-difference gradients of tiny GPT-2 and Llama models,
// KV-cache decoding against the full forward, padding invariance, determinism,
// checkpoints (bit-exact round trip, resume, bad files), generation and AdamW.
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "nn/nn.h"
#include "io/safetensors.h"
#include "rlhf.h"
#include "test.h"

static rlhf_config tiny_cfg(rlhf_arch arch) {
    rlhf_config c = {.arch = arch, .n_layer = 2, .n_head = 4, .n_kv_head = arch == ARCH_LLAMA ? 2 : 4,
                     .n_embd = 16, .d_ff = arch == ARCH_LLAMA ? 24 : 0, .vocab_size = 23,
                     .max_seq_len = 16, .tied = arch == ARCH_GPT2, .qkv_bias = arch == ARCH_LLAMA,
                     .score_head = arch == ARCH_LLAMA ? 2 : 1, .value_head = 1};
    config_fill_defaults(&c);
    return c;
}

// a padded batch: row 0 full, row 1 left-padded by 2, row 2 right-padded by 3
typedef struct {
    int B, T;
    int tok[3 * 9], tgt[3 * 9];
    uint8_t mask[3 * 9];
    float wl[3 * 9], ws[3 * 4], wv[3 * 9];
    int seg[3 * 9], packed;  // packed: several documents per row (segment ids)
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
        }
    for (int b = 0; b < 12; b++) f->ws[b] = rng_normal(&r);
    // documents for the packed variant: 3 in row 0, 2 after row 1's padding, 3 before row 2's
    static const int seg[3 * 9] = {0, 0, 0, 1, 1, 1, 1, 2, 2,    //
                                   -1, -1, 0, 0, 4, 4, 4, 4, 4,  //
                                   0, 1, 1, 2, 2, 2, -1, -1, -1};
    memcpy(f->seg, seg, sizeof seg);
    f->packed = 0;
}

static double fixture_loss(rlhf_model *m, const fixture *f) {
    rlhf_batch b = {.B = f->B, .T = f->T, .tokens = f->tok, .targets = f->tgt, .mask = f->mask,
                    .segment = f->packed ? f->seg : NULL};
    rlhf_err err;
    if (model_forward(m, &b, &err)) return NAN;
    double L = 0;
    for (int i = 0; i < f->B * f->T; i++) L += (double)m->logp[i] * f->wl[i] + (double)m->values[i] * f->wv[i];
    for (int r = 0; r < f->B * m->cfg.score_head; r++) L += (double)m->score[r] * f->ws[r];
    return L;
}

static int gradcheck(rlhf_arch arch, int packed) {
    rlhf_config c = tiny_cfg(arch);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 7, &err) == 0);
    // livelier weights than the 0.02 init so every path carries gradient
    rlhf_rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.15f * rng_normal(&r);
    fixture f;
    make_fixture(&f, c.vocab_size, 11);
    f.packed = packed;
    fixture_loss(m, &f);
    model_zero_grad(m);
    model_backward(m, f.wl, NULL, f.ws, f.wv);
    int checked = 0, bad = 0;
    double worst = 0;
    char worst_name[200] = "";
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const rlhf_tensor *t = &m->tensors[ti];
        for (int k = 0; k < 6; k++) {
            size_t j = t->offset + (size_t)(rng_u64(&r) % t->numel);
            float save = m->params[j];
            float eps = 1e-2f * fmaxf(1.0f, fabsf(save));
            m->params[j] = save + eps;
            double lp = fixture_loss(m, &f);
            m->params[j] = save - eps;
            double lm = fixture_loss(m, &f);
            m->params[j] = save;
            double fd = (lp - lm) / (2.0 * eps), an = m->grads[j];
            double e = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
            if (e > worst) {
                worst = e;
                snprintf(worst_name, sizeof worst_name, "%s[%zu] fd %.6g bwd %.6g", t->name, j - t->offset, fd, an);
            }
            if (e > 2e-2) {
                bad++;
                printf("  %s[%zu]: finite difference %.6g, backward %.6g\n", t->name, j - t->offset, fd, an);
            }
            checked++;
        }
    }
    printf("  %d parameters checked, worst relative error %.2e (%s)\n", checked, worst, worst_name);
    CHECK(bad == 0);
    model_free(m);
    return 0;
}

static int test_gradcheck_gpt2(void) { return gradcheck(ARCH_GPT2, 0); }
static int test_gradcheck_llama(void) { return gradcheck(ARCH_LLAMA, 0); }
static int test_gradcheck_gpt2_packed(void) { return gradcheck(ARCH_GPT2, 1); }
static int test_gradcheck_llama_packed(void) { return gradcheck(ARCH_LLAMA, 1); }

static int kv_matches_full(rlhf_arch arch) {
    rlhf_config c = tiny_cfg(arch);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 5, &err) == 0);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 10.0f;
    // left-padded batch of 2: row 1 starts at slot 3
    int B = 2, T = 10, P = 4, V = c.vocab_size;
    int tok[20];
    uint8_t mask[20];
    rlhf_rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < B * T; i++) {
        mask[i] = !(i >= T && i < T + 3);
        tok[i] = mask[i] ? (int)(rng_u64(&r) % V) : 0;
    }
    rlhf_batch b = {.B = B, .T = T, .tokens = tok, .targets = NULL, .mask = mask};
    CHECK(model_forward(m, &b, &err) == 0);
    float *full = xmalloc((size_t)B * T * V * 4);
    model_logits(m, full);
    rlhf_kv_cache *kv = kv_cache_create(&c, B, T);
    int pt[8];
    uint8_t pm[8];
    for (int bb = 0; bb < B; bb++)
        for (int j = 0; j < P; j++) pt[bb * P + j] = tok[bb * T + j], pm[bb * P + j] = mask[bb * T + j];
    float logits[2 * 23];
    CHECK(model_forward_cached(m, kv, pt, pm, P, logits, &err) == 0);
    double worst = 0;
    for (int s = P - 1; s < T; s++) {
        if (s >= P) {
            int nt[2] = {tok[s], tok[T + s]};
            uint8_t nm[2] = {mask[s], mask[T + s]};
            CHECK(model_forward_cached(m, kv, nt, nm, 1, logits, &err) == 0);
        }
        for (int bb = 0; bb < B; bb++)
            for (int v = 0; v < V; v++) {
                double d = fabs(logits[bb * V + v] - full[((size_t)bb * T + s) * V + v]);
                if (d > worst) worst = d;
            }
    }
    printf("  max |cached - full| logit difference %.2e\n", worst);
    CHECK(worst < 1e-4);
    // the cache refuses to overflow
    int one[2] = {1, 1};
    CHECK(model_forward_cached(m, kv, one, NULL, 1, logits, &err) == -1);
    CHECK(strstr(err.msg, "full") != NULL);
    kv_cache_free(kv);
    free(full);
    model_free(m);
    return 0;
}
static int test_kv_cache_gpt2(void) { return kv_matches_full(ARCH_GPT2); }
static int test_kv_cache_llama(void) { return kv_matches_full(ARCH_LLAMA); }

// the same sequence gives the same log-probs whether padded left, right or not at all
static int test_padding_invariance(void) {
    for (int arch = 0; arch < 2; arch++) {
        rlhf_config c = tiny_cfg((rlhf_arch)arch);
        rlhf_model *m;
        rlhf_err err;
        CHECK(model_create(&m, &c, 9, &err) == 0);
        for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 10.0f;
        int seq[5] = {3, 7, 1, 22, 9}, tg[5] = {7, 1, 22, 9, 4};
        int tok[3 * 8] = {0}, tgt[3 * 8];
        uint8_t mask[3 * 8] = {0};
        for (int i = 0; i < 24; i++) tgt[i] = -1;
        for (int j = 0; j < 5; j++) {
            tok[j] = seq[j], tgt[j] = tg[j], mask[j] = 1;                  // right padded
            tok[8 + 3 + j] = seq[j], tgt[8 + 3 + j] = tg[j], mask[8 + 3 + j] = 1;  // left padded
            tok[16 + 1 + j] = seq[j], tgt[16 + 1 + j] = tg[j], mask[16 + 1 + j] = 1;  // both
        }
        rlhf_batch b = {.B = 3, .T = 8, .tokens = tok, .targets = tgt, .mask = mask};
        CHECK(model_forward(m, &b, &err) == 0);
        for (int j = 0; j < 5; j++) {
            CHECK_CLOSE(m->logp[8 + 3 + j], m->logp[j], 1e-5, 1e-5);
            CHECK_CLOSE(m->logp[16 + 1 + j], m->logp[j], 1e-5, 1e-5);
        }
        int K = c.score_head;
        CHECK_CLOSE(m->score[K], m->score[0], 1e-5, 1e-5);
        CHECK_CLOSE(m->score[2 * K], m->score[0], 1e-5, 1e-5);
        model_free(m);
    }
    return 0;
}

// packed rows (segment ids): every document gets the log-probs, values, score and hidden
// states it gets alone, padding or not; segment ids that go back are refused
static int test_packed_equals_documents(void) {
    for (int arch = 0; arch < 2; arch++) {
        rlhf_config c = tiny_cfg((rlhf_arch)arch);
        rlhf_model *m;
        rlhf_err err;
        CHECK(model_create(&m, &c, 9, &err) == 0);
        for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 10.0f;
        enum { B = 2, T = 14 };
        // row 0: documents of 3, 5, 4 tokens, 2 padding; row 1: 2 padding, documents of 6, 6
        static const int seg[B * T] = {0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, -1, -1,
                                       -1, -1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
        int tok[B * T], tgt[B * T];
        uint8_t mask[B * T];
        rlhf_rng r;
        rng_seed(&r, 4);
        for (int i = 0; i < B * T; i++) {
            mask[i] = seg[i] >= 0;
            tok[i] = mask[i] ? (int)(rng_u64(&r) % c.vocab_size) : 0;
            tgt[i] = mask[i] ? (int)(rng_u64(&r) % c.vocab_size) : -1;
        }
        rlhf_batch b = {.B = B, .T = T, .tokens = tok, .targets = tgt, .mask = mask,
                        .segment = seg};
        CHECK(model_forward(m, &b, &err) == 0);
        int N = B * T, C = c.n_embd, K = c.score_head;
        float *logp = malloc(N * sizeof(float)), *val = malloc(N * sizeof(float));
        float *hid = malloc((size_t)N * C * sizeof(float)), *score = malloc(B * K * sizeof(float));
        memcpy(logp, m->logp, N * sizeof(float));
        memcpy(val, m->values, N * sizeof(float));
        memcpy(hid, m->hidden, (size_t)N * C * sizeof(float));
        memcpy(score, m->score, B * K * sizeof(float));
        double err_max = 0;
        for (int i = 0; i < N;) {  // each document alone: a batch of one, no padding
            if (!mask[i]) {
                i++;
                continue;
            }
            int e = i + 1;
            while (e < N && e % T && mask[e] && seg[e] == seg[i]) e++;
            rlhf_batch d = {.B = 1, .T = e - i, .tokens = tok + i, .targets = tgt + i};
            CHECK(model_forward(m, &d, &err) == 0);
            for (int j = 0; j < e - i; j++) {
                err_max = fmax(err_max, fabs(m->logp[j] - logp[i + j]));
                err_max = fmax(err_max, fabs(m->values[j] - val[i + j]));
                for (int k = 0; k < C; k++)
                    err_max = fmax(err_max, fabs(m->hidden[(size_t)j * C + k] -
                                                 hid[(size_t)(i + j) * C + k]));
            }
            if (e % T == 0 || !mask[e])  // the row's last document: the score head reads it
                for (int k = 0; k < K; k++)
                    err_max = fmax(err_max, fabs(m->score[k] - score[(i / T) * K + k]));
            i = e;
        }
        CHECKF(err_max < 1e-4, "arch %d: packed differs from documents alone by %g", arch, err_max);
        // ids must not go back along a row
        static const int back[B * T] = {0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, -1, -1,
                                        -1, -1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
        b.segment = back;
        CHECK(model_forward(m, &b, &err) != 0 && strstr(err.msg, "segment id 0 at batch row 0"));
        static const int neg[B * T] = {-1, -1, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, -1, -1,
                                       -1, -1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
        b.segment = neg;
        CHECK(model_forward(m, &b, &err) != 0 && strstr(err.msg, "segment id -1 at batch row 0"));
        free(logp), free(val), free(hid), free(score);
        model_free(m);
    }
    return 0;
}

// ---- training helpers ----
static void train_steps(rlhf_model *m, rlhf_optim *o, rlhf_rng *r, int steps, float *losses) {
    enum { B = 8, T = 16 };
    int V = m->cfg.vocab_size, N = B * T;
    int tok[B * T], tgt[B * T];
    float dl[B * T];
    rlhf_err err;
    for (int s = 0; s < steps; s++) {
        for (int b = 0; b < B; b++) {
            int start = (int)(rng_u64(r) % V);
            for (int t = 0; t < T; t++) tok[b * T + t] = (start + 2 * t) % V;
            for (int t = 0; t < T; t++) tgt[b * T + t] = t + 1 < T ? tok[b * T + t + 1] : -1;
        }
        rlhf_batch b = {.B = B, .T = T, .tokens = tok, .targets = tgt};
        if (model_forward(m, &b, &err)) {
            printf("  forward failed: %s\n", err.msg);
            test_failed_++;
            return;
        }
        double L = 0;
        for (int i = 0; i < N; i++) {
            dl[i] = tgt[i] >= 0 ? -1.0f / (B * (T - 1)) : 0;
            L -= tgt[i] >= 0 ? m->logp[i] : 0;
        }
        if (losses) losses[s] = (float)(L / (B * (T - 1)));
        model_zero_grad(m);
        model_backward(m, dl, NULL, NULL, NULL);
        optim_step(o, m);
    }
}

static rlhf_optim *make_optim(rlhf_model *m) {
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.lr = 1e-2f;
    oc.weight_decay = 0.1f;
    oc.schedule = LR_COSINE;
    oc.warmup_steps = 3;
    oc.total_steps = 40;
    return optim_create(&oc, m->n_params);
}

static int test_determinism_and_learning(void) {
    float a[20], b[20], c2[20];
    for (int run = 0; run < 3; run++) {
        rlhf_config c;
        rlhf_err err;
        config_from_name(&c, "llama-tiny", &err);
        rlhf_model *m;
        CHECK(model_create(&m, &c, run == 2 ? 2 : 1, &err) == 0);
        rlhf_optim *o = make_optim(m);
        rlhf_rng r;
        rng_seed(&r, 42);
        train_steps(m, o, &r, 20, run == 0 ? a : run == 1 ? b : c2);
        optim_free(o);
        model_free(m);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);  // bitwise identical loss curve
    CHECK(memcmp(a, c2, sizeof a) != 0); // another seed, another curve
    float first = (a[0] + a[1] + a[2] + a[3]) / 4, last = (a[16] + a[17] + a[18] + a[19]) / 4;
    printf("  mean loss of the first 4 steps %.4f, of the last 4 %.4f\n", first, last);
    CHECK(last < first - 0.5f);  // and it learns
    return 0;
}

static int test_named_sizes(void) {
    rlhf_config c;
    rlhf_err err;
    rlhf_model *m;
    CHECK(config_from_name(&c, "gpt2", &err) == 0);
    CHECK(model_create(&m, &c, 1, &err) == 0);
    CHECK(m->n_params == 124439808);  // GPT-2 small, as published
    model_free(m);
    CHECK(config_from_name(&c, "tiny", &err) == 0);
    CHECK(model_create(&m, &c, 1, &err) == 0);
    CHECK(m->n_params > 500000 && m->n_params < 2000000);
    model_free(m);
    CHECK(config_from_name(&c, "small", &err) == 0);
    CHECK(model_create(&m, &c, 1, &err) == 0);
    CHECK(m->n_params > 5000000 && m->n_params < 20000000);
    model_free(m);
    CHECK(config_from_name(&c, "huge", &err) == -1 && strstr(err.msg, "huge"));
    rlhf_config bad = tiny_cfg(ARCH_LLAMA);
    bad.n_kv_head = 3;
    CHECK(config_validate(&bad, &err) == -1 && strstr(err.msg, "n_kv_head"));
    return 0;
}

// ---- checkpoints ----
static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = read_file(a, &na, NULL), *y = read_file(b, &nb, NULL);
    int eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static int test_checkpoint_roundtrip_and_resume(void) {
    const char *dir = test_tmpdir();
    char ck[512];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    rlhf_config c = tiny_cfg(ARCH_LLAMA);
    rlhf_err err;
    rlhf_model *m;
    CHECK(model_create(&m, &c, 3, &err) == 0);
    rlhf_optim *o = make_optim(m);
    rlhf_rng r;
    rng_seed(&r, 5);
    train_steps(m, o, &r, 5, NULL);
    CHECKF(checkpoint_save(ck, m, o, &r, &err) == 0, "%s", err.msg);
    float cont[5];
    train_steps(m, o, &r, 5, cont);

    rlhf_model *m2;
    CHECKF(checkpoint_load(ck, &m2, &err) == 0, "%s", err.msg);
    rlhf_optim *o2 = make_optim(m2);
    rlhf_rng r2;
    CHECKF(checkpoint_load_optim(ck, o2, &r2, &err) == 0, "%s", err.msg);
    CHECK(o2->step == 5);
    float resumed[5];
    train_steps(m2, o2, &r2, 5, resumed);
    CHECK(memcmp(cont, resumed, sizeof cont) == 0);
    CHECK(memcmp(m->params, m2->params, m->n_params * 4) == 0);
    // save -> load -> save gives the same bytes
    char ck2[512], p1[600], p2[600];
    snprintf(ck2, sizeof ck2, "%s/ck2", dir);
    CHECK(checkpoint_save(ck2, m2, NULL, NULL, &err) == 0);
    rlhf_model *m3;
    CHECK(checkpoint_load(ck2, &m3, &err) == 0);
    CHECK(memcmp(m3->params, m2->params, m2->n_params * 4) == 0);
    char ck3[512];
    snprintf(ck3, sizeof ck3, "%s/ck3", dir);
    CHECK(checkpoint_save(ck3, m3, NULL, NULL, &err) == 0);
    snprintf(p1, sizeof p1, "%s/model.safetensors", ck2);
    snprintf(p2, sizeof p2, "%s/model.safetensors", ck3);
    CHECK(files_equal(p1, p2));
    // refusing to save NaN weights keeps the good checkpoint
    m3->params[m3->tensors[2].offset] = NAN;
    CHECK(checkpoint_save(ck2, m3, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, m3->tensors[2].name) && strstr(err.msg, "NaN"));
    rlhf_model *m4;
    CHECK(checkpoint_load(ck2, &m4, &err) == 0);
    model_free(m4);
    model_free(m3);
    optim_free(o);
    optim_free(o2);
    model_free(m);
    model_free(m2);
    return 0;
}

// writes a copy of src with bytes [at, at+n) replaced, or truncated to `cut` bytes
static void write_variant(const char *src, const char *dst, long cut, long at, const char *bytes) {
    size_t n;
    char *d = read_file(src, &n, NULL);
    if (cut >= 0 && (size_t)cut < n) n = (size_t)cut;
    if (at >= 0) memcpy(d + at, bytes, strlen(bytes));
    atomic_write_file(dst, d, n, NULL);
    free(d);
}

static int expect_load_error(const char *dir, const char *want1, const char *want2) {
    rlhf_model *m = NULL;
    rlhf_err err = {{0}};
    int rc = checkpoint_load(dir, &m, &err);
    if (rc == 0) model_free(m);
    int ok = rc == -1 && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2));
    if (!ok) printf("  load of %s: rc %d, message \"%s\" (wanted \"%s\"%s%s)\n", dir, rc, err.msg, want1, want2 ? " and " : "", want2 ? want2 : "");
    return ok;
}

static int test_checkpoint_bad_input(void) {
    const char *dir = test_tmpdir();
    char good[512], bad[512], path[700], gpath[700], cmd[2100];
    snprintf(good, sizeof good, "%s/good", dir);
    snprintf(bad, sizeof bad, "%s/bad", dir);
    rlhf_config c = tiny_cfg(ARCH_GPT2);
    rlhf_err err;
    rlhf_model *m;
    CHECK(model_create(&m, &c, 3, &err) == 0);
    CHECK(checkpoint_save(good, m, NULL, NULL, &err) == 0);
    snprintf(gpath, sizeof gpath, "%s/model.safetensors", good);
    size_t orig_n;
    char *orig = read_file(gpath, &orig_n, NULL);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/config.json %s/", bad, good, bad);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", bad);

    // truncated at several points
    long cuts[] = {4, 100, (long)orig_n / 2, (long)orig_n - 1};
    for (int i = 0; i < 4; i++) {
        write_variant(gpath, path, cuts[i], -1, NULL);
        CHECK(expect_load_error(bad, "model.safetensors", NULL));
    }
    // corrupted header JSON
    write_variant(gpath, path, -1, 9, "{{{{");
    CHECK(expect_load_error(bad, "model.safetensors", NULL));
    // unknown dtype: find "F32" of the first tensor and change it
    {
        char *h = read_file(gpath, NULL, NULL);
        long at = (long)(strstr(h + 8, "\"F32\"") - h) + 1;
        free(h);
        write_variant(gpath, path, -1, at, "Q32");
        CHECK(expect_load_error(bad, "model.safetensors", "Q32"));
    }
    // wrong shape: a checkpoint of a different model under this config
    {
        rlhf_config c2 = c;
        c2.d_ff = 40;
        rlhf_model *w;
        model_create(&w, &c2, 1, &err);
        char other[512];
        snprintf(other, sizeof other, "%s/other", dir);
        checkpoint_save(other, w, NULL, NULL, &err);
        snprintf(cmd, sizeof cmd, "cp %s/model.safetensors %s/", other, bad);
        CHECK(system(cmd) == 0);
        CHECK(expect_load_error(bad, "layers.0.mlp.up.weight", "shape"));
        model_free(w);
    }
    // NaN in weights (written by a tool other than ours)
    {
        st_file f;
        CHECK(st_open(&f, gpath, &err) == 0);
        int n = f.n_entries;
        st_tensor_desc *d = xcalloc(n, sizeof *d);
        float **bufs = xcalloc(n, sizeof *bufs);
        for (int i = 0; i < n; i++) {
            const st_entry *e = &f.entries[i];
            bufs[i] = xmalloc(e->nbytes + 4);
            st_read_f32(&f, e, bufs[i], (size_t)e->numel, &err);
            d[i] = (st_tensor_desc){.name = e->name, .dtype = ST_F32, .ndim = e->ndim, .data = bufs[i]};
            memcpy(d[i].shape, e->shape, sizeof e->shape);
            if (strcmp(e->name, "layers.1.attn.qkv.weight") == 0) bufs[i][3] = NAN;
        }
        CHECK(st_write(path, d, n, NULL, &err) == 0);
        st_close(&f);
        for (int i = 0; i < n; i++) free(bufs[i]);
        free(bufs);
        free(d);
        CHECK(expect_load_error(bad, "layers.1.attn.qkv.weight", "NaN"));
    }
    // a missing tensor: a model without the value head under a config that has one
    {
        rlhf_config c3 = c;
        c3.value_head = 0;
        rlhf_model *w;
        model_create(&w, &c3, 1, &err);
        char other[512];
        snprintf(other, sizeof other, "%s/nohead", dir);
        checkpoint_save(other, w, NULL, NULL, &err);
        snprintf(cmd, sizeof cmd, "cp %s/model.safetensors %s/", other, bad);
        CHECK(system(cmd) == 0);
        CHECK(expect_load_error(bad, "value_head.weight", "missing"));
        model_free(w);
    }
    // a malformed config
    snprintf(path, sizeof path, "%s/config.json", bad);
    atomic_write_file(path, "{\"arch\": \"gpt2\", \"n_layer\": \"two\"}", 35, NULL);
    CHECK(expect_load_error(bad, "config.json", "n_layer"));
    atomic_write_file(path, "{\"arch\": \"mamba\"}", 17, NULL);
    CHECK(expect_load_error(bad, "config.json", "mamba"));
    // the good checkpoint was never touched
    size_t now_n;
    char *now = read_file(gpath, &now_n, NULL);
    CHECK(now && now_n == orig_n && memcmp(now, orig, orig_n) == 0);
    CHECK(expect_load_error("/nonexistent/ckpt", "config.json", NULL));
    free(now);
    free(orig);
    model_free(m);
    return 0;
}

// ---- generation ----
static int test_generation(void) {
    rlhf_config c = tiny_cfg(ARCH_LLAMA);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 4, &err) == 0);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 20.0f;
    int p0[] = {1, 5, 9}, p1[] = {4}, p2[] = {7, 7, 7, 7, 2};
    const int *prompts[] = {p0, p1, p2};
    int lens[] = {3, 1, 5};
    rlhf_gen_opts go = {.max_new_tokens = 8, .temperature = 1.0f, .top_k = 0, .top_p = 1.0f,
                        .eos_id = -1, .pad_id = 0};
    rlhf_rng r;
    rng_seed(&r, 1);
    rlhf_gen_out out;
    CHECKF(generate(m, prompts, lens, 3, &go, &r, &out, &err) == 0, "%s", err.msg);
    // each sampled token's log-prob equals the log-prob a full forward assigns it
    for (int b = 0; b < 3; b++) {
        int T = lens[b] + out.length[b];
        int tok[16], tgt[16];
        for (int j = 0; j < lens[b]; j++) tok[j] = prompts[b][j];
        for (int j = 0; j < out.length[b]; j++) tok[lens[b] + j] = out.tokens[b * 8 + j];
        for (int j = 0; j < T; j++) tgt[j] = j + 1 < T && j + 1 >= lens[b] ? tok[j + 1] : -1;
        rlhf_batch bt = {.B = 1, .T = T, .tokens = tok, .targets = tgt};
        CHECK(model_forward(m, &bt, &err) == 0);
        for (int j = 0; j < out.length[b]; j++)
            CHECK_CLOSE(out.logp[b * 8 + j], m->logp[lens[b] - 1 + j], 1e-4, 1e-4);
        CHECK(out.length[b] == 8 && !out.ended_eos[b]);
    }
    gen_out_free(&out);
    // greedy is deterministic and equals top_k = 1 sampling and a tiny top_p
    rlhf_gen_opts g0 = go, gk = go, gp = go;
    g0.temperature = 0;
    gk.top_k = 1;
    gp.top_p = 1e-6f;
    rlhf_gen_out o0, ok, op;
    CHECK(generate(m, prompts, lens, 3, &g0, &r, &o0, &err) == 0);
    CHECK(generate(m, prompts, lens, 3, &gk, &r, &ok, &err) == 0);
    CHECK(generate(m, prompts, lens, 3, &gp, &r, &op, &err) == 0);
    CHECK(memcmp(o0.tokens, ok.tokens, 3 * 8 * sizeof(int)) == 0);
    CHECK(memcmp(o0.tokens, op.tokens, 3 * 8 * sizeof(int)) == 0);
    for (int i = 0; i < 24; i++) CHECK(fabsf(ok.logp[i]) < 1e-6f);  // point mass
    // stop at EOS: make the greedy first token of row 0 the EOS
    rlhf_gen_opts ge = g0;
    ge.eos_id = o0.tokens[0];
    rlhf_gen_out oe;
    CHECK(generate(m, prompts, lens, 3, &ge, &r, &oe, &err) == 0);
    CHECK(oe.length[0] == 1 && oe.ended_eos[0] == 1 && oe.tokens[1] == 0);
    gen_out_free(&o0);
    gen_out_free(&ok);
    gen_out_free(&op);
    gen_out_free(&oe);
    // errors
    int zero = 0;
    CHECK(generate(m, prompts, &zero, 1, &go, &r, &out, &err) == -1 && strstr(err.msg, "empty"));
    rlhf_gen_opts glong = go;
    glong.max_new_tokens = 100;
    CHECK(generate(m, prompts, lens, 3, &glong, &r, &out, &err) == -1 &&
          strstr(err.msg, "max_seq_len"));
    model_free(m);
    return 0;
}

// sample_token draws from softmax(logits/T) cut to top-k / top-p
static int test_sampler_distribution(void) {
    float base[5] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f};
    rlhf_rng r;
    rng_seed(&r, 8);
    struct {
        float temp, top_p;
        int top_k;
    } cases[] = {{1.0f, 1.0f, 0}, {0.5f, 1.0f, 0}, {1.0f, 1.0f, 2}, {1.0f, 0.8f, 0}};
    for (int ci = 0; ci < 4; ci++) {
        double p[5], z = 0;
        for (int i = 0; i < 5; i++) z += p[i] = exp(base[i] / cases[ci].temp);
        for (int i = 0; i < 5; i++) p[i] /= z;
        if (cases[ci].top_k == 2) {
            double s = p[0] + p[1];
            p[0] /= s, p[1] /= s, p[2] = p[3] = p[4] = 0;
        }
        if (cases[ci].top_p < 1) {  // nucleus: p0 + p1 (0.566+0.208=0.77 < 0.8) + p2 -> 3 tokens
            double s = p[0] + p[1] + p[2];
            p[0] /= s, p[1] /= s, p[2] /= s, p[3] = p[4] = 0;
        }
        rlhf_gen_opts o = {.temperature = cases[ci].temp, .top_k = cases[ci].top_k,
                           .top_p = cases[ci].top_p};
        int counts[5] = {0};
        int n = 40000;
        for (int k = 0; k < n; k++) {
            float l[5];
            memcpy(l, base, sizeof l);
            float lp;
            int t = sample_token(l, 5, &o, &r, &lp);
            counts[t]++;
            if (k < 50) CHECK_CLOSE(lp, log(p[t]), 1e-5, 1e-5);
        }
        for (int i = 0; i < 5; i++) CHECK_CLOSE(counts[i] / (double)n, p[i], 0.01, 0.0);
    }
    return 0;
}

// ---- optimizer ----
static int test_optimizer(void) {
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.lr = 1.0f;
    oc.warmup_steps = 10;
    oc.total_steps = 110;
    oc.schedule = LR_COSINE;
    CHECK_CLOSE(lr_at_step(&oc, 0), 0.1, 1e-6, 0);
    CHECK_CLOSE(lr_at_step(&oc, 9), 1.0, 1e-6, 0);
    CHECK_CLOSE(lr_at_step(&oc, 60), 0.5, 1e-6, 0);
    CHECK_CLOSE(lr_at_step(&oc, 110), 0.0, 1e-6, 0);
    oc.schedule = LR_LINEAR;
    CHECK_CLOSE(lr_at_step(&oc, 35), 0.75, 1e-6, 0);
    oc.schedule = LR_CONSTANT;
    CHECK_CLOSE(lr_at_step(&oc, 100), 1.0, 1e-6, 0);

    // weight decay only on matrices; clipping scales the global norm
    rlhf_config c = tiny_cfg(ARCH_GPT2);
    rlhf_model *m;
    rlhf_err err;
    model_create(&m, &c, 1, &err);
    model_zero_grad(m);
    optim_default_config(&oc);
    oc.lr = 0.1f;
    oc.weight_decay = 0.5f;
    rlhf_optim *o = optim_create(&oc, m->n_params);
    float *before = xmalloc(m->n_params * 4);
    memcpy(before, m->params, m->n_params * 4);
    optim_step(o, m);
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        size_t j = t->offset;
        float expect = t->decay ? before[j] * (1.0f - 0.1f * 0.5f) : before[j];
        CHECK_CLOSE(m->params[j], expect, 1e-7, 1e-6);
        CHECK(t->decay == (t->ndim == 2 && strstr(t->name, "head") == NULL));
    }
    for (size_t i = 0; i < m->n_params; i++) m->grads[i] = 3.0f;
    float norm = optim_step(o, m);
    CHECK_CLOSE(norm, 3.0 * sqrt((double)m->n_params), 1e-2, 1e-5);
    CHECK_CLOSE(sqrt(sum_squares(m->grads, (long)m->n_params)), 1.0, 1e-4, 1e-4);
    // a NaN or inf anywhere in the gradient: nothing changes (weights, moments,
    // step), the norm says so and the count goes up
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < m->n_params; i++) m->grads[i] = 0.5f;
        m->grads[m->n_params / 2] = k ? INFINITY : NAN;
        memcpy(before, m->params, m->n_params * 4);
        float *mom = xmalloc(o->n * 4);
        memcpy(mom, o->m, o->n * 4);
        long bad = optim_nonfinite_steps();
        int step = o->step;
        CHECK(!isfinite(optim_step(o, m)));
        CHECK(optim_nonfinite_steps() == bad + 1 && o->step == step);
        CHECK(!memcmp(before, m->params, m->n_params * 4) && !memcmp(mom, o->m, o->n * 4));
        free(mom);
    }
    free(before);
    optim_free(o);
    model_free(m);
    return 0;
}

// gradient accumulation: two half batches accumulate the gradient of the whole
static int test_gradient_accumulation(void) {
    rlhf_config c = tiny_cfg(ARCH_LLAMA);
    rlhf_model *m;
    rlhf_err err;
    model_create(&m, &c, 1, &err);
    fixture f;
    make_fixture(&f, c.vocab_size, 2);
    fixture_loss(m, &f);
    model_zero_grad(m);
    model_backward(m, f.wl, NULL, f.ws, f.wv);
    float *whole = xmalloc(m->n_params * 4);
    memcpy(whole, m->grads, m->n_params * 4);
    model_zero_grad(m);
    for (int half = 0; half < 2; half++) {
        int r0 = half ? 1 : 0, nb = half ? 2 : 1, T = f.T;
        rlhf_batch b = {.B = nb, .T = T, .tokens = f.tok + r0 * T, .targets = f.tgt + r0 * T,
                        .mask = f.mask + r0 * T};
        CHECK(model_forward(m, &b, &err) == 0);
        model_backward(m, f.wl + r0 * T, NULL, f.ws + r0 * c.score_head, f.wv + r0 * T);
    }
    double worst = 0, scale = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        worst = fmax(worst, fabs(m->grads[i] - whole[i]));
        scale = fmax(scale, fabs(whole[i]));
    }
    CHECK(worst <= 1e-5 * scale);
    free(whole);
    model_free(m);
    return 0;
}

// ---- config ranges (issue 9, item 2) ----
// config.json from our checkpoints: every field range-checked, a bad value is
// an error naming the file and the field (never a default, never a wrapped
// size); "score_head": -1 used to overflow the heap in st_read_f32.
static const char *cfg_json_with(const char *key, const char *value) {
    static char buf[1024];
    const char *keys[] = {"arch", "n_layer", "n_head", "n_kv_head", "n_embd", "d_ff", "vocab_size",
                          "max_seq_len", "qkv_bias", "tied", "rope_theta", "norm_eps",
                          "score_head", "value_head"};
    const char *vals[] = {"\"llama\"", "2", "4", "2", "16", "24", "11", "8", "0", "1", "10000",
                          "1e-5", "1", "0"};
    size_t o = (size_t)snprintf(buf, sizeof buf, "{");
    int found = 0;
    for (int i = 0; i < 14; i++) {
        const char *v = vals[i];
        if (!strcmp(keys[i], key)) v = value, found = 1;
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\"%s\":%s", i ? "," : "", keys[i], v);
    }
    if (!found) o += (size_t)snprintf(buf + o, sizeof buf - o, ",\"%s\":%s", key, value);
    snprintf(buf + o, sizeof buf - o, "}");
    return buf;
}

static int test_config_ranges(void) {
    rlhf_config c;
    rlhf_err err;
    CHECKF(config_from_json(&c, cfg_json_with("score_head", "1"), "ok.json", &err) == 0, "%s",
           err.msg);
    const char *bad[][2] = {
        {"score_head", "-1"},       {"score_head", "-2147483648"}, {"score_head", "100000"},
        {"value_head", "2"},        {"value_head", "-1"},          {"qkv_bias", "-1"},
        {"tied", "7"},              {"n_layer", "-2147483648"},    {"n_layer", "1e300"},
        {"n_head", "0"},            {"n_head", "-4"},              {"n_kv_head", "0"},
        {"n_kv_head", "-2"},        {"n_kv_head", "3"},            {"n_embd", "-16"},
        {"n_embd", "2147483647"},   {"d_ff", "0"},                 {"d_ff", "-24"},
        {"d_ff", "2147483647"},     {"vocab_size", "0"},           {"vocab_size", "-11"},
        {"vocab_size", "2000000000"}, {"max_seq_len", "-8"},       {"norm_eps", "0"},
        {"norm_eps", "-1e-5"},      {"norm_eps", "1e300"},         {"rope_theta", "0"},
        {"rope_theta", "-1"},       {"rope_theta", "1e300"},       {"n_layer", "2.5"},
        {"arch", "\"llama\\u0000x\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *json = cfg_json_with(bad[i][0], bad[i][1]);
        int rc = config_from_json(&c, json, "ck/config.json", &err);
        CHECKF(rc == -1, "accepted %s = %s", bad[i][0], bad[i][1]);
        const char *field = strcmp(bad[i][0], "arch") ? bad[i][0] : "\\u0000";
        CHECKF(rc == -1 && strstr(err.msg, "ck/config.json") && strstr(err.msg, field),
               "%s = %s: message \"%s\" does not name the field", bad[i][0], bad[i][1], err.msg);
    }
    // gpt2 always ties its head: "tied": 0 is refused, not silently replaced
    const char *g = "{\"arch\":\"gpt2\",\"n_layer\":1,\"n_head\":2,\"n_embd\":8,\"vocab_size\":5,"
                    "\"max_seq_len\":4,\"tied\":0}";
    CHECK(config_from_json(&c, g, "g.json", &err) == -1 && strstr(err.msg, "tied"));
    // size products that would overflow are refused before anything is allocated
    rlhf_config big = tiny_cfg(ARCH_LLAMA);
    big.n_layer = 1024, big.n_embd = 65536, big.n_head = 64, big.n_kv_head = 64;
    big.d_ff = 1 << 20, big.vocab_size = 1 << 24;
    CHECK(config_validate(&big, &err) == -1 && strstr(err.msg, "parameters"));
    size_t n = 0;
    CHECK(config_n_params(&big, &n) == 0 && n > ((size_t)1 << 36));
    // config_n_params agrees with the model's table, for both families and heads
    for (int arch = 0; arch < 2; arch++) {
        rlhf_config t = tiny_cfg((rlhf_arch)arch);
        t.score_head = 3, t.value_head = 1;
        rlhf_model *m = NULL;
        CHECK(model_create(&m, &t, 1, &err) == 0);
        CHECK(config_n_params(&t, &n) == 0 && m && n == m->n_params);
        model_free(m);
    }

    // the checkpoint that overflowed the heap: a score head in the weights,
    // "score_head": -1 in config.json
    const char *dir = test_tmpdir();
    char ck[512], cfgp[600];
    snprintf(ck, sizeof ck, "%s/ck_score", dir);
    rlhf_config t = tiny_cfg(ARCH_LLAMA);
    t.score_head = 1;
    rlhf_model *m = NULL;
    CHECK(model_create(&m, &t, 1, &err) == 0);
    CHECKF(checkpoint_save(ck, m, NULL, NULL, &err) == 0, "%s", err.msg);
    model_free(m);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", ck);
    const char *vals[] = {"-1", "-2147483648"};
    for (int i = 0; i < 2; i++) {
        size_t len;
        char *text = read_file(cfgp, &len, &err);
        CHECK(text != NULL);
        if (!text) break;
        char *at = strstr(text, "\"score_head\":");
        CHECK(at != NULL);
        if (at) {
            char *num = at + strlen("\"score_head\":");
            while (*num == ' ' || *num == '\t') num++;
            char *end = num;
            while (*end == '-' || (*end >= '0' && *end <= '9')) end++;
            char out[4096];
            snprintf(out, sizeof out, "%.*s%s%s", (int)(num - text), text, vals[i], end);
            CHECK(atomic_write_file(cfgp, out, strlen(out), &err) == 0);
        }
        free(text);
        m = NULL;
        int rc = checkpoint_load(ck, &m, &err);
        CHECKF(rc == -1 && strstr(err.msg, "config.json") && strstr(err.msg, "score_head"),
               "score_head %s: rc %d, \"%s\"", vals[i], rc, rc ? err.msg : "");
        model_free(m);
    }
    return 0;
}

int main(void) {
    RUN(test_gradcheck_gpt2);
    RUN(test_gradcheck_llama);
    RUN(test_gradcheck_gpt2_packed);
    RUN(test_gradcheck_llama_packed);
    RUN(test_kv_cache_gpt2);
    RUN(test_kv_cache_llama);
    RUN(test_padding_invariance);
    RUN(test_packed_equals_documents);
    RUN(test_determinism_and_learning);
    RUN(test_named_sizes);
    RUN(test_checkpoint_roundtrip_and_resume);
    RUN(test_checkpoint_bad_input);
    RUN(test_config_ranges);
    RUN(test_generation);
    RUN(test_sampler_distribution);
    RUN(test_optimizer);
    RUN(test_gradient_accumulation);
    TEST_EXIT();
}
