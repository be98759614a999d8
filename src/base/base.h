// base: errors as values, checked allocation, a seedable RNG whose state can be
// saved, timers. Everything above this layer reports failures through rlhf_err
// so that a bad file or flag becomes a message with context, never a crash.
#ifndef RLHF_BASE_H
#define RLHF_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rlhf_base.h"  // rlhf_err and rlhf_rng (public: include/)

int rlhf_fail(rlhf_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// tests: 1 when RLHF_TEST_NAN_GRAD_STEP names this update (1-based), whose
// gradient the trainers then treat as NaN (the LM optimizer and the control ones)
int rlhf_test_nan_step(long step);
// prefix an existing message: "ctx: old message"
int rlhf_fail_ctx(rlhf_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Allocation that cannot fail silently: out of memory prints where and exits.
// (Running out of memory is not bad user input we can recover from.)
void *rlhf_malloc_at(size_t n, const char *file, int line);
void *rlhf_calloc_at(size_t n, size_t size, const char *file, int line);
void *rlhf_realloc_at(void *p, size_t n, const char *file, int line);
#define xmalloc(n) rlhf_malloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, s) rlhf_calloc_at((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) rlhf_realloc_at((p), (n), __FILE__, __LINE__)
// 64-byte aligned, zeroed; free with free()
void *rlhf_aligned_calloc_at(size_t n, const char *file, int line);
#define xalloc_aligned(n) rlhf_aligned_calloc_at((n), __FILE__, __LINE__)

// Die on a programming error (not on user input).
#define RLHF_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) rlhf_panic(__FILE__, __LINE__, #cond);                                        \
    } while (0)
void rlhf_panic(const char *file, int line, const char *what) __attribute__((noreturn));

double time_now(void);  // seconds, monotonic

int rlhf_num_threads(void);

#endif
