// ctrl/hnpg_math: HNPG's linear-Gaussian per-step policy, GAE and the
// natural-gradient (TRPO-style) step; see hnpg_math.h. Sums in double.
#include "ctrl/hnpg_math.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOG_2PI 1.8378770664093453

long hnpg_policy_nparams(int obs_dim, int act_dim) {
    return (long)act_dim * obs_dim + 2L * act_dim;
}

void hnpg_policy_init(float *theta, int obs_dim, int act_dim, rlhf_rng *rng) {
    float r = 0.1f / sqrtf((float)obs_dim);
    long nw = (long)act_dim * obs_dim;
    for (long i = 0; i < nw; i++) theta[i] = r * (2.0f * rng_uniform(rng) - 1.0f);
    memset(theta + nw, 0, sizeof(float) * 2 * (size_t)act_dim);
}

void hnpg_policy_mean(const float *theta, int obs_dim, int act_dim, const float *s, int B,
                      double *mean) {
    const float *b = theta + (long)act_dim * obs_dim;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < act_dim; j++) {
            double acc = b[j];
            const float *w = theta + (long)j * obs_dim, *x = s + (long)i * obs_dim;
            for (int k = 0; k < obs_dim; k++) acc += (double)w[k] * x[k];
            mean[(long)i * act_dim + j] = acc;
        }
}

void hnpg_policy_act(const float *theta, int obs_dim, int act_dim, const float *s, int B,
                     int deterministic, rlhf_rng *rng, float *a) {
    const float *ls = theta + (long)act_dim * obs_dim + act_dim;
    double *mean = xmalloc(sizeof(double) * (size_t)B * act_dim);
    hnpg_policy_mean(theta, obs_dim, act_dim, s, B, mean);
    for (long i = 0; i < (long)B * act_dim; i++)
        a[i] = (float)(mean[i] + (deterministic ? 0.0 : exp(ls[i % act_dim]) * rng_normal(rng)));
    free(mean);
}

void hnpg_policy_logp(const float *theta, int obs_dim, int act_dim, const float *s, const float *a,
                      int B, double *logp) {
    const float *ls = theta + (long)act_dim * obs_dim + act_dim;
    double *mean = xmalloc(sizeof(double) * (size_t)B * act_dim);
    hnpg_policy_mean(theta, obs_dim, act_dim, s, B, mean);
    for (int i = 0; i < B; i++) {
        double acc = 0;
        for (int j = 0; j < act_dim; j++) {
            double z = (a[(long)i * act_dim + j] - mean[(long)i * act_dim + j]) / exp(ls[j]);
            acc += -0.5 * z * z - 0.5 * LOG_2PI - ls[j];
        }
        logp[i] = acc;
    }
    free(mean);
}

void hnpg_gae(const float *rew, const float *val, const float *mask, int n, double gamma,
              double lambda, float *ret, float *adv) {
    double prev_ret = 0, prev_val = 0, prev_adv = 0;
    for (int i = n - 1; i >= 0; i--) {
        double r = rew[i] + gamma * prev_ret * mask[i];
        double delta = rew[i] + gamma * prev_val * mask[i] - val[i];
        double a = delta + gamma * lambda * prev_adv * mask[i];
        ret[i] = (float)r, adv[i] = (float)a;
        prev_ret = r, prev_val = val[i], prev_adv = a;
    }
}

void hnpg_npg_default_opts(hnpg_npg_opts *o) {
    o->max_kl = 0.01, o->damping = 0.1, o->accept_ratio = 0.1;
    o->cg_iters = 10, o->max_backtracks = 10;
}

void hnpg_fvp(const float *theta, int obs_dim, int act_dim, const float *S, int N, double damping,
              const double *v, double *out) {
    long nw = (long)act_dim * obs_dim;
    const float *ls = theta + nw + act_dim;
    long n = nw + 2L * act_dim;
    memset(out, 0, sizeof(double) * (size_t)n);
    for (int i = 0; i < N; i++) {
        const float *x = S + (long)i * obs_dim;
        for (int j = 0; j < act_dim; j++) {
            const double *vw = v + (long)j * obs_dim;
            double d = v[nw + j]; // x . v_j with x = [s, 1]
            for (int k = 0; k < obs_dim; k++) d += vw[k] * x[k];
            double *ow = out + (long)j * obs_dim;
            for (int k = 0; k < obs_dim; k++) ow[k] += d * x[k];
            out[nw + j] += d;
        }
    }
    for (int j = 0; j < act_dim; j++) {
        double inv_var = exp(-2.0 * ls[j]) / N;
        for (int k = 0; k < obs_dim; k++) out[(long)j * obs_dim + k] *= inv_var;
        out[nw + j] *= inv_var;
        out[nw + act_dim + j] = 2.0 * v[nw + act_dim + j];
    }
    for (long i = 0; i < n; i++) out[i] += damping * v[i];
}

void hnpg_surrogate_grad(const float *theta, int obs_dim, int act_dim, const float *S,
                         const float *A, const float *adv, int N, double *g) {
    long nw = (long)act_dim * obs_dim;
    const float *ls = theta + nw + act_dim;
    memset(g, 0, sizeof(double) * (size_t)(nw + 2L * act_dim));
    double *mean = xmalloc(sizeof(double) * (size_t)N * act_dim);
    hnpg_policy_mean(theta, obs_dim, act_dim, S, N, mean);
    for (int i = 0; i < N; i++) {
        const float *x = S + (long)i * obs_dim;
        double c = -(double)adv[i] / N;
        for (int j = 0; j < act_dim; j++) {
            double var = exp(2.0 * ls[j]);
            double diff = A[(long)i * act_dim + j] - mean[(long)i * act_dim + j];
            double dmu = c * diff / var; // d logp / d mean = (a - mu) / var
            for (int k = 0; k < obs_dim; k++) g[(long)j * obs_dim + k] += dmu * x[k];
            g[nw + j] += dmu;
            g[nw + act_dim + j] += c * (diff * diff / var - 1.0);
        }
    }
    free(mean);
}

