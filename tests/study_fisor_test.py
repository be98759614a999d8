"""`rlhf study fisor` (src/study/study_fisor.c): FISOR vs IQL on pointrobot.

1. The verdict from rows alone (--from synthetic results.jsonl): FISOR under
   the limit with competitive reward and fewer episodes with cost than IQL
   (supported, whether IQL's mean cost is over the limit or under it: the
   claim is the hard constraint of zero violation); FISOR over the limit
   (not supported); IQL as rarely in a hazard as FISOR (inconclusive: no
   contrast; not supported if FISOR's reward is also far below IQL's); FISOR
   in hazards more often than IQL (not supported); FISOR safe but its reward
   far below IQL's (not supported); FISOR's cost straddling the limit
   (inconclusive). The report has the table and, from the "data" rows, the
   greedy driver's cost.
2. One real run at the smoke size (RLHF_CTRL_STUDY=smoke: 2000 rows, 100
   updates per arm, 2 seeds; numbers meaningless): a "safe" row per method and
   seed with finite reward, cost and violation in [0, 1], a "data" row per
   seed whose greedy cost is near the limit (> 0.5), and a verdict.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, RLHF, report, exit_code  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def rows(fisor, iql, seeds=(1, 2, 3)):
    """fisor(seed), iql(seed): (normalised reward, normalised cost[, violation]);
    the violation share defaults to min(1, cost / 2)."""
    out = []
    for s in seeds:
        out.append({"study": "fisor", "phase": "data", "seed": s, "greedy_cost": 1.08,
                    "greedy_return": 5.5, "random_return": 2.1})
        for m, f in (("fisor", fisor), ("iql", iql)):
            r, c, *v = f(s)
            out.append({"study": "fisor", "phase": "safe", "method": m, "seed": s, "reward": r,
                        "cost": c, "violation": v[0] if v else min(1.0, c / 2),
                        "return": 2 + 3 * r, "cost_raw": 10 * c, "seconds": 20})
    return out


def verdicts(tmp):
    cases = [("holds", rows(lambda s: (0.8 + 0.01 * s, 0.1 + 0.01 * s), lambda s: (0.9, 1.5 + 0.1 * s)),
              "supported"),
             # IQL's mean cost under the limit but in a hazard in 2 episodes of 3
             ("holds_iql_under_limit", rows(lambda s: (0.9, 0.07, 0.04 + 0.01 * s),
                                            lambda s: (0.97, 0.83, 0.6 + 0.03 * s)), "supported"),
             ("fisor_unsafe", rows(lambda s: (0.8, 1.6 + 0.1 * s), lambda s: (0.9, 1.8 + 0.1 * s)),
              "not supported"),
             ("iql_safe", rows(lambda s: (0.8, 0.1 + 0.01 * s, 0.05 + 0.01 * s),
                               lambda s: (0.9, 0.1, [0.04, 0.08, 0.05][s - 1])), "inconclusive"),
             ("iql_safe_fisor_low_reward", rows(lambda s: (0.2 + 0.01 * s, 0.1, 0.05),
                                                lambda s: (0.9, 0.1, 0.05)), "not supported"),
             ("fisor_more_violations", rows(lambda s: (0.8, 0.3, 0.4 + 0.01 * s),
                                            lambda s: (0.9, 0.2, 0.1 + 0.02 * s)), "not supported"),
             ("low_reward", rows(lambda s: (0.2 + 0.01 * s, 0.1), lambda s: (0.9, 1.6 + 0.1 * s)),
              "not supported"),
             ("straddle", rows(lambda s: (0.8, [0.4, 1.5, 1.0][s - 1]), lambda s: (0.9, 1.5 + 0.1 * s)),
              "inconclusive")]
    for name, items, want in cases:
        src = os.path.join(tmp, name + ".jsonl")
        with open(src, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in items))
        out = os.path.join(tmp, name)
        p = subprocess.run([RLHF, "study", "fisor", "--from", src, "--out", out], capture_output=True,
                           text=True, timeout=60, env=ENV, cwd=ROOT)
        if p.returncode != 0:
            report(False, f"study_fisor verdict {name}", p.stderr[-500:])
            continue
        v = json.load(open(os.path.join(out, "verdict.json")))
        ok = v["verdict"] == want
        # the text says when IQL under the limit is what leaves it open
        ok = ok and (("no contrast" in v["text"] and "cannot show" in v["text"]) == name.startswith("iql_safe"))
        ok = ok and "greedy driver" in v["text"] and "1.08" in v["text"]
        if name == "holds":
            page = open(os.path.join(out, "report.html")).read()
            ok = ok and "FISOR" in page and "IQL" in page and "cost" in v["figure"]
            ok = ok and "greedy driver" in page
        report(ok, f"study_fisor verdict from rows: {name} -> {want}", f"{v['verdict']}: {v['text']}")


def smoke(tmp):
    out = os.path.join(tmp, "smoke")
    p = subprocess.run([RLHF, "study", "fisor", "--seeds", "2", "--out", out], capture_output=True,
                       text=True, timeout=120, env={**ENV, "RLHF_CTRL_STUDY": "smoke"}, cwd=ROOT)
    if p.returncode != 0:
        report(False, "study_fisor smoke run", p.stderr[-1500:])
        return
    rs = [json.loads(x) for x in open(os.path.join(out, "results.jsonl")) if x.strip()]
    safe = [r for r in rs if r.get("phase") == "safe"]
    problems = []
    seeds = sorted({r["seed"] for r in safe})
    got = {(r["method"], r["seed"]) for r in safe}
    want = {(m, s) for m in ("fisor", "iql") for s in seeds}
    if len(seeds) != 2 or got != want or len(safe) != 4:
        problems.append(f"rows {sorted(got)}")
    for r in safe:
        if not all(math.isfinite(r[k]) for k in ("reward", "cost", "violation")) or \
                not 0 <= r["violation"] <= 1 or r["cost"] < 0 or abs(r["cost"] * 10 - r["cost_raw"]) > 1e-6:
            problems.append(f"row {r}")
    # both arms on the authors' reward scale: 1000 / (max - min episode return)
    # times pointrobot's 300 steps / 1000, the same for both
    for s in seeds:
        for m in ("fisor", "iql"):
            cfg = json.load(open(os.path.join(out, "runs", f"seed{s}", m, "config.json")))
            if cfg.get("reward_norm") != "returns" or abs(cfg.get("reward_scale", 0) - 0.3) > 1e-6:
                problems.append(f"seed {s} {m}: reward_norm {cfg.get('reward_norm')} "
                                f"reward_scale {cfg.get('reward_scale')}")
    data = [r for r in rs if r.get("phase") == "data"]
    if sorted(r["seed"] for r in data) != seeds or \
            not all(math.isfinite(r["greedy_cost"]) and r["greedy_cost"] > 0.5 for r in data):
        problems.append(f"data rows {data}")
    v = json.load(open(os.path.join(out, "verdict.json")))
    if v["verdict"] not in ("supported", "not supported", "inconclusive"):
        problems.append(f"verdict {v}")
    report(not problems, f"study_fisor smoke run (2 seeds x 2 arms; {v['verdict']})", "; ".join(problems))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        verdicts(tmp)
        smoke(tmp)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
