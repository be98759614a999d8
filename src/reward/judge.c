// reward/judge: the OpenAI-compatible judge client of judge.h. A call turns its
// questions (one per completion, or one or two per pair) into request bodies,
// answers what it can from the cache, sends the rest through io/http from a
// few threads, and parses every answer by the rules of judge.h.
#include "reward/judge.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "io/http.h"
#include "reward/sources.h"

// ------------------------------------------------------------------ parse --

static int word_char(int c) {
    return isalnum(c) || c == '_';
}

int judge_parse_score(const char *s, double *out) {
    if (!s) return -1;
    for (size_t i = 0; s[i]; i++) {
        if (!isdigit((unsigned char)s[i])) continue;
        if (i > 0 && isalpha((unsigned char)s[i - 1])) { // "gpt4": not a number
            while (isdigit((unsigned char)s[i + 1])) i++;
            continue;
        }
        // an optional '-' right before, digits, an optional '.' and digits (strtod
        // alone would also take "1e5", hex and "inf")
        size_t start = i > 0 && s[i - 1] == '-' ? i - 1 : i, k = i;
        while (isdigit((unsigned char)s[k])) k++;
        if (s[k] == '.' && isdigit((unsigned char)s[k + 1])) {
            k++;
            while (isdigit((unsigned char)s[k])) k++;
        }
        char buf[64];
        if (k - start >= sizeof buf) return -1;
        memcpy(buf, s + start, k - start);
        buf[k - start] = 0;
        double v = strtod(buf, NULL);
        if (!isfinite(v)) return -1;
        *out = v;
        return 0;
    }
    return -1;
}

int judge_parse_choice(const char *s, int *out) {
    if (!s) return -1;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] != 'A' && s[i] != 'B') continue;
        if ((i > 0 && word_char((unsigned char)s[i - 1])) || word_char((unsigned char)s[i + 1]))
            continue;
        *out = s[i] == 'B';
        return 0;
    }
    return -1;
}

// ------------------------------------------------------------------ cache --

typedef struct {
    uint64_t k[2]; // k[0] == k[1] == 0: empty slot
    char *answer;
} cache_slot;

struct reward_judge {
    char *url, *model, *api, *key, *cache_path;
    char *tmpl[2], *system[2]; // [0] pointwise, [1] pairwise
    int completions, max_tokens, max_retries, concurrency, both_orders, malformed_neutral;
    float neutral_score;
    double timeout_s, backoff_s;
    pthread_mutex_t mu;
    cache_slot *slots;
    size_t cap, used;
    int cache_fd;
    judge_stats st;
};

// FNV-1a over the bytes, two different 64-bit streams (the second runs a
// multiply-rotate mix), for a 128-bit key
static void hash_bytes(const void *p, size_t n, uint64_t h[2]) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h[0] = (h[0] ^ b[i]) * 0x100000001b3ULL;
        h[1] = (h[1] ^ b[i]) * 0x9E3779B97F4A7C15ULL;
        h[1] = (h[1] << 31) | (h[1] >> 33);
    }
}

static void request_key(const reward_judge *j, const char *body, uint64_t k[2]) {
    k[0] = 0xcbf29ce484222325ULL, k[1] = 0x84222325cbf29ce4ULL;
    const char *parts[4] = {j->url, j->model, j->api, body};
    for (int i = 0; i < 4; i++) hash_bytes(parts[i], strlen(parts[i]) + 1, k); // NUL separates
    if (k[0] == 0 && k[1] == 0) k[1] = 1;
}

static cache_slot *cache_find(reward_judge *j, const uint64_t k[2]) {
    if (!j->cap) return NULL;
    for (size_t i = (size_t)k[0] & (j->cap - 1);; i = (i + 1) & (j->cap - 1)) {
        cache_slot *s = &j->slots[i];
        if (s->k[0] == k[0] && s->k[1] == k[1]) return s;
        if (!s->k[0] && !s->k[1]) return NULL;
    }
}

