// test_kernels: every kernel in src/nn against an independent reference.
// Backward passes are checked by central finite differences of the scalar loss
// L = sum(out * wts), accumulated in double, so dout = wts; forward passes by
// naive double-precision implementations; gemm against a triple loop for every
// transpose, stride and beta; AdamW against a hand computation. Sizes are tiny
// and odd so that every blocking edge case is hit.
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "nn/nn.h"
#include "nn/nn_internal.h"
#include "test.h"

static rlhf_rng rng;

static float *randn(long n, float scale) {
    float *x = xmalloc((size_t)(n ? n : 1) * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = scale * rng_normal(&rng);
    return x;
}
static float *zeros(long n) { return xcalloc((size_t)(n ? n : 1), sizeof(float)); }
static float *copy_of(const float *x, long n) {
    float *y = xmalloc((size_t)(n ? n : 1) * sizeof(float));
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}
static double max_abs_diff(const float *a, const float *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

// ------------------------------------------------------ finite differences --
// A case points fd_forward at a function that recomputes fd_out (fd_nout floats) from
// its current inputs; the loss is sum(fd_out * fd_wts) in double.
static void (*fd_forward)(void);
static const float *fd_out, *fd_wts;
static long fd_nout;

static double fd_loss(void) {
    fd_forward();
    double s = 0;
    for (long i = 0; i < fd_nout; i++) s += (double)fd_out[i] * fd_wts[i];
    return s;
}

static void fd_setup(void (*fwd)(void), const float *out, const float *wts, long nout) {
    fd_forward = fwd;
    fd_out = out;
    fd_wts = wts;
    fd_nout = nout;
}

// grad (n) vs central differences of fd_loss in x (n). Per entry: |num - grad| <=
// rtol |num| + atol max|num|; over the whole array the relative L2 error must be < rtol.
static void grad_check(const char *what, float *x, const float *grad, long n, float eps,
                       double rtol, double atol) {
    double *num = xmalloc((size_t)n * sizeof(double));
    for (long i = 0; i < n; i++) {
        float x0 = x[i], xp = x0 + eps, xm = x0 - eps;
        x[i] = xp;
        double lp = fd_loss();
        x[i] = xm;
        double lm = fd_loss();
        x[i] = x0;
        num[i] = (lp - lm) / ((double)xp - (double)xm);
    }
    fd_forward();  // leave the outputs as they were
    double scale = 0, err2 = 0, ref2 = 0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(num[i]));
    int bad = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(num[i] - grad[i]);
        err2 += d * d;
        ref2 += num[i] * num[i];
        if (!(d <= rtol * fabs(num[i]) + atol * scale)) {
            if (bad < 5) printf("  %s[%ld]: analytic %.7g numeric %.7g\n", what, i, grad[i], num[i]);
            bad++;
        }
    }
    CHECKF(bad == 0, "%s: %d of %ld entries differ", what, bad, n);
    CHECKF(sqrt(err2) <= rtol * sqrt(ref2), "%s: relative L2 error %.3g", what,
           sqrt(err2 / (ref2 > 0 ? ref2 : 1)));
    CHECKF(ref2 > 0, "%s: the gradient is identically zero, the check proves nothing", what);
    free(num);
}

// ------------------------------------------------------------------- gemm --

static float opget(const float *X, int trans, int ld, int r, int c) {
    return trans ? X[(long)c * ld + r] : X[(long)r * ld + c];
}

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

// one gemm call with padded strides against a double triple loop; the padding of C
// (columns N..ldc) must stay untouched
static void gemm_case(gemm_fn fn, const char *name, int tA, int tB, int M, int N, int K,
                      float alpha, float beta) {
    int ar = tA ? K : M, ac = tA ? M : K, br = tB ? N : K, bc = tB ? K : N;
    int lda = ac + 3, ldb = bc + 5, ldc = N + 2;
    float *A = randn((long)ar * lda, 1.0f), *B = randn((long)br * ldb, 1.0f);
    float *C = randn((long)M * ldc, 1.0f);
    if (beta == 0.0f)
        for (long i = 0; i < (long)M * ldc; i++) C[i] = NAN;  // beta = 0 must ignore C
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) C[(long)i * ldc + j] = 12345.0f;
    float *C0 = copy_of(C, (long)M * ldc);
    fn(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int bad = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < ldc; j++) {
            float got = C[(long)i * ldc + j];
            if (j >= N) {
                if (got != 12345.0f) bad++;
                continue;
            }
            double ref = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)opget(A, tA, lda, i, k) * opget(B, tB, ldb, k, j);
                ref += p;
                mag += fabs(p);
            }
            ref *= alpha;
            mag *= fabs(alpha);
            if (beta != 0.0f) {
                ref += (double)beta * C0[(long)i * ldc + j];
                mag += fabs((double)beta * C0[(long)i * ldc + j]);
            }
            if (!(fabs(got - ref) <= 2e-6 * (K + 2) * mag + 1e-30)) {
                if (bad < 3)
                    printf("  %s tA=%d tB=%d M=%d N=%d K=%d beta=%g: C[%d][%d] = %g, want %g\n",
                           name, tA, tB, M, N, K, beta, i, j, got, ref);
                bad++;
            }
        }
    }
    CHECKF(bad == 0, "%s tA=%d tB=%d M=%d N=%d K=%d alpha=%g beta=%g: %d wrong", name, tA, tB, M,
           N, K, alpha, beta, bad);
    free(A);
    free(B);
    free(C);
    free(C0);
}

static int test_gemm_vs_naive(void) {
    // small and odd shapes with every alpha/beta; then shapes past each blocking size
    // (rows, columns, depth) and big enough to be split among threads
    static const int shapes[][3] = {{1, 1, 1},     {7, 5, 3},       {37, 53, 29}, {13, 70, 300},
                                    {20, 600, 40}, {150, 200, 270}, {300, 40, 520}};
    for (int s = 0; s < 7; s++)
        for (int tA = 0; tA < 2; tA++)
            for (int tB = 0; tB < 2; tB++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], small = s < 4;
                gemm_case(gemm, "gemm", tA, tB, M, N, K, 1.0f, 0.0f);
                if (small) gemm_case(gemm, "gemm", tA, tB, M, N, K, 1.0f, 1.0f);
                gemm_case(gemm, "gemm", tA, tB, M, N, K, -0.7f, 0.5f);
                gemm_case(gemm_portable, "gemm_portable", tA, tB, M, N, K, 1.0f, 0.0f);
                gemm_case(gemm_portable, "gemm_portable", tA, tB, M, N, K, 1.0f, 1.0f);
                if (small) gemm_case(gemm_portable, "gemm_portable", tA, tB, M, N, K, -0.7f, 0.5f);
            }
    // degenerate sizes: K = 0 scales C by beta (0 overwrites NaN), M = 0 touches nothing
    float C[6] = {NAN, NAN, NAN, 1, 2, 3}, A[1] = {0}, B[1] = {0};
    gemm(0, 0, 1, 3, 0, 1.0f, A, 1, B, 3, 0.0f, C, 3);
    gemm(0, 0, 1, 3, 0, 1.0f, A, 1, B, 3, 2.0f, C + 3, 3);
    gemm(0, 0, 0, 3, 4, 1.0f, A, 1, B, 3, 0.0f, C, 3);
    CHECK(C[0] == 0 && C[1] == 0 && C[2] == 0 && C[3] == 2 && C[4] == 4 && C[5] == 6);
    float D[3] = {NAN, NAN, NAN};
    gemm_portable(0, 0, 1, 3, 0, 1.0f, A, 1, B, 3, 0.0f, D, 3);
    CHECK(D[0] == 0 && D[1] == 0 && D[2] == 0);
    return 0;
}

