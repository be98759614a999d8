// algo/brme_loss: the loss of a Bayesian reward-model ensemble (BRME; reward-robust
// RLHF, Yan et al. 2024, arXiv:2409.15360) as a pure function over arrays of
// head outputs. A BRME is K heads on one trunk; head k says the reward of a
// response is Gaussian, N(mu_k, sigma_k^2). The model's score head then has 2K
// outputs per row: means in columns 0..K-1, sigma pre-activations x in columns
// K..2K-1, sigma = softplus(x) + BRME_SIGMA_MIN (brme_sigma).
//
// The loss per pair and head (docs/reward_robust.md says why this one): the
// Bradley-Terry probability of the label under the head's Gaussian rewards,
// integrated over them (a marginal likelihood), estimated with M
// reparameterised samples r = mu + sigma*eps, plus a prior that pulls each
// sigma toward 1:
//   nll   = -log( (1/M) sum_m sigmoid(mu_c - mu_r - margin + sigma_c eps_cm - sigma_r eps_rm) )
//   prior = alpha * sum_{y in c,r} ( (sigma_y^2 - 1)/2 - log sigma_y )     (KL(N(mu,sigma^2) || N(mu,1)))
//   cent  = center_coef * (mu_c + mu_r)^2                                 (TRL's centring, on the means)
// The log sits outside the sample mean: the average of log sigmoid (one sample,
// or log inside) is concave in the noise and always drives sigma to 0; the
// average of the probability lets a head widen sigma on pairs its means
// order wrongly (noisy labels) and narrow it on pairs they order right.
#ifndef RLHF_ALGO_BRME_LOSS_H
#define RLHF_ALGO_BRME_LOSS_H

#define BRME_SIGMA_MIN 1e-3f
#define BRME_MAX_SAMPLES 256  // M at most

typedef struct {
    double loss;    // sum over pairs of the head-mean loss (nll + prior + centring)
    double nll;     // sum over pairs of the head-mean nll
    double acc;     // sum over pairs of the heads' mean accuracy [mu_c > mu_r]
    double sigma;   // sum over pairs of the mean sigma of the pair's two responses over heads
    long pairs;
} brme_loss_sums;

// sigma = softplus(x) + BRME_SIGMA_MIN, and d(sigma)/dx = sigmoid(x)
float brme_sigma(float x);

// n pairs; scores (2n, 2K): chosen rows 0..n-1, rejected rows n..2n-1, each row
// [mu_0..mu_{K-1}, x_0..x_{K-1}]; margins (n) or NULL (0); eps (n, K, M, 2)
// standard normal draws, M <= BRME_MAX_SAMPLES (eps[((i*K + k)*M + m)*2 + 0] for the chosen response,
// + 1 for the rejected). The loss is averaged over the K heads and added to
// sums; with dscores != NULL it is OVERWRITTEN (2n, 2K) with d(loss)/d(score)
// of the mean over total_pairs pairs (the step's pairs across micro-batches).
// Returns the sum over the n pairs of the head-mean loss.
double brme_loss(int n, int K, const float *scores, const double *margins, const float *eps,
                 int M, float sigma_prior, float center_coef, long total_pairs, float *dscores,
                 brme_loss_sums *sums);

#endif
