// study/study_riql: `rlhf study riql` — Yang et al. 2023, "Towards Robust
// Offline Reinforcement Learning under Diverse Data Corruption" (RIQL), on our
// control environments (study_ctrl.h: pendulum for --quick, hopper for the
// full version when the build has MuJoCo; --task names another, e.g. halfcheetah).
//
// One dataset (study_ctrl_collect: our SAC agent's medium-expert level); per
// seed s, its rewards corrupted by `rlhf ctrl corrupt --kind rew` at each rate
// of the plan, in both of RIQL's modes (random: r replaced by U(-30, 30) on a
// share `rate` of the rows; adversarial: r -> -r on them), corruption seed s;
// then IQL and RIQL trained offline (`rlhf ctrl train --algo iql|riql`,
// defaults otherwise, training seed s) on the clean data and on every
// corrupted copy, each run's final normalised score read from its summary.
//
// Rows: {"phase":"final", method ("iql" | "riql"), data ("clean",
// "rew-random-0.3", "rew-adv-0.3", ...), kind, mode, rate, seed, score,
// return, seconds, updates}.
//
// Verdict (pure, from rows): a method's *drop* on a corrupted copy is its
// clean score minus its score there (same seed); per seed, d = the mean over
// the corrupted copies of drop(IQL) - drop(RIQL). Supported when d's mean over
// seeds is > 0 and >= 2 standard errors (stats_sign_test), not supported when
// it is <= -2 se, else inconclusive.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "study/study_ctrl.h"

#define NAME "riql"
#define MAX_SEEDS 64
#define MAX_RATES 4

enum { M_IQL, M_RIQL, N_METHOD };
static const char *const METHOD[N_METHOD] = {"iql", "riql"};
static const char *const MODE[2] = {"random", "adversarial"};
static const char *const MODE_TAG[2] = {"random", "adv"};

typedef struct {
    study_ctrl_data data;
    const char *level; // the dataset level corrupted
    int offline_steps;
    int n_rates;
    double rate[MAX_RATES]; // corrupted shares (the clean data is always run)
} riql_plan;

static riql_plan plan_of(const study_ctx *c) {
    riql_plan p = {.data = study_ctrl_data_on(c, c->task), .level = c->level};
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        p.offline_steps = 200, p.n_rates = 1, p.rate[0] = 0.3;
        break;
    case STUDY_CTRL_QUICK: // a MuJoCo task (--task): 20000 updates, ~90 s an IQL run
        p.offline_steps = !strcmp(p.data.env, "pendulum") ? 8000 : 20000;
        p.n_rates = 1, p.rate[0] = 0.3;
        break;
    default:
        p.offline_steps = !strcmp(p.data.env, "pendulum") ? 20000 : 200000;
        p.n_rates = 2, p.rate[0] = 0.1, p.rate[1] = 0.3;
        break;
    }
    return p;
}

// ------------------------------------------------------------------ run --
static int train_one(study_ctx *c, const riql_plan *pl, int m, const char *dataset,
                     const char *data, const char *mode, double rate, uint64_t seed,
                     rlhf_err *err) {
    study_args a = {0};
    study_ctrl_common(&a, METHOD[m], &pl->data, dataset, seed);
    study_addf(&a, "--offline_steps=%d", pl->offline_steps);
    study_add(&a, "--eval_every=0", "--save_every=0", NULL);
    char name[256];
    snprintf(name, sizeof name, "seed%llu/%s-%s", (unsigned long long)seed, METHOD[m], data);
    study_ctrl_result r;
    if (study_ctrl_train(c, name, &a, NULL, 0, &r, err)) return -1;
    cJSON *row = study_ctrl_row(METHOD[m], seed, &r);
    cJSON_AddStringToObject(row, "phase", "final");
    cJSON_AddStringToObject(row, "data", data);
    cJSON_AddStringToObject(row, "kind", rate > 0 ? "rew" : "none");
    cJSON_AddStringToObject(row, "mode", mode);
    cJSON_AddNumberToObject(row, "rate", rate);
    cJSON_AddStringToObject(row, "env", pl->data.env);
    study_row(c, NAME, row);
    return 0;
}

static int run_seed(study_ctx *c, const riql_plan *pl, const char *clean, uint64_t seed,
                    rlhf_err *err) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
    if (make_dirs(dir, err)) return -1;
    for (int m = 0; m < N_METHOD; m++)
        if (train_one(c, pl, m, clean, "clean", "none", 0, seed, err)) return -1;
    for (int k = 0; k < pl->n_rates; k++) {
        for (int mo = 0; mo < 2; mo++) {
            char data[64], file[1400];
            snprintf(data, sizeof data, "rew-%s-%g", MODE_TAG[mo], pl->rate[k]);
            snprintf(file, sizeof file, "%s/%s.hdf5", dir, data);
            study_ctrl_corruption co = {"rew", MODE[mo], pl->rate[k], 0, seed, NULL};
            if (study_ctrl_corrupt(c, clean, file, &co, err)) return -1;
            for (int m = 0; m < N_METHOD; m++)
                if (train_one(c, pl, m, file, data, MODE_TAG[mo], pl->rate[k], seed, err))
                    return -1;
        }
    }
    return 0;
}

