// algo/cgpo: the math of CGPO's three constrained optimisers (Xu et al. 2024,
// "The Perfect Blend: Redefining RLHF with Mixture of Judges", arXiv:2409.20370),
// pure functions over arrays. A prompt's n samples are rows g*n .. g*n+n-1;
// every gradient is with respect to a row's summed completion log-prob S_i
// (the trainer spreads it over the row's completion tokens).
//
//   calibrated reward  R_cal(x, y) = sigmoid(r(x, y) - r(x, ybar)), ybar a
//                      reference response of the prompt (the caller chooses it)
//   CRPG   L = -1/B sum_i (w_i - b_i) S_i,  w_i = R_cal_i * pass_i * keep_i
//          (the REINFORCE estimate of grad E[R_cal * 1{all judges pass}]; keep_i
//          0 drops a prompt whose KL to the reference is over the threshold;
//          b_i = 0, or the mean w of the other rows of i's group: a leave-one-out
//          baseline, which leaves the expected gradient as it is)
//   CODPO  per prompt y+ = the highest-reward passing sample, y- = the lowest-
//          reward violating one; L = 1/P sum_k [ -log sigmoid(beta*((S+ - R+) -
//          (S- - R-))) - lambda * S+ / |y+| ]   (R: the reference's sums)
//   CRRAFT per prompt, RAFT's best-of-n among the passing samples, weighted by
//          its R_cal: L = -1/G sum_g w_g S_best(g) / |y_best(g)|
//          (G the prompts with a passing sample; keep as in CRPG)
#ifndef RLHF_ALGO_CGPO_H
#define RLHF_ALGO_CGPO_H

#include <stdint.h>

// sigmoid(r - r_ref)
double cgpo_calibrated(double r, double r_ref);

// CRPG over B rows: w (B) the weights above, grad (B) = dL/dS; n > 1: the
// leave-one-out baseline over groups of n rows (n <= 1: b = 0). Returns L.
double cgpo_crpg(int B, int n, const float *scores, const float *ref_scores, const uint8_t *pass,
                 const uint8_t *keep, const float *seq_logp, float *w, float *grad);

// CODPO's pairs: for each of the n_prompts groups of n rows with a kept prompt
// (keep[g*n] != 0, keep NULL: all), chosen = the first passing row of highest
// score, rejected = the last violating row of lowest score. With fallback 1, a
// group with no violating sample pairs its chosen row against the last passing
// row of lowest score when that score is strictly lower. Returns the pairs
// (room: n_prompts).
int cgpo_codpo_pairs(int n_prompts, int n, const float *scores, const uint8_t *pass,
                     const uint8_t *keep, int fallback, int *chosen, int *rejected);

// CODPO's loss over P pairs of summed log-probs (policy pc/pr, reference
// rc/rr; NULL reference: 0) and the chosen lengths lc: returns L, fills
// gc, gr (P) = dL/dS+, dL/dS-, and *acc the share of pairs with a positive
// implicit reward margin (may be NULL).
double cgpo_codpo_loss(int P, const float *pc, const float *pr, const float *rc, const float *rr,
                       const int *lc, float beta, float lambda, float *gc, float *gr, double *acc);

// CRRAFT over n_prompts groups of n rows: w (B) = R_cal of each group's best
// passing (and kept) row, 0 elsewhere; grad (B) = dL/dS; len (B) the rows'
// completion lengths. Returns L (0 when no group has a passing row).
double cgpo_crraft(int n_prompts, int n, const float *scores, const float *ref_scores,
                   const uint8_t *pass, const uint8_t *keep, const float *seq_logp,
                   const int *len, float *w, float *grad);

#endif
