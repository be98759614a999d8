// algo/bon: the math of best-of-n training (RAFT, SuperHF; train/bon.c) as pure
// functions over arrays: which sample of each prompt to keep, and SuperHF's
// full-vocabulary KL prior with its gradient w.r.t. the policy's logits.
// Nothing here touches files, threads or models. docs/online_rl.md ("Best-of-n,
// RAFT and SuperHF") gives the formulas and sources.
#ifndef RLHF_ALGO_BON_H
#define RLHF_ALGO_BON_H

// Best of each group: scores (np, n), the n samples of prompt j in row j; best
// (np) gets the flat index j*n + k of the highest score of group j. Ties go to
// the first of equals (the lowest k); a NaN never wins over an earlier sample
// (a NaN first sample is kept only if no later score compares greater).
void bon_pick_best(int np, int n, const float *scores, int *best);

// SuperHF's prior (Mukobi et al. 2023): at every row i < N with targets[i] >= 0,
//   KL_i = sum_v q_v (log q_v - log p_v),  p = softmax(logits_p[i]),
//                                          q = softmax(logits_q[i])
// the forward KL(ref || theta) of SuperHF's KLDivLoss(log p, log q,
// log_target=True) when p is the policy and q the reference. logits_p and
// logits_q are (N, V). Returns sum_i max(KL_i, 0) (rounding can make a KL of
// identical rows slightly negative). dlogits (N, V) is OVERWRITTEN with
// scale * (p - q) on counted rows, the gradient of scale * sum_i KL_i w.r.t.
// logits_p, and 0 on the other rows; it may be logits_p itself (in place).
// Sums run in double.
double superhf_vocab_kl(int N, int V, const float *logits_p, const float *logits_q,
                        const int *targets, double scale, float *dlogits);

#endif
