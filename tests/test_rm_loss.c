// src/algo/rm_loss: the reward model's Bradley-Terry loss (values by hand, the
// gradient against finite differences with margins, a centring coefficient and
// K members, micro-batches scaled by the step's pairs) and ensemble statistics;
// the pairwise generative RM's loss (values, finite differences) and its
// both-orders eval (tests/pairwise_rm_test.py checks both against numpy).
#include <math.h>

#include "algo/rm_loss.h"
#include "base/base.h"
#include "test.h"

static int test_bt_values(void) {
    // one pair, one member: r_c 1, r_r 0 -> -log sigmoid(1); the margin shifts d
    const float s[] = {1.0f, 0.0f};
    rm_loss_sums st = {0};
    float d[2];
    rm_bt_loss(1, 1, s, NULL, 0, 1, d, &st);
    CHECK_CLOSE(st.loss, log1p(exp(-1.0)), 1e-12, 0);
    CHECK(st.acc == 1 && st.pairs == 1);
    CHECK_CLOSE(st.margin, 1, 1e-12, 0);
    double sig = 1 / (1 + exp(1.0));  // sigmoid(-1)
    CHECK_CLOSE(d[0], -sig, 1e-7, 0);
    CHECK_CLOSE(d[1], sig, 1e-7, 0);
    const double m = 3;
    rm_loss_sums sm = {0};
    rm_bt_loss(1, 1, s, &m, 0, 1, NULL, &sm);  // d = 1 - 3
    CHECK_CLOSE(sm.loss, log1p(exp(2.0)), 1e-12, 0);
    CHECK(sm.acc == 1);  // accuracy ignores the margin
    // centring: + c (r_c + r_r)^2; a tie is not accurate
    const float t[] = {0.5f, 0.5f};
    rm_loss_sums sc = {0};
    rm_bt_loss(1, 1, t, NULL, 0.25f, 1, NULL, &sc);
    CHECK_CLOSE(sc.loss, log(2.0) + 0.25, 1e-12, 0);
    CHECK(sc.acc == 0);
    // huge margins stay finite
    const float big[] = {400.0f, -400.0f};
    rm_loss_sums sb = {0};
    rm_bt_loss(1, 1, big, NULL, 0, 1, d, &sb);
    CHECK(isfinite(sb.loss) && sb.loss < 1e-100 && isfinite(d[0]));
    return 0;
}

enum { N = 3, K = 3 };

static double loss_of(const float *s, const double *margins, float cc, long total) {
    rm_loss_sums st = {0};
    rm_bt_loss(N, K, s, margins, cc, total, NULL, &st);
    return st.loss / total;  // the mean over the step's pairs
}

static int test_bt_gradient(void) {
    float s[2 * N * K], d[2 * N * K];
    const double margins[N] = {0.5, 0, -1};
    rlhf_rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < 2 * N * K; i++) s[i] = 1.5f * rng_normal(&r);
    const float cc = 0.05f;
    const long total = 7;  // this micro-batch is 3 of the step's 7 pairs
    rm_loss_sums st = {0};
    rm_bt_loss(N, K, s, margins, cc, total, d, &st);
    CHECK(st.pairs == N);
    double worst = 0;
    for (int j = 0; j < 2 * N * K; j++) {
        float save = s[j];
        s[j] = save + 1e-2f;
        float hi = s[j];
        double up = loss_of(s, margins, cc, total);
        s[j] = save - 1e-2f;
        float lo = s[j];
        double down = loss_of(s, margins, cc, total);
        s[j] = save;
        double fd = (up - down) / ((double)hi - lo), e = fabs(fd - d[j]);
        worst = e > worst ? e : worst;
    }
    printf("  %d scores, worst |finite difference - gradient| %.2e\n", 2 * N * K, worst);
    CHECK(worst < 1e-6);
    return 0;
}

static int test_ensemble_eval(void) {
    // 2 pairs, K = 2: pair 0 members (3 vs 1) and (1 vs 2): mean 2 > 1.5, members 1/2
    // right, variance of r_c {3, 1} = 1; pair 1 (0 vs 1) and (0 vs 1): wrong, var 0
    const float s[] = {3, 1, 0, 0,   // chosen rows: pair 0, pair 1
                       1, 2, 1, 1};  // rejected rows
    rm_ensemble_sums e = {0};
    rm_ensemble_eval(2, 2, s, &e);
    CHECK_CLOSE(e.acc, 1, 1e-12, 0);
    CHECK_CLOSE(e.member_acc, 0.5, 1e-12, 0);
    CHECK_CLOSE(e.var, 1, 1e-12, 0);
    return 0;
}

