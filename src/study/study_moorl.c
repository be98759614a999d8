// study/study_moorl: `rlhf study moorl` — Chaudhary, Mondal & Behera 2025,
// "MOORL: A Framework for Integrating Offline-Online Reinforcement Learning"
// (TMLR; arXiv 2506.09574), on our Pendulum or a MuJoCo task (--task;
// study_ctrl.h's collect).
//
// One dataset: the medium-replay level of our SAC agent (or --level; the paper's headline
// task is hopper-medium-replay). Per seed s, four arms, each `rlhf ctrl
// train` with training seed s:
//   moorl        --algo moorl, the dataset as the offline buffer, online from
//                step 0 (no pre-training, as the paper's Algorithm 1), online
//                batches of 2B rows at --mix_ratio 0.5 so the buffer a
//                meta-epoch draws gives it B rows;
//   sac_dataset  --algo sac with the dataset kept in its replay (the paper's
//                "SAC with the offline buffer appended"): batches of B rows,
//                half from the dataset (--mix_ratio 0.5), the same online steps;
//   sac_utd      the same SAC with MOORL's update ratio: --utd K, K = MOORL's
//                inner SAC updates per environment step (moorl_inner_steps,
//                5), so the two differ in Reptile's meta-training alone;
//   offline      IQL on the dataset alone (--reward_scale 0.1, the setting
//                that works on Pendulum, docs/control.md), as many updates as
//                SAC's online steps.
// Evaluations every eval_every steps (deterministic episodes; normalised by
// the dataset's references).
//
// Rows: {"phase":"final", method, seed, score, return, return_std, seconds,
// updates, mean_score (the mean of the run's evaluations: the area under its
// curve)} and {"phase":"curve", method, seed, step, score, return}.
//
// Verdict (pure, from the "final" rows): per seed, d = score(moorl) -
// score(sac_dataset), d_utd = score(moorl) - score(sac_utd) and d_off =
// score(moorl) - score(offline). Supported when all three are > 0 and at
// least 2 standard errors (stats_sign_test): MOORL ahead of the paper's
// baseline, of the same SAC at its update ratio and of offline training; not
// supported when d or d_utd is < 0 by 2 se (MOORL behind a SAC arm); else
// inconclusive. Rows without sac_utd (results.jsonl from before it) leave
// d_utd empty: then never supported.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "study/study_ctrl.h"

#define NAME "moorl"
#define MAX_SEEDS 64
#define MAX_EVALS 256

enum { M_MOORL, M_SAC, M_UTD, M_OFF, N_METHOD };
static const char *const METHOD[N_METHOD] = {"moorl", "sac_dataset", "sac_utd", "offline"};
static const char *const LABEL[N_METHOD] = {"MOORL", "SAC + dataset in the buffer",
                                            "SAC + dataset, MOORL's update ratio",
                                            "offline only (IQL)"};
// MOORL's SAC updates per environment step: its default moorl_inner_steps
#define MOORL_UPDATES_PER_STEP 5

typedef struct {
    study_ctrl_data data;
    const char *level;
    int online_steps, eval_every, batch;
} moorl_plan;

// Sizes (study_ctrl_size_of): smoke (RLHF_CTRL_STUDY=smoke, make test) checks
// the study runs end to end in seconds; --quick on Pendulum is the size whose
// numbers docs/ctrl_moorl.md records (its collect's 5 evaluation episodes kept
// so that they reproduce); --quick --task MUJOCO a 10000-step version on a
// MuJoCo task's quick collect; full the paper's hopper (or --task) with
// 100000 online steps, or Pendulum at its full collect.
static moorl_plan plan_of(const study_ctx *c) {
    moorl_plan p = {.data = study_ctrl_data_on(c, c->task), .level = c->level};
    int pendulum = !strcmp(p.data.env, "pendulum");
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        if (pendulum) p.data = (study_ctrl_data){"pendulum", 1000, 600, 4, 32, 2, c->seed};
        p.online_steps = 400, p.eval_every = 200, p.batch = 32;
        break;
    case STUDY_CTRL_QUICK:
        if (pendulum) {
            p.data = (study_ctrl_data){"pendulum", 8000, 4000, 40, 64, 5, c->seed};
            p.online_steps = 5000, p.eval_every = 500, p.batch = 256;
        } else {
            p.online_steps = 10000, p.eval_every = 1000, p.batch = 256;
        }
        break;
    default:
        if (pendulum)
            p.online_steps = 10000, p.eval_every = 500, p.batch = 256;
        else
            p.online_steps = 100000, p.eval_every = 5000, p.batch = 256;
        break;
    }
    return p;
}

