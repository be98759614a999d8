// ctrl/ctrl_train: the control trainer — the offline-to-online protocol on one
// algorithm of ctrl_algos (agent.h) and one environment (env.h):
//
//   steps 1 .. offline_steps            one gradient update each, on batches
//                                       of the offline dataset
//   steps offline_steps+1 .. + online   one environment step each (random
//                                       actions for the first start_steps), the
//                                       transition into the online buffer, then
//                                       utd updates on mixed batches (a
//                                       mix_ratio share from the dataset)
//
// Offline-to-online recipes (WSRL, Zhou et al. 2024): offline_algo names the
// algorithm of the offline phase when it differs from algo (the agent of algo
// takes over at the first online step, every tensor of the same name copied
// from the offline agent); retain_offline 0 keeps the dataset out of the
// online phase (batches from the online buffer alone); the first warmup_steps
// online steps act with the (pre-trained) policy and take no updates; online
// batches hold online_batch_size rows. ctrl_train_default_config fills them
// for a named recipe (--algo wsrl: Cal-QL, no retention, 5000 warm-up steps,
// batches of 1024).
//
// with evaluation every eval_every steps (eval_episodes deterministic episodes
// on an environment of its own, seeded per evaluation) and the run directory of
// the language-model trainers: config.json, metrics.jsonl, checkpoints/step-N
// and final ({agent.safetensors, state.json, online_buffer.safetensors in the
// online phase}), summary.json, --resume, --overwrite_output_dir, a progress
// bar, and a clean stop with a checkpoint on SIGINT / SIGTERM.
//
// A simulator's state cannot be saved generically, so in the online phase a
// checkpoint (periodic, or for a stop) is written at the end of the episode in
// progress: a resumed run then starts a fresh episode from the saved
// environment stream, and its numbers are bit-identical to an uninterrupted run.
#ifndef RLHF_CTRL_CTRL_TRAIN_H
#define RLHF_CTRL_CTRL_TRAIN_H

#include <stddef.h>

#include "ctrl/agent.h"
#include "ctrl/buffer.h"
#include "ctrl/env.h"

typedef struct ctrl_train_config {
    const char *algo;    // a ctrl_algo name
    const char *env;     // a ctrl_env_make name
    const char *dataset; // D4RL-layout HDF5 file, or NULL / "" (online only)
    const char *output_dir;
    int offline_steps, online_steps;
    int batch_size;
    uint64_t seed;
    int eval_every, eval_episodes, log_every, save_every; // in steps (0: never / only at the end)
    float mix_ratio;                                      // offline share of online-phase batches
    int buffer_size;                                      // online buffer capacity (rows; a ring)
    int start_steps;         // uniform random actions before the policy acts online (-1: auto)
    int utd;                 // updates per online environment step
    const char *offline_algo; // the offline phase's algorithm (NULL / "": algo)
    int retain_offline;      // 1: online batches mix in the dataset (mix_ratio); 0: never
    int warmup_steps;        // online steps acting with the policy before any update
    int online_batch_size;   // rows of an online-phase batch (0: batch_size)
    int normalize_obs;       // CORL's: mean/std of the dataset's observations
    const char *reward_norm; // "none" or "returns" (CORL: r *= 1000 / (max - min episode return))
    float reward_scale, reward_bias; // then r = r * scale + bias (CORL's IQL/CQL options)
    double ref_random_return, ref_expert_return; // NAN: from the dataset, else unknown
    int resume, overwrite_output_dir, quiet;
    int stop_at;             // stop as a signal would once this step is done (0: never)
    const char *config_json; // the flags as JSON, recorded in the run directory
    const char *report_to;   // none (NULL too) | tensorboard; run_open reads config_json's copy
    // LaMo (lamo_train.c): the pre-trained language model under the decision
    // transformer (a path or named size model_load_any reads; NULL / "": random init)
    // and the text of its auxiliary language-modelling loss (NULL / "": none)
    const char *lamo_model, *lamo_text;
    ctrl_algo_config algo_cfg;
} ctrl_train_config;

// Defaults (those of the flags), with algo_cfg from `algo`'s defaults when it
// is known (else left zeroed), and a recipe's protocol when `algo` names one
// (wsrl: offline_algo calql, retain_offline 0, warmup_steps 5000,
// online_batch_size 1024).
void ctrl_train_default_config(ctrl_train_config *c, const char *algo);

// The fields of ctrl_algo_config by name (flags, state.json); NULL-terminated.
typedef struct {
    const char *name;
    int is_int;    // int, else float
    size_t offset; // into ctrl_algo_config
    const char *help;
} ctrl_algo_field;
extern const ctrl_algo_field ctrl_algo_fields[];

