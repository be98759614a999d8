"""The offline preference trainer end to end through the CLI: TRL metric names,
precomputed reference log-probs equal the live ones (and are reused on
restart), loss lists, KTO on unpaired data, implicit-reward scoring, and bad
input. Standard library only; prints PASS/FAIL/SKIP lines."""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
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


def rows(path):
    return [json.loads(x) for x in open(path) if x.strip()]


def main():
    tmp = tempfile.mkdtemp(prefix="dpo_test.", dir=os.path.join(ROOT, BUILD))
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--digits", "1-2", "--n_pref", "400",
        "--n_train", "400", "--n_eval", "20")
    sft = os.path.join(tmp, "sft")
    run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir", sft,
        "--max_steps", "30", "--batch_size", "32", "--learning_rate", "3e-3", "--quiet")
    prefs = os.path.join(data, "prefs.jsonl")
    base = ["--model", sft, "--data", prefs, "--max_steps", "6", "--batch_size", "8",
            "--learning_rate", "1e-3", "--logging_steps", "1", "--quiet", "--kl_prompts", "8",
            "--eval_split", "0.05", "--seed", "3"]
    live = os.path.join(tmp, "live")
    run("dpo", *base, "--output_dir", live)
    m = rows(os.path.join(live, "metrics.jsonl"))
    names = ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
             "logps/chosen", "logps/rejected"]
    report(all(k in m[0] for k in names) and any("kl" in r for r in m) and
           any("eval_rewards/accuracies" in r for r in m), "dpo_metric_names", str(m[-1]))
    # the first step starts at the reference: loss log 2, rewards 0
    report(abs(m[0]["loss"] - 0.693147) < 1e-4 and abs(m[0]["rewards/chosen"]) < 1e-4,
           "dpo_first_step_at_reference", str(m[0]))

    pre = os.path.join(tmp, "pre")
    p = run("dpo", *base, "--output_dir", pre, "--precompute_ref_log_probs")
    mp = rows(os.path.join(pre, "metrics.jsonl"))
    worst = max(abs(a[k] - b[k]) for a, b in zip(m, mp) if "loss" in a and "loss" in b
                for k in ["loss", "rewards/chosen", "rewards/rejected"])
    report(worst < 2e-4, "precomputed_ref_equals_live", f"largest metric difference {worst}")
    p = run("dpo", *base, "--output_dir", pre, "--precompute_ref_log_probs", "--max_steps", "8",
            "--resume")  # the finished 6-step run goes on to 8 from its final checkpoint
    report("reused" in p.stderr and "final (step 6)" in p.stderr,
           "precomputed_ref_reused_on_restart", p.stderr[-300:])

    # a weighted list (DPO + NLL on chosen), SimPO, IPO: each trains and logs
    for lt, extra in [("sigmoid,sft", ["--loss_weights", "1,1"]), ("simpo", []), ("ipo", [])]:
        d = os.path.join(tmp, lt.replace(",", "_"))
        p = run("dpo", *base, "--output_dir", d, "--loss_type", lt, *extra, check=False)
        ok = p.returncode == 0 and os.path.exists(os.path.join(d, "checkpoints", "final"))
        report(ok, f"dpo_loss_{lt}", p.stderr[-500:])

    # KTO on unpaired prompt/completion/label data
    kto = os.path.join(tmp, "kto")
    p = run("kto", "--model", sft, "--data", os.path.join(data, "kto.jsonl"), "--output_dir", kto,
            "--max_steps", "4", "--batch_size", "8", "--quiet", "--kl_prompts", "0", check=False)
    report(p.returncode == 0 and "loss" in rows(os.path.join(kto, "metrics.jsonl"))[0], "kto_runs",
           p.stderr[-500:])

    # implicit reward: a DPO policy scored against its reference
    p = run("score", "--policy", live, "--ref_model", sft, "--data", prefs, "--beta", "0.1")
    out = [json.loads(x) for x in p.stdout.splitlines()]
    report(len(out) == 400 and "implicit-reward accuracy" in p.stderr, "score_implicit_reward",
           p.stderr[-300:])
    # --output: written whole; naming the --data file is refused and the pairs are kept; a
    # device (a /dev/null of our own, made where we may) is written into and stays a device
    scored = os.path.join(tmp, "scored.jsonl")
    p = run("score", "--policy", live, "--ref_model", sft, "--data", prefs, "--output", scored,
            check=False)
    n_scored = len(open(scored).read().splitlines()) if os.path.exists(scored) else -1
    before = open(prefs, "rb").read()
    q = run("score", "--policy", live, "--ref_model", sft, "--data", prefs, "--output", prefs,
            check=False)
    report(p.returncode == 0 and n_scored == 400 and q.returncode == 2
           and "is the --data file" in q.stderr and open(prefs, "rb").read() == before
           and not [f for f in os.listdir(os.path.dirname(prefs)) if ".tmp." in f],
           "score_output_whole_and_never_the_data", f"{n_scored} {p.stderr[-200:]} {q.stderr[-300:]}")
    null = os.path.join(tmp, "null")
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        null = None
    if null is None:
        print("SKIP score_output_device_kept: cannot make a device node (not root)")
    else:
        p = run("score", "--policy", live, "--ref_model", sft, "--data", prefs, "--output", null,
                check=False)
        report(p.returncode == 0 and stat.S_ISCHR(os.lstat(null).st_mode),
               "score_output_device_kept", p.stderr[-300:])

    # bad input: a clear message with file:line, no crash
    bad = os.path.join(tmp, "bad.jsonl")
    cases = {
        "identical_pair": '{"prompt": "1+1=", "chosen": "2", "rejected": "2"}',
        "empty_completion": '{"prompt": "1+1=", "chosen": "2", "rejected": ""}',
    }
    good = '{"prompt": "1+1=", "chosen": "2", "rejected": "3"}'
    for name, line in cases.items():
        open(bad, "w").write(good + "\n" + line + "\n")
        p = run("dpo", "--model", sft, "--data", bad, "--max_steps", "1", "--output_dir",
                os.path.join(tmp, "b"), "--quiet", check=False)
        report(p.returncode == 1 and "bad.jsonl:2" in p.stderr, f"dpo_bad_{name}", p.stderr.strip())
    open(bad, "w").write('{"prompt": "1+1=", "completion": "2", "label": true}\n'
                         '{"prompt": "1+2=", "completion": "3"}\n')
    p = run("kto", "--model", sft, "--data", bad, "--max_steps", "1", "--output_dir",
            os.path.join(tmp, "b"), "--quiet", check=False)
    report(p.returncode == 1 and "bad.jsonl:2" in p.stderr and "label" in p.stderr,
           "kto_missing_label", p.stderr.strip())
    open(bad, "w").write('{"prompt": "' + "9" * 300 + '=", "chosen": "2", "rejected": "3"}\n')
    p = run("dpo", "--model", sft, "--data", bad, "--max_steps", "1", "--max_length", "64",
            "--truncation_mode", "keep_end", "--output_dir", os.path.join(tmp, "b2"), "--quiet",
            "--kl_prompts", "0", check=False)
    report(p.returncode == 0, "dpo_long_prompt_truncated", p.stderr.strip())
    p = run("dpo", "--model", sft, "--data", prefs, "--loss_type", "nonsense", "--output_dir",
            os.path.join(tmp, "b3"), check=False)
    report(p.returncode == 1 and "nonsense" in p.stderr, "dpo_unknown_loss", p.stderr.strip())
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        report(False, "dpo_test", repr(e))
    sys.exit(1 if failed else 0)
