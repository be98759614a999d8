"""The control studies (issue 15): `rlhf study riql | wsrl | famo2o | ro2o`.

1. Each verdict is computed from rows: synthetic results (`--from`) where the
   paper's claim holds (supported), where it fails (not supported) and where
   the differences are noise (inconclusive), plus the cases each rule must
   tell apart:
     riql    RIQL higher everywhere but dropping as much as IQL (the claim is
             about the drop, so not supported); RIQL better under random
             corruption only, worse under adversarial (the average decides);
     wsrl    WSRL level with retention but ending below its own pre-training
             (no recovery: not supported); recovering but far below retention
             (not supported); within the margin of retention (supported);
     famo2o  FamO2O higher only before the switch (the final score decides);
     ro2o    RO2O with a smaller dip but a lower final score (not supported).
   Every report page has a curve per arm and the table the verdict names.
2. One real run (skipped under RLHF_SANITIZE): `rlhf study riql` at its
   smoke size (RLHF_CTRL_STUDY=smoke: a 2000-step SAC collect on pendulum,
   200-update runs, 2 seeds) end to end: rows for every method x data x seed,
   every run trained the named algorithm on the named file, the corrupt
   command hit about 30% of the rows, corruption changed the runs, a verdict
   and the plot. CTRL_STUDY_ALL=1 runs the other
   three studies' smoke sizes too (not in make test: the time budget).
"""
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, report, run, rows, write, exit_code  # noqa: E402

SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))


def verdict_of(tmp, study, name, items):
    src = f"{tmp}/{study}-{name}.jsonl"
    write(src, items)
    out = f"{tmp}/{study}-{name}"
    p = run("study", study, "--from", src, "--out", out, check=False)
    if p.returncode != 0:
        return None, out, p.stderr[-800:]
    return json.load(open(f"{out}/verdict.json")), out, ""


def check_cases(tmp, study, cases, labels, min_lines):
    for name, items, want in cases:
        v, out, why = verdict_of(tmp, study, name, items)
        if v is None:
            report(False, f"{study}_verdict_{name}", why)
            continue
        report(v["verdict"] == want, f"{study}_verdict_{name}_is_{want.replace(' ', '_')}",
               f"{v['verdict']}: {v['text']}")
        if name != "holds":
            continue
        page = open(f"{out}/report.html").read()
        table = open(f"{out}/table.txt").read()
        ok = all(f'data-label="{x}"' in page for x in labels) and \
            page.count("<polyline") >= min_lines and "verdict: supported" in table
        report(ok, f"{study}_report_has_every_curve_and_the_table",
               f"labels {[x for x in labels if f'data-label={x!r}' not in page]}")


# ------------------------------------------------------------------ riql --
def riql_rows(drop_iql, drop_riql, noise, seeds=(1, 2, 3), clean=(80.0, 78.0), adv=None):
    """IQL and RIQL: clean scores, then a drop per corrupted copy (rates 0.1,
    0.3; random and adversarial); adv = (drop_iql, drop_riql) overrides the
    adversarial copies' drops."""
    rng = random.Random(11)
    out = []
    for s in seeds:
        base = [c + rng.gauss(0, 2) for c in clean]
        for m, meth in enumerate(("iql", "riql")):
            out.append({"phase": "final", "method": meth, "data": "clean", "kind": "none",
                        "mode": "none", "rate": 0, "seed": s, "score": base[m], "return": -500})
        for rate in (0.1, 0.3):
            for mode in ("random", "adv"):
                drops = adv if (adv and mode == "adv") else (drop_iql, drop_riql)
                for m, meth in enumerate(("iql", "riql")):
                    sc = base[m] - drops[m] * rate / 0.3 + rng.gauss(0, noise)
                    out.append({"phase": "final", "method": meth, "data": f"rew-{mode}-{rate:g}",
                                "kind": "rew", "mode": mode, "rate": rate, "seed": s,
                                "score": sc, "return": -600})
    return out


def check_riql(tmp):
    cases = [("holds", riql_rows(30, 5, 1), "supported"),
             ("fails", riql_rows(5, 30, 1), "not supported"),
             ("noise", riql_rows(10, 10, 15), "inconclusive"),
             # RIQL higher on every data set by 20 points, dropping as much as IQL
             ("same_drop_higher", riql_rows(20, 22, 0.5, clean=(60.0, 80.0)), "not supported"),
             # better under random corruption, far worse under adversarial: the mean decides
             ("random_only", riql_rows(30, 5, 0.5, adv=(5, 60)), "not supported")]
    check_cases(tmp, "riql", cases, ["IQL, random", "IQL, adversarial", "RIQL, random",
                                     "RIQL, adversarial"], 4)


