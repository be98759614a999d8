// train/online: the online RL loop behind `rlhf grpo`, `rlhf rloo` and `rlhf
// ppo` — one loop, different defaults. Each iteration:
//
//   prompts -> ROLLOUT (n samples each, train/rollout) -> SCORE (reward/sources,
//   penalties, PAR) -> old log-probs (and values) under the rollout weights,
//   reference log-probs (a frozen copy of the initial policy) -> token rewards
//   (score on the last token, KL in the reward) -> advantages (algo/rl, by name)
//   -> PF-PPO filter -> num_iterations epochs over mini-batches: forward, PPO
//   policy loss (+ KL in the loss, + clipped value loss), backward with dlogp
//   (and dvalues), AdamW.
//
// One step of --max_steps / --save_steps / --logging_steps is one iteration.
// The data order and every iteration's sampling stream depend only on (seed,
// iteration), so --resume continues the same run. A reward failure (a judge
// that dies, hangs or answers garbage) stops training at once; no checkpoint is
// written after it, and those written before are kept.
#ifndef RLHF_TRAIN_ONLINE_H
#define RLHF_TRAIN_ONLINE_H

#include "algo/pref.h"
#include "algo/rl.h"
#include "train/common.h"
#include "train/rollout.h"

typedef struct {
    train_config base;          // --data holds the prompts; --batch_size prompts per iteration
    const char *algo;           // "grpo", "rloo", "ppo", "online-dpo": names the run and sets defaults
    // rollout
    int num_generations;        // samples per prompt (TRL num_generations, verl rollout.n)
    int max_new_tokens;         // TRL max_completion_length
    float temperature, top_p;
    int top_k;
    int generation_batch_size;  // rows per generate() call (0: all)
    // reward
    const char *reward;         // spec (reward/sources.h): "verifier:arith=1,rm:runs/rm=0.5"
    const char *task, *reward_model, *reward_command; // shortcuts, weight 1 each
    double reward_timeout;      // seconds per answer of an external command
    const char *rm_ensemble;    // mean | wco | uwo
    float uwo_lambda;
    float length_penalty, missing_eos_penalty;
    int overlong_buffer_len;    // DAPO soft overlong punishment over the last N of max_new_tokens
    int par_samples;            // PAR: reference samples per prompt (0: off)
    float par_k;                // PAR sigmoid sharpness
    // advantages and losses
    const char *adv_estimator;  // gae, grpo, rloo, reinforce_pp, remax
    const char *scale_rewards;  // grpo: group | batch | none
    const char *loss_agg_mode;  // token-mean, seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm
    const char *importance_sampling_level; // token | sequence (GSPO), or a policy-loss name (rl_policy_find)
    const char *kl_estimator;   // k1, k2, k3, abs
    const char *kl_in;          // reward | loss
    const char *filter;         // PF-PPO: none, best, best_random, best_worst, reweight
    float filter_power;
    const char *macro_action;   // MA-RLHF: none | ngram:N
    float gamma, lam, adv_eps;
    int whiten_advantages;      // gae
    float epsilon, epsilon_high, dual_clip;
    float beta;                 // KL coefficient (0: no reference model)
    float kl_target, kl_horizon; // adaptive KL controller when kl_target > 0
    int value_head;             // PPO: a value head on the policy
    float vf_coef, cliprange_value;
    int num_iterations;         // PPO epochs over each batch (TRL num_iterations / num_ppo_epochs)
    int mini_batch_size;        // prompts per optimizer step (0: the whole batch)
    int micro_batch_size;       // rows per forward (0: the whole mini-batch)
    const char *ref_model;      // default: the initial policy
    int log_samples;            // (prompt, completion, reward) rows per iteration in samples.jsonl
    float reset_prob;           // DR-PO dataset reset: the share of prompts (with a reference
                                // completion) rolled in on a prefix of it (0: off)
    // online DPO (algo "online-dpo"): pairs of samples judged by the reward set
    const char *loss_type, *loss_weights; // any paired loss of algo/pref (sigmoid, ipo, ...,vpo)
    pref_options pref;          // its options (pref.beta is DPO's beta)
    const char *pairs;          // max_min (best vs worst of a prompt's samples) | all
    int ref_update_steps;       // iterative DPO: the reference becomes the policy every N
                                // iterations (0: the reference stays the initial policy)
} online_config;

// Defaults for algo "grpo", "rloo", "ppo" or "online-dpo" (docs/online_rl.md, "Trainer").
int online_default_config(online_config *c, const char *algo, rlhf_err *err);
int online_train(const online_config *c, rlhf_err *err);

// ---------------------------------------------- online DPO (train/online_dpo.c)
// Pairs (chosen[k], rejected[k]) of rows from the scores (n_prompts groups of n
// rows): "max_min" the first best against the last worst of each group, "all"
// every ordered pair with a higher and a lower score. A group whose scores are
// all equal gives none. Returns the number of pairs (room: n_prompts*n*n), -1 + err.
int online_dpo_pairs(const char *mode, int n_prompts, int n, const float *scores, int *chosen,
                     int *rejected, rlhf_err *err);
// What online DPO gives a paired loss besides the pairs' summed log-probs: the
// reference (and room for a margin and calibration samples, which fall back to
// none and the chosen sample). Losses needing more (INPO's pi_t, SRPO's revisions,
// OSP's strengths, per-token log-probs) are refused by --loss_type.
#define ONLINE_DPO_INPUTS (PREF_NEED_REFERENCE | PREF_NEED_MARGIN | PREF_NEED_CAL_SAMPLES)
// One optimizer step of a paired preference loss on the pairs: logp and
// ref_logp (B,T) are the current policy's and the reference's (ref_logp NULL:
// reference-free) per-token log-probs of the rollout; the loss's gradient per
// row's sum goes back through forward/backward over the rows in pairs, micro
// rows at a time (0: all). *pm: TRL's DPO metrics.
int online_dpo_update(rlhf_model *m, rlhf_optim *o, const rollout_batch *rb, const float *logp,
                      const float *ref_logp, const int *chosen, const int *rejected, int n_pairs,
                      const pref_loss_list *losses, const pref_options *opt, int micro,
                      pref_metrics *pm, float *grad_norm, rlhf_err *err);

#endif
