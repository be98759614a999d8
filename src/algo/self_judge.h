// algo/self_judge: the pure parts of OSP's online self-preferring (Zhai et al.
// 2024): the model judges its own samples. From its log-probs of the answer
// tokens ("A" / "B") after a judging prompt that shows two responses, in both
// orders, the preference probability that one wins; from a group's pairwise
// probabilities each sample's self-score; from the scores the paper's ranked
// pairs (best against worst, second best against second worst, ...). Nothing
// here touches models; train/online_judge.c runs the judging forward.
#ifndef RLHF_ALGO_SELF_JUDGE_H
#define RLHF_ALGO_SELF_JUDGE_H

// p(first wins) from the answer log-probs of the two orders: (la_ab, lb_ab) with
// the first response shown as "A", (la_ba, lb_ba) with it shown as "B". Each
// order's probability is the answers' normalised likelihood (sigmoid of the
// log-prob difference); the two are averaged, which removes position bias:
// swapping the responses (the orders' roles) gives exactly 1 - p.
double self_judge_prob(double la_ab, double lb_ab, double la_ba, double lb_ba);

// Self-scores of a group of n from the (n,n) pairwise probabilities
// p[i*n + j] = p(i beats j) (diagonal not read): score[i] = mean over j != i.
// n = 1 gives 0.5.
void self_judge_scores(int n, const double *p, double *score);

// Ranked pairing: indices sorted by score, highest first (ties: lower index
// first); pair k is (k-th best, k-th worst) for k < n/2, left out when the two
// scores are equal. chosen/rejected get indices in 0..n-1 (room n/2); returns
// the number of pairs.
int self_judge_ranked_pairs(int n, const double *score, int *chosen, int *rejected);

#endif
