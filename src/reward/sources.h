// reward/sources: every reward an online trainer can use, behind one
// interface. A reward set is a weighted list of sources, each scoring
// (prompt, completion) texts:
//
//   verifier:NAME[:VIEW]    a built-in task's gold verifier (data/task.h), e.g.
//                           verifier:arith (0/1) or verifier:arith:shaped; VIEW is
//                           exact, shaped or one of the task's named views
//                           (rlhf_task.views), e.g. task:market:hindsight
//   rm:PATH                 a trained reward model or ensemble (reward/reward_model.h);
//                           an ensemble's members become one score by mean, wco
//                           (min), uwo (mean - lambda*var) or, for a Bayesian
//                           ensemble (rm --objective brme), brme (lambda * the
//                           lowest-sigma head's mean + (1-lambda) * min mean):
//                           reward_set_opts
//   command:CMD             an external judge (below), started once per run
//   url:URL                 a reward model behind HTTP in OpenRLHF's remote-RM
//                           protocol (reward/remote.h), e.g. url:http://host:5000/get_reward
//   judge:[BASE_URL]        an LLM judge's pointwise score over an OpenAI-compatible
//                           API (reward/judge.h), e.g. judge:http://127.0.0.1:8080/v1;
//                           "judge:" alone uses --judge_url. Model, API-key variable
//                           and retries: reward_flags (--judge_model, --judge_api_key_env,
//                           --reward_retries)
//   llm:PATH                a local LLM as a pointwise judge (reward/llm_judge.h): any
//                           model this project loads, asked the --judge_template
//                           question ({prompt}, {completion}; default a yes/no
//                           question); score P(" Yes") / (P(" Yes") + P(" No"))
//   pairwise:PATH           a generative pairwise reward model (reward/pairwise.h,
//                           trained by `rlhf rm --objective pairwise`): score
//                           P(y > anchor), both orders averaged, the anchor being
//                           the reference answer the trainer passes
//                           (reward_set_anchors), else the first sample of y's
//                           group (1/2 for that sample)
//   classify:PATH[:logit]   a text classifier (reward/classify.h, trained by `rlhf rm
//                           --objective classify`): P(label true) of each completion
//                           (with what it was trained on: classify.json), or its logit
//   vpl:DIR:CONTEXT         a VPL reward model (reward/vpl_rm.h, trained by `rlhf rm
//                           --objective vpl`) for one user: z = mu of the encoder over
//                           the first K labelled pairs of the JSONL file CONTEXT
//
// A spec lists them with weights:
//   "verifier:arith=1,rm:runs/rm=0.5,url:http://127.0.0.1:5000/get_reward=0.5".
// Items are separated by a comma that is followed by a kind ("verifier:",
// "rm:", "command:", "url:", "judge:", "llm:", "pairwise:", "classify:", "vpl:"; also "task:", "reward_model:", "cmd:",
// "remote:"), so a command or URL may hold commas elsewhere, and a URL's own
// colons ("http:", ":5000") are not kinds. "=W" at the end of an item is its
// weight (default 1) when W is a number; a command or URL that itself ends in
// "=<number>" (a query string "?k=3") needs an explicit "=1" after it. The
// total is sum_s w_s * score_s; per-source scores are kept for metrics.
//
// HTTP sources (url:, judge:) wait at most timeout_s (reward_set_opts, the
// trainers' --reward_timeout) per request and retry transient failures
// (io/http.h) --reward_retries times; a persistent failure or a malformed
// answer fails the scoring with the reason, like a failing command.
//
// The external-command protocol. CMD runs under /bin/sh -c in its own process
// group, once. For each completion it receives one line of JSON on stdin,
//   {"prompt": "...", "completion": "..."}
// (strings JSON-escaped; bytes that are not UTF-8 become U+FFFD), and must
// answer one line on stdout holding one finite number, in order. A batch's
// requests are all written before its answers are read (both directions are
// polled, so a judge that answers as it reads never blocks). The judge must
// flush stdout after each answer (Python: print(x, flush=True)). Its stderr is
// ours. A judge that exits (or closes stdout), does not answer within
// timeout_s seconds of the request or of its previous answer, or answers
// something other than a number fails the scoring with a message naming the
// command and the reason; the process group is then killed. The group also dies
// with the trainer, kill -9 included (a watchdog in it, see command.c).
#ifndef RLHF_REWARD_SOURCES_H
#define RLHF_REWARD_SOURCES_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "algo/rl.h"
#include "data/task.h"
#include "reward/classify.h"
#include "reward/vpl_rm.h"
#include "reward/judge.h"
#include "reward/llm_judge.h"
#include "reward/pairwise.h"
#include "reward/remote.h"
#include "reward/reward_model.h"

