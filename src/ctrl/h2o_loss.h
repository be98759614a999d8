// ctrl/h2o_loss: the pure pieces of H2O (algo_h2o.c) — Niu et al. 2022, "When
// to Trust Your Simulator: Dynamics-Aware Hybrid Offline-and-Online RL"
// (NeurIPS), formulas as in the authors' SimpleSAC/sim2real_sac.py. A batch's
// rows are [real (n_real: the dataset) | sim (n_sim: the simulator's buffer)].
//
// Discriminators (DARC's parametrisation): D_sa gives a logit l_sa(s, a) and
// D_sas a logit l_adv(s, a, s'), both of "real" against "sim";
//   P_sa(real | s, a)      = sigmoid(l_sa)
//   P_sas(real | s, a, s') = sigmoid(l_adv + l_sa)
// (the authors' two-class softmax; its logit difference is our one logit).
// Then the dynamics ratio P_real(s'|s,a) / P_sim(s'|s,a)
//   = [P_sas(real)/P_sas(sim)] [P_sa(sim)/P_sa(real)] = exp(l_adv),
// so D_sa shapes the ratio only through training D_sas on top of it.
// Functions return the loss and write (=) gradients, so a test can check
// them by finite differences; any gradient pointer may be NULL.
#ifndef RLHF_CTRL_H2O_LOSS_H
#define RLHF_CTRL_H2O_LOSS_H

#include "base/base.h"

// The discriminators' losses on n_real + n_sim rows (rows [real | sim]):
//   sa  = mean_real softplus(-l_sa) + mean_sim softplus(l_sa)
//   sas = mean_real softplus(-(l_adv + l_sa)) + mean_sim softplus(l_adv + l_sa)
// returns sa + sas (*sa_loss, *sas_loss the parts). Both networks learn from
// the sum (the authors' backward calls accumulate sas's gradient into D_sa):
// dl_sa = d(sa + sas)/dl_sa, dl_adv = d sas / dl_adv (n_real + n_sim each).
double ctrl_h2o_disc_loss(const float *l_sa, const float *l_adv, int n_real, int n_sim,
                          float *dl_sa, float *dl_adv, double *sa_loss, double *sas_loss);

// w[b] = clip(exp(l_adv[b]), lo, hi): the dynamics ratio of n rows (H2O: [1e-5, 1])
void ctrl_h2o_ratio(const float *l_adv, int n, float lo, float hi, float *w);

// u[b] = clip(mean_k -l_adv[b K + k], lo, hi): the mean log(P_sim / P_real) over
// K perturbed next states of row b (H2O: [1e-45, 10]); n rows, double
void ctrl_h2o_u(const float *l_adv, int n, int K, double lo, double hi, double *u);

// mean_b w[b] (q[b] - y[b])^2 over n rows (w NULL: 1) -> dq (n)
double ctrl_h2o_weighted_mse(const float *q, const float *y, const float *w, int n, float *dq);

// H2O's conservative term for one critic:
//   omega = u / sum u   (n_sim sim rows),
//   gap   = temp * log sum_b exp((q_sim[b] + log omega[b]) / temp),
//   loss  = weight * (gap - mean_real q_real)
// -> dq_sim (n_sim), dq_real (n_real). *gap_out (may be NULL) gets gap.
double ctrl_h2o_penalty(const float *q_sim, const double *u, int n_sim, const float *q_real,
                        int n_real, float temp, float weight, float *dq_sim, float *dq_real,
                        double *gap_out);

// The noise one H2O update draws, in this order (floats, all N(0, 1)):
//   disc   (B, 2S + A)  per row [s | a | s'] noise of the discriminators' inputs
//                        (times h2o_disc_noise)
//   pert   (n_sim, K, S) the perturbations of s' for u (times the real rows' std)
//   sac    (2 B A)      ctrl_sac_draw_noise with N = 0: eps_pi (B, A), eps_next (B, A)
long ctrl_h2o_noise_size(int B, int S, int A, int n_sim, int K);
void ctrl_h2o_draw_noise(rlhf_rng *rng, int B, int S, int A, int n_sim, int K, float *noise);

#endif
