// train/pref_dist: see pref_dist.h. The whole batch's rows are laid out in
// rank order, each rank's rows where one process has them, so the loss reads
// the same numbers in the same order as one process's.
#include "train/pref_dist.h"

#include <stdlib.h>
#include <string.h>

#include "base/dist.h"

typedef struct {
    int N;
    long *rows;   // (N) each rank's rows
    long off, gn; // this rank's first row in the whole batch; rows in all
} shares;

static void shares_init(shares *s, long n) {
    s->N = dist_size();
    int me = dist_rank();
    double *c = xcalloc((size_t)s->N, sizeof(double));
    c[me] = (double)n;
    dist_allreduce_sum_f64(c, s->N);
    s->rows = xmalloc((size_t)s->N * sizeof(long));
    s->off = s->gn = 0;
    for (int r = 0; r < s->N; r++) {
        s->rows[r] = (long)c[r];
        if (r < me) s->off += s->rows[r];
        s->gn += s->rows[r];
    }
    free(c);
}

// The whole batch's (counts[r] from rank r) from this rank's n at `at`:
// NULL when mine is NULL (on every rank alike).
static float *gather(const float *mine, long n, long at, long total, const long *counts) {
    if (!mine) return NULL;
    float *all = xmalloc((size_t)(total > 0 ? total : 1) * sizeof(float));
    if (n > 0) memcpy(all + at, mine, (size_t)n * sizeof(float));
    dist_allgatherv_f32(all + at, n, all, counts);
    return all;
}

static float *gather_rows(const shares *s, const float *mine) {
    return gather(mine, s->rows[dist_rank()], s->off, s->gn, s->rows);
}

// one set of completions (chosen, rejected or the unpaired completion), whole
typedef struct {
    float *logps, *ref_logps, *tok, *ref_tok;
    int *len;
    long *start;   // (gn + 1) each row's first token in the packed whole (tokens given)
    long *mine_at; // (n) each of this rank's rows' first token in its own layout
    float *grad, *tok_grad;
} set_whole;

// the tokens of this rank's rows, packed, in the whole (s->start) at its place
static float *gather_tokens(const shares *s, const pref_seqs *m, const float *tok,
                            const set_whole *w, const long *counts) {
    if (!tok) return NULL;
    long n = s->rows[dist_rank()], at = w->start[s->off], k = 0;
    long mine_tok = w->start[s->off + n] - at;
    float *pk = xmalloc((size_t)(mine_tok > 0 ? mine_tok : 1) * sizeof(float));
    for (long i = 0; i < n; i++)
        for (int t = 0; t < m->len[i]; t++) pk[k++] = tok[w->mine_at[i] + t];
    float *all = gather(pk, mine_tok, at, w->start[s->gn], counts);
    free(pk);
    return all;
}

static void gather_set(const shares *s, const pref_seqs *m, set_whole *w, pref_seqs *whole) {
    long n = s->rows[dist_rank()];
    memset(w, 0, sizeof *w);
    w->logps = gather_rows(s, m->logps);
    w->ref_logps = gather_rows(s, m->ref_logps);
    float *lf = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (long i = 0; i < n; i++) lf[i] = (float)m->len[i]; // exact below 2^24
    float *all = gather_rows(s, lf);
    w->len = xmalloc((size_t)(s->gn > 0 ? s->gn : 1) * sizeof(int));
    for (long i = 0; i < s->gn; i++) w->len[i] = (int)all[i];
    free(lf), free(all);
    w->grad = xcalloc((size_t)(s->gn > 0 ? s->gn : 1), sizeof(float));
    *whole = (pref_seqs){.logps = w->logps, .ref_logps = w->ref_logps, .len = w->len};
    if (!m->tok_logps) return;
    w->start = xmalloc((size_t)(s->gn + 1) * sizeof(long));
    w->mine_at = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(long));
    w->start[0] = 0;
    for (long i = 0; i < s->gn; i++) w->start[i + 1] = w->start[i] + w->len[i];
    for (long i = 0, p = 0; i < n; p += m->len[i], i++)
        w->mine_at[i] = m->tok_off ? m->tok_off[i] : p;
    long *counts = xmalloc((size_t)s->N * sizeof(long));
    for (int r = 0, row = 0; r < s->N; row += (int)s->rows[r], r++)
        counts[r] = w->start[row + s->rows[r]] - w->start[row];
    w->tok = gather_tokens(s, m, m->tok_logps, w, counts);
    w->ref_tok = gather_tokens(s, m, m->ref_tok_logps, w, counts);
    w->tok_grad = xcalloc((size_t)(w->start[s->gn] > 0 ? w->start[s->gn] : 1), sizeof(float));
    free(counts);
    whole->tok_logps = w->tok;
    whole->ref_tok_logps = w->ref_tok;
}

