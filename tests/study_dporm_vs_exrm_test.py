"""`rlhf study dporm-vs-exrm` (Lin et al. 2024, the DPO implicit reward
generalises worse than an explicit reward model).

1. The verdict is computed from rows: synthetic accuracies where the DPO
   implicit reward drops more than the explicit RM from the in-distribution
   split to the shifted ones (supported), where the RM drops more (not
   supported), where the drops differ only by noise (inconclusive), and where
   DPO is worse everywhere but drops as much (not supported: the claim is about
   the drop, not the level); rows without an accuracy are refused with the
   field named; the page has both curves and the table has the verdict.
2. The quick run (skipped under RLHF_SANITIZE): a row for every model x seed x
   split with an accuracy in [0, 1] and at least 10 test pairs, both models
   trained on the same pairs (one train row per seed), a verdict and the plot.
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

SPLITS = [("in", 0), ("temp", 1), ("digits3", 1), ("sub", 1), ("dpo_policy", 1)]
LABELS = ["DPO implicit reward", "explicit RM"]
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))


def synthetic(dpo_drop, rm_drop, noise, seeds=(1, 2, 3), dpo_level=0.0):
    """Rows in the study's format: each model's in-distribution accuracy, and
    shifted accuracies that much lower (plus noise)."""
    rng = random.Random(7)
    out = []
    for s in seeds:
        out.append({"method": "train", "seed": s, "pairs": 800, "rm_heldout_accuracy": 0.7,
                    "dpo_kl": 5.0})
        for method, base, drop in (("dpo", 0.78 + dpo_level, dpo_drop), ("rm", 0.7, rm_drop)):
            for split, shifted in SPLITS:
                acc = base - (drop if shifted else 0) + rng.gauss(0, noise)
                out.append({"method": method, "seed": s, "split": split, "shifted": shifted,
                            "pairs": 150, "accuracy": min(1.0, max(0.0, acc))})
    return out


def verdict_of(tmp, name, items):
    src = f"{tmp}/{name}.jsonl"
    write(src, items)
    out = f"{tmp}/{name}"
    p = run("study", "dporm-vs-exrm", "--from", src, "--out", out, check=False)
    if p.returncode != 0:
        return None, out, p.stderr[-500:]
    return json.load(open(f"{out}/verdict.json")), out, ""


def check_verdicts(tmp):
    cases = [("holds", synthetic(0.25, 0.05, 0.01), "supported"),
             ("fails", synthetic(0.05, 0.25, 0.01), "not supported"),
             ("noise", synthetic(0.1, 0.1, 0.06), "inconclusive"),
             # DPO 0.3 below the RM on every split, RM dropping more: the
             # level does not count, the drop does
             ("level_only", synthetic(0.05, 0.1, 0.005, dpo_level=-0.3), "not supported")]
    for name, items, want in cases:
        v, out, why = verdict_of(tmp, name, items)
        if v is None:
            report(False, f"dporm_verdict_{name}", why)
            continue
        report(v["verdict"] == want, f"dporm_verdict_{name}_is_{want.replace(' ', '_')}",
               f"{v['verdict']}: {v['text']}")
        if name != "holds":
            continue
        page = open(f"{out}/report.html").read()
        curves = all(f'data-label="{x}"' in page for x in LABELS)
        report(curves and page.count("<polyline") >= 2 and
               "verdict: supported" in open(f"{out}/table.txt").read() and
               "drop of dpo minus drop of the rm" in v["text"].lower(),
               "dporm_report_has_both_curves_and_table")
    bad = [r for r in synthetic(0.25, 0.05, 0.01) if r.get("split") != "sub"]
    bad.append({"method": "rm", "seed": 1, "split": "sub", "shifted": 1, "pairs": 150})
    v, out, why = verdict_of(tmp, "bad", bad)
    report(v is None and "accuracy" in why, "dporm_row_without_accuracy_refused", why)


def check_quick(tmp):
    if SANITIZE:
        print("SKIP dporm_quick_run: RLHF_SANITIZE (minutes under the sanitizers)")
        return
    out = os.path.join(ROOT, BUILD, "tmp", "study-dporm-vs-exrm")
    base = os.path.join(ROOT, BUILD, "tmp", "study-base")
    p = run("study", "dporm-vs-exrm", "--quick", "--base", base, "--out", out,
            "--overwrite_output_dir", check=False, timeout=1200)
    if p.returncode != 0:
        report(False, "dporm_quick_run", p.stderr[-1500:])
        return
    rs = rows(f"{out}/results.jsonl")
    acc = [r for r in rs if r["method"] in ("dpo", "rm")]
    seeds = sorted({r["seed"] for r in acc})
    have = {(r["method"], r["seed"], r["split"]) for r in acc
            if math.isfinite(r["accuracy"]) and 0 <= r["accuracy"] <= 1 and r["pairs"] >= 10}
    # a shifted split with fewer than 10 usable pairs is left out with a "skipped" row
    skipped = {(r["seed"], r["split"]) for r in rs if r["method"] == "skipped"}
    missing = [(m, s, sp) for m in ("dpo", "rm") for s in seeds for sp, _ in SPLITS
               if (m, s, sp) not in have and (s, sp) not in skipped]
    shifted_ok = all(any((m, s, sp) in have for sp, sh in SPLITS if sh)
                     for m in ("dpo", "rm") for s in seeds)
    report(len(seeds) == 2 and not missing and shifted_ok and
           all(("dpo", s, "in") in have for s in seeds),
           "dporm_quick_rows_for_every_model_seed_split",
           f"seeds {seeds}, missing {missing}, skipped {sorted(skipped)}")
    train = [r for r in rs if r["method"] == "train"]
    report(sorted(r["seed"] for r in train) == seeds and all(r["pairs"] >= 40 for r in train),
           "dporm_quick_one_train_row_per_seed", str(train))
    v = json.load(open(f"{out}/verdict.json"))
    page = open(f"{out}/report.html").read()
    report(v["verdict"] in ("supported", "not supported", "inconclusive") and
           page.count("<polyline") >= 2, "dporm_quick_verdict_and_plots",
           f"{v['verdict']} {v['figure']}")
    print(f"# dporm-vs-exrm quick: {v['seconds']} s, {v['verdict']}: {v['figure']}")


def main():
    tmp = tempfile.mkdtemp(prefix="rlhf-dporm-")
    try:
        check_verdicts(tmp)
        check_quick(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
