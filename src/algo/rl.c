// algo/rl.c: the loss side of online RL — masked statistics, loss aggregation,
// the policy-loss variants (PPO clip, GSPO, CISPO, SAPO, LUSPO, VESPO) and their registry, KL estimators and coefficient controllers, and the
// clipped value loss. Each function returns its loss and accumulates
// d(loss)/d(input) so the trainer can hand it to the model's backward.
// Formulas and sources: docs/online_rl.md.
#include "algo/rl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ---------------------------------------------------------------- stats --

double rl_masked_sum(size_t n, const float *x, const float *mask) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        if (mask[i] != 0) s += (double)mask[i] * x[i];
    return s;
}

static double mask_count(size_t n, const float *mask) {
    double c = 0;
    for (size_t i = 0; i < n; i++) c += mask[i];
    return c;
}

float rl_masked_mean(size_t n, const float *x, const float *mask) {
    double c = mask_count(n, mask);
    return c > 0 ? (float)(rl_masked_sum(n, x, mask) / c) : 0.0f;
}

// mean and variance in double (two passes)
static void masked_moments(size_t n, const float *x, const float *mask, int unbiased,
                           double *mean, double *var) {
    double c = mask_count(n, mask);
    *mean = *var = 0;
    if (c <= 0) return;
    double m = rl_masked_sum(n, x, mask) / c, v = 0;
    for (size_t i = 0; i < n; i++)
        if (mask[i] != 0) v += (double)mask[i] * (x[i] - m) * (x[i] - m);
    v /= c;
    if (unbiased && c > 1) v *= c / (c - 1);
    *mean = m;
    *var = v;
}

float rl_masked_var(size_t n, const float *x, const float *mask, int unbiased) {
    double m, v;
    masked_moments(n, x, mask, unbiased, &m, &v);
    return (float)v;
}

void rl_masked_whiten(size_t n, const float *x, const float *mask, int shift_mean, float *out) {
    double m, v;
    masked_moments(n, x, mask, 1, &m, &v);
    double inv = 1.0 / sqrt(v + 1e-8);
    for (size_t i = 0; i < n; i++) {
        if (mask[i] == 0) {
            out[i] = 0;
            continue;
        }
        double w = (x[i] - m) * inv;
        out[i] = (float)(shift_mean ? w : w + m);
    }
}

float rl_explained_variance(size_t n, const float *values, const float *returns,
                            const float *mask) {
    double c = mask_count(n, mask);
    if (c <= 0) return NAN;
    double mr = 0, md = 0;
    for (size_t i = 0; i < n; i++)
        if (mask[i] != 0) {
            mr += (double)mask[i] * returns[i];
            md += (double)mask[i] * ((double)returns[i] - values[i]);
        }
    mr /= c;
    md /= c;
    double vr = 0, vd = 0;
    for (size_t i = 0; i < n; i++)
        if (mask[i] != 0) {
            double d = (double)returns[i] - values[i];
            vr += (double)mask[i] * (returns[i] - mr) * (returns[i] - mr);
            vd += (double)mask[i] * (d - md) * (d - md);
        }
    if (vr <= 0) return NAN;
    return (float)(1.0 - vd / vr);
}

// ----------------------------------------------------------- aggregation --

static const struct {
    const char *name;
    rl_agg agg;
} agg_names[] = {
    {"token-mean", RL_AGG_TOKEN_MEAN},
    {"seq-mean-token-mean", RL_AGG_SEQ_MEAN_TOKEN_MEAN},
    {"seq-mean-token-sum", RL_AGG_SEQ_MEAN_TOKEN_SUM},
    {"seq-mean-token-sum-norm", RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM},
    {"bnpo", RL_AGG_TOKEN_MEAN}, // TRL loss_type names
    {"grpo", RL_AGG_SEQ_MEAN_TOKEN_MEAN},
    {"dr_grpo", RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM},
    {"dapo", RL_AGG_TOKEN_MEAN},
};

