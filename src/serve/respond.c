// serve/respond: the JSON the server sends, in OpenAI's shapes (see
// docs/serve.md for the fields and where they are documented): completion and
// chat completion objects, their stream chunks as server-sent events, error
// objects, the model list, the batching statistics, and OpenRLHF's
// /get_reward answer. Text from the model can be any bytes; JSON strings must
// be UTF-8, so bytes that are not part of a valid UTF-8 sequence become U+FFFD
// (and a stream holds back a character cut by a token boundary until it is
// whole).
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "io/json.h"
#include "serve/serve_internal.h"

// Length of the valid UTF-8 sequence at s (n bytes left); 0 if invalid, -1 if
// it is a valid beginning cut short by the end.
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int k = c < 0x80                 ? 1
            : c >= 0xC2 && c <= 0xDF ? 2
            : c >= 0xE0 && c <= 0xEF ? 3
            : c >= 0xF0 && c <= 0xF4 ? 4
                                     : 0;
    if (k <= 1) return k;
    for (int i = 1; i < k; i++) {
        if ((size_t)i >= n) return -1;
        if ((s[i] & 0xC0) != 0x80) return 0;
        if (i == 1 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
                       (c == 0xED && s[1] >= 0xA0) || (c == 0xF4 && s[1] >= 0x90)))
            return 0;
    }
    return k;
}

char *serve_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    char *out = xmalloc(3 * n + 1), *o = out;
    for (size_t i = 0; i < n;) {
        int k = utf8_seq(u + i, n - i);
        if (k <= 0) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, s + i, (size_t)k);
            o += k;
            i += (size_t)k;
        }
    }
    *o = '\0';
    return out;
}

int serve_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = utf8_seq(u + i, n - i);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

size_t serve_utf8_tail(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t back = 1; back <= 3 && back <= n; back++)
        if (utf8_seq(u + n - back, back) == -1) return back;
    return 0;
}

void serve_job_append(serve_job *j, const char *s, size_t n) {
    if (j->out_len + n + 1 > j->out_cap) {
        j->out_cap = 2 * (j->out_len + n + 1) + 256;
        j->out = xrealloc(j->out, j->out_cap);
    }
    memcpy(j->out + j->out_len, s, n);
    j->out_len += n;
    j->out[j->out_len] = '\0';
    pthread_cond_broadcast(&j->cv);
}

static void add_text(cJSON *o, const char *name, const char *s, size_t n) {
    char *u = serve_utf8(s, n);
    cJSON_AddStringToObject(o, name, u);
    free(u);
}

static void add_str_or_null(cJSON *o, const char *name, const char *s) {
    if (s && s[0])
        cJSON_AddStringToObject(o, name, s);
    else
        cJSON_AddNullToObject(o, name);
}

static char *print_delete(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *serve_error_body(const serve_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type);
    add_str_or_null(err, "param", e->param);
    add_str_or_null(err, "code", e->code);
    return print_delete(root);
}

// The fields every completion object and chunk starts with.
static cJSON *object_head(serve_server *s, serve_job *j, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", s->name);
    return o;
}

static const char *finish_reason(const serve_row *r) {
    return r->finish_length ? "length" : "stop";
}

static cJSON *usage(const serve_job *j) {
    long p = 0, c = 0;
    for (int i = 0; i < j->n_prompts; i++) p += j->prompt_len[i];
    for (int i = 0; i < j->n_rows; i++) c += j->rows[i].n_ids;
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)p);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)c);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(p + c));
    return u;
}

// Appends one SSE event holding o (deleted) to j's output.
static void send_event(serve_server *s, serve_job *j, cJSON *o) {
    char *txt = print_delete(o);
    pthread_mutex_lock(&s->mu);
    serve_job_append(j, "data: ", 6);
    serve_job_append(j, txt, strlen(txt));
    serve_job_append(j, "\n\n", 2);
    pthread_mutex_unlock(&s->mu);
    free(txt);
}

static cJSON *chunk(serve_server *s, serve_job *j, cJSON **choice, int index) {
    cJSON *o = object_head(s, j, j->kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    *choice = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, *choice);
    cJSON_AddNumberToObject(*choice, "index", index);
    return o;
}

