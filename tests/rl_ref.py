"""Independent reference for src/algo/rl (online-RL math), in float64 PyTorch/numpy.

Written from the formulas (docs/online_rl.md and the papers / verl / TRL
definitions they cite), vectorised over the batch where the C code loops, and
with gradients from torch autograd instead of hand-derived derivatives. Shapes:
B sequences x T tokens; mask is 1 on counted tokens.
"""
import numpy as np
import torch

DT = torch.float64


def t64(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=DT)


# ------------------------------------------------------------ masked stats --

def masked_mean(x, m):
    c = m.sum()
    return (x * m).sum() / c if c > 0 else torch.zeros((), dtype=DT)


def masked_var(x, m, unbiased):
    c = m.sum()
    if c <= 0:
        return torch.zeros((), dtype=DT)
    mu = masked_mean(x, m)
    v = (((x - mu) ** 2) * m).sum() / c
    if unbiased and c > 1:
        v = v * c / (c - 1)
    return v


def masked_whiten(x, m, shift_mean=True):
    mu, v = masked_mean(x, m), masked_var(x, m, True)
    w = (x - mu) / torch.sqrt(v + 1e-8)
    if not shift_mean:
        w = w + mu
    return torch.where(m > 0, w, torch.zeros_like(w))


def explained_variance(values, returns, m):
    sel = m > 0
    r, v = returns[sel], values[sel]
    vr = torch.var(r, unbiased=False)
    if vr <= 0:
        return float("nan")
    return float(1 - torch.var(r - v, unbiased=False) / vr)


# ------------------------------------------------------------- aggregation --

def agg(loss, m, mode, norm_len=0.0):
    """loss (B,T) tensor (may require grad) -> scalar. Rows with no counted
    token are not sequences: they neither contribute nor count."""
    T = loss.shape[1]
    lm = torch.where(m > 0, loss, torch.zeros_like(loss)) * m
    n_b = m.sum(1)
    rows = (n_b > 0).to(DT).sum()
    if mode in ("token-mean", "bnpo", "dapo"):
        tot = m.sum()
        return lm.sum() / tot if tot > 0 else lm.sum() * 0
    if rows == 0:
        return lm.sum() * 0
    if mode in ("seq-mean-token-mean", "grpo"):
        per = lm.sum(1) / n_b.clamp(min=1e-30)
        return per[n_b > 0].sum() / rows
    if mode == "seq-mean-token-sum":
        return lm.sum() / rows
    if mode in ("seq-mean-token-sum-norm", "dr_grpo"):
        L = norm_len if norm_len > 0 else T
        return lm.sum() / (rows * L)
    raise ValueError(mode)


# -------------------------------------------------------------- advantages --

def gae(r, v, m, gamma, lam, whiten):
    """verl-style backward sweep over the whole batch; masked steps carry the
    running value and advantage through unchanged (a gap is skipped)."""
    B, T = r.shape
    next_v = torch.zeros(B, dtype=DT)
    last = torch.zeros(B, dtype=DT)
    adv = torch.zeros(B, T, dtype=DT)
    for t in reversed(range(T)):
        delta = r[:, t] + gamma * next_v - v[:, t]
        new = delta + gamma * lam * last
        on = m[:, t] > 0
        last = torch.where(on, new, last)
        next_v = torch.where(on, v[:, t], next_v)
        adv[:, t] = last
    ret = torch.where(m > 0, adv + v, torch.zeros_like(adv))
    adv = torch.where(m > 0, adv, torch.zeros_like(adv))
    if whiten:
        adv = masked_whiten(adv, m)
    return adv, ret


def gae_macro(r, v, m, gamma, lam, n, whiten, reward_mode="sum", value_mode="mean"):
    """MA-RLHF: per row, counted tokens -> segment ids j // n; macro reward/value by
    bincount; GAE over segments; broadcast back."""
    r, v, m = r.numpy(), v.numpy(), m.numpy()
    B, T = r.shape
    adv = np.zeros((B, T))
    ret = np.zeros((B, T))
    for b in range(B):
        pos = np.nonzero(m[b] > 0)[0]
        if len(pos) == 0:
            continue
        seg = np.arange(len(pos)) // n
        K = seg[-1] + 1
        cnt = np.bincount(seg, minlength=K).astype(np.float64)
        R = np.bincount(seg, weights=r[b, pos], minlength=K)
        if reward_mode == "mean":
            R = R / cnt
        if value_mode == "first":
            V = v[b, pos][np.searchsorted(seg, np.arange(K))]
        else:
            V = np.bincount(seg, weights=v[b, pos], minlength=K) / cnt
        V_next = np.append(V[1:], 0.0)
        delta = R + gamma * V_next - V
        A = np.zeros(K)
        acc = 0.0
        for k in range(K - 1, -1, -1):
            acc = delta[k] + gamma * lam * acc
            A[k] = acc
        adv[b, pos] = A[seg]
        ret[b, pos] = (A + V)[seg]
    adv, ret = t64(adv), t64(ret)
    if whiten:
        adv = masked_whiten(adv, t64(m))
    return adv, ret


