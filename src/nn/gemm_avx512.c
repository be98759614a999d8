// gemm_avx512: gemm_isa.h's kernels for AVX-512 (16-float vectors, 8x32 micro-kernel).
// The Makefile gives this file its own flags (ISA_FLAGS_gemm_avx512); without them (another
// architecture, or a compiler line that lacks them) it provides no kernels and gemm.c never
// picks this path.
#include "nn/gemm_paths.h"

#if defined(__AVX512F__) && defined(__FMA__)
#define GEMM_ISA_NAME avx512
#include "nn/gemm_isa.h"
const gemm_isa_kernels gemm_isa_avx512 = {gemm_packed_avx512, gemm_skinny_avx512};
#else
const gemm_isa_kernels gemm_isa_avx512 = {0, 0};
#endif
