// data/task: built-in tasks with gold verifiers, the embedded default data of
// rlhf.c (nothing is downloaded). A task writes TRL-format JSONL files into a
// directory and scores completions against its gold answers. Tasks sit behind a
// small table (task_find) so the CLI and the reward layer need not know each one.
//
// arith: problems "a+b=" and "a-b=" with non-negative operands of min..max
// decimal digits (a 1-digit operand is 0..9, a d-digit one 10^(d-1)..10^d-1; the
// digit count of each operand is drawn uniformly, then the value). The answer is
// the integer in canonical decimal ("522", "0", "-12"); the trainer appends the
// tokenizer's EOS, the files hold only the digits. arith_write_dir writes:
//
//   sft.jsonl      {"prompt":"37+485=","completion":"522","correct":true}
//                  a noisy teacher: a share `noise` of the rows are wrong, with
//                  "correct":false and "error":"<kind>" (see arith_error below)
//   prefs.jsonl    {"prompt","chosen","rejected","chosen_correct"}: either
//                  gold > a teacher error, or (share `pref_both_wrong`) two
//                  teacher errors, the one nearer the gold by |answer - gold|
//                  chosen; chosen != rejected always
//   kto.jsonl      {"prompt","completion","label"}: n_train noisy-teacher rows,
//                  label true iff the completion is correct
//   prompts.jsonl  {"prompt"} for online RL
//   eval.jsonl     {"prompt","completion"} with gold answers, n_eval distinct
//                  held-out problems
//   task.json      the options (arith_load_opts reads them back)
//
// Held-out split: a problem (a, op, b) is held out iff a fixed hash of it falls
// in the lowest ARITH_HELDOUT_PERCENT percent. Training files (sft, prefs, kto,
// prompts) draw only problems that are not held out, eval.jsonl only problems
// that are, so no eval prompt is ever a training prompt, for any seed, size or
// digit range. The training files depend on the seed; eval.jsonl does not (runs
// with different seeds are compared on the same eval set). Each file has its
// own random stream, so changing one count leaves the other files unchanged.
//
// Scoring a completion (the decoded text after the prompt, EOS stripped):
//   1. leading and trailing whitespace (space \t \n \r \v \f) is stripped;
//   2. what is left must be exactly a canonical integer: "0", or an optional
//      "-" then a non-zero digit then digits (at most 18 digits). So "522",
//      " 522\n" and "-12" parse; "0522", "+522", "-0", "522.", "5 22",
//      "522 garbage" and "" do not;
//   3. exact (shaped = 0): 1 if it parses and equals the gold answer, else 0;
//      shaped (shaped = 1): 1 if correct; 0.5 / (1 + log10(1 + |answer - gold|))
//      for a parsing but wrong answer (in (0, 0.5), strictly decreasing in the
//      distance: off by 1 -> 0.38, by 10 -> 0.25, by 100 -> 0.17); 0 if it does
//      not parse.
// Prompts parse as: optional whitespace, a (1..15 digits), optional spaces,
// '+' or '-', optional spaces, b (1..15 digits), optional spaces, '=', optional
// whitespace. Anything else is a malformed prompt: an error, never a crash.
#ifndef RLHF_DATA_TASK_H
#define RLHF_DATA_TASK_H

#include <stdint.h>
#include <stdio.h>

#include "base/base.h"

// ---------------------------------------------------------------- arith

#define ARITH_MAX_DIGITS 15      // operand digits; keeps every value exact in a double
#define ARITH_HELDOUT_PERCENT 10 // share of all problems held out for eval.jsonl

typedef struct {
    int min_digits, max_digits; // digits per operand, 1 <= min <= max <= 15
    char ops[8];                // the operators to draw from: "+", "-" or "+-"
    double noise;               // share of wrong teacher answers in sft/kto, [0, 1]
    double pref_both_wrong;     // share of pairs that are wrong vs more wrong, [0, 1]
    int n_train;                // rows of sft.jsonl and of kto.jsonl
    int n_pref;                 // rows of prefs.jsonl
    int n_prompts;              // rows of prompts.jsonl
    int n_eval;                 // rows of eval.jsonl
    uint64_t seed;
} arith_opts;

// digits 1-3, ops "+-", noise 0.3, pref_both_wrong 0.25, n_train 10000,
// n_pref 10000, n_prompts 2000, n_eval 500, seed 1
void arith_default_opts(arith_opts *o);

// Sets one option from text, as the CLI gives it: "digits" ("1-3" or "2"),
// "min_digits", "max_digits", "ops", "noise", "pref_both_wrong", "n_train",
// "n_pref", "n_prompts", "n_eval", "seed". A leading "--" on key is ignored.
int arith_set_opt(arith_opts *o, const char *key, const char *value, rlhf_err *err);
void arith_print_opts(const arith_opts *o, FILE *f); // "digits 1-3\nops +-\n..."
int arith_check_opts(const arith_opts *o, rlhf_err *err);