def seq_scores(r, m):
    return (r * m).sum(1)


def grpo(r, m, n, scale="group", eps=1e-6):
    s = seq_scores(r, m)
    G = s.view(-1, n)
    mean = G.mean(1, keepdim=True)
    if n > 1:
        std = G.std(1, unbiased=True, keepdim=True)
    else:
        mean, std = torch.zeros_like(mean), torch.ones_like(mean)
    if scale == "batch":
        std = torch.full_like(std, float(s.std(unbiased=True)) if s.numel() > 1 else 0.0)
    a = (G - mean) if scale == "none" else (G - mean) / (std + eps)
    a = a.reshape(-1, 1) * (m > 0).to(DT)
    return a, a


def rloo(r, m, n):
    s = seq_scores(r, m)
    G = s.view(-1, n)
    if n > 1:
        a = (n * G - G.sum(1, keepdim=True)) / (n - 1)
    else:
        a = G
    a = a.reshape(-1, 1) * (m > 0).to(DT)
    return a, a


def reinforce_pp(r, m, gamma):
    B, T = r.shape
    G = torch.zeros(B, dtype=DT)
    ret = torch.zeros(B, T, dtype=DT)
    for t in reversed(range(T)):
        on = m[:, t] > 0
        G = torch.where(on, r[:, t] + gamma * G, G)
        ret[:, t] = torch.where(on, G, torch.zeros_like(G))
    return masked_whiten(ret, m), ret


def remax(r, m, base):
    rm = r * m
    G = torch.flip(torch.cumsum(torch.flip(rm, [1]), 1), [1])
    on = (m > 0).to(DT)
    return (G - base[:, None]) * on, G * on


def outcome_rewards(scores, m):
    B, T = m.shape
    out = torch.zeros(B, T, dtype=DT)
    for b in range(B):
        pos = torch.nonzero(m[b] > 0).flatten()
        if len(pos):
            out[b, pos[-1]] = scores[b]
    return out


# ------------------------------------------------------------- policy loss --

def policy_loss(logp, old, adv, m, clip_low=0.2, clip_high=0.2, clip_c=0.0, seq_ratio=False,
                mode="token-mean", norm_len=0.0):
    """Returns (loss, dloss/dlogp, stats dict) with the gradient from autograd."""
    lp = logp.clone().requires_grad_(True)
    neg_kl = torch.clamp(lp - old, -20.0, 20.0)
    if seq_ratio:
        n_b = m.sum(1, keepdim=True)
        seq = ((lp - old) * m).sum(1, keepdim=True) / n_b.clamp(min=1e-30)
        log_s = lp - lp.detach() + seq.detach()
        ratio = torch.exp(torch.clamp(log_s, max=10.0))
    else:
        ratio = torch.exp(neg_kl)
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    l = torch.maximum(l1, l2)
    clipped = (l2 > l1).to(DT)
    lower = torch.zeros_like(l)
    if clip_c > 0:
        l3 = -adv * clip_c
        capped = torch.minimum(l, l3)
        lower = ((l > l3) & (adv < 0)).to(DT)
        l = torch.where(adv < 0, capped, l)
    loss = agg(l, m, mode, norm_len)
    loss.backward()
    with torch.no_grad():
        sel = m > 0
        tok_ratio = torch.exp(neg_kl)
        used = ratio.detach()
        st = {
            "clip_frac": float(masked_mean(clipped, m)),
            "clip_frac_lower": float(masked_mean(lower, m)),
            "kl_k3": float(masked_mean((tok_ratio - 1) - neg_kl, m)),
            "kl_k1": float(masked_mean(-neg_kl, m)),
            "ratio_mean": float(masked_mean(used, m)),
            "ratio_min": float(used[sel].min()) if sel.any() else 0.0,
            "ratio_max": float(used[sel].max()) if sel.any() else 0.0,
        }
    g = lp.grad if lp.grad is not None else torch.zeros_like(lp)
    return float(loss), g.detach(), st


