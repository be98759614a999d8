"""Independent torch reference for algo/gkd (GKD's generalised JSD, Agarwal et
al. 2024 Eq. 1, with TRL's convention: beta is the teacher's weight in the
mixture; beta 0 is KL(teacher || student), beta 1 KL(student || teacher)).

Written from the formulas, in float64, with the gradient from autograd:
    p = softmax(s / tau), q = softmax(t / tau), m = beta q + (1 - beta) p
    D = beta KL(q || m) + (1 - beta) KL(p || m)
loss = scale * sum_i w_i D_i.
"""
import torch


def kl(log_a, log_b):
    """sum over the last axis of a (log a - log b), a = exp(log_a)."""
    return (log_a.exp() * (log_a - log_b)).sum(-1)


def gjsd(student, teacher, weight, beta, tau, scale=1.0):
    """student, teacher (N, V) float arrays; weight (N). Returns (sum_i w_i D_i,
    d(scale * that)/d student as a float64 tensor)."""
    s = torch.tensor(student, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(teacher, dtype=torch.float64)
    w = torch.tensor(weight, dtype=torch.float64)
    lp = torch.log_softmax(s / tau, -1)
    lq = torch.log_softmax(t / tau, -1)
    if beta == 0:
        d = kl(lq, lp)
    elif beta == 1:
        d = kl(lp, lq)
    else:
        # the mixture's log without leaving log space
        lm = torch.logaddexp(lq + torch.log(torch.tensor(beta, dtype=torch.float64)),
                             lp + torch.log1p(torch.tensor(-beta, dtype=torch.float64)))
        d = beta * kl(lq, lm) + (1 - beta) * kl(lp, lm)
    total = (w * d).sum()
    (scale * total).backward()
    return total.item(), s.grad
