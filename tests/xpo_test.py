"""XPO (`rlhf xpo`, algo/xpo.c, train/online_xpo.c); prints PASS/FAIL/SKIP lines.

  * the math against an independent float64 PyTorch implementation
    (tests/xpo_ref.py) on random arrays, through librlhf.so: the loss, its DPO
    and exploration parts and d(loss)/d(log pi) of both samples (torch
    autograd), sigmoid and ipo, alpha 0 and > 0, either winner (test_xpo checks
    the gradient by finite differences);
  * behaviour on the arith task with a tiny model (one-token answers):
    - the reference's samples are the reference's: its forward gives back their
      sampling log-probs (ref/logp_diff_max), at the first iteration (policy =
      reference) the policy's log-probs of both samples equal the reference's,
      and with another --ref_model (a trained one that answers digits) the
      reference's samples are digits far more often than the policy's own;
    - the pairs and the loss are the formula's: y is chosen iff r(y) >= r(y~),
      and loss/dpo, loss/xpo recompute from pairs.jsonl;
    - the exploration term: alpha = 0 and alpha > 0 with the same seed see the
      same pairs, the same loss/dpo, and loss/xpo = alpha * the mean log pi(y~);
      after one step alpha > 0 leaves the policy less likely to say what the
      reference says (the next iteration's reference samples, the same in both
      runs) than alpha = 0 does;
    - a short run learns: the arith reward (shaped) rises;
    - --resume continues bit for bit; bad flags name the flag.
"""
import ctypes
import os
import shutil
import struct
import sys
import tempfile
import time
import json

import numpy as np

import harness
from harness import BUILD, ROOT, report, rows

try:
    import xpo_ref
except ImportError as e:  # torch missing
    xpo_ref = None
    why = str(e)

D = ctypes.POINTER(ctypes.c_double)


class Stats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_double) for n in (
        "loss", "loss_dpo", "loss_xpo", "rewards_chosen", "rewards_rejected", "margins",
        "accuracies", "logps_chosen", "logps_rejected", "policy_chosen", "logps_ref_samples")]


def lib():
    so = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    so.xpo_loss.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_double, ctypes.c_double, D, D, D,
                            D, ctypes.POINTER(ctypes.c_uint8), D, D, ctypes.POINTER(Stats)]
    so.xpo_loss.restype = ctypes.c_double
    return so


def ptr(a):
    return a.ctypes.data_as(D)


def math_against_torch(so):
    rng = np.random.default_rng(11)
    worst, cases = 0.0, 0
    for N in (1, 5, 32):
        for loss_type in ("sigmoid", "ipo"):
            for beta in (0.1, 1.0):
                for alpha in (0.0, 1e-5, 0.5):
                    ry, rt = -8 + 3 * rng.normal(size=N), -8 + 3 * rng.normal(size=N)
                    py, pt = ry + rng.normal(size=N), rt + rng.normal(size=N)
                    yc = (rng.random(N) < 0.5).astype(np.uint8)
                    dy, dt, st = np.zeros(N), np.zeros(N), Stats()
                    loss = so.xpo_loss(N, 1 if loss_type == "ipo" else 0, beta, alpha, ptr(py),
                                       ptr(ry), ptr(pt), ptr(rt),
                                       yc.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                       ptr(dy), ptr(dt), ctypes.byref(st))
                    l, ld, lx, gy, gt = xpo_ref.xpo(py, ry, pt, rt, yc, beta, alpha, loss_type)
                    rel = max(abs(loss - l), abs(st.loss_dpo - ld), abs(st.loss_xpo - lx)) / max(1, abs(l))
                    worst = max(worst, rel, float(np.max(np.abs(dy - gy))), float(np.max(np.abs(dt - gt))))
                    cases += 1
    report(worst < 1e-10, "xpo_matches_torch", f"largest difference {worst:.3g} over {cases} cases")
    print(f"  {cases} random cases, largest difference from torch {worst:.2e}")


# ------------------------------------------------------------- behaviour --

