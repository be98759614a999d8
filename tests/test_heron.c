// src/algo/heron (HERON's hierarchical labels) on cases worked out by hand: the
// first factor beyond its margin decides, a difference equal to the margin does
// not, ties and NaNs, relative margins, a group's pairs, margin lists.
// tests/heron_test.py checks the same functions against tests/heron_ref.py on
// random values.
#include <math.h>

#include "algo/heron.h"
#include "base/base.h"
#include "test.h"

static int test_compare_by_hand(void) {
    const double delta[3] = {0, 0.5, 2};
    int lv = 9;
    // factor 1 differs: it decides, whatever the others say
    const double a[3] = {1, 0, 0}, b[3] = {0, 9, 9};
    CHECK(heron_compare(3, a, b, delta, &lv) == 1 && lv == 0);
    CHECK(heron_compare(3, b, a, delta, &lv) == -1 && lv == 0);
    // factor 1 equal, factor 2 within its margin (0.5 exactly: not beyond), factor 3 beyond
    const double c[3] = {1, 0.5, 0}, d[3] = {1, 0, 3};
    CHECK(heron_compare(3, c, d, delta, &lv) == -1 && lv == 2);
    // factor 3 within its margin too: a tie
    const double e[3] = {1, 0.2, 1}, f[3] = {1, 0.6, 2.5};
    CHECK(heron_compare(3, e, f, delta, &lv) == 0 && lv == -1);
    // a NaN never decides: the next factor does
    const double g[2] = {NAN, 1}, h[2] = {0, 0};
    CHECK(heron_compare(2, g, h, delta, &lv) == 1 && lv == 1);
    CHECK(heron_compare(2, a, a, delta, NULL) == 0);  // level may be NULL
    return 0;
}

static int test_group_pairs_by_hand(void) {
    // 4 samples, factors (correct, closeness): 0 right, 1 and 2 wrong and equally close,
    // 3 wrong and far; 2 left out
    const double z[8] = {1, 1, 0, 0.4, 0, 0.4, 0, 0.1};
    const double delta[2] = {0, 0.05};
    const unsigned char use[4] = {1, 1, 0, 1};
    int ch[6], rj[6], lv[6], ties = -1;
    int k = heron_group_pairs(4, 2, z, delta, use, ch, rj, lv, &ties);
    // pairs (0,1) (0,3) (1,3): 0 beats 1 and 3 on correctness, 1 beats 3 on closeness
    CHECK(k == 3 && ties == 0);
    CHECK(ch[0] == 0 && rj[0] == 1 && lv[0] == 0);
    CHECK(ch[1] == 0 && rj[1] == 3 && lv[1] == 0);
    CHECK(ch[2] == 1 && rj[2] == 3 && lv[2] == 1);
    // with 2 in: (1,2) is a tie
    k = heron_group_pairs(4, 2, z, delta, NULL, ch, rj, lv, &ties);
    CHECK(k == 5 && ties == 1);
    return 0;
}

static int test_margins_parse_and_spread(void) {
    double m[3], sd[2], delta[2];
    int rel[3];
    rlhf_err err;
    CHECK(heron_parse_margins("0, 0.5sd ,2", 3, m, rel, &err) == 0);
    CHECK(m[0] == 0 && !rel[0] && m[1] == 0.5 && rel[1] && m[2] == 2 && !rel[2]);
    CHECK(heron_parse_margins(NULL, 3, m, rel, &err) == 0 && m[2] == 0 && !rel[2]);
    CHECK(heron_parse_margins("0,-1", 2, m, rel, &err) != 0 && strstr(err.msg, "negative"));
    CHECK(heron_parse_margins("0,1", 3, m, rel, &err) != 0 && strstr(err.msg, "--margins"));
    CHECK(heron_parse_margins("x", 1, m, rel, &err) != 0 && strstr(err.msg, "not a number"));
    // spread: column 0 = {0, 2} -> sd 1; column 1 = {5, 5} -> 0; row 2 left out
    const double z[6] = {0, 5, 2, 5, 100, -100};
    const unsigned char use[3] = {1, 1, 0};
    heron_factor_spread(3, 2, z, use, sd);
    CHECK_CLOSE(sd[0], 1, 1e-15, 0);
    CHECK_CLOSE(sd[1], 0, 1e-15, 0);
    const double mm[2] = {0.5, 0.5};
    const int rr[2] = {1, 0};
    heron_margins(2, mm, rr, sd, delta);
    CHECK(delta[0] == 0.5 && delta[1] == 0.5);
    return 0;
}

int main(void) {
    RUN(test_compare_by_hand);
    RUN(test_group_pairs_by_hand);
    RUN(test_margins_parse_and_spread);
    TEST_EXIT();
}
