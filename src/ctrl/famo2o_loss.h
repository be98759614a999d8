// ctrl/famo2o_loss: FamO2O's pieces beyond ctrl_loss.h, as pure functions —
// the sin-cos encoding of a balance coefficient beta, the balance model's
// loss and its temperature's loss — plus a look at a FamO2O agent's balance
// choices (for tests and studies). Gradients ACCUMULATE (+=), as in
// ctrl_loss.h.
//
// Source: Wang, Chen, Zhu, Zhang, Wang & Huang 2023, "Train Once, Get a
// Family: State-Adaptive Balances for Offline-to-Online Reinforcement
// Learning" (NeurIPS 2023); definitions as the authors' code
// (LeapLabTHU/FamO2O, jax_iql/family_utils.py sin_cos_skill_func,
// family_actor.py, family_temperature.py), our own code.
#ifndef RLHF_CTRL_FAMO2O_LOSS_H
#define RLHF_CTRL_FAMO2O_LOSS_H

// the encoding's width and base (the authors' family_sin_cos_d = 6,
// family_sin_cos_n = 10000)
enum { CTRL_FAMO2O_ENC_DIM = 6 };
#define CTRL_FAMO2O_ENC_BASE 10000.0

// enc (B, D) from beta (B), D even: with k = beta / n^(2i / D), i = 0 .. D/2-1,
// enc[2i] = sin(k), enc[2i+1] = cos(k) (a transformer's position code of beta)
void ctrl_famo2o_encode(float *enc, const float *beta, int B, int D, double n);
// denc (B, D) -> dbeta (B) +=
void ctrl_famo2o_encode_backward(float *dbeta, const float *denc, const float *beta, int B, int D,
                                 double n);

// The balance model's loss (family_actor.py family_hierarchical_update):
// loss = mean_b (alpha logp_b[b] - q[b]), logp_b the balance sample's
// log-probability, q = min_e Q(s, a ~ pi_u(s, beta)); alpha is held fixed.
// dlogp (B) += alpha / B, dq (B) += -1 / B (either may be NULL).
double ctrl_famo2o_balance_loss(float *dlogp, float *dq, const float *logp, const float *q, int B,
                                double alpha);

// The balance temperature's loss (family_temperature.py): alpha = exp(log_alpha),
// loss = alpha (entropy - target_entropy) with entropy = -mean logp_b held
// fixed; *dlog_alpha (may be NULL) += alpha (entropy - target_entropy).
double ctrl_famo2o_alpha_loss(float *dlog_alpha, float log_alpha, double entropy,
                              double target_entropy);

// beta (B) that a FamO2O agent (ctrl_algo_famo2o's) picks for obs (B, obs_dim):
// the balance model's deterministic choice, as its act uses (algo_famo2o.c)
void ctrl_famo2o_betas(void *agent, const float *obs, int B, float *beta);
// the universal policy's mean action (B, act_dim) at obs (B, obs_dim) and a
// given beta (B): one member of the family, whatever the balance model says
void ctrl_famo2o_family_act(void *agent, const float *obs, const float *beta, int B, float *action);

#endif
