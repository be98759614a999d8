// LoRA adapters (src/model/lora.c): adapters at init leave every output of the
// base model bit-identical; finite-difference gradients of every adapter kind
// (GPT-2 c_attn / c_proj / c_fc, Llama q/k/v slices of the fused qkv, gate/up
// slices of the fused up projection, with GQA and q/k/v biases) and of the
// input gradient through the whole model; a frozen base gets no gradient and
// AdamW leaves its bytes alone; merging equals running the adapters; a shared
// base equals the model with adapters off and leaves the policy's activations
// alone; dropout masks are a function of the seed; bad configs are refused.
#include <math.h>

#include "model/dtype.h"
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

// LoRA dropout's seed for fixture_loss (0: leave the switch as it is): set again
// before each forward, so that every forward draws the masks of forward 0 of that
// seed (the finite differences need one loss function)
static uint64_t fixed_drop_seed;

// a scalar of every output: logp, hidden, score, values
static double fixture_loss(rlhf_model *m, const fixture *f) {
    rlhf_batch b = fixture_batch(f);
    rlhf_err err;
    if (fixed_drop_seed) model_lora_dropout(m, 1, fixed_drop_seed);
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

// fills every lora_B with N(0, sd)
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
    fixed_drop_seed = dropout > 0 ? 1234 : 0;
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
    fixed_drop_seed = 0;
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

// ------------------------------------------------------- frozen base, AdamW --

static int test_frozen_base_and_adamw(void) {
    rlhf_arch archs[2] = {ARCH_GPT2, ARCH_LLAMA};
    for (int ai = 0; ai < 2; ai++) {
        rlhf_model *m = lively_model(archs[ai], 21);
        rlhf_err err;
        size_t base_n = m->n_params;
        const rlhf_tensor *head = model_find_tensor(m, "score_head.weight");
        size_t head_off = head->offset;
        lora_config lc = lc_with(4, all_targets(archs[ai]));
        CHECK(model_add_lora(m, &lc, 1, &err) == 0);
        CHECK(m->n_frozen == head_off);  // the heads train beside the adapters
        CHECK(model_n_trainable(m) == m->n_params - head_off);
        CHECK(m->n_params > base_n);
        CHECK(model_lora(m) != NULL && model_lora(m)->r == 4);
        // adapters last, A then B, layer by layer, in lora.h's site order
        const rlhf_tensor *t0 = model_find_tensor(m, archs[ai] == ARCH_GPT2
                                                         ? "layers.0.attn.qkv.lora_A"
                                                         : "layers.0.attn.q.lora_A");
        CHECK(t0 && t0->offset == base_n);
        const rlhf_tensor *tl = &m->tensors[m->n_tensors - 1];
        CHECK(strcmp(tl->name, "layers.1.mlp.down.lora_B") == 0);
        fixture f;
        make_fixture(&f, m->cfg.vocab_size, 2);
        fixture_loss(m, &f);
        fixture_backward(m, &f);
        CHECK(m->g.wte == NULL && m->g.lm_head == NULL && m->g.final_norm_w == NULL);
        for (int l = 0; l < m->cfg.n_layer; l++) {
            rlhf_layer *G = &m->g.layers[l];
            CHECK(!G->qkv_w && !G->qkv_b && !G->attn_out_w && !G->mlp_up_w && !G->mlp_down_w &&
                  !G->attn_norm_w && !G->mlp_norm_w);
        }
        CHECK(m->g.score_w != NULL && m->g.value_w != NULL);
        rlhf_optim_config oc;
        optim_default_config(&oc);
        oc.lr = 1e-2f;
        oc.weight_decay = 0.1f;
        rlhf_optim *o = optim_create(&oc, model_n_trainable(m));
        float *before = xmalloc(m->n_params * 4);
        memcpy(before, m->params, m->n_params * 4);
        optim_step(o, m);
        CHECK(memcmp(before, m->params, m->n_frozen * 4) == 0);  // base bytes untouched
        int changed_b = 0, changed_head = 0;
        for (int i = 0; i < m->n_tensors; i++) {
            const rlhf_tensor *t = &m->tensors[i];
            int diff = memcmp(before + t->offset, m->params + t->offset, t->numel * 4) != 0;
            if (strstr(t->name, "lora_B")) changed_b += diff;
            if (strstr(t->name, "_head.")) changed_head += diff;
        }
        CHECK(changed_b > 0 && changed_head > 0);
        free(before);
        optim_free(o);
        // a second add is refused
        CHECK(model_add_lora(m, &lc, 1, &err) == -1);
        model_free(m);
    }
    return 0;
}

// --------------------------------------------------------------------- merge --

static double max_rel(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? d / s : d;
}

static int merge_case(rlhf_arch arch, unsigned targets) {
    rlhf_model *m = lively_model(arch, 31);
    rlhf_err err;
    int base_tensors = m->n_tensors;
    size_t base_n = m->n_params;
    lora_config lc = lc_with(4, targets);
    lc.use_rslora = 1;
    CHECK(model_add_lora(m, &lc, 2, &err) == 0);
    randomise_adapters(m, 0.2f, 5);
    fixture f;
    make_fixture(&f, m->cfg.vocab_size, 4);
    fixture_loss(m, &f);
    int N = f.B * f.T, C = m->cfg.n_embd;
    float *lp = xmalloc((size_t)N * 4), *hid = xmalloc((size_t)N * C * 4);
    memcpy(lp, m->logp, (size_t)N * 4);
    memcpy(hid, m->hidden, (size_t)N * C * 4);
    // the adapters change the outputs (so the comparison below means something)
    model_lora_enable(m, 0);
    fixture_loss(m, &f);
    double moved = max_rel(m->hidden, hid, (size_t)N * C);
    model_lora_enable(m, 1);
    CHECK(model_merge_lora(m, &err) == 0);
    CHECK(m->n_tensors == base_tensors && m->n_params == base_n && m->n_frozen == 0);
    CHECK(model_lora(m) == NULL && m->grads == NULL);
    fixture_loss(m, &f);
    double e1 = max_rel(m->logp, lp, (size_t)N), e2 = max_rel(m->hidden, hid, (size_t)N * C);
    printf("  %s: merged vs adapters: logp %.2e, hidden %.2e (adapters moved hidden by %.2e)\n",
           arch == ARCH_GPT2 ? "gpt2" : "llama", e1, e2, moved);
    CHECK(e1 < 1e-5 && e2 < 1e-5 && moved > 1e-3);
    // the whole model trains again
    fixture_backward(m, &f);
    CHECK(m->g.wte != NULL && model_n_trainable(m) == m->n_params);
    CHECK(model_merge_lora(m, &err) == -1);
    free(lp);
    free(hid);
    model_free(m);
    return 0;
}

static int test_merge(void) {
    merge_case(ARCH_GPT2, all_targets(ARCH_GPT2));
    merge_case(ARCH_GPT2, 0);
    merge_case(ARCH_LLAMA, all_targets(ARCH_LLAMA));
    return merge_case(ARCH_LLAMA, LORA_K | LORA_UP);
}

// ------------------------------------------------------------- shared base --

static int share_case(rlhf_arch arch) {
    rlhf_model *m = lively_model(arch, 41);
    rlhf_err err;
    lora_config lc = lc_with(4, all_targets(arch));
    CHECK(model_add_lora(m, &lc, 2, &err) == 0);
    randomise_adapters(m, 0.2f, 6);
    rlhf_model *ref;
    CHECK(model_share_base(m, &ref, &err) == 0);
    CHECK(ref->params == m->params && ref->params_borrowed && ref->n_frozen == 0);
    CHECK(ref->lora == NULL && model_lora(ref) == NULL);
    const rlhf_tensor *a0 = model_find_tensor(m, arch == ARCH_GPT2 ? "layers.0.attn.qkv.lora_A"
                                                                   : "layers.0.attn.q.lora_A");
    CHECK(a0 && ref->n_params == a0->offset);
    for (int i = 0; i < ref->n_tensors; i++) CHECK(!is_lora(ref->tensors[i].name));
    CHECK(model_find_tensor(ref, "score_head.weight") != NULL);
    fixture f;
    make_fixture(&f, m->cfg.vocab_size, 8);
    int N = f.B * f.T, C = m->cfg.n_embd;
    // the shared base = the policy with its adapters off, bit for bit
    model_lora_enable(m, 0);
    fixture_loss(m, &f);
    float *off = xmalloc((size_t)N * C * 4), *offlp = xmalloc((size_t)N * 4);
    memcpy(off, m->hidden, (size_t)N * C * 4);
    memcpy(offlp, m->logp, (size_t)N * 4);
    model_lora_enable(m, 1);
    fixture_loss(ref, &f);
    CHECK(memcmp(ref->hidden, off, (size_t)N * C * 4) == 0);
    CHECK(memcmp(ref->logp, offlp, (size_t)N * 4) == 0);
    // the policy's gradients: alone, and with a reference forward between its forward and
    // backward
    fixture_loss(m, &f);
    fixture_backward(m, &f);
    size_t nt = model_n_trainable(m);
    float *g1 = xmalloc(nt * 4);
    memcpy(g1, m->grads, nt * 4);
    fixture_loss(m, &f);
    fixture ff;
    make_fixture(&ff, m->cfg.vocab_size, 99);
    fixture_loss(ref, &ff);
    fixture_backward(m, &f);
    CHECK(memcmp(g1, m->grads, nt * 4) == 0);
    // the shared model decodes with a KV cache too, and frees only its own
    rlhf_kv_cache *kv = kv_cache_create(&ref->cfg, 1, 8);
    int tok[3] = {1, 2, 3};
    float *logits = xmalloc((size_t)ref->cfg.vocab_size * 4);
    CHECK(model_forward_cached(ref, kv, tok, NULL, 3, logits, &err) == 0);
    kv_cache_free(kv);
    free(logits);
    model_free(ref);
    fixture_loss(m, &f);  // the policy is intact
    CHECK(isfinite(m->logp[0]));
    free(off);
    free(offlp);
    free(g1);
    model_free(m);
    return 0;
}

static int test_share_base(void) {
    share_case(ARCH_GPT2);
    return share_case(ARCH_LLAMA);
}

// with 16-bit base copies on the policy, the shared reference reads the same copies
// (its forward = the policy's with adapters off); freeing them in either order is clean
static int test_share_base_bf16(void) {
    for (int order = 0; order < 2; order++) {
        rlhf_model *m = lively_model(ARCH_LLAMA, 43);
        rlhf_err err;
        lora_config lc = lc_with(4, all_targets(ARCH_LLAMA));
        CHECK(model_add_lora(m, &lc, 2, &err) == 0);
        randomise_adapters(m, 0.2f, 6);
        CHECK(model_to_bf16(m, &err) == 0);
        snprintf(m->origin, sizeof m->origin, "llama-test");
        m->origin_seed = 43;
        rlhf_model *ref;
        CHECK(model_share_base(m, &ref, &err) == 0);
        CHECK(model_has_bf16(ref));
        CHECK(strcmp(ref->origin, "llama-test") == 0 && ref->origin_seed == 43);
        fixture f;
        make_fixture(&f, m->cfg.vocab_size, 8);
        int N = f.B * f.T, C = m->cfg.n_embd;
        model_lora_enable(m, 0);
        fixture_loss(m, &f);
        float *off = xmalloc((size_t)N * C * 4);
        memcpy(off, m->hidden, (size_t)N * C * 4);
        model_lora_enable(m, 1);
        fixture_loss(ref, &f);
        CHECK(memcmp(ref->hidden, off, (size_t)N * C * 4) == 0);
        free(off);
        if (order == 0) {
            model_free(ref);
            fixture_loss(m, &f);
            CHECK(isfinite(m->logp[0]));
            model_free(m);
        } else {  // (the policy owns the fp32 base: nothing may run on ref after this)
            model_free(m);
            model_free(ref);
        }
    }
    return 0;
}

// ------------------------------------------------------------------ dropout --

static int test_dropout(void) {
    rlhf_model *m = lively_model(ARCH_LLAMA, 51);
    rlhf_err err;
    lora_config lc = lc_with(4, all_targets(ARCH_LLAMA));
    lc.dropout = 0.5f;
    CHECK(model_add_lora(m, &lc, 2, &err) == 0);
    randomise_adapters(m, 0.3f, 7);
    fixture f;
    make_fixture(&f, m->cfg.vocab_size, 8);
    int N = f.B * f.T, C = m->cfg.n_embd;
    size_t nh = (size_t)N * C * 4;
    float *plain = xmalloc(nh), *s1 = xmalloc(nh);
    fixture_loss(m, &f);  // dropout off by default
    memcpy(plain, m->hidden, nh);
    model_lora_dropout(m, 1, 77);
    fixture_loss(m, &f);
    memcpy(s1, m->hidden, nh);
    CHECK(memcmp(s1, plain, nh) != 0);
    // the next forward (another micro-batch of the step) draws other masks, and the
    // same seed set again draws forward 0's again
    float *s2 = xmalloc(nh);
    fixture_loss(m, &f);
    memcpy(s2, m->hidden, nh);
    CHECK(memcmp(s1, s2, nh) != 0 && memcmp(s2, plain, nh) != 0);
    model_lora_dropout(m, 1, 77);
    fixture_loss(m, &f);
    CHECK(memcmp(s1, m->hidden, nh) == 0);
    fixture_loss(m, &f);
    CHECK(memcmp(s2, m->hidden, nh) == 0);
    free(s2);
    model_lora_dropout(m, 1, 78);
    fixture_loss(m, &f);
    CHECK(memcmp(s1, m->hidden, nh) != 0);
    // the KV-cache forward never drops: its logits are those of the forward without dropout
    model_lora_dropout(m, 0, 0);
    rlhf_batch b = {.B = 1, .T = 6, .tokens = f.tok, .targets = NULL, .mask = NULL};
    CHECK(model_forward(m, &b, &err) == 0);
    int V = m->cfg.vocab_size;
    float *full = xmalloc((size_t)6 * V * 4), lg[64];
    model_logits(m, full);
    model_lora_dropout(m, 1, 77);
    rlhf_kv_cache *kv = kv_cache_create(&m->cfg, 1, 8);
    CHECK(model_forward_cached(m, kv, f.tok, NULL, 6, lg, &err) == 0);
    double d = 0;
    for (int v = 0; v < V; v++) d = fmax(d, fabs(lg[v] - full[5 * V + v]));
    printf("  cached (dropout on) vs full forward without dropout: %.2e\n", d);
    CHECK(d < 1e-4);
    kv_cache_free(kv);
    // dropout draws about p of the elements: the mean |output change| is clearly nonzero,
    // and with activation checkpointing the recomputed forward draws the same masks
    model_lora_dropout(m, 1, 5);
    fixture_loss(m, &f);
    fixture_backward(m, &f);
    size_t nt = model_n_trainable(m);
    float *g1 = xmalloc(nt * 4);
    memcpy(g1, m->grads, nt * 4);
    m->grad_ckpt = 1;
    model_lora_dropout(m, 1, 5);
    fixture_loss(m, &f);
    fixture_backward(m, &f);
    double gd = max_rel(m->grads, g1, nt);
    printf("  activation checkpointing with dropout: grads differ by %.2e\n", gd);
    CHECK(gd < 1e-6);
    m->grad_ckpt = 0;
    free(g1);
    free(full);
    free(plain);
    free(s1);
    model_free(m);
    return 0;
}

// the mask straight from lora_backward's input gradient: about p of the elements
// dropped, the kept ones scaled by 1/(1-p), none dropped with train = 0's twin (off)
static int test_dropout_mask_rate(void) {
    rlhf_config c = cfg_of(ARCH_GPT2);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 3, &err) == 0);
    lora_config lc = lc_with(4, LORA_DOWN);
    lc.dropout = 0.25f;
    CHECK(model_add_lora(m, &lc, 2, &err) == 0);
    randomise_adapters(m, 0.5f, 9);
    model_zero_grad(m);
    int N = 64, in, o;
    lin_dims(&m->cfg, LIN_MLP_DOWN, &in, &o);
    float *x = xmalloc((size_t)N * in * 4), *y = xcalloc((size_t)N * o, 4);
    float *dout = xmalloc((size_t)N * o * 4), *d0 = xcalloc((size_t)N * in, 4),
          *d1 = xcalloc((size_t)N * in, 4);
    rlhf_rng r;
    rng_seed(&r, 4);
    for (int i = 0; i < N * in; i++) x[i] = rng_normal(&r);
    for (int i = 0; i < N * o; i++) dout[i] = rng_normal(&r);
    lora_forward_add(m, 1, LIN_MLP_DOWN, y, x, N, 1);  // dropout off
    lora_backward(m, 1, LIN_MLP_DOWN, d0, dout, x, N);
    model_lora_dropout(m, 1, 42);
    lora_forward_add(m, 1, LIN_MLP_DOWN, y, x, N, 1);
    lora_backward(m, 1, LIN_MLP_DOWN, d1, dout, x, N);
    int dropped = 0, bad = 0;
    for (int i = 0; i < N * in; i++) {
        if (d1[i] == 0.0f)
            dropped++;
        else if (fabsf(d1[i] - d0[i] / 0.75f) > 1e-5f * (1.0f + fabsf(d0[i])))
            bad++;
    }
    double frac = (double)dropped / (N * in);
    printf("  p = 0.25: %.4f of %d elements dropped; %d kept ones not scaled by 1/(1-p)\n", frac,
           N * in, bad);
    CHECK(fabs(frac - 0.25) < 0.03 && bad == 0);
    free(x), free(y), free(dout), free(d0), free(d1);
    model_free(m);
    return 0;
}

