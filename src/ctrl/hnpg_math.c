// ctrl/hnpg_math: HNPG's per-step Gaussian policy (linear or tanh-MLP mean), GAE and the
// natural-gradient (TRPO-style) step; see hnpg_math.h. Sums in double.
#include "ctrl/hnpg_math.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOG_2PI 1.8378770664093453

// the mean's layers: 1 (linear) or 3 (two tanh layers of width hidden, then
// the head); layer l maps lin(l) inputs to lout(l) outputs
static int n_layers(const hnpg_pol *p) { return p->hidden > 0 ? 3 : 1; }
static int lin(const hnpg_pol *p, int l) { return l == 0 ? p->obs : p->hidden; }
static int lout(const hnpg_pol *p, int l) { return l == n_layers(p) - 1 ? p->act : p->hidden; }
static long loff(const hnpg_pol *p, int l) {
    long o = 0;
    for (int k = 0; k < l; k++) o += (long)lin(p, k) * lout(p, k) + lout(p, k);
    return o;
}
static long mean_nparams(const hnpg_pol *p) { return loff(p, n_layers(p)); }
static const float *log_std(const hnpg_pol *p, const float *theta) {
    return theta + mean_nparams(p);
}

long hnpg_policy_nparams(const hnpg_pol *p) { return mean_nparams(p) + p->act; }

void hnpg_policy_init(const hnpg_pol *p, float *theta, rlhf_rng *rng) {
    int L = n_layers(p);
    for (int l = 0; l < L; l++) {
        float *W = theta + loff(p, l), *b = W + (long)lin(p, l) * lout(p, l);
        float r = (l == L - 1 ? 0.1f : 1.0f) / sqrtf((float)lin(p, l));
        for (long i = 0; i < (long)lin(p, l) * lout(p, l); i++)
            W[i] = r * (2.0f * rng_uniform(rng) - 1.0f);
        for (int i = 0; i < lout(p, l); i++)
            b[i] = l == L - 1 ? 0.0f : r * (2.0f * rng_uniform(rng) - 1.0f);
    }
    memset(theta + mean_nparams(p), 0, sizeof(float) * (size_t)p->act);
}

// one row through the mean: hid (2 * hidden; unused, may be NULL, for the
// linear policy) gets the tanh layers' outputs
static void mean_row(const hnpg_pol *p, const float *theta, const float *x, double *hid,
                     double *mean) {
    int L = n_layers(p);
    for (int l = 0; l < L; l++) { // layer 0 reads x (float)
        int ci = lin(p, l), co = lout(p, l);
        const float *W = theta + loff(p, l), *b = W + (long)ci * co;
        const double *h = l ? hid + (long)(l - 1) * p->hidden : NULL;
        double *o = l == L - 1 ? mean : hid + (long)l * p->hidden;
        for (int j = 0; j < co; j++) {
            double acc = b[j];
            const float *w = W + (long)j * ci;
            if (l == 0)
                for (int k = 0; k < ci; k++) acc += (double)w[k] * x[k];
            else
                for (int k = 0; k < ci; k++) acc += (double)w[k] * h[k];
            o[j] = l == L - 1 ? acc : tanh(acc);
        }
    }
}

void hnpg_policy_mean(const hnpg_pol *p, const float *theta, const float *s, int B, double *mean) {
    double *hid = p->hidden > 0 ? xmalloc(sizeof(double) * 2 * (size_t)p->hidden) : NULL;
    for (int i = 0; i < B; i++)
        mean_row(p, theta, s + (long)i * p->obs, hid, mean + (long)i * p->act);
    free(hid);
}

// the mean's Jacobian times v (the mean's parameters' tangent), one row:
// forward-mode through the layers (x's tangent is 0)
static void jvp_row(const hnpg_pol *p, const float *theta, const float *x, const double *hid,
                    const double *v, double *dhid, double *out) {
    int L = n_layers(p);
    for (int l = 0; l < L; l++) {
        int ci = lin(p, l), co = lout(p, l);
        const float *W = theta + loff(p, l);
        const double *vW = v + loff(p, l), *vb = vW + (long)ci * co;
        const double *h = l ? hid + (long)(l - 1) * p->hidden : NULL;
        const double *dh = l ? dhid + (long)(l - 1) * p->hidden : NULL;
        double *o = l == L - 1 ? out : dhid + (long)l * p->hidden;
        for (int j = 0; j < co; j++) {
            double acc = vb[j];
            const double *vw = vW + (long)j * ci;
            const float *w = W + (long)j * ci;
            if (l == 0)
                for (int k = 0; k < ci; k++) acc += vw[k] * x[k];
            else
                for (int k = 0; k < ci; k++) acc += vw[k] * h[k] + (double)w[k] * dh[k];
            if (l < L - 1) {
                double y = hid[(long)l * p->hidden + j];
                acc *= 1.0 - y * y;
            }
            o[j] = acc;
        }
    }
}