static double dot(const double *a, const double *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void hnpg_cg(const float *theta, int obs_dim, int act_dim, const float *S, int N, double damping,
             const double *b, int iters, double *x) {
    long n = hnpg_policy_nparams(obs_dim, act_dim);
    double *r = xmalloc(sizeof(double) * (size_t)n * 3), *p = r + n, *Ap = p + n;
    memset(x, 0, sizeof(double) * (size_t)n);
    memcpy(r, b, sizeof(double) * (size_t)n);
    memcpy(p, b, sizeof(double) * (size_t)n);
    double rdotr = dot(r, r, n);
    for (int it = 0; it < iters; it++) {
        hnpg_fvp(theta, obs_dim, act_dim, S, N, damping, p, Ap);
        double pAp = dot(p, Ap, n);
        if (!(pAp > 0)) break;
        double alpha = rdotr / pAp;
        for (long i = 0; i < n; i++) x[i] += alpha * p[i], r[i] -= alpha * Ap[i];
        double nr = dot(r, r, n);
        double beta = nr / rdotr;
        for (long i = 0; i < n; i++) p[i] = r[i] + beta * p[i];
        rdotr = nr;
        if (rdotr < 1e-10) break;
    }
    free(r);
}

// surrogate -mean(adv * exp(logp_theta - logp_old)) and mean KL(old || theta)
static void surrogate_kl(const float *theta, const float *theta_old, int obs_dim, int act_dim,
                         const float *S, const float *A, const float *adv, int N,
                         const double *logp_old, double *logp, double *loss, double *kl) {
    hnpg_policy_logp(theta, obs_dim, act_dim, S, A, N, logp);
    double l = 0;
    for (int i = 0; i < N; i++) l -= adv[i] * exp(logp[i] - logp_old[i]);
    *loss = l / N;
    long nw = (long)act_dim * obs_dim;
    double *m0 = xmalloc(sizeof(double) * (size_t)N * act_dim * 2), *m1 = m0 + (long)N * act_dim;
    hnpg_policy_mean(theta_old, obs_dim, act_dim, S, N, m0);
    hnpg_policy_mean(theta, obs_dim, act_dim, S, N, m1);
    double k = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < act_dim; j++) {
            double l0 = theta_old[nw + act_dim + j], l1 = theta[nw + act_dim + j];
            double d = m0[(long)i * act_dim + j] - m1[(long)i * act_dim + j];
            k += l1 - l0 + (exp(2 * l0) + d * d) / (2 * exp(2 * l1)) - 0.5;
        }
    *kl = k / N;
    free(m0);
}

void hnpg_npg_step(float *theta, int obs_dim, int act_dim, const float *S, const float *A,
                   const float *adv, int N, const hnpg_npg_opts *o, hnpg_npg_info *info,
                   double *stepdir) {
    long n = hnpg_policy_nparams(obs_dim, act_dim);
    memset(info, 0, sizeof *info);
    if (N <= 0) return;
    double *g = xmalloc(sizeof(double) * (size_t)n * 4), *x = g + n, *Fx = x + n, *b = Fx + n;
    float *old = xmalloc(sizeof(float) * (size_t)n);
    double *lp_old = xmalloc(sizeof(double) * (size_t)N * 2), *lp = lp_old + N;
    memcpy(old, theta, sizeof(float) * (size_t)n);
    hnpg_policy_logp(theta, obs_dim, act_dim, S, A, N, lp_old);
    hnpg_surrogate_grad(theta, obs_dim, act_dim, S, A, adv, N, g);
    info->grad_norm = sqrt(dot(g, g, n));
    for (long i = 0; i < n; i++) b[i] = -g[i];
    hnpg_cg(theta, obs_dim, act_dim, S, N, o->damping, b, o->cg_iters, x);
    if (stepdir) memcpy(stepdir, x, sizeof(double) * (size_t)n);
    hnpg_fvp(theta, obs_dim, act_dim, S, N, o->damping, x, Fx);
    double shs = 0.5 * dot(x, Fx, n), kl;
    info->shs = shs;
    double before, after;
    surrogate_kl(theta, old, obs_dim, act_dim, S, A, adv, N, lp_old, lp, &before, &kl);
    info->loss_before = info->loss_after = before;
    if (shs > 0 && isfinite(shs)) {
        double lm = sqrt(shs / o->max_kl), expected_rate = -dot(g, x, n) / lm, frac = 1;
        for (int k = 0; k < o->max_backtracks; k++, frac *= 0.5) {
            for (long i = 0; i < n; i++) theta[i] = (float)(old[i] + frac * x[i] / lm);
            surrogate_kl(theta, old, obs_dim, act_dim, S, A, adv, N, lp_old, lp, &after, &kl);
            double actual = before - after;
            if (actual > 0 && actual / (expected_rate * frac) > o->accept_ratio) {
                info->loss_after = after, info->kl = kl, info->step_frac = frac;
                break;
            }
        }
        if (info->step_frac == 0) memcpy(theta, old, sizeof(float) * (size_t)n);
    }
    free(g);
    free(old);
    free(lp_old);
}
