// study/study_neorl: `rlhf study neorl` — Gao et al. 2025, "NeoRL-2: Near
// Real-World Benchmarks for Offline Reinforcement Learning with Extended
// Realistic Scenarios" (papers.md card 38), on our NeoRL-2-style tasks
// (src/ctrl/env_neorl.c: neorl-pipeline, neorl-rocket, neorl-dmsd;
// src/ctrl/env_simglucose.c: neorl-simglucose) and, when `--task` names them
// (the build needs MuJoCo), the two MuJoCo tasks of src/ctrl/env_mujoco.c:
// neorl-safety-halfcheetah, neorl-random-friction-hopper.
//
// Per task and seed: behaviour data. For the four built-in simulators, from
// the task's sub-expert controller (neorl_data_make: train/val splits,
// references random and expert, the data's normalised score); for the MuJoCo
// tasks, which have no hand-written controller, the medium level of our SAC
// agent's collect (study_ctrl_collect: one sub-optimal policy's episodes, as
// NeoRL-2's data are; references the random policy and SAC's final policy).
// Then `rlhf ctrl train --algo A --dataset DATA` offline for A in bc, iql,
// td3_bc, cql; each run's final normalised score (summary.json,
// `--eval_episodes` deterministic episodes).
//
// Rows: {kind "data", task, seed, data_score, ref_random, ref_expert, rows}
// (the MuJoCo tasks add "level": "medium") and {kind "algo", task, algo,
// seed, score, seconds}.
//
// The claim (the paper's Table/Figure of "successful tasks": few algorithms
// beat the behaviour policy's data by a clear margin on these traits): per
// (task, algo) the gain = mean over seeds of score - data_score. The share of
// pairs whose gain exceeds +10 points (the paper's strictest column: 9 of 63
// pairs) decides: supported when at most a third of the pairs, and no
// algorithm beats the data by more than 10 on average over the tasks; not
// supported when more than two thirds of the pairs gain > 10; inconclusive
// otherwise. The text also gives each task's own count, best gain and the
// same rule on its algorithms alone (none clears: supported; 3 or 4 of 4:
// not supported), so a task where the claim fails shows as such.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/env.h"
#include "ctrl/env_neorl.h"
#include "io/file.h"
#include "study/stats.h"
#include "study/study.h"
#include "study/study_ctrl.h"

#define NAME "neorl"
#define N_TASKS 6
#define N_BUILTIN 4 // TASKS[0..3]: neorl_data_make; the rest: MuJoCo, SAC-collected
#define N_ALGOS 4
#define MAX_SEEDS 16
#define MARGIN 10.0

static const char *const TASKS[N_TASKS] = {"neorl-pipeline",
                                           "neorl-rocket",
                                           "neorl-dmsd",
                                           "neorl-simglucose",
                                           "neorl-safety-halfcheetah",
                                           "neorl-random-friction-hopper"};
static const char *const ALGOS[N_ALGOS] = {"bc", "iql", "td3_bc", "cql"};

typedef struct {
    int steps, hidden, eval_episodes, batch;
    int train_episodes[N_BUILTIN]; // 0: the task's default
} plan;

static plan make_plan(const study_ctx *c) {
    plan p = {.steps = 5000, .hidden = 64, .eval_episodes = 5, .batch = 256};
    if (c->quick) {
        p = (plan){.steps = 300, .hidden = 32, .eval_episodes = 2, .batch = 64};
        p.train_episodes[0] = 2, p.train_episodes[1] = 20, p.train_episodes[2] = 20;
        // simglucose: its default 20 days (~8000-9600 rows, made in < 1 s): the
        // runs' cost is set by updates and evaluation episodes, not rows, and
        // fewer days can leave the data above the expert (seed 1, 2 days: 106)
        p.train_episodes[3] = 20;
    }
    return p;
}

