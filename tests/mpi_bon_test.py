"""rlhf bon (best-of-n sampling, RAFT, SuperHF) data-parallel over MPI ranks
(docs/mpi.md, "Online trainers").

The same run (tiny model, arith prompts, a judge whose reward varies) as one
process (build/rlhf) and on 2 MPI ranks (build/rlhf-mpi): every rank samples
whole prompt groups with the random numbers one process gives them (the
lockstep sampler), scores its groups, the scores are gathered and the best of
each group is picked on the gathered arrays; the SFT (and SuperHF prior) update
runs on each rank's kept rows with the loss divided by the global token count
and the gradients summed by optim_step. So:
  * the sampling tool's --out / --all_out files are identical (texts, rewards);
  * RAFT and SuperHF: samples.jsonl (rank 0) holds the same kept completions, and
    every metric agrees: reward, reward_kept, reward_first, kept_tokens and
    completion_length exactly (the same samples), the rest (nll, loss, kl,
    kl_kept, kl_vocab, grad_norm) within TOL relative (only the reduction order
    and the GEMM row blocking differ; measured below 1e-6 on 2 ranks).

srpo (preference pairs and their revisions) shards each micro-batch's pairs as
dpo does: 2 ranks x --batch_size 3 against one process x 6 (the trainers'
global batch, docs/mpi.md), --gradient_accumulation_steps 2 and an eval set;
the revision NLL over the micro-batch's global token count. Every metric within
TOL (measured 5.4e-6 relative after 3 steps at learning rate 3e-3).

Skips cleanly without build/rlhf-mpi or mpirun.
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
EXACT = ("reward", "reward_kept", "reward_first", "kept_tokens", "completion_length", "epoch",
         "num_tokens", "rewards/accuracies")
TOL = 1e-4  # |a - b| <= TOL * max(1, |a|) for the other metrics
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def rows(path):
    return [json.loads(x) for x in open(path) if x.strip()]


def run(np_, args):
    argv = [RLHF, "bon", *args] if np_ == 1 else \
        ["mpirun", "--oversubscribe", "-np", str(np_), RLHF_MPI, "bon", *args]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... exited {p.returncode}: {p.stderr[-1500:]}")
    return p


def compare(base, other):
    worst, where = 0.0, ""
    if len(base) != len(other):
        return False, f"{len(base)} vs {len(other)} metrics lines"
    for it, (a, b) in enumerate(zip(base, other)):
        for k, v in a.items():
            if k.startswith("time/") or not isinstance(v, (int, float)):
                continue
            if k not in b:
                return False, f"iteration {it + 1}: {k} missing"
            d = abs(v - b[k])
            if k in EXACT and d != 0:
                return False, f"iteration {it + 1} {k}: {v} vs {b[k]}"
            rel = d / max(1.0, abs(v))
            if rel > worst:
                worst, where = rel, f"{k} at iteration {it + 1}"
    return worst <= TOL, f"max relative diff {worst:.2e} ({where or 'none'})"


def sampling(tmp, data):
    files = {}
    for k in (1, 2):
        best, every = os.path.join(tmp, f"best{k}.jsonl"), os.path.join(tmp, f"all{k}.jsonl")
        run(k, ["--model", "tiny", "--data", data, "--reward_command", JUDGE, "--num_samples",
                "4", "--max_new_tokens", "6", "--limit", "6", "--batch_size", "4",
                "--temperature", "1.0", "--out", best, "--all_out", every])
        files[k] = (open(best).read(), open(every).read())
    n_all = len(files[1][1].splitlines())
    report(n_all == 24 and files[1] == files[2], "bon_sample_2_ranks_same_files",
           f"{n_all} rows; the files differ" if n_all == 24 else f"{n_all} rows, not 24")


def training(tmp, data, name, extra):
    res = {}
    for k in (1, 2):
        out = os.path.join(tmp, f"{name}{k}")
        run(k, ["--model", "tiny", "--data", data, "--output_dir", out, "--max_steps", "3",
                "--batch_size", "4", "--num_samples", "4", "--max_new_tokens", "6",
                "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--quiet",
                "--reward_command", JUDGE, *extra])
        res[k] = (rows(os.path.join(out, "metrics.jsonl")), rows(os.path.join(out, "samples.jsonl")))
    base = res[1][0]
    report(any(m["reward_kept"] > m["reward"] for m in base), f"{name}_reward_varies",
           "the judge gave one reward to every sample: nothing is selected")
    report(all(m["grad_norm"] > 0 for m in base), f"{name}_updates", "a zero gradient")
    ok, why = compare(base, res[2][0])
    report(ok, f"{name}_2_ranks_same_curves", why)
    print(f"  {name} 1 vs 2 ranks: {why}")
    same = [(a["prompt"], a["completion"]) for a in res[1][1]] == \
           [(b["prompt"], b["completion"]) for b in res[2][1]]
    report(same and len(res[1][1]) > 0, f"{name}_2_ranks_same_samples", "samples.jsonl differs")


def srpo(tmp, data):
    res = {}
    for k, bs in ((1, "6"), (2, "3")):
        out = os.path.join(tmp, f"srpo{k}")
        args = ["srpo", "--model", "tiny", "--data", data, "--output_dir", out, "--max_steps", "3",
                "--batch_size", bs, "--gradient_accumulation_steps", "2", "--eval_split", "0.2",
                "--eval_steps", "2", "--learning_rate", "3e-3", "--quiet"]
        argv = [RLHF, *args] if k == 1 else \
            ["mpirun", "--oversubscribe", "-np", "2", RLHF_MPI, *args]
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"srpo on {k} ranks exited {p.returncode}: {p.stderr[-1500:]}")
        res[k] = rows(os.path.join(out, "metrics.jsonl"))
    report(any("eval_loss" in m for m in res[1]) and any(m.get("grad_norm", 0) > 0 for m in res[1]),
           "srpo_trains_and_evaluates", "no eval line or no gradient")
    ok, why = compare(res[1], res[2])
    report(ok, "srpo_2_ranks_same_curves", why)
    print(f"  srpo 1 x 6 vs 2 x 3 pairs: {why}")


def main():
    if not os.path.exists(RLHF_MPI) or not shutil.which("mpirun"):
        print("SKIP mpi_bon: no build/rlhf-mpi or mpirun (make with libopenmpi-dev installed)")
        return 0
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="mpi_bon_")
    try:
        subprocess.run([RLHF, "data", "--task", "arith", "--out", tmp, "--n_train", "20",
                        "--n_pref", "20", "--n_prompts", "32", "--n_eval", "4"], check=True,
                       capture_output=True, env=ENV)
        data = os.path.join(tmp, "prompts.jsonl")
        sampling(tmp, data)
        training(tmp, data, "raft", ["--train", "raft"])
        training(tmp, data, "superhf", ["--train", "superhf", "--kl_coef", "0.5"])
        srpo(tmp, os.path.join(tmp, "prefs.jsonl"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"  mpi_bon: {time.time() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
