// reward/remote: a reward model behind HTTP, spoken to in OpenRLHF's remote
// reward-model protocol (the one `--remote_rm_url` uses; docs/remote_rewards.md).
//
// Each batch of at most batch_size completions is one
//   POST URL   Content-Type: application/json
//   {"query": [prompt+completion, ...], "prompts": [prompt, ...], "labels": ["", ...]}
// answered by a JSON object holding "rewards": one finite number per query, in
// order. Other fields (OpenRLHF's serve_rm also sends "scores" and
// "extra_logs") are ignored. "query" is the prompt text followed directly by
// the completion text; "labels" are empty strings (what OpenRLHF sends when a
// dataset has no --label_key): a reward set scores texts and has no labels.
//
// Sources: OpenRLHF openrlhf/utils/remote_rm_utils.py (remote_rm_fn_ray,
// request_api_wrapper), openrlhf/utils/agent.py (_fetch_rewards_via_http:
// "query", "prompts", "labels") and openrlhf/cli/serve_rm.py (POST /get_reward
// answering {"rewards", "scores", "extra_logs"}).
//
// Transport (timeouts, retries with back-off of transient failures) is
// io/http's. An answer that is not a JSON object with a "rewards" array of n
// finite numbers fails the batch with a message naming the URL, the problem
// and the start of the body; it is not retried (the server answered, wrongly).
#ifndef RLHF_REWARD_REMOTE_H
#define RLHF_REWARD_REMOTE_H

#include <stddef.h>

#include "base/base.h"

typedef struct {
    double timeout_s;         // per request (default 60)
    double connect_timeout_s; // connecting alone (default 10)
    int max_retries;          // of transient failures (default 3)
    double backoff_s;         // first wait between tries, doubling (default 0.5)
    int batch_size;           // queries per POST (default 64)
} remote_rm_opts;

typedef struct remote_rm remote_rm;

void remote_rm_opts_default(remote_rm_opts *o);
// Checks the URL (http:// or https://) and that libcurl is built in; does not
// connect (the protocol has no health check): the first batch finds a dead server.
int remote_rm_open(remote_rm **out, const char *url, const remote_rm_opts *o, rlhf_err *err);
// out (n) = the server's rewards of (prompts[i] + completions[i]).
int remote_rm_score(remote_rm *r, const char *const *prompts, const char *const *completions, int n,
                    float *out, rlhf_err *err);
void remote_rm_close(remote_rm *r);

// The request body of n (prompt, completion) pairs (malloc'd JSON text).
char *remote_rm_request(const char *const *prompts, const char *const *completions, int n);
// Reads the n rewards of an answer body[0..len) into out; -1 + err naming url
// and the problem (not JSON, no "rewards", wrong length, a non-number or
// non-finite entry) with the start of the body.
int remote_rm_parse(const char *url, const char *body, size_t len, int n, float *out,
                    rlhf_err *err);

#endif