// inserts (k, answer) unless k is there; returns 1 when it was new
static int cache_put(reward_judge *j, const uint64_t k[2], const char *answer) {
    if (cache_find(j, k)) return 0;
    if ((j->used + 1) * 2 > j->cap) {
        size_t old = j->cap, cap = old ? old * 2 : 256;
        cache_slot *prev = j->slots;
        j->slots = xcalloc(cap, sizeof(cache_slot));
        j->cap = cap, j->used = 0;
        for (size_t i = 0; i < old; i++)
            if (prev[i].answer) {
                cache_slot *s = &j->slots[(size_t)prev[i].k[0] & (cap - 1)];
                while (s->answer) s = &j->slots[(size_t)(s - j->slots + 1) & (cap - 1)];
                *s = prev[i], j->used++;
            }
        free(prev);
    }
    cache_slot *s = &j->slots[(size_t)k[0] & (j->cap - 1)];
    while (s->answer) s = &j->slots[(size_t)(s - j->slots + 1) & (j->cap - 1)];
    s->k[0] = k[0], s->k[1] = k[1];
    s->answer = strdup(answer);
    if (!s->answer) rlhf_panic(__FILE__, __LINE__, "out of memory");
    j->used++;
    return 1;
}

static void key_hex(const uint64_t k[2], char out[33]) {
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)k[0], (unsigned long long)k[1]);
}

static int hex_key(const char *s, uint64_t k[2]) {
    if (!s || strlen(s) != 32) return -1;
    for (int i = 0; i < 32; i++)
        if (!isxdigit((unsigned char)s[i])) return -1;
    char half[17];
    memcpy(half, s, 16), half[16] = 0;
    k[0] = strtoull(half, NULL, 16);
    memcpy(half, s + 16, 16);
    k[1] = strtoull(half, NULL, 16);
    return 0;
}

// one line per answer, written whole by one write(2) under O_APPEND
static int cache_append(reward_judge *j, const uint64_t k[2], const char *answer, rlhf_err *err) {
    if (j->cache_fd < 0) return 0;
    char hex[33];
    key_hex(k, hex);
    char *a = reward_json_string(answer, strlen(answer));
    size_t n = strlen(a) + 64;
    char *line = xmalloc(n);
    int len = snprintf(line, n, "{\"key\":\"%s\",\"answer\":%s}\n", hex, a);
    ssize_t w = write(j->cache_fd, line, (size_t)len);
    free(line), free(a);
    if (w != len)
        return rlhf_fail(err, "judge cache %s: cannot append (%s)", j->cache_path,
                         w < 0 ? strerror(errno) : "short write");
    return 0;
}

// Loads cache_path (if it exists) and opens it for appending. Lines that do not
// parse (a torn last line) are skipped; a last line without its newline gets one.
static int cache_load(reward_judge *j, rlhf_err *err) {
    size_t len = 0;
    rlhf_err e2;
    char *text = access(j->cache_path, F_OK) == 0 ? read_file(j->cache_path, &len, &e2) : NULL;
    if (access(j->cache_path, F_OK) == 0 && !text) return rlhf_fail(err, "judge cache: %s", e2.msg);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *o = cJSON_Parse(line);
        cJSON *ks = cJSON_GetObjectItemCaseSensitive(o, "key");
        cJSON *as = cJSON_GetObjectItemCaseSensitive(o, "answer");
        uint64_t k[2];
        if (cJSON_IsString(ks) && cJSON_IsString(as) && hex_key(ks->valuestring, k) == 0)
            cache_put(j, k, as->valuestring);
        cJSON_Delete(o);
        line = nl ? nl + 1 : line + strlen(line);
    }
    int torn = len > 0 && text[len - 1] != '\n';
    free(text);
    j->cache_fd = open(j->cache_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (j->cache_fd < 0)
        return rlhf_fail(err, "judge cache %s: cannot open for appending (%s)", j->cache_path,
                         strerror(errno));
    if (torn && write(j->cache_fd, "\n", 1) != 1)
        return rlhf_fail(err, "judge cache %s: cannot append (%s)", j->cache_path, strerror(errno));
    return 0;
}

