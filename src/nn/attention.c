// attention: causal self-attention with a padding mask, optional per-token
// segment (document) ids for packed rows, and grouped-query heads,
// and the rotary position embedding applied to q and k before it. Each (batch,
// head) pair is one OpenMP iteration; inside it the two products (q k^T and
// att v) are gemm calls on strided views straight into the packed qkv rows, so
// nothing is copied, and only the masking and softmax are written by hand.
// Queries are processed in blocks of QBLOCK rows, and each block multiplies only
// the keys it can see (s < end of block), which skips most of the masked upper
// triangle of the T x T products.
#include <math.h>
#include <stdlib.h>

#include "base/base.h"
#include "nn/nn.h"
#include "nn/nn_internal.h"

enum { QBLOCK = 64 };

// ---- rotary position embedding ----

// cos, sin (maxT, HS/2): angle = p * theta^(-2i/HS), computed in double
void rope_table(float *cos_t, float *sin_t, int maxT, int HS, float theta) {
    int half = HS / 2;
    for (int i = 0; i < half; i++) {
        double inv_freq = 1.0 / pow((double)theta, (2.0 * i) / HS);
        for (int p = 0; p < maxT; p++) {
            double a = p * inv_freq;
            cos_t[(long)p * half + i] = (float)cos(a);
            sin_t[(long)p * half + i] = (float)sin(a);
        }
    }
}

// x (N rows at `stride`, nh heads of HS) rotated in place by pos; sign = +1 forward, -1 inverse
static void rope_apply(float *x, const float *cos_t, const float *sin_t, const int *pos, int N,
                       int nh, int HS, int stride, float sign) {
    int half = HS / 2;
#pragma omp parallel for if (!nn_in_parallel() && (long)N * nh * HS > 16384)
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (long)pos[n] * half, *s = sin_t + (long)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *x1 = x + (long)n * stride + h * HS, *x2 = x1 + half;
            for (int i = 0; i < half; i++) {
                float a = x1[i], b = x2[i], si = sign * s[i];
                x1[i] = a * c[i] - b * si;
                x2[i] = b * c[i] + a * si;
            }
        }
    }
}

// x (N, stride) in place: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)
void rope_forward(float *x, const float *cos_t, const float *sin_t, const int *pos, int N, int nh,
                  int HS, int stride) {
    rope_apply(x, cos_t, sin_t, pos, N, nh, HS, stride, 1.0f);
}

// dx (N, stride) in place: the transposed rotation
void rope_backward(float *dx, const float *cos_t, const float *sin_t, const int *pos, int N, int nh,
                   int HS, int stride) {
    rope_apply(dx, cos_t, sin_t, pos, N, nh, HS, stride, -1.0f);
}

// ---- attention ----

// one query row of pre-softmax scores p[0..t] (keys s <= t) -> probabilities in place over
// the visible keys, zeros elsewhere up to T. Packed rows (seg != NULL): a key is visible only
// when it is real and in the query's segment; the scores of other keys are set to -inf first,
// so the two loops below (and their cost for unpacked rows) stay as they are.
static void softmax_row(float *p, int t, int T, const uint8_t *mask, const int *seg) {
    float mx = -INFINITY;
    if (seg) {
        int st = seg[t];
        for (int s = 0; s <= t; s++)
            if (seg[s] != st || (mask && !mask[s])) p[s] = -INFINITY;
        mask = NULL;  // folded into the -inf scores
    }
    if (mask) {
#pragma omp simd reduction(max : mx)
        for (int s = 0; s <= t; s++) {
            float x = vm_select(mask[s], p[s], -INFINITY);
            mx = x > mx ? x : mx;
        }
    } else {
#pragma omp simd reduction(max : mx)
        for (int s = 0; s <= t; s++) mx = p[s] > mx ? p[s] : mx;
    }
    if (mx == -INFINITY) {  // no visible key (or all scores -inf): the row outputs zeros
        for (int s = 0; s < T; s++) p[s] = 0.0f;
        return;
    }
    float sum = 0.0f;
    if (mask) {
#pragma omp simd reduction(+ : sum)
        for (int s = 0; s <= t; s++) {
            float e = vm_select(mask[s], vm_expf(p[s] - mx), 0.0f);
            p[s] = e;
            sum += e;
        }
    } else {
#pragma omp simd reduction(+ : sum)
        for (int s = 0; s <= t; s++) {
            float e = vm_expf(p[s] - mx);
            p[s] = e;
            sum += e;
        }
    }
    float inv = 1.0f / sum;
    for (int s = 0; s <= t; s++) p[s] *= inv;
    for (int s = t + 1; s < T; s++) p[s] = 0.0f;
}

// ---- attention-probability dropout (attn_dropout, nn.h) ----

// d when it drops anything, else NULL: p = 0 then runs exactly the code without dropout
static const attn_dropout *drop_on(const attn_dropout *d) {
    return d && d->p > 0 ? d : NULL;
}