// ---- every GEMM path: forced one at a time, against the double triple loop ----

static int g_path, g_skinny;  // the path (and kernel) path_gemm runs
static void path_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_path_call(g_path, g_skinny, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static int test_gemm_every_path(void) {
    static const int shapes[][3] = {{7, 5, 3}, {37, 53, 29}, {13, 70, 300}, {150, 200, 270}};
    // decode shapes: rows on both sides of the skinny kernel's tiles (6 and 8 rows) and of
    // its 64-row limit; K with and without a vector tail; N odd (a partial weight group)
    static const int dec[][3] = {{1, 64, 16},  {3, 67, 33},   {6, 128, 64},  {8, 99, 768},
                                 {13, 131, 40}, {32, 64, 100}, {64, 257, 129}, {65, 70, 20}};
    char name[64];
    int tested = 0;
    for (int p = 0; p < GEMM_NPATH; p++) {
        if (!gemm_path_available(p)) {
            printf("  path %s: not available here\n", gemm_path_name(p));
            continue;
        }
        tested++;
        g_path = p;
        for (g_skinny = 0; g_skinny < 2; g_skinny++) {
            snprintf(name, sizeof name, "%s%s", gemm_path_name(p), g_skinny ? " (skinny)" : "");
            if (!g_skinny)
                for (int s = 0; s < 4; s++)
                    for (int tA = 0; tA < 2; tA++)
                        for (int tB = 0; tB < 2; tB++) {
                            gemm_case(path_gemm, name, tA, tB, shapes[s][0], shapes[s][1],
                                      shapes[s][2], 1.0f, 0.0f);
                            gemm_case(path_gemm, name, tA, tB, shapes[s][0], shapes[s][1],
                                      shapes[s][2], -0.7f, 0.5f);
                        }
            for (int s = 0; s < 8; s++) {
                gemm_case(path_gemm, name, 0, 1, dec[s][0], dec[s][1], dec[s][2], 1.0f, 0.0f);
                gemm_case(path_gemm, name, 0, 1, dec[s][0], dec[s][1], dec[s][2], -0.7f, 0.5f);
            }
        }
    }
    CHECKF(tested >= 2, "only %d GEMM paths available (portable and one more expected)", tested);
    CHECK(gemm_path_call(-1, 0, 0, 0, 1, 1, 1, 1.0f, NULL, 1, NULL, 1, 0.0f, NULL, 1) == -1);
    return 0;
}

// the skinny kernel sums each dot in one order whichever tile computes it: a row of a
// batch gets exactly what it gets alone (a decode step does not depend on the batch size)
static int test_skinny_rows_independent(void) {
    enum { M = 45, N = 203, K = 97 };
    float *A = randn((long)M * K, 1.0f), *W = randn((long)N * K, 1.0f);
    float *Cb = zeros((long)M * N), *C1 = zeros(N);
    for (int p = 0; p < GEMM_NPATH; p++) {
        if (!gemm_path_available(p) || p == GEMM_BLAS) continue;
        gemm_path_call(p, 1, 0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, Cb, N);
        int bad = 0;
        for (int m = 0; m < M; m++) {
            gemm_path_call(p, 1, 0, 1, 1, N, K, 1.0f, A + (long)m * K, K, W, K, 0.0f, C1, N);
            bad += memcmp(C1, Cb + (long)m * N, N * sizeof(float)) != 0;
        }
        CHECKF(bad == 0, "%s skinny: %d of %d rows differ from the same row alone",
               gemm_path_name(p), bad, M);
    }
    free(A), free(W), free(Cb), free(C1);
    return 0;
}

// the choice is a function of the timings alone
static int test_gemm_choose(void) {
    double t[GEMM_NPATH];
    // the fastest wins when the built-in path is more than the margin slower
    t[GEMM_AVX512] = 1.0, t[GEMM_AVX2] = 1.5, t[GEMM_BLAS] = 0.8, t[GEMM_PORTABLE] = 3.0;
    CHECK(gemm_choose(t, GEMM_AVX512, 0.05) == GEMM_BLAS);
    // within the margin, the built-in path stays (no flip-flopping on noise)
    t[GEMM_BLAS] = 0.97;
    CHECK(gemm_choose(t, GEMM_AVX512, 0.05) == GEMM_AVX512);
    CHECK(gemm_choose(t, GEMM_AVX512, 0.0) == GEMM_BLAS);
    // a path not timed (0: unavailable) never wins, however "fast"
    t[GEMM_BLAS] = 0.0;
    CHECK(gemm_choose(t, GEMM_AVX512, 0.05) == GEMM_AVX512);
    // the built-in path unavailable: the fastest of the rest
    t[GEMM_AVX512] = 0.0;
    CHECK(gemm_choose(t, GEMM_AVX512, 0.05) == GEMM_AVX2);
    // nothing timed: the built-in path
    for (int p = 0; p < GEMM_NPATH; p++) t[p] = 0.0;
    CHECK(gemm_choose(t, GEMM_BLAS, 0.05) == GEMM_BLAS);
    // ties go to the lower-numbered path, deterministically
    t[GEMM_AVX2] = 2.0, t[GEMM_PORTABLE] = 2.0;
    CHECK(gemm_choose(t, GEMM_BLAS, 0.05) == GEMM_AVX2);
    // the built-in order: decode takes our skinny kernel; train takes avx512 where there is one
    CHECK(gemm_fixed_path(GEMM_DECODE) != GEMM_BLAS);
    if (gemm_path_available(GEMM_AVX512)) CHECK(gemm_fixed_path(GEMM_TRAIN) == GEMM_AVX512);
    // gemm_set_path routes gemm() and refuses an unavailable path
    int was = gemm_class_path(GEMM_TRAIN);
    CHECK(gemm_set_path(GEMM_TRAIN, GEMM_PORTABLE) == 0 && gemm_class_path(GEMM_TRAIN) == GEMM_PORTABLE);
    if (!gemm_path_available(GEMM_BLAS)) CHECK(gemm_set_path(GEMM_TRAIN, GEMM_BLAS) == -1);
    gemm_set_path(GEMM_TRAIN, was);
    return 0;
}

// the BLAS path and the portable one agree at model-like shapes, and gemm is safe to
// call from inside a parallel region (each thread its own product)
static int test_gemm_vs_portable(void) {
    static const int shapes[][3] = {{64, 768, 256}, {256, 64, 256}, {96, 2304, 768}, {768, 768, 96}};
    for (int s = 0; s < 4; s++)
        for (int tA = 0; tA < 2; tA++)
            for (int tB = 0; tB < 2; tB++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float *A = randn((long)M * K, 1.0f), *B = randn((long)K * N, 1.0f);
                float *C1 = randn((long)M * N, 1.0f), *C2 = copy_of(C1, (long)M * N);
                int lda = tA ? M : K, ldb = tB ? K : N;
                gemm(tA, tB, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C1, N);
                gemm_portable(tA, tB, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C2, N);
                double d = max_abs_diff(C1, C2, (long)M * N);
                CHECKF(d <= 1e-5 * sqrt(K) * 4, "M=%d N=%d K=%d tA=%d tB=%d: max diff %g", M, N,
                       K, tA, tB, d);
                free(A);
                free(B);
                free(C1);
                free(C2);
            }
    enum { P = 8, M = 45, N = 67, K = 33 };
    float *A = randn((long)P * M * K, 1.0f), *B = randn((long)P * K * N, 1.0f);
    float *C1 = zeros((long)P * M * N), *C2 = zeros((long)P * M * N);
#pragma omp parallel for
    for (int p = 0; p < P; p++)
        gemm(0, 1, M, N, K, 1.0f, A + (long)p * M * K, K, B + (long)p * K * N, K, 0.0f,
             C1 + (long)p * M * N, N);
#pragma omp parallel for
    for (int p = 0; p < P; p++)
        gemm_portable(0, 1, M, N, K, 1.0f, A + (long)p * M * K, K, B + (long)p * K * N, K, 0.0f,
                      C2 + (long)p * M * N, N);
    int bad = 0;
    for (int p = 0; p < P; p++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double ref = 0;
                for (int k = 0; k < K; k++)
                    ref += (double)A[(long)p * M * K + i * K + k] * B[(long)p * K * N + j * K + k];
                long o = (long)p * M * N + i * N + j;
                if (fabs(C1[o] - ref) > 1e-4 || fabs(C2[o] - ref) > 1e-4) bad++;
            }
    CHECKF(bad == 0, "gemm inside a parallel region: %d wrong", bad);
    free(A);
    free(B);
    free(C1);
    free(C2);
    return 0;
}

// ----------------------------------------------------------------- linear --
static struct {
    int N, C, OC;
    float *inp, *w, *b, *out;
} L;
static void linear_fwd(void) { linear_forward(L.out, L.inp, L.w, L.b, L.N, L.C, L.OC); }

static void linear_case(int with_bias) {
    L.N = 5, L.C = 7, L.OC = 6;
    L.inp = randn(L.N * L.C, 1.0f);
    L.w = randn(L.OC * L.C, 0.5f);
    L.b = with_bias ? randn(L.OC, 0.5f) : NULL;
    L.out = zeros(L.N * L.OC);
    float *wts = randn(L.N * L.OC, 1.0f);
    linear_fwd();
    // forward against the definition
    double err = 0;
    for (int n = 0; n < L.N; n++)
        for (int o = 0; o < L.OC; o++) {
            double s = L.b ? L.b[o] : 0;
            for (int c = 0; c < L.C; c++) s += (double)L.inp[n * L.C + c] * L.w[o * L.C + c];
            err = fmax(err, fabs(s - L.out[n * L.OC + o]));
        }
    CHECKF(err < 1e-5, "forward error %g", err);
    float *dinp = zeros(L.N * L.C), *dw = zeros(L.OC * L.C), *db = zeros(L.OC);
    linear_backward(dinp, dw, L.b ? db : NULL, wts, L.inp, L.w, L.N, L.C, L.OC);
    fd_setup(linear_fwd, L.out, wts, L.N * L.OC);
    grad_check("dinp", L.inp, dinp, L.N * L.C, 1e-2f, 1e-2, 1e-3);
    grad_check("dw", L.w, dw, L.OC * L.C, 1e-2f, 1e-2, 1e-3);
    if (L.b) grad_check("db", L.b, db, L.OC, 1e-2f, 1e-2, 1e-3);
    // accumulation: a second call adds the same gradients again; NULL outputs are skipped
    float *dinp2 = copy_of(dinp, L.N * L.C), *dw2 = copy_of(dw, L.OC * L.C),
          *db2 = copy_of(db, L.OC);
    linear_backward(dinp2, dw2, L.b ? db2 : NULL, wts, L.inp, L.w, L.N, L.C, L.OC);
    linear_backward(NULL, NULL, NULL, wts, L.inp, L.w, L.N, L.C, L.OC);
    int bad = 0;
    for (int i = 0; i < L.N * L.C; i++) bad += fabsf(dinp2[i] - 2 * dinp[i]) > 1e-5f;
    for (int i = 0; i < L.OC * L.C; i++) bad += fabsf(dw2[i] - 2 * dw[i]) > 1e-5f;
    for (int i = 0; i < L.OC; i++) bad += fabsf(db2[i] - 2 * db[i]) > 1e-5f;
    CHECKF(bad == 0, "linear_backward does not accumulate: %d entries", bad);
    free(L.inp), free(L.w), free(L.b), free(L.out), free(wts);
    free(dinp), free(dw), free(db), free(dinp2), free(dw2), free(db2);
}
static int test_linear_bias(void) {
    linear_case(1);
    return 0;
}
static int test_linear_nobias(void) {
    linear_case(0);
    return 0;
}

// ------------------------------------------------------------------ norms --
static struct {
    int N, C;
    float *inp, *w, *b, *out, *mean, *rstd;
} NM;
static void layernorm_fwd(void) {
    layernorm_forward(NM.out, NM.mean, NM.rstd, NM.inp, NM.w, NM.b, NM.N, NM.C, 1e-5f);
}
static void rmsnorm_fwd(void) { rmsnorm_forward(NM.out, NM.rstd, NM.inp, NM.w, NM.N, NM.C, 1e-5f); }

static int test_layernorm(void) {
    NM.N = 4, NM.C = 9;
    int N = NM.N, C = NM.C;
    NM.inp = randn(N * C, 1.0f);
    for (int i = 0; i < C; i++) NM.inp[C + i] += 3.0f;  // a row with a large mean
    NM.w = randn(C, 1.0f), NM.b = randn(C, 1.0f);
    NM.out = zeros(N * C), NM.mean = zeros(N), NM.rstd = zeros(N);
    float *wts = randn(N * C, 1.0f);
    layernorm_fwd();
    double err = 0;
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int i = 0; i < C; i++) m += NM.inp[n * C + i];
        m /= C;
        for (int i = 0; i < C; i++) v += (NM.inp[n * C + i] - m) * (NM.inp[n * C + i] - m);
        v /= C;
        double r = 1.0 / sqrt(v + 1e-5);
        err = fmax(err, fabs(m - NM.mean[n]) + fabs(r - NM.rstd[n]) / r);
        for (int i = 0; i < C; i++)
            err = fmax(err, fabs((NM.inp[n * C + i] - m) * r * NM.w[i] + NM.b[i] -
                                 NM.out[n * C + i]));
    }
    CHECKF(err < 1e-5, "forward error %g", err);
    float *dinp = zeros(N * C), *dw = zeros(C), *db = zeros(C);
    layernorm_backward(dinp, dw, db, wts, NM.inp, NM.w, NM.mean, NM.rstd, N, C);
    fd_setup(layernorm_fwd, NM.out, wts, N * C);
    grad_check("dinp", NM.inp, dinp, N * C, 1e-2f, 1e-2, 2e-3);
    grad_check("dw", NM.w, dw, C, 1e-2f, 1e-2, 1e-3);
    grad_check("db", NM.b, db, C, 1e-2f, 1e-2, 1e-3);
    free(NM.inp), free(NM.w), free(NM.b), free(NM.out), free(NM.mean), free(NM.rstd), free(wts);
    free(dinp), free(dw), free(db);
    return 0;
}

