// study/study_ensembles: `rlhf study ensembles` — Coste et al. 2024, "Reward
// model ensembles help mitigate overoptimization", on the gold-reward sandbox.
//
// Per seed: gold-labelled pairs of two samples of pi_ref with Bradley-Terry
// label noise (study_gold_pairs); an ensemble of K reward models trained on the
// first N labels (`rlhf rm --ensemble_size K --ensemble_trunks separate`: K
// runs from pi_ref's weights with seeds seed, seed+1, ...; the "single" reward
// model is member 0, trained exactly as a lone model would be). Then two kinds
// of optimisation against four objectives, a member alone ("single") and the
// ensemble's mean, worst case (WCO, min_i r_i) and uncertainty-weighted (UWO,
// mean_i r_i - lambda Var_i r_i):
//   * best-of-n of pi_ref: bon_k samples per held-out prompt scored by every
//     member (`rlhf eval --reward_model ENS --output`); for n = 1, 2, 4, ...,
//     bon_k the expected gold of the objective's best of n random samples,
//     computed without bias over all n-subsets; "single" is the mean of the K
//     members' own curves (the expected single reward model);
//   * GRPO from pi_ref with `--reward_model` (member 0, or the ensemble with
//     --rm_ensemble mean|wco|uwo), every checkpoint evaluated (gold, proxy, KL).
//
// Rows: {"phase":"rm", "member", seed, labels, accuracy} per member;
// {"phase":"bon", method, seed, n, kl, gold, proxy} with KL_bon = ln n - (n-1)/n
// and proxy the objective's score of the chosen sample; {"phase":"rl", method,
// seed, step, kl, gold, proxy} with proxy the trained-on member's score
// (single) or the members' mean (ensembles).
//
// Verdict (pure, from rows): at the highest optimisation of each phase (the
// largest n; the last step) and for each seed, d = the mean of the four
// differences gold(WCO) - gold(single) and gold(UWO) - gold(single) in
// best-of-n and in GRPO; supported when d's mean over seeds is > 0 and >= 2
// standard errors (stats_sign_test), not supported when it is <= -2 se.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "study/stats.h"
#include "study/study.h"

#define NAME "ensembles"

enum { M_SINGLE, M_MEAN, M_WCO, M_UWO, N_METHOD };
static const char *const METHOD[N_METHOD] = {"single", "mean", "wco", "uwo"};
static const char *const LABEL[N_METHOD] = {"single RM", "ensemble mean", "WCO (min)",
                                            "UWO (mean - lambda var)"};

#define MAX_MEMBERS 8
#define MAX_LEVELS 12

// --------------------------------------------------------------- the plan --
typedef struct {
    int n_prompts;     // prompts whose two pi_ref samples make a gold-labelled pair
    double bt_temp;    // Bradley-Terry temperature of the gold labels (label noise)
    int labels;        // gold labels the reward models learn from
    int members;       // K
    int rm_steps;      // optimizer steps of each member
    int bon_k;         // samples per prompt behind best-of-n
    double lambda_bon; // UWO's lambda in best-of-n (the paper: 0.5)
    double lambda_rl;  // and in RL (the paper: 0.1 for PPO)
    int rl_steps, save_every, batch, generations;
    double lr, beta;
} ens_plan;

static ens_plan plan_of(const study_ctx *c) {
    if (c->quick) return (ens_plan){600, 0.1, 300, 3, 150, 16, 0.5, 0.1, 30, 10, 8, 8, 1e-4, 0.01};
    return (ens_plan){1000, 0.1, 500, 5, 250, 32, 0.5, 0.1, 60, 20, 8, 8, 1e-4, 0.01};
}

