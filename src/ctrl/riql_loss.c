// ctrl/riql_loss: RIQL's quantile target and Huber critic loss (formulas and
// sources in riql_loss.h).
#include "ctrl/riql_loss.h"

#include <math.h>

void ctrl_ensemble_quantile(float *out, const float *q, int E, int B, float alpha) {
    if (E > 64) E = 64; // the contract's bound (algo_riql.c refuses more members)
    double p = (double)alpha * (E - 1);
    int lo = (int)floor(p);
    if (lo < 0) lo = 0;
    if (lo > E - 1) lo = E - 1;
    int hi = lo + 1 < E ? lo + 1 : lo;
    double frac = p - lo;
    for (int b = 0; b < B; b++) {
        float v[64];
        for (int e = 0; e < E; e++) { // insertion sort: E is a handful of members
            float x = q[(long)e * B + b];
            int k = e;
            while (k > 0 && v[k - 1] > x) {
                v[k] = v[k - 1];
                k--;
            }
            v[k] = x;
        }
        out[b] = (float)(v[lo] + frac * ((double)v[hi] - v[lo]));
    }
}

double ctrl_riql_huber_loss(float *dq, const float *q, const float *y, int E, int B, float sigma) {
    double delta = 1.0 / ((double)sigma * sigma), loss = 0, n = (double)E * B;
    for (int e = 0; e < E; e++)
        for (int b = 0; b < B; b++) {
            long k = (long)e * B + b;
            double u = (double)y[b] - q[k], a = fabs(u);
            loss += a < delta ? 0.5 * u * u / delta : a - 0.5 * delta;
            if (dq) {
                double h = a < delta ? u / delta : (u > 0 ? 1.0 : -1.0);
                dq[k] += (float)(-h / n); // du/dq = -1
            }
        }
    return loss / n;
}
