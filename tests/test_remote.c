// reward/remote and the url:/judge: reward sources: OpenRLHF's request body,
// the answer parser's every refusal, the spec grammar with URLs, the flags
// shortcuts, and io/http's failure messages (no credentials, tries counted)
// without a server. tests/remote_rm_test.py runs the protocol end to end.
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/http.h"
#include "reward/remote.h"
#include "reward/sources.h"
#include "test.h"

static int parse(const char *body, int n, float *out, rlhf_err *err) {
    return remote_rm_parse("http://h:1/get_reward", body, body ? strlen(body) : 0, n, out, err);
}

static int test_parse_good(void) {
    float r[3] = {0};
    rlhf_err err = {{0}};
    // OpenRLHF's serve_rm answer: "scores" and "extra_logs" are ignored
    const char *serve_rm = "{\"rewards\": [0.5, -2, 1e-3], \"scores\": [9, 9, 9], "
                           "\"extra_logs\": {\"dummy_scores\": [0.5, -2, 1e-3]}}";
    CHECKF(parse(serve_rm, 3, r, &err) == 0, "%s", err.msg);
    CHECK(r[0] == 0.5f && r[1] == -2.0f && r[2] == 1e-3f);
    CHECK(parse("{\"rewards\": []}", 0, r, &err) == 0);
    return 0;
}

static int test_parse_refusals(void) {
    static const struct {
        const char *body, *why;
    } cases[] = {
        {"", "empty"},
        {"<html>oops</html>", "not JSON"},
        {"{\"rewards\": [NaN, 1, 2]}", "not JSON"},
        {"[0.1, 0.2, 0.3]", "not a JSON object"},
        {"{\"scores\": [1, 2, 3]}", "no \"rewards\" field"},
        {"{\"rewards\": 3}", "not an array"},
        {"{\"rewards\": [1, 2]}", "2 entries for 3 queries"},
        {"{\"rewards\": [1, 2, 3, 4]}", "4 entries for 3 queries"},
        {"{\"rewards\": [1, \"2\", 3]}", "\"rewards\"[1] is not a finite number"},
        {"{\"rewards\": [1, 2, null]}", "\"rewards\"[2] is not a finite number"},
        {"{\"rewards\": [[1], 2, 3]}", "\"rewards\"[0] is not a finite number"},
        {"{\"rewards\": [1, 2, 1e39]}", "\"rewards\"[2] is not a finite number"},
        {"{\"rewards\": [1, 2, true]}", "\"rewards\"[2] is not a finite number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float r[4];
        rlhf_err err = {{0}};
        int rc = parse(cases[i].body, 3, r, &err);
        CHECKF(rc == -1 && strstr(err.msg, cases[i].why) &&
                   strstr(err.msg, "http://h:1/get_reward"),
               "%s -> %s", cases[i].body, err.msg);
    }
    // the snippet of a long body is cut
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    rlhf_err err;
    float r[3];
    CHECK(parse(big, 3, r, &err) == -1 && strlen(err.msg) < 400 && strstr(err.msg, "..."));
    return 0;
}

static int test_request_body(void) {
    const char *prompts[] = {"Say \"hi\":\n", "2+2=", "caf\xc3"};
    const char *completions[] = {" hi", "4", "\xa9!"}; // "café!" split inside the é
    char *body = remote_rm_request(prompts, completions, 3);
    cJSON *j = cJSON_Parse(body);
    CHECKF(j != NULL, "%s", body);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "query");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompts");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "labels");
    CHECK(cJSON_GetArraySize(q) == 3 && cJSON_GetArraySize(p) == 3 && cJSON_GetArraySize(l) == 3);
    CHECK(!strcmp(cJSON_GetArrayItem(q, 0)->valuestring, "Say \"hi\":\n hi"));
    CHECK(!strcmp(cJSON_GetArrayItem(p, 0)->valuestring, "Say \"hi\":\n"));
    CHECK(!strcmp(cJSON_GetArrayItem(q, 1)->valuestring, "2+2=4"));
    // joined before escaping: the é is whole in the query, a bad byte (U+FFFD) in the prompt
    CHECK(!strcmp(cJSON_GetArrayItem(q, 2)->valuestring, "caf\xc3\xa9!"));
    CHECK(!strcmp(cJSON_GetArrayItem(p, 2)->valuestring, "caf\xef\xbf\xbd"));
    for (int i = 0; i < 3; i++) CHECK(!strcmp(cJSON_GetArrayItem(l, i)->valuestring, ""));
    cJSON_Delete(j);
    free(body);
    return 0;
}

