"""Best-of-n, RAFT / SuperHF (rlhf bon) and DR-PO dataset reset (--reset_prob on
the online trainers) end to end, standard library only; prints PASS/FAIL/SKIP
lines, exit 1 on failure.

  * bon as a data tool on a tiny model with an external judge (paid 1 for a
    completion starting with a lowercase letter): the best of 8 has a mean
    reward >= the first sample's, the files hold one best row per prompt (the
    highest-scored of its samples) and every sample;
  * RAFT on that known-optimum problem: the reward rises from near 0.1 to
    >= 0.9; SuperHF with kl_coef 0 is RAFT exactly, and a large kl_coef keeps
    the KL to the reference far below RAFT's;
  * --reset_prob 1 on prompt+completion data: every prompt is rolled in on
    1..|y*|-1 tokens of its reference completion, the judged text starts with
    that prefix, and only generated tokens are loss tokens (loss_tokens ==
    completion_length).

Runs `rlhf bon` when the CLI lists it, else build/tests/tools/bon_cli (the same
command as its own binary).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.environ.get("RLHF_BIN", os.path.join(ROOT, BUILD, "rlhf"))
BON_CLI = os.path.join(ROOT, BUILD, "tests", "tools", "bon_cli")
JUDGE = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')}"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def run(cmd, check=True, timeout=120):
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def rows(path):
    return [json.loads(x) for x in open(path) if x.strip()]


def bon_command():
    if os.path.exists(RLHF) and run([RLHF, "bon", "--help"], check=False).returncode == 0:
        return [RLHF, "bon"]
    if os.path.exists(BON_CLI):
        return [BON_CLI]
    return None


def sampling(bon, tmp, prompts):
    best, every = os.path.join(tmp, "best.jsonl"), os.path.join(tmp, "all.jsonl")
    p = run([*bon, "--model", "tiny", "--data", prompts, "--reward_command", JUDGE,
             "--num_samples", "8", "--max_new_tokens", "2", "--out", best, "--all_out", every])
    s = json.loads(p.stdout.strip().splitlines()[-1])
    report(s["reward_best_of_n"] >= s["reward_first"] and s["reward_best_of_n"] > 0,
           "bon_best_of_n_beats_first_sample",
           f"first {s['reward_first']}, best of n {s['reward_best_of_n']}")
    print(f"  bon: mean reward {s['reward_first']:.3f} (first sample), {s['reward_mean']:.3f} "
          f"(all), {s['reward_best_of_n']:.3f} (best of {s['n']})")
    b, a = rows(best), rows(every)
    ok = len(b) == s["prompts"] and len(a) == s["prompts"] * 8
    for i, r in enumerate(b):
        group = a[i * 8:(i + 1) * 8]
        kept = [g for g in group if g["best"]]
        ok = ok and set(r) == {"prompt", "completion", "reward"} and len(kept) == 1
        ok = ok and kept[0]["completion"] == r["completion"]
        ok = ok and r["reward"] == max(g["reward"] for g in group)
    report(ok, "bon_files", f"{len(b)} best rows, {len(a)} rows in all")
    # a judge that fails part way: the earlier output files stay as they were, no temp
    # file is left; --out naming the --data file is refused, the prompts kept
    before = {f: open(f).read() for f in (best, every)}
    p = run([*bon, "--model", "tiny", "--data", prompts, "--reward_command",
             f"{JUDGE} --mode crash --after 1", "--num_samples", "8", "--max_new_tokens", "2",
             "--out", best, "--all_out", every], check=False)
    left = [f for f in os.listdir(tmp) if ".tmp." in f]
    report(p.returncode != 0 and {f: open(f).read() for f in before} == before and not left,
           "bon_failed_judge_keeps_earlier_files", f"exit {p.returncode}, left {left}: "
           f"{p.stderr[-300:]}")
    data_before = open(prompts).read()
    p = run([*bon, "--model", "tiny", "--data", prompts, "--reward_command", JUDGE,
             "--num_samples", "2", "--max_new_tokens", "2", "--out", prompts], check=False)
    report(p.returncode != 0 and "--data" in p.stderr and open(prompts).read() == data_before,
           "bon_out_over_data_refused", f"exit {p.returncode}: {p.stderr[-300:]}")


def train_args(prompts, out, extra):
    return ["--model", "tiny", "--data", prompts, "--output_dir", out, "--max_steps", "30",
            "--batch_size", "4", "--num_samples", "8", "--max_new_tokens", "2",
            "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--quiet",
            "--reward_command", JUDGE, *extra]


def raft(bon, tmp, prompts):
    runs = {}
    for name, extra in (("raft", ["--train", "raft"]),
                        ("superhf0", ["--train", "superhf", "--kl_coef", "0"]),
                        ("superhf5", ["--train", "superhf", "--kl_coef", "5"])):
        out = os.path.join(tmp, name)
        run([*bon, *train_args(prompts, out, extra)])
        runs[name] = rows(os.path.join(out, "metrics.jsonl"))
    m = runs["raft"]
    r = [x["reward"] for x in m]
    start, end = sum(r[:3]) / 3, sum(r[-5:]) / 5
    keys = {"reward", "reward_kept", "kl", "loss", "nll"}
    report(len(m) == 30 and keys <= set(m[0]) and start < 0.35 and end >= 0.9
           and os.path.isdir(os.path.join(tmp, "raft", "checkpoints", "final")),
           "raft_reaches_optimum", f"reward {start:.2f} -> {end:.2f}")
    print(f"  raft: reward {start:.2f} (first 3 iterations) -> {end:.2f} (last 5), "
          f"kl {m[-1]['kl']:.2f}")
    same = [x["reward"] for x in runs["superhf0"]] == r and \
        [x["kl"] for x in runs["superhf0"]] == [x["kl"] for x in m]
    report(same, "superhf_kl_coef_0_is_raft")
    k5 = runs["superhf5"][-1]
    report("kl_vocab" in k5 and k5["kl"] < 0.25 * m[-1]["kl"], "superhf_kl_prior_holds_kl",
           f"kl {k5['kl']:.3f} (kl_coef 5) vs {m[-1]['kl']:.3f} (raft)")
    print(f"  superhf kl_coef 5: reward {k5['reward']:.2f}, kl {k5['kl']:.3f}, "
          f"kl_vocab {k5['kl_vocab']:.3f}")


def dataset_reset(tmp):
    refs = {"Q1:": "hello world", "Q2:": "abcdefgh", "Say:": "xyzzy plugh", "X=": "0123456789"}
    data = os.path.join(tmp, "pc.jsonl")
    with open(data, "w") as f:
        for q, a in refs.items():
            f.write(json.dumps({"prompt": q, "completion": a}) + "\n")
    if run([RLHF, "grpo", "--help"], check=False).returncode != 0:
        print("SKIP dataset_reset: this rlhf has no grpo command")
        return
    out = os.path.join(tmp, "reset")
    run([RLHF, "grpo", "--model", "tiny", "--data", data, "--output_dir", out, "--max_steps", "3",
         "--batch_size", "4", "--num_generations", "4", "--max_new_tokens", "2",
         "--reward_command", JUDGE, "--reset_prob", "1", "--log_samples", "16", "--quiet"])
    m = rows(os.path.join(out, "metrics.jsonl"))
    ok = len(m) == 3 and all(x["reset_share"] == 1 and x["rollin_tokens"] >= 1 for x in m)
    report(ok, "reset_rolls_in", json.dumps(m[-1])[:300])
    report(all(abs(x["loss_tokens"] - x["completion_length"]) < 1e-9 for x in m),
           "reset_rollin_not_in_loss",
           f"loss tokens {[x['loss_tokens'] for x in m]} vs generated {[x['completion_length'] for x in m]}")
    s = rows(os.path.join(out, "samples.jsonl"))
    ok = len(s) == 48
    for x in s:  # byte tokenizer: h tokens are the first h characters of y*
        ref, h = refs[x["prompt"]], x["rollin_tokens"]
        ok = ok and 1 <= h <= len(ref) - 1 and x["completion"].startswith(ref[:h])
        ok = ok and x["length"] <= 2
    report(ok, "reset_prefix_of_reference", json.dumps(s[:2])[:400])
    plain = os.path.join(tmp, "plain")
    run([RLHF, "grpo", "--model", "tiny", "--data", data, "--output_dir", plain, "--max_steps", "1",
         "--batch_size", "4", "--num_generations", "4", "--max_new_tokens", "2",
         "--reward_command", JUDGE, "--quiet"])
    report("rollin_tokens" not in rows(os.path.join(plain, "metrics.jsonl"))[0], "reset_off_by_default")


def main():
    bon = bon_command()
    tmp = tempfile.mkdtemp(prefix="bon_test.", dir=os.path.join(ROOT, BUILD))
    try:
        prompts = os.path.join(tmp, "prompts.jsonl")
        with open(prompts, "w") as f:
            for q in ("Q1:", "Q2:", "Say:", "X=") * 4:
                f.write(json.dumps({"prompt": q}) + "\n")
        parts = [dataset_reset] if os.path.exists(RLHF) else []
        if bon is None:
            print("SKIP bon: neither rlhf bon nor build/tests/tools/bon_cli is built")
        else:
            parts = [lambda t: sampling(bon, t, prompts), lambda t: raft(bon, t, prompts)] + parts
        for part in parts:
            try:
                part(tmp)
            except Exception as e:  # noqa: BLE001 - a broken part is a failure, not a crash
                report(False, getattr(part, "__name__", "part"), repr(e)[-1500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
