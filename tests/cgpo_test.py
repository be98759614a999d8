"""CGPO (`rlhf cgpo`, docs/cgpo.md): prints PASS/FAIL lines, exit 1 on failure.

  * algo/cgpo against tests/cgpo_ref.py (numpy) on 20 random cases dumped by
    build/tests/test_cgpo --dump: CRPG weights, loss and gradient (with and
    without the leave-one-out baseline), CODPO's pairs, loss, gradients and
    accuracy, CRRAFT's weights, loss and gradient; CODPO's gradient also
    against torch autograd;
  * a reward that pays for a forbidden answer (reward hacking): tiny prompts,
    2-token completions; the reward is 1 for a lowercase first letter and 2 for
    x, y or z; the judge `not_regex:^[xyz]` forbids those. GRPO (same reward,
    its defaults) learns the forbidden letters (violation rate near 1); CGPO
    with each optimiser (crpg, codpo, crraft; crpg also with the greedy sample
    as the calibration's reference) keeps it near 0 at equal accuracy
    (share of lowercase first letters) in the same 30 iterations. The rates are
    counted here from samples.jsonl (every sample logged) and must equal the
    trainer's constraints/violation metric;
  * --kl_threshold 2 leaves prompts out once their samples drift past 2 nats
    from the reference, and the KL stays below the unbounded run's;
  * --tasks (several tasks): prompts go to the task whose prompt_regex matches;
    each task's judges and its own reward act on its samples only (the per-task
    metrics equal a recount); a bad task is named;
  * a malformed --judges names the bad item and exits 1.
"""
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cgpo_ref as ref  # noqa: E402
from harness import BUILD, ROOT, exit_code, report, rows, run  # noqa: E402

TEST_BIN = os.path.join(ROOT, BUILD, "tests", "test_cgpo")

JUDGE = r'''import json, sys
for line in sys.stdin:
    c = json.loads(line)["completion"]
    r = 1.0 if c[:1].islower() and c[:1].isascii() else 0.0
    print(r + (1.0 if c[:1] in ("x", "y", "z") else 0.0), flush=True)
'''


def close(a, b, tol=2e-5):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and np.allclose(a, b, atol=tol, rtol=tol)


def against_reference(tmp):
    import subprocess
    path = os.path.join(tmp, "cgpo_dump.json")
    p = subprocess.run([TEST_BIN, "--dump", path], capture_output=True, text=True)
    if p.returncode != 0:
        report(False, "cgpo_dump", p.stderr)
        return
    cases = json.load(open(path))
    bad = {"crpg": [], "codpo_pairs": [], "codpo_loss": [], "crraft": []}
    for k, c in enumerate(cases):
        n = c["N"]
        L, w, g = ref.crpg(c["scores"], c["ref_scores"], c["pass"], c["keep"], c["S"], c["crpg_n"])
        if not (close(L, c["crpg_loss"]) and close(w, c["crpg_w"]) and close(g, c["crpg_grad"])):
            bad["crpg"].append(k)
        ch, rj = ref.codpo_pairs(c["scores"], c["pass"], c["keep"], n, c["fallback"])
        if ch != c["chosen"] or rj != c["rejected"]:
            bad["codpo_pairs"].append(k)
            continue
        S, R, ln = (np.asarray(c[x], float) for x in ("S", "R", "len"))
        L, gc, gr, acc = ref.codpo_loss(S[ch], S[rj], R[ch], R[rj], ln[ch], c["beta"], c["lambda"])
        if not (close(L, c["codpo_loss"]) and close(gc, c["codpo_gc"]) and close(gr, c["codpo_gr"])
                and close(acc, c["codpo_acc"])):
            bad["codpo_loss"].append(k)
        L, w, g = ref.crraft(c["scores"], c["ref_scores"], c["pass"], c["keep"], c["S"], c["len"], n)
        if not (close(L, c["crraft_loss"]) and close(w, c["crraft_w"]) and close(g, c["crraft_grad"])):
            bad["crraft"].append(k)
    pairs = sum(len(c["chosen"]) for c in cases)
    for name, ks in bad.items():
        report(not ks and len(cases) == 20, f"cgpo_{name}_matches_numpy",
               f"cases {ks} differ ({len(cases)} cases, {pairs} pairs)")
    try:
        import torch
    except ImportError:
        print("SKIP cgpo_codpo_grad_matches_torch: no torch")
        return
    rng = np.random.default_rng(3)
    pc, pr, rc, rr = (rng.normal(-3, 2, 6) for _ in range(4))
    lc = rng.integers(1, 7, 6)
    beta, lam = 0.3, 0.7
    t_pc = torch.tensor(pc, requires_grad=True)
    t_pr = torch.tensor(pr, requires_grad=True)
    h = (t_pc - torch.tensor(rc)) - (t_pr - torch.tensor(rr))
    loss = (-torch.nn.functional.logsigmoid(beta * h) - lam * t_pc / torch.tensor(lc, dtype=torch.float64)).mean()
    loss.backward()
    L, gc, gr, _ = ref.codpo_loss(pc, pr, rc, rr, lc, beta, lam)
    report(close(L, loss.item(), 1e-10) and close(gc, t_pc.grad.numpy(), 1e-10)
           and close(gr, t_pr.grad.numpy(), 1e-10), "cgpo_codpo_grad_matches_torch")


