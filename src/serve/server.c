// serve/server: `rlhf serve`'s setup and HTTP side, on Debian's libmicrohttpd
// (GNU libmicrohttpd: a small, maintained C server library with chunked
// responses, connection limits and a clean stop; hand-written HTTP is not the
// product here).
//
// Threading: MHD_USE_THREAD_PER_CONNECTION with its internal listening thread.
// A request's thread parses and validates the body, queues the job for the one
// generation worker (sched.c) and then simply blocks: on the job's condition
// variable until the body is ready, or, streaming, inside the response's
// content callback until the next events are. With one thread per connection
// that blocking costs nothing to anyone else, whereas in MHD's event-loop modes
// a callback with nothing to send must suspend and resume the connection. The
// model runs on the worker only, so connections never touch it; a few dozen
// idle threads are cheap beside a batch of generation. Connections are capped
// (MHD_OPTION_CONNECTION_LIMIT) so that load cannot make threads without end.
//
// SIGINT/SIGTERM are blocked in every thread and taken by sigwait in a thread
// of their own: the server then refuses new work (503), lets the running batch finish,
// ends queued requests with 503, and closes its connections.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/load.h"
#include "serve/serve_internal.h"
#include "tok/chat.h"

void serve_config_default(serve_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8000;
    c->max_batch_size = 32;
    c->max_tokens = 256;
    c->batch_wait_ms = 5;
    c->max_body_bytes = 1 << 20;
    c->reward_batch_size = 32;
    c->seed = 1;
}

#ifndef RLHF_HAVE_MHD

int serve_run(const serve_config *c, rlhf_err *err) {
    (void)c;
    return rlhf_fail(err, "built without libmicrohttpd (install libmicrohttpd-dev and rebuild)");
}

#else

#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>

// What a connection collects: its body, and its job once queued.
typedef struct {
    char *body;
    size_t len, cap;
    int too_large;
    serve_job *job;
} conn_state;

// A streaming response reads its job's events.
typedef struct {
    serve_server *s;
    serve_job *job;
} stream_reader;

static enum MHD_Result send_body(struct MHD_Connection *c, int status, const char *type,
                                 const char *body, int batch) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    if (batch > 0) {
        char b[16];
        snprintf(b, sizeof b, "%d", batch);
        MHD_add_response_header(r, "X-Batch-Size", b);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, char *body) {
    enum MHD_Result ret = send_body(c, status, "application/json", body, 0);
    free(body);
    return ret;
}

static enum MHD_Result send_error(serve_server *s, struct MHD_Connection *c, const serve_error *e) {
    pthread_mutex_lock(&s->mu);
    s->errors++;
    pthread_mutex_unlock(&s->mu);
    return send_json(c, e->status, serve_error_body(e));
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_reader *sr = cls;
    serve_job *j = sr->job;
    pthread_mutex_lock(&sr->s->mu);
    while (j->out_read == j->out_len && !j->done) pthread_cond_wait(&j->cv, &sr->s->mu);
    size_t n = j->out_len - j->out_read;
    if (n > max) n = max;
    if (n) memcpy(buf, j->out + j->out_read, n);
    j->out_read += n;
    pthread_mutex_unlock(&sr->s->mu);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls) {
    stream_reader *sr = cls;
    pthread_mutex_lock(&sr->s->mu);
    if (!sr->job->done) sr->job->cancelled = 1;
    serve_job_release(sr->s, sr->job);
    pthread_mutex_unlock(&sr->s->mu);
    free(sr);
}