def gspo_sequence_level(logp, old, adv_seq, m, clip_low, clip_high):
    """GSPO as in the paper: one ratio per sequence, s_i = exp(mean_t log-ratio), gradient
    through the mean; loss = mean over sequences of max(-A s, -A clip(s))."""
    lp = logp.clone().requires_grad_(True)
    n_b = m.sum(1)
    keep = n_b > 0
    s = torch.exp(((lp - old) * m).sum(1)[keep] / n_b[keep])
    A = adv_seq[keep]
    l = torch.maximum(-A * s, -A * torch.clamp(s, 1 - clip_low, 1 + clip_high))
    loss = l.mean()
    loss.backward()
    return float(loss), lp.grad.detach()


# ------------------------------------------- TRL's other policy losses --
# Each written the way TRL's GRPOTrainer._compute_loss states it (per-token loss
# tensors, stop-gradient by .detach(), then the aggregation), not as the C loops.

def _autograd(logp, fn):
    lp = logp.clone().requires_grad_(True)
    loss = fn(lp)
    loss.backward()
    g = lp.grad if lp.grad is not None else torch.zeros_like(lp)
    return float(loss), g.detach()


def cispo(logp, old, adv, m, cap, mode="token-mean", norm_len=0.0):
    """MiniMax-M1 CISPO as TRL: -clamp(ratio, max=cap).detach() * A * logp."""
    def f(lp):
        w = torch.clamp(torch.exp(lp - old), max=cap).detach()
        return agg(-w * adv * lp, m, mode, norm_len)
    return _autograd(logp, f)


def sapo(logp, old, adv, m, tau_pos=1.0, tau_neg=1.05, mode="token-mean", norm_len=0.0):
    """SAPO as TRL: -A * sigmoid(tau (ratio - 1)) * 4 / tau, tau by A > 0."""
    def f(lp):
        tau = torch.where(adv > 0, torch.full_like(adv, tau_pos), torch.full_like(adv, tau_neg))
        gate = torch.sigmoid(tau * (torch.exp(lp - old) - 1)) * 4 / tau
        return agg(-gate * adv, m, mode, norm_len)
    return _autograd(logp, f)


def luspo(logp, old, adv_seq, m, clip_low, clip_high, delta=None):
    """LUSPO as TRL with importance_sampling_level="sequence": one ratio per row
    (exp of the masked mean log-ratio, gradient through the mean), the clipped loss
    with TRL's two-sided `delta` cap, times the row length, mean over rows that have
    tokens (TRL: over all rows)."""
    def f(lp):
        n_b = m.sum(1)
        keep = n_b > 0
        s = torch.exp(((lp - old) * m).sum(1)[keep] / n_b[keep])
        A = adv_seq[keep]
        c1 = torch.clamp(s, max=delta) if delta is not None else s
        c2 = torch.clamp(s, 1 - clip_low, 1 + clip_high)
        l = -torch.minimum(c1 * A, c2 * A)
        return (l * n_b[keep]).mean()
    return _autograd(logp, f)


def ppo_two_sided(logp, old, adv, m, clip_low, clip_high, delta, mode="token-mean"):
    """TRL's INTELLECT-2 two-sided clipping: -min(min(ratio, delta) A, clip(ratio) A)."""
    def f(lp):
        r = torch.exp(lp - old)
        c2 = torch.clamp(r, 1 - clip_low, 1 + clip_high)
        return agg(-torch.minimum(torch.clamp(r, max=delta) * adv, c2 * adv), m, mode)
    return _autograd(logp, f)


def vespo(logp, old, adv, m, k_pos=2.0, lam_pos=3.0, k_neg=3.0, lam_neg=2.0,
          mode="token-mean", norm_len=0.0):
    """VESPO as TRL's get_gamma_weights: log w = sum_t clamp(log-ratio, -20, 20),
    clamped to [log 1e-8, 20]; phi = exp(lam + k log w - lam w), detached,
    k/lam by A >= 0; loss -phi * A * logp."""
    def f(lp):
        with torch.no_grad():
            lr = torch.clamp(lp - old, -20.0, 20.0)
            log_w = torch.clamp((lr * m).sum(1, keepdim=True), float(np.log(1e-8)), 20.0)
            w = torch.exp(log_w)
            pos = adv >= 0
            k = torch.where(pos, torch.full_like(adv, k_pos), torch.full_like(adv, k_neg))
            lam = torch.where(pos, torch.full_like(adv, lam_pos),
                              torch.full_like(adv, lam_neg)).clamp(min=1e-4)
            phi = torch.exp(lam + k * log_w - lam * w).nan_to_num(0.0, 0.0, 0.0)
        return agg(-phi * adv * lp, m, mode, norm_len)
    return _autograd(logp, f)