def rates(out, steps):
    """violation rate and accuracy over the given iterations, from samples.jsonl"""
    s = [x for x in rows(os.path.join(out, "samples.jsonl")) if x["step"] in steps]
    viol = sum(bool(re.match(r"[xyz]", x["completion"])) for x in s) / max(len(s), 1)
    acc = sum(x["completion"][:1].islower() and x["completion"][:1].isascii() for x in s) / max(len(s), 1)
    return viol, acc


def reward_hacking(tmp):
    prompts = os.path.join(tmp, "prompts.jsonl")
    with open(prompts, "w") as f:
        f.write("".join(json.dumps({"prompt": q}) + "\n" for q in ("Q1:", "Q2:", "Say:", "X=")))
    judge = os.path.join(tmp, "judge.py")
    open(judge, "w").write(JUDGE)
    steps = 30
    common = ["--model", "tiny", "--data", prompts, "--max_steps", str(steps), "--batch_size", "4",
              "--num_generations", "8", "--max_new_tokens", "2", "--learning_rate", "3e-3",
              "--lr_scheduler_type", "constant", "--log_samples", "32", "--quiet",
              "--reward_command", f"{sys.executable} {judge}"]
    first, last = set(range(1, 6)), set(range(steps - 4, steps + 1))
    res = {}
    for name, args in (("grpo", ["grpo"]),
                       ("crpg", ["cgpo", "--optimizer", "crpg"]),
                       ("crpg_kl2", ["cgpo", "--optimizer", "crpg", "--kl_threshold", "2"]),
                       ("crpg_greedy", ["cgpo", "--optimizer", "crpg", "--calibration", "greedy"]),
                       ("codpo", ["cgpo", "--optimizer", "codpo"]),
                       ("crraft", ["cgpo", "--optimizer", "crraft"])):
        out = os.path.join(tmp, name)
        extra = ["--judges", "not_regex:^[xyz]"] if args[0] == "cgpo" else []
        t0 = time.time()
        p = run(*args, *common, "--output_dir", out, *extra, check=False, threads=1)
        if p.returncode != 0:
            report(False, f"cgpo_demo_{name}_runs", p.stderr[-1500:])
            continue
        res[name] = (rates(out, first), rates(out, last), time.time() - t0)
        (v0, a0), (v1, a1), sec = res[name]
        print(f"  {name}: violation {v0:.2f} -> {v1:.2f}, accuracy {a0:.2f} -> {a1:.2f} "
              f"(first 5 -> last 5 of {steps} iterations), {sec:.1f} s")
        if args[0] == "cgpo":  # the trainer's own count equals ours, iteration by iteration
            m = rows(os.path.join(out, "metrics.jsonl"))
            worst = max(abs(x["constraints/violation"] - rates(out, {x["step"]})[0]) for x in m)
            keys = {"constraints/violation", "constraints/not_regex", "cgpo/kl_skipped", "loss"}
            report(len(m) == steps and worst < 1e-9 and keys <= set(m[-1]),
                   f"cgpo_{name}_violation_metric", f"largest mismatch {worst}, keys {sorted(m[-1])}")
    if "crpg" in res and "crpg_kl2" in res:  # the KL bound: prompts past it are left out
        kl = {n: [x["kl"] for x in rows(os.path.join(tmp, n, "metrics.jsonl"))] for n in ("crpg", "crpg_kl2")}
        skipped = max(x["cgpo/kl_skipped"] for x in rows(os.path.join(tmp, "crpg_kl2", "metrics.jsonl")))
        a, b = np.mean(kl["crpg"][-10:]), np.mean(kl["crpg_kl2"][-10:])
        print(f"  --kl_threshold 2: KL (last 10 iterations) {b:.2f} against {a:.2f} unbounded; "
              f"up to {skipped:.2f} of the prompts left out")
        report(skipped > 0 and b < 0.7 * a, "cgpo_kl_threshold_bounds_kl",
               f"kl {b:.2f} vs {a:.2f}, skipped {skipped}")
    if "grpo" in res:
        report(res["grpo"][1][0] >= 0.5, "cgpo_demo_grpo_hacks_the_reward",
               f"GRPO's violation rate {res['grpo'][1][0]:.2f} (the demo needs GRPO to violate)")
    for name in ("crpg", "crpg_greedy", "codpo", "crraft"):
        if name in res and "grpo" in res:
            (_, _), (v1, a1), _ = res[name]
            ga = res["grpo"][1][1]
            report(v1 <= 0.05 and a1 >= ga - 0.05, f"cgpo_{name}_keeps_the_constraint",
                   f"violation {v1:.2f} (GRPO {res['grpo'][1][0]:.2f}), accuracy {a1:.2f} (GRPO {ga:.2f})")


