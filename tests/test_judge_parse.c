// The LLM judge's parse rules and option checks (reward/judge.h), no network:
// the first number of a pointwise answer, the first standalone A/B of a
// pairwise one, and judge_open refusing bad options with a message that names
// the problem (and never the API key's value).
#include <stdlib.h>

#include "reward/judge.h"
#include "test.h"

static int test_score_rule(void) {
    struct {
        const char *s;
        int ok;
        double v;
    } cases[] = {
        {"Score: 7/10", 1, 7},     {"7", 1, 7},
        {"  8.5 out of 10", 1, 8.5}, {"-2", 1, -2},
        {"gpt4 says 6", 1, 6},     {"score 10.", 1, 10},
        {"1e5", 1, 1},             {"no number", 0, 0},
        {"", 0, 0},                {"inf nan", 0, 0},
        {"x-3y", 1, -3},           {"Rating: 3-4", 1, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -99;
        int rc = judge_parse_score(cases[i].s, &v);
        CHECKF((rc == 0) == cases[i].ok, "\"%s\": rc %d", cases[i].s, rc);
        if (cases[i].ok) CHECKF(v == cases[i].v, "\"%s\": %g, want %g", cases[i].s, v, cases[i].v);
    }
    CHECK(judge_parse_score(NULL, &(double){0}) == -1);
    return 0;
}

static int test_choice_rule(void) {
    struct {
        const char *s;
        int ok, c;
    } cases[] = {
        {"A", 1, 0},
        {"B", 1, 1},
        {" B\n", 1, 1},
        {"[[A]]", 1, 0},
        {"Answer: B", 1, 1},
        {"Response A is better than B", 1, 0},
        {"ABBA", 0, 0},       // not standalone
        {"a or b", 0, 0},     // lowercase
        {"Both are bad", 0, 0},
        {"B_ A", 1, 0},       // B_ is a word
        {"1", 0, 0},
        {"", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int c = -1, rc = judge_parse_choice(cases[i].s, &c);
        CHECKF((rc == 0) == cases[i].ok, "\"%s\": rc %d", cases[i].s, rc);
        if (cases[i].ok) CHECKF(c == cases[i].c, "\"%s\": %d, want %d", cases[i].s, c, cases[i].c);
    }
    return 0;
}

static int open_fails(const judge_opts *o, const char *want) {
    reward_judge *j = (reward_judge *)1;
    rlhf_err err = {0};
    int rc = judge_open(&j, o, &err);
    CHECKF(rc == -1 && j == NULL, "opened (want \"%s\")", want);
    CHECKF(strstr(err.msg, want) != NULL, "message \"%s\", want \"%s\"", err.msg, want);
    return rc == -1 && strstr(err.msg, want) != NULL;
}

static int test_open_checks(void) {
    judge_opts o;
    judge_opts_default(&o);
    CHECK(o.both_orders == 1 && o.malformed_neutral == 0 && o.max_retries == 3);
    open_fails(&o, "no base URL");
    o.base_url = "http://127.0.0.1:9/v1";
    o.api = "responses";
    open_fails(&o, "chat or completions");
    o.api = "chat";
    o.pairwise_template = "{prompt} {a} only";
    open_fails(&o, "{b}");
    o.pairwise_template = NULL;
    o.pointwise_template = "{completion}";
    open_fails(&o, "{prompt}");
    o.pointwise_template = NULL;
    setenv("JUDGE_PARSE_TEST_KEY", "", 1);
    o.api_key_env = "JUDGE_PARSE_TEST_KEY";
    open_fails(&o, "JUDGE_PARSE_TEST_KEY");
    o.api_key_env = NULL;
    o.concurrency = 0;
    open_fails(&o, "concurrency");
    o.concurrency = 8;
    reward_judge *j = NULL;
    rlhf_err err;
    int rc = judge_open(&j, &o, &err);
    CHECKF(rc == 0, "%s", err.msg);
    // nothing to ask: no request is made
    float out[1];
    CHECK(judge_score(j, NULL, NULL, 0, out, &err) == 0);
    CHECK(judge_compare(j, NULL, NULL, NULL, 0, out, &err) == 0);
    judge_stats st;
    judge_get_stats(j, &st);
    CHECK(st.requests == 0 && st.cache_hits == 0);
    judge_close(j);
    return 0;
}

// a refused connection fails the call with the URL named, and never a crash
static int test_refused(void) {
    judge_opts o;
    judge_opts_default(&o);
    o.base_url = "http://127.0.0.1:9/v1/";  // discard port: nothing listens
    o.max_retries = 0;
    o.timeout_s = 2;
    reward_judge *j;
    rlhf_err err;
    CHECK(judge_open(&j, &o, &err) == 0);
    const char *p[1] = {"2+2="}, *c[1] = {"4"};
    float out[1];
    int rc = judge_score(j, p, c, 1, out, &err);
    CHECK(rc == -1);
    CHECKF(strstr(err.msg, "http://127.0.0.1:9/v1/chat/completions") != NULL, "%s", err.msg);
    judge_close(j);
    return 0;
}

int main(void) {
    RUN(test_score_rule);
    RUN(test_choice_rule);
    RUN(test_open_checks);
    RUN(test_refused);
    return test_total_fail_ ? 1 : 0;
}
