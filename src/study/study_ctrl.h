// study/study_ctrl: what the control studies (`rlhf study riql`, `wsrl`,
// `famo2o`, `ro2o`) share. Everything runs as ordinary `rlhf ctrl ...`
// commands through study_run (this binary as a child process; logs under
// OUT/logs/), so a study's run folders are the ones a user would make by hand:
//
//   study_ctrl_collect   `rlhf ctrl collect` into BASE/ctrl-<settings>/ (D4RL-style
//                        levels from our own SAC agent; reused when its
//                        collect.json exists, so studies sharing --base share it)
//   study_ctrl_corrupt   `rlhf ctrl corrupt` (RIQL's corruption) file to file
//   study_ctrl_train     `rlhf ctrl train ... --output_dir OUT/runs/NAME`, then
//                        the run's summary.json (final normalised score, return)
//   study_ctrl_evals     the run's evaluation history (metrics.jsonl's eval lines)
//
// and for verdicts, pure functions over rows: study_ctrl_match (the row with
// given string fields and seed), study_ctrl_seeds and study_ctrl_outcome
// (stats_sign_test as a study_outcome).
#ifndef RLHF_STUDY_STUDY_CTRL_H
#define RLHF_STUDY_STUDY_CTRL_H

#include <stddef.h>
#include <stdint.h>

#include "study/stats.h"
#include "study/study.h"

// ------------------------------------------------------------- datasets --
typedef struct {
    const char *env;   // "pendulum", "hopper", ...
    int steps;         // SAC's online environment steps (collect --steps)
    int dataset_steps; // transitions per level (collect --dataset_steps; 0: steps)
    int checkpoints;   // evaluated SAC checkpoints (the medium policy is one of them)
    int hidden;        // network width (collect --hidden)
    int eval_episodes; // episodes per evaluation and for the reference returns
    uint64_t seed;
} study_ctrl_data;

// `rlhf ctrl collect` with d's settings into
// c->base/ctrl-ENV-STEPS-DATASET-HIDDEN[-cCHECKPOINTS][-eEPISODES]-sSEED (the
// c and e parts when d sets them; written to dir), unless that folder's
// collect.json exists already (then it is reused as it is). 0, or -1 + err
// (the log's last lines).
int study_ctrl_collect(study_ctx *c, const study_ctrl_data *d, char *dir, size_t n, rlhf_err *err);

// The three sizes of a control study: smoke (the environment variable
// RLHF_CTRL_STUDY=smoke: seconds, for make test: checks that it runs end to
// end, numbers meaningless), quick (--quick: minutes, on pendulum) and full
// (hopper when the build has MuJoCo, else a longer pendulum).
typedef enum { STUDY_CTRL_SMOKE, STUDY_CTRL_QUICK, STUDY_CTRL_FULL } study_ctrl_size;
study_ctrl_size study_ctrl_size_of(const study_ctx *c);
const char *study_ctrl_size_name(study_ctrl_size s); // "smoke", "quick", "full"

// The dataset of a size: smoke pendulum (2000 SAC steps, 1000 rows a level,
// width 32); quick pendulum (8000 steps, 4000 rows, width 64, 40 checkpoints:
// SAC learns the swing-up by ~4000 steps); full hopper (300000 steps,
// 100000 rows, width 256) with MuJoCo, else pendulum (20000, 10000, 64).
study_ctrl_data study_ctrl_data_of(const study_ctx *c);

// The environments a control study may name for its data (`--task` of famo2o
// and ro2o; h2o's real envs): pendulum, hopper, halfcheetah, walker2d.
// study_ctrl_env_check: 0 when env is one of them and this build makes it (the
// MuJoCo ones need MuJoCo), else -1 + err naming `--task`.
int study_ctrl_env_check(const char *env, rlhf_err *err);
// 1 when the n characters at name are one of those environments' names
int study_ctrl_env_known(const char *name, size_t n);
// 0 when ctrl_env_make makes task (then freed), else -1 + err "--task TASK: why"
int study_ctrl_env_makes(const char *task, rlhf_err *err);
// The dataset of a size on env (NULL or "": study_ctrl_data_of's). pendulum:
// study_ctrl_data_of's smoke and quick; full 20000 steps, 10000 rows, width 64
// (with or without MuJoCo). A MuJoCo task: smoke 1500 SAC steps (it acts from
// step 1000), 200 rows, width 16, 1 evaluation episode; quick 80000 steps, 20000
// rows, width 256, 20 checkpoints, 5 episodes (the collect `study h2o` makes at
// its quick size, so the two share one --base); full 300000, 100000, width 256.
study_ctrl_data study_ctrl_data_on(const study_ctx *c, const char *env);

