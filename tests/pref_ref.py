"""Independent float64 PyTorch reference of the preference losses (src/algo/pref*.c).

Written from the formulas in docs/losses.md in the style of TRL's trainers
(vectorised tensors, per-sequence losses, .mean()), with gradients from torch
autograd, never from hand-derived derivatives. A case is the dict that
tests/tools/pref_dump reads (see its header); reference(case) returns the same
fields pref_dump writes: loss, metrics, per-pair rewards and the gradients of
every policy input (per sequence, or per token when the case gives tokens).
"""
import math

import torch
import torch.nn.functional as F

DT = torch.float64
CAP = 80.0  # exponent cap (PREF_EXP_CAP)
SQ_CAP = math.exp(CAP / 2)  # |score| cap of the squared losses, ipo and sppo_hard

DEFAULTS = dict(beta=0.1, label_smoothing=0.0, reference_free=0, f_divergence_type="reverse_kl",
                f_alpha_divergence_coef=0.5, ld_alpha=-1.0, use_weighting=0, discopop_tau=0.05,
                simpo_gamma=0.5, cpo_alpha=1.0, desirable_weight=1.0, undesirable_weight=1.0,
                bco_delta=0.0, vpo_alpha=0.1, vpo_sign=-1.0, inpo_tau=0.1 / 3, srpo_alpha=0.5,
                cpl_lambda=0.5, alol_clip=0.9, alol_sigmoid_reward=1, alpha=0.0)

UNPAIRED = {"kto", "apo_zero_unpaired", "bco", "alol", "alol_seq", "alol_ref_free", "alol_kl",
            "rlol"}


def t(x):
    return torch.tensor(x, dtype=DT)


class Seqs:
    """One set of completions: policy leaf (sums or tokens) with grad, reference without."""

    def __init__(self, d, n, ref_free):
        self.d = d
        self.len = t(d["len"])
        lens = [int(x) for x in d["len"]]
        self.tokens = "tok_logps" in d
        has_ref_tok = "ref_tok_logps" in d and not ref_free
        if self.tokens or has_ref_tok:
            if d.get("tok_off") is not None:
                off = [int(x) for x in d["tok_off"]]
            else:
                off = [sum(lens[:i]) for i in range(n)]
            self.index = [torch.arange(off[i], off[i] + lens[i]) for i in range(n)]
        if self.tokens:
            self.leaf = t(d["tok_logps"]).requires_grad_(True)
            self.p = torch.stack([self.leaf[ix].sum() for ix in self.index])
        else:
            self.leaf = t(d["logps"]).requires_grad_(True)
            self.p = self.leaf
        self.has_ref = not ref_free and ("ref_logps" in d or "ref_tok_logps" in d)
        if has_ref_tok:
            self.ref_tok = t(d["ref_tok_logps"])
            self.r = torch.stack([self.ref_tok[ix].sum() for ix in self.index])
        elif self.has_ref:
            self.r = t(d["ref_logps"])
        else:
            self.r = torch.zeros(n, dtype=DT)
        self.pe, self.re = self.p, self.r  # LD-weighted sums

    def ld(self, shared, alpha):
        """LD-DPO: tokens past `shared` (per sequence) count alpha."""
        pe, re = [], []
        for i, ix in enumerate(self.index):
            w = torch.ones(len(ix), dtype=DT)
            w[int(shared[i]):] = alpha
            pe.append((self.leaf[ix] * w).sum())
            re.append((self.ref_tok[ix] * w).sum() if hasattr(self, "ref_tok") else t(0.0))
        self.pe, self.re = torch.stack(pe), torch.stack(re)


def fdiv(o, x):
    kind = o["f_divergence_type"]
    if kind == "reverse_kl":
        return x
    if kind == "forward_kl":  # f'(u) = 1 - 1/u, constant dropped
        return -torch.exp(torch.clamp(-x, max=CAP))
    if kind == "js_divergence":  # log(2u/(1+u)), log 2 dropped
        return F.logsigmoid(x)
    a = o["f_alpha_divergence_coef"]  # (1 - u^-a)/a, 1/a dropped
    if a < 1e-6:
        return x
    return -torch.exp(torch.clamp(-a * x, max=CAP)) / a


def smoothed(z, eps):
    return -F.logsigmoid(z) * (1 - eps) - F.logsigmoid(-z) * eps


# ----------------------------------------------------------- paired losses --
# Each takes the context c (a dict of tensors and options) and returns the
# per-pair loss (n,); batch-level terms are expanded to (n,) like TRL's sft.

def l_sigmoid(c):
    return smoothed(c.beta * c.delta - c.margin, c.eps)


def l_robust(c):
    z = c.beta * c.delta - c.margin
    clean = -(1 - c.eps) * F.logsigmoid(z)
    flipped = -c.eps * F.logsigmoid(-z)
    return (clean - flipped) / (1 - 2 * c.eps)