static int test_rmsnorm(void) {
    NM.N = 4, NM.C = 9;
    int N = NM.N, C = NM.C;
    NM.inp = randn(N * C, 1.0f);
    NM.w = randn(C, 1.0f);
    NM.out = zeros(N * C), NM.rstd = zeros(N);
    float *wts = randn(N * C, 1.0f);
    rmsnorm_fwd();
    double err = 0;
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int i = 0; i < C; i++) s += (double)NM.inp[n * C + i] * NM.inp[n * C + i];
        double r = 1.0 / sqrt(s / C + 1e-5);
        err = fmax(err, fabs(r - NM.rstd[n]) / r);
        for (int i = 0; i < C; i++)
            err = fmax(err, fabs(NM.inp[n * C + i] * r * NM.w[i] - NM.out[n * C + i]));
    }
    CHECKF(err < 1e-5, "forward error %g", err);
    float *dinp = zeros(N * C), *dw = zeros(C);
    rmsnorm_backward(dinp, dw, wts, NM.inp, NM.w, NM.rstd, N, C);
    fd_setup(rmsnorm_fwd, NM.out, wts, N * C);
    grad_check("dinp", NM.inp, dinp, N * C, 1e-2f, 1e-2, 2e-3);
    grad_check("dw", NM.w, dw, C, 1e-2f, 1e-2, 1e-3);
    free(NM.inp), free(NM.w), free(NM.out), free(NM.rstd), free(wts), free(dinp), free(dw);
    return 0;
}

