// algo/rm_loss: the reward model's loss (train/rm.c) as pure functions over
// arrays of scores: the Bradley-Terry loss with an optional per-pair margin and
// TRL's center_rewards_coefficient, and the accuracy and spread of an ensemble
// of K score heads. A batch of n pairs is scores (2n, K): chosen rows 0..n-1,
// rejected rows n..2n-1, member k in column k.
#ifndef RLHF_ALGO_RM_LOSS_H
#define RLHF_ALGO_RM_LOSS_H

typedef struct {
    double loss, acc, margin;  // sums over pairs of the member-mean loss, accuracy, r_c - r_r
    long pairs;
} rm_loss_sums;

// For each pair i and member k, with d = r_c - r_r - margins[i] (margins NULL: 0),
//   loss = -log sigmoid(d) + center_coef * (r_c + r_r)^2
// (TRL's RewardTrainer; Touvron et al. 2023 for the margin), averaged over the K
// members and added to sums. With dscores != NULL it is OVERWRITTEN (2n, K)
// with d(loss)/d(score) of the mean over total_pairs pairs (the step's pairs
// across its micro-batches), the members averaged.
void rm_bt_loss(int n, int K, const float *scores, const double *margins, float center_coef,
                long total_pairs, float *dscores, rm_loss_sums *sums);

typedef struct {
    double acc;         // sum over pairs of [mean_k r_c > mean_k r_r]: the ensemble's accuracy
    double var;         // sum over pairs of the members' variance of r_c (population)
    double member_acc;  // sum over pairs of the members' mean accuracy
} rm_ensemble_sums;

// Adds the n pairs of scores (2n, K) to sums (divide by the pairs for means).
void rm_ensemble_eval(int n, int K, const float *scores, rm_ensemble_sums *sums);

#endif
