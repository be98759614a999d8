// algo/alol: A-LoL's value estimate (ridge regression) and priority sampling.
// See alol.h for the contract.
#include "algo/alol.h"

#include <math.h>
#include <stdlib.h>

#include "algo/pref.h"

double alol_reward(double score, int sigmoid_reward) {
    return sigmoid_reward ? pref_sigmoid(score) : score;
}

// Solves A x = r in place of r for a symmetric positive definite A (d, d),
// overwritten by its Cholesky factor. -1 when A is not positive definite.
static int cholesky_solve(double *A, double *r, int d) {
    for (int j = 0; j < d; j++) {
        double s = A[(size_t)j * d + j];
        for (int k = 0; k < j; k++) s -= A[(size_t)j * d + k] * A[(size_t)j * d + k];
        if (!(s > 0)) return -1;
        double L = sqrt(s);
        A[(size_t)j * d + j] = L;
        for (int i = j + 1; i < d; i++) {
            double t = A[(size_t)i * d + j];
            for (int k = 0; k < j; k++) t -= A[(size_t)i * d + k] * A[(size_t)j * d + k];
            A[(size_t)i * d + j] = t / L;
        }
    }
    for (int i = 0; i < d; i++) {  // L z = r
        double t = r[i];
        for (int k = 0; k < i; k++) t -= A[(size_t)i * d + k] * r[k];
        r[i] = t / A[(size_t)i * d + i];
    }
    for (int i = d - 1; i >= 0; i--) {  // L' x = z
        double t = r[i];
        for (int k = i + 1; k < d; k++) t -= A[(size_t)k * d + i] * r[k];
        r[i] = t / A[(size_t)i * d + i];
    }
    return 0;
}

int alol_ridge_fit(const float *X, const double *y, int n, int d, double lambda, double *w,
                   double *b, rlhf_err *err) {
    if (n < 1 || d < 1) return rlhf_fail(err, "ridge fit: %d rows of %d features", n, d);
    if (!(lambda > 0) || !isfinite(lambda))
        return rlhf_fail(err, "ridge fit: lambda = %g must be > 0", lambda);
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) return rlhf_fail(err, "ridge fit: target %d is %g", i, y[i]);
        for (int j = 0; j < d; j++)
            if (!isfinite(X[(size_t)i * d + j]))
                return rlhf_fail(err, "ridge fit: feature %d of row %d is not finite", j, i);
    }
    double *mx = calloc((size_t)d, sizeof(double)), *A = calloc((size_t)d * d, sizeof(double));
    double *r = calloc((size_t)d, sizeof(double)), *xc = malloc((size_t)d * sizeof(double));
    double my = 0;  // mean of y - y[0]: exactly 0 when the targets are equal
    for (int i = 0; i < n; i++) {
        my += y[i] - y[0];
        for (int j = 0; j < d; j++) mx[j] += X[(size_t)i * d + j];
    }
    my /= n;
    for (int j = 0; j < d; j++) mx[j] /= n;
    for (int i = 0; i < n; i++) {
        double yc = (y[i] - y[0]) - my;
        for (int j = 0; j < d; j++) xc[j] = X[(size_t)i * d + j] - mx[j];
        for (int j = 0; j < d; j++) {
            r[j] += xc[j] * yc;
            for (int k = 0; k <= j; k++) A[(size_t)j * d + k] += xc[j] * xc[k];
        }
    }
    for (int j = 0; j < d; j++) {
        r[j] /= n;
        for (int k = 0; k <= j; k++) A[(size_t)k * d + j] = A[(size_t)j * d + k] /= n;
        A[(size_t)j * d + j] += lambda;
    }
    int rc = cholesky_solve(A, r, d);
    if (rc == 0) {
        double dot = 0;
        for (int j = 0; j < d; j++) w[j] = r[j], dot += r[j] * mx[j];
        *b = y[0] + my - dot;
    } else {
        rlhf_fail(err, "ridge fit: the system is not positive definite (lambda %g)", lambda);
    }
    free(mx), free(A), free(r), free(xc);
    return rc;
}

double alol_ridge_predict(const double *w, double b, const float *x, int d) {
    double s = b;
    for (int j = 0; j < d; j++) s += w[j] * x[j];
    return s;
}

float alol_value_float(double v) {
    float f = (float)v;
    return (double)f < v ? nextafterf(f, INFINITY) : f;
}

int alol_priority(const float *score, const float *value, int n, int sigmoid_reward, double *cdf) {
    double sum = 0;
    int positive = 0;
    for (int i = 0; i < n; i++) {
        double a = alol_reward(score[i], sigmoid_reward) - (value ? (double)value[i] : 0.0);
        if (a > 0) sum += a, positive++;  // not finite: never drawn
        cdf[i] = sum;
    }
    return positive;
}

int alol_draw(const double *cdf, int n, double u) {
    if (n < 1 || !(cdf[n - 1] > 0)) return -1;
    double t = u * cdf[n - 1];
    if (t >= cdf[n - 1]) t = nextafter(cdf[n - 1], 0);  // u * total rounded up to the total
    int lo = 0, hi = n - 1;  // the first i with cdf[i] > t; cdf[n-1] > t as u < 1
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cdf[mid] > t) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

void alol_sample(const double *cdf, int n, uint64_t seed, long draw, int k, int *idx) {
    rlhf_rng r;
    rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(draw + 1)));
    for (int j = 0; j < k; j++) {
        double u = (double)(rng_u64(&r) >> 11) * 0x1.0p-53;  // [0, 1), 53 bits
        idx[j] = alol_draw(cdf, n, u);
    }
}