// `ctrl train` arguments every study run shares: --algo, --env, --dataset,
// --hidden, --eval_episodes of d, --seed.
void study_ctrl_common(study_args *a, const char *algo, const study_ctrl_data *d,
                       const char *dataset, uint64_t seed);

// dir/LEVEL.hdf5 (level: random, medium, medium-replay, expert, medium-expert)
void study_ctrl_level(const char *dir, const char *level, char *out, size_t n);
// 0 when level is one of the levels above (what `rlhf study --level` takes),
// else -1 + err naming --level and the levels.
int study_ctrl_level_check(const char *level, rlhf_err *err);

// The reference returns collect recorded (dir/collect.json); -1 + err when missing.
int study_ctrl_refs(const char *dir, double *ref_random, double *ref_expert, rlhf_err *err);
// One level's normalised score and transitions as collect recorded them
// (dir/collect.json); -1 + err when missing.
int study_ctrl_level_stats(const char *dir, const char *level, double *score, double *rows,
                           rlhf_err *err);

// ----------------------------------------------------------- corruption --
typedef struct {
    const char *kind;  // obs, act, rew, dyn
    const char *mode;  // random, adversarial
    double rate;       // share of rows hit
    double scale;      // corruption_range (<= 0: the command's default)
    uint64_t seed;     // the rows and noise
    const char *agent; // adversarial obs/act: the attacker's run folder (else NULL)
} study_ctrl_corruption;

// `rlhf ctrl corrupt --dataset in --out out ...` (the log under
// OUT/logs/corrupt/). A clean condition (rate 0) needs no call: train on in.
int study_ctrl_corrupt(study_ctx *c, const char *in, const char *out,
                       const study_ctrl_corruption *k, rlhf_err *err);

// ------------------------------------------------------------- training --
typedef struct {
    double score;   // final evaluation's normalised score (NAN: no references)
    double ret;     // final evaluation's mean return
    double ret_std; // its std over episodes
    double seconds; // the run's own wall time (summary.json)
    double updates; // gradient updates taken
} study_ctrl_result;

// `rlhf ctrl train ARGS --output_dir OUT/runs/NAME --quiet --overwrite_output_dir`
// (NAME may hold '/'; the log is OUT/logs/train/NAME.log), frees a, writes the
// run folder's path to run_dir (may be NULL) and reads its summary.json into *r.
int study_ctrl_train(study_ctx *c, const char *name, study_args *a, char *run_dir, size_t n,
                     study_ctrl_result *r, rlhf_err *err);

// A ctrl train run folder's summary.json: score, return, std, seconds, updates.
int study_ctrl_summary(const char *run_dir, study_ctrl_result *r, rlhf_err *err);

// A run's evaluations in order (metrics.jsonl lines with eval/return_mean):
// step, return and normalised score (NAN without references), at most max;
// the count in *n.
int study_ctrl_evals(const char *run_dir, int max, double *step, double *ret, double *score, int *n,
                     rlhf_err *err);

// A row {"method", "seed", "score", "return", "return_std", "seconds",
// "updates"} from a result (the caller adds the study's own fields and passes
// it to study_row).
cJSON *study_ctrl_row(const char *method, uint64_t seed, const study_ctrl_result *r);

// One evaluation of a run's curve as a study row: {"phase":"curve", method, seed,
// step, score (left out when not finite), return}, passed to study_row(c, study).
void study_ctrl_curve_row(study_ctx *c, const char *study, const char *method, uint64_t seed,
                          double step, double score, double ret);

// ------------------------------------------------ offline-to-online rows --
// After a ctrl train run of offline_steps N then online steps, evaluated every
// eval_every steps (N a multiple of it, so one evaluation is at step N):
//   {"phase":"curve", method, seed, step, score, return}   one per evaluation
//   {"phase":"o2o", method, seed, pretrained, dip, final, return, seconds, updates}
// in normalised score: pretrained is the evaluation at step N (the offline
// policy), dip the lowest evaluation after N, final the last one. Study rows
// (study_row with name `study`); extra (may be NULL) is merged into the "o2o"
// row (and deleted).
int study_ctrl_o2o_rows(study_ctx *c, const char *study, const char *method, uint64_t seed,
                        const char *run_dir, int offline_steps, const study_ctrl_result *r,
                        cJSON *extra, rlhf_err *err);

