// gemm_bf16: Linear layers whose weight is stored in bfloat16 (the upper 16 bits
// of an fp32: 8 exponent bits, 7 stored mantissa bits), with fp32 inputs, outputs
// and accumulation. Two uses: out = inp W16^T + b (every forward) and
// dinp += dout W16 (the input gradient through a frozen weight).
//
// Two implementations, chosen at run time (bf16_path):
//  - avx512bf16: vdpbf16ps (two bf16 products summed into an fp32 lane per
//    instruction). Its operands must both be bf16, so the fp32 input (inp or
//    dout) is rounded to bf16 (nearest even) as it is packed: the result is the
//    fp32-accumulated product of bf16(input) and the bf16 weight. vdpbf16ps
//    itself flushes subnormal inputs and results to zero and rounds each sum to
//    nearest even. Compiled with a target attribute, so the file needs no extra
//    build flags; run only where __builtin_cpu_supports("avx512bf16").
//      * decode shapes (N <= BF16_SKINNY_MAX rows): each weight row is streamed
//        from memory once and dotted with every input row (the bandwidth bound
//        of decoding, on half the bytes of fp32);
//      * larger N: a packed, cache-blocked GEMM like gemm.c's, with a micro-kernel
//        of 8 rows x 32 columns whose B panels hold bf16 pairs along K.
//  - portable: tiles of the weight are widened to fp32 (exact) and multiplied
//    with gemm(), so the input keeps its fp32 precision; correct on any CPU.
// RLHF_BF16_PATH=portable|avx512bf16|auto in the environment (read once) or
// bf16_set_path() forces one; avx512bf16 on a CPU without it stays portable.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"

#if defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 10)
#define HAVE_BF16_KERNELS 1
#include <immintrin.h>
#else
#define HAVE_BF16_KERNELS 0
#endif

// ---- conversion ----

static inline uint16_t f2bf(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    // NaN: keep sign and payload top, force the quiet bit (a NaN never becomes Inf)
    uint32_t nan = (u >> 16) | 0x40u;
    // round to nearest, ties to even: add 0x7fff plus the lowest kept bit
    uint32_t rne = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rne);
}

static inline float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

uint16_t bf16_from_f32(float x) { return f2bf(x); }
float f32_from_bf16(uint16_t h) { return bf2f(h); }

void bf16_from_f32_n(uint16_t *dst, const float *src, long n) {
#pragma omp parallel for if (!nn_in_parallel() && n > (1L << 20))
    for (long i = 0; i < n; i++) dst[i] = f2bf(src[i]);
}

void f32_from_bf16_n(float *dst, const uint16_t *src, long n) {
#pragma omp parallel for if (!nn_in_parallel() && n > (1L << 20))
    for (long i = 0; i < n; i++) dst[i] = bf2f(src[i]);
}

// ---- path selection ----

