// algo/rl: the math of online RL for language models, as pure functions over
// arrays. A trainer hands in per-token arrays of B sequences x T tokens
// (row-major, index b*T + t) with a response mask, plus per-sequence arrays, and
// gets back advantages, losses and d(loss)/d(log-prob) to pass to the model's
// backward. Nothing here touches files, threads or models.
//
// Conventions
//   * mask (B,T): 1 on generated tokens that count, 0 elsewhere (prompt,
//     padding, tool output). Positions with mask 0 are ignored on input and get
//     0 in per-token outputs (advantages, returns, gradients).
//   * Gradient outputs (dlogp, dv, dx) ACCUMULATE (+=), as in llm.c: zero them
//     first. Pass NULL to skip. Other outputs are overwritten.
//   * Sums run in double; inputs and outputs are float.
//   * Names are the ones users type (--adv_estimator grpo, --loss_agg_mode
//     token-mean, --kl_estimator k3, --filter best_worst, --macro_action ngram:5)
//     and follow verl (verl/trainer/ppo/core_algos.py) and TRL; docs/online_rl.md
//     gives every formula, its source, and where we differ.
#ifndef RLHF_ALGO_RL_H
#define RLHF_ALGO_RL_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

// --------------------------------------------------------- masked statistics --
// Over n elements (a flat view of (B,T) works). With sum(mask) == 0 the mean and
// variance are 0. unbiased: Bessel's correction n/(n-1) on the count (used only
// when the count exceeds 1), as in verl's masked_var.
double rl_masked_sum(size_t n, const float *x, const float *mask);
float rl_masked_mean(size_t n, const float *x, const float *mask);
float rl_masked_var(size_t n, const float *x, const float *mask, int unbiased);
// out = (x - mean) / sqrt(var + 1e-8) on counted elements (var unbiased, as
// verl's masked_whiten); shift_mean = 0 adds the mean back. 0 where mask is 0.
// out may alias x.
void rl_masked_whiten(size_t n, const float *x, const float *mask, int shift_mean, float *out);
// 1 - Var[returns - values] / Var[returns] over counted elements; NaN when
// Var[returns] is 0 (nothing to explain), as TRL and stable-baselines report it.
float rl_explained_variance(size_t n, const float *values, const float *returns,
                            const float *mask);

// -------------------------------------------------------- loss aggregation --
// How a per-token loss l (B,T) becomes one number (verl's loss_agg_mode):
//   token-mean               sum(m*l) / sum(m)                       (TRL "bnpo")
//   seq-mean-token-mean      mean over sequences of sum_t(m*l)/sum_t(m)  (TRL "grpo")
//   seq-mean-token-sum       mean over sequences of sum_t(m*l)
//   seq-mean-token-sum-norm  sum(m*l) / (Bs * L), L = norm_len (0: T) (Dr. GRPO, TRL "dr_grpo")
// "Sequences" (Bs) are the rows with at least one counted token: a fully masked
// row (a filtered-out sample) neither contributes nor dilutes the mean.
typedef enum {
    RL_AGG_TOKEN_MEAN = 0,
    RL_AGG_SEQ_MEAN_TOKEN_MEAN,
    RL_AGG_SEQ_MEAN_TOKEN_SUM,
    RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM,
} rl_agg;
// Accepts the verl names above and TRL's loss_type names grpo, bnpo, dr_grpo, and
// dapo (= token-mean: TRL divides by the active tokens of the accumulated batch, which
// is our optimizer step's mini-batch).
int rl_agg_from_name(const char *name, rl_agg *out, rlhf_err *err);
const char *rl_agg_name(rl_agg a);
// x, mask (B,T) -> the aggregate; dx (B,T) += d(aggregate)/dx.
float rl_agg_loss(rl_agg mode, int B, int T, const float *x, const float *mask, float norm_len,
                  float *dx);

// ------------------------------------------------------ advantage estimators --
// Every estimator reads per-token rewards (B,T): outcome-reward methods use the
// masked sum over a row as that sequence's score (place a scalar score on the
// last counted token with rl_add_outcome_rewards). Groups are runs of
// group_size consecutive sequences sampled for the same prompt.
typedef enum { RL_SCALE_GROUP = 0, RL_SCALE_BATCH, RL_SCALE_NONE } rl_scale;
int rl_scale_from_name(const char *name, rl_scale *out, rlhf_err *err); // group|batch|none
typedef enum { RL_MACRO_REWARD_SUM = 0, RL_MACRO_REWARD_MEAN } rl_macro_reward;
typedef enum { RL_MACRO_VALUE_MEAN = 0, RL_MACRO_VALUE_FIRST } rl_macro_value;

