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

// `rlhf ctrl collect` with d's settings into c->base/ctrl-ENV-STEPS-DATASET-HIDDEN-sSEED
// (written to dir), unless that folder's collect.json exists already (then it
// is reused as it is). 0, or -1 + err (the log's last lines).
int study_ctrl_collect(study_ctx *c, const study_ctrl_data *d, char *dir, size_t n, rlhf_err *err);

// dir/LEVEL.hdf5 (level: random, medium, medium-replay, expert, medium-expert)
void study_ctrl_level(const char *dir, const char *level, char *out, size_t n);

// The reference returns collect recorded (dir/collect.json); -1 + err when missing.
int study_ctrl_refs(const char *dir, double *ref_random, double *ref_expert, rlhf_err *err);

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
int study_ctrl_evals(const char *run_dir, int max, double *step, double *ret, double *score,
                     int *n, rlhf_err *err);

// A row {"method", "seed", "score", "return", "return_std", "seconds",
// "updates"} from a result (the caller adds the study's own fields and passes
// it to study_row).
cJSON *study_ctrl_row(const char *method, uint64_t seed, const study_ctrl_result *r);

// ---------------------------------------------------------- verdict help --
// The first row whose string fields equal the NULL-terminated key, value
// pairs and whose "seed" is seed (NAN: any seed); NULL when none.
//   study_ctrl_match(rows, 3, "method", "riql", "data", "rew-random-0.3", NULL)
const cJSON *study_ctrl_match(const cJSON *rows, double seed, ...);

// The distinct "seed" values of rows whose string field key equals value
// (key NULL: all rows with a seed), in order of appearance; at most max.
int study_ctrl_seeds(const cJSON *rows, const char *key, const char *value, double *seed, int max);

// stats_sign_test of a summary of differences as an outcome.
study_outcome study_ctrl_outcome(const stats_summary *diff);

#endif
