// algo/nash: Nash-MD's preference and loss (formulas in algo/nash.h).
#include "algo/nash.h"

#include <math.h>
#include <stddef.h>

void nash_preference(int n, const float *score_policy, const float *score_mixture, double *prob) {
    for (int i = 0; i < n; i++) {
        double d = (double)score_policy[i] - score_mixture[i];
        // σ(d) without overflow: exp of a non-positive number only
        prob[i] = d >= 0 ? 1 / (1 + exp(-d)) : exp(d) / (1 + exp(d));
    }
}

double nash_md_loss(int B, int T, const float *logp, const float *logp_sg, const float *ref_logp,
                    const float *mask, const double *prob, double beta, int n_rows, float *dlogp,
                    nash_md_stats *st) {
    double loss = 0, score = 0, kl = 0, kl_term = 0, inv = n_rows > 0 ? 1.0 / n_rows : 0;
    for (int b = 0; b < B; b++) {
        double adv = prob[b] - 0.5, sum_logp = 0, sum_ratio = 0, sum_term = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (mask[i] == 0) {
                dlogp[i] = 0;
                continue;
            }
            double ratio = (double)logp_sg[i] - ref_logp[i];
            sum_logp += logp[i];
            sum_ratio += ratio;
            sum_term += ratio * logp[i];
            dlogp[i] = (float)((beta * ratio - adv) * inv);
        }
        loss += beta * sum_term - adv * sum_logp;
        score += adv * sum_logp, kl += sum_ratio, kl_term += sum_term;
    }
    if (st) *st = (nash_md_stats){.score = score * inv, .kl = kl * inv, .kl_term = kl_term * inv};
    return loss * inv;
}
