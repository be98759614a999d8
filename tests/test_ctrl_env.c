// ctrl/env: the classic-control tasks against dynamics written out again here
// from Gymnasium's definitions (pendulum.py, continuous_mountain_car.py,
// cartpole.py), the time limits, clipping, seeding, and the refusals (NaN
// actions, unknown names, external programs that misbehave).
#include <math.h>
#include <string.h>

#include "ctrl/env.h"
#include "test.h"

static ctrl_env *make(const char *name) {
    ctrl_env *e = NULL;
    rlhf_err err = {{0}};
    if (ctrl_env_make(name, &e, &err)) printf("  make %s: %s\n", name, err.msg);
    return e;
}

// ---- reference dynamics, written independently of src/ctrl/env_classic.c --

// Pendulum-v1: the cost uses the angle wrapped to [-pi, pi]; the new velocity
// (clipped to 8) moves the angle.
static void pendulum_ref(double *th, double *thdot, double u, double *reward) {
    double wrapped = atan2(sin(*th), cos(*th));
    *reward = -(wrapped * wrapped + 0.1 * *thdot * *thdot + 0.001 * u * u);
    double v = *thdot + 0.05 * (15.0 * sin(*th) + 3.0 * u); // 3g/(2l) = 15, 3/(ml^2) = 3
    v = fmax(-8.0, fmin(8.0, v));
    *th += 0.05 * v;
    *thdot = v;
}

// MountainCarContinuous-v0, state rounded to float32 after each step
static void mountaincar_ref(double *pos, double *vel, double f, double *reward, int *done) {
    double v = *vel + 0.0015 * f - 0.0025 * cos(3.0 * *pos);
    v = fmax(-0.07, fmin(0.07, v));
    double p = *pos + v;
    p = fmax(-1.2, fmin(0.6, p));
    if (p <= -1.2 && v < 0) v = 0;
    *done = p >= 0.45 && v >= 0;
    *reward = (*done ? 100.0 : 0.0) - 0.1 * f * f;
    *pos = (float)p;
    *vel = (float)v;
}

// CartPole (Barto, Sutton & Anderson 1983 as in cartpole.py), force 10 * a
static void cartpole_ref(double *s, double a) {
    double F = 10.0 * a, mc = 1.0, mp = 0.1, l = 0.5, g = 9.8, M = mc + mp;
    double c = cos(s[2]), sn = sin(s[2]);
    double tmp = (F + mp * l * s[3] * s[3] * sn) / M;
    double tacc = (g * sn - c * tmp) / (l * (4.0 / 3.0 - mp * c * c / M));
    double xacc = tmp - mp * l * tacc * c / M;
    double n[4] = {s[0] + 0.02 * s[1], s[1] + 0.02 * xacc, s[2] + 0.02 * s[3], s[3] + 0.02 * tacc};
    memcpy(s, n, sizeof n);
}

// ------------------------------------------------------------------ cases --

static int pendulum_matches_reference(void) {
    ctrl_env *e = make("pendulum");
    CHECK(e && e->obs_dim == 3 && e->act_dim == 1 && e->max_episode_steps == 200);
    CHECK(e && e->act_low[0] == -2.0f && e->act_high[0] == 2.0f);
    if (!e) return 0;
    rlhf_err err;
    float obs[3];
    // start 1: a swing; start 2: an angle past 2 pi with speed near the limit
    double starts[2][2] = {{2.5, -0.7}, {7.3, 7.9}};
    float actions[5] = {1.3f, -2.0f, 0.4f, 5.0f, -0.25f}; // 5 is clipped to 2
    for (int k = 0; k < 2; k++) {
        CHECK(ctrl_env_classic_set_state(e, starts[k], 2, obs, &err) == 0);
        double th = starts[k][0], thdot = starts[k][1];
        CHECK_CLOSE(obs[0], cos(th), 1e-6, 0);
        for (int i = 0; i < 5; i++) {
            ctrl_step_info info;
            CHECK(ctrl_env_step(e, &actions[i], obs, &info, &err) == 0);
            double r;
            pendulum_ref(&th, &thdot, fmax(-2.0, fmin(2.0, actions[i])), &r);
            CHECK_CLOSE(info.reward, r, 1e-6, 1e-6);
            CHECK_CLOSE(obs[0], cos(th), 1e-6, 0);
            CHECK_CLOSE(obs[1], sin(th), 1e-6, 0);
            CHECK_CLOSE(obs[2], thdot, 1e-6, 1e-6);
            CHECK(!info.terminated && info.cost == 0);
        }
        if (k == 1) CHECK(thdot == 8.0); // the speed limit was reached on this start
    }
    ctrl_env_free(e);
    return 0;
}