// the mask index of (batch row b, query t, head h, key 0); key s adds s. The query's index
// in the whole batch leads, so it does not depend on how the rows are split over ranks.
static uint64_t drop_idx(const attn_dropout *d, int b, int t, int h, int T, int NH) {
    uint64_t q = d->token0 + (uint64_t)b * (uint64_t)T + (uint64_t)t;
    return (q * (uint64_t)NH + (uint64_t)h) * (uint64_t)T;
}

// y[0..n) = x[0..n) masked and scaled by 1/(1-p) (in place when y == x); element s's mask
// index is idx + s
static void drop_row(float *y, const float *x, int n, const attn_dropout *d, uint64_t idx) {
    const float keep = (float)(1.0 / (1.0 - d->p));  // dropout_apply's scale, bit for bit
    const uint64_t key = d->key, cut = nn_drop_cut(d->p);  // kept: dropout_kept(key, i, p)
    for (int s = 0; s < n; s++)
        y[s] = vm_select(nn_drop_draw(key, idx + (uint64_t)s) >= cut, x[s] * keep, 0.0f);
}

// y (t1-t0, T) = the dropped probabilities of queries t0..t1 over keys 0..t1 (the block the
// forward's att v reads); keys past the query stay 0
static void drop_queries(float *y, const float *a, int t0, int t1, int T, int b, int h, int NH,
                         const attn_dropout *d) {
    for (int t = t0; t < t1; t++) {
        float *yr = y + (long)(t - t0) * T;
        drop_row(yr, a + (long)t * T, t + 1, d, drop_idx(d, b, t, h, T, NH));
        for (int s = t + 1; s < t1; s++) yr[s] = 0.0f;
    }
}

// y (T-s0, QBLOCK) = the dropped probabilities of queries s0..T over keys s0..s1 (the block
// the backward's dv product reads), regenerated from the key rather than stored
static void drop_keys(float *y, const float *a, int s0, int s1, int T, int b, int h, int NH,
                      const attn_dropout *d) {
    for (int t = s0; t < T; t++) {
        float *yr = y + (long)(t - s0) * QBLOCK;
        int n = (t + 1 < s1 ? t + 1 : s1) - s0;  // visible keys of this block: s0..min(t, s1-1)
        drop_row(yr, a + (long)t * T + s0, n, d, drop_idx(d, b, t, h, T, NH) + (uint64_t)s0);
        for (int s = n; s < s1 - s0; s++) yr[s] = 0.0f;
    }
}

// qkv (B,T,(NH+2NKV)HS), mask (B,T) or NULL, seg (B,T) or NULL -> out (B,T,NH*HS),
// att (B,NH,T,T) (undropped); drop: the probabilities' dropout or NULL
void attention_forward_drop(float *out, float *att, const float *qkv, const uint8_t *mask,
                            const int *seg, int B, int T, int NH, int NKV, int HS,
                            const attn_dropout *drop) {
    const int R = (NH + 2 * NKV) * HS, OR = NH * HS, group = NH / NKV;
    const attn_dropout *d = drop_on(drop);
    const float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static) if (!nn_in_parallel() && B * NH > 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            const float *q = qkv + (long)b * T * R + h * HS;
            const float *k = qkv + (long)b * T * R + (NH + kvh) * HS;
            const float *v = qkv + (long)b * T * R + (NH + NKV + kvh) * HS;
            const uint8_t *mk = mask ? mask + (long)b * T : NULL;
            const int *sg = seg ? seg + (long)b * T : NULL;
            float *a = att + ((long)b * NH + h) * T * T;
            float *o = out + (long)b * T * OR + h * HS;
            // dropout: the block's dropped probabilities go to pd, att keeps the undropped
            float *pd = d ? xmalloc(sizeof(float) * QBLOCK * (size_t)T) : NULL;
            for (int t0 = 0; t0 < T; t0 += QBLOCK) {
                int t1 = t0 + QBLOCK < T ? t0 + QBLOCK : T;
                // scores (t1-t0, t1) = scale q[t0:t1] k[0:t1]^T
                gemm(0, 1, t1 - t0, t1, HS, scale, q + (long)t0 * R, R, k, R, 0.0f,
                     a + (long)t0 * T, T);
                for (int t = t0; t < t1; t++) softmax_row(a + (long)t * T, t, T, mk, sg);
                if (d) drop_queries(pd, a, t0, t1, T, b, h, NH, d);
                // out[t0:t1] = att[t0:t1, 0:t1] v[0:t1] (att dropped when d)
                gemm(0, 0, t1 - t0, HS, t1, 1.0f, d ? pd : a + (long)t0 * T, T, v, R, 0.0f,
                     o + (long)t0 * OR, OR);
            }
            free(pd);
        }
    }
}

void attention_forward(float *out, float *att, const float *qkv, const uint8_t *mask,
                       const int *seg, int B, int T, int NH, int NKV, int HS) {
    attention_forward_drop(out, att, qkv, mask, seg, B, T, NH, NKV, HS, NULL);
}