// ------------------------------------------------------------ activations --
static struct {
    int N, F;
    long n;
    float *inp, *out;
} ACT;
static void gelu_fwd(void) { gelu_forward(ACT.out, ACT.inp, ACT.n); }
static void swiglu_fwd(void) { swiglu_forward(ACT.out, ACT.inp, ACT.N, ACT.F); }

static int test_gelu(void) {
    ACT.n = 40;
    ACT.inp = randn(ACT.n, 2.0f);
    ACT.inp[0] = 0.0f, ACT.inp[1] = -12.0f, ACT.inp[2] = 12.0f, ACT.inp[3] = 1e-4f;
    ACT.out = zeros(ACT.n);
    float *wts = randn(ACT.n, 1.0f);
    gelu_fwd();
    double err = 0;
    for (long i = 0; i < ACT.n; i++) {
        double x = ACT.inp[i];
        double ref = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        err = fmax(err, fabs(ref - ACT.out[i]) / (1 + fabs(ref)));
    }
    CHECKF(err < 1e-6, "forward error %g", err);
    float *dinp = zeros(ACT.n);
    gelu_backward(dinp, ACT.inp, wts, ACT.n);
    fd_setup(gelu_fwd, ACT.out, wts, ACT.n);
    grad_check("dinp", ACT.inp, dinp, ACT.n, 1e-2f, 1e-2, 1e-3);
    // accumulates
    float *d2 = copy_of(dinp, ACT.n);
    gelu_backward(d2, ACT.inp, wts, ACT.n);
    CHECK(max_abs_diff(d2, dinp, ACT.n) > 0 && fabs(d2[5] - 2 * dinp[5]) < 1e-6);
    free(ACT.inp), free(ACT.out), free(wts), free(dinp), free(d2);
    return 0;
}

static int test_swiglu(void) {
    ACT.N = 3, ACT.F = 7;
    int N = ACT.N, F = ACT.F;
    ACT.inp = randn(N * 2 * F, 2.0f);
    ACT.inp[0] = -30.0f, ACT.inp[1] = 30.0f;
    ACT.out = zeros(N * F);
    float *wts = randn(N * F, 1.0f);
    swiglu_fwd();
    double err = 0;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < F; i++) {
            double g = ACT.inp[n * 2 * F + i], u = ACT.inp[n * 2 * F + F + i];
            double ref = g / (1 + exp(-g)) * u;
            err = fmax(err, fabs(ref - ACT.out[n * F + i]) / (1 + fabs(ref)));
        }
    CHECKF(err < 1e-6, "forward error %g", err);
    float *dinp = zeros(N * 2 * F);
    swiglu_backward(dinp, ACT.inp, wts, N, F);
    fd_setup(swiglu_fwd, ACT.out, wts, N * F);
    grad_check("dinp", ACT.inp, dinp, N * 2 * F, 1e-2f, 1e-2, 1e-3);
    free(ACT.inp), free(ACT.out), free(wts), free(dinp);
    return 0;
}

static int test_residual_scale_sumsq(void) {
    long n = 100003;
    float *a = randn(n, 1.0f), *b = randn(n, 1.0f), *o = zeros(n);
    residual_forward(o, a, b, n);
    int bad = 0;
    double ss = 0;
    for (long i = 0; i < n; i++) {
        bad += o[i] != a[i] + b[i];
        ss += (double)a[i] * a[i];
    }
    CHECK(bad == 0);
    CHECK_CLOSE(sum_squares(a, n), ss, 0, 1e-12);
    float *c = copy_of(a, n);
    scale_inplace(c, n, -0.25f);
    bad = 0;
    for (long i = 0; i < n; i++) bad += c[i] != a[i] * -0.25f;
    CHECK(bad == 0);
    free(a), free(b), free(o), free(c);
    return 0;
}

// ------------------------------------------------------------------- rope --
static struct {
    int N, nh, HS, stride;
    float *x0, *x, *cos, *sin;
    int *pos;
} RP;
static void rope_fwd(void) {
    memcpy(RP.x, RP.x0, (size_t)RP.N * RP.stride * sizeof(float));
    rope_forward(RP.x, RP.cos, RP.sin, RP.pos, RP.N, RP.nh, RP.HS, RP.stride);
}

