#!/usr/bin/env python3
"""Compares src/ctrl's networks and action heads (through
$BUILD/tests/tools/ctrl_nn_dump) with PyTorch in float64.

MLP ensembles: the C tool builds a network from a seed and dumps its
parameters; here each member is rebuilt as nn.Linear layers with ReLU from
those parameters, and the outputs, parameter gradients and dx (summed over
members) of sum(dy * y) are compared; the initial parameters are checked
against nn.Linear's default init (bounds 1/sqrt(fan_in), uniform spread);
Polyak averaging against (1 - tau) target + tau src, and two AdamW steps
against torch.optim.AdamW (weight decay on).

Heads: the deterministic tanh head; the tanh-Gaussian sample, written with
torch.distributions (Normal, then TanhTransform and AffineTransform for the
change of variables, a formula independent of the C one), its log-prob and
the reparameterised gradients wrt [mu | log_std] with the log_std clamp;
the log-prob of given actions; the state-independent Gaussian.

Errors: max|c - ref| / max(max|ref|, 1) for values and gradients.
Prints SKIP and exits 0 without numpy/torch. Env: BUILD (default "build").
"""
import atexit
import math
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import ROOT, BUILD, report, exit_code  # noqa: E402

try:
    import numpy as np  # noqa: E402
    import torch  # noqa: E402
    import torch.nn as tnn  # noqa: E402
    from torch.distributions import Normal, TransformedDistribution  # noqa: E402
    from torch.distributions.transforms import AffineTransform, TanhTransform  # noqa: E402
except ImportError as e:
    print(f"SKIP ctrl_nn: {e} (install Debian's python3-torch)")
    sys.exit(0)

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_nn_dump")
TOL = 1e-5
tmp = tempfile.mkdtemp(prefix="ctrl_nn_test.")
atexit.register(shutil.rmtree, tmp, True)  # removed however the test ends
worst = {}


def put(name, a):
    np.asarray(a, dtype=np.float32).tofile(os.path.join(tmp, name + ".f32"))


def get(name):
    return torch.from_numpy(np.fromfile(os.path.join(tmp, name + ".f32"), dtype=np.float32)
                            .astype(np.float64))


def f32(shape, rng, scale=1.0):
    """float32 values (what C sees) as float64"""
    return torch.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32)
                            .astype(np.float64))


def tool(*args):
    p = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"ctrl_nn_dump {args}: exit {p.returncode}: {p.stderr}")


def close(name, c, ref, tol=TOL):
    c, ref = c.reshape(-1), ref.reshape(-1).detach()
    err = float((c - ref).abs().max() / max(float(ref.abs().max()), 1.0))
    ok = err <= tol and c.numel() == ref.numel()
    worst[name] = err
    report(ok, f"{name} (max err {err:.2g})", f"error {err:.3g} > {tol}")
    return ok


def mlp_case(tag, seed, d_in, hidden, layers, d_out, ens, B, tau=0.005, lr=3e-4, wd=1e-2):
    rng = np.random.default_rng(seed)
    x, dy = f32((B, d_in), rng), f32((ens, B, d_out), rng)
    put("x", x)
    put("dy", dy)
    tool("mlp", tmp, seed, d_in, hidden, layers, d_out, ens, B, tau, lr, wd)
    params = get("params")
    widths = [d_in] + [hidden] * layers + [d_out]
    per = sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(len(widths) - 1))
    if params.numel() != ens * per:
        report(False, f"mlp {tag} params", f"{params.numel()} floats, want {ens * per}")
        return

    def build(flat):
        """the ensemble as torch modules, loaded from the span (member, layer, W, b)"""
        members, off = [], 0
        for e in range(ens):
            mods = []
            for i in range(len(widths) - 1):
                lin = tnn.Linear(widths[i], widths[i + 1])
                nw = widths[i] * widths[i + 1]
                with torch.no_grad():
                    lin.weight.copy_(flat[off:off + nw].view(widths[i + 1], widths[i]))
                    lin.bias.copy_(flat[off + nw:off + nw + widths[i + 1]])
                off += nw + widths[i + 1]
                mods += [lin] + ([tnn.ReLU()] if i < len(widths) - 2 else [])
            members.append(tnn.Sequential(*mods))
        return members

    def span(members, grad=False):
        return torch.cat([(p.grad if grad else p.data).reshape(-1)
                          for m in members for p in m.parameters()])

    # the init: nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b
    members = build(params)
    ok, why = True, ""
    for i, lin in enumerate(l for l in members[0] if isinstance(l, tnn.Linear)):
        bound = 1 / math.sqrt(widths[i])
        w = lin.weight.data.reshape(-1)
        if float(w.abs().max()) > bound * (1 + 1e-6) or float(lin.bias.abs().max()) > bound * (1 + 1e-6):
            ok, why = False, f"layer {i} outside the bound {bound}"
        if w.numel() >= 1000:
            sd = float(w.std()) / (bound / math.sqrt(3))  # a uniform's std
            if abs(sd - 1) > 0.1 or abs(float(w.mean())) > 0.1 * bound:
                ok, why = False, f"layer {i}: std ratio {sd:.3f}, mean {float(w.mean()):.3g}"
    report(ok, f"mlp {tag} init", why)

    xr = x.clone().requires_grad_(True)
    ys = torch.stack([m(xr) for m in members])
    (ys * dy).sum().backward()
    close(f"mlp {tag} forward", get("y"), ys)
    close(f"mlp {tag} param grads", get("grads"), span(members, grad=True))
    close(f"mlp {tag} dx", get("dx"), xr.grad)

    t0 = get("target0")
    close(f"mlp {tag} polyak", get("polyak"), (1 - tau) * t0 + tau * params)

    # AdamW from torch on the same span, with C's gradients (float32) as p.grad
    p = params.clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    g = get("grads")
    for k in (1, 2):
        p.grad = g.clone()
        opt.step()
        # relative to the step size: the update is what is compared
        c = get(f"adam{k}")
        err = float((c - p.data).abs().max()) / (k * lr)
        worst[f"mlp {tag} adamw step {k}"] = err
        report(err <= 1e-3 and float((c - params).abs().max()) > 0.5 * lr,
               f"mlp {tag} adamw step {k} (max err {err:.2g} of a step)", f"error {err:.3g}")


