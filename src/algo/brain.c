// algo/brain: BRAIn's self-normalised importance weights, loss and gradient
// (the formulas are in algo/brain.h and docs/brain.md).
#include "algo/brain.h"

#include <math.h>
#include <string.h>

int brain_goodness_from_name(const char *name, brain_goodness *out) {
    if (!strcmp(name, "sigmoid")) *out = BRAIN_GOODNESS_SIGMOID;
    else if (!strcmp(name, "exp")) *out = BRAIN_GOODNESS_EXP;
    else return -1;
    return 0;
}

// log σ(x) = −softplus(−x), without overflow for any x
static double log_sigmoid(double x) {
    return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

void brain_log_goodness(brain_goodness kind, double beta, int baseline_mean,
                        double baseline_value, int G, int n, const float *rewards,
                        double *log_g) {
    for (int g = 0; g < G; g++) {
        const float *r = rewards + (size_t)g * n;
        double rb = baseline_value;
        if (baseline_mean) {
            rb = 0;
            for (int i = 0; i < n; i++) rb += r[i];
            rb /= n;
        }
        for (int i = 0; i < n; i++)
            log_g[(size_t)g * n + i] = kind == BRAIN_GOODNESS_EXP ? r[i] / beta
                                                                  : log_sigmoid((r[i] - rb) / beta);
    }
}

// log Σ exp(a_i), max-shifted; −inf when every a_i is −inf
static double log_sum_exp(int n, const double *a) {
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < n; i++)
        if (a[i] > mx) mx = a[i];
    if (!(mx > -INFINITY)) return -INFINITY;
    for (int i = 0; i < n; i++) z += exp(a[i] - mx);
    return mx + log(z);
}

// w (n) = softmax(a) (w may be a); uniform when every a_i is −inf
static void softmax(int n, const double *a, double *w) {
    double lse = log_sum_exp(n, a);
    for (int i = 0; i < n; i++) w[i] = lse > -INFINITY ? exp(a[i] - lse) : 1.0 / n;
}

double brain_loss(int G, int n, const double *logq, const double *log_prop,
                  const double *log_prior, const double *log_g, int baseline, double *alpha,
                  double *alpha_prime, double *dlogq) {
    double total = 0;
    for (int g = 0; g < G; g++) {
        size_t o = (size_t)g * n;
        double *al = alpha + o, *ap = alpha_prime + o, *b = dlogq + o;  // b: scratch
        for (int i = 0; i < n; i++) {
            al[i] = log_prior[o + i] + log_g[o + i] - log_prop[o + i];
            b[i] = logq[o + i] - log_prop[o + i];
        }
        softmax(n, al, al);
        double lse = log_sum_exp(n, b), loss = 0;  // log α'_i = b_i − lse, exact
        softmax(n, b, ap);
        for (int i = 0; i < n; i++) {
            if (al[i] > 0) loss -= al[i] * (baseline ? b[i] - lse : logq[o + i]);
            b[i] = -(al[i] - (baseline ? ap[i] : 0)) / G;
        }
        total += loss;
    }
    return G > 0 ? total / G : 0;
}

double brain_ess(int n, const double *alpha) {
    double s = 0;
    for (int i = 0; i < n; i++) s += alpha[i] * alpha[i];
    return s > 0 ? 1 / s : 0;
}
