// serve/serve_internal: what the serve layer's files share: errors as OpenAI
// error objects, jobs (one request's rows), the server state behind one mutex.
//
// Locking: srv->mu guards the queue, every job's state fields (started, done,
// cancelled, out buffer, refs) and the statistics. The worker holds it only to
// take jobs and to publish what a step produced; the model runs unlocked.
#ifndef RLHF_SERVE_INTERNAL_H
#define RLHF_SERVE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "rlhf.h"
#include "reward/sources.h"
#include "serve/serve.h"
#include "tok/chat.h"
#include "tok/tok.h"

#define SERVE_MAX_STOP 4 // OpenAI's limit on "stop" strings
#define SERVE_MAX_TOP_LOGPROBS 5
#define SERVE_HIST_MAX 256 // batch sizes above this share the last bin

// An error as OpenAI reports it: {"error": {"message", "type", "param", "code"}}.
typedef struct {
    int status;     // HTTP status (400, 404, 405, 413, 500, ...)
    char type[48];  // "invalid_request_error", "not_found_error", "server_error"
    char param[64]; // the offending field ("" = null)
    char code[48];  // e.g. "context_length_exceeded" ("" = null)
    char message[768];
} serve_error;

int serve_fail(serve_error *e, int status, const char *param, const char *code, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));

typedef enum { JOB_COMPLETION = 0, JOB_CHAT = 1 } job_kind;

// One sequence being generated: a choice of a prompt.
typedef struct {
    int prompt; // index into the job's prompts
    int index;  // the choice's "index" in the response
    rlhf_gen_opts opts;
    rlhf_rng rng;
    int *ids; // (max_tokens) sampled ids; a stop id ends the row and is kept
    int n_ids;
    float *logp;  // (max_tokens) the model's log-prob of each id (logprobs only)
    int *top_ids; // (max_tokens, top) the likeliest ids (logprobs > 0 only)
    float *top_lp;
    char *text;       // the completion text so far (decoded)
    size_t len;       // bytes of text
    size_t start;     // where the reply starts (after a chat reply prefix)
    size_t end;       // where the visible reply ends (stop text cut)
    size_t sent;      // bytes already streamed (from start)
    int prefix_known; // start is settled
    int done;
    int finish_length; // 1: max_tokens reached ("length"), 0: "stop"
} serve_row;

typedef struct serve_job {
    job_kind kind;
    char id[48];
    long created;
    int n_prompts, n; // rows = n_prompts * n
    int **prompt_ids, *prompt_len;
    int n_rows;
    serve_row *rows;
    int max_tokens;
    char *stop[SERVE_MAX_STOP];
    int n_stop;
    const chat_stops *stops; // the server's rules for this kind
    int stream, include_usage;
    int logprobs; // -1 off; else how many top alternatives (0..5)
    // state, under srv->mu
    int refs;
    int started, done, cancelled, failed;
    int batch_size; // rows in the batch that ran it
    char *out;      // stream events, or the final body
    size_t out_len, out_cap, out_read;
    pthread_cond_t cv;
    struct serve_job *next;
} serve_job;

typedef struct serve_server {
    serve_config cfg;
    const char *name; // the served model id
    rlhf_model *m;
    rlhf_tokenizer *t;
    int add_bos;
    chat_stops plain, chat;
    reward_set rs;
    int has_rm;
    pthread_mutex_t rm_mu; // one reward scoring at a time (the model's buffers)
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    serve_job *head, *tail;
    int stopping;
    uint64_t next_seed;
    long next_id;
    // statistics (GET /v1/stats)
    long requests, errors, batches, rows, prompt_tokens, completion_tokens, reward_requests;
    long hist[SERVE_HIST_MAX + 1];
    double started_at, busy_s; // monotonic seconds
    long created;              // wall-clock start (the model's "created")
} serve_server;

// ---- request.c: request bodies -> jobs (NULL + e on a bad request)
serve_job *serve_parse_completion(serve_server *s, const char *body, size_t len, job_kind kind,
                                  serve_error *e);
void serve_job_free(serve_job *j);
// Drops one reference (under srv->mu); frees the job at zero.
void serve_job_release(serve_server *s, serve_job *j);

// ---- sched.c: the generation worker (runs until s->stopping)
void *serve_worker_main(void *arg);
// Queues a job (refs += 1 for the worker); -1 when the server is stopping.
int serve_submit(serve_server *s, serve_job *j);

// ---- respond.c: bodies
// Appends bytes to a job's output (under srv->mu) and wakes its reader.
void serve_job_append(serve_job *j, const char *s, size_t n);
// The stream chunk of row r with text delta [from, to) and its finish, as an
// SSE event appended to the job's output. final: the row has just ended.
void serve_stream_row(serve_server *s, serve_job *j, serve_row *r, size_t from, size_t to,
                      int final);
// The first chunk of a chat stream (role only), for each choice.
void serve_stream_start(serve_server *s, serve_job *j);
// Ends a stream (usage chunk when asked, then "data: [DONE]").
void serve_stream_end(serve_server *s, serve_job *j);
// The whole body of a finished non-streaming job (malloc'd JSON).
char *serve_final_body(serve_server *s, serve_job *j);
char *serve_error_body(const serve_error *e);
char *serve_models_body(serve_server *s);
char *serve_stats_body(serve_server *s);
// POST /get_reward: NULL + e on a bad request.
char *serve_reward_body(serve_server *s, const char *body, size_t len, serve_error *e);
// s[0..n) as valid UTF-8 (invalid bytes become U+FFFD), malloc'd, NUL-terminated.
char *serve_utf8(const char *s, size_t n);
// 1 if s[0..n) is valid UTF-8.
int serve_utf8_valid(const char *s, size_t n);
// A request body as a JSON object (UTF-8, no \u0000, an object); NULL + e
// (a 400) otherwise. cJSON_Delete it.
struct cJSON *serve_parse_object(const char *body, size_t len, serve_error *e);
// Bytes at the end of s[0..n) that are an incomplete UTF-8 sequence (0..3).
size_t serve_utf8_tail(const char *s, size_t n);

#endif
