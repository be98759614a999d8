// io/http: placeholder until the libcurl client lands (see http.h).
#include "io/http.h"

#include <stdlib.h>
#include <string.h>

void http_opts_default(http_opts *o) {
    memset(o, 0, sizeof *o);
    o->timeout_s = 60;
    o->connect_timeout_s = 10;
    o->max_retries = 3;
    o->backoff_s = 0.5;
}
int http_available(void) { return 0; }
int http_post_json(const char *url, const char *body, const http_opts *o, http_response *resp,
                   rlhf_err *err) {
    memset(resp, 0, sizeof *resp);
    return rlhf_fail(err, "%s: HTTP client not built yet", url);
}
int http_get(const char *url, const http_opts *o, http_response *resp, rlhf_err *err) {
    return http_post_json(url, NULL, o, resp, err);
}
void http_response_free(http_response *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}
