"""`rlhf ctrl train` under MPI (docs/mpi.md, issue 17): no control algorithm is
data-parallel yet, so on 2 ranks build/rlhf-mpi must refuse every one (online
sac / td3, offline iql / bc, an --offline_algo recipe) with "ctrl train --algo X
does not run on 2 MPI ranks yet", exit nonzero and write no run folder, while
the same binary under mpirun -np 1 still trains (the refusal is the rank
count's, not the algorithm's). Skips cleanly without build/rlhf-mpi or mpirun.
Standard library only; prints PASS/FAIL/SKIP lines."""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF_MPI = os.path.join(ROOT, BUILD, "rlhf-mpi")
MPIRUN = shutil.which("mpirun")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
if os.environ.get("RLHF_SANITIZE"):  # Open MPI's own allocations at exit
    ENV["ASAN_OPTIONS"] = (ENV.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
failed = 0


def report(ok, name, why=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why), flush=True)
    failed += 0 if ok else 1


def mpirun(np, *args):
    cmd = [MPIRUN, "--oversubscribe", "-np", str(np), RLHF_MPI, "ctrl", "train", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=120)


def main():
    if not os.path.exists(RLHF_MPI) or not MPIRUN:
        print("SKIP mpi_ctrl_test: build/rlhf-mpi or mpirun is absent")
        return 0
    tmp = tempfile.mkdtemp(prefix="mpi_ctrl_")
    try:
        # the dataset is never opened: the refusal comes before anything is loaded
        data = os.path.join(tmp, "absent.hdf5")
        cases = [
            ("sac", ["--algo", "sac", "--env", "pendulum", "--online_steps", "20"]),
            ("td3", ["--algo", "td3", "--env", "pendulum", "--online_steps", "20"]),
            ("iql", ["--algo", "iql", "--env", "pendulum", "--dataset", data,
                     "--offline_steps", "20"]),
            ("bc", ["--algo", "bc", "--env", "pendulum", "--dataset", data,
                    "--offline_steps", "20"]),
            ("sac", ["--algo", "sac", "--offline_algo", "iql", "--env", "pendulum",
                     "--dataset", data, "--offline_steps", "20", "--online_steps", "20"]),
        ]
        for i, (name, args) in enumerate(cases):
            out = os.path.join(tmp, f"run{i}")
            p = mpirun(2, *args, "--output_dir", out)
            want = f"ctrl train --algo {name}"
            ok = (p.returncode != 0 and want in p.stderr
                  and "does not run on 2 MPI ranks yet" in p.stderr and not os.path.exists(out))
            report(ok, f"2 ranks refuse {' '.join(args[:4])}",
                   f"exit {p.returncode}, run folder written: {os.path.exists(out)}, "
                   f"stderr: {p.stderr[-600:]}")
        out = os.path.join(tmp, "one")
        p = mpirun(1, "--algo", "sac", "--env", "pendulum", "--online_steps", "30",
                   "--start_steps", "10", "--hidden", "16", "--eval_every", "30",
                   "--eval_episodes", "1", "--quiet", "--output_dir", out)
        ok = p.returncode == 0 and os.path.exists(os.path.join(out, "metrics.jsonl"))
        report(ok, "mpirun -np 1 trains sac (the refusal is the rank count's)",
               f"exit {p.returncode}: {p.stderr[-600:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