# ------------------------------------------------------- o2o (wsrl & co) --
def o2o_rows(arms, seeds=(1, 2, 3), noise=0.5, off=1000, total=3000, every=500):
    """arms: {method: (pretrained, dip, final)}; a curve that holds the
    pre-trained score to the switch, falls to the dip at the first online
    evaluation and rises linearly to the final score."""
    rng = random.Random(5)
    out = []
    for s in seeds:
        for meth, (pre, dip, fin) in arms.items():
            e = [rng.gauss(0, noise) for _ in range(3)]
            pts = []
            for step in range(every, total + 1, every):
                if step <= off:
                    v = pre + e[0] if step == off else 0.5 * (pre + e[0])
                elif step == off + every:
                    v = dip + e[1]
                else:
                    frac = (step - off - every) / (total - off - every)
                    v = dip + e[1] + frac * (fin + e[2] - dip - e[1])
                pts.append((step, v))
                out.append({"phase": "curve", "method": meth, "seed": s, "step": step,
                            "score": v, "return": -1000 + 10 * v})
            online = [v for st, v in pts if st > off]
            out.append({"phase": "o2o", "method": meth, "seed": s, "offline_steps": off,
                        "pretrained": pts[off // every - 1][1], "dip": min(online),
                        "final": online[-1], "score": online[-1], "return": -1000,
                        "seconds": 3.0})
    return out


def check_wsrl(tmp):
    def arms(wsrl, retain, nowarm=(30, 5, 60)):
        return {"wsrl": wsrl, "retain": retain, "no_warmup": nowarm}
    cases = [("holds", o2o_rows(arms((30, 25, 80), (30, 28, 79))), "supported"),
             # within the margin (5 points) below retention: still "at least as high"
             ("within_margin", o2o_rows(arms((30, 25, 78), (30, 28, 80), ), noise=0.3),
              "supported"),
             # ends below its own pre-training: no recovery
             ("no_recovery", o2o_rows(arms((30, 10, 20), (30, 12, 20))), "not supported"),
             # recovers, but far below keeping the data
             ("far_below_retention", o2o_rows(arms((30, 25, 60), (30, 28, 85))),
              "not supported"),
             ("noise", o2o_rows(arms((30, 25, 40), (30, 28, 50)), noise=20), "inconclusive")]
    check_cases(tmp, "wsrl", cases, ["WSRL (no retention, warm-up)",
                                     "retain the offline data (50/50)",
                                     "no retention, no warm-up"], 3)
    # one seed: never a verdict either way
    v, _, why = verdict_of(tmp, "wsrl", "one_seed",
                           o2o_rows(arms((30, 25, 80), (30, 28, 79)), seeds=(1,)))
    report(v is not None and v["verdict"] == "inconclusive", "wsrl_verdict_one_seed_inconclusive",
           why or v["text"])


def check_pair(tmp, study, base, ours, labels):
    cases = [("holds", o2o_rows({base: (40, 30, 60), ours: (40, 35, 75)}), "supported"),
             ("fails", o2o_rows({base: (40, 30, 75), ours: (40, 35, 60)}), "not supported"),
             ("noise", o2o_rows({base: (40, 30, 60), ours: (40, 35, 62)}, noise=15),
              "inconclusive"),
             # better before the switch and at the dip, lower at the end: the end decides
             ("better_early_only", o2o_rows({base: (30, 10, 75), ours: (60, 50, 65)}),
              "not supported")]
    check_cases(tmp, study, cases, labels, 2)


# --------------------------------------------------------------- real run --
def smoke(study, tmp, base, extra_check=None):
    out = os.path.join(ROOT, BUILD, "tmp", f"study-ctrl-{study}")
    shutil.rmtree(out, ignore_errors=True)  # stale logs of an earlier run
    env = {**os.environ, "RLHF_CTRL_STUDY": "smoke", "OMP_NUM_THREADS": "1"}
    t0 = time.time()
    p = subprocess.run([os.path.join(ROOT, BUILD, "rlhf"), "study", study, "--base", base,
                        "--out", out, "--seeds", "2", "--overwrite_output_dir"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    secs = time.time() - t0
    if p.returncode != 0:
        report(False, f"{study}_smoke_run", p.stderr[-1500:])
        return None
    v = json.load(open(f"{out}/verdict.json"))
    page = open(f"{out}/report.html").read()
    report(v["verdict"] in ("supported", "not supported", "inconclusive") and
           page.count("<polyline") >= 2, f"{study}_smoke_verdict_and_plot",
           f"{v['verdict']} {v['figure']}")
    print(f"# {study} smoke: {secs:.1f} s, {v['verdict']}: {v['figure']}")
    return out


def shared_base():
    """--base: the collected dataset, shared by the smoke runs (the control
    studies set no_sandbox: no language-model sandbox is built there)"""
    base = os.path.join(ROOT, BUILD, "tmp", "study-ctrl-base")
    # belt and braces: an empty final checkpoint also stops a binary without
    # no_sandbox from spending minutes on the sandbox's SFT
    final = os.path.join(base, "sft", "checkpoints", "final")
    os.makedirs(final, exist_ok=True)
    open(os.path.join(final, "model.safetensors"), "a").close()
    return base


def check_riql_smoke(tmp, base):
    out = smoke("riql", tmp, base)
    if out is None:
        return
    rs = [r for r in rows(f"{out}/results.jsonl") if r.get("phase") == "final"]
    seeds = sorted({r["seed"] for r in rs})
    want = {(m, d, s) for m in ("iql", "riql") for d in ("clean", "rew-random-0.3", "rew-adv-0.3")
            for s in seeds}
    have = {(r["method"], r["data"], r["seed"]) for r in rs}
    report(len(seeds) == 2 and want == have and all(math.isfinite(r["score"]) for r in rs),
           "riql_smoke_rows_for_every_method_data_and_seed", f"missing {want - have}")
    # every run trained its algorithm on the file of its row
    bad = []
    for r in rs:
        run_dir = f"{out}/runs/seed{r['seed']}/{r['method']}-{r['data']}"
        cfg = json.load(open(f"{run_dir}/config.json"))
        file_ok = cfg.get("dataset", "").endswith("medium-expert.hdf5") if r["data"] == "clean" \
            else cfg.get("dataset", "").endswith(f"seed{r['seed']}/{r['data']}.hdf5")
        if cfg.get("algo") != r["method"] or not file_ok:
            bad.append((r["method"], r["data"], cfg.get("algo"), cfg.get("dataset")))
    report(not bad, "riql_smoke_runs_train_the_named_algo_on_the_named_data", str(bad))
    # the corrupt command's log says how many rows it hit: about 30%
    logs = sorted(f"{d}/{f}" for d in os.listdir(f"{out}/logs/corrupt")
                  for f in os.listdir(f"{out}/logs/corrupt/{d}"))
    hits = []
    for name in logs:
        text = open(f"{out}/logs/corrupt/{name}").read()
        if "rows (" in text:
            hits.append(float(text.split("rows (")[1].split("%")[0]))
    report(len(hits) == 4 and all(20 <= h <= 40 for h in hits), "riql_smoke_rewards_corrupted_30pct",
           f"{hits} from {logs}")
    # a clean and a corrupted run of one method differ (the data reached the trainer)
    s0 = seeds[0]
    sc = {(r["method"], r["data"]): r["score"] for r in rs if r["seed"] == s0}
    report(sc[("iql", "clean")] != sc[("iql", "rew-random-0.3")] or
           sc[("iql", "clean")] != sc[("iql", "rew-adv-0.3")], "riql_smoke_corruption_changes_runs",
           str(sc))


def check_task(tmp):
    """--task ENV (riql, wsrl, famo2o, ro2o, moorl): the collect, every run and the
    verdict on that environment; anything else refused before a file is written"""
    for study, bad in (("famo2o", "cartpole"), ("ro2o", "walker2d:friction=2"), ("famo2o", ""),
                       ("riql", "Hopper"), ("wsrl", "pendulum,hopper"), ("moorl", "cartpole")):
        out = f"{tmp}/task-bad-{study}"
        p = run("study", study, "--task", bad, "--out", out, check=False)
        report(p.returncode != 0 and f"--task {bad}" in p.stderr and "halfcheetah" in p.stderr and
               not os.path.exists(out), f"{study}_task_{bad or 'empty'}_refused", p.stderr[-300:])
    base = f"{tmp}/task-base"
    env = {**os.environ, "RLHF_CTRL_STUDY": "smoke", "OMP_NUM_THREADS": "1"}
    # study, its runs (algo, run folder under runs/seed1), the row phase with
    # env, a flag (name, value) only the second arm's smoke run gets on MuJoCo
    plans = (("famo2o", [("iql", "iql"), ("famo2o", "famo2o")], "o2o", None),
             ("ro2o", [("sacn", "sacn"), ("ro2o", "ro2o")], "o2o", ("ro2o_samples", 2)),
             ("riql", [(m, f"{m}-{d}") for m in ("iql", "riql")
                       for d in ("clean", "rew-random-0.3", "rew-adv-0.3")], "final", None),
             ("wsrl", [("wsrl", a) for a in ("wsrl", "retain", "no_warmup")], "o2o", None),
             ("moorl", [("moorl", "moorl"), ("sac", "sac_dataset"), ("iql", "offline"), ("sac", "sac_utd")],
              "final", ("utd", 5)))
    for study, runs, phase, flag in plans:
        out = f"{tmp}/task-{study}"
        t0 = time.time()
        p = subprocess.run([os.path.join(ROOT, BUILD, "rlhf"), "study", study, "--task", "hopper",
                            "--seeds", "1", "--base", base, "--out", out],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if p.returncode and "MuJoCo" in p.stderr:
            print(f"SKIP {study} --task hopper: built without MuJoCo")
            return
        if p.returncode:
            report(False, f"{study}_task_hopper_runs", p.stderr[-1200:])
            continue
        why = []
        colls = [x for x in os.listdir(base) if x.startswith("ctrl-hopper-1500-200-16-")]
        # the folder names every setting of the data (2 checkpoints, 1
        # evaluation episode at the smoke size), so studies whose collects
        # differ only there never share one
        if colls != ["ctrl-hopper-1500-200-16-c2-e1-s1"]:
            why.append(f"collect folders {os.listdir(base)}")
        rs = [r for r in rows(f"{out}/results.jsonl") if r.get("phase") == phase]
        if len(rs) != len(runs) or any(r.get("env") != "hopper" for r in rs):
            why.append(f"{phase} rows {rs}")
        for algo, name in runs:
            cfg = json.load(open(f"{out}/runs/seed1/{name}/config.json"))
            data = cfg.get("dataset", "")
            own = data.endswith(f"{colls[0] if colls else '?'}/{study_level(study)}.hdf5") or \
                data.endswith(f"seed1/{name.split('-', 1)[-1]}.hdf5")  # riql's corrupted copies
            if cfg.get("env") != "hopper" or cfg.get("algo") != algo or not own:
                why.append(f"{name} config {json.dumps(cfg)[:300]}")
            if flag and name == runs[-1][1] and cfg.get(flag[0]) != flag[1]:
                why.append(f"{name} {flag[0]} {cfg.get(flag[0])}")
        v = json.load(open(f"{out}/verdict.json"))
        if "Environment: hopper" not in v["text"]:
            why.append(v["text"])
        report(not why, f"{study}_task_hopper: the collect, every run and the verdict on hopper "
               f"({time.time() - t0:.1f} s)", "; ".join(why)[:1500])


def study_level(study):
    return {"riql": "medium-expert", "wsrl": "medium-replay", "moorl": "medium-replay"}.get(study, "medium")


def main():
    tmp = tempfile.mkdtemp(prefix="rlhf-study-ctrl-")
    try:
        check_riql(tmp)
        check_wsrl(tmp)
        check_pair(tmp, "famo2o", "iql", "famo2o", ["IQL", "FamO2O"])
        check_pair(tmp, "ro2o", "sacn", "ro2o", ["SAC-N", "RO2O"])
        check_task(tmp)
        if SANITIZE:
            print("SKIP study_ctrl_smoke_run: RLHF_SANITIZE")
        else:
            base = shared_base()
            check_riql_smoke(tmp, base)
            if os.environ.get("CTRL_STUDY_ALL"):
                for study in ("wsrl", "famo2o", "ro2o"):
                    smoke(study, tmp, base)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
