// ctrl/policy: action heads and their backward passes. Elementwise only (no
// matrix products); the per-element arithmetic is done in double so that the
// log-probabilities of nearly saturated tanh actions keep their digits.
//
// Formulas (as in SAC, Haarnoja et al. 2018, appendix C, and CORL's sac_n.py /
// iql.py): pre = mu + std * eps, a = tanh(pre), and the change of variables
// log pi(a) = log N(pre; mu, std) - sum log(1 - tanh(pre)^2); the last term is
// evaluated as 2 (log 2 - x - softplus(-2x)) which stays finite for large |x|.
#include "ctrl/policy.h"

#include <math.h>

#define HALF_LOG_2PI 0.91893853320467274178

static double softplus(double z) { return (z > 0 ? z : 0) + log1p(exp(-fabs(z))); }

// log(1 - tanh(x)^2), stably
static double log1m_tanh2(double x) { return 2.0 * (M_LN2 - x - softplus(-2.0 * x)); }

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

// torch.clamp passes the gradient where lo <= x <= hi
static int inside(double x, double lo, double hi) { return x >= lo && x <= hi; }

static double sum_log_scale(const float *scale, int A) {
    double s = 0;
    for (int i = 0; i < A; i++) s += log(fabs((double)scale[i]));
    return s;
}

void ctrl_det_forward(float *action, const float *u, const float *scale, const float *bias, int B,
                      int A) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            action[k] = (float)(bias[i] + scale[i] * tanh((double)u[k]));
        }
}

void ctrl_det_backward(float *du, const float *daction, const float *action, const float *scale,
                       const float *bias, int B, int A) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            double t = ((double)action[k] - bias[i]) / scale[i];
            du[k] += (float)(daction[k] * (double)scale[i] * (1.0 - t * t));
        }
}

void ctrl_tanh_gauss_forward(float *action, float *logp, float *pre, const float *out,
                             const float *eps, const float *scale, const float *bias, int B, int A,
                             float log_std_min, float log_std_max) {
    const double lsc = logp ? sum_log_scale(scale, A) : 0;
    for (int b = 0; b < B; b++) {
        const float *mu = out + (long)b * 2 * A, *ls_raw = mu + A;
        double lp = 0;
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            double ls = clampd(ls_raw[i], log_std_min, log_std_max);
            double e = eps ? eps[k] : 0.0;
            double x = mu[i] + exp(ls) * e;
            pre[k] = (float)x;
            action[k] = (float)(bias[i] + scale[i] * tanh(x));
            // log N(x; mu, std) with (x - mu) / std = e
            lp += -0.5 * e * e - ls - HALF_LOG_2PI - log1m_tanh2(x);
        }
        if (logp) logp[b] = (float)(lp - lsc);
    }
}

void ctrl_tanh_gauss_backward(float *dout, const float *daction, const float *dlogp,
                              const float *out, const float *eps, const float *pre,
                              const float *scale, int B, int A, float log_std_min,
                              float log_std_max) {
    for (int b = 0; b < B; b++) {
        const float *mu = out + (long)b * 2 * A, *ls_raw = mu + A;
        float *dmu = dout + (long)b * 2 * A, *dls = dmu + A;
        double gl = dlogp ? dlogp[b] : 0.0;
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            double ls = clampd(ls_raw[i], log_std_min, log_std_max);
            double e = eps ? eps[k] : 0.0;
            // pre recomputed in double from the inputs (the saved float is this value rounded)
            double x = eps ? mu[i] + exp(ls) * e : (double)mu[i];
            double t = tanh(x);
            // d logp / d pre = d(-log(1 - tanh^2)) / dx = 2 tanh(x); N term is constant in pre given e
            double dx = gl * 2.0 * t;
            if (daction) dx += daction[k] * (double)scale[i] * (1.0 - t * t);
            dmu[i] += (float)dx;
            if (inside(ls_raw[i], log_std_min, log_std_max))
                dls[i] += (float)(dx * exp(ls) * e - gl);  // pre = mu + exp(ls) e; logp has -ls
        }
    }
}

// the squashed-space pre-image of an action, clipped so that atanh stays finite
static double pre_of_action(float a, float scale, float bias) {
    const double lim = 1.0 - 1e-6;
    double y = clampd(((double)a - bias) / scale, -lim, lim);
    return atanh(y);
}

void ctrl_tanh_gauss_logprob(float *logp, const float *out, const float *action,
                             const float *scale, const float *bias, int B, int A,
                             float log_std_min, float log_std_max) {
    const double lsc = sum_log_scale(scale, A);
    for (int b = 0; b < B; b++) {
        const float *mu = out + (long)b * 2 * A, *ls_raw = mu + A;
        double lp = 0;
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            double ls = clampd(ls_raw[i], log_std_min, log_std_max);
            double x = pre_of_action(action[k], scale[i], bias[i]);
            double z = (x - mu[i]) * exp(-ls);
            lp += -0.5 * z * z - ls - HALF_LOG_2PI - log1m_tanh2(x);
        }
        logp[b] = (float)(lp - lsc);
    }
}

void ctrl_tanh_gauss_logprob_backward(float *dout, const float *dlogp, const float *out,
                                      const float *action, const float *scale, const float *bias,
                                      int B, int A, float log_std_min, float log_std_max) {
    for (int b = 0; b < B; b++) {
        const float *mu = out + (long)b * 2 * A, *ls_raw = mu + A;
        float *dmu = dout + (long)b * 2 * A, *dls = dmu + A;
        double g = dlogp[b];
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            double ls = clampd(ls_raw[i], log_std_min, log_std_max);
            double x = pre_of_action(action[k], scale[i], bias[i]);
            double z = (x - mu[i]) * exp(-ls);
            dmu[i] += (float)(g * z * exp(-ls));
            if (inside(ls_raw[i], log_std_min, log_std_max)) dls[i] += (float)(g * (z * z - 1.0));
        }
    }
}

void ctrl_gauss_logprob(float *logp, const float *mean, const float *log_std, const float *action,
                        int B, int A, float log_std_min, float log_std_max) {
    for (int b = 0; b < B; b++) {
        double lp = 0;
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            double ls = clampd(log_std[i], log_std_min, log_std_max);
            double z = ((double)action[k] - mean[k]) * exp(-ls);
            lp += -0.5 * z * z - ls - HALF_LOG_2PI;
        }
        logp[b] = (float)lp;
    }
}

void ctrl_gauss_logprob_backward(float *dmean, float *dlog_std, const float *dlogp,
                                 const float *mean, const float *log_std, const float *action,
                                 int B, int A, float log_std_min, float log_std_max) {
    for (int i = 0; i < A; i++) {
        double ls = clampd(log_std[i], log_std_min, log_std_max), inv = exp(-ls);
        int pass = inside(log_std[i], log_std_min, log_std_max);
        double acc = 0;
        for (int b = 0; b < B; b++) {
            long k = (long)b * A + i;
            double z = ((double)action[k] - mean[k]) * inv;
            if (dmean) dmean[k] += (float)(dlogp[b] * z * inv);
            acc += dlogp[b] * (z * z - 1.0);
        }
        if (dlog_std && pass) dlog_std[i] += (float)acc;
    }
}
