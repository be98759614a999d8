// gemm_isa.h: the GEMM kernels, compiled once per instruction set. Not a normal header:
// gemm_avx512.c, gemm_avx2.c and gemm_generic.c each define GEMM_ISA_NAME and include it,
// and the Makefile compiles them with their own flags (ISA_FLAGS_*: -mavx512f...,
// -mavx2 -mfma -mno-avx512f, -mno-avx), so that one binary carries all three and gemm.c
// picks among them at run time (by CPU support, by measurement, or as forced).
//
// Two kernels per instruction set:
//  - packed: a packed, cache-blocked GEMM in the GotoBLAS/BLIS style: blocks of op(A)
//    and op(B) are copied into contiguous panels (which handles every transpose and stride
//    in one place, so the arithmetic never sees them) and a register-blocked micro-kernel
//    multiplies panels. Each OpenMP thread takes one rectangle of C (gemm_grid) and packs
//    its own panels, unless we already run inside a parallel region (attention calls gemm
//    per head from one), where it is serial.
//  - skinny: C (M,N) = alpha A B^T + beta C for few rows (M <= GEMM_SKINNY_MAX_M) against
//    a weight matrix B (N,K): the shape of every Linear while decoding (M = sequences).
//    Each weight row is streamed from memory once per call and dotted with all M rows
//    (two weight rows at a time, A in chunks of MR rows that stay in L1/L2), with no
//    packing: the memory-bandwidth bound of decoding. OpenMP splits the weight rows.
#ifndef GEMM_ISA_NAME
#error "gemm_isa.h is included by gemm_avx512.c, gemm_avx2.c and gemm_generic.c only"
#endif
#include <string.h>

#include "nn/gemm_paths.h"
#include "nn/nn.h"
#include "nn/nn_internal.h"
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define GEMM_CAT2(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT2(a, b)
#define GEMM_FN(name) GEMM_CAT(name, GEMM_ISA_NAME)

void GEMM_FN(gemm_packed_)(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, float *C, int ldc);
void GEMM_FN(gemm_skinny_)(int M, int N, int K, float alpha, const float *A, int lda,
                           const float *B, int ldb, float beta, float *C, int ldc);

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
static inline vec_t vec_load(const float *p) {
    return _mm512_loadu_ps(p);
}
static inline void vec_store(float *p, vec_t v) {
    _mm512_storeu_ps(p, v);
}
static inline vec_t vec_bcast(float x) {
    return _mm512_set1_ps(x);
}
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) {
    return _mm512_fmadd_ps(a, b, c);
}
static inline vec_t vec_zero(void) {
    return _mm512_setzero_ps();
}
static inline vec_t vec_mul(vec_t a, vec_t b) {
    return _mm512_mul_ps(a, b);
}
static inline float vec_hsum(vec_t v) {
    return _mm512_reduce_add_ps(v);
}
#define VEC_MASKED_TAIL 1
static inline vec_t vec_load_n(const float *p, int n) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
}
#elif defined(__AVX2__) && defined(__FMA__)
#define VL 8
#define MR 6
#define MC 120
#define NC 512
typedef __m256 vec_t;
static inline vec_t vec_load(const float *p) {
    return _mm256_loadu_ps(p);
}
static inline void vec_store(float *p, vec_t v) {
    _mm256_storeu_ps(p, v);
}
static inline vec_t vec_bcast(float x) {
    return _mm256_set1_ps(x);
}
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) {
    return _mm256_fmadd_ps(a, b, c);
}
static inline vec_t vec_zero(void) {
    return _mm256_setzero_ps();
}
static inline vec_t vec_mul(vec_t a, vec_t b) {
    return _mm256_mul_ps(a, b);
}
static inline float vec_hsum(vec_t v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
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
static inline void vec_store(float *p, vec_t v) {
    memcpy(p, &v, sizeof v);
}
static inline vec_t vec_bcast(float x) {
    return (vec_t){x, x, x, x};
}
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) {
    return a * b + c;
}
static inline vec_t vec_zero(void) {
    return (vec_t){0, 0, 0, 0};
}
static inline vec_t vec_mul(vec_t a, vec_t b) {
    return a * b;
}
static inline float vec_hsum(vec_t v) {
    return (v[0] + v[1]) + (v[2] + v[3]);
}
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
    if (c) // the tile of C read at the end: on its way while the loop runs
        for (int r = 0; r < MR; r++) {
            __builtin_prefetch(c + r * ldc, 1);
            __builtin_prefetch(c + r * ldc + NR - 1, 1);
        }
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

