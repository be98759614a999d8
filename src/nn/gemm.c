// gemm: the one matrix multiply everything else is built on, and the Linear layer
// on top of it. Built with RLHF_USE_CBLAS, gemm() is OpenBLAS sgemm (row-major);
// otherwise it is gemm_portable, a packed, cache-blocked GEMM in the GotoBLAS/BLIS
// style: blocks of op(A) and op(B) are copied into contiguous panels (which handles
// every transpose and stride in one place, so the arithmetic never sees them) and a
// register-blocked micro-kernel (AVX-512, AVX2+FMA, or generic vectors) multiplies
// panels. Tiles of C are shared among OpenMP threads, unless we already run inside a
// parallel region (attention calls gemm per head from one), where it is serial.
// Measured (bench/bench_kernels.c, 2 Zen-class AVX-512 cores): gemm_portable ~350-420
// GFLOP/s at GPT-2 shapes; Debian's OpenBLAS 0.3.21 picks its Haswell kernels on this CPU
// (~240) and reaches ~450 only with OPENBLAS_CORETYPE=SkylakeX in the environment.
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"
#ifdef RLHF_USE_CBLAS
#include <cblas.h>
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif



// ---- micro-kernel: a MR x NR block of C from a packed A sliver and B sliver ----
// VL floats per vector; NR = 2 vectors wide, MR rows tall (2*MR accumulators must fit
// the register file: 16 of 32 zmm, 12 of 16 ymm). With AVX-512, 12 rows made gcc 12 spill
// and ran ~25% slower than 8.
#if defined(__AVX512F__)
#define VL 16
#define MR 8
#define MC 128
#define NC 512
typedef __m512 vec_t;
static inline vec_t vec_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vec_store(float *p, vec_t v) { _mm512_storeu_ps(p, v); }
static inline vec_t vec_bcast(float x) { return _mm512_set1_ps(x); }
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) { return _mm512_fmadd_ps(a, b, c); }
static inline vec_t vec_zero(void) { return _mm512_setzero_ps(); }
static inline vec_t vec_mul(vec_t a, vec_t b) { return _mm512_mul_ps(a, b); }
#elif defined(__AVX2__) && defined(__FMA__)
#define VL 8
#define MR 6
#define MC 120
#define NC 512
typedef __m256 vec_t;
static inline vec_t vec_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vec_store(float *p, vec_t v) { _mm256_storeu_ps(p, v); }
static inline vec_t vec_bcast(float x) { return _mm256_set1_ps(x); }
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) { return _mm256_fmadd_ps(a, b, c); }
static inline vec_t vec_zero(void) { return _mm256_setzero_ps(); }
static inline vec_t vec_mul(vec_t a, vec_t b) { return _mm256_mul_ps(a, b); }
#else
#define VL 4
#define MR 4
#define MC 64
#define NC 256
typedef float vec_t __attribute__((vector_size(16)));
static inline vec_t vec_load(const float *p) {
    vec_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vec_store(float *p, vec_t v) { memcpy(p, &v, sizeof v); }
static inline vec_t vec_bcast(float x) { return (vec_t){x, x, x, x}; }
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) { return a * b + c; }
static inline vec_t vec_zero(void) { return (vec_t){0, 0, 0, 0}; }
static inline vec_t vec_mul(vec_t a, vec_t b) { return a * b; }
#endif
#define NR (2 * VL)
#define KC 256

