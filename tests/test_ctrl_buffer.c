// ctrl/buffer: the ring, sampling (reproducible, in range, exact mixed counts),
// Monte-Carlo returns against a hand computation, observation normalisation,
// reward affine, episode returns, and the checkpoint snapshot round trip.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/buffer.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "test.h"

// adds a row whose observation is (v, -v), action (v/2), next obs (v+1, -v-1)
static void add_row(ctrl_transitions *t, float v, float r, int term, int tout) {
    float o[2] = {v, -v}, a[1] = {v / 2}, nx[2] = {v + 1, -v - 1};
    ctrl_buffer_add(t, o, a, r, nx, term, tout, 10 * v);
}

static int test_ring_overwrites_oldest(void) {
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, 2, 1, 4, 1);
    for (int i = 0; i < 3; i++) add_row(&t, (float)i, 0, 0, 0);
    CHECK(t.n == 3 && t.next == 3);
    for (int i = 3; i < 6; i++) add_row(&t, (float)i, (float)i, i == 4, i == 5);
    CHECK(t.n == 4 && t.next == 2);
    // storage: rows 4, 5, 2, 3 (4 and 5 overwrote 0 and 1)
    float want[4] = {4, 5, 2, 3};
    for (int i = 0; i < 4; i++) {
        CHECK(t.obs[2 * i] == want[i] && t.obs[2 * i + 1] == -want[i]);
        CHECK(t.next_obs[2 * i] == want[i] + 1 && t.act[i] == want[i] / 2);
        CHECK(t.cost[i] == 10 * want[i]);
    }
    CHECK(t.terminal[0] == 1 && t.timeout[1] == 1 && t.terminal[1] == 0 && t.timeout[0] == 0);
    add_row(&t, 6, 0, 0, 0);
    CHECK(t.obs[4] == 6 && t.next == 3);
    ctrl_transitions_free(&t);
    return 0;
}

static int test_sample_reproducible_and_in_range(void) {
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, 2, 1, 50, 0);
    for (int i = 0; i < 37; i++) add_row(&t, (float)i, 0.5f * i, i % 5 == 4, 0);
    ctrl_transitions_mc_returns(&t, 0.9f, 0);
    ctrl_batch a, b;
    ctrl_batch_alloc(&a, 512, 2, 1);
    ctrl_batch_alloc(&b, 512, 2, 1);
    rlhf_rng r1, r2;
    rng_seed(&r1, 7);
    rng_seed(&r2, 7);
    ctrl_sample(&t, &a, &r1);
    ctrl_sample(&t, &b, &r2);
    CHECK(memcmp(a.obs, b.obs, sizeof(float) * 1024) == 0);
    CHECK(memcmp(a.rew, b.rew, sizeof(float) * 512) == 0);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0);
    int seen[37] = {0};
    for (int j = 0; j < 512; j++) {
        float v = a.obs[2 * j];
        int i = (int)v;
        CHECKF(v == i && i >= 0 && i < 37, "row %d obs %g", j, v);
        if (i < 0 || i >= 37) continue;
        seen[i]++;
        // the row's fields travel together
        CHECK(a.obs[2 * j + 1] == -v && a.next_obs[2 * j] == v + 1 && a.act[j] == v / 2);
        CHECK(a.rew[j] == 0.5f * i && a.done[j] == (i % 5 == 4 ? 1.0f : 0.0f));
        CHECK(a.mc_return[j] == t.mc_return[i] && a.cost[j] == 0.0f);
    }
    // 512 draws over 37 rows: each expected ~13.8; all hit, none wildly over
    for (int i = 0; i < 37; i++)
        CHECKF(seen[i] >= 2 && seen[i] <= 35, "row %d drawn %d times", i, seen[i]);
    // a different seed gives a different batch
    rng_seed(&r2, 8);
    ctrl_sample(&t, &b, &r2);
    CHECK(memcmp(a.obs, b.obs, sizeof(float) * 1024) != 0);
    ctrl_batch_free(&a);
    ctrl_batch_free(&b);
    ctrl_transitions_free(&t);
    return 0;
}

