// Attention of new query slots against a KV cache (inference only; no backward).
#ifndef RLHF_ATTN_CACHE_H
#define RLHF_ATTN_CACHE_H

#include <stdint.h>

// q: B*n rows at row stride qstride, NH heads of HS at the start of each row.
// kc, vc (B, NKV, maxT, HS): slots [0, s0+n) filled. kmask (B, maxT): 1 real slot.
// Query j of row b sits at slot s0+j and sees slots s <= s0+j with kmask[b][s] = 1.
// -> out (B*n, NH*HS). scratch: B*NH*n*(s0+n) floats.
void attention_cached_forward(float *out, const float *q, int qstride, const float *kc,
                              const float *vc, const uint8_t *kmask, int B, int n, int s0,
                              int maxT, int NH, int NKV, int HS, float *scratch);

#endif