int rl_agg_from_name(const char *name, rl_agg *out, rlhf_err *err) {
    for (size_t i = 0; i < sizeof agg_names / sizeof agg_names[0]; i++)
        if (strcmp(name, agg_names[i].name) == 0) {
            *out = agg_names[i].agg;
            return 0;
        }
    return rlhf_fail(err,
                     "unknown loss aggregation \"%s\" (choose token-mean, seq-mean-token-mean, "
                     "seq-mean-token-sum, seq-mean-token-sum-norm; or TRL's bnpo, grpo, dr_grpo, dapo)",
                     name);
}

const char *rl_agg_name(rl_agg a) {
    for (size_t i = 0; i < 4; i++)
        if (agg_names[i].agg == a) return agg_names[i].name;
    return "?";
}

// Every mode is loss = sum_b f(n_b) * sum_t m_bt * l_bt with n_b the row's mask
// sum; agg_ctx holds what f needs.
typedef struct {
    rl_agg mode;
    double total; // sum of the mask
    double rows;  // rows with a counted token
    double len;   // norm_len
} agg_ctx;

static double row_count(int T, const float *mask_row) {
    double c = 0;
    for (int t = 0; t < T; t++) c += mask_row[t];
    return c;
}

static agg_ctx agg_begin(rl_agg mode, int B, int T, const float *mask, float norm_len) {
    agg_ctx a = {mode, 0, 0, norm_len > 0 ? norm_len : T};
    for (int b = 0; b < B; b++) {
        double c = row_count(T, mask + (size_t)b * T);
        a.total += c;
        a.rows += c > 0;
    }
    return a;
}

static double agg_row_factor(const agg_ctx *a, double n_b) {
    if (n_b <= 0) return 0;
    switch (a->mode) {
    case RL_AGG_TOKEN_MEAN: return 1.0 / a->total;
    case RL_AGG_SEQ_MEAN_TOKEN_MEAN: return 1.0 / (a->rows * n_b);
    case RL_AGG_SEQ_MEAN_TOKEN_SUM: return 1.0 / a->rows;
    case RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM: return 1.0 / (a->rows * a->len);
    }
    return 0;
}

float rl_agg_loss(rl_agg mode, int B, int T, const float *x, const float *mask, float norm_len,
                  float *dx) {
    agg_ctx a = agg_begin(mode, B, T, mask, norm_len);
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * T;
        double f = agg_row_factor(&a, row_count(T, m));
        if (f == 0) continue;
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            size_t i = (size_t)b * T + t;
            loss += f * m[t] * x[i];
            if (dx) dx[i] += (float)(f * m[t]);
        }
    }
    return (float)loss;
}

// ------------------------------------------------------------ policy loss --

void rl_policy_config_default(rl_policy_config *c) {
    *c = (rl_policy_config){.clip_low = 0.2f, .clip_high = 0.2f, .clip_c = 0,
                            .seq_ratio = 0, .agg = RL_AGG_TOKEN_MEAN, .norm_len = 0,
                            .sapo_temperature_pos = 1.0f, .sapo_temperature_neg = 1.05f,
                            .vespo_k_pos = 2.0f, .vespo_lambda_pos = 3.0f,
                            .vespo_k_neg = 3.0f, .vespo_lambda_neg = 2.0f};
}

