// ctrl/hnpg: Hybrid NPG (Zhou, Sekhari, Song, Sun, Krishnamurthy, Bagnell
// 2023, "Offline Data Enhanced On-Policy Policy Gradient with Provable
// Guarantees"; the authors' HNPG repository) — on-policy natural policy
// gradient whose critic also learns from offline data. Finite horizon H, one
// policy pi_h and one critic Q_h per step. One iteration:
//
//   1. whole online episodes with pi (at least batch_steps steps)
//   2. critics backward over h = H-1 .. 0, each `critic_steps` Adam steps
//      (fresh moments) on  mean_on (Q_h(s,a) - G)^2  (G: the online
//      Monte-Carlo return-to-go)  +  mean_off (Q_h(s,a) - y)^2  with the FQE
//      target y = r + (1 - done) Q_{h+1}(s', a'),  a' ~ pi_{h+1}(s')  (offline
//      rows at step h; as many as there are online episodes)
//   3. advantages: online GAE(gamma, lambda) with V_h(s) = mean of
//      value_samples draws Q_h(s, a ~ pi_h); offline: a~ ~ pi_h(s),
//      A = Q_h(s, a~) - V_h(s)
//   4. per h, a natural-gradient (TRPO) step on the online and offline rows
//      together (hnpg_math.h: CG with damping, max KL, line search)
//
// hybrid 0 is pure on-policy NPG: no offline rows anywhere (critic = MC
// regression, actor = online rows). Offline data: a D4RL-layout file whose
// rows are whole episodes in order (the step index h of a row is its place
// in its episode), or, for comblock environments without a file, episodes
// of the eps-greedy optimal policy (eps = 1/H) made here.
#ifndef RLHF_CTRL_HNPG_H
#define RLHF_CTRL_HNPG_H

#include "ctrl/buffer.h"
#include "ctrl/ctrl_train.h"
#include "ctrl/hnpg_math.h"
#include "ctrl/mlp.h"

typedef struct {
    const char *env;      // "comblock:H=10", or any environment with a time limit
    const char *dataset;  // D4RL-layout HDF5 (NULL / "": made for comblock when hybrid)
    int hybrid;           // 1 HNPG, 0 on-policy NPG
    int offline_episodes; // eps-greedy episodes made when no dataset (1000)
    double offline_eps;   // their eps (NAN: 1/H)
    long online_steps;    // the budget of environment steps (0: no limit)
    int max_iterations;   // (0: no limit; one of the two limits must be set)
    int batch_steps;      // online steps per iteration, whole episodes (1000)
    int critic_steps;     // Adam steps per critic per iteration (30)
    float critic_lr;      // 3e-4
    int hidden, layers;   // critic MLP (64, 2)
    int critic_tanh;      // 1: tanh hidden layers in the critics (0: ReLU)
    int policy_hidden;    // 0: linear-Gaussian policies; else tanh MLP means of 2 such layers
    int value_samples;    // draws of a ~ pi_h for V_h (10)
    double gamma, lambda; // 1, 0.97
    hnpg_npg_opts npg;    // max_kl 0.01, damping 0.1, 10 CG iterations
    int eval_episodes;    // greedy episodes after each iteration (20)
    double solve_return;  // solved when the greedy mean return reaches it (0.9)
    int stop_when_solved; // 1: stop at the first solved evaluation
    uint64_t seed;
    const char *output_dir; // metrics.jsonl, summary.json, checkpoints/ there (NULL: none)
    int quiet;
    // the control trainer's config the run came from (NULL: no checkpoints):
    // its save_every / stop_at (in online steps), config_json and the settings
    // a checkpoint records (algo_cfg); resume_from: the checkpoint --resume
    // continues ("" / NULL: a fresh run)
    const struct ctrl_train_config *train;
    const char *resume_from;
} hnpg_config;
void hnpg_default_config(hnpg_config *c);

typedef struct {
    int iterations;
    long online_steps, online_episodes;
    int solved;                   // an evaluation reached solve_return
    long episodes_to_solve;       // online episodes before the first solved evaluation (-1)
    long steps_to_solve;          // the same in environment steps (-1)
    double final_eval, best_eval; // greedy mean returns
    double final_std;             // of the last evaluation's episode returns
    int stopped;                  // stopped by --stop_at or a signal (a checkpoint, no final)
    char final_checkpoint[4400];  // checkpoints/final ("" without a folder)
    double seconds;
} hnpg_result;

int hnpg_train(const hnpg_config *c, hnpg_result *res, rlhf_err *err);

// One critic fit: `steps` Adam steps (fresh moments, betas 0.9/0.999, lr) on
// mean_on (q(X_on) - y_on)^2 + mean_off (q(X_off) - y_off)^2 (either part may
// have 0 rows). X rows are [s, a]. *loss_on / *loss_off: the two means at the
// last step, before its update.
void hnpg_critic_fit(ctrl_mlp *q, const float *X_on, const float *y_on, int n_on,
                     const float *X_off, const float *y_off, int n_off, int steps, float lr,
                     double *loss_on, double *loss_off);

// Offline data for a comblock: `episodes` episodes of the eps-greedy optimal
// policy (with probability eps a uniform action in [0,1]^K, else the one-hot
// of the right choice), environment seeded with seed. t is allocated.
int hnpg_comblock_episodes(const char *env, int episodes, double eps, uint64_t seed,
                           ctrl_transitions *t, rlhf_err *err);
// the same written as a D4RL-layout file (level "eps-greedy", refs: random
// 0.05, expert 1)
int hnpg_comblock_dataset(const char *env, int episodes, double eps, uint64_t seed,
                          const char *path, rlhf_err *err);

// The control trainer's entry for --algo hnpg (ctrl_algo_hnpg.run, algo_hnpg.c): maps
// ctrl_train_config (env, dataset, online_steps, seed, eval_episodes, output_dir, quiet and the
// hnpg_* / critic_lr / hidden / layers fields of algo_cfg) onto hnpg_config.
int ctrl_hnpg_train(const ctrl_train_config *c, ctrl_train_result *res, rlhf_err *err);
// ctrl_algo_hnpg.eval_checkpoint (hnpg_ckpt.c): rlhf ctrl eval of a checkpoint
// folder: the per-step policies' greedy episodes, as the run's evaluations
int ctrl_hnpg_eval_checkpoint(const char *dir, const char *env, int episodes, uint64_t seed,
                              double *mean, double *std, double *ref_random, double *ref_expert,
                              rlhf_err *err);

#endif
