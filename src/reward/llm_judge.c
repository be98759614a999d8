// reward/llm_judge: judging rows (a judging text followed by each answer),
// answer log-probs from one forward, their gradient, and the llm: reward
// source (reward/llm_judge.h).
#include "reward/llm_judge.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/load.h"

char *judge_template_fill(const char *tmpl, const char *prompt, const char *completion,
                          const char *a, const char *b) {
    const char *key[4] = {"{prompt}", "{completion}", "{a}", "{b}"};
    const char *val[4] = {prompt ? prompt : "", completion ? completion : "", a ? a : "",
                          b ? b : ""};
    size_t cap = strlen(tmpl) + 1, k = 0, most = 0;
    for (int i = 0; i < 4; i++)
        if (strlen(val[i]) > most) most = strlen(val[i]);
    for (const char *s = tmpl; (s = strchr(s, '{')); s++) cap += most;
    char *out = xmalloc(cap);
    for (const char *s = tmpl; *s;) {
        int f = -1;
        for (int i = 0; i < 4 && f < 0; i++)
            if (!strncmp(s, key[i], strlen(key[i]))) f = i;
        if (f >= 0) {
            size_t n = strlen(val[f]);
            memcpy(out + k, val[f], n), k += n, s += strlen(key[f]);
        } else {
            out[k++] = *s++;
        }
    }
    out[k] = 0;
    return out;
}

int judge_answers_init(judge_answers *a, const rlhf_tokenizer *tok, const char *const *answers,
                       int n, int max_seq_len, rlhf_err *err) {
    memset(a, 0, sizeof *a);
    a->len = xcalloc((size_t)n, sizeof(int));
    a->ids = xcalloc((size_t)n, sizeof(int *));
    a->n = n;
    for (int w = 0; w < n; w++) {
        if (tok_encode_next(tok, answers[w], strlen(answers[w]), &a->ids[w], &a->len[w], 0, err))
            goto fail;
        if (a->len[w] == 0 || a->len[w] >= max_seq_len) {
            rlhf_fail(err, "the judge's answer \"%s\" has %d tokens (needs 1 to %d)", answers[w],
                      a->len[w], max_seq_len - 1);
            goto fail;
        }
        for (int v = 0; v < w; v++)
            if (a->len[v] == a->len[w] &&
                !memcmp(a->ids[v], a->ids[w], (size_t)a->len[w] * sizeof(int))) {
                rlhf_fail(err, "the judge's answers \"%s\" and \"%s\" are the same tokens",
                          answers[v], answers[w]);
                goto fail;
            }
    }
    return 0;
fail:
    judge_answers_free(a);
    return -1;
}

void judge_answers_free(judge_answers *a) {
    for (int w = 0; a->ids && w < a->n; w++) free(a->ids[w]);
    free(a->ids), free(a->len);
    memset(a, 0, sizeof *a);
}

int judge_rows_build(const rlhf_tokenizer *tok, const judge_answers *a, const char *const *texts,
                     int n, int max_seq_len, int pad, rlhf_batch *b, rlhf_err *err) {
    int A = a->n, rows = n * A, T = 1;
    int **ids = xcalloc((size_t)(n > 0 ? n : 1), sizeof(int *)), *len = xcalloc((size_t)(n > 0 ? n : 1), sizeof(int));
    int most = 0;
    for (int w = 0; w < A; w++)
        if (a->len[w] > most) most = a->len[w];
    for (int i = 0; i < n; i++) {
        if (tok_encode(tok, texts[i], strlen(texts[i]), &ids[i], &len[i], 0, err)) {
            for (int j = 0; j < i; j++) free(ids[j]);
            free(ids), free(len);
            return -1;
        }
        int keep = len[i] < max_seq_len - most ? len[i] : max_seq_len - most;
        if (keep + most > T) T = keep + most;
    }
    int *tk = xmalloc((size_t)rows * T * sizeof(int)), *tg = xmalloc((size_t)rows * T * sizeof(int));
    uint8_t *mask = xcalloc((size_t)rows * T, 1);
    for (int i = 0; i < n; i++)
        for (int w = 0; w < A; w++) {
            int La = a->len[w], keep = len[i] < max_seq_len - La ? len[i] : max_seq_len - La;
            int L = keep + La, off = T - L;
            int *rt = tk + (size_t)(i * A + w) * T, *rg = tg + (size_t)(i * A + w) * T;
            uint8_t *rm = mask + (size_t)(i * A + w) * T;
            for (int t = 0; t < T; t++) {
                int u = t - off;  // index into text[keep tail] ++ answer
                rt[t] = u < 0 ? pad : u < keep ? ids[i][len[i] - keep + u] : a->ids[w][u - keep];
                rm[t] = u >= 0;
            }
            for (int t = 0; t < T; t++)  // answer token t+1 is predicted at t
                rg[t] = t >= T - 1 - La && t < T - 1 ? rt[t + 1] : -1;
        }
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids), free(len);
    *b = (rlhf_batch){.B = rows, .T = T, .tokens = tk, .targets = tg, .mask = mask};
    return 0;
}