// The clipped surrogate shared by the variants: seq_ratio 0 uses the token ratio
// (ppo), 1 the sequence ratio (gspo).
static int clip_loss(const rl_policy_config *c, int seq_ratio, int B, int T, const float *logp,
                     const float *old_logp, const float *adv, const float *mask, float *dlogp,
                     rl_policy_stats *st, rlhf_err *err) {
    if (c->clip_low < 0 || c->clip_high < 0)
        return rlhf_fail(err, "policy loss: clip ranges must be >= 0 (got %g, %g)",
                         c->clip_low, c->clip_high);
    if (c->clip_low >= 1)
        return rlhf_fail(err, "policy loss: clip_low must be below 1 (got %g)", c->clip_low);
    if (c->clip_c != 0 && !(c->clip_c > 1))
        return rlhf_fail(err, "policy loss: dual-clip c must be > 1 (got %g; 0 turns it off)",
                         c->clip_c);
    agg_ctx a = agg_begin(c->agg, B, T, mask, c->norm_len);
    const double lo = 1.0 - c->clip_low, hi = 1.0 + c->clip_high;
    double loss = 0, n = 0, nclip = 0, nlower = 0, k1 = 0, k3 = 0, rsum = 0;
    double rmin = INFINITY, rmax = -INFINITY;
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * T;
        double nb = row_count(T, m);
        if (nb <= 0) continue;
        double f = agg_row_factor(&a, nb);
        // GSPO: one log-ratio per sequence, the masked mean of the token log-ratios
        double seq_lr = 0;
        int seq_clamped = 0;
        if (seq_ratio) {
            for (int t = 0; t < T; t++)
                if (m[t] != 0) {
                    size_t i = (size_t)b * T + t;
                    seq_lr += (double)m[t] * ((double)logp[i] - old_logp[i]);
                }
            seq_lr /= nb;
            if (seq_lr > 10) seq_lr = 10, seq_clamped = 1;
        }
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            size_t i = (size_t)b * T + t;
            double lr = (double)logp[i] - old_logp[i];
            int clamped = 0;
            if (lr > 20) lr = 20, clamped = 1;
            if (lr < -20) lr = -20, clamped = 1;
            double tok_ratio = exp(lr);
            double r = tok_ratio;
            if (seq_ratio) r = exp(seq_lr), clamped = seq_clamped;
            double A = adv[i];
            double rc = r < lo ? lo : r > hi ? hi : r;
            double l1 = -A * r, l2 = -A * rc, l, dl_dr;
            if (l2 > l1) {
                l = l2, dl_dr = 0; // clipped: r is outside the range, clip(r) is constant
                nclip += m[t];
            } else {
                l = l1, dl_dr = -A;
            }
            if (c->clip_c > 0 && A < 0) {
                double l3 = -A * c->clip_c;
                if (l > l3) {
                    l = l3, dl_dr = 0;
                    nlower += m[t];
                }
            }
            loss += f * m[t] * l;
            if (dlogp && !clamped) dlogp[i] += (float)(f * m[t] * dl_dr * r);
            n += m[t];
            k1 += m[t] * -lr;
            k3 += m[t] * ((tok_ratio - 1) - lr);
            rsum += m[t] * r;
            if (r < rmin) rmin = r;
            if (r > rmax) rmax = r;
        }
    }
    if (st) {
        *st = (rl_policy_stats){0};
        st->loss = (float)loss;
        if (n > 0) {
            st->clip_frac = (float)(nclip / n);
            st->clip_frac_lower = (float)(nlower / n);
            st->kl_k1 = (float)(k1 / n);
            st->kl_k3 = (float)(k3 / n);
            st->ratio_mean = (float)(rsum / n);
            st->ratio_min = (float)rmin;
            st->ratio_max = (float)rmax;
        }
    }
    return 0;
}

static int ppo_loss(const rl_policy_config *c, int B, int T, const float *logp,
                    const float *old_logp, const float *adv, const float *mask, float *dlogp,
                    rl_policy_stats *st, rlhf_err *err) {
    return clip_loss(c, 0, B, T, logp, old_logp, adv, mask, dlogp, st, err);
}

static int gspo_loss(const rl_policy_config *c, int B, int T, const float *logp,
                     const float *old_logp, const float *adv, const float *mask, float *dlogp,
                     rl_policy_stats *st, rlhf_err *err) {
    return clip_loss(c, 1, B, T, logp, old_logp, adv, mask, dlogp, st, err);
}

// The variants TRL has beyond the clip (docs/policy_losses.md). Each is a per-token
// loss l_t with its derivative dl_t/dlogp_t, aggregated as the clip's.

// One token's ratio statistics, as clip_loss keeps them.
typedef struct {
    double n, nclip, k1, k3, rsum, rmin, rmax;
} ratio_acc;

