// The linear-MDP test bed and FTPedel (src/ctrl/linmdp.c). The estimates and
// the design are checked against numpy in tests/ctrl_linmdp_test.py; here:
// a policy's value two ways (DP and Monte-Carlo), the rare instance's known
// gaps, the elimination keeping the optimal policy, the offline rows saving
// online episodes, and bad options refused.
#include "ctrl/linmdp.h"
#include "test.h"

static int test_value_dp_vs_mc(void) {
    linmdp m;
    rlhf_err err;
    CHECK(linmdp_random(&m, 5, 3, 4, 3, 11, &err) == 0);
    rlhf_rng r;
    rng_seed(&r, 3);
    int pols[3 * 4 * 5];
    linmdp_policies_random(&m, 3, 0.5, &r, pols);
    for (int k = 0; k < 3; k++) {
        const int *p = pols + k * 20;
        double dp = linmdp_value_dp(&m, p), feat = linmdp_value_feat(&m, p);
        double mc = linmdp_value_mc(&m, p, 40000, &r); // return <= 4: se <= 0.01
        CHECK_CLOSE(feat, dp, 1e-12, 0);
        CHECKF(fabs(mc - dp) < 0.04, "policy %d: MC %.4f, DP %.4f", k, mc, dp);
    }
    int opt[20];
    double vstar = linmdp_optimal(&m, opt);
    CHECK_CLOSE(linmdp_value_dp(&m, opt), vstar, 1e-12, 0);
    for (int k = 1; k < 3; k++) CHECK(linmdp_value_dp(&m, pols + k * 20) <= vstar + 1e-12);
    linmdp_free(&m);
    return 0;
}

// the rare instance: flipping common state c costs (1 - p) g_c / n, the rare
// state p g_r, the first step 0.6; all 32 policies enumerated
static int test_rare_gaps(void) {
    linmdp m;
    rlhf_err err;
    double p = 0.05, gr = 0.6, gc = 0.4;
    CHECK(linmdp_rare(&m, 3, p, gr, gc, 1, &err) == 0);
    int pols[64 * 10], K, opt[10];
    CHECK(linmdp_policies_all(&m, 64, pols, &K, &err) == 0);
    CHECK(K == 32);
    double vstar = linmdp_optimal(&m, opt);
    for (int k = 0; k < K; k++) {
        const int *q = pols + k * 10;
        double want = q[0] != opt[0] ? 0.6 : 0;
        for (int s = 1; s <= 4; s++)
            if (q[5 + s] != opt[5 + s]) want += s == 4 ? p * gr : (1 - p) * gc / 3;
        CHECK_CLOSE(vstar - linmdp_value_dp(&m, q), want, 1e-12, 0);
    }
    CHECK(linmdp_policies_all(&m, 16, pols, &K, &err) == -1 && strstr(err.msg, "32"));
    linmdp_free(&m);
    return 0;
}

static int best_of(const linmdp *m, int K, const int *pols, int HS) {
    int b = 0;
    for (int k = 1; k < K; k++)
        if (linmdp_value_dp(m, pols + k * HS) > linmdp_value_dp(m, pols + b * HS)) b = k;
    return b;
}

// FTPedel on random instances (policies near the optimum) and the rare one:
// the class's best survives, the choice is eps-optimal and certified
static int test_elimination_keeps_optimal(void) {
    rlhf_err err;
    for (int seed = 1; seed <= 3; seed++) {
        linmdp m;
        CHECK(linmdp_random(&m, 6, 2, 3, 4, 100 + seed, &err) == 0);
        rlhf_rng r;
        rng_seed(&r, seed);
        int K = 8, pols[8 * 18], active[8];
        linmdp_policies_random(&m, K, 0.3, &r, pols);
        linmdp_ftp_opts o;
        linmdp_ftp_defaults(&o);
        o.eps = 0.1;
        linmdp_ftp_result res;
        CHECK(linmdp_ftpedel(&m, K, pols, NULL, &o, &r, &res, active, &err) == 0);
        int b = best_of(&m, K, pols, 18);
        double gap =
            linmdp_value_dp(&m, pols + b * 18) - linmdp_value_dp(&m, pols + res.chosen * 18);
        CHECKF(active[b] && res.certified && gap <= o.eps && res.episodes > 0,
               "seed %d: best %d active %d, certified %d, gap %.4f, episodes %ld", seed, b,
               active[b], res.certified, gap, res.episodes);
        linmdp_free(&m);
    }
    linmdp m;
    CHECK(linmdp_rare(&m, 3, 0.1, 0.6, 0.4, 2, &err) == 0);
    int pols[64 * 10], K, active[64];
    CHECK(linmdp_policies_all(&m, 64, pols, &K, &err) == 0);
    rlhf_rng r;
    rng_seed(&r, 9);
    linmdp_ftp_opts o;
    linmdp_ftp_defaults(&o);
    o.eps = 0.04; // below the rare state's gap 0.06: it must be resolved
    linmdp_ftp_result res;
    CHECK(linmdp_ftpedel(&m, K, pols, NULL, &o, &r, &res, active, &err) == 0);
    int b = best_of(&m, K, pols, 10);
    CHECKF(res.chosen == b && res.survivors == 1 && res.certified, "chosen %d best %d surv %d",
           res.chosen, b, res.survivors);
    linmdp_free(&m);
    return 0;
}

