#!/usr/bin/env python3
"""Refactoring check: runs every trainer with two rlhf binaries on the same
seeds and data and compares what they produce — final and intermediate
weights byte for byte, metrics.jsonl and samples.jsonl (all numbers but
timings), summary.json (but seconds). Standard library only.

  scripts/same_numbers.py OLD_BIN NEW_BIN [NAME ...]

OLD_BIN is a build of the commit before the change, NEW_BIN the change.
Prints SAME/DIFF per run; exit 1 on any difference. One thread each run, so
that the numbers do not depend on OpenMP's reduction order.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SKIP = ("tokens_per_s", "time/", "seconds", "samples_per_s")


def runs(d):
    p = lambda f: os.path.join(d, f)
    common = ["--model", "tiny", "--quiet", "--logging_steps", "1"]
    online = ["--data", p("prompts.jsonl"), "--task", "arith", "--batch_size", "2",
              "--num_generations", "4", "--max_new_tokens", "4", "--learning_rate", "3e-3",
              "--max_steps", "5", "--save_steps", "3", "--log_samples", "2"]
    return {
        "sft": ["sft", "--data", p("sft.jsonl"), "--max_steps", "10", "--batch_size", "4",
                "--gradient_accumulation_steps", "2", "--eval_split", "0.05", "--eval_steps", "4",
                "--save_steps", "4", "--learning_rate", "1e-3"],
        "sft_packing": ["sft", "--data", p("sft.jsonl"), "--max_steps", "6", "--batch_size", "2",
                        "--packing", "1", "--max_length", "64", "--learning_rate", "1e-3"],
        "sft_epochs": ["sft", "--data", p("small.jsonl"), "--num_train_epochs", "2",
                       "--batch_size", "3", "--learning_rate", "1e-3"],
        "rm": ["rm", "--data", p("prefs.jsonl"), "--max_steps", "8", "--batch_size", "4",
               "--eval_split", "0.1", "--eval_steps", "4", "--save_steps", "4",
               "--center_rewards_coefficient", "0.01"],
        "rm_shared2": ["rm", "--data", p("prefs.jsonl"), "--max_steps", "5", "--batch_size", "4",
                       "--ensemble_size", "2", "--eval_split", "0.1"],
        "rm_separate2": ["rm", "--data", p("prefs.jsonl"), "--max_steps", "4", "--batch_size", "4",
                         "--ensemble_size", "2", "--ensemble_trunks", "separate"],
        "dpo": ["dpo", "--data", p("prefs.jsonl"), "--max_steps", "8", "--batch_size", "4",
                "--eval_split", "0.1", "--eval_steps", "4", "--save_steps", "4",
                "--kl_prompts", "4", "--learning_rate", "1e-3", "--gradient_accumulation_steps", "2"],
        "dpo_mix": ["dpo", "--data", p("prefs.jsonl"), "--max_steps", "6", "--batch_size", "4",
                    "--loss_type", "sigmoid,sft", "--loss_weights", "0.5,1", "--learning_rate", "1e-3"],
        "dpo_precompute": ["dpo", "--data", p("prefs.jsonl"), "--max_steps", "6", "--batch_size", "4",
                           "--precompute_ref_log_probs", "1", "--eval_split", "0.1",
                           "--loss_type", "ipo", "--learning_rate", "1e-3"],
        "dpo_trdpo": ["dpo", "--data", p("prefs.jsonl"), "--max_steps", "6", "--batch_size", "4",
                      "--sync_ref_model", "1", "--ref_model_sync_steps", "2", "--save_steps", "3",
                      "--learning_rate", "1e-3"],
        "dpo_simpo": ["dpo", "--data", p("prefs.jsonl"), "--max_steps", "5", "--batch_size", "4",
                      "--loss_type", "simpo", "--learning_rate", "1e-3"],
        "kto": ["kto", "--data", p("kto.jsonl"), "--max_steps", "6", "--batch_size", "4",
                "--learning_rate", "1e-3", "--eval_split", "0.1"],
        "raft": ["bon", "--train", "raft", "--data", p("prompts.jsonl"), "--task", "arith",
                 "--num_samples", "4", "--batch_size", "4", "--max_steps", "3", "--max_new_tokens", "4",
                 "--sft_steps", "2", "--save_steps", "2", "--learning_rate", "1e-3"],
        "superhf": ["bon", "--train", "superhf", "--data", p("prompts.jsonl"), "--task", "arith",
                    "--num_samples", "4", "--batch_size", "4", "--max_steps", "3", "--max_new_tokens", "4",
                    "--sft_steps", "2", "--learning_rate", "1e-3"],
        "grpo": ["grpo", *online],
        "grpo_filter": ["grpo", *online, "--filter", "best_worst", "--kl_in", "loss",
                        "--beta", "0.05"],
        "rloo": ["rloo", *online],
        "ppo": ["ppo", *online, "--value_head", "1", "--mini_batch_size", "1"],
        "remax": ["grpo", *online, "--adv_estimator", "remax"],
        "online_dpo": ["online-dpo", *online, "--ref_update_steps", "2"],
        "online_dpo_ipo": ["online-dpo", *online, "--loss_type", "ipo", "--pairs", "all"],
        "online_dpo_osp": ["online-dpo", *online, "--loss_type", "osp", "--judge", "self",
                           "--pairs", "ranked", "--log_pairs", "8"],
    }, common


def clean_rows(path):
    if not os.path.exists(path):
        return None
    out = []
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            out.append({k: v for k, v in r.items() if not any(k.startswith(s) for s in SKIP)})
    return out


def files_of(out):
    found = {}
    for root, _, files in os.walk(out):
        for f in files:
            full = os.path.join(root, f)
            rel = os.path.relpath(full, out)
            if f.endswith(".jsonl") and f != "ref_logps.jsonl":
                found[rel] = clean_rows(full)
            elif f in ("summary.json", "config.json"):
                j = json.load(open(full))  # run settings name the output folder
                found[rel] = {k: v for k, v in j.items()
                              if k not in ("seconds", "model", "output_dir")}
            elif f.endswith(".safetensors") or f.endswith(".json"):
                found[rel] = open(full, "rb").read()
    return found


def main():
    old, new = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    only = sys.argv[3:]
    tmp = tempfile.mkdtemp(prefix="same_numbers_")
    d = os.path.join(tmp, "data")
    subprocess.run([old, "data", "--task", "arith", "--out", d, "--digits", "1-2", "--ops", "+",
                    "--n_train", "400", "--n_eval", "20", "--n_prompts", "40", "--n_pref", "200"],
                   check=True, capture_output=True, env=ENV)
    with open(os.path.join(d, "sft.jsonl")) as f, open(os.path.join(d, "small.jsonl"), "w") as g:
        g.writelines(f.readlines()[:10])
    table, common = runs(d)
    bad = 0
    for name, args in table.items():
        if only and name not in only:
            continue
        got = []
        for tag, binary in (("old", old), ("new", new)):
            out = os.path.join(tmp, f"{name}_{tag}")
            p = subprocess.run([binary, *args, *common, "--output_dir", out], capture_output=True,
                               text=True, env=ENV, cwd=tmp)
            got.append((p.returncode, files_of(out) if p.returncode == 0 else p.stderr[-800:]))
        (rc_a, a), (rc_b, b) = got
        if rc_a != 0 or rc_b != 0:
            print(f"DIFF {name}: exit {rc_a} (old) / {rc_b} (new)\n  old: {a if rc_a else ''}\n  new: {b if rc_b else ''}")
            bad += 1
            continue
        for k in set(a) & set(b):  # run settings: a new flag adds a key, that is not a difference
            if k.endswith("config.json") and isinstance(a[k], dict) and isinstance(b[k], dict):
                common_keys = set(a[k]) & set(b[k])
                a[k] = {x: a[k][x] for x in common_keys}
                b[k] = {x: b[k][x] for x in common_keys}
        diffs = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        if diffs:
            bad += 1
            print(f"DIFF {name}: {', '.join(diffs[:8])}")
            for k in diffs[:2]:
                x, y = a.get(k), b.get(k)
                if isinstance(x, list) and isinstance(y, list):
                    for i, (r1, r2) in enumerate(zip(x, y)):
                        if r1 != r2:
                            print(f"  {k} row {i}:\n    old {r1}\n    new {r2}")
                            break
                    if len(x) != len(y):
                        print(f"  {k}: {len(x)} rows (old) vs {len(y)} (new)")
                elif isinstance(x, dict) and isinstance(y, dict):
                    for key in sorted(set(x) | set(y)):
                        if x.get(key) != y.get(key):
                            print(f"  {k} {key}: old {x.get(key)} new {y.get(key)}")
        else:
            print(f"SAME {name} ({len(a)} files)")
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
