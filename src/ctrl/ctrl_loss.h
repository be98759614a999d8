// ctrl/ctrl_loss: the losses of the control algorithms as pure functions over
// arrays — TD targets, critic regression, IQL's expectile, advantage weights,
// TD3+BC's actor loss, behaviour cloning. Each returns the loss (double) and,
// where it has inputs that carry gradient, ACCUMULATES (+=) d(loss)/d(input)
// into the given gradient array (the caller zeroes it), as policy.h's
// *_backward do. A gradient pointer may be NULL when that gradient is not
// needed. Shapes: E ensemble members, B rows, A action dims; an ensemble's
// values are (E, B), member by member (ctrl_mlp's output layout with out = 1).
//
// Sources: TD3 — Fujimoto, van Hoof & Meger 2018, "Addressing Function
// Approximation Error in Actor-Critic Methods"; TD3+BC — Fujimoto & Gu 2021,
// "A Minimalist Approach to Offline Reinforcement Learning"; IQL — Kostrikov,
// Nair & Levine 2021, "Offline Reinforcement Learning with Implicit
// Q-Learning"; AWAC — Nair, Gupta, Dalal & Levine 2020, "AWAC: Accelerating
// Online Reinforcement Learning with Offline Datasets". Normalisations follow
// CORL (tinkoff-ai/CORL, algorithms/offline/*.py).
#ifndef RLHF_CTRL_LOSS_H
#define RLHF_CTRL_LOSS_H

// q (E, B) -> out (B) = min over members (E = 1 copies)
void ctrl_ensemble_min(float *out, const float *q, int E, int B);

// Bellman target y (B) = rew + gamma * (1 - done) * min_e next_q[e] (next_q
// (E, B); E = 1 for a value network's V(s'), IQL). A target: no gradient.
void ctrl_td_target(float *y, const float *rew, const float *done, const float *next_q, int E,
                    int B, float gamma);

// Critic regression: loss = weight * sum_e mean_b (q[e,b] - y[b])^2.
// weight 1 is TD3/TD3+BC/AWAC's sum of the members' MSEs; weight 1/E is IQL's
// mean over members. dq (E, B) += weight * 2 (q - y) / B.
double ctrl_critic_mse_loss(float *dq, const float *q, const float *y, int E, int B,
                            float weight);

// IQL's expectile regression of V towards Q (Kostrikov et al. eq. 5; CORL's
// asymmetric_l2_loss): u = q - v, loss = mean_b |tau - 1[u < 0]| u^2.
// q (B) is the (target) critic's value, held fixed; dv (B) += d loss / dv.
double ctrl_expectile_loss(float *dv, const float *q, const float *v, int B, float tau);

// Advantage weights w (B) = min(exp(beta * adv), clip) — IQL's exp(beta (Q - V))
// (Kostrikov et al. eq. 7, CORL's EXP_ADV_MAX = 100) and AWAC's
// exp(adv / lambda) (CORL's awac.py clamps it at 100 too, with no batch
// softmax; call with beta = 1 / lambda). No gradient (the weights are detached).
void ctrl_exp_adv_weights(float *w, const float *adv, int B, float beta, float clip);
// AWAC's weights: ctrl_exp_adv_weights with beta = 1 / lambda
void ctrl_awac_weights(float *w, const float *adv, int B, float lambda, float clip);

// Weighted negative log-likelihood: loss = mean_b (-w[b] * logp[b]) (w NULL:
// 1). IQL's and AWAC's actor loss with the advantage weights; stochastic BC
// with w = NULL. dlogp (B) += -w / B.
double ctrl_weighted_nll_loss(float *dlogp, const float *logp, const float *w, int B);

// Weighted squared error of a deterministic policy: loss = mean_b w[b] *
// sum_i (pi[b,i] - a[b,i])^2 (w NULL: 1) — CORL's deterministic IQL actor.
// dpi (B, A) += 2 w (pi - a) / B.
double ctrl_weighted_sq_loss(float *dpi, const float *pi, const float *a, const float *w, int B,
                             int A);

// Behaviour cloning's MSE (PyTorch's F.mse_loss, CORL's any_percent_bc.py):
// loss = mean over B*A of (pi - a)^2; dpi (B, A) += 2 (pi - a) / (B A).
double ctrl_bc_mse_loss(float *dpi, const float *pi, const float *a, int B, int A);

// Deterministic policy gradient (TD3's actor): loss = -mean_b q[b]; dq (B) += -1/B.
double ctrl_dpg_actor_loss(float *dq, const float *q, int B);

// TD3+BC's actor (Fujimoto & Gu 2021 eq. 3; CORL's td3_bc.py):
// lambda = alpha / mean_b |q[b]| (detached: no gradient through lambda),
// loss = -lambda * mean_b q[b] + mean over B*A of (pi - a)^2.
// dq (B) += -lambda / B, dpi (B, A) += 2 (pi - a) / (B A); *lambda_out (may be
// NULL) receives lambda.
double ctrl_td3bc_actor_loss(float *dq, float *dpi, const float *q, const float *pi,
                             const float *a, int B, int A, float alpha, double *lambda_out);
// the same loss at a given lambda (on MPI ranks: lambda from the whole batch's
// mean |q|, the rows a rank's share)
double ctrl_td3bc_actor_loss_at(float *dq, float *dpi, const float *q, const float *pi,
                                const float *a, int B, int A, double lambda);

#endif
