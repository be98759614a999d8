// train/online_xpo: the online update method `xpo` (`rlhf xpo`), XPO —
// exploratory preference optimisation (Xie et al. 2024, arXiv:2405.21046), as
// TRL's XPOTrainer defines it. Per iteration, for every prompt x of the batch:
//
//   y  ~ π_θ    the rollout's sample (the loop's; --num_generations of them)
//   ỹ  ~ π_ref  as many samples of the reference (drawn here, on a stream of its
//               own seeded from (--seed, iteration): a resumed run draws the same)
//   the reward sources score ỹ as the loop scored y (with the same length / EOS /
//   overlong penalties); y is chosen when r(y) >= r(ỹ) (TRL: ties go to y)
//   loss = mean over pairs of  DPO(β, sigmoid | ipo) on (y_w, y_l) against π_ref
//                              + α log π_θ(ỹ)                   (algo/xpo.h)
//
// then --num_iterations optimizer steps on those pairs (log π_θ of both samples
// recomputed before each step after the first). Row i of the rollout is paired
// with row i of the reference's samples (same prompt, same sample index). The
// method keeps nothing across iterations but its pairs.jsonl file: --resume
// needs no state of its own. docs/xpo.md.
//
// On MPI ranks (docs/mpi.md, "Online trainers") the reference's samples are
// drawn as the rollout's (each rank its prompt groups, one process's random
// numbers) and scored on the rank that drew them; every forward runs on the
// rank's rows and is gathered, so the loss and its per-row gradients are the
// same on every rank; each rank back-propagates its own rows.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "train/online_update.h"

typedef struct {
    rollout_batch refb;       // the iteration's samples of the reference (B rows)
    float *ref_scores;        // (B) their rewards
    float *pol_t_logp;        // (B,T') the policy's log-probs of them
    float *ref_t_logp;        // (B,T') the reference's
    float *logp;              // (B,T) the policy's of its own samples (epochs after the first)
    size_t cap_t, cap_y;
    double *pol_y, *ref_y, *pol_t, *ref_t, *d_y, *d_t; // (B) each: summed log-probs, gradients
    float *g_y, *g_t;         // (B) the gradients as online_backward_rows takes them
    uint8_t *y_chosen;        // (B)
    // the iteration's (the first epoch's loss terms: the policy that sampled)
    xpo_stats st;
    double ref_logp_diff, ref_eos, ref_len, ref_logps;
    FILE *dump;               // pairs.jsonl (--log_pairs)
} xpo_state;

// ---------------------------------------------------------------- options --

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, xpo.field), (help), __VA_ARGS__}

static const online_option xpo_options[] = {
    OPT("alpha", FLOAT, alpha,
        "weight of the exploration term alpha * log pi(y~) on the reference's samples y~ "
        "(TRL's default 1e-5; 0: online DPO against reference samples)", 0, 1e6),
    OPT("beta", FLOAT, beta, "DPO's beta: the strength of the tie to the reference", 1e-6, 1e6),
    OPT("loss_type", STR, name.loss_type,
        "the pair loss: sigmoid (DPO, -log sigmoid(beta h)) or ipo ((h - 1/(2 beta))^2)"),
    OPT("log_pairs", INT, log_pairs,
        "pairs per iteration written to pairs.jsonl with their texts, rewards and log-probs "
        "(0: none)", 0, 1 << 20),
    {NULL},
};

static void xpo_defaults(online_config *c) {
    online_xpo_options *x = &c->xpo;
    x->name.loss_type = "sigmoid";
    x->alpha = 1e-5f;
    x->beta = 0.1f;
}

static int xpo_resolve(online_config *c, rlhf_err *err) {
    online_xpo_options *x = &c->xpo;
    if (!x->name.loss_type || xpo_loss_type_from_name(x->name.loss_type, &x->loss_type))
        return rlhf_fail(err, "--loss_type must be sigmoid or ipo for xpo (got \"%s\")",
                         x->name.loss_type ? x->name.loss_type : "");
    return 0;
}

static unsigned xpo_needs_of(const online_config *c) {
    (void)c;
    return ONLINE_NEED_REFERENCE;
}

static int xpo_check(const online_config *c, rlhf_err *err) {
    // the loop transforms the policy samples' rewards in ways the reference's
    // samples would not see: refuse them rather than compare unlike numbers
    if (c->par_samples > 0)
        return rlhf_fail(err, "--par_samples: xpo compares the policy's rewards with the "
                              "reference samples' raw rewards, and PAR would reshape only the "
                              "former; drop --par_samples");
    if (c->reset_prob > 0)
        return rlhf_fail(err, "--reset_prob: xpo's reference samples are scored without the "
                              "dataset-reset roll-in the policy's samples carry; drop "
                              "--reset_prob");
    return 0;
}

