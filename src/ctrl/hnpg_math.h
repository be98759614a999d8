// ctrl/hnpg_math: the pieces of HNPG (Zhou et al. 2023, "Offline Data Enhanced
// On-Policy Policy Gradient with Provable Guarantees"; authors' trpo.py) that
// are pure math, each checked in float64 PyTorch by tests/ctrl_hnpg_test.py:
//
//   policy   pi_h(a|s) = N(mu(s), diag(exp(2 log_std))) per step h: mu(s) =
//            W s + b (linear-Gaussian), or the authors' tanh MLP mean (hidden
//            16-16, hnpg_pol.hidden) before a linear head
//   GAE      delta_t = r_t + gamma m_t V_{t+1} - V_t,
//            A_t = delta_t + gamma lambda m_t A_{t+1},  R_t = r_t + gamma m_t R_{t+1}
//            over a batch of whole episodes in order (m_t = 0 at an episode's end)
//   critic   Q_h: Adam steps on mean_on (Q(s,a) - R)^2 + mean_off (Q(s,a) - y)^2
//            (y: the FQE target r + Q_{h+1}(s', a'~pi_{h+1}), built by the caller)
//   NPG      TRPO's step: g = grad of L(theta) = -mean(A exp(logp_theta - logp_old))
//            at theta_old; x = CG(F + damping I, -g) (F the Fisher, i.e. the
//            Hessian of mean KL(pi_old || pi_theta) at theta_old: for the linear
//            mean, per action dim j, (1/N) sum x x^T / sigma_j^2 on [W_j, b_j]
//            with x = [s, 1]; for the MLP (1/N) sum J^T diag(1/sigma^2) J; 2 on
//            log_std_j); full step x / sqrt(x^T(F+dI)x / (2 max_kl)); a
//            backtracking line search (step fractions 0.5^k, k < 10) accepts the
//            first with an improvement > 0 and > 0.1 of the linear prediction.
#ifndef RLHF_CTRL_HNPG_MATH_H
#define RLHF_CTRL_HNPG_MATH_H

#include "base/base.h"

// A policy's shape: obs, act, and hidden: 0 for the linear-Gaussian mean
// W s + b, else a mean of two tanh layers of that width (the authors' 16-16)
// before the linear head. theta = [the mean's layers in order, each W (out,
// in) row-major then b; log_std (act)].
typedef struct {
    int obs, act, hidden;
} hnpg_pol;

long hnpg_policy_nparams(const hnpg_pol *p);
// theta: each hidden layer's W and b ~ U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's
// nn.Linear); the head's W ~ 0.1 U(-1/sqrt(in), 1/sqrt(in)), b 0 (the authors
// scale the mean head by 0.1 and zero its bias); log_std 0
void hnpg_policy_init(const hnpg_pol *p, float *theta, rlhf_rng *rng);
// means (B, act) of B observations
void hnpg_policy_mean(const hnpg_pol *p, const float *theta, const float *s, int B, double *mean);
// mean + std * N(0, 1) per row (B, act) (deterministic: the mean)
void hnpg_policy_act(const hnpg_pol *p, const float *theta, const float *s, int B,
                     int deterministic, rlhf_rng *rng, float *a);
// log pi(a|s) per row (B)
void hnpg_policy_logp(const hnpg_pol *p, const float *theta, const float *s, const float *a, int B,
                      double *logp);

// returns (MC, discounted by gamma) and GAE advantages over n rows in order
void hnpg_gae(const float *rew, const float *val, const float *mask, int n, double gamma,
              double lambda, float *ret, float *adv);

typedef struct {
    double max_kl, damping, accept_ratio;
    int cg_iters, max_backtracks;
} hnpg_npg_opts;
void hnpg_npg_default_opts(hnpg_npg_opts *o); // 0.01, 0.1, 0.1, 10, 10
typedef struct {
    double loss_before, loss_after; // the surrogate at theta_old (= -mean A) and at the result
    double kl;                      // mean KL(pi_old || pi_new) of the accepted step
    double step_frac;               // the accepted fraction (0 when none was)
    double shs;                     // 0.5 x^T (F + dI) x of the CG solution x
    double grad_norm;
} hnpg_npg_info;
// Fisher-vector product (F + damping I) v at theta on N states (n = nparams):
// the linear policy's closed form above; for the MLP, J^T diag(1/sigma^2) J v
// / N on the mean's parameters (J the mean's Jacobian, by a forward-mode pass
// then back-propagation) and 2 v on log_std
void hnpg_fvp(const hnpg_pol *p, const float *theta, const float *S, int N, double damping,
              const double *v, double *out);
// gradient of the surrogate at theta_old (the ratio is 1 there): -mean A grad logp
void hnpg_surrogate_grad(const hnpg_pol *p, const float *theta, const float *S, const float *A,
                         const float *adv, int N, double *g);
// conjugate gradient on (F + dI) x = b (x from 0, stops at r.r < 1e-10)
void hnpg_cg(const hnpg_pol *p, const float *theta, const float *S, int N, double damping,
             const double *b, int iters, double *x);
// One natural-gradient step of theta in place on N rows (states S, actions A,
// advantages adv). stepdir (n) may be NULL; else it gets the CG solution.
void hnpg_npg_step(const hnpg_pol *p, float *theta, const float *S, const float *A,
                   const float *adv, int N, const hnpg_npg_opts *o, hnpg_npg_info *info,
                   double *stepdir);

#endif
