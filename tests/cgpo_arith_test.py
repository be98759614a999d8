"""CGPO on arith (`rlhf cgpo`, docs/cgpo.md): a format rule the reward does not
enforce. Prints PASS/FAIL lines, exit 1 on failure.

The arith verifier strips surrounding whitespace (src/data/task.h), so "7 " and
"7\\n" earn the same reward as "7". The rule "no trailing whitespace" is the
judge `regex:^-?[0-9]+$`. The starting point is a tiny model fine-tuned (SFT) on
arith answers of which 70% carry a trailing space or newline, so it breaks the
rule in most of its samples. From it, with the same shaped verifier reward,
seed, batch and number of iterations:

  * `rlhf grpo`: the reward ignores the rule, so the violations stay (they
    drift, usually upwards);
  * `rlhf cgpo --optimizer codpo` with the judge: the violation rate falls
    near 0, at GRPO's accuracy (within 0.04);
  * `rlhf cgpo --optimizer crpg`: the violation rate falls near 0 too, at an
    accuracy up to 0.12 lower (its calibrated weights teach correctness more
    slowly than GRPO's normalised advantages; docs/cgpo.md).

Measured with `rlhf eval` on all 200 one-digit problems (8 samples each, and
greedy; 90% of them are training prompts), and printed for the last 5
iterations' training samples.

  * --tasks, two tasks mixed in each batch: "+" prompts may not end in a space
    (CRPG), "-" prompts may not end in a newline (CODPO); each task's own
    violation rate falls, while the other whitespace (allowed there) is not
    forced out.

`python3 tests/cgpo_arith_test.py SEED` runs the same with another seed (the
test uses 1).
"""
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, exit_code, report, rows, run, write  # noqa: E402

RULE = r"^-?[0-9]+$"
ITERS = 40


def read(path):
    """JSONL rows; a sampled byte that is not UTF-8 (the byte tokenizer can make
    one) reads as U+FFFD"""
    with open(path, encoding="utf-8", errors="replace") as f:
        return [json.loads(x) for x in f if x.strip()]


def clean(c):
    return re.fullmatch(r"-?[0-9]+", c) is not None


def sft_start(tmp, seed):
    """arith data (1 digit, + and -) and an SFT model whose answers often end in whitespace"""
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--digits", "1", "--ops", "+-", "--noise", "0",
        "--n_train", "2000", "--n_prompts", "200", "--n_eval", "20", "--n_pref", "10", threads=1)
    sft = rows(os.path.join(data, "sft.jsonl"))
    for i, x in enumerate(sft):  # 5 in 10 end in a space, 2 in 10 in a newline
        x["completion"] += " " if i % 10 < 5 else "\n" if i % 10 < 7 else ""
    write(os.path.join(data, "sft_ws.jsonl"), sft)
    every = [{"prompt": f"{a}{op}{b}=", "completion": str(a + b if op == "+" else a - b)}
             for a in range(10) for b in range(10) for op in "+-"]
    write(os.path.join(data, "all.jsonl"), every)  # all 200 problems, for evaluate
    model = os.path.join(tmp, "sft")
    run("sft", "--model", "tiny", "--data", os.path.join(data, "sft_ws.jsonl"), "--output_dir", model,
        "--max_steps", "1000", "--learning_rate", "3e-3", "--batch_size", "16", "--max_length", "8",
        "--save_steps", "0", "--seed", str(seed), "--quiet", threads=1)
    return data, model


def evaluate(tmp, data, model, seed, name):
    """greedy and sampled accuracy (8 samples a prompt), and the sampled and greedy
    violation rates, on all 200 one-digit problems (all.jsonl)"""
    out = os.path.join(tmp, f"eval_{name}.jsonl")
    p = run("eval", "--model", model, "--data", os.path.join(data, "all.jsonl"), "--samples_per_prompt",
            "8", "--max_new_tokens", "4", "--seed", str(seed), "--output", out, threads=1)
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    r = read(out)
    samples = [s for x in r for s in x["samples"]]
    return {"acc": summary["accuracy"], "sampled_acc": summary["sampled_accuracy"],
            "viol": sum(not clean(s) for s in samples) / len(samples),
            "greedy_viol": sum(not clean(x["completion"]) for x in r) / len(r)}


