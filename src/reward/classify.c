// reward/classify: the classify:PATH reward source (reward/classify.h).
#include "reward/classify.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "algo/classify_loss.h"
#include "io/file.h"
#include "io/json.h"
#include "reward/reward_model.h"

struct classify_rm {
    reward_model rm;
    int with_prompt;  // input "prompt_completion"
    int logit;        // score the logit instead of P(true)
};

// classify.json in dir: 1 and *with_prompt when found, 0 when absent, -1 + err when bad
static int read_meta(const char *dir, int *with_prompt, rlhf_err *err) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, CLASSIFY_META);
    struct stat st;
    if (stat(path, &st)) return 0;
    cJSON *o = json_read_doc(path, err);
    if (!o) return -1;
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "input");
    int rc = 1;
    if (cJSON_IsString(in) && !strcmp(in->valuestring, "text")) *with_prompt = 0;
    else if (cJSON_IsString(in) && !strcmp(in->valuestring, "prompt_completion")) *with_prompt = 1;
    else rc = rlhf_fail(err, "%s: expected {\"input\": \"text\" or \"prompt_completion\"}", path);
    cJSON_Delete(o);
    return rc;
}

int classify_rm_open(classify_rm **out, const char *arg, const char *tokenizer, rlhf_err *err) {
    classify_rm *c = xcalloc(1, sizeof *c);
    char path[4096];
    snprintf(path, sizeof path, "%s", arg);
    size_t n = strlen(path);
    if (n > 6 && !strcmp(path + n - 6, ":logit")) c->logit = 1, path[n - 6] = 0;
    char up[4200];
    snprintf(up, sizeof up, "%s/../..", path);  // a checkpoint inside a run directory
    int found = read_meta(path, &c->with_prompt, err);
    if (found == 0) found = read_meta(up, &c->with_prompt, err);
    if (found == 0)
        rlhf_fail(err, "%s: no %s (not a classifier: train one with rlhf rm --objective classify)",
                  path, CLASSIFY_META);
    if (found <= 0 || reward_model_load(&c->rm, path, tokenizer, err)) {
        free(c);
        return rlhf_fail_ctx(err, "classifier %s", path);
    }
    if (c->rm.K != 1) {
        classify_rm_close(c);
        return rlhf_fail(err, "classifier %s: %d score heads (a classifier has one)", path, c->rm.K);
    }
    *out = c;
    return 0;
}

int classify_rm_score(classify_rm *c, const char *const *prompts, const char *const *completions,
                      int n, int batch_size, float *out, rlhf_err *err) {
    const char **empty = NULL;
    if (!c->with_prompt) {  // the classifier reads the completion alone
        empty = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *empty);
        for (int i = 0; i < n; i++) empty[i] = "";
    }
    int rc = reward_model_score_texts(&c->rm, c->with_prompt ? prompts : empty, completions, n,
                                      batch_size, out, err);
    free(empty);
    if (rc == 0 && !c->logit)
        for (int i = 0; i < n; i++) out[i] = (float)classify_prob(out[i]);
    return rc;
}

void classify_rm_close(classify_rm *c) {
    if (!c) return;
    reward_model_free(&c->rm);
    free(c);
}
