// ctrl/agent: the control algorithms behind one table. An algorithm owns its
// networks (ctrl_mlp), their optimizers and targets; `update` is one gradient
// step on a batch, `act` picks actions. The trainer (ctrl_train.c) knows none
// of them by name: it looks the table up in ctrl_algos[], and checkpoints an
// agent through `tensors` (every network, target, Adam moment and counter as
// a named float span, so save → load → update is bit-identical).
#ifndef RLHF_CTRL_AGENT_H
#define RLHF_CTRL_AGENT_H

#include "base/base.h"
#include "ctrl/buffer.h"
#include "ctrl/mlp.h"

// Hyper-parameters of every algorithm (one struct; each algorithm reads its
// own fields). ctrl_algo.defaults fills the paper's / CORL's values.
typedef struct {
    int hidden, layers;       // MLP width and hidden layers (256, 2)
    int n_critics;            // Q ensemble size (2)
    int critic_layer_norm;    // 1: LayerNorm in the critics' hidden layers (0; algorithms
                              // with .critic_layer_norm only)
    int actor_layer_norm;     // 1: LayerNorm in the policy's hidden layers (0; the same)
    float gamma, tau;         // discount (0.99), Polyak rate (0.005)
    float actor_lr, critic_lr, value_lr, alpha_lr;  // 3e-4 ...
    int policy_freq;          // TD3: actor/target update every k critic updates (2)
    float policy_noise, noise_clip, expl_noise;  // TD3 target smoothing (0.2, 0.5), exploration (0.1)
    float td3bc_alpha;        // TD3+BC's alpha (2.5)
    float iql_tau, iql_beta;  // IQL expectile (0.7) and inverse temperature (3.0)
    float adv_clip;           // IQL/AWAC exp-advantage weight clip (100)
    float awac_lambda;        // AWAC temperature (1.0)
    float sac_alpha;          // initial entropy coefficient (1.0)
    int autotune_alpha;       // learn alpha towards target_entropy (1)
    float target_entropy;     // NAN: -act_dim
    float cql_alpha;          // CQL's conservative weight (5.0 / 10.0)
    int cql_n_actions;        // sampled actions per state for the logsumexp (10)
    float cql_temp;           // logsumexp temperature (1.0)
    int calql;                // Cal-QL: lower-bound the policy's Q by mc_return (0)
    int deterministic_bc;     // BC: MSE on a deterministic policy (1) or Gaussian NLL (0)
    float log_std_min, log_std_max;  // tanh-Gaussian / Gaussian clamps (-20, 2)
    int max_steps;            // total updates (IQL's/AWAC's actor cosine schedule uses it)
    float riql_quantile;      // RIQL: quantile of the target-Q ensemble for V (0.25)
    float riql_sigma;         // RIQL: Huber threshold delta = 1/sigma^2 (1.0)
    // RO2O (algo_ro2o.c; 0 = off, SAC-N): perturbed states per state (20), the
    // eps-ball radii (0.01), the weights of value smoothing (1e-4), policy
    // smoothing (1.0) and the OOD penalty (0.1), the value-smoothing expectile
    // (0.2), the OOD uncertainty coefficient beta (1.0) decaying per update
    // by ro2o_beta_decay (5e-7) down to ro2o_beta_min (0.1)
    int ro2o_samples;
    float ro2o_q_eps, ro2o_policy_eps, ro2o_ood_eps;
    float ro2o_q_weight, ro2o_policy_weight, ro2o_ood_weight, ro2o_q_tau;
    float ro2o_beta, ro2o_beta_min, ro2o_beta_decay;
    // FamO2O (algo_famo2o.c): the balance (IQL inverse temperature) range (1, 5);
    // updates 1..famo2o_uniform_steps draw beta uniformly (the offline phase:
    // -1, the default, is the trainer's --offline_steps), later ones from the balance model
    float famo2o_beta_min, famo2o_beta_max;
    int famo2o_uniform_steps;
    // Each method below keeps its settings inside its own block (its helper
    // edits only that block; ctrl_train.c's field table has the same blocks).
    // H2O (algo_h2o.c)
    // (h2o fields)
    // weight of the sim-weighted conservative term (0.01), discriminator input
    // noise std (0.1) and learning rate (3e-4), the dynamics-ratio clip
    // [h2o_ratio_min, h2o_ratio_max] (1e-5, 1), perturbed next states per sim
    // row for u (10) and u's upper clip (10)
    float h2o_cql_weight, h2o_disc_noise, h2o_disc_lr, h2o_ratio_min, h2o_ratio_max;
    int h2o_u_samples;
    float h2o_u_max;
    // MOORL (algo_moorl.c)
    // (moorl fields)
    // K inner SAC updates per meta-epoch (5), Reptile's step eps (0.5), the
    // chance of a meta-epoch on the offline buffer (0.5)
    int moorl_inner_steps;
    float moorl_meta_lr, moorl_p_offline;
    // HNPG (algo_hnpg.c)
    // (hnpg fields)
    // HNPG's own loop (hnpg_train.c; critic_lr, hidden, layers are shared):
    // online steps per iteration (1000, whole episodes), Adam steps per critic
    // per iteration (30), draws for V_h (10), 1 hybrid / 0 on-policy NPG (1),
    // eps-greedy episodes made for comblock without --dataset (1000), CG
    // iterations (10); discount (1), GAE lambda (0.97), max KL (0.01), CG
    // damping (0.1), the greedy return counted as solved (0.9), eps (-1: 1/H)
    int hnpg_batch_steps, hnpg_critic_steps, hnpg_value_samples, hnpg_hybrid;
    int hnpg_offline_episodes, hnpg_cg_iters, hnpg_critic_tanh, hnpg_policy_hidden;
    float hnpg_gamma, hnpg_lambda, hnpg_max_kl, hnpg_damping, hnpg_solve_return, hnpg_offline_eps;
    // FISOR (algo_fisor.c)
    // (fisor fields)
    // reverse expectile of V_h (0.9), the infeasible branch's temperature (5) and
    // clip (150), h = fisor_cost_scale where cost > 0 else -1 (25), the EMA rate
    // of the sampling copy of the denoiser (0.001), the sampler's noise
    // temperature (1), the actor lr's cosine decay length (3e6; 0: constant),
    // diffusion steps (5), candidate actions per state (16), time features (16)
    float fisor_cost_tau, fisor_cost_temp, fisor_cost_ub, fisor_cost_scale;
    float fisor_actor_tau, fisor_ddpm_temp, fisor_lr_decay;
    int fisor_T, fisor_samples, fisor_time_dim;
    // CPL (algo_cpl.c)
    // (cpl fields)
    // inverse temperature alpha (0.1), the contrastive bias lambda on the
    // dispreferred segment (0.5), the weight of a BC term added to the CPL
    // loss (0), pairs per update (32), BC updates before CPL starts (0); the
    // lr after BC: actor_lr * cpl_lr_scale * min(1, k / cpl_warmup) at the
    // k-th CPL update from 0 (the authors' linear_warmup; cpl 1 and 0 = off,
    // cpl_kl 0.1 and 10000); cpl_ranked 1: each update ranks 2 cpl_batch
    // segments by their labeller scores (the authors' biased_bce_with_scores)
    float cpl_alpha, cpl_lambda, cpl_bc_coeff, cpl_lr_scale;
    int cpl_batch, cpl_bc_steps, cpl_warmup, cpl_ranked;
    // LaMo (lamo.c, lamo_train.c)
    // (lamo fields)
    // context K in steps (20), LoRA rank (16; 0: every weight of the LM trains)
    // and alpha (32), weight of the LM loss (0.1), Adam lr (1e-4), weight decay
    // (1e-5), linear warm-up steps (-1: min(2500, steps / 10)), global clip
    // (0.25), the evaluation's target return (NAN: the dataset's best episode),
    // the return scale (1000), 1 the LM's pre-trained weights / 0 its shape with
    // a fresh init (1), tanh on the head (1), LM rows per step (4) and tokens per
    // row (64)
    int lamo_K, lamo_lora_r, lamo_warmup, lamo_pretrained, lamo_tanh, lamo_lm_batch, lamo_lm_len;
    float lamo_lora_alpha, lamo_lm_coeff, lamo_lr, lamo_weight_decay, lamo_clip;
    float lamo_target_return, lamo_rtg_scale;
    float lamo_dropout, lamo_attn_dropout, lamo_lora_dropout;
    int lamo_positions;
} ctrl_algo_config;