static int test_rope(void) {
    RP.N = 5, RP.nh = 3, RP.HS = 8, RP.stride = 3 * 8 + 5;  // heads inside a wider row
    int maxT = 16, half = RP.HS / 2;
    float theta = 10000.0f;
    RP.cos = zeros(maxT * half), RP.sin = zeros(maxT * half);
    rope_table(RP.cos, RP.sin, maxT, RP.HS, theta);
    double err = 0;
    for (int p = 0; p < maxT; p++)
        for (int i = 0; i < half; i++) {
            double a = p * pow(theta, -2.0 * i / RP.HS);
            err = fmax(err, fabs(cos(a) - RP.cos[p * half + i]) + fabs(sin(a) - RP.sin[p * half + i]));
        }
    CHECKF(err < 1e-6, "table error %g", err);
    int pos[5] = {0, 3, 15, 7, 1};
    RP.pos = pos;
    long n = (long)RP.N * RP.stride;
    RP.x0 = randn(n, 1.0f), RP.x = zeros(n);
    rope_fwd();
    err = 0;
    for (int r = 0; r < RP.N; r++)
        for (int c = 0; c < RP.stride; c++) {
            const float *x0 = RP.x0 + (long)r * RP.stride;
            double ref = x0[c];  // columns past nh*HS are untouched
            if (c < RP.nh * RP.HS) {
                int h = c / RP.HS, i = c % RP.HS, j = i % half;
                double a = pos[r] * pow(theta, -2.0 * j / RP.HS);
                double x1 = x0[h * RP.HS + j], x2 = x0[h * RP.HS + j + half];
                ref = i < half ? x1 * cos(a) - x2 * sin(a) : x2 * cos(a) + x1 * sin(a);
            }
            err = fmax(err, fabs(ref - RP.x[(long)r * RP.stride + c]));
        }
    CHECKF(err < 1e-5, "forward error %g", err);
    float *wts = randn(n, 1.0f);
    for (int r = 0; r < RP.N; r++)  // the loss sees only the rotated columns
        for (int c = RP.nh * RP.HS; c < RP.stride; c++) wts[(long)r * RP.stride + c] = 0;
    float *dx = copy_of(wts, n);
    rope_backward(dx, RP.cos, RP.sin, RP.pos, RP.N, RP.nh, RP.HS, RP.stride);
    for (int r = 0; r < RP.N; r++)
        for (int c = RP.nh * RP.HS; c < RP.stride; c++) CHECK(dx[(long)r * RP.stride + c] == 0);
    fd_setup(rope_fwd, RP.x, wts, n);
    grad_check("dx", RP.x0, dx, n, 1e-2f, 1e-2, 1e-3);
    free(RP.cos), free(RP.sin), free(RP.x0), free(RP.x), free(wts), free(dx);
    return 0;
}

// -------------------------------------------------------------- attention --
static struct {
    int B, T, NH, NKV, HS;
    const uint8_t *mask;
    const int *seg;  // segment ids (packed rows) or NULL
    float *qkv, *out, *att;
} AT;
static void attention_fwd(void) {
    attention_forward(AT.out, AT.att, AT.qkv, AT.mask, AT.seg, AT.B, AT.T, AT.NH, AT.NKV, AT.HS);
}

// naive double attention; returns the max abs error of out and att
static double attention_ref_error(void) {
    int B = AT.B, T = AT.T, NH = AT.NH, NKV = AT.NKV, HS = AT.HS, R = (NH + 2 * NKV) * HS;
    double err = 0, *p = xmalloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kvh = h / (NH / NKV);
            for (int t = 0; t < T; t++) {
                const float *q = AT.qkv + ((long)b * T + t) * R + h * HS;
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s < T; s++) {
                    int vis = s <= t && (!AT.mask || AT.mask[b * T + s]) &&
                              (!AT.seg || AT.seg[b * T + s] == AT.seg[b * T + t]);
                    const float *k = AT.qkv + ((long)b * T + s) * R + (NH + kvh) * HS;
                    double d = 0;
                    for (int i = 0; i < HS; i++) d += (double)q[i] * k[i];
                    p[s] = vis ? d / sqrt(HS) : -INFINITY;
                    mx = fmax(mx, p[s]);
                }
                for (int s = 0; s < T; s++) {
                    p[s] = mx == -INFINITY ? 0 : exp(p[s] - mx);
                    sum += p[s];
                }
                for (int s = 0; s < T; s++) {
                    if (sum > 0) p[s] /= sum;
                    err = fmax(err, fabs(p[s] - AT.att[(((long)b * NH + h) * T + t) * T + s]));
                }
                for (int i = 0; i < HS; i++) {
                    double o = 0;
                    for (int s = 0; s < T; s++)
                        o += p[s] * AT.qkv[((long)b * T + s) * R + (NH + NKV + kvh) * HS + i];
                    err = fmax(err, fabs(o - AT.out[((long)b * T + t) * NH * HS + h * HS + i]));
                }
            }
        }
    free(p);
    return err;
}

// forward vs reference, backward vs finite differences, and accumulation
static void attention_case_seg(int B, int T, int NH, int NKV, int HS, const uint8_t *mask,
                               const int *seg) {
    AT.B = B, AT.T = T, AT.NH = NH, AT.NKV = NKV, AT.HS = HS, AT.mask = mask, AT.seg = seg;
    int R = (NH + 2 * NKV) * HS;
    long nqkv = (long)B * T * R, nout = (long)B * T * NH * HS, natt = (long)B * NH * T * T;
    AT.qkv = randn(nqkv, 1.0f);
    AT.out = zeros(nout);
    AT.att = randn(natt, 1.0f);  // garbage: the forward must write every entry
    attention_fwd();
    double err = attention_ref_error();
    CHECKF(err < 1e-5, "B=%d T=%d NH=%d NKV=%d: forward error %g", B, T, NH, NKV, err);
    float *wts = randn(nout, 1.0f);
    float *dqkv = zeros(nqkv), *scratch = randn(natt, 1.0f);
    attention_backward(dqkv, scratch, wts, AT.qkv, AT.att, mask, B, T, NH, NKV, HS);
    fd_setup(attention_fwd, AT.out, wts, nout);
    grad_check("dqkv", AT.qkv, dqkv, nqkv, 1e-2f, 1e-2, 2e-3);
    // accumulation onto a non-zero gradient
    float *d0 = randn(nqkv, 1.0f), *d1 = copy_of(d0, nqkv);
    attention_backward(d1, scratch, wts, AT.qkv, AT.att, mask, B, T, NH, NKV, HS);
    int bad = 0;
    for (long i = 0; i < nqkv; i++) bad += fabsf(d1[i] - (d0[i] + dqkv[i])) > 1e-5f;
    CHECKF(bad == 0, "attention_backward does not accumulate: %d entries", bad);
    free(AT.qkv), free(AT.out), free(AT.att), free(wts), free(dqkv), free(scratch), free(d0);
    free(d1);
    AT.seg = NULL;
}
static void attention_case(int B, int T, int NH, int NKV, int HS, const uint8_t *mask) {
    attention_case_seg(B, T, NH, NKV, HS, mask, NULL);
}

static int test_attention_mha_nomask(void) {
    attention_case(2, 5, 3, 3, 4, NULL);
    return 0;
}