def l_hinge(c):
    return torch.relu(1 - (c.beta * c.delta - c.margin))


def sq_score(s):
    return torch.clamp(s, -SQ_CAP, SQ_CAP)


def l_ipo(c):
    d = sq_score(c.sc) / c.lc - sq_score(c.sr) / c.lr
    return (d - 1 / (2 * c.beta)) ** 2


def l_exo_pair(c):
    z = c.beta * c.delta
    eps = t(c.eps)
    # q = exp(logsigmoid): torch.sigmoid's backward forms 1 - sigmoid(z), which loses
    # every digit of a tiny q_w q_l (|z| ~ 28 and beyond); logsigmoid's backward does not
    lw, ll = F.logsigmoid(z), F.logsigmoid(-z)
    qw, ql = torch.exp(lw), torch.exp(ll)
    return qw * (lw - torch.log1p(-eps)) + ql * (ll - torch.log(eps))


def l_nca_pair(c):
    a, b = c.beta * c.sc, c.beta * c.sr
    return -F.logsigmoid(a) - 0.5 * F.logsigmoid(-a) - 0.5 * F.logsigmoid(-b)


def l_bco_pair(c):
    d = c.o["bco_delta"]
    return -F.logsigmoid(c.beta * c.sc - d) - F.logsigmoid(-(c.beta * c.sr - d))


def l_sppo_hard(c):
    return (sq_score(c.sc) - 0.5 / c.beta) ** 2 + (sq_score(c.sr) + 0.5 / c.beta) ** 2


def l_aot(c):
    a, _ = torch.sort(c.pc - c.pr, dim=0)
    b, _ = torch.sort(c.rc - c.rr, dim=0)
    return smoothed(c.beta * (a - b), c.eps)


def l_aot_pair(c):
    a, _ = torch.sort(c.pc - c.rc, dim=0)
    b, _ = torch.sort(c.pr - c.rr, dim=0)
    return smoothed(c.beta * (a - b), c.eps)


def l_apo_zero(c):
    return (1 - torch.sigmoid(c.beta * (c.pc - c.rc))) + torch.sigmoid(c.beta * (c.pr - c.rr))


def l_apo_down(c):
    return torch.sigmoid(c.beta * (c.pc - c.rc)) + (1 - torch.sigmoid(c.beta * c.delta))


def l_discopop(c):
    z = c.beta * c.delta
    tau = c.o["discopop_tau"]
    mod = torch.sigmoid(z / tau)
    # exp(-z) * mod, in log space with the exponent capped
    expo = torch.exp(torch.clamp(-z + F.logsigmoid(z / tau), max=CAP))
    return -F.logsigmoid(z) * (1 - mod) + expo


def l_sigmoid_norm(c):
    return -F.logsigmoid(c.beta * (c.sc / c.lc - c.sr / c.lr) - c.margin)


def nll(c):
    return -(c.pc_sum.sum() / c.lc.sum()) * torch.ones(c.n, dtype=DT)


def l_sft(c):
    return nll(c)


def alpha_shaped(logps, alpha):
    """AlphaPO's reward as TRL's CPOTrainer writes it, (1 - p^(-alpha)) / alpha with
    p = exp(logps), the power taken in log space with its exponent capped at CAP (as
    torch.clamp: no gradient past it). alpha = 0: logps itself."""
    if alpha == 0:
        return logps
    return (1 - torch.exp(torch.clamp(-alpha * logps, max=CAP))) / alpha


def l_simpo(c):
    a = c.o["alpha"]
    logits = (alpha_shaped(c.pc / c.lc, a) - alpha_shaped(c.pr / c.lr, a)) - c.o["simpo_gamma"] / c.beta
    return smoothed(c.beta * logits - c.margin, c.eps)


def l_cpo(c):
    a = c.o["alpha"]
    logits = alpha_shaped(c.pc, a) - alpha_shaped(c.pr, a)
    return smoothed(c.beta * logits - c.margin, c.eps) + c.o["cpo_alpha"] * nll(c)


def log1mexp(x):
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def l_orpo(c):
    xc = torch.clamp(c.pc / c.lc, max=-1e-6)
    xr = torch.clamp(c.pr / c.lr, max=-1e-6)
    log_odds = (xc - xr) - (log1mexp(xc) - log1mexp(xr))
    return nll(c) - c.beta * F.logsigmoid(log_odds)


def l_osp(c):
    p = c.strength
    z = c.beta * c.delta - c.margin
    return -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z))


def l_vpo(c):
    o = c.o
    return smoothed(c.beta * c.delta - c.margin, c.eps) + o["vpo_sign"] * o["vpo_alpha"] * c.beta * c.cal


