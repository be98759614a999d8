// train/alol_value: A-LoL's V_ref(x) — features from the frozen reference,
// targets from its own samples (scored by a reward set) or from the data, the
// ridge fit of algo/alol. See alol_value.h.
#include "train/alol_value.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/alol.h"
#include "reward/sources.h"
#include "train/complete.h"
#include "train/rollout.h"

// X (n, C): the reference's final hidden state at the last prompt token of
// examples idx[0..n) of ds, bs rows per forward.
static int prompt_features(rlhf_model *ref, const ds_dataset *ds, const int *idx, int n, int bs,
                           float *X, rlhf_err *err) {
    int C = ref->cfg.n_embd, rc = 0;
    for (int s = 0; s < n && rc == 0; s += bs) {
        int nb = n - s < bs ? n - s : bs, T = 1;
        for (int j = 0; j < nb; j++) {
            const ds_tokens *p = &ds->tok[idx[s + j]];
            if (p->n_prompt < 1)
                return rlhf_fail(err, "%s:%d: the prompt is empty: A-LoL's value estimate reads "
                                      "the reference's state at the last prompt token",
                                 ds->path, ds->ex[idx[s + j]].line);
            if (p->n_prompt > T) T = p->n_prompt;
        }
        int *tok = xcalloc((size_t)nb * T, sizeof(int)), *tgt = xmalloc((size_t)nb * T * sizeof(int));
        uint8_t *mask = xcalloc((size_t)nb * T, 1);
        for (size_t i = 0; i < (size_t)nb * T; i++) tgt[i] = -1;
        for (int j = 0; j < nb; j++) {
            const ds_tokens *p = &ds->tok[idx[s + j]];
            memcpy(tok + (size_t)j * T, p->prompt, (size_t)p->n_prompt * sizeof(int));
            memset(mask + (size_t)j * T, 1, (size_t)p->n_prompt);
        }
        rlhf_batch b = {.B = nb, .T = T, .tokens = tok, .targets = tgt, .mask = mask};
        rc = model_forward(ref, &b, err);
        for (int j = 0; j < nb && rc == 0; j++) {  // causal: padding after P does not reach P-1
            size_t at = (size_t)j * T + ds->tok[idx[s + j]].n_prompt - 1;
            memcpy(X + (size_t)(s + j) * C, ref->hidden + at * C, (size_t)C * sizeof(float));
        }
        free(tok), free(tgt), free(mask);
    }
    return rc;
}

// the text a reward source sees for example i's prompt
static char *prompt_text(const ds_dataset *ds, int i, const rlhf_tokenizer *tok) {
    const ds_example *e = &ds->ex[i];
    if (!e->conversational && e->prompt.text) return strdup(e->prompt.text);
    return tok_decode(tok, ds->tok[i].prompt, ds->tok[i].n_prompt);
}

// One chunk of prompts: y[j] = the mean over o->samples samples of pi_ref of
// alol_reward(the reward set's total).
static int score_chunk(rlhf_model *ref, const rlhf_tokenizer *tok, reward_set *rs,
                       const ds_dataset *ds, const int *idx, int nb, const rollout_opts *ro,
                       const alol_value_opts *o, rlhf_rng *rng, double *y, rlhf_err *err) {
    const int **pp = xmalloc((size_t)nb * sizeof *pp);
    int *pl = xmalloc((size_t)nb * sizeof(int));
    char **text = xcalloc(nb, sizeof(char *));
    for (int j = 0; j < nb; j++) {
        pp[j] = ds->tok[idx[j]].prompt;
        pl[j] = ds->tok[idx[j]].n_prompt;
        text[j] = prompt_text(ds, idx[j], tok);
    }
    rollout_batch rb = {0};
    int rc = rollout_generate(ref, pp, pl, nb, ro, rng, &rb, err);
    if (rc == 0) {
        rollout_decode(&rb, tok);
        const char **rp = xmalloc((size_t)rb.B * sizeof(char *));
        float *total = xmalloc((size_t)rb.B * sizeof(float));
        for (int r = 0; r < rb.B; r++) rp[r] = text[rb.prompt_index[r]];
        rc = reward_set_score(rs, rp, (const char *const *)rb.text, rb.B, NULL, total, err);
        for (int j = 0; j < nb; j++) y[j] = 0;
        for (int r = 0; r < rb.B && rc == 0; r++)
            y[rb.prompt_index[r]] += alol_reward(total[r], o->sigmoid_reward) / o->samples;
        free(rp), free(total);
    }
    rollout_free(&rb);
    for (int j = 0; j < nb; j++) free(text[j]);
    free(text), free(pp), free(pl);
    return rc;
}

