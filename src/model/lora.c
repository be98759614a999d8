// model/lora: see lora.h.
//
// The adapters' numbers live in the model's table (one lora_A, one lora_B per
// adapter, after every other tensor); this file keeps the rest behind m->lora:
// the config, the on/off and dropout switches, where each adapter's tensors
// start, and per adapter u = drop(x) A^T (N, r), the training forward's
// intermediate that the backward reads.
//
// Dropout: the mask of adapter (layer l, kind k) at element (row n, column i)
// of its input is a hash of (seed, l, k, n * in + i), so the forward and the
// backward (and a forward recomputed under activation checkpointing) draw the
// same mask without storing it. Kept elements are scaled by 1 / (1 - p).
#include "model/lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/dtype.h"
#include "model/model_internal.h"

// ------------------------------------------------------------- adapter kinds --

// The order of the lora_target bits and of the adapters in the table.
enum { KIND_Q, KIND_K, KIND_V, KIND_QKV, KIND_O, KIND_GATE, KIND_UP, KIND_DOWN, N_KIND };

static const char *const kind_site[N_KIND] = {"attn.q",   "attn.k",   "attn.v",
                                              "attn.qkv", "attn.out", "mlp.gate",
                                              "mlp.up",   "mlp.down"};
static const lin_site kind_lin[N_KIND] = {LIN_QKV,      LIN_QKV,    LIN_QKV,    LIN_QKV,
                                          LIN_ATTN_OUT, LIN_MLP_UP, LIN_MLP_UP, LIN_MLP_DOWN};

#define TARGETS_GPT2 (LORA_QKV | LORA_O | LORA_UP | LORA_DOWN)
#define TARGETS_LLAMA (LORA_Q | LORA_K | LORA_V | LORA_O | LORA_GATE | LORA_UP | LORA_DOWN)

static unsigned arch_targets(rlhf_arch arch) {
    return arch == ARCH_GPT2 ? TARGETS_GPT2 : TARGETS_LLAMA;
}

// The rows [*off, *off + *n) of the site's (fused) output that kind k covers.
static void kind_slice(const rlhf_config *c, int k, int *off, int *n) {
    int HS = c->n_embd / c->n_head, NH = c->n_head, NKV = c->n_kv_head, F = c->d_ff;
    int in, out;
    lin_dims(c, kind_lin[k], &in, &out);
    *off = 0, *n = out;
    switch (k) {
    case KIND_Q: *n = NH * HS; break;
    case KIND_K: *off = NH * HS, *n = NKV * HS; break;
    case KIND_V: *off = (NH + NKV) * HS, *n = NKV * HS; break;
    case KIND_GATE: *n = F; break;
    case KIND_UP:
        if (c->arch == ARCH_LLAMA) *off = F, *n = F;
        break;
    default: break;
    }
}

// ------------------------------------------------------------------- state --

typedef struct {
    size_t off_a, off_b;  // table offsets of lora_A (r, in), lora_B (n, r)
    float *u;             // drop(x) A^T (N, r) of the last training forward
    size_t u_cap;
    int u_rows;           // N of that forward; -1 = it ran with the adapters off
    int drop_on;          // dropout (its seed, its first token's global index) of that forward
    uint64_t drop_seed, drop_token0;
} adapter;

typedef struct {
    lora_config cfg;      // first: model_lora returns it
    float scale;
    int enabled;
    int drop_on;
    uint64_t drop_seed;   // model_lora_dropout's seed
    uint64_t fwd_key;     // the masks' key of the current training forward (lora_forward_begin)
    uint64_t n_fwd;       // training forwards since model_lora_dropout
    adapter *ad;          // n_layer * N_KIND; ad[l * N_KIND + k] (u_rows 0 and off 0 when absent)
    float *scratch;       // dropped inputs, (N, r) products of the KV-cache forward
    size_t scratch_cap;
} lora_state;

static lora_state *state(const rlhf_model *m) { return (lora_state *)m->lora; }

static float *grow(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        free(*buf);
        *buf = xalloc_aligned(n * sizeof(float));
        *cap = n;
    }
    return *buf;
}