static int mountaincar_matches_reference(void) {
    ctrl_env *e = make("mountaincar");
    CHECK(e && e->obs_dim == 2 && e->act_dim == 1 && e->max_episode_steps == 999);
    if (!e) return 0;
    rlhf_err err;
    float obs[2];
    // a valley start, the left wall (inelastic), and a start one step from the goal
    double starts[3][2] = {{-0.5, 0.01}, {-1.19, -0.065}, {0.44, 0.05}};
    float actions[4] = {0.7f, -1.0f, 3.0f, 0.2f};
    for (int k = 0; k < 3; k++) {
        CHECK(ctrl_env_classic_set_state(e, starts[k], 2, obs, &err) == 0);
        double p = starts[k][0], v = starts[k][1];
        for (int i = 0; i < 4; i++) {
            ctrl_step_info info;
            float a = k == 1 ? -1.0f : actions[i];
            CHECK(ctrl_env_step(e, &a, obs, &info, &err) == 0);
            double r;
            int done;
            mountaincar_ref(&p, &v, fmax(-1.0, fmin(1.0, a)), &r, &done);
            CHECK_CLOSE(info.reward, r, 1e-6, 1e-6);
            CHECK_CLOSE(obs[0], p, 1e-6, 0);
            CHECK_CLOSE(obs[1], v, 1e-6, 0);
            CHECK(info.terminated == done);
            if (k == 1 && i == 0) CHECK(obs[0] == -1.2f && obs[1] == 0.0f); // stopped by the wall
            if (k == 2 && i == 0) CHECK(done && info.reward > 99);          // reached the goal
            if (done) break;
        }
    }
    ctrl_env_free(e);
    return 0;
}

static int cartpole_matches_reference(void) {
    ctrl_env *e = make("cartpole");
    CHECK(e && e->obs_dim == 4 && e->act_dim == 1 && e->max_episode_steps == 500);
    if (!e) return 0;
    rlhf_err err;
    float obs[4];
    double s0[4] = {0.1, -0.3, 0.05, 0.4}, s[4];
    memcpy(s, s0, sizeof s);
    CHECK(ctrl_env_classic_set_state(e, s0, 4, obs, &err) == 0);
    float actions[5] = {0.5f, -1.0f, 0.8f, -4.0f, 0.0f};
    for (int i = 0; i < 5; i++) {
        ctrl_step_info info;
        CHECK(ctrl_env_step(e, &actions[i], obs, &info, &err) == 0);
        cartpole_ref(s, fmax(-1.0, fmin(1.0, actions[i])));
        for (int j = 0; j < 4; j++) CHECK_CLOSE(obs[j], s[j], 1e-6, 1e-6);
        CHECK(info.reward == 1.0f && !info.terminated);
    }
    // the pole past 12 degrees after one step: terminated, reward 1; then 0
    double falling[4] = {0.0, 0.0, 0.2, 1.0};
    CHECK(ctrl_env_classic_set_state(e, falling, 4, obs, &err) == 0);
    ctrl_step_info info;
    float a = 0;
    CHECK(ctrl_env_step(e, &a, obs, &info, &err) == 0);
    CHECK(info.terminated && info.reward == 1.0f && !info.truncated);
    CHECK(ctrl_env_step(e, &a, obs, &info, &err) == 0);
    CHECK(info.terminated && info.reward == 0.0f);
    // the cart past 2.4
    double off[4] = {2.39, 1.0, 0.0, 0.0};
    CHECK(ctrl_env_classic_set_state(e, off, 4, obs, &err) == 0);
    CHECK(ctrl_env_step(e, &a, obs, &info, &err) == 0);
    CHECK(info.terminated && obs[0] > 2.4f);
    ctrl_env_free(e);
    return 0;
}

