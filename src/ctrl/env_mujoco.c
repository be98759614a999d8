// ctrl/env_mujoco: the MuJoCo locomotion tasks hopper, halfcheetah and
// walker2d with Gymnasium's v4 rules (gymnasium/envs/mujoco/hopper_v4.py,
// half_cheetah_v4.py, walker2d_v4.py, default arguments), on our own MJCF
// models (mjcf_models.c) simulated by Debian's libmujoco (2.2.2).
//
// Per task, as in the v4 files:
//   observation  qpos without the x position, then qvel (clipped to +-10 for
//                hopper and walker2d, unclipped for halfcheetah)
//   reward       forward_reward_weight * x_velocity + healthy_reward
//                - ctrl_cost_weight * |a|^2, x_velocity the change of qpos[0]
//                over the step divided by dt = timestep * frame_skip; the
//                healthy reward is paid on every step (also the terminal one)
//                because terminate_when_unhealthy is true
//   healthy      hopper: every entry of (qpos, qvel) but the first two in
//                (-100, 100), z = qpos[1] > 0.7, angle = qpos[2] in (-0.2, 0.2);
//                walker2d: z in (0.8, 2), angle in (-1, 1); halfcheetah: always
//   terminated   not healthy (halfcheetah never)
//   reset        qpos0 + U(-s, s) on every qpos and qvel entry, s = 5e-3
//                (hopper, walker2d); halfcheetah: qpos0 + U(-0.1, 0.1) and
//                qvel 0.1 * N(0, 1); drawn from e->rng (all qpos, then all qvel)
// neorl-safety-halfcheetah is NeoRL-2's SafetyHalfCheetah (polixir/NeoRL2
// neorl2/envs/safetyhalfcheetah.py, reward/safetyhalfcheetah_reward.py):
// halfcheetah with the x position kept in the observation (18 numbers, x
// first), cost 1 on a step whose x_velocity exceeds 3.2096 and the reward then
// -100 in place of the usual one; it never terminates.
// neorl-random-friction-hopper is NeoRL-2's RandomFrictionHopper (their
// randomfrictionhopper.py, reward/randomfrictionhopper_reward.py,
// terminated/randomfrictionhopper_terminated.py): hopper whose foot's sliding
// friction is drawn at every reset, f ~ U(1.5, 2.5) (the plain model has 2);
// the simulation uses f rounded to two decimals (they load one of their 101
// files hopper_friction_1.50.xml ... _2.50.xml, chosen by "%.2f" of f) while
// the observation reports f itself. Observation (13): qpos with x, qvel
// clipped to +-10, f. Reward: x_velocity - 1e-3 |a|^2 (no healthy reward).
// Terminated when not healthy as read from the observation: z = obs[1] in
// (0.7, inf), angle = obs[2] in (-0.2, 0.2), every obs[3:] in (-100, 100)
// (the clipped velocities and f included). f is drawn from e->rng before the
// reset noise (they use Python's unseeded `random`). The gap settings apply
// on top: friction=F multiplies every geom's friction, the drawn foot
// friction included.
// A simulator with a dynamics gap (H2O, Niu et al. 2022; docs/ctrl_h2o.md):
// "hopper:gravity=2,friction=0.3,joint_noise=1" (any task, any subset of the
// keys, any order). The authors' code (github.com/t6-thu/H2O,
// SimpleSAC/utils_h2o.py update_target_env_gravity / _friction) rewrites the
// Gym XML, multiplying every number of the option's gravity and of each
// friction attribute by the factor; here the loaded model's opt.gravity and
// every geom's sliding friction (geom_friction[3g]) are multiplied, which is
// the same simulation for our condim-3 contacts (torsional and rolling
// friction act only at condim 4 and 6). joint_noise is their sampler.py's
// joint_noise_std: N(0, s^2) added to each (clipped) action before it is
// applied and charged in the control cost, drawn from e->rng; MuJoCo clamps
// the noisy control to ctrlrange as in their env. Defaults 1, 1, 0 leave the
// model and the random stream untouched: the plain task bit for bit.
// density=D is their update_target_env_density: every density="N" of the XML
// becomes N * D before compiling (masses and inertias follow from the geoms);
// of our models only walker2d names a density (as Gymnasium's files), so the
// key is refused for the others, where the authors' edit changes nothing.
// Gymnasium applies an action by setting ctrl and calling mj_step frame_skip
// times (MujocoEnv.do_simulation); reset is mj_resetData, the noisy state, then
// mj_forward (MujocoEnv.set_state).
//
// MuJoCo reports fatal errors through mju_user_error, whose default ends the
// process; we install a handler that jumps back to the call that failed, and a
// warning handler that keeps the message (the default writes MUJOCO_LOG.TXT).
// When the state goes bad (NaN or huge values) MuJoCo itself resets the data
// and counts a warning; we turn that count into an error naming the step.
#include "ctrl/env.h"
#include "ctrl/mjcf_models.h"

