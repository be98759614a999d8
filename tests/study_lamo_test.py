"""`rlhf study lamo` (src/study/study_lamo.c): LaMo vs the DT baseline.

1. The verdict is computed from rows alone (--from synthetic results.jsonl):
   LaMo ahead on every seed by a steady margin (supported); behind on every
   seed (not supported); ahead on average but one seed far behind, the
   differences noise (inconclusive); LaMo's curve better but its final
   evaluation level with DT's (the final score decides: inconclusive). The
   report has a curve per arm and the table.
2. One real run at the smoke size (RLHF_CTRL_STUDY=smoke: a 2000-step SAC
   collect on pendulum, 8 stories of text, 20 updates per arm, 2 seeds; the
   numbers mean nothing): a final row and curve rows for each method and seed,
   the lamo arm trained the pre-trained model with LoRA and the text loss, the
   dt arm a fresh init with every weight trained and no text, and a verdict.
   Skipped when stories260K is missing (RLHF_LAMO_MODEL names another model).
3. The low-data setting (--task episodes=N, on the same collect): the arms train on N
   whole episodes of the level (checked against the level file with h5py), and bad N
   are refused.
"""
import glob
import json
import time
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, RLHF, report, exit_code  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
STORIES = os.path.join(ROOT, "..", "shared", "data", "llama2c", "stories260K.bin")


def rows(lamo, dt, seeds=(1, 2, 3), curve_bonus=0.0):
    """lamo(seed), dt(seed): final scores; curve rows at steps 500, 1000 (the last = final)."""
    out = []
    for s in seeds:
        for m, f in (("lamo", lamo), ("dt", dt)):
            fin = f(s)
            for step, sc in ((500, fin - 20 + (curve_bonus if m == "lamo" else 0)), (1000, fin)):
                out.append({"study": "lamo", "phase": "curve", "method": m, "seed": s, "step": step,
                            "score": sc, "return": -1000 + 5 * sc})
            out.append({"study": "lamo", "phase": "final", "method": m, "seed": s, "score": fin,
                        "return": -1000 + 5 * fin, "return_std": 50, "seconds": 60, "updates": 1000})
    return out


def verdicts(tmp):
    cases = [("holds", rows(lambda s: 80 + s, lambda s: 60 + 2 * s), "supported"),
             ("fails", rows(lambda s: 50 + s, lambda s: 75 - s), "not supported"),
             ("noise", rows(lambda s: [95, 90, 40][s - 1], lambda s: 70), "inconclusive"),
             ("curve_only", rows(lambda s: 70 + [1, -1, 0][s - 1], lambda s: 70, curve_bonus=40),
              "inconclusive")]
    for name, items, want in cases:
        src = os.path.join(tmp, name + ".jsonl")
        with open(src, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in items))
        out = os.path.join(tmp, name)
        p = subprocess.run([RLHF, "study", "lamo", "--from", src, "--out", out], capture_output=True,
                           text=True, timeout=60, env=ENV, cwd=ROOT)
        if p.returncode != 0:
            report(False, f"study_lamo verdict {name}", p.stderr[-500:])
            continue
        v = json.load(open(os.path.join(out, "verdict.json")))
        ok = v["verdict"] == want
        if name == "holds":
            page = open(os.path.join(out, "report.html")).read()
            ok = ok and 'data-label="LaMo' in page and 'data-label="DT' in page and "+" in v["figure"]
        report(ok, f"study_lamo verdict from rows: {name} -> {want}", f"{v['verdict']}: {v['text']}")


def smoke(tmp):
    if not os.path.exists(STORIES) and not os.environ.get("RLHF_LAMO_MODEL"):
        print("SKIP study_lamo smoke: no stories260K.bin")
        return
    out = os.path.join(tmp, "smoke")
    p = subprocess.run([RLHF, "study", "lamo", "--seeds", "2", "--out", out], capture_output=True,
                       text=True, timeout=300, env={**ENV, "RLHF_CTRL_STUDY": "smoke"}, cwd=ROOT)
    if p.returncode != 0:
        report(False, "study_lamo smoke run", p.stderr[-1500:])
        return
    rs = [json.loads(x) for x in open(os.path.join(out, "results.jsonl")) if x.strip()]
    finals = {(r["method"], r["seed"]) for r in rs if r.get("phase") == "final"}
    curves = {(r["method"], r["seed"]) for r in rs if r.get("phase") == "curve"}
    want = {(m, s) for m in ("lamo", "dt") for s in (1, 2)}
    problems = []
    if finals != want or curves != want:
        problems.append(f"rows: final {sorted(finals)}, curve {sorted(curves)}")
    for m, pre, lm in (("lamo", 1, 1), ("dt", 0, 0)):
        s = json.load(open(os.path.join(out, "runs", "seed1", m, "summary.json")))
        if s["pretrained"] != pre or s["lm_loss"] != lm or (s["lora_r"] > 0) != (m == "lamo"):
            problems.append(f"{m}: {json.dumps(s)[:300]}")
    text = os.path.join(out, "logs", "text.out")
    if not os.path.exists(text) or os.path.getsize(text) < 200:
        problems.append("no text corpus")
    v = json.load(open(os.path.join(out, "verdict.json")))
    if v["verdict"] not in ("supported", "not supported", "inconclusive"):
        problems.append(f"verdict {v}")
    report(not problems, f"study_lamo smoke run (2 seeds x 2 arms; {v['verdict']})", "; ".join(problems))
    resume(tmp, out, rs)
    low_data(tmp, out)


