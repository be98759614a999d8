// ctrl/cql_loss: the pure loss functions of SAC, CQL and Cal-QL (algo_sac.c),
// each over plain arrays, returning the loss and writing (=, not +=) its
// gradient with respect to the Q values / log-probabilities it was given, so
// tests/test_ctrl_cql.c can check each one by finite differences.
//
// Papers: SAC with automatic entropy tuning, Haarnoja et al. 2018 ("Soft
// Actor-Critic Algorithms and Applications"); CQL, Kumar et al. 2020
// (the CQL(H) variant with importance-sampled logsumexp, appendix F);
// Cal-QL, Nakamoto et al. 2023 (the policy actions' Q bounded below by the
// Monte-Carlo return). Formulas as in CORL's cql.py / cal_ql.py.
// Shapes: B states, E critics, N sampled actions per state, A action dims.
#ifndef RLHF_CTRL_CQL_LOSS_H
#define RLHF_CTRL_CQL_LOSS_H

#include "base/base.h"

// SAC's critic target: y (B) = r + gamma (1 - done) (min_e q_next[e, b] - ent_coef logp_next[b]);
// q_next (E, B) from the target critics at (s', a' ~ pi(s')). ent_coef is alpha
// with SAC's entropy backup and 0 without (CQL's default).
void ctrl_sac_target(float *y, const float *q_next, const float *logp_next, const float *rew,
                     const float *done, float gamma, float ent_coef, int E, int B);

// Critic regression: sum over members of mean_b (q[e, b] - y[b])^2 (CORL adds
// the members' MSE); q (E, B) -> dq (E, B).
double ctrl_sac_critic_mse(const float *q, const float *y, int E, int B, float *dq);

// Actor loss: mean_b (alpha logp[b] - min_e q[e, b]); q (E, B) at (s, a ~ pi(s)),
// logp (B) -> dq (E, B) (-1/B on each row's minimum member, 0 elsewhere), dlogp (B).
double ctrl_sac_actor_loss(const float *q, const float *logp, float alpha, int E, int B, float *dq,
                           float *dlogp);

// Entropy temperature: loss = -log_alpha mean_b (logp[b] + target_entropy)
// (logp treated as a constant); returns the loss, *dlog_alpha its gradient.
double ctrl_sac_alpha_loss(const float *logp, float log_alpha, float target_entropy, int B,
                           float *dlog_alpha);

// CQL's conservative term for one critic, Kumar et al. 2020 eq. 4 with the
// importance-sampled logsumexp of their appendix F (CORL's default):
//   ood[b] = temp * log sum_j exp(cat[b, j] / temp) over the 3N values
//     q_rand[b, j] - log_density_rand       (uniform random actions)
//     q_next[b, j] - logp_next[b, j]        (pi(s') samples, evaluated at s)
//     q_cur[b, j]  - logp_cur[b, j]         (pi(s) samples)
//   loss = weight * mean_b (ood[b] - q_data[b])
// Cal-QL (mc_return != NULL): q_cur and q_next are first replaced by
// max(q, mc_return[b]) (Nakamoto et al. 2023, eq. 5; gradient 0 where the bound wins).
// q_rand, q_cur, q_next, logp_cur, logp_next (B, N); q_data, mc_return (B).
// Gradients (any may be NULL): dq_rand, dq_cur, dq_next (B, N), dq_data (B).
// *ood_mean (may be NULL) receives mean_b ood[b].
double ctrl_cql_conservative(const float *q_rand, const float *q_cur, const float *logp_cur,
                             const float *q_next, const float *logp_next, const float *q_data,
                             const float *mc_return, float log_density_rand, float temp,
                             float weight, int B, int N, float *dq_rand, float *dq_cur,
                             float *dq_next, float *dq_data, double *ood_mean);

// The noise one SAC/CQL/Cal-QL update draws, in this order (floats):
//   eps_pi   (B, A)     N(0,1): the actor-loss sample at s
//   eps_next (B, A)     N(0,1): the target's sample at s'
//   eps_cur  (B, N, A)  N(0,1): CQL's policy samples at s      (N = 0 for SAC)
//   eps_nxt  (B, N, A)  N(0,1): CQL's policy samples at s'
//   uniform  (B, N, A)  U[-1,1): CQL's random actions before scale/bias
// The update calls ctrl_sac_draw_noise on its rng; a test copies the rng
// beforehand and calls it too, to see the same draws.
long ctrl_sac_noise_size(int B, int A, int N);
void ctrl_sac_draw_noise(rlhf_rng *rng, int B, int A, int N, float *noise);

#endif
