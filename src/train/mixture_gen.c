// train/mixture_gen: generation from the geometric mixture of a policy and a
// reference (the math in train/mixture_gen.h). The loop is generate()'s
// (model/generate.c) with two KV caches stepped together: the same left-padded
// prompts prefill both, each step mixes the two rows of logits and draws with
// sample_token, and the drawn token feeds both caches.
#include "train/mixture_gen.h"

#include <stdlib.h>
#include <string.h>

void mixture_logits(int V, float coef, const float *policy, const float *ref, float *out) {
    float a = coef, b = 1.0f - coef;
    for (int i = 0; i < V; i++) out[i] = a * ref[i] + b * policy[i];
}

int mixture_generate(rlhf_model *policy, rlhf_model *ref, float coef, const int *const *prompts,
                     const int *prompt_len, int B, const rlhf_gen_opts *o, rlhf_rng *rng,
                     rlhf_gen_out *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    if (!(coef >= 0.0f && coef <= 1.0f))
        return rlhf_fail(err, "mixture: mixture_coef must be in [0, 1] (got %g)", coef);
    int V = policy->cfg.vocab_size, P = 0, n_new = o->max_new_tokens;
    if (ref->cfg.vocab_size != V)
        return rlhf_fail(err, "mixture: the policy's vocabulary (%d) and the reference's (%d) "
                              "differ; a geometric mixture needs the same tokens",
                         V, ref->cfg.vocab_size);
    if (B <= 0) return rlhf_fail(err, "mixture: no prompts");
    if (n_new < 0) return rlhf_fail(err, "mixture: max_new_tokens must be >= 0 (got %d)", n_new);
    for (int b = 0; b < B; b++) {
        if (prompt_len[b] <= 0)
            return rlhf_fail(err, "mixture: prompt %d is empty (generation needs at least one "
                                  "token, e.g. BOS)",
                             b);
        if (prompt_len[b] > P) P = prompt_len[b];
    }
    int room = policy->cfg.max_seq_len < ref->cfg.max_seq_len ? policy->cfg.max_seq_len
                                                                : ref->cfg.max_seq_len;
    if (P + n_new > room)
        return rlhf_fail(err, "mixture: prompt length %d + max_new_tokens %d exceeds max_seq_len "
                              "%d (the smaller of the policy's and the reference's)",
                         P, n_new, room);
    int *tok = xcalloc((size_t)B * P, sizeof(int));
    uint8_t *mask = xcalloc((size_t)B * P, 1);
    for (int b = 0; b < B; b++) {
        int pad = P - prompt_len[b];
        for (int j = 0; j < prompt_len[b]; j++) {
            tok[(size_t)b * P + pad + j] = prompts[b][j];
            mask[(size_t)b * P + pad + j] = 1;
        }
    }
    out->B = B;
    out->n_new = n_new;
    out->tokens = xmalloc((size_t)B * (n_new ? n_new : 1) * sizeof(int));
    out->logp = xcalloc((size_t)B * (n_new ? n_new : 1), sizeof(float));
    out->length = xcalloc(B, sizeof(int));
    out->ended_eos = xcalloc(B, 1);
    for (size_t i = 0; i < (size_t)B * n_new; i++) out->tokens[i] = o->pad_id;

    rlhf_kv_cache *kv_pol = kv_cache_create(&policy->cfg, B, P + n_new);
    rlhf_kv_cache *kv_ref = kv_cache_create(&ref->cfg, B, P + n_new);
    float *lp = xmalloc((size_t)B * V * sizeof(float)), *lr = xmalloc((size_t)B * V * sizeof(float));
    int *next = xcalloc(B, sizeof(int));
    uint8_t *live = xmalloc(B);
    memset(live, 1, B);
    int rc = model_forward_cached(policy, kv_pol, tok, mask, P, lp, err);
    if (rc == 0) rc = model_forward_cached(ref, kv_ref, tok, mask, P, lr, err);
    for (int step = 0; rc == 0 && step < n_new; step++) {
        int any = 0;
        for (int b = 0; b < B; b++) {
            if (!live[b]) continue;
            float *z = lp + (size_t)b * V, logp;
            mixture_logits(V, coef, z, lr + (size_t)b * V, z);
            int t = sample_token(z, V, o, rng, &logp);
            out->tokens[(size_t)b * n_new + step] = t;
            out->logp[(size_t)b * n_new + step] = logp;
            out->length[b]++;
            next[b] = t;
            int stop = t == o->eos_id;
            for (int k = 0; k < o->n_stop_ids && k < 2; k++) stop |= t == o->stop_ids[k];
            if (stop) out->ended_eos[b] = 1, live[b] = 0;
            else any = 1;
        }
        if (!any || step == n_new - 1) break;
        for (int b = 0; b < B; b++)
            if (!live[b]) next[b] = 0;
        rc = model_forward_cached(policy, kv_pol, next, live, 1, lp, err);
        if (rc == 0) rc = model_forward_cached(ref, kv_ref, next, live, 1, lr, err);
    }
    free(tok), free(mask), free(lp), free(lr), free(next), free(live);
    kv_cache_free(kv_pol);
    kv_cache_free(kv_ref);
    if (rc) gen_out_free(out);
    return rc;
}

