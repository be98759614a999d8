// reward/judge: an LLM judge behind any OpenAI-compatible API (vLLM's,
// llama.cpp's, `rlhf serve`'s, OpenAI's): it sends a judging prompt to
// BASE/chat/completions (or BASE/completions) and reads a score (pointwise) or
// a choice between two responses (pairwise) from the answer. Answers are
// cached (same request, same answer). The API key is read from the environment
// variable named by api_key_env and never logged. docs/judges.md has the same
// rules with examples.
//
// Request (POST, JSON, "Authorization: Bearer $KEY" when a key is set):
//   chat:        BASE/chat/completions  {"model", "messages": [{"role": "system",
//                "content": SYSTEM}, {"role": "user", "content": USER}],
//                "temperature": 0, "max_tokens"}
//   completions: BASE/completions       {"model", "prompt": SYSTEM "\n\n" USER,
//                "temperature": 0, "max_tokens"}
// USER is the template with {prompt}, {completion} (pointwise) or {prompt},
// {a}, {b} (pairwise) replaced; SYSTEM is the fixed instruction below (or
// system_prompt). Texts that are not UTF-8 are sent with U+FFFD in place.
// Answer: choices[0].message.content (chat) or choices[0].text (completions),
// OpenAI's documented shapes; anything else (no choices, a null content, a
// body that is not JSON) counts as a malformed answer.
//
// Parse rules:
//   pointwise: the first number in the answer, e.g. "Score: 7/10" -> 7,
//     "-2.5" -> -2.5: an optional '-' then digits with an optional '.'
//     fraction; digits glued to a letter before them ("gpt4") are not a
//     number. The score is the number as written, not normalised (the default
//     template asks for 0..10); no number = malformed.
//   pairwise: the first standalone capital "A" or "B" (not next to another
//     letter, digit or '_'): "B", "[[A]]", "Answer: B", "Response A." all
//     count. (TRL's OpenAIPairwiseJudge asks for "0"/"1" and takes the answer
//     only when it is exactly that; we ask for a letter, as our own OSP
//     self-judge does, and read it out of a longer answer too.) Neither = malformed.
//   both_orders (default on): each pair is asked as (a, b) and as (b, a);
//     p_a = (votes for a) / 2, so 1, 0.5 (the judge changed its mind with the
//     order: position bias) or 0. Off: one question, p_a = 1 or 0.
//
// Failures: transient HTTP failures (no connection, a reset or cut answer, a
// timeout, 408/429/5xx) are retried by io/http with back-off, max_retries
// times; a malformed answer is asked again as a fresh request up to
// max_retries times. When it stays malformed: with malformed_neutral = 0 (the
// default) the call fails with a message naming the URL and the start of the
// answer; with malformed_neutral = 1 it scores neutral_score (pointwise) or
// 0.5 (pairwise, per order) and counts it in judge_stats. A failed HTTP
// request always fails the call. The key never appears in a message.
//
// Cache: key = 128-bit hash of (endpoint URL, model, api, the whole request
// body); value = the answer text. Only answers that parse are cached, so a
// cached answer is never asked again. In memory always; with cache_path also a
// JSONL file ({"key": "<32 hex>", "answer": "..."} per line) loaded at open
// and appended to, one whole line per write(2) under O_APPEND, as answers
// arrive; a torn last line (a crash mid-write) is ignored at load.
//
// Concurrency: `concurrency` requests in flight at once (threads; io/http is
// blocking). Results do not depend on it. One call at a time per judge.
#ifndef RLHF_REWARD_JUDGE_H
#define RLHF_REWARD_JUDGE_H

#include "base/base.h"

