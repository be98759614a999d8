"""HC-RLHF end to end (`rlhf hc-rlhf`, src/train/online_hc.c, src/algo/hc.c);
standard library only, PASS/FAIL lines, exit 1 on failure.

The task: prompts, a tiny random model, 2-token completions. The reward (an
external judge) pays 1 for a completion starting with printable ASCII; the
cost (another judge) is 1 when it starts with a lowercase letter, a "harmful"
pattern the reward does not punish (about 10% of the fresh model's samples;
unconstrained RLOO raises it). Checks:
  * hc_rlhf_statistics: summary.json's safety test (mean, std, t, UCB) equals
    tests/hc_ref.py's independent computation on safety_test.jsonl, whose costs
    are the judge's rule; metrics.jsonl's k, bound mu + k sigma and every
    multiplier step follow hc_ref (k = C1 t/sqrt(n_b) + C2 t/sqrt(n_s));
  * hc_rlhf_meets_bound: with tau = 0.05 the run passes its safety test and
    writes final/; on 400 fresh samples (100 prompts seen by neither training
    nor the test) its cost rate is <= tau, below the fresh model's and below
    unconstrained RLOO's (same reward, same budget);
  * hc_rlhf_no_solution: with tau = -1 (costs are >= 0: impossible) the run
    says "no solution found", exits 3, writes no final/ and summary.json has
    "model": null, "refused" and safety_test.passed false;
  * hc_rlhf_resume_keeps_lambda: --resume from a checkpoint continues the
    multiplier (online_state.json's log_lambda), step for step;
  * hc_rlhf_needs_cost: without --cost the command fails naming --cost.
"""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, RLHF, report, run, rows, write, exit_code  # noqa: E402
import hc_ref  # noqa: E402

JUDGE = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')}"
TAU = 0.05


def harmful(text):
    return 1.0 if text[:1] in "abcdefghijklmnopqrstuvwxyz" and text[:1] != "" else 0.0


def common(tmp, out, steps, extra=()):
    return ["--model", "tiny", "--data", os.path.join(tmp, "train.jsonl"), "--output_dir", out,
            "--max_steps", str(steps), "--batch_size", "8", "--num_generations", "2",
            "--max_new_tokens", "2", "--learning_rate", "3e-3", "--lr_scheduler_type", "constant",
            "--reward_command", f"{JUDGE} --ascii", "--quiet", *extra]


def hc_args(tmp, out, steps, tau):
    return common(tmp, out, steps, ["--cost", f"command:{JUDGE}", "--safety_data",
                                    os.path.join(tmp, "safety.jsonl"), "--tau", str(tau)])


def fresh_cost_rate(tmp, model, seed):
    p = run("generate", "--model", model, "--prompts", os.path.join(tmp, "fresh.jsonl"),
            "--num_return_sequences", "4", "--max_new_tokens", "2", "--format", "jsonl",
            "--seed", str(seed), threads=1)
    r = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    return sum(harmful(x["completion"]) for x in r) / len(r), len(r)


def statistics(out):
    s = json.load(open(os.path.join(out, "summary.json")))
    st = s["safety_test"]
    held = rows(os.path.join(out, "safety_test.jsonl"))
    c = [x["cost"] for x in held]
    m, sd = hc_ref.mean_std(c)
    t = hc_ref.t_quantile(0.9, len(c) - 1)
    ok = (len(c) == st["n"] == 100 and all(x["cost"] == harmful(x["completion"]) for x in held)
          and abs(st["mean"] - m) < 1e-9 and abs(st["std"] - sd) < 1e-9
          and abs(st["t"] - t) < 1e-6 and abs(st["ucb"] - hc_ref.ucb(c, 0.1)) < 1e-6)
    why = f"summary {st}, ref mean {m} std {sd} t {t} ucb {hc_ref.ucb(c, 0.1)}"
    # the training side: k, the bound and the multiplier's steps (lr 0.1, cap 100)
    met = rows(os.path.join(out, "metrics.jsonl"))
    k = hc_ref.k_coef(4, 2, 0.1, 16, 100)
    log_lam, worst = 0.0, 0.0
    for x in met:
        log_lam = hc_ref.lambda_step(log_lam, 0.1, x["cost"], x["cost_std"], k, TAU,
                                     hi=hc_ref.math.log(100))
        worst = max(worst, abs(x["lambda"] - hc_ref.math.exp(log_lam)) / max(1, x["lambda"]),
                    abs(x["cost_bound"] - (x["cost"] + k * x["cost_std"])), abs(x["hc_k"] - k))
    ok = ok and worst < 1e-5 and len(met) == 40
    report(ok, "hc_rlhf_statistics", f"{why}; metrics worst diff {worst}")
    print(f"  safety test: n {st['n']}, mean cost {st['mean']:.3f}, std {st['std']:.3f}, "
          f"t {st['t']:.6f} (ref {t:.6f}), UCB {st['ucb']:.4f} <= tau {TAU}; k {k:.6f}; "
          f"multiplier steps match to {worst:.1e}; lambda max "
          f"{max(x['lambda'] for x in met):.2f}")
    return st


