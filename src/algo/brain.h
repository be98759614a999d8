// algo/brain: the math of BRAIn (Pandey et al. 2024, "BRAIn: Bayesian
// Reward-conditioned Amortized Inference for natural language generation from
// feedback", arXiv:2402.02479). Pure functions over per-sequence arrays (one
// number per sampled completion: its summed log-probability); the online
// trainer (train/online_brain.c) gathers them and pushes the gradient back.
//
// The target is the reward-conditioned posterior
//     p(y|x, G=1)  ∝  p_SFT(y|x) · p(G=1|x,y)
// and the policy q_θ is fitted to it with n samples y_1..y_n of a proposal q'
// per prompt, by self-normalised importance sampling:
//     α_i  = softmax_i [ log p_SFT(y_i|x) + log p(G=1|x,y_i) − log q'(y_i|x) ]
//     α'_i = softmax_i [ log q_θ(y_i|x) − log q'(y_i|x) ]      (the baseline)
//     loss = − Σ_i α_i log α'_i          (self-normalised KL, up to a constant)
//     ∂loss/∂log q_θ(y_i|x) = −(α_i − α'_i)
// Without the baseline (GDC/DPG-style, the paper's ablation):
//     loss = − Σ_i α_i log q_θ(y_i|x),   ∂loss/∂log q_θ(y_i|x) = −α_i.
// docs/brain.md gives the derivation and the DPO limit (n = 2, argmax).
#ifndef RLHF_ALGO_BRAIN_H
#define RLHF_ALGO_BRAIN_H

// How the reward r becomes log p(G=1|x,y) (--goodness), temperature β > 0:
//   BRAIN_GOODNESS_SIGMOID  log σ((r − r_b)/β): Bradley-Terry against a baseline
//                           reward r_b (the prompt's mean reward, or a constant)
//   BRAIN_GOODNESS_EXP      r/β: the posterior is then p_SFT·exp(r/β), the optimum
//                           of KL-regularised reward maximisation (PPO's target);
//                           r_b cancels in the softmax
typedef enum { BRAIN_GOODNESS_SIGMOID = 0, BRAIN_GOODNESS_EXP } brain_goodness;

// "sigmoid" | "exp" -> *out; 0, or -1 (unknown name)
int brain_goodness_from_name(const char *name, brain_goodness *out);

// log_g (G*n) = log p(G=1|x,y) of G groups of n rewards (row-major: group g is
// rows g*n .. g*n+n-1). r_b = the group's mean reward when baseline_mean, else
// baseline_value. Stable for any reward (log σ as a softplus).
void brain_log_goodness(brain_goodness kind, double beta, int baseline_mean,
                        double baseline_value, int G, int n, const float *rewards,
                        double *log_g);

// The weights, the loss and its gradient for G groups of n sequences:
//   logq (G*n)   log q_θ(y_i|x), the policy's summed log-probs now
//   log_prop     log q'(y_i|x), the proposal's (the rollout policy's)
//   log_prior    log p_SFT(y_i|x), the reference's
//   log_g        log p(G=1|x,y_i)
//   baseline     1: the self-normalised baseline α' (BRAIn); 0: none (ablation)
// Writes alpha, alpha_prime (G*n, each group's summing to 1; alpha_prime is
// filled even without the baseline), dlogq (G*n) = ∂loss/∂logq of the MEAN loss
// over the groups, and returns that mean loss. Computed in double with
// max-shifted log-sum-exp. A group whose log-weights are all −inf (no sample
// the target can reach) gets uniform α.
double brain_loss(int G, int n, const double *logq, const double *log_prop,
                  const double *log_prior, const double *log_g, int baseline, double *alpha,
                  double *alpha_prime, double *dlogq);

// Effective sample size of one group's weights, 1 / Σ α_i² (1 .. n).
double brain_ess(int n, const double *alpha);

#endif
