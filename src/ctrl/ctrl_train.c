// ctrl/ctrl_train: the offline-to-online trainer (see ctrl_train.h for the
// protocol). It knows no algorithm by name: ctrl_algo_find gives the table, and
// an agent is checkpointed through its `tensors`. The run directory follows the
// language-model trainers (train/run.h); a checkpoint folder holds
// agent.safetensors (the agent's spans and the observation normalisation),
// state.json (step, random streams, log accumulators, the algorithm's settings,
// action bounds) and, in the online phase, online_buffer.safetensors (written
// and read by ctrl_eval.c).
#include "ctrl/ctrl_train.h"
#include "ctrl/ctrl_train_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "ctrl/dataset.h"
#include "ctrl/mlp.h"
#include "io/file.h"
#include "rlhf.h"
#include "train/run.h"

void ctrl_train_default_config(ctrl_train_config *c, const char *algo) {
    memset(c, 0, sizeof *c);
    c->algo = algo;
    c->offline_steps = 0;
    c->online_steps = 0;
    c->batch_size = 256;
    c->seed = 0;
    c->eval_every = 5000;
    c->eval_episodes = 10;
    c->log_every = 1000;
    c->save_every = 10000;
    c->mix_ratio = 0.5f;
    c->buffer_size = 1000000;
    c->start_steps = -1;
    c->utd = 1;
    c->retain_offline = 1;
    c->warmup_steps = 0;
    c->online_batch_size = 0;
    c->offline_algo = NULL;
    c->normalize_obs = 1;
    c->reward_norm = "none";
    c->reward_scale = 1.0f;
    c->reward_bias = 0.0f;
    c->ref_random_return = NAN;
    c->ref_expert_return = NAN;
    c->algo_cfg.target_entropy = NAN;
    const ctrl_algo *a = algo ? ctrl_algo_find(algo) : NULL;
    if (a) a->defaults(&c->algo_cfg);
    // the recipes: a method that is a protocol around an update as much as the
    // update itself. WSRL (Zhou et al. 2024; their finetune.py and launch
    // scripts): Cal-QL pre-training, no offline data online, 5000 warm-up
    // steps of the pre-trained policy, online batches of 1024 (cut into
    // policy_freq = 4 critic minibatches by the wsrl update: UTD 4)
    if (algo && !strcmp(algo, "wsrl")) {
        c->offline_algo = "calql";
        c->retain_offline = 0;
        c->warmup_steps = 5000;
        c->online_batch_size = 1024;
    }
}

void ctrl_train_result_free(ctrl_train_result *r) {
    if (!r) return;
    free(r->eval_step);
    free(r->eval_mean);
    free(r->eval_std);
    r->eval_step = NULL;
    r->eval_mean = r->eval_std = NULL;
    r->n_evals = 0;
}

// --------------------------------------------------------------- helpers --

static int is_set(const char *s) {
    return s && *s;
}

// -------------------------------------------------------------- the run --

#define MAX_LOG 48

typedef struct {
    const ctrl_train_config *c;
    const ctrl_algo *algo;                  // the agent's (current phase)
    const ctrl_algo *online_algo, *off_algo; // --algo, --offline_algo (or --algo)
    ctrl_algo_config cfg;
    void *agent;
    ctrl_env *env, *eval_env;
    ctrl_transitions offline, online;
    int have_offline, have_online;
    ctrl_dataset_info info;
    ctrl_obs_norm norm;
    float reward_mul; // --reward_norm returns' factor (1 otherwise)
    double ref_random, ref_expert;
    ctrl_batch batch;
    rlhf_rng rng; // the run's stream: batches, exploration, the algorithm's noise
    run_dir run;
    int total, step, start_steps;
    long updates;
    // log accumulators since the last metrics line (saved with checkpoints)
    int n_log;
    char *log_name[MAX_LOG];
    double log_sum[MAX_LOG];
    long log_count[MAX_LOG];
    double ep_sum; // returns of online episodes finished since the last line
    long ep_count, episodes;
    // the episode in progress (online)
    int in_episode;
    double ep_return;
    float obs[CTRL_MAX_DIM]; // normalised
    ctrl_train_result *res;
    char resume_from[4400];
    double t_start;
} trainer;

static void log_add(trainer *t, const char *name, double v) {
    int i = 0;
    while (i < t->n_log && strcmp(t->log_name[i], name)) i++;
    if (i == t->n_log) {
        if (t->n_log == MAX_LOG) return;
        t->log_name[i] = strdup(name);
        t->log_sum[i] = 0;
        t->log_count[i] = 0;
        t->n_log++;
    }
    t->log_sum[i] += v;
    t->log_count[i]++;
}

