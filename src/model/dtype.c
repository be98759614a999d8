// model/dtype: see dtype.h. One bf16 buffer per model (or shared between a
// policy and the reference model that borrows its parameters), with a pointer per
// (layer, site) into it; NULL where a matrix has no copy (it trains).
#include "model/dtype.h"

#include <stdlib.h>

#include "model/model_internal.h"

typedef struct {
    int refs;           // models pointing at this (model_share_bf16)
    uint16_t *buf;      // every copy, one after another
    size_t n;           // bf16 entries in buf
    uint16_t **site;    // (n_layer, LIN_N): the copy of layer l's site s, or NULL
    uint16_t *lm_head;  // (V, C) or NULL
} w16_set;

static void release(void *p) {
    w16_set *w = p;
    if (!w || --w->refs > 0) return;
    free(w->buf);
    free(w->site);
    free(w);
}

void dtype_free(rlhf_model *m) {
    release(m->w16);
    m->w16 = NULL;
}

// all = 1: every matrix; else only those entirely below n_frozen
static int build(rlhf_model *m, int all, rlhf_err *err) {
    const rlhf_config *c = &m->cfg;
    int L = c->n_layer;
    size_t lm_n = (size_t)c->vocab_size * c->n_embd;
    // which matrices, and how many entries
    size_t total = 0;
    int nsel = 0;
    char *sel = xcalloc((size_t)L * LIN_N + 1, 1);
    for (int l = 0; l < L; l++)
        for (int s = 0; s < LIN_N; s++) {
            int in, o;
            lin_dims(c, (lin_site)s, &in, &o);
            const float *w = lin_weight(m, l, (lin_site)s, NULL);
            size_t off = (size_t)(w - m->params), n = (size_t)in * o;
            if (all || off + n <= m->n_frozen) {
                sel[l * LIN_N + s] = 1, total += n, nsel++;
            }
        }
    const float *lm = m->w.lm_head;
    int lm_sel = lm && (all || (size_t)(lm - m->params) + lm_n <= m->n_frozen);
    if (lm_sel) total += lm_n;
    if (!nsel) {
        free(sel);
        return rlhf_fail(err, all ? "the model has no block matrices to store in bf16"
                                  : "bf16 weights need frozen matrices (n_frozen = %zu covers "
                                    "no block matrix): attach LoRA adapters first",
                         m->n_frozen);
    }
    w16_set *w = xcalloc(1, sizeof *w);
    w->refs = 1;
    w->n = total;
    w->buf = xmalloc(total * sizeof(uint16_t));
    w->site = xcalloc((size_t)L * LIN_N, sizeof(uint16_t *));
    uint16_t *p = w->buf;
    for (int l = 0; l < L; l++)
        for (int s = 0; s < LIN_N; s++) {
            if (!sel[l * LIN_N + s]) continue;
            int in, o;
            lin_dims(c, (lin_site)s, &in, &o);
            bf16_from_f32_n(p, lin_weight(m, l, (lin_site)s, NULL), (long)in * o);
            w->site[l * LIN_N + s] = p;
            p += (size_t)in * o;
        }
    if (lm_sel) {
        bf16_from_f32_n(p, lm, (long)lm_n);
        w->lm_head = p;
    }
    free(sel);
    dtype_free(m);
    m->w16 = w;
    return 0;
}

int model_to_bf16(rlhf_model *m, rlhf_err *err) { return build(m, 0, err); }

int model_to_bf16_inference(rlhf_model *m, rlhf_err *err) { return build(m, 1, err); }

int model_has_bf16(const rlhf_model *m) { return m->w16 != NULL; }

size_t model_bf16_bytes(const rlhf_model *m) {
    const w16_set *w = m->w16;
    return w ? w->n * sizeof(uint16_t) : 0;
}

const uint16_t *dtype_lm_head(const rlhf_model *m) {
    const w16_set *w = m->w16;
    return w ? w->lm_head : NULL;
}

void model_share_bf16(rlhf_model *dst, const rlhf_model *src) {
    w16_set *w = src->w16;
    if (!w || dst->w16 == w) return;
    dtype_free(dst);
    w->refs++;
    dst->w16 = w;
}

static const uint16_t *site_w(const rlhf_model *m, int l, lin_site s) {
    const w16_set *w = m->w16;
    return w ? w->site[l * LIN_N + s] : NULL;
}

int dtype_linear_forward(rlhf_model *m, int l, lin_site s, float *out, const float *inp,
                         const float *b, int N, int in, int o) {
    const uint16_t *w = site_w(m, l, s);
    if (!w) return 0;
    linear_forward_bf16(out, inp, w, b, N, in, o);
    return 1;
}

int dtype_linear_backward_input(rlhf_model *m, int l, lin_site s, float *dinp, const float *dout,
                                int N, int in, int o) {
    const uint16_t *w = site_w(m, l, s);
    if (!w) return 0;
    linear_backward_input_bf16(dinp, dout, w, N, in, o);
    return 1;
}
