// train/online_pg: the policy-gradient update of the online trainer (`rlhf
// grpo`, `rlhf rloo`, `rlhf ppo`; REINFORCE++ and ReMax by --adv_estimator).
// Per iteration: token rewards (the score on the last token, the KL in the
// reward with --kl_in reward) -> advantages (algo/rl's registry) -> PF-PPO
// filter -> --num_iterations epochs over mini-batches of prompts: forward, the
// policy loss (algo/rl's registry: PPO clip, GSPO), + the KL in the loss, +
// the clipped value loss, backward with dlogp (and dvalues), AdamW. With
// --critic_model the values come from a separate critic (train/critic.h): the
// clipped value loss trains it alone, with its own AdamW stepped after each
// policy step on the same mini-batch, and the policy's loss has no value part.
// Every formula is algo/rl's; docs/online_rl.md ("Trainer") and
// docs/ppo_critic.md walk through it.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "train/critic.h"
#include "train/online_update.h"

typedef struct {
    double pg_loss, kl_loss, kl_token, v_loss, vf_clipfrac, clip_frac, clip_frac_lower;
    double approx_kl, ppo_kl, ratio_max, ratio_min;
    double ent_sum, ent_tokens, ent_loss;
    double critic_grad_norm;  // summed over the critic's steps (--critic_model)
} pg_stats;

typedef struct {
    rl_adv_config adv;
    rl_policy_config pc;
    int use_values, use_ref, mini;
    float *token_rewards, *adv_v, *ret, *train_mask, *weights; // (B,T) x4, (B)
    size_t cap_bt;
    // mini-batch scratch
    rollout_rows rows;
    int *own;         // data-parallel: this rank's rows of a mini-batch
    float *m_mask, *m_old, *m_ref, *m_adv, *m_ret, *m_oldv, *dlogp, *dv, *dent;
    size_t cap_mb;
    pg_stats st;      // the iteration's
    float ev;         // explained variance of the old values (value head)
} pg_state;

static void grow(float **p, size_t n) { *p = xrealloc(*p, (n ? n : 1) * sizeof(float)); }

// ---------------------------------------------------------------- options --

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, pg.field), (help), __VA_ARGS__}