static void write_log_line(trainer *t) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "step", t->step);
    cJSON_AddStringToObject(j, "phase", t->step <= t->c->offline_steps ? "offline" : "online");
    cJSON_AddNumberToObject(j, "updates", (double)t->updates);
    for (int i = 0; i < t->n_log; i++)
        if (t->log_count[i]) {
            cJSON_AddNumberToObject(j, t->log_name[i], t->log_sum[i] / (double)t->log_count[i]);
            t->log_sum[i] = 0;
            t->log_count[i] = 0;
        }
    if (t->step > t->c->offline_steps) {
        cJSON_AddNumberToObject(j, "online/episodes", (double)t->episodes);
        if (t->ep_count)
            cJSON_AddNumberToObject(j, "online/episode_return", t->ep_sum / (double)t->ep_count);
        t->ep_sum = 0;
        t->ep_count = 0;
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    run_log(&t->run, s);
    free(s);
}

// phase: "offline" (no online step taken yet), "online" (the checkpoint holds
// the online buffer) or "final" (the end of the run; "resumable": it holds the
// online buffer past the offline phase, as a step checkpoint does; finals from
// before 2026-12-06 hold a policy only)
static void fill_state(trainer *t, int final, cJSON *j) {
    const ctrl_train_config *c = t->c;
    cJSON_AddNumberToObject(j, "step", t->step);
    cJSON_AddStringToObject(j, "phase",
                            final                        ? "final"
                            : t->step > c->offline_steps ? "online"
                                                         : "offline");
    // a final checkpoint holds the whole state too (with the online buffer past the
    // offline phase): --resume extends the finished run from it
    if (final) cJSON_AddBoolToObject(j, "resumable", 1);
    cJSON_AddNumberToObject(j, "offline_steps", c->offline_steps);
    cJSON_AddStringToObject(j, "algo", t->algo->name);
    cJSON_AddStringToObject(j, "env", c->env);
    cJSON_AddNumberToObject(j, "obs_dim", t->env->obs_dim);
    cJSON_AddNumberToObject(j, "act_dim", t->env->act_dim);
    cJSON *lo = cJSON_AddArrayToObject(j, "act_low"), *hi = cJSON_AddArrayToObject(j, "act_high");
    for (int i = 0; i < t->env->act_dim; i++) {
        cJSON_AddItemToArray(lo, cJSON_CreateNumber(t->env->act_low[i]));
        cJSON_AddItemToArray(hi, cJSON_CreateNumber(t->env->act_high[i]));
    }
    ctrl_json_num_or_null(j, "ref_random_return", t->ref_random);
    ctrl_json_num_or_null(j, "ref_expert_return", t->ref_expert);
    ctrl_algo_config_to_json(j, &t->cfg);
    cJSON_AddNumberToObject(j, "updates", (double)t->updates);
    cJSON_AddNumberToObject(j, "episodes", (double)t->episodes);
    ctrl_rng_to_json(j, "rng", &t->rng);
    ctrl_rng_to_json(j, "env_rng", &t->env->rng);
    // accumulators as exact decimal strings, so a resumed run's lines are the same
    cJSON *acc = cJSON_AddArrayToObject(j, "log_acc");
    for (int i = 0; i < t->n_log; i++) {
        cJSON *e = cJSON_CreateObject();
        char b[40];
        cJSON_AddStringToObject(e, "name", t->log_name[i]);
        snprintf(b, sizeof b, "%.17g", t->log_sum[i]);
        cJSON_AddStringToObject(e, "sum", b);
        cJSON_AddNumberToObject(e, "count", (double)t->log_count[i]);
        cJSON_AddItemToArray(acc, e);
    }
    char b[40];
    snprintf(b, sizeof b, "%.17g", t->ep_sum);
    cJSON_AddStringToObject(j, "episode_return_sum", b);
    cJSON_AddNumberToObject(j, "episode_return_count", (double)t->ep_count);
}

// --resume with a network layout flag other than the checkpoint's: refused by
// the flag's name before its tensors are read (their sizes would differ)
static int check_resume_layout(const trainer *t, const char *dir, rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(path, err);
    if (!j) return -1;
    ctrl_algo_config saved = t->cfg;
    ctrl_algo_config_from_json(j, &saved);
    cJSON_Delete(j);
    static const char *const flag[2] = {"critic_layer_norm", "actor_layer_norm"};
    const int was[2] = {saved.critic_layer_norm, saved.actor_layer_norm};
    const int now[2] = {t->cfg.critic_layer_norm, t->cfg.actor_layer_norm};
    for (int i = 0; i < 2; i++)
        if (was[i] != now[i])
            return rlhf_fail(err,
                             "%s: the checkpoint was trained with --%s %d; this run has %d "
                             "(--resume continues the same run: give the same value)",
                             path, flag[i], was[i], now[i]);
    return 0;
}

