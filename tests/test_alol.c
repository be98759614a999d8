// algo/alol: the ridge fit of A-LoL's value head (hand-worked values, the
// optimality conditions, equal targets exactly), the value's rounding, the
// priority weights and their draws (tests/alol_test.py checks the fit against
// numpy and the trainer end to end).
#include "algo/alol.h"

#include <stdint.h>

#include "algo/pref.h"
#include "test.h"

// y = 1 + 2x on x = 0..3: var(x) = 1.25, cov = 2.5, so w = 2.5 / (1.25 + lambda)
// and b = mean(y) - w mean(x); lambda = 0.25 gives w = 5/3, b = 1.5.
static int test_ridge_hand(void) {
    float X[] = {0, 1, 2, 3};
    double y[] = {1, 3, 5, 7}, w, b;
    rlhf_err err;
    CHECK(alol_ridge_fit(X, y, 4, 1, 0.25, &w, &b, &err) == 0);
    CHECK_CLOSE(w, 5.0 / 3.0, 1e-12, 0);
    CHECK_CLOSE(b, 1.5, 1e-12, 0);
    CHECK_CLOSE(alol_ridge_predict(&w, b, X + 2, 1), 1.5 + 10.0 / 3.0, 1e-12, 0);
    CHECK(alol_ridge_fit(X, y, 4, 1, 1e-12, &w, &b, &err) == 0);  // ~ least squares
    CHECK_CLOSE(w, 2.0, 1e-9, 0);
    CHECK_CLOSE(b, 1.0, 1e-9, 0);
    return 0;
}

// At the minimum the gradient of (1/n) sum (y - b - w.x)^2 + lambda |w|^2 is 0:
// sum_i r_i = 0 and -(2/n) sum_i r_i x_ij + 2 lambda w_j = 0 (r the residuals).
// n < d too (lambda keeps it well-posed).
static int test_ridge_optimal(void) {
    enum { N = 7, D = 10 };
    float X[N * D];
    double y[N], w[D], b;
    rlhf_rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < N * D; i++) X[i] = rng_normal(&r);
    for (int i = 0; i < N; i++) y[i] = 0.3 + X[i * D] - 0.5 * X[i * D + 3] + 0.1 * rng_normal(&r);
    rlhf_err err;
    double lambda = 0.05;
    CHECK(alol_ridge_fit(X, y, N, D, lambda, w, &b, &err) == 0);
    double res[N], sum = 0;
    for (int i = 0; i < N; i++) sum += res[i] = y[i] - alol_ridge_predict(w, b, X + i * D, D);
    CHECK_CLOSE(sum, 0, 1e-10, 0);
    for (int j = 0; j < D; j++) {
        double g = 0;
        for (int i = 0; i < N; i++) g -= 2.0 / N * res[i] * X[i * D + j];
        CHECK_CLOSE(g + 2 * lambda * w[j], 0, 1e-10, 0);
    }
    return 0;
}

// Equal targets: w = 0 and b = the target exactly, for any features — so a
// completion scored like every other (R = V) never gets a positive advantage.
static int test_ridge_equal_targets_exact(void) {
    enum { N = 5, D = 3 };
    float X[N * D];
    double y[N], w[D], b;
    rlhf_rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < N * D; i++) X[i] = 3 * rng_normal(&r);
    double v = alol_reward(-2.0f, 1);
    for (int i = 0; i < N; i++) y[i] = v;
    rlhf_err err;
    CHECK(alol_ridge_fit(X, y, N, D, 0.01, w, &b, &err) == 0);
    CHECK(b == v);
    for (int j = 0; j < D; j++) CHECK(w[j] == 0);
    float s[N], val[N];
    double cdf[N];
    for (int i = 0; i < N; i++) {
        s[i] = -2.0f;
        val[i] = alol_value_float(alol_ridge_predict(w, b, X + i * D, D));
        CHECK((double)val[i] >= v);
    }
    CHECK(alol_priority(s, val, N, 1, cdf) == 0);
    CHECK(alol_draw(cdf, N, 0.5) == -1);
    return 0;
}

static int test_ridge_refuses(void) {
    float X[] = {1, NAN};
    double y[] = {1, 2}, w, b;
    rlhf_err err;
    CHECK(alol_ridge_fit(X, y, 2, 1, 0.1, &w, &b, &err) == -1 && strstr(err.msg, "not finite"));
    X[1] = 2;
    CHECK(alol_ridge_fit(X, y, 2, 1, 0, &w, &b, &err) == -1 && strstr(err.msg, "lambda"));
    CHECK(alol_ridge_fit(X, y, 0, 1, 0.1, &w, &b, &err) == -1);
    return 0;
}