// ---------------------------------------------------------- reward models --
// K separate members on the labels, one "rm" row per member (held-out accuracy)
static int train_ensemble(study_ctx *c, const ens_plan *pl, const char *labels, uint64_t seed,
                          const char *dir, rlhf_err *err) {
    study_args a = {0};
    study_add(&a, "rm", "--model", c->sft, "--data", labels, "--output_dir", dir, "--batch_size",
              "32", "--learning_rate", "1e-3", "--eval_split", "0.1", "--lr_scheduler_type",
              "cosine", "--save_steps", "0", "--ensemble_trunks", "separate", "--quiet",
              "--overwrite_output_dir", NULL);
    study_addf(&a, "--max_steps=%d", pl->rm_steps);
    study_addf(&a, "--ensemble_size=%d", pl->members);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    char log[64];
    snprintf(log, sizeof log, "rm/seed%llu", (unsigned long long)seed);
    if (study_run(c, log, &a, NULL, err)) return -1;
    for (int k = 0; k < pl->members; k++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/member-%d/summary.json", dir, k);
        char *text = read_file(path, NULL, err);
        if (!text) return -1;
        cJSON *j = cJSON_Parse(text);
        free(text);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "phase", "rm");
        cJSON_AddStringToObject(row, "method", "member");
        cJSON_AddNumberToObject(row, "member", k);
        cJSON_AddNumberToObject(row, "seed", (double)seed);
        cJSON_AddNumberToObject(row, "labels", pl->labels);
        cJSON_AddNumberToObject(row, "accuracy", study_num(j, "eval_accuracy"));
        cJSON_Delete(j);
        study_row(c, NAME, row);
    }
    return 0;
}

// ------------------------------------------------------------- best-of-n --
typedef struct {
    double score, gold;
} ens_sample;

static int by_score_desc(const void *a, const void *b) {
    double u = ((const ens_sample *)a)->score, v = ((const ens_sample *)b)->score;
    return (u < v) - (u > v);
}

static double log_choose(int n, int k) {
    return lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0);
}

// Expected gold and score of the best (by score) of n samples drawn without
// replacement from k: sorted best first, the i-th is the best of a random
// n-subset with probability C(k-1-i, n-1) / C(k, n). s is sorted in place.
static void bon_expect(ens_sample *s, int k, int n, double *gold, double *score) {
    qsort(s, (size_t)k, sizeof *s, by_score_desc);
    *gold = *score = 0;
    for (int i = 0; i + n <= k; i++) {
        double w = exp(log_choose(k - 1 - i, n - 1) - log_choose(k, n));
        *gold += w * s[i].gold;
        *score += w * s[i].score;
    }
}

// the objective of method m (member `member` for single) from K member scores
static double objective(int m, int member, const double *r, int K, double lambda) {
    if (m == M_SINGLE) return r[member];
    double mean = 0, var = 0, lo = r[0];
    for (int i = 0; i < K; i++) mean += r[i] / K, lo = r[i] < lo ? r[i] : lo;
    for (int i = 0; i < K; i++) var += (r[i] - mean) * (r[i] - mean) / K;
    return m == M_MEAN ? mean : m == M_WCO ? lo : mean - lambda * var;
}

// one prompt's k samples (gold, K member scores) from an eval --output line
static int prompt_samples(const cJSON *j, int k, int K, double *gold, double *r) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "sample_gold");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "sample_proxy_members");
    if (cJSON_GetArraySize(g) != k || cJSON_GetArraySize(p) != k) return -1;
    for (int i = 0; i < k; i++) {
        const cJSON *gi = cJSON_GetArrayItem(g, i), *pi = cJSON_GetArrayItem(p, i);
        if (!cJSON_IsNumber(gi) || cJSON_GetArraySize(pi) != K) return -1;
        gold[i] = gi->valuedouble;
        for (int m = 0; m < K; m++) {
            const cJSON *v = cJSON_GetArrayItem(pi, m);
            if (!cJSON_IsNumber(v)) return -1;
            r[i * K + m] = v->valuedouble;
        }
    }
    return 0;
}

