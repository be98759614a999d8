// train/online_dpo: the update of `rlhf online-dpo` — online (and iterative)
// DPO. The samples of each prompt are scored by the reward set, paired (the
// best against the worst, or every ordered pair with different scores) and any
// paired loss of algo/pref is taken on the pairs' summed completion
// log-probs; its gradient with respect to each row's sum reaches every
// completion token of the row. With --ref_update_steps N the reference becomes
// the policy every N iterations (iterative DPO); it is then part of each
// checkpoint (ONLINE_NEED_MOVING_REFERENCE: the loop saves and restores it).
// The rest of the iteration (rollout, scoring, reference log-probs, logging,
// checkpoints) is the online loop's (train/online.c).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/online_update.h"

typedef struct {
    int *chosen, *rejected;  // (B*n) the pairs
    int n_pairs;
    pref_metrics pm;         // the last epoch's
} dpo_state;

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, dpo.field), (help), __VA_ARGS__}

// (and the options of the losses it takes: cli/pref_flags, from algo/pref)
static const online_option dpo_options[] = {
    OPT("loss_type", STR, name.loss_type, "paired preference loss or a comma list of them (the losses listed above; docs/losses.md)"),
    OPT("loss_weights", STR, name.loss_weights, "weights of a --loss_type list"),
    OPT("pairs", STR, name.pairs, "max_min (best vs worst sample of a prompt) or all (every better/worse pair)"),
    OPT("ref_update_steps", INT, ref_update_steps, "iterative DPO: the reference becomes the policy every N iterations (0: fixed)", 0, 1 << 30),
    OPT("f_divergence_type", STR, name.f_divergence_type, "reverse_kl, forward_kl, js_divergence or alpha_divergence"),
    {NULL},
};

static void dpo_defaults(online_config *c) {
    online_dpo_options *d = &c->dpo;
    d->name.loss_type = "sigmoid";
    d->name.pairs = "max_min";
    pref_options_default(&d->pref);
    d->name.f_divergence_type = pref_fdiv_name(d->pref.f_divergence_type);
}

static int dpo_resolve(online_config *c, rlhf_err *err) {
    online_dpo_options *d = &c->dpo;
    if (pref_fdiv_from_name(d->name.f_divergence_type, &d->pref.f_divergence_type, err))
        return -1;
    if (!strcmp(d->name.pairs, "all")) d->pairs = ONLINE_PAIRS_ALL;
    else if (!strcmp(d->name.pairs, "max_min")) d->pairs = ONLINE_PAIRS_MAX_MIN;
    else return rlhf_fail(err, "--pairs must be max_min (best against worst) or all");
    if (pref_parse(&d->losses, d->name.loss_type, d->name.loss_weights, err)) return -1;
    for (int i = 0; i < d->losses.n; i++) {
        const pref_loss_def *l = d->losses.def[i];
        if (l->kind != PREF_KIND_PAIRED || (l->needs & ~ONLINE_DPO_INPUTS)) {
            char names[600];
            pref_loss_names(names, sizeof names, PREF_KIND_PAIRED, ONLINE_DPO_INPUTS);
            return rlhf_fail(err, "--loss_type %s: online DPO takes paired losses on summed "
                                  "log-probs (%s)",
                             l->name, names);
        }
    }
    return 0;
}

static unsigned dpo_needs_of(const online_config *c) {
    return ONLINE_NEED_GROUPS | (c->dpo.pref.reference_free ? 0 : ONLINE_NEED_REFERENCE) |
           (c->dpo.ref_update_steps > 0 ? ONLINE_NEED_MOVING_REFERENCE : 0);
}

static int dpo_check(const online_config *c, rlhf_err *err) {
    if (c->dpo.pref.ld_alpha >= 0) return rlhf_fail(err, "--ld_alpha is not supported online");
    if (c->num_generations < 2)
        return rlhf_fail(err, "online DPO pairs samples of one prompt: set "
                              "--num_generations 2 or more");
    return 0;
}

// one step per epoch (--num_iterations)
static int dpo_steps_per_iteration(const online_config *c) { return c->num_iterations; }

static void dpo_describe(const online_config *c, char *buf, size_t cap) {
    snprintf(buf, cap,
             "Online DPO: sample --num_generations completions per prompt, score them with the\n"
             "reward sources, pair the best against the worst (--pairs max_min) and take a\n"
             "preference loss (--loss_type, default sigmoid) on the pairs; --ref_update_steps N\n"
             "makes it iterative DPO. Writes metrics.jsonl (reward, rewards/<source>, kl, pairs,\n"
             "loss, rewards/chosen, rewards/margins, ...), samples.jsonl and checkpoints.\n"
             "example: rlhf %s --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
             "         --output_dir runs/%s --max_steps 100 --learning_rate 5e-7",
             c->command->name, c->command->name);
}

