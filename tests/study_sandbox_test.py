"""The gold-reward sandbox under `rlhf study`: `rlhf pairs --label gold`
(gold values against an independent scorer written here, the higher gold
chosen at T = 0, Bradley-Terry inversions at T > 0 as many as the formula
expects), `rlhf eval --reward_model` (proxy_reward is the mean of the
per-sample proxy scores it writes, sample_gold matches the scorer here), and
the `rlhf study` command's refusals (no name, unknown study, a malformed
results file, an earlier study's results kept unless --overwrite_output_dir).
"""
import json
import math
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import report, run, exit_code  # noqa: E402


def rows(path):
    """JSONL whose strings may hold raw bytes (a byte-level model's samples are
    not always UTF-8; the files keep them as sampled)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [json.loads(x) for x in f if x.strip()]


def gold(prompt, completion):
    """The arith task's shaped reward, from its documentation (data/task.h)."""
    m = re.fullmatch(r"\s*(\d+)\s*([+-])\s*(\d+)\s*=\s*", prompt)
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    answer = a + b if op == "+" else a - b
    text = completion.strip(" \t\n\r\v\f")
    if not re.fullmatch(r"0|-?[1-9][0-9]{0,17}", text):
        return 0.0
    v = int(text)
    if v == answer:
        return 1.0
    return 0.5 / (1 + math.log10(1 + abs(v - answer)))


def setup(tmp):
    run("data", "--task", "arith", "--out", f"{tmp}/data", "--digits", "1-2", "--ops", "+",
        "--n_train", "2000", "--n_prompts", "400", "--n_eval", "60", "--n_pref", "10")
    run("sft", "--model", "tiny", "--data", f"{tmp}/data/sft.jsonl", "--output_dir",
        f"{tmp}/sft", "--max_steps", "60", "--batch_size", "32", "--learning_rate", "2e-3",
        "--save_steps", "0", "--quiet")


def check_gold_pairs(tmp):
    out = f"{tmp}/pairs0.jsonl"
    run("pairs", "--model", f"{tmp}/sft", "--prompts", f"{tmp}/data/prompts.jsonl",
        "--label", "gold", "--out", out, "--num_samples", "4", "--max_new_tokens", "6")
    ps = rows(out)
    ok_gold = all(abs(p["chosen_gold"] - gold(p["prompt"], p["chosen"])) < 1e-9 and
                  abs(p["rejected_gold"] - gold(p["prompt"], p["rejected"])) < 1e-9 for p in ps)
    report(len(ps) > 50 and ok_gold, "gold_pairs_values_match_an_independent_scorer",
           f"{len(ps)} pairs")
    report(all(p["chosen_gold"] > p["rejected_gold"] and p["chosen"] != p["rejected"] and
               p["chosen"] and p["rejected"] for p in ps),
           "gold_pairs_T0_the_higher_gold_is_chosen_ties_dropped")
    # T > 0: P(inverted) = sigmoid(-|g_a - g_b| / T) for each pair
    T = 0.3
    out = f"{tmp}/pairsT.jsonl"
    run("pairs", "--model", f"{tmp}/sft", "--prompts", f"{tmp}/data/prompts.jsonl",
        "--label", "gold", "--bt_temperature", str(T), "--out", out, "--num_samples", "4",
        "--max_new_tokens", "6", "--seed", "3")
    ps = rows(out)
    inv = sum(p["chosen_gold"] < p["rejected_gold"] for p in ps)
    probs = [1 / (1 + math.exp(abs(p["chosen_gold"] - p["rejected_gold"]) / T)) for p in ps]
    mean, var = sum(probs), sum(q * (1 - q) for q in probs)
    report(len(ps) > 50 and abs(inv - mean) <= 4 * math.sqrt(var) + 1 and inv > 0,
           "gold_pairs_bradley_terry_inversions_as_expected",
           f"{inv} inverted of {len(ps)}, expected {mean:.1f} +- {math.sqrt(var):.1f}")
    p = run("pairs", "--model", f"{tmp}/sft", "--prompts", f"{tmp}/data/prompts.jsonl",
            "--label", "best", "--out", f"{tmp}/x.jsonl", check=False)
    report(p.returncode == 2 and "--label" in p.stderr, "pairs_bad_label_refused", p.stderr)
    p = run("pairs", "--model", f"{tmp}/sft", "--prompts", f"{tmp}/data/prompts.jsonl",
            "--label", "gold", "--reward_command", "cat", "--out", f"{tmp}/x.jsonl", check=False)
    report(p.returncode == 2 and "reward_command" in p.stderr, "pairs_gold_with_command_refused",
           p.stderr)
    return f"{tmp}/pairsT.jsonl"