// adds one prompt's best-of-n gold and score at every level to sums [method][level]
static void prompt_bon(const ens_plan *pl, const double *gold, const double *r, int levels,
                       double (*g_sum)[MAX_LEVELS], double (*s_sum)[MAX_LEVELS]) {
    int k = pl->bon_k, K = pl->members;
    ens_sample *s = xmalloc((size_t)k * sizeof *s);
    for (int m = 0; m < N_METHOD; m++)
        for (int member = 0; member < (m == M_SINGLE ? K : 1); member++) {
            double share = m == M_SINGLE ? 1.0 / K : 1.0;
            for (int i = 0; i < k; i++)
                s[i] = (ens_sample){objective(m, member, r + i * K, K, pl->lambda_bon), gold[i]};
            for (int l = 0, n = 1; l < levels; l++, n *= 2) {
                double g, sc;
                bon_expect(s, k, n, &g, &sc);
                g_sum[m][l] += share * g;
                s_sum[m][l] += share * sc;
            }
        }
    free(s);
}

// the best-of-n curves of every method from an eval --output file, as rows
static int bon_rows(study_ctx *c, const ens_plan *pl, const char *path, uint64_t seed,
                    rlhf_err *err) {
    char *text = read_file(path, NULL, err);
    if (!text) return -1;
    int levels = 0, k = pl->bon_k, K = pl->members, prompts = 0, rc = 0;
    while ((1 << levels) <= k && levels < MAX_LEVELS) levels++;
    double g_sum[N_METHOD][MAX_LEVELS] = {{0}}, s_sum[N_METHOD][MAX_LEVELS] = {{0}};
    double *gold = xmalloc((size_t)k * sizeof *gold), *r = xmalloc((size_t)k * K * sizeof *r);
    for (char *line = strtok(text, "\n"); line && rc == 0; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (!j || prompt_samples(j, k, K, gold, r))
            rc = rlhf_fail(err,
                           "study " NAME ": %s: a line without %d sample_gold numbers and "
                           "sample_proxy_members of %d",
                           path, k, K);
        else
            prompt_bon(pl, gold, r, levels, g_sum, s_sum), prompts++;
        cJSON_Delete(j);
    }
    free(gold);
    free(r);
    free(text);
    if (rc == 0 && prompts == 0) rc = rlhf_fail(err, "study " NAME ": %s has no prompts", path);
    for (int m = 0; rc == 0 && m < N_METHOD; m++)
        for (int l = 0, n = 1; l < levels; l++, n *= 2) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "phase", "bon");
            cJSON_AddStringToObject(row, "method", METHOD[m]);
            cJSON_AddNumberToObject(row, "seed", (double)seed);
            cJSON_AddNumberToObject(row, "n", n);
            cJSON_AddNumberToObject(row, "kl", log(n) - (n - 1.0) / n);
            cJSON_AddNumberToObject(row, "gold", g_sum[m][l] / prompts);
            cJSON_AddNumberToObject(row, "proxy", s_sum[m][l] / prompts);
            study_row(c, NAME, row);
        }
    return rc;
}

// bon_k samples of pi_ref per held-out prompt, scored by every member
static int bon_phase(study_ctx *c, const ens_plan *pl, const char *dir, const char *ens,
                     uint64_t seed, rlhf_err *err) {
    char out[1300];
    snprintf(out, sizeof out, "%s/bon_samples.jsonl", dir);
    study_args a = {0};
    study_add(&a, "eval", "--task", "arith", "--model", c->sft, "--max_new_tokens", "8",
              "--reward_model", ens, "--output", out, NULL);
    study_addf(&a, "--data=%s/eval.jsonl", c->data);
    study_addf(&a, "--limit=%d", c->n_eval);
    study_addf(&a, "--samples_per_prompt=%d", pl->bon_k);
    study_addf(&a, "--seed=%llu", (unsigned long long)(seed * 1000 + 11));
    char log[64];
    snprintf(log, sizeof log, "eval/bon-seed%llu", (unsigned long long)seed);
    if (study_run(c, log, &a, NULL, err)) return -1;
    return bon_rows(c, pl, out, seed, err);
}

