"""SRPO's reviser on held-out prompts when the defect is one it can see: the
format experiment of docs/srpo.md ("Revisions that fix the form"), over more
seeds than tests/srpo_heldout_test.py (which holds the experiment and asserts
it for three seeds in make test).

Prints one table row per seed: well-formed share and the arith task's shaped
reward of y0 -> y1, fixed / broken counts and a two-sided sign test, for the
SRPO model revising its own held-out answers and the reference's.

    /usr/bin/python3 scripts/srpo_format.py [--seeds 3 4 5 6 7 8 9 10] [--steps 300]
        [--out DIR] [-- extra rlhf srpo flags, e.g. --revision_nll_coef 1]
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from srpo_heldout_test import build, describe, first_and_revised, sign_test, stats, train_srpo  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6, 7, 8, 9, 10])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    ap.add_argument("extra", nargs="*", help="more rlhf srpo flags (after --)")
    a = ap.parse_args()
    tmp = a.out or tempfile.mkdtemp(prefix="srpo_format.")
    os.makedirs(tmp, exist_ok=True)
    shutil.rmtree(os.path.join(tmp, "sft"), ignore_errors=True)
    build(tmp)
    sft = os.path.join(tmp, "sft")
    print("| model | n | well-formed y0 -> y1 | score y0 -> y1 | fixed / broken | p |")
    print("|---|---|---|---|---|---|")
    print(f"| SFT (the reference) | 184 | {describe(stats(first_and_revised(tmp, sft, sft, 'sft')))} |")
    pooled = [0, 0, 0, 0]
    for seed in a.seeds:
        out = train_srpo(tmp, seed, a.steps, a.extra)
        own = stats(first_and_revised(tmp, out, out, f"own{seed}"))
        other = stats(first_and_revised(tmp, sft, out, f"sft{seed}"))
        pooled = [pooled[0] + own["fixed"], pooled[1] + own["broken"],
                  pooled[2] + other["fixed"], pooled[3] + other["broken"]]
        print(f"| SRPO seed {seed}, own answers | 184 | {describe(own)} |")
        print(f"| SRPO seed {seed}, revising the SFT model's answers | 184 | {describe(other)} |")
        sys.stdout.flush()
    for name, f, b in [("own answers", pooled[0], pooled[1]),
                       ("the SFT model's answers", pooled[2], pooled[3])]:
        p = sign_test([0] * (f + b), [1] * f + [-1] * b)[2]
        print(f"pooled, {name}: fixed {f}, broken {b}, p {p:.3g}")
    if not a.out:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
