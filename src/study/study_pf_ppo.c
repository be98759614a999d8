// study/study_pf_ppo: `rlhf study pf-ppo` — Zhang et al. 2024, "Policy
// filtration in RLHF to fine-tune LLM for code generation" (PF-PPO), on the
// gold-reward sandbox.
//
// Per seed: gold-labelled pairs of two samples of pi_ref with Bradley-Terry
// label noise (study_gold_pairs) and a proxy reward model trained on only a
// few of them (study_proxy_rm): a noisy reward model. Then PPO from pi_ref on
// that proxy, G samples per prompt, with the policy-filtration variants of
// `rlhf ppo --filter`: none (plain PPO), best_random (BR: the proxy-best
// sample of each prompt plus one other at random) and best_worst (BW: the
// best plus the worst); every checkpoint evaluated (gold, proxy, KL).
//
// Rows: {"phase":"rm", seed, labels, accuracy}; {"phase":"rl", method
// ("none" | "best_random" | "best_worst"), seed, step, kl, gold, proxy}
// (step 0: pi_ref).
//
// Verdict (pure, from rows): a run's "late gold" is the mean gold of its
// checkpoints in the second half of training (step > half the last step:
// less evaluation noise than one checkpoint); per seed, d = the mean of
// late gold(BR) - late gold(none) and late gold(BW) - late gold(none);
// supported when d's mean over seeds is > 0 and >= 2 standard errors
// (stats_sign_test), not supported when it is <= -2 se.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "study/stats.h"
#include "study/study.h"

#define NAME "pf-ppo"

enum { F_NONE, F_BR, F_BW, N_METHOD };
static const char *const METHOD[N_METHOD] = {"none", "best_random", "best_worst"};
static const char *const LABEL[N_METHOD] = {"PPO (no filter)", "PF-PPO best-random (BR)",
                                            "PF-PPO best-worst (BW)"};

#define MAX_SEEDS 64

// --------------------------------------------------------------- the plan --
typedef struct {
    int n_prompts;  // prompts whose two pi_ref samples make a gold-labelled pair
    double bt_temp; // Bradley-Terry temperature of the gold labels (label noise)
    int labels;     // gold labels the proxy reward model learns from (few: a noisy proxy)
    int rl_steps, save_every, batch, generations;
    double lr, beta;
} pf_plan;

static pf_plan plan_of(const study_ctx *c) {
    if (c->quick) return (pf_plan){600, 0.3, 300, 30, 10, 8, 8, 5e-5, 0.05};
    return (pf_plan){1000, 0.3, 500, 60, 15, 8, 8, 5e-5, 0.05};
}

// -------------------------------------------------------------------- PPO --
static int rl_row(study_ctx *c, int m, const char *model, const char *rm, int step, uint64_t seed,
                  rlhf_err *err) {
    study_point pt;
    if (study_eval(c, model, rm, seed * 1000 + 7, &pt, err)) return -1;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "phase", "rl");
    cJSON_AddStringToObject(row, "method", METHOD[m]);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "step", step);
    cJSON_AddNumberToObject(row, "kl", pt.kl);
    cJSON_AddNumberToObject(row, "gold", pt.gold);
    cJSON_AddNumberToObject(row, "proxy", pt.proxy);
    study_row(c, NAME, row);
    return 0;
}

// PPO with filter m on the proxy rm, then a row per checkpoint; pi_ref's row
// (step 0) is measured once per seed and copied to every method
static int rl_method(study_ctx *c, const pf_plan *pl, const char *dir, const char *rm, int m,
                     uint64_t seed, rlhf_err *err) {
    char run[1300], log[96], model[1400];
    snprintf(run, sizeof run, "%s/ppo-%s", dir, METHOD[m]);
    snprintf(log, sizeof log, "train/seed%llu-%s", (unsigned long long)seed, METHOD[m]);
    study_args a = {0};
    study_add(&a, "ppo", "--model", c->sft, "--reward_model", rm, "--output_dir", run,
              "--max_new_tokens", "8", "--lr_scheduler_type", "constant", "--quiet",
              "--overwrite_output_dir", NULL);
    study_addf(&a, "--data=%s/prompts.jsonl", c->data);
    study_addf(&a, "--filter=%s", METHOD[m]);
    study_addf(&a, "--max_steps=%d", pl->rl_steps);
    study_addf(&a, "--save_steps=%d", pl->save_every);
    study_addf(&a, "--batch_size=%d", pl->batch);
    study_addf(&a, "--num_generations=%d", pl->generations);
    study_addf(&a, "--learning_rate=%g", pl->lr);
    study_addf(&a, "--beta=%g", pl->beta);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    if (study_run(c, log, &a, NULL, err)) return -1;
    for (int step = pl->save_every; step < pl->rl_steps; step += pl->save_every) {
        snprintf(model, sizeof model, "%s/checkpoints/step-%08d", run, step);
        if (rl_row(c, m, model, rm, step, seed, err)) return -1;
    }
    snprintf(model, sizeof model, "%s/checkpoints/final", run);
    return rl_row(c, m, model, rm, pl->rl_steps, seed, err);
}