static const online_option pg_options[] = {
    OPT("adv_estimator", STR, name.adv_estimator, "advantage estimator (the estimators listed above)"),
    OPT("scale_rewards", STR, name.scale_rewards, "grpo: divide by the std of the group, the batch, or none (Dr. GRPO)"),
    OPT("loss_agg_mode", STR, name.loss_agg_mode, "token-mean, seq-mean-token-mean, seq-mean-token-sum or seq-mean-token-sum-norm (TRL: bnpo, grpo, dr_grpo)"),
    OPT("importance_sampling_level", STR, name.importance_sampling_level, "policy loss by ratio level (the policy losses listed above)"),
    OPT("kl_estimator", STR, name.kl_estimator, "k1, k2, k3 or abs"),
    OPT("kl_in", STR, name.kl_in, "where the KL to the reference goes: reward (per token) or loss"),
    OPT("beta", FLOAT, beta, "KL coefficient (0: no reference model)", 0, 1e6, "kl_coef"),
    OPT("kl_target", FLOAT, kl_target, "adaptive KL controller's target (0: fixed --beta)", 0, 1e6),
    OPT("kl_horizon", FLOAT, kl_horizon, "adaptive KL controller's horizon in samples", 1, 1e12),
    OPT("epsilon", FLOAT, epsilon, "PPO clip range (lower)", 0, 10, "cliprange"),
    OPT("epsilon_high", FLOAT, epsilon_high, "upper clip range, DAPO clip-higher (-1: --epsilon)", -1, 10),
    OPT("dual_clip", FLOAT, dual_clip, "dual-clip bound c > 1 for negative advantages (0: off)", 0, 1e6, "clip_ratio_c"),
    OPT("sapo_temperature_pos", FLOAT, sapo_temperature_pos, "sapo: the soft gate's temperature for A > 0 (TRL)", 1e-6, 1e6),
    OPT("sapo_temperature_neg", FLOAT, sapo_temperature_neg, "sapo: the soft gate's temperature for A <= 0 (TRL)", 1e-6, 1e6),
    OPT("vespo_k_pos", FLOAT, vespo_k_pos, "vespo: the Gamma weight's power k for A >= 0 (TRL)", 0, 1e6),
    OPT("vespo_lambda_pos", FLOAT, vespo_lambda_pos, "vespo: the Gamma weight's decay lambda for A >= 0 (TRL)", 0, 1e6),
    OPT("vespo_k_neg", FLOAT, vespo_k_neg, "vespo: k for A < 0 (TRL)", 0, 1e6),
    OPT("vespo_lambda_neg", FLOAT, vespo_lambda_neg, "vespo: lambda for A < 0 (TRL)", 0, 1e6),
    OPT("mini_batch_size", INT, mini_batch_size, "prompts per optimizer step (0: the whole batch)", 0, 1 << 20),
    OPT("filter", STR, name.filter, "PF-PPO: none, best, best_random, best_worst or reweight"),
    OPT("filter_power", FLOAT, filter_power, "PF-PPO reweight: |score|^p", 0, 100),
    OPT("macro_action", STR, name.macro_action, "MA-RLHF: none or ngram:N (gae)"),
    OPT("gamma", FLOAT, gamma, "discount (gae, reinforce_pp)", 0, 1),
    OPT("lam", FLOAT, lam, "GAE lambda", 0, 1, "lambda"),
    OPT("adv_eps", FLOAT, adv_eps, "grpo: std epsilon", 0, 1),
    OPT("whiten_advantages", BOOL, whiten_advantages, "gae: whiten advantages over the batch"),
    OPT("value_head", BOOL, value_head, "a value head on the policy's own trunk (gae needs values: this or --critic_model)"),
    OPT("critic_model", STR, critic_model, "a separate critic (OpenRLHF --critic_pretrain, TRL value_model) for gae: a model path (a reward model's score head becomes its value head) or \"policy\" (a copy of --model); its own AdamW, trained on the value loss alone; saved as critic/ in each checkpoint", 0, 0, "critic_pretrain"),
    OPT("critic_learning_rate", FLOAT, critic_learning_rate, "the critic's learning rate (OpenRLHF; -1: --learning_rate)", -1, 10),
    OPT("vf_coef", FLOAT, vf_coef, "weight of the value loss in the shared-trunk loss (--value_head; a separate critic minimises the value loss itself)", 0, 1e6),
    OPT("cliprange_value", FLOAT, cliprange_value, "value clip range (0: unclipped)", 0, 1e6),
    OPT("entropy_coeff", FLOAT, entropy_coeff, "entropy bonus: loss -= coeff * agg(entropy of the next-token distribution) over completion tokens (verl actor.entropy_coeff; 0: off)", 0, 1e6),
    {NULL},
};

static void pg_defaults(online_config *c) {
    online_pg_options *p = &c->pg;
    p->name.adv_estimator = "grpo";
    p->name.scale_rewards = "group";
    p->name.loss_agg_mode = "token-mean";
    p->name.importance_sampling_level = "token";
    p->name.kl_estimator = "k1";
    p->name.kl_in = "reward";
    p->name.filter = "none";
    p->name.macro_action = "none";
    p->beta = 0.05f;
    p->kl_horizon = 10000;
    p->epsilon = 0.2f;
    p->epsilon_high = -1;  // = epsilon
    p->filter_power = 2;
    p->gamma = 1.0f;
    p->lam = 0.95f;
    p->adv_eps = 1e-6f;
    p->whiten_advantages = 1;
    p->vf_coef = 0.1f;
    p->cliprange_value = 0.2f;
    p->critic_learning_rate = -1;  // = --learning_rate
    rl_policy_config pc;  // the variants' own settings: TRL's defaults
    rl_policy_config_default(&pc);
    p->sapo_temperature_pos = pc.sapo_temperature_pos, p->sapo_temperature_neg = pc.sapo_temperature_neg;
    p->vespo_k_pos = pc.vespo_k_pos, p->vespo_lambda_pos = pc.vespo_lambda_pos;
    p->vespo_k_neg = pc.vespo_k_neg, p->vespo_lambda_neg = pc.vespo_lambda_neg;
}

