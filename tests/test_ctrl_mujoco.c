// ctrl/env_mujoco: the locomotion tasks against MuJoCo driven directly, with
// Gymnasium's v4 formulas written again here (hopper_v4.py, walker2d_v4.py,
// half_cheetah_v4.py); determinism; termination and truncation; model sanity
// (sizes and masses against Gymnasium's own models); H2O's gapped simulators
// (task:gravity=G,friction=F,joint_noise=S) against MuJoCo on a model with the
// gap made by hand.
#include "ctrl/env.h"
#include "ctrl/mjcf_models.h"
#include "test.h"

#ifndef RLHF_HAVE_MUJOCO

static int test_without_mujoco(void) {
    ctrl_env e = {0};
    rlhf_err err = {0};
    CHECK(ctrl_env_mujoco_make("hopper", &e, &err) == -1);
    CHECK(strstr(err.msg, "without MuJoCo") != NULL);
    return 0;
}

int main(void) {
    RUN(test_without_mujoco);
    return test_total_fail_ ? 1 : 0;
}

#else

#include <mujoco/mujoco.h>

typedef struct {
    const char *name;
    int nq, nv, nu, obs_dim, frame_skip;
    double timestep;
    // body masses (kg) of Gymnasium's model in body order, torso first: Gymnasium's
    // gymnasium/envs/mujoco/assets/{hopper,half_cheetah,walker2d}.xml as loaded by
    // MuJoCo 2.2.2 (mj_loadXML, m->body_mass), the files the v4 tasks use
    int nbody;
    double mass[8];
    double total;
} task_ref;

static const task_ref refs[] = {
    {"hopper", 6, 6, 3, 11, 4, 0.002, 4,
     {3.66519143, 4.05789051, 2.78135670, 5.31557477}, 15.82001341},
    {"halfcheetah", 9, 9, 6, 17, 5, 0.01, 7,
     {6.25020921, 1.54351464, 1.58744770, 1.09539749, 1.43807531, 1.20083682, 0.88451883},
     14.0},
    {"walker2d", 9, 9, 6, 17, 4, 0.002, 7,
     {3.66519143, 4.05789051, 2.78135670, 3.16672539, 4.05789051, 2.78135670, 3.16672539},
     23.67713663},
};

// our MJCF string loaded here independently of env_mujoco.c
// MuJoCo's model of an MJCF string, loaded here apart from env_mujoco.c
static mjModel *load_xml(const char *name, const char *xml) {
    mjVFS *vfs = calloc(1, sizeof *vfs);
    mj_defaultVFS(vfs);
    int n = (int)strlen(xml);
    mj_makeEmptyFileVFS(vfs, "m.xml", n);
    memcpy(vfs->filedata[mj_findFileVFS(vfs, "m.xml")], xml, (size_t)n);
    char msg[500] = "";
    mjModel *m = mj_loadXML("m.xml", vfs, msg, sizeof msg);
    if (!m) printf("  load %s: %s\n", name, msg);
    mj_deleteVFS(vfs);
    free(vfs);
    return m;
}

static mjModel *load_model(const char *name) {
    const char *xml = ctrl_mjcf_model(name);
    return xml ? load_xml(name, xml) : NULL;
}

static ctrl_env *make(const char *name, uint64_t seed) {
    ctrl_env *e = calloc(1, sizeof *e);
    rlhf_err err = {0};
    snprintf(e->name, sizeof e->name, "%s", name);
    if (ctrl_env_mujoco_make(name, e, &err)) {
        printf("  make %s: %s\n", name, err.msg);
        free(e);
        return NULL;
    }
    rng_seed(&e->rng, seed);
    return e;
}

static void drop(ctrl_env *e) {
    if (e) e->ops->free(e);
    free(e);
}

// Gymnasium v4's is_healthy, written from the v4 files
static int gym_healthy(const char *name, const mjModel *m, const mjData *d) {
    double z = d->qpos[1], angle = d->qpos[2];
    if (!strcmp(name, "hopper")) {
        for (int i = 2; i < m->nq + m->nv; i++) {
            double v = i < m->nq ? d->qpos[i] : d->qvel[i - m->nq];
            if (!(v > -100 && v < 100)) return 0;
        }
        return z > 0.7 && angle > -0.2 && angle < 0.2;
    }
    if (!strcmp(name, "walker2d")) return z > 0.8 && z < 2.0 && angle > -1.0 && angle < 1.0;
    return 1;
}

