"""SRPO's claim on held-out prompts (docs/srpo.md, "Revisions that fix the
form"): after `rlhf srpo`, the model's revisions of its own answers to prompts it
never trained on score higher than the answers, and the reference's do not.

The task is one the reviser can learn from y alone: the arith task's one-digit
sums and differences, a sloppy teacher that writes 40% of its answers with a
defect the task's scorer rejects (a leading "0" or a trailing "!"). The SFT data
hold those answers plus copy-revisions of random numbers (prompt + y + "|" -> y,
defects copied too, so the reference reviser copies); the preference pairs
prefer the clean gold answer to its defective form. Then `rlhf srpo` (the
paper's loss alone: no --revision_nll_coef) for three seeds. On the 23 held-out
prompts (checked: in no training file) 8 first answers each are sampled at
temperature 1 and revised greedily by the same model. "Score" is the arith
task's shaped reward (0 for a malformed answer, partial credit for a near miss;
src/data/task_arith.c).

Asserted:
  * the held-out prompts are in no training file;
  * the reference (the SFT model) revising its own answers: no significant
    change (two-sided sign test p > 0.05 on fixed / broken) - it copies;
  * every SRPO seed: its revisions of its own answers have a higher mean score
    and more well-formed answers than the answers;
  * pooled over the seeds: fixed > broken with p < 1e-3 (sign test);
  * every SRPO seed revising the reference's answers (44% defective):
    fixed > broken with p < 0.01.
scripts/srpo_format.py runs the same experiment over more seeds and prints the
table in docs/srpo.md. Standard library only; prints PASS/FAIL lines."""
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile

from harness import BUILD, ROOT, exit_code, report, rows, run, write

INSTR = "|"          # the revision prompt
SRPO_STEPS = "300"
SEEDS = (3, 4, 5)


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
    """(fixed, broken, two-sided exact sign-test p) of paired scores"""
    fixed = sum(b > a for a, b in zip(before, after))
    broken = sum(b < a for a, b in zip(before, after))
    n = fixed + broken
    k = min(fixed, broken)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return fixed, broken, p


def build(tmp):
    """the data, the sloppy SFT set, the clean-vs-defective pairs, the SFT model
    (tmp/sft) and the held-out prompts (tmp/prompts.jsonl)"""
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


def train_srpo(tmp, seed, steps=SRPO_STEPS, extra=()):
    out = os.path.join(tmp, f"srpo{seed}")
    shutil.rmtree(out, ignore_errors=True)
    run("srpo", "--model", os.path.join(tmp, "sft"), "--data", os.path.join(tmp, "prefs.jsonl"),
        "--output_dir", out, "--max_steps", str(steps), "--batch_size", "16", "--learning_rate",
        "1e-3", "--lr_scheduler_type", "cosine", "--beta", "0.1", "--save_steps", "0", "--quiet",
        "--seed", str(seed), "--revision_prompt", INSTR, *extra)
    return out


def first_and_revised(tmp, model, reviser, tag):
    """8 sampled first answers per held-out prompt from model, each revised
    greedily by reviser: [(prompt, y0, y1)]"""
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


def stats(triples):
    """well-formed shares, mean scores of y0 and y1, and the sign test"""
    n = len(triples)
    r0 = [reward(p, a) for p, a, _ in triples]
    r1 = [reward(p, b) for p, _, b in triples]
    f, b, pv = sign_test(r0, r1)
    return {"n": n, "wf0": sum(wellformed(a) for _, a, _ in triples) / n,
            "wf1": sum(wellformed(b) for _, _, b in triples) / n,
            "r0": sum(r0) / n, "r1": sum(r1) / n, "fixed": f, "broken": b, "p": pv}


def describe(s):
    return (f"{s['wf0']:.3f} -> {s['wf1']:.3f} | {s['r0']:.3f} -> {s['r1']:.3f} | "
            f"{s['fixed']} / {s['broken']} | {s['p']:.3g}")


def main():
    if os.environ.get("RLHF_SANITIZE"):  # minutes under ASan; srpo_test covers the code paths
        print("SKIP srpo_heldout_test: RLHF_SANITIZE (a study, not a memory check)")
        return
    tmp = tempfile.mkdtemp(prefix="srpo_heldout.", dir=os.path.join(ROOT, BUILD))
    build(tmp)
    held = {r["prompt"] for r in rows(os.path.join(tmp, "prompts.jsonl"))}
    seen = [r["prompt"] for r in rows(os.path.join(tmp, "sft.jsonl"))]
    seen += [r["prompt"] for r in rows(os.path.join(tmp, "prefs.jsonl"))]
    leaks = [p for p in seen if any(p.startswith(h) for h in held)]
    report(len(held) == 23 and not leaks, "srpo_heldout_prompts_unseen", f"{leaks[:5]}")

    sft = os.path.join(tmp, "sft")
    ref = stats(first_and_revised(tmp, sft, sft, "sft"))
    print(f"    reference revising its own answers: {describe(ref)}")
    report(ref["p"] > 0.05, "srpo_heldout_reference_copies", describe(ref))

    fixed = broken = 0
    for seed in SEEDS:
        out = train_srpo(tmp, seed)
        own = stats(first_and_revised(tmp, out, out, f"own{seed}"))
        other = stats(first_and_revised(tmp, sft, out, f"sft{seed}"))
        print(f"    SRPO seed {seed}, own answers: {describe(own)}; "
              f"revising the reference's: {describe(other)}")
        fixed, broken = fixed + own["fixed"], broken + own["broken"]
        report(own["r1"] > own["r0"] and own["wf1"] > own["wf0"],
               f"srpo_heldout_revisions_score_higher_seed{seed}", describe(own))
        report(other["fixed"] > other["broken"] and other["p"] < 0.01,
               f"srpo_heldout_revises_reference_answers_seed{seed}", describe(other))
    _, _, pooled = sign_test([0] * (fixed + broken), [1] * fixed + [-1] * broken)
    print(f"    pooled over seeds {SEEDS}: fixed {fixed}, broken {broken}, p {pooled:.3g}")
    report(fixed > broken and pooled < 1e-3, "srpo_heldout_revisions_pooled",
           f"fixed {fixed}, broken {broken}, p {pooled:.3g}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        report(False, "srpo_heldout_test", repr(e))
    sys.exit(exit_code())
