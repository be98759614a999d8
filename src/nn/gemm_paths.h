// gemm_paths: the kernels each instruction-set build of gemm_isa.h provides, for gemm.c's
// dispatcher and for tests. Internal to src/nn (the API is in nn.h).
#ifndef RLHF_GEMM_PATHS_H
#define RLHF_GEMM_PATHS_H

// the skinny (decode) kernel takes up to this many rows
#define GEMM_SKINNY_MAX_M 64

typedef void (*gemm_packed_fn)(int transA, int transB, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta,
                               float *C, int ldc);
typedef void (*gemm_skinny_fn)(int M, int N, int K, float alpha, const float *A, int lda,
                               const float *B, int ldb, float beta, float *C, int ldc);

// one instruction set's kernels; both NULL where the build could not compile it
// (a compiler or architecture without those instructions)
typedef struct {
    gemm_packed_fn packed;
    gemm_skinny_fn skinny;
} gemm_isa_kernels;

// C (M,N) = beta * C, where beta == 0 writes zeros whatever C held (gemm.c)
void gemm_scale_c(float *C, int M, int N, int ldc, float beta);

extern const gemm_isa_kernels gemm_isa_avx512, gemm_isa_avx2, gemm_isa_generic;

#endif
