// Generation: batched prompts of different lengths (left-padded into one KV
// cache), sampling with temperature / top-k / top-p, stopping at EOS or
// max_new_tokens. Every sampled token comes with its log-prob under the
// distribution it was drawn from, which online RL needs.
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float p;
    int i;
} prob_index;

static int cmp_desc(const void *a, const void *b) {
    float x = ((const prob_index *)a)->p, y = ((const prob_index *)b)->p;
    return (x < y) - (x > y);
}

// k-th largest value of x (n), 1 <= k <= n; scratch (n)
static float kth_largest(const float *x, int n, int k, float *scratch) {
    memcpy(scratch, x, (size_t)n * sizeof(float));
    int lo = 0, hi = n - 1, want = k - 1;  // quickselect for descending order
    while (lo < hi) {
        float pivot = scratch[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (scratch[i] > pivot) i++;
            while (scratch[j] < pivot) j--;
            if (i <= j) {
                float t = scratch[i];
                scratch[i] = scratch[j];
                scratch[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return scratch[want];
}

// Greedy (temperature 0) returns the argmax and its log-prob under the model's
// untempered distribution. Otherwise logits are divided by the temperature,
// cut to the top-k and then to the smallest set whose mass reaches top-p, and
// renormalised; the returned log-prob is under that final distribution.
int sample_token(float *logits, int V, const rlhf_gen_opts *o, rlhf_rng *rng, float *logp) {
    if (!(o->temperature > 0.0f)) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        float lse = log_softmax_inplace(logits, V);
        (void)lse;
        if (logp) *logp = logits[best];
        return best;
    }
    static __thread float *buf = NULL;
    static __thread prob_index *cand = NULL;
    static __thread int cap = 0;
    if (cap < V) {
        free(buf);
        free(cand);
        buf = xmalloc((size_t)V * sizeof(float));
        cand = xmalloc((size_t)V * sizeof(prob_index));
        cap = V;
    }
    float inv_t = 1.0f / o->temperature;
    for (int i = 0; i < V; i++) logits[i] *= inv_t;
    if (o->top_k > 0 && o->top_k < V) {
        float th = kth_largest(logits, V, o->top_k, buf);
        // keep exactly top_k (ties at the threshold: the first ones by index)
        int above = 0;
        for (int i = 0; i < V; i++) above += logits[i] > th;
        int ties_left = o->top_k - above;
        for (int i = 0; i < V; i++) {
            if (logits[i] > th) continue;
            if (logits[i] == th && ties_left > 0) {
                ties_left--;
                continue;
            }
            logits[i] = -INFINITY;
        }
    }
    log_softmax_inplace(logits, V);  // logits now hold log-probs
    if (o->top_p > 0.0f && o->top_p < 1.0f) {
        // only tokens with p >= (1-top_p)/(V-1) can be in the nucleus
        float cutoff = (1.0f - o->top_p) / (float)(V > 1 ? V - 1 : 1);
        int nc = 0;
        for (int i = 0; i < V; i++) {
            float p = expf(logits[i]);
            if (p >= cutoff) cand[nc++] = (prob_index){p, i};
        }
        qsort(cand, nc, sizeof *cand, cmp_desc);
        double cum = 0.0;
        int keep = nc;
        for (int j = 0; j < nc; j++) {
            cum += cand[j].p;
            if (cum >= o->top_p) {
                keep = j + 1;
                break;
            }
        }
        if (keep == 0) keep = 1;
        double mass = 0.0;
        for (int j = 0; j < keep; j++) mass += cand[j].p;
        double u = rng_uniform(rng) * mass, acc = 0.0;
        int pick = cand[keep - 1].i;
        for (int j = 0; j < keep; j++) {
            acc += cand[j].p;
            if (u < acc) {
                pick = cand[j].i;
                break;
            }
        }
        if (logp) *logp = logits[pick] - (float)log(mass);
        return pick;
    }
    double u = rng_uniform(rng), acc = 0.0;
    int pick = -1, last_ok = 0;
    for (int i = 0; i < V; i++) {
        if (logits[i] == -INFINITY) continue;
        last_ok = i;
        acc += exp((double)logits[i]);
        if (u < acc) {
            pick = i;
            break;
        }
    }
    if (pick < 0) pick = last_ok;  // rounding left u above the total mass
    if (logp) *logp = logits[pick];
    return pick;
}

void gen_out_free(rlhf_gen_out *o) {
    free(o->tokens);
    free(o->logp);
    free(o->length);
    free(o->ended_eos);
    memset(o, 0, sizeof *o);
}

int generate(rlhf_model *m, const int *const *prompts, const int *prompt_len, int B,
             const rlhf_gen_opts *o, rlhf_rng *rng, rlhf_gen_out *out, rlhf_err *err) {
    int V = m->cfg.vocab_size, P = 0, n_new = o->max_new_tokens;
    memset(out, 0, sizeof *out);
    if (B <= 0) return rlhf_fail(err, "no prompts");
    if (n_new < 0) return rlhf_fail(err, "max_new_tokens must be >= 0 (got %d)", n_new);
    for (int b = 0; b < B; b++) {
        if (prompt_len[b] <= 0)
            return rlhf_fail(err, "prompt %d is empty: generation needs at least one token "
                                  "(e.g. BOS)",
                             b);
        if (prompt_len[b] > P) P = prompt_len[b];
    }
    if (P + n_new > m->cfg.max_seq_len)
        return rlhf_fail(err, "prompt length %d + max_new_tokens %d exceeds the model's "
                              "max_seq_len %d",
                         P, n_new, m->cfg.max_seq_len);
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

    rlhf_kv_cache *kv = kv_cache_create(&m->cfg, B, P + n_new);
    float *logits = xmalloc((size_t)B * V * sizeof(float));
    int *next = xcalloc(B, sizeof(int));
    uint8_t *live = xmalloc(B);
    memset(live, 1, B);
    int rc = model_forward_cached(m, kv, tok, mask, P, logits, err);
    for (int step = 0; rc == 0 && step < n_new; step++) {
        int any = 0;
        for (int b = 0; b < B; b++) {
            if (!live[b]) continue;
            float lp;
            int t = sample_token(logits + (size_t)b * V, V, o, rng, &lp);
            out->tokens[(size_t)b * n_new + step] = t;
            out->logp[(size_t)b * n_new + step] = lp;
            out->length[b]++;
            next[b] = t;
            int stop = t == o->eos_id;
            for (int k = 0; k < o->n_stop_ids && k < 2; k++) stop |= t == o->stop_ids[k];
            if (stop) {
                out->ended_eos[b] = 1;
                live[b] = 0;
            } else {
                any = 1;
            }
        }
        if (!any || step == n_new - 1) break;
        for (int b = 0; b < B; b++)
            if (!live[b]) next[b] = 0;
        rc = model_forward_cached(m, kv, next, live, 1, logits, err);
    }
    free(tok);
    free(mask);
    free(logits);
    free(next);
    free(live);
    kv_cache_free(kv);
    if (rc) gen_out_free(out);
    return rc;
}
