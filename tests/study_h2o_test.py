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
   pendulum:gravity=20, and a verdict is written (numbers meaningless).
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


def synth(h2o, sim, off, swing=(0.3, -0.2, 0.4, -0.1)):
    """4 seeds; h2o's score moves by swing[s] in seed s (the others do not)"""
    out = []
    for s, dv in enumerate(swing, 1):
        for m, v in (("h2o", h2o + dv), ("sim_only", sim), ("offline", off)):
            out.append({"method": m, "seed": s, "score": v, "return": -500.0,
                        "seconds": 1.0, "updates": 100, "study": "h2o"})
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


def smoke():
    base = os.path.join(ROOT, BUILD, "tmp", "study-ctrl-base")
    os.makedirs(base, exist_ok=True)
    out = os.path.join(ROOT, BUILD, "tmp", "study-h2o")
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "RLHF_CTRL_STUDY": "smoke", "OMP_NUM_THREADS": "1"}
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
        if len(got) != 2 or not all("score" in r and r.get("train_env") == env_name for r in got):
            why.append(f"{m}: {got}")
    v = json.load(open(f"{out}/verdict.json"))
    report(not why and v["verdict"] in ("supported", "not supported", "inconclusive"),
           f"study_h2o smoke: 3 arms x 2 seeds evaluated in the real env ({time.time() - t0:.1f} s)",
           "; ".join(why)[:800])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        verdicts(tmp)
    smoke()
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
