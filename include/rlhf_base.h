// rlhf_base.h — the part of src/base that the public API (rlhf.h) speaks:
// errors as values and the seedable random number generator. Self-contained;
// src/base/base.h includes it and adds the library's internal helpers
// (checked allocation, assertions, timers).
#ifndef RLHF_BASE_PUBLIC_H
#define RLHF_BASE_PUBLIC_H

#include <stddef.h>
#include <stdint.h>

// An error is a message with context ("data.jsonl:17: field \"chosen\" missing").
// Functions that can fail on user input return 0 on success, -1 on failure, and
// fill *err (which may be NULL when the caller does not care about the text).
typedef struct {
    char msg[1024];
} rlhf_err;

// xoshiro256** seeded through splitmix64. The state is 4 words so it can be
// stored in a checkpoint and restored for bit-exact resume.
typedef struct {
    uint64_t s[4];
} rlhf_rng;
void rng_seed(rlhf_rng *r, uint64_t seed);
uint64_t rng_u64(rlhf_rng *r);
float rng_uniform(rlhf_rng *r);  // [0, 1)
float rng_normal(rlhf_rng *r);   // N(0, 1), Box-Muller

#endif
