// algo/hc: the math of HC-RLHF (high-confidence safe RLHF, Chittepu et al.
// 2025, "Reinforcement Learning from Human Feedback with High-Confidence Safety
// Constraints"; UMass-SCALAR-Lab/HC-RLHF) as pure functions over arrays: the
// Student-t quantile, the inflation k of the cost's standard deviation, the
// per-sample surrogate cost whose policy gradient is that of mu + k*sigma, the
// log-space step of the Lagrange multiplier and the safety test's upper
// confidence bound. Nothing here touches files or models; train/online_hc.c
// runs it. docs/hc_rlhf.md gives the formulas and their sources.
#ifndef RLHF_ALGO_HC_H
#define RLHF_ALGO_HC_H

// Student's t distribution with df > 0 degrees of freedom:
// P(T <= t), through the regularised incomplete beta function
// (I_{df/(df+t^2)}(df/2, 1/2) = P(|T| > t)), accurate to ~1e-12.
double hc_t_cdf(double t, double df);
// the p-quantile (0 < p < 1): t with hc_t_cdf(t, df) = p, by bracketing and
// bisection to a relative width of 1e-13 (NAN for a bad p or df).
double hc_t_quantile(double p, double df);

// Sample mean and standard deviation with Bessel's correction (n - 1; torch's
// .std() and the reference code's). n < 2 gives std 0.
void hc_mean_std(int n, const float *x, double *mean, double *std);

// The inflation of the cost's standard deviation used while training the
// candidate (the reference code's "students coefficient"):
//   k = C1 * t_{1-delta, n_b-1} / sqrt(n_b) + C2 * t_{1-delta, n_s-1} / sqrt(n_s)
// n_b the costs in a batch, n_s the safety set's size (both >= 2).
double hc_k(double c1, double c2, double delta, int n_b, int n_s);

// The per-sample surrogate cost (n samples):
//   out_i = c_i + k * (c_i^2 - 2 c_i mu) / (2 sigma)
// with mu, sigma the (fixed) estimates of the cost's mean and std. Its expected
// value's gradient, mu and sigma held fixed, is
//   d mu + k * (d E[c^2] - 2 mu d mu) / (2 sigma) = d mu + k * d(sigma^2) / (2 sigma)
//   = d(mu + k sigma),
// so REINFORCE on -lambda * out ascends the Lagrangian of the high-confidence
// bound. sigma <= 1e-12 (every cost equal) has no gradient of sigma: out = c.
void hc_surrogate_cost(int n, const float *c, double mu, double sigma, double k, float *out);

// One SGD step of the multiplier in log space (the reference code's
// log_lambda with loss -(mu + k sigma - tau) * exp(log_lambda)):
//   log_lambda += lr * exp(log_lambda) * (mu + k sigma - tau)
// clipped to [log_lambda_min, log_lambda_max]. Returns the new log_lambda.
double hc_lambda_step(double log_lambda, double lr, double mu, double sigma, double k, double tau,
                      double log_lambda_min, double log_lambda_max);

// The safety test's bound on n held-out costs (n >= 2):
//   UCB = mean + t_{1-delta, n-1} * std / sqrt(n)   (std with Bessel's correction)
// mean and std (may be NULL) get the estimates.
double hc_ucb(int n, const float *c, double delta, double *mean, double *std);

#endif