#include <string.h>

#ifndef RLHF_HAVE_MUJOCO

int ctrl_env_mujoco_make(const char *name, ctrl_env *e, rlhf_err *err) {
    (void)e;
    return rlhf_fail(err, "env \"%s\": rlhf was built without MuJoCo (install libmujoco-dev)",
                     name);
}

int ctrl_env_mujoco_get_state(const ctrl_env *e, double *qpos, double *qvel) {
    (void)e, (void)qpos, (void)qvel;
    return -1;
}

int ctrl_env_mujoco_set_state(ctrl_env *e, const double *qpos, const double *qvel,
                              rlhf_err *err) {
    (void)qpos, (void)qvel;
    return rlhf_fail(err, "env \"%s\": rlhf was built without MuJoCo (install libmujoco-dev)",
                     e->name);
}

#else

#include <math.h>
#include <mujoco/mujoco.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const char *name;
    int frame_skip;
    double forward_reward_weight, ctrl_cost_weight;
    int has_health;         // hopper, walker2d: health check, reward and termination
    double healthy_reward;
    double z_low, z_high, angle_low, angle_high;
    int check_state;        // hopper: state_vector()[2:] within (state_low, state_high)
    double state_low, state_high;
    double qvel_clip;       // observation clips qvel to +-qvel_clip (0: no clip)
    double reset_noise;
    int qvel_noise_normal;  // halfcheetah: qvel noise reset_noise * N(0, 1)
    const char *model;      // the MJCF model's name (NULL: the task's own name)
    int obs_with_x;         // the observation starts with qpos[0] (NeoRL-2)
    double velocity_limit;  // > 0: cost 1 and reward over_limit_reward above it
    double over_limit_reward;
    double foot_friction_low, foot_friction_high;  // high > 0: the foot's friction drawn per
                                                   // reset, appended to the observation, no
                                                   // healthy reward, health read from the obs
} mujoco_task;

// defaults of the v4 constructors
static const mujoco_task mujoco_tasks[] = {
    {"hopper", 4, 1.0, 1e-3, 1, 1.0, 0.7, INFINITY, -0.2, 0.2, 1, -100.0, 100.0, 10.0, 5e-3, 0},
    {"walker2d", 4, 1.0, 1e-3, 1, 1.0, 0.8, 2.0, -1.0, 1.0, 0, 0.0, 0.0, 10.0, 5e-3, 0},
    {"halfcheetah", 5, 1.0, 0.1, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0, 0.1, 1},
    {"neorl-safety-halfcheetah", 5, 1.0, 0.1, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0, 0.1, 1,
     "halfcheetah", 1, 3.2096, -100.0},
    {"neorl-random-friction-hopper", 4, 1.0, 1e-3, 1, 0.0, 0.7, INFINITY, -0.2, 0.2, 1, -100.0,
     100.0, 10.0, 5e-3, 0, "hopper", 1, 0.0, 0.0, 1.5, 2.5},
};

typedef struct {
    const mujoco_task *task;
    mjModel *m;
    mjData *d;
    double joint_noise;  // std of the noise added to each action (0: none)
    int diverged;        // the last step failed: only reset is allowed
    int foot;            // random friction: the foot geom's index
    double friction_scale;  // random friction: the friction= setting (1: none)
    double foot_friction;   // random friction: this episode's draw (observed)
} mujoco_state;

// the dynamics-gap settings after "task:" (H2O's simulators)
enum { GAP_GRAVITY, GAP_FRICTION, GAP_JOINT_NOISE, GAP_DENSITY, GAP_KEYS };
static const char *const gap_keys[GAP_KEYS] = {"gravity", "friction", "joint_noise", "density"};
static const int gap_zero_ok[GAP_KEYS] = {0, 0, 1, 0};

// ---- MuJoCo's error and warning hooks ----