// --------------------------------------------------------------- requests --

// the template with {name} fields replaced in one pass (values are not rescanned)
static char *fill_template(const char *tmpl, const char *const *names, const char *const *vals,
                           int n) {
    size_t cap = strlen(tmpl) + 1, len = 0;
    for (int i = 0; i < n; i++) cap += strlen(vals[i]) * 4; // any number of uses, grown below
    char *out = xmalloc(cap);
    for (const char *p = tmpl; *p;) {
        int hit = -1;
        for (int i = 0; i < n && hit < 0; i++) {
            size_t nl = strlen(names[i]);
            if (p[0] == '{' && !strncmp(p + 1, names[i], nl) && p[1 + nl] == '}') hit = i;
        }
        const char *add = hit >= 0 ? vals[hit] : p;
        size_t alen = hit >= 0 ? strlen(vals[hit]) : 1;
        if (len + alen + 1 > cap) {
            cap = (len + alen + 1) * 2;
            out = xrealloc(out, cap);
        }
        memcpy(out + len, add, alen);
        len += alen;
        p += hit >= 0 ? strlen(names[hit]) + 2 : 1;
    }
    out[len] = 0;
    return out;
}

// the JSON body of one question (kind 0 pointwise, 1 pairwise)
static char *request_body(const reward_judge *j, int kind, const char *user) {
    char *m = reward_json_string(j->model, strlen(j->model));
    char *u = reward_json_string(user, strlen(user));
    char *body;
    if (j->completions) {
        size_t n = strlen(j->system[kind]) + strlen(user) + 3;
        char *joined = xmalloc(n);
        snprintf(joined, n, "%s\n\n%s", j->system[kind], user);
        char *p = reward_json_string(joined, strlen(joined));
        size_t bn = strlen(m) + strlen(p) + 128;
        body = xmalloc(bn);
        snprintf(body, bn, "{\"model\":%s,\"prompt\":%s,\"temperature\":0,\"max_tokens\":%d}", m, p,
                 j->max_tokens);
        free(joined), free(p);
    } else {
        char *s = reward_json_string(j->system[kind], strlen(j->system[kind]));
        size_t bn = strlen(m) + strlen(s) + strlen(u) + 192;
        body = xmalloc(bn);
        snprintf(body, bn,
                 "{\"model\":%s,\"messages\":[{\"role\":\"system\",\"content\":%s},"
                 "{\"role\":\"user\",\"content\":%s}],\"temperature\":0,\"max_tokens\":%d}",
                 m, s, u, j->max_tokens);
        free(s);
    }
    free(m), free(u);
    return body;
}

// choices[0].message.content (chat) or choices[0].text (completions), malloc'd;
// NULL when the body has another shape
static char *answer_text(const char *body, int completions) {
    // cJSON_Parse records a failure's position in a global: one parse at a time
    static pthread_mutex_t parse_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&parse_mu);
    cJSON *o = cJSON_Parse(body ? body : "");
    pthread_mutex_unlock(&parse_mu);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
    cJSON *t = completions ? cJSON_GetObjectItemCaseSensitive(c0, "text")
                           : cJSON_GetObjectItemCaseSensitive(
                                 cJSON_GetObjectItemCaseSensitive(c0, "message"), "content");
    char *s = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
    cJSON_Delete(o);
    return s;
}

// the start of s, printable, for messages
static void snippet(const char *s, char *out, size_t cap) {
    size_t k = 0, i = 0;
    for (; s && s[i] && k + 4 < cap; i++) out[k++] = (s[i] >= 32 && s[i] < 127) ? s[i] : ' ';
    if (s && s[i]) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = 0;
}