void lora_free(rlhf_model *m) {
    lora_state *s = state(m);
    if (!s) return;
    if (s->ad)
        for (int i = 0; i < m->cfg.n_layer * N_KIND; i++) free(s->ad[i].u);
    free(s->ad);
    free(s->scratch);
    free(s);
    m->lora = NULL;
}

// ------------------------------------------------------------ target names --

void lora_config_default(lora_config *lc) {
    memset(lc, 0, sizeof *lc);
    lc->r = 16;
    lc->alpha = 32.0f;
    lc->dropout = 0.05f;
}

static const char *arch_name(rlhf_arch a) { return a == ARCH_GPT2 ? "gpt2" : "llama"; }

static const char *valid_names(rlhf_arch a) {
    return a == ARCH_GPT2 ? "c_attn, c_proj, c_fc, attn.c_proj, mlp.c_proj, all-linear"
                          : "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, "
                            "all-linear";
}

// 0 when name is no module of arch
static unsigned name_bits(const char *name, rlhf_arch arch) {
    static const struct {
        const char *name;
        unsigned bits;
    } gpt2[] = {{"c_attn", LORA_QKV},      {"c_proj", LORA_O | LORA_DOWN},
                {"c_fc", LORA_UP},         {"attn.c_proj", LORA_O},
                {"mlp.c_proj", LORA_DOWN}, {"all-linear", TARGETS_GPT2}},
      llama[] = {{"q_proj", LORA_Q},     {"k_proj", LORA_K},       {"v_proj", LORA_V},
                 {"o_proj", LORA_O},     {"gate_proj", LORA_GATE}, {"up_proj", LORA_UP},
                 {"down_proj", LORA_DOWN}, {"all-linear", TARGETS_LLAMA}};
    if (arch == ARCH_GPT2) {
        for (size_t i = 0; i < sizeof gpt2 / sizeof gpt2[0]; i++)
            if (strcmp(name, gpt2[i].name) == 0) return gpt2[i].bits;
    } else {
        for (size_t i = 0; i < sizeof llama / sizeof llama[0]; i++)
            if (strcmp(name, llama[i].name) == 0) return llama[i].bits;
    }
    return 0;
}

int lora_targets_parse(const char *list, rlhf_arch arch, unsigned *targets, rlhf_err *err) {
    if (!list || !*list) {
        *targets = arch == ARCH_GPT2 ? LORA_QKV : (LORA_Q | LORA_V);
        return 0;
    }
    unsigned t = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        char name[64];
        if (n == 0 || n >= sizeof name)
            return rlhf_fail(err, "--lora_target_modules \"%s\": %s module name (a %s model has: "
                                  "%s)",
                             list, n ? "too long a" : "an empty", arch_name(arch),
                             valid_names(arch));
        memcpy(name, p, n);
        name[n] = 0;
        unsigned b = name_bits(name, arch);
        if (!b)
            return rlhf_fail(err, "LoRA target module \"%s\" is not a module of a %s model "
                                  "(it has: %s)",
                             name, arch_name(arch), valid_names(arch));
        t |= b;
        if (!e) break;
        p = e + 1;
    }
    *targets = t;
    return 0;
}

int lora_target_names(unsigned targets, rlhf_arch arch, const char **names, int max) {
    const char *out[N_KIND];
    int n = 0;
    if (arch == ARCH_GPT2) {
        if (targets & LORA_QKV) out[n++] = "c_attn";
        if ((targets & LORA_O) && (targets & LORA_DOWN))
            out[n++] = "c_proj";
        else if (targets & LORA_O)
            out[n++] = "attn.c_proj";
        else if (targets & LORA_DOWN)
            out[n++] = "mlp.c_proj";
        if (targets & LORA_UP) out[n++] = "c_fc";
    } else {
        static const char *const ll[N_KIND] = {"q_proj",   "k_proj",    "v_proj",  NULL,
                                               "o_proj",   "gate_proj", "up_proj", "down_proj"};
        for (int k = 0; k < N_KIND; k++)
            if ((targets & (1u << k)) && ll[k]) out[n++] = ll[k];
    }
    int w = n < max ? n : max;
    for (int i = 0; i < w; i++) names[i] = out[i];
    return w;
}