typedef struct {
    float gamma;          // discount (gae, reinforce_pp); default 1
    float lambda;         // GAE lambda; default 0.95
    int group_size;       // grpo, rloo: samples per prompt (divides B); default 1
    rl_scale scale;       // grpo: divide by the group std, the batch std, or not (Dr. GRPO)
    float eps;            // grpo: std epsilon; default 1e-6 (verl; TRL uses 1e-4)
    int whiten;           // gae: whiten advantages over the batch's counted tokens (verl does); default 1
    int macro_n;          // gae: MA-RLHF n-gram macro actions; <= 1: plain per-token GAE
    rl_macro_reward macro_reward; // reward of a macro action: sum (default) or mean of its tokens'
    rl_macro_value macro_value;   // value of a macro action: mean (default) or first of its tokens'
} rl_adv_config;
void rl_adv_config_default(rl_adv_config *c);

typedef struct {
    int B, T;
    const float *token_rewards; // (B,T) all estimators
    const float *values;        // (B,T) gae
    const float *mask;          // (B,T)
    const float *baselines;     // (B)   remax: the reward of the greedy sample for that prompt
} rl_adv_input;

// adv (B,T) and ret (B,T) (ret may be NULL). Returns 0, or -1 with err for a bad
// configuration (missing input, group_size not dividing B).
typedef int (*rl_adv_fn)(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                         rlhf_err *err);

// GAE (Schulman et al. 2016), over counted tokens only (a masked gap is skipped,
// as verl does): delta_t = r_t + gamma*V_next - V_t, A_t = delta_t + gamma*lambda*A_next,
// returns R_t = A_t + V_t (before whitening). c->macro_n > 1: rl_adv_gae_macro.
int rl_adv_gae(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
               rlhf_err *err);
// MA-RLHF (Chai et al. 2025): cut each row's counted tokens into consecutive
// n-grams (n = c->macro_n, last one shorter); a macro action's reward is the sum
// (or mean) of its tokens' rewards and its value the mean (or first) of its
// tokens' values; GAE runs over macro steps and each A_k, R_k is broadcast to
// the tokens of macro action k. n = 1 is plain GAE, exactly.
int rl_adv_gae_macro(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                     rlhf_err *err);
// GRPO (Shao et al. 2024): s = row score, A = (s - mean_group) / (std + eps) with
// the unbiased std of the group (scale group) or of the whole batch (scale
// batch, TRL), or A = s - mean_group (scale none: Dr. GRPO, Liu et al. 2025).
// A group of 1 has mean 0 and std 1 (verl). ret = adv.
int rl_adv_grpo(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                rlhf_err *err);
// RLOO (Ahmadian et al. 2024): A_i = s_i - mean of the other n-1 scores of the
// group (A = s for a group of 1, as verl). ret = adv.
int rl_adv_rloo(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                rlhf_err *err);
// REINFORCE++ (Hu 2025): G_t = r_t + gamma*G_next over counted tokens (rewards
// carry the KL penalty: rl_kl_in_reward), then A = whitened G over all counted
// tokens of the batch. ret = G.
int rl_adv_reinforce_pp(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                        rlhf_err *err);
// ReMax (Li et al. 2024): G_t = sum of rewards from t to the end (= the score for
// an outcome reward), A_t = G_t - baseline_b. ret = G.
int rl_adv_remax(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                 rlhf_err *err);

// ---------------------------------------------------------- the registries --
// Every advantage estimator (rl_adv.c) and policy-loss variant (rl.c) is one
// function and one RL_ADV(...) / RL_POLICY_LOSS(...) entry in its file's table,
// right below the functions: its name, what it needs, the options it reads, a
// one-line formula and its paper. The entry checks the function's type at compile
// time (_Generic). rl_adv_register / rl_policy_register add one at run time (a
// test, a plugin). Trainers and the CLI ask the declarations (rl_adv_needs)
// instead of comparing names; --help lists the tables (rl_adv_at, rl_policy_at).

