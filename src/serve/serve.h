// serve/serve: `rlhf serve`, an OpenAI-compatible HTTP server for our models
// (GET /v1/models, POST /v1/completions, POST /v1/chat/completions, streaming
// with server-sent events, GET /v1/stats) and, with a reward model, OpenRLHF's
// remote reward-model protocol (POST /get_reward). docs/serve.md has the
// endpoints, fields and limits.
//
// The layer's files: server.c (setup, libmicrohttpd, routing), request.c
// (parsing and validating request bodies into jobs), sched.c (the generation
// worker that batches the rows of all waiting jobs), respond.c (response
// bodies, stream chunks, stats, the reward endpoint).
#ifndef RLHF_SERVE_H
#define RLHF_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct {
    const char *model;         // --model spec; NULL = no generation endpoints
    const char *reward_model;  // --reward_model; NULL = no /get_reward
    const char *tokenizer;     // NULL = the model's own
    const char *chat_template; // NULL = /v1/chat/completions answers 400
    const char *served_name;   // the model id clients name (NULL = --model)
    const char *host;          // "127.0.0.1"
    int port;                  // 0 = a free port, printed on the first stdout line
    int max_batch_size;        // rows (sequences) stepped together
    int max_tokens;            // default completion length when a request gives none
    int batch_wait_ms;         // how long a batch that is not full waits for more requests
    int threads;               // OpenMP threads of the model's kernels (0 = OMP_NUM_THREADS)
    size_t max_body_bytes;     // larger request bodies get 413
    int reward_batch_size;     // reward-model rows per forward
    uint64_t seed;             // base of the seeds of requests that give none
} serve_config;

void serve_config_default(serve_config *c);
// Loads the models, listens, and answers until SIGINT or SIGTERM; then stops
// accepting, lets the running batch end, and returns 0. -1 + err when the
// models cannot be loaded or the address cannot be bound (or, in a build
// without libmicrohttpd, always).
int serve_run(const serve_config *c, rlhf_err *err);

#endif
