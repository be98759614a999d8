// reward/judge: placeholder until the judge client lands (see judge.h).
#include "reward/judge.h"

#include <string.h>

void judge_opts_default(judge_opts *o) {
    memset(o, 0, sizeof *o);
    o->api = "chat";
    o->max_tokens = 16;
    o->timeout_s = 60;
    o->max_retries = 3;
    o->concurrency = 8;
}
int judge_open(reward_judge **out, const judge_opts *o, rlhf_err *err) {
    *out = NULL;
    return rlhf_fail(err, "judge: not built yet");
}
int judge_score(reward_judge *j, const char *const *prompts, const char *const *completions, int n,
                float *out, rlhf_err *err) {
    return rlhf_fail(err, "judge: not built yet");
}
int judge_compare(reward_judge *j, const char *const *prompts, const char *const *a,
                  const char *const *b, int n, float *p_a, rlhf_err *err) {
    return rlhf_fail(err, "judge: not built yet");
}
void judge_close(reward_judge *j) {}
