// ctrl/policy: the action heads that turn a network's output into actions and
// log-probabilities, as pure functions with their backward passes (the noise
// is an input, so a test can repeat a sample exactly). Shapes: B rows, A
// action dims; `scale` (A) and `bias` (A) map [-1, 1] to the action bounds:
// action = bias + scale * squashed (scale = (high - low)/2, bias = (high + low)/2).
// Every *_backward ACCUMULATES (+=) into the gradients it writes.
#ifndef RLHF_CTRL_POLICY_H
#define RLHF_CTRL_POLICY_H

// Deterministic (TD3, TD3+BC, BC): action = bias + scale * tanh(u); u (B, A)
void ctrl_det_forward(float *action, const float *u, const float *scale, const float *bias, int B,
                      int A);
// daction (B, A) -> du += ; needs the forward's action (to recover tanh u)
void ctrl_det_backward(float *du, const float *daction, const float *action, const float *scale,
                       const float *bias, int B, int A);

// Tanh-Gaussian (SAC, CQL, Cal-QL): out (B, 2A) = [mu | log_std] per row;
// log_std is clamped to [log_std_min, log_std_max] (gradient 0 outside);
// pre = mu + exp(log_std) * eps, squashed = tanh(pre),
// logp = sum_i [log N(pre_i; mu_i, std_i) - log(1 - tanh(pre_i)^2)] - sum_i log(scale_i),
// with log(1 - tanh(x)^2) computed as 2 (log 2 - x - softplus(-2x)).
// eps (B, A) standard normal; deterministic (eps = NULL) gives tanh(mu).
// pre (B, A) is saved for backward; logp (B) may be NULL.
void ctrl_tanh_gauss_forward(float *action, float *logp, float *pre, const float *out,
                             const float *eps, const float *scale, const float *bias, int B, int A,
                             float log_std_min, float log_std_max);
// daction (B, A) and dlogp (B) (either may be NULL) -> dout (B, 2A) +=
void ctrl_tanh_gauss_backward(float *dout, const float *daction, const float *dlogp,
                              const float *out, const float *eps, const float *pre,
                              const float *scale, int B, int A, float log_std_min,
                              float log_std_max);
// log-probability of given actions under the tanh-Gaussian (actions are mapped
// back with atanh, clipped to |squashed| <= 1 - 1e-6) -> logp (B)
void ctrl_tanh_gauss_logprob(float *logp, const float *out, const float *action,
                             const float *scale, const float *bias, int B, int A,
                             float log_std_min, float log_std_max);
// dlogp (B) -> dout (B, 2A) +=
void ctrl_tanh_gauss_logprob_backward(float *dout, const float *dlogp, const float *out,
                                      const float *action, const float *scale, const float *bias,
                                      int B, int A, float log_std_min, float log_std_max);

// Gaussian with a state-independent log_std (IQL, AWAC, stochastic BC, as in
// CORL): mean (B, A), log_std (A) clamped to [log_std_min, log_std_max];
// logp (B) of the given actions = sum_i log N(a_i; mean_i, exp(log_std_i)).
void ctrl_gauss_logprob(float *logp, const float *mean, const float *log_std, const float *action,
                        int B, int A, float log_std_min, float log_std_max);
// dlogp (B) -> dmean (B, A) +=, dlog_std (A) += (either may be NULL)
void ctrl_gauss_logprob_backward(float *dmean, float *dlog_std, const float *dlogp,
                                 const float *mean, const float *log_std, const float *action,
                                 int B, int A, float log_std_min, float log_std_max);

#endif
