// ctrl/env_classic: the classic-control tasks in C, following Gymnasium's
// definitions (gymnasium/envs/classic_control/pendulum.py,
// continuous_mountain_car.py, cartpole.py; time limits from
// gymnasium/envs/__init__.py): the same constants, update order, rewards,
// terminations, observation layouts and initial-state ranges. The dynamics state
// is double (Gymnasium's float64) and observations are float (its float32).
// Initial states come from the environment's own stream (e->rng), so they are
// not Gymnasium's numbers for the same seed, only the same distribution.
//
//   pendulum     Pendulum-v1               obs (cos th, sin th, thdot), torque [-2, 2], 200 steps
//   mountaincar  MountainCarContinuous-v0  obs (position, velocity), force [-1, 1], 999 steps
//   cartpole     our continuous CartPole   obs (x, x_dot, theta, theta_dot), [-1, 1], 500 steps
//
// Pendulum takes physical settings after a colon, for simulators with a
// dynamics gap (H2O's "2x gravity" simulator, docs/ctrl_h2o.md):
// "pendulum:gravity=20", "pendulum:gravity=15,mass=1.2,length=0.8" (keys
// gravity, mass, length; each a finite number > 0; defaults 10, 1, 1, with
// which the dynamics are bit for bit those of plain "pendulum").
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/env.h"

typedef enum { PENDULUM, MOUNTAINCAR, CARTPOLE } classic_kind;

typedef struct {
    classic_kind kind;
    double s[4];   // pendulum (th, thdot); mountaincar (position, velocity);
                   // cartpole (x, x_dot, theta, theta_dot)
    int ready;     // reset has been called
    int after_end; // cartpole: steps taken after termination (Gymnasium's steps_beyond_terminated)
    double g, m, l; // pendulum: gravity, mass, length (PEND_G, PEND_M, PEND_L unless set)
} classic_state;