def heads_case(tag, seed, B, A, lo=-5.0, hi=2.0):
    rng = np.random.default_rng(seed)
    u, da, dl = f32((B, A), rng, 1.5), f32((B, A), rng), f32((B,), rng)
    mu = f32((B, A), rng)
    # raw log_std in [lo - 1, hi + 1]: some entries clamped on each side
    ls_raw = torch.from_numpy(rng.uniform(lo - 1, hi + 1, (B, A)).astype(np.float32)
                              .astype(np.float64))
    ls_raw[0, 0], ls_raw[-1, -1] = lo - 0.5, hi + 0.5
    out = torch.cat([mu, ls_raw], 1)
    eps = f32((B, A), rng)
    scale = torch.from_numpy(rng.uniform(0.4, 2.5, A).astype(np.float32).astype(np.float64))
    bias = f32((A,), rng, 0.5)
    squashed = torch.from_numpy(rng.uniform(-0.95, 0.95, (B, A)).astype(np.float64))
    act = (bias + scale * squashed).float().double()
    mean = f32((B, A), rng)
    log_std = torch.from_numpy(rng.uniform(lo - 1, hi + 1, A).astype(np.float32).astype(np.float64))
    for name, a in dict(u=u, da=da, dl=dl, out=out, eps=eps, scale=scale, bias=bias, act=act,
                        mean=mean, log_std=log_std).items():
        put(name, a)
    tool("heads", tmp, B, A, lo, hi)

    # deterministic
    ur = u.clone().requires_grad_(True)
    a = bias + scale * torch.tanh(ur)
    (a * da).sum().backward()
    close(f"heads {tag} det action", get("det_a"), a)
    close(f"heads {tag} det du", get("det_du"), ur.grad, 1e-5)

    def squash(base, cache=0):
        return TransformedDistribution(base, [TanhTransform(cache_size=cache),
                                              AffineTransform(bias, scale, cache_size=cache)])

    # tanh-Gaussian sample: pre = mu + std eps, pushed through the transforms with
    # their cache on (as rsample does) so that log_prob sees pre itself, not
    # atanh(tanh(pre)), which loses the digits of saturated entries
    o = out.clone().requires_grad_(True)
    m_, l_ = o[:, :A], torch.clamp(o[:, A:], lo, hi)
    base = Normal(m_, l_.exp())
    pre = m_ + l_.exp() * eps
    dist = squash(base, cache=1)
    ar = pre
    for t in dist.transforms:
        ar = t(ar)
    lp = dist.log_prob(ar).sum(-1)
    ((ar * da).sum() + (lp * dl).sum()).backward()
    close(f"heads {tag} tanh-gauss pre", get("tg_pre"), pre)
    close(f"heads {tag} tanh-gauss action", get("tg_a"), ar)
    close(f"heads {tag} tanh-gauss logp", get("tg_logp"), lp)
    close(f"heads {tag} tanh-gauss dout", get("tg_dout"), o.grad)
    g = o.grad[:, A:]
    clamped = (out[:, A:] < lo) | (out[:, A:] > hi)
    report(bool((get("tg_dout").view(B, 2 * A)[:, A:][clamped] == 0).all()) and bool(clamped.any()),
           f"heads {tag} tanh-gauss clamp gives zero gradient",
           f"clamped grads {g[clamped]}")
    close(f"heads {tag} tanh-gauss eps=NULL action", get("tg0_a"), bias + scale * torch.tanh(mu))

    # log-prob of given actions
    o = out.clone().requires_grad_(True)
    m_, l_ = o[:, :A], torch.clamp(o[:, A:], lo, hi)
    lp = squash(Normal(m_, l_.exp())).log_prob(act).sum(-1)
    (lp * dl).sum().backward()
    close(f"heads {tag} tanh-gauss logprob(actions)", get("tglp_logp"), lp)
    close(f"heads {tag} tanh-gauss logprob dout", get("tglp_dout"), o.grad)

    # state-independent Gaussian
    mr, lr_ = mean.clone().requires_grad_(True), log_std.clone().requires_grad_(True)
    lp = Normal(mr, torch.clamp(lr_, lo, hi).exp()).log_prob(act).sum(-1)
    (lp * dl).sum().backward()
    close(f"heads {tag} gauss logp", get("g_logp"), lp)
    close(f"heads {tag} gauss dmean", get("g_dmean"), mr.grad)
    close(f"heads {tag} gauss dlog_std", get("g_dls"), lr_.grad)


if not os.path.exists(TOOL):
    report(False, "ctrl_nn tool", f"{TOOL} not built (make BUILD={BUILD})")
    sys.exit(exit_code())

mlp_case("E3 2x64 B33", 1, 17, 64, 2, 3, 3, 33)
mlp_case("E2 3x256 B1", 2, 5, 256, 3, 1, 2, 1)
mlp_case("E1 1x31 B7 tau1", 3, 4, 31, 1, 6, 1, 7, tau=1.0, wd=0.0)
heads_case("B16 A6", 4, 16, 6)
heads_case("B1 A1", 5, 1, 1, lo=-20.0, hi=2.0)
print(f"  worst error: {max(worst.values()):.2g} ({max(worst, key=worst.get)})")
sys.exit(exit_code())
