"""MPI data parallelism (docs/mpi.md) through build/rlhf-mpi under mpirun:
for the same global batch and seed, 1, 2 and 4 ranks give the same sft and dpo
metrics (loss, accuracies, rewards, grad norm, eval) to a stated tolerance;
checkpoints are interchangeable (a 2-rank checkpoint resumed by one process and
a one-process checkpoint resumed by 2 ranks go on as the uninterrupted run);
losses that read the whole batch (orpo, aot, cpo with per-token inputs) give
one process's curves; a rank that fails alone, or is killed, ends the job
within seconds with its message and the last checkpoint stays valid; a command
that is not rank-aware refuses 2 ranks. SKIPs without build/rlhf-mpi or mpirun.
Standard library only; prints PASS/FAIL/SKIP lines."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, RLHF, ROOT, exit_code, report, rows, run  # noqa: E402

MPI_BIN = os.path.join(ROOT, BUILD, "rlhf-mpi")
MPIRUN = shutil.which("mpirun")
# |a - b| <= TOL * max(1, |a|) for every metric: the ranks add their parts of
# each sum in another order than one process (and pad shorter rows), so the
# numbers agree to float rounding, not bit for bit. grad_norm gets TOL_NORM:
# AdamW turns a sign flip of float noise in a near-zero gradient element into
# +-lr, which moves the next gradient more than the losses (docs/mpi.md)
TOL = 1e-5
TOL_NORM = 1e-4
SKIP_KEYS = {"step", "tokens_per_s", "epoch"}


def mpi_env():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
           "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    if os.environ.get("RLHF_SANITIZE"):  # OpenMPI's own allocations at exit
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    return env


def mpirun(np, *args, env=None, check=True):
    cmd = [MPIRUN, "--oversubscribe", "-np", str(np), MPI_BIN, *args]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env or mpi_env(),
                       timeout=300)
    if check and p.returncode != 0:
        raise RuntimeError(f"mpirun -np {np} rlhf-mpi {' '.join(args)} exited {p.returncode}: "
                           f"{p.stderr[-2000:]}")
    return p


def max_diff(a_rows, b_rows, skip=SKIP_KEYS):
    """The largest |a - b| / max(1, |a|) over the metrics both logs have, step by
    step (grad_norm's scaled by TOL / TOL_NORM: compared with TOL it is within its own)."""
    if len(a_rows) != len(b_rows):
        return float("inf"), f"{len(a_rows)} lines vs {len(b_rows)}"
    worst, where = 0.0, ""
    for a, b in zip(a_rows, b_rows):
        if a.get("step") != b.get("step") or set(a) != set(b):
            return float("inf"), f"lines differ: {a} vs {b}"
        for k, v in a.items():
            if k in skip or not isinstance(v, (int, float)):
                continue
            d = abs(v - b[k]) / max(1.0, abs(v)) * (TOL / TOL_NORM if k == "grad_norm" else 1)
            if d > worst:
                worst, where = d, f"{k} at step {a['step']}: {v} vs {b[k]}"
    return worst, where


def equivalence(tmp, data):
    """sft (1, 2, 4 ranks) and dpo (1, 2 ranks): a global batch of 8, the same seed."""
    figures = {}
    sft = ["sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--max_steps",
           "4", "--learning_rate", "3e-3", "--logging_steps", "1", "--save_steps", "2",
           "--eval_split", "0.1", "--seed", "5", "--quiet"]
    one = os.path.join(tmp, "sft1")
    run(*sft, "--batch_size", "8", "--output_dir", one, threads=1)
    base = rows(os.path.join(one, "metrics.jsonl"))
    for np in (2, 4):
        out = os.path.join(tmp, f"sft{np}")
        mpirun(np, *sft, "--batch_size", str(8 // np), "--output_dir", out)
        d, where = max_diff(base, rows(os.path.join(out, "metrics.jsonl")))
        figures[f"sft np{np}"] = f"{d:.3g} ({where})"
        report(d <= TOL, f"mpi_sft_{np}_ranks_same_curve", f"max diff {d:.3g} ({where})")
        if np == 2:  # rank 0 alone wrote the run folder: what one process writes
            same = sorted(os.listdir(out)) == sorted(os.listdir(one))
            report(same, "mpi_rank0_writes_run_dir", f"{os.listdir(out)} vs {os.listdir(one)}")
    dpo = ["dpo", "--model", os.path.join(one, "checkpoints", "final"), "--data",
           os.path.join(data, "prefs.jsonl"), "--max_steps", "3", "--learning_rate", "1e-3",
           "--logging_steps", "1", "--eval_split", "0.1", "--kl_prompts", "4", "--seed", "5",
           "--quiet"]
    d1 = os.path.join(tmp, "dpo1")
    run(*dpo, "--batch_size", "8", "--output_dir", d1, threads=1)
    base = rows(os.path.join(d1, "metrics.jsonl"))
    d2 = os.path.join(tmp, "dpo2")
    mpirun(2, *dpo, "--batch_size", "4", "--output_dir", d2)
    d, where = max_diff(base, rows(os.path.join(d2, "metrics.jsonl")))
    figures["dpo np2"] = f"{d:.3g} ({where})"
    report(d <= TOL and any("eval_rewards/accuracies" in r for r in base),
           "mpi_dpo_2_ranks_same_curve", f"max diff {d:.3g} ({where})")
    return figures


def whole_batch(tmp, data):
    """Losses that read the whole batch at once (ORPO's and CPO's NLL per token of
    the batch, AOT's sorts) are computed on the gathered micro-batch on every
    rank: the same curves as one process. Each rank computing them on its own
    share instead differs by 0.17 (orpo, cpo) and 4.6e-3 (aot). The 3-rank case
    gives the loss per-token inputs (--ld_alpha) and ends on a micro-batch of one
    pair (106 training pairs, 15 a micro-batch: shares 1, 0, 0)."""
    figures = {}
    base = ["dpo", "--model", os.path.join(tmp, "sft1", "checkpoints", "final"), "--data",
            os.path.join(data, "prefs.jsonl"), "--learning_rate", "1e-3", "--logging_steps",
            "1", "--seed", "5", "--quiet"]
    cases = [("orpo", 2, 8, ["--max_steps", "3", "--eval_split", "0.1"]),
             ("aot", 2, 8, ["--max_steps", "3", "--eval_split", "0.1"]),
             ("cpo", 3, 15, ["--ld_alpha", "0.5", "--max_steps", "2",
                             "--gradient_accumulation_steps", "4", "--eval_split", "0.12",
                             "--eval_steps", "1"])]
    for loss, np, gb, extra in cases:
        args = [*base, "--loss_type", loss, *extra]
        one, many = os.path.join(tmp, f"{loss}1"), os.path.join(tmp, f"{loss}{np}")
        run(*args, "--batch_size", str(gb), "--output_dir", one, threads=1)
        mpirun(np, *args, "--batch_size", str(gb // np), "--output_dir", many)
        a, b = rows(os.path.join(one, "metrics.jsonl")), rows(os.path.join(many, "metrics.jsonl"))
        d, where = max_diff(a, b)
        figures[f"dpo {loss} np{np}"] = f"{d:.3g} ({where})"
        report(d <= TOL and any("eval_loss" in r for r in a), f"mpi_dpo_{loss}_{np}_ranks_whole_batch",
               f"max diff {d:.3g} ({where})")
    return figures


def resume_across(tmp):
    """sft2's step-2 checkpoint (2 ranks) resumed by one process, sft1's (one
    process) by 2 ranks: each goes on as the uninterrupted one-process run."""
    base = rows(os.path.join(tmp, "sft1", "metrics.jsonl"))
    # num_tokens is a running count that --resume starts again from 0 (one process too)
    skip = SKIP_KEYS | {"num_tokens"}
    args = ["sft", "--model", "tiny", "--data", os.path.join(tmp, "data", "sft.jsonl"),
            "--max_steps", "4", "--learning_rate", "3e-3", "--logging_steps", "1",
            "--save_steps", "2", "--eval_split", "0.1", "--seed", "5", "--quiet", "--resume"]
    for src, np in (("sft2", 1), ("sft1", 2)):
        out = os.path.join(tmp, f"resume_{src}")
        shutil.copytree(os.path.join(tmp, src), out)
        shutil.rmtree(os.path.join(out, "checkpoints", "final"))
        if np == 1:
            p = run(*args, "--batch_size", "8", "--output_dir", out, threads=1)
        else:
            p = mpirun(2, *args, "--batch_size", "4", "--output_dir", out)
        d, where = max_diff(base, rows(os.path.join(out, "metrics.jsonl")), skip)
        ok = d <= TOL and "step-00000002" in p.stderr
        report(ok, f"mpi_resume_{'2_ranks_on_1' if np == 1 else '1_on_2_ranks'}",
               f"max diff {d:.3g} ({where}); {p.stderr[-300:]}")


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                    return int(item.split(b"=")[1])
    except OSError:
        pass
    return None


def descendants(pid):
    out, pending = [], [pid]
    while pending:
        p = pending.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        out += kids
        pending += kids
    return out


def wait_for(path, proc, limit):
    t0 = time.time()
    while time.time() - t0 < limit and proc.poll() is None:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def failures(tmp, data):
    """A failure on rank 1 alone (injected after step 3), and rank 1 killed with
    SIGKILL after the step-2 checkpoint: each ends the 2-rank job within seconds,
    and the step-2 checkpoint resumes."""
    figures = {}
    args = ["sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--max_steps",
            "400", "--batch_size", "4", "--learning_rate", "1e-3", "--save_steps", "2",
            "--quiet"]
    out = os.path.join(tmp, "fail")
    env = {**mpi_env(), "RLHF_TEST_FAIL_RANK": "1", "RLHF_TEST_FAIL_STEP": "3"}
    t0 = time.time()
    p = mpirun(2, *args, "--output_dir", out, env=env, check=False)
    figures["injected failure, whole run"] = f"{time.time() - t0:.1f}s"
    ok = p.returncode != 0 and "rank 1: injected failure" in p.stderr
    report(ok, "mpi_rank_failure_ends_job", f"rc {p.returncode}: {p.stderr[-600:]}")
    ck = os.path.join(out, "checkpoints", "step-00000002")
    q = run("sft", *args[1:], "--max_steps", "3", "--output_dir", out, "--resume", threads=1,
            check=False)
    report(q.returncode == 0 and "step-00000002" in q.stderr, "mpi_failure_checkpoint_resumes",
           q.stderr[-400:])

    out = os.path.join(tmp, "kill")
    cmd = [MPIRUN, "--oversubscribe", "-np", "2", MPI_BIN, *args, "--output_dir", out]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=mpi_env())
    ck = os.path.join(out, "checkpoints", "step-00000002")
    victim = None
    if wait_for(ck, proc, 60):
        for pid in descendants(proc.pid):
            if rank_of(pid) == 1:
                victim = pid
    if victim is None:
        proc.kill()
        proc.communicate()
        report(False, "mpi_killed_rank_ends_job", "no step-2 checkpoint or no rank 1 process")
        return figures
    t0 = time.time()
    os.kill(victim, signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    took = time.time() - t0
    figures["rank 1 killed -> job ended"] = f"{took:.1f}s"
    report(proc.returncode != 0 and took < 10, "mpi_killed_rank_ends_job",
           f"rc {proc.returncode} after {took:.1f}s: {err[-500:]}")
    info = run("info", "--model", ck, threads=1, check=False)
    report(info.returncode == 0, "mpi_killed_checkpoint_valid", info.stderr[-300:])
    return figures


def main():
    if not os.path.exists(MPI_BIN) or not MPIRUN:
        print(f"SKIP mpi_test: needs {BUILD}/rlhf-mpi and mpirun (apt-get install "
              "libopenmpi-dev openmpi-bin, then make)")
        return 0
    tmp = tempfile.mkdtemp(prefix="mpi_test.", dir=os.path.join(ROOT, BUILD))
    t0 = time.time()
    try:
        data = os.path.join(tmp, "data")
        run("data", "--task", "arith", "--out", data, "--digits", "1-2", "--n_pref", "120",
            "--n_train", "120", "--n_eval", "10")
        figures = equivalence(tmp, data)
        resume_across(tmp)
        figures.update(failures(tmp, data))
        figures.update(whole_batch(tmp, data))
        # commands that do not handle ranks would run N copies writing the same files:
        # the dispatcher refuses them (ctrl collect too; ctrl train has its own check)
        cases = [("info", ["info", "--model", "tiny"]),
                 ("ctrl collect", ["ctrl", "collect", "--env", "pendulum", "--out",
                                   os.path.join(tmp, "collect"), "--steps", "100"])]
        for what, args in cases:
            p = mpirun(2, *args, check=False)
            report(p.returncode != 0 and "does not run on 2 MPI ranks" in p.stderr
                   and not p.stdout.strip() and not os.path.exists(os.path.join(tmp, "collect")),
                   f"mpi_refused_{what.replace(' ', '_').replace('--', '')}", p.stderr[-400:])
        p = mpirun(1, *cases[0][1], check=False)  # one rank: the same command runs
        report(p.returncode == 0 and p.stdout.strip() != "", "mpi_one_rank_info_runs",
               p.stderr[-400:])
        for k, v in figures.items():  # differences: scaled as max_diff says, where
            print(f"  {k}: {v}")
        print(f"  mpi_test: {time.time() - t0:.1f}s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
