// misc: the elementwise kernels (GELU, SwiGLU, residual), the token/position
// embedding, and the optimizer-side helpers (AdamW, gradient norm, scaling).
// All are memory-bound loops: OpenMP splits them into contiguous ranges and the
// inner loops are kept simple enough for gcc to vectorise. (Plain `parallel for`,
// not `parallel for simd`: with gcc 12 the combined construct ran GELU 10x slower
// on two threads.)
#include <math.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"

#define PAR(n) (!nn_in_parallel() && (n) > 32768)
#define GELU_SCALE 0.7978845608028654f  // sqrt(2/pi)

// ---- activations ----

// inp (n) -> out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
void gelu_forward(float *out, const float *inp, long n) {
#pragma omp parallel for if (PAR(n))
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + vm_tanhf(u));
    }
}

// dout (n) -> dinp (n) +=
void gelu_backward(float *dinp, const float *inp, const float *dout, long n) {
#pragma omp parallel for if (PAR(n))
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float t = vm_tanhf(u);
        float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        float grad = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
        dinp[i] += grad * dout[i];
    }
}

// inp (N,2F) = [gate | up] -> out (N,F) = silu(gate) * up
void swiglu_forward(float *out, const float *inp, int N, int F) {
#pragma omp parallel for if (PAR((long)N * F))
    for (int n = 0; n < N; n++) {
        const float *g = inp + (long)n * 2 * F, *u = g + F;
        float *o = out + (long)n * F;
        for (int i = 0; i < F; i++) o[i] = g[i] / (1.0f + vm_expf(-g[i])) * u[i];
    }
}

// dout (N,F) -> dinp (N,2F) +=
void swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F) {
#pragma omp parallel for if (PAR((long)N * F))
    for (int n = 0; n < N; n++) {
        const float *g = inp + (long)n * 2 * F, *u = g + F, *d = dout + (long)n * F;
        float *dg = dinp + (long)n * 2 * F, *du = dg + F;
        for (int i = 0; i < F; i++) {
            float sig = 1.0f / (1.0f + vm_expf(-g[i]));
            float silu = g[i] * sig;
            dg[i] += d[i] * u[i] * (sig + silu * (1.0f - sig));
            du[i] += d[i] * silu;
        }
    }
}

// ---- residual ----

// a, b (n) -> out (n)
void residual_forward(float *out, const float *a, const float *b, long n) {
#pragma omp parallel for if (PAR(n))
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// ---- dropout ----

uint64_t dropout_key(uint64_t seed, uint64_t site) {
    return nn_mix64(seed ^ nn_mix64(0x9e3779b97f4a7c15ULL * site));
}

int dropout_kept(uint64_t key, uint64_t idx, double p) {
    return (double)nn_drop_draw(key, idx) * 0x1.0p-53 >= p;
}

void dropout_apply(float *out, const float *x, long n, uint64_t key, double p, uint64_t base) {
    float keep = (float)(1.0 / (1.0 - p));
#pragma omp parallel for if (PAR(n))
    for (long j = 0; j < n; j++)
        out[j] = dropout_kept(key, base + (uint64_t)j, p) ? x[j] * keep : 0.0f;
}

// ---- embedding ----

// tokens (N), pos (N), wte (V,C), wpe (maxT,C) or NULL -> out (N,C)
void embedding_forward(float *out, const int *tokens, const int *pos, const float *wte,
                       const float *wpe, int N, int C) {
#pragma omp parallel for if (PAR((long)N * C))
    for (int n = 0; n < N; n++) {
        float *o = out + (long)n * C;
        const float *e = wte + (long)tokens[n] * C;
        if (wpe) {
            const float *p = wpe + (long)pos[n] * C;
            for (int i = 0; i < C; i++) o[i] = e[i] + p[i];
        } else {
            for (int i = 0; i < C; i++) o[i] = e[i];
        }
    }
}

// dout (N,C) -> dwte (V,C) +=, dwpe (maxT,C) +=; either may be NULL (frozen). Tokens
// repeat, so threads split the channels rather than the rows.
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                        const int *pos, int N, int C) {
    if (!dwte && !dwpe) return;
    enum { CB = 64 };
    int nb = (C + CB - 1) / CB;
#pragma omp parallel for if (PAR((long)N * C) && nb > 1)
    for (int blk = 0; blk < nb; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (long)n * C;
            if (dwte) {
                float *e = dwte + (long)tokens[n] * C;
                for (int i = c0; i < c1; i++) e[i] += d[i];
            }
            if (dwpe) {
                float *p = dwpe + (long)pos[n] * C;
                for (int i = c0; i < c1; i++) p[i] += d[i];
            }
        }
    }
}

// ---- optimizer ----

// p, g, m, v (n): one AdamW step t (1-based), as torch.optim.AdamW
void adamw_update(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int t) {
    // fold the bias corrections into the step: mhat / (sqrt(vhat) + eps)
    const float bc1 = (float)(1.0 - pow(beta1, t));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, t));
    const float step = lr / bc1;
    const float decay = lr * weight_decay;
    enum { BLOCK = 256 };  // blocks so that the square roots can be taken a vector at a time
    long nb = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for if (PAR(n))
    for (long blk = 0; blk < nb; blk++) {
        long i0 = blk * BLOCK;
        int len = n - i0 < BLOCK ? (int)(n - i0) : BLOCK;
        float *pb = p + i0, *mb = m + i0, *vb = v + i0;
        const float *gb = g + i0;
        float root[BLOCK];
        for (int i = 0; i < len; i++) {
            float gi = gb[i];
            mb[i] = beta1 * mb[i] + (1.0f - beta1) * gi;
            vb[i] = beta2 * vb[i] + (1.0f - beta2) * gi * gi;
            root[i] = vb[i];
        }
        vm_sqrt_inplace(root, len);
        for (int i = 0; i < len; i++)
            pb[i] -= step * mb[i] / (root[i] / bc2_sqrt + eps) + decay * pb[i];
    }
}

// g (n) -> sum of g^2, accumulated in double
double sum_squares(const float *g, long n) {
    enum { BLOCK = 4096 };  // a vectorised partial sum per block, the blocks summed by OpenMP
    long nb = (n + BLOCK - 1) / BLOCK;
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (PAR(n))
    for (long blk = 0; blk < nb; blk++) {
        long i0 = blk * BLOCK, i1 = i0 + BLOCK < n ? i0 + BLOCK : n;
        double sb = 0.0;
#pragma omp simd reduction(+ : sb)
        for (long i = i0; i < i1; i++) sb += (double)g[i] * g[i];
        s += sb;
    }
    return s;
}

// x (n) *= s
void scale_inplace(float *x, long n, float s) {
#pragma omp parallel for if (PAR(n))
    for (long i = 0; i < n; i++) x[i] *= s;
}
