// ctrl/cql_loss: SAC's target, critic, actor and temperature losses and CQL's /
// Cal-QL's conservative term as pure functions (contracts in cql_loss.h).
#include "ctrl/cql_loss.h"

#include <math.h>

void ctrl_sac_target(float *y, const float *q_next, const float *logp_next, const float *rew,
                     const float *done, float gamma, float ent_coef, int E, int B) {
    for (int b = 0; b < B; b++) {
        float m = q_next[b];
        for (int e = 1; e < E; e++) m = fminf(m, q_next[(long)e * B + b]);
        if (logp_next) m -= ent_coef * logp_next[b];
        y[b] = rew[b] + gamma * (1.0f - done[b]) * m;
    }
}

double ctrl_sac_critic_mse(const float *q, const float *y, int E, int B, float *dq) {
    double loss = 0;
    for (int e = 0; e < E; e++)
        for (int b = 0; b < B; b++) {
            double d = (double)q[(long)e * B + b] - y[b];
            loss += d * d / B;
            if (dq) dq[(long)e * B + b] = (float)(2.0 * d / B);
        }
    return loss;
}

double ctrl_sac_actor_loss(const float *q, const float *logp, float alpha, int E, int B, float *dq,
                           float *dlogp) {
    double loss = 0;
    for (int b = 0; b < B; b++) {
        int arg = 0; // the first minimum, as torch.min's gradient goes to one member
        for (int e = 1; e < E; e++)
            if (q[(long)e * B + b] < q[(long)arg * B + b]) arg = e;
        loss += ((double)alpha * logp[b] - q[(long)arg * B + b]) / B;
        if (dq)
            for (int e = 0; e < E; e++) dq[(long)e * B + b] = e == arg ? -1.0f / B : 0.0f;
        if (dlogp) dlogp[b] = alpha / B;
    }
    return loss;
}

double ctrl_sac_alpha_loss(const float *logp, float log_alpha, float target_entropy, int B,
                           float *dlog_alpha) {
    double mean = 0;
    for (int b = 0; b < B; b++) mean += ((double)logp[b] + target_entropy) / B;
    if (dlog_alpha) *dlog_alpha = (float)-mean;
    return -(double)log_alpha * mean;
}

double ctrl_cql_conservative(const float *q_rand, const float *q_cur, const float *logp_cur,
                             const float *q_next, const float *logp_next, const float *q_data,
                             const float *mc_return, float log_density_rand, float temp,
                             float weight, int B, int N, float *dq_rand, float *dq_cur,
                             float *dq_next, float *dq_data, double *ood_mean) {
    double loss = 0, ood_sum = 0;
    for (int b = 0; b < B; b++) {
        const long o = (long)b * N;
        double bound = mc_return ? mc_return[b] : -INFINITY;
        // the 3N logits of the logsumexp, in double: value / temp
        double mx = -INFINITY;
        for (int j = 0; j < N; j++) {
            double r = ((double)q_rand[o + j] - log_density_rand) / temp;
            double n = (fmax(q_next[o + j], bound) - logp_next[o + j]) / temp;
            double c = (fmax(q_cur[o + j], bound) - logp_cur[o + j]) / temp;
            mx = fmax(mx, fmax(r, fmax(n, c)));
        }
        double s = 0;
        for (int j = 0; j < N; j++) {
            s += exp(((double)q_rand[o + j] - log_density_rand) / temp - mx);
            s += exp((fmax(q_next[o + j], bound) - logp_next[o + j]) / temp - mx);
            s += exp((fmax(q_cur[o + j], bound) - logp_cur[o + j]) / temp - mx);
        }
        double ood = temp * (mx + log(s));
        ood_sum += ood;
        loss += weight * (ood - q_data[b]) / B;
        // d ood / d value = softmax weight; the bound passes no gradient where it wins
        double g = weight / B;
        for (int j = 0; j < N; j++) {
            if (dq_rand)
                dq_rand[o + j] =
                    (float)(g * exp(((double)q_rand[o + j] - log_density_rand) / temp - mx) / s);
            if (dq_next) {
                double v = fmax(q_next[o + j], bound);
                dq_next[o + j] = q_next[o + j] >= bound
                                     ? (float)(g * exp((v - logp_next[o + j]) / temp - mx) / s)
                                     : 0.0f;
            }
            if (dq_cur) {
                double v = fmax(q_cur[o + j], bound);
                dq_cur[o + j] = q_cur[o + j] >= bound
                                    ? (float)(g * exp((v - logp_cur[o + j]) / temp - mx) / s)
                                    : 0.0f;
            }
        }
        if (dq_data) dq_data[b] = (float)-g;
    }
    if (ood_mean) *ood_mean = B ? ood_sum / B : 0;
    return loss;
}

long ctrl_sac_noise_size(int B, int A, int N) {
    return (long)B * A * (2 + 3L * N);
}

void ctrl_sac_draw_noise(rlhf_rng *rng, int B, int A, int N, float *noise) {
    long n_normal = (long)B * A * (2 + 2L * N), n_uniform = (long)B * A * N;
    for (long i = 0; i < n_normal; i++) noise[i] = rng_normal(rng);
    for (long i = 0; i < n_uniform; i++) noise[n_normal + i] = 2.0f * rng_uniform(rng) - 1.0f;
}