// ------------------------------------------------------------------ run --
static int train_one(study_ctx *c, const moorl_plan *pl, int m, const char *dataset, uint64_t seed,
                     rlhf_err *err) {
    study_args a = {0};
    study_add(&a, "--algo",
              m == M_MOORL               ? "moorl"
              : m == M_SAC || m == M_UTD ? "sac"
                                         : "iql",
              "--env", pl->data.env, "--dataset", dataset, NULL);
    if (m == M_UTD) study_addf(&a, "--utd=%d", MOORL_UPDATES_PER_STEP);
    study_addf(&a, "--hidden=%d", pl->data.hidden);
    study_addf(&a, "--eval_episodes=%d", pl->data.eval_episodes);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    study_addf(&a, "--batch_size=%d", pl->batch);
    study_addf(&a, "--eval_every=%d", pl->eval_every);
    study_add(&a, "--save_every=0", NULL);
    if (m == M_OFF) {
        study_addf(&a, "--offline_steps=%d", pl->online_steps);
        study_add(&a, "--reward_scale=0.1", NULL);
    } else {
        study_addf(&a, "--online_steps=%d", pl->online_steps);
        study_add(&a, "--offline_steps=0", "--mix_ratio=0.5", NULL);
        if (m == M_MOORL) study_addf(&a, "--online_batch_size=%d", 2 * pl->batch);
    }
    char name[256], run_dir[1400];
    snprintf(name, sizeof name, "seed%llu/%s", (unsigned long long)seed, METHOD[m]);
    study_ctrl_result r;
    if (study_ctrl_train(c, name, &a, run_dir, sizeof run_dir, &r, err)) return -1;
    double step[MAX_EVALS], ret[MAX_EVALS], score[MAX_EVALS];
    int n = 0;
    if (study_ctrl_evals(run_dir, MAX_EVALS, step, ret, score, &n, err)) return -1;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        study_ctrl_curve_row(c, NAME, METHOD[m], seed, step[i], score[i], ret[i]);
        sum += score[i];
    }
    cJSON *row = study_ctrl_row(METHOD[m], seed, &r);
    cJSON_AddStringToObject(row, "phase", "final");
    cJSON_AddStringToObject(row, "env", pl->data.env);
    cJSON_AddNumberToObject(row, "mean_score", n ? sum / n : NAN);
    study_row(c, NAME, row);
    return 0;
}

