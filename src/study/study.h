// study/study: `rlhf study NAME --out DIR` — a seed paper's finding
// reproduced on the gold-reward sandbox with one command.
//
// A study runs ordinary `rlhf` commands (this very binary, as child processes:
// each training run is a normal run folder under OUT/runs/, its log under
// OUT/logs/), evaluates the models it makes, and writes one JSON object per
// measurement to OUT/results.jsonl. From those rows alone (never from
// anything else) it then computes its verdict and draws its report:
// OUT/report.html (the claim, the verdict, plots as inline SVG, tables) and
// OUT/table.txt (the same numbers as text). `rlhf study NAME --from FILE
// --out DIR` recomputes verdict, report and table from a results file without
// training: that is how the tests feed a study synthetic rows where its claim
// holds and where it fails.
//
// The sandbox (study_base, study_gold_pairs, study_proxy_rm, study_eval): the
// arith task (data/task.h) with 1-2 digit additions; the *gold* reward of a
// completion is the task's shaped verifier score (1 correct, in (0, 0.5) for a
// wrong number by its distance, 0 for no number); a tiny byte-level model
// fine-tuned on the noisy teacher is the starting policy (pi_ref); preference
// pairs are two samples of a policy labelled by the gold reward with optional
// Bradley-Terry noise (P(a > b) = sigmoid((g_a - g_b) / T)); *proxy* reward
// models are trained on the first N of those labels. Every evaluation reports
// gold reward, proxy reward and KL to pi_ref.
#ifndef RLHF_STUDY_STUDY_H
#define RLHF_STUDY_STUDY_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "base/base.h"
#include "report/report.h"

typedef struct {
    char out[1024];   // --out: results.jsonl, report.html, table.txt, runs/, logs/
    char base[1024];  // --base: data/ and sft/ (made when missing, else reused); default OUT/base
    char data[1100];  // base/data: arith files (sft, prefs, prompts, eval .jsonl)
    char sft[1100];   // base/sft: the starting policy pi_ref (a run folder)
    char rlhf[1024];  // the rlhf binary the study runs (this process's own)
    int quick;        // --quick: the minutes-long version (tests use it)
    int n_seeds;      // --seeds (default 2 quick, 3 full)
    uint64_t seed;    // --seed: the first seed; seed s of a sweep is seed + s
    int n_eval;       // held-out prompts per evaluation (quick 100, full 300)
    int eval_samples; // samples per prompt in an evaluation (quick 4, full 8)
    FILE *results;    // OUT/results.jsonl, appended by study_row
    double t0;        // start time (seconds), for "seconds" in rows
    char task[256];   // --task: the study's setting ("": its default; see study_def.check_task)
    char level[32];   // --level: the dataset level a control study trains on (study_def.level)
    int resume;       // --resume: reuse the runs an earlier, interrupted study finished
    int runs, reused; // rlhf commands asked for, and of them taken from the earlier study
} study_ctx;

