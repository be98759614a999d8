// study/study_ctrl: datasets, corruption, training runs and their numbers
// for the control studies, through `rlhf ctrl ...` child processes
// (study_run); and the small pure helpers their verdicts share.
#include "study/study_ctrl.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/file.h"

// ------------------------------------------------------------- datasets --
static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static cJSON *read_json(const char *path, rlhf_err *err) {
    char *text = read_file(path, NULL, err);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        rlhf_fail(err, "study: %s is not a JSON object", path);
        return NULL;
    }
    return j;
}

static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int study_ctrl_collect(study_ctx *c, const study_ctrl_data *d, char *dir, size_t n, rlhf_err *err) {
    if (!d->env || !*d->env || d->steps < 1)
        return rlhf_fail(err, "study: a control dataset needs an environment and steps >= 1");
    snprintf(dir, n, "%s/ctrl-%s-%d-%d-%d-s%llu", c->base, d->env, d->steps, d->dataset_steps,
             d->hidden, (unsigned long long)d->seed);
    char done[1400];
    snprintf(done, sizeof done, "%s/collect.json", dir);
    if (exists(done)) return 0;
    study_args a = {0};
    study_add(&a, "ctrl", "collect", "--env", d->env, "--out", dir, "--quiet",
              "--overwrite_output_dir", NULL);
    study_addf(&a, "--steps=%d", d->steps);
    study_addf(&a, "--dataset_steps=%d", d->dataset_steps);
    if (d->checkpoints > 0) study_addf(&a, "--checkpoints=%d", d->checkpoints);
    if (d->hidden > 0) study_addf(&a, "--hidden=%d", d->hidden);
    if (d->eval_episodes > 0) study_addf(&a, "--eval_episodes=%d", d->eval_episodes);
    study_addf(&a, "--seed=%llu", (unsigned long long)d->seed);
    char log[256];
    const char *slash = strrchr(dir, '/');
    snprintf(log, sizeof log, "collect/%s", slash ? slash + 1 : dir);
    fprintf(stderr, "study: a %s dataset (SAC, %d steps): %s\n", d->env, d->steps, dir);
    return study_run(c, log, &a, NULL, err);
}

void study_ctrl_level(const char *dir, const char *level, char *out, size_t n) {
    snprintf(out, n, "%s/%s.hdf5", dir, level);
}

int study_ctrl_refs(const char *dir, double *ref_random, double *ref_expert, rlhf_err *err) {
    char path[1400];
    snprintf(path, sizeof path, "%s/collect.json", dir);
    cJSON *j = read_json(path, err);
    if (!j) return -1;
    *ref_random = num(j, "ref_random_return");
    *ref_expert = num(j, "ref_expert_return");
    cJSON_Delete(j);
    if (!isfinite(*ref_random) || !isfinite(*ref_expert))
        return rlhf_fail(err, "study: %s has no ref_random_return / ref_expert_return", path);
    return 0;
}

// ----------------------------------------------------------- corruption --
int study_ctrl_corrupt(study_ctx *c, const char *in, const char *out,
                       const study_ctrl_corruption *k, rlhf_err *err) {
    if (!k->kind || !k->mode)
        return rlhf_fail(err, "study: a corruption needs a kind and a mode");
    study_args a = {0};
    study_add(&a, "ctrl", "corrupt", "--dataset", in, "--out", out, "--kind", k->kind, "--mode",
              k->mode, NULL);
    study_addf(&a, "--rate=%g", k->rate);
    if (k->scale > 0) study_addf(&a, "--scale=%g", k->scale);
    study_addf(&a, "--seed=%llu", (unsigned long long)k->seed);
    if (k->agent && *k->agent) study_add(&a, "--agent", k->agent, NULL);
    char log[300];
    const char *slash = strrchr(out, '/');
    snprintf(log, sizeof log, "corrupt/%s", slash ? slash + 1 : out);
    return study_run(c, log, &a, NULL, err);
}

