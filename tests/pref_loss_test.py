#!/usr/bin/env python3
"""Preference losses (src/algo/pref*.c) against an independent PyTorch reference.

Builds random cases for every loss and option (sequence sums and per-token
inputs with padded offsets, ordinary and extreme inputs with |margins| up to
1e4), runs them all through $BUILD/tests/tools/pref_dump in one process, and
compares the loss, every gradient, the per-pair rewards and the metrics with
tests/pref_ref.py (float64, torch autograd). Each array is compared by
max|c - ref| / max(max|ref|, 1e-6) (the loss by |c - ref| / max(|ref|, 1)); the
tolerance is 1e-5, float32 rounding of the outputs. Everything must be finite.
It also checks that bad inputs are refused with a clear message (zero-length
completions, non-finite inputs, missing inputs, bad options).

Prints "PASS name (max err E)" / "FAIL name: why" per case, SKIP without torch;
exits 1 on any failure. Env: BUILD (default "build"), PREF_DUMP overrides the
tool's path.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

try:
    import numpy as np
    import torch
except ImportError as e:
    print(f"SKIP pref_loss: {e} (install Debian's python3-torch)")
    sys.exit(0)

import pref_ref  # noqa: E402

TOL = 1e-5
FLT_MAX = 3.4028234663852886e38
torch.set_num_threads(1)

PAIRED = ["sigmoid", "robust", "hinge", "ipo", "exo_pair", "nca_pair", "bco_pair", "sppo_hard",
          "aot", "aot_pair", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm",
          "sft", "simpo", "alphapo", "cpo", "orpo", "osp", "vpo", "inpo", "srpo", "cpl", "cpl_kl"]
SCORE_LOSSES = ["sigmoid", "robust", "hinge", "ipo", "exo_pair", "nca_pair", "bco_pair",
                "sppo_hard", "apo_down", "discopop", "sigmoid_norm", "osp", "vpo"]
MARGIN_LOSSES = ["sigmoid", "robust", "hinge", "sigmoid_norm", "simpo", "alphapo", "cpo", "osp",
                 "vpo"]
UNPAIRED = ["kto", "apo_zero_unpaired", "bco", "alol", "alol_seq", "alol_ref_free", "alol_kl",
            "rlol"]

rng = np.random.default_rng(1234)


def f32(x):
    return np.asarray(x, dtype=np.float32).tolist()


def seqs(n, tokens=False, ref=True, extreme=False, padded=False, maxlen=9):
    """A set of n completions: sums, or per-token log-probs (packed or padded rows)."""
    lens = rng.integers(1, maxlen, n)
    d = {"len": [int(x) for x in lens]}
    if tokens:
        if padded:  # (n, T) rows with a random prompt offset
            T = maxlen + 3
            off = [i * T + int(rng.integers(0, 3)) for i in range(n)]
            size = n * T
        else:
            off = None
            size = int(lens.sum())
        tok = -rng.exponential(1.0, size) if not extreme else -rng.uniform(0, 1e4, size) / lens.mean()
        d["tok_logps"] = f32(tok)
        if ref:
            d["ref_tok_logps"] = f32(tok + rng.normal(0, 0.5 if not extreme else 3e3, size))
        if off is not None:
            d["tok_off"] = off
    else:
        p = -rng.uniform(0.5, 30, n) if not extreme else -rng.uniform(0, 1e4, n)
        d["logps"] = f32(p)
        if ref:
            d["ref_logps"] = f32(p + rng.normal(0, 2, n) if not extreme else -rng.uniform(0, 1e4, n))
    return d


def paired_case(loss, n=7, tokens=False, extreme=False, padded=False, ref=True, **kw):
    c = {"loss_type": loss, "n": n,
         "chosen": seqs(n, tokens, ref, extreme, padded), "rejected": seqs(n, tokens, ref, extreme, padded)}
    names = loss.split(",")
    if "osp" in names:
        c["strength"] = f32(rng.uniform(0, 1, n))
    if "inpo" in names:
        scale = 1e4 if extreme else 20
        c["prev_chosen_logps"] = f32(-rng.uniform(0, scale, n))
        c["prev_rejected_logps"] = f32(-rng.uniform(0, scale, n))
    if "srpo" in names:
        c["rev"] = [seqs(n, tokens, ref, extreme, padded) for _ in range(4)]
    c.update(kw)
    return c


def unpaired_case(loss, n=9, tokens=False, extreme=False, padded=False, ref=True, **kw):
    c = {"loss_type": loss, "n": n, "completion": seqs(n, tokens, ref, extreme, padded),
         "label": [int(x) for x in rng.integers(0, 2, n)]}
    c["kl"] = float(np.float32(rng.uniform(0, 3 if not extreme else 5e3)))
    if any(x.startswith("alol") or x == "rlol" for x in loss.split(",")):
        c["score"] = f32(rng.normal(0, 2, n))
        c["value"] = f32(rng.uniform(0.2, 0.8, n))
    c.update(kw)
    return c


cases = []  # (name, case, expected error substring or None)


def add(name, case, error=None):
    cases.append((name, case, error))


# ------------------------------------------------------------------ losses --
for loss in PAIRED:
    opts = {}
    if loss == "exo_pair":
        opts = {"label_smoothing": 1e-3}
    add(loss, paired_case(loss, options=opts))
    add(loss + " extreme", paired_case(loss, extreme=True, options=opts))
    add(loss + " tokens", paired_case(loss, tokens=True, padded=True, options=opts))
    add(loss + " extreme beta=2", paired_case(loss, extreme=True, options=dict(opts, beta=2.0, inpo_tau=0.5)))
for loss in UNPAIRED:
    tok = loss == "alol_seq"
    add(loss, unpaired_case(loss, tokens=tok))
    add(loss + " extreme", unpaired_case(loss, tokens=tok, extreme=True))
    add(loss + " tokens", unpaired_case(loss, tokens=True, padded=True))

# ----------------------------------------------------------------- options --
for ls, loss in [(0.1, "sigmoid"), (0.2, "robust"), (0.3, "exo_pair"), (0.1, "aot"), (0.1, "aot_pair"),
                 (0.1, "simpo"), (0.1, "cpo"), (0.1, "vpo")]:
    add(f"{loss} label_smoothing={ls}", paired_case(loss, options={"label_smoothing": ls}))
    add(f"{loss} label_smoothing={ls} extreme", paired_case(loss, extreme=True, options={"label_smoothing": ls}))
for fd, alpha in [("forward_kl", None), ("js_divergence", None), ("alpha_divergence", 0.5),
                  ("alpha_divergence", 0.3), ("alpha_divergence", 1.0), ("alpha_divergence", 0.0)]:
    for loss in SCORE_LOSSES:
        o = {"f_divergence_type": fd, "label_smoothing": 1e-3 if loss == "exo_pair" else 0.0}
        if alpha is not None:
            o["f_alpha_divergence_coef"] = alpha
        tag = fd + (f"({alpha})" if alpha is not None else "")
        add(f"{loss} {tag}", paired_case(loss, options=o))
        add(f"{loss} {tag} extreme", paired_case(loss, extreme=True, options=o))
# log-ratios inside the exponent cap, where forward-KL and alpha-divergence scores are
# as large as e^80: the squared losses (ipo, sppo_hard) once overflowed float32 there
# (a log-ratio of -50 at beta 0.1 gave a -inf gradient)
RATIOS = [-79.5, -60.0, -50.0, -45.0, -41.0, -39.0, -20.0, 0.0, 20.0, 50.0, 79.5]


def ratio_seqs(ratios):
    ref = -rng.uniform(1, 100, len(ratios))
    return {"len": [int(x) for x in rng.integers(1, 4, len(ratios))],
            "ref_logps": f32(ref), "logps": f32(ref + np.asarray(ratios))}


for fd, alpha in [("forward_kl", None), ("alpha_divergence", 1.0), ("alpha_divergence", 0.5)]:
    for loss in SCORE_LOSSES:
        for beta in (0.1, 2.0):
            o = {"f_divergence_type": fd, "beta": beta, "label_smoothing": 1e-3 if loss == "exo_pair" else 0.0}
            if alpha is not None:
                o["f_alpha_divergence_coef"] = alpha
            tag = fd + (f"({alpha})" if alpha is not None else "")
            c = paired_case(loss, n=len(RATIOS), options=o)
            c["chosen"], c["rejected"] = ratio_seqs(RATIOS), ratio_seqs(list(reversed(RATIOS)))
            add(f"{loss} {tag} beta={beta} log-ratios to -80", c)
for loss in ["sigmoid", "ipo", "aot", "sft", "orpo", "sigmoid,sft"]:
    add(f"{loss} use_weighting (WPO)", paired_case(loss, options={"use_weighting": 1}))
    add(f"{loss} use_weighting extreme", paired_case(loss, extreme=True, options={"use_weighting": 1}))
for ld in [0.0, 0.5, 1.0]:
    for loss in ["sigmoid", "ipo", "sigmoid,sft", "simpo", "orpo", "aot", "apo_zero"]:
        add(f"{loss} ld_alpha={ld}", paired_case(loss, tokens=True, padded=True, options={"ld_alpha": ld}))
add("sigmoid ld_alpha=0.5 extreme", paired_case("sigmoid", tokens=True, extreme=True, options={"ld_alpha": 0.5}))
add("sigmoid ld_alpha=0.5 reference_free",
    paired_case("sigmoid", tokens=True, ref=False, options={"ld_alpha": 0.5, "reference_free": 1}))
add("sigmoid ld_alpha=0.5 use_weighting",
    paired_case("sigmoid", tokens=True, options={"ld_alpha": 0.5, "use_weighting": 1}))
for loss in ["sigmoid", "ipo", "apo_zero", "aot", "srpo", "inpo", "kto"]:
    mk = unpaired_case if loss == "kto" else paired_case
    add(f"{loss} reference_free", mk(loss, ref=False, options={"reference_free": 1}))
add("sigmoid reference_free ignores given ref", paired_case("sigmoid", options={"reference_free": 1}))
for loss in MARGIN_LOSSES:
    add(f"{loss} margin", paired_case(loss, margin=f32(rng.uniform(-2, 2, 7))))
    add(f"{loss} margin extreme", paired_case(loss, extreme=True, margin=f32(rng.uniform(-1e4, 1e4, 7))))
add("sigmoid,sft 1,0.5", paired_case("sigmoid,sft", loss_weights="1,0.5"))
add("sigmoid,bco_pair,sft 0.8,0.2,1.0 (MPO)", paired_case("sigmoid,bco_pair,sft", loss_weights="0.8,0.2,1.0"))
add("ipo,sigmoid,hinge -1,2,0.5 tokens", paired_case("ipo,sigmoid,hinge", tokens=True, loss_weights="-1,2,0.5"))
add("simpo,sft 1,0.3 extreme", paired_case("simpo,sft", extreme=True, loss_weights="1,0.3"))
add("bco_pair delta=0.3", paired_case("bco_pair", options={"bco_delta": 0.3}))
add("discopop tau=2 extreme", paired_case("discopop", extreme=True, options={"discopop_tau": 2.0}))
add("simpo gamma=1.5 beta=2", paired_case("simpo", options={"simpo_gamma": 1.5, "beta": 2.0}))
add("cpo cpo_alpha=0", paired_case("cpo", options={"cpo_alpha": 0.0}))
# AlphaPO's reward shape (alpha != 0) on simpo, alphapo and cpo
for a in (0.25, -0.5, 1e-9):
    add(f"alphapo alpha={a:g}", paired_case("alphapo", options={"alpha": a, "simpo_gamma": 0.3}))
    add(f"alphapo alpha={a:g} tokens ls=0.1",
        paired_case("alphapo", tokens=True, options={"alpha": a, "label_smoothing": 0.1}))
add("alphapo alpha=2 extreme (capped)", paired_case("alphapo", extreme=True, options={"alpha": 2.0}))
add("alphapo alpha=0.25 margin", paired_case("alphapo", margin=f32(rng.uniform(-2, 2, 7)),
                                              options={"alpha": 0.25}))
add("simpo alpha=0.25", paired_case("simpo", options={"alpha": 0.25, "beta": 2.0}))
add("cpo alpha=0.05", paired_case("cpo", options={"alpha": 0.05}))
add("cpo alpha=-0.02 cpo_alpha=0 ls=0.2", paired_case("cpo", options={"alpha": -0.02, "cpo_alpha": 0.0,
                                                                         "label_smoothing": 0.2}))
add("vpo with cal", paired_case("vpo", cal={"logps": f32(-rng.uniform(1, 30, 7)), "len": [3] * 7}))
add("vpo with cal tokens sign=+1",
    paired_case("vpo", cal=seqs(7, tokens=True, ref=False), options={"vpo_sign": 1.0, "vpo_alpha": 0.5}))
add("inpo tau=0.05", paired_case("inpo", options={"inpo_tau": 0.05}))
add("srpo alpha=0", paired_case("srpo", options={"srpo_alpha": 0.0}))
add("srpo alpha=1 tokens", paired_case("srpo", tokens=True, options={"srpo_alpha": 1.0}))
add("cpl lambda=0.75 beta=0.2", paired_case("cpl", options={"cpl_lambda": 0.75, "beta": 0.2}))
add("orpo near-zero logps", paired_case("orpo", chosen={"logps": f32([-1e-8, -0.0, -1e-3, -2, -1e-7, -5, -0.5]),
                                                        "len": [1, 1, 2, 3, 1, 4, 1]}))
add("kto weights 1,1.33", unpaired_case("kto", options={"desirable_weight": 1.0, "undesirable_weight": 1.33}))
add("kto,apo_zero_unpaired", unpaired_case("kto,apo_zero_unpaired", loss_weights="1,0.5"))
add("bco delta+weights", unpaired_case("bco", options={"bco_delta": 0.2}, weight=f32(rng.uniform(0, 2, 9))))
add("bco all desirable", unpaired_case("bco", label=[1] * 9))
add("alol no clip", unpaired_case("alol", options={"alol_clip": 0.0}))
add("alol no clip extreme", unpaired_case("alol", extreme=True, options={"alol_clip": 0.0}))
add("alol raw reward", unpaired_case("alol", options={"alol_sigmoid_reward": 0}))
add("alol_seq clip=0.2", unpaired_case("alol_seq", tokens=True, options={"alol_clip": 0.2}))
add("alol_kl beta=0.05", unpaired_case("alol_kl", options={"beta": 0.05}))
add("rlol raw reward", unpaired_case("rlol", options={"alol_sigmoid_reward": 0}))
add("rlol no clip", unpaired_case("rlol", options={"alol_clip": 0.0}))
add("alol,alol_kl no labels", {k: v for k, v in unpaired_case("alol,alol_kl").items() if k != "label"})
add("sigmoid n=1", paired_case("sigmoid", n=1))
add("aot n=1", paired_case("aot", n=1))

# ------------------------------------------------------------------ errors --
bad = paired_case("sigmoid")
bad["chosen"]["len"][2] = 0
add("refuse zero-length chosen", bad, "zero-length completion")
bad = paired_case("ipo", tokens=True)
bad["rejected"]["len"][0] = 0
add("refuse zero-length rejected (tokens)", bad, "zero-length completion")
bad = paired_case("sft")
bad["chosen"]["len"][1] = -3
add("refuse negative length", bad, "zero-length completion")
bad = unpaired_case("kto")
bad["completion"]["len"][4] = 0
add("refuse zero-length completion (kto)", bad, "zero-length completion")
bad = paired_case("sigmoid")
bad["chosen"]["logps"][3] = "nan"
add("refuse NaN log-prob", bad, "must be finite")
bad = paired_case("sigmoid", tokens=True)
bad["rejected"]["ref_tok_logps"][0] = "-inf"
add("refuse -inf reference token", bad, "must be finite")
add("refuse unknown loss", paired_case("sigmoid", loss_type="sigmoid,foo"), 'unknown loss_type "foo"')
add("refuse paired+unpaired", paired_case("sigmoid", loss_type="sigmoid,kto"), "cannot combine")
add("refuse missing reference", paired_case("sigmoid", ref=False), "needs reference log-probs")
add("refuse missing reference (kto)", unpaired_case("kto", ref=False), "needs reference log-probs")
add("refuse exo_pair eps=0", paired_case("exo_pair"), "exo_pair needs 0 < label_smoothing < 1")
add("refuse robust eps=0.5", paired_case("robust", options={"label_smoothing": 0.5}), "robust needs label_smoothing < 0.5")
c = paired_case("osp")
del c["strength"]
add("refuse osp without strength", c, "osp needs a preference strength")
add("refuse osp strength>1", paired_case("osp", strength=[1.5] * 7), "must be in [0, 1]")
c = paired_case("inpo")
del c["prev_chosen_logps"]
add("refuse inpo without pi_t", c, "inpo needs log-probs of the previous iterate")
add("refuse inpo tau>=beta", paired_case("inpo", options={"inpo_tau": 0.2}), "inpo_tau = 0.2 must be in (0, beta")
c = paired_case("srpo")
del c["rev"]
add("refuse srpo without revisions", c, "srpo needs the four revision log-probs")
add("refuse ld_alpha without tokens", paired_case("sigmoid", options={"ld_alpha": 0.5}), "ld_alpha needs per-token")
add("refuse ld_alpha > 1", paired_case("sigmoid", tokens=True, options={"ld_alpha": 1.5}), "ld_alpha = 1.5")
add("refuse f-divergence unused", paired_case("sft", options={"f_divergence_type": "js_divergence"}),
    "none of the losses uses it")
add("refuse unknown f-divergence", paired_case("sigmoid", options={"f_divergence_type": "hellinger"}),
    'unknown f_divergence_type "hellinger"')
add("refuse unused margin", paired_case("ipo", margin=[0.5] * 7), "none of the losses uses one")
add("refuse weight count", paired_case("sigmoid,sft", loss_weights="1"), "has 1 weights for 2 losses")
add("refuse bad weight", paired_case("sigmoid,sft", loss_weights="1,x"), '"x" is not a number')
add("refuse beta=0", paired_case("sigmoid", options={"beta": 0.0}), "beta = 0 must be > 0")
c = unpaired_case("alol")
del c["score"]
add("refuse alol without scores", c, "A-LoL needs reward-model scores")
c = unpaired_case("kto")
del c["label"]
add("refuse kto without labels", c, "needs a label per example")
add("refuse alol_seq without tokens", unpaired_case("alol_seq"), "alol_seq needs per-token")
add("refuse WPO with unpaired", unpaired_case("kto", options={"use_weighting": 1}), "paired losses only")
add("refuse empty batch", paired_case("sigmoid", n=0), "empty batch")
c = paired_case("sigmoid")
del c["rejected"]
add("refuse missing rejected", c, "rejected: no policy log-probs")


# -------------------------------------------------------------------- run --
def run_dump(all_cases):
    dump = os.environ.get("PREF_DUMP") or os.path.join(ROOT, os.environ.get("BUILD", "build"),
                                                       "tests", "tools", "pref_dump")
    if not os.path.exists(dump):
        print(f"FAIL pref_loss: {dump} not found (run make)")
        sys.exit(1)
    with tempfile.TemporaryDirectory() as d:
        inp, outp = os.path.join(d, "in.json"), os.path.join(d, "out.json")
        with open(inp, "w") as f:
            json.dump(all_cases, f)
        r = subprocess.run([dump, inp, outp], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL pref_loss: pref_dump exited {r.returncode}: {r.stderr.strip()}")
            sys.exit(1)
        with open(outp) as f:
            return json.load(f)


def finite(x):
    if isinstance(x, list):
        return all(finite(v) for v in x)
    if isinstance(x, dict):
        return all(finite(v) for v in x.values())
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def rel(c, r):
    c, r = np.asarray(c, dtype=np.float64).ravel(), np.asarray(r, dtype=np.float64).ravel()
    if c.shape != r.shape:
        return float("inf")
    if c.size == 0:
        return 0.0
    return float(np.max(np.abs(c - r)) / max(np.max(np.abs(r)), 1e-6))


def compare(got, want):
    """Max relative error over everything; raises AssertionError with what differs."""
    errs = {"loss": abs(got["loss"] - want["loss"]) / max(abs(want["loss"]), 1.0)}
    for key in ("reward_chosen", "reward_rejected", "reward"):
        if key in want:
            errs[key] = rel(got[key], want[key])
    for key, val in want["metrics"].items():
        if key == "rewards_accuracies":  # a count of ties resolved in float: compare exactly-ish
            errs["metrics." + key] = abs(got["metrics"][key] - val)
        else:
            errs["metrics." + key] = abs(got["metrics"][key] - val) / max(abs(val), 1.0)
    for name, g in want["grad"].items():
        if name not in got["grad"]:
            raise AssertionError(f"no gradient for {name}")
        kind = next(iter(g))
        if kind not in got["grad"][name]:
            raise AssertionError(f"gradient of {name} is not {kind}")
        errs[f"grad.{name}"] = rel(got["grad"][name][kind], g[kind])
    worst = max(errs, key=errs.get)
    return errs[worst], worst


def main():
    results = run_dump([c for _, c, _ in cases])
    fails = 0
    for (name, case, error), got in zip(cases, results):
        if error is not None:
            if got.get("ok") == 0 and error in got.get("error", ""):
                print(f"PASS {name} (error: {got['error']})")
            else:
                fails += 1
                print(f"FAIL {name}: expected an error containing {error!r}, got {json.dumps(got)[:300]}")
            continue
        if got.get("ok") != 1:
            fails += 1
            print(f"FAIL {name}: C refused: {got.get('error')}")
            continue
        if not finite(got) or abs(got["loss"]) > FLT_MAX:
            fails += 1
            print(f"FAIL {name}: non-finite output (or a loss past float32)")
            continue
        try:
            want = pref_ref.reference(case)
            if not finite(want):
                raise AssertionError("the reference itself is not finite")
            err, where = compare(got, want)
        except AssertionError as e:
            fails += 1
            print(f"FAIL {name}: {e}")
            continue
        if err <= TOL:
            print(f"PASS {name} (max err {err:.1e})")
        else:
            fails += 1
            print(f"FAIL {name}: {where} differs by {err:.2e} (tolerance {TOL:g}); "
                  f"loss C {got['loss']!r} ref {want['loss']!r}")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