// Ap (kc, MR) packed, Bp (kc, NR) packed -> acc (MR, NR) = Ap^T Bp. With c != NULL (a full
// tile) C (MR, NR at row stride ldc) = alpha acc + beta C, where beta = 0 ignores C;
// otherwise acc goes to ct for the caller to apply to a partial tile.
static inline void micro_kernel(int kc, const float *restrict Ap, const float *restrict Bp,
                                float *restrict c, long ldc, float alpha, float beta,
                                float *restrict ct) {
    vec_t c0[MR], c1[MR];
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = vec_zero();
    for (int p = 0; p < kc; p++) {
        vec_t b0 = vec_load(Bp + (long)p * NR), b1 = vec_load(Bp + (long)p * NR + VL);
        for (int r = 0; r < MR; r++) {
            vec_t a = vec_bcast(Ap[p * MR + r]);
            c0[r] = vec_fma(a, b0, c0[r]);
            c1[r] = vec_fma(a, b1, c1[r]);
        }
    }
    if (!c) {
        for (int r = 0; r < MR; r++) {
            vec_store(ct + r * NR, c0[r]);
            vec_store(ct + r * NR + VL, c1[r]);
        }
        return;
    }
    vec_t va = vec_bcast(alpha), vb = vec_bcast(beta);
    for (int r = 0; r < MR; r++) {
        float *cr = c + r * ldc;
        vec_t x0 = vec_mul(va, c0[r]), x1 = vec_mul(va, c1[r]);
        if (beta != 0.0f) {
            x0 = vec_fma(vb, vec_load(cr), x0);
            x1 = vec_fma(vb, vec_load(cr + VL), x1);
        }
        vec_store(cr, x0);
        vec_store(cr + VL, x1);
    }
}

typedef struct {
    int transA, transB, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} gemm_args;

// op(A)[i0:i0+mc, p0:p0+kc] -> slivers of MR rows, each (kc, MR), zero-padded
static void pack_a(const gemm_args *g, int i0, int mc, int p0, int kc, float *restrict dst) {
    for (int ir = 0; ir < mc; ir += MR, dst += (long)kc * MR) {
        int mr = mc - ir < MR ? mc - ir : MR;
        if (!g->transA) {
            for (int r = 0; r < mr; r++) {
                const float *src = g->A + (long)(i0 + ir + r) * g->lda + p0;
                for (int p = 0; p < kc; p++) dst[p * MR + r] = src[p];
            }
        } else {
            for (int p = 0; p < kc; p++) {
                const float *src = g->A + (long)(p0 + p) * g->lda + i0 + ir;
                for (int r = 0; r < mr; r++) dst[p * MR + r] = src[r];
            }
        }
        for (int r = mr; r < MR; r++)
            for (int p = 0; p < kc; p++) dst[p * MR + r] = 0.0f;
    }
}

// op(B)[p0:p0+kc, j0:j0+nc] -> slivers of NR columns, each (kc, NR), zero-padded
static void pack_b(const gemm_args *g, int p0, int kc, int j0, int nc, float *restrict dst) {
    for (int jr = 0; jr < nc; jr += NR, dst += (long)kc * NR) {
        int nr = nc - jr < NR ? nc - jr : NR;
        if (!g->transB) {
            for (int p = 0; p < kc; p++) {
                const float *src = g->B + (long)(p0 + p) * g->ldb + j0 + jr;
                float *d = dst + (long)p * NR;
                for (int c = 0; c < nr; c++) d[c] = src[c];
                for (int c = nr; c < NR; c++) d[c] = 0.0f;
            }
        } else {
            for (int c = 0; c < nr; c++) {
                const float *src = g->B + (long)(j0 + jr + c) * g->ldb + p0;
                for (int p = 0; p < kc; p++) dst[(long)p * NR + c] = src[p];
            }
            for (int c = nr; c < NR; c++)
                for (int p = 0; p < kc; p++) dst[(long)p * NR + c] = 0.0f;
        }
    }
}

// Per-thread packing buffers (bounded, so no allocation in the kernel).
static _Thread_local float pack_a_buf[MC * KC] __attribute__((aligned(64)));
static _Thread_local float pack_b_buf[KC * NC] __attribute__((aligned(64)));

// C[i0:i0+mc, j0:j0+nc] over the whole K; mc <= MC, nc <= NC
static void gemm_tile(const gemm_args *g, int i0, int mc, int j0, int nc) {
    float *pa = pack_a_buf, *pb = pack_b_buf;
    float ct[MR * NR] __attribute__((aligned(64)));
    const float alpha = g->alpha, beta = g->beta;
    for (int p0 = 0; p0 < g->K; p0 += KC) {
        int kc = g->K - p0 < KC ? g->K - p0 : KC;
        pack_b(g, p0, kc, j0, nc, pb);
        pack_a(g, i0, mc, p0, kc, pa);
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = nc - jr < NR ? nc - jr : NR;
            for (int ir = 0; ir < mc; ir += MR) {
                int mr = mc - ir < MR ? mc - ir : MR;
                float *c = g->C + (long)(i0 + ir) * g->ldc + j0 + jr;
                float b = p0 > 0 ? 1.0f : beta;  // later k blocks add to what the first wrote
                if (mr == MR && nr == NR) {
                    micro_kernel(kc, pa + (long)ir * kc, pb + (long)jr * kc, c, g->ldc, alpha, b,
                                 ct);
                    continue;
                }
                micro_kernel(kc, pa + (long)ir * kc, pb + (long)jr * kc, NULL, 0, alpha, b, ct);
                for (int r = 0; r < mr; r++, c += g->ldc) {
                    const float *t = ct + r * NR;
                    if (b == 0.0f)
                        for (int j = 0; j < nr; j++) c[j] = alpha * t[j];
                    else
                        for (int j = 0; j < nr; j++) c[j] = alpha * t[j] + b * c[j];
                }
            }
        }
    }
}