static _Thread_local jmp_buf *mujoco_jump;  // where a MuJoCo error returns to
static _Thread_local char mujoco_message[256];

static void on_mujoco_error(const char *msg) {
    snprintf(mujoco_message, sizeof mujoco_message, "%s", msg);
    if (mujoco_jump) longjmp(*mujoco_jump, 1);
}

static void on_mujoco_warning(const char *msg) {
    snprintf(mujoco_message, sizeof mujoco_message, "%s", msg);
}

// installs our hooks unless the program using the library installed its own
static void mujoco_install_hooks(void) {
    if (!mju_user_error) mju_user_error = on_mujoco_error;
    if (!mju_user_warning) mju_user_warning = on_mujoco_warning;
}

// mj_step n times (n > 0) or mj_forward once (n == 0); -1 when MuJoCo raised an
// error (the message is in mujoco_message)
static int mujoco_advance(const mjModel *m, mjData *d, int n) {
    jmp_buf here;
    jmp_buf *outer = mujoco_jump;
    if (setjmp(here)) {
        mujoco_jump = outer;
        return -1;
    }
    mujoco_jump = &here;
    if (n == 0) mj_forward(m, d);
    for (int i = 0; i < n; i++) mj_step(m, d);
    mujoco_jump = outer;
    return 0;
}

// the model from its MJCF string through MuJoCo's virtual file system; NULL
// and `msg` filled on failure
static mjModel *mujoco_load(const char *name, const char *xml, char *msg, int msg_size) {
    char file[80];
    snprintf(file, sizeof file, "rlhf_%s.xml", name);
    mjVFS *vfs = xcalloc(1, sizeof *vfs);  // ~2 MB of file-name slots: not on the stack
    mj_defaultVFS(vfs);
    mjModel *volatile m = NULL;
    int size = (int)strlen(xml);
    if (mj_makeEmptyFileVFS(vfs, file, size) != 0) {
        snprintf(msg, (size_t)msg_size, "cannot make the in-memory file %s", file);
    } else {
        memcpy(vfs->filedata[mj_findFileVFS(vfs, file)], xml, (size_t)size);
        jmp_buf here;
        jmp_buf *outer = mujoco_jump;
        msg[0] = 0;
        if (setjmp(here)) {
            snprintf(msg, (size_t)msg_size, "%s", mujoco_message);
        } else {
            mujoco_jump = &here;
            m = mj_loadXML(file, vfs, msg, msg_size);
        }
        mujoco_jump = outer;
    }
    mj_deleteVFS(vfs);
    free(vfs);
    return m;
}

// ---- the Gymnasium v4 rules ----

static int mujoco_bad_number_warnings(const mjData *d) {
    return d->warning[mjWARN_BADQPOS].number + d->warning[mjWARN_BADQVEL].number +
           d->warning[mjWARN_BADQACC].number + d->warning[mjWARN_BADCTRL].number;
}

// obs (nq - 1 + nv): qpos[1:] (all of qpos with obs_with_x), then qvel
// (clipped where the task says so)
static void mujoco_observe(const mujoco_state *s, float *obs) {
    const mjModel *m = s->m;
    const mjData *d = s->d;
    double clip = s->task->qvel_clip;
    int k = 0;
    for (int i = s->task->obs_with_x ? 0 : 1; i < m->nq; i++) obs[k++] = (float)d->qpos[i];
    for (int i = 0; i < m->nv; i++) {
        double v = d->qvel[i];
        if (clip > 0) v = v < -clip ? -clip : v > clip ? clip : v;
        obs[k++] = (float)v;
    }
    if (s->task->foot_friction_high > 0) obs[k++] = (float)s->foot_friction;
}

// hopper_v4.py / walker2d_v4.py is_healthy (strict inequalities, as there)
static int mujoco_is_healthy(const mujoco_state *s) {
    const mujoco_task *k = s->task;
    if (!k->has_health) return 1;
    const mjModel *m = s->m;
    const mjData *d = s->d;
    double z = d->qpos[1], angle = d->qpos[2];
    if (!(k->z_low < z && z < k->z_high)) return 0;
    if (!(k->angle_low < angle && angle < k->angle_high)) return 0;
    if (k->check_state) {
        for (int i = 2; i < m->nq + m->nv; i++) {
            double v = i < m->nq ? d->qpos[i] : d->qvel[i - m->nq];
            if (!(k->state_low < v && v < k->state_high)) return 0;
        }
    }
    return 1;
}

