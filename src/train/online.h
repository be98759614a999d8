// train/online: the online RL trainer behind `rlhf grpo`, `rlhf rloo`, `rlhf
// ppo` and `rlhf online-dpo` — one loop (a method of train/trainer), different
// defaults and update methods. Each iteration (one step of --max_steps /
// --save_steps / --logging_steps):
//
//   prompts -> ROLLOUT (n samples each, train/rollout) -> SCORE (reward/sources,
//   penalties, PAR, ReMax's greedy baseline) -> old log-probs (and values) under
//   the rollout weights, reference log-probs -> UPDATE (the update method:
//   policy gradient with any advantage estimator, or online DPO on pairs).
//
// Three tables make the commands:
//   * update methods (online_update, train/online_update.h): each declares what
//     it needs from the loop (reference, value head, greedy baselines, groups, a
//     moving reference), its options (flags) and its setup / update / metrics
//     functions;
//   * commands (online_command): a name, an update method and default values;
//   * options (online_option): the flags an online command takes — the loop's
//     own and those its update method declares.
// Option values typed as strings (--kl_in loss) are resolved into enums and
// registry entries once, by online_config_resolve; the trainer reads only those.
//
// The data order and every iteration's sampling stream depend only on (seed,
// iteration), so --resume continues the same run. A reward failure (a judge
// that dies, hangs or answers garbage) stops training at once; no checkpoint is
// written after it, and those written before are kept.
#ifndef RLHF_TRAIN_ONLINE_H
#define RLHF_TRAIN_ONLINE_H

#include <stddef.h>

#include "algo/pref.h"
#include "algo/rl.h"
#include "train/common.h"
#include "train/online_brain.h"
#include "train/online_cgpo.h"
#include "train/online_gkd.h"
#include "train/online_hc.h"
#include "train/online_nash.h"
#include "train/online_xpo.h"

typedef struct online_update online_update;   // an update method (train/online_update.h)
typedef struct online_command online_command;

// where the KL to the reference goes (--kl_in)
typedef enum { ONLINE_KL_IN_REWARD = 0, ONLINE_KL_IN_LOSS } online_kl_in;
// which samples of a prompt online DPO pairs (--pairs)
typedef enum { ONLINE_PAIRS_MAX_MIN = 0, ONLINE_PAIRS_ALL, ONLINE_PAIRS_RANKED } online_pairs;
// who judges online DPO's samples (--judge)
typedef enum {
    ONLINE_JUDGE_REWARD = 0,
    ONLINE_JUDGE_SELF,
    ONLINE_JUDGE_API // an OpenAI-compatible judge (--judge api: judge_url, judge_model,
                     // judge_api_key_env; reward/judge.h)
} online_judge;

// The policy-gradient update (train/online_pg.c): PPO's clipped loss on the
// advantages of --adv_estimator (GRPO, RLOO, REINFORCE++, ReMax, GAE).
typedef struct {
    struct {  // as typed; online_config_resolve fills the typed fields of the same names
        const char *adv_estimator;  // gae, grpo, rloo, reinforce_pp, remax
        const char *scale_rewards;  // grpo: group | batch | none
        const char *loss_agg_mode;  // token-mean, seq-mean-token-mean, ...
        const char *importance_sampling_level; // token | sequence (GSPO), or a policy-loss name
        const char *kl_estimator;   // k1, k2, k3, abs
        const char *kl_in;          // reward | loss
        const char *filter;         // PF-PPO: none, best, best_random, best_worst, reweight
        const char *macro_action;   // MA-RLHF: none | ngram:N
    } name;
    const rl_adv_def *adv_estimator;
    rl_scale scale_rewards;
    rl_agg loss_agg_mode;
    const rl_policy_loss_def *policy_loss;
    rl_kl_kind kl_estimator;
    online_kl_in kl_in;
    rl_filter filter;
    int macro_n;                // macro_action's n (1: per token)
    float beta;                 // KL coefficient (0: no reference model)
    float kl_target, kl_horizon; // adaptive KL controller when kl_target > 0
    float epsilon, epsilon_high, dual_clip;
    float sapo_temperature_pos, sapo_temperature_neg;  // sapo's gate temperatures (TRL's names)
    float vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg; // vespo's Gamma weight
    float filter_power, gamma, lam, adv_eps;
    int whiten_advantages;      // gae
    int value_head;             // a value head on the policy (gae needs it)
    const char *critic_model;   // a separate critic (train/critic.h): a model path, or
                                // "policy" (a copy of the initial policy); NULL: none
    float critic_learning_rate; // the critic's AdamW learning rate (-1: --learning_rate)
    float vf_coef, cliprange_value;
    int mini_batch_size;        // prompts per optimizer step (0: the whole batch)
    float entropy_coeff;        // entropy bonus: loss -= coeff * agg(H) (verl actor.entropy_coeff)
} online_pg_options;

