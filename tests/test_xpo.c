// XPO's loss and gradient (algo/xpo): the gradient equals central finite
// differences of the loss for both pair losses and either winner; alpha = 0 is
// DPO's sigmoid / IPO loss on the pairs, exactly; the alpha term adds
// alpha * mean log pi(y~) to the loss and alpha / N to each reference sample's
// gradient and nothing to the policy samples'; very large margins stay finite.
// tests/xpo_test.py compares against torch (tests/xpo_ref.py).
#include "algo/xpo.h"

#include <stdint.h>

#include "test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double unif(void) {  // xorshift64*, in (0, 1)
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0) + 1e-17;
}
static double gauss(void) { return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif()); }

enum { N = 7 };

typedef struct {
    double py[N], ry[N], pt[N], rt[N];
    uint8_t yc[N];
} pairs;

static void random_pairs(pairs *p) {
    for (int i = 0; i < N; i++) {
        p->ry[i] = -8 + 3 * gauss(), p->py[i] = p->ry[i] + gauss();
        p->rt[i] = -8 + 3 * gauss(), p->pt[i] = p->rt[i] + gauss();
        p->yc[i] = unif() < 0.5;
    }
    p->yc[0] = 1, p->yc[1] = 0;  // both winners present
}

static int test_gradient_finite_differences(void) {
    for (int type = 0; type <= 1; type++)
        for (int trial = 0; trial < 5; trial++) {
            pairs p;
            random_pairs(&p);
            double beta = 0.05 + unif(), alpha = trial == 0 ? 0 : 0.3 * gauss();
            double dy[N], dt[N];
            xpo_loss(N, (xpo_loss_type)type, beta, alpha, p.py, p.ry, p.pt, p.rt, p.yc, dy, dt, NULL);
            const double eps = 1e-5;
            for (int i = 0; i < N; i++) {
                for (int which = 0; which < 2; which++) {
                    double *x = which ? &p.pt[i] : &p.py[i], x0 = *x;
                    *x = x0 + eps;
                    double lp = xpo_loss(N, (xpo_loss_type)type, beta, alpha, p.py, p.ry, p.pt,
                                         p.rt, p.yc, NULL, NULL, NULL);
                    *x = x0 - eps;
                    double lm = xpo_loss(N, (xpo_loss_type)type, beta, alpha, p.py, p.ry, p.pt,
                                         p.rt, p.yc, NULL, NULL, NULL);
                    *x = x0;
                    CHECK_CLOSE((which ? dt : dy)[i], (lp - lm) / (2 * eps), 1e-6, 1e-8);
                }
            }
        }
    return 0;
}

// alpha = 0: mean DPO over the pairs, written out here from chosen / rejected
static int test_alpha_zero_is_dpo(void) {
    pairs p;
    random_pairs(&p);
    const double beta = 0.3;
    for (int type = 0; type <= 1; type++) {
        double want = 0, dy[N], dt[N];
        double loss = xpo_loss(N, (xpo_loss_type)type, beta, 0, p.py, p.ry, p.pt, p.rt, p.yc, dy,
                               dt, NULL);
        for (int i = 0; i < N; i++) {
            double w = p.yc[i] ? p.py[i] - p.ry[i] : p.pt[i] - p.rt[i];
            double l = p.yc[i] ? p.pt[i] - p.rt[i] : p.py[i] - p.ry[i];
            double h = w - l;
            want += type == 0 ? log1p(exp(-beta * h)) : pow(h - 1 / (2 * beta), 2);
            CHECK_CLOSE(dy[i] + dt[i], 0, 0, 1e-15);  // the DPO part moves both by opposite amounts
        }
        CHECK_CLOSE(loss, want / N, 1e-12, 1e-12);
    }
    return 0;
}

// the alpha term: loss += alpha mean(pol_t), d_pol_t += alpha / N, d_pol_y unchanged
static int test_alpha_term(void) {
    pairs p;
    random_pairs(&p);
    double dy0[N], dt0[N], dy1[N], dt1[N], m = 0;
    xpo_stats s0, s1;
    for (int type = 0; type <= 1; type++) {
        double l0 = xpo_loss(N, (xpo_loss_type)type, 0.1, 0, p.py, p.ry, p.pt, p.rt, p.yc, dy0, dt0, &s0);
        double l1 = xpo_loss(N, (xpo_loss_type)type, 0.1, 0.7, p.py, p.ry, p.pt, p.rt, p.yc, dy1, dt1, &s1);
        m = 0;
        for (int i = 0; i < N; i++) {
            m += p.pt[i] / N;
            CHECK(dy0[i] == dy1[i]);
            CHECK_CLOSE(dt1[i] - dt0[i], 0.7 / N, 1e-12, 0);
        }
        CHECK_CLOSE(l1 - l0, 0.7 * m, 1e-12, 1e-12);
        CHECK_CLOSE(s1.loss_xpo, 0.7 * m, 1e-12, 0);
        CHECK(s1.loss_dpo == s0.loss_dpo && s0.loss_xpo == 0);
        CHECK_CLOSE(s1.logps_ref_samples, m, 1e-12, 0);
    }
    return 0;
}

static int test_extremes_and_names(void) {
    double py[2] = {0, -1e4}, ry[2] = {-1e4, 0}, pt[2] = {-1e4, 0}, rt[2] = {0, -1e4}, dy[2], dt[2];
    uint8_t yc[2] = {1, 1};  // h = +2e4, then -2e4
    xpo_stats s;
    double loss = xpo_loss(2, XPO_LOSS_SIGMOID, 1, 0, py, ry, pt, rt, yc, dy, dt, &s);
    CHECK(isfinite(loss) && isfinite(dy[0]) && isfinite(dy[1]));
    CHECK_CLOSE(loss, 2e4 / 2, 1e-12, 0);
    CHECK_CLOSE(dy[1], -0.5, 1e-12, 0);
    CHECK(s.accuracies == 0.5 && s.policy_chosen == 1);
    xpo_loss_type t;
    CHECK(xpo_loss_type_from_name("ipo", &t) == 0 && t == XPO_LOSS_IPO);
    CHECK(xpo_loss_type_from_name("sigmoid", &t) == 0 && t == XPO_LOSS_SIGMOID);
    CHECK(xpo_loss_type_from_name("hinge", &t) == -1);
    CHECK(xpo_loss(0, XPO_LOSS_SIGMOID, 1, 1, py, ry, pt, rt, yc, dy, dt, &s) == 0);
    return 0;
}

int main(void) {
    RUN(test_gradient_finite_differences);
    RUN(test_alpha_zero_is_dpo);
    RUN(test_alpha_term);
    RUN(test_extremes_and_names);
    TEST_EXIT();
}
