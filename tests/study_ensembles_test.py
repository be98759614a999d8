"""`rlhf study ensembles` (Coste et al. 2024, reward-model ensembles).

1. The verdict is computed from rows: synthetic results where WCO/UWO keep a
   higher gold than the single reward model at the highest optimisation
   (supported), where they fall below it (not supported), and where the
   differences are noise around zero (inconclusive); the page has a polyline
   for every method and table.txt the verdict.
2. The quick run (skipped under RLHF_SANITIZE): rows for every method x seed
   in both phases, best-of-n rows that match an independent recomputation
   from the samples file the study kept (the unbiased n-subset estimator over
   the members' scores), a verdict, and the plots.
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

METHODS = ["single", "mean", "wco", "uwo"]
LABELS = ["single RM", "ensemble mean", "WCO (min)", "UWO (mean - lambda var)"]
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))


def synthetic(effect, noise, seeds=(1, 2, 3)):
    """Rows in the study's format: gold falls with optimisation for the single
    reward model; the conservative ensembles end `effect` above it (plus noise)."""
    rng = random.Random(5)
    out = []
    for s in seeds:
        for k in range(3):
            out.append({"phase": "rm", "method": "member", "member": k, "seed": s,
                        "labels": 500, "accuracy": 0.6})
        for phase, xkey, xs in (("bon", "n", [1, 2, 4, 8, 16, 32]),
                                ("rl", "step", [0, 20, 40, 60, 80])):
            top = xs[-1]
            for m in METHODS:
                gain = {"single": 0, "mean": effect / 3, "wco": effect, "uwo": effect}[m]
                shift = gain + rng.gauss(0, noise)
                for x in xs:
                    frac = math.log2(x) / math.log2(top) if phase == "bon" else x / top
                    if x == xs[0]:
                        frac = 0
                    gold = 0.66 - 0.3 * frac + shift * frac
                    out.append({"phase": phase, "method": m, "seed": s, xkey: x,
                                "kl": frac, "gold": gold, "proxy": 2 * frac})
    return out


def check_verdicts(tmp):
    cases = [("holds", 0.05, 0.005, "supported"), ("fails", -0.05, 0.005, "not supported"),
             ("noise", 0.0, 0.05, "inconclusive")]
    for name, effect, noise, want in cases:
        src = f"{tmp}/{name}.jsonl"
        write(src, synthetic(effect, noise))
        out = f"{tmp}/{name}"
        p = run("study", "ensembles", "--from", src, "--out", out, check=False)
        if p.returncode != 0:
            report(False, f"ensembles_verdict_{name}", p.stderr[-500:])
            continue
        v = json.load(open(f"{out}/verdict.json"))
        report(v["verdict"] == want, f"ensembles_verdict_{name}_is_{want.replace(' ', '_')}",
               f"{v['verdict']}: {v['text']}")
        if name != "holds":
            continue
        page = open(f"{out}/report.html").read()
        curves = all(f'data-label="{x}"' in page for x in LABELS)
        report(curves and page.count("<polyline") >= 5 * 4 and
               os.path.exists(f"{out}/table.txt") and "verdict: supported" in
               open(f"{out}/table.txt").read(), "ensembles_report_has_every_curve_and_table")


def bon_expect(samples, n):
    """Expected gold of the best (by score) of n of the samples [(score, gold)]
    drawn without replacement: every n-subset counted once."""
    s = sorted(samples, key=lambda t: -t[0])
    k = len(s)
    return sum(math.comb(k - 1 - i, n - 1) * s[i][1] for i in range(k - n + 1)) / math.comb(k, n)


def recompute_bon(path, lam):
    """best-of-n gold per method from an eval --output file with member scores"""
    prompts = [json.loads(x) for x in open(path, encoding="utf-8", errors="replace") if x.strip()]
    k = len(prompts[0]["sample_gold"])
    K = len(prompts[0]["sample_proxy_members"][0])
    ns = [1 << i for i in range(k.bit_length()) if 1 << i <= k]
    res = {}
    for n in ns:
        tot = {m: 0.0 for m in METHODS}
        for p in prompts:
            g, r = p["sample_gold"], p["sample_proxy_members"]
            mean = [sum(x) / K for x in r]
            var = [sum((v - mu) ** 2 for v in x) / K for x, mu in zip(r, mean)]
            obj = {"mean": mean, "wco": [min(x) for x in r],
                   "uwo": [mu - lam * v for mu, v in zip(mean, var)]}
            for m in ("mean", "wco", "uwo"):
                tot[m] += bon_expect(list(zip(obj[m], g)), n)
            tot["single"] += sum(bon_expect([(x[j], gg) for x, gg in zip(r, g)], n)
                                 for j in range(K)) / K
        for m in METHODS:
            res[(m, n)] = tot[m] / len(prompts)
    return res


def check_quick(tmp):
    if SANITIZE:
        print("SKIP ensembles_quick_run: RLHF_SANITIZE (minutes under the sanitizers)")
        return
    out = os.path.join(ROOT, BUILD, "tmp", "study-ensembles")
    base = os.path.join(ROOT, BUILD, "tmp", "study-base")
    p = run("study", "ensembles", "--quick", "--base", base, "--out", out,
            "--overwrite_output_dir", check=False, timeout=1200)
    if p.returncode != 0:
        report(False, "ensembles_quick_run", p.stderr[-1500:])
        return
    rs = rows(f"{out}/results.jsonl")
    seeds = sorted({r["seed"] for r in rs})
    have = {(r["phase"], r["method"], r["seed"]) for r in rs}
    missing = [(ph, m, s) for ph in ("bon", "rl") for m in METHODS for s in seeds
               if (ph, m, s) not in have]
    report(len(seeds) == 2 and not missing and
           all(math.isfinite(r["gold"]) for r in rs if r["phase"] != "rm"),
           "ensembles_quick_rows_for_every_method_and_seed", f"seeds {seeds}, missing {missing}")
    worst = 0.0
    for s in seeds:
        ref = recompute_bon(f"{out}/runs/seed{s}/bon_samples.jsonl", 0.5)
        for r in rs:
            if r["phase"] == "bon" and r["seed"] == s:
                worst = max(worst, abs(r["gold"] - ref[(r["method"], r["n"])]))
    report(worst < 1e-6, "ensembles_bon_matches_an_independent_estimate", f"max |diff| {worst}")
    n1 = [r["gold"] for r in rs if r["phase"] == "bon" and r["n"] == 1 and r["seed"] == seeds[0]]
    report(len(n1) == 4 and max(n1) - min(n1) < 1e-9, "ensembles_best_of_1_is_the_same_for_all",
           str(n1))
    v = json.load(open(f"{out}/verdict.json"))
    page = open(f"{out}/report.html").read()
    report(v["verdict"] in ("supported", "not supported", "inconclusive") and
           page.count("<polyline") >= 5 * 4, "ensembles_quick_verdict_and_plots",
           f"{v['verdict']} {v['figure']}")
    print(f"# ensembles quick: {v['seconds']} s, {v['verdict']}: {v['figure']}")


def main():
    tmp = tempfile.mkdtemp(prefix="rlhf-ensembles-")
    try:
        check_verdicts(tmp)
        check_quick(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