// ------------------------------------------------------------------ tables --

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int is_head(const char *name) {
    return strncmp(name, "score_head.", 11) == 0 || strncmp(name, "value_head.", 11) == 0;
}

static int is_adapter(const char *name) {
    size_t n = strlen(name);
    return n > 7 && (strcmp(name + n - 7, ".lora_A") == 0 || strcmp(name + n - 7, ".lora_B") == 0);
}

// index of the first adapter tensor (= n_tensors when none)
static int first_adapter(const rlhf_model *m) {
    for (int i = 0; i < m->n_tensors; i++)
        if (is_adapter(m->tensors[i].name)) return i;
    return m->n_tensors;
}

static void append(rlhf_tensor *t, int *n, size_t *n_params, const char *name, int64_t d0,
                   int64_t d1) {
    rlhf_tensor *x = &t[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = 2;
    x->shape[0] = d0;
    x->shape[1] = d1;
    x->numel = (size_t)d0 * (size_t)d1;
    x->offset = *n_params;
    x->decay = 1;  // as the HF Trainer does: decay on every weight matrix, adapters included
    *n_params += x->numel;
}

// no grads: free them and clear the g views (the next backward allocates the new tail)
static void drop_grads(rlhf_model *m) {
    free(m->grads);
    m->grads = NULL;
    rlhf_layer *keep = m->g.layers;
    memset(&m->g, 0, sizeof m->g);
    if (keep) memset(keep, 0, (size_t)m->cfg.n_layer * sizeof *keep);
    m->g.layers = keep;
}

// A new parameter buffer of n floats: the first keep floats of old, zeros after.
// old is freed. Its pages are handed back to the system as they are copied,
// so the model's weights are never resident twice (a 0.5B model would
// otherwise hold 2 x 2 GB for a moment).
static float *move_params(float *old, size_t keep, size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, bytes ? bytes : 64) != 0) p = xalloc_aligned(n);
    long page = sysconf(_SC_PAGESIZE);
    size_t chunk = (size_t)16 << 20;  // floats: 64 MB at a time
    for (size_t done = 0; done < keep; done += chunk) {
        size_t len = keep - done < chunk ? keep - done : chunk;
        memcpy(p + done, old + done, len * sizeof(float));
        uintptr_t lo = (uintptr_t)(old + done), hi = (uintptr_t)(old + done + len);
        lo = (lo + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
        hi = hi / (uintptr_t)page * (uintptr_t)page;
        if (page > 0 && hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);  // now zero pages
    }
    memset(p + keep, 0, bytes - keep * sizeof(float));
    free(old);
    return p;
}