// What an estimator (or a policy loss) needs besides per-token rewards (advantages)
// and a mask (RL_NEED_*).
enum {
    RL_NEED_VALUES = 1 << 0,    // rl_adv_input.values: a value head (critic)
    RL_NEED_BASELINES = 1 << 1, // rl_adv_input.baselines: e.g. the greedy sample's reward
    RL_NEED_GROUPS = 1 << 2,    // compares the group_size samples of one prompt (>= 2)
    RL_NEED_OLD_LOGP = 1 << 3,  // policy loss: the sampling policy's log-probs (the ratio)
    RL_NEED_ADVANTAGES = 1 << 4 // policy loss: per-token advantages
};
// The rl_adv_config fields an estimator reads (RL_ADV_OPT_*).
enum {
    RL_ADV_OPT_GAMMA = 1 << 0,  // gamma
    RL_ADV_OPT_LAMBDA = 1 << 1, // lambda
    RL_ADV_OPT_SCALE = 1 << 2,  // scale, eps
    RL_ADV_OPT_WHITEN = 1 << 3, // whiten
    RL_ADV_OPT_MACRO = 1 << 4,  // macro_n, macro_reward, macro_value
};

typedef struct {
    const char *name; // --adv_estimator NAME
    rl_adv_fn fn;
    unsigned needs;   // RL_NEED_*
    unsigned options; // RL_ADV_OPT_*
    const char *about; // the formula, one line
    const char *paper; // where it comes from
} rl_adv_def;

// One table entry; a function whose type is not rl_adv_fn is a compile error.
#define RL_ADV(name, fn, needs, options, about, paper) \
    { (name), _Generic((fn), rl_adv_fn : (fn)), (needs), (options), (about), (paper) }

// NULL if unknown. Also accepts verl's "reinforce_plus_plus".
const rl_adv_def *rl_adv_find(const char *name);
// Iteration (built-in, then registered): i = 0 .. rl_adv_count() - 1; NULL past the end.
int rl_adv_count(void);
const rl_adv_def *rl_adv_at(int i);
// Adds an estimator at run time (before use; not thread-safe); def must outlive
// its use; build it with RL_ADV.
// Refused: no name or function, a name taken, more than RL_MAX_REGISTERED.
#define RL_MAX_REGISTERED 16
int rl_adv_register(const rl_adv_def *def, rlhf_err *err);
// Nonzero when def declares every bit of need (RL_NEED_*).
int rl_adv_needs(const rl_adv_def *def, unsigned need);
// "name, name, ...", into buf.
void rl_adv_names(char *buf, size_t cap);
// Looks the estimator up by name and runs it (the trainer's dispatch); an unknown
// name lists the choices.
int rl_adv_compute(const char *name, const rl_adv_config *c, const rl_adv_input *in, float *adv,
                   float *ret, rlhf_err *err);
// "ngram:N" (N >= 1) -> *n; "none" or "" -> 1.
int rl_macro_parse(const char *spec, int *n, rlhf_err *err);

// ------------------------------------------------------------- policy loss --
// PPO clip (Schulman et al. 2017) with ratio rho = exp(logp - old_logp) (log-ratio
// clamped to [-20, 20] as verl):
//   l = max(-A*rho, -A*clip(rho, 1 - clip_low, 1 + clip_high))
// clip_high > clip_low is DAPO's clip-higher (Yu et al. 2025). Dual clip (Ye et
// al. 2020, clip_c = c > 1): for A < 0, l = min(l, -A*c). seq_ratio (GSPO, Zheng
// et al. 2025): every token of sequence b uses s_b = exp(mean_t(logp - old_logp))
// (log clamped at 10) in place of rho, with d s_b / d logp_t taken as s_b (verl's
// GSPO-token form; equals sequence-level GSPO for per-sequence advantages under
// seq-mean-token-mean). The per-token losses are aggregated with agg.
typedef struct {
    float clip_low;  // epsilon (verl clip_ratio_low, TRL epsilon); default 0.2
    float clip_high; // epsilon_high (verl clip_ratio_high, TRL epsilon_high); default 0.2
    float clip_c;    // dual-clip bound c > 1 (verl clip_ratio_c, 3.0); 0: off (default)
    int seq_ratio;   // 1: GSPO sequence-level ratio (read only when variant is NULL)
    rl_agg agg;      // default token-mean
    float norm_len;  // seq-mean-token-sum-norm constant; 0: T
    const struct rl_policy_loss_def *variant; // the registered loss; NULL: ppo (gspo if seq_ratio)
    // sapo: gate temperatures for A > 0 and A <= 0 (TRL sapo_temperature_pos/neg; 1.0, 1.05)
    float sapo_temperature_pos, sapo_temperature_neg;
    // vespo: the Gamma weight's power k and decay lambda for A >= 0 and A < 0
    // (TRL vespo_k_pos 2, vespo_lambda_pos 3, vespo_k_neg 3, vespo_lambda_neg 2)
    float vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg;
} rl_policy_config;
void rl_policy_config_default(rl_policy_config *c);

