"""rlhf study neorl (src/study/study_neorl.c): the verdict is computed from
rows (synthetic rows where offline RL stays at the data's level, where it
clears it on every pair, and in between; the per-task outcomes in its text,
e.g. only simglucose's algorithms clearing the data), and `--quick --seeds 1`
runs end to end on the four tasks: a data row per task (a behaviour score
between random and expert) and a finite score for each of bc, iql, td3_bc and
cql on each task (~100 s on a loaded 2-core machine). `--task` picks tasks:
a list of names runs those alone (dmsd alone: its four runs and no others),
unknown names are refused before anything is written, rows of other tasks
leave the report's table, and the two MuJoCo tasks
(neorl-safety-halfcheetah, neorl-random-friction-hopper) run at smoke size
(RLHF_CTRL_STUDY=smoke: a 1500-step SAC collect each) on the collect's medium
level: the data row is the collect's medium level (score, references, rows)
and each run read medium.hdf5 (skipped without MuJoCo)."""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, report, run, rows, write, exit_code  # noqa: E402

TASKS = ["neorl-pipeline", "neorl-rocket", "neorl-dmsd", "neorl-simglucose"]
MUJOCO = ["neorl-safety-halfcheetah", "neorl-random-friction-hopper"]
ALGOS = ["bc", "iql", "td3_bc", "cql"]


def synthetic(gain, data=60.0, seeds=(1, 2), tasks=TASKS):
    """rows where algorithm a on task t scores data + gain(t, a)"""
    out = []
    for s in seeds:
        for ti, t in enumerate(tasks):
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

        # rows of the MuJoCo tasks: judged like the others, in the text and the table;
        # a report of the four built-in tasks' rows has no MuJoCo lines
        v, why = verdict_of(tmp, "mujoco_rows", synthetic(lambda t, a: 30.0 if t == 1 else 0.0,
                                                          tasks=MUJOCO))
        html = open(f"{tmp}/mujoco_rows/report.html").read() if v else ""
        report(v is not None and v["verdict"] == "inconclusive" and
               "neorl-random-friction-hopper 4/4 (best bc +30.0, not supported)" in v["text"] and
               "neorl-safety-halfcheetah 0/4" in v["text"] and
               all(t in html for t in MUJOCO) and "neorl-pipeline" not in html,
               "neorl_verdict_mujoco_task_rows", v["text"] if v else why)
        html = open(f"{tmp}/at_data/report.html").read()
        report(all(t in html for t in TASKS) and not any(t in html for t in MUJOCO),
               "neorl_report_lists_only_measured_tasks", "")

        # --task: refused before anything is written
        for bad in ("neorl-nope", "neorl-dmsd,", "neorl-dmsd,hopper", "NEORL-DMSD"):
            out = f"{tmp}/bad"
            p = run("study", "neorl", "--quick", "--task", bad, "--out", out, check=False)
            report(p.returncode != 0 and "--task" in p.stderr and bad in p.stderr and
                   "neorl-random-friction-hopper" in p.stderr and not os.path.exists(out),
                   f"neorl_task_refused_{bad}", p.stderr[-300:])

        # --task neorl-dmsd: that task alone
        out = f"{tmp}/dmsd"
        p = run("study", "neorl", "--quick", "--seeds", "1", "--task", "neorl-dmsd", "--out", out,
                check=False, threads=1)
        rs = rows(f"{out}/results.jsonl") if p.returncode == 0 else []
        report(p.returncode == 0 and
               sorted((r["kind"], r.get("algo", "")) for r in rs if "kind" in r) ==
               sorted([("data", "")] + [("algo", a) for a in ALGOS]) and
               all(r["task"] == "neorl-dmsd" for r in rs if "kind" in r),
               "neorl_task_list_runs_those_tasks_alone", p.stderr[-400:] or str(rs)[:400])

        mujoco_smoke(tmp)
        inverted_refs(tmp)

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