static int pg_resolve(online_config *c, rlhf_err *err) {
    online_pg_options *p = &c->pg;
    if (!(p->adv_estimator = rl_adv_find(p->name.adv_estimator)))
        return rl_adv_compute(p->name.adv_estimator, NULL, NULL, NULL, NULL, err);
    if (rl_scale_from_name(p->name.scale_rewards, &p->scale_rewards, err)) return -1;
    if (rl_macro_parse(p->name.macro_action, &p->macro_n, err)) return -1;
    if (rl_policy_lookup(p->name.importance_sampling_level, &p->policy_loss, err))
        return rlhf_fail_ctx(err, "--importance_sampling_level");
    if (rl_agg_from_name(p->name.loss_agg_mode, &p->loss_agg_mode, err)) return -1;
    if (rl_kl_from_name(p->name.kl_estimator, &p->kl_estimator, err)) return -1;
    if (!strcmp(p->name.kl_in, "loss")) p->kl_in = ONLINE_KL_IN_LOSS;
    else if (!strcmp(p->name.kl_in, "reward")) p->kl_in = ONLINE_KL_IN_REWARD;
    else
        return rlhf_fail(err, "--kl_in must be reward (a per-token penalty in the reward, as PPO "
                              "and RLOO) or loss (GRPO)");
    return rl_filter_from_name(p->name.filter, &p->filter, err);
}

static unsigned pg_needs_of(const online_config *c) {
    const rl_adv_def *a = c->pg.adv_estimator;
    return (c->pg.beta > 0 ? ONLINE_NEED_REFERENCE : 0) |
           (rl_adv_needs(a, RL_NEED_VALUES) ? ONLINE_NEED_VALUES : 0) |
           (rl_adv_needs(a, RL_NEED_VALUES) && c->pg.critic_model ? ONLINE_NEED_CRITIC : 0) |
           (rl_adv_needs(a, RL_NEED_BASELINES) ? ONLINE_NEED_BASELINES : 0) |
           (rl_adv_needs(a, RL_NEED_GROUPS) || c->pg.filter != RL_FILTER_NONE ? ONLINE_NEED_GROUPS
                                                                             : 0);
}

static int pg_check(const online_config *c, rlhf_err *err) {
    const online_pg_options *p = &c->pg;
    const char *est = p->name.adv_estimator;
    int values = rl_adv_needs(p->adv_estimator, RL_NEED_VALUES);
    if (p->dual_clip != 0 && p->dual_clip <= 1)
        return rlhf_fail(err, "--dual_clip must be > 1 (verl uses 3), or 0 for off");
    if (p->policy_loss && !strcmp(p->policy_loss->name, "cispo") &&
        (p->epsilon_high >= 0 ? p->epsilon_high : p->epsilon) < 1)
        fprintf(stderr, "note: cispo caps the importance weight at --epsilon_high itself (%g now); "
                        "TRL recommends --epsilon_high 5\n",
                p->epsilon_high >= 0 ? p->epsilon_high : p->epsilon);
    if (p->critic_model && !values)
        return rlhf_fail(err, "--critic_model: --adv_estimator %s uses no values, so a critic "
                              "would not be used; use --adv_estimator gae (PPO) or drop "
                              "--critic_model", est);
    if (p->critic_model && !p->critic_model[0])
        return rlhf_fail(err, "--critic_model is empty: give a model path or \"policy\"");
    if (values && !p->value_head && !p->critic_model)
        return rlhf_fail(err, "--adv_estimator %s needs a value model: add --critic_model "
                              "(a separate critic) or --value_head (a head on the policy)", est);
    if (p->value_head && !values)
        fprintf(stderr, "note: --value_head is unused with --adv_estimator %s\n", est);
    if (rl_adv_needs(p->adv_estimator, RL_NEED_GROUPS) && c->num_generations < 2)
        return rlhf_fail(err, "--adv_estimator %s compares samples of one prompt: set "
                              "--num_generations 2 or more",
                         est);
    if (p->filter != RL_FILTER_NONE && c->num_generations < 2)
        return rlhf_fail(err, "--filter %s picks among the samples of a prompt: set "
                              "--num_generations 2 or more",
                         p->name.filter);
    return 0;
}

// --num_iterations epochs of ceil(prompts / --mini_batch_size) mini-batches
static int pg_steps_per_iteration(const online_config *c) {
    int bs = c->base.batch_size, mini = c->pg.mini_batch_size > 0 ? c->pg.mini_batch_size : bs;
    return c->num_iterations * ((bs + mini - 1) / mini);
}