// Online DPO (train/online_dpo.c): pairs of a prompt's samples judged by the
// reward set, any paired loss of algo/pref on them.
typedef struct {
    struct {  // as typed; resolved into losses, pairs and pref.f_divergence_type
        const char *loss_type, *loss_weights; // any paired loss of algo/pref (sigmoid, ipo, ...)
        const char *pairs;                    // max_min | all | ranked
        const char *f_divergence_type;
        const char *judge;                    // reward | self | api
    } name;
    pref_loss_list losses;
    online_pairs pairs;
    online_judge judge;
    pref_options pref;          // the losses' options (pref.beta is DPO's beta)
    int ref_update_steps;       // iterative DPO: the reference becomes the policy every N
                                // iterations (0: the reference stays the initial policy)
    int inpo_iteration_steps;   // INPO: pi_t, the previous iterate, becomes the policy every N
                                // iterations (1: pi_t is the policy that sampled the pairs)
    const char *cal_model;      // VPO: pi_cal (NULL: the reference)
    int cal_samples;            // VPO: samples of pi_cal per prompt
    const char *judge_template; // OSP --judge self: the judging prompt ({prompt}, {a}, {b})
    int log_pairs;              // pairs per iteration written to pairs.jsonl (0: none)
} online_dpo_options;

typedef struct {
    train_config base;          // --data holds the prompts; --batch_size prompts per iteration
    const online_command *command; // names the run; its defaults
    const online_update *update;   // the command's update method
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
    const char *reward_url;     // shortcut for --reward url:URL (OpenRLHF's remote reward model)
    const char *judge_url;      // an OpenAI-compatible judge's base URL (judge: sources,
                                // online-dpo --judge api); with its model name and the
    const char *judge_model;    // environment variable holding its API key
    const char *judge_api_key_env;
    int reward_retries;         // retries of transient HTTP failures (url:, judge:)
    const char *llm_judge_template; // llm: sources' question ({prompt}, {completion}; NULL: default)
    struct { const char *rm_ensemble; } name; // as typed
    rl_ensemble rm_ensemble;    // mean | wco | uwo
    float uwo_lambda;
    float length_penalty, missing_eos_penalty;
    int overlong_buffer_len;    // DAPO soft overlong punishment over the last N of max_new_tokens
    int par_samples;            // PAR: reference samples per prompt (0: off)
    float par_k;                // PAR sigmoid sharpness
    // update
    int num_iterations;         // epochs over each batch (TRL num_iterations / num_ppo_epochs)
    int micro_batch_size;       // rows per forward (0: the whole mini-batch)
    const char *ref_model;      // default: the initial policy
    int log_samples;            // (prompt, completion, reward) rows per iteration in samples.jsonl
    float reset_prob;           // DR-PO dataset reset: the share of prompts (with a reference
                                // completion) rolled in on a prefix of it (0: off)
    // DAPO dynamic sampling (verl algorithm.filter_groups): drop groups whose
    // filter_groups_metric is equal on all samples, sample more prompts until
    // --batch_size groups remain; at most max_num_gen_batches rounds (0: no cap)
    int filter_groups;
    const char *filter_groups_metric; // "reward" (the total) or a reward source's name
    int max_num_gen_batches;
    // what pairwise: reward sources compare a sample with: "reference" (the
    // dataset's completion of its prompt, where the row has one; the paper's
    // anchor) or "group" (the first sample of its group)
    const char *pairwise_anchor;
    // multi-turn episodes (train/episode.h): an environment program answers each
    // assistant turn; its reward is added to the reward sources' total
    const char *env_program;    // NULL: single-turn completions
    int max_turns;              // assistant turns per episode at most
    // the update methods' own options
    online_pg_options pg;
    online_dpo_options dpo;
    online_brain_options brain; // train/online_brain.h
    online_hc_options hc;       // train/online_hc.h
    online_cgpo_options cgpo;   // train/online_cgpo.h
    online_gkd_options gkd;     // train/online_gkd.h
    online_xpo_options xpo;     // train/online_xpo.h
    online_nash_options nash;   // train/online_nash.h
} online_config;