// ------------------------------------------------------------- training --
int study_ctrl_summary(const char *run_dir, study_ctrl_result *r, rlhf_err *err) {
    char path[1400];
    snprintf(path, sizeof path, "%s/summary.json", run_dir);
    cJSON *j = read_json(path, err);
    if (!j) return -1;
    r->score = num(j, "normalized_score");
    r->ret = num(j, "eval_return_mean");
    r->ret_std = num(j, "eval_return_std");
    r->seconds = num(j, "seconds");
    r->updates = num(j, "updates");
    cJSON_Delete(j);
    if (isnan(r->ret))
        return rlhf_fail(err, "study: %s has no eval_return_mean (a run without evaluations?)",
                         path);
    return 0;
}

int study_ctrl_train(study_ctx *c, const char *name, study_args *a, char *run_dir, size_t n,
                     study_ctrl_result *r, rlhf_err *err) {
    char dir[1300], log[400];
    snprintf(dir, sizeof dir, "%s/runs/%s", c->out, name);
    snprintf(log, sizeof log, "train/%s", name);
    if (run_dir) snprintf(run_dir, n, "%s", dir);
    study_args full = {0};
    study_add(&full, "ctrl", "train", NULL);
    for (int i = 0; i < a->n; i++) study_add(&full, a->v[i], NULL);
    study_args_free(a);
    study_add(&full, "--output_dir", dir, "--quiet", "--overwrite_output_dir", NULL);
    if (study_run(c, log, &full, NULL, err)) return -1;
    return study_ctrl_summary(dir, r, err);
}

int study_ctrl_evals(const char *run_dir, int max, double *step, double *ret, double *score,
                     int *n, rlhf_err *err) {
    char path[1400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    size_t len = 0;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    *n = 0;
    for (char *line = strtok(text, "\n"); line && *n < max; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        double m = num(j, "eval/return_mean");
        if (!isnan(m)) {
            step[*n] = num(j, "step");
            ret[*n] = m;
            score[*n] = num(j, "eval/normalized_score");
            (*n)++;
        }
        cJSON_Delete(j);
    }
    free(text);
    return 0;
}

cJSON *study_ctrl_row(const char *method, uint64_t seed, const study_ctrl_result *r) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", method);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    if (isfinite(r->score)) cJSON_AddNumberToObject(row, "score", r->score);
    cJSON_AddNumberToObject(row, "return", r->ret);
    if (isfinite(r->ret_std)) cJSON_AddNumberToObject(row, "return_std", r->ret_std);
    if (isfinite(r->seconds))
        cJSON_AddNumberToObject(row, "seconds", round(r->seconds * 10) / 10);
    if (isfinite(r->updates)) cJSON_AddNumberToObject(row, "updates", r->updates);
    return row;
}

// ---------------------------------------------------------- verdict help --
static int row_matches(const cJSON *row, double seed, va_list ap) {
    if (!isnan(seed) && study_num(row, "seed") != seed) return 0;
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        if (strcmp(study_str(row, k), v ? v : "")) return 0;
    }
    return 1;
}

const cJSON *study_ctrl_match(const cJSON *rows, double seed, ...) {
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        va_list ap;
        va_start(ap, seed);
        int ok = row_matches(row, seed, ap);
        va_end(ap);
        if (ok) return row;
    }
    return NULL;
}

int study_ctrl_seeds(const cJSON *rows, const char *key, const char *value, double *seed, int max) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double s = study_num(row, "seed");
        if (isnan(s) || (key && strcmp(study_str(row, key), value ? value : ""))) continue;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = seed[i] == s;
        if (!seen && n < max) seed[n++] = s;
    }
    return n;
}

study_outcome study_ctrl_outcome(const stats_summary *diff) {
    int s = stats_sign_test(diff);
    return s > 0 ? STUDY_SUPPORTED : s < 0 ? STUDY_NOT_SUPPORTED : STUDY_INCONCLUSIVE;
}