// g += the mean's Jacobian^T d (d: the row's gradient w.r.t. its mean),
// back-propagated through the layers; scratch (2 * hidden)
static void vjp_row(const hnpg_pol *p, const float *theta, const float *x, const double *hid,
                    const double *d, double *scratch, double *g) {
    int L = n_layers(p);
    double *delta = scratch, *next = scratch + (p->hidden > 0 ? p->hidden : 0);
    const double *dl = d;
    for (int l = L - 1; l >= 0; l--) {
        int ci = lin(p, l), co = lout(p, l);
        const float *W = theta + loff(p, l);
        double *gW = g + loff(p, l), *gb = gW + (long)ci * co;
        const double *h = l ? hid + (long)(l - 1) * p->hidden : NULL;
        for (int j = 0; j < co; j++) {
            gb[j] += dl[j];
            double *gw = gW + (long)j * ci;
            if (l == 0)
                for (int k = 0; k < ci; k++) gw[k] += dl[j] * x[k];
            else
                for (int k = 0; k < ci; k++) gw[k] += dl[j] * h[k];
        }
        if (l == 0) break;
        for (int k = 0; k < ci; k++) { // through W and the tanh that made h
            double acc = 0;
            for (int j = 0; j < co; j++) acc += (double)W[(long)j * ci + k] * dl[j];
            next[k] = acc * (1.0 - h[k] * h[k]);
        }
        memcpy(delta, next, sizeof(double) * (size_t)ci);
        dl = delta;
    }
}

void hnpg_policy_act(const hnpg_pol *p, const float *theta, const float *s, int B,
                     int deterministic, rlhf_rng *rng, float *a) {
    const float *ls = log_std(p, theta);
    int act_dim = p->act;
    double *mean = xmalloc(sizeof(double) * (size_t)B * act_dim);
    hnpg_policy_mean(p, theta, s, B, mean);
    for (long i = 0; i < (long)B * act_dim; i++)
        a[i] = (float)(mean[i] + (deterministic ? 0.0 : exp(ls[i % act_dim]) * rng_normal(rng)));
    free(mean);
}

static void logp_of(const hnpg_pol *p, const float *ls, const double *mean, const float *a, int B,
                    double *logp) {
    for (int i = 0; i < B; i++) {
        double acc = 0;
        for (int j = 0; j < p->act; j++) {
            double z = (a[(long)i * p->act + j] - mean[(long)i * p->act + j]) / exp(ls[j]);
            acc += -0.5 * z * z - 0.5 * LOG_2PI - ls[j];
        }
        logp[i] = acc;
    }
}

void hnpg_policy_logp(const hnpg_pol *p, const float *theta, const float *s, const float *a, int B,
                      double *logp) {
    double *mean = xmalloc(sizeof(double) * (size_t)B * p->act);
    hnpg_policy_mean(p, theta, s, B, mean);
    logp_of(p, log_std(p, theta), mean, a, B, logp);
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

// the linear policy's Fisher in closed form (act, obs on W; 1 on b)
static void fvp_linear(const hnpg_pol *p, const float *theta, const float *S, int N,
                       const double *v, double *out) {
    int obs_dim = p->obs, act_dim = p->act;
    long nw = (long)act_dim * obs_dim;
    const float *ls = log_std(p, theta);
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
    }
}

// the MLP's: per row J^T (J v / sigma^2) / N
static void fvp_mlp(const hnpg_pol *p, const float *theta, const float *S, int N, const double *v,
                    double *out) {
    const float *ls = log_std(p, theta);
    int H2 = 2 * p->hidden, A = p->act;
    double *hid = xmalloc(sizeof(double) * (size_t)(3 * H2 + 2 * A));
    double *dhid = hid + H2, *scratch = dhid + H2, *jv = scratch + H2, *d = jv + A;
    for (int i = 0; i < N; i++) {
        const float *x = S + (long)i * p->obs;
        mean_row(p, theta, x, hid, d);
        jvp_row(p, theta, x, hid, v, dhid, jv);
        for (int j = 0; j < A; j++) d[j] = jv[j] * exp(-2.0 * ls[j]) / N;
        vjp_row(p, theta, x, hid, d, scratch, out);
    }
    free(hid);
}

void hnpg_fvp(const hnpg_pol *p, const float *theta, const float *S, int N, double damping,
              const double *v, double *out) {
    long nm = mean_nparams(p), n = nm + p->act;
    memset(out, 0, sizeof(double) * (size_t)n);
    if (p->hidden > 0)
        fvp_mlp(p, theta, S, N, v, out);
    else
        fvp_linear(p, theta, S, N, v, out);
    for (int j = 0; j < p->act; j++) out[nm + j] = 2.0 * v[nm + j];
    for (long i = 0; i < n; i++) out[i] += damping * v[i];
}

