"""`rlhf study h2o` (src/study/study_h2o.c): the verdict from rows, and a
smoke run end to end.

1. Verdicts from synthetic rows (`--from`): H2O above both sim-only and
   offline in every seed -> supported; below sim-only -> not supported; above
   sim-only but level with offline within noise (+12, -10, +14, -11 around
   +2) -> inconclusive.
2. The smoke size (RLHF_CTRL_STUDY=smoke: a 2000-step SAC collect on
   pendulum, shared with the other control studies' smoke runs through
   --base; 300 steps per arm, 2 seeds): every arm gives a row per seed with a
   real-environment score, the simulator arms were trained on
   pendulum:gravity=20, and a verdict is written (numbers meaningless). With
   RLHF_GEMM unset, no command of the study measured the GEMM paths (the study
   pins them to the built-in ones: the kernel cache stays unwritten).
3. --task: the verdict's text names the real env and the simulator the rows
   record; bad values (no gap, an unknown task, a bad setting, cmd:...) and
   --task on a study with one setting are refused naming --task, before any
   results are written.
4. The MuJoCo variant at smoke size (--task halfcheetah:gravity=2: a
   1500-step SAC collect on halfcheetah, 200 steps per arm, 2 seeds): every
   arm gives a row per seed evaluated in the real halfcheetah, trained in the
   simulator (h2o, sim_only) or the real env (offline), and --from
   results.jsonl gives the same verdict. It runs on the medium-replay level
   (--level medium-replay, the authors' kind of data): h2o's and offline's
   runs read medium-replay.hdf5, every row records the level, and
   verdict.json, table.txt and the verdict's text name it. Skipped without
   MuJoCo.
5. --level: rows from before it (no "level") read as medium; a level that
   is not one of collect's five, and --level on a study that trains on no one
   level, are refused naming --level before any results are written.
   The pendulum smoke run (2.) runs the default: medium.hdf5, rows "medium".
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, report, run, rows, write, exit_code  # noqa: E402


def synth(h2o, sim, off, swing=(0.3, -0.2, 0.4, -0.1), envs=None):
    """4 seeds; h2o's score moves by swing[s] in seed s (the others do not);
    envs (real, sim) adds real_env and train_env to the rows"""
    out = []
    for s, dv in enumerate(swing, 1):
        for m, v in (("h2o", h2o + dv), ("sim_only", sim), ("offline", off)):
            row = {"method": m, "seed": s, "score": v, "return": -500.0,
                   "seconds": 1.0, "updates": 100, "study": "h2o"}
            if envs:
                row.update(real_env=envs[0], train_env=envs[0] if m == "offline" else envs[1])
            out.append(row)
    return out


def verdicts(tmp):
    cases = [("holds", synth(70, 30, 50), "supported"),
             ("fails", synth(40, 60, 30), "not supported"),
             ("noise", synth(70, 30, 68, swing=(12, -10, 14, -11)), "inconclusive")]
    for name, items, want in cases:
        src = f"{tmp}/{name}.jsonl"
        write(src, items)
        out = f"{tmp}/{name}"
        p = run("study", "h2o", "--from", src, "--out", out, check=False)
        if p.returncode != 0:
            report(False, f"study_h2o verdict {name}", p.stderr[-600:])
            continue
        v = json.load(open(f"{out}/verdict.json"))
        report(v["verdict"] == want, f"study_h2o verdict {name} is {want}", f"{v['verdict']}: {v['text']}")


def task_names(tmp):
    """the verdict names the envs of the rows, not pendulum's"""
    src = f"{tmp}/walker.jsonl"
    write(src, synth(70, 30, 50, envs=("walker2d", "walker2d:friction=0.3")))
    p = run("study", "h2o", "--from", src, "--out", f"{tmp}/walker", check=False)
    v = json.load(open(f"{tmp}/walker/verdict.json")) if p.returncode == 0 else {}
    text = v.get("text", "")
    report("(walker2d)" in text and "(walker2d:friction=0.3)" in text and "pendulum" not in text,
           "study_h2o verdict names the rows' real env and simulator", text or p.stderr[-400:])