static void pg_describe(const online_config *c, char *buf, size_t cap) {
    const char *cmd = c->command->name;
    int vh = c->pg.value_head || c->pg.critic_model;
    snprintf(buf, cap,
             "Online RL: sample --num_generations completions per prompt, score them, update the\n"
             "policy with the PPO clipped loss (%s defaults: --adv_estimator %s, KL %s in the %s,\n"
             "beta %g%s). Writes metrics.jsonl (reward, rewards/<source>, kl, entropy, clip_frac,\n"
             "approx_kl, completion_length, truncated_share%s), samples.jsonl and checkpoints.\n"
             "example: rlhf %s --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
             "         --output_dir runs/%s --max_steps 100 --learning_rate 1e-5",
             cmd, c->pg.name.adv_estimator, c->pg.name.kl_estimator, c->pg.name.kl_in, c->pg.beta,
             c->pg.critic_model ? ", a separate critic" : vh ? ", a value head" : "",
             vh ? ", value_loss, explained_variance" : "", cmd, cmd);
    if (rl_adv_needs(c->pg.adv_estimator, RL_NEED_VALUES))
        snprintf(buf + strlen(buf), cap - strlen(buf),
                 "\nvalues: a head on the policy (--value_head) or a separate critic with its own\n"
                 "optimizer: --critic_model policy|PATH --critic_learning_rate LR (saved as critic/\n"
                 "in each checkpoint; docs/ppo_critic.md)");
}

// ------------------------------------------------------------------ setup --

static int pg_setup(online_run *r, rlhf_err *err) {
    const online_config *c = r->c;
    const online_pg_options *p = &c->pg;
    pg_state *s = xcalloc(1, sizeof *s);
    r->self = s;
    rl_adv_config_default(&s->adv);
    s->adv.gamma = p->gamma;
    s->adv.lambda = p->lam;
    s->adv.eps = p->adv_eps;
    s->adv.whiten = p->whiten_advantages;
    s->adv.group_size = c->num_generations;
    s->adv.scale = p->scale_rewards;
    s->adv.macro_n = p->macro_n;
    rl_policy_config_default(&s->pc);
    s->pc.clip_low = p->epsilon;
    s->pc.clip_high = p->epsilon_high >= 0 ? p->epsilon_high : p->epsilon;
    s->pc.clip_c = p->dual_clip;
    s->pc.norm_len = (float)c->max_new_tokens;
    s->pc.variant = p->policy_loss;
    s->pc.agg = p->loss_agg_mode;
    s->pc.sapo_temperature_pos = p->sapo_temperature_pos, s->pc.sapo_temperature_neg = p->sapo_temperature_neg;
    s->pc.vespo_k_pos = p->vespo_k_pos, s->pc.vespo_lambda_pos = p->vespo_lambda_pos;
    s->pc.vespo_k_neg = p->vespo_k_neg, s->pc.vespo_lambda_neg = p->vespo_lambda_neg;
    s->pc.agg = rl_policy_agg(&s->pc); // luspo weighs sequences, whatever --loss_agg_mode says
    if (p->kl_target > 0) rl_kl_ctl_adaptive(&r->kl_coef, p->beta, p->kl_target, p->kl_horizon);
    else rl_kl_ctl_fixed(&r->kl_coef, p->beta);
    s->use_values = (r->needs & ONLINE_NEED_VALUES) != 0;
    s->use_ref = r->ref != NULL;
    s->mini = p->mini_batch_size > 0 ? p->mini_batch_size : c->base.batch_size;
    grow(&s->weights, r->B);
    if (r->needs & ONLINE_NEED_CRITIC) {  // the loop computes its values, saves and frees it
        float lr = p->critic_learning_rate >= 0 ? p->critic_learning_rate : c->base.learning_rate;
        if (critic_open(r->t, p->critic_model, lr, r->t->optim_steps, &r->critic, err)) return -1;
        if (!c->base.quiet)
            fprintf(stderr, "%s: critic from %s (%s value head), learning rate %g; its weights, "
                            "grads and AdamW moments take %.1f MB beside the memory plan\n",
                    c->command->name, p->critic_model,
                    r->critic->from_score_head ? "its score head as" : "a fresh", lr,
                    4.0 * sizeof(float) * r->critic->m->n_params / 1e6);
    }
    return 0;
}

// ---------------------------------------------------------- advantages --

