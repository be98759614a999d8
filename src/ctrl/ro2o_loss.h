// ctrl/ro2o_loss: the pure regularisers of RO2O (algo_ro2o.c) over plain
// arrays; each returns its (weighted) loss and writes (=, not +=) the gradient
// with respect to its inputs, so tests/test_ctrl_ro2o.c can check it by finite
// differences.
//
// Papers: RO2O, Wen et al. 2024 ("Towards Robust Offline-to-Online
// Reinforcement Learning via Uncertainty and Smoothness", JAIR); its
// components come from RORL, Yang et al. 2022 ("RORL: Robust Offline
// Reinforcement Learning via Conservative Smoothing"). Formulas as in RORL's
// lifelong_rl/trainers/q_learning/sac.py and RO2O's ro2o_mujoco.py.
//
// Perturbed states: for B states and n samples, row b * n + j of a "noised"
// array belongs to state b and perturbation j (torch's repeat order).
#ifndef RLHF_CTRL_RO2O_LOSS_H
#define RLHF_CTRL_RO2O_LOSS_H

#include "base/base.h"

// Value smoothing: with d[e, b, j] = q_noised[e, b*n+j] - q[e, b],
//   l[b, j] = mean_e [(1 - tau) max(d, 0)^2 + tau min(d, 0)^2]
//   loss    = weight * mean_b max_j l[b, j]
// (the max over the sampled perturbations, not per member; gradient to the
// arg-max sample only, the first on ties). q (E, B), q_noised (E, B*n) ->
// dq (E, B), dq_noised (E, B*n) (either may be NULL).
double ro2o_q_smooth(const float *q, const float *q_noised, float tau, float weight, int E, int B,
                     int n, float *dq, float *dq_noised);

// OOD penalty on R rows (perturbed states with the policy's actions):
//   target[e, r] = sg[q[e, r] - beta * std_e q[:, r]]   (std unbiased, over E members)
//   loss = weight * mean_{e, r} (q[e, r] - target[e, r])^2
// so its value is weight * mean_r (beta std_r)^2 and its gradient
// 2 weight beta std_r / (E R) on every member. q (E, R) -> dq (E, R) (may be
// NULL); E >= 2. *std_mean (may be NULL) receives mean_r std_r.
double ro2o_ood_penalty(const float *q, float beta, float weight, int E, int R, float *dq,
                        double *std_mean);

// Policy smoothing: the Jeffreys divergence KL(p||p~) + KL(p~||p) between the
// PRE-tanh Gaussians p = N(mu, sigma) of a clean state and p~ of a perturbed
// one, summed over the A action dims, max over the n samples, mean over B:
//   J = sum_i [(s_i^2 + D_i^2) / (2 s~_i^2) + (s~_i^2 + D_i^2) / (2 s_i^2) - 1],  D = mu - mu~
//   loss = weight * mean_b max_j J[b, j]
// out (B, 2A) and out_noised (B*n, 2A) are the actor's raw [mu | log_std] rows;
// log_std is clamped to [log_std_min, log_std_max] (gradient 0 outside), as
// policy.h's tanh-Gaussian. Gradients flow to both sides (RORL does not
// detach the clean state): dout (B, 2A), dout_noised (B*n, 2A) (either may be NULL).
double ro2o_jeffreys(const float *out, const float *out_noised, float log_std_min,
                     float log_std_max, float weight, int B, int n, int A, float *dout,
                     float *dout_noised);

// The noise one RO2O / SAC-N update draws, in this order (floats), O = obs dims:
//   eps_alpha (B, A)      N(0,1): the temperature loss's sample at s
//   eps_pi    (B, A)      N(0,1): the actor loss's sample at s
//   u_pol     (n, O)      U[-1,1): policy-smoothing perturbations (times ro2o_policy_eps)
//   eps_next  (B, A)      N(0,1): the target's sample at s'
//   u_q       (n, O)      U[-1,1): value-smoothing perturbations (times ro2o_q_eps)
//   u_ood     (n, O)      U[-1,1): OOD-state perturbations (times ro2o_ood_eps)
//   eps_ood   (B, n, A)   N(0,1): the policy's actions at the OOD states
// As RORL's code, the n perturbations are shared by the batch's B states. The
// update calls ro2o_draw_noise on its rng; a test copies the rng beforehand
// and calls it too, to see the same draws.
long ro2o_noise_size(int B, int O, int A, int n);
void ro2o_draw_noise(rlhf_rng *rng, int B, int O, int A, int n, float *noise);

#endif