static int test_mixed_ratio_exact_counts(void) {
    ctrl_transitions off, on, empty;
    ctrl_transitions_alloc(&off, 2, 1, 20, 0);
    ctrl_transitions_alloc(&on, 2, 1, 20, 0);
    ctrl_transitions_alloc(&empty, 2, 1, 5, 0);
    for (int i = 0; i < 20; i++) add_row(&off, -1.0f - i, 0, 0, 0); // offline rows negative
    for (int i = 0; i < 9; i++) add_row(&on, 1.0f + i, 0, 0, 0);    // online rows positive
    ctrl_batch b;
    ctrl_batch_alloc(&b, 10, 2, 1);
    rlhf_rng rng;
    rng_seed(&rng, 1);
    struct {
        float ratio;
        const ctrl_transitions *off, *on;
        int want;
    } cases[] = {{0.5f, &off, &on, 5},   {0.25f, &off, &on, 3}, {0.24f, &off, &on, 2},
                 {0.0f, &off, &on, 0},   {1.0f, &off, &on, 10}, {0.5f, &off, &empty, 10},
                 {0.5f, &empty, &on, 0}, {0.7f, NULL, &on, 0},  {0.3f, &off, NULL, 10}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        CHECK(ctrl_mixed_offline_count(cases[c].off, cases[c].on, cases[c].ratio, 10) ==
              cases[c].want);
        ctrl_sample_mixed(cases[c].off, cases[c].on, cases[c].ratio, &b, &rng);
        for (int j = 0; j < 10; j++)
            CHECKF((b.obs[2 * j] < 0) == (j < cases[c].want), "case %zu row %d obs %g", c, j,
                   b.obs[2 * j]);
    }
    // mixed sampling is reproducible and draws the offline rows first
    rlhf_rng r1, r2;
    rng_seed(&r1, 3);
    rng_seed(&r2, 3);
    ctrl_batch c;
    ctrl_batch_alloc(&c, 10, 2, 1);
    ctrl_sample_mixed(&off, &on, 0.5f, &b, &r1);
    ctrl_sample_mixed(&off, &on, 0.5f, &c, &r2);
    CHECK(memcmp(b.obs, c.obs, sizeof(float) * 20) == 0);
    ctrl_batch_free(&c);
    ctrl_batch_free(&b);
    ctrl_transitions_free(&off);
    ctrl_transitions_free(&on);
    ctrl_transitions_free(&empty);
    return 0;
}

static int test_mc_returns_by_hand(void) {
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, 2, 1, 10, 0);
    // episode 1: r 1,2,3 ending terminal; episode 2: r 4,5 ending by timeout;
    // then an unfinished episode: r 6
    add_row(&t, 0, 1, 0, 0);
    add_row(&t, 1, 2, 0, 0);
    add_row(&t, 2, 3, 1, 0);
    add_row(&t, 3, 4, 0, 0);
    add_row(&t, 4, 5, 0, 1);
    add_row(&t, 5, 6, 0, 0);
    CHECK(t.mc_return == NULL);
    ctrl_transitions_mc_returns(&t, 0.9f, 0);
    float plain[6] = {1 + 0.9f * (2 + 0.9f * 3), 2 + 0.9f * 3, 3, 4 + 0.9f * 5, 5, 6};
    for (int i = 0; i < 6; i++) CHECK_CLOSE(t.mc_return[i], plain[i], 1e-5, 1e-6);
    // timeout bootstrapped: the timeout row is worth 5 / (1 - 0.9) = 50
    ctrl_transitions_mc_returns(&t, 0.9f, 1);
    float boot[6] = {plain[0], plain[1], 3, 4 + 0.9f * 50, 50, 6};
    for (int i = 0; i < 6; i++) CHECK_CLOSE(t.mc_return[i], boot[i], 1e-4, 1e-6);
    // Cal-QL's sparse rule: an episode whose last reward is the failure reward
    // is worth it forever on every row; others as plain
    ctrl_transitions_mc_returns_sparse(&t, 0.9f, 5.0f);
    float sparse[6] = {plain[0], plain[1], 3, 50, 50, 6};
    for (int i = 0; i < 6; i++) CHECK_CLOSE(t.mc_return[i], sparse[i], 1e-4, 1e-6);
    // in a wrapped ring, episodes are followed oldest first across the wrap:
    // 4 more rows: r 7 (continues the unfinished episode), 8 terminal, 9, 10 timeout
    add_row(&t, 6, 7, 0, 0);
    add_row(&t, 7, 8, 1, 0);
    add_row(&t, 8, 9, 0, 0);
    add_row(&t, 9, 10, 0, 1);
    add_row(&t, 10, 11, 0, 0);     // overwrites row 0 (r 1): the ring is rows 1..10
    CHECK(t.mc_return[0] == 0.0f); // a new row's mc_return starts at 0
    ctrl_transitions_mc_returns(&t, 0.5f, 0);
    // storage 0: r 11 (newest, unfinished) -> 11; storage 1: r 2, then 3 terminal
    CHECK_CLOSE(t.mc_return[0], 11, 1e-6, 0);
    CHECK_CLOSE(t.mc_return[1], 2 + 0.5 * 3, 1e-6, 0);
    CHECK_CLOSE(t.mc_return[5], 6 + 0.5 * (7 + 0.5 * 8), 1e-6, 0);
    CHECK_CLOSE(t.mc_return[8], 9 + 0.5 * 10, 1e-6, 0);
    CHECK_CLOSE(t.mc_return[9], 10, 1e-6, 0);
    ctrl_transitions_free(&t);
    return 0;
}