// time limits: truncated exactly at the limit and not before; never together
// with terminated
static int time_limits(void) {
    const char *names[3] = {"pendulum", "mountaincar", "cartpole"};
    int limits[3] = {200, 999, 500};
    for (int k = 0; k < 3; k++) {
        ctrl_env *e = make(names[k]);
        if (!e) continue;
        rlhf_err err;
        float obs[4];
        CHECK(ctrl_env_reset(e, obs, &err) == 0);
        int t = 0, trunc_at = -1, term = 0;
        for (; t < 1200; t++) {
            float a;
            // cartpole: a PD controller keeps the pole up; mountaincar: no push
            // never leaves the valley; pendulum: anything
            if (k == 2)
                a = 10.0f * obs[2] + 2.0f * obs[3] + 0.5f * obs[0] + 1.0f * obs[1];
            else
                a = k == 0 ? 0.3f : 0.0f;
            ctrl_step_info info;
            CHECK(ctrl_env_step(e, &a, obs, &info, &err) == 0);
            term |= info.terminated;
            if (info.truncated) {
                trunc_at = t + 1;
                CHECK(!info.terminated);
                break;
            }
            if (info.terminated) break;
        }
        CHECKF(trunc_at == limits[k] && !term, "%s: truncated at %d (terminated %d)", names[k],
               trunc_at, term);
        CHECK(e->t == limits[k]);
        CHECK(ctrl_env_reset(e, obs, &err) == 0 && e->t == 0);
        ctrl_env_free(e);
    }
    // the goal reached at the same step as the limit: terminated, not truncated
    ctrl_env *e = make("mountaincar");
    if (!e) return 0;
    rlhf_err err;
    float obs[2], a = 1.0f;
    ctrl_step_info info;
    CHECK(ctrl_env_reset(e, obs, &err) == 0);
    e->t = 998;
    double near[2] = {0.44, 0.05};
    CHECK(ctrl_env_classic_set_state(e, near, 2, obs, &err) == 0);
    CHECK(ctrl_env_step(e, &a, obs, &info, &err) == 0);
    CHECK(info.terminated && !info.truncated && e->t == 999);
    ctrl_env_free(e);
    return 0;
}

// out-of-range actions act as the bound (Gymnasium's ClipAction), in the
// dynamics and in the reward
static int actions_are_clipped(void) {
    const char *names[3] = {"pendulum", "mountaincar", "cartpole"};
    double states[3][4] = {{1.0, 0.5}, {-0.5, 0.01}, {0.0, 0.1, 0.02, -0.1}};
    int n[3] = {2, 2, 4};
    for (int k = 0; k < 3; k++) {
        ctrl_env *e = make(names[k]);
        if (!e) continue;
        for (int side = 0; side < 2; side++) {
            float out_of_range = side ? 100.0f : -100.0f;
            float bound = side ? e->act_high[0] : e->act_low[0];
            float o1[4], o2[4];
            ctrl_step_info i1, i2;
            rlhf_err err;
            ctrl_env_classic_set_state(e, states[k], n[k], o1, &err);
            CHECK(ctrl_env_step(e, &out_of_range, o1, &i1, &err) == 0);
            ctrl_env_classic_set_state(e, states[k], n[k], o2, &err);
            CHECK(ctrl_env_step(e, &bound, o2, &i2, &err) == 0);
            CHECK(memcmp(o1, o2, sizeof(float) * (size_t)e->obs_dim) == 0);
            CHECKF(i1.reward == i2.reward, "%s: %g vs %g", names[k], i1.reward, i2.reward);
        }
        ctrl_env_free(e);
    }
    return 0;
}

