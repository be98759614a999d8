// src/algo/hc (HC-RLHF's statistics): the Student-t quantile against closed
// forms (df 1, 2, 4), a table of published values and the normal limit; the
// CDF's symmetry and inverse; k; the surrogate cost's gradient against finite
// differences of mu + k*sigma for a softmax policy over a few outcomes; the
// multiplier's log-space step; the UCB on a known sample.
// tests/hc_rlhf_test.py checks the same numbers against tests/hc_ref.py.
#include <math.h>

#include "algo/hc.h"
#include "test.h"

static int test_t_quantile_closed_forms(void) {
    const double ps[] = {0.55, 0.6, 0.75, 0.9, 0.95, 0.99, 0.999, 0.1, 0.01};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        double p = ps[i];
        // df 1 (Cauchy): tan(pi (p - 1/2)); df 2: (2p - 1) / sqrt(2 p (1 - p))
        CHECK_CLOSE(hc_t_quantile(p, 1), tan(M_PI * (p - 0.5)), 1e-9, 1e-9);
        CHECK_CLOSE(hc_t_quantile(p, 2), (2 * p - 1) / sqrt(2 * p * (1 - p)), 1e-9, 1e-9);
        // df 4: 2 sqrt(q - 1) sign(p - 1/2), q = cos(acos(sqrt(a)) / 3) / sqrt(a), a = 4p(1-p)
        double a = 4 * p * (1 - p), q = cos(acos(sqrt(a)) / 3) / sqrt(a);
        CHECK_CLOSE(hc_t_quantile(p, 4), (p > 0.5 ? 2 : -2) * sqrt(q - 1), 1e-9, 1e-9);
    }
    return 0;
}

static int test_t_quantile_table(void) {
    // published t tables (6-7 significant digits)
    const struct { double p, df, t; } tab[] = {
        {0.9, 15, 1.340606}, {0.9, 99, 1.290161}, {0.95, 10, 1.812461}, {0.975, 10, 2.228139},
        {0.99, 1, 31.82052}, {0.995, 5, 4.032143}, {0.9, 30, 1.310415}, {0.95, 120, 1.657651},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        CHECK_CLOSE(hc_t_quantile(tab[i].p, tab[i].df), tab[i].t, 1e-6, 2e-7);
    // the normal limit: z_{0.9} = 1.2815515655
    CHECK_CLOSE(hc_t_quantile(0.9, 1e8), 1.2815515655, 1e-7, 0);
    CHECK(hc_t_quantile(0.5, 7) == 0);
    CHECK(isnan(hc_t_quantile(0, 7)) && isnan(hc_t_quantile(1, 7)) && isnan(hc_t_quantile(0.9, 0)));
    return 0;
}

static int test_t_cdf_inverse_and_symmetry(void) {
    const double dfs[] = {1, 1.5, 3, 9, 49, 99, 1000};
    const double ts[] = {-20, -3, -1, -0.1, 0, 0.01, 0.5, 2, 7};
    for (size_t i = 0; i < sizeof dfs / sizeof dfs[0]; i++)
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) {
            double F = hc_t_cdf(ts[j], dfs[i]);
            CHECK_CLOSE(F + hc_t_cdf(-ts[j], dfs[i]), 1, 1e-13, 0);
            if (F > 1e-6 && F < 1 - 1e-6) // (1 - F in double limits the inverse beyond)
                CHECK_CLOSE(hc_t_quantile(F, dfs[i]), ts[j], 1e-8, 1e-9);
        }
    // increasing
    for (double t = -5; t < 5; t += 0.25) CHECK(hc_t_cdf(t + 0.25, 6) > hc_t_cdf(t, 6));
    return 0;
}

