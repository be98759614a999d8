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

// the coefficient and the two vocabularies (what both samplers need)
static int mixture_check(const rlhf_model *policy, const rlhf_model *ref, float coef,
                         rlhf_err *err) {
    if (!(coef >= 0.0f && coef <= 1.0f))
        return rlhf_fail(err, "mixture: mixture_coef must be in [0, 1] (got %g)", coef);
    if (ref->cfg.vocab_size != policy->cfg.vocab_size)
        return rlhf_fail(err, "mixture: the policy's vocabulary (%d) and the reference's (%d) "
                              "differ; a geometric mixture needs the same tokens",
                         policy->cfg.vocab_size, ref->cfg.vocab_size);
    return 0;
}

int mixture_generate(rlhf_model *policy, rlhf_model *ref, float coef, const int *const *prompts,
                     const int *prompt_len, int B, const rlhf_gen_opts *o, rlhf_rng *rng,
                     rlhf_gen_out *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    if (mixture_check(policy, ref, coef, err)) return -1;
    int V = policy->cfg.vocab_size, P = 0, n_new = o->max_new_tokens;
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

// what rollout_generate's sampler hook passes to mixture_generate
typedef struct {
    rlhf_model *ref;
    float coef;
} mixture_ctx;

static int mixture_hook(void *ctx, rlhf_model *m, const int *const *prompts, const int *prompt_len,
                        int B, const rlhf_gen_opts *o, rlhf_rng *rng, rlhf_gen_out *out,
                        rlhf_err *err) {
    const mixture_ctx *x = ctx;
    return mixture_generate(m, x->ref, x->coef, prompts, prompt_len, B, o, rng, out, err);
}

int mixture_rollout(rlhf_model *policy, rlhf_model *ref, float coef, const int *const *prompts,
                    const int *prompt_len, int n_prompts, const rollout_opts *o, rlhf_rng *rng,
                    rollout_batch *out, rlhf_err *err) {
    mixture_ctx ctx = {ref, coef};
    rollout_opts mo = *o;
    mo.generate = mixture_hook, mo.generate_ctx = &ctx;  // one process
    mo.mix_ref = ref, mo.mix_coef = coef;                // data-parallel (rollout.c, sample_dist)
    if (mixture_check(policy, ref, coef, err)) return -1;
    return rollout_generate(policy, prompts, prompt_len, n_prompts, &mo, rng, out, err);
}