// y (n): each fit prompt's mean reward over pi_ref's samples.
static int sample_rewards(rlhf_model *ref, const rlhf_tokenizer *tok, const ds_dataset *ds,
                          const int *idx, int n, const alol_value_opts *o, double *y,
                          rlhf_err *err) {
    reward_set rs = {0};
    reward_set_opts rso;
    reward_set_opts_default(&rso);
    if (reward_set_parse(&rs, o->reward, err) || reward_set_open(&rs, &rso, err)) {
        reward_set_free(&rs);
        return -1;
    }
    rollout_opts ro = {.n_samples = o->samples, .batch_size = o->batch_size,
                       .gen = {.max_new_tokens = o->max_new_tokens, .temperature = 1.0f,
                               .top_p = 1.0f, .eos_id = tok_eos(tok),
                               .pad_id = tok_pad(tok) >= 0 ? tok_pad(tok) : 0}};
    complete_stop_ids(&ro.gen, tok);
    rlhf_rng rng;
    rng_seed(&rng, o->seed);
    int chunk = o->batch_size / o->samples > 0 ? o->batch_size / o->samples : 1, rc = 0;
    for (int s = 0; s < n && rc == 0; s += chunk)
        rc = score_chunk(ref, tok, &rs, ds, idx + s, n - s < chunk ? n - s : chunk, &ro, o, &rng,
                         y + s, err);
    reward_set_free(&rs);
    return rc;
}

// V of every example of ds from the head (w, b), rounded up to floats.
static int predict_all(rlhf_model *ref, const ds_dataset *ds, const double *w, double b,
                       const alol_value_opts *o, float **out, rlhf_err *err) {
    int C = ref->cfg.n_embd, *idx = xmalloc((size_t)ds->n * sizeof(int));
    float *X = xmalloc((size_t)ds->n * C * sizeof(float));
    for (int i = 0; i < ds->n; i++) idx[i] = i;
    int rc = prompt_features(ref, ds, idx, ds->n, o->batch_size, X, err);
    *out = xmalloc((size_t)ds->n * sizeof(float));
    for (int i = 0; i < ds->n && rc == 0; i++)
        (*out)[i] = alol_value_float(alol_ridge_predict(w, b, X + (size_t)i * C, C));
    free(idx), free(X);
    return rc;
}

// The fit's rows: pi_ref's samples on the fit prompts (o->reward), else the
// training examples with their own rewards. X (rows, C) and y (rows), malloc'd.
static int fit_rows(rlhf_model *ref, const rlhf_tokenizer *tok, const ds_dataset *train,
                    const ds_dataset *eval, const alol_value_opts *o, float **X, double **y,
                    int *rows, rlhf_err *err) {
    int from_samples = o->reward && *o->reward;
    const ds_dataset *ds = from_samples && eval ? eval : train;
    int *idx = xmalloc((size_t)ds->n * sizeof(int)), n = 0;
    for (int i = 0; i < ds->n; i++) {
        if (o->prompts > 0 && n >= o->prompts) break;
        // samples need room after the prompt; those that have none are left out of the fit
        if (from_samples && ds->tok[i].n_prompt + o->max_new_tokens > ref->cfg.max_seq_len)
            continue;
        idx[n++] = i;
    }
    if (n == 0) {
        free(idx);
        return rlhf_fail(err, "A-LoL's value estimate: no prompt of %s leaves room for %d new "
                              "tokens (--alol_value_max_new_tokens)",
                         ds->path, o->max_new_tokens);
    }
    *X = xmalloc((size_t)n * ref->cfg.n_embd * sizeof(float));
    *y = xmalloc((size_t)n * sizeof(double));
    *rows = n;
    int rc = prompt_features(ref, ds, idx, n, o->batch_size, *X, err);
    if (rc == 0 && from_samples) rc = sample_rewards(ref, tok, ds, idx, n, o, *y, err);
    for (int i = 0; i < n && rc == 0 && !from_samples; i++)
        (*y)[i] = alol_reward(ds->ex[idx[i]].score, o->sigmoid_reward);
    free(idx);
    return rc;
}

int alol_value_estimate(rlhf_model *ref, const rlhf_tokenizer *tok, const ds_dataset *train,
                        const ds_dataset *eval, const alol_value_opts *o, float **values,
                        float **eval_values, alol_value_report *rep, rlhf_err *err) {
    int C = ref->cfg.n_embd, rows = 0;
    float *X = NULL;
    double *y = NULL, *w = xmalloc((size_t)C * sizeof(double)), b = 0;
    memset(rep, 0, sizeof *rep);
    rep->from_samples = o->reward && *o->reward;
    int rc = fit_rows(ref, tok, train, eval, o, &X, &y, &rows, err);
    if (rc == 0) rc = alol_ridge_fit(X, y, rows, C, o->ridge, w, &b, err);
    if (rc == 0) {
        rep->rows = rows;
        for (int i = 0; i < rows; i++) {
            double e = y[i] - alol_ridge_predict(w, b, X + (size_t)i * C, C);
            rep->mse += e * e / rows;
            rep->mean_target += y[i] / rows;
        }
        rc = predict_all(ref, train, w, b, o, values, err);
    }
    if (rc == 0 && eval) rc = predict_all(ref, eval, w, b, o, eval_values, err);
    free(X), free(y), free(w);
    return rc;
}
