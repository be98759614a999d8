// ctrl/mlp: ReLU MLP ensembles over one contiguous parameter span, and AdamW
// over such a span. Every matrix product goes through src/nn (linear_forward,
// linear_backward -> gemm); the loops here are only elementwise (ReLU, its mask).
#include "ctrl/mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// width of linear layer l's input and output (l = 0 .. layers)
static int layer_in(const ctrl_mlp *m, int l) { return l == 0 ? m->in : m->hidden; }
static int layer_out(const ctrl_mlp *m, int l) { return l == m->layers ? m->out : m->hidden; }

static long member_size(const ctrl_mlp *m) { return m->n_params / m->ens; }

// offset of layer l's W within a member (b follows W)
static long layer_offset(const ctrl_mlp *m, int l) {
    long off = 0;
    for (int k = 0; k < l; k++) off += (long)layer_in(m, k) * layer_out(m, k) + layer_out(m, k);
    return off;
}

static void free_buffers(ctrl_mlp *m) {
    if (m->act)
        for (int l = 0; l < m->layers; l++) free(m->act[l]);
    free(m->dbuf0);
    free(m->dbuf1);
    free(m->input);
    free(m->dxbuf);
    m->dbuf0 = m->dbuf1 = m->input = m->dxbuf = NULL;
    if (m->act)
        for (int l = 0; l < m->layers; l++) m->act[l] = NULL;
}

// capacity for B rows (contents are not kept: forward rewrites them)
static void ensure_batch(ctrl_mlp *m, int B) {
    if (B <= m->cap_batch) return;
    free_buffers(m);
    long per = (long)m->ens * B * m->hidden;
    for (int l = 0; l < m->layers; l++) m->act[l] = xalloc_aligned(sizeof(float) * per);
    m->dbuf0 = xalloc_aligned(sizeof(float) * per);
    m->dbuf1 = xalloc_aligned(sizeof(float) * per);
    m->input = xalloc_aligned(sizeof(float) * (long)B * m->in);
    m->dxbuf = xalloc_aligned(sizeof(float) * (long)m->ens * B * m->in);
    m->cap_batch = B;
}

void ctrl_mlp_init(ctrl_mlp *m, int in, int hidden, int layers, int out, int ens, rlhf_rng *rng) {
    RLHF_ASSERT(in > 0 && hidden > 0 && layers >= 1 && out > 0 && ens >= 1);
    memset(m, 0, sizeof *m);
    m->in = in;
    m->hidden = hidden;
    m->layers = layers;
    m->out = out;
    m->ens = ens;
    long per = layer_offset(m, layers + 1);
    m->n_params = per * ens;
    m->params = xalloc_aligned(sizeof(float) * m->n_params);
    m->grads = xalloc_aligned(sizeof(float) * m->n_params);
    m->act = xcalloc((size_t)layers, sizeof(float *));
    // PyTorch's nn.Linear default (kaiming_uniform(a=sqrt 5) for W gives the same
    // bound as for b): U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Drawn in the order of
    // the span: member, layer, W row-major, then b.
    float *p = m->params;
    for (int e = 0; e < ens; e++)
        for (int l = 0; l <= layers; l++) {
            long n = (long)layer_in(m, l) * layer_out(m, l) + layer_out(m, l);
            float bound = 1.0f / sqrtf((float)layer_in(m, l));
            for (long i = 0; i < n; i++) *p++ = (2.0f * rng_uniform(rng) - 1.0f) * bound;
        }
}