// ------------------------------------------------------- external command --
typedef struct reward_command reward_command;
// Starts cmd (/bin/sh -c cmd). Fails only if the process cannot be created; a
// command that does not exist is found out at the first batch (exit status 127).
int reward_command_start(reward_command **out, const char *cmd, double timeout_s, rlhf_err *err);
// out (n) = the judge's answers. -1 + the reason; the judge is then dead.
int reward_command_score(reward_command *c, const char *const *prompts,
                         const char *const *completions, int n, float *out, rlhf_err *err);
// Closes the judge's stdin, gives it a moment to exit, then kills its group.
void reward_command_close(reward_command *c);
// The raw exchange under reward_command_score, for other line protocols over the
// same process plumbing (train/episode's env programs, reward/env_program.h):
// writes req[0..len) (n request lines) while reading n answer lines, each passed
// as a NUL-terminated line without its newline to on_line(ctx, i, line, why, why_n),
// which returns 0, or -1 with the reason in why (the batch then fails with it, and
// the program is killed). The timeout, extra lines, a program that exits: as above.
typedef int (*reward_command_line_fn)(void *ctx, int i, char *line, char *why, size_t why_n);
int reward_command_exchange(reward_command *c, const char *req, size_t len, int n,
                            reward_command_line_fn on_line, void *ctx, rlhf_err *err);
// How messages name the program and its timeout flag (default "reward command",
// "--reward_timeout").
void reward_command_set_names(reward_command *c, const char *what, const char *timeout_flag);
// A JSON string literal of s[0..len) (quotes included, malloc'd): control
// characters escaped, invalid UTF-8 bytes as \ufffd.
char *reward_json_string(const char *s, size_t len);
// The same as a cJSON item (raw: already escaped) for a log line: any bytes
// of model output give valid JSON (samples.jsonl, pairs.jsonl, eval --output).
cJSON *reward_json_text(const char *s);

// ------------------------------------------------------------ reward sets --
typedef enum {
    REWARD_VERIFIER = 0,
    REWARD_MODEL,
    REWARD_COMMAND,
    REWARD_URL,
    REWARD_JUDGE,
    REWARD_LLM,
    REWARD_PAIRWISE,
    REWARD_CLASSIFY,
    REWARD_VPL
} reward_kind;

typedef struct {
    reward_kind kind;
    char name[96];  // for metrics: "verifier:arith", "rm:NAME", "command:NAME",
                    // "url:HOST:PORT", "judge:MODEL" (or "judge:HOST:PORT")
    char *arg;      // task name, model path, command line or URL ("" for "judge:")
    float weight;
    const rlhf_task *task;
    int shaped;
    reward_model rm;
    int rm_open;
    reward_command *cmd;
    remote_rm *remote;
    reward_judge *judge;
    llm_judge *llm;
    pairwise_rm *pairwise;
    classify_rm *classify;
    vpl_rm *vpl;
} reward_source;

typedef struct {
    rl_ensemble ensemble; // how a reward-model ensemble's members combine (default mean)
    float uwo_lambda;     // uwo: mean - lambda * Var (default 0.1, Coste et al.'s PPO value);
                          // brme: the paper's lambda in [0, 1]
    double timeout_s;     // external commands: seconds per answer; url: and judge:
                          // sources: seconds per HTTP request (default 30)
    const char *tokenizer; // reward models: NULL = each model's own
    int batch_size;       // reward-model scoring rows per forward (default 32)
} reward_set_opts;

