// study/study_ctrl: datasets, corruption, training runs and their numbers
// for the control studies, through `rlhf ctrl ...` child processes
// (study_run); and the small pure helpers their verdicts share.
#include "study/study_ctrl.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctrl/env.h"
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
    // every setting that changes the data is in the name, so two studies that
    // differ in one of them (e.g. h2o's and the o2o studies' full pendulum
    // checkpoint counts) never share a folder
    char ck[24] = "", ep[24] = "";
    if (d->checkpoints > 0) snprintf(ck, sizeof ck, "-c%d", d->checkpoints);
    if (d->eval_episodes > 0) snprintf(ep, sizeof ep, "-e%d", d->eval_episodes);
    snprintf(dir, n, "%s/ctrl-%s-%d-%d-%d%s%s-s%llu", c->base, d->env, d->steps, d->dataset_steps,
             d->hidden, ck, ep, (unsigned long long)d->seed);
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

int study_ctrl_level_check(const char *level, rlhf_err *err) {
    static const char *const LEVELS[] = {"random", "medium", "medium-replay", "expert",
                                         "medium-expert"};
    for (size_t i = 0; i < sizeof LEVELS / sizeof *LEVELS; i++)
        if (!strcmp(level, LEVELS[i])) return 0;
    return rlhf_fail(err,
                     "--level %s: the dataset levels are random, medium, medium-replay, expert "
                     "and medium-expert (rlhf ctrl collect)",
                     level);
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

int study_ctrl_level_stats(const char *dir, const char *level, double *score, double *rows,
                           rlhf_err *err) {
    char path[1400];
    snprintf(path, sizeof path, "%s/collect.json", dir);
    cJSON *j = read_json(path, err);
    if (!j) return -1;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, level);
    *score = num(l, "normalized_score");
    *rows = num(l, "transitions");
    cJSON_Delete(j);
    if (!isfinite(*score) || !isfinite(*rows))
        return rlhf_fail(err, "study: %s has no %s level with normalized_score and transitions",
                         path, level);
    return 0;
}

// ----------------------------------------------------------- corruption --
int study_ctrl_corrupt(study_ctx *c, const char *in, const char *out,
                       const study_ctrl_corruption *k, rlhf_err *err) {
    if (!k->kind || !k->mode) return rlhf_fail(err, "study: a corruption needs a kind and a mode");
    study_args a = {0};
    study_add(&a, "ctrl", "corrupt", "--dataset", in, "--out", out, "--kind", k->kind, "--mode",
              k->mode, NULL);
    study_addf(&a, "--rate=%g", k->rate);
    if (k->scale > 0) study_addf(&a, "--scale=%g", k->scale);
    study_addf(&a, "--seed=%llu", (unsigned long long)k->seed);
    if (k->agent && *k->agent) study_add(&a, "--agent", k->agent, NULL);
    // the log: corrupt/PARENT/FILE (files of one name in several seeds' folders)
    const char *tail = out;
    int slashes = 0;
    for (const char *q = out + strlen(out); q > out; q--)
        if (q[-1] == '/' && ++slashes == 2) {
            tail = q;
            break;
        }
    char log[300];
    snprintf(log, sizeof log, "corrupt/%s", tail);
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

int study_ctrl_evals(const char *run_dir, int max, double *step, double *ret, double *score, int *n,
                     rlhf_err *err) {
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
    if (isfinite(r->seconds)) cJSON_AddNumberToObject(row, "seconds", round(r->seconds * 10) / 10);
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

void study_ctrl_curve_row(study_ctx *c, const char *study, const char *method, uint64_t seed,
                          double step, double score, double ret) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "phase", "curve");
    cJSON_AddStringToObject(row, "method", method);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "step", step);
    if (isfinite(score)) cJSON_AddNumberToObject(row, "score", score);
    cJSON_AddNumberToObject(row, "return", ret);
    study_row(c, study, row);
}

// ------------------------------------------------ offline-to-online rows --
#define MAX_EVALS 512