def weights(out, ck="final"):
    data = open(os.path.join(out, "checkpoints", ck, "model.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    vals = b""
    for name in sorted(k for k in header if k != "__metadata__"):
        a, b = header[name]["data_offsets"]
        vals += data[8 + n + a:8 + n + b]
    return vals


def xpo(tmp, c, name, steps, *extra, check=True, model=None):
    out = os.path.join(tmp, name)
    t0 = time.time()
    p = harness.run("xpo", "--model", model or c.sft, "--data", c.prompts, "--output_dir", out,
                    "--max_steps", str(steps), "--batch_size", "32", "--max_new_tokens", "3",
                    "--learning_rate", "1e-3", "--lr_scheduler_type", "constant",
                    "--task", "arith:shaped", "--log_pairs", "1000", "--quiet", *extra,
                    check=check, threads=1)
    if not check:
        return p
    return (out, rows(os.path.join(out, "metrics.jsonl")), rows(os.path.join(out, "pairs.jsonl")),
            time.time() - t0)


class Ctx:
    pass


def by_step(pairs):
    d = {}
    for p in pairs:
        d.setdefault(p["step"], []).append(p)
    return d


def close(a, b, rel=1e-5, abs_=1e-6):
    return abs(a - b) <= abs_ + rel * max(abs(a), abs(b))


def digit_share(texts):
    return sum(1 for t in texts if t[:1].isdigit()) / max(1, len(texts))


def behaviour(tmp):
    """arith (one digit, +), a tiny model after 60 SFT steps (answers digits, ~1/3 shaped reward)"""
    t_all = time.time()
    c = Ctx()
    data = os.path.join(tmp, "arith")
    harness.run("data", "--task", "arith", "--out", data, "--digits", "1", "--ops", "+", "--noise",
                "0", "--n_train", "400", "--n_prompts", "64", "--n_eval", "10", "--n_pref", "10",
                threads=1)
    c.prompts = os.path.join(data, "prompts.jsonl")
    sft = os.path.join(tmp, "sft")
    harness.run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir",
                sft, "--max_steps", "60", "--batch_size", "32", "--learning_rate", "3e-3",
                "--save_steps", "0", "--quiet", threads=1)
    c.sft = os.path.join(sft, "checkpoints", "final")
    print(f"  data and the SFT start: {time.time() - t_all:.1f} s")
    return c


def learn(tmp, c):
    # a run that learns (and the source of a trained reference below)
    K = 40
    out, m, pairs, secs = xpo(tmp, c, "learn", K, "--alpha", "1e-3", "--save_steps", "1000")
    r = [x["reward"] for x in m]
    margin = [x["objective/scores_margin"] for x in m]
    start, end = sum(r[:10]) / 10, sum(r[-10:]) / 10
    m0, m1 = sum(margin[:10]) / 10, sum(margin[-10:]) / 10
    rises = end > start + 0.02 and m1 > m0
    if os.environ.get("RLHF_SANITIZE") == "1" and not rises:  # its GEMM path changes the numbers
        print(f"SKIP xpo_learns_arith_shaped: an ASan build (reward {start:.3f} -> {end:.3f}, "
              f"reported only)")
    else:
        report(len(m) == K and rises, "xpo_learns_arith_shaped",
               f"reward {start:.3f} -> {end:.3f}, policy - reference margin {m0:.3f} -> {m1:.3f}")
    print(f"  reward {start:.3f} (first 10 iterations) -> {end:.3f} (last 10); policy - reference "
          f"score margin {m0:.3f} -> {m1:.3f}; {K} iterations of 32 pairs, {secs:.1f} s")
    diff = max(x["ref/logp_diff_max"] for x in m)
    steps = by_step(pairs)
    p1 = steps.get(1, [])
    same_at_start = bool(p1) and all(
        p["logps_policy"] == p["ref_logps_policy"] and p["logps_reference"] == p["ref_logps_reference"]
        for p in p1)
    later = steps.get(K, [])
    moved = any(abs(p["logps_reference"] - p["ref_logps_reference"]) > 1e-3 for p in later)
    report(diff < 1e-4 and same_at_start and moved, "xpo_reference_samples_under_the_reference",
           f"ref/logp_diff_max {diff}, policy = reference at step 1: {same_at_start}, "
           f"differ at the last step: {moved}")
    print(f"  reference forward vs sampling log-probs of its samples: largest difference {diff:.2e}")

    # the pairs and the loss, recomputed from pairs.jsonl (every step)
    worst, chosen_ok, n_pairs = 0.0, True, 0
    for step, ps in steps.items():
        row = m[step - 1]
        yc = [p["policy_chosen"] for p in ps]
        chosen_ok &= all(p["policy_chosen"] == (p["reward_policy"] >= p["reward_reference"]) for p in ps)
        arr = lambda k: np.array([p[k] for p in ps], dtype=np.float64)
        if xpo_ref is not None:
            l, ld, lx, _, _ = xpo_ref.xpo(arr("logps_policy"), arr("ref_logps_policy"),
                                          arr("logps_reference"), arr("ref_logps_reference"), yc,
                                          0.1, 1e-3, "sigmoid")
        else:  # the sigmoid loss written out
            h = np.where(yc, 1, -1) * ((arr("logps_policy") - arr("ref_logps_policy")) -
                                       (arr("logps_reference") - arr("ref_logps_reference")))
            ld, lx = float(np.mean(np.logaddexp(0, -0.1 * h))), float(1e-3 * np.mean(arr("logps_reference")))
        worst = max(worst, abs(row["loss/dpo"] - ld), abs(row["loss/xpo"] - lx))
        n_pairs += len(ps)
    report(chosen_ok and worst < 1e-6 and n_pairs == K * 32, "xpo_loss_is_the_formula",
           f"chosen iff r(y) >= r(y~): {chosen_ok}; largest loss difference {worst}; {n_pairs} pairs")
    pc = [x["policy_chosen"] for x in m]
    print(f"  share of pairs the policy's sample wins: {sum(pc[:5]) / 5:.2f} (first 5) -> "
          f"{sum(pc[-5:]) / 5:.2f} (last 5)")

    # another reference: the policy a fresh tiny model, the reference the SFT one (answers digits)
    _, m2, pairs2, _ = xpo(tmp, c, "other_ref", 2, "--ref_model", c.sft, "--alpha", "0",
                           model="tiny")
    refs = [p["reference"] for p in pairs2]
    pols = [p["policy"] for p in pairs2]
    d2 = max(x["ref/logp_diff_max"] for x in m2)
    report(digit_share(refs) > digit_share(pols) + 0.3 and d2 < 1e-4,
           "xpo_reference_samples_come_from_ref_model",
           f"digits: reference {digit_share(refs):.2f} policy {digit_share(pols):.2f}; diff {d2}")
    print(f"  --ref_model the SFT model, policy a fresh tiny one: reference samples digits {digit_share(refs):.2f}, "
          f"the tiny policy's {digit_share(pols):.2f}")

    # the exploration term: alpha 0 vs 0.5, same seed
    A = 0.5
    _, m0, q0, _ = xpo(tmp, c, "alpha0", 2, "--alpha", "0")
    _, ma, qa, _ = xpo(tmp, c, "alphaA", 2, "--alpha", str(A))
    s0, sa = by_step(q0), by_step(qa)
    same_pairs = [(p["policy"], p["reference"], p["logps_reference"]) for p in s0[1]] == \
                 [(p["policy"], p["reference"], p["logps_reference"]) for p in sa[1]]
    same_refs_2 = [p["reference"] for p in s0[2]] == [p["reference"] for p in sa[2]]
    mean_t = float(np.mean([p["logps_reference"] for p in sa[1]]))
    exact = (m0[0]["loss/dpo"] == ma[0]["loss/dpo"] and m0[0]["loss/xpo"] == 0
             and close(ma[0]["loss/xpo"], A * mean_t, 1e-6, 1e-9)
             and close(ma[0]["loss"] - m0[0]["loss"], A * mean_t, 1e-5, 1e-6))
    report(same_pairs and exact, "xpo_alpha_adds_alpha_logp_ref",
           f"same pairs {same_pairs}; loss/dpo {m0[0]['loss/dpo']} vs {ma[0]['loss/dpo']}; "
           f"loss/xpo {ma[0]['loss/xpo']} vs alpha*mean {A * mean_t}")
    l0, la = m0[1]["logps/ref_samples"], ma[1]["logps/ref_samples"]
    lowers = la < l0 - 0.05
    if os.environ.get("RLHF_SANITIZE") == "1" and same_refs_2 and not lowers:
        # one AdamW step's effect on other samples of the reference: the ASan build's GEMM
        # path (BLAS=0) changes the numbers enough to flip it; the normal build requires it
        print(f"SKIP xpo_alpha_lowers_logp_of_ref_samples: sanitizer build, alpha 0 {l0:.4f}, "
              f"alpha {A} {la:.4f} (reported, not required)")
    else:
        report(same_refs_2 and lowers, "xpo_alpha_lowers_logp_of_ref_samples",
               f"same reference samples at step 2: {same_refs_2}; mean log pi(y~) alpha 0: "
               f"{l0:.4f}, alpha {A}: {la:.4f}")
    print(f"  after one step, mean log pi(y~) of the next reference samples: alpha 0 {l0:.4f}, "
          f"alpha {A} {la:.4f} (the reference's {ma[1]['ref/logps']:.4f})")

    # --resume from step 2 of 4 continues bit for bit (the method keeps no state)
    full, mf, _, _ = xpo(tmp, c, "full", 4, "--alpha", "0.1", "--save_steps", "2")
    again = os.path.join(tmp, "resumed")
    shutil.copytree(full, again)
    shutil.rmtree(os.path.join(again, "checkpoints", "final"))
    shutil.rmtree(os.path.join(again, "checkpoints", "step-00000004"), ignore_errors=True)
    harness.run("xpo", "--model", c.sft, "--data", c.prompts, "--output_dir", again,
                "--max_steps", "4", "--batch_size", "32", "--max_new_tokens", "3",
                "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--task",
                "arith:shaped", "--log_pairs", "1000", "--quiet", "--alpha", "0.1",
                "--save_steps", "2", "--resume", threads=1)
    mr = rows(os.path.join(again, "metrics.jsonl"))
    key = lambda x: (x["step"], x["loss"], x["reward"], x["loss/xpo"])
    same_w = weights(full) == weights(again)
    report(same_w and [key(x) for x in mf[2:]] == [key(x) for x in mr if x["step"] > 2],
           "xpo_resume_bit_for_bit", f"weights equal {same_w}; {[key(x) for x in mf]} vs "
           f"{[key(x) for x in mr]}")


def bad_flags(tmp, c):
    cases = [(("--loss_type", "hinge"), "--loss_type"), (("--alpha", "-1"), "alpha"),
             (("--beta", "0"), "beta"), (("--par_samples", "2"), "--par_samples"),
             (("--reset_prob", "0.5"), "--reset_prob")]
    bad = []
    for args, want in cases:
        p = xpo(tmp, c, "bad", 1, *args, check=False)
        if p.returncode == 0 or want not in p.stderr:
            bad.append(f"{args}: exit {p.returncode}: {p.stderr[-300:]}")
    report(not bad, "xpo_bad_flags_named", "; ".join(bad))


def main():
    if os.environ.get("RLHF_SANITIZE") == "1":  # an ASan librlhf.so cannot load into python
        print("SKIP xpo_matches_torch: librlhf.so is an ASan build (test_xpo checks the math there)")
    elif xpo_ref is None:
        print(f"SKIP xpo_matches_torch: {why}")
    else:
        math_against_torch(lib())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        c = behaviour(tmp)
        learn(tmp, c)
        bad_flags(tmp, c)
        print(f"  xpo_test: {time.time() - t0:.1f} s")
    return harness.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
