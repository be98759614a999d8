// train/online_score: the online loop's SCORE stage (the reward set, PAR, the
// penalties, ReMax's greedy baseline; data-parallel ranks score their own rows
// and share them) and its old log-probs under the rollout weights, the
// reference and the previous iterate (train/online.c runs them).
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "train/critic.h"
#include "train/online_loop.h"

static char **anchor_texts(online_loop *L, const rollout_batch *rb) {
    int any = 0;
    for (int k = 0; k < L->rs.n; k++) any |= L->rs.src[k].kind == REWARD_PAIRWISE;
    if (!any || strcmp(L->run.c->pairwise_anchor, "reference")) return NULL;
    const rlhf_tokenizer *tok = L->run.t->tok;
    char **a = xcalloc((size_t)rb->B, sizeof(char *));
    for (int r = 0; r < rb->B; r++) {
        int j = rb->prompt_index[r], n = L->cl[j];
        if (!L->cc[j] || n <= 0) continue;
        if (L->cc[j][n - 1] == tok_eos(tok)) n--;
        a[r] = tok_decode(tok, L->cc[j], n);
    }
    return a;
}

// decodes, scores with the reward set; totals (B) and per-source (B,S)
static int score_batch(online_loop *L, rollout_batch *rb, float *total, float *per_source,
                       rlhf_err *err) {
    const rlhf_tokenizer *tok = L->run.t->tok;
    rollout_decode(rb, tok);
    for (int r = 0; r < rb->B; r++) {  // DR-PO: the judge sees roll-in + generated tokens
        int h = L->rollin[rb->prompt_index[r]];
        if (h == 0) continue;
        free(rb->text[r]);
        const int *row = rb->tokens + (size_t)r * rb->T;  // continues the original prompt
        rb->text[r] = tok_decode_next(tok, rb->P - h > 0 ? row[rb->P - h - 1] : -1,
                                      row + rb->P - h, h + rb->length[r] - (rb->ended_eos[r] ? 1 : 0),
                                      0, NULL);
    }
    const char **ps = xmalloc((size_t)rb->B * sizeof(char *));
    for (int r = 0; r < rb->B; r++) ps[r] = L->prompt_text[L->ids[rb->prompt_index[r]]];
    char **anchors = anchor_texts(L, rb);
    int r0 = 0, r1 = rb->B, S = L->rs.n;  // data-parallel: this rank scores its own rows
    if (dist_size() > 1) rollout_share(rb->n_prompts, rb->n_samples, dist_rank(), &r0, &r1);
    reward_set_anchors(&L->rs, anchors ? (const char *const *)anchors + r0 : NULL);
    int rc = reward_set_score(&L->rs, ps + r0, (const char *const *)rb->text + r0, r1 - r0,
                              per_source ? per_source + (size_t)r0 * S : NULL, total + r0, err);
    if (rc == 0 && dist_size() > 1) {  // every rank gets every row's scores
        rollout_allgather_rows(total, rb->n_prompts, rb->n_samples, 1);
        if (per_source && S > 0) rollout_allgather_rows(per_source, rb->n_prompts, rb->n_samples, S);
    }
    for (int r = 0; rc == 0 && rb->env_reward && r < rb->B; r++) total[r] += rb->env_reward[r];
    free(ps);
    for (int r = 0; anchors && r < rb->B; r++) free(anchors[r]);
    free(anchors);
    return rc;
}

// the rollout's options: --env_program's episodes go through rollout_generate's hook
rollout_opts online_rollout_options(const online_loop *L, int n) {
    rollout_opts ro = {.n_samples = n, .gen = L->gen,
                       .batch_size = L->run.c->generation_batch_size};
    if (L->episodes)
        ro.episodes = episode_rollout, ro.episodes_ctx = L->episodes, ro.prompt_text = L->texts;
    return ro;
}

// scores of k extra samples of m for each prompt of the batch (greedy for
// ReMax, the reference's for PAR): out (n_prompts * k)
static int side_scores(online_loop *L, rlhf_model *m, int k, float temperature, int penalties,
                       float *out, rlhf_err *err) {
    const online_config *c = L->run.c;
    rollout_opts ro = online_rollout_options(L, k);
    ro.gen.temperature = temperature;
    rollout_batch rb;
    if (rollout_generate(m, (const int *const *)L->pp, L->pl, c->base.batch_size, &ro,
                         &L->run.rng, &rb, err))
        return -1;
    int rc = score_batch(L, &rb, out, NULL, err);
    if (rc == 0 && penalties) reward_apply_penalties(&L->pen, rb.B, rb.length, rb.ended_eos, out);
    rollout_free(&rb);
    return rc;
}

