// logprob: the LM head fused with log-softmax and the gather of the target token,
// so that the (N, V) logits never exist at once. The rows that have a target are
// gathered into chunks; a chunk's logits are one gemm into the caller's scratch,
// then a max / exp-sum / gather pass per row gives log p(target) and the
// log-sum-exp, which is saved. The backward recomputes the chunk's logits, turns
// them in place into dlogits = dlogp (onehot - softmax) using the saved lse, and
// applies two gemms: dh += dlogits w, dw += dlogits^T h. Also here: the
// log-softmax of one row used by generation.
#include <math.h>
#include <string.h>

#include "base/base.h"
#include "nn/nn.h"
#include "nn/nn_internal.h"

// a row takes part when it has a target (and, in the backward, a nonzero dlogp or
// dentropy)
static int row_used(int n, const int *targets, const float *dlogp, const float *dent) {
    if (targets[n] < 0) return 0;
    return !dlogp || dlogp[n] != 0.0f || (dent && dent[n] != 0.0f);
}

// Rows per chunk for this call. The scratch holds LOGP_CHUNK*V floats. When all the rows
// used form one contiguous run, a chunk is a view into h and may have LOGP_CHUNK rows;
// otherwise each chunk's rows are gathered after its logits, so rows*(V+C) must fit.
// The rows are then spread evenly over the fewest chunks (a small tail chunk would
// stream all of w for a handful of rows). Returns 0 when no row is used.
static int chunk_rows(const int *targets, const float *dlogp, const float *dent, int N, int C,
                      int V) {
    int used = 0, first = -1, last = -1;
    for (int n = 0; n < N; n++) {
        if (!row_used(n, targets, dlogp, dent)) continue;
        used++;
        if (first < 0) first = n;
        last = n;
    }
    if (used == 0) return 0;
    long cap = LOGP_CHUNK;
    if (last - first + 1 != used) {
        cap = (long)LOGP_CHUNK * V / ((long)V + C);
        if (cap > LOGP_CHUNK) cap = LOGP_CHUNK;
        if (cap < 1) cap = 1;  // single rows are always contiguous: no gather buffer
    }
    int nchunks = (int)((used + cap - 1) / cap);
    return (used + nchunks - 1) / nchunks;
}

// next chunk: up to cs used row indices n >= *next; returns the count, 0 when done
static int next_chunk(int *idx, int cs, int *next, int N, const int *targets,
                      const float *dlogp, const float *dent) {
    int cnt = 0;
    int n = *next;
    for (; n < N && cnt < cs; n++)
        if (row_used(n, targets, dlogp, dent)) idx[cnt++] = n;
    *next = n;
    return cnt;
}

// h rows of the chunk: a pointer into h when they are contiguous, else gathered into buf
static const float *chunk_inputs(const float *h, const int *idx, int cnt, int C, float *buf) {
    if (idx[cnt - 1] - idx[0] == cnt - 1) return h + (long)idx[0] * C;
    for (int r = 0; r < cnt; r++) memcpy(buf + (long)r * C, h + (long)idx[r] * C, C * sizeof(float));
    return buf;
}

// h (N,C), w (V,C), targets (N) -> logp (N), lse (N), entropy (N) or NULL; scratch (LOGP_CHUNK*V)
void logprob_forward(float *logp, float *lse, float *entropy, const float *h, const float *w,
                     const int *targets, int N, int C, int V, float *scratch) {
    logprob_forward_t(logp, lse, entropy, h, w, NULL, targets, N, C, V, scratch, 1.0f);
}

// logits (cnt,V) = inv_t * hc w^T, from the bf16 copy w16 when there is one
static void head_logits(float *logits, const float *hc, const float *w, const uint16_t *w16, int cnt,
                        int C, int V, float inv_t) {
    if (!w16) {
        gemm(0, 1, cnt, V, C, inv_t, hc, C, w, C, 0.0f, logits, V);
        return;
    }
    linear_forward_bf16(logits, hc, w16, NULL, cnt, C, V);
    if (inv_t != 1.0f)
        for (long i = 0; i < (long)cnt * V; i++) logits[i] *= inv_t;
}

// dh (cnt,C) = beta * dh + dlogits w, from the bf16 copy when there is one
static void head_dinput(float *dh, const float *dlogits, const float *w, const uint16_t *w16, int cnt,
                        int C, int V, float beta) {
    if (!w16) {
        gemm(0, 0, cnt, C, V, 1.0f, dlogits, V, w, C, beta, dh, C);
        return;
    }
    if (beta == 0.0f) memset(dh, 0, sizeof(float) * (size_t)cnt * C);
    linear_backward_input_bf16(dh, dlogits, w16, cnt, C, V);
}

