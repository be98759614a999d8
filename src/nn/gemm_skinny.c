// gemm_skinny: C (M,N) = alpha * A (M,K) @ B^T + beta*C for few rows M — the shape
// of every Linear during decoding (M = batch) — where a general GEMM wastes its
// time packing B. Each row of B (a weight row) is streamed from memory once and
// dotted with all M rows of A, so the cost is one pass over the weights: the
// memory-bandwidth bound of decoding. OpenMP splits the N weight rows.
#include <string.h>

#include "nn/nn.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define SKINNY_MAX_M 8

// dot products of one weight row w (K) with up to 8 rows of A
static inline void dots(const float *A, int lda, int M, const float *w, int K, float *out) {
#if defined(__AVX512F__)
    __m512 acc[SKINNY_MAX_M];
    for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 wv = _mm512_loadu_ps(w + k);
        for (int m = 0; m < M; m++)
            acc[m] = _mm512_fmadd_ps(_mm512_loadu_ps(A + (size_t)m * lda + k), wv, acc[m]);
    }
    if (k < K) {
        __mmask16 mk = (__mmask16)((1u << (K - k)) - 1);
        __m512 wv = _mm512_maskz_loadu_ps(mk, w + k);
        for (int m = 0; m < M; m++)
            acc[m] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, A + (size_t)m * lda + k), wv, acc[m]);
    }
    for (int m = 0; m < M; m++) out[m] = _mm512_reduce_add_ps(acc[m]);
#else
    typedef float v8 __attribute__((vector_size(32)));
    v8 acc[SKINNY_MAX_M];
    for (int m = 0; m < M; m++) acc[m] = (v8){0};
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        v8 wv;
        memcpy(&wv, w + k, sizeof wv);
        for (int m = 0; m < M; m++) {
            v8 av;
            memcpy(&av, A + (size_t)m * lda + k, sizeof av);
            acc[m] += av * wv;
        }
    }
    for (int m = 0; m < M; m++) {
        float s = 0;
        for (int i = 0; i < 8; i++) s += acc[m][i];
        for (int kk = k; kk < K; kk++) s += A[(size_t)m * lda + kk] * w[kk];
        out[m] = s;
    }
#endif
}

// A (M,K) row stride lda; B (N,K) row stride ldb (i.e. op(B) = B^T); M <= 8
void gemm_skinny_nt(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc) {
#pragma omp parallel for schedule(static) if (N >= 64)
    for (int n = 0; n < N; n++) {
        float d[SKINNY_MAX_M];
        dots(A, lda, M, B + (size_t)n * ldb, K, d);
        for (int m = 0; m < M; m++) {
            float *c = C + (size_t)m * ldc + n;
            *c = beta == 0.0f ? alpha * d[m] : alpha * d[m] + beta * *c;
        }
    }
}
