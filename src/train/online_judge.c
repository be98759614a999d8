// train/online_judge: the policy's judgement of its own samples (OSP); see
// train/online_judge.h.
#include "train/online_judge.h"

#include <stdlib.h>
#include <string.h>

#include "algo/self_judge.h"
#include "base/base.h"

char *online_judge_text(const char *tmpl, const char *prompt, const char *a, const char *b) {
    size_t cap = strlen(tmpl) + 1, k = 0;
    for (const char *s = tmpl; (s = strchr(s, '{')); s++)
        cap += strlen(prompt) + strlen(a) + strlen(b);
    char *out = xmalloc(cap);
    for (const char *s = tmpl; *s;) {
        const char *f = NULL;
        size_t skip = 0;
        if (!strncmp(s, "{prompt}", 8)) f = prompt, skip = 8;
        else if (!strncmp(s, "{a}", 3)) f = a, skip = 3;
        else if (!strncmp(s, "{b}", 3)) f = b, skip = 3;
        if (f) {
            memcpy(out + k, f, strlen(f)), k += strlen(f), s += skip;
        } else {
            out[k++] = *s++;
        }
    }
    out[k] = 0;
    return out;
}

// the tokens of " A" / " B" after a text
static int answer_ids(const rlhf_tokenizer *tok, const char *s, int **ids, int *n,
                      rlhf_err *err) {
    if (tok_encode_next(tok, s, strlen(s), ids, n, 0, err)) return -1;
    return *n > 0 ? 0 : rlhf_fail(err, "the judge's answer \"%s\" has no tokens", s);
}

typedef struct {
    int **ids, *len;  // (rows) judging prompt + answer tokens, their lengths
    int n_ans;        // answer tokens at the end of each row
    float *logp;      // (rows) the answer's log-prob (summed over its tokens)
} judge_rows;

// log-probs of each row's answer after its prompt, micro rows per forward
// (left-padded: every row ends in the last column)
static int judge_forward(rlhf_model *m, judge_rows *jr, int rows, int micro, int pad,
                         rlhf_err *err) {
    int bs = micro > 0 ? micro : 64, rc = 0;
    for (int r0 = 0; r0 < rows && rc == 0; r0 += bs) {
        int u = rows - r0 < bs ? rows - r0 : bs, T = 1;
        for (int j = 0; j < u; j++)
            if (jr->len[r0 + j] > T) T = jr->len[r0 + j];
        int *tok = xmalloc((size_t)u * T * sizeof(int)), *tgt = xmalloc((size_t)u * T * sizeof(int));
        uint8_t *mask = xcalloc((size_t)u * T, 1);
        for (int j = 0; j < u; j++) {
            int L = jr->len[r0 + j], off = T - L;
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)j * T + t;
                tok[i] = t >= off ? jr->ids[r0 + j][t - off] : pad;
                mask[i] = t >= off;
            }
            for (int t = 0; t < T; t++)  // the answer's tokens, each predicted by the one before
                tgt[(size_t)j * T + t] = t >= T - 1 - jr->n_ans && t < T - 1 ? tok[(size_t)j * T + t + 1] : -1;
        }
        rlhf_batch b = {.B = u, .T = T, .tokens = tok, .targets = tgt, .mask = mask};
        float temp = m->logit_temperature; // the judge reads the untempered model
        m->logit_temperature = 0;
        rc = model_forward(m, &b, err);
        m->logit_temperature = temp;
        for (int j = 0; j < u && rc == 0; j++) {
            double l = 0;
            for (int t = T - 1 - jr->n_ans; t < T - 1; t++) l += m->logp[(size_t)j * T + t];
            jr->logp[r0 + j] = (float)l;
        }
        free(tok), free(tgt), free(mask);
    }
    return rc;
}

int online_judge_self(rlhf_model *m, const rlhf_tokenizer *tok, const char *tmpl,
                      const char *const *prompts, const char *const *texts, int n_prompts, int n,
                      int micro, double *p, rlhf_err *err) {
    int pad = tok_pad(tok) >= 0 ? tok_pad(tok) : 0, maxT = m->cfg.max_seq_len;
    int *ans[2] = {NULL, NULL}, na[2] = {0, 0};
    int rc = answer_ids(tok, " A", &ans[0], &na[0], err);
    if (rc == 0) rc = answer_ids(tok, " B", &ans[1], &na[1], err);
    if (rc == 0 && (na[0] != na[1] || !memcmp(ans[0], ans[1], (size_t)na[0] * sizeof(int)) ||
                    na[0] >= maxT))
        rc = rlhf_fail(err, "the judge's answers \" A\" and \" B\" must be different token "
                            "sequences of one length");
    if (rc) {
        free(ans[0]), free(ans[1]);
        return -1;
    }
    int pairs = n_prompts * n * (n - 1) / 2, rows = pairs * 4, k = 0, cap = rows > 0 ? rows : 1;
    judge_rows jr = {xcalloc(cap, sizeof(int *)), xmalloc((size_t)cap * sizeof(int)), na[0],
                     xmalloc((size_t)cap * sizeof(float))};
    // rows 4q .. 4q+3 of pair q = (i, j): order (i as A) answers A, B; order (j as A) A, B
    for (int g = 0; g < n_prompts && rc == 0; g++)
        for (int i = 0; i < n && rc == 0; i++)
            for (int j = i + 1; j < n && rc == 0; j++)
                for (int o = 0; o < 2 && rc == 0; o++) {
                    const char *a = texts[g * n + (o ? j : i)], *b = texts[g * n + (o ? i : j)];
                    char *s = online_judge_text(tmpl, prompts[g], a, b);
                    int *ids = NULL, len = 0;
                    rc = tok_encode(tok, s, strlen(s), &ids, &len, 0, err);
                    free(s);
                    if (rc) break;
                    int keep = len < maxT - jr.n_ans ? len : maxT - jr.n_ans;
                    for (int w = 0; w < 2; w++) {  // keep the end: the question and "Answer:"
                        int *row = xmalloc((size_t)(keep + jr.n_ans) * sizeof(int));
                        memcpy(row, ids + len - keep, (size_t)keep * sizeof(int));
                        memcpy(row + keep, ans[w], (size_t)jr.n_ans * sizeof(int));
                        jr.ids[k] = row, jr.len[k] = keep + jr.n_ans, k++;
                    }
                    free(ids);
                }
    if (rc == 0) rc = judge_forward(m, &jr, rows, micro, pad, err);
    for (int g = 0, q = 0; g < n_prompts && rc == 0; g++) {
        double *pg = p + (size_t)g * n * n;
        for (int i = 0; i < n; i++) pg[(size_t)i * n + i] = 0.5;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++, q++) {
                const float *l = jr.logp + (size_t)q * 4;
                double pij = self_judge_prob(l[0], l[1], l[2], l[3]);
                pg[(size_t)i * n + j] = pij, pg[(size_t)j * n + i] = 1 - pij;
            }
    }
    for (int r = 0; r < k; r++) free(jr.ids[r]);
    free(jr.ids), free(jr.len), free(jr.logp), free(ans[0]), free(ans[1]);
    return rc;
}