static int parse_kind(int kind, const char *answer, double *v) {
    if (kind == 0) return judge_parse_score(answer, v);
    int c;
    if (judge_parse_choice(answer, &c)) return -1;
    *v = c;
    return 0;
}

// ------------------------------------------------------------------- jobs --

typedef struct {
    reward_judge *j;
    int kind, n_jobs;
    char **bodies; // (n_jobs) request bodies
    uint64_t (*keys)[2];
    double *values; // (n_jobs) parsed answers
    int next, failed;
    rlhf_err err; // the first failure
} job_batch;

// Asks one question: fresh requests until the answer parses (1 + max_retries at most).
static int ask(job_batch *b, int i, rlhf_err *err) {
    reward_judge *j = b->j;
    http_opts ho;
    http_opts_default(&ho);
    ho.timeout_s = j->timeout_s;
    ho.connect_timeout_s = j->timeout_s < 10 ? j->timeout_s : 10;
    ho.max_retries = j->max_retries;
    ho.backoff_s = j->backoff_s;
    ho.bearer = j->key;
    char last[160] = "";
    int shape = 0; // the last answer had no text where OpenAI's shape puts it
    for (int t = 0; t <= j->max_retries; t++) {
        http_response r;
        int rc = http_post_json(j->url, b->bodies[i], &ho, &r, err);
        pthread_mutex_lock(&j->mu);
        j->st.requests += r.tries > 0 ? r.tries : 1;
        pthread_mutex_unlock(&j->mu);
        if (rc) {
            http_response_free(&r);
            return rlhf_fail_ctx(err, "judge");
        }
        char *a = answer_text(r.body, j->completions);
        double v;
        int ok = a && parse_kind(b->kind, a, &v) == 0;
        snippet(a ? a : r.body, last, sizeof last);
        shape = !a;
        http_response_free(&r);
        pthread_mutex_lock(&j->mu);
        if (ok) {
            b->values[i] = v;
            rc = cache_put(j, b->keys[i], a) ? cache_append(j, b->keys[i], a, err) : 0;
        } else {
            j->st.malformed++;
        }
        pthread_mutex_unlock(&j->mu);
        free(a);
        if (ok) return rc;
    }
    if (j->malformed_neutral) {
        pthread_mutex_lock(&j->mu);
        j->st.neutral++;
        pthread_mutex_unlock(&j->mu);
        b->values[i] = b->kind == 0 ? j->neutral_score : 0.5;
        return 0;
    }
    if (shape)
        return rlhf_fail(err, "judge %s: the answer has no %s string: %s (after %d %s)", j->url,
                         j->completions ? "choices[0].text" : "choices[0].message.content", last,
                         j->max_retries + 1, j->max_retries ? "tries" : "try");
    return rlhf_fail(err, "judge %s: %s answer \"%s\" after %d %s (the rule: %s; docs/judges.md)",
                     j->url, b->kind == 0 ? "no score in the" : "no choice in the", last,
                     j->max_retries + 1, j->max_retries ? "tries" : "try",
                     b->kind == 0 ? "the first number" : "the first standalone A or B");
}

static void *worker(void *arg) {
    job_batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->j->mu);
        int i = b->failed ? b->n_jobs : b->next++;
        pthread_mutex_unlock(&b->j->mu);
        if (i >= b->n_jobs) return NULL;
        rlhf_err e;
        if (ask(b, i, &e)) {
            pthread_mutex_lock(&b->j->mu);
            if (!b->failed) b->failed = 1, b->err = e;
            pthread_mutex_unlock(&b->j->mu);
        }
    }
}

static int cmp_key(const void *x, const void *y, void *keys) {
    const uint64_t(*k)[2] = keys;
    int a = *(const int *)x, b = *(const int *)y;
    for (int w = 0; w < 2; w++)
        if (k[a][w] != k[b][w]) return k[a][w] < k[b][w] ? -1 : 1;
    return a - b;
}