// NeoRL-2's RandomFrictionHopper health, read from its (float64) observation:
// z, angle, then every later entry (qpos[3:], the clipped qvel, the friction)
static int mujoco_obs_healthy(const mujoco_state *s) {
    const mujoco_task *k = s->task;
    const mjModel *m = s->m;
    const mjData *d = s->d;
    double z = d->qpos[1], angle = d->qpos[2], clip = k->qvel_clip;
    if (!(k->z_low < z && z < k->z_high && k->angle_low < angle && angle < k->angle_high)) return 0;
    for (int i = 3; i < m->nq + m->nv + 1; i++) {
        double v = i < m->nq ? d->qpos[i] : i < m->nq + m->nv ? d->qvel[i - m->nq] : s->foot_friction;
        if (i >= m->nq && i < m->nq + m->nv) v = v < -clip ? -clip : v > clip ? clip : v;
        if (!(k->state_low < v && v < k->state_high)) return 0;
    }
    return 1;
}

static int mujoco_fail_state(ctrl_env *e, const char *when, rlhf_err *err) {
    mujoco_state *s = e->state;
    s->diverged = 1;
    return rlhf_fail(err,
                     "env \"%s\": %s %d: the MuJoCo simulation diverged (NaN or huge state%s%s); "
                     "reset the environment",
                     e->name, when, e->t, mujoco_message[0] ? ": " : "", mujoco_message);
}

// NeoRL-2's random friction: f ~ U(low, high) observed, round(f, 2) simulated
// ("%.2f" and back, as their file names), times the friction= setting
static void mujoco_draw_friction(ctrl_env *e) {
    mujoco_state *s = e->state;
    const mujoco_task *k = s->task;
    double u = (double)(rng_u64(&e->rng) >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
    s->foot_friction = k->foot_friction_low + (k->foot_friction_high - k->foot_friction_low) * u;
    char two[32];
    snprintf(two, sizeof two, "%.2f", s->foot_friction);
    s->m->geom_friction[3 * s->foot] = strtod(two, NULL) * s->friction_scale;
}

static int mujoco_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    mujoco_state *s = e->state;
    const mujoco_task *k = s->task;
    const mjModel *m = s->m;
    mjData *d = s->d;
    if (k->foot_friction_high > 0) mujoco_draw_friction(e);
    mj_resetData(m, d);
    double lo = -k->reset_noise, hi = k->reset_noise;
    // numpy's uniform(low, high) is low + (high - low) * u
    for (int i = 0; i < m->nq; i++)
        d->qpos[i] = m->qpos0[i] + (lo + (hi - lo) * (double)rng_uniform(&e->rng));
    for (int i = 0; i < m->nv; i++)
        d->qvel[i] = k->qvel_noise_normal ? k->reset_noise * (double)rng_normal(&e->rng)
                                          : lo + (hi - lo) * (double)rng_uniform(&e->rng);
    mujoco_message[0] = 0;
    if (mujoco_advance(m, d, 0))
        return rlhf_fail(err, "env \"%s\": reset: MuJoCo error: %s", e->name, mujoco_message);
    s->diverged = 0;
    mujoco_observe(s, obs);
    return 0;
}

static int mujoco_step(ctrl_env *e, const float *action, float *obs, ctrl_step_info *info,
                       rlhf_err *err) {
    mujoco_state *s = e->state;
    const mujoco_task *k = s->task;
    const mjModel *m = s->m;
    mjData *d = s->d;
    if (s->diverged)
        return rlhf_fail(err, "env \"%s\": step %d after the simulation diverged; reset first",
                         e->name, e->t);
    double ctrl_cost = 0;
    for (int i = 0; i < m->nu; i++) {
        double a = (double)action[i];
        if (s->joint_noise > 0) a += s->joint_noise * (double)rng_normal(&e->rng);
        d->ctrl[i] = a;
        ctrl_cost += a * a;
    }
    ctrl_cost *= k->ctrl_cost_weight;
    double x_before = d->qpos[0];
    int warnings = mujoco_bad_number_warnings(d);
    mujoco_message[0] = 0;
    if (mujoco_advance(m, d, k->frame_skip)) {
        s->diverged = 1;
        return rlhf_fail(err, "env \"%s\": step %d: MuJoCo error: %s", e->name, e->t,
                         mujoco_message);
    }
    if (mujoco_bad_number_warnings(d) != warnings) return mujoco_fail_state(e, "step", err);
    for (int i = 0; i < m->nq; i++)
        if (!isfinite(d->qpos[i])) return mujoco_fail_state(e, "step", err);
    for (int i = 0; i < m->nv; i++)
        if (!isfinite(d->qvel[i])) return mujoco_fail_state(e, "step", err);

    double dt = m->opt.timestep * k->frame_skip;
    double x_velocity = (d->qpos[0] - x_before) / dt;
    int healthy = mujoco_is_healthy(s);
    // terminate_when_unhealthy is true: the healthy reward is paid on every step
    double reward = k->forward_reward_weight * x_velocity + k->healthy_reward - ctrl_cost;
    int over = k->velocity_limit > 0 && x_velocity > k->velocity_limit;
    info->reward = (float)(over ? k->over_limit_reward : reward);
    info->cost = over ? 1.0f : 0.0f;
    info->terminated = !healthy;
    mujoco_observe(s, obs);
    if (k->foot_friction_high > 0) info->terminated = !mujoco_obs_healthy(s);
    return 0;
}

