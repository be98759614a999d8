#!/usr/bin/env python3
"""bench/mpi_bench.py (make bench-mpi): data-parallel training on MPI, measured on
this machine and projected to clusters (issue 17; docs/mpi_scaling.md).

  BUILD=build /usr/bin/python3 bench/mpi_bench.py
  env: MODEL (gpt2 = the GPT-2 124M config), SEQ (128), BATCH (4: the global
  batch), STEPS (2 timed steps after one warm-up), SIZES (MB buffers for the
  collectives, "10 50 100 250 500"), LINKS (Gb/s, "10 25 100"), NODES ("8 64")

1. An SFT step (forward + backward + ZeRO-1 AdamW: `rlhf bench --work sft`) on
   the global batch, 1 process x 2 threads against 2 processes x 1 thread (each
   rank BATCH/2 rows; mpirun -np 2 rlhf-mpi). RLHF_OPTIM_TIMERS=1 makes
   optim_step print the seconds of its gradient all-reduce, its update and its
   parameter all-gather, and (a barrier before each collective) the wait for
   the slowest rank: the communication share is (all-reduce + all-gather) /
   step, the transfers alone. `rlhf bench` is the trainer's step without the data pipeline (the same
   model_forward / model_backward / optim_step calls as rlhf sft).
   Then a GRPO iteration (`rlhf bench --work grpo`) the same two ways.
2. The all-reduce (sum, float32) and the all-gather bandwidth on 10..500 MB
   buffers between 2 ranks of this machine (shared memory), with OpenMPI's
   default algorithm choice and with the ring (coll_tuned_allreduce_algorithm 4).
   algbw = bytes / seconds; busbw = algbw x 2(N-1)/N (the ring's traffic per
   link, as nccl-tests report it).
3. The cost model (docs/mpi_scaling.md): per step each node sends and receives
   2(N-1)/N x P x 4 bytes (ring all-reduce of P float32 gradients, or ZeRO-1's
   reduce-scatter + all-gather: the same volume), taking
   t_comm = 2(N-1)/N * 4P / B + 2(N-1) * alpha   (B link bandwidth, alpha 10 us)
   beside the measured one-node compute time t_c of the per-node batch (weak
   scaling: every node keeps BATCH rows); predicted step = t_c + t_comm (no
   overlap), efficiency = t_c / step.
"""
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
RLHF_MPI = RLHF + "-mpi"
TOOL_MPI = os.path.join(ROOT, BUILD, "tests", "tools", "mpizero_step-mpi")
MODEL = os.environ.get("MODEL", "gpt2")
SEQ = int(os.environ.get("SEQ", "128"))
BATCH = int(os.environ.get("BATCH", "4"))
STEPS = int(os.environ.get("STEPS", "2"))
SIZES = os.environ.get("SIZES", "10 50 100 250 500").split()
LINKS = [float(x) for x in os.environ.get("LINKS", "10 25 100").split()]
NODES = [int(x) for x in os.environ.get("NODES", "8 64").split()]
ALPHA = 10e-6
MPIENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
RING = {"OMPI_MCA_coll_tuned_use_dynamic_rules": "1", "OMPI_MCA_coll_tuned_allreduce_algorithm": "4"}