// token rewards (the KL in them), advantages, the PF-PPO filter
static int pg_advantages(online_run *r, pg_state *s, rlhf_err *err) {
    const online_config *c = r->c;
    const rollout_batch *rb = &r->rb;
    int B = r->B, T = rb->T;
    size_t BT = (size_t)B * T;
    if (BT > s->cap_bt) {
        float **bufs[] = {&s->token_rewards, &s->adv_v, &s->ret, &s->train_mask};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) grow(bufs[i], BT);
        s->cap_bt = BT;
    }
    memset(s->token_rewards, 0, BT * sizeof(float));
    rl_add_outcome_rewards(B, T, r->scores, rb->mask, s->token_rewards);
    if (c->pg.kl_in == ONLINE_KL_IN_REWARD && s->use_ref && c->pg.beta > 0)
        r->kl_token = rl_kl_in_reward(c->pg.kl_estimator, B, T, r->kl_coef.value, r->old_logp,
                                      r->ref_logp, rb->mask, s->token_rewards);
    rl_adv_input in = {.B = B, .T = T, .token_rewards = s->token_rewards,
                       .values = r->old_values, .mask = rb->mask, .baselines = r->baselines};
    if (c->pg.adv_estimator->fn(&s->adv, &in, s->adv_v, s->ret, err)) return -1;
    memcpy(s->train_mask, rb->mask, BT * sizeof(float));
    if (c->pg.filter != RL_FILTER_NONE) {
        if (rl_filter_weights(c->pg.filter, B, r->n, r->scores, c->pg.filter_power, &r->rng,
                              s->weights, err))
            return -1;
        rl_apply_seq_weights(B, T, s->weights, s->train_mask, s->adv_v);
    }
    s->ev = s->use_values ? rl_explained_variance(BT, r->old_values, s->ret, rb->mask) : NAN;
    return 0;
}

// -------------------------------------------------------------- the update --

// the share of a mini-batch's loss that a micro-batch holds, for the
// aggregation mode (token-mean: tokens; the sequence modes: sequences)
static double micro_weight(rl_agg agg, const float *mask, int u, int T, double tok_mini,
                           double seq_mini) {
    double tok = 0, seq = 0;
    for (int r = 0; r < u; r++) {
        double k = 0;
        for (int t = 0; t < T; t++) k += mask[(size_t)r * T + t] != 0;
        tok += k;
        seq += k > 0;
    }
    if (agg == RL_AGG_TOKEN_MEAN) return tok_mini > 0 ? tok / tok_mini : 0;
    return seq_mini > 0 ? seq / seq_mini : 0;
}

// one mini-batch's sums, each micro-batch's weighted by its share
typedef struct {
    double pg, klv, klt, vl, vcf, cf, cfl, ak, pk, rmax, rmin, ent;
} mini_sums;

// the separate critic's forward and backward on the micro-batch in s->rows: the
// clipped value loss, weighted by the micro-batch's share w of its mini-batch
// (the policy's loss gets no value part)
static int critic_micro(online_run *r, pg_state *s, int u, int T, double w, mini_sums *ms,
                        rlhf_err *err) {
    rlhf_model *cm = r->critic->m;
    size_t UT = (size_t)u * T;
    if (model_forward(cm, &s->rows.view, err)) return rlhf_fail_ctx(err, "the critic's forward");
    memset(s->dv, 0, UT * sizeof(float));
    rl_value_stats vs;
    rl_value_loss(u, T, r->c->pg.cliprange_value, s->pc.agg, s->pc.norm_len, cm->values,
                  s->m_oldv, s->m_ret, s->m_mask, s->dv, &vs);
    ms->vl += w * vs.loss, ms->vcf += w * vs.clip_frac;
    for (size_t i = 0; i < UT; i++) s->dv[i] *= (float)w;
    model_backward(cm, NULL, NULL, NULL, s->dv);
    return 0;
}