// Evaluation history of a run (collect reads it); freed by ctrl_train_result_free.
typedef struct ctrl_train_result {
    int stopped; // stopped by a signal or stop_at (no final checkpoint)
    int n_evals;
    int *eval_step;
    double *eval_mean, *eval_std;
    double final_mean, final_std, final_score; // the last evaluation (score NAN: no refs)
    char final_checkpoint[4400];
} ctrl_train_result;
void ctrl_train_result_free(ctrl_train_result *r);

// Runs the protocol: 0 when finished or stopped cleanly (res->stopped), -1 +
// err otherwise. res may be NULL.
int ctrl_train(const ctrl_train_config *c, ctrl_train_result *res, rlhf_err *err);

// ------------------------------------------------------------- policies --
// A trained agent loaded from a checkpoint folder (agent.safetensors +
// state.json), with the observation normalisation it was trained with.
typedef struct {
    const ctrl_algo *algo;
    void *agent;
    ctrl_algo_config cfg;
    char env[256];
    int obs_dim, act_dim;
    float act_low[CTRL_MAX_DIM], act_high[CTRL_MAX_DIM];  // the action box it acts in
    ctrl_obs_norm norm;
    double ref_random_return, ref_expert_return; // NAN when unknown
} ctrl_policy;
int ctrl_policy_load(const char *checkpoint_dir, ctrl_policy *p, rlhf_err *err);
// The algorithm a checkpoint folder's state.json names (NULL + err: none, or
// unknown), and its environment into env (n bytes; "" when absent). One whose table has eval_checkpoint (LaMo, HNPG) is evaluated by it, not
// loaded as a ctrl_policy.
const ctrl_algo *ctrl_checkpoint_algo(const char *checkpoint_dir, char *env, size_t n,
                                      rlhf_err *err);
void ctrl_policy_free(ctrl_policy *p);
// A run directory's checkpoint to evaluate: checkpoints/final, else the newest
// complete step-N. 0, or -1 + err.
int ctrl_run_checkpoint(const char *run_dir, char *out, size_t n, rlhf_err *err);

// Episodes of a policy on e (seeded with seed first): the returns' mean and
// std. `policy` NULL: uniform random actions (the random reference), drawn
// from a stream seeded with seed. deterministic: the policy's greedy action.
int ctrl_evaluate(ctrl_env *e, ctrl_policy *policy, int episodes, uint64_t seed, int deterministic,
                  double *mean, double *std, rlhf_err *err);
// Rolls a policy (NULL: uniform random) out on e for `steps` transitions
// (episodes cut at the time limit; the last one may be cut short and is
// marked timeout) appended to t (raw observations and rewards).
int ctrl_rollout(ctrl_env *e, ctrl_policy *policy, long steps, uint64_t seed, int deterministic,
                 ctrl_transitions *t, rlhf_err *err);

// ------------------------------------------------------------ collect --
// D4RL-style datasets from our own SAC agent (ctrl_collect.c): SAC trains
// online through ctrl_train in OUT/sac (checkpoints every steps/checkpoints
// steps); then OUT/{random, medium, medium-replay, expert, medium-expert}.hdf5:
//   random         uniform random actions
//   medium         samples of the checkpoint whose evaluated return is nearest
//                  R_random + (R_expert - R_random) / 3 (D4RL's "medium" is a
//                  policy at about a third of the expert's performance)
//   medium-replay  the SAC replay buffer as saved in that checkpoint
//   expert         samples of the final policy
//   medium-expert  medium followed by expert
// Each file records env, level, ref_random_return (the uniform random policy's
// mean return over eval_episodes) and ref_expert_return (the final policy's
// evaluated return).
typedef struct {
    const char *env, *out;
    int steps;         // SAC online environment steps
    int dataset_steps; // transitions in random / medium / expert (0: steps)
    int checkpoints;   // evaluated checkpoints during training
    int eval_episodes;
    // resume: go on from OUT/sac's newest checkpoint (a stop, a full disk); a
    // finished OUT/sac of the same flags is used as it is, and only the files are
    // written again
    int overwrite_output_dir, resume, quiet;
    ctrl_train_config train; // SAC's run (algo "sac"; env, output_dir, online_steps set by collect)
} ctrl_collect_config;
void ctrl_collect_default_config(ctrl_collect_config *c);
int ctrl_collect(const ctrl_collect_config *c, rlhf_err *err);

#endif
