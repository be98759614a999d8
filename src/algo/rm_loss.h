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

// ------------------------------------------------- pairwise generative RM --
// A generative pairwise reward model (Pairwise-RL, paper card 33) is a causal LM
// that reads a judging prompt showing the prompt and two answers and names the
// better one with its next token, " A" or " B". P(A wins) is the softmax of the
// two answer tokens' logits restricted to {A, B}: sigmoid(l_A - l_B), which
// equals sigmoid(logp_A - logp_B) of the full log-softmax (the normaliser
// cancels), so the model's ordinary per-token log-probs are the inputs here.

typedef struct {
    double loss, acc;  // sums over rows of -log P(label) and [the label's answer is likelier]
    long rows;
} rm_pairwise_sums;

// m judged rows; logp (m, 2): the log-probs of answer A (column 0) and answer B
// (column 1) after row i's judging prompt; label[i] = 0 when the chosen answer
// is shown as A, 1 when shown as B. loss_i = -log sigmoid(l_label - l_other).
// Adds to sums; with dlogp != NULL it is OVERWRITTEN (m, 2) with d/dlogp of the
// mean loss over total_rows rows (the step's rows across its micro-batches).
void rm_pairwise_loss(int m, const float *logp, const int *label, long total_rows, float *dlogp,
                      rm_pairwise_sums *sums);

typedef struct {
    double acc;          // sum over pairs of [P(chosen > rejected) > 1/2], P averaged over orders
    double prob;         // sum over pairs of that P
    double order_acc;    // sum over pairs of the two single orders' mean accuracy
    double consistent;   // sum over pairs of [the verdict does not flip when the answers swap]
    double bias;         // sum over pairs of |P_1(chosen wins) + P_2(rejected wins) - 1|
    long pairs;
} rm_pairwise_eval_sums;

// n pairs; logp (n, 4) per pair: [l_A, l_B] with the chosen answer shown as A,
// then [l_A, l_B] with it shown as B. P(chosen > rejected) is
// self_judge_prob of the four (algo/self_judge.h: both orders averaged, so
// P(chosen > rejected) + P(rejected > chosen) = 1 exactly); a single order's
// verdict is its likelier answer. Adds to sums (divide by pairs for means).
void rm_pairwise_eval(int n, const float *logp, rm_pairwise_eval_sums *sums);

#endif
