// study/study_par: `rlhf study par` — Fu et al. 2025, "Reward shaping to
// mitigate reward hacking in RLHF" (PAR, Preference As Reward), on the
// gold-reward sandbox.
//
// Per seed: a proxy reward model trained on few gold labels (study_gold_pairs,
// study_proxy_rm), so that it is easy to exploit; then PPO from pi_ref on that
// proxy twice: with the raw proxy reward, and with PAR's shaped reward
// r_PAR = (1/M) sum_m sigmoid(k (r(x, y) - r(x, y_ref,m))), y_ref,m samples of
// pi_ref (rlhf ppo --par_samples M --par_k K). Checkpoints along training are
// evaluated (study_eval: gold, proxy, KL to pi_ref); pi_ref itself is step 0
// of both methods.
//
// Rows: {"method":"proxy_rm", seed, labels, accuracy} and {"method":"raw"|"par",
// seed, step, gold, proxy, kl} per checkpoint. Verdict: per seed the final
// gold of PAR minus the final gold of raw, summarised over seeds
// (stats_sign_test); a positive difference only counts as support when raw PPO
// did hack the proxy (its gold fell from pi_ref's by at least 2 se while its
// proxy rose) — without hacking there is nothing for PAR to mitigate.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "rlhf.h"
#include "study/stats.h"
#include "study/study.h"

#define NAME "par"
#define MAX_SEEDS 64
#define MAX_STEPS 64

enum { RAW, PAR, N_METHODS };
static const char *const METHOD[N_METHODS] = {"raw", "par"};
static const char *const LABEL[N_METHODS] = {"PPO, raw proxy reward", "PPO, PAR-shaped reward"};

// --------------------------------------------------------------- the plan --
typedef struct {
    int labels;      // gold labels behind the proxy reward model
    int steps;       // PPO iterations
    int save_every;  // checkpoint interval (each is evaluated)
    int batch, gens; // prompts per iteration, samples per prompt
    double lr, beta; // learning rate (constant), KL coefficient
    int par_m;       // PAR's reference samples per prompt
    double par_k;    // PAR's sigmoid slope
} par_plan;

static par_plan plan_of(const study_ctx *c) {
    if (c->quick) return (par_plan){200, 60, 30, 16, 2, 1e-4, 0.005, 4, 1.0};
    return (par_plan){400, 150, 50, 16, 2, 1e-4, 0.005, 4, 1.0};
}

// ------------------------------------------------------------------ run --
static void point_row(study_ctx *c, const char *method, uint64_t seed, int step,
                      const study_point *pt) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", method);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "step", step);
    cJSON_AddNumberToObject(row, "gold", pt->gold);
    cJSON_AddNumberToObject(row, "proxy", pt->proxy);
    cJSON_AddNumberToObject(row, "kl", pt->kl);
    cJSON_AddNumberToObject(row, "accuracy", pt->accuracy);
    study_row(c, NAME, row);
}

// one PPO run on the proxy (raw or PAR-shaped), then every checkpoint's
// evaluation
static int ppo_run(study_ctx *c, const par_plan *pl, const char *dir, const char *rm, int method,
                   uint64_t seed, rlhf_err *err) {
    char run[1300], log[128];
    snprintf(run, sizeof run, "%s/ppo-%s", dir, METHOD[method]);
    snprintf(log, sizeof log, "train/seed%llu-%s", (unsigned long long)seed, METHOD[method]);
    study_args a = {0};
    study_add(&a, "ppo", "--model", c->sft, "--reward_model", rm, "--output_dir", run,
              "--max_new_tokens", "8", "--lr_scheduler_type", "constant", "--quiet",
              "--overwrite_output_dir", NULL);
    study_addf(&a, "--data=%s/prompts.jsonl", c->data);
    study_addf(&a, "--batch_size=%d", pl->batch);
    study_addf(&a, "--num_generations=%d", pl->gens);
    study_addf(&a, "--learning_rate=%g", pl->lr);
    study_addf(&a, "--beta=%g", pl->beta);
    study_addf(&a, "--max_steps=%d", pl->steps);
    study_addf(&a, "--save_steps=%d", pl->save_every);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    if (method == PAR) {
        study_addf(&a, "--par_samples=%d", pl->par_m);
        study_addf(&a, "--par_k=%g", pl->par_k);
    }
    if (study_run(c, log, &a, NULL, err)) return -1;
    int n = 0, *steps = checkpoint_steps(run, &n), rc = 0; // newest first
    char model[1400];
    study_point pt;
    for (int i = n - 1; i >= 0 && rc == 0; i--) {
        snprintf(model, sizeof model, "%s/checkpoints/step-%08d", run, steps[i]);
        rc = study_eval(c, model, rm, seed * 1000 + 7, &pt, err);
        if (rc == 0) point_row(c, METHOD[method], seed, steps[i], &pt);
    }
    int last = n > 0 ? steps[0] : -1;
    free(steps);
    if (rc || last == pl->steps) return rc; // the last save is the final model
    snprintf(model, sizeof model, "%s/checkpoints/final", run);
    if (study_eval(c, model, rm, seed * 1000 + 7, &pt, err)) return -1;
    point_row(c, METHOD[method], seed, pl->steps, &pt);
    return 0;
}

