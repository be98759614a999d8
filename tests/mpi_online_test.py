"""Sharded rollouts of the online trainers over MPI ranks (docs/mpi.md, "Online trainers").

The same grpo / rloo / online-dpo run (tiny model, arith prompts, a judge whose
reward varies, 2 iterations) as 1 process (build/rlhf) and on 2 MPI ranks
(build/rlhf-mpi; 4 ranks and rloo too with RLHF_MPI_FULL=1): every rank samples whole prompt groups with the random numbers
one process gives them, scores them, and the group statistics, losses and
metrics are over the global batch, so the per-iteration curves must agree:
reward, reward_std and completion_length exactly (the same samples), losses,
KL, entropy and grad_norm to a float tolerance (only the reduction order and the
GEMM row blocking differ). samples.jsonl (rank 0, every row) must hold the same
completions in the same order, each prompt's samples together (a weak check:
that a group is never split follows from rollout_share, whole prompts per rank).

Skips cleanly without build/rlhf-mpi or mpirun. Under RLHF_SANITIZE=1 the MPI
runs get ASAN_OPTIONS=detect_leaks=0 (Open MPI's own leaks at exit).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
RLHF_MPI = os.path.join(ROOT, BUILD, "rlhf-mpi")
JUDGE = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')}"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
if os.environ.get("RLHF_SANITIZE") == "1":
    ENV["ASAN_OPTIONS"] = (ENV.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
EXACT = ("reward", "reward_std", "completion_length", "truncated_share")
TOL = 1e-4  # |a - b| <= TOL * max(1, |a|) for the float metrics
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def rows(path):
    return [json.loads(x) for x in open(path) if x.strip()]


def run(np_, cmd, out, data, *extra):
    args = [cmd, "--model", "tiny", "--data", data, "--output_dir", out, "--max_steps", "2",
            "--batch_size", "4", "--num_generations", "4", "--max_new_tokens", "6",
            "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--temperature", "1.0",
            "--log_samples", "100", "--quiet", "--reward_command", JUDGE, *extra]
    argv = [RLHF, *args] if np_ == 1 else ["mpirun", "--oversubscribe", "-np", str(np_), RLHF_MPI,
                                           *args]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... exited {p.returncode}: {p.stderr[-1500:]}")
    return rows(os.path.join(out, "metrics.jsonl")), rows(os.path.join(out, "samples.jsonl"))


def compare(name, base, other):
    worst, where = 0.0, ""
    for it, (a, b) in enumerate(zip(base, other)):
        for k, v in a.items():
            if k.startswith("time/") or not isinstance(v, (int, float)) or k not in b:
                continue
            d = abs(v - b[k])
            if k in EXACT and d != 0:
                return False, f"iteration {it + 1} {k}: {v} vs {b[k]}"
            rel = d / max(1.0, abs(v))
            if rel > worst:
                worst, where = rel, f"{k} at iteration {it + 1}"
    if len(base) != len(other):
        return False, f"{len(base)} vs {len(other)} metrics lines"
    return worst <= TOL, f"max relative diff {worst:.2e} ({where or 'none'})"


def groups_whole(samples, n_ranks, n=4, bs=4):
    """each step's rows come in prompt order; a group's n samples must be one
    rank's (consecutive rows of the share of whole groups)"""
    by_step = {}
    for s in samples:
        by_step.setdefault(s["step"], []).append(s)
    for step, ss in by_step.items():
        if len(ss) != n * bs:
            return False
        # log_samples writes one sample per prompt first, then the rest: prompt j's
        # k-th sample is row k*bs + j; all of a prompt's samples share its prompt
        for j in range(bs):
            if len({ss[k * bs + j]["prompt"] for k in range(n)}) != 1:
                return False
    return True


def main():
    if not os.path.exists(RLHF_MPI) or not shutil.which("mpirun"):
        print("SKIP mpi_online: no build/rlhf-mpi or mpirun (make with libopenmpi-dev installed)")
        return 0
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="mpi_online_")
    try:
        subprocess.run([RLHF, "data", "--task", "arith", "--out", tmp, "--n_train", "20",
                        "--n_pref", "20", "--n_prompts", "32", "--n_eval", "4"], check=True,
                       capture_output=True, env=ENV)
        data = os.path.join(tmp, "prompts.jsonl")
        # make test: grpo and online-dpo on 2 ranks; RLHF_MPI_FULL=1 adds 4 ranks and rloo
        full = os.environ.get("RLHF_MPI_FULL") == "1"
        cases = [("grpo", (2, 4) if full else (2,), ()), ("online-dpo", (2,), ())]
        if full:
            cases.append(("rloo", (2, 4), ()))
        for cmd, ranks, extra in cases:
            base, bs = run(1, cmd, os.path.join(tmp, f"{cmd}1"), data, *extra)
            report(any(x["reward_std"] > 0 for x in base), f"{cmd}_reward_varies",
                   "the judge gave one reward to every sample: nothing is compared")
            for k in ranks:
                m, s = run(k, cmd, os.path.join(tmp, f"{cmd}{k}"), data, *extra)
                ok, why = compare(cmd, base, m)
                report(ok, f"{cmd}_{k}_ranks_same_curves", why)
                print(f"  {cmd} 1 vs {k} ranks: {why}")
                same = [(a["prompt"], a["completion"]) for a in bs] == \
                       [(b["prompt"], b["completion"]) for b in s]
                report(same, f"{cmd}_{k}_ranks_same_samples", "samples.jsonl differs")
                report(groups_whole(s, k), f"{cmd}_{k}_ranks_groups_whole")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"  mpi_online: {time.time() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
