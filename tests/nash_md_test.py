"""Nash-MD (`rlhf nash-md`, algo/nash.c, train/mixture_gen.c, train/online_nash.c);
prints PASS/FAIL lines.

  * the math against an independent float64 PyTorch implementation
    (tests/nash_ref.py) on random arrays, through librlhf.so: the preference
    sigmoid(r(y) - r(y')), the loss and d(loss)/d(log pi) (torch autograd, the
    log-ratio detached), and central finite differences of our loss; the
    mixture's logits against log_softmax(c ref + (1 - c) pi) (tests/test_nash.c
    checks the sampler itself: c = 0 and 1 reproduce each model's sampling
    token for token, and every token's log-prob against both models' logits);
  * behaviour on the arith task with a tiny model (shaped reward x 8, one-token
    answers, 30 iterations, mixture_coef c = 0.5, 1, 0 and beta 1): the reward
    rises; P(policy ≻ mixture) starts at 1/2 (policy = reference = mixture) and
    ends higher the more of the reference the mixture holds (c = 0: stays 1/2);
    the mixture's reward stays at the reference's for c = 1, lies between the
    reference's and the policy's for c = 0.5 and follows the policy for c = 0;
    a larger beta keeps the KL to the reference lower;
  * at the first iteration the KL terms are exactly 0 (policy = reference), so
    the loss is -loss/score;
  * --resume continues bit for bit; bad flags are refused naming the flag.
"""
import ctypes
import os
import struct
import json
import sys
import tempfile
import time

import numpy as np

import harness
from harness import BUILD, ROOT, report, rows

try:
    import nash_ref
except ImportError as e:  # torch missing
    nash_ref = None
    why = str(e)

F = ctypes.POINTER(ctypes.c_float)
D = ctypes.POINTER(ctypes.c_double)


def lib():
    so = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    so.nash_preference.argtypes = [ctypes.c_int, F, F, D]
    so.nash_md_loss.argtypes = [ctypes.c_int, ctypes.c_int, F, F, F, F, D, ctypes.c_double,
                                ctypes.c_int, F, ctypes.c_void_p]
    so.nash_md_loss.restype = ctypes.c_double
    so.mixture_logits.argtypes = [ctypes.c_int, ctypes.c_float, F, F, F]
    return so


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def fp(a):
    return a.ctypes.data_as(F)


def ours(so, logp, ref, mask, prob, beta, logp_sg=None):
    B, T = logp.shape
    logp, ref, mask = f32(logp), f32(ref), f32(mask)
    sg = logp if logp_sg is None else f32(logp_sg)
    prob = np.ascontiguousarray(prob, dtype=np.float64)
    d = np.zeros((B, T), dtype=np.float32)
    loss = so.nash_md_loss(B, T, fp(logp), fp(sg), fp(ref), fp(mask), prob.ctypes.data_as(D),
                           beta, B, fp(d), None)
    return loss, d


