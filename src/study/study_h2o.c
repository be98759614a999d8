// study/study_h2o: `rlhf study h2o` — Niu et al. 2022, "When to Trust Your
// Simulator: Dynamics-Aware Hybrid Offline-and-Online RL" (H2O).
//
// The simulator is --task, a gapped env string, and the "real" environment is
// its plain task (the name before ':'). Default pendulum:gravity=20 against
// pendulum (the paper's 2x-gravity gap on our cheapest task); the paper's own
// settings are MuJoCo: halfcheetah:gravity=2 (its headline),
// walker2d:friction=0.3, halfcheetah:joint_noise=1. Real data: our SAC
// agent's medium level on the real env (study_ctrl_collect; --level names
// another, e.g. medium-replay, the authors' D4RL kind). Per seed, three
// arms of `rlhf ctrl train`, each then evaluated in the REAL environment with
// `rlhf ctrl eval --env REAL` (normalised by the dataset's references):
//   h2o       --algo h2o in the simulator with the real data (mix_ratio 0.5)
//   sim_only  --algo sac in the simulator, no data
//   offline   --algo iql on the real data alone
// Rows: {"method", "seed", "score" (real env), "return", "return_std",
// "sim_score" (the run's own final evaluation: the simulator for h2o and
// sim_only), "seconds", "updates", "real_env", "train_env", "level"}.
//
// Verdict (pure, from rows): per seed d1 = score(h2o) - score(sim_only) and
// d2 = score(h2o) - score(offline); supported when both are supported by
// stats_sign_test (mean > 0 and >= 2 se), not supported when either is
// negative by 2 se, else inconclusive.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "study/study_ctrl.h"

#define NAME "h2o"
#define DEFAULT_SIM "pendulum:gravity=20"
#define DEFAULT_LEVEL "medium"
#define MAX_SEEDS 64

enum { A_H2O, A_SIM, A_OFF, N_ARM };
static const char *const ARM[N_ARM] = {"h2o", "sim_only", "offline"};
static const char *const LABEL[N_ARM] = {"H2O (sim + real data)", "SAC in the simulator",
                                         "IQL on the real data"};

typedef struct {
    char sim[256];  // the simulator (--task)
    char real[256]; // the real env: the simulator's plain task
    study_ctrl_data data;
    int online_steps;  // simulator steps of h2o and sim_only
    int offline_steps; // IQL's updates
    int batch;
} h2o_plan;

// pendulum's sizes, as the study had them before --task
static void pendulum_sizes(const study_ctx *c, h2o_plan *p) {
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        p->online_steps = 300, p->offline_steps = 300, p->batch = 32;
        break;
    case STUDY_CTRL_QUICK:
        p->online_steps = 6000, p->offline_steps = 6000, p->batch = 128;
        break;
    default: // pendulum even where the build has MuJoCo: the gap is pendulum's gravity
        p->data =
            (study_ctrl_data){NULL, 20000, 10000, 40, 64, p->data.eval_episodes, p->data.seed};
        p->online_steps = 20000, p->offline_steps = 20000, p->batch = 256;
        break;
    }
}

// MuJoCo's sizes: smoke checks the plumbing in seconds; quick fits in ~45
// minutes on one busy shared core (measured there: SAC collect ~80 steps/s,
// H2O 34-81 updates/s, IQL 165-225 at width 256, batch 256); full is longer,
// still far from the authors' 10^6 steps (batch 256 as theirs)
static void mujoco_sizes(const study_ctx *c, h2o_plan *p) {
    p->data = study_ctrl_data_on(c, p->real); // shared with riql, wsrl, famo2o and ro2o's --task
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        p->online_steps = 200, p->offline_steps = 200, p->batch = 32;
        break;
    case STUDY_CTRL_QUICK:
        p->online_steps = 20000, p->offline_steps = 20000, p->batch = 256;
        break;
    default:
        p->online_steps = 200000, p->offline_steps = 200000, p->batch = 256;
        break;
    }
}

// filled in place: data.env points at p->real
static void plan_of(const study_ctx *c, h2o_plan *p) {
    *p = (h2o_plan){.data = study_ctrl_data_of(c)};
    snprintf(p->sim, sizeof p->sim, "%s", c->task[0] ? c->task : DEFAULT_SIM);
    snprintf(p->real, sizeof p->real, "%.*s", (int)strcspn(p->sim, ":"), p->sim);
    if (!strcmp(p->real, "pendulum"))
        pendulum_sizes(c, p);
    else
        mujoco_sizes(c, p);
    p->data.env = p->real;
}

// --task: a gapped env string TASK:SETTINGS on one of the plain tasks with
// gap settings and SAC-collected data (study_ctrl_env_known; not cmd:...,
// which a check must not start), made once here, so a typo or a build without
// MuJoCo is refused before any run
static int h2o_check_task(const char *task, rlhf_err *err) {
    size_t n = strcspn(task, ":");
    if (!study_ctrl_env_known(task, n) || !task[n] || !task[n + 1])
        return rlhf_fail(err,
                         "--task %s: study " NAME " takes the simulator, a gapped env string "
                         "TASK:KEY=VALUE with TASK pendulum, hopper, halfcheetah or walker2d "
                         "(e.g. " DEFAULT_SIM ", halfcheetah:gravity=2, walker2d:friction=0.3, "
                         "halfcheetah:joint_noise=1); the real env is TASK",
                         task);
    return study_ctrl_env_makes(task, err);
}

