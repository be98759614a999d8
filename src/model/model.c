// The transformer: parameter table and init, training forward (per-token
// log-probs of targets, final hidden states, scalar and value heads) and the
// matching backward. GPT-2 and Llama variants share one code path; the config
// picks the norm, the position scheme and the MLP. The model only calls
// kernels (src/nn); it never loops over elements beyond trivial head dots.
#include "model/model_internal.h"
#include "model/dtype.h"
#include "model/linear.h"
#include "model/lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------ parameter table --

static void add_tensor(rlhf_model *m, int *cap, const char *name, int decay, int ndim, int64_t d0,
                       int64_t d1) {
    if (m->n_tensors == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        m->tensors = xrealloc(m->tensors, (size_t)*cap * sizeof(rlhf_tensor));
    }
    rlhf_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 0;
    t->numel = (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1);
    t->offset = m->n_params;
    t->decay = decay;
    m->n_params += t->numel;
}

// The one place where parameter names, shapes and order are decided.
static void build_table(rlhf_model *m) {
    const rlhf_config *c = &m->cfg;
    int cap = 0;
    int C = c->n_embd, HS = C / c->n_head, QKV = (c->n_head + 2 * c->n_kv_head) * HS;
    int FF = c->arch == ARCH_LLAMA ? 2 * c->d_ff : c->d_ff;
    int gpt2 = c->arch == ARCH_GPT2;
    char nm[64];
    add_tensor(m, &cap, "tok_emb.weight", 1, 2, c->vocab_size, C);
    if (gpt2) add_tensor(m, &cap, "pos_emb.weight", 1, 2, c->max_seq_len, C);
    for (int l = 0; l < c->n_layer; l++) {
#define T1(suffix, decay, n) (snprintf(nm, sizeof nm, "layers.%d." suffix, l), add_tensor(m, &cap, nm, decay, 1, n, 0))
#define T2(suffix, decay, a, b) (snprintf(nm, sizeof nm, "layers.%d." suffix, l), add_tensor(m, &cap, nm, decay, 2, a, b))
        T1("attn_norm.weight", 0, C);
        if (gpt2) T1("attn_norm.bias", 0, C);
        T2("attn.qkv.weight", 1, QKV, C);
        if (gpt2 || c->qkv_bias) T1("attn.qkv.bias", 0, QKV);
        T2("attn.out.weight", 1, C, C);
        if (gpt2) T1("attn.out.bias", 0, C);
        T1("mlp_norm.weight", 0, C);
        if (gpt2) T1("mlp_norm.bias", 0, C);
        T2("mlp.up.weight", 1, FF, C);
        if (gpt2) T1("mlp.up.bias", 0, FF);
        T2("mlp.down.weight", 1, C, c->d_ff);
        if (gpt2) T1("mlp.down.bias", 0, C);
#undef T1
#undef T2
    }
    add_tensor(m, &cap, "final_norm.weight", 0, 1, C, 0);
    if (gpt2) add_tensor(m, &cap, "final_norm.bias", 0, 1, C, 0);
    if (!c->tied) add_tensor(m, &cap, "lm_head.weight", 1, 2, c->vocab_size, C);
    if (c->score_head) {
        add_tensor(m, &cap, "score_head.weight", 0, 2, c->score_head, C);
        add_tensor(m, &cap, "score_head.bias", 0, 1, c->score_head, 0);
    }
    if (c->value_head) {
        add_tensor(m, &cap, "value_head.weight", 0, 2, 1, C);
        add_tensor(m, &cap, "value_head.bias", 0, 1, 1, 0);
    }
}

