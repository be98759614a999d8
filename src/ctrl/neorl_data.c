// ctrl/neorl_data: the NeoRL-2-style tasks' expert controllers, behaviour
// data and reference returns (env_neorl.h). NeoRL-2 samples its datasets
// from sub-optimal policies at 50-80% of the expert's return (a trained agent
// or a PID controller); here the behaviour is the task's expert controller
// with Gaussian action noise whose default size puts the data in that band,
// and the references are the uniform random policy and the noise-free expert
// on the trainer's evaluation episodes.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/ctrl_train.h"
#include "ctrl/dataset.h"
#include "ctrl/env_neorl.h"
#include "io/file.h"

#define SIMGLUCOSE_NOISE 0.01

static float clampf(double x) { return x < -1 ? -1.0f : x > 1 ? 1.0f : (float)x; }

// the pipeline's gate flow is the sum of the downstream flow and the actions
// still in the channel; the expert reads it from the simulator (the same
// number for d <= 25, where the observation holds those actions)
static int pipeline_expert(const ctrl_env *e, const float *obs, float *act) {
    double s[4];
    if (ctrl_env_neorl_state(e, s, 4) < 4) return -1;
    act[0] = clampf(obs[1] - s[0]); // drive the gate flow to the target at full rate
    return 0;
}

// Gymnasium's LunarLander heuristic (continuous) without the legs' branch
static void rocket_expert(const float *s, float *act) {
    double angle_targ = s[0] * 0.5 + s[2] * 1.0;
    if (angle_targ > 0.4) angle_targ = 0.4;
    if (angle_targ < -0.4) angle_targ = -0.4;
    double hover_targ = 0.55 * fabs((double)s[0]);
    double angle_cmd = (angle_targ - s[4]) * 0.5 - s[5] * 1.0;
    double hover_cmd = (hover_targ - s[1]) * 0.5 - s[3] * 0.5;
    act[0] = clampf(hover_cmd * 20 - 1);
    act[1] = clampf(-angle_cmd * 20);
}

// PD per mass around the spring force that holds the targets:
// F = K T + kp (T - x) - kd v, K the stiffness matrix (2k, -k; -k, 2k), k = 2
static void dmsd_expert(const float *s, float *act) {
    const double k = 2.0, kp = 30.0, kd = 25.0;
    double T1 = s[4], T2 = s[5];
    double f1 = k * (2 * T1 - T2) + kp * (T1 - s[0]) - kd * s[2];
    double f2 = k * (2 * T2 - T1) + kp * (T2 - s[1]) - kd * s[3];
    act[0] = clampf(f1 / 30.0);
    act[1] = clampf(f2 / 30.0);
}

// a proportional basal: the patient's steady rate u2ss BW / 6000 U/min
// (obs[30], obs[1]) scaled by the CGM's excess over 140 mg/dL, mapped back
// through the task's a -> (a + 1) / 2 * 5 U/min
static void simglucose_expert(const float *s, float *act) {
    double basal = (double)s[30] * (double)s[1] / 6000;
    double gain = 1 + ((double)s[0] - 140) / 60;
    gain = gain < 0 ? 0 : gain > 3 ? 3 : gain;
    act[0] = clampf(2 * basal * gain / 5 - 1);
}

int ctrl_neorl_expert_act(const ctrl_env *e, const float *obs, float *act, rlhf_err *err) {
    switch (ctrl_env_neorl_task(e)) {
    case NEORL_PIPELINE:
        if (pipeline_expert(e, obs, act)) break;
        return 0;
    case NEORL_ROCKET: rocket_expert(obs, act); return 0;
    case NEORL_DMSD: dmsd_expert(obs, act); return 0;
    case NEORL_SIMGLUCOSE: simglucose_expert(obs, act); return 0;
    default: break;
    }
    return rlhf_fail(err, "env \"%s\": not a NeoRL task (%s)", e->name, ctrl_env_neorl_names());
}

void neorl_data_default_config(neorl_data_config *c) {
    memset(c, 0, sizeof *c);
    c->noise = -1;
    c->eval_episodes = 10;
}

// per task: the default behaviour noise and train episodes
static void task_defaults(neorl_task t, double *noise, int *episodes) {
    switch (t) {
    case NEORL_PIPELINE: *noise = 3.0, *episodes = 10; break; // 10000 rows
    case NEORL_ROCKET: *noise = 3.0, *episodes = 100; break;  // NeoRL-2's 100 trajectories
    case NEORL_SIMGLUCOSE: *noise = SIMGLUCOSE_NOISE, *episodes = 20; break; // 9600 rows
    default: *noise = 0.35, *episodes = 100; break;           // 10000 rows
    }
}