def math_against_torch(so):
    rng = np.random.default_rng(3)
    worst_l = worst_g = worst_p = worst_fd = 0.0
    cases = 0
    for B, T in ((1, 3), (4, 9), (16, 20)):
        for beta in (0.0, 0.1, 1.5):
            logp = f32(-3 + rng.normal(size=(B, T))).astype(np.float64)
            ref = f32(logp + 0.7 * rng.normal(size=(B, T))).astype(np.float64)
            mask = (rng.random((B, T)) > 0.3).astype(np.float64)
            s_pol, s_mix = f32(rng.normal(size=B)), f32(rng.normal(size=B))
            prob = np.zeros(B)
            so.nash_preference(B, fp(s_pol), fp(s_mix), prob.ctypes.data_as(D))
            p_ref = nash_ref.preference(s_pol, s_mix).numpy()
            worst_p = max(worst_p, float(np.max(np.abs(prob - p_ref))))
            loss, d = ours(so, logp, ref, mask, prob, beta)
            l_ref, g_ref, _, _ = nash_ref.nash_md(logp, ref, mask, prob, beta)
            worst_l = max(worst_l, abs(loss - l_ref) / max(1.0, abs(l_ref)))
            worst_g = max(worst_g, float(np.max(np.abs(d - g_ref))))
            # central differences of our loss in logp, the sg() copy held still
            h = 1e-2
            for _ in range(5):
                b, t = rng.integers(B), rng.integers(T)
                up, dn = logp.copy(), logp.copy()
                up[b, t] += h
                dn[b, t] -= h
                fd = (ours(so, up, ref, mask, prob, beta, logp)[0] -
                      ours(so, dn, ref, mask, prob, beta, logp)[0]) / (2 * h)
                worst_fd = max(worst_fd, abs(fd - d[b, t]))
            cases += 1
    ok = worst_l < 1e-6 and worst_g < 1e-6 and worst_p < 1e-12 and worst_fd < 1e-4
    report(ok, "nash_md_loss_matches_torch",
           f"loss {worst_l:.3g}, grad {worst_g:.3g}, preference {worst_p:.3g}, fd {worst_fd:.3g}")
    print(f"  {cases} random cases: largest difference from torch: loss {worst_l:.2e}, "
          f"gradient {worst_g:.2e}, preference {worst_p:.2e}; finite differences {worst_fd:.2e}")
    # the mixture's logits: log_softmax of them is torch's log_softmax(c ref + (1-c) pi)
    worst = 0.0
    for coef in (0.0, 0.3, 0.5, 1.0):
        pol, refl = f32(3 * rng.normal(size=50)), f32(3 * rng.normal(size=50))
        out = np.zeros(50, dtype=np.float32)
        so.mixture_logits(50, coef, fp(pol), fp(refl), fp(out))
        z = out.astype(np.float64) / 0.7
        ours_lp = z - z.max() - np.log(np.exp(z - z.max()).sum())
        want = nash_ref.mixture_logprobs(pol, refl, coef, 0.7).numpy()
        worst = max(worst, float(np.max(np.abs(ours_lp - want))))
        if coef in (0.0, 1.0):
            worst = max(worst, float(np.max(np.abs(out - (pol if coef == 0 else refl)))))
    report(worst < 1e-5, "mixture_logits_match_torch", f"largest difference {worst:.3g}")