const rlhf_tensor *model_find_tensor(const rlhf_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

// base + offset, where base holds the floats from `skip` on (grads hold only
// the trainable tail): NULL for a tensor before skip (frozen) or not in the table
static float *view_from(const rlhf_model *m, float *base, size_t skip, const char *fmt, int l) {
    char nm[64];
    snprintf(nm, sizeof nm, fmt, l);
    const rlhf_tensor *t = model_find_tensor(m, nm);
    return t && t->offset >= skip ? base + (t->offset - skip) : NULL;
}

static void set_views_from(const rlhf_model *m, float *base, size_t skip, rlhf_views *v);

static void set_views(const rlhf_model *m, float *base, rlhf_views *v) {
    set_views_from(m, base, 0, v);
}

#define view(m, base, fmt, l) view_from(m, base, skip, fmt, l)

static void set_views_from(const rlhf_model *m, float *base, size_t skip, rlhf_views *v) {
    if (!v->layers) v->layers = xcalloc(m->cfg.n_layer, sizeof(rlhf_layer));
    v->wte = view(m, base, "tok_emb.weight", 0);
    v->wpe = view(m, base, "pos_emb.weight", 0);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        rlhf_layer *L = &v->layers[l];
        L->attn_norm_w = view(m, base, "layers.%d.attn_norm.weight", l);
        L->attn_norm_b = view(m, base, "layers.%d.attn_norm.bias", l);
        L->qkv_w = view(m, base, "layers.%d.attn.qkv.weight", l);
        L->qkv_b = view(m, base, "layers.%d.attn.qkv.bias", l);
        L->attn_out_w = view(m, base, "layers.%d.attn.out.weight", l);
        L->attn_out_b = view(m, base, "layers.%d.attn.out.bias", l);
        L->mlp_norm_w = view(m, base, "layers.%d.mlp_norm.weight", l);
        L->mlp_norm_b = view(m, base, "layers.%d.mlp_norm.bias", l);
        L->mlp_up_w = view(m, base, "layers.%d.mlp.up.weight", l);
        L->mlp_up_b = view(m, base, "layers.%d.mlp.up.bias", l);
        L->mlp_down_w = view(m, base, "layers.%d.mlp.down.weight", l);
        L->mlp_down_b = view(m, base, "layers.%d.mlp.down.bias", l);
    }
    v->final_norm_w = view(m, base, "final_norm.weight", 0);
    v->final_norm_b = view(m, base, "final_norm.bias", 0);
    v->lm_head = m->cfg.tied ? v->wte : view(m, base, "lm_head.weight", 0);
    v->score_w = view(m, base, "score_head.weight", 0);
    v->score_b = view(m, base, "score_head.bias", 0);
    v->value_w = view(m, base, "value_head.weight", 0);
    v->value_b = view(m, base, "value_head.bias", 0);
}

#undef view

void model_set_views(rlhf_model *m) {
    set_views(m, m->params, &m->w);
    if (m->grads) set_views_from(m, m->grads, m->n_frozen, &m->g);
}

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

// GPT-2-style init. Each tensor draws from its own stream (seed, name), so adding
// a head or a layer does not change the initial values of the others.
static void init_params(rlhf_model *m, uint64_t seed) {
    float resid_std = 0.02f / sqrtf(2.0f * m->cfg.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        if (t->ndim == 1) {  // norms 1, biases 0
            float v = (strstr(t->name, "norm.weight") != NULL) ? 1.0f : 0.0f;
            for (size_t j = 0; j < t->numel; j++) p[j] = v;
            continue;
        }
        float std = 0.02f;
        if (ends_with(t->name, "attn.out.weight") || ends_with(t->name, "mlp.down.weight"))
            std = resid_std;
        rlhf_rng r;
        rng_seed(&r, seed ^ hash_name(t->name));
        for (size_t j = 0; j < t->numel; j++) p[j] = std * rng_normal(&r);
    }
}

static void model_alloc_params(rlhf_model *m) {
    build_table(m);
    m->params = xalloc_aligned(m->n_params * sizeof(float));
    set_views(m, m->params, &m->w);
    if (m->cfg.arch == ARCH_LLAMA) {
        int HS = m->cfg.n_embd / m->cfg.n_head;
        m->rope_cos = xmalloc((size_t)m->cfg.max_seq_len * (HS / 2) * sizeof(float));
        m->rope_sin = xmalloc((size_t)m->cfg.max_seq_len * (HS / 2) * sizeof(float));
        rope_table(m->rope_cos, m->rope_sin, m->cfg.max_seq_len, HS, m->cfg.rope_theta);
    }
}

int model_create_empty(rlhf_model **out, const rlhf_config *cfg, rlhf_err *err) {
    if (config_validate(cfg, err)) return -1;
    rlhf_model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    model_alloc_params(m);
    *out = m;
    return 0;
}

int model_create(rlhf_model **out, const rlhf_config *cfg, uint64_t seed, rlhf_err *err) {
    if (model_create_empty(out, cfg, err)) return -1;
    init_params(*out, seed);
    return 0;
}

static void free_act_views(void *p);

void model_free(rlhf_model *m) {
    if (!m) return;
    lora_free(m);
    dtype_discard(m);  // the buffer goes next: no need to widen released fp32 back
    free(m->tensors);
    if (!m->params_borrowed) free(m->params);
    free(m->grads);
    free(m->w.layers);
    free(m->g.layers);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->acts);
    free_act_views(m->act_views);
    free(m->bwd);
    free(m);
}

void model_alloc_grads(rlhf_model *m) {
    if (m->grads) return;
    size_t n = model_n_trainable(m);
    m->grads = xalloc_aligned((n ? n : 1) * sizeof(float));
    set_views_from(m, m->grads, m->n_frozen, &m->g);
}

void model_zero_grad(rlhf_model *m) {
    model_alloc_grads(m);
    memset(m->grads, 0, model_n_trainable(m) * sizeof(float));
}

