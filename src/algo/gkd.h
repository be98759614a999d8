// algo/gkd: the per-token divergence of GKD / on-policy distillation (Agarwal
// et al. 2024, "On-Policy Distillation of Language Models: Learning from
// Self-Generated Mistakes", Eq. 1; TRL's GKDTrainer.generalized_jsd_loss) and
// its gradient with respect to the student's logits. Pure math over (N, V)
// logit arrays; train/online_gkd.c runs it on the models.
//
// With p = softmax(student / tau), q = softmax(teacher / tau) at one position
// and TRL's convention for beta (the teacher's weight in the mixture):
//   beta = 0:      D = KL(q || p)                          forward KL
//   beta = 1:      D = KL(p || q)                          reverse KL
//   0 < beta < 1:  m = beta q + (1 - beta) p,
//                  D = beta KL(q || m) + (1 - beta) KL(p || m)   generalised JSD
// (the 0 < beta < 1 form tends to beta KL(q || p) as beta -> 0, not to the
// beta = 0 case; TRL switches to the plain KLs at the ends, and so do we).
// The gradient with respect to z = student / tau, per position:
//   beta = 0:      p - q
//   beta = 1:      p (log p - log q - KL(p || q))
//   0 < beta < 1:  (1 - beta) p (log p - log m - KL(p || m))
// (the teacher's terms cancel through m); d/dstudent = that / tau.
#ifndef RLHF_ALGO_GKD_H
#define RLHF_ALGO_GKD_H

// D at rows i < N with weight[i] != 0 (weight NULL: every row), of student and
// teacher logits (N, V) at temperature tau > 0 and beta in [0, 1]. Returns
// sum_i weight[i] * D_i. When dstudent is not NULL it is OVERWRITTEN with
// scale * weight[i] * dD_i / dstudent_i (0 on rows of weight 0); it may be
// student itself (in place). Log-softmaxes and sums run in double.
double gkd_jsd(int N, int V, const float *student, const float *teacher, const float *weight,
               float beta, float tau, double scale, float *dstudent);

#endif
