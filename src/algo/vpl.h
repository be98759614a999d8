// algo/vpl: variational preference learning (Poddar et al. 2024, "Personalizing
// Reinforcement Learning from Human Feedback with Variational Preference
// Learning", arXiv:2408.10075) — the math of a user-conditioned reward model
// over frozen sequence embeddings e(x, y) (E floats each: a trunk's final hidden
// state), as pure functions over arrays with hand-written backward passes.
//
//   encoder   K context pairs (e_w, e_l) of one user
//             pair MLP: [e_w; e_l] (2E) -> H -> H -> Z   (LeakyReLU 0.2)
//             self-attention over the K pair codes P (K, Z):
//               A = softmax(Q K^T / sqrt(Z)), Q,K,V = P W^T + b (Z -> Z each)
//             g = mean_k (A V)_k;  mu = clamp(W_mu g + b, -1, 1),
//             logvar = clamp(W_lv g + b, -1, 1)
//   latent    training: z = sqrt(Z) * zt / |zt|, zt = mu + exp(logvar / 2) * eps,
//             eps ~ N(0, I); test time: z = mu (as the authors' code does)
//   decoder   r(x, y, z) = MLP([e(x, y); z]): E + Z -> H -> H -> 1 (LeakyReLU 0.2)
//   loss      mean over target pairs of -log sigmoid(r_w - r_l)
//             + kl_weight * mean over users of KL(N(mu, e^logvar) || N(0, I)),
//             KL = -1/2 sum(1 + logvar - mu^2 - e^logvar)
//
// Z = 0 is the same decoder without a latent: a plain Bradley-Terry MLP
// r = MLP(e) (no encoder, no KL), the baseline VPL is compared with.
//
// Parameters are ONE array of vpl_n_params doubles; vpl_views names the
// pieces, each linear layer W (out, in) row-major as PyTorch's nn.Linear, then
// b (out). Everything is in double: the networks are small, and the gradients
// are checked by finite differences (tests/vpl_test.py, tests/vpl_ref.py).
#ifndef RLHF_ALGO_VPL_H
#define RLHF_ALGO_VPL_H

#include "base/base.h"

typedef struct {
    int E; // embedding width (the trunk's C)
    int H; // hidden width of the pair encoder and decoder MLPs
    int Z; // latent width; 0: no latent (a Bradley-Terry MLP)
} vpl_dims;

typedef struct {
    // pair encoder: 2E -> H -> H -> Z
    double *pe_w1, *pe_b1, *pe_w2, *pe_b2, *pe_w3, *pe_b3;
    // self-attention over pair codes: Z -> Z each
    double *wq, *bq, *wk, *bk, *wv, *bv;
    // posterior heads: Z -> Z each
    double *wmu, *bmu, *wlv, *blv;
    // decoder: E + Z -> H -> H -> 1
    double *de_w1, *de_b1, *de_w2, *de_b2, *de_w3, *de_b3;
} vpl_views;

#define VPL_N_TENSORS 22
// names ("pair.w1", ...), in the layout's order, with each tensor's rows and cols
// (cols 0: a bias of rows elements)
void vpl_tensor_info(vpl_dims d, int i, const char **name, int *rows, int *cols);

long vpl_n_params(vpl_dims d);
// views into base (n_params doubles): params or grads alike
void vpl_views_at(vpl_dims d, double *base, vpl_views *v);
// PyTorch's nn.Linear default: W, b ~ U(-1/sqrt(in), 1/sqrt(in))
void vpl_init(vpl_dims d, double *params, rlhf_rng *rng);

// One batch: U users, each with K context pairs and M target pairs; embeddings
// (chosen w, rejected l) of E doubles.
typedef struct {
    int U, K, M;
    const double *ctx_w, *ctx_l; // (U, K, E); unused when Z = 0
    const double *tgt_w, *tgt_l; // (U, M, E)
} vpl_batch;

typedef struct {
    double loss; // nll + kl_weight * kl
    double nll;  // mean -log sigmoid(r_w - r_l) over the U*M target pairs
    double kl;   // mean KL over users
    double acc;  // share of target pairs with r_w > r_l
} vpl_stats;

// The loss of a batch. eps (U, Z): the reparameterisation noise (training); NULL:
// z = mu (test time; the loss then has no sampling). grads (n_params): when not
// NULL, d(loss)/d(params) is ADDED to it. st may be NULL. Returns the loss.
double vpl_loss(vpl_dims d, const double *params, const vpl_batch *b, const double *eps,
                double kl_weight, double *grads, vpl_stats *st);

// The posterior of U users from their K context pairs: mu, logvar (U, Z), clamped.
void vpl_encode(vpl_dims d, const double *params, int U, int K, const double *ctx_w,
                const double *ctx_l, double *mu, double *logvar);
// Rewards r (n) of n embeddings e (n, E) with latents z (n, Z) (NULL when Z = 0).
void vpl_reward(vpl_dims d, const double *params, int n, const double *e, const double *z,
                double *r);

// The KL weight at a step with cyclical cosine annealing (the authors' Annealer):
// beta * (floor + (1 - floor) * (1 - cos(pi * (step mod period) / period)) / 2);
// period <= 0: beta throughout.
double vpl_kl_weight(double beta, long step, long period, double floor);

// AdamW over n doubles (moments m, v; t = steps taken before this one).
void vpl_adamw(long n, double *params, const double *grads, double *m, double *v, long t,
               double lr, double weight_decay);

#endif
