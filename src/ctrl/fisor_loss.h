// ctrl/fisor_loss: FISOR's losses and weights as pure functions over arrays
// (Zheng, Li, Yu, Tan, Huang & Xu 2024, "Safe Offline Reinforcement Learning
// with Feasibility-Guided Diffusion Model", ICLR; details as the authors'
// jaxrl5 code, agents/fisor/fisor.py). Gradients ACCUMULATE (+=) as in
// ctrl_loss.h. Shapes: E members, B rows, A action dims; ensembles (E, B).
//
// Feasibility ("hj", Hamilton-Jacobi reachability): the constraint h of a
// transition is cost_scale where its cost > 0 and -1 elsewhere (their DSRL
// rule, cost_scale 25); h > 0 is a violation.
//   Q_h target  y_h = (1 - gamma) h + gamma max(h, V_h(s'))   (not terminal)
//               y_h = h                                        (terminal)
//   V_h         reverse expectile of max_e Q_h,target(s, a) - V_h(s):
//               mean_b w u^2, u = q - v, w = tau where u < 0 else 1 - tau
//               (tau 0.9: V_h near the in-sample MINIMUM of Q_h, the safest
//               action the data shows); this is ctrl_expectile_loss at 1 - tau.
// Reward critic: IQL (ctrl_loss.h) at expectile 0.9.
// Policy weights (w >= 0, no gradient):
//   w = 1[V_h <= 0 and Q_h <= 0] min(exp(beta_r (Q_r - V_r)), clip_r)
//     + 1[V_h > 0]               min(exp(beta_h (V_h - Q_h)), clip_h)
//   Q_r = min over the reward target critics, Q_h = max over the feasibility
//   target critics (beta_r 3, clip_r 100, beta_h 5, clip_h 150). A feasible
//   state's action that would leave the feasible region (Q_h > 0) gets w = 0.
// Policy loss: mean_b w_b sum_i (eps_theta - eps)_{b,i}^2 (the DDPM noise loss).
#ifndef RLHF_CTRL_FISOR_LOSS_H
#define RLHF_CTRL_FISOR_LOSS_H

// q (E, B) -> out (B) = max over members
void ctrl_ensemble_max(float *out, const float *q, int E, int B);

// h (B) = cost > 0 ? cost_scale : -1
void ctrl_fisor_constraint(float *h, const float *cost, int B, float cost_scale);

// y (B): the HJ target above; next_vh = V_h(s'), done 0/1
void ctrl_fisor_hj_target(float *y, const float *h, const float *next_vh, const float *done, int B,
                          float gamma);

// the reverse expectile loss of V_h towards q (B) (held fixed); dv (B) +=
double ctrl_fisor_reverse_expectile_loss(float *dv, const float *q, const float *v, int B,
                                         float tau);

// the weights above -> w (B); returns the number of rows in the feasible
// branch and *n_unsafe (may be NULL) gets the infeasible ones (V_h > 0)
int ctrl_fisor_weights(float *w, const float *q, const float *v, const float *qh, const float *vh,
                       int B, float beta_r, float clip_r, float beta_h, float clip_h,
                       int *n_unsafe);

// loss = mean_b w_b sum_i (pred - eps)^2 (w NULL: 1); dpred (B, A) += 2 w (pred - eps) / B
double ctrl_fisor_noise_loss(float *dpred, const float *pred, const float *eps, const float *w,
                             int B, int A);

#endif
