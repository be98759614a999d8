// reward/remote: OpenRLHF's remote reward-model protocol (remote.h) on io/http.
// A call is cut into batches of at most batch_size queries; each batch is one
// POST whose answer must hold exactly its rewards, so a bad answer stops the
// scoring instead of shifting rewards between completions.
#include "reward/remote.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/http.h"
#include "reward/sources.h"

struct remote_rm {
    char *url;
    char shown[256]; // the URL for messages: no user:password@, no ?query
    remote_rm_opts o;
};

void remote_rm_opts_default(remote_rm_opts *o) {
    http_opts h;
    http_opts_default(&h);
    o->timeout_s = h.timeout_s;
    o->connect_timeout_s = h.connect_timeout_s;
    o->max_retries = h.max_retries;
    o->backoff_s = h.backoff_s;
    o->batch_size = 64;
}

int remote_rm_open(remote_rm **out, const char *url, const remote_rm_opts *o, rlhf_err *err) {
    *out = NULL;
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
        return rlhf_fail(err, "reward url:%s: expected an http:// or https:// URL", url ? url : "");
    if (!http_available())
        return rlhf_fail(err,
                         "reward url:%s: built without libcurl (install "
                         "libcurl4-openssl-dev and rebuild)",
                         url);
    remote_rm *r = xcalloc(1, sizeof *r);
    r->url = strdup(url);
    http_url_shown(url, r->shown, sizeof r->shown);
    if (o)
        r->o = *o;
    else
        remote_rm_opts_default(&r->o);
    if (r->o.batch_size < 1) r->o.batch_size = 64;
    *out = r;
    return 0;
}

void remote_rm_close(remote_rm *r) {
    if (!r) return;
    free(r->url);
    free(r);
}

typedef struct {
    char *s;
    size_t n, cap;
} text_buf;

static void buf_put(text_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void buf_json(text_buf *b, const char *s, size_t n) {
    char *q = reward_json_string(s, n);
    buf_put(b, q, strlen(q));
    free(q);
}

char *remote_rm_request(const char *const *prompts, const char *const *completions, int n) {
    text_buf b = {0};
    buf_put(&b, "{\"query\": [", 11);
    for (int i = 0; i < n; i++) {
        // prompt and completion joined as bytes first: a UTF-8 character may span the seam
        size_t lp = strlen(prompts[i]), lc = strlen(completions[i]);
        char *joined = xmalloc(lp + lc + 1);
        memcpy(joined, prompts[i], lp);
        memcpy(joined + lp, completions[i], lc + 1);
        if (i) buf_put(&b, ", ", 2);
        buf_json(&b, joined, lp + lc);
        free(joined);
    }
    buf_put(&b, "], \"prompts\": [", 15);
    for (int i = 0; i < n; i++) {
        if (i) buf_put(&b, ", ", 2);
        buf_json(&b, prompts[i], strlen(prompts[i]));
    }
    buf_put(&b, "], \"labels\": [", 14);
    for (int i = 0; i < n; i++) buf_put(&b, i ? ", \"\"" : "\"\"", i ? 4 : 2);
    buf_put(&b, "]}", 2);
    return b.s;
}

// The first 120 bytes of a body, printable, for an error message.
static void snippet(const char *body, size_t len, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; body && i < len && k + 4 < cap && i < 120; i++)
        out[k++] = (body[i] >= 32 && body[i] < 127) ? body[i] : ' ';
    if (body && len > 120 && k + 4 < cap) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = 0;
}

int remote_rm_parse(const char *url, const char *body, size_t len, int n, float *out,
                    rlhf_err *err) {
    char head[160];
    snippet(body, len, head, sizeof head);
    if (!body || len == 0) return rlhf_fail(err, "%s: the answer is empty", url);
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return rlhf_fail(err,
                         "%s: the answer is not JSON (NaN and Infinity are not JSON "
                         "numbers either): %s",
                         url, head);
    int rc = 0;
    const cJSON *rewards =
        cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "rewards") : NULL;
    if (!cJSON_IsObject(root))
        rc = rlhf_fail(err, "%s: the answer is not a JSON object: %s", url, head);
    else if (!rewards)
        rc = rlhf_fail(err, "%s: the answer has no \"rewards\" field: %s", url, head);
    else if (!cJSON_IsArray(rewards))
        rc = rlhf_fail(err, "%s: \"rewards\" is not an array: %s", url, head);
    else if (cJSON_GetArraySize(rewards) != n)
        rc = rlhf_fail(err, "%s: \"rewards\" has %d entries for %d queries: %s", url,
                       cJSON_GetArraySize(rewards), n, head);
    int i = 0;
    const cJSON *x;
    if (rc == 0) cJSON_ArrayForEach(x, rewards) {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > FLT_MAX) {
                rc = rlhf_fail(err, "%s: \"rewards\"[%d] is not a finite number (as a float): %s",
                               url, i, head);
                break;
            }
            out[i++] = (float)x->valuedouble;
        }
    cJSON_Delete(root);
    return rc;
}

int remote_rm_score(remote_rm *r, const char *const *prompts, const char *const *completions, int n,
                    float *out, rlhf_err *err) {
    http_opts h;
    http_opts_default(&h);
    h.timeout_s = r->o.timeout_s;
    h.connect_timeout_s = r->o.connect_timeout_s;
    h.max_retries = r->o.max_retries;
    h.backoff_s = r->o.backoff_s;
    for (int start = 0; start < n; start += r->o.batch_size) {
        int m = n - start < r->o.batch_size ? n - start : r->o.batch_size;
        char *body = remote_rm_request(prompts + start, completions + start, m);
        http_response resp;
        int rc = http_post_json(r->url, body, &h, &resp, err);
        free(body);
        if (rc == 0) rc = remote_rm_parse(r->shown, resp.body, resp.len, m, out + start, err);
        http_response_free(&resp);
        if (rc) return -1;
    }
    return 0;
}