static void ratio_acc_add(ratio_acc *a, double m, double lr, double r, int clipped) {
    a->n += m;
    a->nclip += clipped ? m : 0;
    a->k1 += m * -lr;
    a->k3 += m * ((exp(lr) - 1) - lr);
    a->rsum += m * r;
    if (r < a->rmin) a->rmin = r;
    if (r > a->rmax) a->rmax = r;
}

static void ratio_acc_stats(const ratio_acc *a, double loss, rl_policy_stats *st) {
    if (!st) return;
    *st = (rl_policy_stats){0};
    st->loss = (float)loss;
    if (a->n > 0) {
        st->clip_frac = (float)(a->nclip / a->n);
        st->kl_k1 = (float)(a->k1 / a->n);
        st->kl_k3 = (float)(a->k3 / a->n);
        st->ratio_mean = (float)(a->rsum / a->n);
        st->ratio_min = (float)a->rmin;
        st->ratio_max = (float)a->rmax;
    }
}

// the token log-ratio, clamped to [-20, 20] as the clip's; *clamped: it was
static double token_log_ratio(float logp, float old_logp, int *clamped) {
    double lr = (double)logp - old_logp;
    *clamped = lr > 20 || lr < -20;
    return lr > 20 ? 20 : lr < -20 ? -20 : lr;
}

// CISPO (MiniMax-M1): the importance weight min(rho, cap) is a constant, so the
// gradient is plain REINFORCE's -A scaled by it; nothing is ever zeroed. The cap is
// clip_high itself, as TRL reads epsilon_high for cispo. clip_frac: capped tokens.
static int cispo_loss(const rl_policy_config *c, int B, int T, const float *logp,
                      const float *old_logp, const float *adv, const float *mask, float *dlogp,
                      rl_policy_stats *st, rlhf_err *err) {
    if (!(c->clip_high > 0))
        return rlhf_fail(err, "policy loss cispo: the weight cap epsilon_high must be > 0 (got "
                              "%g; TRL reads it as eps_max, ScaleRL recommends 5)",
                         c->clip_high);
    agg_ctx a = agg_begin(c->agg, B, T, mask, c->norm_len);
    ratio_acc ra = {.rmin = INFINITY, .rmax = -INFINITY};
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * T;
        double f = agg_row_factor(&a, row_count(T, m));
        if (f == 0) continue;
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            size_t i = (size_t)b * T + t;
            int clamped;
            double lr = token_log_ratio(logp[i], old_logp[i], &clamped);
            double r = exp(lr), w = r < c->clip_high ? r : c->clip_high;
            loss += f * m[t] * -w * adv[i] * logp[i];
            if (dlogp) dlogp[i] += (float)(f * m[t] * -w * adv[i]);
            ratio_acc_add(&ra, m[t], lr, r, r > c->clip_high);
        }
    }
    ratio_acc_stats(&ra, loss, st);
    return 0;
}

// SAPO: the gate g(rho) = (4/tau) sigmoid(tau (rho - 1)) replaces the clipped
// ratio; dg/drho = 4 s (1 - s), s = sigmoid(.), so d l/d logp = -A * 4 s (1 - s) * rho
// (-A at rho = 1, fading smoothly as rho leaves 1). clip_frac: 0 (nothing is cut).
static int sapo_loss(const rl_policy_config *c, int B, int T, const float *logp,
                     const float *old_logp, const float *adv, const float *mask, float *dlogp,
                     rl_policy_stats *st, rlhf_err *err) {
    if (!(c->sapo_temperature_pos > 0) || !(c->sapo_temperature_neg > 0))
        return rlhf_fail(err, "policy loss sapo: temperatures must be > 0 (got %g, %g)",
                         c->sapo_temperature_pos, c->sapo_temperature_neg);
    agg_ctx a = agg_begin(c->agg, B, T, mask, c->norm_len);
    ratio_acc ra = {.rmin = INFINITY, .rmax = -INFINITY};
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * T;
        double f = agg_row_factor(&a, row_count(T, m));
        if (f == 0) continue;
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            size_t i = (size_t)b * T + t;
            int clamped;
            double lr = token_log_ratio(logp[i], old_logp[i], &clamped);
            double r = exp(lr), A = adv[i];
            double tau = A > 0 ? c->sapo_temperature_pos : c->sapo_temperature_neg;
            double z = tau * (r - 1);
            double s = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
            loss += f * m[t] * -A * (4 / tau) * s;
            if (dlogp && !clamped) dlogp[i] += (float)(f * m[t] * -A * 4 * s * (1 - s) * r);
            ratio_acc_add(&ra, m[t], lr, r, 0);
        }
    }
    ratio_acc_stats(&ra, loss, st);
    return 0;
}

