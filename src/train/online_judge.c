// train/online_judge: the policy's judgement of its own samples (OSP); see
// train/online_judge.h.
#include "train/online_judge.h"

#include <stdlib.h>
#include <string.h>

#include "algo/self_judge.h"
#include "base/base.h"
#include "reward/llm_judge.h"

int online_judge_self(rlhf_model *m, const rlhf_tokenizer *tok, const char *tmpl,
                      const char *const *prompts, const char *const *texts, int n_prompts, int n,
                      int micro, double *p, rlhf_err *err) {
    static const char *const answers[2] = {" A", " B"};
    judge_answers ans = {0};
    if (judge_answers_init(&ans, tok, answers, 2, m->cfg.max_seq_len, err)) return -1;
    // judging texts 2q, 2q+1 of pair q = (i, j): i as A, then j as A
    int pairs = n_prompts * n * (n - 1) / 2, n_texts = 2 * pairs, k = 0;
    char **jt = xcalloc(n_texts > 0 ? n_texts : 1, sizeof(char *));
    for (int g = 0; g < n_prompts; g++)
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                for (int o = 0; o < 2; o++)
                    jt[k++] = judge_template_fill(tmpl, prompts[g], NULL, texts[g * n + (o ? j : i)],
                                                  texts[g * n + (o ? i : j)]);
    float *l = xmalloc((size_t)(n_texts > 0 ? n_texts : 1) * 2 * sizeof(float));
    float temp = m->logit_temperature;  // the judge reads the untempered model
    m->logit_temperature = 0;
    int rc = judge_answer_logp(m, tok, &ans, (const char *const *)jt, n_texts,
                               micro > 0 ? (micro + 1) / 2 : 32, l, err);
    m->logit_temperature = temp;
    for (int g = 0, q = 0; g < n_prompts && rc == 0; g++) {
        double *pg = p + (size_t)g * n * n;
        for (int i = 0; i < n; i++) pg[(size_t)i * n + i] = 0.5;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++, q++) {
                const float *lq = l + (size_t)q * 4;  // (i as A: A, B), (j as A: A, B)
                double pij = self_judge_prob(lq[0], lq[1], lq[2], lq[3]);
                pg[(size_t)i * n + j] = pij, pg[(size_t)j * n + i] = 1 - pij;
            }
    }
    for (int t = 0; t < k; t++) free(jt[t]);
    free(jt), free(l);
    judge_answers_free(&ans);
    return rc;
}