// GQA (NH=4, NKV=2); batch rows with left padding, right padding, none, and all padding
static int test_attention_gqa_padding(void) {
    enum { B = 4, T = 6 };
    static const uint8_t mask[B * T] = {0, 0, 1, 1, 1, 1,   // left padded
                                        1, 1, 1, 1, 0, 0,   // right padded
                                        1, 1, 1, 1, 1, 1,   // full
                                        0, 0, 0, 0, 0, 0};  // nothing
    attention_case(B, T, 4, 2, 4, mask);
    // queries that see no key: all-zero att rows and outputs
    AT.B = B, AT.T = T, AT.NH = 4, AT.NKV = 2, AT.HS = 4, AT.mask = mask;
    long nqkv = (long)B * T * 8 * 4, nout = (long)B * T * 16, natt = (long)B * 4 * T * T;
    AT.qkv = randn(nqkv, 1.0f), AT.out = randn(nout, 1.0f), AT.att = randn(natt, 1.0f);
    attention_fwd();
    int bad = 0;
    for (int h = 0; h < 4; h++)
        for (int s = 0; s < T; s++) {
            for (int t = 0; t < T; t++) {
                bad += AT.att[((3L * 4 + h) * T + t) * T + s] != 0.0f;  // fully padded row
                if (t < 2) bad += AT.att[((0L * 4 + h) * T + t) * T + s] != 0.0f;  // left pad
            }
        }
    for (int i = 0; i < T * 16; i++) bad += AT.out[3L * T * 16 + i] != 0.0f;
    for (int i = 0; i < 2 * 16; i++) bad += AT.out[i] != 0.0f;
    CHECKF(bad == 0, "queries without visible keys must give zeros (%d nonzero)", bad);
    free(AT.qkv), free(AT.out), free(AT.att);
    return 0;
}

// T larger than the query block (64), so the blocked causal products are exercised
static int test_attention_long(void) {
    enum { B = 1, T = 70 };
    static uint8_t mask[B * T];
    for (int t = 0; t < T; t++) mask[t] = t >= 3 && t != 40;  // left pad plus a hole
    attention_case(B, T, 2, 1, 4, mask);
    return 0;
}

// packed rows: segment (document) ids make attention causal within a segment only; forward
// vs the reference, backward vs finite differences, and a packed row equals its documents
// run one by one (with and without padding, GQA, across the 64-row query blocks)
static int test_attention_segments(void) {
    enum { B = 3, T = 9 };
    static const int seg[B * T] = {0, 0, 0, 1, 1, 2, 2, 2, 2,       // three documents
                                   5, 5, 7, 7, 7, 7, -1, -1, -1,    // two, then padding
                                   0, 1, 2, 3, 4, 5, 6, 7, 8};      // one token each
    static const uint8_t mask[B * T] = {1, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                        1, 1, 1, 1, 1, 1, 0, 0, 0,  //
                                        1, 1, 1, 1, 1, 1, 1, 1, 1};
    attention_case_seg(B, T, 4, 2, 4, mask, seg);
    attention_case_seg(B, T, 3, 3, 4, NULL, seg);
    enum { TL = 70 };
    static int segl[TL];
    for (int t = 0; t < TL; t++) segl[t] = t < 30 ? 0 : t < 63 ? 1 : t < 66 ? 2 : 3;
    attention_case_seg(1, TL, 2, 1, 4, NULL, segl);

    // row 0 of the first case, packed, against each document alone
    const int NH = 4, NKV = 2, HS = 4, R = (NH + 2 * NKV) * HS, OR = NH * HS;
    float *qkv = randn((long)T * R, 1.0f), *out = zeros((long)T * OR);
    float *att = zeros((long)NH * T * T), *one = zeros((long)T * OR), *att1 = zeros((long)NH * T * T);
    attention_forward(out, att, qkv, NULL, seg, 1, T, NH, NKV, HS);
    static const int start[] = {0, 3, 5, 9};
    double err = 0;
    for (int d = 0; d < 3; d++) {
        int n = start[d + 1] - start[d];
        attention_forward(one, att1, qkv + (long)start[d] * R, NULL, NULL, 1, n, NH, NKV, HS);
        for (long i = 0; i < (long)n * OR; i++)
            err = fmax(err, fabs(one[i] - out[(long)start[d] * OR + i]));
    }
    CHECKF(err < 1e-6, "packed row differs from its documents run alone by %g", err);
    int bad = 0;  // no probability crosses a document boundary
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++)
            for (int s2 = 0; s2 < T; s2++)
                bad += seg[s2] != seg[t] && att[((long)h * T + t) * T + s2] != 0.0f;
    CHECKF(bad == 0, "%d attention weights cross a segment boundary", bad);
    free(qkv), free(out), free(att), free(one), free(att1);
    return 0;
}

// ---------------------------------------------------------------- logprob --
static struct {
    int N, C, V;
    float *h, *w, *logp, *lse, *ent, *scratch;
    const int *targets;
} LP;
static void logprob_fwd(void) {
    logprob_forward(LP.logp, LP.lse, LP.ent, LP.h, LP.w, LP.targets, LP.N, LP.C, LP.V, LP.scratch);
}

// full log-softmax in double: logp, lse, entropy errors (skipped rows must be 0)
static double logprob_ref_error(void) {
    double err = 0, *x = xmalloc((size_t)LP.V * sizeof(double));
    for (int n = 0; n < LP.N; n++) {
        if (LP.targets[n] < 0) {
            err = fmax(err, fabs(LP.logp[n]));
            continue;
        }
        double mx = -INFINITY, s = 0, ent = 0;
        for (int v = 0; v < LP.V; v++) {
            x[v] = 0;
            for (int c = 0; c < LP.C; c++) x[v] += (double)LP.h[n * LP.C + c] * LP.w[v * LP.C + c];
            mx = fmax(mx, x[v]);
        }
        for (int v = 0; v < LP.V; v++) s += exp(x[v] - mx);
        double lse = mx + log(s);
        for (int v = 0; v < LP.V; v++) ent -= exp(x[v] - lse) * (x[v] - lse);
        err = fmax(err, fabs(x[LP.targets[n]] - lse - LP.logp[n]));
        err = fmax(err, fabs(lse - LP.lse[n]));
        if (LP.ent) err = fmax(err, fabs(ent - LP.ent[n]));
    }
    free(x);
    return err;
}

// Targets for N rows. Scattered: runs of valid rows, gaps and single rows (chunks are
// gathered). Otherwise one contiguous run with padding at both ends (chunks are views).
static int *make_targets(int N, int V, int scattered) {
    int *tg = xmalloc((size_t)N * sizeof(int));
    for (int n = 0; n < N; n++) {
        int skip = scattered ? (n % 7 == 3 || (n > 20 && n < 30) || n % 11 == 0)
                             : (n < 5 || n >= N - 3);
        tg[n] = skip ? -1 : (int)(rng_u64(&rng) % V);
    }
    return tg;
}

// sizes {N, C, V, scattered}: one chunk; several gathered chunks; C > V * (LOGP_CHUNK - 1)
// so that only single-row chunks fit; several contiguous chunks
static const int logprob_sizes[][4] = {
    {9, 6, 11, 1}, {600, 16, 37, 1}, {5, 600, 2, 1}, {700, 8, 29, 0}};

