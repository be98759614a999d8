// ctrl/hnpg_ckpt: HNPG's checkpoints (hnpg_internal.h), --resume, and `rlhf
// ctrl eval` of an HNPG checkpoint (ctrl_algo_hnpg.eval_checkpoint).
//
// A checkpoint folder (checkpoints/step-N, N the online steps done, or final;
// written as one unit by atomic_dir_open / atomic_dir_commit) holds the
// control trainer's two files:
//   agent.safetensors  "policy" (H, P): the H per-step linear-Gaussian
//                      policies [W, b, log_std]; "critic" (H, Q): the H
//                      critics' MLP parameters. There is no optimizer state
//                      to keep: every critic fit starts fresh Adam moments
//                      and the natural step has none.
//   state.json         step (online steps), iteration, online episodes, the
//                      solve bookkeeping and the last / best evaluation, the
//                      run's stream ("rng") and the training environment's
//                      ("env_rng": its episodes continue across iterations),
//                      what rebuilds the run (env, dataset, seed, every hnpg_*
//                      setting and critic_lr / hidden / layers in
//                      algo_config, eval_episodes, H, the sizes), and the
//                      offline data's identity: its row count and a CRC-32C
//                      of its observations, actions and rewards (the data is
//                      --dataset again, or the comblock episodes remade from
//                      --seed).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "ctrl/algo_common.h"
#include "ctrl/ctrl_train_internal.h"
#include "ctrl/env_comblock.h"
#include "ctrl/hnpg_internal.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "io/tfevents.h"

// the offline rows' CRC-32C (observations, actions, rewards; 0 without data)
static uint32_t offline_crc(const hnpg_run *t) {
    if (!t->have_off || t->off.n == 0) return 0;
    const ctrl_transitions *o = &t->off;
    uint32_t c[3] = {tfevents_crc32c(o->obs, sizeof(float) * (size_t)o->n * o->obs_dim),
                     tfevents_crc32c(o->act, sizeof(float) * (size_t)o->n * o->act_dim),
                     tfevents_crc32c(o->rew, sizeof(float) * (size_t)o->n)};
    return tfevents_crc32c(c, sizeof c);
}




static void fill_state(const hnpg_run *t, const hnpg_result *r, int final, cJSON *j) {
    const hnpg_config *c = t->c;
    cJSON_AddNumberToObject(j, "step", (double)r->online_steps);
    cJSON_AddStringToObject(j, "phase", final ? "final" : "iteration");
    // a final holds what a step checkpoint does: --resume extends a finished run from it
    if (final) cJSON_AddBoolToObject(j, "resumable", 1);
    cJSON_AddStringToObject(j, "algo", "hnpg");
    cJSON_AddStringToObject(j, "env", c->env);
    cJSON_AddNumberToObject(j, "obs_dim", t->S);
    cJSON_AddNumberToObject(j, "act_dim", t->A);
    cJSON_AddNumberToObject(j, "H", t->H);
    cJSON_AddNumberToObject(j, "policy_params", (double)t->np);
    cJSON_AddNumberToObject(j, "critic_params", (double)t->q[0].n_params);
    int lock = ctrl_env_is_comblock(c->env);
    ctrl_json_num_or_null(j, "ref_random_return", lock ? 0.05 : NAN);
    ctrl_json_num_or_null(j, "ref_expert_return", lock ? 1.0 : NAN);
    ctrl_algo_config_to_json(j, &c->train->algo_cfg);
    if (c->dataset && *c->dataset)
        cJSON_AddStringToObject(j, "dataset", c->dataset);
    else
        cJSON_AddNullToObject(j, "dataset");
    cJSON_AddNumberToObject(j, "offline_rows", t->have_off ? (double)t->off.n : 0);
    cJSON_AddNumberToObject(j, "offline_crc32c", (double)offline_crc(t));
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "online_steps", (double)c->online_steps);
    cJSON_AddNumberToObject(j, "eval_episodes", c->eval_episodes);
    cJSON_AddNumberToObject(j, "iteration", r->iterations);
    cJSON_AddNumberToObject(j, "online_episodes", (double)r->online_episodes);
    cJSON_AddNumberToObject(j, "solved", r->solved);
    cJSON_AddNumberToObject(j, "episodes_to_solve", (double)r->episodes_to_solve);
    cJSON_AddNumberToObject(j, "steps_to_solve", (double)r->steps_to_solve);
    ctrl_json_add_exact(j, "final_eval", r->final_eval);
    ctrl_json_add_exact(j, "final_eval_std", r->final_std);
    ctrl_json_add_exact(j, "best_eval", r->best_eval);
    ctrl_rng_to_json(j, "rng", &t->rng);
    ctrl_rng_to_json(j, "env_rng", &t->env->rng);
}