// LUSPO: gspo's clip, each sequence's loss scaled by its length and averaged over
// sequences = seq-mean-token-sum of gspo's per-token losses (every token of a row
// carries the row's loss). With gspo's d s_b/d logp_t = s_b this is the gradient of
// the sequence-level objective (mean_b |y_b| * l_b with s_b through the mean).
static int luspo_loss(const rl_policy_config *c, int B, int T, const float *logp,
                      const float *old_logp, const float *adv, const float *mask, float *dlogp,
                      rl_policy_stats *st, rlhf_err *err) {
    rl_policy_config cc = *c;
    cc.agg = RL_AGG_SEQ_MEAN_TOKEN_SUM;
    return clip_loss(&cc, 1, B, T, logp, old_logp, adv, mask, dlogp, st, err);
}

// VESPO: w_b from the SUM of the row's log-ratios (each clamped to [-20, 20]), log w_b
// clamped to [log 1e-8, 20]; phi = exp(lambda + k log w - lambda w), a constant
// (non-finite: 0), so d l/d logp = -phi * A. k, lambda from the token's advantage sign
// (TRL broadcasts them the same way); lambda below 1e-4 is raised to it, as TRL.
// The reported ratio is w_b; clip_frac: 0.
static int vespo_loss(const rl_policy_config *c, int B, int T, const float *logp,
                      const float *old_logp, const float *adv, const float *mask, float *dlogp,
                      rl_policy_stats *st, rlhf_err *err) {
    const float *opt[] = {&c->vespo_k_pos, &c->vespo_lambda_pos, &c->vespo_k_neg,
                          &c->vespo_lambda_neg};
    for (int k = 0; k < 4; k++)
        if (!isfinite(*opt[k]))
            return rlhf_fail(err, "policy loss vespo: k and lambda must be finite");
    agg_ctx a = agg_begin(c->agg, B, T, mask, c->norm_len);
    ratio_acc ra = {.rmin = INFINITY, .rmax = -INFINITY};
    const double log_floor = log(1e-8);
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * T;
        double f = agg_row_factor(&a, row_count(T, m));
        if (f == 0) continue;
        double log_w = 0;
        int clamped;
        for (int t = 0; t < T; t++)
            if (m[t] != 0) {
                size_t i = (size_t)b * T + t;
                log_w += m[t] * token_log_ratio(logp[i], old_logp[i], &clamped);
            }
        log_w = log_w < log_floor ? log_floor : log_w > 20 ? 20 : log_w;
        double w = exp(log_w);
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            size_t i = (size_t)b * T + t;
            double A = adv[i];
            double k = A >= 0 ? c->vespo_k_pos : c->vespo_k_neg;
            double lam = A >= 0 ? c->vespo_lambda_pos : c->vespo_lambda_neg;
            if (lam < 1e-4) lam = 1e-4;
            double phi = exp(lam + k * log_w - lam * w);
            if (!isfinite(phi)) phi = 0;
            loss += f * m[t] * -phi * A * logp[i];
            if (dlogp) dlogp[i] += (float)(f * m[t] * -phi * A);
            ratio_acc_add(&ra, m[t], token_log_ratio(logp[i], old_logp[i], &clamped), w, 0);
        }
    }
    ratio_acc_stats(&ra, loss, st);
    return 0;
}

// ------------------------------------------------- policy-loss registry --
// Formulas in full and sources: docs/online_rl.md.

