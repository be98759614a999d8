"""`rlhf study pf-ppo` (Zhang et al. 2024, policy filtration in RLHF).

1. The verdict is computed from rows: synthetic results where best-random and
   best-worst filtering keep a higher late gold reward than plain PPO
   (supported), where they end lower (not supported), and where the
   differences are noise around zero (inconclusive); the late gold is the mean
   over the second half of training, so a late checkpoint moves it and an early
   one does not; the page has a polyline for every method.
2. The quick run (skipped under RLHF_SANITIZE): rows for every method x seed,
   the same pi_ref row (step 0) for every method of a seed, the trainer
   really filtered (the runs' config.json), a verdict, and the plots.
"""
import json
import math
import os
import random
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, report, run, rows, write, exit_code  # noqa: E402

METHODS = ["none", "best_random", "best_worst"]
LABELS = ["PPO (no filter)", "PF-PPO best-random (BR)", "PF-PPO best-worst (BW)"]
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))


def synthetic(effect, noise, seeds=(1, 2, 3), early=0.0):
    """Rows in the study's format: plain PPO's gold falls over training; the
    filtered runs end `effect` above it (plus noise); `early` is added to the
    filtered runs' first-half checkpoints only."""
    rng = random.Random(7)
    out = []
    for s in seeds:
        out.append({"phase": "rm", "seed": s, "labels": 300, "accuracy": 0.6})
        for m in METHODS:
            shift = (0 if m == "none" else effect) + rng.gauss(0, noise)
            for step in (0, 20, 40, 60, 80):
                frac = step / 80
                gold = 0.66 - 0.2 * frac + shift * frac
                if m != "none" and 0 < step <= 40:
                    gold += early
                out.append({"phase": "rl", "method": m, "seed": s, "step": step, "kl": frac,
                            "gold": gold, "proxy": frac})
    return out


def verdict_of(tmp, name, items):
    src = f"{tmp}/{name}.jsonl"
    write(src, items)
    out = f"{tmp}/{name}"
    p = run("study", "pf-ppo", "--from", src, "--out", out, check=False)
    if p.returncode != 0:
        return None, out, p.stderr[-500:]
    return json.load(open(f"{out}/verdict.json")), out, ""


def check_verdicts(tmp):
    cases = [("holds", synthetic(0.05, 0.005), "supported"),
             ("fails", synthetic(-0.05, 0.005), "not supported"),
             ("noise", synthetic(0.0, 0.05), "inconclusive"),
             # better only in the first half of training: the late gold ignores it
             ("early_only", synthetic(-0.05, 0.005, early=0.5), "not supported")]
    for name, items, want in cases:
        v, out, why = verdict_of(tmp, name, items)
        if v is None:
            report(False, f"pf_ppo_verdict_{name}", why)
            continue
        report(v["verdict"] == want, f"pf_ppo_verdict_{name}_is_{want.replace(' ', '_')}",
               f"{v['verdict']}: {v['text']}")
        if name != "holds":
            continue
        page = open(f"{out}/report.html").read()
        curves = all(f'data-label="{x}"' in page for x in LABELS)
        report(curves and page.count("<polyline") >= 3 * 3 and
               "verdict: supported" in open(f"{out}/table.txt").read(),
               "pf_ppo_report_has_every_curve_and_table")


def check_quick(tmp):
    if SANITIZE:
        print("SKIP pf_ppo_quick_run: RLHF_SANITIZE (minutes under the sanitizers)")
        return
    out = os.path.join(ROOT, BUILD, "tmp", "study-pf-ppo")
    base = os.path.join(ROOT, BUILD, "tmp", "study-base")
    p = run("study", "pf-ppo", "--quick", "--base", base, "--out", out,
            "--overwrite_output_dir", check=False, timeout=1200)
    if p.returncode != 0:
        report(False, "pf_ppo_quick_run", p.stderr[-1500:])
        return
    rs = rows(f"{out}/results.jsonl")
    rl = [r for r in rs if r["phase"] == "rl"]
    seeds = sorted({r["seed"] for r in rl})
    have = {(r["method"], r["seed"]) for r in rl if r["step"] > 0}
    missing = [(m, s) for m in METHODS for s in seeds if (m, s) not in have]
    report(len(seeds) == 2 and not missing and all(math.isfinite(r["gold"]) for r in rl),
           "pf_ppo_quick_rows_for_every_method_and_seed", f"seeds {seeds}, missing {missing}")
    ref = [[r["gold"] for r in rl if r["seed"] == s and r["step"] == 0] for s in seeds]
    report(all(len(g) == 3 and len(set(g)) == 1 for g in ref), "pf_ppo_quick_one_pi_ref_row_per_seed",
           str(ref))
    filters = []
    for m in METHODS:
        cfg = json.load(open(f"{out}/runs/seed{seeds[0]}/ppo-{m}/config.json"))
        filters.append(cfg.get("filter"))
    report(filters == METHODS, "pf_ppo_quick_runs_filter_as_named", str(filters))
    v = json.load(open(f"{out}/verdict.json"))
    page = open(f"{out}/report.html").read()
    report(v["verdict"] in ("supported", "not supported", "inconclusive") and
           page.count("<polyline") >= 3 * 3, "pf_ppo_quick_verdict_and_plots",
           f"{v['verdict']} {v['figure']}")
    print(f"# pf-ppo quick: {v['seconds']} s, {v['verdict']}: {v['figure']}")


def main():
    tmp = tempfile.mkdtemp(prefix="rlhf-pf-ppo-")
    try:
        check_verdicts(tmp)
        check_quick(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
