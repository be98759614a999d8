// ctrl/ctrl_collect: D4RL-style datasets from our own SAC agent (see
// ctrl_train.h for the levels). SAC trains through the same trainer as
// `rlhf ctrl train`; its checkpoints are then evaluated one by one to find the
// "medium" policy, and each level is rolled out and written with
// ctrl_dataset_save, with the reference returns for normalised scores.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/ctrl_train.h"
#include "ctrl/ctrl_train_internal.h"
#include "ctrl/dataset.h"
#include "io/file.h"
#include "train/run.h"
#include "rlhf.h"

void ctrl_collect_default_config(ctrl_collect_config *c) {
    memset(c, 0, sizeof *c);
    c->steps = 20000;
    c->dataset_steps = 0;
    c->checkpoints = 20;
    c->eval_episodes = 10;
    ctrl_train_default_config(&c->train, "sac");
}

static long dataset_episodes(const ctrl_transitions *t, double *mean) {
    float *r = xmalloc((size_t)(t->n > 0 ? t->n : 1) * sizeof(float));
    long k = ctrl_episode_returns(t, r, t->n);
    double s = 0;
    for (long i = 0; i < k; i++) s += r[i];
    *mean = k ? s / k : NAN;
    free(r);
    return k;
}

static int write_level(const ctrl_collect_config *c, const char *level, const ctrl_transitions *t,
                       double ref_random, double ref_expert, cJSON *summary, rlhf_err *err) {
    ctrl_dataset_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.env, sizeof info.env, "%s", c->env);
    snprintf(info.level, sizeof info.level, "%s", level);
    info.ref_random_return = ref_random;
    info.ref_expert_return = ref_expert;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.hdf5", c->out, level);
    if (ctrl_dataset_save(path, t, &info, err)) return -1;
    double mean;
    long eps = dataset_episodes(t, &mean);
    double score = ctrl_normalized_score(mean, ref_random, ref_expert);
    cJSON *o = cJSON_AddObjectToObject(summary, level);
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddNumberToObject(o, "transitions", (double)t->n);
    cJSON_AddNumberToObject(o, "episodes", (double)eps);
    if (isfinite(mean)) cJSON_AddNumberToObject(o, "episode_return_mean", mean);
    if (isfinite(score)) cJSON_AddNumberToObject(o, "normalized_score", score);
    printf("%-14s %s: %ld transitions, %ld complete episodes, mean return %.2f (normalized %.1f)\n",
           level, path, t->n, eps, mean, score);
    return 0;
}

static void append_rows(ctrl_transitions *dst, const ctrl_transitions *src) {
    for (long i = 0; i < src->n; i++)
        ctrl_buffer_add(dst, src->obs + i * src->obs_dim, src->act + i * src->act_dim, src->rew[i],
                        src->next_obs + i * src->obs_dim, src->terminal[i], src->timeout[i],
                        src->cost ? src->cost[i] : 0);
}

// The SAC run that collect trains: online only, a checkpoint (and an
// evaluation) every steps/checkpoints steps, a buffer holding every step.
static ctrl_train_config sac_run_config(const ctrl_collect_config *c, const char *run) {
    ctrl_train_config tc = c->train;
    tc.algo = "sac";
    tc.env = c->env;
    tc.dataset = NULL;
    tc.offline_steps = 0;
    tc.online_steps = c->steps;
    tc.output_dir = run;
    tc.overwrite_output_dir = c->overwrite_output_dir;
    tc.resume = c->resume;
    tc.quiet = c->quiet;
    int every = c->steps / c->checkpoints;
    tc.save_every = tc.eval_every = every > 0 ? every : 1;
    tc.buffer_size = c->steps; // the whole history: medium-replay is its prefix
    tc.eval_episodes = c->eval_episodes;
    return tc;
}

// medium: the step checkpoint of `run` whose evaluated return is nearest a
// third of the way from r_rand to r_exp -> medium (its path), *ret
static int pick_medium(const ctrl_collect_config *c, const char *run, ctrl_env *env,
                       uint64_t seed, double r_rand, double r_exp, char *medium, size_t n,
                       double *ret, rlhf_err *err) {
    double target = r_rand + (r_exp - r_rand) / 3.0, best = INFINITY;
    int count = 0, rc = 0, *steps = checkpoint_steps(run, &count);
    medium[0] = 0;
    for (int i = 0; i < count && !rc; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/checkpoints/step-%08d", run, steps[i]);
        ctrl_policy pol;
        memset(&pol, 0, sizeof pol);
        double m, s;
        rc = ctrl_policy_load(p, &pol, err) ||
             ctrl_evaluate(env, &pol, c->eval_episodes, seed + 100, 1, &m, &s, err);
        ctrl_policy_free(&pol);
        if (rc) break;
        if (!c->quiet)
            fprintf(stderr, "collect: %s return %.2f ± %.2f (normalized %.1f)\n", p, m, s,
                    ctrl_normalized_score(m, r_rand, r_exp));
        if (fabs(m - target) < best) {
            best = fabs(m - target);
            *ret = m;
            snprintf(medium, n, "%s", p);
        }
    }
    free(steps);
    if (rc) return -1;
    if (!medium[0]) return rlhf_fail(err, "%s: no step checkpoint to take the medium policy from", run);
    printf("medium policy: %s (return %.2f, normalized %.1f; target %.2f)\n", medium, *ret,
           ctrl_normalized_score(*ret, r_rand, r_exp), target);
    return 0;
}