typedef struct {
    float loss;
    float clip_frac;       // counted tokens whose clipped term is the larger (gradient 0)
    float clip_frac_lower; // counted tokens with A < 0 capped by the dual clip
    float kl_k3;           // mean (rho - 1) - log rho: k3 estimate of KL(pi_old || pi)
    float kl_k1;           // mean (old_logp - logp): verl's ppo_kl
    float ratio_mean, ratio_min, ratio_max; // of the ratio used (rho, or s_b under GSPO)
} rl_policy_stats;

// logp, old_logp, adv, mask (B,T) -> *st; dlogp (B,T) += d(loss)/d(logp).
// Runs c->variant (the trainer's dispatch), or ppo / gspo (seq_ratio) when NULL.
int rl_policy_loss(const rl_policy_config *c, int B, int T, const float *logp,
                   const float *old_logp, const float *adv, const float *mask, float *dlogp,
                   rl_policy_stats *st, rlhf_err *err);

// Policy-loss variants: a registry as the advantage estimators' (see above).
// Built in (rl.c): ppo (token ratio; clip-higher and dual clip are its options)
// and gspo (sequence ratio), named by --importance_sampling_level token|sequence
// too (each entry's `level`); and TRL's other loss_type variants, by name
// (docs/policy_losses.md), with rho = exp(logp - old_logp) per token (log clamped
// to [-20, 20]) and sg() a constant to the gradient:
//   cispo  l = -sg(min(rho, clip_high)) * A * logp: the IS weight capped at
//          clip_high ITSELF (TRL's epsilon_high as ScaleRL's eps_max, e.g. 5), no
//          clip of the update (MiniMax-M1, arXiv 2506.13585)
//   sapo   l = -A * (4/tau) * sigmoid(tau * (rho - 1)), tau = sapo_temperature_pos
//          when A > 0, else _neg: a smooth gate in place of the clip (SAPO, arXiv 2511.20347)
//   luspo  the gspo clip with each sequence's loss times its length, averaged over
//          sequences (agg fixed to seq-mean-token-sum; LUSPO, arXiv 2602.05261)
//   vespo  l = -sg(phi_b) * A * logp, phi_b = exp(lambda + k log w_b - lambda w_b),
//          w_b = exp(sum_t log rho) (log w clamped to [log 1e-8, 20]), k, lambda
//          by the sign of A (A >= 0: _pos): a Gamma-shaped sequence weight
//          (VESPO, arXiv 2602.10693)
// cispo and vespo's loss values carry logp itself (their gradient is the point:
// -w * A per token); sapo's gradient is ppo's, -A, at rho = 1.
typedef int (*rl_policy_loss_fn)(const rl_policy_config *c, int B, int T, const float *logp,
                                 const float *old_logp, const float *adv, const float *mask,
                                 float *dlogp, rl_policy_stats *st, rlhf_err *err);
// The rl_policy_config fields a variant reads (RL_POLICY_OPT_*).
enum {
    RL_POLICY_OPT_CLIP = 1 << 0,        // clip_low, clip_high (> clip_low: DAPO clip-higher)
    RL_POLICY_OPT_DUAL_CLIP = 1 << 1,   // clip_c
    RL_POLICY_OPT_AGG = 1 << 2,         // agg, norm_len
    RL_POLICY_OPT_SAPO = 1 << 3,        // sapo_temperature_pos, sapo_temperature_neg
    RL_POLICY_OPT_VESPO = 1 << 4,       // vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg
};
typedef struct rl_policy_loss_def {
    const char *name;  // the variant's name (rl_policy_find)
    const char *level; // its --importance_sampling_level name (token, sequence), or NULL
    rl_policy_loss_fn fn;
    unsigned needs;    // RL_NEED_*
    unsigned options;  // RL_POLICY_OPT_*
    const char *about; // the formula, one line
    const char *paper;
} rl_policy_loss_def;
#define RL_POLICY_LOSS(name, level, fn, needs, options, about, paper)                              \
    { (name), (level), _Generic((fn), rl_policy_loss_fn : (fn)), (needs), (options), (about),     \
      (paper) }
