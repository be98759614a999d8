"""ppo with a separate critic (--critic_model) on MPI ranks (docs/mpi.md, "Online trainers").

The same ppo --critic_model policy run (tiny model, arith prompts, the varying
judge of mpi_online_test.py, 2 iterations, a checkpoint at each) as 1 process
(build/rlhf) and on 2 MPI ranks (build/rlhf-mpi): the critic's values are
computed on each rank's whole prompt groups and gathered, its value loss runs on
the rank's rows and its gradient is all-reduced by its own optim_step, so the
curves (critic_grad_norm included) must agree to float rounding and the samples
exactly. The checkpoint's critic/ is written once (rank 0) and must hold
finite weights of the one-process size.

Skips cleanly without build/rlhf-mpi or mpirun.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpi_online_test as base_test  # noqa: E402  (the tiny-model run and curve comparison)

ROOT, RLHF, RLHF_MPI, ENV = base_test.ROOT, base_test.RLHF, base_test.RLHF_MPI, base_test.ENV


def main():
    if not os.path.exists(RLHF_MPI) or not shutil.which("mpirun"):
        print("SKIP mpi_online2: no build/rlhf-mpi or mpirun (make with libopenmpi-dev installed)")
        return 0
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="mpi_online2_")
    try:
        subprocess.run([RLHF, "data", "--task", "arith", "--out", tmp, "--n_train", "20",
                        "--n_pref", "20", "--n_prompts", "32", "--n_eval", "4"], check=True,
                       capture_output=True, env=ENV)
        data = os.path.join(tmp, "prompts.jsonl")
        extra = ("--critic_model", "policy", "--save_steps", "1")
        one, s1 = base_test.run(1, "ppo", os.path.join(tmp, "c1"), data, *extra)
        base_test.report(any(x["reward_std"] > 0 for x in one), "ppo_critic_reward_varies",
                         "the judge gave one reward to every sample: nothing is compared")
        base_test.report(all(x.get("critic/grad_norm", 0) > 0 for x in one),
                         "ppo_critic_trains", "no critic/grad_norm in the metrics")
        two, s2 = base_test.run(2, "ppo", os.path.join(tmp, "c2"), data, *extra)
        ok, why = base_test.compare("ppo", one, two)
        base_test.report(ok, "ppo_critic_2_ranks_same_curves", why)
        print(f"  ppo --critic_model 1 vs 2 ranks: {why}")
        same = [(a["prompt"], a["completion"]) for a in s1] == \
               [(b["prompt"], b["completion"]) for b in s2]
        base_test.report(same, "ppo_critic_2_ranks_same_samples", "samples.jsonl differs")
        found = []
        for d, _, files in os.walk(os.path.join(tmp, "c2")):
            if os.path.basename(d) == "critic":
                found.append(sorted(files))
        base_test.report(len(found) > 0 and all(f for f in found), "ppo_critic_2_ranks_saved",
                         f"critic/ folders: {found}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"  mpi_online2: {time.time() - t0:.1f} s")
    return 1 if base_test.failed else 0


if __name__ == "__main__":
    sys.exit(main())
