// train/memplan: see memplan.h.
#include "train/memplan.h"

#include <string.h>

#include "model/dtype.h"
#include "model/linear.h"
#include "model/lora.h"

// A reference only runs forwards: it is counted with checkpointing's layout,
// which trainers set on it (same outputs, no recompute without a backward).
#define REF_CKPT 1

void mem_plan_from_shape(const rlhf_config *c, const mem_shape *s, int B, int T, mem_ref_kind ref,
                         mem_plan *p) {
    memset(p, 0, sizeof *p);
    double N = (double)B * T;
    // released fp32 pages are gone (the page edges kept at each matrix: negligible)
    p->weights = 4.0 * (double)(s->n_params - s->n_released) + 2.0 * (double)s->n_bf16;
    p->grads = 4.0 * (double)s->n_trainable;
    p->optimizer = 8.0 * (double)s->n_trainable;
    p->activations = (double)model_activation_bytes_ckpt(c, B, T, s->grad_ckpt) +
                     4.0 * N * (double)(s->lora_kept + s->lora_scratch);
    double ref_acts = (double)model_forward_activation_bytes(c, B, T, REF_CKPT);
    if (ref == MEM_REF_COPY) p->reference = 4.0 * (double)s->ref_params + ref_acts;
    else if (ref == MEM_REF_SHARED) p->reference = ref_acts;
    p->total = p->weights + p->grads + p->optimizer + p->activations + p->reference;
    p->grad_ckpt = s->grad_ckpt;
}

static int is_lora_tensor(const char *name) { return strstr(name, ".lora_") != NULL; }

// the floats with a bf16 copy, by dtype.c's rule: every block matrix and the LM
// head that lie entirely in the frozen part of the buffer
static size_t bf16_floats(const rlhf_model *m) {
    if (!model_has_bf16(m)) return 0;
    const rlhf_config *c = &m->cfg;
    size_t n = 0;
    for (int l = 0; l < c->n_layer; l++)
        for (int s = 0; s < LIN_N; s++) {
            int in, o;
            lin_dims(c, (lin_site)s, &in, &o);
            const float *w = lin_weight(m, l, (lin_site)s, NULL);
            size_t off = (size_t)(w - m->params), k = (size_t)in * o;
            if (off + k <= m->n_frozen) n += k;
        }
    size_t lm = (size_t)c->vocab_size * c->n_embd;
    if (m->w.lm_head && (size_t)(m->w.lm_head - m->params) + lm <= m->n_frozen) n += lm;
    return n;
}

void mem_plan_compute(const rlhf_model *m, int B, int T, mem_ref_kind ref, mem_plan *p) {
    mem_shape s = {.n_params = m->n_params, .n_trainable = model_n_trainable(m),
                   .n_bf16 = bf16_floats(m), .grad_ckpt = m->grad_ckpt != 0,
                   .n_released = model_bf16_released(m)};
    size_t widest = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        if (!is_lora_tensor(t->name)) {
            s.ref_params += t->numel;
        } else if (strstr(t->name, ".lora_A") && t->ndim == 2) {  // (r, in)
            s.lora_kept += (size_t)t->shape[0];
            if ((size_t)(t->shape[0] + t->shape[1]) > widest)
                widest = (size_t)(t->shape[0] + t->shape[1]);
        }
    }
    s.lora_scratch = widest;
    mem_plan_from_shape(&m->cfg, &s, B, T, ref, p);
}

// input width and covered output rows of an adapter of kind bit on config c
static void target_dims(const rlhf_config *c, unsigned bit, size_t *in, size_t *out) {
    size_t C = c->n_embd, HS = C / c->n_head, F = c->d_ff;
    *in = C;
    switch (bit) {
    case LORA_Q: *out = (size_t)c->n_head * HS; break;
    case LORA_K:
    case LORA_V: *out = (size_t)c->n_kv_head * HS; break;
    case LORA_QKV: *out = (size_t)(c->n_head + 2 * c->n_kv_head) * HS; break;
    case LORA_O: *out = C; break;
    case LORA_GATE:
    case LORA_UP: *out = F; break;
    default: *in = F, *out = C; break;  // LORA_DOWN
    }
}

void mem_shape_from_config(const rlhf_config *c, int lora_r, unsigned targets, int bf16,
                           int grad_ckpt, mem_shape *s) {
    memset(s, 0, sizeof *s);
    size_t n = 0;
    config_n_params(c, &n);
    s->n_params = s->ref_params = s->n_trainable = n;
    s->grad_ckpt = grad_ckpt != 0;
    if (lora_r <= 0) return;
    if (!targets) targets = c->arch == ARCH_GPT2 ? LORA_QKV : (LORA_Q | LORA_V);
    size_t r = (size_t)lora_r, adapters = 0, widest = 0;
    for (unsigned bit = 1; bit <= LORA_DOWN; bit <<= 1) {
        if (!(targets & bit)) continue;
        if (c->arch == ARCH_GPT2 && (bit & (LORA_Q | LORA_K | LORA_V | LORA_GATE))) continue;
        if (c->arch == ARCH_LLAMA && bit == LORA_QKV) continue;
        size_t in, out;
        target_dims(c, bit, &in, &out);
        adapters += r * (in + out);
        s->lora_kept += r;
        if (r + in > widest) widest = r + in;
    }
    adapters *= (size_t)c->n_layer;
    s->lora_kept *= (size_t)c->n_layer;
    s->lora_scratch = widest;
    size_t C = c->n_embd, heads = 0;
    if (c->score_head) heads += (size_t)c->score_head * (C + 1);
    if (c->value_head) heads += C + 1;
    s->n_params = n + adapters;
    s->n_trainable = adapters + heads;
    if (bf16) {
        size_t HS = C / c->n_head, F = c->d_ff;
        size_t QKV = (size_t)(c->n_head + 2 * c->n_kv_head) * HS;
        size_t FF = c->arch == ARCH_LLAMA ? 2 * F : F;
        s->n_released = (size_t)c->n_layer * (QKV * C + C * C + FF * C + C * F);
        s->n_bf16 = s->n_released + (size_t)c->vocab_size * C;
    }
}

void mem_bytes_str(double b, char *out, size_t n) {
    if (b < 1e3) snprintf(out, n, "%.0f B", b);
    else if (b < 1e6) snprintf(out, n, "%.0f kB", b / 1e3);
    else if (b < 1e9) snprintf(out, n, "%.0f MB", b / 1e6);
    else snprintf(out, n, "%.2f GB", b / 1e9);
}

void mem_plan_print(FILE *f, const char *who, const mem_plan *p, int B, int T) {
    char w[32], g[32], o[32], a[32], r[32], t[32];
    mem_bytes_str(p->weights, w, sizeof w);
    mem_bytes_str(p->grads, g, sizeof g);
    mem_bytes_str(p->optimizer, o, sizeof o);
    mem_bytes_str(p->activations, a, sizeof a);
    mem_bytes_str(p->reference, r, sizeof r);
    mem_bytes_str(p->total, t, sizeof t);
    fprintf(f,
            "%s: memory plan: weights %s, grads %s, optimizer %s, activations %s (B=%d, T=%d%s), "
            "reference %s; total %s\n",
            who, w, g, o, a, B, T, p->grad_ckpt ? ", checkpointing" : "", r, t);
}
