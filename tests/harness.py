"""What the python tests share: where the build is, PASS/FAIL lines, running
`rlhf`, JSONL files. Standard library only.

    from harness import ROOT, BUILD, RLHF, report, run, rows, write, exit_code
"""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
failed = 0


def report(ok, name, why=""):
    """One PASS or FAIL line (tests/run.sh counts them)."""
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def exit_code():
    return 1 if failed else 0


def run(*args, check=True, threads=2, timeout=600):
    """rlhf ARGS from the repository root with a fixed OpenMP thread count (the
    same numbers every run); raises with the end of stderr when check fails."""
    p = subprocess.run([RLHF, *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)}, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"rlhf {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def rows(path):
    return [json.loads(x) for x in open(path) if x.strip()]


def write(path, items):
    with open(path, "w") as f:
        f.write("".join(json.dumps(x) + "\n" for x in items))
