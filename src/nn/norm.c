// norm: LayerNorm (GPT-2) and RMSNorm (Llama), forward and backward. Rows are
// independent, so the forward and the input gradient run one row per OpenMP
// iteration; the weight/bias gradients sum over rows, so they take a second pass
// split by channel blocks, which keeps threads off each other's accumulators
// without any scratch memory.
#include <math.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"


#define PAR_ROWS(N, C) (!nn_in_parallel() && (long)(N) * (C) > 8192)
enum { CHANNEL_BLOCK = 128 };

// inp (N,C), w (C), b (C) -> out (N,C); mean, rstd (N)
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps) {
#pragma omp parallel for if (PAR_ROWS(N, C))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        float *o = out + (long)n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < C; i++) s += x[i];
        float m = s / C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        float r = 1.0f / sqrtf(v / C + eps);
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * r * w[i] + b[i];
        mean[n] = m;
        rstd[n] = r;
    }
}

// dout (N,C) -> dinp (N,C) +=, dw (C) +=, db (C) +=; any may be NULL
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    if (dinp) {
#pragma omp parallel for if (PAR_ROWS(N, C))
        for (int n = 0; n < N; n++) {
            const float *x = inp + (long)n * C, *d = dout + (long)n * C;
            float *di = dinp + (long)n * C;
            float m = mean[n], r = rstd[n];
            // dxhat = dout * w; dinp = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
            float sd = 0.0f, sdx = 0.0f;
#pragma omp simd reduction(+ : sd, sdx)
            for (int i = 0; i < C; i++) {
                float dxh = d[i] * w[i];
                sd += dxh;
                sdx += dxh * (x[i] - m) * r;
            }
            sd /= C;
            sdx /= C;
            for (int i = 0; i < C; i++) {
                float xh = (x[i] - m) * r;
                di[i] += r * (d[i] * w[i] - sd - xh * sdx);
            }
        }
    }
    if (!dw && !db) return;
    int nb = (C + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
#pragma omp parallel for if (PAR_ROWS(N, C) && nb > 1)
    for (int blk = 0; blk < nb; blk++) {
        int c0 = blk * CHANNEL_BLOCK, c1 = c0 + CHANNEL_BLOCK < C ? c0 + CHANNEL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (long)n * C, *d = dout + (long)n * C;
            float m = mean[n], r = rstd[n];
            if (dw)
                for (int i = c0; i < c1; i++) dw[i] += d[i] * (x[i] - m) * r;
            if (db)
                for (int i = c0; i < c1; i++) db[i] += d[i];
        }
    }
}

// inp (N,C), w (C) -> out (N,C) = inp * rstd * w; rstd (N)
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                     float eps) {
#pragma omp parallel for if (PAR_ROWS(N, C))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        float *o = out + (long)n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < C; i++) s += x[i] * x[i];
        float r = 1.0f / sqrtf(s / C + eps);
        for (int i = 0; i < C; i++) o[i] = x[i] * r * w[i];
        rstd[n] = r;
    }
}

// dout (N,C) -> dinp (N,C) +=, dw (C) +=; either may be NULL
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C) {
    if (dinp) {
#pragma omp parallel for if (PAR_ROWS(N, C))
        for (int n = 0; n < N; n++) {
            const float *x = inp + (long)n * C, *d = dout + (long)n * C;
            float *di = dinp + (long)n * C;
            float r = rstd[n];
            // d/dx_j (x_i r w_i) = r w_i [i=j] - r^3 x_i w_i x_j / C
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < C; i++) s += d[i] * w[i] * x[i];
            float k = s * r * r * r / C;
            for (int i = 0; i < C; i++) di[i] += r * d[i] * w[i] - k * x[i];
        }
    }
    if (!dw) return;
    int nb = (C + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
#pragma omp parallel for if (PAR_ROWS(N, C) && nb > 1)
    for (int blk = 0; blk < nb; blk++) {
        int c0 = blk * CHANNEL_BLOCK, c1 = c0 + CHANNEL_BLOCK < C ? c0 + CHANNEL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (long)n * C, *d = dout + (long)n * C;
            float r = rstd[n];
            for (int i = c0; i < c1; i++) dw[i] += d[i] * x[i] * r;
        }
    }
}