// `rlhf ctrl eval --run DIR --env REAL`: the return (and std) from its line
static int eval_real(study_ctx *c, const char *real, const char *run_dir, const char *log,
                     int episodes, uint64_t seed, double *ret, double *std, rlhf_err *err) {
    study_args a = {0};
    study_add(&a, "ctrl", "eval", "--run", run_dir, "--env", real, NULL);
    study_addf(&a, "--episodes=%d", episodes);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    if (study_run(c, log, &a, NULL, err)) return -1;
    char path[2400], line[4096] = "";
    snprintf(path, sizeof path, "%s/logs/%s.out", c->out, log);
    FILE *f = fopen(path, "r");
    if (!f) return rlhf_fail(err, "study " NAME ": cannot read %s", path);
    const char *at = NULL;
    while (fgets(line, sizeof line, f))
        if ((at = strstr(line, ": return "))) break;
    fclose(f);
    // "... : return R ± S over N episodes" (± is two bytes of UTF-8)
    if (!at || sscanf(at + 9, "%lf", ret) != 1)
        return rlhf_fail(err, "study " NAME ": no return in %s", path);
    const char *pm = strstr(at, "\xc2\xb1");
    *std = pm && sscanf(pm + 2, "%lf", std) == 1 ? *std : NAN;
    return 0;
}

static int run_arm(study_ctx *c, const h2o_plan *pl, const char *dataset, double rr, double re,
                   int arm, uint64_t seed, rlhf_err *err) {
    study_args a = {0};
    study_add(&a, "--algo",
              arm == A_H2O   ? "h2o"
              : arm == A_SIM ? "sac"
                             : "iql",
              "--env", arm == A_OFF ? pl->real : pl->sim, NULL);
    if (arm != A_SIM) study_add(&a, "--dataset", dataset, NULL);
    study_addf(&a, "--hidden=%d", pl->data.hidden);
    study_addf(&a, "--eval_episodes=%d", pl->data.eval_episodes);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    study_addf(&a, "--batch_size=%d", pl->batch);
    study_addf(&a, "--offline_steps=%d", arm == A_OFF ? pl->offline_steps : 0);
    study_addf(&a, "--online_steps=%d", arm == A_OFF ? 0 : pl->online_steps);
    study_add(&a, "--eval_every=0", "--save_every=0", NULL);
    if (arm == A_H2O) study_add(&a, "--mix_ratio=0.5", NULL);
    char name[256], dir[1400], log[300];
    snprintf(name, sizeof name, "seed%llu/%s", (unsigned long long)seed, ARM[arm]);
    study_ctrl_result r;
    if (study_ctrl_train(c, name, &a, dir, sizeof dir, &r, err)) return -1;
    double sim_score = r.score;
    snprintf(log, sizeof log, "eval/%s", name);
    if (eval_real(c, pl->real, dir, log, pl->data.eval_episodes, seed, &r.ret, &r.ret_std, err))
        return -1;
    r.score = (re != rr) ? 100.0 * (r.ret - rr) / (re - rr) : NAN;
    cJSON *row = study_ctrl_row(ARM[arm], seed, &r);
    if (isfinite(sim_score)) cJSON_AddNumberToObject(row, "sim_score", sim_score);
    cJSON_AddStringToObject(row, "real_env", pl->real);
    cJSON_AddStringToObject(row, "train_env", arm == A_OFF ? pl->real : pl->sim);
    study_row(c, NAME, row);
    return 0;
}

