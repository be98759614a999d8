// serve/sched: the one generation worker. Requests become jobs (one row per
// prompt and choice) in a queue; the worker takes every job waiting when it
// starts a batch (after up to --batch_wait_ms for the batch to fill; whole
// jobs, up to --max_batch_size rows), left-pads their prompts into one KV
// cache, and steps all rows together token by token with
// model_forward_cached, as generate() does, but with each row's own sampling
// options, seed, stop rules and length. Each step's new text goes to its
// request at once (streaming), so a client sees tokens as they come.
//
// Why not join running batches at step boundaries: the KV cache keeps one
// slot count for all rows (rows are left-padded), so a row joining later would
// need its prompt written into slots the others already passed. Jobs that
// arrive during a batch wait for the next one; under load (many clients) every
// batch is full, which is where batching pays. Greedy rows give what
// `rlhf generate --temperature 0` gives: padding is masked, positions count
// real tokens only.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "serve/serve_internal.h"

int serve_submit(serve_server *s, serve_job *j) {
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    j->refs++;
    j->next = NULL;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

// Where the first stop text (the template's or the request's) begins in
// text[0..n), or n.
static size_t first_stop(const serve_job *j, const char *text, size_t n) {
    size_t at = n;
    for (int i = 0; i < j->stops->n_text + j->n_stop; i++) {
        const char *st = i < j->stops->n_text ? j->stops->text[i] : j->stop[i - j->stops->n_text];
        const char *p = memmem(text, n, st, strlen(st));
        if (p && (size_t)(p - text) < at) at = (size_t)(p - text);
    }
    return at;
}

// Bytes at the end of text[0..n) that could begin a stop text: held back from
// the stream until the next token settles them.
static size_t stop_pending(const serve_job *j, const char *text, size_t n) {
    size_t hold = 0;
    for (int i = 0; i < j->stops->n_text + j->n_stop; i++) {
        const char *st = i < j->stops->n_text ? j->stops->text[i] : j->stop[i - j->stops->n_text];
        size_t L = strlen(st);
        for (size_t k = L - 1; k > hold; k--)
            if (k <= n && !memcmp(text + n - k, st, k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

// logits (V) -> the model's log-probs in lp (V); the top k ids into ids/out.
static void log_probs_top(const float *logits, int V, float *lp, int k, int *ids, float *out) {
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)(logits[i] - mx));
    float lse = mx + (float)log(sum);
    for (int i = 0; i < V; i++) lp[i] = logits[i] - lse;
    for (int a = 0; a < k; a++) {
        int best = -1;
        for (int i = 0; i < V; i++) {
            int taken = 0;
            for (int b = 0; b < a; b++) taken |= ids[b] == i;
            if (!taken && (best < 0 || lp[i] > lp[best])) best = i;
        }
        ids[a] = best;
        out[a] = lp[best];
    }
}

// Samples row r's next token from its logits (V, overwritten) and updates its
// text and state. Returns the token.
static int row_step(serve_server *s, serve_job *j, serve_row *r, float *logits, float *lp) {
    int V = s->m->cfg.vocab_size, k = r->n_ids, top = j->logprobs > 0 ? j->logprobs : 0;
    if (j->logprobs >= 0)
        log_probs_top(logits, V, lp, top, r->top_ids + (size_t)k * top,
                      r->top_lp + (size_t)k * top);
    int id = sample_token(logits, V, &r->opts, &r->rng, NULL);
    r->ids[r->n_ids++] = id;
    if (j->logprobs >= 0) r->logp[k] = lp[id];
    if (chat_is_stop_id(j->stops, id)) {
        r->done = 1;
        return id;
    }
    const int *prompt = j->prompt_ids[r->prompt];
    free(r->text);
    r->text =
        tok_decode_next(s->t, prompt[j->prompt_len[r->prompt] - 1], r->ids, r->n_ids, 0, &r->len);
    const char *pre = j->kind == JOB_CHAT ? j->stops->reply_prefix : "";
    size_t np = strlen(pre);
    if (!r->prefix_known && r->len >= np) {
        r->prefix_known = 1;
        r->start = r->sent = memcmp(r->text, pre, np) ? 0 : np;
    }
    size_t cut = first_stop(j, r->text, r->len);
    r->end = r->len;
    if (cut < r->len) {
        r->end = cut < r->start ? r->start : cut;
        r->done = 1;
    } else if (r->n_ids == j->max_tokens) {
        r->done = r->finish_length = 1;
    }
    return id;
}

// Streams what row r can show now; a finished row gets its final chunk.
static void row_publish(serve_server *s, serve_job *j, serve_row *r) {
    if (r->done && !r->prefix_known) { // ended before its reply prefix settled
        r->prefix_known = 1;
        r->start = r->sent = 0;
        r->end = r->text ? first_stop(j, r->text, r->len) : 0;
    }
    if (!j->stream || !r->prefix_known) return;
    size_t show = r->end;
    if (!r->done) {
        size_t hold = stop_pending(j, r->text, r->end);
        show = r->end - hold;
        show -= serve_utf8_tail(r->text, show);
        if (show < r->sent) show = r->sent;
    }
    if (show > r->sent || r->done) serve_stream_row(s, j, r, r->sent, show, r->done);
    r->sent = show;
}

// A job whose rows all ended: its final body (or the end of its stream).
static void job_finish(serve_server *s, serve_job *j) {
    char *body = NULL;
    if (j->stream)
        serve_stream_end(s, j);
    else
        body = serve_final_body(s, j);
    long tokens = 0;
    for (int i = 0; i < j->n_rows; i++) tokens += j->rows[i].n_ids;
    pthread_mutex_lock(&s->mu);
    if (body) serve_job_append(j, body, strlen(body));
    s->completion_tokens += tokens;
    for (int i = 0; i < j->n_prompts; i++) s->prompt_tokens += j->prompt_len[i];
    j->done = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&s->mu);
    free(body);
}

// A batch that failed inside the model (which validated requests should never
// make): every unfinished job gets a 500 error.
static void batch_fail(serve_server *s, serve_job **jobs, int nj, const char *msg) {
    serve_error e;
    serve_fail(&e, 500, NULL, "generation_failed", "generation failed: %s", msg);
    char *body = serve_error_body(&e);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < nj; i++) {
        serve_job *j = jobs[i];
        if (j->done) continue;
        if (j->stream) {
            serve_job_append(j, "data: ", 6);
            serve_job_append(j, body, strlen(body));
            serve_job_append(j, "\n\ndata: [DONE]\n\n", 16);
        } else {
            serve_job_append(j, body, strlen(body));
        }
        j->failed = j->done = 1;
        pthread_cond_broadcast(&j->cv);
    }
    s->errors++;
    pthread_mutex_unlock(&s->mu);
    free(body);
}

// The batch's rows in order, with their jobs; prompts left-padded to P.
typedef struct {
    int R, P, N;
    serve_row **row;
    serve_job **job;
    int *tok, *next;
    uint8_t *mask, *live;
} batch_rows;

static void batch_layout(serve_job **jobs, int nj, batch_rows *b) {
    int R = 0;
    for (int i = 0; i < nj; i++) R += jobs[i]->n_rows;
    b->R = R;
    b->P = b->N = 0;
    b->row = xmalloc((size_t)R * sizeof *b->row);
    b->job = xmalloc((size_t)R * sizeof *b->job);
    for (int i = 0, k = 0; i < nj; i++)
        for (int q = 0; q < jobs[i]->n_rows; q++, k++) {
            serve_job *j = jobs[i];
            b->row[k] = &j->rows[q];
            b->job[k] = j;
            int L = j->prompt_len[j->rows[q].prompt];
            b->P = L > b->P ? L : b->P;
            b->N = j->max_tokens > b->N ? j->max_tokens : b->N;
        }
    b->tok = xcalloc((size_t)R * b->P, sizeof(int));
    b->mask = xcalloc((size_t)R * b->P, 1);
    b->next = xcalloc(R, sizeof(int));
    b->live = xmalloc(R);
    memset(b->live, 1, R);
    for (int k = 0; k < R; k++) {
        const serve_job *j = b->job[k];
        int L = j->prompt_len[b->row[k]->prompt], pad = b->P - L;
        memcpy(b->tok + (size_t)k * b->P + pad, j->prompt_ids[b->row[k]->prompt],
               (size_t)L * sizeof(int));
        memset(b->mask + (size_t)k * b->P + pad, 1, L);
    }
}

static void batch_free(batch_rows *b) {
    free(b->row), free(b->job), free(b->tok), free(b->mask), free(b->next), free(b->live);
}

// Rows of cancelled jobs (their client went away) stop; jobs whose rows all
// ended are finished. Returns the number of rows still live.
static int batch_settle(serve_server *s, serve_job **jobs, int nj, batch_rows *b) {
    pthread_mutex_lock(&s->mu);
    for (int k = 0; k < b->R; k++)
        if (b->job[k]->cancelled) b->row[k]->done = 1;
    pthread_mutex_unlock(&s->mu);
    int live = 0;
    for (int k = 0; k < b->R; k++) {
        b->live[k] = !b->row[k]->done;
        live += b->live[k];
        if (!b->live[k]) b->next[k] = 0;
    }
    for (int i = 0; i < nj; i++) {
        serve_job *j = jobs[i];
        int all = 1;
        for (int q = 0; q < j->n_rows; q++) all &= j->rows[q].done;
        if (all && !j->done) job_finish(s, j);
    }
    return live;
}

static void run_batch(serve_server *s, serve_job **jobs, int nj) {
    rlhf_model *m = s->m;
    int V = m->cfg.vocab_size;
    batch_rows b;
    batch_layout(jobs, nj, &b);
    double t0 = time_now();
    pthread_mutex_lock(&s->mu);
    s->batches++;
    s->rows += b.R;
    s->hist[b.R < SERVE_HIST_MAX ? b.R : SERVE_HIST_MAX]++;
    for (int i = 0; i < nj; i++) {
        jobs[i]->batch_size = b.R;
        jobs[i]->started = 1;
        pthread_cond_broadcast(&jobs[i]->cv);
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < nj; i++)
        if (jobs[i]->stream && jobs[i]->kind == JOB_CHAT) serve_stream_start(s, jobs[i]);
    rlhf_kv_cache *kv = kv_cache_create(&m->cfg, b.R, b.P + b.N);
    float *logits = xmalloc((size_t)b.R * V * sizeof(float));
    float *lp = xmalloc((size_t)V * sizeof(float));
    rlhf_err err;
    int rc = model_forward_cached(m, kv, b.tok, b.mask, b.P, logits, &err);
    while (rc == 0) {
        for (int k = 0; k < b.R; k++) {
            if (!b.live[k]) continue;
            b.next[k] = row_step(s, b.job[k], b.row[k], logits + (size_t)k * V, lp);
            row_publish(s, b.job[k], b.row[k]);
        }
        if (batch_settle(s, jobs, nj, &b) == 0) break;
        rc = model_forward_cached(m, kv, b.next, b.live, 1, logits, &err);
    }
    if (rc) batch_fail(s, jobs, nj, err.msg);
    pthread_mutex_lock(&s->mu);
    s->busy_s += time_now() - t0;
    for (int i = 0; i < nj; i++) serve_job_release(s, jobs[i]);
    pthread_mutex_unlock(&s->mu);
    kv_cache_free(kv);
    free(logits);
    free(lp);
    batch_free(&b);
}

// Takes the waiting jobs (whole ones, up to max_batch_size rows; always at
// least one), under s->mu. Jobs cancelled while waiting are dropped.
static int take_jobs(serve_server *s, serve_job **jobs) {
    int nj = 0, rows = 0;
    while (s->head) {
        serve_job *j = s->head;
        if (!j->cancelled && rows > 0 && rows + j->n_rows > s->cfg.max_batch_size) break;
        s->head = j->next;
        if (!s->head) s->tail = NULL;
        if (j->cancelled) {
            j->done = 1;
            pthread_cond_broadcast(&j->cv);
            serve_job_release(s, j);
            continue;
        }
        jobs[nj++] = j;
        rows += j->n_rows;
    }
    return nj;
}

// Stopping: queued jobs that will not run end with a 503.
static void fail_queued(serve_server *s) {
    serve_error e;
    serve_fail(&e, 503, NULL, "server_shutting_down", "the server is shutting down");
    char *body = serve_error_body(&e);
    while (s->head) {
        serve_job *j = s->head;
        s->head = j->next;
        if (j->stream)
            serve_job_append(j, "data: [DONE]\n\n", 14);
        else
            serve_job_append(j, body, strlen(body));
        j->failed = j->done = j->started = 1;
        pthread_cond_broadcast(&j->cv);
        serve_job_release(s, j);
    }
    s->tail = NULL;
    free(body);
}

// Rows waiting in the queue (under s->mu).
static int queued_rows(const serve_server *s) {
    int rows = 0;
    for (const serve_job *j = s->head; j; j = j->next) rows += j->n_rows;
    return rows;
}

// Before a batch that is not full, waits up to --batch_wait_ms for more
// requests (under s->mu): clients that send again as soon as they are answered
// arrive a moment after the batch that answered them ends, and would otherwise
// wait out a whole batch.
static void gather(serve_server *s) {
    if (s->cfg.batch_wait_ms <= 0) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (long)s->cfg.batch_wait_ms * 1000000L;
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    while (!s->stopping && queued_rows(s) < s->cfg.max_batch_size)
        if (pthread_cond_timedwait(&s->work_cv, &s->mu, &until)) break;
}

void *serve_worker_main(void *arg) {
    serve_server *s = arg;
#ifdef _OPENMP
    if (s->cfg.threads > 0) omp_set_num_threads(s->cfg.threads);
#endif
    serve_job **jobs = xmalloc((size_t)s->cfg.max_batch_size * sizeof *jobs);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->work_cv, &s->mu);
        if (s->stopping) break;
        gather(s);
        int nj = take_jobs(s, jobs);
        if (nj == 0) continue;
        pthread_mutex_unlock(&s->mu);
        run_batch(s, jobs, nj);
        pthread_mutex_lock(&s->mu);
    }
    fail_queued(s);
    pthread_mutex_unlock(&s->mu);
    free(jobs);
    return NULL;
}