def task_refused(tmp):
    """bad --task values refused naming the flag, before results are written"""
    cases = [("h2o", "halfcheetah"), ("h2o", "nope:gravity=2"), ("h2o", "pendulum:gravity=0"),
             ("h2o", "cmd:true"), ("riql", "pendulum:gravity=20")]
    why = []
    for study, task in cases:
        out = f"{tmp}/refused-{study}-{len(why)}"
        p = run("study", study, "--task", task, "--out", out, "--seeds", "1", check=False, timeout=60)
        if p.returncode != 2 or f"--task {task}" not in p.stderr or os.path.exists(f"{out}/results.jsonl"):
            why.append(f"{study} --task {task}: rc {p.returncode}, {p.stderr[-300:]}")
    report(not why, "study_h2o --task: no gap, unknown task, bad setting, cmd: and another study refused",
           "; ".join(why))


def level_flag(tmp):
    """old rows read as medium; bad --level values refused before anything is written"""
    src = f"{tmp}/old.jsonl"
    write(src, synth(70, 30, 50))
    p = run("study", "h2o", "--from", src, "--out", f"{tmp}/old", check=False)
    v = json.load(open(f"{tmp}/old/verdict.json")) if p.returncode == 0 else {}
    report(v.get("level") == "medium" and "(medium level)" in v.get("text", ""),
           "study_h2o --from rows without a level: medium", str(v)[:600] or p.stderr[-400:])
    why = []
    for study, level in (("h2o", "expertish"), ("h2o", ""), ("wsrl", "Medium"),
                         ("online-vs-offline", "medium"), ("neorl", "medium")):
        out = f"{tmp}/level-{len(why)}-{study}"
        p = run("study", study, "--level", level, "--out", out, "--seeds", "1", check=False, timeout=60)
        if p.returncode != 2 or f"--level {level}" not in p.stderr or os.path.exists(f"{out}/results.jsonl"):
            why.append(f"{study} --level {level!r}: rc {p.returncode}, {p.stderr[-300:]}")
        elif study in ("h2o", "wsrl") and "medium-replay" not in p.stderr:
            why.append(f"{study} --level {level!r} does not list the levels: {p.stderr[-300:]}")
    report(not why, "study --level: an unknown level (h2o, wsrl) and a study without levels refused",
           "; ".join(why))


def dataset_of(run_dir):
    try:
        return json.load(open(f"{run_dir}/config.json")).get("dataset", "")
    except (OSError, ValueError):
        return ""