static int h2o_run(study_ctx *c, rlhf_err *err) {
    h2o_plan pl;
    plan_of(c, &pl);
    char dir[1200], data[1300];
    double rr, re;
    if (study_ctrl_collect(c, &pl.data, dir, sizeof dir, err)) return -1;
    if (study_ctrl_refs(dir, &rr, &re, err)) return -1;
    study_ctrl_level(dir, c->level, data, sizeof data);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME " (%s, %s against %s, %s data): seed %d of %d\n",
                study_ctrl_size_name(study_ctrl_size_of(c)), pl.sim, pl.real, c->level, s + 1,
                c->n_seeds);
        for (int a = 0; a < N_ARM; a++)
            if (run_arm(c, &pl, data, rr, re, a, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// seed by seed: score(a) - score(b) over the rows (rows without a phase)
static int diffs(const cJSON *rows, const char *a, const char *b, double *d, int max) {
    double seeds[MAX_SEEDS];
    int ns = study_ctrl_seeds(rows, "method", a, seeds, MAX_SEEDS), n = 0;
    for (int i = 0; i < ns && n < max; i++) {
        const cJSON *x = study_ctrl_match(rows, seeds[i], "method", a, NULL);
        const cJSON *y = study_ctrl_match(rows, seeds[i], "method", b, NULL);
        if (!x || !y || !isfinite(study_num(x, "score")) || !isfinite(study_num(y, "score")))
            continue;
        d[n++] = study_num(x, "score") - study_num(y, "score");
    }
    return n;
}

static stats_summary arm_stat(const cJSON *rows, const char *method, const char *field) {
    double v[MAX_SEEDS];
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *m = study_str(row, "method");
        if (m && !strcmp(m, method) && isfinite(study_num(row, field)) && n < MAX_SEEDS)
            v[n++] = study_num(row, field);
    }
    return stats_summarize(v, n);
}

// the real env, the simulator and the data level the rows name (rows from
// before --task name only train_env, or nothing: the pendulum default; rows
// from before --level name no level: medium)
static void row_envs(const cJSON *rows, const char **real, const char **sim, const char **level) {
    const cJSON *h = study_ctrl_match(rows, NAN, "method", "h2o", NULL);
    *level = study_level(rows, DEFAULT_LEVEL);
    const cJSON *o = study_ctrl_match(rows, NAN, "method", "offline", NULL);
    *sim = h && *study_str(h, "train_env") ? study_str(h, "train_env") : DEFAULT_SIM;
    *real = h && *study_str(h, "real_env")    ? study_str(h, "real_env")
            : o && *study_str(o, "train_env") ? study_str(o, "train_env")
                                              : "pendulum";
}

static int h2o_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    double d1[MAX_SEEDS], d2[MAX_SEEDS];
    stats_summary s1 = stats_summarize(d1, diffs(rows, "h2o", "sim_only", d1, MAX_SEEDS));
    stats_summary s2 = stats_summarize(d2, diffs(rows, "h2o", "offline", d2, MAX_SEEDS));
    study_outcome o1 = study_ctrl_outcome(&s1), o2 = study_ctrl_outcome(&s2);
    v->outcome = (o1 == STUDY_SUPPORTED && o2 == STUDY_SUPPORTED)           ? STUDY_SUPPORTED
                 : (o1 == STUDY_NOT_SUPPORTED || o2 == STUDY_NOT_SUPPORTED) ? STUDY_NOT_SUPPORTED
                                                                            : STUDY_INCONCLUSIVE;
    stats_summary sc[N_ARM];
    for (int a = 0; a < N_ARM; a++) sc[a] = arm_stat(rows, ARM[a], "score");
    const char *real, *sim, *level;
    row_envs(rows, &real, &sim, &level);
    snprintf(v->figure, sizeof v->figure,
             "%+.1f ± %.1f vs sim-only, %+.1f ± %.1f vs offline (real-env score, %d seeds)",
             s1.mean, s1.se, s2.mean, s2.se, s1.n < s2.n ? s1.n : s2.n);
    snprintf(v->text, sizeof v->text,
             "Normalised score in the real environment (%s), mean ± se over seeds: H2O "
             "%.1f ± %.1f, SAC trained in the simulator (%s) %.1f ± %.1f, IQL on the real "
             "data (%s level) %.1f ± %.1f. H2O minus sim-only, seed by seed: %+.1f ± %.1f (%d "
             "seeds); H2O "
             "minus offline: %+.1f ± %.1f (%d seeds). Rule: supported when both differences are "
             "positive by at least 2 se, not supported when either is negative by 2 se, else "
             "inconclusive.",
             real, sc[A_H2O].mean, sc[A_H2O].se, sim, sc[A_SIM].mean, sc[A_SIM].se, level,
             sc[A_OFF].mean, sc[A_OFF].se, s1.mean, s1.se, s1.n, s2.mean, s2.se, s2.n);
    return 0;
}

static int h2o_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    const char *real, *sim, *level;
    row_envs(rows, &real, &sim, &level);
    char about[1024];
    snprintf(about, sizeof about,
             "Real environment: %s; simulator: %s; real data: our SAC agent's %s level in the "
             "real environment. H2O learns in the simulator with the real "
             "data mixed in half of each batch; sim-only is SAC in the simulator; offline is IQL "
             "on the real data. All are evaluated in the real environment (score); sim_score is "
             "the run's own final evaluation (the simulator for the first two).",
             real, sim, level);
    report_p(p, about);
    report_h(p, 2, "Real-environment score (mean ± se over seeds)");
    static const char *const fields[] = {"score", "sim_score", "return", "seconds"};
    study_ctrl_table(p, rows, NULL, N_ARM, ARM, LABEL, 4, fields);
    return 0;
}

const study_def study_h2o = {
    .name = NAME,
    .paper = "Niu et al. 2022, When to Trust Your Simulator: Dynamics-Aware Hybrid "
             "Offline-and-Online RL (H2O)",
    .claim = "With a simulator whose dynamics differ from the real environment (2x gravity by "
             "default; --task names another gap, e.g. halfcheetah:gravity=2) and limited real "
             "data, H2O scores higher in the real environment than SAC trained in the simulator "
             "alone and than offline RL (IQL) on the real data alone.",
    .run = h2o_run,
    .verdict = h2o_verdict,
    .report = h2o_report,
    .no_sandbox = 1,
    .check_task = h2o_check_task,
    .level = DEFAULT_LEVEL,
};