typedef struct {
    const char *base_url;           // e.g. "http://127.0.0.1:8080/v1"
    const char *model;              // the request's "model" field (default "default": servers
                                    // of one model such as llama.cpp's ignore it)
    const char *api_key_env;        // NULL/"": no key
    const char *api;                // "chat" (default) or "completions"
    const char *pointwise_template; // NULL: the default; holds {prompt} and {completion}
    const char *pairwise_template;  // NULL: the default; holds {prompt}, {a} and {b}
    int max_tokens;                 // answer length (default 16)
    double timeout_s;               // per request (default 60)
    int max_retries;                // transient HTTP failures and unparseable answers (default 3)
    int concurrency;                // requests in flight at once (default 8)
    const char *cache_path;         // a JSONL file kept across runs; NULL: in memory only
    const char *system_prompt;      // NULL: the default of the kind (JUDGE_*_SYSTEM)
    int both_orders;                // pairwise: ask (a, b) and (b, a) and average (default 1)
    int malformed_neutral;          // 1: an answer still malformed after the retries scores
                                    // neutral_score / 0.5 (counted); 0 (default): fail
    float neutral_score;            // pointwise neutral value (default 0)
    double backoff_s;               // first wait between HTTP retries (default 0.5)
} judge_opts;

// The default templates and system prompts.
#define JUDGE_POINTWISE_SYSTEM                                                                     \
    "You are a strict, impartial judge. Rate how well the response answers the prompt on a "       \
    "scale from 0 (useless or wrong) to 10 (perfect). Reply with the number only."
#define JUDGE_POINTWISE_TEMPLATE                                                                   \
    "[Prompt]\n{prompt}\n\n[Response]\n{completion}\n\n"                                           \
    "Rate the response from 0 to 10. Score:"
#define JUDGE_PAIRWISE_SYSTEM                                                                      \
    "You are a strict, impartial judge. Compare two responses to the same prompt. Reply with "     \
    "one letter: A if response A is better, B if response B is better. The order in which the "    \
    "responses appear must not matter."
#define JUDGE_PAIRWISE_TEMPLATE                                                                    \
    "[Prompt]\n{prompt}\n\n[Response A]\n{a}\n\n[Response B]\n{b}\n\n"                             \
    "Which response is better, A or B? Answer:"

typedef struct {
    long requests;   // HTTP requests made (io/http's retries and fresh requests for
                     // malformed answers included)
    long cache_hits; // questions answered from the cache
    long malformed;  // answers that did not parse (each try)
    long neutral;    // questions given the neutral value (malformed_neutral)
} judge_stats;

typedef struct reward_judge reward_judge;

void judge_opts_default(judge_opts *o);
// Checks the options (base_url, model, api, templates holding their fields, an
// api_key_env that is set), reads the key and loads the cache file.
int judge_open(reward_judge **out, const judge_opts *o, rlhf_err *err);
// Pointwise: out (n) = the judge's score of each (prompt, completion).
int judge_score(reward_judge *j, const char *const *prompts, const char *const *completions, int n,
                float *out, rlhf_err *err);
// Pairwise: p_a (n) = 1 when the judge prefers a[i], 0 when b[i] (asked in both
// orders when the docs say so: then 0.5 for a disagreement).
int judge_compare(reward_judge *j, const char *const *prompts, const char *const *a,
                  const char *const *b, int n, float *p_a, rlhf_err *err);
// Every two samples of each group, judged: p (n_groups, n, n) with
// p[(g*n + i)*n + j] = p(sample i of group g beats sample j) from judge_compare
// (i < j asked, p[j][i] = 1 - p[i][j]; the diagonal and two equal texts 0.5,
// not asked). prompts (n_groups); texts (n_groups * n), grouped by prompt. The
// layout of train/online_judge's self-judge, for algo/self_judge_scores.
int judge_groups(reward_judge *j, const char *const *prompts, const char *const *texts,
                 int n_groups, int n, double *p, rlhf_err *err);
// Counts since judge_open.
void judge_get_stats(const reward_judge *j, judge_stats *out);
void judge_close(reward_judge *j);

// The parse rules above, on one answer: 0 and *out, or -1 when malformed.
int judge_parse_score(const char *answer, double *out);
// *out = 0 for "A", 1 for "B".
int judge_parse_choice(const char *answer, int *out);

#endif