// this rank's rows' gradients out of the whole set's, added into g
static void scatter_grad(const shares *s, const pref_seqs *m, const set_whole *w, pref_grad *g) {
    long n = s->rows[dist_rank()];
    if (g->grad)
        for (long i = 0; i < n; i++) g->grad[i] += w->grad[s->off + i];
    if (g->tok_grad && w->tok_grad)
        for (long i = 0; i < n; i++)
            for (int t = 0; t < m->len[i]; t++)
                g->tok_grad[w->mine_at[i] + t] += w->tok_grad[w->start[s->off + i] + t];
}

static void set_free(set_whole *w) {
    free(w->logps), free(w->ref_logps), free(w->tok), free(w->ref_tok), free(w->len);
    free(w->start), free(w->mine_at), free(w->grad), free(w->tok_grad);
}

static int has_revisions_or_cal(const pref_batch *b) {
    int any = b->cal.logps || b->cal.tok_logps;
    for (int k = 0; k < PREF_NREV; k++) any |= b->rev[k].logps || b->rev[k].tok_logps;
    return any;
}

// a row's reward output: this rank's rows of the whole one
static void copy_rows(const shares *s, float *mine, const float *whole) {
    if (mine) memcpy(mine, whole + s->off, (size_t)s->rows[dist_rank()] * sizeof(float));
}

int pref_loss_gathered(const pref_loss_list *l, const pref_options *o, const pref_batch *mine,
                       pref_out *out, rlhf_err *err) {
    if (dist_size() == 1) return pref_loss(l, o, mine, out, err);
    if (has_revisions_or_cal(mine))
        return rlhf_fail(err, "a loss over the whole batch on MPI ranks takes no revisions or "
                              "calibration samples");
    shares s;
    shares_init(&s, mine->n);
    int unpaired = pref_list_kind(l) == PREF_KIND_UNPAIRED, nsets = unpaired ? 1 : 2;
    const pref_seqs *m_sets[2] = {unpaired ? &mine->completion : &mine->chosen, &mine->rejected};
    pref_grad *m_grads[2] = {unpaired ? &out->completion : &out->chosen, &out->rejected};
    pref_batch whole = {.n = (int)s.gn, .kl = mine->kl};
    pref_seqs *w_sets[2] = {unpaired ? &whole.completion : &whole.chosen, &whole.rejected};
    pref_out wo = {0};
    pref_grad *w_grads[2] = {unpaired ? &wo.completion : &wo.chosen, &wo.rejected};
    set_whole sw[2] = {0};
    for (int k = 0; k < nsets; k++) {
        gather_set(&s, m_sets[k], &sw[k], w_sets[k]);
        *w_grads[k] = (pref_grad){.grad = sw[k].grad, .tok_grad = sw[k].tok_grad};
    }
    float *margin = gather_rows(&s, mine->margin), *strength = gather_rows(&s, mine->strength);
    float *score = gather_rows(&s, mine->score), *value = gather_rows(&s, mine->value);
    float *weight = gather_rows(&s, mine->weight);
    float *prev_c = gather_rows(&s, mine->prev_chosen_logps);
    float *prev_r = gather_rows(&s, mine->prev_rejected_logps);
    uint8_t *label = NULL;
    if (mine->label) {
        long n = s.rows[dist_rank()];
        float *lf = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
        for (long i = 0; i < n; i++) lf[i] = mine->label[i];
        float *all = gather_rows(&s, lf);
        label = xmalloc((size_t)(s.gn > 0 ? s.gn : 1));
        for (long i = 0; i < s.gn; i++) label[i] = (uint8_t)all[i];
        free(lf), free(all);
    }
    whole.margin = margin, whole.strength = strength, whole.score = score, whole.value = value;
    whole.weight = weight, whole.prev_chosen_logps = prev_c, whole.prev_rejected_logps = prev_r;
    whole.label = label;
    float *rew = xmalloc((size_t)(3 * (s.gn > 0 ? s.gn : 1)) * sizeof(float));
    wo.reward_chosen = rew, wo.reward_rejected = rew + s.gn, wo.reward = rew + 2 * s.gn;
    int rc = pref_loss(l, o, &whole, &wo, err);
    if (rc == 0) {
        for (int k = 0; k < nsets; k++) scatter_grad(&s, m_sets[k], &sw[k], m_grads[k]);
        if (!unpaired) copy_rows(&s, out->reward_chosen, wo.reward_chosen);
        if (!unpaired) copy_rows(&s, out->reward_rejected, wo.reward_rejected);
        if (unpaired) copy_rows(&s, out->reward, wo.reward);
        out->m = wo.m;
    }
    for (int k = 0; k < nsets; k++) set_free(&sw[k]);
    free(margin), free(strength), free(score), free(value), free(weight), free(prev_c);
    free(prev_r), free(label), free(rew), free(s.rows);
    return rc;
}