int model_add_lora(rlhf_model *m, const lora_config *lc, uint64_t seed, rlhf_err *err) {
    const rlhf_config *c = &m->cfg;
    if (m->lora || first_adapter(m) < m->n_tensors)
        return rlhf_fail(err, "the model already has LoRA adapters");
    if (m->params_borrowed)
        return rlhf_fail(err, "cannot add LoRA adapters to a model that shares another's weights");
    if (m->w16)
        return rlhf_fail(err, "add LoRA adapters before making 16-bit weight copies");
    if (lc->r < 1) return rlhf_fail(err, "LoRA rank r = %d: must be at least 1", lc->r);
    if (!(lc->alpha > 0.0f) || !isfinite(lc->alpha))
        return rlhf_fail(err, "LoRA alpha = %g: must be > 0", (double)lc->alpha);
    if (!(lc->dropout >= 0.0f && lc->dropout < 1.0f))
        return rlhf_fail(err, "LoRA dropout = %g: must be in [0, 1)", (double)lc->dropout);
    unsigned targets = lc->targets, valid = arch_targets(c->arch);
    if (!targets) lora_targets_parse(NULL, c->arch, &targets, NULL);
    if (targets & ~valid) {  // another architecture's module (or no module at all)
        const char *names[N_KIND];
        int n = lora_target_names(targets & ~valid, c->arch == ARCH_GPT2 ? ARCH_LLAMA : ARCH_GPT2,
                                  names, N_KIND);
        return rlhf_fail(err, "LoRA target %s is not a module of a %s model (it has: %s)",
                         n ? names[0] : "(unknown bit)", arch_name(c->arch),
                         valid_names(c->arch));
    }
    // the new table: the old one, then per layer A, B of each targeted kind
    int n_new = 0;
    for (int k = 0; k < N_KIND; k++) n_new += (targets >> k) & 1;
    n_new *= 2 * c->n_layer;
    int nt = m->n_tensors;
    rlhf_tensor *tab = xmalloc((size_t)(nt + n_new) * sizeof *tab);
    memcpy(tab, m->tensors, (size_t)nt * sizeof *tab);
    size_t n_params = m->n_params;
    lora_state *s = xcalloc(1, sizeof *s);
    s->cfg = *lc;
    s->cfg.targets = targets;
    s->scale = lc->use_rslora ? lc->alpha / sqrtf((float)lc->r) : lc->alpha / (float)lc->r;
    s->enabled = 1;
    s->ad = xcalloc((size_t)c->n_layer * N_KIND, sizeof *s->ad);
    int first_new = nt;
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < N_KIND; k++) {
            if (!(targets & (1u << k))) continue;
            int in, out, off, n;
            lin_dims(c, kind_lin[k], &in, &out);
            kind_slice(c, k, &off, &n);
            char nm[64];
            adapter *a = &s->ad[l * N_KIND + k];
            snprintf(nm, sizeof nm, "layers.%d.%s.lora_A", l, kind_site[k]);
            a->off_a = n_params;
            append(tab, &nt, &n_params, nm, lc->r, in);
            snprintf(nm, sizeof nm, "layers.%d.%s.lora_B", l, kind_site[k]);
            a->off_b = n_params;
            append(tab, &nt, &n_params, nm, n, lc->r);
        }
    float *p = move_params(m->params, m->n_params, n_params);  // the new floats are 0: B = 0
    for (int i = first_new; i < nt; i++) {
        const rlhf_tensor *t = &tab[i];
        if (t->name[strlen(t->name) - 1] != 'A') continue;
        float bound = 1.0f / sqrtf((float)t->shape[1]);
        rlhf_rng r;
        rng_seed(&r, seed ^ fnv1a(t->name));
        float *a = p + t->offset;
        for (size_t j = 0; j < t->numel; j++) a[j] = bound * (2.0f * rng_uniform(&r) - 1.0f);
    }
    // trainable tail: the heads (last of the old table) and the adapters
    size_t frozen = first_new < nt ? tab[first_new].offset : n_params;
    for (int i = 0; i < first_new; i++)
        if (is_head(tab[i].name)) {
            frozen = tab[i].offset;
            break;
        }
    free(m->tensors);
    m->tensors = tab;
    m->n_tensors = nt;
    m->params = p;
    m->n_params = n_params;
    drop_grads(m);
    m->n_frozen = frozen;
    m->lora = s;
    model_set_views(m);
    return 0;
}

const lora_config *model_lora(const rlhf_model *m) { return m->lora ? &state(m)->cfg : NULL; }

void model_lora_enable(rlhf_model *m, int on) {
    if (m->lora) state(m)->enabled = on != 0;
}

void model_lora_dropout(rlhf_model *m, int on, uint64_t seed) {
    lora_state *s = state(m);
    if (!s) return;
    s->drop_on = on != 0;
    s->drop_seed = seed;
    s->fwd_key = seed;
    s->n_fwd = 0;
}

int model_lora_dropout_switch(rlhf_model *m, int on) {
    lora_state *s = state(m);
    if (!s) return 0;
    int was = s->drop_on;
    s->drop_on = on != 0;
    return was;
}

// forward j after model_lora_dropout draws with key seed (j = 0) or a key mixed from
// (seed, j): a step's micro-batches and passes each get their own masks, and the first
// forward's are those of the seed itself
void lora_forward_begin(rlhf_model *m) {
    lora_state *s = state(m);
    if (!s || !s->drop_on) return;
    s->fwd_key = s->n_fwd == 0 ? s->drop_seed : dropout_key(s->drop_seed, (1ULL << 32) + s->n_fwd);
    s->n_fwd++;
}

