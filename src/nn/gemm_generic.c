// gemm_generic: gemm_isa.h's kernels for portable C vectors of 4 floats (SSE2 on x86-64; any CPU);
// built with -mno-avx. The Makefile gives this file its own flags (ISA_FLAGS_gemm_generic); without
// them (another architecture, or a compiler line that lacks them) it provides no kernels and gemm.c
// never picks this path.
#include "nn/gemm_paths.h"

#if !defined(__AVX__)
#define GEMM_ISA_NAME generic
#include "nn/gemm_isa.h"
const gemm_isa_kernels gemm_isa_generic = {gemm_packed_generic, gemm_skinny_generic};
#else
const gemm_isa_kernels gemm_isa_generic = {0, 0};
#endif