int study_ctrl_o2o_rows(study_ctx *c, const char *study, const char *method, uint64_t seed,
                        const char *run_dir, int offline_steps, const study_ctrl_result *r,
                        cJSON *extra, rlhf_err *err) {
    double step[MAX_EVALS], ret[MAX_EVALS], score[MAX_EVALS];
    int n = 0;
    if (study_ctrl_evals(run_dir, MAX_EVALS, step, ret, score, &n, err)) {
        cJSON_Delete(extra);
        return -1;
    }
    double pre = NAN, dip = NAN, fin = NAN;
    for (int i = 0; i < n; i++) {
        double v = isfinite(score[i]) ? score[i] : ret[i];
        study_ctrl_curve_row(c, study, method, seed, step[i], score[i], ret[i]);
        if (step[i] == offline_steps) pre = v;
        if (step[i] > offline_steps && (isnan(dip) || v < dip)) dip = v;
        fin = v;
    }
    cJSON *row = study_ctrl_row(method, seed, r);
    cJSON_AddStringToObject(row, "phase", "o2o");
    cJSON_AddNumberToObject(row, "offline_steps", offline_steps);
    if (!isnan(pre)) cJSON_AddNumberToObject(row, "pretrained", pre);
    if (!isnan(dip)) cJSON_AddNumberToObject(row, "dip", dip);
    if (!isnan(fin)) cJSON_AddNumberToObject(row, "final", fin);
    if (extra) {
        cJSON *it = extra->child;
        while (it) {
            cJSON *next = it->next;
            cJSON_AddItemToObject(row, it->string, cJSON_DetachItemViaPointer(extra, it));
            it = next;
        }
        cJSON_Delete(extra);
    }
    study_row(c, study, row);
    if (isnan(pre))
        return rlhf_fail(err,
                         "study %s: %s has no evaluation at the last offline step %d "
                         "(--eval_every must divide --offline_steps)",
                         study, run_dir, offline_steps);
    return 0;
}

static int is_phase(const cJSON *row, const char *phase, const char *method) {
    return (!phase || !strcmp(study_str(row, "phase"), phase)) &&
           (!method || !strcmp(study_str(row, "method"), method));
}

#define MAX_SEEDS 256

int study_ctrl_diffs(const cJSON *rows, const char *phase, const char *a, const char *b,
                     const char *field, double *d, int max) {
    double seed[MAX_SEEDS];
    int ns = study_ctrl_seeds(rows, "phase", phase, seed, MAX_SEEDS), n = 0;
    for (int s = 0; s < ns && n < max; s++) {
        const cJSON *ra = study_ctrl_match(rows, seed[s], "phase", phase, "method", a, NULL);
        const cJSON *rb = study_ctrl_match(rows, seed[s], "phase", phase, "method", b, NULL);
        double va = study_num(ra, field), vb = study_num(rb, field);
        if (ra && rb && !isnan(va) && !isnan(vb)) d[n++] = va - vb;
    }
    return n;
}

stats_summary study_ctrl_stat(const cJSON *rows, const char *phase, const char *method,
                              const char *field) {
    double x[MAX_SEEDS];
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double v = study_num(row, field);
        if (is_phase(row, phase, method) && !isnan(v) && n < MAX_SEEDS) x[n++] = v;
    }
    return stats_summarize(x, n);
}

// ------------------------------------------------------------- reporting --
static int by_double(const void *a, const void *b) {
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

typedef struct {
    int n;
    double x[MAX_EVALS], y[MAX_EVALS], lo[MAX_EVALS], hi[MAX_EVALS];
} ctrl_curve;

static void curve_of(const cJSON *rows, const char *method, ctrl_curve *cv) {
    cv->n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double x = study_num(row, "step");
        if (!is_phase(row, "curve", method) || isnan(x)) continue;
        int seen = 0;
        for (int i = 0; i < cv->n && !seen; i++) seen = cv->x[i] == x;
        if (!seen && cv->n < MAX_EVALS) cv->x[cv->n++] = x;
    }
    qsort(cv->x, (size_t)cv->n, sizeof cv->x[0], by_double);
    for (int i = 0; i < cv->n; i++) {
        double ys[MAX_SEEDS];
        int k = 0;
        cJSON_ArrayForEach(row, rows) {
            if (!is_phase(row, "curve", method) || study_num(row, "step") != cv->x[i]) continue;
            double v = study_num(row, "score");
            if (isnan(v)) v = study_num(row, "return");
            if (k < MAX_SEEDS) ys[k++] = v;
        }
        stats_summary s = stats_summarize(ys, k);
        cv->y[i] = s.mean;
        cv->lo[i] = s.n >= 2 ? s.mean - s.se : s.mean;
        cv->hi[i] = s.n >= 2 ? s.mean + s.se : s.mean;
    }
}

