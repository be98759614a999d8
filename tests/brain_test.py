"""BRAIn (`rlhf brain`, algo/brain.c, train/online_brain.c); prints PASS/FAIL lines.

  * the math against an independent float64 PyTorch implementation
    (tests/brain_ref.py) on random arrays, through librlhf.so: the weights
    alpha, alpha' (each prompt's summing to 1), the loss and d(loss)/d(log q)
    (torch autograd), with and without the baseline, for both reward -> log p(G)
    mappings; n = 2 at a vanishing temperature on SFT samples equals DPO's
    sigmoid loss and gradient;
  * behaviour: a tiny model on the arith task (shaped reward, one-token answers)
    raises the reward within 30 iterations; with one update per iteration the
    loss is log n exactly (alpha' is uniform when q = q'); and the self-normalised
    baseline lowers the gradient norm's spread over iterations vs --baseline false;
    at the first iteration (policy = reference) the trainer's weights (ess,
    weight_max) equal those computed here from the logged rewards.
"""
import ctypes
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import harness
from harness import BUILD, ROOT, report, rows

try:
    import brain_ref
except ImportError as e:  # torch missing
    brain_ref = None
    why = str(e)

D = ctypes.POINTER(ctypes.c_double)


def lib():
    so = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    so.brain_log_goodness.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_int,
                                      ctypes.c_double, ctypes.c_int, ctypes.c_int,
                                      ctypes.POINTER(ctypes.c_float), D]
    so.brain_loss.argtypes = [ctypes.c_int, ctypes.c_int, D, D, D, D, ctypes.c_int, D, D, D]
    so.brain_loss.restype = ctypes.c_double
    return so


def ptr(a):
    return a.ctypes.data_as(D)


def ours(so, r, kind, beta, rb, logq, prop, prior, baseline):
    G, n = r.shape
    r32 = np.ascontiguousarray(r, dtype=np.float32)
    logg = np.zeros((G, n))
    so.brain_log_goodness(1 if kind == "exp" else 0, beta, rb is None, 0.0 if rb is None else rb,
                          G, n, r32.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), ptr(logg))
    al, ap, d = np.zeros((G, n)), np.zeros((G, n)), np.zeros((G, n))
    loss = so.brain_loss(G, n, ptr(logq), ptr(prop), ptr(prior), ptr(logg), int(baseline),
                         ptr(al), ptr(ap), ptr(d))
    return loss, logg, al, ap, d


def math_against_torch(so):
    rng = np.random.default_rng(7)
    worst, sums_ok, cases = 0.0, True, 0
    for G, n in ((1, 2), (3, 4), (5, 8)):
        for kind, beta, rb in (("sigmoid", 0.5, None), ("sigmoid", 2.0, 0.3), ("exp", 0.7, None)):
            for baseline in (True, False):
                r = rng.normal(size=(G, n)).astype(np.float32).astype(np.float64)
                prop = -20 + 5 * rng.normal(size=(G, n))
                logq, prior = prop + rng.normal(size=(G, n)), prop + 2 * rng.normal(size=(G, n))
                loss, logg, al, ap, d = ours(so, r, kind, beta, rb, logq, prop, prior, baseline)
                g_ref = brain_ref.log_goodness(r, kind, beta, rb).numpy()
                l_ref, al_ref, ap_ref, d_ref = brain_ref.brain(logq, prop, prior, g_ref, baseline)
                for a, b in ((logg, g_ref), (al, al_ref), (ap, ap_ref), (d, d_ref)):
                    worst = max(worst, float(np.max(np.abs(a - b))))
                worst = max(worst, abs(loss - l_ref) / max(1, abs(l_ref)))
                sums_ok &= bool(np.allclose(al.sum(1), 1, atol=1e-12, rtol=0) and
                                np.allclose(ap.sum(1), 1, atol=1e-12, rtol=0))
                cases += 1
    report(worst < 1e-9, "brain_matches_torch", f"largest difference {worst:.3g} over {cases} cases")
    report(sums_ok, "brain_weights_self_normalised", "alpha or alpha' does not sum to 1")
    print(f"  {cases} random cases, largest difference from torch {worst:.2e}")
    # DPO: n = 2, proposal = reference (SFT samples), beta -> 0 makes alpha the argmax
    worst = 0.0
    for _ in range(20):
        r = rng.normal(size=(1, 2))
        ref = -8 + 2 * rng.normal(size=(1, 2))
        logq = ref + rng.normal(size=(1, 2))
        loss, _, _, _, d = ours(so, r, "sigmoid", 1e-6, None, logq, ref, ref, True)
        w, l = (0, 1) if r[0, 0] > r[0, 1] else (1, 0)
        dl, dw_ref, dlr_ref = brain_ref.dpo(logq[0, w], logq[0, l], ref[0, w], ref[0, l])
        worst = max(worst, abs(loss - dl), abs(d[0, w] - dw_ref), abs(d[0, l] - dlr_ref))
    report(worst < 1e-9, "brain_n2_argmax_is_dpo", f"largest difference {worst:.3g}")