def inverted_refs(tmp):
    """A collect whose SAC ends below the random policy (as 20000 steps on
    SafetyHalfCheetah once did) is refused at the quick size, naming the
    folder and both returns, before any training run: a collect.json written
    here stands in for it (study_ctrl_collect reuses a folder that has one)."""
    base = f"{tmp}/inv-base"
    d = f"{base}/ctrl-neorl-safety-halfcheetah-40000-10000-256-c10-e2-s1"
    os.makedirs(d)
    level = {"path": f"{d}/medium.hdf5", "transitions": 10000, "episodes": 10,
             "episode_return_mean": -300.0, "normalized_score": -50.0}
    write(f"{d}/collect.json", [{"env": "neorl-safety-halfcheetah", "ref_random_return": -306.3,
                                 "ref_expert_return": -382.8, "medium": level}])
    out = f"{tmp}/inv"
    p = subprocess.run([os.path.join(ROOT, BUILD, "rlhf"), "study", "neorl", "--quick", "--seeds", "1",
                        "--task", "neorl-safety-halfcheetah", "--out", out, "--base", base],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    if p.returncode and "without MuJoCo" in p.stderr:
        print("SKIP neorl inverted references: built without MuJoCo")
        return
    report(p.returncode != 0 and d in p.stderr and "-382.8" in p.stderr and "-306.3" in p.stderr
           and not os.path.exists(f"{out}/runs"),
           "neorl_mujoco_collect_below_random_refused", p.stderr[-500:])


def mujoco_smoke(tmp):
    out, base = f"{tmp}/mujoco", f"{tmp}/mujoco-base"
    t0 = time.time()
    p = subprocess.run([os.path.join(ROOT, BUILD, "rlhf"), "study", "neorl", "--quick", "--seeds", "1",
                        "--task", ",".join(MUJOCO), "--out", out, "--base", base],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "RLHF_CTRL_STUDY": "smoke", "OMP_NUM_THREADS": "1"})
    if p.returncode and "without MuJoCo" in p.stderr:
        print("SKIP neorl MuJoCo smoke: built without MuJoCo")
        return
    if p.returncode:
        report(False, "neorl_mujoco_smoke_runs", p.stderr[-1200:])
        return
    rs = [r for r in rows(f"{out}/results.jsonl") if "kind" in r]
    why = []
    for t in MUJOCO:
        d = [r for r in rs if r["kind"] == "data" and r["task"] == t]
        coll = [os.path.join(base, x) for x in os.listdir(base) if x.startswith(f"ctrl-{t}-1500-")]
        c = json.load(open(f"{coll[0]}/collect.json")) if len(coll) == 1 else {}
        if len(d) != 1 or not c or d[0].get("level") != "medium" or \
                abs(d[0]["data_score"] - c["medium"]["normalized_score"]) > 1e-9 or \
                d[0]["rows"] != c["medium"]["transitions"] or \
                abs(d[0]["ref_random"] - c["ref_random_return"]) > 1e-9 or \
                abs(d[0]["ref_expert"] - c["ref_expert_return"]) > 1e-9:
            why.append(f"{t} data row {d} against collect {coll} {json.dumps(c.get('medium'))}")
        a = {r["algo"]: r for r in rs if r["kind"] == "algo" and r["task"] == t}
        if sorted(a) != sorted(ALGOS) or not all(math.isfinite(r["score"]) for r in a.values()):
            why.append(f"{t} scores {a}")
        for alg in ALGOS:
            try:
                ds = json.load(open(f"{out}/runs/{t}-{alg}-s1/config.json")).get("dataset", "")
            except (OSError, ValueError):
                ds = ""
            if not (c and ds == c["medium"]["path"]) and not ds.endswith(f"{coll[0] if coll else '?'}/medium.hdf5"):
                why.append(f"{t} {alg} read {ds!r}")
    v = json.load(open(f"{out}/verdict.json"))
    if not all(t in v["text"] for t in MUJOCO) or any(t in v["text"] for t in TASKS):
        why.append(v["text"])
    report(not why, f"neorl_mujoco_smoke: both MuJoCo tasks on the SAC collect's medium level, "
           f"4 algorithms each ({time.time() - t0:.1f} s)", "; ".join(why)[:1500])


if __name__ == "__main__":
    sys.exit(main())