// Creates dir (and parents) and writes the six files above, each atomically.
int arith_write_dir(const char *dir, const arith_opts *o, rlhf_err *err);
// Reads dir/task.json back into *o.
int arith_load_opts(const char *dir, arith_opts *o, rlhf_err *err);

int arith_parse_prompt(const char *prompt, long long *a, char *op, long long *b, rlhf_err *err);
long long arith_answer(long long a, char op, long long b);
int arith_is_heldout(long long a, char op, long long b); // 1 if the problem is eval-only
// 0 and *value if text is a canonical integer after stripping whitespace, else -1
int arith_parse_answer(const char *text, long long *value);

// The reward of one completion (rules above) in *reward. -1 with a message only
// for a malformed prompt; any completion, however odd, gets a reward.
int arith_reward(const char *prompt, const char *completion, int shaped, double *reward,
                 rlhf_err *err);
// The same without the error text: NAN for a malformed prompt.
double arith_score(const char *prompt, const char *completion, int shaped);

// The noisy teacher's mistakes, each the way a person makes it:
typedef enum {
    ARITH_DROP_CARRY = 1,   // one carry (borrow, for '-') forgotten: gold -/+ 10^(i+1)
    ARITH_DROP_ALL_CARRIES, // every column on its own: 37+485 -> 412, 52-17 -> 45
    ARITH_SWAP_DIGITS,      // two adjacent, different digits of the answer swapped
    ARITH_OFF_BY_ONE,       // answer +-1 or +-10
    ARITH_N_ERRORS
} arith_error;
// "dropped_carry", "dropped_all_carries" ("dropped_borrow", "dropped_all_borrows"
// for '-'), "swapped_digits", "off_by_one"
const char *arith_error_name(arith_error kind, char op);
// A wrong answer of the given kind for a op b (never the gold answer): 1 and *out,
// or 0 when the kind cannot apply (no carry to drop, no two digits to swap) or
// the problem is outside the task (operands 0..10^15-1, op '+' or '-').
// rng picks among the variants (which carry, which digits, which offset); with
// rng NULL the first is taken (lowest column, leftmost pair, +1).
int arith_wrong_answer(long long a, char op, long long b, arith_error kind, rlhf_rng *rng,
                       long long *out);

// ---------------------------------------------------------------- the table

// One built-in task. Options are opaque to callers: allocate opts_size bytes,
// fill them with default_opts, change them with set_opt, hand them to write_dir.
typedef struct {
    const char *name;    // what users type: "arith"
    const char *summary; // one line for help text
    size_t opts_size;
    void (*default_opts)(void *opts);
    int (*set_opt)(void *opts, const char *key, const char *value, rlhf_err *err);
    void (*print_opts)(const void *opts, FILE *f);
    int (*write_dir)(const char *dir, const void *opts, rlhf_err *err);
    int (*load_opts)(const char *dir, void *opts, rlhf_err *err);
    // shaped 0: the gold 0/1 reward; 1: the task's partial-credit reward
    int (*score)(const char *prompt, const char *completion, int shaped, double *reward,
                 rlhf_err *err);
    const char *files;   // what write_dir writes, for `rlhf data --help`
    // Optional names of the ways score can rate, NULL-terminated (NULL: "exact" 0
    // and "shaped" 1 only): views[i] is passed to score as shaped = i, and a reward
    // spec names it "task:NAME:VIEW" (market: best, utility, immediate, hindsight).
    // "exact" and "shaped" mean 0 and 1 for every task.
    const char *const *views;
    // The names write_dir writes into its folder, task.json among them,
    // NULL-terminated: `rlhf data` refuses a folder where one of them exists and
    // no task.json of this task says the folder is its own
    const char *const *outputs;
} rlhf_task;

// The entries, each in its task's file; the table is data/task_table.c.
extern const rlhf_task task_arith;
extern const rlhf_task task_users;
extern const rlhf_task task_market;

const rlhf_task *task_find(const char *name); // NULL if there is no such task
const rlhf_task *task_at(int i);              // i-th task, NULL past the end
// The view of t called name (rlhf_task.views; "exact" 0, "shaped" 1) in *view;
// -1 when t has no view so called.
int task_view(const rlhf_task *t, const char *name, int *view);
// The name of view v of t: views[v], else "exact" (0) or "shaped" (1).
const char *task_view_name(const rlhf_task *t, int v);
// The names a spec may use, "exact, shaped" or the task's views, for messages.
void task_view_list(const rlhf_task *t, char *out, size_t n);

#endif