static int xpo_steps(const online_config *c) { return c->num_iterations; }

static void xpo_describe(const online_config *c, char *buf, size_t cap) {
    const online_xpo_options *x = &c->xpo;
    snprintf(buf, cap,
             "XPO (Xie et al. 2024, exploratory preference optimisation; TRL XPOTrainer): for\n"
             "each prompt, a sample y of the policy and a sample y~ of the reference\n"
             "(--ref_model, default the starting model); the reward sources score both and\n"
             "y is chosen when r(y) >= r(y~) (ties: the policy's). With\n"
             "  h = [log pi(y_w) - log ref(y_w)] - [log pi(y_l) - log ref(y_l)]\n"
             "  loss = mean[ -log sigmoid(beta h)  (or ipo: (h - 1/(2 beta))^2)  + alpha log pi(y~) ]\n"
             "the alpha term lowers the policy's likelihood of what the reference says: an\n"
             "exploration bonus that pushes it off the reference's support. alpha = 0 is\n"
             "online DPO on (policy, reference) pairs. Now: --alpha %g --beta %g --loss_type %s.\n"
             "--num_generations n pairs sample j of the policy with sample j of the reference.\n"
             "Writes metrics.jsonl (reward, loss, loss/dpo, loss/xpo, objective/ref_scores,\n"
             "objective/scores_margin, rewards/*, ref/logp_diff_max, ...), samples.jsonl,\n"
             "pairs.jsonl (--log_pairs) and checkpoints. docs/xpo.md.\n"
             "example: rlhf xpo --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
             "         --output_dir runs/xpo --max_steps 100 --learning_rate 5e-7 --alpha 1e-5",
             x->alpha, x->beta, x->name.loss_type);
}

// ------------------------------------------------------------------ setup --

static int xpo_setup(online_run *r, rlhf_err *err) {
    xpo_state *s = xcalloc(1, sizeof *s);
    r->self = s;
    if (!r->ref) return rlhf_fail(err, "xpo needs a reference model (--ref_model)");
    double **d[] = {&s->pol_y, &s->ref_y, &s->pol_t, &s->ref_t, &s->d_y, &s->d_t};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) *d[i] = xcalloc(r->B, sizeof(double));
    s->ref_scores = xcalloc(r->B, sizeof(float));
    s->g_y = xcalloc(r->B, sizeof(float));
    s->g_t = xcalloc(r->B, sizeof(float));
    s->y_chosen = xcalloc(r->B, 1);
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

static void grow(float **p, size_t *cap, size_t n) {
    if (n > *cap) *p = xrealloc(*p, n * sizeof(float)), *cap = n;
}

// The reference's samples of the iteration's prompts (as many per prompt as the
// rollout has), their rewards (the loop's penalties applied as to the policy's)
// and the reference's log-probs of them.
static int sample_reference(online_run *r, xpo_state *s, rlhf_err *err) {
    const online_config *c = r->c;
    rlhf_rng rng;
    rng_seed(&rng, c->base.seed ^ (0x165667B19E3779F9ULL * (uint64_t)(r->iteration + 1)));
    rollout_free(&s->refb);
    rollout_opts ro = {.n_samples = r->n, .gen = *r->gen, .batch_size = c->generation_batch_size};
    if (rollout_generate(r->ref, (const int *const *)r->prompts, r->prompt_len, r->n_prompts, &ro,
                         &rng, &s->refb, err))
        return rlhf_fail_ctx(err, "xpo: sampling the reference");
    rollout_batch *rb = &s->refb;
    if (rb->B != r->B) return rlhf_fail(err, "xpo: %d reference samples for %d rows", rb->B, r->B);
    for (int i = 0; i < rb->B; i++)
        if (rb->prompt_index[i] != r->rb.prompt_index[i])
            return rlhf_fail(err, "xpo: reference row %d is of prompt %d, the policy's of %d", i,
                             rb->prompt_index[i], r->rb.prompt_index[i]);
    if (online_score_samples(r, rb, s->ref_scores, err))
        return rlhf_fail_ctx(err, "xpo: scoring the reference's samples");
    size_t BT = (size_t)rb->B * rb->T;
    grow(&s->pol_t_logp, &s->cap_t, BT);
    s->ref_t_logp = xrealloc(s->ref_t_logp, s->cap_t * sizeof(float));
    int chunk = r->micro > 0 ? r->micro : 64;
    if (rollout_forward_shared(r->ref, rb, chunk, s->ref_t_logp, err)) return -1;
    row_sums(rb, s->ref_t_logp, s->ref_t);
    // the samples are the reference's: its forward gives back their sampling log-probs
    double diff = 0, eos = 0, len = 0, lp = 0;
    for (size_t i = 0; i < BT; i++)
        if (rb->mask[i] != 0 && fabs((double)s->ref_t_logp[i] - rb->sample_logp[i]) > diff)
            diff = fabs((double)s->ref_t_logp[i] - rb->sample_logp[i]);
    for (int i = 0; i < rb->B; i++) eos += rb->ended_eos[i], len += rb->length[i], lp += s->ref_t[i];
    s->ref_logp_diff = diff, s->ref_eos = eos / rb->B, s->ref_len = len / rb->B;
    s->ref_logps = lp / rb->B;
    return 0;
}