def smoke():
    base = os.path.join(ROOT, BUILD, "tmp", "study-ctrl-base")
    os.makedirs(base, exist_ok=True)
    out = os.path.join(ROOT, BUILD, "tmp", "study-h2o")
    shutil.rmtree(out, ignore_errors=True)
    # RLHF_GEMM unset: the study pins its children to the built-in GEMM paths, so none
    # measures the paths (a measurement would write the kernel cache named here)
    cache = os.path.join(ROOT, BUILD, "tmp", "study-h2o-kernels.tsv")
    if os.path.exists(cache):
        os.remove(cache)
    env = {**{k: v for k, v in os.environ.items() if k != "RLHF_GEMM"}, "RLHF_CTRL_STUDY": "smoke",
           "OMP_NUM_THREADS": "1", "RLHF_KERNEL_CACHE": cache}
    t0 = time.time()
    p = subprocess.run([os.path.join(ROOT, BUILD, "rlhf"), "study", "h2o", "--base", base, "--out", out,
                        "--seeds", "2", "--overwrite_output_dir"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        report(False, "study_h2o smoke run", p.stderr[-1500:])
        return
    rs = [r for r in rows(f"{out}/results.jsonl") if "method" in r]
    why = []
    for m, env_name in (("h2o", "pendulum:gravity=20"), ("sim_only", "pendulum:gravity=20"),
                        ("offline", "pendulum")):
        got = [r for r in rs if r["method"] == m]
        if len(got) != 2 or not all("score" in r and r.get("train_env") == env_name
                                    and r.get("level") == "medium" for r in got):
            why.append(f"{m}: {got}")
    for m in ("h2o", "offline"):
        if not dataset_of(f"{out}/runs/seed1/{m}").endswith("/medium.hdf5"):
            why.append(f"{m} read {dataset_of(f'{out}/runs/seed1/{m}')!r}, not medium.hdf5")
    v = json.load(open(f"{out}/verdict.json"))
    report(not why and v["verdict"] in ("supported", "not supported", "inconclusive"),
           f"study_h2o smoke: 3 arms x 2 seeds evaluated in the real env ({time.time() - t0:.1f} s)",
           "; ".join(why)[:800])
    report(not os.path.exists(cache),
           "study_h2o smoke: with RLHF_GEMM unset the study's commands run the built-in GEMM paths "
           "(none measured them: no kernel cache written)")


def mujoco_smoke():
    base = os.path.join(ROOT, BUILD, "tmp", "study-ctrl-base")
    os.makedirs(base, exist_ok=True)
    out = os.path.join(ROOT, BUILD, "tmp", "study-h2o-mujoco")
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "RLHF_CTRL_STUDY": "smoke", "OMP_NUM_THREADS": "1"}
    sim = "halfcheetah:gravity=2"
    t0 = time.time()
    p = subprocess.run([os.path.join(ROOT, BUILD, "rlhf"), "study", "h2o", "--task", sim, "--base", base,
                        "--out", out, "--seeds", "2", "--overwrite_output_dir", "--level", "medium-replay"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode and "without MuJoCo" in p.stderr:
        print("SKIP study_h2o MuJoCo smoke: built without MuJoCo")
        return
    if p.returncode != 0:
        report(False, "study_h2o MuJoCo smoke run", p.stderr[-1500:])
        return
    rs = [r for r in rows(f"{out}/results.jsonl") if "method" in r]
    why = []
    for m, env_name in (("h2o", sim), ("sim_only", sim), ("offline", "halfcheetah")):
        got = [r for r in rs if r["method"] == m]
        if len(got) != 2 or not all("score" in r and r.get("train_env") == env_name
                                    and r.get("real_env") == "halfcheetah"
                                    and r.get("level") == "medium-replay" for r in got):
            why.append(f"{m}: {got}")
    for m in ("h2o", "offline"):
        if not dataset_of(f"{out}/runs/seed1/{m}").endswith("/medium-replay.hdf5"):
            why.append(f"{m} read {dataset_of(f'{out}/runs/seed1/{m}')!r}, not medium-replay.hdf5")
    evals = sorted(os.listdir(f"{out}/logs/eval/seed1")) if os.path.isdir(f"{out}/logs/eval/seed1") else []
    v = json.load(open(f"{out}/verdict.json"))
    again = f"{out}-from"
    q = subprocess.run([os.path.join(ROOT, BUILD, "rlhf"), "study", "h2o", "--from", f"{out}/results.jsonl",
                        "--out", again], cwd=ROOT, capture_output=True, text=True, timeout=60)
    w = json.load(open(f"{again}/verdict.json")) if q.returncode == 0 else {}
    if (w.get("verdict"), w.get("text")) != (v["verdict"], v["text"]):
        why.append(f"--from gives {w.get('verdict')}: {w.get('text')} against {v['verdict']}: {v['text']}")
    if "(halfcheetah)" not in v["text"] or f"({sim})" not in v["text"] \
            or "(medium-replay level)" not in v["text"] or v.get("level") != "medium-replay":
        why.append(f"verdict {v}")
    table = open(f"{out}/table.txt").read()
    if "data: medium-replay\n" not in table:
        why.append(f"table.txt: {table[:400]}")
    report(not why and "h2o.out" in evals,
           f"study_h2o MuJoCo smoke: {sim} against halfcheetah on medium-replay data, 3 arms x 2 seeds "
           f"evaluated in the real env, --from agrees ({time.time() - t0:.1f} s)", "; ".join(why)[:1200] or f"no real-env eval logs: {evals}")
    shutil.rmtree(again, ignore_errors=True)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        verdicts(tmp)
        task_names(tmp)
        task_refused(tmp)
        level_flag(tmp)
    smoke()
    mujoco_smoke()
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
