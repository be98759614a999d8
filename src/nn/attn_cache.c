// Cached attention for generation: a block of n new queries per row against all
// slots filled so far. Prefill (n = prompt length) and decode (n = 1) share it.
#include "nn/attn_cache.h"

#include <math.h>
#include <string.h>

#include "nn/nn.h"

// q (B*n, qstride) heads at offset 0; kc, vc (B,NKV,maxT,HS); kmask (B,maxT) -> out (B*n, NH*HS)
void attention_cached_forward(float *out, const float *q, int qstride, const float *kc,
                              const float *vc, const uint8_t *kmask, int B, int n, int s0,
                              int maxT, int NH, int NKV, int HS, float *scratch) {
    int S = s0 + n, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            const float *K = kc + ((size_t)b * NKV + kvh) * maxT * HS;
            const float *Vv = vc + ((size_t)b * NKV + kvh) * maxT * HS;
            const float *Q = q + (size_t)b * n * qstride + h * HS;
            const uint8_t *km = kmask + (size_t)b * maxT;
            float *P = scratch + ((size_t)b * NH + h) * n * S;
            float *O = out + (size_t)b * n * NH * HS + h * HS;
            if (n == 1) {
                for (int s = 0; s < S; s++) {
                    const float *k = K + (size_t)s * HS;
                    float d = 0.0f;
                    for (int i = 0; i < HS; i++) d += Q[i] * k[i];
                    P[s] = d * scale;
                }
            } else {
                gemm(0, 1, n, S, HS, scale, Q, qstride, K, HS, 0.0f, P, S);
            }
            for (int j = 0; j < n; j++) {
                float *p = P + (size_t)j * S;
                int lim = s0 + j;
                float mx = -INFINITY;
                for (int s = 0; s <= lim; s++)
                    if (km[s] && p[s] > mx) mx = p[s];
                float sum = 0.0f;
                for (int s = 0; s < S; s++) {
                    float e = (s <= lim && km[s] && mx > -INFINITY) ? expf(p[s] - mx) : 0.0f;
                    p[s] = e;
                    sum += e;
                }
                float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
                for (int s = 0; s < S; s++) p[s] *= inv;
            }
            if (n == 1) {
                for (int i = 0; i < HS; i++) O[i] = 0.0f;
                for (int s = 0; s < S; s++) {
                    float w = P[s];
                    if (w == 0.0f) continue;
                    const float *v = Vv + (size_t)s * HS;
                    for (int i = 0; i < HS; i++) O[i] += w * v[i];
                }
            } else {
                gemm(0, 0, n, HS, S, 1.0f, P, S, Vv, HS, 0.0f, O, NH * HS);
            }
        }
    }
}