int mixture_rollout(rlhf_model *policy, rlhf_model *ref, float coef, const int *const *prompts,
                    const int *prompt_len, int n_prompts, const rollout_opts *o, rlhf_rng *rng,
                    rollout_batch *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    int n = o->n_samples, B = n_prompts * n, N = o->gen.max_new_tokens;
    if (n_prompts < 1 || n < 1) return rlhf_fail(err, "mixture rollout: no prompts or no samples");
    if (N < 1) return rlhf_fail(err, "mixture rollout: max_new_tokens must be >= 1");
    const int **rows = xmalloc((size_t)B * sizeof(int *));
    int *rlen = xmalloc((size_t)B * sizeof(int)), P = 0;
    for (int r = 0; r < B; r++) {
        rows[r] = prompts[r / n], rlen[r] = prompt_len[r / n];
        if (rlen[r] > P) P = rlen[r];
    }
    int *gtok = xmalloc((size_t)B * N * sizeof(int));
    float *glp = xcalloc((size_t)B * N, sizeof(float));
    out->length = xcalloc(B, sizeof(int));
    out->ended_eos = xcalloc(B, 1);
    int bs = o->batch_size > 0 ? o->batch_size : B;
    for (int s = 0; s < B; s += bs) {
        int nb = B - s < bs ? B - s : bs;
        rlhf_gen_out g;
        if (mixture_generate(policy, ref, coef, rows + s, rlen + s, nb, &o->gen, rng, &g, err)) {
            free(rows), free(rlen), free(gtok), free(glp);
            rollout_free(out);
            return -1;
        }
        memcpy(gtok + (size_t)s * N, g.tokens, (size_t)nb * N * sizeof(int));
        memcpy(glp + (size_t)s * N, g.logp, (size_t)nb * N * sizeof(float));
        memcpy(out->length + s, g.length, (size_t)nb * sizeof(int));
        memcpy(out->ended_eos + s, g.ended_eos, (size_t)nb);
        gen_out_free(&g);
    }
    // the layout of train/rollout.h: prompts left-padded to P, completions from column P
    int L = 0;
    for (int r = 0; r < B; r++) L = out->length[r] > L ? out->length[r] : L;
    int T = P + L;
    out->n_prompts = n_prompts, out->n_samples = n, out->B = B, out->P = P, out->T = T;
    size_t BT = (size_t)B * T;
    out->tokens = xmalloc(BT * sizeof(int));
    out->targets = xmalloc(BT * sizeof(int));
    out->attn = xcalloc(BT, 1);
    out->mask = xcalloc(BT, sizeof(float));
    out->sample_logp = xcalloc(BT, sizeof(float));
    out->prompt_len = xmalloc((size_t)B * sizeof(int));
    out->prompt_index = xmalloc((size_t)B * sizeof(int));
    for (size_t i = 0; i < BT; i++) out->tokens[i] = o->gen.pad_id, out->targets[i] = -1;
    for (int r = 0; r < B; r++) {
        int pl = rlen[r], len = out->length[r];
        int *tk = out->tokens + (size_t)r * T, *tg = out->targets + (size_t)r * T;
        uint8_t *at = out->attn + (size_t)r * T;
        out->prompt_len[r] = pl, out->prompt_index[r] = r / n;
        for (int j = 0; j < pl; j++) tk[P - pl + j] = rows[r][j], at[P - pl + j] = 1;
        for (int j = 0; j < len; j++) {
            tk[P + j] = gtok[(size_t)r * N + j], at[P + j] = 1;
            tg[P - 1 + j] = tk[P + j];
            out->mask[(size_t)r * T + P - 1 + j] = 1;
            out->sample_logp[(size_t)r * T + P - 1 + j] = glp[(size_t)r * N + j];
        }
    }
    out->view = (rlhf_batch){.B = B, .T = T, .tokens = out->tokens, .targets = out->targets,
                             .mask = out->attn};
    free(rows), free(rlen), free(gtok), free(glp);
    return 0;
}