static int train_one(study_ctx *c, const plan *p, const char *task, const char *algo,
                     const char *data, uint64_t seed, rlhf_err *err) {
    char run[2400], log[256];
    snprintf(run, sizeof run, "%s/runs/%s-%s-s%llu", c->out, task, algo, (unsigned long long)seed);
    snprintf(log, sizeof log, "%s-%s-s%llu", task, algo, (unsigned long long)seed);
    study_args a = {0};
    study_add(&a, "ctrl", "train", "--algo", algo, "--env", task, "--dataset", data, "--output_dir",
              run, "--overwrite_output_dir", "--quiet", "--eval_every", "0", "--save_every", "0",
              NULL);
    study_addf(&a, "--offline_steps=%d", p->steps);
    study_addf(&a, "--hidden=%d", p->hidden);
    study_addf(&a, "--batch_size=%d", p->batch);
    study_addf(&a, "--eval_episodes=%d", p->eval_episodes);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    double t0 = time_now();
    if (study_run(c, log, &a, NULL, err)) return -1;
    study_ctrl_result r;
    if (study_ctrl_summary(run, &r, err)) return -1;
    double score = r.score;
    if (!isfinite(score)) return rlhf_fail(err, "%s/summary.json: no normalized_score", run);
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "kind", "algo");
    cJSON_AddStringToObject(row, "task", task);
    cJSON_AddStringToObject(row, "algo", algo);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "score", score);
    cJSON_AddNumberToObject(row, "seconds", time_now() - t0);
    study_row(c, NAME, row);
    return 0;
}

// --task: "" the four built-in simulators (the study as it was measured),
// "all" the six, else a comma-separated list of task names; on[t] set for
// each task taken. -1 + err naming --task on an unknown or empty name.
static int task_set(const char *spec, int on[N_TASKS], rlhf_err *err) {
    memset(on, 0, N_TASKS * sizeof *on);
    if (!spec[0] || !strcmp(spec, "all")) {
        for (int t = 0; t < (spec[0] ? N_TASKS : N_BUILTIN); t++) on[t] = 1;
        return 0;
    }
    for (const char *at = spec;;) {
        size_t n = strcspn(at, ",");
        int hit = -1;
        for (int t = 0; t < N_TASKS; t++)
            if (strlen(TASKS[t]) == n && !strncmp(at, TASKS[t], n)) hit = t;
        if (hit < 0)
            return rlhf_fail(err,
                             "--task %s: study " NAME " takes \"all\" or a comma-separated list "
                             "of neorl-pipeline, neorl-rocket, neorl-dmsd, neorl-simglucose, "
                             "neorl-safety-halfcheetah, neorl-random-friction-hopper (the last "
                             "two need a build with MuJoCo; without --task: the first four)",
                             spec);
        on[hit] = 1;
        if (!at[n]) return 0;
        at += n + 1;
    }
}

// --task, checked before anything runs: the names, and each MuJoCo task made
// once (a build without MuJoCo refuses it here)
static int neorl_check_task(const char *task, rlhf_err *err) {
    int on[N_TASKS];
    if (task_set(task, on, err)) return -1;
    for (int t = N_BUILTIN; t < N_TASKS; t++) {
        if (!on[t]) continue;
        ctrl_env *e = NULL;
        if (ctrl_env_make(TASKS[t], &e, err)) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            return rlhf_fail(err, "--task %s: %s", task, why);
        }
        ctrl_env_free(e);
    }
    return 0;
}

// The SAC collect of a MuJoCo task: smoke (RLHF_CTRL_STUDY=smoke) checks the
// plumbing in seconds; quick 40000 SAC steps; full 80000 (the h2o study's
// quick collect: 6-7 minutes a task on one core of the 2-core Zen 5, up to
// ~17 on a busy one). SafetyHalfCheetah's SAC stays below the random
// policy's return until ~28000 steps (seed 1, width 256): 20000 steps at
// width 64 gave an "expert" worse than random.
static study_ctrl_data mujoco_data(const study_ctx *c, const char *task, uint64_t seed) {
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        return (study_ctrl_data){task, 1500, 200, 2, 16, 1, seed}; // SAC acts after 1000
    case STUDY_CTRL_QUICK:
        return (study_ctrl_data){task, 40000, 10000, 10, 256, 2, seed};
    default:
        return (study_ctrl_data){task, 80000, 20000, 20, 256, 5, seed};
    }
}