static int test_obs_norm(void) {
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, 2, 1, 8, 0);
    float xs[4] = {1, 2, 4, 9}; // column 0 = x, column 1 = -x
    for (int i = 0; i < 4; i++) add_row(&t, xs[i], 0, 0, 0);
    ctrl_obs_norm nrm;
    ctrl_obs_norm_fit(&nrm, &t, 1e-3f);
    // mean 4, population variance (9 + 4 + 0 + 25) / 4 = 9.5
    CHECK_CLOSE(nrm.mean[0], 4, 1e-6, 0);
    CHECK_CLOSE(nrm.mean[1], -4, 1e-6, 0);
    CHECK_CLOSE(nrm.std[0], sqrt(9.5) + 1e-3, 1e-6, 0);
    CHECK_CLOSE(nrm.std[1], sqrt(9.5) + 1e-3, 1e-6, 0);
    float x[4] = {4, -4, 9, 0};
    ctrl_obs_norm_apply(&nrm, x, 2);
    CHECK_CLOSE(x[0], 0, 1e-7, 0);
    CHECK_CLOSE(x[2], 5 / (sqrt(9.5) + 1e-3), 1e-6, 0);
    CHECK_CLOSE(x[3], 4 / (sqrt(9.5) + 1e-3), 1e-6, 0);
    // a constant column divides by eps, never by 0
    ctrl_transitions c;
    ctrl_transitions_alloc(&c, 2, 1, 3, 0);
    for (int i = 0; i < 3; i++) add_row(&c, 7, 0, 0, 0);
    ctrl_obs_norm n2;
    ctrl_obs_norm_fit(&n2, &c, 1e-3f);
    CHECK_CLOSE(n2.std[0], 1e-3, 1e-9, 0);
    ctrl_obs_norm_free(&n2);
    ctrl_obs_norm_free(&nrm);
    ctrl_obs_norm_identity(&nrm, 2);
    float y[2] = {3, -5};
    ctrl_obs_norm_apply(&nrm, y, 1);
    CHECK(y[0] == 3 && y[1] == -5);
    ctrl_obs_norm_free(&nrm);
    ctrl_transitions_free(&c);
    ctrl_transitions_free(&t);
    return 0;
}

static int test_episode_returns_and_affine(void) {
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, 2, 1, 10, 0);
    float r[7] = {1, 2, 3, 4, 5, 6, 7};
    int term[7] = {0, 1, 0, 0, 0, 0, 0}, tout[7] = {0, 0, 0, 0, 1, 0, 0};
    for (int i = 0; i < 7; i++) add_row(&t, (float)i, r[i], term[i], tout[i]);
    float out[4] = {0};
    // episodes 1+2 (terminal), 3+4+5 (timeout); 6+7 unfinished is left out
    CHECK(ctrl_episode_returns(&t, out, 4) == 2);
    CHECK(out[0] == 3 && out[1] == 12);
    float one[1] = {0};
    CHECK(ctrl_episode_returns(&t, one, 1) == 2 && one[0] == 3);
    ctrl_reward_affine(&t, 2, -1);
    for (int i = 0; i < 7; i++) CHECK(t.rew[i] == 2 * r[i] - 1);
    ctrl_transitions_free(&t);
    return 0;
}