# --------------------------------------------------------------------- KL --

def kl_value(kind, lp, ref):
    if kind in ("k1", "kl"):
        return lp - ref
    if kind in ("k2", "mse"):
        return 0.5 * (lp - ref) ** 2
    if kind == "abs":
        return (lp - ref).abs()
    if kind in ("k3", "low_var_kl"):
        u = torch.clamp(ref - lp, -20.0, 20.0)
        return torch.clamp(torch.exp(u) - u - 1, -10.0, 10.0)
    raise ValueError(kind)


def kl_token(kind, logp, ref):
    lp = logp.clone().requires_grad_(True)
    k = kl_value(kind, lp, ref)
    k.sum().backward()
    return k.detach(), lp.grad.detach()


def kl_in_reward(kind, logp, ref, m, rewards, coef):
    k = kl_value(kind, logp, ref)
    out = rewards - coef * k * (m > 0).to(DT)
    n_b = m.sum(1)
    keep = n_b > 0
    row = (k * m).sum(1)[keep] / n_b[keep]
    return out, float(row.mean()) if keep.any() else 0.0


def kl_loss(kind, logp, ref, m, coef, mode, norm_len=0.0):
    lp = logp.clone().requires_grad_(True)
    k = kl_value(kind, lp, ref)
    loss = coef * agg(k, m, mode, norm_len)
    loss.backward()
    return float(loss), lp.grad.detach(), float(masked_mean(k.detach(), m))


def adaptive_kl(value, target, horizon, current, n_steps):
    e = np.clip(current / target - 1, -0.2, 0.2)
    return value * (1 + e * n_steps / horizon)


# -------------------------------------------------------------- value loss --

def value_loss(v, v_old, R, m, cliprange, mode, norm_len=0.0):
    vv = v.clone().requires_grad_(True)
    l1 = (vv - R) ** 2
    if cliprange > 0:
        vc = torch.max(torch.min(vv, v_old + cliprange), v_old - cliprange)
        l2 = (vc - R) ** 2
        l = torch.maximum(l1, l2)
        clipped = (l2 > l1).to(DT)
    else:
        l, clipped = l1, torch.zeros_like(l1)
    loss = 0.5 * agg(l, m, mode, norm_len)
    loss.backward()
    return float(loss), vv.grad.detach(), float(masked_mean(clipped, m))


# ----------------------------------------------------------------- filters --

def filter_weights(kind, scores, n, power=2.0):
    """Deterministic filters (best_random is checked structurally by the caller)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1, n)
    w = np.zeros_like(s)
    for g in range(s.shape[0]):
        row = s[g]
        if kind == "none":
            w[g] = 1
        elif kind == "reweight":
            p = np.abs(row) ** power + 1e-8
            w[g] = n * p / p.sum()
        else:
            best = int(np.argmax(row))                      # first maximum
            w[g, best] = 1
            if kind == "best_worst" and n > 1:
                worst = n - 1 - int(np.argmin(row[::-1]))   # last minimum
                w[g, worst] = 1
    return w.reshape(-1)


# ----------------------------------------------------------------- shaping --

def par(r, refs, k=1.0):
    r = np.asarray(r, dtype=np.float64)[:, None]
    refs = np.asarray(refs, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(-k * (r - refs)))).mean(1)


def ensemble(kind, scores, lam):
    s = np.asarray(scores, dtype=np.float64)
    if kind == "mean":
        return s.mean(1)
    if kind == "wco":
        return s.min(1)
    if kind == "uwo":
        return s.mean(1) - lam * s.var(1)      # numpy var: population (ddof 0)
    raise ValueError(kind)


def overlong(length, max_len, cache_len):
    L = np.asarray(length, dtype=np.float64)
    free = max_len - cache_len
    return np.where(L <= free, 0.0, np.where(L <= max_len, (free - L) / cache_len, -1.0))