static int riql_run(study_ctx *c, rlhf_err *err) {
    riql_plan pl = plan_of(c);
    char dir[1200], clean[1300];
    if (study_ctrl_collect(c, &pl.data, dir, sizeof dir, err)) return -1;
    study_ctrl_level(dir, pl.level, clean, sizeof clean);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME " (%s, %s): seed %d of %d\n",
                study_ctrl_size_name(study_ctrl_size_of(c)), pl.data.env, s + 1, c->n_seeds);
        if (run_seed(c, &pl, clean, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- verdict --
// the corrupted data names in order of appearance (at most max)
static int corrupted_of(const cJSON *rows, const char **data, int max) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *d = study_str(row, "data");
        if (strcmp(study_str(row, "phase"), "final") || !*d || !strcmp(d, "clean")) continue;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = !strcmp(data[i], d);
        if (!seen && n < max) data[n++] = d;
    }
    return n;
}

static double score_of(const cJSON *rows, double seed, int m, const char *data) {
    return study_num(
        study_ctrl_match(rows, seed, "phase", "final", "method", METHOD[m], "data", data, NULL),
        "score");
}

// per seed, the mean over the corrupted data whose mode is `mode` (NULL: all)
// of drop(IQL) - drop(RIQL); NAN where a score is missing
static int drop_diffs(const cJSON *rows, const char *mode, double *d, int max) {
    const char *data[2 * MAX_RATES * 4];
    int nd = corrupted_of(rows, data, 2 * MAX_RATES * 4), n = 0;
    double seed[MAX_SEEDS];
    int ns = study_ctrl_seeds(rows, "phase", "final", seed, MAX_SEEDS);
    for (int s = 0; s < ns && n < max; s++) {
        double sum = 0;
        int k = 0;
        for (int i = 0; i < nd; i++) {
            const cJSON *r =
                study_ctrl_match(rows, seed[s], "phase", "final", "data", data[i], NULL);
            if (mode && strcmp(study_str(r, "mode"), mode)) continue;
            double drop[N_METHOD];
            for (int m = 0; m < N_METHOD; m++)
                drop[m] = score_of(rows, seed[s], m, "clean") - score_of(rows, seed[s], m, data[i]);
            if (isnan(drop[M_IQL]) || isnan(drop[M_RIQL])) continue;
            sum += drop[M_IQL] - drop[M_RIQL];
            k++;
        }
        if (k) d[n++] = sum / k;
    }
    return n;
}

// method m's scores on the clean data (clean 1) or on every corrupted copy (0)
static int scores_of(const cJSON *rows, int m, int clean, double *x, int max) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double sc = study_num(row, "score");
        if (!strcmp(study_str(row, "phase"), "final") &&
            !strcmp(study_str(row, "method"), METHOD[m]) &&
            (strcmp(study_str(row, "data"), "clean") == 0) == clean && !isnan(sc) && n < max)
            x[n++] = sc;
    }
    return n;
}

static int riql_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    double d[MAX_SEEDS], dr[MAX_SEEDS], da[MAX_SEEDS];
    stats_summary all = stats_summarize(d, drop_diffs(rows, NULL, d, MAX_SEEDS));
    stats_summary rnd = stats_summarize(dr, drop_diffs(rows, "random", dr, MAX_SEEDS));
    stats_summary adv = stats_summarize(da, drop_diffs(rows, "adv", da, MAX_SEEDS));
    stats_summary clean[N_METHOD], corr[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) {
        double x[MAX_SEEDS * 8];
        clean[m] = stats_summarize(x, scores_of(rows, m, 1, x, MAX_SEEDS * 8));
        corr[m] = stats_summarize(x, scores_of(rows, m, 0, x, MAX_SEEDS * 8));
    }
    v->outcome = study_ctrl_outcome(&all);
    snprintf(v->figure, sizeof v->figure, "%+.1f ± %.1f score (IQL's drop - RIQL's drop, %d seeds)",
             all.mean, all.se, all.n);
    char env[300];
    snprintf(v->text, sizeof v->text,
             "%sNormalised score on clean data: IQL %.1f ± %.1f, RIQL %.1f ± %.1f; on the "
             "reward-corrupted copies (all rates and modes): IQL %.1f ± %.1f, RIQL %.1f ± %.1f "
             "(mean ± se). Drop from clean, IQL's minus RIQL's, seed by seed and averaged over "
             "the corrupted copies: %+.1f ± %.1f (%d seeds); random corruption alone %+.1f ± "
             "%.1f, adversarial alone %+.1f ± %.1f. Rule: supported when the mean difference is "
             "positive and at least 2 se (RIQL degrades less), not supported when it is "
             "negative and at least 2 se, else inconclusive.",
             study_ctrl_env_words(rows, env, sizeof env), clean[M_IQL].mean, clean[M_IQL].se,
             clean[M_RIQL].mean, clean[M_RIQL].se, corr[M_IQL].mean, corr[M_IQL].se,
             corr[M_RIQL].mean, corr[M_RIQL].se, all.mean, all.se, all.n, rnd.mean, rnd.se,
             adv.mean, adv.se);
    return 0;
}