def l_inpo(c):
    eta, tau = c.beta, c.o["inpo_tau"]
    h = (c.pc - c.pr) - tau / eta * (c.rc - c.rr) - (eta - tau) / eta * (c.prev_c - c.prev_r)
    return (h - 1 / (2 * eta)) ** 2


def l_srpo(c):
    r = [s.p - s.r for s in c.rev]  # w|l, l|l, w|w, l|w
    beta, al = c.beta, c.o["srpo_alpha"]
    given_rejected = (0.5 - beta * (r[0] - r[1])) ** 2
    given_chosen = (0.5 - beta * (r[2] - r[3])) ** 2
    gen = (beta * (r[0] + (c.pc - c.rc) - (r[3] + (c.pr - c.rr))) - 1) ** 2
    return (1 - al) * gen + al * (given_rejected + given_chosen)


def l_cpl(c):
    lam = c.o["cpl_lambda"]
    return -F.logsigmoid(c.beta * c.pc - lam * c.beta * c.pr)


def l_cpl_kl(c):
    lam = c.o["cpl_lambda"]
    return -F.logsigmoid(c.beta * (c.pc - c.rc) - lam * c.beta * (c.pr - c.rr))


PAIRED = dict(sigmoid=l_sigmoid, robust=l_robust, hinge=l_hinge, ipo=l_ipo, exo_pair=l_exo_pair,
              nca_pair=l_nca_pair, bco_pair=l_bco_pair, sppo_hard=l_sppo_hard, aot=l_aot,
              aot_pair=l_aot_pair, aot_unpaired=l_aot_pair, apo_zero=l_apo_zero,
              apo_down=l_apo_down, discopop=l_discopop, sigmoid_norm=l_sigmoid_norm, sft=l_sft,
              simpo=l_simpo, alphapo=l_simpo, cpo=l_cpo, orpo=l_orpo, osp=l_osp, vpo=l_vpo, inpo=l_inpo,
              srpo=l_srpo, cpl=l_cpl, cpl_kl=l_cpl_kl)


# --------------------------------------------------------- unpaired losses --
# Return per-example losses (n,) in the input order; the term is their mean.

def u_kto(c, o):
    beta, z0 = o["beta"], c.kl
    rho = c.p - c.r
    good = o["desirable_weight"] * (1 - torch.sigmoid(beta * (rho - z0)))
    bad = o["undesirable_weight"] * (1 - torch.sigmoid(beta * (z0 - rho)))
    return torch.where(c.label, good, bad)


def u_apo_zero_unpaired(c, o):
    beta = o["beta"]
    rho = c.p - c.r
    good = o["desirable_weight"] * (1 - torch.sigmoid(beta * rho))
    bad = o["undesirable_weight"] * torch.sigmoid(beta * rho)
    return torch.where(c.label, good, bad)


def u_bco(c, o):
    rewards = o["beta"] * (c.p - c.r)
    d = o["bco_delta"]
    good = -F.logsigmoid(rewards - d)
    bad = -F.logsigmoid(-(rewards - d))
    return torch.where(c.label, good, bad) * c.weight


def advantage(c, o):
    R = torch.sigmoid(c.score) if o["alol_sigmoid_reward"] else c.score
    return torch.clamp(R - c.value, min=0.0)


def is_weight(o, log_ratio):
    eps = o["alol_clip"]
    with torch.no_grad():
        if eps > 0:
            return torch.clamp(torch.exp(log_ratio), 1 - eps, 1 + eps)
        return torch.exp(torch.clamp(log_ratio, max=CAP))


def u_alol(c, o):
    return -advantage(c, o) * is_weight(o, c.p - c.r) * c.p


def u_alol_seq(c, o):
    A = advantage(c, o)
    out = []
    for i, ix in enumerate(c.seq.index):
        tok = c.seq.leaf[ix]
        ref = c.seq.ref_tok[ix] if hasattr(c.seq, "ref_tok") else torch.zeros(len(ix), dtype=DT)
        out.append(-A[i] * (is_weight(o, tok - ref) * tok).sum())
    return torch.stack(out)


def u_alol_ref_free(c, o):
    return -advantage(c, o) * c.p


def u_alol_kl(c, o):
    return -advantage(c, o) * c.p + o["beta"] * (c.p - c.r)


def u_rlol(c, o):
    R = torch.sigmoid(c.score) if o["alol_sigmoid_reward"] else c.score
    return -R * is_weight(o, c.p - c.r) * c.p


UNPAIRED_FN = dict(kto=u_kto, apo_zero_unpaired=u_apo_zero_unpaired, bco=u_bco, alol=u_alol,
                   alol_seq=u_alol_seq, alol_ref_free=u_alol_ref_free, alol_kl=u_alol_kl,
                   rlol=u_rlol)


class Ctx:
    pass