// one pairs.jsonl line per pair (the first --log_pairs of the iteration): both
// texts, their rewards, which is chosen and the four log-probs the loss read
static void dump_pairs(online_run *r, xpo_state *s) {
    if (!s->dump) {
        if (!(s->dump = run_open_log(&r->t->run, "pairs.jsonl", r->t->resume_from[0] != 0)))
            return; // the run stops at this step (run_check), naming the file
    }
    for (int i = 0; i < r->B && i < r->c->xpo.log_pairs; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "step", r->iteration + 1);
        cJSON_AddNumberToObject(j, "prompt_index", r->rb.prompt_index[i]);
        cJSON_AddItemToObject(j, "policy", reward_json_text(r->rb.text[i]));
        cJSON_AddItemToObject(j, "reference", reward_json_text(s->refb.text[i]));
        cJSON_AddNumberToObject(j, "reward_policy", r->scores[i]);
        cJSON_AddNumberToObject(j, "reward_reference", s->ref_scores[i]);
        cJSON_AddBoolToObject(j, "policy_chosen", s->y_chosen[i]);
        cJSON_AddNumberToObject(j, "logps_policy", s->pol_y[i]);       // log pi(y)
        cJSON_AddNumberToObject(j, "ref_logps_policy", s->ref_y[i]);   // log ref(y)
        cJSON_AddNumberToObject(j, "logps_reference", s->pol_t[i]);    // log pi(y~)
        cJSON_AddNumberToObject(j, "ref_logps_reference", s->ref_t[i]); // log ref(y~)
        cJSON_AddNumberToObject(j, "length_reference", s->refb.length[i]);
        char *txt = cJSON_PrintUnformatted(j);
        fprintf(s->dump, "%s\n", txt);
        free(txt);
        cJSON_Delete(j);
    }
    run_note_write(&r->t->run, s->dump, "pairs.jsonl");
}

static int xpo_update(online_run *r, rlhf_err *err) {
    xpo_state *s = r->self;
    const online_config *c = r->c;
    const online_xpo_options *x = &c->xpo;
    int B = r->B, chunk = r->micro > 0 ? r->micro : 64;
    if (sample_reference(r, s, err)) return -1;
    for (int i = 0; i < B; i++) s->y_chosen[i] = r->scores[i] >= s->ref_scores[i];
    row_sums(&r->rb, r->ref_logp, s->ref_y);
    grow(&s->logp, &s->cap_y, (size_t)B * r->rb.T);
    for (int e = 0; e < c->num_iterations; e++) {
        // log pi of the policy's samples: the rollout weights' at the first epoch
        if (e == 0) row_sums(&r->rb, r->old_logp, s->pol_y);
        else {
            if (rollout_forward_shared(r->t->m, &r->rb, chunk, s->logp, err)) return -1;
            row_sums(&r->rb, s->logp, s->pol_y);
        }
        if (rollout_forward_shared(r->t->m, &s->refb, chunk, s->pol_t_logp, err)) return -1;
        row_sums(&s->refb, s->pol_t_logp, s->pol_t);
        xpo_stats st;
        double loss = xpo_loss(B, x->loss_type, x->beta, x->alpha, s->pol_y, s->ref_y, s->pol_t,
                               s->ref_t, s->y_chosen, s->d_y, s->d_t, &st);
        if (!isfinite(loss))
            return rlhf_fail(err, "xpo: the loss is %g; stopping (checkpoints already written are "
                                  "kept; try a lower --learning_rate)",
                             loss);
        if (e == 0) {
            s->st = st;
            if (x->log_pairs > 0 && dist_rank() == 0) dump_pairs(r, s);
        }
        for (int i = 0; i < B; i++) s->g_y[i] = (float)s->d_y[i], s->g_t[i] = (float)s->d_t[i];
        int ny = 0, nt = 0;
        model_zero_grad(r->t->m);
        if (online_backward_rows(r, &r->rb, s->g_y, &ny, err) ||
            online_backward_rows(r, &s->refb, s->g_t, &nt, err))
            return -1;
        if (ny + nt > 0) r->grad_norm += optim_step(r->t->o, r->t->m), r->updates++;
    }
    return 0;
}