static cJSON *data_row(const char *task, uint64_t seed, double score, double rr, double re,
                       double rows) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "kind", "data");
    cJSON_AddStringToObject(row, "task", task);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "data_score", score);
    cJSON_AddNumberToObject(row, "ref_random", rr);
    cJSON_AddNumberToObject(row, "ref_expert", re);
    cJSON_AddNumberToObject(row, "rows", rows);
    return row;
}

// one task's data for a seed: its row (study_row) and the training file
static int make_data(study_ctx *c, const plan *p, int t, uint64_t seed, char *data, size_t n,
                     rlhf_err *err) {
    if (t >= N_BUILTIN) {
        study_ctrl_data d = mujoco_data(c, TASKS[t], seed);
        char dir[2200];
        double rr, re, score, rows;
        if (study_ctrl_collect(c, &d, dir, sizeof dir, err) ||
            study_ctrl_refs(dir, &rr, &re, err) ||
            study_ctrl_level_stats(dir, "medium", &score, &rows, err))
            return -1;
        // normalised scores need SAC's final policy above the random one: a
        // collect too short for that is refused (the smoke size, whose numbers
        // mean nothing, only warns)
        if (!(re > rr)) {
            if (study_ctrl_size_of(c) != STUDY_CTRL_SMOKE)
                return rlhf_fail(err,
                                 "study " NAME ": %s: SAC's final policy returns %.1f, not above "
                                 "the random policy's %.1f, so normalised scores would mean "
                                 "nothing; a longer collect is needed (the full size, without "
                                 "--quick, collects 80000 SAC steps)",
                                 dir, re, rr);
            fprintf(stderr,
                    "study " NAME ": warning: %s: SAC's final policy (%.1f) is not "
                    "above the random policy (%.1f)\n",
                    dir, re, rr);
        }
        cJSON *row = data_row(TASKS[t], seed, score, rr, re, rows);
        cJSON_AddStringToObject(row, "level", "medium");
        study_row(c, NAME, row);
        study_ctrl_level(dir, "medium", data, n);
        return 0;
    }
    char out[2200];
    snprintf(out, sizeof out, "%s/data/%s-s%llu", c->out, TASKS[t], (unsigned long long)seed);
    neorl_data_config dc;
    neorl_data_default_config(&dc);
    dc.env = TASKS[t];
    dc.out = out;
    dc.train_episodes = p->train_episodes[t];
    dc.seed = seed;
    dc.quiet = 1;
    neorl_data_result r;
    if (neorl_data_make(&dc, &r, err)) return -1;
    study_row(c, NAME,
              data_row(TASKS[t], seed, r.data_score, r.ref_random, r.ref_expert, r.train_rows));
    snprintf(data, n, "%s/train.hdf5", out);
    return 0;
}

static int neorl_run(study_ctx *c, rlhf_err *err) {
    plan p = make_plan(c);
    int on[N_TASKS];
    if (task_set(c->task, on, err)) return -1;
    for (int s = 0; s < c->n_seeds; s++) {
        uint64_t seed = c->seed + (uint64_t)s;
        for (int t = 0; t < N_TASKS; t++) {
            if (!on[t]) continue;
            char data[2400];
            if (make_data(c, &p, t, seed, data, sizeof data, err)) return -1;
            for (int a = 0; a < N_ALGOS; a++)
                if (train_one(c, &p, TASKS[t], ALGOS[a], data, seed, err)) return -1;
        }
    }
    return 0;
}

// ------------------------------------------------------------ from rows --
typedef struct {
    stats_summary data[N_TASKS];
    stats_summary score[N_TASKS][N_ALGOS];
    double gain[N_TASKS][N_ALGOS]; // mean score - mean data score (NAN: not measured)
} table;