// forward and backward of rows idx[0..u) of the rollout (a micro-batch)
static int pg_micro(online_run *r, pg_state *s, const int *idx, int u, double tok_mini,
                    double seq_mini, mini_sums *ms, rlhf_err *err) {
    const online_config *c = r->c;
    rlhf_model *m = r->t->m;
    int T = r->rb.T;
    size_t UT = (size_t)u * T;
    rollout_gather(&r->rb, idx, u, &s->rows);
    rollout_gather_f(s->train_mask, T, idx, u, s->m_mask);
    rollout_gather_f(r->old_logp, T, idx, u, s->m_old);
    rollout_gather_f(s->adv_v, T, idx, u, s->m_adv);
    if (s->use_ref) rollout_gather_f(r->ref_logp, T, idx, u, s->m_ref);
    if (s->use_values) {
        rollout_gather_f(s->ret, T, idx, u, s->m_ret);
        rollout_gather_f(r->old_values, T, idx, u, s->m_oldv);
    }
    double w = micro_weight(s->pc.agg, s->m_mask, u, T, tok_mini, seq_mini);
    if (w == 0) return 0;
    m->want_entropy = 1;
    int rc = model_forward(m, &s->rows.view, err);
    m->want_entropy = 0;
    if (rc) return -1;
    memset(s->dlogp, 0, UT * sizeof(float));
    rl_policy_stats ps;
    if (rl_policy_loss(&s->pc, u, T, m->logp, s->m_old, s->m_adv, s->m_mask, s->dlogp, &ps, err))
        return -1;
    ms->pg += w * ps.loss, ms->cf += w * ps.clip_frac, ms->cfl += w * ps.clip_frac_lower;
    ms->ak += w * ps.kl_k3, ms->pk += w * ps.kl_k1;
    if (ps.ratio_max > ms->rmax) ms->rmax = ps.ratio_max;
    if (ps.ratio_min < ms->rmin) ms->rmin = ps.ratio_min;
    if (c->pg.kl_in == ONLINE_KL_IN_LOSS && s->use_ref) {
        float mean_kl = 0;
        ms->klv += w * rl_kl_loss(c->pg.kl_estimator, s->pc.agg, s->pc.norm_len, r->kl_coef.value,
                                  u, T, m->logp, s->m_ref, s->m_mask, s->dlogp, &mean_kl);
        ms->klt += w * mean_kl;
    }
    for (size_t i = 0; i < UT; i++) s->dlogp[i] *= (float)w;
    float coeff = c->pg.entropy_coeff;
    if (coeff != 0) {  // the entropy bonus: - coeff * agg(H), its gradient through softmax
        memset(s->dent, 0, UT * sizeof(float));
        ms->ent += w * rl_agg_loss(s->pc.agg, u, T, m->entropy, s->m_mask, s->pc.norm_len, s->dent);
        for (size_t i = 0; i < UT; i++) s->dent[i] *= (float)(-coeff * w);
    }
    int shared = s->use_values && !r->critic;  // the value head on the policy's trunk
    if (shared) {
        memset(s->dv, 0, UT * sizeof(float));
        rl_value_stats vs;
        rl_value_loss(u, T, c->pg.cliprange_value, s->pc.agg, s->pc.norm_len, m->values, s->m_oldv,
                      s->m_ret, s->m_mask, s->dv, &vs);
        ms->vl += w * vs.loss, ms->vcf += w * vs.clip_frac;
        for (size_t i = 0; i < UT; i++) s->dv[i] *= (float)(w * c->pg.vf_coef);
    }
    for (size_t i = 0; i < UT; i++)
        if (s->m_mask[i] != 0) s->st.ent_sum += m->entropy[i], s->st.ent_tokens++;
    model_backward_entropy(m, s->dlogp, coeff != 0 ? s->dent : NULL, NULL, NULL,
                           shared ? s->dv : NULL);
    return r->critic ? critic_micro(r, s, u, T, w, ms, err) : 0;
}

// data-parallel (base/dist.h): the rows of idx[0..rows) this rank holds, into
// own; their micro-batches are weighted by the mini-batch's global token and
// sequence counts, so the ranks' gradients sum to the one-process gradient
static int own_rows(const online_run *r, const int *idx, int rows, int *own) {
    int r0, r1, k = 0;
    rollout_share(r->n_prompts, r->n, dist_rank(), &r0, &r1);
    for (int i = 0; i < rows; i++)
        if (idx[i] >= r0 && idx[i] < r1) own[k++] = idx[i];
    return k;
}

// the mini-batch's sums over the ranks (each holds its rows' weighted parts)
static void reduce_sums(mini_sums *ms) {
    double x[] = {ms->pg, ms->klv, ms->klt, ms->vl, ms->vcf, ms->cf, ms->cfl, ms->ak, ms->pk, ms->ent};
    double mx[] = {ms->rmax, -ms->rmin};
    dist_allreduce_sum_f64(x, 10);
    dist_allreduce_max_f64(mx, 2);
    *ms = (mini_sums){x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], mx[0], -mx[1], x[9]};
}