// an episode depends only on the seed and the actions; initial states come
// from Gymnasium's ranges
static int seeding_and_initial_states(void) {
    const char *names[3] = {"pendulum", "mountaincar", "cartpole"};
    for (int k = 0; k < 3; k++) {
        ctrl_env *a = make(names[k]), *b = make(names[k]);
        if (!a || !b) continue;
        rlhf_err err;
        float oa[4], ob[4];
        ctrl_env_seed(a, 7);
        ctrl_env_seed(b, 7);
        for (int ep = 0; ep < 2; ep++) {
            CHECK(ctrl_env_reset(a, oa, &err) == 0 && ctrl_env_reset(b, ob, &err) == 0);
            CHECK(memcmp(oa, ob, sizeof(float) * (size_t)a->obs_dim) == 0);
            for (int t = 0; t < 30; t++) {
                float act = 0.7f * sinf((float)t);
                ctrl_step_info ia, ib;
                ctrl_env_step(a, &act, oa, &ia, &err);
                ctrl_env_step(b, &act, ob, &ib, &err);
                CHECK(memcmp(oa, ob, sizeof(float) * (size_t)a->obs_dim) == 0 &&
                      ia.reward == ib.reward);
            }
        }
        ctrl_env_seed(b, 8);
        ctrl_env_seed(a, 7);
        CHECK(ctrl_env_reset(a, oa, &err) == 0 && ctrl_env_reset(b, ob, &err) == 0);
        CHECK(memcmp(oa, ob, sizeof(float) * (size_t)a->obs_dim) != 0);
        // the initial-state distribution: bounds and rough means over many resets
        double lo[4], hi[4], mean[4] = {0};
        for (int i = 0; i < 4; i++) lo[i] = 1e9, hi[i] = -1e9;
        int N = 2000;
        for (int r = 0; r < N; r++) {
            ctrl_env_reset(a, oa, &err);
            double s[4] = {oa[0], oa[1], k == 2 ? oa[2] : 0, k == 2 ? oa[3] : 0};
            if (k == 0) s[0] = atan2(oa[1], oa[0]), s[1] = oa[2]; // pendulum: th, thdot
            for (int i = 0; i < 4; i++) {
                lo[i] = fmin(lo[i], s[i]), hi[i] = fmax(hi[i], s[i]);
                mean[i] += s[i] / N;
            }
        }
        if (k == 0) {
            CHECK(lo[0] >= -M_PI - 1e-6 && hi[0] <= M_PI + 1e-6 && hi[0] - lo[0] > 6.0);
            CHECK(lo[1] >= -1 && hi[1] <= 1 && hi[1] - lo[1] > 1.9);
            CHECK(fabs(mean[0]) < 0.2 && fabs(mean[1]) < 0.06);
        } else if (k == 1) {
            CHECK(lo[0] >= -0.6 - 1e-7 && hi[0] <= -0.4 + 1e-7 && hi[0] - lo[0] > 0.19);
            CHECK(fabs(mean[0] + 0.5) < 0.01 && lo[1] == 0 && hi[1] == 0);
        } else {
            for (int i = 0; i < 4; i++) {
                CHECK(lo[i] >= -0.05 - 1e-7 && hi[i] <= 0.05 + 1e-7 && hi[i] - lo[i] > 0.095);
                CHECK(fabs(mean[i]) < 0.003);
            }
        }
        ctrl_env_free(a);
        ctrl_env_free(b);
    }
    return 0;
}

