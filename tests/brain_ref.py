"""An independent float64 PyTorch implementation of BRAIn's weights, loss and
gradient (Pandey et al. 2024, arXiv:2402.02479), written from the paper's
formulas, for tests/brain_test.py. Arrays are (G, n): G prompts, n samples each.

    log_goodness(r, kind, beta, rb)  log p(G=1|x,y): log sigmoid((r - rb)/beta) or r/beta
    brain(logq, prop, prior, logg, baseline) -> (loss, alpha, alpha', dloss/dlogq)
        alpha  = softmax(prior + logg - prop)     alpha' = softmax(logq - prop)
        loss   = mean over prompts of -sum alpha log alpha'   (baseline)
                 mean over prompts of -sum alpha logq          (no baseline)
        the gradient by torch autograd (alpha held constant: it does not depend on q)
    dpo(logq_w, logq_l, ref_w, ref_l)  DPO's sigmoid loss with beta 1 and its gradient
"""
import torch


def log_goodness(r, kind, beta, rb=None):
    r = torch.as_tensor(r, dtype=torch.float64)
    if kind == "exp":
        return r / beta
    base = r.mean(dim=1, keepdim=True) if rb is None else torch.full_like(r, rb)
    return torch.nn.functional.logsigmoid((r - base) / beta)


def brain(logq, prop, prior, logg, baseline=True):
    q = torch.tensor(logq, dtype=torch.float64, requires_grad=True)
    prop, prior, logg = (torch.as_tensor(x, dtype=torch.float64) for x in (prop, prior, logg))
    alpha = torch.softmax(prior + logg - prop, dim=1)
    log_ap = torch.log_softmax(q - prop, dim=1)
    per_prompt = -(alpha * (log_ap if baseline else q)).sum(dim=1)
    loss = per_prompt.mean()
    loss.backward()
    return loss.item(), alpha.numpy(), log_ap.exp().detach().numpy(), q.grad.numpy()


def dpo(logq_w, logq_l, ref_w, ref_l):
    w = torch.tensor(logq_w, dtype=torch.float64, requires_grad=True)
    l = torch.tensor(logq_l, dtype=torch.float64, requires_grad=True)
    loss = -torch.nn.functional.logsigmoid((w - ref_w) - (l - ref_l))
    loss.backward()
    return loss.item(), w.grad.item(), l.grad.item()
