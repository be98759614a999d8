// algo/heron: HERON's hierarchical preference labels (Bukharin et al. 2023,
// "Deep Reinforcement Learning from Hierarchical Preference Design",
// arXiv:2309.02632) as pure functions over arrays. Reward factors come ranked,
// z_1 > z_2 > ... > z_L in importance; two responses a and b are compared on
// z_1 first, and only when that factor cannot tell them apart (|z_1(a) -
// z_1(b)| <= delta_1) on z_2, and so on. The first factor whose difference
// exceeds its margin decides; when none does the pair is a tie and gives no
// label (the authors' code skips such pairs). The labels then train an ordinary
// Bradley-Terry reward model (`rlhf rm`), and RL runs on it.
//
// A margin is either absolute (delta_l = m_l) or relative to the factor's
// spread (delta_l = m_l * sd_l, sd_l its population standard deviation over
// the samples at hand: the authors' code uses sigma_mult * std of each signal).
// Labels depend only on the signs of differences against margins, so scaling a
// factor by c > 0 together with its absolute margin (or any relative margin)
// leaves every label unchanged: HERON needs no weights between factors.
// Nothing here touches files, models or threads; cli/cmd_pairs.c
// (`rlhf pairs --label heron`) scores samples with reward sources and writes
// the pairs. docs/heron.md gives the details.
#ifndef RLHF_ALGO_HERON_H
#define RLHF_ALGO_HERON_H

#include "base/base.h"

// Parses a margin list "m_1,m_2,...,m_L": each a finite number >= 0, absolute,
// or followed by "sd" (e.g. "0.5sd") for m_l times the factor's spread. NULL or
// "" gives L zeros (any difference decides). margin (L) gets the numbers,
// relative (L) 1 for "sd" items. -1 + err (naming --margins and the item) for
// a malformed or negative item or a count other than L.
int heron_parse_margins(const char *spec, int L, double *margin, int *relative, rlhf_err *err);

// sd (L) = the population standard deviation of each column of z (n, L) over
// the rows with use[i] != 0 (use NULL: every row); 0 with fewer than 2 rows.
void heron_factor_spread(int n, int L, const double *z, const unsigned char *use, double *sd);

// The margins in the factors' units: delta (L) = margin_l, or margin_l * sd_l
// where relative[l] (relative NULL: all absolute).
void heron_margins(int L, const double *margin, const int *relative, const double *sd,
                   double *delta);

// One comparison. za, zb (L): the two responses' factor values in priority
// order; delta (L) >= 0. Returns +1 when a is preferred, -1 when b is, 0 for a
// tie; *level (may be NULL) gets the deciding factor's index (0-based), -1 for
// a tie. A factor decides when |za[l] - zb[l]| > delta[l] (strictly: equal
// values never decide); a NaN difference never decides.
int heron_compare(int L, const double *za, const double *zb, const double *delta, int *level);

// Every pair of a group. z (n, L): the factor values of n responses to one
// prompt; pairs i < j with use[i] and use[j] (use NULL: all) are compared in
// the order (0,1), (0,2), ..., (1,2), ...; each decided one appends its
// preferred index to chosen, the other to rejected and the deciding factor to
// level (room n*(n-1)/2 each). *ties (may be NULL) gets the number of
// undecided pairs. Returns the number of decided pairs.
int heron_group_pairs(int n, int L, const double *z, const double *delta,
                      const unsigned char *use, int *chosen, int *rejected, int *level, int *ties);

#endif