// whole episodes drawn: lengths 3 (terminal), 2 (timeout), 4 (timeout), then 2
// unfinished rows that are never drawn; each draw is whole episodes in order
static int test_episodes_subset(void) {
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, 2, 1, 11, 0);
    int term[11] = {0, 0, 1}, tout[11] = {0, 0, 0, 0, 1, 0, 0, 0, 1};
    for (int i = 0; i < 11; i++) add_row(&t, (float)i, (float)i, term[i], tout[i]);
    static const int start[3] = {0, 3, 5}, len[3] = {3, 2, 4};
    rlhf_rng rng;
    rng_seed(&rng, 7);
    int seen[3] = {0};
    for (int trial = 0; trial < 60; trial++) {
        ctrl_transitions s = {0};
        long ne = -1;
        rlhf_err err;
        CHECK(ctrl_transitions_episodes(&t, 2, &rng, &s, &ne, &err) == 0 && ne == 3);
        // walk s: each piece must be one whole episode, in increasing order
        long i = 0;
        int last = -1, pieces = 0;
        while (i < s.n) {
            int e = -1;
            for (int k = 0; k < 3; k++)
                if (s.rew[i] == (float)start[k]) e = k;
            CHECK(e > last);
            if (e <= last) break;
            for (int j = 0; j < len[e]; j++) {
                CHECK(i + j < s.n && s.rew[i + j] == (float)(start[e] + j) &&
                      s.obs[(i + j) * 2] == (float)(start[e] + j));
                CHECK(s.terminal[i + j] == term[start[e] + j] &&
                      s.timeout[i + j] == tout[start[e] + j]);
            }
            seen[e]++, last = e, i += len[e], pieces++;
        }
        CHECK(pieces == 2 && i == s.n);
        ctrl_transitions_free(&s);
    }
    CHECK(seen[0] > 10 && seen[1] > 10 && seen[2] > 10); // every episode gets drawn
    ctrl_transitions s = {0};
    rlhf_err err;
    CHECK(ctrl_transitions_episodes(&t, 3, &rng, &s, NULL, &err) == 0 && s.n == 9);
    for (long i = 0; i < s.n; i++) CHECK(s.rew[i] == (float)i); // all, in order, no tail
    ctrl_transitions_free(&s);
    CHECK(ctrl_transitions_episodes(&t, 4, &rng, &s, NULL, &err) == -1 &&
          strstr(err.msg, "3 complete episodes"));
    CHECK(ctrl_transitions_episodes(&t, 0, &rng, &s, NULL, &err) == -1);
    ctrl_transitions_free(&t);
    return 0;
}

