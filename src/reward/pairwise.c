// reward/pairwise: P(y > z) from a generative pairwise judge, both orders
// averaged, and the pairwise: reward source's anchored scores (reward/pairwise.h).
#include "reward/pairwise.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "algo/self_judge.h"
#include "base/base.h"
#include "io/file.h"
#include "io/json.h"
#include "model/load.h"
#include "reward/llm_judge.h"

struct pairwise_rm {
    rlhf_model *m;
    rlhf_tokenizer *tok;
    judge_answers ans;
    char *tmpl;
};

void pairwise_texts(const char *tmpl, const char *prompt, const char *y, const char *z,
                    char *out[2]) {
    if (!tmpl) tmpl = PAIRWISE_TEMPLATE;
    out[0] = judge_template_fill(tmpl, prompt, NULL, y, z);
    out[1] = judge_template_fill(tmpl, prompt, NULL, z, y);
}

// The "template" of dir/pairwise.json: 1 found (*tmpl malloc'd), 0 no such
// file, -1 + err for a file that is not what `rlhf rm --objective pairwise` writes.
static int read_meta(const char *dir, char **tmpl, rlhf_err *err) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, PAIRWISE_META);
    if (stat(path, &st) != 0) return 0;
    cJSON *o = json_read_doc(path, err);
    if (!o) return -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "template");
    if (!cJSON_IsString(t) || !strstr(t->valuestring, "{a}") || !strstr(t->valuestring, "{b}")) {
        cJSON_Delete(o);
        return rlhf_fail(err, "%s: expected {\"template\": \"...{a}...{b}...\"}", path);
    }
    *tmpl = strdup(t->valuestring);
    cJSON_Delete(o);
    return 1;
}

int pairwise_rm_open(pairwise_rm **out, const char *path, const char *tokenizer, rlhf_err *err) {
    pairwise_rm *p = xcalloc(1, sizeof *p);
    static const char *const answers[2] = {" A", " B"};
    char up[4200];
    snprintf(up, sizeof up, "%s/../..", path);
    int found = read_meta(path, &p->tmpl, err);
    if (found == 0) found = read_meta(up, &p->tmpl, err);
    if (found < 0 || model_load_any(path, 0, &p->m, err) ||
        model_tokenizer(p->m, tokenizer, &p->tok, err) ||
        judge_answers_init(&p->ans, p->tok, answers, 2, p->m->cfg.max_seq_len, err)) {
        pairwise_rm_close(p);
        return rlhf_fail_ctx(err, "pairwise judge %s", path);
    }
    if (!p->tmpl) p->tmpl = strdup(PAIRWISE_TEMPLATE);
    *out = p;
    return 0;
}

const char *pairwise_rm_template(const pairwise_rm *p) { return p->tmpl; }

int pairwise_rm_prob(pairwise_rm *p, const char *const *prompts, const char *const *y,
                     const char *const *z, int n, int micro, double *out, rlhf_err *err) {
    size_t cap = (size_t)(n > 0 ? n : 1);
    char **texts = xmalloc(cap * 2 * sizeof(char *));
    float *l = xmalloc(cap * 4 * sizeof(float));  // per pair: [A, B] of order 0, then order 1
    for (int i = 0; i < n; i++) pairwise_texts(p->tmpl, prompts[i], y[i], z[i], texts + 2 * i);
    int rc = judge_answer_logp(p->m, p->tok, &p->ans, (const char *const *)texts, 2 * n,
                               2 * (micro > 0 ? micro : 8), l, err);
    for (int i = 0; i < n && rc == 0; i++) {
        const float *q = l + (size_t)i * 4;
        out[i] = self_judge_prob(q[0], q[1], q[2], q[3]);
    }
    for (int i = 0; i < 2 * n; i++) free(texts[i]);
    free(texts), free(l);
    return rc;
}

int pairwise_rm_score(pairwise_rm *p, const char *const *prompts, const char *const *completions,
                      const char *const *anchors, int n, int micro, float *out, rlhf_err *err) {
    size_t cap = (size_t)(n > 0 ? n : 1);
    const char **anchor = xmalloc(cap * sizeof(char *));
    double *pr = xmalloc(cap * sizeof(double));
    for (int i = 0, first = 0; i < n; i++) {  // a run of equal prompts is one group
        if (i > 0 && strcmp(prompts[i], prompts[i - 1])) first = i;
        anchor[i] = anchors && anchors[i] ? anchors[i] : completions[first];
    }
    int rc = pairwise_rm_prob(p, prompts, completions, anchor, n, micro, pr, err);
    for (int i = 0; i < n && rc == 0; i++) out[i] = (float)pr[i];
    free(anchor), free(pr);
    return rc;
}

void pairwise_rm_close(pairwise_rm *p) {
    if (!p) return;
    model_free(p->m);
    if (p->tok) tok_free(p->tok);
    judge_answers_free(&p->ans);
    free(p->tmpl);
    free(p);
}