static int read_state(trainer *t, const char *dir, rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(path, err);
    if (!j) return -1;
    int rc = -1;
    const cJSON *algo = cJSON_GetObjectItemCaseSensitive(j, "algo");
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(j, "env");
    if (!cJSON_IsString(algo) || strcmp(algo->valuestring, t->algo->name) || !cJSON_IsString(env) ||
        strcmp(env->valuestring, t->c->env)) {
        rlhf_fail(err,
                  "%s: the checkpoint is of --algo %s --env %s; this run is --algo %s --env "
                  "%s (--resume continues the same run)",
                  path, cJSON_IsString(algo) ? algo->valuestring : "?",
                  cJSON_IsString(env) ? env->valuestring : "?", t->algo->name, t->c->env);
        goto done;
    }
    t->step = (int)ctrl_json_num(j, "step", -1);
    t->updates = (long)ctrl_json_num(j, "updates", 0);
    t->episodes = (long)ctrl_json_num(j, "episodes", 0);
    if (t->step < 0 || t->step > t->total) {
        rlhf_fail(err, "%s: step %d is outside this run's %d steps", path, t->step, t->total);
        goto done;
    }
    // the offline phase may grow only while the run is still in it
    int was_offline = (int)ctrl_json_num(j, "offline_steps", -1);
    if (was_offline >= 0 && was_offline != t->c->offline_steps &&
        t->step > (was_offline < t->c->offline_steps ? was_offline : t->c->offline_steps)) {
        rlhf_fail(err,
                  "%s: the run took %d offline steps and is past them (step %d); this run "
                  "has --offline_steps %d (--resume continues the same run: give %d)",
                  path, was_offline, t->step, t->c->offline_steps, was_offline);
        goto done;
    }
    if (ctrl_rng_from_json(j, "rng", &t->rng, path, err) ||
        ctrl_rng_from_json(j, "env_rng", &t->env->rng, path, err))
        goto done;
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(j, "log_acc"), *e;
    cJSON_ArrayForEach(e, acc) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *sm = cJSON_GetObjectItemCaseSensitive(e, "sum");
        if (!cJSON_IsString(nm) || !cJSON_IsString(sm) || t->n_log == MAX_LOG) continue;
        int i = t->n_log++;
        t->log_name[i] = strdup(nm->valuestring);
        t->log_sum[i] = strtod(sm->valuestring, NULL);
        t->log_count[i] = (long)ctrl_json_num(e, "count", 0);
    }
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(j, "episode_return_sum");
    t->ep_sum = cJSON_IsString(es) ? strtod(es->valuestring, NULL) : 0;
    t->ep_count = (long)ctrl_json_num(j, "episode_return_count", 0);
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

// checkpoints/step-N (step >= 0) or final: the agent, the state and, past the
// offline phase, the online buffer
static int save_checkpoint(trainer *t, int final, char *path, size_t n, rlhf_err *err) {
    run_checkpoint_path(&t->run, final ? -1 : t->step, path, n);
    if (!ctrl_dist_writer()) return 0;  // MPI: rank 0 writes (the ranks hold the same state)
    char tmp[4600], p[4700];
    if (atomic_dir_open(path, tmp, sizeof tmp, err)) return -1;
    snprintf(p, sizeof p, "%s/agent.safetensors", tmp);
    int rc = ctrl_agent_save(p, t->algo, t->agent, &t->norm, err);
    cJSON *j = cJSON_CreateObject();
    fill_state(t, final, j);
    snprintf(p, sizeof p, "%s/state.json", tmp);
    if (!rc) rc = ctrl_write_json(p, j, err);
    cJSON_Delete(j);
    if (!rc && t->step > t->c->offline_steps) {
        snprintf(p, sizeof p, "%s/online_buffer.safetensors", tmp);
        rc = ctrl_online_buffer_save(p, &t->online, err);
    }
    if (rc) {
        remove_tree(tmp);
        return -1;
    }
    return atomic_dir_commit(tmp, path, err);
}

// an evaluation line (and the result's history)
static int evaluate(trainer *t, rlhf_err *err) {
    ctrl_policy p = {.algo = t->algo,
                     .agent = t->agent,
                     .norm = t->norm,
                     .obs_dim = t->env->obs_dim,
                     .act_dim = t->env->act_dim};
    double mean = 0, std = 0;
    // the same episodes at every evaluation (CORL seeds its eval env the same way each time);
    // on MPI ranks rank 0 evaluates and sends the figures on
    int rc = ctrl_dist_writer() ? ctrl_evaluate(t->eval_env, &p, t->c->eval_episodes,
                                                t->c->seed + 100, 1, &mean, &std, err)
                                : 0;
    ctrl_dist_eval_result(&rc, &mean, &std);
    if (rc) return ctrl_dist_writer() ? -1 : rlhf_fail(err, "the evaluation failed on rank 0");
    double score = ctrl_normalized_score(mean, t->ref_random, t->ref_expert);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "step", t->step);
    cJSON_AddNumberToObject(j, "eval/return_mean", mean);
    cJSON_AddNumberToObject(j, "eval/return_std", std);
    cJSON_AddNumberToObject(j, "eval/episodes", t->c->eval_episodes);
    if (isfinite(score)) cJSON_AddNumberToObject(j, "eval/normalized_score", score);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    run_log(&t->run, s);
    free(s);
    ctrl_train_result *r = t->res;
    if (r) {
        r->eval_step = xrealloc(r->eval_step, (size_t)(r->n_evals + 1) * sizeof(int));
        r->eval_mean = xrealloc(r->eval_mean, (size_t)(r->n_evals + 1) * sizeof(double));
        r->eval_std = xrealloc(r->eval_std, (size_t)(r->n_evals + 1) * sizeof(double));
        r->eval_step[r->n_evals] = t->step;
        r->eval_mean[r->n_evals] = mean;
        r->eval_std[r->n_evals] = std;
        r->n_evals++;
        r->final_mean = mean;
        r->final_std = std;
        r->final_score = score;
    }
    return 0;
}

