// model/dtype: see dtype.h. One bf16 buffer per model (or shared between a
// policy and the reference model that borrows its parameters), with a pointer per
// (layer, site) into it; NULL where a matrix has no copy (it trains).
#include "model/dtype.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/model_internal.h"

typedef struct {
    int refs;           // models pointing at this (model_share_bf16)
    uint16_t *buf;      // every copy, one after another
    size_t n;           // bf16 entries in buf
    uint16_t **site;    // (n_layer, LIN_N): the copy of layer l's site s, or NULL
    uint16_t *lm_head;  // (V, C) or NULL
    // the block matrices whose fp32 pages were handed back (the LM head never is),
    // in buf's order: their float offsets in owner->params and lengths
    rlhf_model *owner;  // the model whose params they lie in; NULL once widened back
    int n_rel;
    size_t *rel_off, *rel_n;
    const uint16_t **rel_w;  // their copies
    size_t rel_floats;       // sum of rel_n
    size_t rel_bytes;        // bytes of whole pages given back (madvise succeeded)
} w16_set;

static void release(void *p) {
    w16_set *w = p;
    if (!w || --w->refs > 0) return;
    free(w->buf);
    free(w->site);
    free(w->rel_off);
    free(w->rel_n);
    free(w->rel_w);
    free(w);
}

// [lo, hi) rounded inwards to whole pages; 0 when none
static size_t inner_pages(const void *a, size_t bytes, uintptr_t *lo) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return 0;
    uintptr_t P = (uintptr_t)pg, s = (uintptr_t)a, e = s + bytes;
    uintptr_t l = (s + P - 1) / P * P, h = e / P * P;
    *lo = l;
    return h > l ? (size_t)(h - l) : 0;
}

static size_t give_back(const void *a, size_t bytes) {
    uintptr_t lo;
    size_t n = inner_pages(a, bytes, &lo);
    if (n && madvise((void *)lo, n, MADV_DONTNEED) == 0) return n;
    return 0;
}

// Writes the copies back over the released fp32 (exact bf16 values), so that the
// whole of each matrix holds its bf16-rounded value. drop: the copies go next and
// nobody else reads them: their pages are handed back as they are consumed, so the
// widening does not hold fp32 and bf16 of the whole base at once.
static void widen(rlhf_model *m, w16_set *w, int drop) {
    if (!w || w->owner != m) return;
    const uint16_t *done = w->buf;
    for (int i = 0; i < w->n_rel; i++) {
        f32_from_bf16_n(m->params + w->rel_off[i], w->rel_w[i], (long)w->rel_n[i]);
        const uint16_t *end = w->rel_w[i] + w->rel_n[i];
        if (drop && end > done) {
            give_back(done, (size_t)(end - done) * sizeof(uint16_t));
            // the next range starts at the first page not released (inner_pages rounds up)
            uintptr_t lo;
            size_t n = inner_pages(done, (size_t)(end - done) * sizeof(uint16_t), &lo);
            if (n) done = (const uint16_t *)(lo + n);
        }
    }
    w->owner = NULL;
    w->rel_bytes = 0;
}

void dtype_free(rlhf_model *m) {
    w16_set *w = m->w16;
    if (w && w->owner == m) widen(m, w, w->refs == 1);
    release(w);
    m->w16 = NULL;
}

void dtype_discard(rlhf_model *m) {
    w16_set *w = m->w16;
    if (w && w->owner == m) w->owner = NULL;  // its buffer goes next: nothing to restore
    release(w);
    m->w16 = NULL;
}

void model_bf16_restore(rlhf_model *m) { widen(m, m->w16, 0); }

// After matrix f (n floats, copied to cp) has its copy: hand back the whole pages
// inside its fp32 range, one matrix at a time so that fp32 and bf16 of the whole
// base are never resident together. Block matrices only: the LM head is never
// released (the training log-prob head and the embedding read fp32). A model that
// borrows its params releases nothing.
static void release_fp32(rlhf_model *m, w16_set *w, const float *f, size_t n, const uint16_t *cp) {
    if (m->params_borrowed) return;
    if (!w->rel_off) {
        size_t k = (size_t)m->cfg.n_layer * LIN_N + 1;
        w->rel_off = xmalloc(k * sizeof(size_t));
        w->rel_n = xmalloc(k * sizeof(size_t));
        w->rel_w = xmalloc(k * sizeof(uint16_t *));
    }
    int k = w->n_rel++;
    w->rel_off[k] = (size_t)(f - m->params), w->rel_n[k] = n, w->rel_w[k] = cp;
    w->rel_floats += n;
    w->rel_bytes += give_back(f, n * sizeof(float));
    w->owner = m;
}

// all = 1: every matrix; else only those entirely below n_frozen
static int build(rlhf_model *m, int all, rlhf_err *err) {
    const rlhf_config *c = &m->cfg;
    int L = c->n_layer;
    model_bf16_restore(m);  // redone: copy from the fp32 base, not from released pages
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
            const float *f = lin_weight(m, l, (lin_site)s, NULL);
            bf16_from_f32_n(p, f, (long)in * o);
            w->site[l * LIN_N + s] = p;
            release_fp32(m, w, f, (size_t)in * o, p);
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

size_t model_bf16_released(const rlhf_model *m) {
    const w16_set *w = m->w16;
    return w && w->owner == m ? w->rel_floats : 0;
}

size_t model_bf16_released_bytes(const rlhf_model *m) {
    const w16_set *w = m->w16;
    return w && w->owner == m ? w->rel_bytes : 0;
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
