// io/http: the JSON-over-HTTP client of http.h on libcurl. One easy handle per
// request (requests are few and large: a batch of rewards, one judge prompt),
// so any number of threads may call in at once; libcurl's global state is set
// up once under pthread_once. CURLOPT_NOSIGNAL keeps libcurl's timeouts from
// using signals, which would not be safe in a threaded trainer.
//
// The bearer token only ever goes into the Authorization header; it is never
// part of an error message, and messages print the URL without a user:password@
// part or a query string (which may hold an API key).
#include "io/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void http_opts_default(http_opts *o) {
    memset(o, 0, sizeof *o);
    o->timeout_s = 60;
    o->connect_timeout_s = 10;
    o->max_retries = 3;
    o->backoff_s = 0.5;
}

void http_response_free(http_response *r) {
    if (!r) return;
    free(r->body);
    memset(r, 0, sizeof *r);
}

// The URL for messages: no "user:password@", no "?query" (it may hold a key).
void http_url_shown(const char *url, char *out, size_t cap) {
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    const char *path = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(path - host));
    size_t lead = (size_t)(host - url);
    const char *rest = at ? at + 1 : host;
    size_t rest_len = strcspn(rest, "?#");
    snprintf(out, cap, "%.*s%s%.*s%s", (int)lead, url, at ? "***@" : "", (int)rest_len, rest,
             rest[rest_len] == '?' ? "?..." : "");
}

#ifndef RLHF_HAVE_CURL

int http_available(void) {
    return 0;
}
int http_post_json(const char *url, const char *body, const http_opts *o, http_response *resp,
                   rlhf_err *err) {
    memset(resp, 0, sizeof *resp);
    return rlhf_fail(err, "%s: built without libcurl (install libcurl4-openssl-dev and rebuild)",
                     url ? url : "(no URL)");
}
int http_get(const char *url, const http_opts *o, http_response *resp, rlhf_err *err) {
    return http_post_json(url, NULL, o, resp, err);
}

#else

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#define HTTP_MAX_BODY ((size_t)256 << 20) // answers above this are refused
#define HTTP_MAX_WAIT_S 30.0              // the back-off cap of http.h

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code = CURLE_OK;

static void curl_init_once(void) {
    curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_available(void) {
    return 1;
}

typedef struct {
    http_response *resp;
    size_t cap;
    int too_big;
} body_sink;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    body_sink *s = user;
    size_t n = size * nmemb;
    http_response *r = s->resp;
    if (r->len + n > HTTP_MAX_BODY) {
        s->too_big = 1;
        return 0; // makes libcurl stop with CURLE_WRITE_ERROR
    }
    if (r->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < r->len + n + 1) cap *= 2;
        r->body = xrealloc(r->body, cap);
        s->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
    return n;
}

static int status_transient(long status) {
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
           status == 504;
}

// libcurl failures that a later try may not meet: no connection, a reset or
// an answer cut short, a timeout.
static int curl_code_transient(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// A loopback address never goes through a proxy, whatever http_proxy says;
// the user's no_proxy list is kept.
static char *no_proxy_list(void) {
    const char *env = getenv("no_proxy");
    if (!env || !*env) env = getenv("NO_PROXY");
    const char *loop = "localhost,127.0.0.1,::1";
    size_t n = (env ? strlen(env) + 1 : 0) + strlen(loop) + 1;
    char *s = xmalloc(n);
    snprintf(s, n, "%s%s%s", env && *env ? env : "", env && *env ? "," : "", loop);
    return s;
}

typedef struct {
    CURLcode code;
    long status;
    double retry_after_s; // the server's Retry-After, 0 if none
    int too_big;
    char reason[CURL_ERROR_SIZE];
} try_result;

static struct curl_slist *request_headers(const char *body, const char *bearer) {
    struct curl_slist *h = NULL;
    if (body) h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Expect:"); // no 100-continue round trip for large bodies
    if (bearer && *bearer) {
        size_t n = strlen(bearer) + 32;
        char *line = xmalloc(n);
        snprintf(line, n, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, line); // copies the line
        memset(line, 0, n);
        free(line);
    }
    return h;
}

// One request; resp gets the answer (status, body).
static void http_try(const char *url, const char *body, const http_opts *o, const char *no_proxy,
                     http_response *resp, try_result *tr) {
    memset(tr, 0, sizeof *tr);
    http_response_free(resp);
    CURL *c = curl_easy_init();
    if (!c) {
        tr->code = CURLE_FAILED_INIT;
        snprintf(tr->reason, sizeof tr->reason, "libcurl could not make a handle");
        return;
    }
    struct curl_slist *headers = request_headers(body, o->bearer);
    body_sink sink = {resp, 0, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->timeout_s > 0 ? o->timeout_s * 1000 : 0));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(o->connect_timeout_s > 0 ? o->connect_timeout_s * 1000 : 0));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "rlhf.c");
    curl_easy_setopt(c, CURLOPT_NOPROXY, no_proxy);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, tr->reason);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    tr->code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &tr->status);
    curl_off_t retry_after = 0;
    if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0)
        tr->retry_after_s = (double)retry_after;
    tr->too_big = sink.too_big;
    if (tr->code != CURLE_OK && !tr->reason[0])
        snprintf(tr->reason, sizeof tr->reason, "%s", curl_easy_strerror(tr->code));
    resp->status = tr->code == CURLE_OK ? tr->status : 0;
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
}

