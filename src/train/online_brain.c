// train/online_brain: the online update method `brain` (`rlhf brain`), BRAIn
// (Pandey et al. 2024, arXiv:2402.02479). Per iteration, for each prompt's n
// samples y_i of the rollout policy q' (the proposal):
//
//   log p(G=1|x,y_i) from the reward (--goodness, --beta, --reward_baseline)
//   α_i  = softmax_i[log p_SFT(y_i) + log p(G=1|x,y_i) − log q'(y_i)]   (the reference
//          is p_SFT: --ref_model, by default the initial policy)
//   α'_i = softmax_i[log q_θ(y_i) − log q'(y_i)]                       (--baseline)
//   loss = −Σ_i α_i log α'_i,  ∂loss/∂log q_θ(y_i) = −(α_i − α'_i)
//
// then --num_iterations optimizer steps on the whole batch (log q_θ recomputed
// before each step after the first; at the first q_θ = q', so α' is uniform).
// The sequence's gradient goes to every counted token of it. The math is
// algo/brain's; docs/brain.md says how the online proposal relates to the
// paper's SFT proposal.
//
// On MPI ranks (docs/mpi.md, "Online trainers") the weights are computed on
// every rank from the gathered log-probs of the whole batch (a prompt's group is
// one rank's, but the loss is the mean over all groups); each rank
// back-propagates its own rows.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/online_update.h"

typedef struct {
    double *logq, *prop, *prior, *logg, *alpha, *alpha_p, *dlogq;  // (B) each
    float *g, *logp;                                               // (B), (B,T)
    size_t cap_bt;
    // the iteration's
    double loss, ess, weight_max, target_kl_share;
    int steps;
} brain_state;

// ---------------------------------------------------------------- options --

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, brain.field), (help), __VA_ARGS__}

static const online_option brain_options[] = {
    OPT("goodness", STR, name.goodness,
        "reward -> log p(G=1|x,y): sigmoid (Bradley-Terry, log sigmoid((r - r_b)/beta)) or exp "
        "(r/beta: the target is p_SFT exp(r/beta), PPO's KL-regularised optimum)"),
    OPT("beta", FLOAT, beta,
        "temperature of the reward in log p(G=1|x,y) (smaller: sharper weights; exp: the KL "
        "coefficient)", 1e-6, 1e6),
    OPT("reward_baseline", STR, name.reward_baseline,
        "sigmoid's r_b: mean (the mean reward of the prompt's samples) or a number"),
    OPT("baseline", BOOL, baseline,
        "the self-normalised baseline alpha' (false: the GDC-style gradient -sum alpha_i "
        "grad log q, the paper's ablation)"),
    {NULL},
};

static void brain_defaults(online_config *c) {
    online_brain_options *b = &c->brain;
    b->name.goodness = "sigmoid";
    b->name.reward_baseline = "mean";
    b->beta = 1.0f;
    b->baseline = 1;
}

static int brain_resolve(online_config *c, rlhf_err *err) {
    online_brain_options *b = &c->brain;
    if (brain_goodness_from_name(b->name.goodness, &b->goodness))
        return rlhf_fail(err, "--goodness must be sigmoid or exp (got \"%s\")", b->name.goodness);
    const char *rb = b->name.reward_baseline;
    char *end;
    b->reward_baseline_mean = !strcmp(rb, "mean");
    if (!b->reward_baseline_mean) {
        b->reward_baseline_value = strtod(rb, &end);
        if (!*rb || *end || !isfinite(b->reward_baseline_value))
            return rlhf_fail(err, "--reward_baseline must be mean or a number (got \"%s\")", rb);
    }
    return 0;
}

static unsigned brain_needs_of(const online_config *c) {
    (void)c;
    return ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS;
}

static int brain_check(const online_config *c, rlhf_err *err) {
    if (c->num_generations < 2)
        return rlhf_fail(err, "brain self-normalises importance weights over the samples of a "
                              "prompt: set --num_generations 2 or more (BRAIn's default is 8)");
    return 0;
}

static int brain_steps(const online_config *c) { return c->num_iterations; }

static void brain_describe(const online_config *c, char *buf, size_t cap) {
    const online_brain_options *b = &c->brain;
    snprintf(buf, cap,
             "BRAIn (Pandey et al. 2024): fit the policy q to the reward-conditioned posterior\n"
             "  p(y|x,G=1) ∝ p_SFT(y|x) p(G=1|x,y)       (p_SFT: --ref_model, default the start)\n"
             "by self-normalised importance sampling over the --num_generations samples y_i of\n"
             "each prompt, drawn from the rollout policy q':\n"
             "  alpha_i  = softmax_i[log p_SFT(y_i) + log p(G=1|x,y_i) - log q'(y_i)]\n"
             "  alpha'_i = softmax_i[log q(y_i) - log q'(y_i)]             (the baseline)\n"
             "  loss = -sum_i alpha_i log alpha'_i,   grad = -sum_i (alpha_i - alpha'_i) grad log q(y_i)\n"
             "log p(G=1|x,y) = log sigmoid((r - r_b)/beta) (--goodness sigmoid, r_b --reward_baseline)\n"
             "or r/beta (--goodness exp: the target is then PPO's optimum p_SFT exp(r/beta)).\n"
             "Now: --goodness %s --beta %g --reward_baseline %s --baseline %s. With n = 2 and\n"
             "beta -> 0 (argmax weights) on SFT samples this is DPO. Writes metrics.jsonl (reward,\n"
             "kl, loss, ess: the effective sample size of alpha, weight_max), samples.jsonl and\n"
             "checkpoints. docs/brain.md.\n"
             "example: rlhf brain --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
             "         --output_dir runs/brain --max_steps 100 --learning_rate 1e-5 --beta 0.5",
             b->name.goodness, b->beta, b->name.reward_baseline, b->baseline ? "true" : "false");
}