// (a) our env's reset and steps equal MuJoCo's own simulation of the same model,
// with the reset noise, observation, reward and termination computed here
static int test_step_matches_mujoco(void) {
    for (int t = 0; t < 3; t++) {
        const task_ref *r = &refs[t];
        int cheetah = !strcmp(r->name, "halfcheetah");
        ctrl_env *e = make(r->name, 1234 + t);
        mjModel *m = load_model(r->name);
        CHECK(e && m);
        if (!e || !m) return 0;
        mjData *d = mj_makeData(m);
        float obs[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
        rlhf_err err = {0};
        CHECK(e->ops->reset(e, obs, &err) == 0);

        // reset: the same draws from a copy of the seed, by Gymnasium's reset_model
        rlhf_rng g;
        rng_seed(&g, 1234 + t);
        double noise = cheetah ? 0.1 : 5e-3;
        mj_resetData(m, d);
        for (int i = 0; i < m->nq; i++)
            d->qpos[i] = m->qpos0[i] + (-noise + 2 * noise * (double)rng_uniform(&g));
        for (int i = 0; i < m->nv; i++)
            d->qvel[i] = cheetah ? noise * (double)rng_normal(&g)
                                 : -noise + 2 * noise * (double)rng_uniform(&g);
        mj_forward(m, d);
        double qpos[64], qvel[64];
        CHECK(ctrl_env_mujoco_get_state(e, qpos, qvel) == 0);
        for (int i = 0; i < m->nq; i++) CHECK(qpos[i] == d->qpos[i]);
        for (int i = 0; i < m->nv; i++) CHECK(qvel[i] == d->qvel[i]);

        rlhf_rng act_rng;
        rng_seed(&act_rng, 99);
        double max_reward_diff = 0;
        int steps = 0, obs_mismatch = 0, clipped = 0, terminal_steps = 0;
        for (int s = 0; s < 300; s++) {
            for (int j = 0; j < e->act_dim; j++) a[j] = 2 * rng_uniform(&act_rng) - 1;
            ctrl_step_info info = {0};
            if (e->ops->step(e, a, obs, &info, &err)) {
                CHECKF(0, "%s step %d: %s", r->name, s, err.msg);
                break;
            }
            // the same step by hand: Gymnasium's do_simulation and step
            double x0 = d->qpos[0], cost = 0;
            for (int j = 0; j < m->nu; j++) {
                d->ctrl[j] = a[j];
                cost += (double)a[j] * a[j];
            }
            for (int k = 0; k < r->frame_skip; k++) mj_step(m, d);
            double xv = (d->qpos[0] - x0) / (m->opt.timestep * r->frame_skip);
            double reward = cheetah ? xv - 0.1 * cost : xv + 1.0 - 1e-3 * cost;
            int k = 0;
            for (int i = 1; i < m->nq; i++) obs_mismatch += obs[k++] != (float)d->qpos[i];
            for (int i = 0; i < m->nv; i++) {
                double v = d->qvel[i];
                if (!cheetah) v = v > 10 ? 10 : v < -10 ? -10 : v;
                clipped += fabs(d->qvel[i]) > 10;  // clipped (halfcheetah: left as is)
                obs_mismatch += obs[k++] != (float)v;
            }
            double diff = fabs(info.reward - reward) / (1 + fabs(reward));
            if (diff > max_reward_diff) max_reward_diff = diff;
            CHECK(info.terminated == !gym_healthy(r->name, m, d));
            CHECK(info.cost == 0);
            steps++;
            // stepping on after a fall (as Gymnasium allows) covers contacts and
            // the velocity clip
            terminal_steps += info.terminated;
        }
        CHECKF(obs_mismatch == 0, "%s: %d observation entries differ", r->name, obs_mismatch);
        CHECKF(max_reward_diff < 1e-6, "%s: reward differs by %g", r->name, max_reward_diff);
        CHECK(steps == 300);
        CHECKF(clipped > 0 && (cheetah ? terminal_steps == 0 : terminal_steps > 0),
               "%s: %d terminal steps, %d velocities beyond 10", r->name, terminal_steps, clipped);
        printf("  %s: %d steps equal to MuJoCo driven directly (max reward diff %.2g, %d "
               "unhealthy steps, %d velocities beyond +-10)\n",
               r->name, steps, max_reward_diff, terminal_steps, clipped);
        mj_deleteData(d);
        mj_deleteModel(m);
        drop(e);
    }
    return 0;
}

// (b) the same seed and actions give the same episode, bit for bit; another
// seed gives another initial state
static int test_determinism(void) {
    for (int t = 0; t < 3; t++) {
        ctrl_env *e1 = make(refs[t].name, 7), *e2 = make(refs[t].name, 7),
                 *e3 = make(refs[t].name, 8);
        CHECK(e1 && e2 && e3);
        if (!e1 || !e2 || !e3) return 0;
        float o1[CTRL_MAX_DIM], o2[CTRL_MAX_DIM], o3[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
        rlhf_err err = {0};
        e1->ops->reset(e1, o1, &err);
        e2->ops->reset(e2, o2, &err);
        e3->ops->reset(e3, o3, &err);
        CHECK(!memcmp(o1, o2, sizeof(float) * (size_t)e1->obs_dim));
        CHECK(memcmp(o1, o3, sizeof(float) * (size_t)e1->obs_dim) != 0);
        rlhf_rng g;
        rng_seed(&g, 5);
        for (int s = 0; s < 100; s++) {
            for (int j = 0; j < e1->act_dim; j++) a[j] = 2 * rng_uniform(&g) - 1;
            ctrl_step_info i1 = {0}, i2 = {0};
            CHECK(e1->ops->step(e1, a, o1, &i1, &err) == 0);
            CHECK(e2->ops->step(e2, a, o2, &i2, &err) == 0);
            CHECK(!memcmp(o1, o2, sizeof(float) * (size_t)e1->obs_dim));
            CHECK(i1.reward == i2.reward && i1.terminated == i2.terminated);
            if (i1.terminated) break;
        }
        drop(e1);
        drop(e2);
        drop(e3);
    }
    return 0;
}

// (c) a hopper pushed hard at every joint falls; the step that terminates is
// the first one whose state breaks Gymnasium's health rule
static int test_hopper_falls(void) {
    ctrl_env *e = make("hopper", 3);
    CHECK(e != NULL);
    if (!e) return 0;
    float obs[CTRL_MAX_DIM], a[3] = {1, -1, 1};
    rlhf_err err = {0};
    CHECK(e->ops->reset(e, obs, &err) == 0);
    double qpos[6], qvel[6];
    int fell = -1;
    for (int s = 0; s < 1000 && fell < 0; s++) {
        ctrl_step_info info = {0};
        CHECK(e->ops->step(e, a, obs, &info, &err) == 0);
        ctrl_env_mujoco_get_state(e, qpos, qvel);
        int unhealthy = !(qpos[1] > 0.7 && fabs(qpos[2]) < 0.2);
        for (int i = 2; i < 6; i++) unhealthy |= !(fabs(qpos[i]) < 100);
        for (int i = 0; i < 6; i++) unhealthy |= !(fabs(qvel[i]) < 100);
        CHECKF(info.terminated == unhealthy, "step %d: terminated %d, z %g, angle %g", s,
               info.terminated, qpos[1], qpos[2]);
        // the healthy reward is still paid on the terminal step (terminate_when_unhealthy)
        CHECK(fabs(obs[0] - qpos[1]) < 1e-6 && fabs(obs[1] - qpos[2]) < 1e-6);
        if (info.terminated) fell = s;
    }
    CHECKF(fell > 0 && fell < 300, "the hopper fell at step %d", fell);
    printf("  hopper with constant action (1,-1,1) terminated at step %d (z %.3f, angle %.3f)\n",
           fell, qpos[1], qpos[2]);
    drop(e);
    return 0;
}

// (d) through the common interface: made by name, truncated at exactly 1000
static int test_time_limit(void) {
    ctrl_env *e = NULL;
    rlhf_err err = {0};
    CHECK(ctrl_env_make("halfcheetah", &e, &err) == 0);
    if (!e) {
        printf("  %s\n", err.msg);
        return 0;
    }
    CHECK(e->max_episode_steps == 1000 && e->obs_dim == 17 && e->act_dim == 6);
    CHECK(e->act_low[0] == -1 && e->act_high[5] == 1);
    ctrl_env_seed(e, 11);
    float obs[CTRL_MAX_DIM], a[6] = {0.3f, -0.2f, 0.1f, 5.0f, -7.0f, 0};  // clipped to [-1, 1]
    CHECK(ctrl_env_reset(e, obs, &err) == 0);
    int truncated_at = -1, terminated = 0;
    for (int s = 1; s <= 1000; s++) {
        ctrl_step_info info;
        CHECK(ctrl_env_step(e, a, obs, &info, &err) == 0);
        terminated |= info.terminated;
        if (info.truncated && truncated_at < 0) truncated_at = s;
    }
    CHECKF(truncated_at == 1000, "truncated at %d", truncated_at);
    CHECK(!terminated);
    ctrl_env_free(e);
    return 0;
}

// (e) sizes, timestep, gears and masses against Gymnasium's models
static int test_model_sanity(void) {
    for (int t = 0; t < 3; t++) {
        const task_ref *r = &refs[t];
        mjModel *m = load_model(r->name);
        ctrl_env *e = make(r->name, 0);
        CHECK(m && e);
        if (!m || !e) return 0;
        CHECK(m->nq == r->nq && m->nv == r->nv && m->nu == r->nu);
        CHECK(e->obs_dim == r->obs_dim && e->act_dim == r->nu && e->max_episode_steps == 1000);
        CHECK(m->opt.timestep == r->timestep);
        CHECK(m->nbody == r->nbody + 1);
        for (int b = 0; b < r->nbody && b + 1 < m->nbody; b++)
            CHECK_CLOSE(m->body_mass[b + 1], r->mass[b], 0, 1e-6);
        CHECK_CLOSE(mj_getTotalmass(m), r->total, 0, 1e-6);
        for (int j = 0; j < m->nu; j++) CHECK(e->act_low[j] == -1 && e->act_high[j] == 1);
        drop(e);
        mj_deleteModel(m);
    }
    return 0;
}

// the motor gears of Gymnasium's models (actuator order)
static int test_gears(void) {
    static const double gear[3][6] = {
        {200, 200, 200}, {120, 90, 60, 120, 60, 30}, {100, 100, 100, 100, 100, 100}};
    for (int t = 0; t < 3; t++) {
        mjModel *m = load_model(refs[t].name);
        CHECK(m != NULL);
        if (!m) return 0;
        for (int j = 0; j < m->nu; j++) CHECK(m->actuator_gear[6 * j] == gear[t][j]);
        mj_deleteModel(m);
    }
    return 0;
}

// a state that blows up is an error naming the env and the step, not a crash
// or a silent reset; only reset is accepted afterwards
static int test_diverged_state(void) {
    ctrl_env *e = make("walker2d", 1);
    CHECK(e != NULL);
    if (!e) return 0;
    float obs[CTRL_MAX_DIM], a[6] = {0};
    rlhf_err err = {0};
    CHECK(e->ops->reset(e, obs, &err) == 0);
    double qpos[9], qvel[9];
    ctrl_env_mujoco_get_state(e, qpos, qvel);
    qvel[3] = NAN;
    CHECK(ctrl_env_mujoco_set_state(e, qpos, qvel, &err) == 0);
    ctrl_step_info info = {0};
    CHECK(e->ops->step(e, a, obs, &info, &err) == -1);
    CHECKF(strstr(err.msg, "walker2d") && strstr(err.msg, "step 0") && strstr(err.msg, "diverged"),
           "%s", err.msg);
    CHECK(e->ops->step(e, a, obs, &info, &err) == -1);
    CHECKF(strstr(err.msg, "reset first"), "%s", err.msg);
    CHECK(e->ops->reset(e, obs, &err) == 0);
    CHECK(e->ops->step(e, a, obs, &info, &err) == 0);
    drop(e);

    ctrl_env u = {0};
    CHECK(ctrl_env_mujoco_make("ant", &u, &err) == -1);
    CHECK(strstr(err.msg, "ant") != NULL);
    return 0;
}

// (g) NeoRL-2's SafetyHalfCheetah: halfcheetah stepped beside it from the same
// seed and actions; the observation is x then halfcheetah's; above x-velocity
// 3.2096 the cost is 1 and the reward -100, else cost 0 and halfcheetah's
// reward. The reward is also recomputed from the observations alone, as the
// authors' safetyhalfcheetah_reward.py does ((x' - x) / 0.05 - 0.1 |a|^2).
// Fast states are set by hand (random actions stay below the limit).
static int test_safety_halfcheetah(void) {
    ctrl_env *e = NULL, *h = NULL;
    rlhf_err err = {0};
    CHECK(ctrl_env_make("neorl-safety-halfcheetah", &e, &err) == 0);
    CHECK(ctrl_env_make("halfcheetah", &h, &err) == 0);
    if (!e || !h) {
        printf("  %s\n", err.msg);
        return 0;
    }
    CHECK(e->obs_dim == 18 && e->act_dim == 6 && e->max_episode_steps == 1000);
    ctrl_env_seed(e, 5);
    ctrl_env_seed(h, 5);
    float o[CTRL_MAX_DIM], p[CTRL_MAX_DIM], prev[CTRL_MAX_DIM], a[6];
    CHECK(ctrl_env_reset(e, o, &err) == 0 && ctrl_env_reset(h, p, &err) == 0);
    rlhf_rng act_rng;
    rng_seed(&act_rng, 7);
    int over = 0, under = 0, mismatch = 0, terminated = 0;
    double worst_formula = 0;
    for (int s = 0; s < 200; s++) {
        if (s % 20 == 10) {  // push both forward: x-velocity qvel[0] from 0 to 9.5
            double qpos[32], qvel[32];
            CHECK(ctrl_env_mujoco_get_state(e, qpos, qvel) == 0);
            qvel[0] = 0.5 * (s / 10);
            CHECK(ctrl_env_mujoco_set_state(e, qpos, qvel, &err) == 0);
            CHECK(ctrl_env_mujoco_set_state(h, qpos, qvel, &err) == 0);
        }
        memcpy(prev, o, sizeof o);
        for (int j = 0; j < 6; j++) a[j] = 2 * rng_uniform(&act_rng) - 1;
        ctrl_step_info ie, ih;
        CHECK(ctrl_env_step(e, a, o, &ie, &err) == 0 && ctrl_env_step(h, a, p, &ih, &err) == 0);
        double qpos[32], qvel[32];
        CHECK(ctrl_env_mujoco_get_state(e, qpos, qvel) == 0);
        mismatch += o[0] != (float)qpos[0];
        for (int i = 0; i < 17; i++) mismatch += o[i + 1] != p[i];
        terminated |= ie.terminated;
        // halfcheetah's reward + its ctrl cost = its x-velocity, which the limit reads
        double ctrl = 0;
        for (int j = 0; j < 6; j++) ctrl += 0.1 * (double)a[j] * (double)a[j];
        double xv = (double)ih.reward + ctrl;
        if (xv > 3.2096) {
            over++;
            mismatch += !(ie.cost == 1 && ie.reward == -100);
        } else {
            under++;
            mismatch += !(ie.cost == 0 && ie.reward == ih.reward);
        }
        double xv_obs = ((double)o[0] - (double)prev[0]) / 0.05;
        if (fabs(xv_obs - 3.2096) > 1e-2) {
            double want = xv_obs > 3.2096 ? -100 : xv_obs - ctrl;
            double d = fabs(want - (double)ie.reward);
            if (d > worst_formula) worst_formula = d;
        }
    }
    CHECKF(mismatch == 0, "%d mismatches", mismatch);
    CHECKF(over >= 10 && under >= 100, "%d steps over the limit, %d under", over, under);
    CHECKF(worst_formula < 1e-3, "reward vs the authors' formula on observations: %g",
           worst_formula);
    printf("  neorl-safety-halfcheetah: %d steps over the limit, %d under; reward from the "
           "observations within %.1e\n", over, under, worst_formula);
    CHECK(!terminated);
    ctrl_env_free(e);
    ctrl_env_free(h);
    return 0;
}

// (g2) NeoRL-2's RandomFrictionHopper: the foot's friction f ~ U(1.5, 2.5)
// per reset, observed as the 13th number, simulated rounded to two decimals.
// Each episode is replayed on MuJoCo driven directly: our plain hopper model
// with the foot's sliding friction set by hand to round(f, 2), from the same
// state and actions; qpos and qvel equal bit for bit, the observation is qpos
// (x included), qvel clipped to +-10, f; the reward and termination are the
// authors' (randomfrictionhopper_reward.py: (x' - x) / 0.008 - 1e-3 |a|^2, no
// healthy reward; _terminated.py: z = obs[1] > 0.7, |obs[2]| < 0.2, every
// obs[3:] in (-100, 100)), also recomputed from the float observations. The
// unrounded f gives another trajectory (the rounding matters). Health is read
// from the observation, so a joint speed over 100 (clipped to 10 there) ends
// plain hopper's episode only.
static int hopper_replay(ctrl_env *e, const float *o0, double friction, int steps,
                         uint64_t act_seed, int *same, int *n_steps, double *worst_r,
                         double *worst_formula) {
    rlhf_err err = {0};
    mjModel *m = load_model("hopper");
    CHECK(m != NULL);
    if (!m) return -1;
    m->geom_friction[3 * mj_name2id(m, mjOBJ_GEOM, "foot")] = friction;
    mjData *d = mj_makeData(m);
    mj_resetData(m, d);
    CHECK(ctrl_env_mujoco_get_state(e, d->qpos, d->qvel) == 0);
    mj_forward(m, d);
    float o[CTRL_MAX_DIM], prev[CTRL_MAX_DIM], a[3];
    memcpy(o, o0, sizeof(float) * 13);
    double qpos[6], qvel[6];
    rlhf_rng act_rng;
    rng_seed(&act_rng, act_seed);
    *same = 1;
    *n_steps = 0;
    for (int t = 0; t < steps; t++) {
        memcpy(prev, o, sizeof o);
        double ctrl = 0, x0 = d->qpos[0];
        for (int j = 0; j < 3; j++) {
            a[j] = 1.2f * rng_uniform(&act_rng) - 0.6f;
            d->ctrl[j] = a[j];
            ctrl += 1e-3 * (double)a[j] * (double)a[j];
        }
        ctrl_step_info info;
        CHECK(ctrl_env_step(e, a, o, &info, &err) == 0);
        for (int k = 0; k < 4; k++) mj_step(m, d);
        CHECK(ctrl_env_mujoco_get_state(e, qpos, qvel) == 0);
        *same &= !memcmp(qpos, d->qpos, sizeof qpos) && !memcmp(qvel, d->qvel, sizeof qvel);
        int healthy = d->qpos[1] > 0.7 && fabs(d->qpos[2]) < 0.2;
        for (int i = 0; i < 6; i++) {
            double v = d->qvel[i] > 10 ? 10 : d->qvel[i] < -10 ? -10 : d->qvel[i];
            *same &= o[i] == (float)d->qpos[i] && o[6 + i] == (float)v;
            if (i >= 3) healthy &= fabs(d->qpos[i]) < 100;
        }
        *same &= o[12] == o0[12] && info.terminated == !healthy && !info.truncated;
        double reward = (d->qpos[0] - x0) / 0.008 - ctrl;
        double dr = fabs((double)info.reward - reward) / (1 + fabs(reward));
        if (dr > *worst_r) *worst_r = dr;
        dr = fabs(((double)o[0] - (double)prev[0]) / 0.008 - ctrl - (double)info.reward);
        if (dr > *worst_formula) *worst_formula = dr;
        ++*n_steps;
        if (info.terminated) break;
    }
    mj_deleteData(d);
    mj_deleteModel(m);
    return 0;
}

static int test_random_friction_hopper(void) {
    ctrl_env *e = NULL, *f = NULL;
    rlhf_err err = {0};
    CHECK(ctrl_env_make("neorl-random-friction-hopper", &e, &err) == 0);
    CHECK(ctrl_env_make("neorl-random-friction-hopper", &f, &err) == 0);
    if (!e || !f) {
        printf("  %s\n", err.msg);
        return 0;
    }
    CHECK(e->obs_dim == 13 && e->act_dim == 3 && e->max_episode_steps == 1000 && !e->has_cost);
    float o[CTRL_MAX_DIM], q[CTRL_MAX_DIM];
    // the draws: in the range, spread, repeatable per seed, other under another seed
    double lo = 9, hi = 0, fr[40];
    int distinct = 0, same_seed = 1, other_seed = 0;
    ctrl_env_seed(e, 3);
    ctrl_env_seed(f, 3);
    for (int i = 0; i < 40; i++) {
        CHECK(ctrl_env_reset(e, o, &err) == 0 && ctrl_env_reset(f, q, &err) == 0);
        same_seed &= !memcmp(o, q, sizeof(float) * 13);
        fr[i] = o[12];
        CHECKF(fr[i] >= 1.5 && fr[i] < 2.5, "reset %d: friction %g", i, fr[i]);
        lo = fr[i] < lo ? fr[i] : lo;
        hi = fr[i] > hi ? fr[i] : hi;
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= fr[j] == fr[i];
        distinct += !seen;
    }
    ctrl_env_seed(f, 4);
    for (int i = 0; i < 40; i++) {
        CHECK(ctrl_env_reset(f, q, &err) == 0);
        other_seed += q[12] != (float)fr[i];
    }
    CHECKF(distinct == 40 && lo < 1.6 && hi > 2.4, "%d distinct draws in [%g, %g]", distinct, lo,
           hi);
    CHECK(same_seed && other_seed >= 39);
    // episodes replayed on plain hopper with the friction set by hand
    double worst_r = 0, worst_formula = 0;
    int all_same = 1, total = 0, rounded_matters = 0;
    ctrl_env_seed(e, 11);
    for (int ep = 0; ep < 6; ep++) {
        CHECK(ctrl_env_reset(e, o, &err) == 0);
        double qpos[6], qvel[6];
        CHECK(ctrl_env_mujoco_get_state(e, qpos, qvel) == 0);
        char two[32];
        snprintf(two, sizeof two, "%.2f", (double)o[12]);
        double f2 = strtod(two, NULL);
        int same = 0, n = 0;
        CHECK(hopper_replay(e, o, f2, 200, 100 + ep, &same, &n, &worst_r, &worst_formula) == 0);
        all_same &= same;
        total += n;
        // the same episode against the unrounded friction: it must differ
        CHECK(ctrl_env_mujoco_set_state(e, qpos, qvel, &err) == 0);
        double w1 = 0, w2 = 0;
        CHECK(hopper_replay(e, o, (double)o[12], 200, 100 + ep, &same, &n, &w1, &w2) == 0);
        rounded_matters += !same;
    }
    CHECKF(all_same && total > 100, "replays on MuJoCo: equal %d over %d steps", all_same, total);
    CHECKF(rounded_matters == 6, "the unrounded friction differed in %d of 6 episodes",
           rounded_matters);
    CHECKF(worst_r < 1e-6 && worst_formula < 1e-3,
           "reward vs the formula on MuJoCo's state: %g; on the observations: %g", worst_r,
           worst_formula);
    // health from the observation: a foot joint speed of 1000 is clipped to 10 there
    ctrl_env *h = NULL;
    CHECK(ctrl_env_make("hopper", &h, &err) == 0 && h);
    CHECK(ctrl_env_reset(e, o, &err) == 0 && ctrl_env_reset(h, q, &err) == 0);
    double qpos[6], qvel[6];
    CHECK(ctrl_env_mujoco_get_state(e, qpos, qvel) == 0);
    qvel[5] = 1000;
    CHECK(ctrl_env_mujoco_set_state(e, qpos, qvel, &err) == 0);
    CHECK(ctrl_env_mujoco_set_state(h, qpos, qvel, &err) == 0);
    const float zero[3] = {0, 0, 0};
    ctrl_step_info ie, ih;
    CHECK(ctrl_env_step(e, zero, o, &ie, &err) == 0 && ctrl_env_step(h, zero, q, &ih, &err) == 0);
    CHECKF(ih.terminated && !ie.terminated && o[11] == 10.0f,
           "fast foot: hopper terminated %d, random-friction %d, observed speed %g", ih.terminated,
           ie.terminated, (double)o[11]);
    printf("  neorl-random-friction-hopper: 40 draws in [%.3f, %.3f]; %d steps equal to MuJoCo "
           "on hopper with the foot's friction set by hand; reward within %.1e (rel), from the "
           "observations within %.1e\n",
           lo, hi, total, worst_r, worst_formula);
    ctrl_env_free(h);
    ctrl_env_free(e);
    ctrl_env_free(f);
    return 0;
}

// ---- H2O's simulators with a dynamics gap: "task:gravity=G,friction=F,joint_noise=S" ----

// a model loaded here with the gap made by hand: gravity and every geom's
// sliding friction multiplied (what H2O's utils_h2o.py does to the XML)
static mjModel *load_gapped(const char *name, double gravity, double friction) {
    mjModel *m = load_model(name);
    if (!m) return NULL;
    for (int i = 0; i < 3; i++) m->opt.gravity[i] *= gravity;
    for (int g = 0; g < m->ngeom; g++) m->geom_friction[3 * g] *= friction;
    return m;
}

// steps env e (already reset) and MuJoCo driven directly on model m from e's
// state, n steps of random actions (seed act_seed) plus the action noise that e
// draws from its own stream (noise std, read from a copy of e->rng); returns the
// number of entries (qpos, qvel, reward) that differ at all
static int step_beside(ctrl_env *e, const mjModel *m, const char *task, double noise, int n,
                       uint64_t act_seed) {
    int cheetah = !strcmp(task, "halfcheetah"), skip = cheetah ? 5 : 4, bad = 0;
    mjData *d = mj_makeData(m);
    double qpos[64], qvel[64];
    ctrl_env_mujoco_get_state(e, qpos, qvel);
    memcpy(d->qpos, qpos, sizeof(double) * (size_t)m->nq);
    memcpy(d->qvel, qvel, sizeof(double) * (size_t)m->nv);
    mj_forward(m, d);
    rlhf_rng act_rng;
    rng_seed(&act_rng, act_seed);
    float obs[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
    rlhf_err err = {0};
    for (int s = 0; s < n; s++) {
        for (int j = 0; j < e->act_dim; j++) a[j] = 2 * rng_uniform(&act_rng) - 1;
        rlhf_rng r = e->rng; // the noise e is about to draw
        double x0 = d->qpos[0], cost = 0;
        for (int j = 0; j < m->nu; j++) {
            double u = (double)a[j] + (noise > 0 ? noise * (double)rng_normal(&r) : 0);
            d->ctrl[j] = u;
            cost += u * u;
        }
        ctrl_step_info info = {0};
        if (e->ops->step(e, a, obs, &info, &err)) {
            printf("  step %d: %s\n", s, err.msg);
            bad++;
            break;
        }
        for (int k = 0; k < skip; k++) mj_step(m, d);
        double xv = (d->qpos[0] - x0) / (m->opt.timestep * skip);
        double reward = cheetah ? xv - 0.1 * cost : xv + 1.0 - 1e-3 * cost;
        ctrl_env_mujoco_get_state(e, qpos, qvel);
        for (int i = 0; i < m->nq; i++) bad += qpos[i] != d->qpos[i];
        for (int i = 0; i < m->nv; i++) bad += qvel[i] != d->qvel[i];
        bad += fabs(info.reward - reward) > 1e-6 * (1 + fabs(reward));
    }
    mj_deleteData(d);
    return bad;
}

// (h) a gapped task steps as MuJoCo driven directly on a model with the gap
// made by hand, and not as the plain model (so the comparison can tell)
static int test_gap_matches_mujoco(void) {
    static const struct {
        const char *name, *task;
        double gravity, friction, noise;
    } cases[] = {
        {"hopper:gravity=2,friction=0.3", "hopper", 2, 0.3, 0},
        {"walker2d:friction=0.3", "walker2d", 1, 0.3, 0},
        {"halfcheetah:gravity=2", "halfcheetah", 2, 1, 0},
        {"halfcheetah:joint_noise=1,friction=1.5", "halfcheetah", 1, 1.5, 1},
        {"walker2d:joint_noise=0.5,gravity=0.5", "walker2d", 0.5, 1, 0.5},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ctrl_env *e = make(cases[c].name, 21 + c), *p = make(cases[c].name, 21 + c);
        mjModel *gm = load_gapped(cases[c].task, cases[c].gravity, cases[c].friction);
        mjModel *plain = load_model(cases[c].task);
        CHECK(e && p && gm && plain);
        if (!e || !p || !gm || !plain) return 0;
        float obs[CTRL_MAX_DIM];
        rlhf_err err = {0};
        CHECK(e->ops->reset(e, obs, &err) == 0 && p->ops->reset(p, obs, &err) == 0);
        int bad = step_beside(e, gm, cases[c].task, cases[c].noise, 200, 3);
        int vs_plain = step_beside(p, plain, cases[c].task, cases[c].noise, 200, 3);
        CHECKF(bad == 0, "%s: %d entries differ from MuJoCo on the gapped model", cases[c].name,
               bad);
        CHECKF(vs_plain > 100, "%s: only %d entries differ from the plain model", cases[c].name,
               vs_plain);
        if (bad == 0)
            printf("  %s: 200 steps equal to MuJoCo on a model with the gap made by hand (%d "
                   "entries differ from the plain model's)\n",
                   cases[c].name, vs_plain);
        drop(e);
        drop(p);
        mj_deleteModel(gm);
        mj_deleteModel(plain);
    }
    return 0;
}

// (i) multipliers 1 and noise 0 are the plain task bit for bit (observations,
// rewards, terminations, the random stream), across resets
static int test_gap_defaults_bit_identical(void) {
    static const char *const pairs[][2] = {
        {"hopper:gravity=1,friction=1,joint_noise=0", "hopper"},
        {"walker2d:friction=1", "walker2d"},
        {"halfcheetah:joint_noise=0,gravity=1", "halfcheetah"},
        {"neorl-safety-halfcheetah:gravity=1", "neorl-safety-halfcheetah"},
    };
    for (int t = 0; t < 4; t++) {
        ctrl_env *g = NULL, *p = NULL;
        rlhf_err err = {0};
        CHECKF(ctrl_env_make(pairs[t][0], &g, &err) == 0, "%s", err.msg);
        CHECKF(ctrl_env_make(pairs[t][1], &p, &err) == 0, "%s", err.msg);
        if (!g || !p) return 0;
        CHECK(g->obs_dim == p->obs_dim && g->act_dim == p->act_dim && g->has_cost == p->has_cost);
        ctrl_env_seed(g, 9);
        ctrl_env_seed(p, 9);
        float og[CTRL_MAX_DIM], op[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
        size_t nb = sizeof(float) * (size_t)g->obs_dim;
        CHECK(ctrl_env_reset(g, og, &err) == 0 && ctrl_env_reset(p, op, &err) == 0);
        rlhf_rng act_rng;
        rng_seed(&act_rng, 4);
        int differ = memcmp(og, op, nb) != 0, resets = 0;
        for (int s = 0; s < 400; s++) {
            for (int j = 0; j < g->act_dim; j++) a[j] = 2 * rng_uniform(&act_rng) - 1;
            ctrl_step_info ig, ip;
            CHECK(ctrl_env_step(g, a, og, &ig, &err) == 0 &&
                  ctrl_env_step(p, a, op, &ip, &err) == 0);
            differ += memcmp(og, op, nb) != 0 || ig.reward != ip.reward ||
                      ig.terminated != ip.terminated || ig.cost != ip.cost;
            if (ip.terminated || ip.truncated || s % 150 == 149) {
                CHECK(ctrl_env_reset(g, og, &err) == 0 && ctrl_env_reset(p, op, &err) == 0);
                differ += memcmp(og, op, nb) != 0;
                resets++;
            }
        }
        differ += memcmp(&g->rng, &p->rng, sizeof g->rng) != 0;
        CHECKF(differ == 0 && resets >= 2, "%s: %d differences from %s (%d resets)", pairs[t][0],
               differ, pairs[t][1], resets);
        ctrl_env_free(g);
        ctrl_env_free(p);
    }
    return 0;
}

// (j) the gap changes the dynamics: a hopper left to fall (zero action) under
// twice the gravity is lower after 15 steps, by about what free fall says
// (dz = -g t^2 / 2 with t = 0.12 s: 7 cm more under 2g); a walker on 0.3x
// friction slides where the plain one does not
static int test_gap_changes_dynamics(void) {
    const char *names[2] = {"hopper", "hopper:gravity=2"};
    double z[2] = {0, 0}, z0[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        ctrl_env *e = make(names[t], 1);
        CHECK(e != NULL);
        if (!e) return 0;
        float obs[CTRL_MAX_DIM], a[3] = {0, 0, 0};
        rlhf_err err = {0};
        CHECK(e->ops->reset(e, obs, &err) == 0);
        double qpos[6], qvel[6];
        // lift it 0.5 m so that it is in free fall for the whole window
        ctrl_env_mujoco_get_state(e, qpos, qvel);
        qpos[1] += 0.5;
        for (int i = 0; i < 6; i++) qvel[i] = 0;
        CHECK(ctrl_env_mujoco_set_state(e, qpos, qvel, &err) == 0);
        z0[t] = qpos[1];
        for (int s = 0; s < 15; s++) {
            ctrl_step_info info = {0};
            CHECK(e->ops->step(e, a, obs, &info, &err) == 0);
        }
        ctrl_env_mujoco_get_state(e, qpos, qvel);
        z[t] = qpos[1];
        drop(e);
    }
    double fall1 = z0[0] - z[0], fall2 = z0[1] - z[1];
    CHECKF(fabs(fall1 - 9.81 * 0.12 * 0.12 / 2) < 0.01 &&
               fabs(fall2 - 2 * 9.81 * 0.12 * 0.12 / 2) < 0.02,
           "hopper fell %.4f m under 1g, %.4f m under 2g in 0.12 s", fall1, fall2);
    printf("  hopper in free fall for 0.12 s: %.4f m (1g), %.4f m (gravity=2)\n", fall1, fall2);
    return 0;
}

// (k) malformed settings are refused naming the env string (and, for an
// unknown key, the known keys)
static int test_gap_refusals(void) {
    static const char *const bad[][2] = {
        {"hopper:gravity=0", "gravity=0 is not a finite number > 0"},
        {"hopper:gravity=-2", "gravity=-2"},
        {"walker2d:friction=nan", "friction=nan"},
        {"walker2d:friction=inf", "friction=inf"},
        {"halfcheetah:gravity=2x", "gravity=2x"},
        {"halfcheetah:joint_noise=-1", "joint_noise=-1 is not a finite number >= 0"},
        {"hopper:density=2", "names none"},
        {"halfcheetah:density=0.5", "names none"},
        {"walker2d:density=0", "density=0 is not a finite number > 0"},
        {"hopper:mass=2", "unknown setting \"mass\" (keys: gravity, friction, joint_noise, density)"},
        {"hopper:gravity", "not KEY=VALUE"},
        {"hopper:friction=", "friction has no value"},
        {"hopper:gravity=2,", "a comma ends the settings"},
        {"hopper:", "nothing after the colon"},
        {"hoppers:gravity=2", "unknown"},
        {"ant:gravity=2", "unknown"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ctrl_env *e = NULL;
        rlhf_err err = {0};
        CHECKF(ctrl_env_make(bad[i][0], &e, &err) == -1, "%s was accepted", bad[i][0]);
        CHECKF(strstr(err.msg, bad[i][0]) && strstr(err.msg, bad[i][1]), "%s: %s", bad[i][0],
               err.msg);
        ctrl_env_free(e);
    }
    ctrl_env e = {0};
    rlhf_err err = {0};
    CHECK(ctrl_env_mujoco_make("hopper:mass=2", &e, &err) == -1);
    CHECKF(strstr(err.msg, "hopper:mass=2") &&
               strstr(err.msg, "gravity, friction, joint_noise, density"),
           "%s", err.msg);
    CHECK(strstr(ctrl_env_names(), "hopper:gravity=G,friction=F,joint_noise=S") != NULL);
    return 0;
}

// (l) density=D (H2O's third gap): walker2d:density=2 steps as MuJoCo on the
// walker's XML with density="2000" written by hand, its bodies weigh twice the
// plain model's (masses follow the geoms), and it moves differently from the
// plain walker
static int test_gap_density(void) {
    const char *xml = ctrl_mjcf_model("walker2d");
    const char *at = strstr(xml, "density=\"1000\"");
    CHECK(at != NULL && strstr(at + 1, "density=") == NULL);
    if (!at) return 0;
    size_t n = strlen(xml);
    char *edited = malloc(n + 8);
    memcpy(edited, xml, (size_t)(at - xml));
    sprintf(edited + (at - xml), "density=\"2000\"%s", at + strlen("density=\"1000\""));
    mjModel *heavy = load_xml("walker2d with density 2000", edited);
    free(edited);
    mjModel *plain = load_model("walker2d");
    CHECK(heavy && plain);
    if (!heavy || !plain) return 0;
    double mh = 0, mp = 0;
    for (int b = 0; b < plain->nbody; b++) mh += heavy->body_mass[b], mp += plain->body_mass[b];
    CHECKF(fabs(mh - 2 * mp) < 1e-9 * mp, "masses %.6f vs 2 x %.6f", mh, mp);
    ctrl_env *e = make("walker2d:density=2", 31), *p = make("walker2d:density=2", 31);
    CHECK(e && p);
    if (!e || !p) return 0;
    float obs[CTRL_MAX_DIM];
    rlhf_err err = {0};
    CHECK(e->ops->reset(e, obs, &err) == 0 && p->ops->reset(p, obs, &err) == 0);
    int bad = step_beside(e, heavy, "walker2d", 0, 200, 5);
    int vs_plain = step_beside(p, plain, "walker2d", 0, 200, 5);
    CHECKF(bad == 0, "walker2d:density=2: %d entries differ from MuJoCo on the edited XML", bad);
    CHECKF(vs_plain > 100, "walker2d:density=2: only %d entries differ from the plain model",
           vs_plain);
    if (bad == 0)
        printf("  walker2d:density=2: bodies %.3f kg (plain %.3f); 200 steps equal to MuJoCo on "
               "the XML with density 2000 (%d entries differ from the plain model's)\n",
               mh, mp, vs_plain);
    drop(e);
    drop(p);
    mj_deleteModel(heavy);
    mj_deleteModel(plain);
    return 0;
}

int main(void) {
    RUN(test_model_sanity);
    RUN(test_safety_halfcheetah);
    RUN(test_random_friction_hopper);
    RUN(test_gears);
    RUN(test_step_matches_mujoco);
    RUN(test_determinism);
    RUN(test_hopper_falls);
    RUN(test_time_limit);
    RUN(test_diverged_state);
    RUN(test_gap_matches_mujoco);
    RUN(test_gap_defaults_bit_identical);
    RUN(test_gap_changes_dynamics);
    RUN(test_gap_refusals);
    RUN(test_gap_density);
    return test_total_fail_ ? 1 : 0;
}

#endif