static int online_batch_rows(const ctrl_train_config *c) {
    return c->online_batch_size > 0 ? c->online_batch_size : c->batch_size;
}

// The online algorithm's agent takes over from the offline one (a recipe's
// phase switch, at the first online step): created with the run's settings
// from a stream of its own (the run's stream stays as an uninterrupted run
// and a resumed one see it), then every tensor of the same name is copied —
// networks, targets, Adam moments, counters. A tensor of the same name and
// another size is an error (the phases must agree on --hidden, --layers,
// --n_critics); one the offline agent lacks keeps its initial value.
static int switch_agent(trainer *t, rlhf_err *err) {
    if (t->algo == t->online_algo) return 0;
    const ctrl_env *e = t->env;
    rlhf_rng init;
    rng_seed(&init, t->c->seed ^ 0x5753524c2d737774ULL);
    void *next = NULL;
    if (t->online_algo->create(&t->cfg, e->obs_dim, e->act_dim, e->act_low, e->act_high, &init,
                               &next, err))
        return -1;
    ctrl_tensor from[32], to[32];
    int nf = t->algo->tensors(t->agent, from, 32), nt = t->online_algo->tensors(next, to, 32);
    int copied = 0;
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < nf; j++) {
            if (strcmp(to[i].name, from[j].name)) continue;
            if (to[i].n != from[j].n) {
                rlhf_fail(err,
                          "the switch from --offline_algo %s to --algo %s: tensor %s holds %ld "
                          "floats in %s and %ld in %s (both phases need the same --hidden, "
                          "--layers, --n_critics)",
                          t->algo->name, t->online_algo->name, to[i].name, from[j].n,
                          t->algo->name, to[i].n, t->online_algo->name);
                t->online_algo->free(next);
                return -1;
            }
            memcpy(to[i].data, from[j].data, (size_t)to[i].n * sizeof(float));
            copied++;
        }
    if (!t->c->quiet)
        fprintf(stderr, "\nctrl train: step %d: %s takes over from %s (%d of its %d tensors "
                        "carried over)\n",
                t->step, t->online_algo->name, t->algo->name, copied, nt);
    t->algo->free(t->agent);
    t->agent = next;
    t->algo = t->online_algo;
    return 0;
}

// the algorithm whose agent a run holds after `step` steps: the offline one up
// to the last offline step (the switch comes with the first online step)
static const ctrl_algo *phase_algo(const trainer *t, int step) {
    return t->c->offline_steps > 0 && step <= t->c->offline_steps ? t->off_algo : t->online_algo;
}

static int update_once(trainer *t, int online, ctrl_metrics *m, rlhf_err *err) {
    t->batch.B = online ? online_batch_rows(t->c) : t->c->batch_size; // allocated for the larger
    if (!online)
        ctrl_sample(&t->offline, &t->batch, &t->rng);
    else if (t->have_offline && t->c->retain_offline)
        ctrl_sample_mixed(&t->offline, &t->online, t->c->mix_ratio, &t->batch, &t->rng);
    else
        ctrl_sample(&t->online, &t->batch, &t->rng);
    // which rows came from the dataset (H2O's real rows, MOORL's buffers)
    if (!online)
        t->batch.n_offline = t->batch.B;
    else if (!(t->have_offline && t->c->retain_offline))
        t->batch.n_offline = 0;
    m->n = 0;
    long bad = ctrl_adam_nonfinite_steps();
    int poison = rlhf_test_nan_step(t->updates + 1);
    if (poison) ctrl_adam_poison(1);
    int rc = t->algo->update(t->agent, &t->batch, &t->rng, m, err);
    if (poison) ctrl_adam_poison(0);
    if (rc) return -1;
    if (ctrl_adam_nonfinite_steps() != bad) { // every refused Adam step left its network as it was
        char where[96];
        snprintf(where, sizeof where, "step %d (update %ld)", t->step + 1, t->updates + 1);
        return ctrl_nonfinite_fail(err, where);
    }
    t->updates++;
    return 0;
}