def resume(tmp, out, rows):
    """--resume of an interrupted study: seed 2's runs lost their logs/*.done (as when the
    study is killed during them), so only they run again; the rows (but for their times) and
    the verdict are the uninterrupted study's. Without --resume the folder is refused,
    naming --resume."""
    dones = sorted(glob.glob(os.path.join(out, "logs", "**", "*.done"), recursive=True))
    again = [d for d in dones if "seed2" in d]
    verdict = open(os.path.join(out, "verdict.json")).read()
    q = subprocess.run([RLHF, "study", "lamo", "--seeds", "2", "--out", out], capture_output=True,
                       text=True, timeout=60, env={**ENV, "RLHF_CTRL_STUDY": "smoke"}, cwd=ROOT)
    for d in again:
        os.remove(d)
    t0 = time.time()
    p = subprocess.run([RLHF, "study", "lamo", "--seeds", "2", "--out", out, "--resume"],
                       capture_output=True, text=True, timeout=300,
                       env={**ENV, "RLHF_CTRL_STUDY": "smoke"}, cwd=ROOT)
    secs = time.time() - t0
    rs = [json.loads(x) for x in open(os.path.join(out, "results.jsonl")) if x.strip()]
    strip = lambda r: {k: v for k, v in r.items() if k not in ("t", "seconds")}  # noqa: E731
    # the data's collect is cached apart (collect.json), so it is not among the runs asked for
    m = re.search(r"--resume: (\d+) of its (\d+) rlhf runs were finished before", p.stderr)
    want = f"{len(again)} runs again"
    report(q.returncode == 1 and "pass --resume" in q.stderr and p.returncode == 0 and m and
           int(m[2]) - int(m[1]) == len(again) and len(again) >= 2 and [strip(r) for r in rs] == [strip(r) for r in rows]
           and json.loads(open(os.path.join(out, "verdict.json")).read())["verdict"] ==
           json.loads(verdict)["verdict"],
           f"study_lamo --resume: {len(again)} of {len(dones)} runs again ({secs:.1f} s), "
           "the same rows and verdict; refused without --resume",
           f"{q.returncode} {q.stderr[-200:]} | {p.returncode} {p.stderr[-400:]} | want {want}")


def low_data(tmp, first):
    """--task episodes=2 on the same collect (--base): both arms train on a file of 2 whole
    episodes of the level, drawn with the seed, with the level's references; the row and the
    verdict say so. A malformed N, and more episodes than the level has, are refused."""
    import h5py
    import numpy as np
    out = os.path.join(tmp, "low")
    base = os.path.join(first, "base")
    p = subprocess.run([RLHF, "study", "lamo", "--seeds", "1", "--out", out, "--base", base,
                        "--task", "episodes=2"], capture_output=True, text=True, timeout=300,
                       env={**ENV, "RLHF_CTRL_STUDY": "smoke"}, cwd=ROOT)
    if p.returncode != 0:
        report(False, "study_lamo --task episodes=2", p.stderr[-1500:])
        return
    problems = []
    rs = [json.loads(x) for x in open(os.path.join(out, "results.jsonl")) if x.strip()]
    data = [r for r in rs if r.get("phase") == "data"]
    sub = os.path.join(out, "data", "medium-expert-2ep.hdf5")
    full = [os.path.join(root, f) for root, _, fs in os.walk(base) for f in fs
            if f == "medium-expert.hdf5"]
    if len(data) != 1 or data[0]["episodes"] != 2 or len(full) != 1:
        problems.append(f"data rows {data}, levels {full}")
    else:
        f, g = h5py.File(full[0], "r"), h5py.File(sub, "r")
        ends = np.flatnonzero(f["terminals"][:] | f["timeouts"][:]) + 1
        starts = np.r_[0, ends[:-1]]
        obs = g["observations"][:]
        # the subset is whole episodes of the level, in file order, as its row says
        found, i = [], 0
        for s, e in zip(starts, ends):
            if i < len(obs) and e - s <= len(obs) - i and np.array_equal(
                    f["observations"][s:e], obs[i:i + e - s]):
                found.append(int(s))
                i += e - s
        if len(found) != 2 or i != len(obs) or data[0]["rows"] != len(obs) or \
                data[0]["of"] != len(starts) or dict(g.attrs) != dict(f.attrs):
            problems.append(f"subset: episodes at {found}, {i} of {len(obs)} rows matched, "
                            f"row {data[0]}, attrs {dict(g.attrs)}")
    for m in ("lamo", "dt"):
        cfg = json.load(open(os.path.join(out, "runs", "seed1", m, "config.json")))
        if cfg["dataset"] != os.path.realpath(sub) and cfg["dataset"] != sub:
            problems.append(f"{m} trained on {cfg['dataset']}")
    v = json.load(open(os.path.join(out, "verdict.json")))
    if "2 of the level's" not in v["text"]:
        problems.append(f"verdict text {v['text'][:200]}")
    for task, word in (("episodes=x", "episodes=N"), ("episodes=0", "episodes=N"),
                       ("episodes=500", "complete episodes")):
        q = subprocess.run([RLHF, "study", "lamo", "--seeds", "1", "--out",
                            os.path.join(tmp, "bad_" + task[9:]), "--base", base, "--task", task],
                           capture_output=True, text=True, timeout=120,
                           env={**ENV, "RLHF_CTRL_STUDY": "smoke"}, cwd=ROOT)
        if q.returncode == 0 or word not in q.stderr:
            problems.append(f"--task {task}: exit {q.returncode} {q.stderr[-200:]}")
    report(not problems, "study_lamo --task episodes=2: whole episodes of the level, refusals",
           "; ".join(problems))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        verdicts(tmp)
        smoke(tmp)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
