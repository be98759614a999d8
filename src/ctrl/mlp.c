// ctrl/mlp: ReLU (or tanh) MLP ensembles over one contiguous parameter span, and AdamW
// over such a span. Every product of two matrices goes through src/nn's gemm,
// in the orientation that suits its shape: a narrow last layer (out <= 16: a
// value, a Q, an action or a Gaussian head) as skinny dot products and its backward as one pass
// over the rows; a narrow first layer's weight gradient as its transpose. The
// other loops are one pass each: bias + activation, and the activation's
// derivative + bias gradient.
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

// floats of layer l within a member: W, b and, for a hidden layer with layer
// norm, its scale and shift
static long layer_size(const ctrl_mlp *m, int l) {
    long n = (long)layer_in(m, l) * layer_out(m, l) + layer_out(m, l);
    return m->layer_norm && l < m->layers ? n + 2L * m->hidden : n;
}

// offset of layer l's W within a member (b follows W; then g and s with layer norm)
static long layer_offset(const ctrl_mlp *m, int l) {
    long off = 0;
    for (int k = 0; k < l; k++) off += layer_size(m, k);
    return off;
}

static void free_buffers(ctrl_mlp *m) {
    if (m->act)
        for (int l = 0; l < m->layers; l++) free(m->act[l]);
    if (m->xhat)
        for (int l = 0; l < m->layers; l++) {
            free(m->xhat[l]);
            free(m->rstd[l]);
            m->xhat[l] = m->rstd[l] = NULL;
        }
    free(m->dbuf0);
    free(m->dbuf1);
    free(m->input);
    free(m->dxbuf);
    free(m->tbuf);
    m->dbuf0 = m->dbuf1 = m->input = m->dxbuf = m->tbuf = NULL;
    if (m->act)
        for (int l = 0; l < m->layers; l++) m->act[l] = NULL;
}

// floats of tbuf per member: the narrow last layer's (out, B) and the first
// layer's transposed weight gradient (in, hidden)
static long tbuf_stride(const ctrl_mlp *m) {
    long a = (long)m->out * m->cap_batch, b = (long)m->in * m->hidden;
    return a > b ? a : b;
}

// capacity for B rows (contents are not kept: forward rewrites them)
static void ensure_batch(ctrl_mlp *m, int B) {
    if (B <= m->cap_batch) return;
    free_buffers(m);
    long per = (long)m->ens * B * m->hidden;
    for (int l = 0; l < m->layers; l++) m->act[l] = xalloc_aligned(sizeof(float) * per);
    if (m->layer_norm)
        for (int l = 0; l < m->layers; l++) {
            m->xhat[l] = xalloc_aligned(sizeof(float) * per);
            m->rstd[l] = xalloc_aligned(sizeof(float) * (long)m->ens * B);
        }
    m->dbuf0 = xalloc_aligned(sizeof(float) * per);
    m->dbuf1 = xalloc_aligned(sizeof(float) * per);
    m->input = xalloc_aligned(sizeof(float) * (long)B * m->in);
    m->dxbuf = xalloc_aligned(sizeof(float) * (long)m->ens * B * m->in);
    m->cap_batch = B;
    m->tbuf = xalloc_aligned(sizeof(float) * m->ens * tbuf_stride(m));
}

void ctrl_mlp_init(ctrl_mlp *m, int in, int hidden, int layers, int out, int ens, rlhf_rng *rng) {
    ctrl_mlp_init_ln(m, in, hidden, layers, out, ens, 0, rng);
}

void ctrl_mlp_init_ln(ctrl_mlp *m, int in, int hidden, int layers, int out, int ens, int layer_norm,
                      rlhf_rng *rng) {
    RLHF_ASSERT(in > 0 && hidden > 0 && layers >= 1 && out > 0 && ens >= 1);
    memset(m, 0, sizeof *m);
    m->in = in;
    m->hidden = hidden;
    m->layers = layers;
    m->out = out;
    m->ens = ens;
    m->layer_norm = layer_norm != 0;
    long per = layer_offset(m, layers + 1);
    m->n_params = per * ens;
    m->params = xalloc_aligned(sizeof(float) * m->n_params);
    m->grads = xalloc_aligned(sizeof(float) * m->n_params);
    m->act = xcalloc((size_t)layers, sizeof(float *));
    if (m->layer_norm) {
        m->xhat = xcalloc((size_t)layers, sizeof(float *));
        m->rstd = xcalloc((size_t)layers, sizeof(float *));
    }
    // PyTorch's nn.Linear default (kaiming_uniform(a=sqrt 5) for W gives the same
    // bound as for b): U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Drawn in the order of
    // the span: member, layer, W row-major, then b (layer norm's g = 1, s = 0
    // after them, not drawn).
    float *p = m->params;
    for (int e = 0; e < ens; e++)
        for (int l = 0; l <= layers; l++) {
            long n = (long)layer_in(m, l) * layer_out(m, l) + layer_out(m, l);
            float bound = 1.0f / sqrtf((float)layer_in(m, l));
            for (long i = 0; i < n; i++) *p++ = (2.0f * rng_uniform(rng) - 1.0f) * bound;
            if (m->layer_norm && l < layers) {
                for (int i = 0; i < hidden; i++) *p++ = 1.0f;
                for (int i = 0; i < hidden; i++) *p++ = 0.0f;
            }
        }
}

