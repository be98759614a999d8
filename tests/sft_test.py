"""End-to-end checks of the text pipeline through the CLI: `rlhf data`,
`rlhf sft` (loss falls, run directory, resume bit-for-bit, --config, flag
errors), `rlhf eval` (hand-made completions scored by the verifier) and a
short variant of the demo. Standard library only; prints PASS/FAIL/SKIP lines.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
failed = 0


def report(ok, name, why=""):
    global failed
    if ok:
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {why}")


def run(*args, check=True):
    p = subprocess.run([RLHF, *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    if check and p.returncode != 0:
        raise RuntimeError(f"rlhf {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    if not os.path.exists(RLHF):
        report(False, "binary", f"{RLHF} missing (run make)")
        return
    tmp = tempfile.mkdtemp(prefix="sft_test.", dir=os.path.join(ROOT, BUILD))
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--n_train", "2000", "--n_eval", "100")
    report(all(os.path.exists(os.path.join(data, f)) for f in
               ["sft.jsonl", "prefs.jsonl", "prompts.jsonl", "kto.jsonl", "eval.jsonl", "task.json"]),
           "data_writes_all_files")

    # SFT: the loss falls on a fixed seed, and the run directory is complete
    common = ["--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--batch_size", "32",
              "--learning_rate", "3e-3", "--logging_steps", "10", "--seed", "7", "--quiet"]
    r1 = os.path.join(tmp, "r1")
    run("sft", *common, "--output_dir", r1, "--max_steps", "60", "--eval_split", "0.05",
        "--save_steps", "30")
    m = [x for x in metrics(r1) if "loss" in x]
    ok = len(m) == 6 and m[-1]["loss"] < m[0]["loss"] - 0.5
    report(ok, "sft_loss_falls", f"losses {[round(x['loss'], 3) for x in m]}")
    ev = [x for x in metrics(r1) if "eval_loss" in x]
    report(len(ev) == 1 and ev[0]["eval_loss"] < 3.0, "sft_eval_loss", str(ev))
    summ = json.load(open(os.path.join(r1, "summary.json")))
    cfg = json.load(open(os.path.join(r1, "config.json")))
    report(summ["steps"] == 60 and cfg["learning_rate"] == 0.003 and cfg["seed"] == 7
           and os.path.exists(os.path.join(r1, "checkpoints", "step-00000030", "model.safetensors"))
           and os.path.exists(os.path.join(r1, "checkpoints", "final", "optimizer.safetensors")),
           "sft_run_directory", f"summary {summ}")

    # resume: stop at 30, resume to 60 == one run of 60, bit for bit
    r2 = os.path.join(tmp, "r2")
    run("sft", *common, "--output_dir", r2, "--max_steps", "60", "--eval_split", "0.05",
        "--save_steps", "30")
    shutil.rmtree(os.path.join(r2, "checkpoints", "final"))
    run("sft", *common, "--output_dir", r2, "--max_steps", "60", "--eval_split", "0.05",
        "--save_steps", "30", "--resume")
    a = open(os.path.join(r1, "checkpoints", "final", "model.safetensors"), "rb").read()
    b = open(os.path.join(r2, "checkpoints", "final", "model.safetensors"), "rb").read()
    report(a == b, "sft_resume_bit_exact", "weights differ after resume")

    # --packing (TRL's padding-free packing): documents packed into rows keep to themselves
    # (per-document causal attention, positions restarting at 0), so on the same model and
    # the same documents the first step's loss and gradient norm equal the unpacked ones
    small = os.path.join(tmp, "small.jsonl")
    with open(os.path.join(data, "sft.jsonl")) as f, open(small, "w") as g:
        g.writelines(f.readlines()[:24])
    got = {}
    for name, extra in (("plain", []), ("packed", ["--packing"])):
        out = os.path.join(tmp, "pack_" + name)
        run("sft", "--model", r1, "--data", small, "--batch_size", "24", "--max_length", "64",
            "--max_steps", "1", "--logging_steps", "1", "--seed", "3", "--quiet",
            "--output_dir", out, *extra)
        got[name] = [x for x in metrics(out) if "loss" in x][0]
    lp, lq = got["plain"]["loss"], got["packed"]["loss"]
    gp, gq = got["plain"]["grad_norm"], got["packed"]["grad_norm"]
    report(abs(lp - lq) <= 1e-5 * max(1.0, abs(lp)) and abs(gp - gq) <= 1e-4 * max(gp, 1e-6)
           and got["plain"]["num_tokens"] == got["packed"]["num_tokens"],
           "sft_packing_equals_unpacked",
           f"loss {lq:.6f} packed vs {lp:.6f} unpacked, grad_norm {gq:.6g} vs {gp:.6g}, "
           f"tokens {got['packed']['num_tokens']} vs {got['plain']['num_tokens']}")
    print(f"# sft --packing: first-step loss {lq:.6f} packed, {lp:.6f} unpacked; "
          f"grad_norm {gq:.6g} vs {gp:.6g}")

    # --config: same keys as the flags; the command line wins
    conf = os.path.join(tmp, "conf.json")
    json.dump({"max_steps": 5, "learning_rate": 1e-3, "batch_size": 4}, open(conf, "w"))
    r3 = os.path.join(tmp, "r3")
    run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--config", conf,
        "--output_dir", r3, "--max_steps", "3", "--quiet")
    c3 = json.load(open(os.path.join(r3, "config.json")))
    report(c3["max_steps"] == 3 and c3["learning_rate"] == 0.001 and
           c3["per_device_train_batch_size"] == 4, "sft_config_file", str(c3))
    # a run's own config.json (nulls for the flags left unset) is a --config that
    # reproduces the run's settings; a null where a flag has no "none" is refused
    r3b = os.path.join(tmp, "r3b")
    run("sft", "--config", os.path.join(r3, "config.json"), "--output_dir", r3b)
    c4 = json.load(open(os.path.join(r3b, "config.json")))
    nulls = [k for k, v in c3.items() if v is None]
    report(nulls and {k: v for k, v in c4.items() if k != "output_dir"} ==
           {k: v for k, v in c3.items() if k != "output_dir"},
           "sft_config_json_round_trip", f"nulls {nulls}")
    bad_null = os.path.join(tmp, "bad_null.json")
    json.dump({"learning_rate": None}, open(bad_null, "w"))
    p = run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--config",
            bad_null, "--output_dir", os.path.join(tmp, "r3c"), check=False)
    report(p.returncode == 2 and "learning_rate" in p.stderr and not os.path.exists(os.path.join(tmp, "r3c")),
           "sft_config_null_refused_where_no_none", p.stderr)

    # bad flags and values name the flag; bad data names file:line
    p = run("sft", "--model", "tiny", "--data", "x", "--learning_rat", "1", check=False)
    report(p.returncode == 2 and "--learning_rat" in p.stderr, "sft_unknown_flag", p.stderr)
    p = run("sft", "--model", "tiny", "--data", "x", "--max_steps", "ten", check=False)
    report(p.returncode == 2 and "--max_steps" in p.stderr, "sft_bad_value", p.stderr)
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"prompt": "1+1=", "completion": "2"}\n{"prompt": "2+2=", "completion": 4}\n')
    p = run("sft", "--model", "tiny", "--data", bad, "--max_steps", "1", "--output_dir",
            os.path.join(tmp, "r4"), check=False)
    report(p.returncode == 1 and "bad.jsonl:2" in p.stderr, "sft_bad_line_names_file_line", p.stderr)
    p = run("sft", "--model", "tiny", "--data", bad, "--max_steps", "1", "--skip_bad_lines",
            "--output_dir", os.path.join(tmp, "r3c"), "--quiet", check=False)
    report(p.returncode == 0 and "skipped 1" in p.stderr, "sft_skip_bad_lines", p.stderr)

    # eval scores hand-made completions with the gold verifier
    hand = os.path.join(tmp, "hand.jsonl")
    rows = [("37+485=", "522", 1), ("37+485=", "412", 0), ("5-9=", "-4", 1), ("5-9=", "4", 0),
            ("100-1=", " 99\n", 1), ("12+0=", "012", 0), ("3+4=", "", 0)]
    with open(hand, "w") as f:
        for prm, comp, _ in rows:
            f.write(json.dumps({"prompt": prm, "completion": comp if comp else " "}) + "\n")
    out = json.loads(run("eval", "--task", "arith", "--completions", hand).stdout)
    want = sum(r[2] for r in rows) / len(rows)
    report(abs(out["accuracy"] - want) < 1e-6 and out["n"] == len(rows), "eval_hand_made",
           f"{out} want accuracy {want}")

    # eval of a trained model prints the promised fields
    out = json.loads(run("eval", "--task", "arith", "--model", r1, "--data",
                         os.path.join(data, "eval.jsonl"), "--limit", "40",
                         "--samples_per_prompt", "2").stdout)
    report(all(k in out for k in ["accuracy", "sampled_accuracy", "mean_reward", "n"]) and
           out["n"] == 40 and 0 <= out["accuracy"] <= 1, "eval_model_fields", str(out))

    # a short variant of the demo
    env = {**os.environ, "BUILD": BUILD, "DEMO_DIR": os.path.join(tmp, "demo"), "DEMO_QUICK": "1"}
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh")], cwd=ROOT,
                       capture_output=True, text=True, env=env)
    ok = p.returncode == 0
    if ok:
        s = json.load(open(os.path.join(tmp, "demo", "summary.json")))
        stages = s["stages"]
        ok = (len(stages) >= 1 and stages[0]["name"] == "sft" and
              all(k in stages[0] for k in ["accuracy", "sampled_accuracy", "seconds"]))
    report(ok, "demo_quick", (p.stdout + p.stderr)[-1500:])
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash of the harness is a failure, with its reason
        report(False, "sft_test", repr(e))
    sys.exit(1 if failed else 0)
