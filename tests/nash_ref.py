"""An independent float64 PyTorch version of Nash-MD's preference, loss and
gradient (Munos et al. 2023, arXiv:2312.00886; the loss as TRL's NashMDTrainer
states it), written from the formulas, for tests/nash_md_test.py. Arrays are
(B, T): B completions, T positions; mask is 1 on completion tokens.

    preference(s_pol, s_mix)   P(y ≻ y') = sigmoid(s_pol - s_mix)
    nash_md(logp, ref, mask, prob, beta) -> (loss, dloss/dlogp, score, kl)
        loss = mean_b[ beta * sum_t detach(logp - ref) * logp - (P_b - 1/2) * sum_t logp ]
        the gradient by torch autograd; score = mean (P - 1/2) sum logp,
        kl = mean sum (logp - ref) over the mask
    mixture_logprobs(pol_logits, ref_logits, coef, temperature)
        log_softmax((coef * ref + (1 - coef) * pol) / temperature) over the last axis
"""
import torch


def preference(s_pol, s_mix):
    return torch.sigmoid(torch.as_tensor(s_pol, dtype=torch.float64) -
                         torch.as_tensor(s_mix, dtype=torch.float64))


def nash_md(logp, ref, mask, prob, beta):
    x = torch.tensor(logp, dtype=torch.float64, requires_grad=True)
    ref = torch.as_tensor(ref, dtype=torch.float64)
    mask = torch.as_tensor(mask, dtype=torch.float64)
    prob = torch.as_tensor(prob, dtype=torch.float64)
    lp = x * mask
    log_ratio = ((x - ref) * mask).detach()
    score = (prob - 0.5) * lp.sum(1)
    kl_part = (log_ratio * lp).sum(1)
    loss = (beta * kl_part - score).mean()
    loss.backward()
    return (loss.item(), x.grad.numpy(), score.mean().item(), log_ratio.sum(1).mean().item())


def mixture_logprobs(pol_logits, ref_logits, coef, temperature=1.0):
    pol = torch.as_tensor(pol_logits, dtype=torch.float64)
    ref = torch.as_tensor(ref_logits, dtype=torch.float64)
    return torch.log_softmax((coef * ref + (1 - coef) * pol) / temperature, dim=-1)