static int test_value_rounds_up(void) {
    double v = 0.1;  // not a float
    CHECK((double)alol_value_float(v) >= v);
    CHECK((double)nextafterf(alol_value_float(v), 0) < v);
    CHECK(alol_value_float(0.5) == 0.5f);
    CHECK((double)alol_value_float(-0.1) >= -0.1);
    return 0;
}

// R = sigmoid(score): 0.8808, 0.1192, 0.5, 0.7311 against V = 0.5, 0.5, 0.5, 0.6:
// A = 0.3808, -0.3808, 0, 0.1311. Only examples 0 and 3 have weight.
static int test_priority_weights(void) {
    float s[] = {2, -2, 0, 1}, v[] = {0.5f, 0.5f, 0.5f, 0.6f};
    double cdf[4];
    double a0 = 1 / (1 + exp(-2.0)) - 0.5, a3 = 1 / (1 + exp(-1.0)) - (double)0.6f;
    CHECK(alol_priority(s, v, 4, 1, cdf) == 2);
    CHECK_CLOSE(cdf[0], a0, 1e-15, 0);
    CHECK(cdf[1] == cdf[0] && cdf[2] == cdf[0]);
    CHECK_CLOSE(cdf[3], a0 + a3, 1e-15, 0);
    CHECK(alol_draw(cdf, 4, 0) == 0);
    CHECK(alol_draw(cdf, 4, a0 / (a0 + a3) * 0.999) == 0);
    CHECK(alol_draw(cdf, 4, a0 / (a0 + a3) * 1.001) == 3);
    CHECK(alol_draw(cdf, 4, 0.9999999999999999) == 3);
    // R-LoL (no value): weight R, every example; raw scores: negative ones drop out
    CHECK(alol_priority(s, NULL, 4, 1, cdf) == 4);
    CHECK_CLOSE(cdf[3], 1 / (1 + exp(-2.0)) + 1 / (1 + exp(2.0)) + 0.5 + 1 / (1 + exp(-1.0)),
                1e-15, 0);
    CHECK(alol_priority(s, NULL, 4, 0, cdf) == 2);
    CHECK(cdf[3] == 3.0);
    // the reward is the losses' own: pref_sigmoid
    CHECK(alol_reward(-2, 1) == pref_sigmoid(-2) && alol_reward(-2, 0) == -2);
    return 0;
}

// Draws: frequencies ~ weights, never a zero weight; the same (seed, draw)
// gives the same indices, another draw number others.
static int test_priority_sampling(void) {
    float s[] = {0, 0, 0, 0, 0}, v[] = {0.4f, 0.6f, 0.3f, 0.5f, 0.45f};  // A = .1, -, .2, 0, .05
    double cdf[5];
    CHECK(alol_priority(s, v, 5, 1, cdf) == 3);
    enum { K = 20000 };
    static int idx[K], again[K];
    int count[5] = {0};
    alol_sample(cdf, 5, 42, 7, K, idx);
    for (int i = 0; i < K; i++) count[idx[i]]++;
    CHECK(count[1] == 0 && count[3] == 0);
    double total = cdf[4];
    double want[5] = {0.5 - (double)0.4f, 0, 0.5 - (double)0.3f, 0, 0.5 - (double)0.45f};
    for (int i = 0; i < 5; i++)  // 4 standard deviations of a binomial
        CHECK_CLOSE(count[i], K * want[i] / total, 4 * sqrt(K * 0.25), 0);
    alol_sample(cdf, 5, 42, 7, K, again);
    CHECK(memcmp(idx, again, sizeof idx) == 0);
    alol_sample(cdf, 5, 42, 8, K, again);
    CHECK(memcmp(idx, again, sizeof idx) != 0);
    return 0;
}

int main(void) {
    RUN(test_ridge_hand);
    RUN(test_ridge_optimal);
    RUN(test_ridge_equal_targets_exact);
    RUN(test_ridge_refuses);
    RUN(test_value_rounds_up);
    RUN(test_priority_weights);
    RUN(test_priority_sampling);
    return test_total_fail_ ? 1 : 0;
}