// ------------------------------------------------------- running commands --
// An argument list for one `rlhf` command. Strings are copied.
typedef struct {
    int n;
    char *v[160];
} study_args;
// Appends the NULL-terminated strings: study_add(&a, "dpo", "--beta", "0.1", NULL)
void study_add(study_args *a, ...);
// Appends one printf-formatted argument: study_addf(&a, "%g", beta)
void study_addf(study_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void study_args_free(study_args *a);

// Runs `rlhf ARGS...` (ctx->rlhf) with OMP settings inherited, stdout to
// OUT/logs/LOG.out and stderr to OUT/logs/LOG.log (LOG may hold '/':
// "dpo/seed1"), and frees args.
// 0 on exit status 0; else -1 + err naming the command and the log's last
// lines. With json != NULL the last line of stdout that parses as a JSON object
// is returned in *json (the caller deletes it; -1 if there is none).
// A finished command leaves OUT/logs/LOG.done holding its arguments; with
// ctx->resume a command whose LOG.done holds the same arguments is not run
// again (its LOG.out gives the JSON), so an interrupted study goes on where it
// stopped. Every study's commands are deterministic given their arguments, and
// those that write a folder pass --overwrite_output_dir, so a command cut short
// is simply run again.
int study_run(study_ctx *c, const char *log, study_args *a, cJSON **json, rlhf_err *err);

// ---------------------------------------------------------------- sandbox --
// Makes base/data (arith, digits 1-2, '+') and base/sft (SFT of the tiny
// byte-level model on the noisy teacher) unless base/sft holds a complete
// final checkpoint already (then both are reused as they are).
int study_base(study_ctx *c, rlhf_err *err);

// Preference pairs labelled by the gold reward: for each of the first
// n_prompts prompts of base/data/prompts.jsonl, samples of `model` (k per
// prompt) and one pair of two different ones, chosen by Bradley-Terry with
// temperature bt_temp (0: the higher gold wins, ties dropped). Written to out
// as {"prompt","chosen","rejected","chosen_gold","rejected_gold"} lines.
int study_gold_pairs(study_ctx *c, const char *model, int n_prompts, double bt_temp, uint64_t seed,
                     const char *out, rlhf_err *err);

// The first max (0: all) pairs of src whose chosen and rejected are non-empty
// and differ, written to dst; how many in *kept.
int study_keep_pairs(const char *src, const char *dst, int max, int *kept, rlhf_err *err);

// A proxy reward model (a run folder, out_dir) trained on the first n_labels
// pairs of `pairs`, from base/sft's weights; ensemble_k > 1 trains an ensemble
// of that many members (rlhf rm --ensemble K) with different seeds of its heads
// and data order. Its held-out pair accuracy goes to *acc (may be NULL).
int study_proxy_rm(study_ctx *c, const char *pairs, int n_labels, int ensemble_k, uint64_t seed,
                   const char *out_dir, double *acc, rlhf_err *err);

typedef struct {
    double gold;             // mean gold (shaped) reward of sampled completions (T = 1)
    double accuracy;         // greedy exact-match accuracy
    double sampled_accuracy; // exact-match share of sampled completions
    double proxy;            // mean proxy reward of the same samples (NAN without a proxy)
    double kl;               // KL(model || pi_ref), estimated from samples (0 for pi_ref)
} study_point;

// Evaluates model on the first ctx->n_eval held-out prompts with
// ctx->eval_samples samples each (sampling seed `seed`): gold, accuracy, proxy
// (when proxy_rm is not NULL; an ensemble is scored by its mean) and KL.
int study_eval(study_ctx *c, const char *model, const char *proxy_rm, uint64_t seed,
               study_point *pt, rlhf_err *err);

// Appends one row to results.jsonl (adds "study": NAME, "t": seconds since
// the start and, in a study with a dataset level, "level" unless present) and
// frees it. Rows are flushed as they come, so a study stopped half-way keeps
// what it measured.
void study_row(study_ctx *c, const char *study, cJSON *row);
// A row's number field, or NAN when absent or not a number.
double study_num(const cJSON *row, const char *key);
// A row's string field, or "" when absent.
const char *study_str(const cJSON *row, const char *key);
// The dataset level the rows name ("level" of the first row that has one),
// else dflt (rows from before --level).
const char *study_level(const cJSON *rows, const char *dflt);

// --------------------------------------------------------------- verdicts --
typedef enum {
    STUDY_SUPPORTED = 1,
    STUDY_INCONCLUSIVE = 0,
    STUDY_NOT_SUPPORTED = -1
} study_outcome;

typedef struct {
    study_outcome outcome;
    char text[1200];  // why, with the numbers and their uncertainty (one paragraph)
    char figure[200]; // the key figure for docs/findings.md, e.g. "+0.12 ± 0.03 gold"
} study_verdict;

// "supported", "inconclusive", "not supported"
const char *study_outcome_name(study_outcome o);

// ---------------------------------------------------------------- studies --
typedef struct {
    const char *name;  // what users type: "online-vs-offline"
    const char *paper; // "Tang et al. 2024, Understanding the performance gap between ..."
    const char *claim; // the finding, one sentence, as the study tests it
    // trains and evaluates; rows go out through study_row
    int (*run)(study_ctx *c, rlhf_err *err);
    // pure: the verdict from rows (a cJSON array of the rows of results.jsonl)
    int (*verdict)(const cJSON *rows, study_verdict *v, rlhf_err *err);
    // the study's own plots and tables (the page already has title, claim, verdict)
    int (*report)(const cJSON *rows, report_page *p, rlhf_err *err);
    // 1: the study does not use the gold-reward sandbox (study_base is not
    // made), e.g. the control studies (study_ctrl.h)
    int no_sandbox;
    // a study with several settings (`rlhf study NAME --task T`): 0 when T is
    // one it can run, else -1 + err naming --task and what it takes. NULL: the
    // study has one setting and --task is refused.
    int (*check_task)(const char *task, rlhf_err *err);
    // a control study that trains on one level of study_ctrl_collect's datasets:
    // the level it uses unless `--level` names another (study_ctrl_level_check
    // lists them). NULL: the study takes no --level.
    const char *level;
} study_def;

const study_def *study_find(const char *name); // NULL when there is no such study
const study_def *study_at(int i);              // i-th study, NULL past the end

// ---------------------------------------------------------- the command --
typedef struct {
    const char *name;  // the study
    const char *out;   // --out
    const char *base;  // --base (NULL: OUT/base)
    const char *from;  // --from: recompute verdict and report from this results file
    int quick;         // --quick
    int seeds;         // --seeds (0: the default)
    uint64_t seed;     // --seed
    int overwrite;     // --overwrite_output_dir: replace an earlier results.jsonl in --out
    const char *rlhf;  // the binary to run (NULL: /proc/self/exe)
    const char *task;  // --task: the study's setting (NULL: its default)
    const char *level; // --level: the dataset level (NULL: the study's study_def.level)
    int resume;        // --resume: go on with an interrupted study in out (study_run)
} study_cmd;

// Runs a study (or, with from, only its verdict and report): results.jsonl,
// report.html, table.txt and verdict.json in out; the table and the verdict on
// stdout.
int study_command(const study_cmd *o, rlhf_err *err);
// The checks of o that need no run (the study, --out, --task, --level): a
// mistake in them is a usage error (rlhf study exits 2). study_command makes
// them too.
int study_check(const study_cmd *o, rlhf_err *err);
// Writes verdict.json, report.html and table.txt of out from rows.
int study_write_report(const study_def *d, const cJSON *rows, const char *out, double seconds,
                       study_verdict *v, rlhf_err *err);
void study_list(FILE *f); // one line per study: name, paper
// docs/findings.md's table: one row per study from DIR/<study>/verdict.json
// (a study without one is "not run"); -1 when there is none at all.
int study_findings(const char *dir, FILE *f, rlhf_err *err);

#endif
