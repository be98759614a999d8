// study/stats: the few statistics the studies' verdicts need, as pure
// functions (tested in tests/test_study_stats.c).
//
// Uncertainty: seeds are the replicates. A summary is the mean over seeds, its
// standard error se = sd / sqrt(n) (sample sd, n - 1), and a 95% interval
// mean +- t(0.975, n - 1) * se. A difference between two methods is taken
// seed by seed (the same seed gives both the same data and base) and
// summarised the same way. A claim that "A beats B" is *supported* when the
// mean difference is positive and at least twice its standard error,
// *not supported* when it is negative and at least twice its standard error
// (the data say the opposite), and *inconclusive* otherwise (including fewer
// than two seeds).
#ifndef RLHF_STUDY_STATS_H
#define RLHF_STUDY_STATS_H

typedef struct {
    int n;
    double mean, sd, se; // sd, se NAN when n < 2
    double lo, hi;       // 95% t interval of the mean (NAN when n < 2)
} stats_summary;

stats_summary stats_summarize(const double *x, int n); // NAN entries are skipped
double stats_t975(int df);                             // two-sided 95% t quantile

// +1 (supported: mean >= 2 se and > 0), -1 (mean <= -2 se and < 0), 0 otherwise
int stats_sign_test(const stats_summary *diff);

// Linear interpolation of y(x) at `at` over points sorted by x (the caller
// need not sort: a sorted copy is used); NAN outside [min x, max x] or n < 1.
double stats_interp(const double *x, const double *y, int n, double at);

// Least squares fit of r = d * (alpha - beta * ln d), the reward-overoptimisation
// scaling law (Gao et al. 2023; Rafailov et al. 2024 use d = sqrt(KL)); points
// with d <= 0 are left out. 0, or -1 when fewer than two usable points or a
// singular system. *r2 (may be NULL): the fit's coefficient of determination.
int stats_fit_overopt(const double *d, const double *r, int n, double *alpha, double *beta,
                      double *r2);

// Ordinary least squares y = a + b x; -1 when singular.
int stats_fit_line(const double *x, const double *y, int n, double *a, double *b);

#endif
