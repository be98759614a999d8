"""SRPO's reviser on held-out prompts when the defect is one it can see: the
format experiment of docs/srpo.md ("Revisions that fix the form").

The arith task's one-digit sums; a sloppy teacher writes 40% of its answers
with a defect the task's scorer rejects (a leading "0" or a trailing "!"); the
SFT data hold those answers plus copy-revisions of random numbers
(prompt + y + "|" -> y, defects copied too, so the reference reviser copies);
the preference pairs prefer the clean gold answer to its defective form. Then
`rlhf srpo` (150 steps, lr 1e-3, beta 0.1) per seed, and on the 23 held-out
prompts (never in any training file) 8 sampled first answers each, each
revised greedily by the same model (and the SFT model's first answers revised
by the SRPO model). Prints one table row per seed: well-formed share and the
arith task's shaped reward of y0 -> y1, with fixed / broken counts and a
two-sided sign test. Not part of make test (about 2-3 minutes per seed).

    /usr/bin/python3 scripts/srpo_format.py [--seeds 3 4 5 6] [--out DIR]
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import rows, run, write  # noqa: E402

INSTR = "|"


def sloppy(rng, a):
    return rng.choice(["0" + a, a + "!"])


def wellformed(s):
    s = s.strip()
    return re.fullmatch(r"-?(0|[1-9][0-9]*)", s) is not None and s != "-0"


def reward(prompt, s):
    """the arith task's shaped reward (src/data/task_arith.c arith_reward)"""
    s = s.strip()
    if not wellformed(s):
        return 0.0
    a, op, b = int(prompt[0]), prompt[1], int(prompt[2])
    d = abs(int(s) - (a + b if op == "+" else a - b))
    return 1.0 if d == 0 else 0.5 / (1 + math.log10(1 + d))


def sign_test(before, after):
    fixed = sum(b > a for a, b in zip(before, after))
    broken = sum(b < a for a, b in zip(before, after))
    n = fixed + broken
    k = min(fixed, broken)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return fixed, broken, p


def build(tmp):
    rng = random.Random(5)
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--digits", "1", "--ops", "+-", "--n_train",
        "1500", "--n_pref", "1500", "--n_eval", "23", "--pref_both_wrong", "0", "--noise", "0")
    sft_rows = []
    for r in rows(os.path.join(data, "sft.jsonl")):
        c = sloppy(rng, r["completion"]) if rng.random() < 0.4 else r["completion"]
        sft_rows.append({"prompt": r["prompt"], "completion": c})
        for _ in range(2):
            y = str(rng.randint(-9, 18))
            y = sloppy(rng, y) if rng.random() < 0.4 else y
            sft_rows.append({"prompt": r["prompt"] + y + INSTR, "completion": y})
    write(os.path.join(tmp, "sft.jsonl"), sft_rows)
    write(os.path.join(tmp, "prefs.jsonl"),
          [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": sloppy(rng, r["chosen"])}
           for r in rows(os.path.join(data, "prefs.jsonl"))])
    run("sft", "--model", "tiny", "--data", os.path.join(tmp, "sft.jsonl"), "--output_dir",
        os.path.join(tmp, "sft"), "--max_steps", "600", "--batch_size", "32", "--learning_rate",
        "3e-3", "--lr_scheduler_type", "cosine", "--save_steps", "0", "--quiet")
    ev = rows(os.path.join(data, "eval.jsonl"))
    write(os.path.join(tmp, "prompts.jsonl"), [{"prompt": r["prompt"]} for r in ev])


def first_and_revised(tmp, model, reviser, tag):
    p = run("generate", "--model", model, "--prompts", os.path.join(tmp, "prompts.jsonl"),
            "--temperature", "1", "--max_new_tokens", "6", "--num_return_sequences", "8",
            "--seed", "11", "--format", "jsonl")
    first = [json.loads(x) for x in p.stdout.splitlines()]
    revp = os.path.join(tmp, f"rev_{tag}.jsonl")
    write(revp, [{"prompt": r["prompt"] + r["completion"] + INSTR} for r in first])
    p = run("generate", "--model", reviser, "--prompts", revp, "--temperature", "0",
            "--max_new_tokens", "6", "--format", "jsonl")
    revised = [json.loads(x)["completion"] for x in p.stdout.splitlines()]
    return [(r["prompt"], r["completion"], y) for r, y in zip(first, revised)]


def describe(triples):
    wf0 = sum(wellformed(a) for _, a, _ in triples) / len(triples)
    wf1 = sum(wellformed(b) for _, _, b in triples) / len(triples)
    r0 = [reward(p, a) for p, a, _ in triples]
    r1 = [reward(p, b) for p, _, b in triples]
    f, b, pv = sign_test(r0, r1)
    return (f"{wf0:.3f} -> {wf1:.3f} | {sum(r0) / len(r0):.3f} -> {sum(r1) / len(r1):.3f} | "
            f"{f} / {b} | {pv:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6])
    ap.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    a = ap.parse_args()
    tmp = a.out or tempfile.mkdtemp(prefix="srpo_format.")
    os.makedirs(tmp, exist_ok=True)
    build(tmp)
    sft = os.path.join(tmp, "sft")
    print("| model | n | well-formed y0 -> y1 | reward y0 -> y1 | fixed / broken | p |")
    print("|---|---|---|---|---|---|")
    print(f"| SFT (the reference) | 184 | {describe(first_and_revised(tmp, sft, sft, 'sft'))} |")
    for seed in a.seeds:
        out = os.path.join(tmp, f"srpo{seed}")
        shutil.rmtree(out, ignore_errors=True)
        run("srpo", "--model", sft, "--data", os.path.join(tmp, "prefs.jsonl"), "--output_dir", out,
            "--max_steps", "150", "--batch_size", "16", "--learning_rate", "1e-3",
            "--lr_scheduler_type", "cosine", "--beta", "0.1", "--save_steps", "0", "--quiet",
            "--seed", str(seed), "--revision_prompt", INSTR)
        own = describe(first_and_revised(tmp, out, out, f"own{seed}"))
        other = describe(first_and_revised(tmp, sft, out, f"sft{seed}"))
        print(f"| SRPO seed {seed}, own answers | 184 | {own} |")
        print(f"| SRPO seed {seed}, revising the SFT model's answers | 184 | {other} |")
        sys.stdout.flush()
    if not a.out:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
