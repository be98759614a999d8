// gemm_avx2: gemm_isa.h's kernels for AVX2 + FMA (8-float vectors, 6x16 micro-kernel); built with
// -mno-avx512f so that forcing it here runs what an AVX2-only CPU runs. The Makefile gives this
// file its own flags (ISA_FLAGS_gemm_avx2); without them (another architecture, or a compiler line
// that lacks them) it provides no kernels and gemm.c never picks this path.
#include "nn/gemm_paths.h"

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#define GEMM_ISA_NAME avx2
#include "nn/gemm_isa.h"
const gemm_isa_kernels gemm_isa_avx2 = {gemm_packed_avx2, gemm_skinny_avx2};
#else
const gemm_isa_kernels gemm_isa_avx2 = {0, 0};
#endif