void study_ctrl_plot_curves(report_page *p, const cJSON *rows, int n, const char *const *methods,
                            const char *const *labels, const char *title) {
    ctrl_curve *cv = xcalloc((size_t)n, sizeof *cv);
    report_series *s = xcalloc((size_t)n, sizeof *s);
    for (int m = 0; m < n; m++) {
        curve_of(rows, methods[m], &cv[m]);
        s[m] = (report_series){.label = labels[m],
                               .n = cv[m].n,
                               .x = cv[m].x,
                               .y = cv[m].y,
                               .ylo = cv[m].lo,
                               .yhi = cv[m].hi,
                               .markers = 1};
    }
    report_plot_opts o = {.title = title, .xlabel = "step", .ylabel = "normalised score"};
    report_plot(p, &o, s, n);
    free(s);
    free(cv);
}

static char *cell(const char *fmt, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t k = strlen(buf) + 1;
    return memcpy(xmalloc(k), buf, k);
}

void study_ctrl_table(report_page *p, const cJSON *rows, const char *phase, int n,
                      const char *const *methods, const char *const *labels, int n_fields,
                      const char *const *fields) {
    int cols = n_fields + 2;
    const char **head = xcalloc((size_t)cols, sizeof *head);
    char **cells = xcalloc((size_t)(n * cols) + 1, sizeof *cells);
    head[0] = "method";
    for (int f = 0; f < n_fields; f++) head[f + 1] = fields[f];
    head[cols - 1] = "seeds";
    for (int m = 0; m < n; m++) {
        cells[m * cols] = cell("%s", labels[m]);
        int seeds = 0;
        for (int f = 0; f < n_fields; f++) {
            stats_summary s = study_ctrl_stat(rows, phase, methods[m], fields[f]);
            cells[m * cols + f + 1] = s.n >= 2 ? cell("%.1f ± %.1f", s.mean, s.se)
                                      : s.n    ? cell("%.1f", s.mean)
                                               : cell("-");
            if (s.n > seeds) seeds = s.n;
        }
        cells[m * cols + cols - 1] = cell("%d", seeds);
    }
    report_table(p, cols, head, n, (const char *const *)cells);
    for (int i = 0; i < n * cols; i++) free(cells[i]);
    free(cells);
    free(head);
}

// ------------------------------------------------------------------ sizes --
study_ctrl_size study_ctrl_size_of(const study_ctx *c) {
    const char *e = getenv("RLHF_CTRL_STUDY");
    if (e && !strcmp(e, "smoke")) return STUDY_CTRL_SMOKE;
    return c->quick ? STUDY_CTRL_QUICK : STUDY_CTRL_FULL;
}

const char *study_ctrl_size_name(study_ctrl_size s) {
    return s == STUDY_CTRL_SMOKE ? "smoke" : s == STUDY_CTRL_QUICK ? "quick" : "full";
}

study_ctrl_data study_ctrl_data_of(const study_ctx *c) {
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        return (study_ctrl_data){"pendulum", 2000, 1000, 4, 32, 2, c->seed};
    case STUDY_CTRL_QUICK:
        return (study_ctrl_data){"pendulum", 8000, 4000, 40, 64, 10, c->seed};
    default:
#ifdef RLHF_HAVE_MUJOCO
        return (study_ctrl_data){"hopper", 300000, 100000, 60, 256, 10, c->seed};
#else
        return (study_ctrl_data){"pendulum", 20000, 10000, 100, 64, 10, c->seed};
#endif
    }
}