// values (m) = the parsed answers to users (m) of one kind: from the cache, or
// asked (each distinct request once, `concurrency` at a time)
static int run_questions(reward_judge *j, int kind, char **users, int m, double *values,
                         rlhf_err *err) {
    uint64_t(*keys)[2] = xmalloc((size_t)(m ? m : 1) * sizeof *keys);
    char **bodies = xcalloc((size_t)(m ? m : 1), sizeof(char *));
    int *miss = xmalloc((size_t)(m ? m : 1) * sizeof(int)), n_miss = 0;
    for (int i = 0; i < m; i++) {
        bodies[i] = request_body(j, kind, users[i]);
        request_key(j, bodies[i], keys[i]);
        cache_slot *s = cache_find(j, keys[i]);
        if (s && parse_kind(kind, s->answer, &values[i]) == 0)
            j->st.cache_hits++;
        else
            miss[n_miss++] = i;
    }
    qsort_r(miss, (size_t)n_miss, sizeof(int), cmp_key, keys); // duplicates side by side
    int n_jobs = 0, *first = xmalloc((size_t)(n_miss ? n_miss : 1) * sizeof(int));
    for (int k = 0; k < n_miss; k++) {
        int i = miss[k];
        if (k > 0 && !memcmp(keys[i], keys[miss[k - 1]], sizeof keys[i])) continue;
        first[n_jobs++] = i;
    }
    job_batch b = {.j = j, .kind = kind, .n_jobs = n_jobs};
    b.bodies = xmalloc((size_t)(n_jobs ? n_jobs : 1) * sizeof(char *));
    b.keys = xmalloc((size_t)(n_jobs ? n_jobs : 1) * sizeof *b.keys);
    b.values = xmalloc((size_t)(n_jobs ? n_jobs : 1) * sizeof(double));
    for (int t = 0; t < n_jobs; t++) {
        b.bodies[t] = bodies[first[t]];
        memcpy(b.keys[t], keys[first[t]], sizeof b.keys[t]);
    }
    int n_threads = j->concurrency < n_jobs ? j->concurrency : n_jobs;
    pthread_t *th = xmalloc((size_t)(n_threads ? n_threads : 1) * sizeof(pthread_t));
    int started = 0;
    for (; started < n_threads - 1; started++)
        if (pthread_create(&th[started], NULL, worker, &b)) break;
    if (n_jobs > 0) worker(&b); // this thread works too
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    // each miss takes its distinct request's value
    for (int k = 0, t = -1; k < n_miss && !b.failed; k++) {
        int i = miss[k];
        if (t < 0 || memcmp(keys[i], b.keys[t], sizeof keys[i])) t++;
        values[i] = b.values[t];
    }
    if (b.failed) *err = b.err;
    for (int i = 0; i < m; i++) free(bodies[i]);
    free(keys), free(bodies), free(miss), free(first), free(th);
    free(b.bodies), free(b.keys), free(b.values);
    return b.failed ? -1 : 0;
}

// ------------------------------------------------------------- public API --

void judge_opts_default(judge_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = "default";
    o->api = "chat";
    o->max_tokens = 16;
    o->timeout_s = 60;
    o->max_retries = 3;
    o->concurrency = 8;
    o->both_orders = 1;
    o->backoff_s = 0.5;
}

static char *dup_or(const char *s, const char *fallback) {
    char *d = strdup(s ? s : fallback);
    if (!d) rlhf_panic(__FILE__, __LINE__, "out of memory");
    return d;
}

static int check_template(const char *t, const char *const *fields, int n, const char *what,
                          rlhf_err *err) {
    for (int i = 0; i < n; i++) {
        char f[32];
        snprintf(f, sizeof f, "{%s}", fields[i]);
        if (!strstr(t, f)) return rlhf_fail(err, "judge: the %s template must hold %s", what, f);
    }
    return 0;
}