static const rl_policy_loss_def policy_losses[] = {
    RL_POLICY_LOSS("ppo", "token", ppo_loss, RL_NEED_OLD_LOGP | RL_NEED_ADVANTAGES,
                   RL_POLICY_OPT_CLIP | RL_POLICY_OPT_DUAL_CLIP | RL_POLICY_OPT_AGG,
                   "max(-A*rho, -A*clip(rho, 1-eps_low, 1+eps_high)), rho = pi/pi_old per token; "
                   "eps_high > eps_low: DAPO clip-higher; dual clip: min(l, -A*c) for A < 0",
                   "Schulman et al. 2017 (PPO); Yu et al. 2025 (DAPO); Ye et al. 2020 (dual clip)"),
    RL_POLICY_LOSS("gspo", "sequence", gspo_loss, RL_NEED_OLD_LOGP | RL_NEED_ADVANTAGES,
                   RL_POLICY_OPT_CLIP | RL_POLICY_OPT_DUAL_CLIP | RL_POLICY_OPT_AGG,
                   "the ppo clip with s_b = exp(mean_t log(pi/pi_old)) for every token of sequence b",
                   "Zheng et al. 2025 (GSPO)"),
    RL_POLICY_LOSS("cispo", NULL, cispo_loss, RL_NEED_OLD_LOGP | RL_NEED_ADVANTAGES,
                   RL_POLICY_OPT_CLIP | RL_POLICY_OPT_AGG,
                   "-sg(min(rho, eps_high)) * A * log pi: the IS weight capped at eps_high "
                   "itself (e.g. 5), never the gradient",
                   "MiniMax-M1 (arXiv 2506.13585) CISPO; TRL loss_type cispo"),
    RL_POLICY_LOSS("sapo", NULL, sapo_loss, RL_NEED_OLD_LOGP | RL_NEED_ADVANTAGES,
                   RL_POLICY_OPT_SAPO | RL_POLICY_OPT_AGG,
                   "-A * (4/tau) * sigmoid(tau*(rho - 1)), tau by the sign of A: a soft gate "
                   "instead of the clip",
                   "SAPO (arXiv 2511.20347); TRL loss_type sapo"),
    RL_POLICY_LOSS("luspo", NULL, luspo_loss, RL_NEED_OLD_LOGP | RL_NEED_ADVANTAGES,
                   RL_POLICY_OPT_CLIP | RL_POLICY_OPT_DUAL_CLIP,
                   "gspo's clip, each sequence's loss times its length, mean over sequences",
                   "LUSPO (arXiv 2602.05261); TRL loss_type luspo"),
    RL_POLICY_LOSS("vespo", NULL, vespo_loss, RL_NEED_OLD_LOGP | RL_NEED_ADVANTAGES,
                   RL_POLICY_OPT_VESPO | RL_POLICY_OPT_AGG,
                   "-sg(phi(w_b)) * A * log pi, phi(w) = e^lambda w^k e^(-lambda w), "
                   "w_b = prod_t rho: a Gamma-shaped sequence weight",
                   "VESPO (arXiv 2602.10693); TRL loss_type vespo"),
};
#define N_POLICY_BUILTIN ((int)(sizeof policy_losses / sizeof policy_losses[0]))

static const rl_policy_loss_def *policy_registered[RL_MAX_REGISTERED];
static int n_policy_registered;

int rl_policy_count(void) { return N_POLICY_BUILTIN + n_policy_registered; }

const rl_policy_loss_def *rl_policy_at(int i) {
    if (i < 0 || i >= rl_policy_count()) return NULL;
    return i < N_POLICY_BUILTIN ? &policy_losses[i] : policy_registered[i - N_POLICY_BUILTIN];
}

const rl_policy_loss_def *rl_policy_find(const char *name) {
    if (!name) return NULL;
    const rl_policy_loss_def *d;
    for (int i = 0; (d = rl_policy_at(i)); i++)
        if (!strcmp(d->name, name) || (d->level && !strcmp(d->level, name))) return d;
    return NULL;
}

