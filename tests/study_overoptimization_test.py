"""`rlhf study overoptimization` (Rafailov et al. 2024: DPO, IPO and SLiC
over-optimise without an explicit reward model; gold against sqrt(KL) is a
hump). Standard library only; prints PASS/FAIL/SKIP lines, exit 1 on failure.

  * verdict flips: synthetic results.jsonl rows in the study's row format,
    one set where the gold gain follows a hump R(d) = d(a - b ln d) with
    b > 0 (peak inside the measured KL range) -> "supported", one where it
    keeps accelerating with KL (b < 0) -> "not supported", one where the
    seeds disagree -> "inconclusive"; report.html has the plots' polylines and
    table.txt exists;
  * the fit through the study: rows drawn from known (alpha, beta) per method
    with small noise -> the fitted coefficients the verdict and table.txt
    print are within tolerance of the truth (stats_fit_overopt end to end);
  * bad rows: no pi_ref row for a seed is refused with a clear message;
  * the quick run (SKIP under RLHF_SANITIZE=1): rows for every method x seed,
    best-of-n rows, a verdict, polylines.
"""
import json
import math
import os
import random
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, report, run, write, exit_code  # noqa: E402

DA = ["dpo", "ipo", "slic"]
STEPS = [25, 50, 75, 100, 125, 150, 175, 200, 225, 250]


def rows(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [json.loads(x) for x in f if x.strip()]


def law(d, a, b):
    return d * (a - b * math.log(d)) if d > 0 else 0.0


def synthetic(coef, seeds=(1, 2, 3), noise=0.004, rng=None, bon=(0.2, 0.03)):
    """Rows as the study writes them. coef: method -> (a, b) of the gain law,
    or a function seed -> (a, b); d grows along training (faster at the small
    beta)."""
    rng = rng or random.Random(0)
    out = []
    for s in seeds:
        ref = 0.6 + 0.01 * s
        out.append({"method": "ref", "seed": s, "pairs": 800, "kl": 0, "gold": ref,
                    "accuracy": 0.9})
        for m in DA:
            a, b = coef[m](s) if callable(coef[m]) else coef[m]
            for beta, speed in ((0.1, 3.0), (0.5, 1.5)):
                for step in STEPS:
                    d = 0.1 + speed * step / STEPS[-1]
                    gold = ref + law(d, a, b) + rng.gauss(0, noise)
                    out.append({"method": m, "seed": s, "beta": beta, "step": step,
                                "kl": d * d, "gold": gold, "accuracy": 0.8})
        out.append({"method": "proxy_rm", "seed": s, "labels": 800, "accuracy": 0.8})
        g1 = 0.6 + 0.02 * s
        for n in (1, 2, 4, 8, 16, 32, 64):
            kl = math.log(n) - (n - 1) / n
            out.append({"method": "bon", "seed": s, "n": n, "kl": kl,
                        "gold": g1 + law(math.sqrt(kl), *bon) + rng.gauss(0, noise / 4) * (n > 1),
                        "proxy": 0.1 * n})
    return out


def from_rows(tmp, name, items):
    path = os.path.join(tmp, f"{name}.jsonl")
    out = os.path.join(tmp, name)
    write(path, items)
    p = run("study", "overoptimization", "--from", path, "--out", out, check=False)
    v = None
    if p.returncode == 0:
        with open(os.path.join(out, "verdict.json")) as f:
            v = json.load(f)
    return p, v, out


def fitted(text):
    """{method: (alpha, beta)} from the verdict's "Fits ..." sentence"""
    num = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?|-?nan|-?inf)"
    return {m: (float(a), float(b))
            for m, a, b in re.findall(r"(\w+) alpha=" + num + " beta=" + num, text)}