// rows of a policy's own samples (stochastic, as D4RL's were) from a checkpoint
static int policy_rows(ctrl_env *env, const char *checkpoint, long rows, uint64_t seed,
                       ctrl_transitions *t, rlhf_err *err) {
    ctrl_policy pol;
    memset(&pol, 0, sizeof pol);
    ctrl_transitions_alloc(t, env->obs_dim, env->act_dim, rows, env->has_cost);
    int rc = ctrl_policy_load(checkpoint, &pol, err) ||
             ctrl_rollout(env, &pol, rows, seed, 0, t, err);
    ctrl_policy_free(&pol);
    return rc ? -1 : 0;
}

// --resume of a finished SAC run (summary.json and checkpoints/final): its
// flags must be this command's (but for out, resume, overwrite_output_dir and
// quiet: a moved folder is the same run);
// res gets the final evaluation (summary.json keeps the doubles exactly) and
// checkpoint. 1: not finished (ctrl_train resumes it), 0: taken, -1: refused.
static int finished_run(const ctrl_collect_config *c, const char *run, ctrl_train_result *res,
                        rlhf_err *err) {
    char p[4400], ck[4400];
    snprintf(p, sizeof p, "%s/summary.json", run);
    snprintf(ck, sizeof ck, "%s/checkpoints/final", run);
    rlhf_err e2;
    if (!path_exists(p) || ctrl_checkpoint_complete(ck, &e2) != 0) return 1;
    snprintf(p, sizeof p, "%s/config.json", run);
    cJSON *was = ctrl_read_json(p, err), *now = cJSON_Parse(c->train.config_json);
    int rc = was && now ? 0 : -1;
    static const char *skip[] = {"out", "resume", "overwrite_output_dir", "quiet"};
    for (const cJSON *f = now ? now->child : NULL; f && rc == 0; f = f->next) {
        int ignored = 0;
        for (int i = 0; i < 4; i++) ignored |= !strcmp(f->string, skip[i]);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(was, f->string);
        if (!ignored && !cJSON_Compare(f, w, 1))
            rc = rlhf_fail(err,
                           "--resume: %s is a finished SAC run of other settings (--%s); pass "
                           "--overwrite_output_dir to train it again, or the run's own flags",
                           run, f->string);
    }
    if (rc == 0 && !now) rc = rlhf_fail(err, "--resume: the flags could not be read");
    cJSON_Delete(was);
    cJSON_Delete(now);
    if (rc) return -1;
    snprintf(p, sizeof p, "%s/summary.json", run);
    cJSON *s = ctrl_read_json(p, err);
    if (!s) return -1;
    res->final_mean = ctrl_json_num(s, "eval_return_mean", NAN);
    res->final_std = ctrl_json_num(s, "eval_return_std", NAN);
    cJSON_Delete(s);
    if (!isfinite(res->final_mean) || !isfinite(res->final_std))
        return rlhf_fail(err, "--resume: %s has no final evaluation (eval_return_mean)", p);
    snprintf(res->final_checkpoint, sizeof res->final_checkpoint, "%s", ck);
    fprintf(stderr, "collect: --resume: %s is finished; writing the datasets from it\n", run);
    return 0;
}