// One arm of an offline-to-online comparison: `ctrl train` with
// study_ctrl_common(algo, d, dataset, seed), --offline_steps, --online_steps,
// --eval_every, --save_every 0 and the NULL-terminated extra arguments (may
// be NULL; they must not repeat a flag set here or in study_ctrl_common) into
// OUT/runs/seedS/METHOD, then its rows (study_ctrl_o2o_rows).
typedef struct {
    int offline_steps, online_steps, eval_every;
} study_ctrl_o2o;
int study_ctrl_o2o_arm(study_ctx *c, const char *study, const char *method, const char *algo,
                       const study_ctrl_data *d, const char *dataset, const study_ctrl_o2o *o,
                       const char *const *extra, uint64_t seed, rlhf_err *err);

// Seed by seed (seeds that have both), field of method a minus field of
// method b over the rows of `phase`: into d, the count returned (at most max).
int study_ctrl_diffs(const cJSON *rows, const char *phase, const char *a, const char *b,
                     const char *field, double *d, int max);

// Mean, se, ... over seeds of field for method's rows of phase.
stats_summary study_ctrl_stat(const cJSON *rows, const char *phase, const char *method,
                              const char *field);

// ------------------------------------------------------------- reporting --
// Each method's "curve" rows (normalised score against step), mean over seeds
// with a band of ± se.
void study_ctrl_plot_curves(report_page *p, const cJSON *rows, int n, const char *const *methods,
                            const char *const *labels, const char *title);
// A table: one line per method, the mean ± se over seeds of each field of its
// rows of phase.
void study_ctrl_table(report_page *p, const cJSON *rows, const char *phase, int n,
                      const char *const *methods, const char *const *labels, int n_fields,
                      const char *const *fields);

// ---------------------------------------------------------- verdict help --
// The first row whose string fields equal the NULL-terminated key, value
// pairs and whose "seed" is seed (NAN: any seed); NULL when none.
//   study_ctrl_match(rows, 3, "method", "riql", "data", "rew-random-0.3", NULL)
const cJSON *study_ctrl_match(const cJSON *rows, double seed, ...);

// The distinct "seed" values of rows whose string field key equals value
// (key NULL: all rows with a seed), in order of appearance; at most max.
int study_ctrl_seeds(const cJSON *rows, const char *key, const char *value, double *seed, int max);

// "Environment: ENV. " from the first row that records "env" (rows of a study
// run with --task, or any run since), else "": a verdict text's first words.
const char *study_ctrl_env_words(const cJSON *rows, char *buf, size_t n);

// stats_sign_test of a summary of differences as an outcome.
study_outcome study_ctrl_outcome(const stats_summary *diff);

// ------------------------------------------------- one method vs its base --
// The shape of the famo2o and ro2o studies (study_ctrl_versus.c): one dataset
// (the medium level of study_ctrl_data_on(c, --task)), per seed two arms of `ctrl train` with the
// same seed, data, offline updates and online budget, base and ours; rows by study_ctrl_o2o_arm.
// Verdict: per seed d = final(ours) - final(base), supported when mean d > 0 by >= 2 se, not
// supported when < 0 by >= 2 se, else inconclusive (the dips are reported, not judged).
typedef struct {
    const char *name;               // the study ("famo2o")
    const char *algo[2], *label[2]; // base, ours: --algo names and how the report names them
    // [0] on pendulum, [1] on a MuJoCo task (--task; full without --task where
    // the build has MuJoCo); then per size: smoke, quick, full
    study_ctrl_o2o budget[2][3];
    // shared ctrl train flags and ours' own, the same way (NULL-terminated
    // lists; NULL: none)
    const char *const *settings[2][3], *const *ours[2][3];
    const char *about; // the report's first paragraph
} study_ctrl_versus;
int study_ctrl_versus_run(study_ctx *c, const study_ctrl_versus *v, rlhf_err *err);
void study_ctrl_versus_verdict(const study_ctrl_versus *v, const cJSON *rows, study_verdict *out);
void study_ctrl_versus_report(const study_ctrl_versus *v, const cJSON *rows, report_page *p);

#endif
