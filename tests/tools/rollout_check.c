// rollout_check: the rollout engine's promises, on small random models
// (GPT-2 and Llama families): the (B,T) layout (left-padded prompts,
// completions from column P, targets and response mask where the completion's
// log-probs sit, EOS / truncation flags), and that the log-probs the trainer
// recomputes with a forward pass under the same weights equal the sampling
// log-probs at temperature 1. Prints PASS/FAIL lines; exit 1 on failure.
// Run by tests/online_test.py.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/rollout.h"

static int failed = 0;

static void report(int ok, const char *name, const char *why) {
    if (ok) printf("PASS %s\n", name);
    else printf("FAIL %s: %s\n", name, why);
    failed += !ok;
}

// checks the layout; returns a message or NULL
static const char *check_layout(const rollout_batch *rb, int *const *prompts, const int *plen,
                                int eos) {
    static char why[256];
    for (int r = 0; r < rb->B; r++) {
        int p = rb->prompt_index[r], P = rb->P, T = rb->T, L = rb->length[r];
        const int *tk = rb->tokens + (size_t)r * T, *tg = rb->targets + (size_t)r * T;
        const float *mk = rb->mask + (size_t)r * T;
        const uint8_t *at = rb->attn + (size_t)r * T;
        if (p != r / rb->n_samples || rb->prompt_len[r] != plen[p]) return "prompt index/length";
        for (int j = 0; j < plen[p]; j++)
            if (tk[P - plen[p] + j] != prompts[p][j] || !at[P - plen[p] + j]) return "prompt tokens";
        int real = 0, masked = 0;
        for (int t = 0; t < T; t++) {
            real += at[t];
            masked += mk[t] != 0;
            if ((mk[t] != 0) != (tg[t] >= 0)) return "mask != (targets >= 0)";
            if (tg[t] >= 0 && (t < P - 1 || t > P + L - 2 || tg[t] != tk[t + 1]))
                return "target outside the completion";
        }
        if (real != plen[p] + L || masked != L) return "count of real / masked tokens";
        if (rb->ended_eos[r] != (tk[P + L - 1] == eos && eos >= 0)) return "EOS flag";
        for (int j = 0; j < L - 1; j++)
            if (tk[P + j] == eos) return "EOS inside a completion";
        if (!rb->ended_eos[r] && L != rb->T - rb->P && L < 0) return "length";
    }
    snprintf(why, sizeof why, "ok");
    return NULL;
}

static void run(const char *size, uint64_t seed) {
    rlhf_err err;
    rlhf_model *m;
    if (model_load_any(size, seed, &m, &err)) {
        report(0, size, err.msg);
        return;
    }
    int V = m->cfg.vocab_size, n_prompts = 5, n = 3;
    rlhf_rng rng;
    rng_seed(&rng, seed);
    int *prompts[5], plen[5];
    for (int i = 0; i < n_prompts; i++) {
        plen[i] = 1 + (int)(rng_u64(&rng) % 9);
        prompts[i] = malloc((size_t)plen[i] * sizeof(int));
        for (int j = 0; j < plen[i]; j++) prompts[i][j] = (int)(rng_u64(&rng) % 256);
    }
    rollout_opts o = {.n_samples = n, .batch_size = 4,
                      .gen = {.max_new_tokens = 12, .temperature = 1.0f, .top_k = 0,
                              .top_p = 1.0f, .eos_id = -1, .pad_id = 0}};
    // pick as EOS the token this model samples most, so that some rows stop early
    rollout_batch rb;
    if (rollout_generate(m, (const int *const *)prompts, plen, n_prompts, &o, &rng, &rb, &err)) {
        report(0, size, err.msg);
        return;
    }
    int *count = calloc(V, sizeof(int)), best = 0;
    for (int r = 0; r < rb.B; r++)
        for (int j = 0; j < rb.length[r]; j++) count[rb.tokens[(size_t)r * rb.T + rb.P + j]]++;
    for (int v = 0; v < V; v++)
        if (count[v] > count[best]) best = v;
    free(count);
    rollout_free(&rb);
    o.gen.eos_id = best;
    char name[128];
    for (int mode = 0; mode < 3; mode++) {
        // 0: temperature 1, one generate call per 4 rows; 1: all rows at once;
        // 2: temperature 0.7 (the forward pass then differs, by design)
        o.batch_size = mode == 0 ? 4 : 0;
        o.gen.temperature = mode == 2 ? 0.7f : 1.0f;
        if (rollout_generate(m, (const int *const *)prompts, plen, n_prompts, &o, &rng, &rb, &err)) {
            report(0, size, err.msg);
            return;
        }
        const char *bad = check_layout(&rb, prompts, plen, best);
        snprintf(name, sizeof name, "rollout_layout_%s_mode%d", size, mode);
        report(bad == NULL, name, bad ? bad : "");
        int n_eos = 0;
        for (int r = 0; r < rb.B; r++) n_eos += rb.ended_eos[r];
        float *lp = calloc((size_t)rb.B * rb.T, sizeof(float));
        float *ent = calloc((size_t)rb.B * rb.T, sizeof(float));
        if (rollout_forward(m, &rb, 4, lp, NULL, ent, &err)) {
            report(0, size, err.msg);
            return;
        }
        double maxd = 0, sum_lp = 0;
        for (size_t i = 0; i < (size_t)rb.B * rb.T; i++)
            if (rb.mask[i] != 0) {
                double d = fabs((double)lp[i] - rb.sample_logp[i]);
                if (d > maxd) maxd = d;
                sum_lp += lp[i];
            }
        char why[200];
        snprintf(why, sizeof why, "max |sampling - recomputed| = %.3g", maxd);
        snprintf(name, sizeof name, "rollout_logp_match_%s_mode%d", size, mode);
        if (mode < 2) report(maxd < 2e-4 && isfinite(sum_lp), name, why);
        printf("  %s: %d rows, %d ended at EOS (token %d), P=%d T=%d, %s\n", size, rb.B, n_eos,
               best, rb.P, rb.T, why);
        if (mode == 2) {
            snprintf(name, sizeof name, "rollout_tempered_logp_differs_%s", size);
            report(maxd > 1e-3, name, "temperature 0.7 should not match the T=1 forward");
        }
        if (mode == 1) {
            snprintf(name, sizeof name, "rollout_eos_and_truncation_%s", size);
            report(n_eos > 0 && n_eos < rb.B, name, "want some rows ended at EOS and some cut");
        }
        free(lp);
        free(ent);
        rollout_free(&rb);
    }
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    model_free(m);
}

int main(void) {
    run("tiny", 7);
    run("llama-tiny", 11);
    return failed ? 1 : 0;
}