// ------------------------------------------------------------- pairwise --

static int test_pairwise_values(void) {
    // row 0: label A, l_A - l_B = 1 -> -log sigmoid(1); row 1: label B, same logits -> -log sigmoid(-1)
    const float l[] = {-0.5f, -1.5f, -0.5f, -1.5f};
    const int label[] = {0, 1};
    float d[4];
    rm_pairwise_sums st = {0};
    rm_pairwise_loss(2, l, label, 4, d, &st);
    CHECK_CLOSE(st.loss, log1p(exp(-1.0)) + log1p(exp(1.0)), 1e-7, 0);
    CHECK(st.acc == 1 && st.rows == 2);
    double s1 = 1 / (1 + exp(1.0)), s2 = 1 / (1 + exp(-1.0));  // sigmoid(-1), sigmoid(1)
    CHECK_CLOSE(d[0], -s1 / 4, 1e-7, 0);
    CHECK_CLOSE(d[1], s1 / 4, 1e-7, 0);
    CHECK_CLOSE(d[2], s2 / 4, 1e-7, 0);
    CHECK_CLOSE(d[3], -s2 / 4, 1e-7, 0);
    const float big[] = {0, -500};  // far apart log-probs stay finite
    rm_pairwise_sums sb = {0};
    rm_pairwise_loss(1, big, label + 1, 1, d, &sb);
    CHECK(isfinite(sb.loss) && fabs(sb.loss - 500) < 1e-3 && isfinite(d[0]));
    return 0;
}

static double pw_loss_of(int m, const float *l, const int *label, long total) {
    rm_pairwise_sums st = {0};
    rm_pairwise_loss(m, l, label, total, NULL, &st);
    return st.loss / total;
}

static int test_pairwise_gradient(void) {
    enum { M = 6 };
    float l[2 * M], d[2 * M];
    int label[M];
    rlhf_rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < 2 * M; i++) l[i] = -3.0f + 2.0f * rng_normal(&r);
    for (int i = 0; i < M; i++) label[i] = i % 3 == 1;
    const long total = 10;  // this micro-batch holds 6 of the step's 10 rows
    rm_pairwise_sums st = {0};
    rm_pairwise_loss(M, l, label, total, d, &st);
    double worst = 0;
    for (int j = 0; j < 2 * M; j++) {
        float save = l[j];
        l[j] = save + 1e-2f;
        float hi = l[j];
        double up = pw_loss_of(M, l, label, total);
        l[j] = save - 1e-2f;
        float lo = l[j];
        double down = pw_loss_of(M, l, label, total);
        l[j] = save;
        double fd = (up - down) / ((double)hi - lo), e = fabs(fd - d[j]);
        worst = e > worst ? e : worst;
    }
    printf("  pairwise: %d answer log-probs, worst |finite difference - gradient| %.2e\n", 2 * M,
           worst);
    CHECK(worst < 1e-6);
    return 0;
}

static int test_pairwise_eval(void) {
    // pair 0: chosen wins in both orders (consistent); pair 1: A wins in both
    // orders (position bias: the verdict flips when the answers swap)
    const float l[] = {-1, -3, -3, -1,   // chosen as A: A likelier; chosen as B: B likelier
                       -1, -2, -1, -2};  // A likelier whatever A shows
    rm_pairwise_eval_sums e = {0};
    rm_pairwise_eval(2, l, &e);
    CHECK(e.pairs == 2);
    CHECK_CLOSE(e.consistent, 1, 1e-12, 0);
    CHECK_CLOSE(e.order_acc, 1.5, 1e-12, 0);
    double s2 = 1 / (1 + exp(-2.0)), s1 = 1 / (1 + exp(-1.0));
    CHECK_CLOSE(e.prob, s2 + 0.5, 1e-9, 0);  // pair 1 averages to exactly 1/2
    CHECK_CLOSE(e.acc, 1, 1e-12, 0);         // 1/2 is not a win
    CHECK_CLOSE(e.bias, fabs(s2 + (1 - s2) - 1) + fabs(2 * s1 - 1), 1e-9, 0);
    return 0;
}

int main(void) {
    RUN(test_pairwise_values);
    RUN(test_pairwise_gradient);
    RUN(test_pairwise_eval);
    RUN(test_bt_values);
    RUN(test_bt_gradient);
    RUN(test_ensemble_eval);
    TEST_EXIT();
}
