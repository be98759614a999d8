// serve/request: the bodies of POST /v1/completions and /v1/chat/completions
// become jobs: prompts tokenized as `rlhf generate` and `rlhf chat` tokenize
// them, one row per (prompt, choice), each with its sampling options and seed.
// Every field is checked for its type and range before anything is queued; a
// bad field is a 400 naming it (OpenAI's "param"), a prompt that leaves no room
// for the completion in the model's context a 400 "context_length_exceeded".
// Unknown fields are ignored, as vLLM and llama.cpp's server do.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/json.h"
#include "serve/serve_internal.h"
#include "tok/chat.h"

int serve_fail(serve_error *e, int status, const char *param, const char *code, const char *fmt,
               ...) {
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s",
             status >= 500 ? "server_error"
             : status == 404 && !strcmp(code ? code : "", "model_not_found")
                 ? "invalid_request_error"
             : status == 404 ? "not_found_error"
                             : "invalid_request_error");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

// A request body as a JSON object: UTF-8 text, no \\u0000 (cJSON would cut a
// string there), an object. NULL + e otherwise.
cJSON *serve_parse_object(const char *body, size_t len, serve_error *e) {
    char where[128];
    if (!serve_utf8_valid(body, len)) {
        serve_fail(e, 400, NULL, "invalid_json", "the body is not UTF-8 text");
        return NULL;
    }
    if (json_find_nul(body, len, where, sizeof where)) {
        serve_fail(e, 400, NULL, "invalid_value", "%s holds the escape \\u0000", where);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(root)) {
        serve_fail(e, 400, NULL, "invalid_json", "the body is not a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

void serve_job_free(serve_job *j) {
    if (!j) return;
    for (int i = 0; i < j->n_prompts; i++) free(j->prompt_ids[i]);
    free(j->prompt_ids);
    free(j->prompt_len);
    for (int i = 0; i < j->n_rows; i++) {
        serve_row *r = &j->rows[i];
        free(r->ids), free(r->logp), free(r->top_ids), free(r->top_lp), free(r->text);
    }
    free(j->rows);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->out);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void serve_job_release(serve_server *s, serve_job *j) {
    (void)s;
    if (--j->refs == 0) serve_job_free(j);
}

// A number field: absent or null keeps *out. integer: must be whole.
static int get_number(const cJSON *root, const char *name, double lo, double hi, int integer,
                      double *out, serve_error *e) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!x || cJSON_IsNull(x)) return 0;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return serve_fail(e, 400, name, "invalid_type", "'%s' must be a number", name);
    double v = x->valuedouble;
    if (integer && v != floor(v))
        return serve_fail(e, 400, name, "invalid_type", "'%s' must be an integer (got %g)", name,
                          v);
    if (v < lo || v > hi)
        return serve_fail(e, 400, name, "invalid_value", "'%s' must be in [%g, %g] (got %g)", name,
                          lo, hi, v);
    *out = v;
    return 0;
}

static int get_bool(const cJSON *root, const char *name, int *out, serve_error *e) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!x || cJSON_IsNull(x)) return 0;
    if (!cJSON_IsBool(x))
        return serve_fail(e, 400, name, "invalid_type", "'%s' must be true or false", name);
    *out = cJSON_IsTrue(x);
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = xmalloc(n);
    memcpy(c, s, n);
    return c;
}

// "stop": a string or a list of up to 4 non-empty strings.
static int get_stop(const cJSON *root, serve_job *j, serve_error *e) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!x || cJSON_IsNull(x)) return 0;
    if (cJSON_IsString(x)) {
        if (!x->valuestring[0])
            return serve_fail(e, 400, "stop", "invalid_value", "'stop' is empty");
        j->stop[j->n_stop++] = dup_str(x->valuestring);
        return 0;
    }
    int n = cJSON_IsArray(x) ? cJSON_GetArraySize(x) : -1;
    if (n < 0 || n > SERVE_MAX_STOP)
        return serve_fail(e, 400, "stop", "invalid_type",
                          "'stop' must be a string or a list of at most %d strings",
                          SERVE_MAX_STOP);
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_GetArrayItem(x, i);
        if (!cJSON_IsString(s) || !s->valuestring[0])
            return serve_fail(e, 400, "stop", "invalid_type",
                              "'stop'[%d] must be a non-empty string", i);
        j->stop[j->n_stop++] = dup_str(s->valuestring);
    }
    return 0;
}