void serve_stream_start(serve_server *s, serve_job *j) {
    for (int i = 0; i < j->n_rows; i++) {
        cJSON *c, *o = chunk(s, j, &c, j->rows[i].index);
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        cJSON_AddStringToObject(d, "role", "assistant");
        cJSON_AddStringToObject(d, "content", "");
        cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddNullToObject(c, "finish_reason");
        if (j->include_usage) cJSON_AddNullToObject(o, "usage");
        send_event(s, j, o);
    }
}

void serve_stream_row(serve_server *s, serve_job *j, serve_row *r, size_t from, size_t to,
                      int final) {
    if (j->kind == JOB_COMPLETION || to > from) {
        cJSON *c, *o = chunk(s, j, &c, r->index);
        if (j->kind == JOB_CHAT)
            add_text(cJSON_AddObjectToObject(c, "delta"), "content", r->text + from, to - from);
        else
            add_text(c, "text", r->text ? r->text + from : "", to - from);
        cJSON_AddNullToObject(c, "logprobs");
        if (final && j->kind == JOB_COMPLETION)
            cJSON_AddStringToObject(c, "finish_reason", finish_reason(r));
        else
            cJSON_AddNullToObject(c, "finish_reason");
        if (j->include_usage) cJSON_AddNullToObject(o, "usage");
        send_event(s, j, o);
    }
    if (final && j->kind == JOB_CHAT) { // OpenAI ends a choice with an empty delta
        cJSON *c, *o = chunk(s, j, &c, r->index);
        cJSON_AddObjectToObject(c, "delta");
        cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", finish_reason(r));
        if (j->include_usage) cJSON_AddNullToObject(o, "usage");
        send_event(s, j, o);
    }
}

void serve_stream_end(serve_server *s, serve_job *j) {
    if (j->include_usage) {
        cJSON *o =
            object_head(s, j, j->kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion");
        cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToObject(o, "usage", usage(j));
        send_event(s, j, o);
    }
    pthread_mutex_lock(&s->mu);
    serve_job_append(j, "data: [DONE]\n\n", 14);
    pthread_mutex_unlock(&s->mu);
}

// One token's text (a piece may be part of a character: U+FFFD then).
static char *token_text(serve_server *s, int id) {
    size_t n;
    char *raw = tok_decode_ex(s->t, &id, 1, 0, &n);
    char *u = serve_utf8(raw, n);
    free(raw);
    return u;
}

static cJSON *token_bytes(const char *raw) {
    cJSON *b = cJSON_CreateArray();
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++)
        cJSON_AddItemToArray(b, cJSON_CreateNumber(*p));
    return b;
}

// Completions' legacy logprobs: tokens, token_logprobs, top_logprobs, text_offset.
static cJSON *logprobs_completion(serve_server *s, const serve_job *j, const serve_row *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = j->logprobs > 0 ? cJSON_AddArrayToObject(o, "top_logprobs") : NULL;
    if (!tops) cJSON_AddNullToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    size_t off = 0;
    for (int i = 0; i < r->n_ids; i++) {
        char *t = token_text(s, r->ids[i]);
        cJSON_AddItemToArray(toks, cJSON_CreateString(t));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(r->logp[i]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += strlen(t);
        free(t);
        if (!tops) continue;
        cJSON *alt = cJSON_CreateObject();
        for (int a = 0; a < j->logprobs; a++) {
            char *at = token_text(s, r->top_ids[(size_t)i * j->logprobs + a]);
            if (!cJSON_GetObjectItemCaseSensitive(alt, at))
                cJSON_AddNumberToObject(alt, at, r->top_lp[(size_t)i * j->logprobs + a]);
            free(at);
        }
        cJSON_AddItemToArray(tops, alt);
    }
    return o;
}

// Chat logprobs: {"content": [{"token", "logprob", "bytes", "top_logprobs"}]}.
static cJSON *logprobs_chat(serve_server *s, const serve_job *j, const serve_row *r) {
    cJSON *o = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(o, "content");
    for (int i = 0; i < r->n_ids; i++) {
        cJSON *e = cJSON_CreateObject();
        char *t = token_text(s, r->ids[i]);
        cJSON_AddStringToObject(e, "token", t);
        cJSON_AddNumberToObject(e, "logprob", r->logp[i]);
        cJSON_AddItemToObject(e, "bytes", token_bytes(t));
        free(t);
        cJSON *tops = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int a = 0; a < j->logprobs; a++) {
            cJSON *alt = cJSON_CreateObject();
            char *at = token_text(s, r->top_ids[(size_t)i * j->logprobs + a]);
            cJSON_AddStringToObject(alt, "token", at);
            cJSON_AddNumberToObject(alt, "logprob", r->top_lp[(size_t)i * j->logprobs + a]);
            cJSON_AddItemToObject(alt, "bytes", token_bytes(at));
            free(at);
            cJSON_AddItemToArray(tops, alt);
        }
        cJSON_AddItemToArray(content, e);
    }
    return o;
}