static void mujoco_free(ctrl_env *e) {
    mujoco_state *s = e->state;
    if (!s) return;
    if (s->d) mj_deleteData(s->d);
    if (s->m) mj_deleteModel(s->m);
    free(s);
    e->state = NULL;
}

static const ctrl_env_ops mujoco_ops = {
    .reset = mujoco_reset,
    .step = mujoco_step,
    .free = mujoco_free,
};

// name ("task" or "task:KEY=V,...") -> its task and the gap settings in gap
static const mujoco_task *mujoco_find(const char *name, double *gap, rlhf_err *err) {
    const char *colon = strchr(name, ':');
    size_t len = colon ? (size_t)(colon - name) : strlen(name);
    const mujoco_task *k = NULL;
    for (size_t i = 0; i < sizeof mujoco_tasks / sizeof mujoco_tasks[0]; i++)
        if (strlen(mujoco_tasks[i].name) == len && !strncmp(name, mujoco_tasks[i].name, len))
            k = &mujoco_tasks[i];
    if (!k || !ctrl_mjcf_model(k->model ? k->model : k->name)) {
        rlhf_fail(err,
                  "env \"%s\": not a MuJoCo task (known: hopper, halfcheetah, walker2d, "
                  "neorl-safety-halfcheetah, neorl-random-friction-hopper, each also as "
                  "TASK:gravity=G,friction=F,joint_noise=S; walker2d also density=D)",
                  name);
        return NULL;
    }
    gap[GAP_GRAVITY] = 1, gap[GAP_FRICTION] = 1, gap[GAP_JOINT_NOISE] = 0, gap[GAP_DENSITY] = 1;
    if (colon && ctrl_env_settings(name, colon + 1, gap_keys, GAP_KEYS, gap_zero_ok, gap,
                                   "hopper:gravity=2", err))
        return NULL;
    return k;
}

// H2O's modified simulator: gravity and every geom's sliding friction scaled
// (a factor of 1 leaves the model as loaded)
static void mujoco_apply_gap(mjModel *m, const double *gap) {
    if (gap[GAP_GRAVITY] != 1)
        for (int i = 0; i < 3; i++) m->opt.gravity[i] *= gap[GAP_GRAVITY];
    if (gap[GAP_FRICTION] != 1)
        for (int g = 0; g < m->ngeom; g++) m->geom_friction[3 * g] *= gap[GAP_FRICTION];
}

// H2O's density gap (utils_h2o.py update_target_env_density): every
// density="N" of the model's XML becomes N * scale before MuJoCo compiles it,
// so masses and inertias (inferred from the geoms) follow. A fresh string, or
// NULL with err set when the model names no density (Gymnasium's hopper and
// half_cheetah files do not either: the authors' edit leaves them unchanged).
static char *mujoco_scaled_density(const char *name, const char *xml, double scale, rlhf_err *err) {
    static const char key[] = "density=\"";
    size_t cap = strlen(xml) + 1;
    for (const char *p = strstr(xml, key); p; p = strstr(p + 1, key)) cap += 32;
    char *out = xmalloc(cap), *o = out;
    int found = 0;
    for (const char *p = xml;;) {
        const char *q = strstr(p, key);
        if (!q) {
            strcpy(o, p);
            break;
        }
        q += sizeof key - 1;
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        char *end;
        double v = strtod(q, &end);
        o += snprintf(o, 32, "%.17g", v * scale);
        p = end;
        found++;
    }
    if (!found) {
        free(out);
        rlhf_fail(err,
                  "env \"%s\": density= scales the density attributes of the task's MJCF, as the "
                  "H2O authors' code does to the XML, and this model names none (its masses come "
                  "from MuJoCo's default; only walker2d names one)",
                  name);
        return NULL;
    }
    return out;
}