// Adds a prompt's ids (taking ownership), BOS first when the tokenizer wants it;
// an empty prompt becomes [BOS] as in `rlhf generate`.
static int add_prompt(serve_server *s, serve_job *j, int *ids, int n, const char *param,
                      serve_error *e) {
    if (s->add_bos) tok_prepend_bos(s->t, &ids, &n);
    if (n == 0 && tok_bos(s->t) >= 0) {
        ids = xrealloc(ids, sizeof(int));
        ids[0] = tok_bos(s->t);
        n = 1;
    }
    j->prompt_ids[j->n_prompts] = ids;
    j->prompt_len[j->n_prompts++] = n;
    if (n == 0)
        return serve_fail(e, 400, param, "invalid_value",
                          "the prompt is empty and the tokenizer has no BOS token to start from");
    return 0;
}

static int encode_text(serve_server *s, serve_job *j, const char *text, const char *param,
                       serve_error *e) {
    int *ids = NULL, n = 0;
    rlhf_err err;
    if (tok_encode(s->t, text, strlen(text), &ids, &n, 1, &err)) {
        free(ids);
        return serve_fail(e, 400, param, "invalid_value", "%s", err.msg);
    }
    return add_prompt(s, j, ids, n, param, e);
}

// "prompt": a string or a non-empty list of strings.
static int parse_prompts(serve_server *s, const cJSON *root, serve_job *j, serve_error *e) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p)
        return serve_fail(e, 400, "prompt", "missing_required_parameter", "'prompt' is required");
    int n = cJSON_IsString(p) ? 1 : cJSON_IsArray(p) ? cJSON_GetArraySize(p) : -1;
    if (n <= 0)
        return serve_fail(e, 400, "prompt", "invalid_type",
                          "'prompt' must be a string or a non-empty list of strings");
    if (n > s->cfg.max_batch_size)
        return serve_fail(e, 400, "prompt", "invalid_value",
                          "%d prompts: this server batches at most %d sequences (--max_batch_size)",
                          n, s->cfg.max_batch_size);
    j->prompt_ids = xcalloc(n, sizeof(int *));
    j->prompt_len = xcalloc(n, sizeof(int));
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_IsString(p) ? p : cJSON_GetArrayItem(p, i);
        if (!cJSON_IsString(x))
            return serve_fail(e, 400, "prompt", "invalid_type", "'prompt'[%d] must be a string", i);
        if (encode_text(s, j, x->valuestring, "prompt", e)) return -1;
    }
    return 0;
}

// A message's content: a string, or a list of {"type": "text", "text": ...} parts
// (joined). Returns malloc'd text or NULL + e.
static char *message_content(const cJSON *c, int i, serve_error *e) {
    if (cJSON_IsString(c)) return dup_str(c->valuestring);
    if (!cJSON_IsArray(c)) {
        serve_fail(e, 400, "messages", "invalid_type",
                   "'messages'[%d].content must be a string or a list of text parts", i);
        return NULL;
    }
    size_t len = 0;
    char *out = xcalloc(1, 1);
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) {
            free(out);
            serve_fail(e, 400, "messages", "invalid_value",
                       "'messages'[%d].content: only {\"type\": \"text\", \"text\": ...} parts are "
                       "supported",
                       i);
            return NULL;
        }
        size_t k = strlen(text->valuestring);
        out = xrealloc(out, len + k + 1);
        memcpy(out + len, text->valuestring, k + 1);
        len += k;
    }
    return out;
}