// Per-thread packing buffers (bounded, so no allocation in the kernel). In a parallel
// call the calling thread's B buffer is the one panel every thread reads.
static _Thread_local float pack_a_buf[MC * KC] __attribute__((aligned(64)));
static _Thread_local float pack_b_buf[KC * NC] __attribute__((aligned(64)));

// C[i0:i0+mc, j0+jr0 : j0+jr1] from the k block at p0 (kc deep): packed A pa (mc x kc)
// times the B slivers jr0..jr1 of the packed panel pb (kc x nc). B slivers outer, A
// slivers inner: a B sliver stays in L1 while the A block (L2) streams past it.
static void macro_kernel(const gemm_args *g, const float *pa, const float *pb, int p0, int kc,
                         int i0, int mc, int j0, int nc, int jr0, int jr1) {
    float ct[MR * NR] __attribute__((aligned(64)));
    const float alpha = g->alpha, b = p0 > 0 ? 1.0f : g->beta; // later k blocks add
    for (int jr = jr0; jr < jr1; jr += NR) {
        int nr = nc - jr < NR ? nc - jr : NR;
        for (int ir = 0; ir < mc; ir += MR) {
            int mr = mc - ir < MR ? mc - ir : MR;
            float *c = g->C + (long)(i0 + ir) * g->ldc + j0 + jr;
            if (mr == MR && nr == NR) {
                micro_kernel(kc, pa + (long)ir * kc, pb + (long)jr * kc, c, g->ldc, alpha, b, ct);
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

// C[i_lo:i_hi, j_lo:j_hi] on this thread: GotoBLAS's loops, each panel packed once.
static void gemm_serial(const gemm_args *g, int i_lo, int i_hi, int j_lo, int j_hi) {
    for (int j0 = j_lo; j0 < j_hi; j0 += NC) {
        int nc = j_hi - j0 < NC ? j_hi - j0 : NC;
        for (int p0 = 0; p0 < g->K; p0 += KC) {
            int kc = g->K - p0 < KC ? g->K - p0 : KC;
            pack_b(g, p0, kc, j0, nc, pack_b_buf);
            for (int i0 = i_lo; i0 < i_hi; i0 += MC) {
                int mc = i_hi - i0 < MC ? i_hi - i0 : MC;
                pack_a(g, i0, mc, p0, kc, pack_a_buf);
                macro_kernel(g, pack_a_buf, pack_b_buf, p0, kc, i0, mc, j0, nc, 0, nc);
            }
        }
    }
}

// The split of C among T threads: a grid of tm x tn rectangles (tm * tn = T) of whole MR-row
// and NR-column slivers, as equal as slivers allow. Each thread packs the A rows and B
// columns of its own rectangle and keeps them in its own cache (no shared panel: a panel
// one core packs and another reads crosses the caches, which cost more than packing A once
// per column of the grid). The grid minimises the largest rectangle's multiplications plus
// its packing (a copied element weighted as 16 multiply-adds).
static void gemm_grid(int M, int N, int T, int *tm, int *tn) {
    long msl = (M + MR - 1) / MR, nsl = (N + NR - 1) / NR;
    double best = -1;
    for (int d = 1; d <= T; d++) {
        if (T % d) continue;
        long rows = ((msl + T / d - 1) / (T / d)) * MR, cols = ((nsl + d - 1) / d) * NR;
        if (rows > M) rows = M;
        if (cols > N) cols = N;
        double cost = (double)rows * cols + 16.0 * (rows + cols);
        if (best < 0 || cost < best) best = cost, *tn = d, *tm = T / d;
    }
}

static void gemm_parallel(const gemm_args *g, int nthreads) {
#pragma omp parallel num_threads(nthreads)
    {
        int T = 1, t = 0;
#ifdef _OPENMP
        T = omp_get_num_threads(), t = omp_get_thread_num();
#endif
        int tm = 1, tn = 1;
        gemm_grid(g->M, g->N, T, &tm, &tn);
        long msl = (g->M + MR - 1) / MR, nsl = (g->N + NR - 1) / NR;
        int r = t / tn, c = t % tn;
        int i_lo = (int)(msl * r / tm) * MR, i_hi = (int)(msl * (r + 1) / tm) * MR;
        int j_lo = (int)(nsl * c / tn) * NR, j_hi = (int)(nsl * (c + 1) / tn) * NR;
        if (i_hi > g->M) i_hi = g->M;
        if (j_hi > g->N) j_hi = g->N;
        if (i_lo < i_hi && j_lo < j_hi) gemm_serial(g, i_lo, i_hi, j_lo, j_hi);
    }
}

// C (M,N) = alpha op(A) op(B) + beta C, any transposes and row strides
void GEMM_FN(gemm_packed_)(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        gemm_scale_c(C, M, N, ldc, beta);
        return;
    }
    gemm_args g = {transA, transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
    int nt = nn_max_threads();
    if (!nn_in_parallel() && (double)M * N * K >= 64.0 * 64 * 64 && nt > 1)
        gemm_parallel(&g, nt);
    else
        gemm_serial(&g, 0, M, 0, N);
}

// ---- skinny: few rows against a weight matrix, one pass over the weights ----

// d0[m] = A[m] . w0, d1[m] = A[m] . w1 for the mr (<= MR) rows of A at A (stride lda)
static inline void skinny_dots(const float *restrict A, int lda, int mr, const float *restrict w0,
                               const float *restrict w1, int K, float *d0, float *d1) {
    vec_t a0[MR], a1[MR];
    for (int m = 0; m < mr; m++) a0[m] = a1[m] = vec_zero();
    int k = 0;
    for (; k + VL <= K; k += VL) {
        vec_t x0 = vec_load(w0 + k), x1 = vec_load(w1 + k);
        for (int m = 0; m < mr; m++) {
            vec_t a = vec_load(A + (size_t)m * lda + k);
            a0[m] = vec_fma(a, x0, a0[m]);
            a1[m] = vec_fma(a, x1, a1[m]);
        }
    }
#ifdef VEC_MASKED_TAIL
    if (k < K) {
        vec_t x0 = vec_load_n(w0 + k, K - k), x1 = vec_load_n(w1 + k, K - k);
        for (int m = 0; m < mr; m++) {
            vec_t a = vec_load_n(A + (size_t)m * lda + k, K - k);
            a0[m] = vec_fma(a, x0, a0[m]);
            a1[m] = vec_fma(a, x1, a1[m]);
        }
    }
    for (int m = 0; m < mr; m++) d0[m] = vec_hsum(a0[m]), d1[m] = vec_hsum(a1[m]);
#else
    for (int m = 0; m < mr; m++) {
        float s0 = vec_hsum(a0[m]), s1 = vec_hsum(a1[m]);
        const float *a = A + (size_t)m * lda;
        for (int kk = k; kk < K; kk++) s0 += a[kk] * w0[kk], s1 += a[kk] * w1[kk];
        d0[m] = s0, d1[m] = s1;
    }
#endif
}

// register tiles of the skinny kernel: SK_A rows of A against SK_W weight rows
// (SK_A * SK_W accumulators: 24 of 32 zmm, 12 of 16 ymm, 8 of 16 xmm)
#if VL == 16
#define SK_W 4
#define SK_A 6
#elif VL == 8
#define SK_W 2
#define SK_A 6
#else
#define SK_W 2
#define SK_A 4
#endif

// d[m * SK_W + j] = A[m] . W[j] for a full tile. Each dot is summed in the same order as
// skinny_dots sums it (vector lanes over k, the same tail, then across lanes), so a
// result never depends on which of the two computed it.
static inline void skinny_tile(const float *restrict A, int lda, const float *restrict W, int ldb,
                               int K, float *restrict d) {
    vec_t acc[SK_A][SK_W];
    for (int m = 0; m < SK_A; m++)
        for (int j = 0; j < SK_W; j++) acc[m][j] = vec_zero();
    int k = 0;
    for (; k + VL <= K; k += VL) {
        vec_t w[SK_W];
        for (int j = 0; j < SK_W; j++) w[j] = vec_load(W + (size_t)j * ldb + k);
        for (int m = 0; m < SK_A; m++) {
            vec_t a = vec_load(A + (size_t)m * lda + k);
            for (int j = 0; j < SK_W; j++) acc[m][j] = vec_fma(a, w[j], acc[m][j]);
        }
    }
#ifdef VEC_MASKED_TAIL
    if (k < K) {
        vec_t w[SK_W];
        for (int j = 0; j < SK_W; j++) w[j] = vec_load_n(W + (size_t)j * ldb + k, K - k);
        for (int m = 0; m < SK_A; m++) {
            vec_t a = vec_load_n(A + (size_t)m * lda + k, K - k);
            for (int j = 0; j < SK_W; j++) acc[m][j] = vec_fma(a, w[j], acc[m][j]);
        }
    }
    for (int m = 0; m < SK_A; m++)
        for (int j = 0; j < SK_W; j++) d[m * SK_W + j] = vec_hsum(acc[m][j]);
#else
    for (int m = 0; m < SK_A; m++)
        for (int j = 0; j < SK_W; j++) {
            float s = vec_hsum(acc[m][j]);
            const float *a = A + (size_t)m * lda, *w = W + (size_t)j * ldb;
            for (int kk = k; kk < K; kk++) s += a[kk] * w[kk];
            d[m * SK_W + j] = s;
        }
#endif
}

static inline void skinny_store(float *c, float d, float alpha, float beta) {
    *c = beta == 0.0f ? alpha * d : alpha * d + beta * *c;
}

// C[:, n0:n0+2] (or one column) for all M rows, two weight rows at a time
static void skinny_pair(int M, int n, int two, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc, int m_from) {
    const float *w0 = B + (size_t)n * ldb, *w1 = two ? w0 + ldb : w0;
    for (int m0 = m_from; m0 < M; m0 += MR) {
        int mr = M - m0 < MR ? M - m0 : MR;
        float d0[MR], d1[MR];
        skinny_dots(A + (size_t)m0 * lda, lda, mr, w0, w1, K, d0, d1);
        for (int m = 0; m < mr; m++) {
            float *c = C + (size_t)(m0 + m) * ldc + n;
            skinny_store(c, d0[m], alpha, beta);
            if (two) skinny_store(c + 1, d1[m], alpha, beta);
        }
    }
}

// A (M,K) row stride lda; B (N,K) row stride ldb (op(B) = B^T); M <= GEMM_SKINNY_MAX_M.
// Weight rows go in groups of SK_W (threads split the groups); within a group, full tiles
// of SK_A rows of A, and the rows left over two weight rows at a time.
void GEMM_FN(gemm_skinny_)(int M, int N, int K, float alpha, const float *A, int lda,
                           const float *B, int ldb, float beta, float *C, int ldc) {
    int ngroup = (N + SK_W - 1) / SK_W, mfull = M / SK_A * SK_A;
#pragma omp parallel for schedule(static) if (!nn_in_parallel() && N >= 64)
    for (int g = 0; g < ngroup; g++) {
        int n0 = g * SK_W;
        if (n0 + SK_W <= N) {
            for (int m0 = 0; m0 < mfull; m0 += SK_A) {
                float d[SK_A * SK_W];
                skinny_tile(A + (size_t)m0 * lda, lda, B + (size_t)n0 * ldb, ldb, K, d);
                for (int m = 0; m < SK_A; m++)
                    for (int j = 0; j < SK_W; j++)
                        skinny_store(C + (size_t)(m0 + m) * ldc + n0 + j, d[m * SK_W + j], alpha,
                                     beta);
            }
            if (mfull < M)
                for (int j = 0; j < SK_W; j += 2)
                    skinny_pair(M, n0 + j, 1, K, alpha, A, lda, B, ldb, beta, C, ldc, mfull);
        } else { // the last, partial group: every row of A
            for (int n = n0; n < N; n += 2)
                skinny_pair(M, n, n + 1 < N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0);
        }
    }
}