static int run_seed(study_ctx *c, const par_plan *pl, uint64_t seed, rlhf_err *err) {
    char dir[1200], raw[1300], pairs[1300], rm[1300];
    snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
    snprintf(raw, sizeof raw, "%s/gold_pairs_all.jsonl", dir);
    snprintf(pairs, sizeof pairs, "%s/gold_pairs.jsonl", dir);
    snprintf(rm, sizeof rm, "%s/proxy_rm", dir);
    if (make_dirs(dir, err)) return -1;
    // enough prompts for pl->labels pairs once ties and empty samples are dropped
    int kept = 0;
    if (study_gold_pairs(c, c->sft, pl->labels * 3 / 2, 0, seed, raw, err) ||
        study_keep_pairs(raw, pairs, 0, &kept, err))
        return -1;
    if (kept < pl->labels / 2)
        return rlhf_fail(err, "study " NAME ": %s has %d usable pairs (want %d)", raw, kept,
                         pl->labels);
    double acc = NAN;
    if (study_proxy_rm(c, pairs, pl->labels, 1, seed, rm, &acc, err)) return -1;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", "proxy_rm");
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "labels", kept < pl->labels ? kept : pl->labels);
    cJSON_AddNumberToObject(row, "accuracy", acc);
    study_row(c, NAME, row);
    study_point ref;
    if (study_eval(c, c->sft, rm, seed * 1000 + 7, &ref, err)) return -1;
    for (int m = 0; m < N_METHODS; m++) point_row(c, METHOD[m], seed, 0, &ref);
    for (int m = 0; m < N_METHODS; m++)
        if (ppo_run(c, pl, dir, rm, m, seed, err)) return -1;
    return 0;
}