char *serve_final_body(serve_server *s, serve_job *j) {
    int chat = j->kind == JOB_CHAT;
    cJSON *o = object_head(s, j, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    for (int i = 0; i < j->n_rows; i++) {
        const serve_row *r = &j->rows[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", r->index);
        const char *txt = r->text ? r->text + r->start : "";
        size_t n = r->text ? r->end - r->start : 0;
        if (chat) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            add_text(m, "content", txt, n);
        } else {
            add_text(c, "text", txt, n);
        }
        if (j->logprobs < 0)
            cJSON_AddNullToObject(c, "logprobs");
        else
            cJSON_AddItemToObject(c, "logprobs",
                                  chat ? logprobs_chat(s, j, r) : logprobs_completion(s, j, r));
        cJSON_AddStringToObject(c, "finish_reason", finish_reason(r));
        cJSON_AddItemToArray(choices, c);
    }
    cJSON_AddItemToObject(o, "usage", usage(j));
    return print_delete(o);
}

char *serve_models_body(serve_server *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    if (s->m) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", s->name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)s->created);
        cJSON_AddStringToObject(m, "owned_by", "rlhf.c");
        cJSON_AddNumberToObject(m, "max_model_len", s->m->cfg.max_seq_len);
        cJSON_AddItemToArray(data, m);
    }
    return print_delete(o);
}

char *serve_stats_body(serve_server *s) {
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&s->mu);
    long queued = 0;
    for (serve_job *j = s->head; j; j = j->next) queued++;
    cJSON_AddNumberToObject(o, "requests", (double)s->requests);
    cJSON_AddNumberToObject(o, "errors", (double)s->errors);
    cJSON_AddNumberToObject(o, "queued", (double)queued);
    cJSON_AddNumberToObject(o, "batches", (double)s->batches);
    cJSON_AddNumberToObject(o, "sequences", (double)s->rows);
    cJSON_AddNumberToObject(o, "mean_batch_size", s->batches ? (double)s->rows / s->batches : 0);
    int maxb = 0;
    cJSON *h = cJSON_AddObjectToObject(o, "batch_size_histogram");
    for (int b = 1; b <= SERVE_HIST_MAX; b++) {
        if (!s->hist[b]) continue;
        char key[16];
        snprintf(key, sizeof key, b == SERVE_HIST_MAX ? "%d+" : "%d", b);
        cJSON_AddNumberToObject(h, key, (double)s->hist[b]);
        maxb = b;
    }
    cJSON_AddNumberToObject(o, "max_batch_size_seen", maxb);
    cJSON_AddNumberToObject(o, "max_batch_size", s->cfg.max_batch_size);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)s->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)s->completion_tokens);
    cJSON_AddNumberToObject(o, "reward_requests", (double)s->reward_requests);
    cJSON_AddNumberToObject(o, "busy_seconds", s->busy_s);
    cJSON_AddNumberToObject(o, "uptime_seconds", time_now() - s->started_at);
    pthread_mutex_unlock(&s->mu);
    return print_delete(o);
}