// POST /v1/completions and /v1/chat/completions.
static enum MHD_Result answer_generation(serve_server *s, struct MHD_Connection *c, conn_state *st,
                                         job_kind kind) {
    serve_error e;
    serve_job *j = serve_parse_completion(s, st->body ? st->body : "", st->len, kind, &e);
    if (!j) return send_error(s, c, &e);
    if (serve_submit(s, j)) {
        serve_fail(&e, 503, NULL, "server_shutting_down", "the server is shutting down");
        pthread_mutex_lock(&s->mu);
        serve_job_release(s, j);
        pthread_mutex_unlock(&s->mu);
        return send_error(s, c, &e);
    }
    st->job = j;
    pthread_mutex_lock(&s->mu);
    if (!j->stream) {
        while (!j->done) pthread_cond_wait(&j->cv, &s->mu);
        int status = !j->failed ? 200 : j->out && strstr(j->out, "shutting_down") ? 503 : 500;
        char *body = j->out;
        j->out = NULL;
        int batch = j->batch_size;
        pthread_mutex_unlock(&s->mu);
        enum MHD_Result ret = send_body(c, status, "application/json", body ? body : "{}", batch);
        free(body);
        return ret;
    }
    while (!j->started) pthread_cond_wait(&j->cv, &s->mu);
    j->refs++; // the response's
    int batch = j->batch_size;
    pthread_mutex_unlock(&s->mu);
    stream_reader *sr = xmalloc(sizeof *sr);
    *sr = (stream_reader){s, j};
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sr, stream_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    char b[16];
    snprintf(b, sizeof b, "%d", batch);
    MHD_add_response_header(r, "X-Batch-Size", b);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

// The routes: path, method, what answers.
enum { R_MODELS, R_COMPLETIONS, R_CHAT, R_STATS, R_HEALTH, R_REWARD, N_ROUTES };
static const struct {
    const char *path, *method;
} routes[N_ROUTES] = {
    {"/v1/models", "GET"}, {"/v1/completions", "POST"}, {"/v1/chat/completions", "POST"},
    {"/v1/stats", "GET"},  {"/health", "GET"},          {"/get_reward", "POST"},
};

static enum MHD_Result route(serve_server *s, struct MHD_Connection *c, const char *url,
                             const char *method, conn_state *st) {
    serve_error e;
    int k = 0;
    while (k < N_ROUTES && strcmp(url, routes[k].path)) k++;
    pthread_mutex_lock(&s->mu);
    s->requests++;
    pthread_mutex_unlock(&s->mu);
    if (k == N_ROUTES) {
        serve_fail(&e, 404, NULL, "not_found", "no such endpoint: %s %s", method, url);
        return send_error(s, c, &e);
    }
    if (strcmp(method, routes[k].method)) {
        serve_fail(&e, 405, NULL, "method_not_allowed", "%s takes %s, not %s", url,
                   routes[k].method, method);
        return send_error(s, c, &e);
    }
    if (st->too_large) {
        serve_fail(&e, 413, NULL, "request_too_large",
                   "the request body is over %zu bytes (--max_body_bytes)", s->cfg.max_body_bytes);
        return send_error(s, c, &e);
    }
    switch (k) {
    case R_MODELS:
        return send_json(c, 200, serve_models_body(s));
    case R_STATS:
        return send_json(c, 200, serve_stats_body(s));
    case R_HEALTH:
        return send_body(c, 200, "application/json", "{\"status\":\"ok\"}", 0);
    case R_COMPLETIONS:
        return answer_generation(s, c, st, JOB_COMPLETION);
    case R_CHAT:
        return answer_generation(s, c, st, JOB_CHAT);
    default: {
        char *body = serve_reward_body(s, st->body ? st->body : "", st->len, &e);
        return body ? send_json(c, 200, body) : send_error(s, c, &e);
    }
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls) {
    (void)version;
    serve_server *s = cls;
    conn_state *st = *con_cls;
    if (!st) { // headers only so far: refuse a declared oversized body at once
        st = xcalloc(1, sizeof *st);
        *con_cls = st;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body_bytes) {
            st->too_large = 1;
            return route(s, c, url, method, st);
        }
        return MHD_YES;
    }
    if (*data_size) {
        if (st->len + *data_size > s->cfg.max_body_bytes) st->too_large = 1;
        if (!st->too_large) {
            if (st->len + *data_size + 1 > st->cap) {
                st->cap = 2 * (st->len + *data_size) + 1;
                st->body = xrealloc(st->body, st->cap);
            }
            memcpy(st->body + st->len, data, *data_size);
            st->len += *data_size;
            st->body[st->len] = '\0';
        }
        *data_size = 0;
        return MHD_YES;
    }
    return route(s, c, url, method, st);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c, (void)toe;
    serve_server *s = cls;
    conn_state *st = *con_cls;
    if (!st) return;
    if (st->job) {
        pthread_mutex_lock(&s->mu);
        if (!st->job->done) st->job->cancelled = 1;
        serve_job_release(s, st->job);
        pthread_mutex_unlock(&s->mu);
    }
    free(st->body);
    free(st);
    *con_cls = NULL;
}

// Loads the generation model and tokenizer, the chat rules, the reward model.
static int load_models(serve_server *s, rlhf_err *err) {
    const serve_config *c = &s->cfg;
    if (c->chat_template && !chat_template_known(c->chat_template))
        return rlhf_fail(err, "--chat_template: unknown template \"%s\" (known: %s)",
                         c->chat_template, chat_template_list());
    if (c->model) {
        if (model_load_any(c->model, c->seed, &s->m, err)) return rlhf_fail_ctx(err, "--model");
        if (model_tokenizer(s->m, c->tokenizer, &s->t, err)) return -1;
        s->add_bos = tok_resolve_add_bos(s->t, -1);
        if (chat_stops_for(NULL, s->t, &s->plain, err) ||
            chat_stops_for(c->chat_template, s->t, &s->chat, err))
            return -1;
    }
    if (c->reward_model) {
        reward_set_opts o;
        reward_set_opts_default(&o);
        o.batch_size = c->reward_batch_size;
        if (reward_set_add(&s->rs, "rm", c->reward_model, 1.0f, err) ||
            reward_set_open(&s->rs, &o, err))
            return rlhf_fail_ctx(err, "--reward_model");
        s->has_rm = 1;
    }
    s->name = c->served_name ? c->served_name : c->model ? c->model : c->reward_model;
    return 0;
}

// The address to bind: host as IPv4 or IPv6 text, or a name (getaddrinfo).
static int resolve(const char *host, int port, struct sockaddr_storage *ss, int *v6,
                   rlhf_err *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    int rc = getaddrinfo(host, p, &hints, &ai);
    if (rc || !ai) return rlhf_fail(err, "--host %s: %s", host, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return 0;
}

static struct MHD_Daemon *start_http(serve_server *s, rlhf_err *err) {
    struct sockaddr_storage ss;
    int v6 = 0;
    if (resolve(s->cfg.host, s->cfg.port, &ss, &v6, err)) return NULL;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT, 512u,
        MHD_OPTION_CONNECTION_TIMEOUT, 600u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 256u, MHD_OPTION_END);
    if (!d)
        rlhf_fail(err, "cannot listen on %s:%d (in use, or not an address of this machine)",
                  s->cfg.host, s->cfg.port);
    return d;
}

static void server_free(serve_server *s) {
    model_free(s->m);
    tok_free(s->t);
    reward_set_free(&s->rs);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->rm_mu);
    pthread_cond_destroy(&s->work_cv);
}