static int cpu_has_bf16(void) {
#if HAVE_BF16_KERNELS
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static int g_path = -1;  // -1 = not decided yet

static int decide_path(void) {
    const char *e = getenv("RLHF_BF16_PATH");
    if (e && !strcmp(e, "portable")) return BF16_PATH_PORTABLE;
    if (e && *e && strcmp(e, "auto") && strcmp(e, "avx512bf16"))
        fprintf(stderr, "rlhf: RLHF_BF16_PATH=%s is not portable, avx512bf16 or auto; using auto\n",
                e);
    return cpu_has_bf16() ? BF16_PATH_AVX512BF16 : BF16_PATH_PORTABLE;
}

int bf16_path(void) {
    int p = __atomic_load_n(&g_path, __ATOMIC_RELAXED);
    if (p < 0) {
        p = decide_path();
        __atomic_store_n(&g_path, p, __ATOMIC_RELAXED);
    }
    return p;
}

int bf16_set_path(int path) {
    int p = path == BF16_PATH_PORTABLE ? BF16_PATH_PORTABLE
            : path == BF16_PATH_AVX512BF16 && cpu_has_bf16() ? BF16_PATH_AVX512BF16
            : path < 0 ? decide_path()
                       : BF16_PATH_PORTABLE;
    __atomic_store_n(&g_path, p, __ATOMIC_RELAXED);
    return p;
}

const char *bf16_path_name(int path) {
    return path == BF16_PATH_AVX512BF16 ? "avx512bf16" : "portable";
}

// ---- portable: widen weight tiles to fp32, multiply with gemm() ----

#define PT_BUF (1 << 16)  // floats in the per-thread tile buffer (256 KiB)
static _Thread_local float pt_buf[PT_BUF] __attribute__((aligned(64)));

// out (N,OC) = inp (N,C) w16^T (no bias)
static void fwd_portable(float *out, const float *inp, const uint16_t *w16, int N, int C, int OC) {
    int kb = C < 2048 ? C : 2048, jb = PT_BUF / kb;
    for (int j0 = 0; j0 < OC; j0 += jb) {
        int nj = OC - j0 < jb ? OC - j0 : jb;
        for (int k0 = 0; k0 < C; k0 += kb) {
            int nk = C - k0 < kb ? C - k0 : kb;
            for (int j = 0; j < nj; j++)
                for (int k = 0; k < nk; k++)
                    pt_buf[(long)j * nk + k] = bf2f(w16[(long)(j0 + j) * C + k0 + k]);
            gemm(0, 1, N, nj, nk, 1.0f, inp + k0, C, pt_buf, nk, k0 ? 1.0f : 0.0f, out + j0, OC);
        }
    }
}

// dinp (N,C) += dout (N,OC) w16
static void bwd_portable(float *dinp, const float *dout, const uint16_t *w16, int N, int C,
                         int OC) {
    int cb = C < 2048 ? C : 2048, kb = PT_BUF / cb;
    for (int k0 = 0; k0 < OC; k0 += kb) {
        int nk = OC - k0 < kb ? OC - k0 : kb;
        for (int c0 = 0; c0 < C; c0 += cb) {
            int nc = C - c0 < cb ? C - c0 : cb;
            for (int k = 0; k < nk; k++)
                for (int c = 0; c < nc; c++)
                    pt_buf[(long)k * nc + c] = bf2f(w16[(long)(k0 + k) * C + c0 + c]);
            gemm(0, 0, N, nc, nk, 1.0f, dout + k0, OC, pt_buf, nc, 1.0f, dinp + c0, C);
        }
    }
}

// ---- AVX512_BF16 ----
#if HAVE_BF16_KERNELS
#define TGT __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))
#define BH(x) ((__m512bh)(x))

// -- decode shapes: stream each weight row once --
// abuf: G rows of bf16 inputs, row stride ldab (a multiple of 32, zero beyond C)
#define SK_BUF (1 << 16)  // bf16 entries of converted input rows (128 KiB)
static _Thread_local uint16_t sk_buf[SK_BUF] __attribute__((aligned(64)));

// out[m*ldo + j] = dot(abuf row m, w16 row j) (+ b[j]) for G (1..8) rows, one weight row
static inline __attribute__((always_inline)) TGT void sk_row(int G, const uint16_t *abuf,
                                                             int ldab, const uint16_t *w, int C,
                                                             float *out, long ldo, float bj) {
    __m512 acc[8];
    for (int m = 0; m < G; m++) acc[m] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= C; k += 32) {
        __m512i wv = _mm512_loadu_si512(w + k);
        for (int m = 0; m < G; m++)
            acc[m] = _mm512_dpbf16_ps(acc[m], BH(_mm512_load_si512(abuf + (long)m * ldab + k)),
                                      BH(wv));
    }
    if (k < C) {  // abuf is zero past C, so only the weight needs the mask
        __mmask32 mk = (__mmask32)((1ull << (C - k)) - 1);
        __m512i wv = _mm512_maskz_loadu_epi16(mk, w + k);
        for (int m = 0; m < G; m++)
            acc[m] = _mm512_dpbf16_ps(acc[m], BH(_mm512_load_si512(abuf + (long)m * ldab + k)),
                                      BH(wv));
    }
    for (int m = 0; m < G; m++) out[m * ldo] = _mm512_reduce_add_ps(acc[m]) + bj;
}

// the same for two weight rows at once (w, w + C): each input load feeds two products
static inline __attribute__((always_inline)) TGT void sk_row2(int G, const uint16_t *abuf,
                                                              int ldab, const uint16_t *w, int C,
                                                              float *out, long ldo, float b0,
                                                              float b1) {
    __m512 acc[8], acd[8];
    for (int m = 0; m < G; m++) acc[m] = acd[m] = _mm512_setzero_ps();
    const uint16_t *w1 = w + C;
    int k = 0;
    for (; k + 32 <= C; k += 32) {
        __m512i wv = _mm512_loadu_si512(w + k), wu = _mm512_loadu_si512(w1 + k);
        for (int m = 0; m < G; m++) {
            __m512i av = _mm512_load_si512(abuf + (long)m * ldab + k);
            acc[m] = _mm512_dpbf16_ps(acc[m], BH(av), BH(wv));
            acd[m] = _mm512_dpbf16_ps(acd[m], BH(av), BH(wu));
        }
    }
    if (k < C) {
        __mmask32 mk = (__mmask32)((1ull << (C - k)) - 1);
        __m512i wv = _mm512_maskz_loadu_epi16(mk, w + k), wu = _mm512_maskz_loadu_epi16(mk, w1 + k);
        for (int m = 0; m < G; m++) {
            __m512i av = _mm512_load_si512(abuf + (long)m * ldab + k);
            acc[m] = _mm512_dpbf16_ps(acc[m], BH(av), BH(wv));
            acd[m] = _mm512_dpbf16_ps(acd[m], BH(av), BH(wu));
        }
    }
    for (int m = 0; m < G; m++) {
        out[m * ldo] = _mm512_reduce_add_ps(acc[m]) + b0;
        out[m * ldo + 1] = _mm512_reduce_add_ps(acd[m]) + b1;
    }
}

