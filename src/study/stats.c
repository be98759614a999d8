// study/stats: summaries over seeds, the sign test of a difference,
// interpolation and the least-squares fits the studies use (stats.h).
#include "study/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

double stats_t975(int df) {
    // two-sided 95% quantiles of Student's t, df 1..30; then the normal's
    static const double T[31] = {NAN,   12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365,
                                 2.306, 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                                 2.120, 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
                                 2.064, 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
    if (df < 1) return NAN;
    if (df <= 30) return T[df];
    return 1.960 + 2.4 / df; // within 0.002 of the exact quantile for df > 30
}

stats_summary stats_summarize(const double *x, int n) {
    stats_summary s = {0, NAN, NAN, NAN, NAN, NAN};
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) {
            sum += x[i];
            s.n++;
        }
    if (s.n == 0) return s;
    s.mean = sum / s.n;
    if (s.n < 2) return s;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) ss += (x[i] - s.mean) * (x[i] - s.mean);
    s.sd = sqrt(ss / (s.n - 1));
    s.se = s.sd / sqrt((double)s.n);
    double t = stats_t975(s.n - 1);
    s.lo = s.mean - t * s.se;
    s.hi = s.mean + t * s.se;
    return s;
}

int stats_sign_test(const stats_summary *d) {
    if (d->n < 2 || isnan(d->mean) || isnan(d->se)) return 0;
    if (d->mean > 0 && d->mean >= 2 * d->se) return 1;
    if (d->mean < 0 && -d->mean >= 2 * d->se) return -1;
    return 0;
}

typedef struct {
    double x, y;
} xy;

static int by_x(const void *a, const void *b) {
    double u = ((const xy *)a)->x, v = ((const xy *)b)->x;
    return (u > v) - (u < v);
}

double stats_interp(const double *x, const double *y, int n, double at) {
    xy *p = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && !isnan(y[i])) p[m++] = (xy){x[i], y[i]};
    qsort(p, (size_t)m, sizeof *p, by_x);
    double r = NAN;
    if (m >= 1 && at >= p[0].x && at <= p[m - 1].x) {
        for (int i = 0; i + 1 < m && isnan(r); i++)
            if (at <= p[i + 1].x) {
                double dx = p[i + 1].x - p[i].x;
                r = dx > 0 ? p[i].y + (p[i + 1].y - p[i].y) * (at - p[i].x) / dx
                           : 0.5 * (p[i].y + p[i + 1].y);
            }
        if (isnan(r)) r = p[m - 1].y; // at == the only / last x
    }
    free(p);
    return r;
}

// least squares y = a u + b v (no intercept) over the points with ok[i]
static int fit2(const double *u, const double *v, const double *y, const int *ok, int n, double *a,
                double *b) {
    double suu = 0, suv = 0, svv = 0, suy = 0, svy = 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!ok[i]) continue;
        suu += u[i] * u[i];
        suv += u[i] * v[i];
        svv += v[i] * v[i];
        suy += u[i] * y[i];
        svy += v[i] * y[i];
        m++;
    }
    double det = suu * svv - suv * suv;
    if (m < 2 || !(fabs(det) > 1e-12 * (suu * svv + 1e-300))) return -1;
    *a = (suy * svv - svy * suv) / det;
    *b = (svy * suu - suy * suv) / det;
    return 0;
}

int stats_fit_overopt(const double *d, const double *r, int n, double *alpha, double *beta,
                      double *r2) {
    double *u = xcalloc((size_t)n + 1, sizeof *u), *v = xcalloc((size_t)n + 1, sizeof *v);
    int *ok = xcalloc((size_t)n + 1, sizeof *ok);
    for (int i = 0; i < n; i++) {
        ok[i] = d[i] > 0 && isfinite(d[i]) && isfinite(r[i]);
        if (ok[i]) {
            u[i] = d[i];              // alpha's feature
            v[i] = -d[i] * log(d[i]); // beta's feature
        }
    }
    int rc = fit2(u, v, r, ok, n, alpha, beta);
    if (rc == 0 && r2) {
        double mean = 0, ss = 0, res = 0;
        int m = 0;
        for (int i = 0; i < n; i++)
            if (ok[i]) mean += r[i], m++;
        mean /= m;
        for (int i = 0; i < n; i++)
            if (ok[i]) {
                double e = r[i] - (*alpha * u[i] + *beta * v[i]);
                res += e * e;
                ss += (r[i] - mean) * (r[i] - mean);
            }
        *r2 = ss > 0 ? 1 - res / ss : NAN;
    }
    free(u);
    free(v);
    free(ok);
    return rc;
}

int stats_fit_line(const double *x, const double *y, int n, double *a, double *b) {
    double *one = xcalloc((size_t)n + 1, sizeof *one);
    int *ok = xcalloc((size_t)n + 1, sizeof *ok);
    for (int i = 0; i < n; i++) {
        one[i] = 1;
        ok[i] = isfinite(x[i]) && isfinite(y[i]);
    }
    int rc = fit2(one, x, y, ok, n, a, b);
    free(one);
    free(ok);
    return rc;
}
