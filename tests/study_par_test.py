"""`rlhf study par` (Fu et al. 2025, PAR: Preference As Reward).

1. The verdict is computed from rows: synthetic curves where raw PPO hacks the
   proxy (proxy up, gold down) and PAR keeps the gold (supported), where PAR
   ends lower than raw (not supported), where PAR ends higher but raw never
   hacked (inconclusive: nothing to mitigate), and where the difference is
   noise (inconclusive); the final gold is the last checkpoint's, so an early
   lead of PAR does not count; rows without a gold are refused with the field
   named; the page has gold and proxy curves of both methods.
2. The quick run (skipped under RLHF_SANITIZE): a proxy RM row and rows for
   every method x seed, pi_ref as step 0 of both methods of a seed, the PAR
   run really shaped (its config.json), a verdict and the plots.
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

METHODS = ["raw", "par"]
LABELS = ["PPO, raw proxy reward", "PPO, PAR-shaped reward"]
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))


def synthetic(raw_fall, par_fall, noise, seeds=(1, 2, 3), par_early=0.0):
    """Rows in the study's format: both methods start at pi_ref (gold 0.65) and
    the proxy rises; raw's gold falls by raw_fall by the end, PAR's by
    par_fall (plus noise); par_early is added to PAR's middle checkpoints."""
    rng = random.Random(7)
    out = []
    for s in seeds:
        out.append({"method": "proxy_rm", "seed": s, "labels": 200, "accuracy": 0.65})
        for m, fall in (("raw", raw_fall), ("par", par_fall)):
            end_noise = rng.gauss(0, noise)
            for step in (0, 50, 100, 150, 200):
                frac = step / 200
                gold = 0.65 - (fall + end_noise) * frac
                if m == "par" and 0 < step < 200:
                    gold += par_early
                out.append({"method": m, "seed": s, "step": step, "gold": gold,
                            "proxy": 0.5 + 2 * frac, "kl": 5 * frac, "accuracy": gold})
    return out


def verdict_of(tmp, name, items):
    src = f"{tmp}/{name}.jsonl"
    write(src, items)
    out = f"{tmp}/{name}"
    p = run("study", "par", "--from", src, "--out", out, check=False)
    if p.returncode != 0:
        return None, out, p.stderr[-500:]
    return json.load(open(f"{out}/verdict.json")), out, ""


def check_verdicts(tmp):
    cases = [("holds", synthetic(0.3, 0.02, 0.01), "supported"),
             ("fails", synthetic(0.1, 0.3, 0.01), "not supported"),
             # PAR ends higher, but raw's gold rose: no hacking to mitigate
             ("no_hacking", synthetic(-0.1, -0.3, 0.01), "inconclusive"),
             ("noise", synthetic(0.3, 0.3, 0.08), "inconclusive"),
             # PAR ahead in the middle of training only: the final gold decides
             ("early_only", synthetic(0.1, 0.3, 0.01, par_early=0.5), "not supported")]
    for name, items, want in cases:
        v, out, why = verdict_of(tmp, name, items)
        if v is None:
            report(False, f"par_verdict_{name}", why)
            continue
        report(v["verdict"] == want, f"par_verdict_{name}_is_{want.replace(' ', '_')}",
               f"{v['verdict']}: {v['text']}")
        if name != "holds":
            continue
        page = open(f"{out}/report.html").read()
        curves = all(page.count(f'data-label="{x}"') >= 3 for x in LABELS)
        report(curves and page.count("<polyline") >= 4 and
               "verdict: supported" in open(f"{out}/table.txt").read(),
               "par_report_has_gold_and_proxy_curves_and_table")
    bad = synthetic(0.3, 0.02, 0.01)
    del bad[3]["gold"]
    v, out, why = verdict_of(tmp, "bad", bad)
    report(v is None and '"gold"' in why, "par_row_without_gold_refused", why)


def check_quick(tmp):
    if SANITIZE:
        print("SKIP par_quick_run: RLHF_SANITIZE (minutes under the sanitizers)")
        return
    out = os.path.join(ROOT, BUILD, "tmp", "study-par")
    base = os.path.join(ROOT, BUILD, "tmp", "study-base")
    p = run("study", "par", "--quick", "--base", base, "--out", out, "--overwrite_output_dir",
            check=False, timeout=1200)
    if p.returncode != 0:
        report(False, "par_quick_run", p.stderr[-1500:])
        return
    rs = rows(f"{out}/results.jsonl")
    rl = [r for r in rs if r["method"] in METHODS]
    seeds = sorted({r["seed"] for r in rl})
    have = {(r["method"], r["seed"]) for r in rl if r["step"] > 0}
    missing = [(m, s) for m in METHODS for s in seeds if (m, s) not in have]
    report(len(seeds) == 2 and not missing and
           all(math.isfinite(r["gold"]) and math.isfinite(r["proxy"]) for r in rl) and
           len([r for r in rs if r["method"] == "proxy_rm"]) == 2,
           "par_quick_rows_for_every_method_and_seed", f"seeds {seeds}, missing {missing}")
    ref = [[(r["gold"], r["proxy"]) for r in rl if r["seed"] == s and r["step"] == 0]
           for s in seeds]
    report(all(len(g) == 2 and len(set(g)) == 1 for g in ref), "par_quick_one_pi_ref_row_per_seed",
           str(ref))
    shaped = [json.load(open(f"{out}/runs/seed{seeds[0]}/ppo-{m}/config.json")).get("par_samples")
              for m in METHODS]
    report(shaped[0] == 0 and shaped[1] > 0, "par_quick_only_par_run_shaped", str(shaped))
    v = json.load(open(f"{out}/verdict.json"))
    page = open(f"{out}/report.html").read()
    report(v["verdict"] in ("supported", "not supported", "inconclusive") and
           page.count("<polyline") >= 4, "par_quick_verdict_and_plots",
           f"{v['verdict']} {v['figure']}")
    print(f"# par quick: {v['seconds']} s, {v['verdict']}: {v['figure']}")


def main():
    tmp = tempfile.mkdtemp(prefix="rlhf-par-")
    try:
        check_verdicts(tmp)
        check_quick(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