#define SK_CASE(g)                                                                             \
    case g: {                                                                                  \
        int j = j0;                                                                            \
        for (; j + 2 <= j1; j += 2)                                                            \
            sk_row2(g, abuf, ldab, w16 + (long)j * C, C, out + j, OC, b ? b[j] : 0.0f,         \
                    b ? b[j + 1] : 0.0f);                                                      \
        for (; j < j1; j++)                                                                    \
            sk_row(g, abuf, ldab, w16 + (long)j * C, C, out + j, OC, b ? b[j] : 0.0f);         \
    } break;

// rows [j0, j1) of the weight against G input rows
static TGT void sk_rows(int G, const uint16_t *abuf, int ldab, const uint16_t *w16, const float *b,
                        int C, int OC, float *out, int j0, int j1) {
    switch (G) {
        SK_CASE(1) SK_CASE(2) SK_CASE(3) SK_CASE(4) SK_CASE(5) SK_CASE(6) SK_CASE(7)
        default : SK_CASE(8)
    }
}

// out (N,OC) = inp (N,C) w16^T + b for small N
static TGT void fwd_skinny(float *out, const float *inp, const uint16_t *w16, const float *b,
                           int N, int C, int OC) {
    int ldab = (C + 31) / 32 * 32;
    int rows = SK_BUF / ldab;  // input rows converted at once
    if (rows > 64) rows = 64;
    const uint16_t *abuf = sk_buf;  // the caller's buffer, read by every thread
    for (int n0 = 0; n0 < N; n0 += rows) {
        int nr = N - n0 < rows ? N - n0 : rows;
        for (int m = 0; m < nr; m++) {
            uint16_t *d = sk_buf + (long)m * ldab;
            const float *s = inp + (long)(n0 + m) * C;
            for (int k = 0; k < C; k++) d[k] = f2bf(s[k]);
            for (int k = C; k < ldab; k++) d[k] = 0;
        }
        // weight rows in blocks of 16 (one 64-byte line of the output per row group)
        int nblk = (OC + 15) / 16;
#pragma omp parallel for schedule(static) if (!nn_in_parallel() && OC >= 64 && nn_max_threads() > 1)
        for (int blk = 0; blk < nblk; blk++) {
            int j0 = blk * 16, j1 = j0 + 16 < OC ? j0 + 16 : OC;
            // every group of 8 input rows re-reads the 16 weight rows from L1/L2
            for (int g0 = 0; g0 < nr; g0 += 8)
                sk_rows(nr - g0 < 8 ? nr - g0 : 8, abuf + (long)g0 * ldab, ldab, w16, b, C, OC,
                        out + (long)(n0 + g0) * OC, j0, j1);
        }
    }
}

// -- general shapes: packed GEMM on bf16 pairs --
// C (M,N) = A (M,K) fp32 @ op(B) + beta C, op(B) = B16^T (transB: B16 is (N,K)) or B16 (K,N).
// Panels hold uint32 pairs (low half = element 2p, high = 2p+1 along K).
#define BMR 8
#define BNR 32
#define BKP 128  // K pairs per block (256 values of K)
#define BMC 128
#define BNC 512
static _Thread_local uint32_t bpa[BMC * BKP] __attribute__((aligned(64)));
static _Thread_local uint32_t bpb[BKP * BNC] __attribute__((aligned(64)));

typedef struct {
    int transB, M, N, K;
    const float *A;
    const uint16_t *B;
    float *C;
    int lda, ldb, ldc;
    float beta;
} bgemm_args;

static inline uint32_t pair(uint16_t lo, uint16_t hi) { return (uint32_t)lo | (uint32_t)hi << 16; }