// ----------------------------------------------------------------- commands --
struct online_command {
    const char *name;           // the command and run name: grpo, rloo, ppo, online-dpo
    const online_update *update; // its update method
    const char *about;          // one line for --help
    // default values (0 / NULL: the shared or the update method's default)
    const char *output_dir;
    float learning_rate;
    int num_generations, num_iterations;
    float beta;                 // policy gradient: the KL coefficient
    const char *adv_estimator, *kl_estimator, *kl_in;
    int value_head;
};
const online_command *online_command_find(const char *name);
const online_command *online_command_at(int i); // NULL past the end

// Defaults of command `name` (docs/online_rl.md, "Trainer"), resolved.
int online_default_config(online_config *c, const char *name, rlhf_err *err);
// Resolves the option strings (c->name, c->pg.name, c->dpo.name, ...) into their
// typed fields; call after changing any of them. -1 + err naming the flag.
int online_config_resolve(online_config *c, rlhf_err *err);
int online_train(const online_config *c, rlhf_err *err);

// ------------------------------------------------------------------ options --
// An option of an online command: its flag name, type, field (an offset into
// online_config), help, accepted range and alias. cli/cmd_online makes flags of
// the loop's options (online_loop_options) and of the update method's.
typedef enum {
    ONLINE_OPT_STR, ONLINE_OPT_INT, ONLINE_OPT_FLOAT, ONLINE_OPT_DOUBLE, ONLINE_OPT_BOOL
} online_option_type;
typedef struct {
    const char *name;
    online_option_type type;
    size_t offset;              // offsetof(online_config, field)
    const char *help;
    double lo, hi;              // accepted range for numbers (both 0: any)
    const char *alias;
} online_option;
// The loop's options (rollout, reward, epochs, reference, samples), NULL-name ended.
extern const online_option online_loop_options[];

// ------------------------------------------------ online DPO (online_dpo.c) --
// Pairs (chosen[k], rejected[k]) of rows from the scores (n_prompts groups of n
// rows): max_min the first best against the last worst of each group, all every
// ordered pair with a higher and a lower score, ranked (OSP) best against worst,
// second best against second worst, ... (pref_ranked_pairs; pairs of equal
// scores left out). A group whose scores are all equal gives none. Returns the
// number of pairs (room: n_prompts*n*n).
int online_dpo_pairs(online_pairs mode, int n_prompts, int n, const float *scores, int *chosen,
                     int *rejected);
// What online DPO gives a paired loss besides the pairs' summed log-probs: the
// reference, INPO's previous iterate pi_t (a snapshot refreshed every
// --inpo_iteration_steps), VPO's calibration samples of pi_cal (--cal_model,
// --cal_samples) and OSP's preference strengths (--judge self; 1 for pairs the
// reward set judges), and room for a margin (none). Losses needing more (SRPO's
// revisions, per-token log-probs) are refused by --loss_type.
#define ONLINE_DPO_INPUTS                                                              \
    (PREF_NEED_REFERENCE | PREF_NEED_MARGIN | PREF_NEED_CAL_SAMPLES | PREF_NEED_PREVIOUS | \
     PREF_NEED_STRENGTH)

#endif
