"""`rlhf study online-vs-offline` (Tang et al. 2024, the online/offline gap).

1. The verdict is computed from rows: synthetic gold-vs-KL curves where online
   DPO is above offline DPO (supported), below it (not supported), or the same
   up to noise (inconclusive); the comparison is at the matched KL (the
   largest KL every curve of a seed reaches), so offline DPO climbing only
   beyond online DPO's KL range does not change it; the matched gold is the
   curve interpolated between checkpoints (checked against a hand computation
   in the seed table); the page has every curve's polyline.
2. The quick run (skipped under RLHF_SANITIZE): rows for every method x seed,
   one pi_ref row per seed shared by all methods, the same gold-label budget
   for all methods at the end, the runs trained as named (config.json), a
   verdict, and the plots.
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

METHODS = ["offline-dpo", "online-dpo", "grpo"]
LABELS = ["offline DPO", "online DPO", "GRPO"]
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))


def synthetic(slope_on, noise, seeds=(1, 2, 3), offline_late=0.0, kl_top=None):
    """Rows in the study's format: gold = 0.66 + slope * KL along each curve;
    offline DPO's slope is 0.02, online DPO's slope_on, GRPO's 0.1 (the
    online ones + noise per seed). Offline DPO reaches KL 2, online DPO 0.6, GRPO 0.7;
    `offline_late` is added to offline checkpoints beyond KL 1 only."""
    rng = random.Random(5)
    kl_top = kl_top or {"offline-dpo": 2.0, "online-dpo": 0.6, "grpo": 0.7}
    slope = {"offline-dpo": 0.02, "online-dpo": slope_on, "grpo": 0.1}
    out = []
    for s in seeds:
        shift = {m: 0.0 if m == "offline-dpo" else rng.gauss(0, noise) for m in METHODS}
        for m in METHODS:
            for i in range(5):
                kl = kl_top[m] * i / 4
                gold = 0.66 + (slope[m] + shift[m]) * kl
                if m == "offline-dpo" and kl > 1.0:
                    gold += offline_late
                out.append({"method": m, "seed": s, "step": i * 20, "labels": i * 640,
                            "kl": kl, "gold": gold, "accuracy": 0.9})
    return out


def verdict_of(tmp, name, items):
    src = f"{tmp}/{name}.jsonl"
    write(src, items)
    out = f"{tmp}/{name}"
    p = run("study", "online-vs-offline", "--from", src, "--out", out, check=False)
    if p.returncode != 0:
        return None, out, p.stderr[-500:]
    return json.load(open(f"{out}/verdict.json")), out, ""


def check_page(out):
    page = open(f"{out}/report.html").read()
    curves = all(f'data-label="{x}"' in page for x in LABELS)
    per_seed = all(f'data-label="{m}, seed {s}"' in page for m in METHODS for s in (1, 2, 3))
    table = open(f"{out}/table.txt").read()
    report(curves and per_seed and page.count("<polyline") >= 3 and
           "verdict: supported" in table, "ovo_report_has_every_curve_and_table")
    # the matched KL of every seed is 0.6 (online DPO's top): offline gold there
    # is 0.66 + 0.02 * 0.6 = 0.672 by interpolation between its checkpoints at
    # KL 0.5 and 1 (the nearest checkpoint would give 0.67 or 0.68)
    report("<td>0.6000</td>" in page and "<td>0.6720</td>" in page,
           "ovo_report_matched_kl_interpolated", "seed table lacks matched KL 0.6 / offline 0.672")


def check_verdicts(tmp):
    cases = [("holds", synthetic(0.2, 0.01), "supported"),
             ("fails", synthetic(-0.2, 0.01), "not supported"),
             ("noise", synthetic(0.02, 0.3), "inconclusive"),
             # offline climbs far above online, but only at KLs online never reaches
             ("offline_late", synthetic(0.2, 0.01, offline_late=0.5), "supported"),
             # one seed only: no standard error, no decision
             ("one_seed", synthetic(0.2, 0.01, seeds=(1,)), "inconclusive")]
    for name, items, want in cases:
        v, out, why = verdict_of(tmp, name, items)
        if v is None:
            report(False, f"ovo_verdict_{name}", why)
            continue
        report(v["verdict"] == want, f"ovo_verdict_{name}_is_{want.replace(' ', '_')}",
               f"{v['verdict']}: {v['text']}")
        if name == "holds":
            # per seed: online DPO's last point (KL 0.6) minus offline's 0.672
            d = [r["gold"] - 0.672 for r in items if r["method"] == "online-dpo" and r["step"] == 80]
            want_fig = f"{sum(d) / len(d):+.3f}"
            report(v["figure"].startswith(want_fig), "ovo_verdict_figure_is_the_matched_difference",
                   f"{v['figure']} (want {want_fig})")
            check_page(out)
    # a results file without any usable curve: a verdict, not a crash
    v, _, why = verdict_of(tmp, "empty", [{"method": "grpo", "seed": 1, "step": 0, "kl": 0,
                                          "gold": 0.6}])
    report(v is not None and v["verdict"] == "inconclusive", "ovo_verdict_without_curves",
           why or str(v))


def check_quick(tmp):
    if SANITIZE:
        print("SKIP ovo_quick_run: RLHF_SANITIZE (minutes under the sanitizers)")
        return
    out = os.path.join(ROOT, BUILD, "tmp", "study-online-vs-offline")
    base = os.path.join(ROOT, BUILD, "tmp", "study-base")
    p = run("study", "online-vs-offline", "--quick", "--base", base, "--out", out,
            "--overwrite_output_dir", check=False, timeout=1200)
    if p.returncode != 0:
        report(False, "ovo_quick_run", p.stderr[-1500:])
        return
    rs = rows(f"{out}/results.jsonl")
    seeds = sorted({r["seed"] for r in rs})
    have = {(r["method"], r["seed"]) for r in rs if r["step"] > 0}
    missing = [(m, s) for m in METHODS for s in seeds if (m, s) not in have]
    report(len(seeds) == 2 and not missing and
           all(math.isfinite(r["gold"]) and math.isfinite(r["kl"]) for r in rs),
           "ovo_quick_rows_for_every_method_and_seed", f"seeds {seeds}, missing {missing}")
    ref = [[(r["gold"], r["kl"]) for r in rs if r["seed"] == s and r["step"] == 0] for s in seeds]
    report(all(len(g) == 3 and len(set(g)) == 1 and g[0][1] == 0 for g in ref),
           "ovo_quick_one_pi_ref_row_per_seed", str(ref))
    spent = {m: max(r["labels"] for r in rs if r["method"] == m) for m in METHODS}
    report(len(set(spent.values())) == 1 and spent["grpo"] > 0, "ovo_quick_same_label_budget",
           str(spent))
    cfg = {m: json.load(open(f"{out}/runs/seed{seeds[0]}/{m}/config.json")) for m in METHODS}
    report(cfg["online-dpo"].get("task") == "arith:shaped" and
           cfg["grpo"].get("task") == "arith:shaped" and
           cfg["offline-dpo"].get("beta") == cfg["online-dpo"].get("beta") and
           cfg["offline-dpo"].get("learning_rate") == cfg["online-dpo"].get("learning_rate"),
           "ovo_quick_runs_trained_as_named", str(cfg["online-dpo"].get("task")))
    v = json.load(open(f"{out}/verdict.json"))
    page = open(f"{out}/report.html").read()
    report(v["verdict"] in ("supported", "not supported", "inconclusive") and
           page.count("<polyline") >= 3 and "matched KL" in v["text"],
           "ovo_quick_verdict_and_plots", f"{v['verdict']} {v['figure']}")
    print(f"# online-vs-offline quick: {v['seconds']} s, {v['verdict']}: {v['figure']}")


def main():
    tmp = tempfile.mkdtemp(prefix="rlhf-ovo-")
    try:
        check_verdicts(tmp)
        check_quick(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