// The failure message of a finished request: what went wrong and how often we tried.
static int fail_request(rlhf_err *err, const char *method, const char *url,
                        const http_response *resp, const try_result *tr, int transient) {
    char shown[512];
    http_url_shown(url, shown, sizeof shown);
    const char *why = transient ? "gave up" : "not retried";
    if (tr->too_big)
        return rlhf_fail(err, "%s %s: the answer is larger than %zu MiB (%s)", method, shown,
                         HTTP_MAX_BODY >> 20, why);
    if (tr->code != CURLE_OK)
        return rlhf_fail(err, "%s %s: %s (%d %s, %s)", method, shown, tr->reason, resp->tries,
                         resp->tries == 1 ? "try" : "tries", why);
    char snippet[201] = "";
    if (resp->body) {
        size_t k = 0;
        for (size_t i = 0; i < resp->len && k < sizeof snippet - 1; i++)
            snippet[k++] = (resp->body[i] >= 32 && resp->body[i] < 127) ? resp->body[i] : ' ';
        snippet[k] = 0;
    }
    return rlhf_fail(err, "%s %s: HTTP %ld (%d %s, %s)%s%s%s", method, shown, tr->status,
                     resp->tries, resp->tries == 1 ? "try" : "tries", why, snippet[0] ? ": " : "",
                     snippet, resp->len > sizeof snippet - 1 ? "..." : "");
}

static int http_request(const char *url, const char *body, const http_opts *opts,
                        http_response *resp, rlhf_err *err) {
    memset(resp, 0, sizeof *resp);
    const char *method = body ? "POST" : "GET";
    if (!url || !*url) return rlhf_fail(err, "%s: no URL given", method);
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_code != CURLE_OK)
        return rlhf_fail(err, "%s: libcurl did not start: %s", method,
                         curl_easy_strerror(curl_init_code));
    http_opts o;
    http_opts_default(&o);
    if (opts) o = *opts;
    int max_tries = 1 + (o.max_retries > 0 ? o.max_retries : 0);
    char *no_proxy = no_proxy_list();
    double wait = o.backoff_s > 0 ? o.backoff_s : 0;
    try_result tr;
    int transient = 0;
    for (int t = 1;; t++) {
        http_try(url, body, &o, no_proxy, resp, &tr);
        resp->tries = t;
        if (tr.code == CURLE_OK && tr.status >= 200 && tr.status < 300) {
            free(no_proxy);
            return 0;
        }
        transient = tr.too_big            ? 0
                    : tr.code != CURLE_OK ? curl_code_transient(tr.code)
                                          : status_transient(tr.status);
        if (!transient || t >= max_tries) break;
        double w = tr.retry_after_s > wait ? tr.retry_after_s : wait;
        sleep_s(w < HTTP_MAX_WAIT_S ? w : HTTP_MAX_WAIT_S);
        wait = wait * 2 < HTTP_MAX_WAIT_S ? wait * 2 : HTTP_MAX_WAIT_S;
    }
    free(no_proxy);
    return fail_request(err, method, url, resp, &tr, transient);
}

int http_post_json(const char *url, const char *body, const http_opts *o, http_response *resp,
                   rlhf_err *err) {
    return http_request(url, body ? body : "", o, resp, err);
}

int http_get(const char *url, const http_opts *o, http_response *resp, rlhf_err *err) {
    return http_request(url, NULL, o, resp, err);
}

#endif