size_t model_n_trainable(const rlhf_model *m) { return m->n_params - m->n_frozen; }

// ------------------------------------------------------------------ activations --

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;  // (N,C), (N), (N)
    float *qkv;                        // (N,QKV) after RoPE
    float *att;                        // (B,NH,T,T)
    float *atty;                       // (N,C)
    float *resid_mid;                  // (N,C)
    float *ln2, *ln2_mean, *ln2_rstd;  // (N,C), (N), (N)
    float *fch;                        // (N,FF) MLP pre-activation
    float *fch_act;                    // (N,F)
    float *resid_out;                  // (N,C)
} layer_acts;

typedef struct {
    float *encoded;                    // (N,C)
    layer_acts *layers;
    float *lnf, *lnf_mean, *lnf_rstd;  // (N,C), (N), (N)
    float *logp, *lse, *entropy;       // (N)
    float *score;                      // (B, K) K = score_head outputs
    float *values;                     // (N)
    float *tmp;                        // (N,C) projection output before the residual add
    float *logits_scratch;             // (LOGP_CHUNK, V)
    int *tokens, *targets, *pos, *last; // (N), (N), (N), (B)
    int *seg;                          // (N) segment of each token (-1 padding) when seg_on
    int seg_on;                        // the batch is packed (rlhf_batch.segment given)
    int embeds_on;                     // the forward read m->input_embeds, not the tokens
    uint8_t *mask;                     // (N)
    int ckpt;                          // laid out for activation checkpointing (see layout_acts)
    int scratch_layer;                 // ckpt: the layer whose activations the scratch holds (-1 none)
    float inv_t;                       // 1 / the forward's logit_temperature
    float embd_drop, resid_drop;       // the forward's dropout (rlhf_model), its seed
    float attn_drop;                   // ... on the attention probabilities
    uint64_t drop_seed, drop_base;     // drop_base: the first token's global index times C
    uint64_t drop_token0;              // the first token's global index (the attention masks)
    int no_wpe;                        // the forward added no learned positions
} acts_view;

typedef struct {
    int B, T;
} shape;

// Lays out (or, with base == NULL, measures) the activation buffer for B x T.
// With ckpt (activation checkpointing) every layer keeps only its output
// resid_out (the next layer's input); the rest of layer_acts is ONE scratch set
// shared by all layers (layer 0's), which holds the activations of one layer at
// a time: the last one after the forward, and in the backward the layer being
// differentiated, recomputed from its saved input just before.
static size_t layout_acts(const rlhf_config *c, int B, int T, int ckpt, float *base,
                          acts_view *a) {
    size_t N = (size_t)B * T, C = c->n_embd, HS = C / c->n_head;
    size_t QKV = (c->n_head + 2 * c->n_kv_head) * HS;
    size_t F = c->d_ff, FF = c->arch == ARCH_LLAMA ? 2 * F : F;
    size_t off = 0;
#define TAKE(ptr, n)                                                                               \
    do {                                                                                           \
        if (base) (ptr) = base + off;                                                              \
        off += ((n) + 15) / 16 * 16;                                                               \
    } while (0)
    TAKE(a->encoded, N * C);
    for (int l = 0; l < c->n_layer; l++) {
        layer_acts dummy, *L = base ? &a->layers[l] : &dummy;
        if (ckpt && l > 0) {
            if (base) *L = a->layers[0];  // the shared scratch ...
            TAKE(L->resid_out, N * C);    // ... and an output of its own
            continue;
        }
        TAKE(L->ln1, N * C);
        TAKE(L->ln1_mean, N);
        TAKE(L->ln1_rstd, N);
        TAKE(L->qkv, N * QKV);
        TAKE(L->att, (size_t)B * c->n_head * T * T);
        TAKE(L->atty, N * C);
        TAKE(L->resid_mid, N * C);
        TAKE(L->ln2, N * C);
        TAKE(L->ln2_mean, N);
        TAKE(L->ln2_rstd, N);
        TAKE(L->fch, N * FF);
        TAKE(L->fch_act, N * F);
        TAKE(L->resid_out, N * C);
    }
    TAKE(a->lnf, N * C);
    TAKE(a->lnf_mean, N);
    TAKE(a->lnf_rstd, N);
    TAKE(a->logp, N);
    TAKE(a->lse, N);
    TAKE(a->entropy, N);
    TAKE(a->score, (size_t)B * (c->score_head > 0 ? c->score_head : 1));
    TAKE(a->values, N);
    TAKE(a->tmp, N * C);
    TAKE(a->logits_scratch, (size_t)LOGP_CHUNK * c->vocab_size);
    // integer arrays share the float buffer (same size, 4 bytes)
    float *ip;
    TAKE(ip, N);
    if (base) a->tokens = (int *)ip;
    TAKE(ip, N);
    if (base) a->targets = (int *)ip;
    TAKE(ip, N);
    if (base) a->pos = (int *)ip;
    TAKE(ip, B);
    if (base) a->last = (int *)ip;
    TAKE(ip, N);
    if (base) a->seg = (int *)ip;
    TAKE(ip, (N + 3) / 4);
    if (base) a->mask = (uint8_t *)ip;
#undef TAKE
    return off;
}

