"""`rlhf study ftpedel` (Wagenmaker & Pacchiano 2023, FTPedel; src/study/study_linmdp.c).

1. The verdict is computed from rows: synthetic rows where the offline rows on
   the rare state cut the online episodes to 3% and offline-only is not
   certified (supported); where FTPedel needs as many episodes as online-only
   (not supported); where the offline rows alone certify an eps-optimal policy
   on every seed (not supported); where one seed's ratio is 0.7 (inconclusive).
2. The quick study runs (seconds: the linear MDP is computed in C, no model is
   trained, no sandbox is made), writes a row for every (seed, coverage, size,
   method), and on its instance the claim holds: supported, every online arm
   certified and eps-optimal.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import report, run, rows, write, exit_code  # noqa: E402


def synthetic(ratio=(0.03, 0.03), off_ok=False):
    items = []
    for i, r in enumerate(ratio):
        seed = i + 1
        base = dict(phase="run", seed=seed, eps=0.008, epochs=8, beta=21.7)
        items.append({**base, "coverage": "none", "n_off": 0, "method": "online",
                      "episodes": 400000, "certified": 1, "gap": 0})
        for n in (1000, 10000):
            eps_ft = 400000 * (r if n == 10000 else 0.9)
            items.append({**base, "coverage": "rare", "n_off": n, "method": "ftpedel",
                          "episodes": eps_ft, "certified": 1, "gap": 0})
            items.append({**base, "coverage": "rare", "n_off": n, "method": "offline",
                          "episodes": 0, "certified": 1 if off_ok else 0,
                          "gap": 0 if off_ok else 0.012})
    return items


def verdict_of(tmp, name, items):
    src, out = f"{tmp}/{name}.jsonl", f"{tmp}/{name}"
    write(src, items)
    p = run("study", "ftpedel", "--from", src, "--out", out, check=False)
    if p.returncode != 0:
        return None, p.stderr[-500:]
    return json.load(open(f"{out}/verdict.json")), ""


def check_verdicts(tmp):
    for name, items, want in [
        ("holds", synthetic(), "supported"),
        ("no_saving", synthetic(ratio=(1.0, 1.1)), "not supported"),
        ("offline_enough", synthetic(off_ok=True), "not supported"),
        ("mixed", synthetic(ratio=(0.03, 0.7)), "inconclusive"),
    ]:
        v, why = verdict_of(tmp, name, items)
        got = v and v.get("verdict")
        report(got == want, f"verdict_{name}", f"got {got!r}, want {want!r} {why}")


def check_quick(tmp):
    out = f"{tmp}/quick"
    p = run("study", "ftpedel", "--quick", "--out", out, check=False, threads=1)
    if p.returncode != 0:
        report(False, "quick_study", p.stderr[-800:])
        return
    rs = [r for r in rows(f"{out}/results.jsonl") if r.get("phase") == "run"]
    # per seed: online + 3 coverages x 2 sizes x (ftpedel, offline)
    report(len(rs) == 2 * (1 + 3 * 2 * 2), "quick_rows", f"{len(rs)} rows")
    online = [r for r in rs if r["method"] != "offline"]
    report(all(r["certified"] == 1 and r["gap"] <= r["eps"] for r in online), "quick_online_arms",
           "an online arm ended uncertified or not eps-optimal")
    v = json.load(open(f"{out}/verdict.json"))
    report(v.get("verdict") == "supported", "quick_verdict", f"{v}")
    html = open(f"{out}/report.html").read()
    report('data-label="online only"' in html and "FTPedel, rare-state rows" in html,
           "quick_report", "the report's plot lacks its series")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        check_verdicts(tmp)
        check_quick(tmp)


if __name__ == "__main__":
    main()
    sys.exit(exit_code())