// episodes of expert + N(0, noise^2) (noise 0: the expert itself; noise < 0:
// uniform random actions) into t (may be NULL); their mean return
static int behaviour_episodes(ctrl_env *e, int episodes, double noise, uint64_t seed,
                              ctrl_transitions *t, double *mean, rlhf_err *err) {
    ctrl_env_seed(e, seed);
    rlhf_rng rng;
    rng_seed(&rng, seed ^ 0xbe4a710cULL);
    float obs[CTRL_MAX_DIM], next[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
    double sum = 0;
    for (int ep = 0; ep < episodes; ep++) {
        if (ctrl_env_reset(e, obs, err)) return -1;
        for (;;) {
            if (noise < 0) {
                for (int i = 0; i < e->act_dim; i++) a[i] = 2 * rng_uniform(&rng) - 1;
            } else {
                if (ctrl_neorl_expert_act(e, obs, a, err)) return -1;
                for (int i = 0; noise > 0 && i < e->act_dim; i++)
                    a[i] = clampf(a[i] + noise * rng_normal(&rng));
            }
            ctrl_step_info info;
            if (ctrl_env_step(e, a, next, &info, err)) return -1;
            sum += info.reward;
            if (t)
                ctrl_buffer_add(t, obs, a, info.reward, next, info.terminated, info.truncated,
                                info.cost);
            if (info.terminated || info.truncated) break;
            memcpy(obs, next, (size_t)e->obs_dim * sizeof(float));
        }
    }
    *mean = episodes ? sum / episodes : NAN;
    return 0;
}

static int write_split(const neorl_data_config *c, const char *level, const ctrl_transitions *t,
                       double rr, double re, rlhf_err *err) {
    ctrl_dataset_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.env, sizeof info.env, "%s", c->env);
    snprintf(info.level, sizeof info.level, "%s", level);
    info.ref_random_return = rr;
    info.ref_expert_return = re;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.hdf5", c->out, level);
    return ctrl_dataset_save(path, t, &info, err);
}

static int write_summary(const neorl_data_config *c, double noise, const neorl_data_result *r,
                         rlhf_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "env", c->env);
    cJSON_AddNumberToObject(o, "noise", noise);
    cJSON_AddNumberToObject(o, "ref_random_return", r->ref_random);
    cJSON_AddNumberToObject(o, "ref_expert_return", r->ref_expert);
    cJSON_AddNumberToObject(o, "train_rows", (double)r->train_rows);
    cJSON_AddNumberToObject(o, "val_rows", (double)r->val_rows);
    cJSON_AddNumberToObject(o, "train_return", r->data_return);
    cJSON_AddNumberToObject(o, "train_score", r->data_score);
    cJSON_AddNumberToObject(o, "val_return", r->val_return);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    char path[4400];
    snprintf(path, sizeof path, "%s/neorl.json", c->out);
    int rc = atomic_write_file(path, s, strlen(s), err);
    free(s);
    return rc;
}

int neorl_data_make(const neorl_data_config *c, neorl_data_result *r, rlhf_err *err) {
    memset(r, 0, sizeof *r);
    if (!c->env || strncmp(c->env, "neorl-", 6))
        return rlhf_fail(err, "--env must be a NeoRL task (%s)", ctrl_env_neorl_names());
    if (!c->out || !*c->out) return rlhf_fail(err, "--out is needed (a folder)");
    if (c->train_episodes < 0 || c->val_episodes < 0 || c->eval_episodes < 1)
        return rlhf_fail(err, "episode counts must be >= 0 (--eval_episodes >= 1)");
    ctrl_env *e = NULL;
    if (ctrl_env_make(c->env, &e, err)) return -1;
    double noise;
    int n_train;
    task_defaults(ctrl_env_neorl_task(e), &noise, &n_train);
    if (c->noise >= 0) noise = c->noise;
    if (c->train_episodes > 0) n_train = c->train_episodes;
    int n_val = c->val_episodes > 0 ? c->val_episodes : (n_train / 4 > 0 ? n_train / 4 : 1);
    long cap = (long)e->max_episode_steps;
    ctrl_transitions tr = {0}, va = {0};
    ctrl_transitions_alloc(&tr, e->obs_dim, e->act_dim, cap * n_train, 0);
    ctrl_transitions_alloc(&va, e->obs_dim, e->act_dim, cap * n_val, 0);
    int rc = make_dirs(c->out, err);
    uint64_t s = c->seed;
    if (!rc) rc = behaviour_episodes(e, c->eval_episodes, -1, s + 100, NULL, &r->ref_random, err);
    if (!rc) rc = behaviour_episodes(e, c->eval_episodes, 0, s + 100, NULL, &r->ref_expert, err);
    if (!rc) rc = behaviour_episodes(e, n_train, noise, s + 1, &tr, &r->data_return, err);
    if (!rc) rc = behaviour_episodes(e, n_val, noise, s + 2, &va, &r->val_return, err);
    r->train_rows = tr.n;
    r->val_rows = va.n;
    r->data_score = ctrl_normalized_score(r->data_return, r->ref_random, r->ref_expert);
    if (!rc) rc = write_split(c, "train", &tr, r->ref_random, r->ref_expert, err);
    if (!rc) rc = write_split(c, "val", &va, r->ref_random, r->ref_expert, err);
    if (!rc) rc = write_summary(c, noise, r, err);
    if (!rc && !c->quiet)
        printf("%s: random %.2f, expert %.2f; train %ld rows (%d episodes, mean return %.2f, "
               "normalized %.1f), val %ld rows (%d episodes, %.2f); noise %g\n",
               c->env, r->ref_random, r->ref_expert, tr.n, n_train, r->data_return,
               r->data_score, va.n, n_val, r->val_return, noise);
    ctrl_transitions_free(&tr);
    ctrl_transitions_free(&va);
    ctrl_env_free(e);
    return rc;
}