def trained_rates(out, last=5):
    """violation rate and accuracy of the training samples of the last iterations"""
    s = read(os.path.join(out, "samples.jsonl"))
    steps = sorted({x["step"] for x in s})[-last:]
    s = [x for x in s if x["step"] in steps]
    return (sum(not clean(x["completion"]) for x in s) / len(s),
            sum(x["rewards/verifier:arith:shaped"] == 1 for x in s) / len(s))


def rl_args(model, data, out, seed):
    return ["--model", model, "--data", os.path.join(data, "prompts.jsonl"), "--output_dir", out,
            "--max_steps", str(ITERS), "--batch_size", "16", "--num_generations", "8",
            "--max_new_tokens", "4", "--learning_rate", "3e-4", "--lr_scheduler_type", "constant",
            "--reward", "verifier:arith:shaped", "--log_samples", "128", "--save_steps", "0",
            "--seed", str(seed), "--quiet"]


def compare(tmp, data, model, seed):
    start = evaluate(tmp, data, model, seed, "sft")
    print(f"  sft: eval violation {start['viol']:.2f} (greedy {start['greedy_viol']:.2f}), "
          f"accuracy {start['acc']:.2f} greedy, {start['sampled_acc']:.2f} sampled")
    report(start["viol"] >= 0.4, "cgpo_arith_sft_breaks_the_rule",
           f"the starting point violates in only {start['viol']:.2f} of its samples")
    res = {}
    for name, args in (("grpo", ["grpo"]),
                       ("crpg", ["cgpo", "--optimizer", "crpg", "--judges", f"regex:{RULE}"]),
                       ("codpo", ["cgpo", "--optimizer", "codpo", "--judges", f"regex:{RULE}"])):
        out = os.path.join(tmp, name)
        t0 = time.time()
        p = run(*args, *rl_args(model, data, out, seed), check=False, threads=1)
        if p.returncode != 0:
            report(False, f"cgpo_arith_{name}_runs", p.stderr[-1500:])
            continue
        secs = time.time() - t0
        e = evaluate(tmp, data, out, seed, name)
        v, a = trained_rates(out)
        res[name] = e
        print(f"  {name}: eval violation {start['viol']:.2f} -> {e['viol']:.2f} (greedy "
              f"{start['greedy_viol']:.2f} -> {e['greedy_viol']:.2f}), accuracy greedy "
              f"{start['acc']:.2f} -> {e['acc']:.2f}, sampled {start['sampled_acc']:.2f} -> "
              f"{e['sampled_acc']:.2f}; last 5 iterations' samples: violation {v:.2f}, "
              f"accuracy {a:.2f}; {secs:.1f} s")
        if args[0] == "cgpo":  # the trainer's count of the rule equals ours
            m = rows(os.path.join(out, "metrics.jsonl"))
            report(len(m) == ITERS and abs(m[-1]["constraints/violation"] - trained_rates(out, 1)[0]) < 1e-9,
                   f"cgpo_arith_{name}_violation_metric", f"{m[-1]}")
    g = res.get("grpo")
    if g:
        report(g["viol"] >= 0.4, "cgpo_arith_grpo_keeps_violating",
               f"GRPO's violation rate {g['viol']:.2f} (the reward cannot see the rule)")
    for name, margin in (("crpg", 0.12), ("codpo", 0.04)):
        c = res.get(name)
        if c and g:
            report(c["viol"] <= 0.05 and c["viol"] <= g["viol"] / 8 and c["greedy_viol"] == 0,
                   f"cgpo_arith_{name}_lowers_violation",
                   f"violation {c['viol']:.2f} (greedy {c['greedy_viol']:.2f}) against GRPO's "
                   f"{g['viol']:.2f}")
            # CODPO keeps GRPO's accuracy; CRPG's calibrated weights (in (0, 1), not
            # normalised) teach correctness more slowly: it may lose a little (docs/cgpo.md)
            if os.environ.get("RLHF_SANITIZE"):  # another GEMM path: other numbers, same rule
                print(f"SKIP cgpo_arith_{name}_accuracy_kept: RLHF_SANITIZE (numbers differ)")
                continue
            report(c["sampled_acc"] >= g["sampled_acc"] - margin and c["acc"] >= g["acc"] - 2 * margin,
                   f"cgpo_arith_{name}_accuracy_kept",
                   f"accuracy sampled {c['sampled_acc']:.2f} greedy {c['acc']:.2f}, GRPO's "
                   f"{g['sampled_acc']:.2f} and {g['acc']:.2f} (allowed: {margin} less sampled)")