// The HTTP sources' settings from the command line (reward_set_from_flags);
// a set made by reward_set_parse alone uses the defaults (3 retries, no judge URL).
typedef struct {
    int set;                 // 0: not given, the defaults apply
    int retries;             // tries after the first, of transient HTTP failures
    char *judge_url;         // "judge:" without a URL uses this base URL
    char *judge_model;       // the judge requests' "model" (NULL: judge.h's default)
    char *judge_api_key_env; // environment variable holding the judge's API key (NULL: none)
    char *judge_template;    // llm: sources' judging template (NULL: LLM_JUDGE_TEMPLATE)
} reward_http_flags;

typedef struct {
    int n;
    reward_source *src;
    reward_set_opts opt;
    reward_http_flags http;
    const char *const *anchors; // for the next reward_set_score only (reward_set_anchors)
} reward_set;

// What a trainer's command line says about its reward (NULL: not given).
typedef struct {
    const char *spec;              // --reward
    const char *task;              // --task: verifier:TASK, weight 1
    const char *reward_model;      // --reward_model: rm:PATH, weight 1
    const char *reward_command;    // --reward_command: command:CMD, weight 1
    const char *reward_url;        // --reward_url: url:URL, weight 1
    const char *judge_url;         // --judge_url: configures judge: sources (adds none)
    const char *judge_model;       // --judge_model
    const char *judge_api_key_env; // --judge_api_key_env
    int retries;                   // --reward_retries
    const char *judge_template;    // --llm_judge_template: the llm: sources' question
} reward_flags;

void reward_set_opts_default(reward_set_opts *o);
// Appends the sources of a spec (above). -1 + err for a malformed spec.
int reward_set_parse(reward_set *rs, const char *spec, rlhf_err *err);
// Appends one source; kind is "verifier", "rm", "command", "url", "judge", "llm" or
// "pairwise", "classify" or "vpl" (or an alias).
int reward_set_add(reward_set *rs, const char *kind, const char *arg, float weight, rlhf_err *err);
// The reward of a command line: the --reward spec plus the --task,
// --reward_model, --reward_command and --reward_url shortcuts (each weight 1),
// and the HTTP sources' settings. --judge_url adds no source by itself (online-dpo's
// --judge api reads it too): a judge reward is "--reward judge:" or "judge:URL".
// -1 + err when no source is given.
int reward_set_from_flags(reward_set *rs, const reward_flags *f, rlhf_err *err);
// Loads reward models, checks tasks, starts commands, opens HTTP clients.
int reward_set_open(reward_set *rs, const reward_set_opts *o, rlhf_err *err);
// per_source (n, rs->n) raw scores (may be NULL), total (n) = sum_s w_s * score_s.
int reward_set_score(reward_set *rs, const char *const *prompts, const char *const *completions,
                     int n, float *per_source, float *total, rlhf_err *err);
// The anchors of the next reward_set_score call, one per completion (pairwise:
// sources compare each completion with its anchor; a NULL entry, or anchors
// NULL: the group's first sample). Read by that call only, then forgotten; the
// caller keeps the strings alive until it returns.
void reward_set_anchors(reward_set *rs, const char *const *anchors);
void reward_set_free(reward_set *rs);

// ------------------------------------------------------ shaping, penalties --
typedef struct {
    float length_penalty;      // score -= alpha * completion tokens
    float missing_eos_penalty; // score -= p for a completion that never produced EOS (TRL)
    int overlong_max;          // DAPO soft overlong punishment up to this length; 0 off
    int overlong_buffer;       // ... over the last this many tokens
} reward_penalties;
// scores (n) += the penalties of completions with these lengths and EOS flags.
void reward_apply_penalties(const reward_penalties *p, int n, const int *length,
                            const uint8_t *ended_eos, float *scores);
// PAR (Fu et al. 2025): scores (n_prompts * n_samples, grouped by prompt) become
// mean_m sigmoid(k (r - r_ref[m])) against the M reference rewards of their
// prompt, ref (n_prompts * M). In place.
void reward_par(int n_prompts, int n_samples, float *scores, int M, const float *ref, float k);

#endif
