// algo/hc: HC-RLHF's statistics (algo/hc.h). The t quantile is written here
// (no libm function gives it): the regularised incomplete beta function by its
// continued fraction (modified Lentz), the CDF from it, the quantile by
// bisection on the CDF.
#include "algo/hc.h"

#include <math.h>

// I_x(a, b) for x in [0, 1], y = 1 - x given separately (no cancellation near 1)
static double incomplete_beta(double x, double y, double a, double b) {
    if (x <= 0) return 0;
    if (y <= 0) return 1;
    if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(y, x, b, a);
    // front factor x^a y^b / (a B(a, b))
    double front = exp(a * log(x) + b * log(y) + lgamma(a + b) - lgamma(a) - lgamma(b)) / a;
    // I = front / f, f = 1 + d1 / (1 + d2 / (1 + ...)) with
    //   d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),
    //   d_{2m}   = m (b - m) x / ((a + 2m - 1)(a + 2m)),
    // f evaluated by modified Lentz (f_0 = 1, C_0 = 1, D_0 = 0)
    const double tiny = 1e-300;
    double f = 1, cc = 1, dd = 0;
    for (int j = 1; j <= 1000; j++) {
        int m = j / 2;
        double d = j % 2 ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                         : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        dd = 1 + d * dd;
        if (fabs(dd) < tiny) dd = tiny;
        cc = 1 + d / cc;
        if (fabs(cc) < tiny) cc = tiny;
        dd = 1 / dd;
        double delta = cc * dd;
        f *= delta;
        if (fabs(delta - 1) < 1e-15) break;
    }
    return front / f;
}

double hc_t_cdf(double t, double df) {
    if (!(df > 0) || isnan(t)) return NAN;
    if (isinf(t)) return t > 0 ? 1 : 0;
    double t2 = t * t;
    double tail = incomplete_beta(df / (df + t2), t2 / (df + t2), df / 2, 0.5); // P(|T| > |t|)
    return t >= 0 ? 1 - tail / 2 : tail / 2;
}

double hc_t_quantile(double p, double df) {
    if (!(p > 0 && p < 1) || !(df > 0)) return NAN;
    if (p == 0.5) return 0;
    if (p < 0.5) return -hc_t_quantile(1 - p, df);
    double lo = 0, hi = 1;
    while (hc_t_cdf(hi, df) < p) {
        lo = hi, hi *= 2;
        if (hi > 1e300) return INFINITY;
    }
    for (int i = 0; i < 2000 && hi - lo > 1e-13 * hi; i++) {
        double mid = lo + (hi - lo) / 2;
        if (hc_t_cdf(mid, df) < p) lo = mid;
        else hi = mid;
    }
    return lo + (hi - lo) / 2;
}

void hc_mean_std(int n, const float *x, double *mean, double *std) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    double m = n > 0 ? s / n : 0;
    for (int i = 0; i < n; i++) q += (x[i] - m) * (x[i] - m);
    if (mean) *mean = m;
    if (std) *std = n > 1 ? sqrt(q / (n - 1)) : 0;
}

double hc_k(double c1, double c2, double delta, int n_b, int n_s) {
    if (n_b < 2 || n_s < 2) return NAN;
    return c1 * hc_t_quantile(1 - delta, n_b - 1) / sqrt((double)n_b) +
           c2 * hc_t_quantile(1 - delta, n_s - 1) / sqrt((double)n_s);
}

void hc_surrogate_cost(int n, const float *c, double mu, double sigma, double k, float *out) {
    for (int i = 0; i < n; i++) {
        double ci = c[i];
        out[i] = (float)(sigma > 1e-12 ? ci + k * (ci * ci - 2 * ci * mu) / (2 * sigma) : ci);
    }
}

double hc_lambda_step(double log_lambda, double lr, double mu, double sigma, double k, double tau,
                      double log_lambda_min, double log_lambda_max) {
    double next = log_lambda + lr * exp(log_lambda) * (mu + k * sigma - tau);
    if (next < log_lambda_min) next = log_lambda_min;
    if (next > log_lambda_max) next = log_lambda_max;
    return next;
}

double hc_ucb(int n, const float *c, double delta, double *mean, double *std) {
    double m, s;
    hc_mean_std(n, c, &m, &s);
    if (mean) *mean = m;
    if (std) *std = s;
    if (n < 2) return NAN;
    return m + hc_t_quantile(1 - delta, n - 1) * s / sqrt((double)n);
}
