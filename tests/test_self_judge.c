// algo/self_judge: OSP's order-averaged preference probability and ranked pairing.
#include <math.h>

#include "algo/self_judge.h"
#include "test.h"

static double sig(double x) { return 1 / (1 + exp(-x)); }

static int test_prob(void) {
    // each order's p is the answers' normalised likelihood; the orders averaged
    double la = log(0.6), lb = log(0.2), la2 = log(0.1), lb2 = log(0.3);
    double p = self_judge_prob(la, lb, la2, lb2);
    double want = 0.5 * (0.6 / 0.8 + 0.3 / 0.4);
    CHECK(fabs(p - want) < 1e-12);
    CHECK(fabs(p - 0.5 * (sig(la - lb) + sig(lb2 - la2))) < 1e-12);
    // swapping the responses (the two orders trade places) gives 1 - p
    CHECK(fabs(self_judge_prob(la2, lb2, la, lb) - (1 - p)) < 1e-12);
    // a judge that always answers "A" (position bias only) is at chance
    CHECK(fabs(self_judge_prob(-0.1, -5, -0.1, -5) - 0.5) < 1e-12);
    // equal likelihoods: 0.5; certain in both orders: 1
    CHECK(fabs(self_judge_prob(-1, -1, -2, -2) - 0.5) < 1e-12);
    CHECK(self_judge_prob(0, -800, -800, 0) > 1 - 1e-12);
    CHECK(isfinite(self_judge_prob(1e4, -1e4, -1e4, 1e4)));
    return 0;
}

static int test_scores(void) {
    // p(i beats j) for 3 samples; score = mean over the others
    double p[9] = {0.5, 0.8, 0.6, 0.2, 0.5, 0.3, 0.4, 0.7, 0.5}, s[3];
    self_judge_scores(3, p, s);
    CHECK(fabs(s[0] - 0.7) < 1e-12 && fabs(s[1] - 0.25) < 1e-12 && fabs(s[2] - 0.55) < 1e-12);
    double one = 0.5, s1;
    self_judge_scores(1, &one, &s1);
    CHECK(s1 == 0.5);
    return 0;
}

static int test_ranked(void) {
    // sorted: 1 (.9), 4 (.7), 2 (.5), 3 (.3), 5 (.2), 0 (.1): best-worst, 2nd-2nd, 3rd-3rd
    double s[6] = {0.1, 0.9, 0.5, 0.3, 0.7, 0.2};
    int c[3], r[3];
    CHECK(self_judge_ranked_pairs(6, s, c, r) == 3);
    CHECK(c[0] == 1 && r[0] == 0);
    CHECK(c[1] == 4 && r[1] == 5);
    CHECK(c[2] == 2 && r[2] == 3);
    // odd n: the middle sample is left out
    double o[5] = {0.3, 0.1, 0.5, 0.9, 0.7};
    CHECK(self_judge_ranked_pairs(5, o, c, r) == 2);
    CHECK(c[0] == 3 && r[0] == 1 && c[1] == 4 && r[1] == 0);
    // ties: lower index ranks first; a pair of equal scores is left out
    double t[4] = {0.5, 0.5, 0.5, 0.2};
    CHECK(self_judge_ranked_pairs(4, t, c, r) == 1);
    CHECK(c[0] == 0 && r[0] == 3);
    double e[4] = {0.4, 0.4, 0.4, 0.4};
    CHECK(self_judge_ranked_pairs(4, e, c, r) == 0);
    CHECK(self_judge_ranked_pairs(1, e, c, r) == 0);
    return 0;
}

int main(void) {
    RUN(test_prob);
    RUN(test_scores);
    RUN(test_ranked);
    TEST_EXIT();
}