int online_dpo_pairs(online_pairs mode, int n_prompts, int n, const float *scores, int *chosen,
                     int *rejected) {
    int k = 0;
    for (int p = 0; p < n_prompts; p++) {
        const float *s = scores + (size_t)p * n;
        int r0 = p * n;
        if (mode == ONLINE_PAIRS_ALL) {
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

// ------------------------------------------------------------- the update --

// The loss on the pairs, from the per-row sums of the completions' log-probs
// (the policy's under the current weights, and the reference's): fills g (B),
// d(loss)/d(row sum); rows in several pairs add up.
static int pair_loss(const online_run *r, const dpo_state *s, const float *logp, float *g,
                     pref_metrics *pm, rlhf_err *err) {
    const rollout_batch *rb = &r->rb;
    const float *ref_logp = r->ref ? r->ref_logp : NULL;
    int B = rb->B, T = rb->T, np = s->n_pairs;
    float *pol = xmalloc((size_t)B * sizeof(float)), *ref = xmalloc((size_t)B * sizeof(float));
    for (int row = 0; row < B; row++) {
        double a = 0, b = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)row * T + t;
            if (rb->mask[i] == 0) continue;
            a += logp[i];
            b += ref_logp ? ref_logp[i] : 0;
        }
        pol[row] = (float)a, ref[row] = (float)b;
    }
    float *pc = xmalloc((size_t)np * 6 * sizeof(float));
    float *pr = pc + np, *rc = pr + np, *rr = rc + np, *gc = rr + np, *gr = gc + np;
    int *lc = xmalloc((size_t)np * 2 * sizeof(int)), *lr = lc + np;
    for (int k = 0; k < np; k++) {
        int a = s->chosen[k], b = s->rejected[k];
        pc[k] = pol[a], rc[k] = ref[a], lc[k] = rb->length[a];
        pr[k] = pol[b], rr[k] = ref[b], lr[k] = rb->length[b];
        gc[k] = gr[k] = 0;
    }
    pref_batch pb = {.n = np};
    pb.chosen = (pref_seqs){.logps = pc, .ref_logps = ref_logp ? rc : NULL, .len = lc};
    pb.rejected = (pref_seqs){.logps = pr, .ref_logps = ref_logp ? rr : NULL, .len = lr};
    pref_out out = {0};
    out.chosen.grad = gc;
    out.rejected.grad = gr;
    int rc_ = pref_loss(&r->c->dpo.losses, &r->c->dpo.pref, &pb, &out, err);
    if (rc_ == 0 && !isfinite(out.m.loss))
        rc_ = rlhf_fail(err, "the loss is not finite; stopping (checkpoints already written are "
                             "kept; try a lower --learning_rate)");
    if (rc_ == 0) {
        *pm = out.m;
        for (int k = 0; k < np; k++) g[s->chosen[k]] += gc[k], g[s->rejected[k]] += gr[k];
    }
    free(pol), free(ref), free(pc), free(lc);
    return rc_;
}

// One optimizer step of the loss on the pairs: its gradient per row's sum goes
// back through forward/backward over the rows in pairs, micro rows at a time
// (0: all). logp (B,T): the policy's log-probs of the rollout now.
static int pair_step(online_run *r, dpo_state *s, const float *logp, float *grad_norm,
                     rlhf_err *err) {
    const rollout_batch *rb = &r->rb;
    int B = rb->B, T = rb->T;
    memset(&s->pm, 0, sizeof s->pm);
    *grad_norm = 0;
    if (s->n_pairs == 0) return 0;  // no prompt had samples of different reward
    float *g = xcalloc(B, sizeof(float));
    int rc = pair_loss(r, s, logp, g, &s->pm, err);
    int n_rows = 0, *rows = xmalloc((size_t)B * sizeof(int));
    for (int row = 0; row < B; row++)
        if (g[row] != 0) rows[n_rows++] = row;
    int bs = r->micro > 0 ? r->micro : (n_rows > 0 ? n_rows : 1);
    float *dlogp = xmalloc((size_t)bs * T * sizeof(float));
    rollout_rows rr = {0};
    rlhf_model *m = r->t->m;
    if (rc == 0) model_zero_grad(m);
    for (int k = 0; k < n_rows && rc == 0; k += bs) {
        int u = n_rows - k < bs ? n_rows - k : bs;
        rollout_gather(rb, rows + k, u, &rr);
        if ((rc = model_forward(m, &rr.view, err))) break;
        for (int j = 0; j < u; j++)
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)rows[k + j] * T + t;
                dlogp[(size_t)j * T + t] = rb->mask[i] != 0 ? g[rows[k + j]] : 0.0f;
            }
        model_backward(m, dlogp, NULL, NULL, NULL);
    }
    rollout_rows_free(&rr);
    if (rc == 0 && n_rows > 0) *grad_norm = optim_step(r->t->o, m);
    free(g), free(rows), free(dlogp);
    return rc;
}