// -------------------------------------------------------------- bad configs --

static int test_bad_configs(void) {
    rlhf_model *g = lively_model(ARCH_GPT2, 1), *l = lively_model(ARCH_LLAMA, 1);
    rlhf_err err;
    lora_config lc = lc_with(0, 0);
    CHECK(model_add_lora(g, &lc, 1, &err) == -1 && strstr(err.msg, "rank"));
    lc = lc_with(4, 0);
    lc.alpha = 0;
    CHECK(model_add_lora(g, &lc, 1, &err) == -1 && strstr(err.msg, "alpha"));
    lc = lc_with(4, 0);
    lc.dropout = 1.0f;
    CHECK(model_add_lora(g, &lc, 1, &err) == -1 && strstr(err.msg, "dropout"));
    lc = lc_with(4, LORA_Q);
    CHECK(model_add_lora(g, &lc, 1, &err) == -1 && strstr(err.msg, "q_proj") &&
          strstr(err.msg, "c_attn"));
    lc = lc_with(4, LORA_QKV);
    CHECK(model_add_lora(l, &lc, 1, &err) == -1 && strstr(err.msg, "c_attn") &&
          strstr(err.msg, "q_proj"));
    CHECK(g->lora == NULL && l->lora == NULL);
    unsigned t = 0;
    CHECK(lora_targets_parse("q_proj", ARCH_GPT2, &t, &err) == -1 && strstr(err.msg, "c_attn"));
    CHECK(lora_targets_parse("c_attn", ARCH_LLAMA, &t, &err) == -1 && strstr(err.msg, "q_proj"));
    CHECK(lora_targets_parse("q_proj,bogus", ARCH_LLAMA, &t, &err) == -1 &&
          strstr(err.msg, "bogus"));
    CHECK(lora_targets_parse("q_proj,,v_proj", ARCH_LLAMA, &t, &err) == -1);
    // defaults and names (PEFT's)
    CHECK(lora_targets_parse(NULL, ARCH_GPT2, &t, &err) == 0 && t == LORA_QKV);
    CHECK(lora_targets_parse("", ARCH_LLAMA, &t, &err) == 0 && t == (LORA_Q | LORA_V));
    CHECK(lora_targets_parse("c_proj", ARCH_GPT2, &t, &err) == 0 && t == (LORA_O | LORA_DOWN));
    CHECK(lora_targets_parse(" q_proj , up_proj", ARCH_LLAMA, &t, &err) == 0 &&
          t == (LORA_Q | LORA_UP));
    const char *names[8];
    CHECK(lora_targets_parse("all-linear", ARCH_LLAMA, &t, &err) == 0);
    CHECK(lora_target_names(t, ARCH_LLAMA, names, 8) == 7 && strcmp(names[0], "q_proj") == 0 &&
          strcmp(names[6], "down_proj") == 0);
    CHECK(lora_targets_parse("all-linear", ARCH_GPT2, &t, &err) == 0);
    CHECK(lora_target_names(t, ARCH_GPT2, names, 8) == 3 && strcmp(names[1], "c_proj") == 0);
    CHECK(lora_target_names(LORA_O | LORA_UP, ARCH_GPT2, names, 8) == 2 &&
          strcmp(names[0], "attn.c_proj") == 0);
    CHECK(lora_targets_parse("attn.c_proj,c_fc", ARCH_GPT2, &t, &err) == 0 &&
          t == (LORA_O | LORA_UP));
    CHECK(lora_target_names(LORA_Q | LORA_V, ARCH_LLAMA, names, 1) == 1);
    // no adapters to merge; a shared model takes no adapters
    CHECK(model_merge_lora(g, &err) == -1);
    rlhf_model *s;
    CHECK(model_share_base(g, &s, &err) == 0);
    lc = lc_with(4, 0);
    CHECK(model_add_lora(s, &lc, 1, &err) == -1);
    model_free(s);
    model_free(g);
    model_free(l);
    return 0;
}

