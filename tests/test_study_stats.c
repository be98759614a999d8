// src/study/stats: summaries over seeds (values by hand), the t table, the
// sign test's three outcomes, interpolation, and the least-squares fits
// recovering known coefficients (the overoptimisation law exactly and under
// noise).
#include <math.h>

#include "base/base.h"
#include "study/stats.h"
#include "test.h"

static int test_summary_by_hand(void) {
    const double x[] = {1, 2, 3, 4, NAN};
    stats_summary s = stats_summarize(x, 5); // NaN skipped
    CHECK(s.n == 4);
    CHECK_CLOSE(s.mean, 2.5, 1e-12, 0);
    CHECK_CLOSE(s.sd, sqrt(5.0 / 3.0), 1e-12, 0); // sum of squares 5, n - 1 = 3
    CHECK_CLOSE(s.se, sqrt(5.0 / 3.0) / 2, 1e-12, 0);
    CHECK_CLOSE(s.hi - s.mean, 3.182 * s.se, 1e-9, 0); // t(0.975, 3)
    CHECK_CLOSE(s.mean - s.lo, 3.182 * s.se, 1e-9, 0);
    stats_summary one = stats_summarize(x, 1);
    CHECK(one.n == 1 && one.mean == 1 && isnan(one.se) && isnan(one.lo));
    stats_summary none = stats_summarize(x + 4, 1);
    CHECK(none.n == 0 && isnan(none.mean));
    CHECK_CLOSE(stats_t975(1), 12.706, 1e-9, 0);
    CHECK_CLOSE(stats_t975(30), 2.042, 1e-9, 0);
    CHECK(fabs(stats_t975(60) - 2.000) < 0.002 && fabs(stats_t975(1000) - 1.962) < 0.002);
    CHECK(isnan(stats_t975(0)));
    return 0;
}

static int test_sign_test(void) {
    const double up[] = {0.10, 0.12, 0.11}, down[] = {-0.10, -0.12, -0.11},
                 mixed[] = {0.3, -0.2, 0.1}, single[] = {5};
    stats_summary a = stats_summarize(up, 3), b = stats_summarize(down, 3),
                  c = stats_summarize(mixed, 3), d = stats_summarize(single, 1);
    CHECK(stats_sign_test(&a) == 1);
    CHECK(stats_sign_test(&b) == -1);
    CHECK(stats_sign_test(&c) == 0);
    CHECK(stats_sign_test(&d) == 0); // one seed decides nothing
    // the boundary: mean exactly 2 se counts, just under does not
    const double two[] = {1, 3};  // mean 2, sd sqrt 2, se 1 -> mean = 2 se
    stats_summary e = stats_summarize(two, 2);
    CHECK_CLOSE(e.se, 1, 1e-12, 0);
    CHECK(stats_sign_test(&e) == 1);
    const double under[] = {0.9, 3}; // mean 1.95, se 1.05: mean < 2 se
    stats_summary f = stats_summarize(under, 2);
    CHECK(stats_sign_test(&f) == 0);
    return 0;
}

static int test_interp(void) {
    const double x[] = {3, 1, 2}, y[] = {30, 10, 20}; // unsorted on purpose
    CHECK_CLOSE(stats_interp(x, y, 3, 1.5), 15, 1e-12, 0);
    CHECK_CLOSE(stats_interp(x, y, 3, 2.75), 27.5, 1e-12, 0);
    CHECK_CLOSE(stats_interp(x, y, 3, 1), 10, 1e-12, 0);
    CHECK_CLOSE(stats_interp(x, y, 3, 3), 30, 1e-12, 0);
    CHECK(isnan(stats_interp(x, y, 3, 0.99)) && isnan(stats_interp(x, y, 3, 3.01)));
    CHECK(isnan(stats_interp(x, y, 0, 1)));
    const double xn[] = {1, NAN, 3}, yn[] = {0, 5, 6};
    CHECK_CLOSE(stats_interp(xn, yn, 3, 2), 3, 1e-12, 0); // the NaN point is left out
    return 0;
}

static int test_fit_overopt_exact_and_noisy(void) {
    // r = d (alpha - beta ln d): recovered exactly without noise
    double d[40], r[40], alpha = 0, beta = 0, r2 = 0;
    for (int i = 0; i < 40; i++) {
        d[i] = 0.1 + 0.1 * i;
        r[i] = d[i] * (0.8 - 0.35 * log(d[i]));
    }
    CHECK(stats_fit_overopt(d, r, 40, &alpha, &beta, &r2) == 0);
    CHECK_CLOSE(alpha, 0.8, 1e-9, 0);
    CHECK_CLOSE(beta, 0.35, 1e-9, 0);
    CHECK_CLOSE(r2, 1, 1e-9, 0);
    // with noise (sd 0.01) within a few hundredths, and d <= 0 points ignored
    rlhf_rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < 40; i++) r[i] += 0.01 * rng_normal(&rng);
    d[0] = 0;
    r[0] = 100; // would wreck the fit if it were used
    CHECK(stats_fit_overopt(d, r, 40, &alpha, &beta, &r2) == 0);
    CHECK(fabs(alpha - 0.8) < 0.03 && fabs(beta - 0.35) < 0.03);
    CHECK(r2 > 0.95);
    // one usable point is not a fit
    CHECK(stats_fit_overopt(d, r, 2, &alpha, &beta, NULL) == -1);
    return 0;
}

static int test_fit_line(void) {
    const double x[] = {0, 1, 2, 3}, y[] = {1, 3, 5, 7};
    double a = 0, b = 0;
    CHECK(stats_fit_line(x, y, 4, &a, &b) == 0);
    CHECK_CLOSE(a, 1, 1e-12, 0);
    CHECK_CLOSE(b, 2, 1e-12, 0);
    const double same[] = {2, 2, 2};
    CHECK(stats_fit_line(same, y, 3, &a, &b) == -1); // singular
    return 0;
}

int main(void) {
    RUN(test_summary_by_hand);
    RUN(test_sign_test);
    RUN(test_interp);
    RUN(test_fit_overopt_exact_and_noisy);
    RUN(test_fit_line);
    TEST_EXIT();
}