// "messages": rendered with the server's chat template and its generation prompt.
static int parse_messages(serve_server *s, const cJSON *root, serve_job *j, serve_error *e) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
    int n = cJSON_IsArray(ms) ? cJSON_GetArraySize(ms) : -1;
    if (n <= 0)
        return serve_fail(e, 400, "messages", ms ? "invalid_type" : "missing_required_parameter",
                          "'messages' must be a non-empty list of {\"role\", \"content\"}");
    chat_message *m = xcalloc(n, sizeof *m);
    int rc = 0, got = 0;
    for (int i = 0; i < n && rc == 0; i++, got++) {
        const cJSON *x = cJSON_GetArrayItem(ms, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(x, "role");
        int r = cJSON_IsString(role) ? chat_role_from_name(role->valuestring) : -1;
        if (r < 0) {
            rc = serve_fail(e, 400, "messages", "invalid_value",
                            "'messages'[%d].role must be \"system\", \"user\" or \"assistant\"", i);
            break;
        }
        char *content = message_content(cJSON_GetObjectItemCaseSensitive(x, "content"), i, e);
        if (!content) {
            rc = -1;
            break;
        }
        m[i] = (chat_message){(chat_role)r, content};
    }
    if (rc == 0) {
        chat_text ct;
        rlhf_err err;
        int *ids = NULL, k = 0;
        j->prompt_ids = xcalloc(1, sizeof(int *));
        j->prompt_len = xcalloc(1, sizeof(int));
        if (chat_render(s->cfg.chat_template, m, n, 1, &ct, &err) ||
            chat_encode(s->t, &ct, 0, ct.n_seg, 0, &ids, NULL, &k, &err)) {
            free(ids);
            rc = serve_fail(e, 400, "messages", "invalid_value", "%s", err.msg);
        } else {
            rc = add_prompt(s, j, ids, k, "messages", e);
        }
        chat_text_free(&ct);
    }
    for (int i = 0; i < got; i++) free((char *)m[i].content);
    free(m);
    return rc;
}

// "logprobs": completions take an integer (top alternatives, 0..5), chat a
// boolean with "top_logprobs".
static int parse_logprobs(const cJSON *root, serve_job *j, serve_error *e) {
    double v = -1;
    if (j->kind == JOB_COMPLETION) {
        if (get_number(root, "logprobs", 0, SERVE_MAX_TOP_LOGPROBS, 1, &v, e)) return -1;
        j->logprobs = (int)v;
        return 0;
    }
    int on = 0;
    double top = 0;
    if (get_bool(root, "logprobs", &on, e) ||
        get_number(root, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, 1, &top, e))
        return -1;
    if (!on && cJSON_GetObjectItemCaseSensitive(root, "top_logprobs") &&
        !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "top_logprobs")))
        return serve_fail(e, 400, "top_logprobs", "invalid_value",
                          "'top_logprobs' needs \"logprobs\": true");
    j->logprobs = on ? (int)top : -1;
    return 0;
}

// The sampling fields, by OpenAI's names (top_k is an extension, as in vLLM).
typedef struct {
    double max_tokens, temperature, top_p, top_k, n, seed;
    int has_seed;
} sampling;