// C (M,N) = beta * C, where beta == 0 writes zeros whatever C held
static void scale_c(float *C, int M, int N, int ldc, float beta) {
    for (int i = 0; i < M; i++) {
        float *c = C + (long)i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

// C (M,N) = alpha op(A) op(B) + beta C, any transposes and row strides
void gemm_portable(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(C, M, N, ldc, beta);
        return;
    }
    gemm_args g = {transA, transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
    int mc = MC, nc = NC;
    int par = !nn_in_parallel() && (double)M * N * K >= 64.0 * 64 * 64 && nn_max_threads() > 1;
    if (par) {  // narrower tiles when there would be too few to keep every thread busy
        int want = 4 * nn_max_threads();
        while (((M + mc - 1) / mc) * ((N + nc - 1) / nc) < want && nc > NR) nc /= 2;
        while (((M + mc - 1) / mc) * ((N + nc - 1) / nc) < want && mc > MR) mc = mc / 2 / MR * MR;
        if (mc < MR) mc = MR;
    }
    int mt = (M + mc - 1) / mc, nt = (N + nc - 1) / nc;
    int ntiles = mt * nt;
#pragma omp parallel for schedule(dynamic, 1) if (par && ntiles > 1)
    for (int t = 0; t < ntiles; t++) {
        int i0 = (t / nt) * mc, j0 = (t % nt) * nc;
        gemm_tile(&g, i0, M - i0 < mc ? M - i0 : mc, j0, N - j0 < nc ? N - j0 : nc);
    }
}

// C (M,N) = alpha op(A) op(B) + beta C; OpenBLAS when built with it
void gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    // a few rows against a weight matrix (decoding): one streaming pass over B
    if (!transA && transB && M > 0 && M <= 8 && K >= 16 && N >= 64) {
        gemm_skinny_nt(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#if defined(RLHF_USE_CBLAS) && (!defined(__AVX512F__) || defined(RLHF_PREFER_CBLAS))
    // OpenBLAS, except on AVX-512 machines: there our own packed AVX-512 kernel
    // beats Debian's OpenBLAS 0.3.21 (which runs its Haswell kernel on these CPUs)
    // by 1.4x end to end (make bench; docs/benchmarks.md). -DRLHF_PREFER_CBLAS
    // restores OpenBLAS everywhere.
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(C, M, N, ldc, beta);
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    gemm_portable(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

// ---- linear ----

// inp (N,C), w (OC,C), b (OC) or NULL -> out (N,OC)
void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC) {
    gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
    if (!b) return;
#pragma omp parallel for if (!nn_in_parallel() && (long)N * OC > 16384)
    for (int n = 0; n < N; n++) {
        float *o = out + (long)n * OC;
        for (int k = 0; k < OC; k++) o[k] += b[k];
    }
}

// dout (N,OC) -> dinp (N,C) +=, dw (OC,C) +=, db (OC) +=
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    if (dinp) gemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    if (dw) gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (!db) return;
    // column blocks so that threads never share a db entry
    enum { CB = 256 };
    int nb = (OC + CB - 1) / CB;
#pragma omp parallel for if (!nn_in_parallel() && nb > 1 && (long)N * OC > 16384)
    for (int blk = 0; blk < nb; blk++) {
        int k0 = blk * CB, k1 = k0 + CB < OC ? k0 + CB : OC;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (long)n * OC;
            for (int k = k0; k < k1; k++) db[k] += d[k];
        }
    }
}
