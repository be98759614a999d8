"""An independent numpy implementation of CGPO's optimisers (Xu et al. 2024,
"The Perfect Blend", arXiv:2409.20370), written from the formulas in
docs/cgpo.md, for tests/cgpo_test.py (which also checks CODPO's closed-form
gradient here against torch autograd). Rows g*n .. g*n+n-1 are prompt g's
samples; S the rows' summed log-probs."""
import numpy as np


def calibrated(r, r_ref):
    return 1.0 / (1.0 + np.exp(-(np.asarray(r, float) - np.asarray(r_ref, float))))


def crpg(scores, ref_scores, passed, keep, S, n):
    """loss, weights, dloss/dS; n > 1: leave-one-out baseline within groups of n"""
    on = np.asarray(passed, bool) & np.asarray(keep, bool)
    w = np.where(on, calibrated(scores, ref_scores), 0.0)
    B = len(w)
    a = w.copy()
    if n > 1:
        wg = w.reshape(-1, n)
        loo = (wg.sum(1, keepdims=True) - wg) / (n - 1)
        a = np.where(np.asarray(keep, bool), (wg - loo).reshape(-1), w)
    return -(a * np.asarray(S, float)).sum() / B, w, -a / B


def codpo_pairs(scores, passed, keep, n, fallback):
    s, p, k = (np.asarray(x) for x in (scores, passed, keep))
    ch, rj = [], []
    for g in range(len(s) // n):
        rows = range(g * n, g * n + n)
        if not k[g * n]:
            continue
        ok = [i for i in rows if p[i]]
        bad = [i for i in rows if not p[i]]
        if not ok:
            continue
        best = max(ok, key=lambda i: (s[i], -i))  # first of the highest
        if bad:
            worst = min(bad, key=lambda i: (s[i], -i))  # last of the lowest
        else:
            low = min(ok, key=lambda i: (s[i], -i))
            if not fallback or not s[low] < s[best]:
                continue
            worst = low
        ch.append(best)
        rj.append(worst)
    return ch, rj


def codpo_loss(pc, pr, rc, rr, lc, beta, lam):
    """mean over pairs of -log sigmoid(beta*((pc-rc)-(pr-rr))) - lam*pc/lc; grads"""
    pc, pr, rc, rr = (np.asarray(x, float) for x in (pc, pr, rc, rr))
    lc = np.maximum(np.asarray(lc, float), 1)
    P = len(pc)
    if P == 0:
        return 0.0, np.zeros(0), np.zeros(0), 0.0
    h = (pc - rc) - (pr - rr)
    loss = np.logaddexp(0, -beta * h) - lam * pc / lc
    sig = 1 / (1 + np.exp(beta * h))  # sigmoid(-beta h)
    gc = (-beta * sig - lam / lc) / P
    gr = beta * sig / P
    return loss.mean(), gc, gr, float((h > 0).mean())


def crraft(scores, ref_scores, passed, keep, S, lens, n):
    s = np.asarray(scores, float)
    B = len(s)
    w = np.zeros(B)
    best = []
    for g in range(B // n):
        ok = [i for i in range(g * n, g * n + n) if passed[i] and keep[i]]
        if ok:
            b = max(ok, key=lambda i: (s[i], -i))
            w[b] = calibrated(s[b], ref_scores[b])
            best.append(b)
    G = len(best)
    grad = np.zeros(B)
    loss = 0.0
    for b in best:
        L = max(lens[b], 1)
        grad[b] = -w[b] / (L * G)
        loss -= w[b] * S[b] / (L * G)
    return loss, w, grad