// one online step: act, step the environment, store, then utd updates
static int online_step(trainer *t, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    ctrl_env *e = t->env;
    float raw[CTRL_MAX_DIM], next[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
    if (!t->in_episode) {
        if (ctrl_env_reset(e, raw, err)) return -1;
        ctrl_obs_normalize(&t->norm, raw, t->obs, e->obs_dim);
        t->in_episode = 1;
        t->ep_return = 0;
    }
    int online_done = t->step - c->offline_steps; // online steps before this one
    if (online_done == 0 && switch_agent(t, err)) return -1;
    if (online_done < t->start_steps)
        ctrl_random_action(e, &t->rng, a);
    else
        t->algo->act(t->agent, t->obs, 1, 0, &t->rng, a);
    ctrl_step_info info;
    if (ctrl_env_step(e, a, raw, &info, err)) return -1;
    ctrl_obs_normalize(&t->norm, raw, next, e->obs_dim);
    float r = (info.reward * t->reward_mul) * c->reward_scale + c->reward_bias;
    // online rows carry mc_return 0 (Cal-QL's bound applies to the dataset's rows, as CORL's
    // cal_ql.py stores 0 for transitions added during fine-tuning)
    ctrl_buffer_add(&t->online, t->obs, a, r, next, info.terminated, info.truncated, info.cost);
    t->ep_return += info.reward;
    memcpy(t->obs, next, (size_t)e->obs_dim * sizeof(float));
    if (info.terminated || info.truncated) {
        t->in_episode = 0;
        t->episodes++;
        t->ep_sum += t->ep_return;
        t->ep_count++;
    }
    // no update during random steps and the warm-up; then once a batch's rows exist
    long rows = t->online.n + (c->retain_offline ? t->offline.n : 0);
    int quiet_steps = t->start_steps > c->warmup_steps ? t->start_steps : c->warmup_steps;
    if (online_done + 1 > quiet_steps && rows >= online_batch_rows(c) && t->online.n > 0) {
        ctrl_metrics m;
        for (int u = 0; u < c->utd; u++) {
            if (update_once(t, 1, &m, err)) return -1;
            for (int i = 0; i < m.n; i++) log_add(t, m.name[i], m.value[i]);
        }
    }
    return 0;
}

// the dataset: load, check against the environment, normalise, scale rewards
static int load_offline(trainer *t, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    if (ctrl_dataset_load(c->dataset, &t->offline, &t->info, err)) return -1;
    t->have_offline = 1; // loaded (a failed load leaves nothing to free)
    if (t->offline.obs_dim != t->env->obs_dim || t->offline.act_dim != t->env->act_dim)
        return rlhf_fail(err,
                         "--dataset %s has observations of %d and actions of %d; --env %s has "
                         "%d and %d",
                         c->dataset, t->offline.obs_dim, t->offline.act_dim, c->env,
                         t->env->obs_dim, t->env->act_dim);
    if (t->offline.n < 1) return rlhf_fail(err, "--dataset %s holds no transitions", c->dataset);
    if (t->info.env[0] && strcmp(t->info.env, c->env))
        fprintf(stderr,
                "ctrl train: note: --dataset %s was recorded on env \"%s\", training on "
                "\"%s\"\n",
                c->dataset, t->info.env, c->env);
    if (c->normalize_obs) {
        ctrl_obs_norm_free(&t->norm); // the identity set up before
        ctrl_obs_norm_fit(&t->norm, &t->offline, 1e-3f);
        ctrl_obs_norm_apply(&t->norm, t->offline.obs, t->offline.n);
        ctrl_obs_norm_apply(&t->norm, t->offline.next_obs, t->offline.n);
    }
    if (!strcmp(c->reward_norm, "returns")) {
        float *rets = xmalloc((size_t)t->offline.n * sizeof(float));
        long k = ctrl_episode_returns(&t->offline, rets, t->offline.n);
        float lo = INFINITY, hi = -INFINITY;
        for (long i = 0; i < k; i++) {
            if (rets[i] < lo) lo = rets[i];
            if (rets[i] > hi) hi = rets[i];
        }
        free(rets);
        if (k < 2 || !(hi > lo))
            return rlhf_fail(err,
                             "--reward_norm returns: --dataset %s has %ld complete episodes "
                             "with returns in [%g, %g]; it needs two different ones",
                             c->dataset, k, lo, hi);
        t->reward_mul = 1000.0f / (hi - lo);
        ctrl_reward_affine(&t->offline, t->reward_mul, 0);
    }
    if (c->reward_scale != 1.0f || c->reward_bias != 0.0f)
        ctrl_reward_affine(&t->offline, c->reward_scale, c->reward_bias);
    // Cal-QL's reference values (also for a recipe's offline algorithm, which
    // may be Cal-QL while --algo's settings say calql 0)
    if (t->cfg.calql || t->off_algo != t->online_algo)
        ctrl_transitions_mc_returns(&t->offline, t->cfg.gamma, 0);
    return 0;
}

// refusals that need nothing loaded
static int check_config(const ctrl_train_config *c, const ctrl_algo *a, rlhf_err *err) {
    if (!a)
        return rlhf_fail(err, "--algo %s is not known (known: %s)", c->algo ? c->algo : "(none)",
                         ctrl_algo_names());
    int has_data = is_set(c->dataset);
    if (a->offline && !has_data)
        return rlhf_fail(err, "--algo %s learns from a dataset alone: give --dataset", a->name);
    if (c->offline_steps > 0 && !has_data)
        return rlhf_fail(err,
                         "--offline_steps %d needs a --dataset (D4RL-layout HDF5; rlhf ctrl "
                         "collect writes some)",
                         c->offline_steps);
    if (a->offline && c->online_steps > 0)
        return rlhf_fail(err, "--algo %s learns from a dataset alone: --online_steps must be 0",
                         a->name);
    if (c->offline_steps + (long)c->online_steps <= 0)
        return rlhf_fail(err, "nothing to do: give --offline_steps and/or --online_steps");
    if ((long)c->offline_steps + c->online_steps > 0x7fffffffL)
        return rlhf_fail(err, "--offline_steps + --online_steps is too many");
    if (strcmp(c->reward_norm, "none") && strcmp(c->reward_norm, "returns"))
        return rlhf_fail(err, "--reward_norm must be none or returns (got \"%s\")", c->reward_norm);
    if (!strcmp(c->reward_norm, "returns") && !has_data)
        return rlhf_fail(err, "--reward_norm returns needs a --dataset (its episode returns)");
    if (c->batch_size < 1 || c->utd < 1 || c->eval_episodes < 1)
        return rlhf_fail(err, "--batch_size, --utd and --eval_episodes must be at least 1");
    if (c->online_batch_size < 0 || c->warmup_steps < 0)
        return rlhf_fail(err, "--online_batch_size and --warmup_steps must be >= 0");
    // layer norm in the SAC networks' critics and policy (algorithms with .critic_layer_norm)
    static const char *const ln_flag[2] = {"critic_layer_norm", "actor_layer_norm"};
    static const char *const ln_net[2] = {"critics have", "policy has"};
    const int ln_val[2] = {c->algo_cfg.critic_layer_norm, c->algo_cfg.actor_layer_norm};
    for (int i = 0; i < 2; i++) {
        if (ln_val[i] != 0 && ln_val[i] != 1)
            return rlhf_fail(err, "--%s must be 0 or 1 (got %d)", ln_flag[i], ln_val[i]);
        if (ln_val[i] && !a->critic_layer_norm)
            return rlhf_fail(err,
                             "--%s 1: --algo %s's %s no layer norm (it applies to sac, "
                             "cql, calql, wsrl, ro2o, sacn, h2o and moorl)",
                             ln_flag[i], a->name, ln_net[i]);
    }
    if (is_set(c->offline_algo)) {
        const ctrl_algo *o = ctrl_algo_find(c->offline_algo);
        if (!o)
            return rlhf_fail(err, "--offline_algo %s is not known (known: %s)", c->offline_algo,
                             ctrl_algo_names());
        if (c->offline_steps > 0 && !has_data)
            return rlhf_fail(err, "--offline_algo %s needs a --dataset", o->name);
        for (int i = 0; i < 2; i++)
            if (ln_val[i] && !o->critic_layer_norm)
                return rlhf_fail(err, "--%s 1: --offline_algo %s's %s no layer norm", ln_flag[i],
                                 o->name, ln_net[i]);
    }
    if (!is_set(c->output_dir))
        return rlhf_fail(err, "--output_dir is empty: name the run folder (e.g. --output_dir "
                              "runs/ctrl)");
    return run_report_to(c->report_to, NULL, err);
}

static int trainer_setup(trainer *t, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    if (check_config(c, t->algo, err) || ctrl_dist_check(c, err)) return -1;
    if (ctrl_env_make(c->env, &t->env, err) || ctrl_env_make(c->env, &t->eval_env, err))
        return rlhf_fail_ctx(err, "--env");
    ctrl_obs_norm_identity(&t->norm, t->env->obs_dim);
    t->reward_mul = 1.0f;
    if (is_set(c->dataset) && load_offline(t, err)) return -1;
    t->ref_random = isfinite(c->ref_random_return) ? c->ref_random_return
                    : t->have_offline              ? t->info.ref_random_return
                                                   : NAN;
    t->ref_expert = isfinite(c->ref_expert_return) ? c->ref_expert_return
                    : t->have_offline              ? t->info.ref_expert_return
                                                   : NAN;
    if (ctrl_prepare_run_dir(c, 1, t->resume_from, sizeof t->resume_from, err)) return -1;
    t->total = c->offline_steps + c->online_steps;
    t->start_steps = c->start_steps >= 0 ? c->start_steps : t->have_offline ? 0 : 1000;
    // the length of IQL's / AWAC's cosine actor schedule: the offline phase when
    // there is one (CORL's finetune iql.py sets T_max to the offline iterations,
    // so fine-tuning runs on the schedule's rising half), else every update
    t->cfg.max_steps = c->offline_steps > 0 ? c->offline_steps : c->online_steps * c->utd;
    // FamO2O draws the balance uniformly while it learns the family (the offline
    // phase), then from the balance model: -1 (its default) means --offline_steps
    if (t->cfg.famo2o_uniform_steps < 0) t->cfg.famo2o_uniform_steps = c->offline_steps;
    rng_seed(&t->rng, c->seed);
    t->algo = phase_algo(t, t->resume_from[0] ? ctrl_checkpoint_step(t->resume_from) : 0);
    if (t->algo->create(&t->cfg, t->env->obs_dim, t->env->act_dim, t->env->act_low,
                        t->env->act_high, &t->rng, &t->agent, err)) {
        t->agent = NULL;
        return -1;
    }
    if (t->algo->attach && t->algo->attach(t->agent, t->have_offline ? c->dataset : NULL,
                                           t->have_offline ? &t->offline : NULL, err))
        return -1;
    ctrl_env_seed(t->env, c->seed);
    int rows = online_batch_rows(c) > c->batch_size ? online_batch_rows(c) : c->batch_size;
    ctrl_batch_alloc(&t->batch, rows, t->env->obs_dim, t->env->act_dim);
    if (c->online_steps > 0) {
        long cap = c->buffer_size < c->online_steps ? c->buffer_size : c->online_steps;
        if (cap < 1) cap = 1;
        ctrl_transitions_alloc(&t->online, t->env->obs_dim, t->env->act_dim, cap,
                               t->env->has_cost);
        t->have_online = 1;
    }
    if (t->resume_from[0]) {
        char p[4600];
        if (check_resume_layout(t, t->resume_from, err)) return -1;
        snprintf(p, sizeof p, "%s/agent.safetensors", t->resume_from);
        ctrl_obs_norm saved;
        ctrl_obs_norm_identity(&saved, t->env->obs_dim);
        int rc = ctrl_agent_load(p, t->algo, t->agent, &saved, err);
        ctrl_obs_norm_free(&saved);
        if (rc || read_state(t, t->resume_from, err)) return -1;
        if (t->step == t->total)
            return rlhf_fail(err,
                             "--resume: %s is finished at step %d of %d: nothing to do; give a "
                             "larger --online_steps (or --offline_steps, while no online step "
                             "was taken) to extend it. Nothing was changed",
                             c->output_dir, t->step, t->total);
        if (t->step > c->offline_steps) {
            snprintf(p, sizeof p, "%s/online_buffer.safetensors", t->resume_from);
            if (ctrl_online_buffer_load(p, &t->online, err)) return -1;
        }
        if (ctrl_dist_writer())
            fprintf(stderr, "ctrl train: resuming from %s (step %d)\n", t->resume_from, t->step);
    }
    if (!ctrl_dist_writer()) {  // MPI: rank 0 alone writes the run folder
        snprintf(t->run.dir, sizeof t->run.dir, "%s", c->output_dir);
        return 0;
    }
    return run_open(&t->run, c->output_dir, c->config_json, t->resume_from[0] ? t->step : -1, err);
}

static void progress_text(trainer *t, char *buf, size_t n) {
    buf[0] = 0;
    if (t->step <= t->c->offline_steps)
        snprintf(buf, n, "offline");
    else
        snprintf(buf, n, "online ep %ld", t->episodes);
    if (t->res && t->res->n_evals)
        snprintf(buf + strlen(buf), n - strlen(buf), " | eval %.1f", t->res->final_mean);
}

static int trainer_loop(trainer *t, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    int quiet = c->quiet || !ctrl_dist_writer();
    progress pb;
    progress_start(&pb, "ctrl train", t->total, c->log_every > 0 ? c->log_every : 1000);
    int save_pending = 0, stop_pending = 0, stop_sig = 0; // stop_sig: the signal seen
    while (t->step < t->total) {
        int online = t->step >= c->offline_steps;
        if (!online) {
            ctrl_metrics m;
            if (update_once(t, 0, &m, err)) return -1;
            for (int i = 0; i < m.n; i++) log_add(t, m.name[i], m.value[i]);
        } else if (online_step(t, err)) {
            return -1;
        }
        int done = ++t->step;
        if ((c->log_every > 0 && done % c->log_every == 0) || done == t->total) write_log_line(t);
        if ((c->eval_every > 0 && done % c->eval_every == 0) || done == t->total)
            if (evaluate(t, err)) return -1;
        if (run_check(&t->run, err)) return -1; // metrics.jsonl could not be written: stop
        if (c->save_every > 0 && done % c->save_every == 0 && done != t->total) save_pending = 1;
        int sig = ctrl_stop_signal(); // once a step (collective on MPI ranks)
        if (sig) stop_sig = sig;
        if ((sig || (c->stop_at > 0 && done >= c->stop_at)) && done != t->total) stop_pending = 1;
        // online, a checkpoint waits for the end of the episode in progress
        int at_boundary = done <= c->offline_steps || !t->in_episode;
        if ((save_pending || stop_pending) && at_boundary && done != t->total) {
            char path[4400];
            if (save_checkpoint(t, 0, path, sizeof path, err)) return -1;
            save_pending = 0;
            if (stop_pending) {
                if (!quiet) progress_end(&pb);
                if (t->res) t->res->stopped = 1;
                if (ctrl_dist_writer())
                    fprintf(stderr,
                            "ctrl train: stopped (%s) after step %d of %d; checkpoint %s "
                            "written (--resume goes on from it)\n",
                            stop_sig ? "signal" : "--stop_at", done, t->total, path);
                if (stop_sig)
                    return rlhf_fail(err,
                                     "stopped by signal %d after step %d of %d; checkpoint %s "
                                     "written (--resume goes on from it)",
                                     stop_sig, done, t->total, path);
                return 0;
            }
        }
        if (!quiet) {
            char text[160];
            progress_text(t, text, sizeof text);
            progress_update(&pb, done, text, 0);
        }
    }
    if (!quiet) progress_end(&pb);
    return 0;
}

static int trainer_end(trainer *t, rlhf_err *err) {
    char path[4400];
    if (save_checkpoint(t, 1, path, sizeof path, err)) return -1;
    const ctrl_train_config *c = t->c;
    ctrl_train_result *r = t->res;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "command", "ctrl train");
    cJSON_AddStringToObject(s, "algo", t->algo->name);
    if (t->off_algo != t->online_algo) cJSON_AddStringToObject(s, "offline_algo", t->off_algo->name);
    cJSON_AddNumberToObject(s, "retain_offline", c->retain_offline);
    cJSON_AddNumberToObject(s, "warmup_steps", c->warmup_steps);
    cJSON_AddStringToObject(s, "env", c->env);
    if (is_set(c->dataset)) cJSON_AddStringToObject(s, "dataset", c->dataset);
    cJSON_AddNumberToObject(s, "offline_steps", c->offline_steps);
    cJSON_AddNumberToObject(s, "online_steps", c->online_steps);
    cJSON_AddNumberToObject(s, "updates", (double)t->updates);
    if (r && r->n_evals) {
        cJSON_AddNumberToObject(s, "eval_return_mean", r->final_mean);
        cJSON_AddNumberToObject(s, "eval_return_std", r->final_std);
        ctrl_json_num_or_null(s, "normalized_score", r->final_score);
    }
    ctrl_json_num_or_null(s, "ref_random_return", t->ref_random);
    ctrl_json_num_or_null(s, "ref_expert_return", t->ref_expert);
    cJSON_AddNumberToObject(s, "seconds", time_now() - t->t_start);
    cJSON_AddStringToObject(s, "model", path);
    char *js = cJSON_Print(s);
    cJSON_Delete(s);
    int writer = ctrl_dist_writer();
    int rc = writer ? run_summary(&t->run, js, err) : 0;
    free(js);
    if (r) snprintf(r->final_checkpoint, sizeof r->final_checkpoint, "%s", path);
    if (!rc && !c->quiet && writer && r && r->n_evals) {
        if (isfinite(r->final_score))
            fprintf(stderr,
                    "ctrl train: %s on %s: return %.2f ± %.2f over %d episodes, "
                    "normalized score %.1f; %s\n",
                    t->algo->name, c->env, r->final_mean, r->final_std, c->eval_episodes,
                    r->final_score, path);
        else
            fprintf(stderr, "ctrl train: %s on %s: return %.2f ± %.2f over %d episodes; %s\n",
                    t->algo->name, c->env, r->final_mean, r->final_std, c->eval_episodes, path);
    }
    return rc;
}

