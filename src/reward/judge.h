// reward/judge: an LLM judge behind any OpenAI-compatible API (vLLM's,
// llama.cpp's, `rlhf serve`'s, OpenAI's): it sends a judging prompt to
// BASE/chat/completions (or BASE/completions) and reads a score (pointwise) or
// a choice between two responses (pairwise) from the answer. Answers are
// cached (same request, same answer). The API key is read from the environment
// variable named by api_key_env and never logged. The exact parse rules,
// templates and failure handling are documented in docs/judges.md.
#ifndef RLHF_REWARD_JUDGE_H
#define RLHF_REWARD_JUDGE_H

#include "base/base.h"

typedef struct {
    const char *base_url;           // e.g. "http://127.0.0.1:8080/v1"
    const char *model;              // the request's "model" field
    const char *api_key_env;        // NULL/"": no key
    const char *api;                // "chat" (default) or "completions"
    const char *pointwise_template; // NULL: the default; holds {prompt} and {completion}
    const char *pairwise_template;  // NULL: the default; holds {prompt}, {a} and {b}
    int max_tokens;                 // answer length (default 16)
    double timeout_s;               // per request (default 60)
    int max_retries;                // transient HTTP failures and unparseable answers (default 3)
    int concurrency;                // requests in flight at once (default 8)
    const char *cache_path;         // a JSONL file kept across runs; NULL: in memory only
} judge_opts;

typedef struct reward_judge reward_judge;

void judge_opts_default(judge_opts *o);
int judge_open(reward_judge **out, const judge_opts *o, rlhf_err *err);
// Pointwise: out (n) = the judge's score of each (prompt, completion).
int judge_score(reward_judge *j, const char *const *prompts, const char *const *completions, int n,
                float *out, rlhf_err *err);
// Pairwise: p_a (n) = 1 when the judge prefers a[i], 0 when b[i] (asked in both
// orders when the docs say so: then 0.5 for a disagreement).
int judge_compare(reward_judge *j, const char *const *prompts, const char *const *a,
                  const char *const *b, int n, float *p_a, rlhf_err *err);
void judge_close(reward_judge *j);

#endif