// dout (B,T,NH*HS) -> dqkv (B,T,(NH+2NKV)HS) +=; scratch (B,NH,T,T) holds d(scores).
// With drop (the forward's), out = P v where P = att (.) m / (1-p): dP = dout v^T, d(att) =
// dP (.) m / (1-p) into the softmax backward (on the undropped att), dv = P^T dout; the
// mask is drawn again from its key (storing P would double the largest activation).
void attention_backward_drop(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int NH, int NKV, int HS,
                             const attn_dropout *drop) {
    const int R = (NH + 2 * NKV) * HS, OR = NH * HS, group = NH / NKV;
    const attn_dropout *d = drop_on(drop);
    const float scale = 1.0f / sqrtf((float)HS);
    // pass 1, per query head: d(scores) and dq (each head owns its dq columns)
#pragma omp parallel for collapse(2) schedule(static) if (!nn_in_parallel() && B * NH > 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            const float *k = qkv + (long)b * T * R + (NH + kvh) * HS;
            const float *v = qkv + (long)b * T * R + (NH + NKV + kvh) * HS;
            const float *a = att + ((long)b * NH + h) * T * T;
            const float *dO = dout + (long)b * T * OR + h * HS;
            float *ds = scratch + ((long)b * NH + h) * T * T;
            float *dq = dqkv + (long)b * T * R + h * HS;
            for (int t0 = 0; t0 < T; t0 += QBLOCK) {
                int t1 = t0 + QBLOCK < T ? t0 + QBLOCK : T;
                // datt (t1-t0, t1) = dout[t0:t1] v[0:t1]^T
                gemm(0, 1, t1 - t0, t1, HS, 1.0f, dO + (long)t0 * OR, OR, v, R, 0.0f,
                     ds + (long)t0 * T, T);
                // through the dropout: d(att) = dP (.) m / (1-p), key by key
                for (int t = t0; t < t1 && d; t++)
                    drop_row(ds + (long)t * T, ds + (long)t * T, t + 1, d,
                             drop_idx(d, b, t, h, T, NH));
                // softmax backward: dscore = scale * att * (datt - sum(att * datt))
                for (int t = t0; t < t1; t++) {
                    const float *ar = a + (long)t * T;
                    float *dr = ds + (long)t * T;
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int s = 0; s <= t; s++) dot += ar[s] * dr[s];
                    for (int s = 0; s <= t; s++) dr[s] = scale * ar[s] * (dr[s] - dot);
                    for (int s = t + 1; s < T; s++) dr[s] = 0.0f;
                }
                // dq[t0:t1] += dscore[t0:t1, 0:t1] k[0:t1]
                gemm(0, 0, t1 - t0, HS, t1, 1.0f, ds + (long)t0 * T, T, k, R, 1.0f,
                     dq + (long)t0 * R, R);
            }
        }
    }
    // pass 2, per kv head: dk, dv summed over the query heads of its group
#pragma omp parallel for collapse(2) schedule(static) if (!nn_in_parallel() && B * NKV > 1)
    for (int b = 0; b < B; b++) {
        for (int kvh = 0; kvh < NKV; kvh++) {
            float *dk = dqkv + (long)b * T * R + (NH + kvh) * HS;
            float *dv = dqkv + (long)b * T * R + (NH + NKV + kvh) * HS;
            float *pd = d ? xmalloc(sizeof(float) * QBLOCK * (size_t)T) : NULL;  // P's block
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                const float *q = qkv + (long)b * T * R + h * HS;
                const float *a = att + ((long)b * NH + h) * T * T;
                const float *ds = scratch + ((long)b * NH + h) * T * T;
                const float *dO = dout + (long)b * T * OR + h * HS;
                for (int s0 = 0; s0 < T; s0 += QBLOCK) {
                    int s1 = s0 + QBLOCK < T ? s0 + QBLOCK : T;
                    // keys s0..s1 are seen only by queries t >= s0
                    // dk[s0:s1] += dscore[s0:T, s0:s1]^T q[s0:T]
                    gemm(1, 0, s1 - s0, HS, T - s0, 1.0f, ds + (long)s0 * T + s0, T,
                         q + (long)s0 * R, R, 1.0f, dk + (long)s0 * R, R);
                    // dv[s0:s1] += att[s0:T, s0:s1]^T dout[s0:T] (att dropped when d)
                    if (d) drop_keys(pd, a, s0, s1, T, b, h, NH, d);
                    gemm(1, 0, s1 - s0, HS, T - s0, 1.0f, d ? pd : a + (long)s0 * T + s0,
                         d ? QBLOCK : T, dO + (long)s0 * OR, OR, 1.0f, dv + (long)s0 * R, R);
                }
            }
            free(pd);
        }
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, const uint8_t *mask, int B, int T, int NH, int NKV,
                        int HS) {
    (void)mask;  // the visibility pattern is in att (nn.h)
    attention_backward_drop(dqkv, scratch, dout, qkv, att, B, T, NH, NKV, HS, NULL);
}
