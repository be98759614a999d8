// data/dataset_batch: tokenized examples to padded (B,T) batches with
// next-token targets and loss masks; preference pairs; packing for SFT.
#include "data/dataset.h"

#include <stdlib.h>
#include <string.h>

void ds_batch_free(ds_batch *b) {
    if (!b) return;
    free(b->tokens);
    free(b->targets);
    free(b->mask);
    free(b->loss_mask);
    free(b->segment);
    free(b->prompt_len);
    free(b->completion_len);
    free(b->example);
    free(b->label);
    memset(b, 0, sizeof *b);
}

// Sizes b for B rows of T and fills it with padding.
static void batch_reset(ds_batch *b, int B, int T, int pad_id) {
    size_t n = (size_t)B * (size_t)T;
    if (n > b->cap) {
        b->tokens = xrealloc(b->tokens, n * sizeof(int));
        b->targets = xrealloc(b->targets, n * sizeof(int));
        b->mask = xrealloc(b->mask, n);
        b->loss_mask = xrealloc(b->loss_mask, n);
        b->segment = xrealloc(b->segment, n * sizeof(int));
        b->cap = n;
    }
    if (B > b->row_cap) {
        b->prompt_len = xrealloc(b->prompt_len, (size_t)B * sizeof(int));
        b->completion_len = xrealloc(b->completion_len, (size_t)B * sizeof(int));
        b->example = xrealloc(b->example, (size_t)B * sizeof(int));
        b->label = xrealloc(b->label, (size_t)B * sizeof(int));
        b->row_cap = B;
    }
    b->B = B;
    b->T = T;
    b->n_pairs = 0;
    for (size_t i = 0; i < n; i++) {
        b->tokens[i] = pad_id;
        b->targets[i] = -1;
        b->segment[i] = -1;
    }
    memset(b->mask, 0, n);
    memset(b->loss_mask, 0, n);
    for (int r = 0; r < B; r++)
        b->prompt_len[r] = b->completion_len[r] = b->example[r] = b->label[r] = -1;
    b->view =
        (rlhf_batch){.B = B, .T = T, .tokens = b->tokens, .targets = b->targets, .mask = b->mask};
}

// One sequence = prompt p[0..np) ++ completion q[0..nq) (loss flags `loss`,
// NULL = all) written to row r from column c. Position j's target is token
// j+1 when that is a completion token with loss; the last token has none.
static void place(ds_batch *b, int r, int c, const int *p, int np, const int *q, int nq,
                  const uint8_t *loss) {
    int L = np + nq;
    int *tok = b->tokens + (size_t)r * b->T + c;
    int *tgt = b->targets + (size_t)r * b->T + c;
    uint8_t *m = b->mask + (size_t)r * b->T + c, *lm = b->loss_mask + (size_t)r * b->T + c;
    for (int j = 0; j < L; j++) {
        tok[j] = j < np ? p[j] : q[j - np];
        m[j] = 1;
    }
    for (int j = 0; j + 1 < L; j++) {
        int k = j + 1 - np; // completion index of the next token
        if (k >= 0 && (!loss || loss[k])) {
            tgt[j] = tok[j + 1];
            lm[j] = 1;
        }
    }
}

int ds_make_batch(const ds_dataset *ds, const int *idx, int n, const ds_batch_opts *o, ds_batch *b,
                  rlhf_err *err) {
    ds_batch_opts def = {0};
    if (!o) o = &def;
    if (!ds->tok)
        return rlhf_fail(err, "%s: dataset is not tokenized (call ds_tokenize)", ds->path);
    if (n < 1) return rlhf_fail(err, "ds_make_batch: empty batch");
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return rlhf_fail(err, "ds_make_batch: example %d out of range (0..%d)", idx[i],
                             ds->n - 1);
    int prompts = o->prompts_only || ds->format == DS_PROMPT_ONLY;
    int pairs = !prompts && ds->format == DS_PREFERENCE;
    int B = pairs ? 2 * n : n;
    // row r: example idx[r % n], completion r / n
    int T = 0;
    for (int r = 0; r < B; r++) {
        const ds_tokens *k = &ds->tok[idx[r % n]];
        int L = k->n_prompt + (prompts ? 0 : k->n_completion[r / n]);
        if (L > T) T = L;
    }
    if (o->pad_to > 0) {
        if (T > o->pad_to)
            return rlhf_fail(err, "%s: a row of %d tokens does not fit pad_to %d", ds->path, T,
                             o->pad_to);
        T = o->pad_to;
    }
    if (T < 1) T = 1;
    batch_reset(b, B, T, ds->pad_id);
    b->n_pairs = pairs ? n : 0;
    for (int r = 0; r < B; r++) {
        int e = idx[r % n], j = r / n;
        const ds_tokens *k = &ds->tok[e];
        int nq = prompts ? 0 : k->n_completion[j];
        int L = k->n_prompt + nq;
        place(b, r, o->padding_side == DS_PAD_LEFT ? T - L : 0, k->prompt, k->n_prompt,
              prompts ? NULL : k->completion[j], nq, prompts ? NULL : k->loss[j]);
        b->prompt_len[r] = k->n_prompt;
        b->completion_len[r] = nq;
        b->example[r] = e;
        b->label[r] = ds->ex[e].label;
    }
    return 0;
}

int ds_pack_batch(const ds_dataset *ds, const int *order, int n, int *next, int B, int T,
                  ds_batch *b, rlhf_err *err) {
    if (!ds->tok)
        return rlhf_fail(err, "%s: dataset is not tokenized (call ds_tokenize)", ds->path);
    if (ds->format == DS_PREFERENCE || ds->format == DS_PROMPT_ONLY)
        return rlhf_fail(err,
                         "%s: packing needs SFT data (text, messages, prompt/completion), not %s",
                         ds->path, ds_format_name(ds->format));
    if (B < 1 || T < 1) return rlhf_fail(err, "ds_pack_batch: B=%d T=%d", B, T);
    batch_reset(b, B, T, ds->pad_id);
    b->view.segment = b->segment;  // documents do not see each other; positions restart
    int rows = 0;
    for (int r = 0; r < B && *next < n; r++) {
        int used = 0, doc = 0;
        while (*next < n) {
            int e = order[*next];
            if (e < 0 || e >= ds->n)
                return rlhf_fail(err, "ds_pack_batch: example %d out of range (0..%d)", e,
                                 ds->n - 1);
            const ds_tokens *k = &ds->tok[e];
            int np = k->n_prompt, nq = k->n_completion[0];
            if (np + nq > T) { // longer than a row: keep its first T tokens
                if (np > T) np = T;
                nq = T - np;
            }
            if (np + nq == 0) { // nothing to place
                (*next)++;
                continue;
            }
            if (used + np + nq > T) break;
            place(b, r, used, k->prompt, np, k->completion[0], nq, k->loss[0]);
            for (int j = 0; j < np + nq; j++) b->segment[(size_t)r * T + used + j] = doc;
            doc++;
            if (used == 0) {
                b->example[r] = e;
                b->label[r] = ds->ex[e].label;
                rows++;
            }
            used += np + nq;
            (*next)++;
        }
        b->prompt_len[r] = 0;
        b->completion_len[r] = used;
    }
    return rows;
}