int judge_open(reward_judge **out, const judge_opts *o, rlhf_err *err) {
    *out = NULL;
    if (!o->base_url || !*o->base_url)
        return rlhf_fail(err, "judge: no base URL (e.g. http://127.0.0.1:8080/v1)");
    if (!o->model || !*o->model) return rlhf_fail(err, "judge %s: no model name", o->base_url);
    const char *api = o->api && *o->api ? o->api : "chat";
    if (strcmp(api, "chat") && strcmp(api, "completions"))
        return rlhf_fail(err, "judge: api must be chat or completions, not \"%s\"", api);
    const char *pf[2] = {"prompt", "completion"}, *qf[3] = {"prompt", "a", "b"};
    if ((o->pointwise_template && check_template(o->pointwise_template, pf, 2, "pointwise", err)) ||
        (o->pairwise_template && check_template(o->pairwise_template, qf + 1, 2, "pairwise", err)))
        return -1;
    if (o->max_tokens < 1 || o->concurrency < 1 || o->max_retries < 0 || !(o->timeout_s > 0))
        return rlhf_fail(err, "judge: max_tokens and concurrency must be >= 1, max_retries >= 0 "
                              "and timeout_s > 0");
    const char *key = NULL;
    if (o->api_key_env && *o->api_key_env) {
        key = getenv(o->api_key_env);
        if (!key || !*key)
            return rlhf_fail(err,
                             "judge %s: the environment variable %s (the API key) is not "
                             "set",
                             o->base_url, o->api_key_env);
    }
    reward_judge *j = xcalloc(1, sizeof *j);
    size_t bl = strlen(o->base_url);
    while (bl > 0 && o->base_url[bl - 1] == '/') bl--;
    const char *path = strcmp(api, "chat") ? "/completions" : "/chat/completions";
    j->url = xmalloc(bl + strlen(path) + 1);
    memcpy(j->url, o->base_url, bl);
    strcpy(j->url + bl, path);
    j->model = dup_or(o->model, ""), j->api = dup_or(api, "chat");
    j->key = key ? dup_or(key, "") : NULL;
    j->completions = !strcmp(api, "completions");
    j->tmpl[0] = dup_or(o->pointwise_template, JUDGE_POINTWISE_TEMPLATE);
    j->tmpl[1] = dup_or(o->pairwise_template, JUDGE_PAIRWISE_TEMPLATE);
    j->system[0] = dup_or(o->system_prompt, JUDGE_POINTWISE_SYSTEM);
    j->system[1] = dup_or(o->system_prompt, JUDGE_PAIRWISE_SYSTEM);
    j->max_tokens = o->max_tokens, j->max_retries = o->max_retries;
    j->concurrency = o->concurrency, j->both_orders = o->both_orders;
    j->malformed_neutral = o->malformed_neutral, j->neutral_score = o->neutral_score;
    j->timeout_s = o->timeout_s, j->backoff_s = o->backoff_s;
    j->cache_fd = -1;
    pthread_mutex_init(&j->mu, NULL);
    if (o->cache_path && *o->cache_path) {
        j->cache_path = dup_or(o->cache_path, "");
        if (cache_load(j, err)) {
            judge_close(j);
            return -1;
        }
    }
    *out = j;
    return 0;
}

int judge_score(reward_judge *j, const char *const *prompts, const char *const *completions, int n,
                float *out, rlhf_err *err) {
    const char *names[2] = {"prompt", "completion"};
    char **users = xmalloc((size_t)(n ? n : 1) * sizeof(char *));
    double *v = xmalloc((size_t)(n ? n : 1) * sizeof(double));
    for (int i = 0; i < n; i++) {
        const char *vals[2] = {prompts[i], completions[i]};
        users[i] = fill_template(j->tmpl[0], names, vals, 2);
    }
    int rc = run_questions(j, 0, users, n, v, err);
    for (int i = 0; i < n; i++) {
        if (rc == 0) out[i] = (float)v[i];
        free(users[i]);
    }
    free(users), free(v);
    return rc;
}