static int test_logprob_forward(void) {
    for (int k = 0; k < 4; k++) {
        LP.N = logprob_sizes[k][0], LP.C = logprob_sizes[k][1], LP.V = logprob_sizes[k][2];
        int *tg = make_targets(LP.N, LP.V, logprob_sizes[k][3]);
        LP.targets = tg;
        LP.h = randn(LP.N * LP.C, 1.0f), LP.w = randn(LP.V * LP.C, 1.0f);
        LP.logp = randn(LP.N, 1.0f), LP.lse = zeros(LP.N), LP.ent = zeros(LP.N);
        LP.scratch = zeros((long)LOGP_CHUNK * LP.V);
        logprob_fwd();
        double err = logprob_ref_error();
        CHECKF(err < 2e-4, "N=%d C=%d V=%d: error %g", LP.N, LP.C, LP.V, err);
        float *logp1 = copy_of(LP.logp, LP.N);
        float *ent = LP.ent;
        LP.ent = NULL;  // the entropy is optional and changes nothing else
        logprob_fwd();
        CHECK(max_abs_diff(logp1, LP.logp, LP.N) == 0);
        free(tg), free(LP.h), free(LP.w), free(LP.logp), free(LP.lse), free(LP.scratch), free(ent);
        free(logp1);
    }
    return 0;
}

static int test_logprob_backward(void) {
    LP.N = 9, LP.C = 6, LP.V = 11;
    static const int tg[9] = {3, -1, 0, 10, -1, -1, 7, 7, 2};
    LP.targets = tg;
    LP.h = randn(LP.N * LP.C, 1.0f), LP.w = randn(LP.V * LP.C, 1.0f);
    LP.logp = zeros(LP.N), LP.lse = zeros(LP.N), LP.ent = NULL;
    LP.scratch = zeros((long)LOGP_CHUNK * LP.V);
    float *wts = randn(LP.N, 1.0f);
    logprob_fwd();
    float *dh = zeros(LP.N * LP.C), *dw = zeros(LP.V * LP.C);
    logprob_backward(dh, dw, wts, LP.h, LP.w, LP.targets, LP.lse, LP.N, LP.C, LP.V, LP.scratch);
    for (int c = 0; c < LP.C; c++) CHECK(dh[1 * LP.C + c] == 0.0f);  // skipped row
    fd_setup(logprob_fwd, LP.logp, wts, LP.N);
    grad_check("dh", LP.h, dh, LP.N * LP.C, 1e-2f, 1e-2, 1e-3);
    grad_check("dw", LP.w, dw, LP.V * LP.C, 1e-2f, 1e-2, 1e-3);
    free(LP.h), free(LP.w), free(LP.logp), free(LP.lse), free(LP.scratch), free(wts), free(dh);
    free(dw);
    return 0;
}

// many chunks, gathered and contiguous, against a dense double backward; accumulates
static int test_logprob_backward_chunked(void) {
    for (int k = 1; k < 4; k++) {
        int N = logprob_sizes[k][0], C = logprob_sizes[k][1], V = logprob_sizes[k][2];
        int *tg = make_targets(N, V, logprob_sizes[k][3]);
        float *h = randn((long)N * C, 1.0f), *w = randn((long)V * C, 1.0f);
        float *logp = zeros(N), *lse = zeros(N), *scratch = zeros((long)LOGP_CHUNK * V);
        float *dlogp = randn(N, 1.0f);
        if (logprob_sizes[k][3] && N > 40) dlogp[40] = 0.0f;  // a zero gradient: row skipped
        logprob_forward(logp, lse, NULL, h, w, tg, N, C, V, scratch);
        float *dh0 = randn((long)N * C, 1.0f), *dw0 = randn((long)V * C, 1.0f);
        float *dh = copy_of(dh0, (long)N * C), *dw = copy_of(dw0, (long)V * C);
        logprob_backward(dh, dw, dlogp, h, w, tg, lse, N, C, V, scratch);
        double *rh = xcalloc((size_t)N * C, sizeof(double)), *rw = xcalloc((size_t)V * C, sizeof(double));
        double *x = xmalloc((size_t)V * sizeof(double));
        for (int n = 0; n < N; n++) {
            if (tg[n] < 0) continue;
            double mx = -INFINITY, s = 0;
            for (int v = 0; v < V; v++) {
                x[v] = 0;
                for (int c = 0; c < C; c++) x[v] += (double)h[n * C + c] * w[v * C + c];
                mx = fmax(mx, x[v]);
            }
            for (int v = 0; v < V; v++) s += exp(x[v] - mx);
            for (int v = 0; v < V; v++) {
                double g = dlogp[n] * ((v == tg[n]) - exp(x[v] - mx) / s);
                for (int c = 0; c < C; c++) {
                    rh[n * C + c] += g * w[v * C + c];
                    rw[v * C + c] += g * h[n * C + c];
                }
            }
        }
        double eh = 0, ew = 0;
        for (long i = 0; i < (long)N * C; i++) eh = fmax(eh, fabs(dh[i] - dh0[i] - rh[i]));
        for (long i = 0; i < (long)V * C; i++) ew = fmax(ew, fabs(dw[i] - dw0[i] - rw[i]));
        CHECKF(eh < 1e-4 && ew < 1e-4 * sqrt(N), "N=%d C=%d V=%d: dh error %g, dw error %g", N, C,
               V, eh, ew);
        free(tg), free(h), free(w), free(logp), free(lse), free(scratch), free(dlogp), free(dh0);
        free(dw0), free(dh), free(dw), free(rh), free(rw), free(x);
    }
    return 0;
}

static int test_log_softmax_inplace(void) {
    int n = 1000;
    float *x = randn(n, 5.0f);
    x[7] = 200.0f;  // a large logit must not overflow
    float *x0 = copy_of(x, n);
    float lse = log_softmax_inplace(x, n);
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, x0[i]);
    for (int i = 0; i < n; i++) s += exp(x0[i] - mx);
    double ref = mx + log(s), err = 0;
    for (int i = 0; i < n; i++) err = fmax(err, fabs(x[i] - (x0[i] - ref)));
    CHECK_CLOSE(lse, ref, 1e-5, 1e-6);
    CHECKF(err < 1e-4, "error %g", err);
    free(x), free(x0);
    return 0;
}

// -------------------------------------------------------------- embedding --
static struct {
    int N, C;
    const int *tokens, *pos;
    float *wte, *wpe, *out;
} EM;
static void embedding_fwd(void) {
    embedding_forward(EM.out, EM.tokens, EM.pos, EM.wte, EM.wpe, EM.N, EM.C);
}

static void embedding_case(int with_wpe) {
    static const int tokens[6] = {3, 1, 3, 0, 4, 3}, pos[6] = {0, 1, 2, 0, 1, 6};
    EM.N = 6, EM.C = 5, EM.tokens = tokens, EM.pos = with_wpe ? pos : NULL;
    int V = 5, maxT = 7;
    EM.wte = randn(V * EM.C, 1.0f), EM.wpe = with_wpe ? randn(maxT * EM.C, 1.0f) : NULL;
    EM.out = zeros(EM.N * EM.C);
    float *wts = randn(EM.N * EM.C, 1.0f);
    embedding_fwd();
    int bad = 0;
    for (int n = 0; n < EM.N; n++)
        for (int c = 0; c < EM.C; c++)
            bad += EM.out[n * EM.C + c] !=
                   EM.wte[tokens[n] * EM.C + c] + (EM.wpe ? EM.wpe[pos[n] * EM.C + c] : 0.0f);
    CHECK(bad == 0);
    float *dwte = zeros(V * EM.C), *dwpe = zeros(maxT * EM.C);
    embedding_backward(dwte, EM.wpe ? dwpe : NULL, wts, tokens, pos, EM.N, EM.C);
    fd_setup(embedding_fwd, EM.out, wts, EM.N * EM.C);
    grad_check("dwte", EM.wte, dwte, V * EM.C, 1e-2f, 1e-3, 1e-4);
    if (EM.wpe) grad_check("dwpe", EM.wpe, dwpe, maxT * EM.C, 1e-2f, 1e-3, 1e-4);
    free(EM.wte), free(EM.wpe), free(EM.out), free(wts), free(dwte), free(dwpe);
}
static int test_embedding_wpe(void) {
    embedding_case(1);
    return 0;
}
static int test_embedding_nowpe(void) {
    embedding_case(0);
    return 0;
}