// one optimizer step on rows idx[0..rows) (a mini-batch of whole groups)
static int pg_mini(online_run *r, pg_state *s, const int *idx, int rows, int micro,
                   rlhf_err *err) {
    int T = r->rb.T;
    double tok_mini = 0, seq_mini = 0;
    for (int i = 0; i < rows; i++) {
        double k = 0;
        for (int t = 0; t < T; t++) k += s->train_mask[(size_t)idx[i] * T + t] != 0;
        tok_mini += k, seq_mini += k > 0;
    }
    if (tok_mini == 0) return 0;
    model_zero_grad(r->t->m);
    if (r->critic) model_zero_grad(r->critic->m);
    mini_sums ms = {.rmin = INFINITY};
    const int *own = idx;
    int n_own = rows;
    if (dist_size() > 1) n_own = own_rows(r, idx, rows, s->own), own = s->own;
    for (int k = 0; k < n_own; k += micro) {
        int u = n_own - k < micro ? n_own - k : micro;
        if (pg_micro(r, s, own + k, u, tok_mini, seq_mini, &ms, err)) return -1;
    }
    if (dist_size() > 1) reduce_sums(&ms);
    double loss = ms.pg + ms.klv + r->c->pg.vf_coef * ms.vl - r->c->pg.entropy_coeff * ms.ent;
    if (r->critic)  // the policy's loss; the critic's value loss checked beside it
        loss = isfinite(ms.vl) ? ms.pg + ms.klv - r->c->pg.entropy_coeff * ms.ent : NAN;
    if (!isfinite(loss))
        return rlhf_fail(err, "the loss is %g (policy %g, KL %g, value %g); stopping "
                              "(checkpoints already written are kept; try a lower "
                              "--learning_rate)",
                         loss, ms.pg, ms.klv, ms.vl);
    pg_stats *st = &s->st;
    r->grad_norm += optim_step(r->t->o, r->t->m);
    if (r->critic) st->critic_grad_norm += optim_step(r->critic->o, r->critic->m);
    st->pg_loss += ms.pg, st->kl_loss += ms.klv, st->kl_token += ms.klt, st->v_loss += ms.vl;
    st->vf_clipfrac += ms.vcf, st->clip_frac += ms.cf, st->clip_frac_lower += ms.cfl;
    st->approx_kl += ms.ak, st->ppo_kl += ms.pk, st->ent_loss += ms.ent;
    if (ms.rmax > st->ratio_max) st->ratio_max = ms.rmax;
    if (ms.rmin < st->ratio_min) st->ratio_min = ms.rmin;
    r->updates++;
    return 0;
}

// --num_iterations epochs over mini-batches of whole groups
static int pg_update(online_run *r, rlhf_err *err) {
    pg_state *s = r->self;
    s->st = (pg_stats){.ratio_min = INFINITY};
    if (pg_advantages(r, s, err)) return -1;
    int n = r->n, T = r->rb.T, n_prompts = r->n_prompts;
    int mini = s->mini < n_prompts ? s->mini : n_prompts;
    int mini_rows = mini * n, micro = r->micro > 0 && r->micro < mini_rows ? r->micro : mini_rows;
    size_t need = (size_t)micro * T;
    if (need > s->cap_mb) {
        float **bufs[] = {&s->m_mask, &s->m_old, &s->m_ref, &s->m_adv, &s->m_ret, &s->m_oldv,
                          &s->dlogp, &s->dv, &s->dent};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) grow(bufs[i], need);
        s->cap_mb = need;
    }
    int *perm = xmalloc((size_t)n_prompts * sizeof(int));
    int *idx = xmalloc((size_t)mini_rows * sizeof(int));
    s->own = xrealloc(s->own, (size_t)mini_rows * sizeof(int));
    int rc = 0;
    for (int epoch = 0; epoch < r->c->num_iterations && rc == 0; epoch++) {
        for (int i = 0; i < n_prompts; i++) perm[i] = i;
        if (epoch > 0 || mini < n_prompts)  // shuffle groups between mini-batches
            for (int i = n_prompts - 1; i > 0; i--) {
                int j = (int)(rng_u64(&r->rng) % (uint64_t)(i + 1)), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
        for (int p0 = 0; p0 < n_prompts && rc == 0; p0 += mini) {
            int np = n_prompts - p0 < mini ? n_prompts - p0 : mini;
            for (int i = 0; i < np; i++)
                for (int j = 0; j < n; j++) idx[i * n + j] = perm[p0 + i] * n + j;
            rc = pg_mini(r, s, idx, np * n, micro, err);
        }
    }
    free(perm);
    free(idx);
    if (dist_size() > 1) {  // the entropy over every rank's tokens
        double e[] = {s->st.ent_sum, s->st.ent_tokens};
        dist_allreduce_sum_f64(e, 2);
        s->st.ent_sum = e[0], s->st.ent_tokens = e[1];
    }
    if (rc == 0 && s->use_ref && r->c->pg.beta > 0)
        rl_kl_ctl_update(&r->kl_coef, (float)r->kl_token, r->B);
    return rc;
}