static int ref_rows(study_ctx *c, const char *rm, uint64_t seed, rlhf_err *err) {
    study_point pt;
    if (study_eval(c, c->sft, rm, seed * 1000 + 7, &pt, err)) return -1;
    for (int m = 0; m < N_METHOD; m++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "phase", "rl");
        cJSON_AddStringToObject(row, "method", METHOD[m]);
        cJSON_AddNumberToObject(row, "seed", (double)seed);
        cJSON_AddNumberToObject(row, "step", 0);
        cJSON_AddNumberToObject(row, "kl", 0);
        cJSON_AddNumberToObject(row, "gold", pt.gold);
        cJSON_AddNumberToObject(row, "proxy", pt.proxy);
        study_row(c, NAME, row);
    }
    return 0;
}

// ------------------------------------------------------------------ run --
static int run_seed(study_ctx *c, const pf_plan *pl, uint64_t seed, rlhf_err *err) {
    char dir[1200], raw[1300], pairs[1300], rm[1300];
    snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
    snprintf(raw, sizeof raw, "%s/pairs_all.jsonl", dir);
    snprintf(pairs, sizeof pairs, "%s/pairs.jsonl", dir);
    snprintf(rm, sizeof rm, "%s/proxy_rm", dir);
    if (make_dirs(dir, err)) return -1;
    if (study_gold_pairs(c, c->sft, pl->n_prompts, pl->bt_temp, seed, raw, err)) return -1;
    int kept = 0;
    if (study_keep_pairs(raw, pairs, 0, &kept, err)) return -1;
    if (kept < pl->labels)
        return rlhf_fail(err, "study " NAME ": %s has %d usable pairs; the study needs %d", raw,
                         kept, pl->labels);
    double acc = NAN;
    if (study_proxy_rm(c, pairs, pl->labels, 1, seed, rm, &acc, err)) return -1;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "phase", "rm");
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "labels", pl->labels);
    cJSON_AddNumberToObject(row, "accuracy", acc);
    study_row(c, NAME, row);
    if (ref_rows(c, rm, seed, err)) return -1;
    for (int m = 0; m < N_METHOD; m++)
        if (rl_method(c, pl, dir, rm, m, seed, err)) return -1;
    return 0;
}

static int pf_run(study_ctx *c, rlhf_err *err) {
    pf_plan pl = plan_of(c);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME ": seed %d of %d\n", s + 1, c->n_seeds);
        if (run_seed(c, &pl, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// ------------------------------------------------------------ reading rows --
static int is_rl(const cJSON *row, int m) {
    return !strcmp(study_str(row, "phase"), "rl") &&
           (m < 0 || !strcmp(study_str(row, "method"), METHOD[m]));
}

// the distinct seeds of the RL rows, in order of appearance (at most max)
static int seeds_of(const cJSON *rows, double *seed, int max) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double s = study_num(row, "seed");
        if (!is_rl(row, -1) || isnan(s)) continue;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = seed[i] == s;
        if (!seen && n < max) seed[n++] = s;
    }
    return n;
}

// the mean gold of method m's checkpoints of one seed with step > half its
// last step (NAN: none)
static double late_gold(const cJSON *rows, int m, double seed, double *last_step) {
    double top = NAN, sum = 0;
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double st = study_num(row, "step");
        if (is_rl(row, m) && study_num(row, "seed") == seed && !isnan(st) &&
            (isnan(top) || st > top))
            top = st;
    }
    cJSON_ArrayForEach(row, rows) {
        double st = study_num(row, "step"), g = study_num(row, "gold");
        if (is_rl(row, m) && study_num(row, "seed") == seed && st > top / 2 && !isnan(g))
            sum += g, n++;
    }
    if (last_step) *last_step = top;
    return n && top > 0 ? sum / n : NAN;
}

// ---------------------------------------------------------------- verdict --
static int pf_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    double seed[MAX_SEEDS], late[N_METHOD][MAX_SEEDS], d[2][MAX_SEEDS], both[MAX_SEEDS];
    double last = NAN;
    int n = seeds_of(rows, seed, MAX_SEEDS);
    for (int s = 0; s < n; s++) {
        for (int m = 0; m < N_METHOD; m++) late[m][s] = late_gold(rows, m, seed[s], &last);
        d[0][s] = late[F_BR][s] - late[F_NONE][s];
        d[1][s] = late[F_BW][s] - late[F_NONE][s];
        both[s] = (d[0][s] + d[1][s]) / 2;
    }
    stats_summary all = stats_summarize(both, n), br = stats_summarize(d[0], n),
                  bw = stats_summarize(d[1], n), g[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) g[m] = stats_summarize(late[m], n);
    int sign = stats_sign_test(&all);
    v->outcome = sign > 0 ? STUDY_SUPPORTED : sign < 0 ? STUDY_NOT_SUPPORTED : STUDY_INCONCLUSIVE;
    snprintf(v->figure, sizeof v->figure, "%+.3f ± %.3f gold (BR/BW - PPO, %d seeds)", all.mean,
             all.se, all.n);
    snprintf(v->text, sizeof v->text,
             "Late gold reward (the mean over the checkpoints in the second half of training, "
             "up to step %g) under a noisy proxy reward model: PPO %.4f ± %.4f, BR %.4f ± %.4f, "
             "BW %.4f ± %.4f (mean ± se over seeds). Filtered minus unfiltered, seed by seed and "
             "averaged over BR and BW: %+.4f ± %.4f (%d seeds); BR alone %+.4f ± %.4f, BW alone "
             "%+.4f ± %.4f. Rule: supported when the mean difference is positive and at least 2 "
             "se, not supported when it is negative and at least 2 se, else inconclusive.",
             last, g[F_NONE].mean, g[F_NONE].se, g[F_BR].mean, g[F_BR].se, g[F_BW].mean, g[F_BW].se,
             all.mean, all.se, all.n, br.mean, br.se, bw.mean, bw.se);
    return 0;
}

