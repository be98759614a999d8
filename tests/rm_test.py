"""Reward models end to end through the CLI: accuracy on a held-out arith
preference set well above 50%, an ensemble's per-member scores, the HH-RLHF
smoke run with the GPT-2 BPE (skipped without ../shared/data), and bad input.
Standard library only; prints PASS/FAIL/SKIP lines."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
# `make asan` sets RLHF_SANITIZE: there this file checks memory safety on the same
# paths with far fewer steps (a sanitizer build is ~10x slower); the accuracy bar
# is checked by the normal build.
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def run(*args, check=True):
    p = subprocess.run([RLHF, *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    if check and p.returncode != 0:
        raise RuntimeError(f"rlhf {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def last(path, key):
    rows = [json.loads(x) for x in open(path) if x.strip()]
    return [r for r in rows if key in r][-1]


def main():
    tmp = tempfile.mkdtemp(prefix="rm_test.", dir=os.path.join(ROOT, BUILD))
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--digits", "1-2", "--n_pref", "20000",
        "--n_train", "10", "--n_eval", "10")
    # accuracy on held-out pairs, from scratch
    r = os.path.join(tmp, "rm")
    run("rm", "--model", "tiny", "--data", os.path.join(data, "prefs.jsonl"), "--output_dir", r,
        "--max_steps", "40" if SANITIZE else "800", "--batch_size", "32", "--learning_rate", "2e-3", "--eval_split",
        "0.05", "--quiet", "--lr_scheduler_type", "cosine", "--warmup_ratio", "0.05")
    acc = last(os.path.join(r, "metrics.jsonl"), "eval_accuracy")["eval_accuracy"]
    if SANITIZE:
        print("SKIP rm_heldout_accuracy: sanitizer build (40 steps; the normal build checks it)")
    else:
        report(acc > 0.58, "rm_heldout_accuracy", f"eval accuracy {acc}")
    print(f"  held-out pair accuracy of the reward model: {acc:.3f}")
    # score writes one line per pair and the accuracy agrees with the scores
    p = run("score", "--reward_model", r, "--data", os.path.join(data, "prefs.jsonl"))
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    ok = len(rows) == 20000 and all("chosen_score" in x and "rejected_score" in x for x in rows)
    report(ok, "score_lines", p.stderr[-500:])
    # an ensemble of 3 heads: per-member scores and a variance
    e = os.path.join(tmp, "ens")
    run("rm", "--model", "tiny", "--data", os.path.join(data, "prefs.jsonl"), "--output_dir", e,
        "--max_steps", "5", "--batch_size", "8", "--ensemble_size", "3", "--quiet")
    p = run("score", "--reward_model", e, "--data", os.path.join(data, "prefs.jsonl"))
    x = json.loads(p.stdout.splitlines()[0])
    ok = len(x["chosen_scores"]) == 3 and abs(sum(x["chosen_scores"]) / 3 - x["chosen_score"]) < 1e-5
    report(ok and x["chosen_variance"] > 0, "ensemble_members", str(x))

    # bad input: each a clear message naming the file and line, no crash
    bad = os.path.join(tmp, "bad.jsonl")
    cases = {
        "identical": '{"prompt": "1+1=", "chosen": "2", "rejected": "2"}',
        "empty": '{"prompt": "1+1=", "chosen": "", "rejected": "3"}',
        "wrong_type": '{"prompt": "1+1=", "chosen": 2, "rejected": "3"}',
    }
    good = '{"prompt": "1+1=", "chosen": "2", "rejected": "3"}'
    for name, line in cases.items():
        open(bad, "w").write(good + "\n" + line + "\n")
        p = run("rm", "--model", "tiny", "--data", bad, "--max_steps", "1", "--output_dir",
                os.path.join(tmp, "b"), "--quiet", check=False)
        report(p.returncode == 1 and "bad.jsonl:2" in p.stderr and "Traceback" not in p.stderr,
               f"rm_bad_{name}", p.stderr.strip())
    # an ensemble file whose member path holds \u0000: refused, not cut at the NUL
    ens_bad = os.path.join(tmp, "ens_bad")
    os.makedirs(ens_bad)
    open(os.path.join(ens_bad, "ensemble.json"), "w").write('{"members": ["%s\\u0000x"]}' % e)
    p = run("score", "--reward_model", ens_bad, "--data", os.path.join(data, "prefs.jsonl"),
            check=False)
    report(p.returncode == 1 and "ensemble.json" in p.stderr and "NUL" in p.stderr,
           "rm_ensemble_nul_refused", p.stderr.strip())
    open(bad, "w").write('{"prompt": "' + "1+" * 400 + '1=", "chosen": "2", "rejected": "3"}\n')
    p = run("rm", "--model", "tiny", "--data", bad, "--max_steps", "1", "--max_length", "64",
            "--max_prompt_length", "32", "--output_dir", os.path.join(tmp, "b2"), "--quiet",
            check=False)
    report(p.returncode == 0, "rm_long_prompt_truncated", p.stderr.strip())

    # real data: HH-RLHF with the GPT-2 BPE, a small RM for a few hundred steps
    hh = os.path.join(SHARED, "hh-rlhf", "harmless-base-test.jsonl.gz")
    if not os.path.exists(hh):
        print("SKIP rm_hh_rlhf_smoke: ../shared/data absent")
    else:
        h = os.path.join(tmp, "hh")
        p = run("rm", "--model", "gpt2-mini", "--tokenizer", os.path.join(SHARED, "gpt2"),
                "--data", hh, "--output_dir", h, "--max_steps", "10" if SANITIZE else "200", "--batch_size", "4",
                "--max_length", "128", "--max_prompt_length", "96", "--learning_rate", "3e-4",
                "--eval_split", "0.05", "--quiet", check=False)
        ok = p.returncode == 0
        acc = last(os.path.join(h, "metrics.jsonl"), "eval_accuracy")["eval_accuracy"] if ok else None
        report(ok and acc is not None, "rm_hh_rlhf_smoke", p.stderr[-800:])
        if ok:
            print(f"  HH-RLHF harmless-base: {10 if SANITIZE else 200} steps of a 4-layer GPT-2-vocabulary RM, "
                  f"held-out accuracy {acc:.3f} (smoke test, no quality bar)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        report(False, "rm_test", repr(e))
    sys.exit(1 if failed else 0)