// The aggregation c's variant applies: c->agg, except luspo's fixed
// seq-mean-token-sum. A trainer that splits a batch into micro-batches weighs them
// (and aggregates other per-token terms) with this one.
rl_agg rl_policy_agg(const rl_policy_config *c);
// By name or by level; NULL if unknown.
const rl_policy_loss_def *rl_policy_find(const char *name);
int rl_policy_count(void);
const rl_policy_loss_def *rl_policy_at(int i); // NULL past the end
// As rl_adv_register.
int rl_policy_register(const rl_policy_loss_def *def, rlhf_err *err);
// "name, name, ...", into buf.
void rl_policy_names(char *buf, size_t cap);
// rl_policy_find, or -1 with an error listing the variants (and levels).
int rl_policy_lookup(const char *name, const rl_policy_loss_def **out, rlhf_err *err);

// ------------------------------------------------------ KL to the reference --
// Per-token estimators of KL(pi || pi_ref) from samples of pi (Schulman 2020),
// with d = logp - ref_logp:
//   k1  d                          d'/dlogp = 1           (verl "kl")
//   k2  d^2 / 2                    d                      (verl "mse")
//   k3  exp(-d) + d - 1            1 - exp(-d)            (verl "low_var_kl"; -d clamped to
//                                                          [-20,20], value to [-10,10])
//   abs |d|                        sign(d)
typedef enum { RL_KL_K1 = 0, RL_KL_K2, RL_KL_K3, RL_KL_ABS } rl_kl_kind;
int rl_kl_from_name(const char *name, rl_kl_kind *out, rlhf_err *err);
const char *rl_kl_name(rl_kl_kind k);
// kl[i] and dkl[i] = d kl[i] / d logp[i] (either may be NULL), overwritten.
void rl_kl_token(rl_kl_kind kind, size_t n, const float *logp, const float *ref_logp, float *kl,
                 float *dkl);
// KL in the reward: rewards (B,T) -= coef * kl_t on counted tokens (with k1 and
// logp = the sampling policy's log-probs this is r_t = -beta*(log pi_old - log pi_ref),
// Ziegler et al. 2019). Returns the batch mean of each row's masked-mean KL, the
// "current KL" the adaptive controller wants.
float rl_kl_in_reward(rl_kl_kind kind, int B, int T, float coef, const float *logp,
                      const float *ref_logp, const float *mask, float *rewards);
// KL in the loss (GRPO): returns coef * agg(kl); dlogp += its gradient; *mean_kl
// (may be NULL) = token-mean KL for logging.
float rl_kl_loss(rl_kl_kind kind, rl_agg agg, float norm_len, float coef, int B, int T,
                 const float *logp, const float *ref_logp, const float *mask, float *dlogp,
                 float *mean_kl);

// Coefficient controllers. Adaptive (Ziegler et al. 2019, as verl and TRL):
//   e = clip(current_kl / target - 1, -0.2, 0.2); value *= 1 + e * n_steps / horizon
// with n_steps the number of samples since the last update.
typedef struct {
    float value;   // the coefficient to use now
    float target;  // adaptive: target KL
    float horizon; // adaptive: horizon in samples
    int adaptive;
} rl_kl_ctl;
void rl_kl_ctl_fixed(rl_kl_ctl *k, float coef);
void rl_kl_ctl_adaptive(rl_kl_ctl *k, float init_coef, float target, float horizon);
void rl_kl_ctl_update(rl_kl_ctl *k, float current_kl, int n_steps);