def check_eval_proxy(tmp, pairs):
    run("rm", "--model", f"{tmp}/sft", "--data", pairs, "--output_dir", f"{tmp}/rm",
        "--max_steps", "8", "--batch_size", "16", "--learning_rate", "1e-3", "--save_steps", "0",
        "--quiet")
    p = run("eval", "--task", "arith", "--model", f"{tmp}/sft", "--data",
            f"{tmp}/data/eval.jsonl", "--limit", "20", "--samples_per_prompt", "3",
            "--max_new_tokens", "6", "--reward_model", f"{tmp}/rm", "--output",
            f"{tmp}/ev.jsonl")
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    ev = rows(f"{tmp}/ev.jsonl")
    proxies = [x for r in ev for x in r["sample_proxy"]]
    golds = [x for r in ev for x in r["sample_gold"]]
    ok = len(proxies) == 60 and len(golds) == 60
    report(ok and abs(summary["proxy_reward"] - sum(proxies) / 60) < 1e-5,
           "eval_proxy_reward_is_the_mean_of_sample_proxy", str(summary))
    report(ok and all(abs(g - gold(r["prompt"], s)) < 1e-9 for r in ev
                      for g, s in zip(r["sample_gold"], r["samples"])) and
           abs(summary["mean_reward"] - sum(golds) / 60) < 1e-5,
           "eval_sample_gold_matches_the_scorer_and_mean_reward")
    p = run("eval", "--task", "arith", "--model", f"{tmp}/sft", "--data",
            f"{tmp}/data/eval.jsonl", "--limit", "5", "--reward_model", f"{tmp}/nope", check=False)
    report(p.returncode == 1 and "nope" in p.stderr, "eval_missing_reward_model_named", p.stderr)


def check_study_cli(tmp):
    p = run("study", check=False)
    report(p.returncode == 2 and "rlhf study NAME" in p.stderr, "study_without_name_refused",
           p.stderr)
    p = run("study", "no-such-study", "--out", f"{tmp}/s", check=False)
    report(p.returncode == 2 and "unknown study" in p.stderr, "study_unknown_refused", p.stderr)
    names = run("study", "--list").stdout.split()
    if not names:
        print("SKIP study_from_and_overwrite_checks: no study is built in")
        return
    name = names[0]
    bad = f"{tmp}/bad.jsonl"
    with open(bad, "w") as f:
        f.write('{"method": "a"}\nnot json\n')
    p = run("study", name, "--from", bad, "--out", f"{tmp}/s1", check=False)
    report(p.returncode == 1 and "bad.jsonl:2" in p.stderr, "study_from_malformed_names_line",
           p.stderr)
    os.makedirs(f"{tmp}/s2", exist_ok=True)
    with open(f"{tmp}/s2/results.jsonl", "w") as f:
        f.write('{"keep": 1}\n')
    p = run("study", name, "--out", f"{tmp}/s2", "--quick", check=False)
    kept = open(f"{tmp}/s2/results.jsonl").read() == '{"keep": 1}\n'
    report(p.returncode == 1 and "--overwrite_output_dir" in p.stderr and kept,
           "study_keeps_earlier_results", p.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="rlhf-sandbox-")
    try:
        setup(tmp)
        pairs = check_gold_pairs(tmp)
        check_eval_proxy(tmp, pairs)
        check_study_cli(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