// the policies (H, P) and critics (H, Q) packed into one buffer (caller frees)
static float *pack_nets(const hnpg_run *t) {
    long P = t->np, Q = t->q[0].n_params;
    float *buf = xmalloc(sizeof(float) * (size_t)t->H * (size_t)(P + Q));
    for (int h = 0; h < t->H; h++) {
        memcpy(buf + h * P, t->theta[h], sizeof(float) * (size_t)P);
        memcpy(buf + t->H * P + h * Q, t->q[h].params, sizeof(float) * (size_t)Q);
    }
    return buf;
}

int hnpg_ckpt_save(const hnpg_run *t, const hnpg_result *r, int final, char *path, size_t n,
                   rlhf_err *err) {
    path[0] = 0;
    if (!t->c->train) return 0; // hnpg_train called directly: no checkpoints
    run_checkpoint_path(&t->run, final ? -1 : (int)r->online_steps, path, n);
    if (dist_rank() != 0) return 0; // MPI: rank 0 writes (the ranks hold the same state)
    char tmp[4600], p[4700];
    if (atomic_dir_open(path, tmp, sizeof tmp, err)) return -1;
    long P = t->np, Q = t->q[0].n_params;
    float *buf = pack_nets(t);
    st_tensor_desc d[2] = {{"policy", ST_F32, 2, {t->H, P}, buf, ST_NONE},
                           {"critic", ST_F32, 2, {t->H, Q}, buf + t->H * P, ST_NONE}};
    snprintf(p, sizeof p, "%s/agent.safetensors", tmp);
    int rc = st_write(p, d, 2, NULL, err);
    free(buf);
    cJSON *j = cJSON_CreateObject();
    fill_state(t, r, final, j);
    return ctrl_checkpoint_commit(tmp, path, j, rc, err);
}

// agent.safetensors of dir into t's policies (critics too: with_critics)
static int load_nets(hnpg_run *t, const char *dir, int with_critics, rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/agent.safetensors", dir);
    st_file f;
    if (st_open(&f, path, err)) return -1;
    long P = t->np, Q = t->q[0].n_params;
    float *buf = xmalloc(sizeof(float) * (size_t)t->H * (size_t)(P + Q));
    const char *names[2] = {"policy", "critic"};
    int rc = 0;
    for (int i = 0; i < 1 + with_critics && !rc; i++) {
        const st_entry *e = st_find(&f, names[i]);
        if (!e)
            rc = rlhf_fail(err, "%s: tensor \"%s\" is missing (not an HNPG checkpoint?)", path,
                           names[i]);
        else if ((rc = st_read_f32(&f, e, buf + i * t->H * P, (size_t)t->H * (i ? Q : P), err)))
            rlhf_fail_ctx(err, "%s", path);
    }
    for (int h = 0; h < t->H && !rc; h++) {
        memcpy(t->theta[h], buf + h * P, sizeof(float) * (size_t)P);
        if (with_critics)
            memcpy(t->q[h].params, buf + t->H * P + h * Q, sizeof(float) * (size_t)Q);
    }
    free(buf);
    st_close(&f);
    return rc;
}