int online_score_samples(online_run *r, rollout_batch *rb, float *out, rlhf_err *err) {
    online_loop *L = (online_loop *)((char *)r - offsetof(online_loop, run));
    if (score_batch(L, rb, out, NULL, err)) return -1;
    reward_apply_penalties(&L->pen, rb->B, rb->length, rb->ended_eos, out);
    return 0;
}

// SCORE: the reward set, then PAR, the penalties and ReMax's greedy baseline
int online_score(online_loop *L, rlhf_err *err) {
    online_run *r = &L->run;
    const online_config *c = r->c;
    int it = r->iteration, bs = c->base.batch_size;
    if (score_batch(L, &r->rb, r->scores, r->per_source, err))
        return rlhf_fail_ctx(err, "iteration %d: scoring failed; stopping (checkpoints already "
                                  "written are kept, none is written now)",
                             it + 1);
    if (c->par_samples > 0) {
        float *refs = xmalloc((size_t)bs * c->par_samples * sizeof(float));
        int rc = side_scores(L, r->ref, c->par_samples, c->temperature, 0, refs, err);
        if (rc == 0) reward_par(bs, r->n, r->scores, c->par_samples, refs, c->par_k);
        free(refs);
        if (rc) return rlhf_fail_ctx(err, "iteration %d: PAR reference samples", it + 1);
    }
    reward_apply_penalties(&L->pen, r->B, r->rb.length, r->rb.ended_eos, r->scores);
    if (r->needs & ONLINE_NEED_BASELINES) {  // the greedy sample's reward (ReMax)
        float *g = xmalloc((size_t)bs * sizeof(float));
        int rc = side_scores(L, r->t->m, 1, 0.0f, 1, g, err);
        for (int row = 0; row < r->B && rc == 0; row++) r->baselines[row] = g[row / r->n];
        free(g);
        if (rc) return rlhf_fail_ctx(err, "iteration %d: ReMax greedy baseline", it + 1);
    }
    return 0;
}

// Every training forward of the run (the policy's, the reference's, the previous
// iterate's) gives log-probs at the sampling temperature: log softmax(logits / T),
// as TRL and verl compute them, so they match the sampler's.
void online_logits_at_temperature(online_run *r) {
    r->t->m->logit_temperature = r->c->temperature;
    if (r->ref) r->ref->logit_temperature = r->c->temperature;
    if (r->prev) r->prev->logit_temperature = r->c->temperature;
}

// old log-probs (and values) under the rollout weights, the reference's, and
// the KL between them (no gradient: 64 rows at a time unless --micro_batch_size)
int online_old_logprobs(online_loop *L, rlhf_err *err) {
    online_run *r = &L->run;
    rollout_batch *rb = &r->rb;
    int B = r->B, T = rb->T, values = (r->needs & ONLINE_NEED_VALUES) && !r->critic;
    int chunk = r->micro > 0 ? r->micro : 64;
    online_logits_at_temperature(r);  // again: a resumed run may hold new models
    int r0 = 0, r1 = B;  // data-parallel: this rank's rows, then every rank gets all
    if (dist_size() > 1) rollout_share(r->n_prompts, r->n, dist_rank(), &r0, &r1);
    rollout_batch mine = rollout_view(rb, r0, r1);
    size_t o = (size_t)r0 * T;
    if (rollout_forward(r->t->m, &mine, chunk, r->old_logp + o, values ? r->old_values + o : NULL,
                        NULL, err))
        return -1;
    if (r->critic) {  // a separate critic's values
        if (critic_values(r->critic, &mine, chunk, r->old_values + o, err)) return -1;
    } else if (!values) {
        memset(r->old_values, 0, (size_t)B * T * sizeof(float));
    }
    if (r->ref && rollout_forward(r->ref, &mine, chunk, r->ref_logp + o, NULL, NULL, err)) return -1;
    if (r->prev && rollout_forward(r->prev, &mine, chunk, r->prev_logp + o, NULL, NULL, err))
        return -1;
    if (dist_size() > 1) {
        float *all[] = {r->old_logp, values || r->critic ? r->old_values : NULL,
                        r->ref ? r->ref_logp : NULL, r->prev ? r->prev_logp : NULL};
        for (int k = 0; k < 4; k++)
            if (all[k]) rollout_allgather_rows(all[k], r->n_prompts, r->n, T);
    }
    double logp_diff = 0, kl_seq = 0, kl_tok = 0;
    for (int row = 0; row < B; row++) {
        double s = 0, k = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)row * T + t;
            if (rb->mask[i] == 0) continue;
            double d = fabs((double)r->old_logp[i] - rb->sample_logp[i]);
            if (d > logp_diff) logp_diff = d;
            if (r->ref) s += r->old_logp[i] - r->ref_logp[i], k++;
        }
        kl_seq += s, kl_tok += k > 0 ? s / k : 0;
    }
    L->logp_diff = logp_diff, r->kl = kl_seq / B, r->kl_token = kl_tok / B;
    return 0;
}