def sh(cmd, threads, extra=None):
    env = {**os.environ, **MPIENV, "OMP_NUM_THREADS": str(threads), "RLHF_OPTIM_TIMERS": "1",
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           **(extra or {})}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
    if p.returncode != 0:
        sys.exit(f"mpi_bench: {' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def timers(stderr, rank=0):
    """mean seconds per step of optim_step's parts on a rank, warm-up step left out"""
    rows = [list(map(float, m.groups())) for m in re.finditer(
        rf"optim_timers: rank {rank} of \d+ step (\d+) reduce_s (\S+) update_s (\S+) gather_s (\S+)"
        rf" wait_s (\S+)", stderr)]
    rows = [r for r in rows if r[0] > 1] or rows
    return [sum(r[i] for r in rows) / len(rows) for i in (1, 2, 3, 4)]


def last_json(out):
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.exit("mpi_bench: no JSON line from rlhf bench")


def sft():
    args = ["bench", "--work", "sft", "--model", MODEL, "--seq", str(SEQ), "--steps", str(STEPS)]
    p1 = sh([RLHF, *args, "--batch", str(BATCH)], 2)
    p2 = sh(["mpirun", "--oversubscribe", "-np", "2", RLHF_MPI, *args, "--batch", str(BATCH // 2)], 1)
    rows = []
    for name, p in (("1 process x 2 threads", p1), ("2 processes x 1 thread", p2)):
        j, (red, upd, gat, wait) = last_json(p.stdout), timers(p.stderr)
        step = j["step_s"]
        rows.append({"config": name, "step_s": step, "tokens_per_s": BATCH * SEQ / step,
                     "allreduce_s": red, "update_s": upd, "allgather_s": gat, "wait_s": wait,
                     "comm_share": (red + gat) / step, "compute_s": step - red - gat - wait})
    return rows


def grpo():
    """one GRPO iteration (rlhf bench --work grpo: 8 prompts x 4 samples, 64 + NEW
    tokens): 1 process x 2 threads against 2 ranks x 1 thread, each rank whole
    prompt groups; stages are the slowest rank's"""
    args = ["bench", "--work", "grpo", "--model", MODEL, "--new_tokens", os.environ.get("NEW", "64")]
    p1 = sh([RLHF, *args], 2)
    p2 = sh(["mpirun", "--oversubscribe", "-np", "2", RLHF_MPI, *args], 1)
    rows = []
    for name, p in (("1 process x 2 threads", p1), ("2 processes x 1 thread", p2)):
        j = last_json(p.stdout)
        red, _, gat, _ = timers(p.stderr)
        rows.append({"config": name, "gen_s": j["gen_s"], "ref_s": j["ref_s"], "update_s": j["update_s"],
                     "total_s": j["total_s"], "allreduce_s": red, "allgather_s": gat,
                     "comm_share": (red + gat) / j["total_s"], "peak_rss_mb": j["peak_rss_mb"]})
    return rows


def collectives(extra):
    p = sh(["mpirun", "--oversubscribe", "-np", "2", TOOL_MPI, "collectives", *SIZES], 1, extra)
    out = {}
    for line in p.stdout.splitlines():
        kind, mb, s = line.split()
        out.setdefault(float(mb), {})[kind] = float(s)
    return out


def n_params():
    p = sh([RLHF, "info", "--model", MODEL], 1)
    m = re.search(r"parameters\s+(\d+)", p.stdout + p.stderr)
    return int(m.group(1).replace(",", "")) if m else 124_439_808


def main():
    for f in (RLHF, RLHF_MPI, TOOL_MPI):
        if not os.path.exists(f):
            sys.exit(f"mpi_bench: {f} missing (make BUILD={BUILD}; needs libopenmpi-dev)")
    if not shutil.which("mpirun"):
        sys.exit("mpi_bench: no mpirun (apt-get install openmpi-bin)")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"# {cpu}, {os.cpu_count()} cores, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"# model {MODEL}, seq {SEQ}, global batch {BATCH}, {STEPS} timed steps")
    rows = sft()
    print("\n## SFT step (forward + backward + ZeRO-1 AdamW)")
    print("| config | step s | tokens/s | all-reduce s | update s | all-gather s | waiting for ranks s | comm share |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['step_s']:.2f} | {r['tokens_per_s']:.1f} | {r['allreduce_s']:.3f} | "
              f"{r['update_s']:.3f} | {r['allgather_s']:.3f} | {r['wait_s']:.3f} | {100 * r['comm_share']:.1f}% |")
    grows = grpo()
    print("\n## GRPO iteration (generate, reference, update; slowest rank)")
    print("| config | total s | generate s | reference s | update s | reduce s | all-gather s | comm share | peak RSS MB a process |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in grows:
        print(f"| {r['config']} | {r['total_s']:.2f} | {r['gen_s']:.2f} | {r['ref_s']:.2f} | {r['update_s']:.2f} | "
              f"{r['allreduce_s']:.3f} | {r['allgather_s']:.3f} | {100 * r['comm_share']:.1f}% | {r['peak_rss_mb']:.0f} |")
    print("\n## Collectives, 2 ranks on this machine (best of 3, slowest rank)")
    print("| MB | all-reduce default s | algbw GB/s | all-reduce ring s | algbw GB/s | busbw GB/s | all-gather s | GB/s received per rank |")
    print("|---|---|---|---|---|---|---|---|")
    dflt, ring = collectives({}), collectives(RING)
    for mb in sorted(ring):
        d, r = dflt.get(mb, {}), ring[mb]
        gb = mb / 1000
        print(f"| {mb:g} | {d.get('allreduce', float('nan')):.3f} | {gb / d.get('allreduce', float('nan')):.2f} | "
              f"{r['allreduce']:.3f} | {gb / r['allreduce']:.2f} | {gb / r['allreduce']:.2f} | "
              f"{r['allgather']:.3f} | {gb / 2 / r['allgather']:.2f} |")
    big = max(ring)
    bw = big / 1000 / ring[big]["allreduce"]
    P = n_params()
    tc = rows[0]["step_s"]
    print(f"\n## Cost model: P = {P:,} params, t_c = {tc:.2f} s (1 node, batch {BATCH} x {SEQ}), "
          f"alpha = {ALPHA * 1e6:.0f} us; measured here: 2-rank ring all-reduce {bw:.2f} GB/s algbw "
          f"at {big:g} MB")
    print("| nodes | link Gb/s | bytes/node/step | t_comm s | predicted step s | efficiency |")
    print("|---|---|---|---|---|---|")
    for n in NODES:
        for link in LINKS:
            vol = 2 * (n - 1) / n * 4 * P
            t = vol / (link * 1e9 / 8) + 2 * (n - 1) * ALPHA
            print(f"| {n} | {link:g} | {vol / 1e6:.0f} MB | {t:.3f} | {tc + t:.2f} | {100 * tc / (tc + t):.1f}% |")
    print(json.dumps({"sft": rows, "grpo": grows, "allreduce_default": dflt, "allreduce_ring": ring, "params": P}))


if __name__ == "__main__":
    main()