// Backward scratch: gradients of activations, reused layer by layer.
typedef struct {
    float *dx;    // (N,C) gradient of the residual stream
    float *dln;   // (N,C) gradient of a norm output
    float *dbig;  // (N, max(QKV, FF))
    float *dact;  // (N, max(F, C))
    float *datt;  // (B,NH,T,T)
} bwd_view;

static size_t layout_bwd(const rlhf_config *c, int B, int T, float *base, bwd_view *v) {
    size_t N = (size_t)B * T, C = c->n_embd, HS = C / c->n_head;
    size_t QKV = (c->n_head + 2 * c->n_kv_head) * HS;
    size_t F = c->d_ff, FF = c->arch == ARCH_LLAMA ? 2 * F : F;
    size_t big = QKV > FF ? QKV : FF;
    size_t sizes[5] = {N * C, N * C, N * big, N * (F > C ? F : C), (size_t)B * c->n_head * T * T};
    float **ptrs[5] = {&v->dx, &v->dln, &v->dbig, &v->dact, &v->datt};
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        if (base) *ptrs[i] = base + off;
        off += (sizes[i] + 15) / 16 * 16;
    }
    return off;
}

static void free_act_views(void *p) {
    if (p) free(((acts_view *)p)->layers);
    free(p);
}

size_t model_forward_activation_bytes(const rlhf_config *c, int B, int T, int grad_ckpt) {
    acts_view a;
    return layout_acts(c, B, T, grad_ckpt != 0, NULL, &a) * sizeof(float);
}

size_t model_activation_bytes_ckpt(const rlhf_config *c, int B, int T, int grad_ckpt) {
    bwd_view d;
    return model_forward_activation_bytes(c, B, T, grad_ckpt) +
           layout_bwd(c, B, T, NULL, &d) * sizeof(float);
}

size_t model_activation_bytes(const rlhf_config *c, int B, int T) {
    return model_activation_bytes_ckpt(c, B, T, 0);
}

static void ensure_acts(rlhf_model *m, int B, int T) {
    int ckpt = m->grad_ckpt != 0;
    size_t need = layout_acts(&m->cfg, B, T, ckpt, NULL, &(acts_view){0});
    if (need > m->act_capacity) {
        free(m->acts);
        m->acts = xalloc_aligned(need * sizeof(float));
        m->act_capacity = need;
    }
    if (!m->act_views) {
        acts_view *a = xcalloc(1, sizeof *a);
        a->layers = NULL;
        m->act_views = a;
    }
    acts_view *a = m->act_views;
    if (!a->layers) a->layers = xcalloc(m->cfg.n_layer, sizeof(layer_acts));
    layer_acts *keep = a->layers;
    memset(a, 0, sizeof *a);
    a->layers = keep;
    a->ckpt = ckpt;
    a->scratch_layer = -1;
    layout_acts(&m->cfg, B, T, ckpt, m->acts, a);
    m->B = B;
    m->T = T;
    m->hidden = a->lnf;
    m->logp = a->logp;
    m->entropy = a->entropy;
    m->score = m->cfg.score_head ? a->score : NULL;
    m->values = m->cfg.value_head ? a->values : NULL;
}

// --------------------------------------------------------------------- forward --

static void norm_forward(const rlhf_config *c, float *out, float *mean, float *rstd,
                         const float *inp, const float *w, const float *b, int N) {
    if (c->arch == ARCH_GPT2)
        layernorm_forward(out, mean, rstd, inp, w, b, N, c->n_embd, c->norm_eps);
    else
        rmsnorm_forward(out, rstd, inp, w, N, c->n_embd, c->norm_eps);
}

static void norm_backward(const rlhf_config *c, float *dinp, float *dw, float *db,
                          const float *dout, const float *inp, const float *w, const float *mean,
                          const float *rstd, int N) {
    if (c->arch == ARCH_GPT2)
        layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, c->n_embd);
    else
        rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, c->n_embd);
}

// the dropout mask key of layer l's site (0 attention output, 1 MLP output; the
// embedding output is layer -1)
static uint64_t drop_key(const acts_view *a, int l, int site) {
    return dropout_key(a->drop_seed, (uint64_t)(2 * (l + 1) + site + 1));
}