def _grad(seqs):
    g = seqs.leaf.grad
    g = torch.zeros_like(seqs.leaf) if g is None else g
    return {"tok_grad" if seqs.tokens else "grad": g.tolist()}


def reference(case):
    o = dict(DEFAULTS)
    o.update(case.get("options", {}))
    names = case["loss_type"].split(",")
    weights = [float(x) for x in case["loss_weights"].split(",")] if case.get("loss_weights") \
        else [1.0] * len(names)
    n = case["n"]
    ref_free = bool(o["reference_free"])
    beta = o["beta"]
    out = {"ok": 1, "grad": {}}
    if names[0] in UNPAIRED:
        c = Ctx()
        c.seq = Seqs(case["completion"], n, ref_free)
        c.p, c.r = c.seq.p, c.seq.r
        c.label = torch.tensor([bool(x) for x in case.get("label", [0] * n)])
        c.kl = case.get("kl", 0.0)
        for key in ("score", "value"):
            setattr(c, key, t(case[key]) if key in case else None)
        c.weight = t(case["weight"]) if "weight" in case else torch.ones(n, dtype=DT)
        loss = sum(w * UNPAIRED_FN[name](c, o).mean() for name, w in zip(names, weights))
        loss.backward()
        out["grad"]["completion"] = _grad(c.seq)
        rw = (beta * (c.p - c.r)).detach()
        out["reward"] = rw.tolist()
        good, bad = c.label, ~c.label
        m = {}
        m["rewards_chosen"] = rw[good].mean().item() if good.any() else 0.0
        m["rewards_rejected"] = rw[bad].mean().item() if bad.any() else 0.0
        m["rewards_margins"] = m["rewards_chosen"] - m["rewards_rejected"]
        m["logps_chosen"] = c.p.detach()[good].mean().item() if good.any() else 0.0
        m["logps_rejected"] = c.p.detach()[bad].mean().item() if bad.any() else 0.0
        m["rewards_accuracies"] = 0.0
        m["kl"] = c.kl
        out["loss"] = loss.item()
        out["metrics"] = m
        return out

    c = Ctx()
    c.o, c.n, c.beta, c.eps = o, n, beta, o["label_smoothing"]
    ch = Seqs(case["chosen"], n, ref_free)
    rj = Seqs(case["rejected"], n, ref_free)
    if o["ld_alpha"] >= 0:
        shared = torch.minimum(ch.len, rj.len)
        ch.ld(shared, o["ld_alpha"])
        rj.ld(shared, o["ld_alpha"])
    c.pc, c.pr, c.rc, c.rr = ch.pe, rj.pe, ch.re, rj.re
    c.pc_sum, c.lc, c.lr = ch.p, ch.len, rj.len
    c.sc, c.sr = fdiv(o, c.pc - c.rc), fdiv(o, c.pr - c.rr)
    c.delta = c.sc - c.sr
    c.margin = t(case["margin"]) if "margin" in case else torch.zeros(n, dtype=DT)
    c.strength = t(case["strength"]) if "strength" in case else None
    cal = Seqs(case["cal"], n, True) if "cal" in case else None
    c.cal = cal.p if cal else ch.p
    if "prev_chosen_logps" in case:
        c.prev_c, c.prev_r = t(case["prev_chosen_logps"]), t(case["prev_rejected_logps"])
    rev = [Seqs(d, n, ref_free) for d in case["rev"]] if "rev" in case else []
    c.rev = rev
    wpo = None
    if o["use_weighting"]:
        with torch.no_grad():
            wpo = torch.exp(torch.clamp(ch.p / ch.len + rj.p / rj.len, max=CAP))
    loss = t(0.0)
    for name, w in zip(names, weights):
        per_seq = PAIRED[name](c)
        if wpo is not None:
            per_seq = per_seq * wpo
        loss = loss + per_seq.mean() * w
    loss.backward()
    out["loss"] = loss.item()
    out["grad"]["chosen"] = _grad(ch)
    out["grad"]["rejected"] = _grad(rj)
    if cal:
        out["grad"]["cal"] = _grad(cal)
    for k, s in enumerate(rev):
        out["grad"]["rev%d" % k] = _grad(s)
    rc_ = (beta * (c.pc - c.rc)).detach()
    rr_ = (beta * (c.pr - c.rr)).detach()
    out["reward_chosen"] = rc_.tolist()
    out["reward_rejected"] = rr_.tolist()
    out["metrics"] = dict(rewards_chosen=rc_.mean().item(), rewards_rejected=rr_.mean().item(),
                          rewards_accuracies=(rc_ > rr_).double().mean().item(),
                          rewards_margins=(rc_ - rr_).mean().item(),
                          logps_chosen=c.pc.detach().mean().item(),
                          logps_rejected=c.pr.detach().mean().item(), kl=0.0)
    return out