// ------------------------------------------------------------------ adamw --
static int test_adamw(void) {
    enum { n = 37 };
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    float *p = randn(n, 1.0f), *m = zeros(n), *v = zeros(n);
    float *g1 = randn(n, 1.0f), *g2 = randn(n, 1.0f);
    double rp[n], rm[n] = {0}, rv[n] = {0};
    for (int i = 0; i < n; i++) rp[i] = p[i];
    for (int t = 1; t <= 2; t++) {
        const float *g = t == 1 ? g1 : g2;
        adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, t);
        for (int i = 0; i < n; i++) {
            rm[i] = b1 * rm[i] + (1 - b1) * g[i];
            rv[i] = b2 * rv[i] + (1 - b2) * (double)g[i] * g[i];
            double mhat = rm[i] / (1 - pow(b1, t)), vhat = rv[i] / (1 - pow(b2, t));
            rp[i] -= lr * (mhat / (sqrt(vhat) + eps) + wd * rp[i]);
        }
    }
    double ep = 0, em = 0, ev = 0;
    for (int i = 0; i < n; i++) {
        ep = fmax(ep, fabs(p[i] - rp[i]));
        em = fmax(em, fabs(m[i] - rm[i]));
        ev = fmax(ev, fabs(v[i] - rv[i]));
    }
    CHECKF(ep < 1e-6 && em < 1e-6 && ev < 1e-6, "errors p %g m %g v %g", ep, em, ev);
    free(p), free(m), free(v), free(g1), free(g2);
    return 0;
}

// vm_expf / vm_tanhf (nn_internal.h) against libm in double: NaN, +-inf and huge
// magnitudes give what libm gives (exp: exactly 0 where libm returns a subnormal, the
// documented flush below -87.3), and a dense sweep stays within a relative error bound.
// A NaN once reached an out-of-range float-to-int conversion and a left shift of a
// negative value, and exp(+inf) saturated at 2e38.
static int same_special(float got, double want) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == (float)want;
    return 0;
}
static int test_vector_math_special(void) {
    const float xs[] = {NAN, -NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 1e30f, -1e30f,
                        1e10f, -1e10f, 1000.0f, -1000.0f, 100.0f, -100.0f, 89.0f, -89.0f,
                        88.7228394f, 88.8f, -87.4f, -103.0f, 0.0f, -0.0f, 1e-30f, -1e-30f,
                        FLT_MIN, -FLT_MIN, 1e-45f};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        float x = xs[i];
        double e = exp((double)x), t = tanh((double)x);
        if ((float)e > FLT_MAX) e = INFINITY;  // libm expf overflows there too
        float ge = vm_expf(x), gt = vm_tanhf(x);
        if (isnan(e) || isinf(e))
            CHECKF(same_special(ge, e), "vm_expf(%g) = %g, libm %g", x, ge, e);
        else if (e < FLT_MIN)
            CHECKF(ge >= 0 && ge <= FLT_MIN && fabs(ge - e) <= FLT_MIN, "vm_expf(%g) = %g, libm %g",
                   x, ge, e);
        else
            CHECKF(fabs(ge - e) <= 5e-7 * e, "vm_expf(%g) = %.9g, libm %.9g", x, ge, e);
        CHECKF(isnan(t) ? isnan(gt) : fabs(gt - t) <= 1e-6 * fabs(t) && !signbit(gt) == !signbit(t),
               "vm_tanhf(%g) = %.9g, libm %.9g", x, gt, t);
    }
    return 0;
}
static int test_vector_math_sweep(void) {
    double worst_e = 0, worst_t = 0;
    float at_e = 0, at_t = 0;
    // exp over its whole normal range, with every float of the top end (where n is capped)
    for (float x = -87.29f; x < 88.7f; x += 0.00137f) {
        double e = exp((double)x), err = fabs(vm_expf(x) - e) / e;
        if (!(err <= worst_e)) worst_e = err, at_e = x;
    }
    for (float x = 88.7f; x < 88.7228f; x = nextafterf(x, 100.0f)) {
        double e = exp((double)x), err = fabs(vm_expf(x) - e) / e;
        if (!(err <= worst_e)) worst_e = err, at_e = x;
    }
    // tanh densely on [-20, 20], and geometrically down to tiny magnitudes, both signs
    for (float x = -20.0f; x < 20.0f; x += 0.000173f) {
        double t = tanh((double)x);
        if (t == 0) continue;
        double err = fabs(vm_tanhf(x) - t) / fabs(t);
        if (!(err <= worst_t)) worst_t = err, at_t = x;
    }
    for (float a = 1e-38f; a < 2.0f; a *= 1.0013f)
        for (int s = -1; s <= 1; s += 2) {
            float x = s * a;
            double t = tanh((double)x), err = fabs(vm_tanhf(x) - t) / fabs(t);
            if (!(err <= worst_t)) worst_t = err, at_t = x;
        }
    CHECKF(worst_e <= 4e-7, "vm_expf relative error %g at x = %.9g", worst_e, at_e);
    CHECKF(worst_t <= 1e-6, "vm_tanhf relative error %g at x = %.9g", worst_t, at_t);
    return 0;
}

int main(void) {
    rng_seed(&rng, 1234);
    RUN(test_gemm_vs_naive);
    RUN(test_gemm_vs_portable);
    RUN(test_gemm_every_path);
    RUN(test_skinny_rows_independent);
    RUN(test_gemm_choose);
    RUN(test_linear_bias);
    RUN(test_linear_nobias);
    RUN(test_layernorm);
    RUN(test_rmsnorm);
    RUN(test_gelu);
    RUN(test_swiglu);
    RUN(test_residual_scale_sumsq);
    RUN(test_rope);
    RUN(test_attention_mha_nomask);
    RUN(test_attention_gqa_padding);
    RUN(test_attention_long);
    RUN(test_attention_segments);
    RUN(test_logprob_forward);
    RUN(test_logprob_backward);
    RUN(test_logprob_backward_chunked);
    RUN(test_log_softmax_inplace);
    RUN(test_embedding_wpe);
    RUN(test_embedding_nowpe);
    RUN(test_adamw);
    RUN(test_vector_math_special);
    RUN(test_vector_math_sweep);
    TEST_EXIT();
}