// layer l's attention-probability dropout (nn.h attn_dropout; p = 0: none). Its site
// numbers start far past drop_key's (2 L + 2 of them), so no two sites share a key.
enum { ATTN_DROP_SITE = 1 << 20 };
static attn_dropout attn_drop_of(const acts_view *a, int l) {
    return (attn_dropout){.p = a->attn_drop,
                          .key = dropout_key(a->drop_seed, (uint64_t)ATTN_DROP_SITE + (uint64_t)l),
                          .token0 = a->drop_token0};
}

// One transformer block, shared with nothing else: inp (N,C) -> L->resid_out (N,C).
static void block_forward(rlhf_model *m, acts_view *a, int l, const float *inp, int B, int T) {
    const rlhf_config *c = &m->cfg;
    const rlhf_layer *W = &m->w.layers[l];
    layer_acts *L = &a->layers[l];
    int N = B * T, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, HS = C / NH;
    int QKV = (NH + 2 * NKV) * HS, F = c->d_ff;

    norm_forward(c, L->ln1, L->ln1_mean, L->ln1_rstd, inp, W->attn_norm_w, W->attn_norm_b, N);
    model_linear_forward(m, l, LIN_QKV, L->qkv, L->ln1, N, 1);
    if (c->arch == ARCH_LLAMA) {
        rope_forward(L->qkv, m->rope_cos, m->rope_sin, a->pos, N, NH, HS, QKV);
        rope_forward(L->qkv + NH * HS, m->rope_cos, m->rope_sin, a->pos, N, NKV, HS, QKV);
    }
    attn_dropout ad = attn_drop_of(a, l);
    attention_forward_drop(L->atty, L->att, L->qkv, a->mask, a->seg_on ? a->seg : NULL, B, T, NH,
                           NKV, HS, &ad);
    model_linear_forward(m, l, LIN_ATTN_OUT, a->tmp, L->atty, N, 1);
    if (a->resid_drop > 0)
        dropout_apply(a->tmp, a->tmp, (long)N * C, drop_key(a, l, 0), a->resid_drop, a->drop_base);
    residual_forward(L->resid_mid, inp, a->tmp, (long)N * C);
    norm_forward(c, L->ln2, L->ln2_mean, L->ln2_rstd, L->resid_mid, W->mlp_norm_w, W->mlp_norm_b,
                 N);
    model_linear_forward(m, l, LIN_MLP_UP, L->fch, L->ln2, N, 1);
    if (c->arch == ARCH_LLAMA)
        swiglu_forward(L->fch_act, L->fch, N, F);
    else
        gelu_forward(L->fch_act, L->fch, (long)N * F);
    model_linear_forward(m, l, LIN_MLP_DOWN, a->tmp, L->fch_act, N, 1);
    if (a->resid_drop > 0)
        dropout_apply(a->tmp, a->tmp, (long)N * C, drop_key(a, l, 1), a->resid_drop, a->drop_base);
    residual_forward(L->resid_out, L->resid_mid, a->tmp, (long)N * C);
}

// the batch's refusals: its shape, token and target ids in the vocabulary (on real
// tokens), packed rows' segment ids never decreasing
static int check_batch(const rlhf_model *m, const rlhf_batch *b, rlhf_err *err) {
    const rlhf_config *c = &m->cfg;
    int B = b->B, T = b->T, N = B * T, V = c->vocab_size;
    if (B <= 0 || T <= 0) return rlhf_fail(err, "empty batch (B=%d, T=%d)", B, T);
    if (T > c->max_seq_len)
        return rlhf_fail(err, "sequence length %d exceeds the model's max_seq_len %d", T,
                         c->max_seq_len);
    const int embeds = m->input_embeds != NULL;
    if (!embeds && !b->tokens) return rlhf_fail(err, "batch without tokens (and no input_embeds)");
    for (int i = 0; i < N; i++) {
        int real = b->mask ? b->mask[i] != 0 : 1;
        if (real && !embeds && (b->tokens[i] < 0 || b->tokens[i] >= V))
            return rlhf_fail(err, "token id %d at batch row %d position %d is outside the "
                                  "vocabulary (size %d)",
                             b->tokens[i], i / T, i % T, V);
        if (real && b->targets && b->targets[i] >= V)
            return rlhf_fail(err, "target id %d at batch row %d position %d is outside the "
                                  "vocabulary (size %d)",
                             b->targets[i], i / T, i % T, V);
    }
    if (!b->segment) return 0;
    for (int r = 0; r < B; r++) {  // packed rows: documents are runs of one id that only grows
        int prev = -1;
        for (int t = 0; t < T; t++) {
            int i = r * T + t;
            if (b->mask && !b->mask[i]) continue;
            if (b->segment[i] < 0 || b->segment[i] < prev)
                return rlhf_fail(err, "segment id %d at batch row %d position %d: ids must "
                                      "be >= 0 and never decrease along a row's real tokens "
                                      "(each document one contiguous run)",
                                 b->segment[i], r, t);
            prev = b->segment[i];
        }
    }
    return 0;
}