static int refusals(void) {
    rlhf_err err = {{0}};
    ctrl_env *e = make("pendulum");
    if (!e) return 0;
    float obs[3], a;
    ctrl_step_info info;
    CHECK(ctrl_env_reset(e, obs, &err) == 0);
    a = NAN;
    CHECK(ctrl_env_step(e, &a, obs, &info, &err) == -1);
    CHECKF(strstr(err.msg, "action[0]") && strstr(err.msg, "pendulum"), "%s", err.msg);
    a = INFINITY;
    CHECK(ctrl_env_step(e, &a, obs, &info, &err) == -1 && e->t == 0);
    ctrl_env_free(e);

    e = make("cartpole"); // stepping before any reset
    if (e) {
        a = 0;
        CHECK(ctrl_env_step(e, &a, obs, &info, &err) == -1 && strstr(err.msg, "before reset"));
        ctrl_env_free(e);
    }

    ctrl_env *bad = NULL;
    CHECK(ctrl_env_make("Pendulum", &bad, &err) == -1 && bad == NULL);
    CHECKF(strstr(err.msg, "unknown") && strstr(err.msg, "pendulum, mountaincar, cartpole") &&
               strstr(err.msg, "cmd:"),
           "%s", err.msg);
    CHECK(ctrl_env_make("", &bad, &err) == -1);
    CHECK(ctrl_env_make("cmd:", &bad, &err) == -1 && strstr(err.msg, "no program"));

    // locomotion: made when built with it, else a message saying what is missing
    if (ctrl_env_make("hopper", &bad, &err) == 0) {
        CHECK(bad->obs_dim > 0);
        ctrl_env_free(bad);
    } else {
        CHECKF(strstr(err.msg, "MuJoCo"), "%s", err.msg);
    }

    // set_state: classic tasks only, the right length
    e = make("mountaincar");
    if (e) {
        double s[4] = {0};
        CHECK(ctrl_env_classic_set_state(e, s, 4, obs, &err) == -1);
        ctrl_env_free(e);
    }
    return 0;
}

// external programs that misbehave at once: an error naming the program and
// the line, quickly (tests/ctrl_env_test.py covers the protocol itself)
static int external_refusals(void) {
    rlhf_err err = {{0}};
    ctrl_env *e = NULL;
    double t0 = time_now();
    CHECK(ctrl_env_make("cmd:echo not json", &e, &err) == -1 && e == NULL);
    CHECKF(strstr(err.msg, "cmd:echo not json") && strstr(err.msg, "line 1") &&
               strstr(err.msg, "not a JSON object"),
           "%s", err.msg);
    CHECK(ctrl_env_make("cmd:exit 3", &e, &err) == -1);
    CHECKF(strstr(err.msg, "exited with status 3"), "%s", err.msg);
    CHECK(ctrl_env_make("cmd:/no/such/program", &e, &err) == -1);
    CHECKF(strstr(err.msg, "127"), "%s", err.msg);
    CHECK(ctrl_env_make("cmd:echo '{\"obs_dim\": 2, \"act_dim\": 1, \"act_low\": [-1], "
                        "\"act_high\": [1, 2]}'",
                        &e, &err) == -1);
    CHECKF(strstr(err.msg, "\"act_high\" has 2 numbers, expected 1"), "%s", err.msg);
    // a valid spaces line from a program that then exits: reset reports it
    CHECK(ctrl_env_make("cmd:echo '{\"obs_dim\": 2, \"act_dim\": 1, \"act_low\": [-1], "
                        "\"act_high\": [1], \"max_episode_steps\": 5}'",
                        &e, &err) == 0);
    if (e) {
        float obs[2];
        CHECK(e->obs_dim == 2 && e->act_dim == 1 && e->max_episode_steps == 5);
        CHECK(ctrl_env_reset(e, obs, &err) == -1);
        CHECKF(strstr(err.msg, "exited with status 0") || strstr(err.msg, "before reading"), "%s",
               err.msg);
        ctrl_env_free(e);
    }
    CHECK(time_now() - t0 < 10);
    return 0;
}

int main(void) {
    RUN(pendulum_matches_reference);
    RUN(mountaincar_matches_reference);
    RUN(cartpole_matches_reference);
    RUN(time_limits);
    RUN(actions_are_clipped);
    RUN(seeding_and_initial_states);
    RUN(refusals);
    RUN(external_refusals);
    TEST_EXIT();
}