static int test_spec_grammar(void) {
    reward_set rs = {0};
    rlhf_err err = {{0}};
    const char *spec = "url:http://10.0.0.2:5000/get_reward=0.5,verifier:arith,"
                       "remote:https://user:pw@rm.example.org/score?a=1=2,judge:=0.25";
    CHECKF(reward_set_parse(&rs, spec, &err) == 0, "%s", err.msg);
    CHECK(rs.n == 4);
    if (rs.n == 4) {
        CHECK(rs.src[0].kind == REWARD_URL && rs.src[0].weight == 0.5f);
        CHECK(!strcmp(rs.src[0].arg, "http://10.0.0.2:5000/get_reward"));
        CHECK(!strcmp(rs.src[0].name, "url:10.0.0.2:5000"));
        CHECK(rs.src[1].kind == REWARD_VERIFIER && rs.src[1].weight == 1.0f);
        // a query string's "=1" is the URL's; the "=2" after it is the weight
        CHECK(rs.src[2].kind == REWARD_URL && rs.src[2].weight == 2.0f);
        CHECK(!strcmp(rs.src[2].arg, "https://user:pw@rm.example.org/score?a=1"));
        CHECKF(!strcmp(rs.src[2].name, "url:rm.example.org"), "%s", rs.src[2].name);
        CHECK(rs.src[3].kind == REWARD_JUDGE && rs.src[3].arg[0] == 0 && rs.src[3].weight == 0.25f);
    }
    reward_set_free(&rs);
    memset(&rs, 0, sizeof rs);
    CHECK(reward_set_parse(&rs, "url:localhost:5000/get_reward", &err) == -1 &&
          strstr(err.msg, "http://"));
    CHECK(reward_set_parse(&rs, "judge:127.0.0.1:8080/v1", &err) == -1 &&
          strstr(err.msg, "http://"));
    CHECK(reward_set_parse(&rs, "url:", &err) == -1 && strstr(err.msg, "needs an argument"));
    reward_set_free(&rs);
    return 0;
}

static int test_flags(void) {
    reward_set rs = {0};
    rlhf_err err = {{0}};
    // --judge_url alone configures judges but adds no reward (online-dpo --judge api reads it)
    reward_flags f = {.judge_url = "http://127.0.0.1:8080/v1", .retries = 2};
    CHECK(reward_set_from_flags(&rs, &f, &err) == -1 && strstr(err.msg, "no reward"));
    reward_set_free(&rs);
    memset(&rs, 0, sizeof rs);
    reward_flags g = {.spec = "judge:",
                      .reward_url = "http://127.0.0.1:5000/get_reward",
                      .judge_url = "http://127.0.0.1:8080/v1",
                      .judge_model = "qwen",
                      .retries = 2};
    CHECKF(reward_set_from_flags(&rs, &g, &err) == 0, "%s", err.msg);
    CHECK(rs.n == 2 && rs.http.set && rs.http.retries == 2);
    if (rs.n == 2) {
        CHECK(rs.src[0].kind == REWARD_JUDGE && !strcmp(rs.src[0].name, "judge:qwen"));
        CHECK(rs.src[1].kind == REWARD_URL && rs.src[1].weight == 1.0f);
    }
    CHECK(rs.http.judge_url && !strcmp(rs.http.judge_url, "http://127.0.0.1:8080/v1"));
    reward_set_free(&rs);
    return 0;
}

// a port on 127.0.0.1 that nothing listens on (bound, then closed)
static int dead_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) ||
        getsockname(s, (struct sockaddr *)&a, &len)) {
        if (s >= 0) close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

static int test_http_failures(void) {
    if (!http_available()) SKIP("built without libcurl");
    int port = dead_port();
    if (port < 0) SKIP("no loopback socket");
    http_opts o;
    http_opts_default(&o);
    o.max_retries = 2;
    o.backoff_s = 0.01;
    o.bearer = "TOKEN-never-shown";
    char url[128];
    snprintf(url, sizeof url, "http://alice:secret@127.0.0.1:%d/get_reward?key=k3y", port);
    http_response resp;
    rlhf_err err = {{0}};
    double t0 = time_now();
    CHECK(http_post_json(url, "{}", &o, &resp, &err) == -1);
    double secs = time_now() - t0;
    // refused: transient, so tried 1 + 2 times; the message has no credentials
    CHECKF(resp.tries == 3 && resp.status == 0 && strstr(err.msg, "3 tries"), "%s", err.msg);
    CHECKF(!strstr(err.msg, "secret") && !strstr(err.msg, "alice") && !strstr(err.msg, "k3y") &&
               !strstr(err.msg, "TOKEN"),
           "%s", err.msg);
    CHECKF(strstr(err.msg, "127.0.0.1") != NULL, "%s", err.msg);
    CHECK(secs < 5);
    http_response_free(&resp);
    // a scheme libcurl does not speak: permanent, one try
    CHECK(http_get("gopherx://127.0.0.1/", &o, &resp, &err) == -1 && resp.tries == 1);
    CHECKF(strstr(err.msg, "not retried") != NULL, "%s", err.msg);
    http_response_free(&resp);
    CHECK(http_post_json("", "{}", &o, &resp, &err) == -1 && strstr(err.msg, "no URL"));
    http_response_free(&resp);
    // a remote reward model that is not there fails its first batch with the reason
    remote_rm *rm;
    remote_rm_opts ro;
    remote_rm_opts_default(&ro);
    ro.max_retries = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/get_reward", port);
    CHECK(remote_rm_open(&rm, url, &ro, &err) == 0);
    const char *p[] = {"a"}, *c[] = {"b"};
    float r;
    CHECK(remote_rm_score(rm, p, c, 1, &r, &err) == -1 && strstr(err.msg, "1 try"));
    remote_rm_close(rm);
    CHECK(remote_rm_open(&rm, "ftp://x/", &ro, &err) == -1 && rm == NULL);
    return 0;
}

int main(void) {
    RUN(test_parse_good);
    RUN(test_parse_refusals);
    RUN(test_request_body);
    RUN(test_spec_grammar);
    RUN(test_flags);
    RUN(test_http_failures);
    TEST_EXIT();
}