// -------------------------------------------------------------- value loss --
// l = 0.5 * max((v - R)^2, (v_clip - R)^2), v_clip = clamp(v, v_old - c, v_old + c),
// aggregated with agg (verl compute_value_loss; cliprange <= 0: plain 0.5*(v-R)^2).
typedef struct {
    float loss;
    float clip_frac; // counted tokens where the clipped term is the larger
} rl_value_stats;
void rl_value_loss(int B, int T, float cliprange, rl_agg agg, float norm_len, const float *v,
                   const float *v_old, const float *returns, const float *mask, float *dv,
                   rl_value_stats *st);

// ------------------------------------------------------ PF-PPO sample filters --
// Policy filtration (Zhang et al. 2025): per group of group_size samples,
//   best         keep the highest-scoring sample (BoN)
//   best_random  keep the best and one other chosen uniformly at random (BR)
//   best_worst   keep the best and the worst (BW)
//   reweight     weight w_i = n * (|s_i|^power + 1e-8) / sum_j (|s_j|^power + 1e-8)
//                (verl's "pow" resampling weights, normalised within the group)
// weights (B): 1/0 keep marks, or the reweight weights. Ties: best is the first
// maximum, worst the last minimum, so best_worst keeps two samples whenever n >= 2.
typedef enum {
    RL_FILTER_NONE = 0,
    RL_FILTER_BEST,
    RL_FILTER_BEST_RANDOM,
    RL_FILTER_BEST_WORST,
    RL_FILTER_REWEIGHT
} rl_filter;
int rl_filter_from_name(const char *name, rl_filter *out, rlhf_err *err);
const char *rl_filter_name(rl_filter f);
// rng is used only by best_random (may be NULL otherwise).
int rl_filter_weights(rl_filter f, int B, int group_size, const float *scores, float power,
                      rlhf_rng *rng, float *weights, rlhf_err *err);
// Applies per-sequence weights: a row with weight 0 is masked out (mask row = 0),
// others have their advantages scaled by the weight.
void rl_apply_seq_weights(int B, int T, const float *weights, float *mask, float *adv);

// ------------------------------------------------- reward shaping, aggregation --
// rewards (B,T) += score_b at the last counted token of row b (rows with no
// counted token get nothing).
void rl_add_outcome_rewards(int B, int T, const float *scores, const float *mask, float *rewards);
// PAR (Fu et al. 2025): mean over m of sigmoid(k * (r - r_ref[m])), M >= 1.
float rl_par_reward(float r, int M, const float *r_ref, float k);
// Reward-model ensembles (Coste et al. 2024): scores (B,K) -> out (B):
//   mean   mean_k r_k
//   wco    min_k r_k                          (worst-case optimisation)
//   uwo    mean_k r_k - lambda * Var_k r_k    (uncertainty-weighted; population variance)
//   brme   lambda * mu_{k*} + (1 - lambda) * min_k mu_k, k* = argmin_k sigma_k (the first
//          on ties): reward-robust RLHF (Yan et al. 2024) over a Bayesian ensemble's heads
//          (means mu, standard deviations sigma; train/rm_brme.h), lambda in [0, 1]
typedef enum { RL_ENSEMBLE_MEAN = 0, RL_ENSEMBLE_WCO, RL_ENSEMBLE_UWO, RL_ENSEMBLE_BRME } rl_ensemble;
// "mean", "wco" (or "min"), "uwo", "brme" (or "robust"); -1 + err otherwise.
int rl_ensemble_from_name(const char *name, rl_ensemble *out, rlhf_err *err);
// mean, wco, uwo (brme here has no sigmas: k* = 0; use rl_ensemble_reduce_sigma).
void rl_ensemble_reduce(rl_ensemble kind, int B, int K, const float *scores, float lambda,
                        float *out);
// All four: scores (B,K) are the members' rewards (a BRME's means), sigmas (B,K) their
// standard deviations (brme needs them; NULL: every sigma equal, so k* = 0).
void rl_ensemble_reduce_sigma(rl_ensemble kind, int B, int K, const float *scores,
                              const float *sigmas, float lambda, float *out);
// -alpha * length.
float rl_length_penalty(int length, float alpha);
// DAPO's soft overlong punishment (Yu et al. 2025): 0 up to max_len - cache_len,
// then falling linearly to -1 at max_len, -1 beyond.
float rl_overlong_penalty(int length, int max_len, int cache_len);
// scores[b] -= penalty where has_eos[b] == 0 (TRL's missing_eos_penalty).
void rl_missing_eos_penalty(int B, float *scores, const uint8_t *has_eos, float penalty);

#endif