int rl_policy_register(const rl_policy_loss_def *def, rlhf_err *err) {
    if (!def || !def->name || !*def->name || !def->fn)
        return rlhf_fail(err, "rl_policy_register: a policy loss needs a name and a function");
    if (rl_policy_find(def->name) || (def->level && rl_policy_find(def->level)))
        return rlhf_fail(err, "rl_policy_register: \"%s\" is already a policy loss", def->name);
    if (n_policy_registered >= RL_MAX_REGISTERED)
        return rlhf_fail(err, "rl_policy_register: more than %d policy losses registered",
                         RL_MAX_REGISTERED);
    policy_registered[n_policy_registered++] = def;
    return 0;
}

void rl_policy_names(char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = 0;
    const rl_policy_loss_def *d;
    for (int i = 0; (d = rl_policy_at(i)); i++) {
        size_t k = strlen(buf);
        if (d->level) snprintf(buf + k, cap - k, "%s%s (%s)", i ? ", " : "", d->name, d->level);
        else snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", d->name);
    }
}

int rl_policy_lookup(const char *name, const rl_policy_loss_def **out, rlhf_err *err) {
    if ((*out = rl_policy_find(name))) return 0;
    char list[512];
    rl_policy_names(list, sizeof list);
    return rlhf_fail(err, "unknown policy loss \"%s\" (choose %s)", name ? name : "", list);
}

rl_agg rl_policy_agg(const rl_policy_config *c) {
    return c->variant && c->variant->fn == luspo_loss ? RL_AGG_SEQ_MEAN_TOKEN_SUM : c->agg;
}

int rl_policy_loss(const rl_policy_config *c, int B, int T, const float *logp,
                   const float *old_logp, const float *adv, const float *mask, float *dlogp,
                   rl_policy_stats *st, rlhf_err *err) {
    const rl_policy_loss_def *d = c->variant ? c->variant
                                             : &policy_losses[c->seq_ratio ? 1 : 0]; // ppo, gspo
    return d->fn(c, B, T, logp, old_logp, adv, mask, dlogp, st, err);
}

// ---------------------------------------------------------------------- KL --

static const struct {
    const char *name;
    rl_kl_kind kind;
} kl_names[] = {
    {"k1", RL_KL_K1}, {"k2", RL_KL_K2}, {"k3", RL_KL_K3}, {"abs", RL_KL_ABS},
    {"kl", RL_KL_K1}, {"mse", RL_KL_K2}, {"low_var_kl", RL_KL_K3}, // verl's names
};

int rl_kl_from_name(const char *name, rl_kl_kind *out, rlhf_err *err) {
    for (size_t i = 0; i < sizeof kl_names / sizeof kl_names[0]; i++)
        if (strcmp(name, kl_names[i].name) == 0) {
            *out = kl_names[i].kind;
            return 0;
        }
    return rlhf_fail(err, "unknown KL estimator \"%s\" (choose k1, k2, k3, abs; or verl's kl, "
                          "mse, low_var_kl)", name);
}

const char *rl_kl_name(rl_kl_kind k) {
    for (size_t i = 0; i < 4; i++)
        if (kl_names[i].kind == k) return kl_names[i].name;
    return "?";
}

// one token: value and d value / d logp
static void kl_one(rl_kl_kind kind, double logp, double ref, double *v, double *d) {
    double x = logp - ref;
    switch (kind) {
    case RL_KL_K1: *v = x, *d = 1; return;
    case RL_KL_K2: *v = 0.5 * x * x, *d = x; return;
    case RL_KL_ABS: *v = fabs(x), *d = x > 0 ? 1 : x < 0 ? -1 : 0; return;
    case RL_KL_K3: {
        // verl's clamps: the log-ratio ref - logp to [-20, 20], the value to [-10, 10]
        double u = -x, du = -1;
        if (u > 20) u = 20, du = 0;
        if (u < -20) u = -20, du = 0;
        double e = exp(u), val = e - u - 1, dv = (e - 1) * du;
        if (val > 10) val = 10, dv = 0;
        *v = val, *d = dv;
        return;
    }
    }
    *v = *d = 0;
}