def behaviour(tmp):
    data = os.path.join(tmp, "arith")
    harness.run("data", "--task", "arith", "--out", data, "--digits", "1", "--n_pref", "10",
                "--n_train", "10", "--n_eval", "10", "--n_prompts", "64", threads=1)

    def brain(name, steps, *extra, reward=("--task", "arith:shaped")):
        out = os.path.join(tmp, name)
        t0 = time.time()
        harness.run("brain", "--model", "tiny", "--data", os.path.join(data, "prompts.jsonl"),
                    "--output_dir", out, "--max_steps", str(steps), "--batch_size", "8",
                    "--num_generations", "4", "--max_new_tokens", "1", "--learning_rate", "3e-3",
                    "--lr_scheduler_type", "constant", *reward, "--quiet", *extra,
                    threads=1)
        return rows(os.path.join(out, "metrics.jsonl")), time.time() - t0

    m, secs = brain("learn", 30, "--beta", "0.01")
    r = [x["reward"] for x in m]
    start, end = sum(r[:5]) / 5, sum(r[-5:]) / 5
    report(len(m) == 30 and end > start + 0.1 and end > 3 * start, "brain_learns_arith_shaped",
           f"reward {start:.3f} -> {end:.3f}")
    print(f"  reward {start:.3f} (first 5 iterations) -> {end:.3f} (last 5), {secs:.1f} s")
    bad = [x["loss"] for x in m if abs(x["loss"] - np.log(4)) > 1e-9]
    report(not bad, "brain_loss_is_log_n_on_policy", f"losses {bad[:3]} != log 4")
    # one iteration with a dense 0/1 reward (a printable-ASCII first byte, ~37%): the policy is
    # the reference (p_SFT = q'), so alpha = softmax(log p(G)) of the logged rewards, grouped by
    # prompt (samples.jsonl lists sample j of every prompt, then sample j + 1)
    judge = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')} --ascii"
    m1, _ = brain("dense", 1, "--beta", "0.5", "--log_samples", "32",
                  reward=("--reward_command", judge))
    s1 = rows(os.path.join(tmp, "dense", "samples.jsonl"))
    r1 = np.array([x["reward"] for x in s1], dtype=np.float32).astype(np.float64)

    def weights(groups):
        lg = -np.logaddexp(0, -(groups - groups.mean(1, keepdims=True)) / np.float64(0.5))
        a = np.exp(lg - lg.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
        return (1 / (a ** 2).sum(1)).mean(), a.max(1).mean()

    want, other = weights(r1.reshape(4, 8).T), weights(r1.reshape(8, 4))
    got = (m1[0]["ess"], m1[0]["weight_max"])
    report(len(s1) == 32 and np.allclose(got, want, rtol=1e-9, atol=0)
           and not np.allclose(got, other, rtol=1e-6), "brain_weights_from_rewards",
           f"ess, weight_max {got} != {want} from samples.jsonl (other grouping {other})")
    ess = [x["ess"] for x in m]
    report(all(1 - 1e-9 <= e <= 4 + 1e-9 for e in ess), "brain_ess_in_range", str(ess[:5]))
    spread = {}
    for b in ("true", "false"):
        mb, secs = brain(f"baseline_{b}", 20, "--beta", "0.1", "--baseline", b)
        g = [x["grad_norm"] for x in mb]
        spread[b] = (statistics.mean(g), statistics.stdev(g), secs)
    (mt, st, s1), (mf, sf, s2) = spread["true"], spread["false"]
    report(st < sf, "brain_baseline_lowers_gradient_spread",
           f"grad-norm std {st:.3f} with the baseline, {sf:.3f} without")
    print(f"  grad norm over 20 iterations: with the baseline mean {mt:.3f} std {st:.3f}; "
          f"without mean {mf:.3f} std {sf:.3f} ({s1:.1f} + {s2:.1f} s)")


def main():
    if os.environ.get("RLHF_SANITIZE") == "1":  # an ASan librlhf.so cannot load into python
        print("SKIP brain_matches_torch: librlhf.so is an ASan build (test_brain checks the math there)")
    elif brain_ref is None:
        print(f"SKIP brain_matches_torch: {why}")
    else:
        math_against_torch(lib())
    with tempfile.TemporaryDirectory() as tmp:
        behaviour(tmp)
    return harness.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