static int parse_sampling(serve_server *s, const cJSON *root, serve_job *j, sampling *p,
                          serve_error *e) {
    int maxT = s->m->cfg.max_seq_len;
    *p = (sampling){.max_tokens = -1, .temperature = 1, .top_p = 1, .top_k = 0, .n = 1};
    const char *mt = "max_tokens";
    if (j->kind == JOB_CHAT && cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens"))
        mt = "max_completion_tokens";
    if (get_number(root, mt, 1, maxT, 1, &p->max_tokens, e) ||
        get_number(root, "temperature", 0, 2, 0, &p->temperature, e) ||
        get_number(root, "top_p", 0, 1, 0, &p->top_p, e) ||
        get_number(root, "top_k", -1, 1 << 30, 1, &p->top_k, e) ||
        get_number(root, "n", 1, s->cfg.max_batch_size, 1, &p->n, e) ||
        get_number(root, "seed", -9.2e18, 9.2e18, 1, &p->seed, e) ||
        get_bool(root, "stream", &j->stream, e) || get_stop(root, j, e) ||
        parse_logprobs(root, j, e))
        return -1;
    if (!(p->top_p > 0))
        return serve_fail(e, 400, "top_p", "invalid_value", "'top_p' must be in (0, 1]");
    if (p->top_k < 0) p->top_k = 0; // vLLM's -1 = off
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    p->has_seed = seed && !cJSON_IsNull(seed);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return serve_fail(e, 400, "stream_options", "invalid_type",
                              "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &j->include_usage, e)) return -1;
    }
    return 0;
}

// Checks the context and sizes the rows: each prompt's choices, seeded.
static int make_rows(serve_server *s, serve_job *j, const sampling *p, uint64_t seed,
                     serve_error *e) {
    int maxT = s->m->cfg.max_seq_len, longest = 0;
    for (int i = 0; i < j->n_prompts; i++)
        if (j->prompt_len[i] > longest) longest = j->prompt_len[i];
    const char *param = j->kind == JOB_CHAT ? "messages" : "prompt";
    if (p->max_tokens < 0) { // the default, cut to what the context leaves
        j->max_tokens = maxT - longest < s->cfg.max_tokens ? maxT - longest : s->cfg.max_tokens;
        if (j->max_tokens < 1)
            return serve_fail(e, 400, param, "context_length_exceeded",
                              "the prompt has %d tokens: no room left in the model's context of "
                              "%d tokens",
                              longest, maxT);
    } else {
        j->max_tokens = (int)p->max_tokens;
        if (longest + j->max_tokens > maxT)
            return serve_fail(e, 400, param, "context_length_exceeded",
                              "this model's maximum context length is %d tokens; the prompt has "
                              "%d and max_tokens asks for %d",
                              maxT, longest, j->max_tokens);
    }
    j->n = (int)p->n;
    if ((long)j->n_prompts * j->n > s->cfg.max_batch_size)
        return serve_fail(e, 400, "n", "invalid_value",
                          "%d prompts x n=%d sequences: this server batches at most %d "
                          "(--max_batch_size)",
                          j->n_prompts, j->n, s->cfg.max_batch_size);
    j->n_rows = j->n_prompts * j->n;
    j->rows = xcalloc(j->n_rows, sizeof *j->rows);
    int top = j->logprobs > 0 ? j->logprobs : 0;
    for (int i = 0; i < j->n_rows; i++) {
        serve_row *r = &j->rows[i];
        r->prompt = i / j->n;
        r->index = i;
        r->opts = (rlhf_gen_opts){.max_new_tokens = j->max_tokens,
                                  .temperature = (float)p->temperature,
                                  .top_k = (int)p->top_k,
                                  .top_p = (float)p->top_p,
                                  .eos_id = -1};
        rng_seed(&r->rng, seed + (uint64_t)i);
        r->ids = xmalloc((size_t)j->max_tokens * sizeof(int));
        if (j->logprobs >= 0) r->logp = xmalloc((size_t)j->max_tokens * sizeof(float));
        if (top) {
            r->top_ids = xmalloc((size_t)j->max_tokens * top * sizeof(int));
            r->top_lp = xmalloc((size_t)j->max_tokens * top * sizeof(float));
        }
    }
    return 0;
}

serve_job *serve_parse_completion(serve_server *s, const char *body, size_t len, job_kind kind,
                                  serve_error *e) {
    if (!s->m) {
        serve_fail(e, 404, NULL, "model_not_found",
                   "this server has no generation model (it was started with --reward_model "
                   "only; give --model)");
        return NULL;
    }
    if (kind == JOB_CHAT && !s->cfg.chat_template) {
        serve_fail(e, 400, "messages", "chat_template_missing",
                   "this server was started without --chat_template (%s): use /v1/completions, "
                   "or restart it with the template the model was trained with",
                   chat_template_list());
        return NULL;
    }
    cJSON *root = serve_parse_object(body, len, e);
    if (!root) return NULL;
    serve_job *j = xcalloc(1, sizeof *j);
    j->kind = kind;
    j->refs = 1;
    j->logprobs = -1;
    pthread_cond_init(&j->cv, NULL);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    sampling p = {0};
    int rc = 0;
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model))
        rc = serve_fail(e, 400, "model", "invalid_type", "'model' must be a string");
    else if (cJSON_IsString(model) && strcmp(model->valuestring, s->name))
        rc = serve_fail(e, 404, "model", "model_not_found",
                        "the model '%s' does not exist (this server serves '%s')",
                        model->valuestring, s->name);
    if (rc == 0) rc = parse_sampling(s, root, j, &p, e);
    if (rc == 0)
        rc = kind == JOB_CHAT ? parse_messages(s, root, j, e) : parse_prompts(s, root, j, e);
    pthread_mutex_lock(&s->mu);
    uint64_t seed =
        p.has_seed ? (uint64_t)(int64_t)p.seed : s->cfg.seed + 1000003u * s->next_seed++;
    long id = s->next_id++;
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) rc = make_rows(s, j, &p, seed, e);
    cJSON_Delete(root);
    if (rc) {
        serve_job_free(j);
        return NULL;
    }
    j->stops = kind == JOB_CHAT ? &s->chat : &s->plain;
    j->created = (long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-%lx%06lx", kind == JOB_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long)j->created, (unsigned long)id);
    return j;
}