void rl_kl_token(rl_kl_kind kind, size_t n, const float *logp, const float *ref_logp, float *kl,
                 float *dkl) {
    for (size_t i = 0; i < n; i++) {
        double v, d;
        kl_one(kind, logp[i], ref_logp[i], &v, &d);
        if (kl) kl[i] = (float)v;
        if (dkl) dkl[i] = (float)d;
    }
}

float rl_kl_in_reward(rl_kl_kind kind, int B, int T, float coef, const float *logp,
                      const float *ref_logp, const float *mask, float *rewards) {
    double sum_rows = 0, rows = 0;
    for (int b = 0; b < B; b++) {
        double s = 0, c = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (mask[i] == 0) continue;
            double v, d;
            kl_one(kind, logp[i], ref_logp[i], &v, &d);
            rewards[i] -= (float)(coef * v);
            s += mask[i] * v;
            c += mask[i];
        }
        if (c > 0) sum_rows += s / c, rows += 1;
    }
    return rows > 0 ? (float)(sum_rows / rows) : 0.0f;
}

float rl_kl_loss(rl_kl_kind kind, rl_agg agg, float norm_len, float coef, int B, int T,
                 const float *logp, const float *ref_logp, const float *mask, float *dlogp,
                 float *mean_kl) {
    agg_ctx a = agg_begin(agg, B, T, mask, norm_len);
    double loss = 0, ksum = 0;
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * T;
        double f = agg_row_factor(&a, row_count(T, m));
        if (f == 0) continue;
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            size_t i = (size_t)b * T + t;
            double v, d;
            kl_one(kind, logp[i], ref_logp[i], &v, &d);
            loss += f * m[t] * v;
            ksum += m[t] * v;
            if (dlogp) dlogp[i] += (float)(coef * f * m[t] * d);
        }
    }
    if (mean_kl) *mean_kl = a.total > 0 ? (float)(ksum / a.total) : 0.0f;
    return (float)(coef * loss);
}

void rl_kl_ctl_fixed(rl_kl_ctl *k, float coef) {
    *k = (rl_kl_ctl){.value = coef, .target = 0, .horizon = 0, .adaptive = 0};
}

void rl_kl_ctl_adaptive(rl_kl_ctl *k, float init_coef, float target, float horizon) {
    *k = (rl_kl_ctl){.value = init_coef, .target = target, .horizon = horizon, .adaptive = 1};
}

void rl_kl_ctl_update(rl_kl_ctl *k, float current_kl, int n_steps) {
    if (!k->adaptive || k->target <= 0 || k->horizon <= 0) return;
    double e = (double)current_kl / k->target - 1;
    if (e < -0.2) e = -0.2;
    if (e > 0.2) e = 0.2;
    k->value = (float)(k->value * (1 + e * n_steps / k->horizon));
}

// -------------------------------------------------------------- value loss --

void rl_value_loss(int B, int T, float cliprange, rl_agg agg, float norm_len, const float *v,
                   const float *v_old, const float *returns, const float *mask, float *dv,
                   rl_value_stats *st) {
    agg_ctx a = agg_begin(agg, B, T, mask, norm_len);
    double loss = 0, nclip = 0;
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * T;
        double f = agg_row_factor(&a, row_count(T, m));
        if (f == 0) continue;
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            size_t i = (size_t)b * T + t;
            double e1 = (double)v[i] - returns[i], l1 = e1 * e1, l = l1, d = e1;
            if (cliprange > 0) {
                double lo = (double)v_old[i] - cliprange, hi = (double)v_old[i] + cliprange;
                double vc = v[i] < lo ? lo : v[i] > hi ? hi : v[i];
                double e2 = vc - returns[i], l2 = e2 * e2;
                if (l2 > l1) {
                    l = l2, d = 0; // v is outside the band, v_clip is constant
                    nclip += m[t];
                }
            }
            loss += f * m[t] * 0.5 * l;
            if (dv) dv[i] += (float)(f * m[t] * d);
        }
    }
    if (st) {
        st->loss = (float)loss;
        st->clip_frac = a.total > 0 ? (float)(nclip / a.total) : 0.0f;
    }
}