// ---------------------------------------------------------------- KV cache --

static int test_kv_cache(void) {
    rlhf_arch archs[2] = {ARCH_GPT2, ARCH_LLAMA};
    for (int ai = 0; ai < 2; ai++) {
        rlhf_model *m = lively_model(archs[ai], 61);
        rlhf_err err;
        lora_config lc = lc_with(4, all_targets(archs[ai]));
        CHECK(model_add_lora(m, &lc, 2, &err) == 0);
        randomise_adapters(m, 0.3f, 7);
        int V = m->cfg.vocab_size, T = 8, tok[8] = {3, 1, 4, 1, 5, 9, 2, 6};
        rlhf_batch b = {.B = 1, .T = T, .tokens = tok};
        CHECK(model_forward(m, &b, &err) == 0);
        float *full = xmalloc((size_t)T * V * 4), lg[64];
        model_logits(m, full);
        rlhf_kv_cache *kv = kv_cache_create(&m->cfg, 1, T);
        CHECK(model_forward_cached(m, kv, tok, NULL, 3, lg, &err) == 0);
        double d = 0;
        for (int s = 3; s <= T; s++) {
            for (int v = 0; v < V; v++) d = fmax(d, fabs(lg[v] - full[(s - 1) * V + v]));
            if (s < T) CHECK(model_forward_cached(m, kv, tok + s, NULL, 1, lg, &err) == 0);
        }
        printf("  %s: cached vs full logits with adapters: %.2e\n",
               archs[ai] == ARCH_GPT2 ? "gpt2" : "llama", d);
        CHECK(d < 1e-4);
        kv_cache_free(kv);
        free(full);
        model_free(m);
    }
    return 0;
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
    RUN(test_frozen_base_and_adamw);
    RUN(test_merge);
    RUN(test_share_base);
    RUN(test_share_base_bf16);
    RUN(test_dropout);
    RUN(test_dropout_mask_rate);
    RUN(test_bad_configs);
    RUN(test_kv_cache);
    printf("  worst finite-difference relative error over every check: %.2e\n", worst_fd);
    TEST_EXIT();
}