// ----------------------------------------------------------------- report --
#define MAX_X 64

typedef struct {
    int n;
    double x[MAX_X], y[MAX_X], lo[MAX_X], hi[MAX_X];
} pf_curve;

static int by_double(const void *a, const void *b) {
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

// mean over seeds of field y at each step of method m; band mean ± se (two
// seeds or more)
static void curve_of(const cJSON *rows, int m, const char *ykey, pf_curve *cv) {
    memset(cv, 0, sizeof *cv);
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double x = study_num(row, "step");
        if (!is_rl(row, m) || isnan(x)) continue;
        int seen = 0;
        for (int i = 0; i < cv->n && !seen; i++) seen = cv->x[i] == x;
        if (!seen && cv->n < MAX_X) cv->x[cv->n++] = x;
    }
    qsort(cv->x, (size_t)cv->n, sizeof cv->x[0], by_double);
    for (int i = 0; i < cv->n; i++) {
        double ys[MAX_SEEDS];
        int k = 0;
        cJSON_ArrayForEach(row, rows) {
            if (is_rl(row, m) && study_num(row, "step") == cv->x[i] && k < MAX_SEEDS)
                ys[k++] = study_num(row, ykey);
        }
        stats_summary s = stats_summarize(ys, k);
        cv->y[i] = s.mean;
        cv->lo[i] = s.n >= 2 ? s.mean - s.se : s.mean;
        cv->hi[i] = s.n >= 2 ? s.mean + s.se : s.mean;
    }
}

static void method_plot(report_page *p, const cJSON *rows, const char *ykey,
                        const report_plot_opts *o) {
    pf_curve cv[N_METHOD];
    report_series s[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) {
        curve_of(rows, m, ykey, &cv[m]);
        s[m] = (report_series){.label = LABEL[m],
                               .n = cv[m].n,
                               .x = cv[m].x,
                               .y = cv[m].y,
                               .ylo = cv[m].lo,
                               .yhi = cv[m].hi,
                               .markers = 1};
    }
    report_plot(p, o, s, N_METHOD);
}

// per seed: each method's late gold
static void late_table(report_page *p, const cJSON *rows) {
    double seed[MAX_SEEDS];
    int n = seeds_of(rows, seed, MAX_SEEDS);
    static const char *const head[] = {"seed", "none", "best_random", "best_worst"};
    char **cells = xcalloc((size_t)n * 4 + 1, sizeof *cells);
    for (int s = 0; s < n; s++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%g", seed[s]);
        cells[s * 4] = strcpy(xmalloc(strlen(buf) + 1), buf);
        for (int m = 0; m < N_METHOD; m++) {
            snprintf(buf, sizeof buf, "%.4f", late_gold(rows, m, seed[s], NULL));
            cells[s * 4 + 1 + m] = strcpy(xmalloc(strlen(buf) + 1), buf);
        }
    }
    report_table(p, 4, head, n, (const char *const *)cells);
    for (int i = 0; i < n * 4; i++) free(cells[i]);
    free(cells);
}

static int pf_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p, "PPO from pi_ref on a noisy proxy reward model (trained on few gold labels with "
                "Bradley-Terry noise), with and without policy filtration; every checkpoint's "
                "gold reward, proxy reward and KL to pi_ref, mean over seeds, band ± se.");
    report_plot_opts o = {
        .title = "Gold reward over training", .xlabel = "step", .ylabel = "gold reward"};
    method_plot(p, rows, "gold", &o);
    o = (report_plot_opts){
        .title = "Proxy reward over training", .xlabel = "step", .ylabel = "proxy reward"};
    method_plot(p, rows, "proxy", &o);
    o = (report_plot_opts){.title = "KL to pi_ref over training", .xlabel = "step", .ylabel = "KL"};
    method_plot(p, rows, "kl", &o);
    report_h(p, 2, "Late gold reward, seed by seed");
    late_table(p, rows);
    return 0;
}

const study_def study_pf_ppo = {
    .name = NAME,
    .paper = "Zhang et al. 2024, Policy filtration in RLHF to fine-tune LLM for code generation",
    .claim = "Filtering PPO's samples by reward (best-random or best-worst per prompt) gives a "
             "higher gold reward than unfiltered PPO when the reward model is noisy.",
    .run = pf_run,
    .verdict = pf_verdict,
    .report = pf_report,
};
