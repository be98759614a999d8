// algo/rl_reward.c: what happens to rewards between the scorer and the
// advantage estimator — PF-PPO sample filters, placing outcome scores on
// tokens, PAR shaping, reward-model ensemble reducers (with reward-robust
// RLHF's over a Bayesian ensemble's means and sigmas) and length / EOS
// penalties. Pure arithmetic; the reward sources in src/reward/ call these.
// Formulas and sources: docs/online_rl.md.
#include <math.h>
#include <string.h>

#include "algo/rl.h"

// ---------------------------------------------------------------- filters --

static const char *filter_names[] = {"none", "best", "best_random", "best_worst", "reweight"};

int rl_filter_from_name(const char *name, rl_filter *out, rlhf_err *err) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, filter_names[i])) {
            *out = (rl_filter)i;
            return 0;
        }
    return rlhf_fail(err,
                     "unknown --filter \"%s\" (choose none, best, best_random, best_worst, reweight)",
                     name);
}

const char *rl_filter_name(rl_filter f) {
    return (unsigned)f < 5 ? filter_names[f] : "?";
}

int rl_filter_weights(rl_filter f, int B, int group_size, const float *scores, float power,
                      rlhf_rng *rng, float *weights, rlhf_err *err) {
    const int n = group_size;
    if (n < 1 || B % n)
        return rlhf_fail(err, "--filter %s: a batch of %d samples is not a whole number of "
                              "groups of %d", rl_filter_name(f), B, n);
    if (f == RL_FILTER_BEST_RANDOM && !rng)
        return rlhf_fail(err, "--filter best_random: needs a random generator");
    if ((unsigned)f > RL_FILTER_REWEIGHT)
        return rlhf_fail(err, "--filter: unknown filter %d", (int)f);
    for (int g = 0; g < B; g += n) {
        const float *s = scores + g;
        float *w = weights + g;
        if (f == RL_FILTER_NONE) {
            for (int j = 0; j < n; j++) w[j] = 1;
            continue;
        }
        if (f == RL_FILTER_REWEIGHT) {
            double sum = 0;
            for (int j = 0; j < n; j++) sum += pow(fabs((double)s[j]), power) + 1e-8;
            for (int j = 0; j < n; j++) w[j] = (float)(n * (pow(fabs((double)s[j]), power) + 1e-8) / sum);
            continue;
        }
        int best = 0, worst = n - 1;
        for (int j = 1; j < n; j++)
            if (s[j] > s[best]) best = j;          // first maximum
        for (int j = n - 2; j >= 0; j--)
            if (s[j] < s[worst]) worst = j;        // last minimum
        for (int j = 0; j < n; j++) w[j] = 0;
        w[best] = 1;
        if (n < 2) continue;
        if (f == RL_FILTER_BEST_WORST) {
            w[worst] = 1; // != best: equal scores put best first and worst last
        } else if (f == RL_FILTER_BEST_RANDOM) {
            int j = (int)(rng_u64(rng) % (uint64_t)(n - 1));
            if (j >= best) j++;
            w[j] = 1;
        }
    }
    return 0;
}

void rl_apply_seq_weights(int B, int T, const float *weights, float *mask, float *adv) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (weights[b] == 0) {
                if (mask) mask[i] = 0;
                if (adv) adv[i] = 0;
            } else if (adv) {
                adv[i] *= weights[b];
            }
        }
}

// ---------------------------------------------------------------- shaping --

void rl_add_outcome_rewards(int B, int T, const float *scores, const float *mask, float *rewards) {
    for (int b = 0; b < B; b++)
        for (int t = T - 1; t >= 0; t--)
            if (mask[(size_t)b * T + t] != 0) {
                rewards[(size_t)b * T + t] += scores[b];
                break;
            }
}

static double sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

float rl_par_reward(float r, int M, const float *r_ref, float k) {
    if (M < 1) return 0;
    double s = 0;
    for (int m = 0; m < M; m++) s += sigmoid((double)k * ((double)r - r_ref[m]));
    return (float)(s / M);
}

int rl_ensemble_from_name(const char *name, rl_ensemble *out, rlhf_err *err) {
    if (!strcmp(name, "mean")) *out = RL_ENSEMBLE_MEAN;
    else if (!strcmp(name, "wco") || !strcmp(name, "WCO") || !strcmp(name, "min"))
        *out = RL_ENSEMBLE_WCO;
    else if (!strcmp(name, "uwo") || !strcmp(name, "UWO")) *out = RL_ENSEMBLE_UWO;
    else if (!strcmp(name, "brme") || !strcmp(name, "robust")) *out = RL_ENSEMBLE_BRME;
    else return rlhf_fail(err, "unknown ensemble reducer \"%s\" (choose mean, wco, uwo, brme)", name);
    return 0;
}

// reward-robust RLHF (Yan et al. 2024): the nominal reward is the mean of the
// head that is surest (lowest sigma), the robust one the worst head's mean
static float reduce_brme(int K, const float *mu, const float *sigma, float lambda) {
    int best = 0;
    float lo = mu[0];
    for (int k = 1; k < K; k++) {
        if (sigma && sigma[k] < sigma[best]) best = k;
        if (mu[k] < lo) lo = mu[k];
    }
    return (float)((double)lambda * mu[best] + (1.0 - (double)lambda) * lo);
}

void rl_ensemble_reduce_sigma(rl_ensemble kind, int B, int K, const float *scores,
                              const float *sigmas, float lambda, float *out) {
    if (kind != RL_ENSEMBLE_BRME) {
        rl_ensemble_reduce(kind, B, K, scores, lambda, out);
        return;
    }
    for (int b = 0; b < B; b++)
        out[b] = K < 1 ? 0
                       : reduce_brme(K, scores + (size_t)b * K, sigmas ? sigmas + (size_t)b * K : NULL,
                                     lambda);
}

void rl_ensemble_reduce(rl_ensemble kind, int B, int K, const float *scores, float lambda,
                        float *out) {
    for (int b = 0; b < B; b++) {
        const float *s = scores + (size_t)b * K;
        if (K < 1) {
            out[b] = 0;
            continue;
        }
        if (kind == RL_ENSEMBLE_BRME) {
            out[b] = reduce_brme(K, s, NULL, lambda);
            continue;
        }
        if (kind == RL_ENSEMBLE_WCO) {
            float m = s[0];
            for (int k = 1; k < K; k++) m = s[k] < m ? s[k] : m;
            out[b] = m;
            continue;
        }
        double mu = 0, var = 0;
        for (int k = 0; k < K; k++) mu += s[k];
        mu /= K;
        for (int k = 0; k < K; k++) var += (s[k] - mu) * (s[k] - mu);
        var /= K;
        out[b] = (float)(kind == RL_ENSEMBLE_UWO ? mu - lambda * var : mu);
    }
}

float rl_length_penalty(int length, float alpha) { return -alpha * (float)length; }

float rl_overlong_penalty(int length, int max_len, int cache_len) {
    int free_len = max_len - cache_len;
    if (length <= free_len) return 0;
    if (length > max_len || cache_len <= 0) return -1;
    return (float)(free_len - length) / (float)cache_len;
}

void rl_missing_eos_penalty(int B, float *scores, const uint8_t *has_eos, float penalty) {
    for (int b = 0; b < B; b++)
        if (!has_eos[b]) scores[b] -= penalty;
}