// ----------------------------------------------------------------- report --
// score against corruption rate for one method and mode (the clean point at 0)
static int rate_curve(const cJSON *rows, int m, const char *mode, double *x, double *y, double *lo,
                      double *hi, int max) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *md = study_str(row, "mode");
        double r = study_num(row, "rate");
        if (strcmp(study_str(row, "phase"), "final") ||
            strcmp(study_str(row, "method"), METHOD[m]) || isnan(r) || (r > 0 && strcmp(md, mode)))
            continue;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = x[i] == r;
        if (!seen && n < max) x[n++] = r;
    }
    for (int i = 1; i < n; i++) // insertion sort: a handful of rates
        for (int j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        double ys[MAX_SEEDS];
        int k = 0;
        cJSON_ArrayForEach(row, rows) {
            if (strcmp(study_str(row, "phase"), "final") ||
                strcmp(study_str(row, "method"), METHOD[m]) || study_num(row, "rate") != x[i] ||
                (x[i] > 0 && strcmp(study_str(row, "mode"), mode)) || k >= MAX_SEEDS)
                continue;
            ys[k++] = study_num(row, "score");
        }
        stats_summary s = stats_summarize(ys, k);
        y[i] = s.mean;
        lo[i] = s.n >= 2 ? s.mean - s.se : s.mean;
        hi[i] = s.n >= 2 ? s.mean + s.se : s.mean;
    }
    return n;
}

static int riql_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p, "IQL and RIQL trained offline on one dataset and on copies whose rewards were "
                "corrupted (random: replaced by U(-30, 30); adversarial: negated) on a share of "
                "the rows; the final normalised score, mean over seeds, band ± se.");
    enum { MAXP = MAX_RATES + 1 };
    double x[4][MAXP], y[4][MAXP], lo[4][MAXP], hi[4][MAXP];
    static const char *const labels[4] = {"IQL, random", "IQL, adversarial", "RIQL, random",
                                          "RIQL, adversarial"};
    report_series s[4];
    for (int i = 0; i < 4; i++) {
        int m = i / 2;
        const char *mode = MODE_TAG[i % 2];
        int n = rate_curve(rows, m, mode, x[i], y[i], lo[i], hi[i], MAXP);
        s[i] = (report_series){.label = labels[i],
                               .n = n,
                               .x = x[i],
                               .y = y[i],
                               .ylo = lo[i],
                               .yhi = hi[i],
                               .markers = 1,
                               .dashed = i % 2};
    }
    report_plot_opts o = {.title = "Normalised score against the share of corrupted rewards",
                          .xlabel = "corruption rate",
                          .ylabel = "normalised score"};
    report_plot(p, &o, s, 4);
    report_h(p, 2, "Score by data (mean ± se over seeds)");
    const char *data[2 * MAX_RATES * 4 + 1];
    data[0] = "clean";
    int nd = 1 + corrupted_of(rows, data + 1, 2 * MAX_RATES * 4);
    static const char *const head[] = {"data", "IQL", "RIQL", "seeds"};
    char **cells = xcalloc((size_t)nd * 4 + 1, sizeof *cells);
    for (int i = 0; i < nd; i++) {
        int seeds = 0;
        char buf[64];
        cells[i * 4] = strcpy(xmalloc(strlen(data[i]) + 1), data[i]);
        for (int m = 0; m < N_METHOD; m++) {
            double xs[MAX_SEEDS];
            int k = 0;
            const cJSON *row;
            cJSON_ArrayForEach(row, rows) {
                if (!strcmp(study_str(row, "phase"), "final") &&
                    !strcmp(study_str(row, "method"), METHOD[m]) &&
                    !strcmp(study_str(row, "data"), data[i]) && k < MAX_SEEDS)
                    xs[k++] = study_num(row, "score");
            }
            stats_summary st = stats_summarize(xs, k);
            snprintf(buf, sizeof buf, st.n >= 2 ? "%.1f ± %.1f" : "%.1f", st.mean, st.se);
            cells[i * 4 + 1 + m] = strcpy(xmalloc(strlen(buf) + 1), buf);
            if (k > seeds) seeds = k;
        }
        snprintf(buf, sizeof buf, "%d", seeds);
        cells[i * 4 + 3] = strcpy(xmalloc(strlen(buf) + 1), buf);
    }
    report_table(p, 4, head, nd, (const char *const *)cells);
    for (int i = 0; i < nd * 4; i++) free(cells[i]);
    free(cells);
    return 0;
}

const study_def study_riql = {
    .name = NAME,
    .paper = "Yang et al. 2023, Towards Robust Offline Reinforcement Learning under Diverse Data "
             "Corruption (RIQL)",
    .claim = "Under reward corruption (random and adversarial, on a share of the rows) RIQL's "
             "normalised score drops less from its clean-data score than IQL's.",
    .run = riql_run,
    .check_task = study_ctrl_env_check,
    .verdict = riql_verdict,
    .report = riql_report,
    .no_sandbox = 1,
    .level = "medium-expert",
};