int model_forward(rlhf_model *m, const rlhf_batch *b, rlhf_err *err) {
    if (check_batch(m, b, err)) return -1;
    const rlhf_config *c = &m->cfg;
    int B = b->B, T = b->T, N = B * T, C = c->n_embd, V = c->vocab_size;
    const int embeds = m->input_embeds != NULL;
    if (m->lora) lora_forward_begin(m);  // this forward's LoRA dropout masks
    ensure_acts(m, B, T);
    acts_view *a = m->act_views;
    // internal copies: padding gets token 0, no target; positions count real tokens (of the
    // token's own document in packed rows: they restart at 0 where the segment id changes)
    a->seg_on = b->segment != NULL;
    a->embeds_on = embeds;
    a->embd_drop = m->embd_dropout > 0 ? m->embd_dropout : 0.0f;
    a->resid_drop = m->resid_dropout > 0 ? m->resid_dropout : 0.0f;
    a->attn_drop = m->attn_dropout > 0 ? m->attn_dropout : 0.0f;
    a->drop_seed = m->dropout_seed;
    a->drop_base = m->dropout_token0 * (uint64_t)C;
    a->drop_token0 = m->dropout_token0;
    a->no_wpe = m->no_learned_positions != 0;
    const float *wpe = a->no_wpe ? NULL : m->w.wpe;
    for (int r = 0; r < B; r++) {
        int p = 0, cur = -1;
        a->last[r] = -1;
        for (int t = 0; t < T; t++) {
            int i = r * T + t;
            int real = b->mask ? b->mask[i] != 0 : 1;
            a->mask[i] = (uint8_t)real;
            a->tokens[i] = real && !embeds ? b->tokens[i] : 0;
            a->targets[i] = (real && b->targets) ? b->targets[i] : -1;
            if (a->seg_on) {
                a->seg[i] = real ? b->segment[i] : -1;
                if (real && b->segment[i] != cur) cur = b->segment[i], p = 0;
            }
            a->pos[i] = m->positions_padded ? t : real ? p++ : 0;
            if (real) a->last[r] = t;
        }
    }
    if (embeds) {  // the caller's vectors in place of the token embedding (positions still added)
        for (int i = 0; i < N; i++) {
            float *o = a->encoded + (size_t)i * C;
            const float *e = m->input_embeds + (size_t)i * C;
            const float *p = wpe ? wpe + (size_t)a->pos[i] * C : NULL;
            for (int k = 0; k < C; k++) o[k] = e[k] + (p ? p[k] : 0.0f);
        }
    } else {
        embedding_forward(a->encoded, a->tokens, a->pos, m->w.wte, wpe, N, C);
    }
    if (a->embd_drop > 0)
        dropout_apply(a->encoded, a->encoded, (long)N * C, drop_key(a, -1, 0), a->embd_drop,
                      a->drop_base);
    const float *x = a->encoded;
    for (int l = 0; l < c->n_layer; l++) {
        block_forward(m, a, l, x, B, T);
        x = a->layers[l].resid_out;
    }
    if (a->ckpt) a->scratch_layer = c->n_layer - 1;
    norm_forward(c, a->lnf, a->lnf_mean, a->lnf_rstd, x, m->w.final_norm_w, m->w.final_norm_b, N);
    a->inv_t = m->logit_temperature > 0 && m->logit_temperature != 1.0f
                   ? 1.0f / m->logit_temperature : 1.0f;
    // a frozen head with a bf16 copy (model_to_bf16, dtype.h) is read from the copy
    logprob_forward_t(a->logp, a->lse, m->want_entropy ? a->entropy : NULL, a->lnf, m->w.lm_head,
                      dtype_lm_head(m), a->targets, N, C, V, a->logits_scratch, a->inv_t);
    if (!m->want_entropy) memset(a->entropy, 0, (size_t)N * sizeof(float));
    for (int r = 0; r < B; r++) {
        for (int k = 0; k < c->score_head; k++) {
            float s = m->w.score_b[k];
            const float *w = m->w.score_w + (size_t)k * C;
            if (a->last[r] >= 0) {
                const float *h = a->lnf + ((size_t)r * T + a->last[r]) * C;
                for (int i = 0; i < C; i++) s += h[i] * w[i];
            }
            a->score[(size_t)r * c->score_head + k] = s;
        }
    }
    if (c->value_head) {
        for (int i = 0; i < N; i++) {
            const float *h = a->lnf + (size_t)i * C;
            float s = m->w.value_b[0];
            for (int j = 0; j < C; j++) s += h[j] * m->w.value_w[j];
            a->values[i] = s;
        }
    }
    return 0;
}

