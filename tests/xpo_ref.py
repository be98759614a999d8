"""An independent float64 PyTorch implementation of XPO's loss and gradient
(Xie et al. 2024, arXiv:2405.21046, in TRL XPOTrainer's form), written from the
formulas, for tests/xpo_test.py. Arrays are (N,): one pair per entry.

    xpo(pol_y, ref_y, pol_t, ref_t, y_chosen, beta, alpha, loss_type)
        -> (loss, loss_dpo, loss_xpo, dloss/dpol_y, dloss/dpol_t)
    y: the policy's sample, t: the reference's (y~); pol_* the policy's summed
    log-probs, ref_* the reference's; y_chosen: r(y) >= r(y~).
        h = (log-ratio of the chosen) - (log-ratio of the rejected)
        dpo = -log sigmoid(beta h)   (sigmoid)  |  (h - 1/(2 beta))^2   (ipo)
        loss = mean(dpo + alpha * pol_t); gradients by autograd.
"""
import torch


def xpo(pol_y, ref_y, pol_t, ref_t, y_chosen, beta, alpha, loss_type="sigmoid"):
    py = torch.tensor(pol_y, dtype=torch.float64, requires_grad=True)
    pt = torch.tensor(pol_t, dtype=torch.float64, requires_grad=True)
    ry, rt = (torch.as_tensor(x, dtype=torch.float64) for x in (ref_y, ref_t))
    c = torch.as_tensor(y_chosen, dtype=torch.bool)
    chosen = torch.where(c, py - ry, pt - rt)
    rejected = torch.where(c, pt - rt, py - ry)
    h = chosen - rejected
    if loss_type == "sigmoid":
        dpo = -torch.nn.functional.logsigmoid(beta * h)
    elif loss_type == "ipo":
        dpo = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(loss_type)
    bonus = alpha * pt
    loss = (dpo + bonus).mean()
    loss.backward()
    return loss.item(), dpo.mean().item(), bonus.mean().item(), py.grad.numpy(), pt.grad.numpy()