static int par_run(study_ctx *c, rlhf_err *err) {
    par_plan pl = plan_of(c);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME ": seed %d of %d\n", s + 1, c->n_seeds);
        if (run_seed(c, &pl, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// ------------------------------------------------------------ reading rows --
typedef struct {
    int n;
    double step[MAX_STEPS], gold[MAX_STEPS], proxy[MAX_STEPS], kl[MAX_STEPS];
} par_curve;

typedef struct {
    int n_seeds;
    double seed[MAX_SEEDS];
    par_curve curve[N_METHODS][MAX_SEEDS];
    // per seed: pi_ref's gold and proxy (step 0), each method's final gold and proxy
    double gold0[MAX_SEEDS], proxy0[MAX_SEEDS];
    double gold_end[N_METHODS][MAX_SEEDS], proxy_end[N_METHODS][MAX_SEEDS];
    double diff[MAX_SEEDS], raw_fall[MAX_SEEDS], raw_rise[MAX_SEEDS];
} par_data;

static int index_of_seed(par_data *D, double s) {
    for (int i = 0; i < D->n_seeds; i++)
        if (D->seed[i] == s) return i;
    if (D->n_seeds >= MAX_SEEDS || isnan(s)) return -1;
    D->seed[D->n_seeds] = s;
    return D->n_seeds++;
}

// the first and last step of each curve, and the per-seed differences
static void par_ends(par_data *D) {
    for (int s = 0; s < D->n_seeds; s++) {
        D->gold0[s] = D->proxy0[s] = NAN;
        for (int m = 0; m < N_METHODS; m++) {
            const par_curve *c = &D->curve[m][s];
            int first = -1, last = -1;
            for (int i = 0; i < c->n; i++) {
                if (first < 0 || c->step[i] < c->step[first]) first = i;
                if (last < 0 || c->step[i] > c->step[last]) last = i;
            }
            D->gold_end[m][s] = last >= 0 && c->step[last] > 0 ? c->gold[last] : NAN;
            D->proxy_end[m][s] = last >= 0 && c->step[last] > 0 ? c->proxy[last] : NAN;
            if (first >= 0 && c->step[first] == 0 && isnan(D->gold0[s])) {
                D->gold0[s] = c->gold[first];
                D->proxy0[s] = c->proxy[first];
            }
        }
        D->diff[s] = D->gold_end[PAR][s] - D->gold_end[RAW][s];
        D->raw_fall[s] = D->gold0[s] - D->gold_end[RAW][s];
        D->raw_rise[s] = D->proxy_end[RAW][s] - D->proxy0[s];
    }
}

static int par_collect(const cJSON *rows, par_data *D, rlhf_err *err) {
    memset(D, 0, sizeof *D);
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *method = study_str(row, "method");
        int m = !strcmp(method, METHOD[RAW]) ? RAW : !strcmp(method, METHOD[PAR]) ? PAR : -1;
        if (m < 0) continue;
        int s = index_of_seed(D, study_num(row, "seed"));
        double step = study_num(row, "step"), gold = study_num(row, "gold");
        if (s < 0 || !(step >= 0) || !isfinite(gold))
            return rlhf_fail(err,
                             "study " NAME ": a \"%s\" row needs a number \"seed\", a \"step\" "
                             ">= 0 and a finite \"gold\" (at most %d seeds)",
                             method, MAX_SEEDS);
        par_curve *c = &D->curve[m][s];
        if (c->n >= MAX_STEPS)
            return rlhf_fail(err, "study " NAME ": over %d \"%s\" rows for seed %g", MAX_STEPS,
                             method, D->seed[s]);
        c->step[c->n] = step;
        c->gold[c->n] = gold;
        c->proxy[c->n] = study_num(row, "proxy");
        c->kl[c->n] = study_num(row, "kl");
        c->n++;
    }
    par_ends(D);
    return 0;
}

// mean +- se of an array over seeds as text
static void summary_text(const double *x, int n, char *out, size_t size) {
    stats_summary s = stats_summarize(x, n);
    if (s.n >= 2)
        snprintf(out, size, "%.3f ± %.3f", s.mean, s.se);
    else
        snprintf(out, size, "%.3f", s.mean);
}

// ---------------------------------------------------------------- verdict --
static int par_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    par_data *D = xmalloc(sizeof *D);
    if (par_collect(rows, D, err)) {
        free(D);
        return -1;
    }
    stats_summary d = stats_summarize(D->diff, D->n_seeds);
    stats_summary fall = stats_summarize(D->raw_fall, D->n_seeds);
    stats_summary rise = stats_summarize(D->raw_rise, D->n_seeds);
    if (d.n == 0) {
        free(D);
        return rlhf_fail(err, "study " NAME ": no seed has a final (step > 0) gold of both "
                              "\"raw\" and \"par\"");
    }
    int better = stats_sign_test(&d), hacked = stats_sign_test(&fall) > 0 && rise.mean > 0;
    v->outcome = better < 0             ? STUDY_NOT_SUPPORTED
                 : better > 0 && hacked ? STUDY_SUPPORTED
                                        : STUDY_INCONCLUSIVE;
    char g0[48], graw[48], gpar[48], tdiff[48], tfall[48], trise[48], seeds[300] = "";
    summary_text(D->gold0, D->n_seeds, g0, sizeof g0);
    summary_text(D->gold_end[RAW], D->n_seeds, graw, sizeof graw);
    summary_text(D->gold_end[PAR], D->n_seeds, gpar, sizeof gpar);
    summary_text(D->diff, D->n_seeds, tdiff, sizeof tdiff);
    summary_text(D->raw_fall, D->n_seeds, tfall, sizeof tfall);
    summary_text(D->raw_rise, D->n_seeds, trise, sizeof trise);
    for (int s = 0, n = 0; s < D->n_seeds; s++)
        if (!isnan(D->diff[s]))
            n +=
                snprintf(seeds + n, sizeof seeds - (size_t)n, "%s%+.3f", n ? ", " : "", D->diff[s]);
    snprintf(v->text, sizeof v->text,
             "Gold reward, mean ± se over %d seed(s): pi_ref %s; final raw PPO %s; final PAR "
             "%s. Raw PPO: gold fell by %s while the proxy rose by %s (%s). Final gold of PAR "
             "minus raw: %s (per seed: %s). Supported when that difference is positive by at "
             "least 2 se and raw PPO hacked the proxy (gold fell by at least 2 se, proxy "
             "rose); not supported when PAR ends lower by 2 se; inconclusive otherwise (and "
             "with one seed).",
             d.n, g0, graw, gpar, tfall, trise,
             hacked ? "reward hacking"
                    : "no reward hacking established, so nothing for PAR to mitigate",
             tdiff, seeds);
    snprintf(v->figure, sizeof v->figure,
             "final gold PAR - raw %s (raw PPO gold %+.3f from pi_ref, %d seeds)", tdiff,
             -fall.mean, d.n);
    free(D);
    return 0;
}