static int moorl_run(study_ctx *c, rlhf_err *err) {
    moorl_plan pl = plan_of(c);
    char dir[1200], data[1300];
    if (study_ctrl_collect(c, &pl.data, dir, sizeof dir, err)) return -1;
    study_ctrl_level(dir, pl.level, data, sizeof data);
    for (int s = 0; s < c->n_seeds; s++) {
        uint64_t seed = c->seed + (uint64_t)s;
        fprintf(stderr, "study " NAME " (%s, %s): seed %d of %d\n",
                study_ctrl_size_name(study_ctrl_size_of(c)), pl.data.env, s + 1, c->n_seeds);
        char runs[1300];
        snprintf(runs, sizeof runs, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
        if (make_dirs(runs, err)) return -1;
        for (int m = 0; m < N_METHOD; m++)
            if (train_one(c, &pl, m, data, seed, err)) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- verdict --
static double final_of(const cJSON *rows, double seed, int m, const char *field) {
    return study_num(study_ctrl_match(rows, seed, "phase", "final", "method", METHOD[m], NULL),
                     field);
}

// per seed with both: field(a) - field(b) of the "final" rows
static int diffs(const cJSON *rows, int a, int b, const char *field, double *d, int max) {
    double seed[MAX_SEEDS];
    int ns = study_ctrl_seeds(rows, "method", METHOD[a], seed, MAX_SEEDS), n = 0;
    for (int s = 0; s < ns && n < max; s++) {
        double x = final_of(rows, seed[s], a, field), y = final_of(rows, seed[s], b, field);
        if (!isnan(x) && !isnan(y)) d[n++] = x - y;
    }
    return n;
}

static stats_summary stat_of(const cJSON *rows, int m, const char *field) {
    double x[MAX_SEEDS];
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (!strcmp(study_str(row, "phase"), "final") &&
            !strcmp(study_str(row, "method"), METHOD[m]) && n < MAX_SEEDS)
            x[n++] = study_num(row, field);
    }
    return stats_summarize(x, n);
}

static int moorl_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    double d[MAX_SEEDS], doff[MAX_SEEDS], dauc[MAX_SEEDS], du[MAX_SEEDS], duauc[MAX_SEEDS];
    stats_summary ds = stats_summarize(d, diffs(rows, M_MOORL, M_SAC, "score", d, MAX_SEEDS));
    stats_summary dus = stats_summarize(du, diffs(rows, M_MOORL, M_UTD, "score", du, MAX_SEEDS));
    stats_summary dua =
        stats_summarize(duauc, diffs(rows, M_MOORL, M_UTD, "mean_score", duauc, MAX_SEEDS));
    stats_summary dof =
        stats_summarize(doff, diffs(rows, M_MOORL, M_OFF, "score", doff, MAX_SEEDS));
    stats_summary da =
        stats_summarize(dauc, diffs(rows, M_MOORL, M_SAC, "mean_score", dauc, MAX_SEEDS));
    int s_sac = stats_sign_test(&ds), s_off = stats_sign_test(&dof);
    int s_utd = dus.n ? stats_sign_test(&dus) : 0;
    v->outcome = s_sac > 0 && s_utd > 0 && s_off > 0 ? STUDY_SUPPORTED
                 : s_sac < 0 || s_utd < 0            ? STUDY_NOT_SUPPORTED
                                                     : STUDY_INCONCLUSIVE;
    stats_summary f[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) f[m] = stat_of(rows, m, "score");
    snprintf(v->figure, sizeof v->figure,
             "%+.1f ± %.1f score (MOORL - SAC with the data), %+.1f ± %.1f at its update ratio "
             "(%d seeds)",
             ds.mean, ds.se, dus.mean, dus.se, ds.n);
    char env[300];
    snprintf(v->text, sizeof v->text,
             "%sFinal normalised score (mean ± se over seeds): MOORL %.1f ± %.1f, SAC with the "
             "dataset in its buffer %.1f ± %.1f, the same SAC at MOORL's %d updates per step "
             "%.1f ± %.1f, offline only %.1f ± %.1f. Seed by seed, MOORL minus SAC+data %+.1f ± "
             "%.1f (%d seeds), minus SAC+data at %d updates %+.1f ± %.1f (%d seeds), minus "
             "offline %+.1f ± %.1f; the mean over each run's evaluations (area under the "
             "curve), MOORL minus SAC+data %+.1f ± %.1f, minus SAC+data at %d updates %+.1f ± "
             "%.1f. Rule: supported when MOORL is above all three by at least 2 se, not "
             "supported when it is below either SAC arm by at least 2 se, else inconclusive.",
             study_ctrl_env_words(rows, env, sizeof env), f[M_MOORL].mean, f[M_MOORL].se,
             f[M_SAC].mean, f[M_SAC].se, MOORL_UPDATES_PER_STEP, f[M_UTD].mean, f[M_UTD].se,
             f[M_OFF].mean, f[M_OFF].se, ds.mean, ds.se, ds.n, MOORL_UPDATES_PER_STEP, dus.mean,
             dus.se, dus.n, dof.mean, dof.se, da.mean, da.se, MOORL_UPDATES_PER_STEP, dua.mean,
             dua.se);
    return 0;
}

// ----------------------------------------------------------------- report --
// method m's curve: the mean score over seeds at each step (steps in order of appearance)
static int curve_of(const cJSON *rows, int m, double *x, double *y, double *lo, double *hi,
                    int max) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (strcmp(study_str(row, "phase"), "curve") || strcmp(study_str(row, "method"), METHOD[m]))
            continue;
        double st = study_num(row, "step");
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = x[i] == st;
        if (!seen && n < max) x[n++] = st;
    }
    for (int i = 0; i < n; i++) {
        double ys[MAX_SEEDS];
        int k = 0;
        cJSON_ArrayForEach(row, rows) {
            if (!strcmp(study_str(row, "phase"), "curve") &&
                !strcmp(study_str(row, "method"), METHOD[m]) && study_num(row, "step") == x[i] &&
                k < MAX_SEEDS)
                ys[k++] = study_num(row, "score");
        }
        stats_summary s = stats_summarize(ys, k);
        y[i] = s.mean;
        lo[i] = s.n >= 2 ? s.mean - s.se : s.mean;
        hi[i] = s.n >= 2 ? s.mean + s.se : s.mean;
    }
    return n;
}