void judge_rows_free(rlhf_batch *b) {
    free((void *)b->tokens), free((void *)b->targets), free((void *)b->mask);
    memset(b, 0, sizeof *b);
}

void judge_rows_logp(const rlhf_model *m, const rlhf_batch *b, const judge_answers *a, float *out) {
    for (int r = 0; r < b->B; r++) {
        int La = a->len[r % a->n], T = b->T;
        double l = 0;
        for (int t = T - 1 - La; t < T - 1; t++) l += m->logp[(size_t)r * T + t];
        out[r] = (float)l;
    }
}

void judge_rows_dlogp(const rlhf_batch *b, const judge_answers *a, const float *dans, float *dlogp) {
    int T = b->T;
    memset(dlogp, 0, (size_t)b->B * T * sizeof(float));
    for (int r = 0; r < b->B; r++) {
        int La = a->len[r % a->n];
        for (int t = T - 1 - La; t < T - 1; t++) dlogp[(size_t)r * T + t] = dans[r];
    }
}

int judge_answer_logp(rlhf_model *m, const rlhf_tokenizer *tok, const judge_answers *a,
                      const char *const *texts, int n, int micro, float *out, rlhf_err *err) {
    int bs = micro > 0 ? micro : 16, pad = tok_pad(tok) >= 0 ? tok_pad(tok) : 0;
    for (int i0 = 0; i0 < n; i0 += bs) {
        int u = n - i0 < bs ? n - i0 : bs;
        rlhf_batch b;
        if (judge_rows_build(tok, a, texts + i0, u, m->cfg.max_seq_len, pad, &b, err)) return -1;
        int rc = model_forward(m, &b, err);
        if (rc == 0) judge_rows_logp(m, &b, a, out + (size_t)i0 * a->n);
        judge_rows_free(&b);
        if (rc) return -1;
    }
    return 0;
}

// ---------------------------------------------------------- llm: source --

struct llm_judge {
    rlhf_model *m;
    rlhf_tokenizer *tok;
    judge_answers ans;
    char *tmpl;
};

int llm_judge_open(llm_judge **out, const char *path, const char *tmpl, const char *tokenizer,
                   rlhf_err *err) {
    if (tmpl && *tmpl && !strstr(tmpl, "{completion}"))
        return rlhf_fail(err, "--llm_judge_template \"%s\" has no {completion}", tmpl);
    llm_judge *j = xcalloc(1, sizeof *j);
    static const char *const answers[2] = {" Yes", " No"};
    if (model_load_any(path, 0, &j->m, err) || model_tokenizer(j->m, tokenizer, &j->tok, err) ||
        judge_answers_init(&j->ans, j->tok, answers, 2, j->m->cfg.max_seq_len, err)) {
        llm_judge_close(j);
        return rlhf_fail_ctx(err, "llm judge %s", path);
    }
    j->tmpl = strdup(tmpl && *tmpl ? tmpl : LLM_JUDGE_TEMPLATE);
    *out = j;
    return 0;
}

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

int llm_judge_score(llm_judge *j, const char *const *prompts, const char *const *completions,
                    int n, int micro, float *out, rlhf_err *err) {
    char **texts = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(char *));
    float *l = xmalloc((size_t)(n > 0 ? n : 1) * 2 * sizeof(float));
    for (int i = 0; i < n; i++) texts[i] = judge_template_fill(j->tmpl, prompts[i], completions[i], NULL, NULL);
    int rc = judge_answer_logp(j->m, j->tok, &j->ans, (const char *const *)texts, n, micro, l, err);
    for (int i = 0; i < n && rc == 0; i++) out[i] = (float)sigmoid((double)l[2 * i] - l[2 * i + 1]);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts), free(l);
    return rc;
}

void llm_judge_close(llm_judge *j) {
    if (!j) return;
    model_free(j->m);
    if (j->tok) tok_free(j->tok);
    judge_answers_free(&j->ans);
    free(j->tmpl);
    free(j);
}