// ------------------------------------------------------------------ setup --

static int brain_setup(online_run *r, rlhf_err *err) {
    (void)err;
    brain_state *s = xcalloc(1, sizeof *s);
    r->self = s;
    double **d[] = {&s->logq, &s->prop, &s->prior, &s->logg, &s->alpha, &s->alpha_p, &s->dlogq};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) *d[i] = xcalloc(r->B, sizeof(double));
    s->g = xcalloc(r->B, sizeof(float));
    return 0;
}

// ------------------------------------------------------------- the update --

// out (B) = each row's log-prob summed over its counted tokens, in double
static void row_sums(const rollout_batch *rb, const float *logp, double *out) {
    for (int row = 0; row < rb->B; row++) {
        double a = 0;
        for (int t = 0; t < rb->T; t++) {
            size_t i = (size_t)row * rb->T + t;
            if (rb->mask[i] != 0) a += logp[i];
        }
        out[row] = a;
    }
}

static int brain_update(online_run *r, rlhf_err *err) {
    brain_state *s = r->self;
    const online_config *c = r->c;
    const online_brain_options *b = &c->brain;
    const rollout_batch *rb = &r->rb;
    int B = r->B, n = r->n, G = r->n_prompts;
    size_t BT = (size_t)B * rb->T;
    if (BT > s->cap_bt) s->logp = xrealloc(s->logp, BT * sizeof(float)), s->cap_bt = BT;
    brain_log_goodness(b->goodness, b->beta, b->reward_baseline_mean, b->reward_baseline_value,
                       G, n, r->scores, s->logg);
    row_sums(rb, r->old_logp, s->prop);
    row_sums(rb, r->ref_logp, s->prior);
    s->loss = s->ess = s->weight_max = 0;
    s->steps = 0;
    int chunk = r->micro > 0 ? r->micro : 64;
    for (int e = 0; e < c->num_iterations; e++) {
        if (e == 0) memcpy(s->logq, s->prop, (size_t)B * sizeof(double));  // q_θ = q' now
        else {
            if (rollout_forward_shared(r->t->m, rb, chunk, s->logp, err)) return -1;
            row_sums(rb, s->logp, s->logq);
        }
        double loss = brain_loss(G, n, s->logq, s->prop, s->prior, s->logg, b->baseline,
                                 s->alpha, s->alpha_p, s->dlogq);
        if (!isfinite(loss))
            return rlhf_fail(err, "brain: the loss is %g; stopping (checkpoints already written "
                                  "are kept; try a lower --learning_rate or a larger --beta)",
                             loss);
        for (int i = 0; i < B; i++) s->g[i] = (float)s->dlogq[i];
        if (e == 0)
            for (int p = 0; p < G; p++) {
                const double *a = s->alpha + (size_t)p * n;
                double mx = 0;
                for (int i = 0; i < n; i++) mx = a[i] > mx ? a[i] : mx;
                s->ess += brain_ess(n, a) / G, s->weight_max += mx / G;
            }
        int rows = 0;
        model_zero_grad(r->t->m);
        if (online_backward_rows(r, rb, s->g, &rows, err)) return -1;
        if (rows > 0) r->grad_norm += optim_step(r->t->o, r->t->m), r->updates++;
        s->loss += loss, s->steps++;
    }
    return 0;
}

// ---------------------------------------------------------------- metrics --

static void brain_metrics(online_run *r, cJSON *j) {
    brain_state *s = r->self;
    cJSON_AddNumberToObject(j, "loss", s->steps ? s->loss / s->steps : 0);
    cJSON_AddNumberToObject(j, "ess", s->ess);
    cJSON_AddNumberToObject(j, "weight_max", s->weight_max);
}

static void brain_summary(online_run *r, cJSON *sum) {
    const online_brain_options *b = &r->c->brain;
    cJSON_AddStringToObject(sum, "goodness", b->name.goodness);
    cJSON_AddNumberToObject(sum, "brain_beta", b->beta);
    cJSON_AddBoolToObject(sum, "baseline", b->baseline);
}

static void brain_free(online_run *r) {
    brain_state *s = r->self;
    if (!s) return;
    void *bufs[] = {s->logq, s->prop, s->prior, s->logg, s->alpha, s->alpha_p, s->dlogq, s->g,
                    s->logp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s);
    r->self = NULL;
}

const online_update online_update_brain = {
    .name = "brain",
    .about = "BRAIn: self-normalised importance weights toward p_SFT(y|x) p(G=1|x,y)",
    .data_parallel = 1,
    .needs = ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS,
    .options = brain_options,
    .pref_kind = -1,
    .defaults = brain_defaults,
    .resolve = brain_resolve,
    .needs_of = brain_needs_of,
    .check = brain_check,
    .steps_per_iteration = brain_steps,
    .describe = brain_describe,
    .setup = brain_setup,
    .update = brain_update,
    .metrics = brain_metrics,
    .summary = brain_summary,
    .free = brain_free,
};
