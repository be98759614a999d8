// train/online_dpo: the update of `rlhf online-dpo` — online (and iterative)
// DPO. The samples of each prompt are scored by the reward set, paired (the
// best against the worst, or every ordered pair with different scores) and any
// paired loss of algo/pref is taken on the pairs' summed completion
// log-probs; its gradient with respect to each row's sum reaches every
// completion token of the row. The rest of the iteration (rollout, scoring,
// reference log-probs, logging, checkpoints, resetting the reference for
// iterative DPO) is the online loop's (train/online.c).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/online.h"

int online_dpo_pairs(const char *mode, int n_prompts, int n, const float *scores, int *chosen,
                     int *rejected, rlhf_err *err) {
    int all = !strcmp(mode, "all");
    if (!all && strcmp(mode, "max_min"))
        return rlhf_fail(err, "--pairs must be max_min (best against worst) or all");
    int k = 0;
    for (int p = 0; p < n_prompts; p++) {
        const float *s = scores + (size_t)p * n;
        int r0 = p * n;
        if (all) {
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    if (s[i] > s[j]) chosen[k] = r0 + i, rejected[k] = r0 + j, k++;
            continue;
        }
        int best = 0, worst = n - 1;
        for (int j = 1; j < n; j++)
            if (s[j] > s[best]) best = j;  // first maximum
        for (int j = n - 2; j >= 0; j--)
            if (s[j] < s[worst]) worst = j;  // last minimum
        if (s[best] > s[worst]) chosen[k] = r0 + best, rejected[k] = r0 + worst, k++;
    }
    return k;
}

int online_dpo_update(rlhf_model *m, rlhf_optim *o, const rollout_batch *rb, const float *logp,
                      const float *ref_logp, const int *chosen, const int *rejected, int n_pairs,
                      const pref_loss_list *losses, const pref_options *opt, int micro,
                      pref_metrics *pm, float *grad_norm, rlhf_err *err) {
    int B = rb->B, T = rb->T;
    memset(pm, 0, sizeof *pm);
    *grad_norm = 0;
    if (n_pairs == 0) return 0;  // no prompt had samples of different reward
    // per-row sums of the completion's log-probs (policy under the current
    // weights, and reference) and lengths
    float *pol = xmalloc((size_t)B * sizeof(float)), *ref = xmalloc((size_t)B * sizeof(float));
    int *len = xmalloc((size_t)B * sizeof(int));
    for (int r = 0; r < B; r++) {
        double a = 0, b = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)r * T + t;
            if (rb->mask[i] == 0) continue;
            a += logp[i];
            b += ref_logp ? ref_logp[i] : 0;
        }
        pol[r] = (float)a, ref[r] = (float)b, len[r] = rb->length[r];
    }
    float *pc = xmalloc((size_t)n_pairs * 6 * sizeof(float));
    float *pr = pc + n_pairs, *rc = pr + n_pairs, *rr = rc + n_pairs, *gc = rr + n_pairs,
          *gr = gc + n_pairs;
    int *lc = xmalloc((size_t)n_pairs * 2 * sizeof(int)), *lr = lc + n_pairs;
    for (int k = 0; k < n_pairs; k++) {
        pc[k] = pol[chosen[k]], rc[k] = ref[chosen[k]], lc[k] = len[chosen[k]];
        pr[k] = pol[rejected[k]], rr[k] = ref[rejected[k]], lr[k] = len[rejected[k]];
        gc[k] = gr[k] = 0;
    }
    pref_batch pb = {.n = n_pairs};
    pb.chosen = (pref_seqs){.logps = pc, .ref_logps = ref_logp ? rc : NULL, .len = lc};
    pb.rejected = (pref_seqs){.logps = pr, .ref_logps = ref_logp ? rr : NULL, .len = lr};
    pref_out out = {0};
    out.chosen.grad = gc;
    out.rejected.grad = gr;
    int rc_ = pref_loss(losses, opt, &pb, &out, err);
    float *g = NULL, *dlogp = NULL;
    int *rows = NULL;
    if (rc_ == 0 && !isfinite(out.m.loss))
        rc_ = rlhf_fail(err, "the loss is not finite; stopping (checkpoints already written are "
                             "kept; try a lower --learning_rate)");
    if (rc_ == 0) {
        *pm = out.m;
        // d(loss)/d(row sum), rows that appear in several pairs add up
        g = xcalloc(B, sizeof(float));
        for (int k = 0; k < n_pairs; k++) g[chosen[k]] += gc[k], g[rejected[k]] += gr[k];
        int n_rows = 0;
        rows = xmalloc((size_t)B * sizeof(int));
        for (int r = 0; r < B; r++)
            if (g[r] != 0) rows[n_rows++] = r;
        int bs = micro > 0 ? micro : (n_rows > 0 ? n_rows : 1);
        dlogp = xmalloc((size_t)bs * T * sizeof(float));
        rollout_rows rr_ = {0};
        model_zero_grad(m);
        for (int s = 0; s < n_rows && rc_ == 0; s += bs) {
            int u = n_rows - s < bs ? n_rows - s : bs;
            rollout_gather(rb, rows + s, u, &rr_);
            if ((rc_ = model_forward(m, &rr_.view, err))) break;
            for (int j = 0; j < u; j++)
                for (int t = 0; t < T; t++) {
                    size_t i = (size_t)rows[s + j] * T + t;
                    dlogp[(size_t)j * T + t] = rb->mask[i] != 0 ? g[rows[s + j]] : 0.0f;
                }
            model_backward(m, dlogp, NULL, NULL, NULL);
        }
        rollout_rows_free(&rr_);
        if (rc_ == 0 && n_rows > 0) *grad_norm = optim_step(o, m);
    }
    free(pol), free(ref), free(len), free(pc), free(lc), free(g), free(rows), free(dlogp);
    return rc_;
}