def check_verdict_flips(tmp):
    hump = {m: (0.10, 0.08) for m in DA}  # peak at d* = e^0.25 = 1.28, inside 0.1..3.1
    p, v, out = from_rows(tmp, "holds", synthetic(hump))
    ok = p.returncode == 0 and v["verdict"] == "supported"
    report(ok, "verdict_supported_on_a_hump", p.stderr[-500:] if p.returncode else v["text"])
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read() if ok else ""
    labels = ["dpo", "ipo", "slic", "dpo fit", "best-of-n (proxy RM)", "best-of-n fit",
              "dpo beta=0.1", "slic beta=0.5"]
    missing = [x for x in labels if f'data-label="{x}"' not in html]
    report(ok and html.count("<polyline") >= 10 and not missing and
           os.path.exists(os.path.join(out, "table.txt")), "report_has_the_plots_and_table",
           f"missing series {missing}, {html.count('<polyline')} polylines")
    convex = {m: (0.02, -0.03) for m in DA}  # gold accelerates with KL: no hump
    p, v, _ = from_rows(tmp, "fails", synthetic(convex))
    report(p.returncode == 0 and v["verdict"] == "not supported",
           "verdict_not_supported_when_gold_keeps_rising",
           p.stderr[-500:] if p.returncode else v["text"])
    # concave but still rising at the largest KL (peak d* = e^4 far outside):
    # no fall past the peak in any seed
    rising = {m: (0.15, 0.03) for m in DA}
    p, v, _ = from_rows(tmp, "rising", synthetic(rising, noise=0.0005))
    report(p.returncode == 0 and v["verdict"] == "not supported",
           "verdict_not_supported_when_the_peak_is_beyond_the_largest_kl",
           p.stderr[-500:] if p.returncode else v["text"])
    # seeds disagree: a hump in one, rising in the others
    mixed = {m: (lambda s: (0.10, 0.08) if s == 1 else (0.02, -0.03)) for m in DA}
    p, v, _ = from_rows(tmp, "mixed", synthetic(mixed))
    report(p.returncode == 0 and v["verdict"] == "inconclusive",
           "verdict_inconclusive_when_seeds_disagree",
           p.stderr[-500:] if p.returncode else v["text"])


def check_fit_recovery(tmp):
    truth = {"dpo": (0.12, 0.05), "ipo": (0.08, 0.10), "slic": (0.05, -0.02)}
    bon = (0.20, 0.03)
    p, v, out = from_rows(tmp, "fit", synthetic(truth, noise=0.002, rng=random.Random(5),
                                                bon=bon))
    if p.returncode != 0:
        report(False, "fit_recovers_known_coefficients", p.stderr[-500:])
        return
    got = fitted(v["text"])
    table = open(os.path.join(out, "table.txt"), encoding="utf-8").read()
    want = {**truth, "bon": bon}
    bad = [f"{m}: got {got.get(m)}, want {w}" for m, w in want.items()
           if m not in got or abs(got[m][0] - w[0]) > 0.006 or abs(got[m][1] - w[1]) > 0.006]
    report(not bad and fitted(table) == got, "fit_recovers_known_coefficients",
           "; ".join(bad) or "table.txt and verdict.json differ")


def check_bad_rows(tmp):
    items = [r for r in synthetic({m: (0.1, 0.08) for m in DA})
             if not (r["method"] == "ref" and r["seed"] == 2)]
    p, _, _ = from_rows(tmp, "noref", items)
    report(p.returncode != 0 and "ref" in p.stderr and "seed 2" in p.stderr,
           "rows_without_pi_ref_refused", p.stderr[-300:])


def check_quick():
    if os.environ.get("RLHF_SANITIZE") == "1":
        print("SKIP study_overoptimization_quick: RLHF_SANITIZE=1 (minutes of training)")
        return
    out = os.path.join(BUILD, "tmp", "study-overoptimization")
    base = os.path.join(BUILD, "tmp", "study-base")
    p = run("study", "overoptimization", "--quick", "--base", base, "--out", out,
            "--overwrite_output_dir", check=False, threads=1, timeout=1200)
    if p.returncode != 0:
        report(False, "study_overoptimization_quick", p.stderr[-1500:])
        return
    rs = rows(os.path.join(out, "results.jsonl"))
    seeds = sorted({r["seed"] for r in rs if r["method"] == "ref"})
    missing = [f"{m}/seed{s}" for m in DA + ["bon"] for s in seeds
               if sum(r["method"] == m and r["seed"] == s for r in rs) < 3]
    with open(os.path.join(out, "verdict.json")) as f:
        v = json.load(f)
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    report(len(seeds) == 2 and not missing and v["verdict"] in
           ("supported", "not supported", "inconclusive") and html.count("<polyline") >= 6,
           "study_overoptimization_quick", f"seeds {seeds}, missing {missing}")
    print(f"  quick: {v['verdict']} ({v['figure']}), {v['seconds']} s")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        check_verdict_flips(tmp)
        check_fit_recovery(tmp)
        check_bad_rows(tmp)
    check_quick()
    sys.exit(exit_code())


if __name__ == "__main__":
    main()