void ctrl_mlp_free(ctrl_mlp *m) {
    if (!m) return;
    free_buffers(m);
    free(m->act);
    free(m->xhat);
    free(m->rstd);
    free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

void ctrl_mlp_set_tanh(ctrl_mlp *m, int on) { m->tanh_hidden = on != 0; }

void ctrl_mlp_init_last(ctrl_mlp *m, float s) {
    long off = layer_offset(m, m->layers);
    long n = (long)m->hidden * m->out + m->out;
    for (int e = 0; e < m->ens; e++) scale_inplace(ctrl_mlp_member(m, e) + off, n, s);
}

float *ctrl_mlp_member(ctrl_mlp *m, int e) { return m->params + (long)e * member_size(m); }

float *ctrl_mlp_weight(ctrl_mlp *m, int e, int l) {
    RLHF_ASSERT(e >= 0 && e < m->ens && l >= 0 && l <= m->layers);
    return ctrl_mlp_member(m, e) + layer_offset(m, l);
}

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

// a last layer this narrow is B dot products per output (gemm's skinny path,
// one pass over h) instead of a packed gemm that pads `out` to a full tile
static int narrow_out(const ctrl_mlp *m) { return m->out <= CTRL_MLP_NARROW; }

enum { ACT_NONE, ACT_RELU, ACT_TANH };

// o (B, co) = max(o + b, 0) (ACT_RELU), tanh(o + b) (ACT_TANH) or o + b: the
// bias and the activation in one pass
static void bias_act(float *o, const float *b, int B, int co, int act) {
    for (int r = 0; r < B; r++) {
        float *x = o + (long)r * co;
        if (act == ACT_RELU)
            for (int k = 0; k < co; k++) {
                float v = x[k] + b[k];
                x[k] = v > 0.0f ? v : 0.0f;
            }
        else if (act == ACT_TANH)
            for (int k = 0; k < co; k++) x[k] = tanhf(x[k] + b[k]);
        else
            for (int k = 0; k < co; k++) x[k] += b[k];
    }
}

// a hidden layer with layer norm, row by row: o + b -> xhat = (o + b - mean) *
// rstd, rstd = 1 / sqrt(biased var + eps) (kept for backward), then o = act(g
// xhat + s). Mean and variance are summed in double.
static void bias_ln_act(float *o, const float *b, const float *g, const float *sh, float *xhat,
                        float *rstd, int B, int co, int act) {
    for (int r = 0; r < B; r++) {
        float *x = o + (long)r * co, *xh = xhat + (long)r * co;
        double mu = 0, var = 0;
        for (int k = 0; k < co; k++) {
            x[k] += b[k];
            mu += x[k];
        }
        mu /= co;
        for (int k = 0; k < co; k++) var += ((double)x[k] - mu) * ((double)x[k] - mu);
        var /= co;
        float rs = (float)(1.0 / sqrt(var + (double)CTRL_MLP_LN_EPS));
        rstd[r] = rs;
        for (int k = 0; k < co; k++) {
            xh[k] = (float)(x[k] - mu) * rs;
            float v = g[k] * xh[k] + sh[k];
            x[k] = act == ACT_TANH ? tanhf(v) : v > 0.0f ? v : 0.0f;
        }
    }
}

// the narrow last layer: y (B, co) = h (B, ci) W^T + b, as y^T (co, B) = W h^T
// into t (co, B), 8 rows of W at a time (gemm's skinny path: those rows dotted
// with each row of h in one pass), then transposed
static void narrow_forward(float *y, const float *h, const float *W, const float *b, int B, int ci,
                           int co, float *t) {
    for (int k0 = 0; k0 < co; k0 += 8) {
        int n = co - k0 < 8 ? co - k0 : 8;
        gemm(0, 1, n, B, ci, 1.0f, W + (long)k0 * ci, ci, h, ci, 0.0f, t + (long)k0 * B, B);
    }
    for (int r = 0; r < B; r++)
        for (int k = 0; k < co; k++) y[(long)r * co + k] = t[(long)k * B + r] + b[k];
}

static void forward_member(ctrl_mlp *m, int e, int B, float *y) {
    const long hsz = (long)B * m->hidden;
    const float *pe = m->params + e * member_size(m);
    const float *h = m->input;
    for (int l = 0; l <= m->layers; l++) {
        int ci = layer_in(m, l), co = layer_out(m, l);
        const float *W = pe + layer_offset(m, l), *b = W + (long)ci * co;
        if (l == m->layers) {
            float *o = y + (long)e * B * m->out;
            if (narrow_out(m)) {
                narrow_forward(o, h, W, b, B, ci, co, m->tbuf + e * tbuf_stride(m));
            } else {
                gemm(0, 1, B, co, ci, 1.0f, h, ci, W, ci, 0.0f, o, co);
                bias_act(o, b, B, co, ACT_NONE);
            }
            break;
        }
        float *o = m->act[l] + e * hsz;
        gemm(0, 1, B, co, ci, 1.0f, h, ci, W, ci, 0.0f, o, co);
        if (m->layer_norm)
            bias_ln_act(o, b, b + co, b + 2 * co, m->xhat[l] + e * hsz, m->rstd[l] + (long)e * B, B,
                        co, m->tanh_hidden ? ACT_TANH : ACT_RELU);
        else
            bias_act(o, b, B, co, m->tanh_hidden ? ACT_TANH : ACT_RELU);
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

// through the activation whose output was a (B, n): ReLU: d = 0 where a <= 0;
// tanh: d *= 1 - a^2; and, when db, db += the column sums of the new d (the
// bias gradient of that layer)
static void act_back(float *d, const float *a, float *db, int B, int n, int tanh_act) {
    for (int r = 0; r < B; r++) {
        float *x = d + (long)r * n;
        const float *ar = a + (long)r * n;
        if (tanh_act)
            for (int k = 0; k < n; k++) x[k] *= 1.0f - ar[k] * ar[k];
        else
            for (int k = 0; k < n; k++) x[k] = ar[k] > 0.0f ? x[k] : 0.0f;
        if (db)
            for (int k = 0; k < n; k++) db[k] += x[k];
    }
}

// through the activation and the layer norm of a hidden layer whose output was
// a (B, n), in place on d: dy = d through the activation; dg += dy xhat, ds +=
// dy (when dg); then d = rstd (dxh - mean(dxh) - xhat mean(dxh xhat)) with dxh
// = g dy, the gradient of the layer's linear output; db += its column sums
// (when db).
static void ln_act_back(float *d, const float *a, const float *xhat, const float *rstd,
                        const float *g, float *db, float *dg, float *ds, int B, int n,
                        int tanh_act) {
    for (int r = 0; r < B; r++) {
        float *x = d + (long)r * n;
        const float *ar = a + (long)r * n, *xh = xhat + (long)r * n;
        if (tanh_act)
            for (int k = 0; k < n; k++) x[k] *= 1.0f - ar[k] * ar[k];
        else
            for (int k = 0; k < n; k++) x[k] = ar[k] > 0.0f ? x[k] : 0.0f;
        if (dg)
            for (int k = 0; k < n; k++) {
                dg[k] += x[k] * xh[k];
                ds[k] += x[k];
            }
        double m1 = 0, m2 = 0;
        for (int k = 0; k < n; k++) {
            float v = g[k] * x[k];
            m1 += v;
            m2 += (double)v * xh[k];
        }
        float a1 = (float)(m1 / n), a2 = (float)(m2 / n), rs = rstd[r];
        for (int k = 0; k < n; k++) x[k] = rs * (g[k] * x[k] - a1 - xh[k] * a2);
        if (db)
            for (int k = 0; k < n; k++) db[k] += x[k];
    }
}

// the narrow last layer's backward in one pass over the rows: dW (co, ci) +=
// dout^T h, db (co) += column sums of dout (when dW), dinp (B, ci) = dout W
static void narrow_backward(float *dinp, float *dW, float *db, const float *dout, const float *h,
                            const float *W, int B, int ci, int co) {
    for (int r = 0; r < B; r++) {
        const float *d = dout + (long)r * co, *hr = h + (long)r * ci;
        float *x = dinp + (long)r * ci;
        for (int j = 0; j < ci; j++) x[j] = d[0] * W[j];
        for (int k = 1; k < co; k++)
            for (int j = 0; j < ci; j++) x[j] += d[k] * W[(long)k * ci + j];
        if (!dW) continue;
        for (int k = 0; k < co; k++) {
            float *w = dW + (long)k * ci;
            for (int j = 0; j < ci; j++) w[j] += d[k] * hr[j];
            db[k] += d[k];
        }
    }
}

// the first layer's dW (co, ci) += dout^T x for a narrow input (ci << co): as
// dW^T (ci, co) = x^T dout into t, a gemm whose tiles are not mostly padding
static void input_dw(float *dW, const float *dout, const float *x, int B, int ci, int co,
                     float *t) {
    gemm(1, 0, ci, co, B, 1.0f, x, ci, dout, co, 0.0f, t, co);
    for (int k = 0; k < co; k++)
        for (int i = 0; i < ci; i++) dW[(long)k * ci + i] += t[(long)i * co + k];
}

// column sums of d (B, n) added to db (n)
static void bias_grad(float *db, const float *d, int B, int n) {
    for (int r = 0; r < B; r++)
        for (int k = 0; k < n; k++) db[k] += d[(long)r * n + k];
}

// member e: dy -> its param grads (when param_grads) and dxe = its dL/dx (when dxe).
// Each ReLU's mask pass also sums the bias gradient of the layer below it.
static void backward_member(ctrl_mlp *m, int e, const float *dy, float *dxe, int param_grads) {
    const int B = m->last_batch;
    const long per = member_size(m), hsz = (long)B * m->hidden;
    const float *pe = m->params + e * per;
    float *ge = param_grads ? m->grads + e * per : NULL;
    float *t = m->tbuf + e * tbuf_stride(m);
    const float *dout = dy + (long)e * B * m->out;  // gradient of layer l's output
    float *bufs[2] = {m->dbuf0 + e * hsz, m->dbuf1 + e * hsz};
    int db_done = 0; // layer l's bias gradient already summed by act_back
    for (int l = m->layers; l >= 0; l--) {
        int ci = layer_in(m, l), co = layer_out(m, l);
        const float *W = pe + layer_offset(m, l);
        float *dW = ge ? ge + layer_offset(m, l) : NULL, *db = dW ? dW + (long)ci * co : NULL;
        if (l == 0) {
            if (dxe) gemm(0, 0, B, ci, co, 1.0f, dout, co, W, ci, 0.0f, dxe, ci);
            if (!dW) break;
            if (ci < co)
                input_dw(dW, dout, m->input, B, ci, co, t);
            else
                gemm(1, 0, co, ci, B, 1.0f, dout, co, m->input, ci, 1.0f, dW, ci);
            if (!db_done) bias_grad(db, dout, B, co);
            break;
        }
        // dinp is overwritten (beta 0), so no clearing pass
        const float *inp = m->act[l - 1] + e * hsz;
        float *dinp = bufs[l & 1];
        if (l == m->layers && narrow_out(m)) {
            narrow_backward(dinp, dW, db, dout, inp, W, B, ci, co);
        } else {
            gemm(0, 0, B, ci, co, 1.0f, dout, co, W, ci, 0.0f, dinp, ci);
            if (dW) gemm(1, 0, co, ci, B, 1.0f, dout, co, inp, ci, 1.0f, dW, ci);
            if (dW && !db_done) bias_grad(db, dout, B, co);
        }
        // through the activation of hidden layer l-1 (ReLU: act > 0 where the
        // pre-activation was; tanh: 1 - act^2), summing that layer's bias gradient on the way
        float *dbp = ge ? ge + layer_offset(m, l - 1) + (long)layer_in(m, l - 1) * ci : NULL;
        if (m->layer_norm) {
            const float *g = pe + layer_offset(m, l - 1) + (long)layer_in(m, l - 1) * ci + ci;
            ln_act_back(dinp, inp, m->xhat[l - 1] + e * hsz, m->rstd[l - 1] + (long)e * B, g, dbp,
                        dbp ? dbp + ci : NULL, dbp ? dbp + 2 * ci : NULL, B, ci, m->tanh_hidden);
        } else {
            act_back(dinp, inp, dbp, B, ci, m->tanh_hidden);
        }
        db_done = dbp != NULL;
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

static long g_nonfinite; // steps refused: their gradient was not finite
static int g_poison;

long ctrl_adam_nonfinite_steps(void) {
    return __atomic_load_n(&g_nonfinite, __ATOMIC_RELAXED);
}

void ctrl_adam_poison(int on) {
    g_poison = on;
}

void ctrl_adam_step(ctrl_adam *a, float *params, const float *grads) {
    double sq = 0; // a NaN or infinity anywhere makes the sum non-finite
    for (long i = 0; i < a->n; i++) sq += (double)grads[i] * grads[i];
    if (!isfinite(sq) || g_poison) {
        __atomic_add_fetch(&g_nonfinite, 1, __ATOMIC_RELAXED);
        return;
    }
    a->t++;
    adamw_update(params, grads, a->m, a->v, a->n, a->lr, a->beta1, a->beta2, a->eps,
                 a->weight_decay, a->t);
}