// A[i0:i0+mc, k0:k0+kc] -> slivers of BMR rows, each (kp, BMR) pairs, zero-padded
static void bpack_a(const bgemm_args *g, int i0, int mc, int k0, int kc, uint32_t *restrict dst) {
    int kp = (kc + 1) / 2;
    uint32_t row[BKP];
    for (int ir = 0; ir < mc; ir += BMR, dst += (long)kp * BMR) {
        int mr = mc - ir < BMR ? mc - ir : BMR;
        for (int r = 0; r < mr; r++) {
            const float *s = g->A + (long)(i0 + ir + r) * g->lda + k0;
            for (int p = 0; p < kc / 2; p++) row[p] = pair(f2bf(s[2 * p]), f2bf(s[2 * p + 1]));
            if (kc & 1) row[kp - 1] = pair(f2bf(s[kc - 1]), 0);
            for (int p = 0; p < kp; p++) dst[p * BMR + r] = row[p];
        }
        for (int r = mr; r < BMR; r++)
            for (int p = 0; p < kp; p++) dst[p * BMR + r] = 0;
    }
}

// op(B)[k0:k0+kc, j0:j0+nc] -> slivers of BNR columns, each (kp, BNR) pairs, zero-padded
static void bpack_b(const bgemm_args *g, int k0, int kc, int j0, int nc, uint32_t *restrict dst) {
    int kp = (kc + 1) / 2;
    for (int jr = 0; jr < nc; jr += BNR, dst += (long)kp * BNR) {
        int nr = nc - jr < BNR ? nc - jr : BNR;
        if (g->transB) {  // column c is row j0+jr+c of B16: its pairs are contiguous
            for (int c = 0; c < nr; c++) {
                const uint16_t *s = g->B + (long)(j0 + jr + c) * g->ldb + k0;
                for (int p = 0; p < kc / 2; p++) {
                    uint32_t v;
                    memcpy(&v, s + 2 * p, sizeof v);
                    dst[(long)p * BNR + c] = v;
                }
                if (kc & 1) dst[(long)(kp - 1) * BNR + c] = pair(s[kc - 1], 0);
            }
        } else {  // interleave rows 2p and 2p+1 of B16
            for (int p = 0; p < kp; p++) {
                const uint16_t *r0 = g->B + (long)(k0 + 2 * p) * g->ldb + j0 + jr;
                const uint16_t *r1 = 2 * p + 1 < kc ? r0 + g->ldb : NULL;
                uint32_t *d = dst + (long)p * BNR;
                if (r1)
                    for (int c = 0; c < nr; c++) d[c] = pair(r0[c], r1[c]);
                else
                    for (int c = 0; c < nr; c++) d[c] = pair(r0[c], 0);
            }
        }
        for (int c = nr; c < BNR; c++)
            for (int p = 0; p < kp; p++) dst[(long)p * BNR + c] = 0;
    }
}

// acc (BMR, BNR) = Ap^T Bp over kp pairs; c != NULL: C tile = acc + beta C (beta 0 or 1)
static inline TGT void bmicro(int kp, const uint32_t *restrict Ap, const uint32_t *restrict Bp,
                              float *restrict c, long ldc, float beta, float *restrict ct) {
    __m512 c0[BMR], c1[BMR];
    for (int r = 0; r < BMR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        __m512i b0 = _mm512_load_si512(Bp + (long)p * BNR),
                b1 = _mm512_load_si512(Bp + (long)p * BNR + 16);
        for (int r = 0; r < BMR; r++) {
            __m512i a = _mm512_set1_epi32((int)Ap[p * BMR + r]);
            c0[r] = _mm512_dpbf16_ps(c0[r], BH(a), BH(b0));
            c1[r] = _mm512_dpbf16_ps(c1[r], BH(a), BH(b1));
        }
    }
    if (!c) {
        for (int r = 0; r < BMR; r++) {
            _mm512_storeu_ps(ct + r * BNR, c0[r]);
            _mm512_storeu_ps(ct + r * BNR + 16, c1[r]);
        }
        return;
    }
    for (int r = 0; r < BMR; r++) {
        float *cr = c + r * ldc;
        __m512 x0 = c0[r], x1 = c1[r];
        if (beta != 0.0f) {
            x0 = _mm512_add_ps(x0, _mm512_loadu_ps(cr));
            x1 = _mm512_add_ps(x1, _mm512_loadu_ps(cr + 16));
        }
        _mm512_storeu_ps(cr, x0);
        _mm512_storeu_ps(cr + 16, x1);
    }
}

