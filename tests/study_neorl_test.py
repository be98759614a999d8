"""rlhf study neorl (src/study/study_neorl.c): the verdict is computed from
rows (synthetic rows where offline RL stays at the data's level, where it
clears it on every pair, and in between; the per-task outcomes in its text,
e.g. only simglucose's algorithms clearing the data), and `--quick --seeds 1`
runs end to end on the four tasks: a data row per task (a behaviour score
between random and expert) and a finite score for each of bc, iql, td3_bc and
cql on each task (~100 s on a loaded 2-core machine)."""
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import report, run, rows, write, exit_code  # noqa: E402

TASKS = ["neorl-pipeline", "neorl-rocket", "neorl-dmsd", "neorl-simglucose"]
ALGOS = ["bc", "iql", "td3_bc", "cql"]


def synthetic(gain, data=60.0, seeds=(1, 2)):
    """rows where algorithm a on task t scores data + gain(t, a)"""
    out = []
    for s in seeds:
        for ti, t in enumerate(TASKS):
            out.append({"kind": "data", "task": t, "seed": s, "data_score": data + s})
            for ai, a in enumerate(ALGOS):
                out.append({"kind": "algo", "task": t, "algo": a, "seed": s,
                            "score": data + s + gain(ti, ai)})
    return out


def verdict_of(tmp, name, items):
    write(f"{tmp}/{name}.jsonl", items)
    p = run("study", "neorl", "--from", f"{tmp}/{name}.jsonl", "--out", f"{tmp}/{name}",
            check=False)
    if p.returncode:
        return None, p.stderr[-400:]
    return json.load(open(f"{tmp}/{name}/verdict.json")), ""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("at_data", lambda t, a: -3.0 + a, "supported"),          # the paper's finding
            ("all_clear", lambda t, a: 25.0, "not supported"),         # offline RL wins everywhere
            # 4/16 pairs, but cql +15 on average
            ("one_algo_clears", lambda t, a: 15.0 if a == 3 else 0.0, "inconclusive"),
            ("half", lambda t, a: 15.0 if a < 2 else 0.0, "inconclusive"),
            ("two_pairs", lambda t, a: 30.0 if (t, a) in ((0, 1), (2, 2)) else 0.0, "supported"),
            # 4/16 pairs, each algorithm +7.5 on average: supported over the tasks, while
            # simglucose alone is not supported
            ("one_task_clears", lambda t, a: 30.0 if t == 3 else 0.0, "supported"),
        ]
        for name, gain, want in cases:
            v, why = verdict_of(tmp, name, synthetic(gain))
            report(v is not None and v["verdict"] == want, f"neorl_verdict_{name}_is_{want}",
                   v["text"] if v else why)
            if name == "one_task_clears" and v:
                report("neorl-simglucose 4/4 (best bc +30.0, not supported)" in v["text"] and
                       "neorl-dmsd 0/4 (best bc +0.0, supported)" in v["text"],
                       "neorl_verdict_text_per_task", v["text"])
            if name == "two_pairs" and v:
                report("neorl-pipeline 1/4 (best iql +30.0, inconclusive)" in v["text"],
                       "neorl_verdict_text_one_of_four_is_inconclusive", v["text"])
        v, why = verdict_of(tmp, "no_pairs", [{"kind": "data", "task": "neorl-dmsd", "seed": 1,
                                               "data_score": 50}])
        report(v is None, "neorl_verdict_refuses_rows_without_scores", why)

        out = f"{tmp}/quick"
        p = run("study", "neorl", "--quick", "--seeds", "1", "--out", out, check=False,
                threads=1)
        if p.returncode:
            report(False, "neorl_quick_runs", p.stderr[-800:])
            return exit_code()
        rs = rows(f"{out}/results.jsonl")
        data = [r for r in rs if r["kind"] == "data"]
        algo = [r for r in rs if r["kind"] == "algo"]
        report(sorted(r["task"] for r in data) == sorted(TASKS) and
               all(30 <= r["data_score"] <= 100 and r["ref_expert"] > r["ref_random"]
                   for r in data), "neorl_quick_data_rows",
               json.dumps(data)[:400])
        report(sorted((r["task"], r["algo"]) for r in algo) ==
               sorted((t, a) for t in TASKS for a in ALGOS) and
               all(math.isfinite(r["score"]) for r in algo), "neorl_quick_scores",
               str([(r["task"], r["algo"], round(r["score"], 1)) for r in algo]))
        v = json.load(open(f"{out}/verdict.json"))
        report(v["verdict"] in ("supported", "not supported", "inconclusive") and
               os.path.exists(f"{out}/report.html"), "neorl_quick_verdict_and_report",
               v["figure"])
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