int ctrl_collect(const ctrl_collect_config *c, rlhf_err *err) {
    if (!c->env || !*c->env) return rlhf_fail(err, "--env is needed");
    if (!c->out || !*c->out)
        return rlhf_fail(err, "--out is needed (a folder for the .hdf5 files)");
    if (c->steps < 1 || c->checkpoints < 1 || c->eval_episodes < 1)
        return rlhf_fail(err, "--steps, --checkpoints and --eval_episodes must be at least 1");
    if (make_dirs(c->out, err)) return -1;
    char run[4200];
    snprintf(run, sizeof run, "%s/sac", c->out);
    ctrl_train_config tc = sac_run_config(c, run);
    long level_steps = c->dataset_steps > 0 ? c->dataset_steps : c->steps;

    ctrl_env *env = NULL;
    ctrl_transitions rnd = {0}, med = {0}, rep = {0}, exp_ = {0}, mix = {0};
    cJSON *summary = cJSON_CreateObject();
    int rc = -1;
    ctrl_train_result res;
    memset(&res, 0, sizeof res);
    uint64_t seed = tc.seed;

    // 1. train SAC (or, with --resume, go on with it, or take it finished)
    if (!c->resume && !c->overwrite_output_dir && run_found(run)) {
        rlhf_fail(err,
                  "--out %s: %s holds an earlier SAC run: pass --resume to go on with it (a "
                  "finished one is reused), --overwrite_output_dir to train it again, or "
                  "choose another --out",
                  c->out, run);
        goto done;
    }
    int fin = c->resume ? finished_run(c, run, &res, err) : 1;
    if (fin < 0 || (fin > 0 && ctrl_train(&tc, &res, err))) goto done;
    if (res.stopped) {
        rlhf_fail(err, "training stopped before the end; run the command again with the same "
                       "flags and --resume");
        goto done;
    }
    if (ctrl_env_make(c->env, &env, err)) goto done;
    // 2. the references: the uniform random policy and the final policy, on the
    // trainer's evaluation episodes (same seed)
    double r_rand, r_rand_std, r_exp = res.final_mean;
    if (ctrl_evaluate(env, NULL, c->eval_episodes, seed + 100, 0, &r_rand, &r_rand_std, err))
        goto done;
    printf("references on %s: random return %.2f ± %.2f, expert (final SAC policy) %.2f ± %.2f "
           "(%d episodes)\n",
           c->env, r_rand, r_rand_std, r_exp, res.final_std, c->eval_episodes);
    if (!(r_exp > r_rand)) // the files are still written: the references say what they are
        fprintf(stderr,
                "collect: warning: the final SAC policy (return %.2f) is no better than "
                "random (%.2f): normalised scores against these references mean little; "
                "train longer (--steps)\n",
                r_exp, r_rand);
    // 3. the medium policy
    char medium[4400];
    double medium_ret = NAN;
    if (pick_medium(c, run, env, seed, r_rand, r_exp, medium, sizeof medium, &medium_ret, err))
        goto done;
    cJSON_AddStringToObject(summary, "env", c->env);
    cJSON_AddNumberToObject(summary, "ref_random_return", r_rand);
    cJSON_AddNumberToObject(summary, "ref_expert_return", r_exp);
    cJSON_AddStringToObject(summary, "medium_checkpoint", medium);
    cJSON_AddNumberToObject(summary, "medium_return", medium_ret);
    cJSON_AddStringToObject(summary, "expert_checkpoint", res.final_checkpoint);

    // 4. the levels
    ctrl_transitions_alloc(&rnd, env->obs_dim, env->act_dim, level_steps, env->has_cost);
    if (ctrl_rollout(env, NULL, level_steps, seed + 1, 0, &rnd, err) ||
        write_level(c, "random", &rnd, r_rand, r_exp, summary, err))
        goto done;
    if (policy_rows(env, medium, level_steps, seed + 2, &med, err) ||
        write_level(c, "medium", &med, r_rand, r_exp, summary, err))
        goto done;
    char bp[4600];
    snprintf(bp, sizeof bp, "%s/online_buffer.safetensors", medium);
    ctrl_transitions_alloc(&rep, env->obs_dim, env->act_dim, c->steps, env->has_cost); // every SAC step
    if (ctrl_online_buffer_load(bp, &rep, err) ||
        write_level(c, "medium-replay", &rep, r_rand, r_exp, summary, err))
        goto done;
    if (policy_rows(env, res.final_checkpoint, level_steps, seed + 3, &exp_, err) ||
        write_level(c, "expert", &exp_, r_rand, r_exp, summary, err))
        goto done;
    ctrl_transitions_alloc(&mix, env->obs_dim, env->act_dim, med.n + exp_.n, env->has_cost);
    append_rows(&mix, &med);
    append_rows(&mix, &exp_);
    if (write_level(c, "medium-expert", &mix, r_rand, r_exp, summary, err)) goto done;
    char path[4400];
    snprintf(path, sizeof path, "%s/collect.json", c->out);
    char *js = cJSON_Print(summary);
    rc = atomic_write_file(path, js, strlen(js), err);
    free(js);
    if (!rc) printf("ref_random_return %.6g ref_expert_return %.6g (%s)\n", r_rand, r_exp, path);
done:
    if (env) ctrl_env_free(env);
    ctrl_transitions *all[] = {&rnd, &med, &rep, &exp_, &mix};
    for (int i = 0; i < 5; i++)
        if (all[i]->cap) ctrl_transitions_free(all[i]);
    cJSON_Delete(summary);
    ctrl_train_result_free(&res);
    return rc;
}