static const char *const ENVS[] = {"pendulum", "hopper", "halfcheetah", "walker2d"};

int study_ctrl_env_known(const char *name, size_t n) {
    for (size_t i = 0; i < sizeof ENVS / sizeof *ENVS; i++)
        if (strlen(ENVS[i]) == n && !strncmp(name, ENVS[i], n)) return 1;
    return 0;
}

int study_ctrl_env_makes(const char *task, rlhf_err *err) {
    ctrl_env *e = NULL;
    if (ctrl_env_make(task, &e, err)) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return rlhf_fail(err, "--task %s: %s", task, why);
    }
    ctrl_env_free(e);
    return 0;
}

int study_ctrl_env_check(const char *env, rlhf_err *err) {
    if (!study_ctrl_env_known(env, strlen(env)))
        return rlhf_fail(err,
                         "--task %s: this study takes the environment of its data: pendulum, "
                         "hopper, halfcheetah or walker2d",
                         env);
    return study_ctrl_env_makes(env, err);
}

const char *study_ctrl_env_words(const cJSON *rows, char *buf, size_t n) {
    const cJSON *row;
    buf[0] = 0;
    cJSON_ArrayForEach(row, rows) if (*study_str(row, "env")) {
        snprintf(buf, n, "Environment: %s. ", study_str(row, "env"));
        break;
    }
    return buf;
}

study_ctrl_data study_ctrl_data_on(const study_ctx *c, const char *env) {
    if (!env || !*env) return study_ctrl_data_of(c);
    study_ctrl_size size = study_ctrl_size_of(c);
    if (!strcmp(env, "pendulum")) {
        if (size != STUDY_CTRL_FULL) return study_ctrl_data_of(c);
        return (study_ctrl_data){"pendulum", 20000, 10000, 100, 64, 10, c->seed};
    }
    switch (size) {
    case STUDY_CTRL_SMOKE:
        return (study_ctrl_data){env, 1500, 200, 2, 16, 1, c->seed};
    case STUDY_CTRL_QUICK:
        return (study_ctrl_data){env, 80000, 20000, 20, 256, 5, c->seed};
    default:
        return (study_ctrl_data){env, 300000, 100000, 60, 256, 10, c->seed};
    }
}

void study_ctrl_common(study_args *a, const char *algo, const study_ctrl_data *d,
                       const char *dataset, uint64_t seed) {
    study_add(a, "--algo", algo, "--env", d->env, "--dataset", dataset, NULL);
    study_addf(a, "--hidden=%d", d->hidden);
    study_addf(a, "--eval_episodes=%d", d->eval_episodes);
    study_addf(a, "--seed=%llu", (unsigned long long)seed);
}

int study_ctrl_o2o_arm(study_ctx *c, const char *study, const char *method, const char *algo,
                       const study_ctrl_data *d, const char *dataset, const study_ctrl_o2o *o,
                       const char *const *extra, uint64_t seed, rlhf_err *err) {
    study_args a = {0};
    study_ctrl_common(&a, algo, d, dataset, seed);
    study_addf(&a, "--offline_steps=%d", o->offline_steps);
    study_addf(&a, "--online_steps=%d", o->online_steps);
    study_addf(&a, "--eval_every=%d", o->eval_every);
    study_add(&a, "--save_every=0", NULL);
    for (int i = 0; extra && extra[i]; i++) study_add(&a, extra[i], NULL);
    char name[256], dir[1400];
    snprintf(name, sizeof name, "seed%llu/%s", (unsigned long long)seed, method);
    study_ctrl_result r;
    if (study_ctrl_train(c, name, &a, dir, sizeof dir, &r, err)) return -1;
    cJSON *extra_row = cJSON_CreateObject();
    cJSON_AddStringToObject(extra_row, "algo", algo);
    cJSON_AddStringToObject(extra_row, "env", d->env);
    return study_ctrl_o2o_rows(c, study, method, seed, dir, o->offline_steps, &r, extra_row, err);
}