// ---------------------------------------------------------------- metrics --

static void pg_metrics(online_run *r, cJSON *j) {
    pg_state *s = r->self;
    const pg_stats *st = &s->st;
    double u = r->updates ? r->updates : 1;
    if (s->use_ref) {
        cJSON_AddNumberToObject(j, "kl_coef", r->kl_coef.value);
        if (r->c->pg.kl_in == ONLINE_KL_IN_LOSS)
            cJSON_AddNumberToObject(j, "kl_loss", st->kl_loss / u);
    }
    cJSON_AddNumberToObject(j, "entropy", st->ent_tokens ? st->ent_sum / st->ent_tokens : 0);
    if (r->c->pg.entropy_coeff != 0)  // agg(H) as the loss saw it (before the update)
        cJSON_AddNumberToObject(j, "entropy_loss", st->ent_loss / u);
    cJSON_AddNumberToObject(j, "pg_loss", st->pg_loss / u);
    cJSON_AddNumberToObject(j, "clip_frac", st->clip_frac / u);
    cJSON_AddNumberToObject(j, "clip_frac_lower", st->clip_frac_lower / u);
    cJSON_AddNumberToObject(j, "approx_kl", st->approx_kl / u);
    cJSON_AddNumberToObject(j, "ppo_kl", st->ppo_kl / u);
    cJSON_AddNumberToObject(j, "ratio_max", r->updates ? st->ratio_max : 1);
    cJSON_AddNumberToObject(j, "ratio_min", r->updates ? st->ratio_min : 1);
    if (s->use_values) {
        cJSON_AddNumberToObject(j, "value_loss", st->v_loss / u);
        cJSON_AddNumberToObject(j, "vf_clipfrac", st->vf_clipfrac / u);
        if (isfinite(s->ev)) cJSON_AddNumberToObject(j, "explained_variance", s->ev);
        else cJSON_AddNullToObject(j, "explained_variance");
    }
    if (r->critic) {  // OpenRLHF: critic_lr; the critic's own clipping and steps
        const rlhf_optim *o = r->critic->o;
        cJSON_AddNumberToObject(j, "critic/grad_norm", st->critic_grad_norm / u);
        cJSON_AddNumberToObject(j, "critic/learning_rate",
                                lr_at_step(&o->cfg, o->step > 0 ? o->step - 1 : 0));
    }
}

static void pg_summary(online_run *r, cJSON *sum) {
    cJSON_AddStringToObject(sum, "adv_estimator", r->c->pg.name.adv_estimator);
    if (r->critic) cJSON_AddStringToObject(sum, "critic_model", r->critic->spec);
}

static void pg_free(online_run *r) {
    pg_state *s = r->self;
    if (!s) return;
    rollout_rows_free(&s->rows);
    free(s->own);
    float *bufs[] = {s->token_rewards, s->adv_v, s->ret, s->train_mask, s->weights, s->m_mask,
                     s->m_old, s->m_ref, s->m_adv, s->m_ret, s->m_oldv, s->dlogp, s->dv, s->dent};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s);
    r->self = NULL;
}

const online_update online_update_pg = {
    .name = "policy_gradient",
    .about = "PPO clipped loss on --adv_estimator's advantages (GRPO, RLOO, REINFORCE++, ReMax, GAE)",
    .data_parallel = 1,
    .needs = ONLINE_NEED_REFERENCE | ONLINE_NEED_VALUES | ONLINE_NEED_BASELINES |
             ONLINE_NEED_GROUPS | ONLINE_NEED_CRITIC,
    .options = pg_options,
    .lists = ONLINE_LISTS_ADV_ESTIMATORS | ONLINE_LISTS_POLICY_LOSSES,
    .pref_kind = -1,
    .defaults = pg_defaults,
    .resolve = pg_resolve,
    .needs_of = pg_needs_of,
    .check = pg_check,
    .steps_per_iteration = pg_steps_per_iteration,
    .describe = pg_describe,
    .setup = pg_setup,
    .update = pg_update,
    .metrics = pg_metrics,
    .summary = pg_summary,
    .free = pg_free,
};