// ------------------------------------------------------------------- GRPO --
static void put_rl_row(study_ctx *c, int m, int step, uint64_t seed, const study_point *pt) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "phase", "rl");
    cJSON_AddStringToObject(row, "method", METHOD[m]);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "step", step);
    cJSON_AddNumberToObject(row, "kl", pt->kl);
    cJSON_AddNumberToObject(row, "gold", pt->gold);
    cJSON_AddNumberToObject(row, "proxy", pt->proxy);
    study_row(c, NAME, row);
}

static int rl_row(study_ctx *c, int m, const char *model, const char *proxy, int step,
                  uint64_t seed, rlhf_err *err) {
    study_point pt;
    if (study_eval(c, model, proxy, seed * 1000 + 7, &pt, err)) return -1;
    put_rl_row(c, m, step, seed, &pt);
    return 0;
}

// the reward model method m trains on: member 0 (single) or the ensemble
static void rm_of(const char *ens, int m, char *rm, size_t n) {
    if (m == M_SINGLE)
        snprintf(rm, n, "%s/member-0", ens);
    else
        snprintf(rm, n, "%s", ens);
}

// GRPO against method m's objective, then a row per checkpoint; step 0 is
// pi_ref (ref: its evaluation with the same proxy)
static int rl_method(study_ctx *c, const ens_plan *pl, const char *dir, const char *ens, int m,
                     const study_point *ref, uint64_t seed, rlhf_err *err) {
    char rm[1400], run[1300], log[96], model[1400];
    rm_of(ens, m, rm, sizeof rm);
    snprintf(run, sizeof run, "%s/grpo-%s", dir, METHOD[m]);
    snprintf(log, sizeof log, "train/seed%llu-%s", (unsigned long long)seed, METHOD[m]);
    study_args a = {0};
    study_add(&a, "grpo", "--model", c->sft, "--reward_model", rm, "--output_dir", run,
              "--max_new_tokens", "8", "--lr_scheduler_type", "constant", "--quiet",
              "--overwrite_output_dir", NULL);
    study_addf(&a, "--data=%s/prompts.jsonl", c->data);
    if (m != M_SINGLE) study_addf(&a, "--rm_ensemble=%s", METHOD[m]);
    study_addf(&a, "--uwo_lambda=%g", pl->lambda_rl);
    study_addf(&a, "--max_steps=%d", pl->rl_steps);
    study_addf(&a, "--save_steps=%d", pl->save_every);
    study_addf(&a, "--batch_size=%d", pl->batch);
    study_addf(&a, "--num_generations=%d", pl->generations);
    study_addf(&a, "--learning_rate=%g", pl->lr);
    study_addf(&a, "--beta=%g", pl->beta);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    if (study_run(c, log, &a, NULL, err)) return -1;
    put_rl_row(c, m, 0, seed, ref);
    for (int step = pl->save_every; step < pl->rl_steps; step += pl->save_every) {
        snprintf(model, sizeof model, "%s/checkpoints/step-%08d", run, step);
        if (rl_row(c, m, model, rm, step, seed, err)) return -1;
    }
    snprintf(model, sizeof model, "%s/checkpoints/final", run);
    return rl_row(c, m, model, rm, pl->rl_steps, seed, err);
}