void ctrl_mlp_free(ctrl_mlp *m) {
    if (!m) return;
    free_buffers(m);
    free(m->act);
    free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

void ctrl_mlp_init_last(ctrl_mlp *m, float s) {
    long off = layer_offset(m, m->layers);
    long n = (long)m->hidden * m->out + m->out;
    for (int e = 0; e < m->ens; e++) scale_inplace(ctrl_mlp_member(m, e) + off, n, s);
}

float *ctrl_mlp_member(ctrl_mlp *m, int e) { return m->params + (long)e * member_size(m); }

// members run in parallel (each gemm single-threaded inside the region) when
// there are enough of them to keep the threads busy; otherwise gemm threads
static int members_in_parallel(const ctrl_mlp *m) {
#ifdef _OPENMP
    int nt = rlhf_num_threads();
    return m->ens > 1 && nt > 1 && 2 * m->ens >= nt && !omp_in_parallel();
#else
    (void)m;
    return 0;
#endif
}

static void forward_member(ctrl_mlp *m, int e, int B, float *y) {
    const long hsz = (long)B * m->hidden;
    const float *pe = m->params + e * member_size(m);
    const float *h = m->input;
    for (int l = 0; l <= m->layers; l++) {
        int ci = layer_in(m, l), co = layer_out(m, l);
        const float *W = pe + layer_offset(m, l), *b = W + (long)ci * co;
        float *o = l == m->layers ? y + (long)e * B * m->out : m->act[l] + e * hsz;
        linear_forward(o, h, W, b, B, ci, co);
        if (l < m->layers)
            for (long i = 0; i < hsz; i++) o[i] = o[i] > 0.0f ? o[i] : 0.0f;
        h = o;
    }
}

void ctrl_mlp_forward(ctrl_mlp *m, const float *x, int B, float *y) {
    RLHF_ASSERT(B >= 1);
    ensure_batch(m, B);
    memcpy(m->input, x, sizeof(float) * (size_t)B * m->in);
    m->last_batch = B;
#pragma omp parallel for schedule(static) if (members_in_parallel(m))
    for (int e = 0; e < m->ens; e++) forward_member(m, e, B, y);
}

// member e: dy -> its param grads (when param_grads) and dxe = its dL/dx (when dxe)
static void backward_member(ctrl_mlp *m, int e, const float *dy, float *dxe, int param_grads) {
    const int B = m->last_batch;
    const long per = member_size(m), hsz = (long)B * m->hidden;
    const float *pe = m->params + e * per;
    float *ge = m->grads + e * per;
    const float *dout = dy + (long)e * B * m->out;  // gradient of layer l's output
    float *bufs[2] = {m->dbuf0 + e * hsz, m->dbuf1 + e * hsz};
    for (int l = m->layers; l >= 0; l--) {
        int ci = layer_in(m, l), co = layer_out(m, l);
        long off = layer_offset(m, l);
        const float *W = pe + off;
        float *dW = param_grads ? ge + off : NULL, *db = param_grads ? ge + off + (long)ci * co : NULL;
        const float *inp = l == 0 ? m->input : m->act[l - 1] + e * hsz;
        if (l == 0) {
            if (dxe) gemm(0, 0, B, ci, co, 1.0f, dout, co, W, ci, 0.0f, dxe, ci);
            if (param_grads) linear_backward(NULL, dW, db, dout, inp, W, B, ci, co);
            break;
        }
        // overwritten (beta 0), so no clearing pass; then the parameter grads
        float *dinp = bufs[l & 1];
        gemm(0, 0, B, ci, co, 1.0f, dout, co, W, ci, 0.0f, dinp, ci);
        if (param_grads) linear_backward(NULL, dW, db, dout, inp, W, B, ci, co);
        // through the ReLU of hidden layer l-1: act > 0 where the pre-activation was
        const float *a = m->act[l - 1] + e * hsz;
        for (long i = 0; i < hsz; i++)
            if (!(a[i] > 0.0f)) dinp[i] = 0.0f;
        dout = dinp;
    }
}

void ctrl_mlp_backward(ctrl_mlp *m, const float *dy, float *dx, int param_grads) {
    const int B = m->last_batch;
    RLHF_ASSERT(B >= 1);
    if (!dx && !param_grads) return;
    const long nx = (long)B * m->in;
    // each member's dx apart, then summed in member order: the same sums at any thread count
#pragma omp parallel for schedule(static) if (members_in_parallel(m))
    for (int e = 0; e < m->ens; e++) backward_member(m, e, dy, dx ? m->dxbuf + e * nx : NULL, param_grads);
    if (dx)
        for (int e = 0; e < m->ens; e++) {
            const float *d = m->dxbuf + e * nx;
            for (long i = 0; i < nx; i++) dx[i] += d[i];
        }
}

void ctrl_mlp_zero_grad(ctrl_mlp *m) { memset(m->grads, 0, sizeof(float) * m->n_params); }

void ctrl_mlp_polyak(ctrl_mlp *target, const ctrl_mlp *src, float tau) {
    RLHF_ASSERT(target->n_params == src->n_params);
    if (tau == 1.0f) {
        memcpy(target->params, src->params, sizeof(float) * target->n_params);
        return;
    }
    float *t = target->params;
    const float *s = src->params;
    const float keep = 1.0f - tau;
    for (long i = 0; i < target->n_params; i++) t[i] = keep * t[i] + tau * s[i];
}

void ctrl_adam_init(ctrl_adam *a, long n, float lr) {
    memset(a, 0, sizeof *a);
    a->lr = lr;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
    a->weight_decay = 0.0f;
    a->n = n;
    a->m = xalloc_aligned(sizeof(float) * n);
    a->v = xalloc_aligned(sizeof(float) * n);
}

void ctrl_adam_free(ctrl_adam *a) {
    if (!a) return;
    free(a->m);
    free(a->v);
    memset(a, 0, sizeof *a);
}

void ctrl_adam_step(ctrl_adam *a, float *params, const float *grads) {
    a->t++;
    adamw_update(params, grads, a->m, a->v, a->n, a->lr, a->beta1, a->beta2, a->eps,
                 a->weight_decay, a->t);
}
