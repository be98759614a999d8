"""An independent float64 PyTorch reference for the Bayesian reward-model ensemble
(reward-robust RLHF, Yan et al. 2024; algo/brme_loss.h, algo/rl_reward.c), written
from the formulas in docs/reward_robust.md, not from the C code:

  sigma  = softplus(x) + 1e-3
  nll    = -log( mean_m sigmoid(mu_c - mu_r - margin + sigma_c eps_cm - sigma_r eps_rm) )
  prior  = alpha * sum_{y in c, r} ((sigma_y^2 - 1) / 2 - log sigma_y)
  centre = coef * (mu_c + mu_r)^2
  loss   = sum over pairs of mean over heads of (nll + prior + centre), / total_pairs
  robust = lam * mu[argmin sigma] + (1 - lam) * min mu

Gradients come from torch autograd.
"""
import torch

torch.set_default_dtype(torch.float64)


def brme_loss(scores, margins, eps, alpha, coef, total_pairs):
    """scores (2n, 2K): chosen rows then rejected rows, [means, sigma pre-activations];
    margins (n) or None; eps (n, K, M, 2). Returns (loss, d loss / d scores, acc, mean sigma)."""
    s = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    n2, W = s.shape
    n, K = n2 // 2, W // 2
    e = torch.tensor(eps, dtype=torch.float64)
    mu_c, mu_r = s[:n, :K], s[n:, :K]
    sig_c = torch.nn.functional.softplus(s[:n, K:]) + 1e-3
    sig_r = torch.nn.functional.softplus(s[n:, K:]) + 1e-3
    m = torch.zeros(n) if margins is None else torch.tensor(margins, dtype=torch.float64)
    d = mu_c - mu_r - m[:, None]                                        # (n, K)
    z = d[..., None] + sig_c[..., None] * e[..., 0] - sig_r[..., None] * e[..., 1]  # (n, K, M)
    p = torch.sigmoid(z).mean(-1)
    nll = -torch.log(p)
    prior = alpha * ((sig_c ** 2 - 1) / 2 - torch.log(sig_c) + (sig_r ** 2 - 1) / 2 - torch.log(sig_r))
    centre = coef * (mu_c + mu_r) ** 2
    per_pair = (nll + prior + centre).mean(-1)                          # (n)
    loss = per_pair.sum() / total_pairs
    loss.backward()
    acc = (mu_c > mu_r).double().mean(-1).sum().item()
    sigma = (0.5 * (sig_c + sig_r)).mean(-1).sum().item()
    return per_pair.sum().item(), s.grad.numpy(), acc, sigma


def robust(means, sigmas, lam):
    """means, sigmas (B, K) -> (B): lam * mu[argmin sigma] + (1 - lam) * min mu."""
    mu = torch.tensor(means, dtype=torch.float64)
    sg = torch.tensor(sigmas, dtype=torch.float64)
    i = torch.argmin(sg, dim=1)  # the first minimum on ties
    nominal = mu.gather(1, i[:, None])[:, 0]
    return (lam * nominal + (1 - lam) * mu.min(1).values).numpy()