// the HNPG settings of algo_config (every hnpg_* field, critic_lr, hidden,
// layers). A field the checkpoint lacks was added after it was written: the
// run had that field's default (--hnpg_critic_tanh 0, --hnpg_policy_hidden 0)
static int check_algo_fields(const hnpg_run *t, const cJSON *j, const char *path, rlhf_err *err) {
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive(j, "algo_config");
    const ctrl_algo_config *a = &t->c->train->algo_cfg;
    ctrl_algo_config dflt;
    memset(&dflt, 0, sizeof dflt);
    ctrl_algo_find("hnpg")->defaults(&dflt);
    for (const ctrl_algo_field *f = ctrl_algo_fields; f->name; f++) {
        if (strncmp(f->name, "hnpg_", 5) && strcmp(f->name, "critic_lr") &&
            strcmp(f->name, "hidden") && strcmp(f->name, "layers"))
            continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(saved, f->name);
        const char *p = (const char *)a + f->offset, *d = (const char *)&dflt + f->offset;
        double cur = f->is_int ? *(const int *)p : *(const float *)p;
        double was = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!v && cJSON_IsObject(saved)) was = f->is_int ? *(const int *)d : *(const float *)d;
        int same = f->is_int ? !isnan(was) && (int)was == (int)cur
                             : (isnan(was) && isnan(cur)) || (float)was == (float)cur;
        if (!same)
            return rlhf_fail(err,
                             "%s: the checkpoint was trained with --%s %g; this run has %g "
                             "(--resume continues the same run)",
                             path, f->name, was, cur);
    }
    return 0;
}

// this run's flags against the checkpoint's: --resume continues the same run
static int check_settings(const hnpg_run *t, const cJSON *j, const char *path, rlhf_err *err) {
    const hnpg_config *c = t->c;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    const char *flags[3] = {"env", "dataset", "seed"};
    const char *now[3] = {c->env, c->dataset, seed};
    for (int i = 0; i < 3; i++)
        if (strcmp(ctrl_json_str(j, flags[i]), now[i] ? now[i] : ""))
            return rlhf_fail(err,
                             "%s: the checkpoint was trained with --%s \"%s\"; this run has "
                             "\"%s\" (--resume continues the same run)",
                             path, flags[i], ctrl_json_str(j, flags[i]), now[i] ? now[i] : "");
    if (check_algo_fields(t, j, path, err)) return -1;
    int ee = (int)ctrl_json_num(j, "eval_episodes", -1);
    if (ee != c->eval_episodes)
        return rlhf_fail(err,
                         "%s: the checkpoint was trained with --eval_episodes %d; this run has %d "
                         "(its evaluations decide when the run is solved)",
                         path, ee, c->eval_episodes);
    long rows = (long)ctrl_json_num(j, "offline_rows", -1);
    uint32_t crc = (uint32_t)ctrl_json_num(j, "offline_crc32c", -1);
    long now_rows = t->have_off ? t->off.n : 0;
    if (rows != now_rows || crc != offline_crc(t))
        return rlhf_fail(err,
                         "%s: the checkpoint's offline data had %ld rows (CRC-32C %u); this run's "
                         "(--dataset \"%s\") has %ld (%u): not the same data",
                         path, rows, crc, c->dataset ? c->dataset : "", now_rows, offline_crc(t));
    if ((int)ctrl_json_num(j, "H", -1) != t->H ||
        (long)ctrl_json_num(j, "policy_params", -1) != t->np ||
        (long)ctrl_json_num(j, "critic_params", -1) != t->q[0].n_params)
        return rlhf_fail(err, "%s: H or the policies' / critics' sizes differ from this run's",
                         path);
    return 0;
}