// ------------------------------------------------------------------ run --
static int run_seed(study_ctx *c, const ens_plan *pl, uint64_t seed, rlhf_err *err) {
    char dir[1200], raw[1300], labels[1300], ens[1300];
    snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
    snprintf(raw, sizeof raw, "%s/pairs_all.jsonl", dir);
    snprintf(labels, sizeof labels, "%s/labels.jsonl", dir);
    snprintf(ens, sizeof ens, "%s/ensemble", dir);
    if (make_dirs(dir, err)) return -1;
    if (study_gold_pairs(c, c->sft, pl->n_prompts, pl->bt_temp, seed, raw, err)) return -1;
    int kept = 0;
    if (study_keep_pairs(raw, labels, pl->labels, &kept, err)) return -1;
    if (kept < pl->labels)
        return rlhf_fail(err, "study " NAME ": %s has %d usable pairs; the study needs %d", raw,
                         kept, pl->labels);
    if (train_ensemble(c, pl, labels, seed, ens, err)) return -1;
    if (bon_phase(c, pl, dir, ens, seed, err)) return -1;
    study_point ref[2]; // pi_ref with member 0 as the proxy, and with the ensemble
    char rm[1400];
    for (int i = 0; i < 2; i++) {
        rm_of(ens, i ? M_MEAN : M_SINGLE, rm, sizeof rm);
        if (study_eval(c, c->sft, rm, seed * 1000 + 7, &ref[i], err)) return -1;
    }
    for (int m = 0; m < N_METHOD; m++)
        if (rl_method(c, pl, dir, ens, m, &ref[m != M_SINGLE], seed, err)) return -1;
    return 0;
}

static int ens_run(study_ctx *c, rlhf_err *err) {
    ens_plan pl = plan_of(c);
    if (pl.members > MAX_MEMBERS) return rlhf_fail(err, "study " NAME ": too many members");
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME ": seed %d of %d\n", s + 1, c->n_seeds);
        if (run_seed(c, &pl, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// ------------------------------------------------------------ reading rows --
#define MAX_SEEDS 64

// the distinct seeds of the phase's rows, in order of appearance (at most max)
static int seeds_of(const cJSON *rows, const char *phase, double *seed, int max) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double s = study_num(row, "seed");
        if (strcmp(study_str(row, "phase"), phase) || isnan(s)) continue;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = seed[i] == s;
        if (!seen && n < max) seed[n++] = s;
    }
    return n;
}

// the largest x (n or step) of a phase's rows for one seed (NAN: none)
static double top_x(const cJSON *rows, const char *phase, const char *xkey, double seed) {
    double top = NAN;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double x = study_num(row, xkey);
        if (!strcmp(study_str(row, "phase"), phase) && study_num(row, "seed") == seed &&
            !isnan(x) && (isnan(top) || x > top))
            top = x;
    }
    return top;
}

// field y of the row (phase, method, seed, xkey = x); NAN when absent
static double value_at(const cJSON *rows, const char *phase, int m, double seed, const char *xkey,
                       double x, const char *y) {
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (!strcmp(study_str(row, "phase"), phase) &&
            !strcmp(study_str(row, "method"), METHOD[m]) && study_num(row, "seed") == seed &&
            study_num(row, xkey) == x)
            return study_num(row, y);
    }
    return NAN;
}

// ---------------------------------------------------------------- verdict --
// gold(m) - gold(single) at a phase's highest optimisation, per seed
static void top_diffs(const cJSON *rows, const char *phase, const char *xkey, int m,
                      const double *seed, int n, double *d) {
    for (int s = 0; s < n; s++) {
        double x = top_x(rows, phase, xkey, seed[s]);
        d[s] = value_at(rows, phase, m, seed[s], xkey, x, "gold") -
               value_at(rows, phase, M_SINGLE, seed[s], xkey, x, "gold");
    }
}