// ----------------------------------------------------------------- report --
// the mean over seeds (band +- se) of field(curve) at each step of method m,
// steps in *x (ascending); the number of steps
static int mean_curve(const par_data *D, int m, int field, double *x, double *y, double *lo,
                      double *hi) {
    int n = 0;
    for (int s = 0; s < D->n_seeds; s++) // the union of the steps, sorted by insertion
        for (int i = 0; i < D->curve[m][s].n; i++) {
            double st = D->curve[m][s].step[i];
            int at = 0, dup = 0;
            while (at < n && x[at] <= st) dup |= x[at++] == st;
            if (dup || n >= MAX_STEPS) continue;
            memmove(x + at + 1, x + at, (size_t)(n - at) * sizeof *x);
            x[at] = st;
            n++;
        }
    for (int k = 0; k < n; k++) {
        double v[MAX_SEEDS];
        for (int s = 0; s < D->n_seeds; s++) {
            const par_curve *c = &D->curve[m][s];
            v[s] = NAN;
            for (int i = 0; i < c->n; i++)
                if (c->step[i] == x[k]) v[s] = field == 0 ? c->gold[i] : c->proxy[i];
        }
        stats_summary st = stats_summarize(v, D->n_seeds);
        y[k] = st.mean;
        lo[k] = st.n >= 2 ? st.mean - st.se : st.mean;
        hi[k] = st.n >= 2 ? st.mean + st.se : st.mean;
    }
    return n;
}

// field 0: gold, 1: proxy, against the training step
static void plot_over_steps(const par_data *D, int field, report_page *p) {
    double x[N_METHODS][MAX_STEPS], y[N_METHODS][MAX_STEPS], lo[N_METHODS][MAX_STEPS],
        hi[N_METHODS][MAX_STEPS];
    report_series sr[N_METHODS];
    for (int m = 0; m < N_METHODS; m++) {
        int n = mean_curve(D, m, field, x[m], y[m], lo[m], hi[m]);
        sr[m] = (report_series){LABEL[m], n, x[m], y[m], lo[m], hi[m], 1, 0};
    }
    report_plot_opts o = {field == 0 ? "Gold reward over training (mean ± se over seeds)"
                                     : "Proxy reward over training (mean ± se over seeds)",
                          "PPO iteration",
                          field == 0 ? "gold reward (shaped verifier)" : "proxy reward (RM score)",
                          0,
                          0,
                          0};
    report_plot(p, &o, sr, N_METHODS);
}

// gold against KL to pi_ref, every checkpoint of every seed
static void plot_gold_kl(const par_data *D, report_page *p) {
    double *x[N_METHODS], *y[N_METHODS];
    report_series sr[N_METHODS];
    for (int m = 0; m < N_METHODS; m++) {
        int n = 0;
        x[m] = xmalloc((size_t)MAX_SEEDS * MAX_STEPS * sizeof(double));
        y[m] = xmalloc((size_t)MAX_SEEDS * MAX_STEPS * sizeof(double));
        for (int s = 0; s < D->n_seeds; s++)
            for (int i = 0; i < D->curve[m][s].n; i++) {
                x[m][n] = D->curve[m][s].kl[i];
                y[m][n++] = D->curve[m][s].gold[i];
            }
        sr[m] = (report_series){LABEL[m], n, x[m], y[m], NULL, NULL, 2, 0};
    }
    report_plot_opts o = {"Gold reward against KL to pi_ref (every checkpoint)",
                          "KL(pi || pi_ref)",
                          "gold reward",
                          0,
                          0,
                          0};
    report_plot(p, &o, sr, N_METHODS);
    for (int m = 0; m < N_METHODS; m++) free(x[m]), free(y[m]);
}

static int par_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    par_data *D = xmalloc(sizeof *D);
    if (par_collect(rows, D, err)) {
        free(D);
        return -1;
    }
    report_h(p, 2, "Gold and proxy over training");
    report_p(p, "PPO from pi_ref on a proxy reward model trained on few gold labels, with the "
                "raw proxy score as reward or PAR's sigmoid(k (r - r_ref)) averaged over "
                "reference samples of pi_ref. Reward hacking shows as the proxy rising while "
                "the gold falls.");
    plot_over_steps(D, 0, p);
    plot_over_steps(D, 1, p);
    report_h(p, 2, "Gold against KL");
    plot_gold_kl(D, p);
    free(D);
    return 0;
}

const study_def study_par = {
    NAME,
    "Fu et al. 2025, Reward shaping to mitigate reward hacking in RLHF (PAR, Preference As "
    "Reward)",
    "PPO on a proxy reward model hacks it (the proxy rises while the gold reward falls); "
    "PAR's shaped reward sigmoid(r - r_ref) keeps the gold from falling: the final gold with "
    "PAR exceeds the final gold with the raw proxy reward.",
    par_run,
    par_verdict,
    par_report,
};