// uniform double in [lo, hi) from 53 random bits
static double uniform(rlhf_rng *r, double lo, double hi) {
    double u = (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

// ------------------------------------------------------------ Pendulum-v1 --
// pendulum.py: g 10, m 1, l 1, dt 0.05, max speed 8, max torque 2.

#define PEND_G 10.0
#define PEND_M 1.0
#define PEND_L 1.0
#define PEND_DT 0.05
#define PEND_MAX_SPEED 8.0

// angle into [-pi, pi) the way pendulum.py's angle_normalize does (Python's %
// takes the sign of the divisor)
static double angle_normalize(double x) {
    double r = fmod(x + M_PI, 2.0 * M_PI);
    if (r < 0) r += 2.0 * M_PI;
    return r - M_PI;
}

static void pendulum_obs(const classic_state *c, float *obs) {
    obs[0] = (float)cos(c->s[0]);
    obs[1] = (float)sin(c->s[0]);
    obs[2] = (float)c->s[1];
}

static void pendulum_reset(classic_state *c, rlhf_rng *r, float *obs) {
    c->s[0] = uniform(r, -M_PI, M_PI); // th
    c->s[1] = uniform(r, -1.0, 1.0);   // thdot
    pendulum_obs(c, obs);
}

static void pendulum_step(classic_state *c, double u, float *obs, ctrl_step_info *info) {
    double th = c->s[0], thdot = c->s[1];
    double a = angle_normalize(th);
    double costs = a * a + 0.1 * thdot * thdot + 0.001 * u * u; // on the state before the step
    double g = c->g, m = c->m, l = c->l;
    double newthdot = thdot + (3.0 * g / (2.0 * l) * sin(th) + 3.0 / (m * l * l) * u) * PEND_DT;
    if (newthdot > PEND_MAX_SPEED) newthdot = PEND_MAX_SPEED;
    if (newthdot < -PEND_MAX_SPEED) newthdot = -PEND_MAX_SPEED;
    c->s[0] = th + newthdot * PEND_DT; // semi-implicit: the new velocity moves the angle
    c->s[1] = newthdot;
    info->reward = (float)-costs;
    info->terminated = 0; // Pendulum never terminates; only the time limit ends it
    pendulum_obs(c, obs);
}

// -------------------------------------------------- MountainCarContinuous-v0 --
// continuous_mountain_car.py: power 0.0015, max speed 0.07, position in
// [-1.2, 0.6], goal position 0.45 with goal velocity 0. Gymnasium keeps the
// state as float32 between steps (it stores np.float32 after each step), so we
// round it to float after each step too; the arithmetic of a step is double.
// Its reward penalises the action it was given; ctrl_env_step has already
// clipped that to [-1, 1], as Gymnasium's ClipAction wrapper would.

#define MC_POWER 0.0015
#define MC_MAX_SPEED 0.07
#define MC_MIN_POS (-1.2)
#define MC_MAX_POS 0.6
#define MC_GOAL_POS 0.45
#define MC_GOAL_VEL 0.0

static void mountaincar_reset(classic_state *c, rlhf_rng *r, float *obs) {
    c->s[0] = uniform(r, -0.6, -0.4);
    c->s[1] = 0.0;
    obs[0] = (float)c->s[0];
    obs[1] = (float)c->s[1];
}

static void mountaincar_step(classic_state *c, double force, float *obs, ctrl_step_info *info) {
    double position = c->s[0], velocity = c->s[1];
    velocity += force * MC_POWER - 0.0025 * cos(3.0 * position);
    if (velocity > MC_MAX_SPEED) velocity = MC_MAX_SPEED;
    if (velocity < -MC_MAX_SPEED) velocity = -MC_MAX_SPEED;
    position += velocity;
    if (position > MC_MAX_POS) position = MC_MAX_POS;
    if (position < MC_MIN_POS) position = MC_MIN_POS;
    if (position == MC_MIN_POS && velocity < 0) velocity = 0; // inelastic left wall
    int terminated = position >= MC_GOAL_POS && velocity >= MC_GOAL_VEL;
    double reward = terminated ? 100.0 : 0.0;
    reward -= force * force * 0.1;
    c->s[0] = (float)position;
    c->s[1] = (float)velocity;
    info->reward = (float)reward;
    info->terminated = terminated;
    obs[0] = (float)c->s[0];
    obs[1] = (float)c->s[1];
}

// -------------------------------------------------- continuous CartPole --
// Our continuous variant of Gymnasium's CartPole-v1 (cartpole.py): the same
// constants, Euler integration, thresholds (12 degrees, 2.4) and reward (1 per
// step, also on the terminating step; 0 for steps taken after termination),
// but the push is force_mag * action for one action in [-1, 1] instead of
// +-force_mag from a discrete choice.

#define CP_GRAVITY 9.8
#define CP_MASSCART 1.0
#define CP_MASSPOLE 0.1
#define CP_TOTAL_MASS (CP_MASSPOLE + CP_MASSCART)
#define CP_LENGTH 0.5 // half the pole's length
#define CP_POLEMASS_LENGTH (CP_MASSPOLE * CP_LENGTH)
#define CP_FORCE_MAG 10.0
#define CP_TAU 0.02
#define CP_THETA_THRESHOLD (12.0 * 2.0 * M_PI / 360.0)
#define CP_X_THRESHOLD 2.4

static void cartpole_obs(const classic_state *c, float *obs) {
    for (int i = 0; i < 4; i++) obs[i] = (float)c->s[i];
}

static void cartpole_reset(classic_state *c, rlhf_rng *r, float *obs) {
    for (int i = 0; i < 4; i++) c->s[i] = uniform(r, -0.05, 0.05);
    c->after_end = -1;
    cartpole_obs(c, obs);
}

static void cartpole_step(classic_state *c, double action, float *obs, ctrl_step_info *info) {
    double x = c->s[0], x_dot = c->s[1], theta = c->s[2], theta_dot = c->s[3];
    double force = CP_FORCE_MAG * action;
    double costheta = cos(theta), sintheta = sin(theta);
    double temp = (force + CP_POLEMASS_LENGTH * theta_dot * theta_dot * sintheta) / CP_TOTAL_MASS;
    double thetaacc = (CP_GRAVITY * sintheta - costheta * temp) /
                      (CP_LENGTH * (4.0 / 3.0 - CP_MASSPOLE * costheta * costheta / CP_TOTAL_MASS));
    double xacc = temp - CP_POLEMASS_LENGTH * thetaacc * costheta / CP_TOTAL_MASS;
    // explicit Euler: positions move with the old velocities
    c->s[0] = x + CP_TAU * x_dot;
    c->s[1] = x_dot + CP_TAU * xacc;
    c->s[2] = theta + CP_TAU * theta_dot;
    c->s[3] = theta_dot + CP_TAU * thetaacc;
    int terminated = c->s[0] < -CP_X_THRESHOLD || c->s[0] > CP_X_THRESHOLD ||
                     c->s[2] < -CP_THETA_THRESHOLD || c->s[2] > CP_THETA_THRESHOLD;
    double reward;
    if (!terminated)
        reward = 1.0;
    else if (c->after_end < 0)
        c->after_end = 0, reward = 1.0;
    else
        c->after_end++, reward = 0.0;
    info->reward = (float)reward;
    info->terminated = terminated;
    cartpole_obs(c, obs);
}

// ---------------------------------------------------------- the table --

static int classic_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    (void)err;
    classic_state *c = e->state;
    switch (c->kind) {
    case PENDULUM:
        pendulum_reset(c, &e->rng, obs);
        break;
    case MOUNTAINCAR:
        mountaincar_reset(c, &e->rng, obs);
        break;
    case CARTPOLE:
        cartpole_reset(c, &e->rng, obs);
        break;
    }
    c->ready = 1;
    return 0;
}

static int classic_step(ctrl_env *e, const float *action, float *obs, ctrl_step_info *info,
                        rlhf_err *err) {
    classic_state *c = e->state;
    if (!c->ready) return rlhf_fail(err, "env \"%s\": step before reset", e->name);
    double a = (double)action[0];
    switch (c->kind) {
    case PENDULUM:
        pendulum_step(c, a, obs, info);
        break;
    case MOUNTAINCAR:
        mountaincar_step(c, a, obs, info);
        break;
    case CARTPOLE:
        cartpole_step(c, a, obs, info);
        break;
    }
    info->cost = 0;
    return 0;
}

static void classic_free(ctrl_env *e) {
    free(e->state);
    e->state = NULL;
}

static const ctrl_env_ops classic_ops = {
    .reset = classic_reset, .step = classic_step, .free = classic_free, .seed = NULL};

int ctrl_env_classic_set_state(ctrl_env *e, const double *state, int n, float *obs, rlhf_err *err) {
    if (e->ops != &classic_ops)
        return rlhf_fail(err, "env \"%s\": setting the state works on classic-control tasks only",
                         e->name);
    classic_state *c = e->state;
    int want = c->kind == PENDULUM ? 2 : c->kind == MOUNTAINCAR ? 2 : 4;
    if (n != want)
        return rlhf_fail(err, "env \"%s\": the state has %d numbers, not %d", e->name, want, n);
    for (int i = 0; i < n; i++) {
        if (!isfinite(state[i]))
            return rlhf_fail(err, "env \"%s\": state[%d] is not a finite number", e->name, i);
        c->s[i] = state[i];
    }
    c->ready = 1;
    c->after_end = -1;
    switch (c->kind) {
    case PENDULUM:
        pendulum_obs(c, obs);
        break;
    case MOUNTAINCAR:
        obs[0] = (float)c->s[0], obs[1] = (float)c->s[1];
        break;
    case CARTPOLE:
        cartpole_obs(c, obs);
        break;
    }
    return 0;
}

// "KEY=VALUE,KEY=VALUE" after "pendulum:" into c->g, c->m, c->l
static int pendulum_settings(const char *name, const char *spec, classic_state *c,
                             rlhf_err *err) {
    static const char *const keys[] = {"gravity", "mass", "length"};
    double v[3] = {c->g, c->m, c->l};
    if (ctrl_env_settings(name, spec, keys, 3, NULL, v, "pendulum:gravity=20", err)) return -1;
    c->g = v[0], c->m = v[1], c->l = v[2];
    return 0;
}

int ctrl_env_classic_make(const char *name, ctrl_env *e, rlhf_err *err) {
    classic_state *c = xcalloc(1, sizeof *c);
    c->g = PEND_G, c->m = PEND_M, c->l = PEND_L;
    e->act_dim = 1;
    const char *colon = strchr(name, ':');
    if (colon) {
        if (strncmp(name, "pendulum:", 9)) {
            free(c);
            return rlhf_fail(err,
                             "env \"%s\": only pendulum takes settings after a colon "
                             "(pendulum:gravity=G,mass=M,length=L)",
                             name);
        }
        if (pendulum_settings(name, colon + 1, c, err)) {
            free(c);
            return -1;
        }
    }
    if (!strcmp(name, "pendulum") || colon) {
        c->kind = PENDULUM;
        e->obs_dim = 3;
        e->act_low[0] = -2.0f, e->act_high[0] = 2.0f;
        e->max_episode_steps = 200;
    } else if (!strcmp(name, "mountaincar")) {
        c->kind = MOUNTAINCAR;
        e->obs_dim = 2;
        e->act_low[0] = -1.0f, e->act_high[0] = 1.0f;
        e->max_episode_steps = 999;
    } else if (!strcmp(name, "cartpole")) {
        c->kind = CARTPOLE;
        e->obs_dim = 4;
        e->act_low[0] = -1.0f, e->act_high[0] = 1.0f;
        e->max_episode_steps = 500;
    } else {
        free(c);
        return rlhf_fail(
            err, "env \"%s\": not a classic-control task (pendulum, mountaincar, cartpole)", name);
    }
    e->state = c;
    e->ops = &classic_ops;
    return 0;
}