static TGT void btile(const bgemm_args *g, int i0, int mc, int j0, int nc) {
    float ct[BMR * BNR] __attribute__((aligned(64)));
    for (int k0 = 0; k0 < g->K; k0 += 2 * BKP) {
        int kc = g->K - k0 < 2 * BKP ? g->K - k0 : 2 * BKP, kp = (kc + 1) / 2;
        bpack_b(g, k0, kc, j0, nc, bpb);
        bpack_a(g, i0, mc, k0, kc, bpa);
        float beta = k0 > 0 ? 1.0f : g->beta;
        for (int jr = 0; jr < nc; jr += BNR) {
            int nr = nc - jr < BNR ? nc - jr : BNR;
            for (int ir = 0; ir < mc; ir += BMR) {
                int mr = mc - ir < BMR ? mc - ir : BMR;
                float *c = g->C + (long)(i0 + ir) * g->ldc + j0 + jr;
                const uint32_t *ap = bpa + (long)ir * kp, *bp = bpb + (long)jr * kp;
                if (mr == BMR && nr == BNR) {
                    bmicro(kp, ap, bp, c, g->ldc, beta, ct);
                    continue;
                }
                bmicro(kp, ap, bp, NULL, 0, beta, ct);
                for (int r = 0; r < mr; r++, c += g->ldc) {
                    const float *t = ct + r * BNR;
                    if (beta == 0.0f)
                        for (int j = 0; j < nr; j++) c[j] = t[j];
                    else
                        for (int j = 0; j < nr; j++) c[j] += t[j];
                }
            }
        }
    }
}

static void bgemm(int transB, int M, int N, int K, const float *A, int lda, const uint16_t *B,
                  int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta == 0.0f)
            for (int i = 0; i < M; i++) memset(C + (long)i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    bgemm_args g = {transB, M, N, K, A, B, C, lda, ldb, ldc, beta};
    int mc = BMC, nc = BNC;
    int par = !nn_in_parallel() && (double)M * N * K >= 64.0 * 64 * 64 && nn_max_threads() > 1;
    if (par) {
        int want = 4 * nn_max_threads();
        while (((M + mc - 1) / mc) * ((N + nc - 1) / nc) < want && nc > BNR) nc /= 2;
        while (((M + mc - 1) / mc) * ((N + nc - 1) / nc) < want && mc > BMR)
            mc = mc / 2 / BMR * BMR;
        if (mc < BMR) mc = BMR;
    }
    int mt = (M + mc - 1) / mc, nt = (N + nc - 1) / nc, ntiles = mt * nt;
#pragma omp parallel for schedule(dynamic, 1) if (par && ntiles > 1)
    for (int t = 0; t < ntiles; t++) {
        int i0 = (t / nt) * mc, j0 = (t % nt) * nc;
        btile(&g, i0, M - i0 < mc ? M - i0 : mc, j0, N - j0 < nc ? N - j0 : nc);
    }
}
#endif  // HAVE_BF16_KERNELS

// ---- entry points ----

static void add_bias(float *out, const float *b, int N, int OC) {
    if (!b) return;
#pragma omp parallel for if (!nn_in_parallel() && (long)N * OC > 16384)
    for (int n = 0; n < N; n++) {
        float *o = out + (long)n * OC;
        for (int k = 0; k < OC; k++) o[k] += b[k];
    }
}

void linear_forward_bf16(float *out, const float *inp, const uint16_t *w16, const float *b, int N,
                         int C, int OC) {
    if (N <= 0 || OC <= 0) return;
#if HAVE_BF16_KERNELS
    if (bf16_path() == BF16_PATH_AVX512BF16) {
        if (N <= BF16_SKINNY_MAX && C > 0 && (C + 31) / 32 * 32 <= SK_BUF) {
            fwd_skinny(out, inp, w16, b, N, C, OC);
            return;
        }
        bgemm(1, N, OC, C, inp, C, w16, C, 0.0f, out, OC);
        add_bias(out, b, N, OC);
        return;
    }
#endif
    if (C <= 0) memset(out, 0, (size_t)N * OC * sizeof(float));
    else fwd_portable(out, inp, w16, N, C, OC);
    add_bias(out, b, N, OC);
}

void linear_backward_input_bf16(float *dinp, const float *dout, const uint16_t *w16, int N, int C,
                                int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
#if HAVE_BF16_KERNELS
    if (bf16_path() == BF16_PATH_AVX512BF16) {
        bgemm(0, N, C, OC, dout, OC, w16, C, 1.0f, dinp, C);
        return;
    }
#endif
    bwd_portable(dinp, dout, w16, N, C, OC);
}
