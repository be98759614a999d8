// io/http: a small HTTP client for JSON services, on libcurl. Remote reward
// models (reward/remote) and LLM judges (reward/judge) use it.
//
// Failures are sorted into transient and permanent. Transient: no connection,
// a connection reset or closed before a whole answer, a timeout, or HTTP 408,
// 429, 500, 502, 503 or 504. Those are retried up to max_retries times, waiting
// backoff_s, then twice that, ... (capped at 30 s) between tries. Anything
// else (another 4xx, a bad URL) fails at once. An error message names the URL
// (never the credentials), the status or libcurl's reason, and the number of
// tries. Built without libcurl, every request fails with "built without
// libcurl (install libcurl4-openssl-dev and rebuild)".
#ifndef RLHF_IO_HTTP_H
#define RLHF_IO_HTTP_H

#include <stddef.h>

#include "base/base.h"

typedef struct {
    double timeout_s;         // the whole request, connection included (default 60)
    double connect_timeout_s; // connecting alone (default 10)
    int max_retries;          // tries after the first, for transient failures (default 3)
    double backoff_s;         // the first wait between tries; doubles after each (default 0.5)
    const char *bearer;       // "Authorization: Bearer <bearer>" when not NULL/""; never logged
} http_opts;

typedef struct {
    long status;  // the HTTP status of the last answer (0: none arrived)
    char *body;   // its body, NUL-terminated (malloc'd; NULL when none)
    size_t len;   // body bytes
    int tries;    // requests made
} http_response;

void http_opts_default(http_opts *o);
// 1 when built with libcurl.
int http_available(void);
// POST body as application/json to url. 0 when a 2xx answer arrived (in resp);
// otherwise -1 + err, with resp still holding the last answer, if any (a 4xx's
// JSON error message, say). resp is always safe to http_response_free.
int http_post_json(const char *url, const char *body, const http_opts *o, http_response *resp,
                   rlhf_err *err);
// GET url, same rules.
int http_get(const char *url, const http_opts *o, http_response *resp, rlhf_err *err);
void http_response_free(http_response *r);
// url as messages show it: "user:password@" becomes "***@", a "?query" (it
// may hold a key) becomes "?...". Into out (cap bytes, NUL-terminated).
void http_url_shown(const char *url, char *out, size_t cap);

#endif