// ---------------------------------------------------------------- dropout --

// masks: nn's counter-based dropout (dropout_apply), one key per adapter
static uint64_t drop_key(uint64_t seed, int l, int k) {
    return dropout_key(seed, (uint64_t)(l * N_KIND + k + 1));
}

// out (N, in) = x masked and scaled by 1/(1-p) (in place when out == x); row n is
// token token0 + n of the whole batch (rlhf_model dropout_token0)
static void apply_mask(float *out, const float *x, int N, int in, uint64_t key, double p,
                       uint64_t token0) {
    dropout_apply(out, x, (long)N * in, key, p, token0 * (uint64_t)in);
}

// -------------------------------------------------------- forward, backward --

void lora_forward_add(rlhf_model *m, int l, lin_site site, float *out, const float *inp, int N,
                      int train) {
    lora_state *s = state(m);
    if (!s) return;
    const rlhf_config *c = &m->cfg;
    int r = s->cfg.r;
    int in, o;
    lin_dims(c, site, &in, &o);
    for (int k = 0; k < N_KIND; k++) {
        if (kind_lin[k] != site || !(s->cfg.targets & (1u << k))) continue;
        adapter *a = &s->ad[l * N_KIND + k];
        if (!s->enabled) {
            if (train) a->u_rows = -1;
            continue;
        }
        int off, n;
        kind_slice(c, k, &off, &n);
        const float *A = m->params + a->off_a, *B = m->params + a->off_b;
        int drop = train && s->drop_on && s->cfg.dropout > 0.0f;
        const float *x = inp;
        float *u = NULL;
        if (train) {
            u = grow(&a->u, &a->u_cap, (size_t)N * r);
            a->u_rows = N;
            a->drop_on = drop;
            a->drop_seed = s->fwd_key;
            a->drop_token0 = m->dropout_token0;
        }
        size_t need = (size_t)N * r + (drop ? (size_t)N * in : 0);
        float *sc = grow(&s->scratch, &s->scratch_cap, need);
        if (!train) u = sc;
        if (drop) {
            float *xd = sc + (size_t)N * r;
            apply_mask(xd, inp, N, in, drop_key(s->fwd_key, l, k), s->cfg.dropout,
                       m->dropout_token0);
            x = xd;
        }
        gemm(0, 1, N, r, in, 1.0f, x, in, A, in, 0.0f, u, r);
        gemm(0, 1, N, n, r, s->scale, u, r, B, r, 1.0f, out + off, o);
    }
}

void lora_backward(rlhf_model *m, int l, lin_site site, float *dinp, const float *dout,
                   const float *inp, int N) {
    lora_state *s = state(m);
    if (!s) return;
    const rlhf_config *c = &m->cfg;
    int r = s->cfg.r;
    int in, o;
    lin_dims(c, site, &in, &o);
    for (int k = 0; k < N_KIND; k++) {
        if (kind_lin[k] != site || !(s->cfg.targets & (1u << k))) continue;
        adapter *a = &s->ad[l * N_KIND + k];
        if (a->u_rows < 0) continue;  // that forward ran without adapters: they took no part
        RLHF_ASSERT(a->u_rows == N);
        int off, n;
        kind_slice(c, k, &off, &n);
        const float *A = m->params + a->off_a, *B = m->params + a->off_b;
        float *dA = NULL, *dB = NULL;
        if (m->grads && a->off_a >= m->n_frozen) dA = m->grads + (a->off_a - m->n_frozen);
        if (m->grads && a->off_b >= m->n_frozen) dB = m->grads + (a->off_b - m->n_frozen);
        if (!dA && !dB && !dinp) continue;
        const float *ds = dout + off;
        float sc = s->scale;
        double p = s->cfg.dropout;
        uint64_t key = drop_key(a->drop_seed, l, k);
        // g (N, r) = dout_slice B; xd (N, in): the dropped input, then g A
        float *g = grow(&s->scratch, &s->scratch_cap, (size_t)N * r + (size_t)N * in);
        float *xd = g + (size_t)N * r;
        if (dB) gemm(1, 0, n, r, N, sc, ds, o, a->u, r, 1.0f, dB, r);
        gemm(0, 0, N, r, n, 1.0f, ds, o, B, r, 0.0f, g, r);
        if (dA) {
            const float *x = inp;
            if (a->drop_on) {
                apply_mask(xd, inp, N, in, key, p, a->drop_token0);
                x = xd;
            }
            gemm(1, 0, r, in, N, sc, g, r, x, in, 1.0f, dA, in);
        }
        if (dinp) {
            if (a->drop_on) {
                gemm(0, 0, N, in, r, sc, g, r, A, in, 0.0f, xd, in);
                apply_mask(xd, xd, N, in, key, p, a->drop_token0);
                long tot = (long)N * in;
                for (long j = 0; j < tot; j++) dinp[j] += xd[j];
            } else {
                gemm(0, 0, N, in, r, sc, g, r, A, in, 1.0f, dinp, in);
            }
        }
    }
}

