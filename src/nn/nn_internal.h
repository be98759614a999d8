// nn_internal: helpers shared by the kernel files in src/nn, not part of the API.
// exp and tanh are written as plain float arithmetic so that gcc -O3 vectorises the
// loops that call them (glibc's expf/tanhf only get SIMD variants under -ffast-math,
// and the softmax, GELU and SiLU loops are dominated by them). Accuracy: a few ulp.
#ifndef RLHF_NN_INTERNAL_H
#define RLHF_NN_INTERNAL_H

#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

// kernels open their own parallel regions only when not already inside one
static inline int nn_in_parallel(void) {
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return 0;
#endif
}

static inline int nn_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Selects done on the bits: with the default -ftrapping-math, gcc will not if-convert a
// float `c ? a : b` whose arms it has sunk into branches, and the loop stays scalar.
static inline int32_t vm_bits(float x) {
    int32_t i;
    memcpy(&i, &x, sizeof i);
    return i;
}
static inline float vm_float(int32_t i) {
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}
// c ? a : b, without a branch
static inline float vm_select(int c, float a, float b) {
    int32_t m = -(int32_t)(c != 0);
    return vm_float((vm_bits(a) & m) | (vm_bits(b) & ~m));
}

// ---- dropout masks (nn.h dropout_key / dropout_kept), inline so mask loops vectorise ----

static inline uint64_t nn_mix64(uint64_t z) {  // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// element idx's 53-bit uniform draw under key (u = draw * 2^-53 in [0, 1))
static inline uint64_t nn_drop_draw(uint64_t key, uint64_t idx) {
    return nn_mix64(key + 0x9e3779b97f4a7c15ULL * (idx + 1)) >> 11;
}

// the integer form of "u >= p" for p in [0, 1): draw >= ceil(p 2^53), exactly (p 2^53 and
// the draw are exact doubles), so a loop compares integers instead of converting each draw
static inline uint64_t nn_drop_cut(double p) {
    double c = p * 0x1.0p53;
    uint64_t u = (uint64_t)c;
    return (double)u < c ? u + 1 : u;
}

// exp(x): Cephes expf. x = n ln2 + r with |r| <= ln2/2, exp(r) by a polynomial, 2^n put
// straight into the exponent bits. Defined for every input and vectorisable (selects, no
// branches): underflows to exactly 0 below -87.3 (so exp(-inf) = 0; libm returns
// subnormals down to -103.9, which are slow and which no loop here needs); overflows to
// +inf above ln(FLT_MAX) = 88.72 (exp(+inf) = +inf, as libm); NaN gives NaN. The
// argument is clamped (NaN to the low end: comparisons with NaN are false) *before* the
// float-to-int conversion and n is capped at 127, so the conversion and the shift only
// ever see n in [-126, 127] (a NaN once reached `(n + 127) << 23` as INT_MIN: undefined
// behaviour). Relative error < 2e-7 (< 4e-7 in (88.4, 88.72), where the cap on n
// leaves r up to ln 2).
static inline float vm_expf(float x) {
    const float lo = -87.3f, hi = 88.72283f;
    float xc = vm_select(x > lo, x, lo); // NaN -> lo
    xc = vm_select(xc < hi, xc, hi);
    // round to nearest by truncation (floorf would block vectorisation without -ffast-math)
    float z = xc * 1.44269504088896341f;
    int32_t ni = (int32_t)(z + __builtin_copysignf(0.5f, z));
    ni = ni < 127 ? ni : 127;
    float n = (float)ni;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float res = p * vm_float((ni + 127) << 23);
    res = vm_select(x < lo, 0.0f, res);
    // x > hi or NaN (the comparison is false): x * FLT_MAX is +inf or NaN
    return vm_select(x <= hi, res, x * 3.40282347e38f);
}

// x (n) = sqrt(x) in place. Spelled with intrinsics where available: without
// -fno-math-errno gcc keeps a scalar sqrtf call (for errno) and the loop stays scalar.
static inline void vm_sqrt_inplace(float *x, int n) {
    int i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_sqrt_ps(_mm512_loadu_ps(x + i)));
#elif defined(__AVX__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) x[i] = __builtin_sqrtf(x[i]);
}

// tanh(x) = sign(x) (1 - 2 / (exp(2|x|) + 1)), and x - x^3/3 + 2x^5/15 - 17x^7/315 for
// |x| < 1/8, where the first form cancels (it would return 0 for |x| < 3e-8). Relative
// error < 1e-6 everywhere; tanh(+-inf) = +-1, tanh(NaN) = NaN.
static inline float vm_tanhf(float x) {
    float a = __builtin_fabsf(x);
    float t = 1.0f - 2.0f / (vm_expf(2.0f * a) + 1.0f);
    float a2 = a * a;
    float s = a + a * a2 * (-0.333333333f + a2 * (0.133333333f + a2 * -0.053968254f));
    t = vm_select(a < 0.125f, s, t);
    return __builtin_copysignf(t, x);
}

#endif