// The signal thread: waits for SIGINT or SIGTERM (blocked everywhere else) and
// tells the worker to stop.
typedef struct {
    serve_server *s;
    sigset_t set;
} signal_waiter;

static void *signal_main(void *arg) {
    signal_waiter *w = arg;
    int sig = 0;
    sigwait(&w->set, &sig);
    fprintf(stderr, "rlhf serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&w->s->mu);
    w->s->stopping = 1;
    pthread_cond_broadcast(&w->s->work_cv);
    pthread_mutex_unlock(&w->s->mu);
    return NULL;
}

// The generation worker runs on the calling (main) thread, so that what the
// model's kernels keep per thread lives as long as the process.
int serve_run(const serve_config *c, rlhf_err *err) {
    if (!c->model && !c->reward_model)
        return rlhf_fail(err, "give --model (generation endpoints), --reward_model (/get_reward), "
                              "or both");
    serve_server s;
    memset(&s, 0, sizeof s);
    s.cfg = *c;
    s.started_at = time_now();
    s.created = (long)time(NULL);
    pthread_mutex_init(&s.mu, NULL);
    pthread_mutex_init(&s.rm_mu, NULL);
    pthread_cond_init(&s.work_cv, NULL);
    signal_waiter w = {.s = &s};
    sigemptyset(&w.set);
    sigaddset(&w.set, SIGINT);
    sigaddset(&w.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &w.set, NULL); // every thread made from here on inherits it
    struct MHD_Daemon *d = NULL;
    if (load_models(&s, err) || !(d = start_http(&s, err))) {
        server_free(&s);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? info->port : c->port, v6 = strchr(c->host, ':') != NULL;
    printf("listening on http://%s%s%s:%d\n", v6 ? "[" : "", c->host, v6 ? "]" : "", port);
    fflush(stdout);
    fprintf(stderr, "rlhf serve: %s%s%s; max batch %d sequences; SIGINT/SIGTERM stops\n",
            s.m ? "generation with " : "", s.m ? s.name : "",
            s.has_rm ? (s.m ? ", rewards with --reward_model" : "rewards with --reward_model") : "",
            c->max_batch_size);
    pthread_t sig_thread;
    pthread_create(&sig_thread, NULL, signal_main, &w);
    serve_worker_main(&s); // until stopping
    pthread_join(sig_thread, NULL);
    MHD_stop_daemon(d);
    server_free(&s);
    return 0;
}

#endif
