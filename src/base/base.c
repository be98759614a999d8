// base: error messages, checked allocation, RNG, timers.
#include "base/base.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int rlhf_fail(rlhf_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int rlhf_fail_ctx(rlhf_err *err, const char *fmt, ...) {
    if (err) {
        char prefix[512], old[sizeof err->msg], both[sizeof prefix + sizeof old + 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        snprintf(both, sizeof both, "%s: %s", prefix, old);
        memcpy(err->msg, both, sizeof err->msg - 1);
        err->msg[sizeof err->msg - 1] = 0;
    }
    return -1;
}

void rlhf_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "rlhf: internal error at %s:%d: %s\n", file, line, what);
    abort();
}

static void out_of_memory(size_t n, const char *file, int line) {
    fprintf(stderr, "rlhf: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    exit(2);
}

void *rlhf_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n, file, line);
    return p;
}

void *rlhf_calloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size, file, line);
    return p;
}

void *rlhf_realloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n, file, line);
    return q;
}

void *rlhf_aligned_calloc_at(size_t n, const char *file, int line) {
    size_t sz = (n + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, sz ? sz : 64) != 0) out_of_memory(n, file, line);
    memset(p, 0, sz);
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(rlhf_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(rlhf_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_uniform(rlhf_rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float rng_normal(rlhf_rng *r) {
    // Box-Muller from two uniforms; u1 in (0,1] so log is finite
    double u1 = ((rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

double time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int rlhf_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int rlhf_test_nan_step(long step) {
    const char *s = getenv("RLHF_TEST_NAN_GRAD_STEP");
    return s && *s && atol(s) == step;
}