// the same on the logits z = inv_t * h w^T (alpha of the gemm: 1 changes nothing)
void logprob_forward_t(float *logp, float *lse, float *entropy, const float *h, const float *w,
                       const uint16_t *w16, const int *targets, int N, int C, int V, float *scratch,
                       float inv_t) {
    const int cs = chunk_rows(targets, NULL, NULL, N, C, V);
    float *logits = scratch, *hbuf = scratch + (long)cs * V;
    int idx[LOGP_CHUNK];
    for (int n = 0; n < N; n++) {
        RLHF_ASSERT(targets[n] < V);
        if (targets[n] < 0) {
            logp[n] = 0.0f;
            lse[n] = 0.0f;
            if (entropy) entropy[n] = 0.0f;
        }
    }
    int next = 0, cnt;
    while ((cnt = next_chunk(idx, cs, &next, N, targets, NULL, NULL)) > 0) {
        const float *hc = chunk_inputs(h, idx, cnt, C, hbuf);
        head_logits(logits, hc, w, w16, cnt, C, V, inv_t);
#pragma omp parallel for if (!nn_in_parallel() && cnt > 1)
        for (int r = 0; r < cnt; r++) {
            int n = idx[r];
            float *x = logits + (long)r * V;
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
            float sum = 0.0f, sum_ex = 0.0f;
            if (entropy) {
                // H = lse - sum p x = log(sum e) - sum e (x - mx) / sum e, e = exp(x - mx)
#pragma omp simd reduction(+ : sum, sum_ex)
                for (int i = 0; i < V; i++) {
                    float d = x[i] - mx, e = vm_expf(d);
                    sum += e;
                    sum_ex += e * d;
                }
            } else {
#pragma omp simd reduction(+ : sum)
                for (int i = 0; i < V; i++) sum += vm_expf(x[i] - mx);
            }
            float ls = logf(sum);
            lse[n] = mx + ls;
            logp[n] = x[targets[n]] - lse[n];
            if (entropy) entropy[n] = ls - sum_ex / sum;
        }
    }
}

// dlogp (N) -> dh (N,C) +=, dw (V,C) +=; either may be NULL; scratch (LOGP_CHUNK*V)
void logprob_backward(float *dh, float *dw, const float *dlogp, const float *h, const float *w,
                      const int *targets, const float *lse, int N, int C, int V, float *scratch) {
    logprob_backward_t(dh, dw, dlogp, NULL, h, w, NULL, targets, lse, N, C, V, scratch, 1.0f);
}

// The gradient on a row's logits x, with z = inv_t x, p = softmax(z), log p = z - lse,
// H = -sum p log p, g = dlogp, e = dentropy:
//   d/dz_i = g (onehot_i - p_i) - e p_i (log p_i + H),   d/dx_i = inv_t d/dz_i.
// (dH/dz_i = -p_i (log p_i + H): differentiate -sum_j p_j log p_j with
// dp_j/dz_i = p_j (onehot_ij - p_i).) With e = 0 and inv_t = 1 this is the plain
// path, computed exactly as before.
static void row_dlogits(float *x, int V, int target, float g, float e, float l, float inv_t) {
    if (e == 0.0f && inv_t == 1.0f) {
        for (int i = 0; i < V; i++) x[i] = -g * vm_expf(x[i] - l);
        x[target] += g;
        return;
    }
    float H = 0.0f;
    if (e != 0.0f)
        for (int i = 0; i < V; i++) {
            float lp = x[i] - l;
            H -= vm_expf(lp) * lp;
        }
    for (int i = 0; i < V; i++) {
        float lp = x[i] - l, p = vm_expf(lp);
        x[i] = -inv_t * p * (g + e * (lp + H));
    }
    x[target] += inv_t * g;
}

void logprob_backward_t(float *dh, float *dw, const float *dlogp, const float *dentropy,
                        const float *h, const float *w, const uint16_t *w16, const int *targets,
                        const float *lse, int N, int C, int V, float *scratch, float inv_t) {
    const int cs = chunk_rows(targets, dlogp, dentropy, N, C, V);
    float *logits = scratch, *hbuf = scratch + (long)cs * V;
    int idx[LOGP_CHUNK];
    int next = 0, cnt;
    while ((cnt = next_chunk(idx, cs, &next, N, targets, dlogp, dentropy)) > 0) {
        const float *hc = chunk_inputs(h, idx, cnt, C, hbuf);
        int contiguous = hc != hbuf;
        head_logits(logits, hc, w, w16, cnt, C, V, inv_t);
        // logits -> dlogits = dlogp * (onehot(target) - exp(logit - lse)) (+ the entropy's)
#pragma omp parallel for if (!nn_in_parallel() && cnt > 1)
        for (int r = 0; r < cnt; r++) {
            int n = idx[r];
            row_dlogits(logits + (long)r * V, V, targets[n], dlogp[n],
                        dentropy ? dentropy[n] : 0.0f, lse[n], inv_t);
        }
        if (dw) gemm(1, 0, V, C, cnt, 1.0f, logits, V, hc, C, 1.0f, dw, C);
        if (!dh) continue;
        if (contiguous) {
            head_dinput(dh + (long)idx[0] * C, logits, w, w16, cnt, C, V, 1.0f);
        } else {  // the gathered h rows are no longer needed: reuse their buffer, then scatter
            head_dinput(hbuf, logits, w, w16, cnt, C, V, 0.0f);
            for (int r = 0; r < cnt; r++) {
                float *dst = dh + (long)idx[r] * C;
                const float *src = hbuf + (long)r * C;
                for (int i = 0; i < C; i++) dst[i] += src[i];
            }
        }
    }
}

// x (n) -> log softmax(x) in place; returns the log-sum-exp
float log_softmax_inplace(float *x, int n) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) return -INFINITY;  // nothing has any mass; leave x as it is
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) sum += vm_expf(x[i] - mx);
    float lse = mx + logf(sum);
    for (int i = 0; i < n; i++) x[i] -= lse;
    return lse;
}
