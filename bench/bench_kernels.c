// bench_kernels: timings of the nn kernels at GPT-2 124M training shapes
// (B=4, T=256, C=768, NH=12, HS=64, V=50257): gemm (BLAS path and portable path)
// in GFLOP/s, attention forward+backward for 12 layers, the fused logprob head
// against the three plain gemms it replaces, and the elementwise kernels.
// Build (from the repository root, after make: the GEMM files need their own -m flags,
// which the Makefile gives them, so link the library rather than compiling src/nn here):
//   gcc -O3 -march=native -std=c11 -D_GNU_SOURCE -fopenmp -Iinclude -Isrc bench/bench_kernels.c
//       build/librlhf.a -L/usr/lib/x86_64-linux-gnu/openblas-openmp
//       -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lcjson -lz -lm
//       -o build/bench_kernels
// (rlhf bench --work gemm and --work kernel time the GEMM paths one by one.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "nn/nn.h"

static rlhf_rng rng;
static float *randn(long n, float s) {
    float *x = xalloc_aligned((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = s * rng_normal(&rng);
    return x;
}

// best of `reps` runs of the statement, in seconds
#define BEST(reps, stmt)                                                                           \
    ({                                                                                             \
        double best_ = 1e30;                                                                       \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            double t0_ = time_now();                                                               \
            stmt;                                                                                  \
            double t_ = time_now() - t0_;                                                          \
            if (t_ < best_) best_ = t_;                                                            \
        }                                                                                          \
        best_;                                                                                     \
    })

static void bench_gemm(const char *what, int tA, int tB, int M, int N, int K) {
    float *A = randn((long)M * K, 1), *B = randn((long)K * N, 1), *C = randn((long)M * N, 1);
    int lda = tA ? M : K, ldb = tB ? K : N;
    double fl = 2.0 * M * N * K * 1e-9;
    double tb = BEST(3, gemm(tA, tB, M, N, K, 1, A, lda, B, ldb, 0, C, N));
    double tp = BEST(3, gemm_portable(tA, tB, M, N, K, 1, A, lda, B, ldb, 0, C, N));
    printf("gemm %-28s M=%5d N=%5d K=%5d  gemm %6.1f GFLOP/s  portable %6.1f GFLOP/s\n", what, M, N,
           K, fl / tb, fl / tp);
    free(A), free(B), free(C);
}

int main(void) {
    rng_seed(&rng, 1);
    printf("threads: %d\n", rlhf_num_threads());
    const int B = 4, T = 256, C = 768, NH = 12, HS = 64, V = 50257, L = 12, N = B * T;
    bench_gemm("qkv forward", 0, 1, N, 3 * C, C);
    bench_gemm("attn proj forward", 0, 1, N, C, C);
    bench_gemm("fc forward", 0, 1, N, 4 * C, C);
    bench_gemm("fc proj forward", 0, 1, N, C, 4 * C);
    bench_gemm("fc proj dinp", 0, 0, N, 4 * C, C);
    bench_gemm("fc dw", 1, 0, 4 * C, C, N);
    bench_gemm("logits chunk", 0, 1, LOGP_CHUNK, V, C);
    bench_gemm("attention q k^T block", 0, 1, 64, 256, 64);

    // attention: one layer's worth, times 12
    {
        int R = 3 * C;
        float *qkv = randn((long)N * R, 1), *out = randn((long)N * C, 1);
        float *att = randn((long)B * NH * T * T, 1), *scratch = randn((long)B * NH * T * T, 1);
        float *dout = randn((long)N * C, 1), *dqkv = randn((long)N * R, 1);
        uint8_t *mask = malloc((size_t)N);
        for (int i = 0; i < N; i++) mask[i] = (i % T) >= 16;  // some left padding
        double tf = BEST(5, attention_forward(out, att, qkv, mask, NULL, B, T, NH, NH, HS));
        double tbw = BEST(5, attention_backward(dqkv, scratch, dout, qkv, att, mask, B, T, NH, NH, HS));
        printf("attention B=%d T=%d NH=%d HS=%d: forward %.2f ms, backward %.2f ms per layer; "
               "x%d layers: %.3f s\n",
               B, T, NH, HS, tf * 1e3, tbw * 1e3, L, L * (tf + tbw));
        free(qkv), free(out), free(att), free(scratch), free(dout), free(dqkv), free(mask);
    }

    // logprob head vs the three gemms of an unfused head (logits, dh, dw)
    {
        float *h = randn((long)N * C, 1), *w = randn((long)V * C, 0.05f);
        float *scratch = randn((long)LOGP_CHUNK * V, 1);
        float *logp = randn(N, 1), *lse = randn(N, 1), *ent = randn(N, 1), *dlogp = randn(N, 1);
        float *dh = randn((long)N * C, 1), *dw = randn((long)V * C, 1);
        int *targets = malloc((size_t)N * sizeof(int));
        for (int i = 0; i < N; i++) targets[i] = (int)(rng_u64(&rng) % V);
        double tf = BEST(2, logprob_forward(logp, lse, NULL, h, w, targets, N, C, V, scratch));
        double tfe = BEST(2, logprob_forward(logp, lse, ent, h, w, targets, N, C, V, scratch));
        double tbw =
            BEST(2, logprob_backward(dh, dw, dlogp, h, w, targets, lse, N, C, V, scratch));
        float *logits = xalloc_aligned((size_t)N * V * sizeof(float));
        double g1 = BEST(2, gemm(0, 1, N, V, C, 1, h, C, w, C, 0, logits, V));
        double g2 = BEST(2, gemm(0, 0, N, C, V, 1, logits, V, w, C, 1, dh, C));
        double g3 = BEST(2, gemm(1, 0, V, C, N, 1, logits, V, h, C, 1, dw, C));
        printf("logprob N=%d C=%d V=%d: forward %.3f s (with entropy %.3f s), backward %.3f s, "
               "total %.3f s\n",
               N, C, V, tf, tfe, tbw, tf + tbw);
        printf("  plain gemms: logits %.3f s, dh %.3f s, dw %.3f s, sum %.3f s\n", g1, g2, g3,
               g1 + g2 + g3);
        free(h), free(w), free(scratch), free(logp), free(lse), free(ent), free(dlogp), free(dh);
        free(dw), free(targets), free(logits);
    }

    // elementwise and norm kernels at layer shapes, and AdamW over all 124M parameters
    {
        long n = (long)N * 4 * C;
        float *a = randn(n, 1), *b = randn(n, 1), *c = randn(n, 1);
        float *mean = randn(N, 1), *rstd = randn(N, 1), *lw = randn(C, 1), *lb = randn(C, 1);
        double tg = BEST(5, gelu_forward(b, a, n));
        double tgb = BEST(5, gelu_backward(c, a, b, n));
        double tl = BEST(5, layernorm_forward(b, mean, rstd, a, lw, lb, N, C, 1e-5f));
        double tlb = BEST(5, layernorm_backward(c, lw, lb, a, b, lw, mean, rstd, N, C));
        printf("gelu (N,4C): forward %.2f ms, backward %.2f ms; layernorm (N,C): forward %.2f ms, "
               "backward %.2f ms\n",
               tg * 1e3, tgb * 1e3, tl * 1e3, tlb * 1e3);
        free(a), free(b), free(c), free(mean), free(rstd), free(lw), free(lb);
        long np = 124439808;
        float *p = randn(np, 1), *g = randn(np, 1), *m = randn(np, 0), *v = randn(np, 0);
        double ta = BEST(3, adamw_update(p, g, m, v, np, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 3));
        double ts = BEST(3, sum_squares(g, np));
        printf("adamw over %ld params: %.3f s; sum_squares %.3f s\n", np, ta, ts);
        free(p), free(g), free(m), free(v);
    }
    return 0;
}