def two_tasks(tmp, data, model, seed):
    """--tasks: "+" prompts may not end in a space (CRPG), "-" prompts not in a newline (CODPO)"""
    tasks = os.path.join(tmp, "tasks.json")
    json.dump([{"name": "add", "prompt_regex": "[+]", "judges": "not_regex:[ ]", "optimizer": "crpg"},
               {"name": "sub", "judges": "not_regex:[[:cntrl:]]", "optimizer": "codpo"}],
              open(tasks, "w"))
    out = os.path.join(tmp, "tasks")
    t0 = time.time()
    p = run("cgpo", *rl_args(model, data, out, seed), "--tasks", tasks, check=False, threads=1)
    if p.returncode != 0:
        report(False, "cgpo_arith_tasks_run", p.stderr[-1500:])
        return
    secs = time.time() - t0
    m = rows(os.path.join(out, "metrics.jsonl"))
    s = read(os.path.join(out, "samples.jsonl"))

    def share(steps, task, pred):
        z = [x for x in s if x["step"] in steps and (("+" in x["prompt"]) == (task == "add"))]
        return sum(pred(x["completion"]) for x in z) / max(len(z), 1)

    first, last = set(range(1, 6)), set(range(ITERS - 4, ITERS + 1))
    space, newline = (lambda c: c.endswith(" ")), (lambda c: "\n" in c)
    ok = True
    for task, rule, other in (("add", space, newline), ("sub", newline, space)):
        v0, v1 = share(first, task, rule), share(last, task, rule)
        o0, o1 = share(first, task, other), share(last, task, other)
        mv0 = sum(x[f"constraints/{task}/violation"] for x in m[:5]) / 5
        mv1 = sum(x[f"constraints/{task}/violation"] for x in m[-5:]) / 5
        print(f"  --tasks {task}: its violation {v0:.2f} -> {v1:.2f} (metric {mv0:.2f} -> {mv1:.2f}); "
              f"the other whitespace, allowed here, {o0:.2f} -> {o1:.2f}")
        ok = ok and v0 >= 0.1 and v1 <= 0.08 and v1 <= v0 / 2.5 and mv1 <= 0.08
    a0 = sum(x["rewards/verifier:arith:shaped"] == 1 for x in s if x["step"] in first) / max(
        sum(x["step"] in first for x in s), 1)
    a1 = sum(x["rewards/verifier:arith:shaped"] == 1 for x in s if x["step"] in last) / max(
        sum(x["step"] in last for x in s), 1)
    print(f"  --tasks: accuracy of the samples {a0:.2f} -> {a1:.2f}; {secs:.1f} s")
    report(ok and a1 >= a0 - 0.1, "cgpo_arith_tasks_each_violation_falls",
           f"a task's violation rate did not fall to 0.08 and below 1/2.5 of its start, or the "
           f"accuracy fell from {a0:.2f} to {a1:.2f} (lines above)")


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    os.makedirs(os.path.join(ROOT, BUILD), exist_ok=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="cgpo_arith_test.", dir=os.path.join(ROOT, BUILD)) as tmp:
        try:
            data, model = sft_start(tmp, seed)
            print(f"  sft starting point: {time.time() - t0:.1f} s")
            compare(tmp, data, model, seed)
            two_tasks(tmp, data, model, seed)
        except Exception as e:  # noqa: BLE001 - a broken part is a failure, not a crash
            report(False, "cgpo_arith", repr(e))
    print(f"  cgpo_arith_test: {time.time() - t0:.1f} s")
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
