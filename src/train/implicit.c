// train/implicit: summed log-probs and implicit rewards.
#include "train/implicit.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "train/run.h"

void batch_logp_sums(const rlhf_model *m, const ds_batch *b, float *sums, int *lens) {
    for (int r = 0; r < b->B; r++) {
        double s = 0;
        int n = 0;
        for (int t = 0; t < b->T; t++) {
            size_t i = (size_t)r * b->T + t;
            if (b->targets[i] >= 0) s += m->logp[i], n++;
        }
        sums[r] = (float)s;
        if (lens) lens[r] = n;
    }
}

int implicit_reward_score(const implicit_opts *o, rlhf_err *err) {
    rlhf_model *pol = NULL, *ref = NULL;
    rlhf_tokenizer *tok = NULL;
    ds_dataset *ds = NULL;
    FILE *f = stdout;
    atomic_file af = {0}; // o->out: written whole at the end, or left as it was
    int rc = -1;
    if (model_load_any(o->policy, 0, &pol, err) || model_load_any(o->ref, 0, &ref, err) ||
        model_tokenizer(pol, o->tokenizer, &tok, err) || ds_load(&ds, o->data, NULL, NULL, err))
        goto done;
    if (ds->format != DS_PREFERENCE && ds->format != DS_PROMPT_COMPLETION &&
        ds->format != DS_UNPAIRED) {
        rlhf_fail(err, "%s: implicit rewards need pairs or prompt+completion data", o->data);
        goto done;
    }
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    to.chat_template = o->chat_template;
    to.add_bos = tok_default_add_bos(tok);  // as the trainers tokenized it
    int maxT = pol->cfg.max_seq_len;
    to.max_length = o->max_length > 0 && o->max_length < maxT ? o->max_length : maxT;
    if (ds_tokenize(ds, tok, &to, NULL, err)) goto done;
    if (o->out) {
        if (atomic_open(&af, o->out, err)) goto done;
        f = af.f;
    }
    int bs = o->batch_size > 0 ? o->batch_size : 16, pairs = ds->format == DS_PREFERENCE;
    ds_batch b = {0};
    int *idx = xmalloc((size_t)bs * sizeof(int));
    float *sp = xmalloc((size_t)2 * bs * sizeof(float)), *sr = xmalloc((size_t)2 * bs * sizeof(float));
    long correct = 0;
    for (int i0 = 0; i0 < ds->n; i0 += bs) {
        int n = ds->n - i0 < bs ? ds->n - i0 : bs;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        if (ds_make_batch(ds, idx, n, NULL, &b, err) || model_forward(pol, &b.view, err)) break;
        batch_logp_sums(pol, &b, sp, NULL);
        if (model_forward(ref, &b.view, err)) break;
        batch_logp_sums(ref, &b, sr, NULL);
        for (int j = 0; j < n; j++) {
            cJSON *obj = cJSON_CreateObject();
            cJSON_AddNumberToObject(obj, "line", ds->ex[i0 + j].line);
            double rc_ = o->beta * (sp[j] - sr[j]);
            if (pairs) {
                double rr = o->beta * (sp[n + j] - sr[n + j]);
                cJSON_AddNumberToObject(obj, "chosen_score", rc_);
                cJSON_AddNumberToObject(obj, "rejected_score", rr);
                correct += rc_ > rr;
            } else {
                cJSON_AddNumberToObject(obj, "score", rc_);
            }
            char *line = cJSON_PrintUnformatted(obj);
            fprintf(f, "%s\n", line);
            free(line);
            cJSON_Delete(obj);
        }
        if (i0 + n >= ds->n) rc = 0;
    }
    if (ds->n == 0) rc = 0;
    free(idx);
    free(sp);
    free(sr);
    ds_batch_free(&b);
    if (rc == 0 && pairs)
        fprintf(stderr, "score: %d pairs, implicit-reward accuracy %.4f\n", ds->n,
                (double)correct / ds->n);
    if (rc == 0 && o->out && atomic_commit(&af, err)) rc = -1;
done:
    atomic_abort(&af);
    ds_free(ds);
    tok_free(tok);
    model_free(pol);
    model_free(ref);
    return rc;
}
