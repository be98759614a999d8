// algo/alol: A-LoL's pieces outside the loss (Baheti et al. 2024, "Leftover
// Lunch"; the losses themselves are in pref_free.c): the reward of a score, the
// reference's value estimate V_ref(x) as a linear head on pi_ref's frozen hidden
// state at the last prompt position, fit by ridge regression in closed form, and
// priority sampling of the examples with a positive advantage. Pure functions
// over arrays; nothing here touches files, threads or models. The trainer
// (train/alol_value.c, train/dpo.c) gathers the features and rewards.
// docs/losses.md ("A-LoL") gives the formulas and where we differ.
#ifndef RLHF_ALGO_ALOL_H
#define RLHF_ALGO_ALOL_H

#include <stdint.h>

#include "base/base.h"

// R of a score: sigmoid(score) when sigmoid_reward (the authors' code), else the
// score. The one definition the losses and the priority weights share.
double alol_reward(double score, int sigmoid_reward);

// Ridge regression, closed form. Minimises over w (d) and b
//   (1/n) sum_i (y_i - b - w . x_i)^2 + lambda * |w|^2      (b not penalised)
// for n rows of features X (n, d) row-major and targets y (n): with centred
// features Xc and targets yc, (Xc'Xc/n + lambda I) w = Xc'yc/n (Cholesky, in
// double), b = mean(y) - w . mean(x). Targets are centred on y[0] first, so
// equal targets give w = 0 and b = y[0] exactly (not a rounded mean).
// lambda > 0 keeps the system positive definite for any n >= 1 (n < d too).
// Returns 0, or -1 + err (n < 1, d < 1, lambda <= 0, a non-finite input).
int alol_ridge_fit(const float *X, const double *y, int n, int d, double lambda, double *w,
                   double *b, rlhf_err *err);
// b + w . x, in double.
double alol_ridge_predict(const double *w, double b, const float *x, int d);
// A value estimate as the float the losses read (pref_batch.value), rounded up:
// A = R - V is never made positive by rounding, so a completion no better than
// the reference's own (R = V) keeps A <= 0 exactly.
float alol_value_float(double v);

// Priority sampling (the authors' "priority" strategy). weight_i = max(0, R_i -
// value_i) (A-LoL) or, value NULL, max(0, R_i) (R-LoL), R_i = alol_reward(score_i)
// computed in double as the losses do; cdf (n) gets their running sums. Returns
// how many weights are > 0 (0: no example to train on).
int alol_priority(const float *score, const float *value, int n, int sigmoid_reward, double *cdf);
// The index drawn by u in [0, 1): the first i with cdf[i] > u * cdf[n-1]; an
// example of weight 0 is never drawn. -1 when every weight is 0.
int alol_draw(const double *cdf, int n, double u);
// k draws with replacement into idx (k), from a stream seeded by (seed, draw):
// the same (seed, draw) always gives the same indices, so a resumed run draws
// what the uninterrupted one did. draw numbers the caller's batches.
void alol_sample(const double *cdf, int n, uint64_t seed, long draw, int k, int *idx);

#endif
