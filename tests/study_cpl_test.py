"""`rlhf study cpl` (src/study/study_cpl.c): CPL from regret-labelled segment
preferences vs BC on the same rows vs IQL on the hidden rewards.

1. The verdict from rows alone (`--from`): CPL above BC in every seed
   (supported), below (not supported), differences that are noise
   (inconclusive), and CPL far below IQL but above BC (still supported: the
   verdict is CPL - BC; CPL - IQL is only reported).
2. One real run at the smoke size (RLHF_CTRL_STUDY=smoke: a 2000-step SAC
   collect on pendulum, 60-update runs, 2 seeds; skipped under RLHF_SANITIZE):
   a row per method and seed, the pairs file beside each seed's dataset link
   labelled by the SAC oracle, a verdict.
"""
import json
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import report, run, write, exit_code  # noqa: E402

SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))


def rows_of(cpl, bc, iql, noise, seeds=(1, 2, 3, 4)):
    rng = random.Random(3)
    out = []
    for s in seeds:
        for m, mean in (("cpl", cpl), ("bc", bc), ("iql", iql)):
            out.append({"phase": "final", "method": m, "seed": s, "data": "medium-replay",
                        "score": mean + rng.gauss(0, noise), "return": -800})
    return out


def verdicts(tmp):
    cases = [("holds", rows_of(60, 40, 65, 1), "supported"),
             ("fails", rows_of(30, 50, 65, 1), "not supported"),
             ("noise", rows_of(50, 50, 50, 20), "inconclusive"),
             ("below_iql", rows_of(45, 35, 90, 1), "supported")]
    for name, items, want in cases:
        src = os.path.join(tmp, f"{name}.jsonl")
        write(src, items)
        out = os.path.join(tmp, name)
        p = run("study", "cpl", "--from", src, "--out", out, check=False, threads=1)
        if p.returncode != 0:
            report(False, f"study_cpl verdict {name}", p.stderr[-400:])
            continue
        v = json.load(open(os.path.join(out, "verdict.json")))
        ok = v["verdict"] == want
        if name == "holds":
            page = open(os.path.join(out, "report.html")).read()
            ok = ok and all(x in page for x in ("CPL (preferences)", "IQL (rewards)"))
        report(ok, f"study_cpl verdict {name} is {want}", f"{v['verdict']}: {v.get('text', '')[:300]}")


def smoke(tmp):
    out = os.path.join(tmp, "smoke")
    env = {**os.environ, "RLHF_CTRL_STUDY": "smoke"}
    old = os.environ.get("RLHF_CTRL_STUDY")
    os.environ.update(env)
    try:
        p = run("study", "cpl", "--out", out, "--seeds", "2", check=False, threads=1)
    finally:
        if old is None:
            del os.environ["RLHF_CTRL_STUDY"]
        else:
            os.environ["RLHF_CTRL_STUDY"] = old
    if p.returncode != 0:
        report(False, "study_cpl smoke run", p.stderr[-600:])
        return
    rows = [json.loads(x) for x in open(os.path.join(out, "results.jsonl"))]
    got = {(r["method"], r["seed"]) for r in rows if r.get("phase") == "final"}
    want = {(m, s) for m in ("cpl", "cpl_kl", "cpl_ranked", "bc", "iql") for s in (1, 2)}
    why = [] if got == want else [f"rows {sorted(got)}"]
    for s in (1, 2):
        pf = os.path.join(out, "runs", f"seed{s}", "medium-replay.hdf5.cpl.jsonl")
        if not os.path.exists(pf):
            why.append(f"{pf} missing")
            continue
        h = json.loads(open(pf).readline())
        if h.get("label") != "oracle" or not h.get("oracle", "").endswith("/sac"):
            why.append(f"seed {s}: header {h}")
    v = json.load(open(os.path.join(out, "verdict.json")))
    if v.get("verdict") not in ("supported", "not supported", "inconclusive"):
        why.append(f"verdict {v}")
    if "CPL-KL (preferences) minus BC" not in v.get("text", "") or \
            "CPL, ranked batches minus BC" not in v.get("text", ""):
        why.append(f"the variants' differences missing from the verdict: {v.get('text')}")
    cfg = json.load(open(os.path.join(out, "runs", "seed1", "cpl_ranked", "config.json")))
    if cfg.get("cpl_ranked") != 1 and cfg.get("algo_config", {}).get("cpl_ranked") != 1:
        why.append(f"cpl_ranked run's config {str(cfg)[:300]}")
    report(not why, "study_cpl smoke run (rows for cpl/cpl_kl/cpl_ranked/bc/iql x 2 seeds, "
           "oracle-labelled pairs, a verdict that reports the variants)",
           "; ".join(why))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        verdicts(tmp)
        if SANITIZE:
            print("SKIP study_cpl smoke run under the sanitizer")
        else:
            smoke(tmp)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