// ------------------------------------------------------------ merge, share --

int model_merge_lora(rlhf_model *m, rlhf_err *err) {
    lora_state *s = state(m);
    if (!s) return rlhf_fail(err, "the model has no LoRA adapters to merge");
    // 16-bit copies are of the unmerged base; dropping them first also widens a
    // released fp32 base back (model_to_bf16 may have handed its pages back)
    dtype_free(m);
    const rlhf_config *c = &m->cfg;
    int r = s->cfg.r;
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < N_KIND; k++) {
            if (!(s->cfg.targets & (1u << k))) continue;
            const adapter *a = &s->ad[l * N_KIND + k];
            int in, o, off, n;
            lin_dims(c, kind_lin[k], &in, &o);
            kind_slice(c, k, &off, &n);
            float *W = (float *)lin_weight(m, l, kind_lin[k], NULL);
            gemm(0, 0, n, in, r, s->scale, m->params + a->off_b, r, m->params + a->off_a, in, 1.0f,
                 W + (size_t)off * in, in);
        }
    int nt = first_adapter(m);
    size_t n_params = nt < m->n_tensors ? m->tensors[nt].offset : m->n_params;
    m->params = move_params(m->params, n_params, n_params);
    m->n_params = n_params;
    m->n_tensors = nt;
    drop_grads(m);
    m->n_frozen = 0;
    lora_free(m);
    model_set_views(m);
    return 0;
}

int model_share_base(const rlhf_model *src, rlhf_model **out, rlhf_err *err) {
    if (src->params_borrowed)
        return rlhf_fail(err, "model_share_base: the source already shares another's weights");
    rlhf_model *m = xcalloc(1, sizeof *m);
    m->cfg = src->cfg;
    int nt = first_adapter(src);
    m->n_tensors = nt;
    m->tensors = xmalloc((size_t)(nt ? nt : 1) * sizeof(rlhf_tensor));
    memcpy(m->tensors, src->tensors, (size_t)nt * sizeof(rlhf_tensor));
    m->n_params = nt ? m->tensors[nt - 1].offset + m->tensors[nt - 1].numel : 0;
    m->params = src->params;
    m->params_borrowed = 1;
    if (src->rope_cos) {
        size_t n = (size_t)src->cfg.max_seq_len * (src->cfg.n_embd / src->cfg.n_head / 2);
        m->rope_cos = xmalloc(n * sizeof(float));
        m->rope_sin = xmalloc(n * sizeof(float));
        memcpy(m->rope_cos, src->rope_cos, n * sizeof(float));
        memcpy(m->rope_sin, src->rope_sin, n * sizeof(float));
    }
    snprintf(m->origin, sizeof m->origin, "%s", src->origin);
    m->origin_seed = src->origin_seed;
    model_set_views(m);
    model_share_bf16(m, src);  // the reference reads the policy's 16-bit base copies, if any
    *out = m;
    return 0;
}
