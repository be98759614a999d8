#!/usr/bin/env python3
"""Compares src/algo/rl (through $BUILD/tests/tools/rl_dump) with the independent
float64 reference in tests/rl_ref.py on random arrays.

The arrays are float32 (what C sees); the reference recomputes from the same
float32 values in float64. Masks are ragged (a prompt offset, random lengths),
with an all-masked row and a row with a masked gap in the middle; GRPO/RLOO
groups include one whose rewards are all equal (zero std). Gradients
d(loss)/d(logp) and d(loss)/d(v) are checked against torch autograd.

Each check prints "PASS name (max err E)" or "FAIL name ..."; the error is
max|c - ref| / max(max|ref|, 1) for values and max|c - ref| / max|ref| for
gradients (absolute when ref is all zero). Exits 1 if anything failed; prints
SKIP and exits 0 without numpy/torch.
Env: BUILD (default "build").
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

try:
    import numpy as np  # noqa: E402
    import torch  # noqa: E402
except ImportError as e:
    print(f"SKIP rl_loss: {e} (install Debian's python3-torch)")
    sys.exit(0)

import rl_ref as ref  # noqa: E402
import st_io  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "rl_dump")
TOL = 2e-5
TOL_GRAD = 2e-5

torch.set_num_threads(1)
failures = 0
tmp = tempfile.mkdtemp(prefix="rl_loss_test.")
atexit.register(shutil.rmtree, tmp, True)  # removed however the test ends


def emit(ok, name, detail):
    global failures
    if not ok:
        failures += 1
    print(f"{'PASS' if ok else 'FAIL'} {name} ({detail})", flush=True)


def run(op, params, tensors, expect_error=False):
    """Runs rl_dump; returns {name: float64 array} or, for expect_error, the message."""
    inp = os.path.join(tmp, "in.safetensors")
    out = os.path.join(tmp, "out.safetensors")
    st_io.save(inp, {k: np.asarray(v) for k, v in tensors.items()},
               {"op": op, **{k: str(v) for k, v in params.items()}})
    if os.path.exists(out):
        os.remove(out)
    p = subprocess.run([TOOL, inp, out], capture_output=True, text=True)
    if expect_error:
        return p.returncode, p.stdout + p.stderr
    if p.returncode != 0:
        raise RuntimeError(f"rl_dump {op} {params}: exit {p.returncode}: {p.stdout}{p.stderr}")
    return {k: v.astype(np.float64) for k, v in st_io.load(out).items()}


def err_of(c, r, grad=False):
    c = np.asarray(c, dtype=np.float64).ravel()
    r = np.asarray(r, dtype=np.float64).ravel()
    if c.shape != r.shape:
        return float("inf")
    if r.size == 0:
        return 0.0
    if np.any(np.isnan(r)) or np.any(np.isnan(c)):
        return 0.0 if np.array_equal(np.isnan(c), np.isnan(r)) and np.allclose(
            c[~np.isnan(c)], r[~np.isnan(r)], atol=1e-6) else float("inf")
    scale = np.abs(r).max()
    scale = (scale if scale > 0 else 1.0) if grad else max(scale, 1.0)
    return float(np.abs(c - r).max() / scale)


def check(name, pairs, tol=TOL):
    """pairs: list of (c, ref, is_grad)."""
    worst = 0.0
    for c, r, g in pairs:
        worst = max(worst, err_of(c, r, g))
    emit(worst <= tol, name, f"max err {worst:.2e}")


# ------------------------------------------------------------------ data --

def f32(x):
    return np.asarray(x, dtype=np.float32)


def make_mask(rng, B, T):
    m = np.zeros((B, T), dtype=np.float32)
    for b in range(B):
        p = rng.integers(0, 3)
        L = rng.integers(1, T - p + 1)
        m[b, p:p + L] = 1
    m[2] = 0                       # an all-masked row (a filtered-out sample)
    on = np.nonzero(m[5])[0]
    if len(on) < 3:
        m[5, :6] = 1
        on = np.nonzero(m[5])[0]
    m[5, on[len(on) // 2]] = 0     # a masked gap in the middle (tool output)
    return m


rng = np.random.default_rng(20240611)
B, T, N = 12, 11, 4                # 3 groups of 4
mask = make_mask(rng, B, T)
M = ref.t64(mask)


# ------------------------------------------------------------ advantages --

def adv_case(name, params, rewards, values=None, baselines=None):
    t = {"rewards": f32(rewards), "mask": mask}
    if values is not None:
        t["values"] = f32(values)
    if baselines is not None:
        t["baselines"] = f32(baselines)
    return run("adv", {"name": name, **params}, t)


tok_r = f32(rng.normal(size=(B, T)) * 0.3)
vals = f32(rng.normal(size=(B, T)))
R, V = ref.t64(tok_r), ref.t64(vals)
for gamma, lam in [(1.0, 0.95), (0.9, 0.7)]:
    for wh in (0, 1):
        o = adv_case("gae", {"gamma": gamma, "lambda": lam, "whiten": wh}, tok_r, vals)
        a, r = ref.gae(R, V, M, gamma, lam, wh)
        check(f"adv_gae_g{gamma}_l{lam}_whiten{wh}", [(o["adv"], a, 0), (o["ret"], r, 0)])

for n in (1, 2, 3, 5):
    for rm, vm in [("sum", "mean"), ("mean", "mean"), ("sum", "first")]:
        o = adv_case("gae", {"gamma": 0.99, "lambda": 0.9, "whiten": 0, "macro_n": n,
                             "macro_reward": rm, "macro_value": vm}, tok_r, vals)
        a, r = ref.gae_macro(R, V, M, 0.99, 0.9, n, False, rm, vm)
        check(f"adv_macro_ngram{n}_{rm}_{vm}", [(o["adv"], a, 0), (o["ret"], r, 0)])
o = adv_case("gae", {"gamma": 1, "lambda": 0.95, "whiten": 1, "macro_n": 4}, tok_r, vals)
a, r = ref.gae_macro(R, V, M, 1.0, 0.95, 4, True)
check("adv_macro_ngram4_whiten", [(o["adv"], a, 0), (o["ret"], r, 0)])
a1, r1 = ref.gae(R, V, M, 0.99, 0.9, False)
a2, r2 = ref.gae_macro(R, V, M, 0.99, 0.9, 1, False)
check("ref_macro_ngram1_equals_gae", [(a2, a1, 0), (r2, r1, 0)], tol=1e-12)

# outcome rewards: 0/1 scores; group 1 all equal (zero std); scores on the last token
scores = f32(rng.integers(0, 2, size=B))
scores[4:8] = 1.0
scores[8:12] = f32(rng.normal(size=4))
o = run("outcome", {}, {"scores": scores, "mask": mask})
out_r = ref.outcome_rewards(ref.t64(scores), M)
check("outcome_rewards_last_token", [(o["rewards"], out_r, 0)], tol=0)
orew = f32(out_r.numpy())
OR = ref.t64(orew)
for n in (1, 2, 4):
    for scale in ("group", "batch", "none"):
        for eps in (1e-6, 1e-4):
            o = adv_case("grpo", {"group_size": n, "scale": scale, "eps": eps}, orew)
            a, r = ref.grpo(OR, M, n, scale, eps)
            check(f"adv_grpo_n{n}_{scale}_eps{eps:g}", [(o["adv"], a, 0), (o["ret"], r, 0)])
o = adv_case("grpo", {"group_size": 4}, orew)
emit(np.all(o["adv"][4:8] == 0), "adv_grpo_equal_rewards_zero", "zero-std group -> 0")
for n in (1, 3, 4):
    if B % n:
        continue
    o = adv_case("rloo", {"group_size": n}, orew)
    a, r = ref.rloo(OR, M, n)
    check(f"adv_rloo_n{n}", [(o["adv"], a, 0), (o["ret"], r, 0)])

# REINFORCE++: KL-in-reward token rewards plus the outcome score
pp_r = f32(orew + tok_r * 0.1)
for gamma in (1.0, 0.9):
    o = adv_case("reinforce_pp", {"gamma": gamma}, pp_r)
    a, r = ref.reinforce_pp(ref.t64(pp_r), M, gamma)
    check(f"adv_reinforce_pp_g{gamma}", [(o["adv"], a, 0), (o["ret"], r, 0)])
o = adv_case("reinforce_plus_plus", {"gamma": 1.0}, pp_r)
check("adv_reinforce_plus_plus_alias", [(o["adv"], ref.reinforce_pp(ref.t64(pp_r), M, 1.0)[0], 0)])

base = f32(rng.normal(size=B))
for name, rw in (("outcome", orew), ("token", pp_r)):
    o = adv_case("remax", {}, rw, baselines=base)
    a, r = ref.remax(ref.t64(rw), M, ref.t64(base))
    check(f"adv_remax_{name}_rewards", [(o["adv"], a, 0), (o["ret"], r, 0)])

# refused configurations
rc, msg = run("adv", {"name": "grpo", "group_size": 5}, {"rewards": orew, "mask": mask}, True)
emit(rc == 3 and "groups of 5" in msg, "adv_grpo_bad_group_refused", msg.strip())
rc, msg = run("adv", {"name": "ppo"}, {"rewards": orew, "mask": mask}, True)
emit(rc == 3 and "choose gae" in msg, "adv_unknown_estimator_refused", msg.strip())
rc, msg = run("adv", {"name": "gae"}, {"rewards": orew, "mask": mask}, True)
emit(rc == 3 and "values" in msg, "adv_gae_without_values_refused", msg.strip())

# ----------------------------------------------------------- policy loss --
old = f32(rng.normal(size=(B, T)) * 0.5 - 2.0)
logp = f32(old + rng.normal(size=(B, T)) * 0.3)
padv = f32(rng.normal(size=(B, T)))
LP, OLD, PA = ref.t64(logp), ref.t64(old), ref.t64(padv)
STATS = ["clip_frac", "clip_frac_lower", "kl_k3", "kl_k1", "ratio_mean", "ratio_min", "ratio_max"]
MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
variants = [
    ("ppo", dict(clip_low=0.2, clip_high=0.2, clip_c=0.0, seq_ratio=0)),
    ("dapo_clip_higher", dict(clip_low=0.2, clip_high=0.28, clip_c=0.0, seq_ratio=0)),
    ("dual_clip", dict(clip_low=0.2, clip_high=0.2, clip_c=1.5, seq_ratio=0)),
    ("gspo", dict(clip_low=3e-4, clip_high=4e-4, clip_c=0.0, seq_ratio=1)),
    ("gspo_wide", dict(clip_low=0.2, clip_high=0.28, clip_c=0.0, seq_ratio=1)),
]
for vname, kw in variants:
    for mode in MODES:
        for norm_len in ((0, 16) if mode == "seq-mean-token-sum-norm" else (0,)):
            o = run("policy", {**kw, "agg": mode, "norm_len": norm_len},
                    {"logp": logp, "old_logp": old, "adv": padv, "mask": mask})
            loss, g, st = ref.policy_loss(LP, OLD, PA, M, kw["clip_low"], kw["clip_high"],
                                          kw["clip_c"], bool(kw["seq_ratio"]), mode, norm_len)
            stats = [st[k] for k in STATS]
            tag = f"_L{norm_len}" if norm_len else ""
            check(f"policy_{vname}_{mode}{tag}",
                  [(o["loss"], [loss], 0), (o["dlogp"], g, 1), (o["stats"], stats, 0)])
o = run("policy", {"agg": "token-mean"}, {"logp": logp, "old_logp": old, "adv": padv, "mask": mask})
cf = o["stats"][0]
emit(0.05 < cf < 0.95, "policy_data_exercises_clipping", f"clip fraction {cf:.2f}")
o = run("policy", {"clip_c": 1.5}, {"logp": logp, "old_logp": old, "adv": padv, "mask": mask})
emit(o["stats"][1] > 0, "policy_data_exercises_dual_clip", f"lower clip fraction {o['stats'][1]:.2f}")

# GSPO against the paper's sequence-level form (gradient through the mean), with one
# advantage per sequence under seq-mean-token-mean
seq_adv = f32(rng.normal(size=B))
tok_adv = f32(np.repeat(seq_adv[:, None], T, 1))
for lo, hi in ((3e-4, 4e-4), (0.2, 0.28)):
    o = run("policy", {"clip_low": lo, "clip_high": hi, "seq_ratio": 1, "agg": "seq-mean-token-mean"},
            {"logp": logp, "old_logp": old, "adv": tok_adv, "mask": mask})
    loss, g = ref.gspo_sequence_level(LP, OLD, ref.t64(seq_adv), M, lo, hi)
    check(f"policy_gspo_equals_sequence_level_eps{lo:g}", [(o["loss"], [loss], 0), (o["dlogp"], g, 1)])

# a large log-ratio (beyond verl's +-20 clamp) has zero gradient, as torch.clamp gives
big = logp.copy()
big[:, 0::3] = old[:, 0::3] + 25.0
big[:, 1::3] = old[:, 1::3] - 25.0
o = run("policy", {}, {"logp": big, "old_logp": old, "adv": padv, "mask": mask})
loss, g, st = ref.policy_loss(ref.t64(big), OLD, PA, M)
check("policy_log_ratio_clamp", [(o["loss"], [loss], 0), (o["dlogp"], g, 1)])
rc, msg = run("policy", {"clip_c": 0.5}, {"logp": logp, "old_logp": old, "adv": padv, "mask": mask}, True)
emit(rc == 3 and "> 1" in msg, "policy_bad_dual_clip_refused", msg.strip())

# ---------------------------------- TRL's other policy losses (cispo, sapo, luspo, vespo) --
# rl_dump predates the registry's named variants, so these call librlhf.so directly
# (ctypes mirrors of rl_policy_config / rl_policy_stats from src/algo/rl.h). An ASan
# build's librlhf.so cannot be loaded into this (uninstrumented) python: under
# RLHF_SANITIZE=1 the section is skipped; test_rl runs the variants under ASan.
import ctypes  # noqa: E402


def trl_variants():
    class PolicyConfig(ctypes.Structure):
        _fields_ = [("clip_low", ctypes.c_float), ("clip_high", ctypes.c_float),
                    ("clip_c", ctypes.c_float), ("seq_ratio", ctypes.c_int), ("agg", ctypes.c_int),
                    ("norm_len", ctypes.c_float), ("variant", ctypes.c_void_p),
                    ("sapo_temperature_pos", ctypes.c_float), ("sapo_temperature_neg", ctypes.c_float),
                    ("vespo_k_pos", ctypes.c_float), ("vespo_lambda_pos", ctypes.c_float),
                    ("vespo_k_neg", ctypes.c_float), ("vespo_lambda_neg", ctypes.c_float)]

    class PolicyStats(ctypes.Structure):
        _fields_ = [(k, ctypes.c_float) for k in ["loss"] + STATS]

    lib = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    lib.rl_policy_find.restype = ctypes.c_void_p
    lib.rl_policy_find.argtypes = [ctypes.c_char_p]
    FP = ctypes.POINTER(ctypes.c_float)
    lib.rl_policy_loss.argtypes = [ctypes.POINTER(PolicyConfig), ctypes.c_int, ctypes.c_int,
                                   FP, FP, FP, FP, FP, ctypes.POINTER(PolicyStats), ctypes.c_char_p]
    lib.rl_agg_from_name.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_char_p]
    probe = PolicyConfig()  # the mirror matches rl.h: the defaults land in the right fields
    lib.rl_policy_config_default(ctypes.byref(probe))
    layout = [round(getattr(probe, k), 6) for k, _ in PolicyConfig._fields_ if k != "variant"]
    emit(layout == [0.2, 0.2, 0.0, 0, 0, 0.0, 1.0, 1.05, 2.0, 3.0, 3.0, 2.0],
         "policy_ctypes_layout", f"defaults {layout}")

    def c_policy(name, lp, old_lp, adv, m, agg="token-mean", expect_error=False, **fields):
        """rl_policy_loss with variant `name` -> (loss, dlogp float64 (B,T), stats dict)."""
        cfg = PolicyConfig()
        lib.rl_policy_config_default(ctypes.byref(cfg))
        cfg.variant = lib.rl_policy_find(name.encode())
        assert cfg.variant, f"{name} is not a registered policy loss"
        errbuf = ctypes.create_string_buffer(1024)
        a = ctypes.c_int()
        assert lib.rl_agg_from_name(agg.encode(), ctypes.byref(a), errbuf) == 0, errbuf.value
        cfg.agg = a.value
        for k, v in fields.items():
            setattr(cfg, k, v)
        arrs = [np.ascontiguousarray(x, dtype=np.float32) for x in (lp, old_lp, adv, m)]
        g = np.zeros(arrs[0].shape, dtype=np.float32)
        st = PolicyStats()
        ptr = [x.ctypes.data_as(FP) for x in arrs + [g]]
        rc = lib.rl_policy_loss(ctypes.byref(cfg), arrs[0].shape[0], arrs[0].shape[1], *ptr,
                                ctypes.byref(st), errbuf)
        if expect_error:
            return rc, errbuf.value.decode()
        if rc != 0:
            raise RuntimeError(f"rl_policy_loss {name}: {errbuf.value.decode()}")
        return float(st.loss), g.astype(np.float64), {k: float(getattr(st, k)) for k in STATS}

    for mode in MODES + ["dapo"]:
        for cap in (1.1, 5.0):
            loss, g, st = c_policy("cispo", logp, old, padv, mask, mode, clip_high=cap)
            rl_, rg = ref.cispo(LP, OLD, PA, M, cap, mode)
            check(f"policy_cispo_cap{cap:g}_{mode}", [([loss], [rl_], 0), (g, rg, 1)])
        for tp, tn in ((1.0, 1.05), (2.0, 0.5)):
            loss, g, st = c_policy("sapo", logp, old, padv, mask, mode,
                                   sapo_temperature_pos=tp, sapo_temperature_neg=tn)
            rl_, rg = ref.sapo(LP, OLD, PA, M, tp, tn, mode)
            check(f"policy_sapo_tau{tp:g}_{tn:g}_{mode}", [([loss], [rl_], 0), (g, rg, 1)])
        for kp, lpos, kn, ln in ((2.0, 3.0, 3.0, 2.0), (0.5, 1.0, 1.5, 0.0)):
            loss, g, st = c_policy("vespo", logp, old, padv, mask, mode, vespo_k_pos=kp,
                                   vespo_lambda_pos=lpos, vespo_k_neg=kn, vespo_lambda_neg=ln)
            rl_, rg = ref.vespo(LP, OLD, PA, M, kp, lpos, kn, ln, mode)
            check(f"policy_vespo_k{kp:g}_{kn:g}_l{lpos:g}_{ln:g}_{mode}",
                  [([loss], [rl_], 0), (g, rg, 1)])
    loss, g, st = c_policy("cispo", logp, old, padv, mask, clip_high=1.1)
    r = np.exp(logp.astype(np.float64) - old)[mask > 0]
    emit(abs(st["clip_frac"] - np.mean(r > 1.1)) < 1e-6 and 0.05 < st["clip_frac"] < 0.95,
         "policy_cispo_clip_frac", f"capped share {st['clip_frac']:.2f}")
    # VESPO's weight depends on the whole row's log-ratio sum: small per-token ratios
    # give w near 1 and phi near 1 for some rows, far from it for others
    near = f32(old + rng.normal(size=(B, T)) * 0.05)
    loss, g, st = c_policy("vespo", near, old, padv, mask)
    rl_, rg = ref.vespo(ref.t64(near), OLD, PA, M)
    check("policy_vespo_near_on_policy", [([loss], [rl_], 0), (g, rg, 1)])

    # LUSPO against TRL's sequence-level form (one advantage per row), with and without
    # TRL's two-sided `delta` (= our dual clip)
    for lo, hi, delta in ((3e-4, 4e-4, None), (0.2, 0.28, None), (0.2, 0.28, 1.5)):
        kw = dict(clip_low=lo, clip_high=hi, clip_c=delta or 0.0)
        loss, g, st = c_policy("luspo", logp, old, tok_adv, mask, "token-mean", **kw)
        rl_, rg = ref.luspo(LP, OLD, ref.t64(seq_adv), M, lo, hi, delta)
        check(f"policy_luspo_sequence_level_eps{lo:g}_delta{delta}", [([loss], [rl_], 0), (g, rg, 1)])
    # TRL's INTELLECT-2 two-sided clip `delta` is our dual clip c = delta
    for delta in (1.5, 3.0):
        for mode in ("token-mean", "seq-mean-token-mean"):
            loss, g, st = c_policy("ppo", logp, old, padv, mask, mode, clip_high=0.28, clip_c=delta)
            rl_, rg = ref.ppo_two_sided(LP, OLD, PA, M, 0.2, 0.28, delta, mode)
            check(f"policy_dual_clip_is_trl_delta{delta:g}_{mode}", [([loss], [rl_], 0), (g, rg, 1)])

    # limiting cases
    # CISPO with a cap above every ratio is REINFORCE with IS weights: its gradient is the
    # unclipped PPO surrogate's, -A * rho
    _, g_c, _ = c_policy("cispo", logp, old, padv, mask, clip_high=1e30)
    _, g_p, _ = c_policy("ppo", logp, old, padv, mask, clip_low=0.999999, clip_high=1e30)
    check("policy_cispo_huge_cap_is_is_reinforce", [(g_c, g_p, 1)], tol=1e-6)
    # SAPO with a small temperature: the gate (4/tau) sigmoid(tau (rho-1)) -> 2/tau + (rho-1),
    # so the gradient tends to the unclipped PPO one
    _, g_s, _ = c_policy("sapo", logp, old, padv, mask, sapo_temperature_pos=1e-3,
                         sapo_temperature_neg=1e-3)
    check("policy_sapo_small_tau_is_unclipped", [(g_s, g_p, 1)], tol=1e-4)
    # VESPO with k = 0 and lambda -> 0 weighs nothing: phi = 1, plain REINFORCE -A
    _, g_v, _ = c_policy("vespo", near, old, padv, mask, vespo_k_pos=0, vespo_lambda_pos=0,
                         vespo_k_neg=0, vespo_lambda_neg=0)
    check("policy_vespo_flat_is_reinforce", [(g_v, -padv * mask / mask.sum(), 1)], tol=1e-3)
    # LUSPO with every row the same length L is L x gspo under seq-mean-token-mean
    full = np.ones((B, T), dtype=np.float32)
    lu, g_l, _ = c_policy("luspo", logp, old, tok_adv, full, clip_low=0.2, clip_high=0.28)
    gs, g_g, _ = c_policy("gspo", logp, old, tok_adv, full, "seq-mean-token-mean", clip_low=0.2,
                          clip_high=0.28)
    check("policy_luspo_equal_lengths_is_T_gspo", [([lu], [T * gs], 0), (g_l, T * g_g, 1)], tol=1e-6)

    # finite differences of the C losses (float64 steps on float32 inputs, central).
    # cispo and vespo stop the gradient through their weights: move logp and old_logp
    # together, which leaves the ratio (so the weight) fixed and moves only the log pi term.
    # luspo (like gspo) takes d s_b/d logp_t = s_b, the derivative of its value only for
    # one advantage per row, so its check uses tok_adv.
    def fd_check(name, move_old, adv=padv, **kw):
        _, g, _ = c_policy(name, logp, old, adv, mask, **kw)
        worst, eps = 0.0, 1e-2
        for i in np.flatnonzero(mask.ravel())[::7]:
            lp_p, lp_m, od_p, od_m = logp.copy(), logp.copy(), old.copy(), old.copy()
            lp_p.flat[i] += eps
            lp_m.flat[i] -= eps
            if move_old:
                od_p.flat[i] += eps
                od_m.flat[i] -= eps
            fd = (c_policy(name, lp_p, od_p, adv, mask, **kw)[0] -
                  c_policy(name, lp_m, od_m, adv, mask, **kw)[0]) / (
                      float(lp_p.flat[i]) - float(lp_m.flat[i]))
            worst = max(worst, abs(fd - g.flat[i]) / max(np.abs(g).max(), 1e-12))
        emit(worst < 3e-3, f"policy_{name}_finite_difference", f"max err {worst:.1e}")

    fd_check("sapo", False)
    fd_check("luspo", False, tok_adv, clip_low=0.2, clip_high=0.28)
    fd_check("cispo", True, clip_high=1.1)
    fd_check("vespo", True)
    rc, msg = c_policy("sapo", logp, old, padv, mask, expect_error=True, sapo_temperature_neg=0.0)
    emit(rc == -1 and "temperatures must be > 0" in msg, "policy_sapo_bad_tau_refused", msg)
    rc, msg = c_policy("cispo", logp, old, padv, mask, expect_error=True, clip_high=0.0)
    emit(rc == -1 and "eps_max" in msg, "policy_cispo_bad_cap_refused", msg)

if os.environ.get("RLHF_SANITIZE") == "1":
    print("SKIP policy_trl_variants: librlhf.so is an ASan build (test_rl checks them there)")
else:
    trl_variants()

# -------------------------------------------------------------------- KL --
ref_lp = f32(old + rng.normal(size=(B, T)) * 0.4)
far = f32(old + rng.normal(size=(B, T)) * 6.0)     # reaches k3's clamps
for kind in ("k1", "k2", "k3", "abs", "low_var_kl", "kl", "mse"):
    for tag, rl in (("near", ref_lp), ("far", far)):
        o = run("kl", {"kind": kind}, {"logp": logp, "ref": rl})
        k, d = ref.kl_token(kind, LP, ref.t64(rl))
        check(f"kl_{kind}_{tag}", [(o["kl"], k, 0), (o["dkl"], d, 1)])
for kind in ("k1", "k3"):
    o = run("kl_reward", {"kind": kind, "coef": 0.05},
            {"logp": logp, "ref": ref_lp, "mask": mask, "rewards": orew})
    rw, mk = ref.kl_in_reward(kind, LP, ref.t64(ref_lp), M, OR, 0.05)
    check(f"kl_in_reward_{kind}", [(o["rewards"], rw, 0), (o["mean_kl"], [mk], 0)])
for kind in ("k1", "k2", "k3"):
    for mode in MODES:
        o = run("kl_loss", {"kind": kind, "agg": mode, "coef": 0.04},
                {"logp": logp, "ref": ref_lp, "mask": mask})
        loss, g, mk = ref.kl_loss(kind, LP, ref.t64(ref_lp), M, 0.04, mode)
        check(f"kl_loss_{kind}_{mode}", [(o["loss"], [loss], 0), (o["dlogp"], g, 1),
                                         (o["mean_kl"], [mk], 0)])
cur = f32([3.0, 12.0, 6.5, 0.1, 7.0])
steps = f32([64, 64, 128, 32, 256])
o = run("klctl", {"init": 0.2, "target": 6.0, "horizon": 10000, "adaptive": 1},
        {"current": cur, "n_steps": steps})
vals_ref, v = [], 0.2
for c, s in zip(cur, steps):
    v = ref.adaptive_kl(v, 6.0, 10000, float(c), float(s))
    vals_ref.append(v)
check("kl_adaptive_controller", [(o["values"], vals_ref, 0)], tol=1e-6)
o = run("klctl", {"init": 0.05, "adaptive": 0}, {"current": cur, "n_steps": steps})
check("kl_fixed_controller", [(o["values"], [0.05] * 5, 0)], tol=1e-7)

# ------------------------------------------------------------ value loss --
v_old = f32(vals)
v_new = f32(vals + rng.normal(size=(B, T)) * 0.3)
rets = f32(vals + rng.normal(size=(B, T)))
for clip in (0.2, 0.0):
    for mode in MODES:
        o = run("value", {"cliprange": clip, "agg": mode},
                {"v": v_new, "v_old": v_old, "returns": rets, "mask": mask})
        loss, g, cf = ref.value_loss(ref.t64(v_new), ref.t64(v_old), ref.t64(rets), M, clip, mode)
        check(f"value_clip{clip}_{mode}", [(o["loss"], [loss], 0), (o["dv"], g, 1),
                                          (o["clip_frac"], [cf], 0)])

# ----------------------------------------------------------- aggregation --
x = f32(rng.normal(size=(B, T)))
for mode in MODES + ["bnpo", "grpo", "dr_grpo"]:
    for norm_len in (0, 32):
        xx = ref.t64(x).requires_grad_(True)
        lr = ref.agg(xx, M, mode, norm_len)
        lr.backward()
        o = run("agg", {"agg": mode, "norm_len": norm_len}, {"x": x, "mask": mask})
        check(f"agg_{mode}_L{norm_len}", [(o["loss"], [float(lr)], 0), (o["dx"], xx.grad, 1)])
zero = np.zeros_like(mask)
o = run("agg", {"agg": "seq-mean-token-mean"}, {"x": x, "mask": zero})
emit(float(o["loss"][0]) == 0 and not np.any(o["dx"]), "agg_all_masked_is_zero", "no NaN")

# ----------------------------------------------------------------- stats --
o = run("stats", {}, {"x": x, "mask": mask, "values": v_new, "returns": rets})
X = ref.t64(x)
check("stats_masked_mean_var", [(o["mean"], [float(ref.masked_mean(X, M))], 0),
                                (o["var_biased"], [float(ref.masked_var(X, M, False))], 0),
                                (o["var_unbiased"], [float(ref.masked_var(X, M, True))], 0)])
check("stats_masked_whiten", [(o["whiten"], ref.masked_whiten(X, M), 0),
                              (o["whiten_noshift"], ref.masked_whiten(X, M, False), 0)])
check("stats_explained_variance",
      [(o["ev"], [ref.explained_variance(ref.t64(v_new), ref.t64(rets), M)], 0)])

# --------------------------------------------------------------- filters --
fs = f32(rng.normal(size=B))
fs[4:8] = 0.5                      # a group of ties
fs[9] = fs[10] = fs[8:12].max()    # tied best
for kind in ("none", "best", "best_worst", "reweight"):
    for power in ((1.0, 2.0) if kind == "reweight" else (2.0,)):
        o = run("filter", {"kind": kind, "group_size": 4, "power": power}, {"scores": fs})
        check(f"filter_{kind}_p{power:g}", [(o["weights"], ref.filter_weights(kind, fs, 4, power), 0)],
              tol=1e-6)
ok, picks = True, set()
for seed in range(1, 40):
    w = run("filter", {"kind": "best_random", "group_size": 4, "seed": seed}, {"scores": fs})["weights"]
    best = ref.filter_weights("best", fs, 4)
    for g in range(3):
        wg, bg = w[4 * g:4 * g + 4], best[4 * g:4 * g + 4]
        ok &= bool(np.all(wg[bg == 1] == 1) and wg.sum() == 2 and set(wg) <= {0.0, 1.0})
    picks.add(tuple(np.nonzero(w[:4])[0]))
emit(ok and len(picks) == 3, "filter_best_random_structure",
     f"best kept + one other per group; {len(picks)} distinct picks in group 0")
rc, msg = run("filter", {"kind": "best", "group_size": 5}, {"scores": fs}, True)
emit(rc == 3 and "groups of 5" in msg, "filter_bad_group_refused", msg.strip())

# --------------------------------------------------------------- shaping --
r0 = f32(rng.normal(size=B))
refs = f32(rng.normal(size=(B, 10)))
for k in (1.0, 2.5):
    o = run("par", {"k": k}, {"r": r0, "refs": refs})
    check(f"par_M10_k{k:g}", [(o["out"], ref.par(r0, refs, k), 0)])
o = run("par", {"k": 1.0}, {"r": r0, "refs": refs[:, :1]})
check("par_M1", [(o["out"], ref.par(r0, refs[:, :1]), 0)])
ens = f32(rng.normal(size=(B, 5)))
for kind in ("mean", "wco", "uwo"):
    o = run("ensemble", {"kind": kind, "lambda": 0.5}, {"scores": ens})
    check(f"ensemble_{kind}", [(o["out"], ref.ensemble(kind, ens, 0.5), 0)])
lens = np.array([10, 79, 80, 81, 90, 99, 100, 101, 500], dtype=np.int32)
o = run("length", {"alpha": 0.01, "max_len": 100, "cache_len": 20}, {"lengths": lens})
check("length_penalties", [(o["linear"], -0.01 * lens.astype(np.float64), 0),
                           (o["overlong"], ref.overlong(lens, 100, 20), 0)])

print(f"rl_loss_test: {failures} failure(s)")
sys.exit(1 if failures else 0)