static int ens_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    double seed[MAX_SEEDS], d[4][MAX_SEEDS], dm[2][MAX_SEEDS], both[MAX_SEEDS];
    int n = seeds_of(rows, "bon", seed, MAX_SEEDS);
    static const char *const PH[2] = {"bon", "rl"}, *const XK[2] = {"n", "step"};
    for (int p = 0; p < 2; p++) {
        top_diffs(rows, PH[p], XK[p], M_WCO, seed, n, d[2 * p]);
        top_diffs(rows, PH[p], XK[p], M_UWO, seed, n, d[2 * p + 1]);
        top_diffs(rows, PH[p], XK[p], M_MEAN, seed, n, dm[p]);
    }
    for (int s = 0; s < n; s++) both[s] = (d[0][s] + d[1][s] + d[2][s] + d[3][s]) / 4;
    stats_summary all = stats_summarize(both, n), part[4], mean[2];
    for (int i = 0; i < 4; i++) part[i] = stats_summarize(d[i], n);
    for (int p = 0; p < 2; p++) mean[p] = stats_summarize(dm[p], n);
    int sign = stats_sign_test(&all);
    v->outcome = sign > 0 ? STUDY_SUPPORTED : sign < 0 ? STUDY_NOT_SUPPORTED : STUDY_INCONCLUSIVE;
    double top_n = n ? top_x(rows, "bon", "n", seed[0]) : NAN;
    double top_step = n ? top_x(rows, "rl", "step", seed[0]) : NAN;
    snprintf(v->figure, sizeof v->figure, "%+.3f ± %.3f gold (WCO/UWO - single, %d seeds)",
             all.mean, all.se, all.n);
    snprintf(v->text, sizeof v->text,
             "At the highest optimisation (best-of-%g of pi_ref; GRPO step %g), the gold reward "
             "of the conservative ensembles minus that of a single reward model, seed by seed "
             "and averaged over WCO and UWO in both: %+.4f ± %.4f (mean ± se over %d seeds). "
             "Parts: best-of-n WCO %+.4f ± %.4f, UWO %+.4f ± %.4f; GRPO WCO %+.4f ± %.4f, UWO "
             "%+.4f ± %.4f; the plain mean ensemble: best-of-n %+.4f ± %.4f, GRPO %+.4f ± %.4f. "
             "Rule: supported when the mean difference is positive and at least 2 se, not "
             "supported when it is negative and at least 2 se, else inconclusive.",
             top_n, top_step, all.mean, all.se, all.n, part[0].mean, part[0].se, part[1].mean,
             part[1].se, part[2].mean, part[2].se, part[3].mean, part[3].se, mean[0].mean,
             mean[0].se, mean[1].mean, mean[1].se);
    return 0;
}

// ----------------------------------------------------------------- report --
#define MAX_X 64

typedef struct {
    int n;
    double x[MAX_X], y[MAX_X], lo[MAX_X], hi[MAX_X];
} ens_curve;

static int by_double(const void *a, const void *b) {
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

// mean over seeds of field y at each x of a phase's rows of method m; the
// band is mean ± se where there are two seeds or more
static void curve_of(const cJSON *rows, const char *phase, int m, const char *xkey,
                     const char *ykey, ens_curve *cv) {
    memset(cv, 0, sizeof *cv);
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double x = study_num(row, xkey);
        if (strcmp(study_str(row, "phase"), phase) || strcmp(study_str(row, "method"), METHOD[m]) ||
            isnan(x))
            continue;
        int seen = 0;
        for (int i = 0; i < cv->n && !seen; i++) seen = cv->x[i] == x;
        if (!seen && cv->n < MAX_X) cv->x[cv->n++] = x;
    }
    qsort(cv->x, (size_t)cv->n, sizeof cv->x[0], by_double);
    for (int i = 0; i < cv->n; i++) {
        double ys[MAX_SEEDS];
        int k = 0;
        cJSON_ArrayForEach(row, rows) {
            if (!strcmp(study_str(row, "phase"), phase) &&
                !strcmp(study_str(row, "method"), METHOD[m]) && study_num(row, xkey) == cv->x[i] &&
                k < MAX_SEEDS)
                ys[k++] = study_num(row, ykey);
        }
        stats_summary s = stats_summarize(ys, k);
        cv->y[i] = s.mean;
        cv->lo[i] = s.n >= 2 ? s.mean - s.se : s.mean;
        cv->hi[i] = s.n >= 2 ? s.mean + s.se : s.mean;
    }
}