static int idx(const char *s, const char *const *list, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, list[i])) return i;
    return -1;
}

static void tabulate(const cJSON *rows, table *tb) {
    double d[N_TASKS][MAX_SEEDS], x[N_TASKS][N_ALGOS][MAX_SEEDS];
    int nd[N_TASKS] = {0}, nx[N_TASKS][N_ALGOS] = {{0}};
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        int t = idx(study_str(r, "task"), TASKS, N_TASKS);
        if (t < 0) continue;
        if (!strcmp(study_str(r, "kind"), "data") && nd[t] < MAX_SEEDS)
            d[t][nd[t]++] = study_num(r, "data_score");
        int a = idx(study_str(r, "algo"), ALGOS, N_ALGOS);
        if (!strcmp(study_str(r, "kind"), "algo") && a >= 0 && nx[t][a] < MAX_SEEDS)
            x[t][a][nx[t][a]++] = study_num(r, "score");
    }
    for (int t = 0; t < N_TASKS; t++) {
        tb->data[t] = stats_summarize(d[t], nd[t]);
        for (int a = 0; a < N_ALGOS; a++) {
            tb->score[t][a] = stats_summarize(x[t][a], nx[t][a]);
            tb->gain[t][a] = nd[t] && nx[t][a] ? tb->score[t][a].mean - tb->data[t].mean : NAN;
        }
    }
}

// one task's pairs: how many of its algorithms clear the data by MARGIN,
// and its best algorithm (n 0: none measured)
typedef struct {
    int n, beat, best;
} task_claim;

static task_claim task_claim_of(const table *tb, int t) {
    task_claim tc = {0};
    for (int a = 0; a < N_ALGOS; a++) {
        if (!isfinite(tb->gain[t][a])) continue;
        if (!tc.n || tb->gain[t][a] > tb->gain[t][tc.best]) tc.best = a;
        tc.n++, tc.beat += tb->gain[t][a] > MARGIN;
    }
    return tc;
}

// the study's rule on one task, where an algorithm's mean over the tasks is
// its one pair: none clears the margin: supported; more than two thirds of
// the algorithms: not supported
static const char *task_outcome(const task_claim *tc) {
    return study_outcome_name(!tc->beat                  ? STUDY_SUPPORTED
                              : tc->beat * 3 > tc->n * 2 ? STUDY_NOT_SUPPORTED
                                                         : STUDY_INCONCLUSIVE);
}

static int neorl_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    table tb;
    tabulate(rows, &tb);
    int pairs = 0, beat = 0, any_algo_beats = 0;
    double best = -INFINITY;
    const char *best_algo = "";
    for (int a = 0; a < N_ALGOS; a++) {
        double sum = 0;
        int n = 0;
        for (int t = 0; t < N_TASKS; t++) {
            if (!isfinite(tb.gain[t][a])) continue;
            pairs++, n++, sum += tb.gain[t][a];
            beat += tb.gain[t][a] > MARGIN;
        }
        if (n && sum / n > best) best = sum / n, best_algo = ALGOS[a];
        any_algo_beats += n && sum / n > MARGIN;
    }
    if (!pairs) return rlhf_fail(err, "no (task, algorithm) pair has both a data row and a score");
    double share = (double)beat / pairs;
    v->outcome = share <= 1.0 / 3 && !any_algo_beats ? STUDY_SUPPORTED
                 : share > 2.0 / 3                   ? STUDY_NOT_SUPPORTED
                                                     : STUDY_INCONCLUSIVE;
    snprintf(v->text, sizeof v->text,
             "%d of %d (task, algorithm) pairs beat the behaviour data's normalised score by more "
             "than %.0f points (the paper: 9 of 63); the best algorithm on average over the tasks "
             "is %s at %+.1f points over the data. Supported when at most a third of the pairs "
             "and no algorithm on average clear the margin; not supported when more than two "
             "thirds do.",
             beat, pairs, MARGIN, best_algo, best);
    snprintf(v->figure, sizeof v->figure, "%d/%d pairs > data + %.0f; best %s %+.1f", beat, pairs,
             MARGIN, best_algo, best);
    size_t len = strlen(v->text);
    len += (size_t)snprintf(v->text + len, sizeof v->text - len, " Per task:");
    for (int t = 0; t < N_TASKS && len < sizeof v->text; t++) {
        task_claim tc = task_claim_of(&tb, t);
        if (!tc.n) continue;
        len += (size_t)snprintf(v->text + len, sizeof v->text - len,
                                " %s %d/%d (best %s %+.1f, %s);", TASKS[t], tc.beat, tc.n,
                                ALGOS[tc.best], tb.gain[t][tc.best], task_outcome(&tc));
    }
    if (len < sizeof v->text) v->text[len - 1] = '.';
    return 0;
}