static char *fmt_stat(stats_summary s) {
    char buf[64];
    snprintf(buf, sizeof buf, s.n >= 2 ? "%.1f ± %.1f" : "%.1f", s.mean, s.se);
    return strcpy(xmalloc(strlen(buf) + 1), buf);
}

static int moorl_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p, "MOORL (SAC meta-trained by Reptile, each meta-epoch on the dataset or on the "
                "online buffer), SAC whose replay holds the dataset (half of each batch), the "
                "same SAC at MOORL's five updates per environment step, and "
                "IQL on the dataset alone; the normalised score of each evaluation, mean over "
                "seeds, band ± se. The x axis is the environment step for the online arms and "
                "the update for the offline one.");
    static double x[N_METHOD][MAX_EVALS], y[N_METHOD][MAX_EVALS], lo[N_METHOD][MAX_EVALS],
        hi[N_METHOD][MAX_EVALS];
    report_series s[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) {
        int n = curve_of(rows, m, x[m], y[m], lo[m], hi[m], MAX_EVALS);
        s[m] = (report_series){.label = LABEL[m],
                               .n = n,
                               .x = x[m],
                               .y = y[m],
                               .ylo = lo[m],
                               .yhi = hi[m],
                               .markers = 1,
                               .dashed = m == M_OFF};
    }
    report_plot_opts o = {.title = "Normalised score during training",
                          .xlabel = "step",
                          .ylabel = "normalised score"};
    report_plot(p, &o, s, N_METHOD);
    report_h(p, 2, "Final score, mean of the evaluations, updates, seconds (mean ± se over seeds)");
    static const char *const head[] = {"method",  "final score", "mean score",
                                       "updates", "seconds",     "seeds"};
    static const char *const field[] = {"score", "mean_score", "updates", "seconds"};
    char *cells[N_METHOD * 6];
    for (int m = 0; m < N_METHOD; m++) {
        cells[m * 6] = strcpy(xmalloc(strlen(LABEL[m]) + 1), LABEL[m]);
        stats_summary st = {0};
        for (int i = 0; i < 4; i++) {
            st = stat_of(rows, m, field[i]);
            cells[m * 6 + 1 + i] = fmt_stat(st);
        }
        char buf[16];
        snprintf(buf, sizeof buf, "%d", st.n);
        cells[m * 6 + 5] = strcpy(xmalloc(strlen(buf) + 1), buf);
    }
    report_table(p, 6, head, N_METHOD, (const char *const *)cells);
    for (int i = 0; i < N_METHOD * 6; i++) free(cells[i]);
    return 0;
}

const study_def study_moorl = {
    .name = NAME,
    .paper = "Chaudhary, Mondal & Behera 2025, MOORL: A Framework for Integrating Offline-Online "
             "Reinforcement Learning",
    .claim = "With the same online steps from a dataset (medium-replay by default), MOORL (SAC "
             "meta-trained by "
             "Reptile on the offline and the online buffer in turn) ends above SAC whose replay "
             "holds the dataset, also when that SAC takes MOORL's updates per step, and above "
             "offline-only training.",
    .run = moorl_run,
    .verdict = moorl_verdict,
    .report = moorl_report,
    .no_sandbox = 1,
    .level = "medium-replay",
    .check_task = study_ctrl_env_check,
};