void hnpg_surrogate_grad(const hnpg_pol *p, const float *theta, const float *S, const float *A,
                         const float *adv, int N, double *g) {
    int obs_dim = p->obs, act_dim = p->act;
    long nm = mean_nparams(p);
    const float *ls = log_std(p, theta);
    memset(g, 0, sizeof(double) * (size_t)(nm + act_dim));
    int H2 = 2 * p->hidden;
    double *hid = xmalloc(sizeof(double) * (size_t)(2 * H2 + 2 * act_dim + 1));
    double *scratch = hid + H2, *mean = scratch + H2, *dmu = mean + act_dim;
    for (int i = 0; i < N; i++) {
        const float *x = S + (long)i * obs_dim;
        mean_row(p, theta, x, hid, mean);
        double c = -(double)adv[i] / N;
        for (int j = 0; j < act_dim; j++) {
            double var = exp(2.0 * ls[j]);
            double diff = A[(long)i * act_dim + j] - mean[j];
            dmu[j] = c * diff / var; // d logp / d mean = (a - mu) / var
            g[nm + j] += c * (diff * diff / var - 1.0);
        }
        vjp_row(p, theta, x, hid, dmu, scratch, g);
    }
    free(hid);
}

static double dot(const double *a, const double *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void hnpg_cg(const hnpg_pol *pol, const float *theta, const float *S, int N, double damping,
             const double *b, int iters, double *x) {
    long n = hnpg_policy_nparams(pol);
    double *r = xmalloc(sizeof(double) * (size_t)n * 3), *p = r + n, *Ap = p + n;
    memset(x, 0, sizeof(double) * (size_t)n);
    memcpy(r, b, sizeof(double) * (size_t)n);
    memcpy(p, b, sizeof(double) * (size_t)n);
    double rdotr = dot(r, r, n);
    for (int it = 0; it < iters; it++) {
        hnpg_fvp(pol, theta, S, N, damping, p, Ap);
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
static void surrogate_kl(const hnpg_pol *p, const float *theta, const float *theta_old,
                         const float *S, const float *A, const float *adv, int N,
                         const double *logp_old, double *logp, double *loss, double *kl) {
    int act_dim = p->act;
    double *m0 = xmalloc(sizeof(double) * (size_t)N * act_dim * 2), *m1 = m0 + (long)N * act_dim;
    hnpg_policy_mean(p, theta_old, S, N, m0);
    hnpg_policy_mean(p, theta, S, N, m1);
    const float *l0s = log_std(p, theta_old), *l1s = log_std(p, theta);
    logp_of(p, l1s, m1, A, N, logp);
    double l = 0;
    for (int i = 0; i < N; i++) l -= adv[i] * exp(logp[i] - logp_old[i]);
    *loss = l / N;
    double k = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < act_dim; j++) {
            double l0 = l0s[j], l1 = l1s[j];
            double d = m0[(long)i * act_dim + j] - m1[(long)i * act_dim + j];
            k += l1 - l0 + (exp(2 * l0) + d * d) / (2 * exp(2 * l1)) - 0.5;
        }
    *kl = k / N;
    free(m0);
}

void hnpg_npg_step(const hnpg_pol *p, float *theta, const float *S, const float *A,
                   const float *adv, int N, const hnpg_npg_opts *o, hnpg_npg_info *info,
                   double *stepdir) {
    long n = hnpg_policy_nparams(p);
    memset(info, 0, sizeof *info);
    if (N <= 0) return;
    double *g = xmalloc(sizeof(double) * (size_t)n * 4), *x = g + n, *Fx = x + n, *b = Fx + n;
    float *old = xmalloc(sizeof(float) * (size_t)n);
    double *lp_old = xmalloc(sizeof(double) * (size_t)N * 2), *lp = lp_old + N;
    memcpy(old, theta, sizeof(float) * (size_t)n);
    hnpg_policy_logp(p, theta, S, A, N, lp_old);
    hnpg_surrogate_grad(p, theta, S, A, adv, N, g);
    info->grad_norm = sqrt(dot(g, g, n));
    for (long i = 0; i < n; i++) b[i] = -g[i];
    hnpg_cg(p, theta, S, N, o->damping, b, o->cg_iters, x);
    if (stepdir) memcpy(stepdir, x, sizeof(double) * (size_t)n);
    hnpg_fvp(p, theta, S, N, o->damping, x, Fx);
    double shs = 0.5 * dot(x, Fx, n), kl;
    info->shs = shs;
    double before, after;
    surrogate_kl(p, theta, old, S, A, adv, N, lp_old, lp, &before, &kl);
    info->loss_before = info->loss_after = before;
    if (shs > 0 && isfinite(shs)) {
        double lm = sqrt(shs / o->max_kl), expected_rate = -dot(g, x, n) / lm, frac = 1;
        for (int k = 0; k < o->max_backtracks; k++, frac *= 0.5) {
            for (long i = 0; i < n; i++) theta[i] = (float)(old[i] + frac * x[i] / lm);
            surrogate_kl(p, theta, old, S, A, adv, N, lp_old, lp, &after, &kl);
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