// offline rows at the rare state cut the online episodes; offline rows alone
// (no budget) are not certified there; with full coverage and many rows the
// offline data alone certifies the optimal policy
static int test_offline_helps(void) {
    rlhf_err err;
    linmdp m; // 2 common states; rare state: p 0.02, gap 0.6 -> 0.012 in value
    CHECK(linmdp_rare(&m, 2, 0.02, 0.6, 0.9, 2, &err) == 0);
    int pols[16 * 8], K, S = m.S, HS = 8;
    CHECK(linmdp_policies_all(&m, 16, pols, &K, &err) == 0);
    int b = best_of(&m, K, pols, HS);
    double q[2 * 4 * 2] = {0}, qa[2 * 4 * 2] = {0};
    q[(S + S - 1) * 2] = q[(S + S - 1) * 2 + 1] = 1; // step 2, rare state, both actions
    for (int i = 0; i < 2; i++) {
        qa[i] = 1; // step 1 start state, and every state at step 2
        for (int s = 1; s < S; s++) qa[(S + s) * 2 + i] = 1;
    }
    linmdp_data Dr, Da;
    linmdp_data_init(&Dr, &m);
    linmdp_data_init(&Da, &m);
    rlhf_rng r;
    rng_seed(&r, 4);
    linmdp_offline(&m, q, 10000, &r, &Dr);
    linmdp_offline(&m, qa, 100000, &r, &Da);
    linmdp_ftp_opts o;
    linmdp_ftp_defaults(&o);
    o.eps = 0.008;
    linmdp_ftp_result on, ft, off, full;
    CHECK(linmdp_ftpedel(&m, K, pols, NULL, &o, &r, &on, NULL, &err) == 0);
    CHECK(linmdp_ftpedel(&m, K, pols, &Dr, &o, &r, &ft, NULL, &err) == 0);
    o.max_episodes = 0;
    CHECK(linmdp_ftpedel(&m, K, pols, &Dr, &o, &r, &off, NULL, &err) == 0);
    CHECK(linmdp_ftpedel(&m, K, pols, &Da, &o, &r, &full, NULL, &err) == 0);
    CHECKF(on.certified && on.chosen == b, "online-only: certified %d chosen %d best %d",
           on.certified, on.chosen, b);
    CHECKF(ft.certified && ft.chosen == b && ft.episodes * 5 < on.episodes,
           "online-only %ld episodes, with the rare rows %ld (chosen %d, best %d)", on.episodes,
           ft.episodes, ft.chosen, b);
    CHECKF(!off.certified && off.episodes == 0, "offline-only (rare rows) certified %d",
           off.certified);
    CHECKF(full.certified && full.chosen == b && full.episodes == 0,
           "offline-only (full coverage): certified %d chosen %d", full.certified, full.chosen);
    linmdp_data_free(&Dr), linmdp_data_free(&Da), linmdp_free(&m);
    return 0;
}

static int test_refusals(void) {
    rlhf_err err;
    linmdp m;
    CHECK(linmdp_random(&m, 1, 2, 2, 2, 1, &err) == -1 && strstr(err.msg, "S=1"));
    CHECK(linmdp_rare(&m, 3, 1.5, 0.6, 0.4, 1, &err) == -1 && strstr(err.msg, "p_rare 1.5"));
    CHECK(linmdp_random(&m, 3, 2, 2, 2, 1, &err) == 0);
    int pols[12] = {0};
    linmdp_ftp_opts o;
    linmdp_ftp_defaults(&o);
    o.eps = 0;
    linmdp_ftp_result res;
    rlhf_rng r;
    rng_seed(&r, 1);
    CHECK(linmdp_ftpedel(&m, 1, pols, NULL, &o, &r, &res, NULL, &err) == -1 &&
          strstr(err.msg, "eps > 0 (0)"));
    linmdp_free(&m);
    return 0;
}

int main(void) {
    RUN(test_value_dp_vs_mc);
    RUN(test_rare_gaps);
    RUN(test_elimination_keeps_optimal);
    RUN(test_offline_helps);
    RUN(test_refusals);
    return test_total_fail_ ? 1 : 0;
}