// up to 24 named scalars an update reports (loss terms, Q means, alpha ...)
typedef struct {
    int n;
    const char *name[24];
    double value[24];
} ctrl_metrics;
void ctrl_metrics_add(ctrl_metrics *m, const char *name, double value);

// a named span of an agent's state, for checkpoints
typedef struct {
    const char *name;  // "actor", "critic", "critic_target", "actor.adam_m", "step", ...
    float *data;
    long n;
} ctrl_tensor;

struct ctrl_train_config; // ctrl/ctrl_train.h
struct ctrl_train_result;

typedef struct ctrl_algo {
    const char *name;     // "bc", "td3", "td3_bc", "iql", "cql", "calql", "awac", "sac"
    const char *summary;  // one line for --help
    int offline;          // 1 when it learns from a fixed dataset alone by design (bc)
    // 1 when update takes only this MPI rank's share of the batch's rows and
    // sums its gradients over the ranks (algo_common.h's ctrl_share_*), so
    // ctrl train may run it on N ranks (docs/mpi.md); 0: refused there
    int data_parallel;
    void (*defaults)(ctrl_algo_config *c);
    // obs_dim / act_dim and the action bounds (act_dim each)
    int (*create)(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *act_low,
                  const float *act_high, rlhf_rng *rng, void **agent, rlhf_err *err);
    // one gradient step; rng draws the algorithm's noise (target smoothing,
    // policy samples); fills metrics
    int (*update)(void *agent, const ctrl_batch *b, rlhf_rng *rng, ctrl_metrics *metrics,
                  rlhf_err *err);
    // actions for B observations (B, obs_dim) -> action (B, act_dim);
    // deterministic: the mean / greedy action (evaluation); else exploration
    // (Gaussian noise for TD3, a policy sample for SAC ...)
    void (*act)(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                float *action);
    // the agent's state as named spans; returns the count (<= max)
    int (*tensors)(void *agent, ctrl_tensor *out, int max);
    void (*free)(void *agent);
    // optional (NULL: none): called by the trainer once, right after create,
    // with --dataset's path and its rows as trained on (observations
    // normalised as the trainer normalises them; kept alive for the run);
    // both NULL without a dataset. CPL loads its segment pairs here.
    int (*attach)(void *agent, const char *dataset, const ctrl_transitions *offline,
                  rlhf_err *err);
    // optional (NULL: the trainer's protocol): an algorithm with a loop of its
    // own (HNPG: on-policy, whole fresh episodes per iteration) runs the whole
    // training from the trainer's config; ctrl_train calls it instead
    int (*run)(const struct ctrl_train_config *c, struct ctrl_train_result *res, rlhf_err *err);
    // 1 when `run` keeps checkpoints (LaMo, HNPG): it prepares --output_dir and
    // honours --resume itself; 0: ctrl_train prepares the folder and refuses --resume
    int own_checkpoints;
    // 1 when its networks honour critic_layer_norm and actor_layer_norm
    // (ctrl_sac_nets_init's); the trainer refuses either flag at 1 for the others
    int critic_layer_norm;
    // optional (NULL: ctrl_policy_load's agent): evaluates a checkpoint folder
    // of `run` (rlhf ctrl eval) on env (NULL: its own) over `episodes`
    // episodes seeded from seed as its training evaluations are; the
    // references recorded in the checkpoint (NAN: unknown)
    int (*eval_checkpoint)(const char *dir, const char *env, int episodes, uint64_t seed,
                           double *mean, double *std, double *ref_random, double *ref_expert,
                           rlhf_err *err);
} ctrl_algo;

// the registry (agent.c): by name, NULL when unknown
const ctrl_algo *ctrl_algo_find(const char *name);
const char *ctrl_algo_names(void);  // "bc, td3, td3_bc, ..."

// An agent's span `name` (its `tensors`) copied into a fresh ctrl_mlp of
// in -> hidden (x layers) -> out with ens members: 0; 1 when the span exists
// but holds another count of values (*n_found); -1 when there is no such
// span. m is initialised only on 0 (free it with ctrl_mlp_free).
int ctrl_agent_net(const ctrl_algo *algo, void *agent, const char *name, int in, int hidden,
                   int layers, int out, int ens, ctrl_mlp *m, long *n_found);

#endif