void model_logits(rlhf_model *m, float *out) {
    acts_view *a = m->act_views;
    int N = m->B * m->T;
    gemm(0, 1, N, m->cfg.vocab_size, m->cfg.n_embd, 1.0f, a->lnf, m->cfg.n_embd, m->w.lm_head,
         m->cfg.n_embd, 0.0f, out, m->cfg.vocab_size);
}

// -------------------------------------------------------------------- backward --

void model_backward(rlhf_model *m, const float *dlogp, const float *dhidden, const float *dscore,
                    const float *dvalues) {
    model_backward_entropy(m, dlogp, NULL, dhidden, dscore, dvalues);
}

void model_backward_entropy(rlhf_model *m, const float *dlogp, const float *dentropy,
                            const float *dhidden, const float *dscore, const float *dvalues) {
    const rlhf_config *c = &m->cfg;
    acts_view *a = m->act_views;
    RLHF_ASSERT(a != NULL);
    model_alloc_grads(m);
    int B = m->B, T = m->T, N = B * T, C = c->n_embd, V = c->vocab_size;
    int NH = c->n_head, NKV = c->n_kv_head, HS = C / NH;
    int QKV = (NH + 2 * NKV) * HS, F = c->d_ff, FF = c->arch == ARCH_LLAMA ? 2 * F : F;

    bwd_view bv;
    size_t need = layout_bwd(c, B, T, NULL, &bv);
    if (need > m->bwd_capacity) {
        free(m->bwd);
        m->bwd = xalloc_aligned(need * sizeof(float));
        m->bwd_capacity = need;
    }
    layout_bwd(c, B, T, m->bwd, &bv);
    float *dx = bv.dx, *dln = bv.dln, *dbig = bv.dbig, *dact = bv.dact, *datt = bv.datt;

    // gradient w.r.t. the final hidden states, from every head that was asked for
    float *dlnf = dln;
    memset(dlnf, 0, (size_t)N * C * sizeof(float));
    if (dhidden)
        for (int i = 0; i < N; i++)
            if (a->mask[i])
                for (int j = 0; j < C; j++) dlnf[(size_t)i * C + j] += dhidden[(size_t)i * C + j];
    if (dlogp || dentropy) {
        // padding rows and rows without a target get no gradient
        float *dl = a->tmp;  // reuse (N) of the (N,C) scratch
        float *de = dentropy ? xmalloc((size_t)N * sizeof(float)) : NULL;
        for (int i = 0; i < N; i++) dl[i] = a->targets[i] >= 0 && dlogp ? dlogp[i] : 0.0f;
        for (int i = 0; i < N && de; i++) de[i] = a->targets[i] >= 0 ? dentropy[i] : 0.0f;
        logprob_backward_t(dlnf, m->g.lm_head, dl, de, a->lnf, m->w.lm_head, dtype_lm_head(m),
                           a->targets, a->lse, N, C, V, a->logits_scratch, a->inv_t);
        free(de);
    }
    if (dscore && c->score_head) {
        int K = c->score_head;
        for (int r = 0; r < B; r++) {
            if (a->last[r] < 0) continue;
            const float *h = a->lnf + ((size_t)r * T + a->last[r]) * C;
            float *dh = dlnf + ((size_t)r * T + a->last[r]) * C;
            for (int k = 0; k < K; k++) {
                float d = dscore[(size_t)r * K + k];
                const float *w = m->w.score_w + (size_t)k * C;
                float *gw = m->g.score_w + (size_t)k * C;
                for (int i = 0; i < C; i++) {
                    dh[i] += d * w[i];
                    gw[i] += d * h[i];
                }
                m->g.score_b[k] += d;
            }
        }
    }
    if (dvalues && c->value_head) {
        for (int i = 0; i < N; i++) {
            if (!a->mask[i]) continue;
            const float *h = a->lnf + (size_t)i * C;
            float *dh = dlnf + (size_t)i * C;
            float d = dvalues[i];
            for (int j = 0; j < C; j++) {
                dh[j] += d * m->w.value_w[j];
                m->g.value_w[j] += d * h[j];
            }
            m->g.value_b[0] += d;
        }
    }

    const float *x_last = c->n_layer ? a->layers[c->n_layer - 1].resid_out : a->encoded;
    memset(dx, 0, (size_t)N * C * sizeof(float));
    norm_backward(c, dx, m->g.final_norm_w, m->g.final_norm_b, dlnf, x_last, m->w.final_norm_w,
                  a->lnf_mean, a->lnf_rstd, N);

    for (int l = c->n_layer - 1; l >= 0; l--) {
        const rlhf_layer *W = &m->w.layers[l];
        rlhf_layer *G = &m->g.layers[l];
        layer_acts *L = &a->layers[l];
        const float *inp = l ? a->layers[l - 1].resid_out : a->encoded;
        if (a->ckpt && a->scratch_layer != l) {
            // checkpointing: the same kernels on the same input rebuild exactly what the
            // forward kept (resid_out is rewritten with the values it already holds)
            block_forward(m, a, l, inp, B, T);
            a->scratch_layer = l;
        }
        // dx holds d(resid_out); the residual passes it straight to resid_mid
        // through the MLP output's dropout mask (dln is free until the MLP norm)
        const float *dmlp = dx;
        if (a->resid_drop > 0)
            dropout_apply(dln, dx, (long)N * C, drop_key(a, l, 1), a->resid_drop, a->drop_base),
                dmlp = dln;
        memset(dact, 0, (size_t)N * F * sizeof(float));
        model_linear_backward(m, l, LIN_MLP_DOWN, dact, dmlp, L->fch_act, N);
        memset(dbig, 0, (size_t)N * FF * sizeof(float));
        if (c->arch == ARCH_LLAMA)
            swiglu_backward(dbig, L->fch, dact, N, F);
        else
            gelu_backward(dbig, L->fch, dact, (long)N * F);
        memset(dln, 0, (size_t)N * C * sizeof(float));
        model_linear_backward(m, l, LIN_MLP_UP, dln, dbig, L->ln2, N);
        norm_backward(c, dx, G->mlp_norm_w, G->mlp_norm_b, dln, L->resid_mid, W->mlp_norm_w,
                      L->ln2_mean, L->ln2_rstd, N);
        // dx holds d(resid_mid); the residual passes it to the block input
        const float *dattn = dx;
        if (a->resid_drop > 0)
            dropout_apply(dln, dx, (long)N * C, drop_key(a, l, 0), a->resid_drop, a->drop_base),
                dattn = dln;
        memset(dact, 0, (size_t)N * C * sizeof(float));
        model_linear_backward(m, l, LIN_ATTN_OUT, dact, dattn, L->atty, N);
        memset(dbig, 0, (size_t)N * QKV * sizeof(float));
        attn_dropout ad = attn_drop_of(a, l);  // the forward's masks, drawn again
        attention_backward_drop(dbig, datt, dact, L->qkv, L->att, B, T, NH, NKV, HS, &ad);
        if (c->arch == ARCH_LLAMA) {
            rope_backward(dbig, m->rope_cos, m->rope_sin, a->pos, N, NH, HS, QKV);
            rope_backward(dbig + NH * HS, m->rope_cos, m->rope_sin, a->pos, N, NKV, HS, QKV);
        }
        memset(dln, 0, (size_t)N * C * sizeof(float));
        model_linear_backward(m, l, LIN_QKV, dln, dbig, L->ln1, N);
        norm_backward(c, dx, G->attn_norm_w, G->attn_norm_b, dln, inp, W->attn_norm_w,
                      L->ln1_mean, L->ln1_rstd, N);
    }
    // padding rows carry no gradient into the embeddings
    for (int i = 0; i < N; i++)
        if (!a->mask[i]) memset(dx + (size_t)i * C, 0, (size_t)C * sizeof(float));
    if (a->embd_drop > 0)
        dropout_apply(dx, dx, (long)N * C, drop_key(a, -1, 0), a->embd_drop, a->drop_base);
    if (a->embeds_on && m->input_embeds_grad)
        memcpy(m->input_embeds_grad, dx, (size_t)N * C * sizeof(float));
    embedding_backward(a->embeds_on ? NULL : m->g.wte, a->no_wpe ? NULL : m->g.wpe, dx, a->tokens,
                       a->pos, N, C);
}

// ------------------------------------------------------------------- heads --

int model_with_heads(const rlhf_model *src, int score_head, int value_head, uint64_t seed,
                     rlhf_model **out, rlhf_err *err) {
    rlhf_config c = src->cfg;
    c.score_head = score_head;
    c.value_head = value_head;
    rlhf_model *m;
    if (model_create(&m, &c, seed, err)) return -1;  // fresh heads; trunk overwritten below
    memcpy(m->origin, src->origin, sizeof m->origin);  // where the trunk came from
    m->origin_seed = src->origin_seed;
    m->grad_ckpt = src->grad_ckpt;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        const rlhf_tensor *s = model_find_tensor(src, t->name);
        if (s && s->numel == t->numel)
            memcpy(m->params + t->offset, src->params + s->offset, t->numel * sizeof(float));
    }
    *out = m;
    return 0;
}