static int test_k_and_ucb(void) {
    // k = C1 t_{.9,15}/4 + C2 t_{.9,99}/10 at the paper's C1 = 4, C2 = 2
    CHECK_CLOSE(hc_k(4, 2, 0.1, 16, 100), 4 * 1.340606 / 4 + 2 * 1.290161 / 10, 2e-6, 0);
    CHECK(isnan(hc_k(4, 2, 0.1, 1, 100)));
    // costs 0,0,1,1,1: mean 0.6, std sqrt(0.3); UCB = 0.6 + t_{.9,4} sqrt(0.3)/sqrt(5)
    const float c[] = {0, 0, 1, 1, 1};
    double m, s, u = hc_ucb(5, c, 0.1, &m, &s);
    CHECK_CLOSE(m, 0.6, 1e-12, 0);
    CHECK_CLOSE(s, sqrt(0.3), 1e-12, 0);
    CHECK_CLOSE(u, 0.6 + 1.533206274058944 * sqrt(0.3) / sqrt(5.0), 1e-9, 0);
    // all equal: std 0, UCB = the mean
    const float z[] = {0.25f, 0.25f, 0.25f};
    CHECK_CLOSE(hc_ucb(3, z, 0.1, NULL, NULL), 0.25, 1e-12, 0);
    return 0;
}

// a softmax policy over K outcomes with costs c: mu + k sigma (population moments)
enum { K = 5 };
static double bound(const double *theta, const float *c, double k, double *p) {
    double mx = theta[0], z = 0, m = 0, m2 = 0;
    for (int j = 1; j < K; j++) mx = theta[j] > mx ? theta[j] : mx;
    for (int j = 0; j < K; j++) z += p[j] = exp(theta[j] - mx);
    for (int j = 0; j < K; j++) p[j] /= z, m += p[j] * c[j], m2 += p[j] * c[j] * c[j];
    return m + k * sqrt(m2 - m * m);
}

static int test_surrogate_gradient_finite_differences(void) {
    const float c[K] = {0, 1, 0.5f, 2, -0.3f};
    const double thetas[2][K] = {{0.1, -0.4, 0.3, 0.2, -1}, {2, 0, -1, 0.5, 0.7}};
    const double ks[] = {0, 0.8, 1.6};
    for (int a = 0; a < 2; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++) {
            double th[K], p[K], k = ks[b];
            for (int j = 0; j < K; j++) th[j] = thetas[a][j];
            bound(th, c, k, p);
            double mu = 0, m2 = 0;
            for (int j = 0; j < K; j++) mu += p[j] * c[j], m2 += p[j] * c[j] * c[j];
            double sigma = sqrt(m2 - mu * mu);
            float sc[K];
            hc_surrogate_cost(K, c, mu, sigma, k, sc);
            for (int i = 0; i < K; i++) {
                // d/dtheta_i sum_j p_j sc_j (mu, sigma fixed): dp_j/dtheta_i = p_j (1[i=j] - p_i)
                double g = 0;
                for (int j = 0; j < K; j++) g += p[j] * ((i == j) - p[i]) * sc[j];
                double h = 1e-5, tp[K], tm[K], q[K];
                for (int j = 0; j < K; j++) tp[j] = tm[j] = th[j];
                tp[i] += h, tm[i] -= h;
                double fd = (bound(tp, c, k, q) - bound(tm, c, k, q)) / (2 * h);
                CHECK_CLOSE(g, fd, 1e-6, 1e-5);
            }
        }
    // all costs equal: no sigma term, the surrogate is the cost
    const float e[3] = {1, 1, 1};
    float o[3];
    hc_surrogate_cost(3, e, 1, 0, 2, o);
    CHECK(o[0] == 1 && o[1] == 1 && o[2] == 1);
    return 0;
}

static int test_lambda_step(void) {
    // log lambda += lr * lambda * (mu + k sigma - tau): above the bound it grows
    double l = hc_lambda_step(0, 0.1, 0.3, 0.2, 2, 0.1, -20, 20);
    CHECK_CLOSE(l, 0.1 * 1 * (0.3 + 0.4 - 0.1), 1e-12, 0);
    double d = hc_lambda_step(log(2.0), 0.5, 0, 0.1, 1, 0.5, -20, 20);  // under: shrinks
    CHECK_CLOSE(d, log(2.0) + 0.5 * 2 * (0.1 - 0.5), 1e-12, 0);
    CHECK(hc_lambda_step(0, 100, 1, 0, 0, 0, -3, 5) == 5);
    CHECK(hc_lambda_step(0, 100, -1, 0, 0, 0, -3, 5) == -3);
    return 0;
}

int main(void) {
    RUN(test_t_quantile_closed_forms);
    RUN(test_t_quantile_table);
    RUN(test_t_cdf_inverse_and_symmetry);
    RUN(test_k_and_ucb);
    RUN(test_surrogate_gradient_finite_differences);
    RUN(test_lambda_step);
    TEST_EXIT();
}