int judge_compare(reward_judge *j, const char *const *prompts, const char *const *a,
                  const char *const *b, int n, float *p_a, rlhf_err *err) {
    const char *names[3] = {"prompt", "a", "b"};
    int per = j->both_orders ? 2 : 1, m = n * per;
    char **users = xmalloc((size_t)(m ? m : 1) * sizeof(char *));
    double *v = xmalloc((size_t)(m ? m : 1) * sizeof(double));
    for (int i = 0; i < n; i++) {
        const char *ab[3] = {prompts[i], a[i], b[i]}, *ba[3] = {prompts[i], b[i], a[i]};
        users[i * per] = fill_template(j->tmpl[1], names, ab, 3);
        if (per == 2) users[i * per + 1] = fill_template(j->tmpl[1], names, ba, 3);
    }
    // v: 0 = the first response shown won, 1 = the second (0.5: neutral)
    int rc = run_questions(j, 1, users, m, v, err);
    for (int i = 0; i < n && rc == 0; i++)
        p_a[i] = per == 2 ? (float)(((1 - v[2 * i]) + v[2 * i + 1]) / 2) : (float)(1 - v[i]);
    for (int i = 0; i < m; i++) free(users[i]);
    free(users), free(v);
    return rc;
}

int judge_groups(reward_judge *j, const char *const *prompts, const char *const *texts,
                 int n_groups, int n, double *p, rlhf_err *err) {
    size_t cap = (size_t)n_groups * n * (n > 1 ? n - 1 : 1) / 2 + 1;
    const char **qp = xmalloc(cap * sizeof(char *)), **qa = xmalloc(cap * sizeof(char *));
    const char **qb = xmalloc(cap * sizeof(char *));
    int *at = xmalloc(cap * sizeof(int)), m = 0;
    float *pa = xmalloc(cap * sizeof(float));
    for (int g = 0; g < n_groups; g++)
        for (int i = 0; i < n; i++) {
            double *row = p + ((size_t)g * n + i) * n;
            row[i] = 0.5;
            for (int k = i + 1; k < n; k++) {
                const char *a = texts[g * n + i], *b = texts[g * n + k];
                row[k] = 0.5, p[((size_t)g * n + k) * n + i] = 0.5;
                if (!strcmp(a, b)) continue;
                qp[m] = prompts[g], qa[m] = a, qb[m] = b, at[m++] = (g * n + i) * n + k;
            }
        }
    int rc = judge_compare(j, qp, qa, qb, m, pa, err);
    for (int q = 0; q < m && rc == 0; q++) {
        int g = at[q] / (n * n), i = at[q] / n % n, k = at[q] % n;
        p[at[q]] = pa[q], p[((size_t)g * n + k) * n + i] = 1.0 - pa[q];
    }
    free(qp), free(qa), free(qb), free(at), free(pa);
    return rc;
}

void judge_get_stats(const reward_judge *j, judge_stats *out) {
    pthread_mutex_lock((pthread_mutex_t *)&j->mu);
    *out = j->st;
    pthread_mutex_unlock((pthread_mutex_t *)&j->mu);
}

void judge_close(reward_judge *j) {
    if (!j) return;
    if (j->cache_fd >= 0) close(j->cache_fd);
    for (size_t i = 0; i < j->cap; i++) free(j->slots[i].answer);
    free(j->slots);
    if (j->key) memset(j->key, 0, strlen(j->key));
    free(j->url), free(j->model), free(j->api), free(j->key), free(j->cache_path);
    for (int k = 0; k < 2; k++) free(j->tmpl[k]), free(j->system[k]);
    pthread_mutex_destroy(&j->mu);
    free(j);
}