// one plot of y against x for every method (mean over seeds, ± se bands)
static void method_plot(report_page *p, const cJSON *rows, const char *phase, const char *xkey,
                        const char *ykey, const report_plot_opts *o) {
    ens_curve cv[N_METHOD];
    report_series s[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) {
        curve_of(rows, phase, m, xkey, ykey, &cv[m]);
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

// per seed: each method's gold at the highest optimisation of both phases
static void top_table(report_page *p, const cJSON *rows) {
    double seed[MAX_SEEDS];
    int n = seeds_of(rows, "bon", seed, MAX_SEEDS);
    static const char *const head[] = {"seed", "phase", "at", "single", "mean", "wco", "uwo"};
    char **cells = xcalloc((size_t)n * 2 * 7 + 1, sizeof *cells);
    static const char *const PH[2] = {"bon", "rl"}, *const XK[2] = {"n", "step"};
    for (int s = 0; s < n; s++)
        for (int ph = 0; ph < 2; ph++) {
            char **r = cells + (size_t)(2 * s + ph) * 7, buf[64];
            double x = top_x(rows, PH[ph], XK[ph], seed[s]);
            snprintf(buf, sizeof buf, "%g", seed[s]);
            r[0] = strcpy(xmalloc(strlen(buf) + 1), buf);
            r[1] = strcpy(xmalloc(8), PH[ph]);
            snprintf(buf, sizeof buf, "%s = %g", XK[ph], x);
            r[2] = strcpy(xmalloc(strlen(buf) + 1), buf);
            for (int m = 0; m < N_METHOD; m++) {
                snprintf(buf, sizeof buf, "%.4f",
                         value_at(rows, PH[ph], m, seed[s], XK[ph], x, "gold"));
                r[3 + m] = strcpy(xmalloc(strlen(buf) + 1), buf);
            }
        }
    report_table(p, 7, head, 2 * n, (const char *const *)cells);
    for (int i = 0; i < n * 2 * 7; i++) free(cells[i]);
    free(cells);
}

static int ens_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_h(p, 2, "Best-of-n of pi_ref");
    report_p(p, "The expected gold (and proxy: the objective's own score) of the sample that each "
                "objective ranks best among n samples of pi_ref; mean over seeds, band ± se. "
                "KL(best-of-n || pi_ref) = ln n - (n - 1)/n.");
    report_plot_opts o = {.title = "Best-of-n: gold reward",
                          .xlabel = "n (samples)",
                          .ylabel = "gold reward",
                          .logx = 1};
    method_plot(p, rows, "bon", "n", "gold", &o);
    o = (report_plot_opts){.title = "Best-of-n: proxy (the objective's score)",
                           .xlabel = "n (samples)",
                           .ylabel = "proxy reward",
                           .logx = 1};
    method_plot(p, rows, "bon", "n", "proxy", &o);
    report_h(p, 2, "GRPO");
    report_p(p, "Gold and proxy reward over training against each objective (proxy: the trained "
                "member's score for the single reward model, the members' mean for the "
                "ensembles) and KL to pi_ref; mean over seeds, band ± se.");
    o = (report_plot_opts){.title = "GRPO: gold reward", .xlabel = "step", .ylabel = "gold reward"};
    method_plot(p, rows, "rl", "step", "gold", &o);
    o = (report_plot_opts){
        .title = "GRPO: proxy reward", .xlabel = "step", .ylabel = "proxy reward"};
    method_plot(p, rows, "rl", "step", "proxy", &o);
    o = (report_plot_opts){.title = "GRPO: KL to pi_ref", .xlabel = "step", .ylabel = "KL"};
    method_plot(p, rows, "rl", "step", "kl", &o);
    report_h(p, 2, "Gold at the highest optimisation, seed by seed");
    top_table(p, rows);
    return 0;
}

const study_def study_ensembles = {
    .name = NAME,
    .paper = "Coste et al. 2024, Reward model ensembles help mitigate overoptimization",
    .claim = "Reward-model ensembles, the conservative WCO and UWO objectives especially, reduce "
             "overoptimisation: at high optimisation (best-of-n with large n, late in RL) the "
             "gold reward under them is higher than under a single reward model.",
    .run = ens_run,
    .verdict = ens_verdict,
    .report = ens_report,
};