def weights(out, ck="final"):
    data = open(os.path.join(out, "checkpoints", ck, "model.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return data[8 + n:], sorted(k for k in header if k != "__metadata__")


def compare(a, c1, c0, b1, mean):
    """The c = 0.5 run against c = 1, c = 0 and beta = 1."""
    # P(policy > mixture): 1/2 at the start (policy = reference = mixture); later it
    # grows with the reference's share c of the mixture (c = 0: the policy itself)
    report(abs(a["p0"] - 0.5) < 0.05 and a["p1"] > 0.55 and
           abs(c0["p1"] - 0.5) < 0.03 and c0["p1"] < a["p1"] < c1["p1"],
           "nash_md_preference_over_mixture_grows_with_c",
           f"P first 5 {a['p0']:.3f}; last 10: c=0 {c0['p1']:.3f}, "
           f"c=0.5 {a['p1']:.3f}, c=1 {c1['p1']:.3f}")
    # the mixture's reward: c = 1 stays at the reference's, c = 0.5 lies between it and the
    # policy's, c = 0 follows the policy
    report(c1["mix_all"] < 0.25 and c1["r1"] > 1.0 and
           c1["mix1"] < a["mix1"] < a["r1"] and abs(c0["mix1"] - mean(
               [x["reward"] for x in c0["m"][-10:]])) < 0.25,
           "nash_md_mixture_between_reference_and_policy",
           f"mixture reward (last 10): c=1 {c1['mix1']:.3f} (whole run {c1['mix_all']:.3f}), "
           f"c=0.5 {a['mix1']:.3f} (policy {a['r1']:.3f}), c=0 {c0['mix1']:.3f}")
    # beta holds the policy near the reference
    report(b1["kl"] < a["kl"] / 5, "nash_md_beta_limits_kl",
           f"kl (last 10) beta 1 {b1['kl']:.3f}, beta 0.1 {a['kl']:.3f}")


def behaviour(tmp):
    data = os.path.join(tmp, "arith")
    harness.run("data", "--task", "arith", "--out", data, "--digits", "1", "--n_pref", "10",
                "--n_train", "10", "--n_eval", "10", "--n_prompts", "64", threads=1)
    prompts = os.path.join(data, "prompts.jsonl")
    # the shaped verifier (0..1) scaled by 8: P = sigmoid(r - r') then spans (0, 1) as a
    # reward model's scores make it (at scale 1 it stays within 0.5 +- 0.23)
    REWARD = "verifier:arith:shaped=8"

    def nash(name, steps, *extra, check=True,
             shape=("--batch_size", "16", "--max_new_tokens", "1", "--reward", REWARD)):
        out = os.path.join(tmp, name)
        t0 = time.time()
        p = harness.run("nash-md", "--model", "tiny", "--data", prompts, "--output_dir", out,
                        "--max_steps", str(steps), "--learning_rate", "3e-3",
                        "--lr_scheduler_type", "constant", *shape, "--quiet", *extra, threads=1,
                        check=check)
        if not check:
            return p, out
        return rows(os.path.join(out, "metrics.jsonl")), time.time() - t0

    mean = lambda xs: sum(xs) / len(xs)
    runs = {}
    # an ASan build runs ~4x slower: the c = 0.5 run only (the comparisons are SKIPped)
    sanitize = bool(os.environ.get("RLHF_SANITIZE"))
    for name, extra in (("c05", ()), ("c1", ("--mixture_coef", "1")),
                        ("c0", ("--mixture_coef", "0")), ("beta1", ("--beta", "1"))):
        if sanitize and name != "c05":
            continue
        m, secs = nash(name, 30, "--num_generations", "2", *extra)
        col = lambda k, a, b: mean([x[k] for x in m[a:b]])
        runs[name] = dict(m=m, secs=secs, r0=col("reward", 0, 5), r1=col("reward", -5, None),
                          p0=col("rewards/probabilities", 0, 5),
                          p1=col("rewards/probabilities", -10, None),
                          mix0=col("mixture/reward", 0, 5), mix1=col("mixture/reward", -10, None),
                          mix_all=col("mixture/reward", 0, None), kl=col("kl", -10, None))
        x = runs[name]
        print(f"  {name}: reward {x['r0']:.3f} (first 5 iterations) -> {x['r1']:.3f} (last 5); "
              f"P(policy > mixture) {x['p0']:.3f} -> {x['p1']:.3f} (last 10); mixture reward "
              f"{x['mix0']:.3f} -> {x['mix1']:.3f}; kl (last 10) {x['kl']:.3f}; {secs:.1f} s")
    a = runs["c05"]
    report(len(a["m"]) == 30 and a["r1"] > a["r0"] + 0.5 and a["r1"] > 3 * a["r0"],
           "nash_md_learns_arith", f"reward {a['r0']:.3f} -> {a['r1']:.3f}")
    if sanitize:
        for name in ("preference_over_mixture_grows_with_c",
                     "mixture_between_reference_and_policy", "beta_limits_kl"):
            print(f"SKIP nash_md_{name}: an ASan build (RLHF_SANITIZE) runs the c = 0.5 run only")
    else:
        compare(a, runs["c1"], runs["c0"], runs["beta1"], mean)
    # the first iteration: policy = reference, so the KL terms vanish exactly
    f = a["m"][0]
    report(f["kl"] == 0 and f["loss/kl_term"] == 0 and abs(f["loss"] + f["loss/score"]) < 1e-12,
           "nash_md_first_step_is_pure_preference",
           f"kl {f['kl']}, kl_term {f['loss/kl_term']}, loss {f['loss']}, score {f['loss/score']}")
    # --resume: 4 iterations in one go == a finished 2-iteration run going on from its
    # final checkpoint to 4 == a 4-iteration run that failed after iteration 3, resumed
    # from its step-2 checkpoint
    common = ["--num_generations", "1", "--save_steps", "2"]
    ra, _ = nash("res_a", 4, *common)
    wa = weights(os.path.join(tmp, "res_a"))
    keys = ("step", "reward", "loss", "grad_norm", "rewards/probabilities", "mixture/reward")
    key_rows = lambda m: [[x.get(k) for k in keys] for x in m]
    nash("res_b", 2, *common)
    pb, b = nash("res_b", 4, *common, "--resume", check=False)
    from_final = "checkpoints/final (step 2)" in pb.stderr
    same_w = pb.returncode == 0 and wa == weights(b)
    same_m = key_rows(ra) == key_rows(rows(os.path.join(b, "metrics.jsonl")))
    report(from_final and same_w and same_m, "nash_md_resume_bit_exact",
           f"exit {pb.returncode} {pb.stderr[-300:]}, from final {from_final}, same weights "
           f"{same_w}, same metrics {same_m}")
    os.environ.update(RLHF_TEST_FAIL_RANK="0", RLHF_TEST_FAIL_STEP="3")
    try:
        pf, c = nash("res_c", 4, *common, check=False)
    finally:
        del os.environ["RLHF_TEST_FAIL_RANK"], os.environ["RLHF_TEST_FAIL_STEP"]
    left = sorted(os.listdir(os.path.join(c, "checkpoints")))
    pc, c = nash("res_c", 4, *common, "--resume", check=False)
    from_step = "checkpoints/step-00000002 (step 2)" in pc.stderr
    same_w = pc.returncode == 0 and wa == weights(c)
    same_m = key_rows(ra) == key_rows(rows(os.path.join(c, "metrics.jsonl")))
    report(pf.returncode != 0 and left == ["step-00000002"] and from_step and same_w and same_m,
           "nash_md_resume_mid_run_bit_exact",
           f"failed run exit {pf.returncode}, left {left}; exit {pc.returncode} "
           f"{pc.stderr[-300:]}, from step-2 {from_step}, same weights {same_w}, same metrics "
           f"{same_m}")
    # a finished run resumed with no more steps to train (a run killed after its final
    # save, say) trains nothing and writes its final checkpoint again byte for byte
    fin = os.path.join(b, "checkpoints", "final")
    files = lambda: {f: open(os.path.join(fin, f), "rb").read() for f in sorted(os.listdir(fin))}
    before, mbefore = files(), open(os.path.join(b, "metrics.jsonl")).read()
    pd, _ = nash("res_b", 4, *common, "--resume", check=False)
    same = pd.returncode == 0 and files() == before
    report(same and "nothing to train" in pd.stderr
           and open(os.path.join(b, "metrics.jsonl")).read() == mbefore,
           "nash_md_resume_finished_is_a_no_op",
           f"exit {pd.returncode} {pd.stderr[-300:]}, files {sorted(before)} unchanged {same}")
    # micro-batches (--micro_batch_size 3 of 16 rows) accumulate the same gradient, and
    # --use_peft (the reference is the frozen base under the adapters) runs; 4-token
    # completions under a dense 0/1 reward (a printable first byte)
    judge = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')} --ascii"
    dense = ["--num_generations", "2", "--batch_size", "8", "--max_new_tokens", "4",
             "--reward_command", judge]
    whole, _ = nash("whole", 3, shape=dense)
    micro, _ = nash("micro", 3, "--micro_batch_size", "3", shape=dense)
    lora, _ = nash("lora", 3, "--use_peft", shape=dense)
    same = all(abs(x["loss"] - y["loss"]) < 1e-6 * max(1, abs(x["loss"])) and
               abs(x["grad_norm"] - y["grad_norm"]) < 1e-4 * x["grad_norm"] and
               x["reward"] == y["reward"] for x, y in zip(whole, micro))
    report(len(micro) == 3 and same and whole[0]["loss"] != 0 and len(lora) == 3 and
           all(np.isfinite(x["loss"]) for x in lora), "nash_md_micro_batches_and_lora",
           f"losses whole {[x['loss'] for x in whole]}, micro {[x['loss'] for x in micro]}, "
           f"lora {[x['loss'] for x in lora]}")
    # bad flags: refused before anything is written, naming the flag
    for name, extra, words in (("coef_high", ["--mixture_coef", "1.5"], ["--mixture_coef"]),
                               ("coef_neg", ["--mixture_coef", "-0.1"], ["--mixture_coef"]),
                               ("coef_word", ["--mixture_coef", "half"], ["--mixture_coef"]),
                               ("beta_neg", ["--beta", "-1"], ["--beta"]),
                               ("par", ["--par_samples", "2"], ["--par_samples"]),
                               ("reset", ["--reset_prob", "0.5"], ["--reset_prob"])):
        pr, out = nash("bad_" + name, 2, *extra, check=False)
        ok = pr.returncode != 0 and all(w in pr.stderr for w in words) and \
            not os.path.exists(os.path.join(out, "checkpoints", "final"))
        report(ok, f"nash_md_refuses_{name}", f"exit {pr.returncode}: {pr.stderr[-300:]}")
    h = harness.run("nash-md", "--help", threads=1)
    report(all(w in h.stdout + h.stderr for w in ("--mixture_coef", "--beta", "Nash-MD")),
           "nash_md_help", (h.stdout + h.stderr)[-300:])


def main():
    if not os.path.exists(harness.RLHF):
        print(f"SKIP nash_md_test: {harness.RLHF} not built")
        return 0
    if os.environ.get("RLHF_SANITIZE"):  # an ASan librlhf.so cannot load into python
        print("SKIP nash_md_loss_matches_torch: librlhf.so is an ASan build (test_nash checks "
              "the math there)")
    elif nash_ref is None:
        print(f"SKIP nash_md_loss_matches_torch: {why}")
    else:
        math_against_torch(lib())
    with tempfile.TemporaryDirectory() as tmp:
        behaviour(tmp)
    return harness.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