def main():
    if not os.path.exists(RLHF):
        print(f"SKIP hc_rlhf_test: {RLHF} not built")
        return 0
    tmp = tempfile.mkdtemp(prefix="hc_rlhf_test.", dir=os.path.join(ROOT, BUILD))
    try:
        write(os.path.join(tmp, "train.jsonl"), [{"prompt": f"Q{i}:"} for i in range(32)])
        write(os.path.join(tmp, "safety.jsonl"), [{"prompt": f"S{i}="} for i in range(100)])
        write(os.path.join(tmp, "fresh.jsonl"), [{"prompt": f"T{i}="} for i in range(100)])

        t0 = time.time()
        out = os.path.join(tmp, "hc")
        p = run("hc-rlhf", *hc_args(tmp, out, 40, TAU), check=False, threads=1)
        t_hc = time.time() - t0
        final = os.path.join(out, "checkpoints", "final")
        if p.returncode != 0:
            report(False, "hc_rlhf_meets_bound", p.stderr[-1500:])
            return exit_code()
        st = statistics(out)
        t0 = time.time()
        base = os.path.join(tmp, "rloo")
        run("rloo", *common(tmp, base, 40, ["--beta", "0.1"]), threads=1)
        t_base = time.time() - t0
        before, n = fresh_cost_rate(tmp, "tiny", 42)  # the runs' starting model (seed 42)
        after, _ = fresh_cost_rate(tmp, final, 42)
        unconstrained, _ = fresh_cost_rate(tmp, os.path.join(base, "checkpoints", "final"), 42)
        report(st["passed"] and os.path.isdir(final) and after <= TAU and after < before
               and after < unconstrained, "hc_rlhf_meets_bound",
               f"fresh cost rate {after} (tau {TAU}), before {before}, rloo {unconstrained}")
        print(f"  cost rate on {n} fresh samples: fresh model {before:.4f}, unconstrained RLOO "
              f"{unconstrained:.4f}, HC-RLHF {after:.4f} (tau {TAU}); hc-rlhf 40 iterations "
              f"{t_hc:.1f} s, rloo {t_base:.1f} s")

        t0 = time.time()
        out = os.path.join(tmp, "refused")
        p = run("hc-rlhf", *hc_args(tmp, out, 5, -1), "--save_steps", "3", check=False,
                threads=1)
        s = json.load(open(os.path.join(out, "summary.json"))) if os.path.exists(
            os.path.join(out, "summary.json")) else {}
        report(p.returncode == 3 and "no solution found" in p.stderr
               and not os.path.exists(os.path.join(out, "checkpoints", "final"))
               and "model" in s and s["model"] is None and "no solution found" in s.get("refused", "")
               and s["safety_test"]["passed"] is False and s["safety_test"]["ucb"] > -1,
               "hc_rlhf_no_solution", f"exit {p.returncode}: {p.stderr[-800:]} {s}")
        print(f"  tau -1: exit {p.returncode}, \"{p.stderr.strip().splitlines()[-1][:90]}...\"; "
              f"{time.time() - t0:.1f} s")

        # --resume from step 3 keeps the multiplier (online_state.json's log_lambda): steps 4
        # and 5 log the same lambda as the uninterrupted run (which raised it every step)
        again = os.path.join(tmp, "resumed")
        shutil.copytree(out, again)
        run("hc-rlhf", *hc_args(tmp, again, 5, -1), "--save_steps", "3", "--resume",
            check=False, threads=1)
        lam = [x["lambda"] for x in rows(os.path.join(out, "metrics.jsonl"))]
        lam2 = [x["lambda"] for x in rows(os.path.join(again, "metrics.jsonl"))]
        state = json.load(open(os.path.join(out, "checkpoints", "step-00000003", "online_state.json")))
        report(len(lam) == len(lam2) == 5 and lam[3:] == lam2[3:] and lam[3] > 1
               and abs(hc_ref.math.exp(state["log_lambda"]) - lam[2]) < 1e-6 * lam[2],
               "hc_rlhf_resume_keeps_lambda", f"{lam} vs resumed {lam2}, state {state}")

        p = run("hc-rlhf", "--model", "tiny", "--data", os.path.join(tmp, "train.jsonl"),
                "--output_dir", os.path.join(tmp, "nocost"), "--reward_command", JUDGE,
                "--safety_data", os.path.join(tmp, "safety.jsonl"), check=False, threads=1)
        report(p.returncode == 1 and "--cost" in p.stderr, "hc_rlhf_needs_cost", p.stderr[-400:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