// the counters and evaluations of r from state.json
static int load_counters(hnpg_result *r, const cJSON *j, const char *path, rlhf_err *err) {
    r->iterations = (int)ctrl_json_num(j, "iteration", -1);
    r->online_steps = (long)ctrl_json_num(j, "step", -1);
    r->online_episodes = (long)ctrl_json_num(j, "online_episodes", -1);
    r->solved = (int)ctrl_json_num(j, "solved", 0);
    r->episodes_to_solve = (long)ctrl_json_num(j, "episodes_to_solve", -1);
    r->steps_to_solve = (long)ctrl_json_num(j, "steps_to_solve", -1);
    r->final_eval = ctrl_json_exact(j, "final_eval");
    r->final_std = ctrl_json_exact(j, "final_eval_std");
    r->best_eval = ctrl_json_exact(j, "best_eval");
    if (r->iterations < 0 || r->online_steps < 0 || r->online_episodes < 0 ||
        !isfinite(r->final_eval) || !isfinite(r->best_eval) || !isfinite(r->final_std))
        return rlhf_fail(err,
                         "%s: iteration, step, online_episodes, final_eval, final_eval_std or "
                         "best_eval missing",
                         path);
    return 0;
}

int hnpg_ckpt_resume(hnpg_run *t, hnpg_result *r, const char *dir, rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    if (!t->c->train) return rlhf_fail(err, "%s: hnpg: resuming needs the trainer's settings", path);
    cJSON *j = ctrl_read_json(path, err);
    if (!j) return -1;
    int rc = -1;
    if (strcmp(ctrl_json_str(j, "algo"), "hnpg"))
        rlhf_fail(err, "%s: a checkpoint of --algo %s, not hnpg (--resume continues the same run)",
                  path, ctrl_json_str(j, "algo"));
    else if (!check_settings(t, j, path, err) && !load_nets(t, dir, 1, err) &&
             !ctrl_rng_from_json(j, "rng", &t->rng, path, err) &&
             !ctrl_rng_from_json(j, "env_rng", &t->env->rng, path, err))
        rc = load_counters(r, j, path, err);
    cJSON_Delete(j);
    return rc;
}

// ------------------------------------------------------------ ctrl eval --

int ctrl_hnpg_eval_checkpoint(const char *dir, const char *env, int episodes, uint64_t seed,
                              double *mean, double *std, double *ref_random, double *ref_expert,
                              rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(path, err);
    if (!j) return -1;
    ctrl_train_config c;
    ctrl_train_default_config(&c, "hnpg");
    c.env = env && *env ? env : ctrl_json_str(j, "env");
    c.seed = strtoull(ctrl_json_str(j, "seed"), NULL, 10);
    ctrl_algo_config_from_json(j, &c.algo_cfg);
    hnpg_config h;
    hnpg_config_from_train(&c, &h);
    h.output_dir = NULL, h.quiet = 1, h.eval_episodes = episodes;
    hnpg_run t;
    memset(&t, 0, sizeof t);
    t.c = &h;
    int rc = hnpg_run_nets(&t, err) ? rlhf_fail_ctx(err, "--env") : 0;
    int S = (int)ctrl_json_num(j, "obs_dim", 0), A = (int)ctrl_json_num(j, "act_dim", 0);
    int H = (int)ctrl_json_num(j, "H", 0);
    if (!rc && (S != t.S || A != t.A || H != t.H))
        rc = rlhf_fail(err,
                       "%s: the policies take %d observations, give %d actions over %d steps; "
                       "environment %s has %d, %d and %d",
                       path, S, A, H, c.env, t.S, t.A, t.H);
    if (!rc) rc = load_nets(&t, dir, 0, err);
    if (!rc) rc = hnpg_evaluate(&t, seed, mean, std, err);
    *ref_random = ctrl_json_num(j, "ref_random_return", NAN);
    *ref_expert = ctrl_json_num(j, "ref_expert_return", NAN);
    hnpg_run_free(&t);
    cJSON_Delete(j);
    return rc;
}