// A list of n strings (n < 0: any length) from field `name`; NULL + e otherwise.
static const char **string_list(const cJSON *root, const char *name, int n, serve_error *e) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, name);
    int k = cJSON_IsArray(x) ? cJSON_GetArraySize(x) : -1;
    if (k < 0 || (n < 0 && k == 0) || (n >= 0 && k != n)) {
        if (n < 0)
            serve_fail(e, 400, name, "invalid_type", "'%s' must be a non-empty list of strings",
                       name);
        else
            serve_fail(e, 400, name, "invalid_value",
                       "'%s' must be a list of %d strings, one per query", name, n);
        return NULL;
    }
    const char **out = xcalloc(k, sizeof *out);
    for (int i = 0; i < k; i++) {
        const cJSON *s = cJSON_GetArrayItem(x, i);
        if (!cJSON_IsString(s)) {
            serve_fail(e, 400, name, "invalid_type", "'%s'[%d] must be a string", name, i);
            free(out);
            return NULL;
        }
        out[i] = s->valuestring;
    }
    return out;
}

// Splits each query into prompt + completion (query = prompt ++ completion).
static int split_queries(const cJSON *root, const char **q, int n, const char ***prompts,
                         const char ***completions, serve_error *e) {
    const cJSON *px = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    *completions = xcalloc(n, sizeof **completions);
    *prompts = NULL;
    if (px && !cJSON_IsNull(px) && !(*prompts = string_list(root, "prompts", n, e))) return -1;
    if (!*prompts) { // no prompts: the whole query is scored as a completion of ""
        *prompts = xcalloc(n, sizeof **prompts);
        for (int i = 0; i < n; i++) (*prompts)[i] = "", (*completions)[i] = q[i];
        return 0;
    }
    for (int i = 0; i < n; i++) {
        size_t L = strlen((*prompts)[i]);
        if (strncmp(q[i], (*prompts)[i], L))
            return serve_fail(e, 400, "prompts", "invalid_value",
                              "'query'[%d] does not start with 'prompts'[%d] (a query is the "
                              "prompt followed by the completion)",
                              i, i);
        (*completions)[i] = q[i] + L;
    }
    return 0;
}

char *serve_reward_body(serve_server *s, const char *body, size_t len, serve_error *e) {
    if (!s->has_rm) {
        serve_fail(e, 404, NULL, "not_found",
                   "/get_reward needs a reward model: start the server with --reward_model");
        return NULL;
    }
    cJSON *root = serve_parse_object(body, len, e);
    if (!root) return NULL;
    const char **q = NULL, **prompts = NULL, **completions = NULL;
    char *out = NULL;
    q = string_list(root, "query", -1, e);
    int n = q ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "query")) : 0;
    if (q && split_queries(root, q, n, &prompts, &completions, e) == 0) {
        float *r = xmalloc((size_t)n * sizeof(float));
        rlhf_err err;
        pthread_mutex_lock(&s->rm_mu);
#ifdef _OPENMP
        if (s->cfg.threads > 0) omp_set_num_threads(s->cfg.threads);
#endif
        int rc = reward_set_score(&s->rs, prompts, completions, n, NULL, r, &err);
        pthread_mutex_unlock(&s->rm_mu);
        if (rc) {
            serve_fail(e, 500, NULL, "reward_failed", "%s", err.msg);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON *rw = cJSON_AddArrayToObject(o, "rewards"),
                  *sc = cJSON_AddArrayToObject(o, "scores");
            for (int i = 0; i < n; i++) {
                cJSON_AddItemToArray(rw, cJSON_CreateNumber(r[i]));
                cJSON_AddItemToArray(sc, cJSON_CreateNumber(r[i]));
            }
            cJSON_AddObjectToObject(o, "extra_logs");
            out = print_delete(o);
            pthread_mutex_lock(&s->mu);
            s->reward_requests++;
            pthread_mutex_unlock(&s->mu);
        }
        free(r);
    }
    free(q), free(prompts), free(completions);
    cJSON_Delete(root);
    return out;
}