static int neorl_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    table tb;
    tabulate(rows, &tb);
    enum { COLS = 3 + N_ALGOS };
    const char *hdr[COLS] = {"task", "data", "bc", "iql", "td3_bc", "cql", "> data + 10"};
    char cells[N_TASKS][COLS][64];
    const char *ptr[N_TASKS * COLS];
    int shown = 0; // the tasks the rows measured, in TASKS' order
    for (int t = 0; t < N_TASKS; t++) {
        task_claim tc = task_claim_of(&tb, t);
        if (!tb.data[t].n && !tc.n) continue;
        int k = shown++;
        snprintf(cells[k][0], 64, "%s", TASKS[t]);
        snprintf(cells[k][1], 64, "%.1f", tb.data[t].mean);
        for (int a = 0; a < N_ALGOS; a++) {
            const stats_summary *s = &tb.score[t][a];
            if (s->n > 1)
                snprintf(cells[k][2 + a], 64, "%.1f ± %.1f (%+.1f)", s->mean, s->se, tb.gain[t][a]);
            else if (s->n == 1)
                snprintf(cells[k][2 + a], 64, "%.1f (%+.1f)", s->mean, tb.gain[t][a]);
            else
                snprintf(cells[k][2 + a], 64, "-");
        }
        if (tc.n)
            snprintf(cells[k][COLS - 1], 64, "%d/%d (%s)", tc.beat, tc.n, task_outcome(&tc));
        else
            snprintf(cells[k][COLS - 1], 64, "-");
        for (int i = 0; i < COLS; i++) ptr[k * COLS + i] = cells[k][i];
    }
    report_h(p, 2, "Normalised scores (gain over the data in brackets)");
    report_table(p, COLS, hdr, shown, ptr);
    report_note(p, "Score 100 (R - R_random) / (R_expert - R_random): R_random the uniform "
                   "random policy, R_expert the task's noise-free expert controller (the MuJoCo "
                   "tasks: our SAC agent's final policy), on the trainer's evaluation episodes. "
                   "Data: the behaviour episodes of train.hdf5 (the expert with Gaussian action "
                   "noise); the MuJoCo tasks: the medium level of the SAC agent's collect (one "
                   "of its checkpoints, sub-optimal). Mean ± standard error over seeds. "
                   "Last column: the algorithms that beat the data by more than 10 points on "
                   "the task, and the study's rule on that task alone.");
    return 0;
}

const study_def study_neorl = {
    .name = NAME,
    .paper = "Gao et al. 2025, NeoRL-2: Near Real-World Benchmarks for Offline Reinforcement "
             "Learning with Extended Realistic Scenarios",
    .claim = "On tasks with delays, external factors, safety terminations and small "
             "sub-expert datasets, offline RL (BC, IQL, TD3+BC, CQL) rarely beats the behaviour "
             "policy's data by a clear margin (> 10 normalised points).",
    .run = neorl_run,
    .check_task = neorl_check_task,
    .verdict = neorl_verdict,
    .report = neorl_report,
    .no_sandbox = 1,
};