// ---------------------------------------------------------------- metrics --

static void xpo_metrics(online_run *r, cJSON *j) {
    xpo_state *s = r->self;
    const xpo_stats *st = &s->st;
    double ms = 0, rs = 0;
    for (int i = 0; i < r->B; i++) ms += r->scores[i], rs += s->ref_scores[i];
    ms /= r->B, rs /= r->B;
    // TRL's names (the first epoch's: the policy that sampled)
    cJSON_AddNumberToObject(j, "loss", st->loss);
    cJSON_AddNumberToObject(j, "loss/dpo", st->loss_dpo);
    cJSON_AddNumberToObject(j, "loss/xpo", st->loss_xpo);
    cJSON_AddNumberToObject(j, "objective/model_scores", ms);
    cJSON_AddNumberToObject(j, "objective/ref_scores", rs);
    cJSON_AddNumberToObject(j, "objective/scores_margin", ms - rs);
    cJSON_AddNumberToObject(j, "rewards/chosen", st->rewards_chosen);
    cJSON_AddNumberToObject(j, "rewards/rejected", st->rewards_rejected);
    cJSON_AddNumberToObject(j, "rewards/margins", st->margins);
    cJSON_AddNumberToObject(j, "rewards/accuracies", st->accuracies);
    cJSON_AddNumberToObject(j, "logps/chosen", st->logps_chosen);
    cJSON_AddNumberToObject(j, "logps/rejected", st->logps_rejected);
    cJSON_AddNumberToObject(j, "val/ref_contain_eos_token", s->ref_eos);
    cJSON_AddNumberToObject(j, "alpha", r->c->xpo.alpha);
    cJSON_AddNumberToObject(j, "beta", r->c->xpo.beta);
    // ours: the share of pairs the policy's sample won, the reference samples'
    // log-probs (the policy's: what the alpha term lowers; the reference's), and
    // the largest |reference forward - sampling| log-prob of a token of them
    cJSON_AddNumberToObject(j, "policy_chosen", st->policy_chosen);
    cJSON_AddNumberToObject(j, "logps/ref_samples", st->logps_ref_samples);
    cJSON_AddNumberToObject(j, "ref/logps", s->ref_logps);
    cJSON_AddNumberToObject(j, "ref/length", s->ref_len);
    cJSON_AddNumberToObject(j, "ref/logp_diff_max", s->ref_logp_diff);
}

static void xpo_summary(online_run *r, cJSON *sum) {
    const online_xpo_options *x = &r->c->xpo;
    cJSON_AddNumberToObject(sum, "alpha", x->alpha);
    cJSON_AddNumberToObject(sum, "xpo_beta", x->beta);
    cJSON_AddStringToObject(sum, "loss_type", x->name.loss_type);
}

static void xpo_free(online_run *r) {
    xpo_state *s = r->self;
    if (!s) return;
    rollout_free(&s->refb);
    void *bufs[] = {s->ref_scores, s->pol_t_logp, s->ref_t_logp, s->logp, s->pol_y, s->ref_y,
                    s->pol_t, s->ref_t, s->d_y, s->d_t, s->g_y, s->g_t, s->y_chosen};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    if (s->dump) fclose(s->dump);
    free(s);
    r->self = NULL;
}

const online_update online_update_xpo = {
    .name = "xpo",
    .about = "XPO: DPO on (policy, reference) sample pairs plus alpha log pi(reference sample)",
    .data_parallel = 1,
    .needs = ONLINE_NEED_REFERENCE,
    .options = xpo_options,
    .pref_kind = -1,
    .defaults = xpo_defaults,
    .resolve = xpo_resolve,
    .needs_of = xpo_needs_of,
    .check = xpo_check,
    .steps_per_iteration = xpo_steps,
    .describe = xpo_describe,
    .setup = xpo_setup,
    .update = xpo_update,
    .metrics = xpo_metrics,
    .summary = xpo_summary,
    .free = xpo_free,
};