def multi_task(tmp):
    """--tasks: prompts routed by prompt_regex, each task's judges and reward on its
    own samples (the mechanics; no learning claim)"""
    judge = os.path.join(tmp, "judge.py")
    tasks = os.path.join(tmp, "tasks.json")
    json.dump([{"name": "qa", "prompt_regex": "^Q", "judges": "not_regex:^[xyz]", "optimizer": "codpo"},
               {"name": "rest", "judges": "max_tokens:1", "optimizer": "crpg",
                "reward": f"command:{sys.executable} {judge}"}], open(tasks, "w"))
    out = os.path.join(tmp, "multi")
    p = run("cgpo", "--model", "tiny", "--data", os.path.join(tmp, "prompts.jsonl"), "--output_dir", out,
            "--max_steps", "4", "--batch_size", "4", "--num_generations", "4", "--max_new_tokens", "2",
            "--learning_rate", "3e-3", "--log_samples", "16", "--quiet", "--tasks", tasks,
            "--reward_command", f"{sys.executable} {judge}", check=False, threads=1)
    if p.returncode != 0:
        report(False, "cgpo_tasks_run", p.stderr[-1500:])
        return
    m, smp = rows(os.path.join(out, "metrics.jsonl")), rows(os.path.join(out, "samples.jsonl"))
    worst, seen = 0.0, 0
    for x in m:
        s = [y for y in smp if y["step"] == x["step"]]
        qa = [y for y in s if y["prompt"].startswith("Q")]
        rest = [y for y in s if not y["prompt"].startswith("Q")]
        if not qa or not rest:
            continue
        seen += 1
        want = {"constraints/qa/violation": np.mean([bool(re.match(r"[xyz]", y["completion"])) for y in qa]),
                "constraints/rest/violation": np.mean([y["length"] > 1 for y in rest]),
                "tasks/rest/reward": np.mean([y["reward"] for y in rest]),
                "tasks/qa/samples": len(qa), "tasks/rest/samples": len(rest),
                "constraints/violation": (sum(bool(re.match(r"[xyz]", y["completion"])) for y in qa)
                                          + sum(y["length"] > 1 for y in rest)) / len(s)}
        worst = max([worst] + [abs(x[k] - v) for k, v in want.items()])
    report(seen >= 2 and worst < 1e-6 and "pairs" in m[-1], "cgpo_tasks_route_judge_and_score",
           f"{seen} iterations with both tasks, largest mismatch {worst}, keys {sorted(m[-1])}")
    json.dump([{"name": "qa", "prompt_regex": "^Q", "judges": "not_regex:^[xyz]"},
               {"name": "bad", "judges": "max_chars:many"}], open(tasks, "w"))
    p = run("cgpo", "--model", "tiny", "--data", os.path.join(tmp, "prompts.jsonl"), "--output_dir",
            os.path.join(tmp, "bad_tasks"), "--reward_command", "true", "--tasks", tasks, check=False)
    report(p.returncode == 1 and 'task 2 ("bad")' in p.stderr and "max_chars:many" in p.stderr,
           "cgpo_tasks_bad_task_named", p.stderr.strip()[-300:])


def bad_judges(tmp):
    p = run("cgpo", "--model", "tiny", "--data", os.path.join(tmp, "prompts.jsonl"), "--output_dir",
            os.path.join(tmp, "bad"), "--reward_command", "true", "--judges",
            "format:int,max_chars:lots", check=False)
    report(p.returncode == 1 and "max_chars:lots" in p.stderr and "--judges" in p.stderr,
           "cgpo_bad_judges_named", p.stderr.strip()[-300:])
    p = run("cgpo", "--model", "tiny", "--data", os.path.join(tmp, "prompts.jsonl"), "--output_dir",
            os.path.join(tmp, "bad2"), "--reward_command", "true", check=False)
    report(p.returncode == 1 and "--judges" in p.stderr, "cgpo_needs_judges", p.stderr.strip()[-300:])


def main():
    if not os.path.exists(TEST_BIN):
        print(f"SKIP cgpo_test: {TEST_BIN} not built")
        return 0
    os.makedirs(os.path.join(ROOT, BUILD), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cgpo_test.", dir=os.path.join(ROOT, BUILD)) as tmp:
        for part in (against_reference, reward_hacking, multi_task, bad_judges):
            try:
                part(tmp)
            except Exception as e:  # noqa: BLE001 - a broken part is a failure, not a crash
                report(False, part.__name__, repr(e))
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