int ctrl_train(const ctrl_train_config *c, ctrl_train_result *res, rlhf_err *err) {
    const ctrl_algo *own = c->algo ? ctrl_algo_find(c->algo) : NULL;
    if (own && own->run) // a loop of its own (HNPG, LaMo): on N ranks only if data-parallel;
                         // one that keeps checkpoints (both) prepares --output_dir itself
        return ctrl_dist_check(c, err) || (!own->own_checkpoints && ctrl_prepare_own_dir(c, err))
                   ? -1
                   : own->run(c, res, err);
    ctrl_train_result local;
    memset(&local, 0, sizeof local);
    if (res) memset(res, 0, sizeof *res);
    trainer *t = xcalloc(1, sizeof *t);
    t->c = c;
    t->res = res ? res : &local;
    t->t_start = time_now();
    t->algo = t->online_algo = c->algo ? ctrl_algo_find(c->algo) : NULL;
    t->off_algo = is_set(c->offline_algo) ? ctrl_algo_find(c->offline_algo) : t->online_algo;
    if (!t->off_algo) t->off_algo = t->online_algo; // check_config names the unknown one
    t->cfg = c->algo_cfg;
    t->ref_random = t->ref_expert = NAN;
    ctrl_stop_signals sigs;
    ctrl_stop_signals_catch(&sigs);
    int rc = -1;
    if (trainer_setup(t, err) == 0 && trainer_loop(t, err) == 0 &&
        (t->res->stopped || trainer_end(t, err) == 0))
        rc = 0;
    ctrl_stop_signals_restore(&sigs);
    run_close(&t->run);
    if (t->agent) t->algo->free(t->agent);
    if (t->env) ctrl_env_free(t->env);
    if (t->eval_env) ctrl_env_free(t->eval_env);
    if (t->have_offline) ctrl_transitions_free(&t->offline);
    if (t->have_online) ctrl_transitions_free(&t->online);
    if (t->batch.B) ctrl_batch_free(&t->batch);
    if (t->norm.dim) ctrl_obs_norm_free(&t->norm);
    for (int i = 0; i < t->n_log; i++) free(t->log_name[i]);
    free(t);
    ctrl_train_result_free(&local);
    return rc;
}