static int test_checkpoint_round_trip(void) {
    const char *dir = test_tmpdir();
    CHECK(dir != NULL);
    if (!dir) return 0;
    char path[512];
    snprintf(path, sizeof path, "%s/buffer.safetensors", dir);
    ctrl_transitions t, u;
    ctrl_transitions_alloc(&t, 2, 1, 6, 1);
    for (int i = 0; i < 9; i++) add_row(&t, (float)i, 0.5f * i, i == 3, i == 6);
    ctrl_transitions_mc_returns(&t, 0.9f, 0);
    rlhf_err err = {{0}};
    CHECKF(ctrl_transitions_save(path, &t, &err) == 0, "%s", err.msg);
    CHECKF(ctrl_transitions_load(path, &u, &err) == 0, "%s", err.msg);
    CHECK(u.n == t.n && u.cap == t.cap && u.next == t.next && u.obs_dim == 2 && u.act_dim == 1);
    if (u.n == t.n && u.cap == t.cap) {
        size_t n = (size_t)t.n;
        CHECK(memcmp(u.obs, t.obs, 8 * n) == 0 && memcmp(u.next_obs, t.next_obs, 8 * n) == 0);
        CHECK(memcmp(u.act, t.act, 4 * n) == 0 && memcmp(u.rew, t.rew, 4 * n) == 0);
        CHECK(memcmp(u.terminal, t.terminal, n) == 0 && memcmp(u.timeout, t.timeout, n) == 0);
        CHECK(u.cost && memcmp(u.cost, t.cost, 4 * n) == 0);
        CHECK(u.mc_return && memcmp(u.mc_return, t.mc_return, 4 * n) == 0);
        // resumed: the same adds and the same samples as the original
        add_row(&t, 20, 1, 0, 0);
        add_row(&u, 20, 1, 0, 0);
        CHECK(memcmp(u.obs, t.obs, 8 * n) == 0 && u.next == t.next);
        ctrl_batch a, b;
        ctrl_batch_alloc(&a, 16, 2, 1);
        ctrl_batch_alloc(&b, 16, 2, 1);
        rlhf_rng r1, r2;
        rng_seed(&r1, 5);
        rng_seed(&r2, 5);
        ctrl_sample(&t, &a, &r1);
        ctrl_sample(&u, &b, &r2);
        CHECK(memcmp(a.obs, b.obs, sizeof(float) * 32) == 0 && memcmp(a.cost, b.cost, 64) == 0);
        ctrl_batch_free(&a);
        ctrl_batch_free(&b);
    }
    ctrl_transitions_free(&u);
    // a partly filled buffer without costs or mc returns
    ctrl_transitions p;
    ctrl_transitions_alloc(&p, 2, 1, 6, 0);
    add_row(&p, 1, 1, 0, 0);
    add_row(&p, 2, 2, 0, 0);
    CHECKF(ctrl_transitions_save(path, &p, &err) == 0, "%s", err.msg);
    CHECKF(ctrl_transitions_load(path, &u, &err) == 0, "%s", err.msg);
    CHECK(u.n == 2 && u.cap == 6 && u.next == 2 && !u.cost && !u.mc_return && u.obs[2] == 2);
    ctrl_transitions_free(&u);
    ctrl_transitions_free(&p);
    // refused: a missing file, a safetensors file that is not a buffer, a bad `next`
    char other[512];
    snprintf(other, sizeof other, "%s/absent.safetensors", dir);
    CHECK(ctrl_transitions_load(other, &u, &err) == -1 && strstr(err.msg, "absent"));
    float x[2] = {1, 2};
    st_tensor_desc d = {"observations", ST_F32, 2, {1, 2}, x, ST_NONE};
    snprintf(other, sizeof other, "%s/other.safetensors", dir);
    CHECK(st_write(other, &d, 1, NULL, &err) == 0);
    CHECK(ctrl_transitions_load(other, &u, &err) == -1 && strstr(err.msg, "format"));
    const char *meta[] = {"format", "ctrl_transitions_v1", "cap", "4", "next", "3", NULL};
    st_tensor_desc d2[2] = {d, {"actions", ST_F32, 2, {1, 1}, x, ST_NONE}};
    CHECK(st_write(other, d2, 2, meta, &err) == 0);
    CHECK(ctrl_transitions_load(other, &u, &err) == -1 && strstr(err.msg, "next"));
    const char *meta2[] = {"format", "ctrl_transitions_v1", "cap", "4", "next", "1", NULL};
    CHECK(st_write(other, d2, 2, meta2, &err) == 0);
    CHECK(ctrl_transitions_load(other, &u, &err) == -1 && strstr(err.msg, "\"rewards\" missing"));
    CHECK(u.obs == NULL);
    ctrl_transitions_free(&t);
    remove_tree(dir);
    return 0;
}

int main(void) {
    RUN(test_ring_overwrites_oldest);
    RUN(test_sample_reproducible_and_in_range);
    RUN(test_mixed_ratio_exact_counts);
    RUN(test_mc_returns_by_hand);
    RUN(test_obs_norm);
    RUN(test_episode_returns_and_affine);
    RUN(test_episodes_subset);
    RUN(test_checkpoint_round_trip);
    TEST_EXIT();
}