static int dpo_setup(online_run *r, rlhf_err *err) {
    dpo_state *s = xcalloc(1, sizeof *s);
    r->self = s;
    s->chosen = xmalloc((size_t)r->B * r->n * sizeof(int));
    s->rejected = xmalloc((size_t)r->B * r->n * sizeof(int));
    return 0;
}

// --num_iterations epochs of one step on the pairs; then, every
// --ref_update_steps iterations, the reference becomes the policy
static int dpo_update(online_run *r, rlhf_err *err) {
    dpo_state *s = r->self;
    const online_config *c = r->c;
    s->n_pairs = online_dpo_pairs(c->dpo.pairs, r->n_prompts, r->n, r->scores, s->chosen,
                                  s->rejected);
    int chunk = r->micro > 0 ? r->micro : 64;
    for (int e = 0; e < c->num_iterations; e++) {
        float gn = 0;
        if (e > 0 && rollout_forward(r->t->m, &r->rb, chunk, r->old_logp, NULL, NULL, err))
            return -1;
        if (pair_step(r, s, r->old_logp, &gn, err)) return -1;
        r->grad_norm += gn, r->updates += s->n_pairs > 0;
    }
    if (c->dpo.ref_update_steps > 0 && r->ref && (r->iteration + 1) % c->dpo.ref_update_steps == 0)
        memcpy(r->ref->params, r->t->m->params, r->t->m->n_params * sizeof(float));
    return 0;
}

static void dpo_metrics(online_run *r, cJSON *j) {
    dpo_state *s = r->self;
    const pref_metrics *pm = &s->pm;
    cJSON_AddNumberToObject(j, "pairs", s->n_pairs);
    if (s->n_pairs == 0) return;
    // TRL's names; the last epoch's pairs
    cJSON_AddNumberToObject(j, "loss", pm->loss);
    cJSON_AddNumberToObject(j, "rewards/chosen", pm->rewards_chosen);
    cJSON_AddNumberToObject(j, "rewards/rejected", pm->rewards_rejected);
    cJSON_AddNumberToObject(j, "rewards/accuracies", pm->rewards_accuracies);
    cJSON_AddNumberToObject(j, "rewards/margins", pm->rewards_margins);
    cJSON_AddNumberToObject(j, "logps/chosen", pm->logps_chosen);
    cJSON_AddNumberToObject(j, "logps/rejected", pm->logps_rejected);
    double gap = 0;
    for (int k = 0; k < s->n_pairs; k++) gap += r->scores[s->chosen[k]] - r->scores[s->rejected[k]];
    cJSON_AddNumberToObject(j, "score_gap", gap / s->n_pairs);
}

static void dpo_summary(online_run *r, cJSON *sum) {
    // online DPO has no advantage estimator; summaries have always carried the
    // (unused) default here, and keep it so they compare with earlier runs
    cJSON_AddStringToObject(sum, "adv_estimator", "grpo");
}

static void dpo_free(online_run *r) {
    dpo_state *s = r->self;
    if (!s) return;
    free(s->chosen), free(s->rejected);
    free(s);
    r->self = NULL;
}

const online_update online_update_dpo = {
    .name = "dpo",
    .about = "a paired preference loss (--loss_type) on the best and worst samples of a prompt",
    .needs = ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS | ONLINE_NEED_MOVING_REFERENCE,
    .options = dpo_options,
    .pref_kind = PREF_KIND_PAIRED,
    .pref_inputs = ONLINE_DPO_INPUTS,
    .pref_offset = offsetof(online_config, dpo.pref),
    .defaults = dpo_defaults,
    .resolve = dpo_resolve,
    .needs_of = dpo_needs_of,
    .check = dpo_check,
    .steps_per_iteration = dpo_steps_per_iteration,
    .describe = dpo_describe,
    .setup = dpo_setup,
    .update = dpo_update,
    .metrics = dpo_metrics,
    .summary = dpo_summary,
    .free = dpo_free,
};
