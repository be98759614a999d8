// algo/gkd: GKD's generalised Jensen-Shannon divergence and its gradient (see
// algo/gkd.h for the formulas and their sources).
#include "algo/gkd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

// out[v] = x[v] / tau - logsumexp(x / tau), in double
static void log_softmax_row(int V, const float *x, double tau, double *out) {
    double mx = -INFINITY;
    for (int v = 0; v < V; v++) {
        out[v] = x[v] / tau;
        if (out[v] > mx) mx = out[v];
    }
    double s = 0;
    for (int v = 0; v < V; v++) s += exp(out[v] - mx);
    double lse = mx + log(s);
    for (int v = 0; v < V; v++) out[v] -= lse;
}

// log(a e^x + b e^y) for a, b > 0, stable
static double log_mix(double la, double x, double lb, double y) {
    double u = la + x, w = lb + y, hi = u > w ? u : w;
    return hi + log1p(exp((u > w ? w : u) - hi));
}

// one position: D, and when d != NULL, d[v] = g * dD/dz_v (z = student / tau)
static double jsd_row(int V, const double *lp, const double *lq, double *lm, double beta,
                      float *d, double g) {
    double D = 0;
    if (beta == 0) {  // KL(q || p)
        for (int v = 0; v < V; v++) D += exp(lq[v]) * (lq[v] - lp[v]);
        if (d)
            for (int v = 0; v < V; v++) d[v] = (float)(g * (exp(lp[v]) - exp(lq[v])));
        return D;
    }
    if (beta == 1) {  // KL(p || q)
        for (int v = 0; v < V; v++) D += exp(lp[v]) * (lp[v] - lq[v]);
        if (d)
            for (int v = 0; v < V; v++) d[v] = (float)(g * exp(lp[v]) * (lp[v] - lq[v] - D));
        return D;
    }
    double lb = log(beta), l1b = log1p(-beta), kq = 0, kp = 0;
    for (int v = 0; v < V; v++) {
        lm[v] = log_mix(lb, lq[v], l1b, lp[v]);
        kq += exp(lq[v]) * (lq[v] - lm[v]);
        kp += exp(lp[v]) * (lp[v] - lm[v]);
    }
    D = beta * kq + (1 - beta) * kp;
    if (d)
        for (int v = 0; v < V; v++)
            d[v] = (float)(g * (1 - beta) * exp(lp[v]) * (lp[v] - lm[v] - kp));
    return D;
}

double gkd_jsd(int N, int V, const float *student, const float *teacher, const float *weight,
               float beta, float tau, double scale, float *dstudent) {
    double *lp = xmalloc((size_t)3 * V * sizeof(double)), *lq = lp + V, *lm = lq + V;
    double total = 0;
    for (int i = 0; i < N; i++) {
        double w = weight ? weight[i] : 1.0;
        float *d = dstudent ? dstudent + (size_t)i * V : NULL;
        if (w == 0) {
            if (d) memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        // both rows are read into lp / lq before d (maybe the student row) is written
        log_softmax_row(V, student + (size_t)i * V, tau, lp);
        log_softmax_row(V, teacher + (size_t)i * V, tau, lq);
        total += w * jsd_row(V, lp, lq, lm, beta, d, scale * w / tau);
    }
    free(lp);
    return total;
}