int ctrl_env_mujoco_make(const char *name, ctrl_env *e, rlhf_err *err) {
    double gap[GAP_KEYS];
    const mujoco_task *k = mujoco_find(name, gap, err);
    if (!k) return -1;
    const char *xml = ctrl_mjcf_model(k->model ? k->model : k->name);
    char *scaled = NULL;
    if (gap[GAP_DENSITY] != 1 &&
        !(xml = scaled = mujoco_scaled_density(name, xml, gap[GAP_DENSITY], err)))
        return -1;
    mujoco_install_hooks();
    char msg[512];
    mjModel *m = mujoco_load(k->name, xml, msg, (int)sizeof msg);
    free(scaled);
    if (!m) return rlhf_fail(err, "env \"%s\": MuJoCo could not load our model: %s", name, msg);
    mujoco_apply_gap(m, gap);
    mjData *d = mj_makeData(m);
    if (!d) {
        mj_deleteModel(m);
        return rlhf_fail(err, "env \"%s\": MuJoCo could not allocate its data", name);
    }
    int obs_dim = m->nq - (k->obs_with_x ? 0 : 1) + m->nv + (k->foot_friction_high > 0);
    int foot = k->foot_friction_high > 0 ? mj_name2id(m, mjOBJ_GEOM, "foot") : 0;
    if (foot < 0) {
        mj_deleteData(d);
        mj_deleteModel(m);
        return rlhf_fail(err, "env \"%s\": the model has no geom named foot", name);
    }
    if (obs_dim > CTRL_MAX_DIM || m->nu > CTRL_MAX_DIM) {
        mj_deleteData(d);
        mj_deleteModel(m);
        return rlhf_fail(err, "env \"%s\": model too large for CTRL_MAX_DIM", name);
    }
    mujoco_state *s = xcalloc(1, sizeof *s);
    s->task = k;
    s->m = m;
    s->d = d;
    s->joint_noise = gap[GAP_JOINT_NOISE];
    s->foot = foot;
    s->friction_scale = gap[GAP_FRICTION];
    s->foot_friction = m->geom_friction[3 * foot];
    e->state = s;
    e->ops = &mujoco_ops;
    e->obs_dim = obs_dim;
    e->act_dim = m->nu;
    for (int i = 0; i < m->nu; i++) {
        e->act_low[i] = (float)m->actuator_ctrlrange[2 * i];
        e->act_high[i] = (float)m->actuator_ctrlrange[2 * i + 1];
    }
    e->max_episode_steps = 1000;  // Gymnasium's registration of the v4 tasks (and NeoRL-2's)
    e->has_cost = k->velocity_limit > 0;
    return 0;
}

int ctrl_env_mujoco_get_state(const ctrl_env *e, double *qpos, double *qvel) {
    const mujoco_state *s = e->state;
    if (!s || e->ops != &mujoco_ops) return -1;
    memcpy(qpos, s->d->qpos, sizeof(double) * (size_t)s->m->nq);
    memcpy(qvel, s->d->qvel, sizeof(double) * (size_t)s->m->nv);
    return 0;
}

int ctrl_env_mujoco_set_state(ctrl_env *e, const double *qpos, const double *qvel,
                              rlhf_err *err) {
    mujoco_state *s = e->state;
    if (!s || e->ops != &mujoco_ops)
        return rlhf_fail(err, "env \"%s\": not a MuJoCo environment", e->name);
    memcpy(s->d->qpos, qpos, sizeof(double) * (size_t)s->m->nq);
    memcpy(s->d->qvel, qvel, sizeof(double) * (size_t)s->m->nv);
    mujoco_message[0] = 0;
    if (mujoco_advance(s->m, s->d, 0))
        return rlhf_fail(err, "env \"%s\": set_state: MuJoCo error: %s", e->name, mujoco_message);
    s->diverged = 0;
    return 0;
}

#endif
