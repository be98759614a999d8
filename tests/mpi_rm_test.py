"""`rlhf rm --objective classify | pairwise | brme` on MPI ranks (docs/mpi.md, issue 17).

For the same global batch and seed (one process with --batch_size 8, 2 ranks
with --batch_size 4: the batch size is per rank, as for every LM trainer), the
logged numbers (loss, accuracy, grad_norm, learning rate, the eval figures)
agree at every step within TOL (relative, |x| >= 1), the summaries' eval
figures too, and the final weights are close. Rank 0 alone writes (one metrics
line per step). BRME's normal draws are made for the whole micro-batch on
every rank, each using its pairs' rows. VPL (vpl()): 2 and 3 ranks give one
process's files bit for bit. Checked by hand that it fails: with the classifier's loss
over each rank's own rows instead of the global count (grad_norm doubled at
step 3). Tolerances: 1e-5 relative, grad_norm 1e-4, eval figures 5e-5 (see
TOL_EVAL); measured: classify 1.6e-7, pairwise 5.0e-6 (eval_position_bias).
BRME runs at learning rate 3e-4: its sigma heads take large steps (grad_norm
10 at step 3), and at 3e-3 the float noise of step 2 (3e-7) grew to 4e-4 by
step 4, as AdamW's early sign-like steps do (docs/mpi.md); at 3e-4, 1.4e-6.
BRME with each rank's draws taken from the front of the micro-batch's fails
(sigma off by 0.21 at step 2).
Each objective again on 3 ranks x 1 with 2 micro-batches a step, through the
end of an epoch whose last micro-batch (2 rows) leaves one rank's share empty
(odd_shares); measured classify 2.7e-7, pairwise 5.1e-6 (grad_norm, scaled as
above), brme 6.5e-8. Checked by hand that these fail with each rank's loss over
its own count (classify grad_norm 1.63 vs 4.94, pairwise 8.13 vs 24.4), and
brme's with the empty share skipping its draws (loss at step 9 off by 0.045;
the 2-rank case, with no empty share, does not see that one).
SKIPs without build/rlhf-mpi or mpirun. Prints PASS/FAIL/SKIP lines."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, exit_code, report, rows, run  # noqa: E402
from mpi_test import MPI_BIN, MPIRUN, mpi_env  # noqa: E402

TOL = 1e-5       # as tests/mpi_test.py: float sums in another order
TOL_NORM = 1e-4  # grad_norm (AdamW amplifies float noise near zero; docs/mpi.md)
# the pairwise judge's eval figures after training: position bias is a
# difference of two probabilities, read off weights that differ by float noise
# (each rank pads its rows to its own longest: other shapes, other rounding);
# measured 5.0e-6 here
TOL_EVAL = 5e-5
SKIP = {"step", "tokens_per_s", "epoch", "seconds"}


def mpirun(np_, *args):
    return subprocess.run([MPIRUN, "--oversubscribe", "-np", str(np_), MPI_BIN, *args], cwd=ROOT,
                          capture_output=True, text=True, env=mpi_env(), timeout=300)


def gap(a_rows, b_rows):
    if len(a_rows) != len(b_rows):
        return float("inf"), f"{len(a_rows)} lines vs {len(b_rows)}"
    worst, where = 0.0, ""
    for a, b in zip(a_rows, b_rows):
        if a.get("step") != b.get("step") or set(a) != set(b):
            return float("inf"), f"lines differ: {a} vs {b}"
        for k, v in a.items():
            if k in SKIP or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            d = abs(v - b[k]) / max(1.0, abs(v))
            d *= TOL / TOL_NORM if k == "grad_norm" else TOL / TOL_EVAL if k.startswith("eval_") else 1
            if d > worst:
                worst, where = d, f"{k} at step {a.get('step')}: {v} vs {b[k]}"
    return worst, where


def summary_gap(d1, d2, keys):
    s1 = json.load(open(os.path.join(d1, "summary.json")))
    s2 = json.load(open(os.path.join(d2, "summary.json")))
    bad = [k for k in keys if k not in s1 or k not in s2
           or abs(s1[k] - s2[k]) > TOL * max(1.0, abs(s1[k]))]
    return bad, s1, s2


def equal(name, args, summary_keys, tmp, figures, ranks=2, per_rank=4):
    one, two = os.path.join(tmp, name + "1"), os.path.join(tmp, name + "2")
    run(*args, "--batch_size", str(ranks * per_rank), "--output_dir", one, threads=1)
    p = mpirun(ranks, *args, "--batch_size", str(per_rank), "--output_dir", two)
    if p.returncode:
        report(False, f"mpi_rm_{name}: {ranks} ranks ran", p.stderr[-1500:])
        return
    a, b = rows(os.path.join(one, "metrics.jsonl")), rows(os.path.join(two, "metrics.jsonl"))
    w, where = gap(a, b)
    bad, s1, s2 = summary_gap(one, two, summary_keys)
    figures[name] = f"worst {w:.2e} over {len(a)} lines ({where})"
    steps = [r["step"] for r in b if "loss" in r]
    report(w <= TOL and not bad and steps == sorted(set(steps)),
           f"mpi_rm_{name}: {ranks} ranks x {per_rank} = 1 process x {ranks * per_rank} "
           f"({len(a)} lines, worst {w:.1e})",
           f"worst {w:.3g} ({where}); summary keys off: {bad}; steps {steps}")


def odd_shares(tmp, figures):
    """3 ranks x 1 with 2 micro-batches a step on 47 rows (59 less the held-out
    12): step 8 ends the epoch with a micro-batch of 2, so one rank's share is
    empty while the others' rows still count over the global 2; step 9 starts
    the next epoch (BRME's draws must stay aligned across the empty share)."""
    odd = os.path.join(tmp, "odd")
    run("data", "--task", "arith", "--out", odd, "--digits", "1-2", "--n_pref", "59",
        "--n_train", "59", "--n_eval", "10")
    base = ["--model", "tiny", "--max_steps", "9", "--logging_steps", "1", "--eval_steps", "4",
            "--eval_split", "0.2", "--seed", "5", "--gradient_accumulation_steps", "2", "--quiet"]
    prefs = os.path.join(odd, "prefs.jsonl")
    equal("classify_3ranks", ["rm", "--objective", "classify", "--data",
                              os.path.join(odd, "kto.jsonl"), *base, "--learning_rate", "3e-3"],
          ["eval_accuracy", "eval_log_loss", "eval_rows"], tmp, figures, 3, 1)
    equal("pairwise_3ranks", ["rm", "--objective", "pairwise", "--data", prefs, *base,
                              "--learning_rate", "3e-3"],
          ["eval_accuracy", "eval_order_consistency"], tmp, figures, 3, 1)
    equal("brme_3ranks", ["rm", "--objective", "brme", "--ensemble_size", "2", "--brme_samples",
                          "4", "--data", prefs, *base, "--learning_rate", "3e-4"],
          ["eval_accuracy", "eval_sigma", "eval_member_accuracy"], tmp, figures, 3, 1)


def vpl(tmp):
    """--objective vpl: the frozen trunk's embeddings are computed in one process's
    chunks of --batch_size pairs, chunk k on rank k mod N, and summed over ranks;
    the VPL networks (seconds of work on those embeddings) train on every rank
    alike. So 2 and 3 ranks give one process's metrics, eval figures and weights
    bit for bit, and only rank 0 writes."""
    d = os.path.join(tmp, "users")
    run("data", "--task", "users", "--out", d, "--n_users", "40", "--n_eval_users", "10",
        "--pairs_per_user", "12")
    args = ["rm", "--objective", "vpl", "--model", "tiny", "--data", os.path.join(d, "prefs.jsonl"),
            "--eval_data", os.path.join(d, "eval.jsonl"), "--max_steps", "60", "--learning_rate",
            "1e-3", "--batch_size", "16", "--logging_steps", "20", "--eval_steps", "30", "--quiet"]
    one = os.path.join(tmp, "vpl1")
    run(*args, "--output_dir", one)
    for k in (2, 3):
        out = os.path.join(tmp, f"vpl{k}")
        p = mpirun(k, *args, "--output_dir", out)
        same = p.returncode == 0 and all(
            open(os.path.join(one, f), "rb").read() == open(os.path.join(out, f), "rb").read()
            for f in ("metrics.jsonl", "vpl.safetensors", "vpl.json"))
        a, b = (json.load(open(os.path.join(x, "summary.json"))) if os.path.exists(
            os.path.join(x, "summary.json")) else {} for x in (one, out))
        figs = {k2: v for k2, v in a.items() if k2.startswith(("eval_", "train_"))}
        same &= bool(figs) and all(b.get(k2) == v for k2, v in figs.items())
        report(same, f"mpi_rm_vpl_{k}_ranks_bit_identical",
               f"exit {p.returncode}: {p.stderr[-400:]}")


def main():
    if not os.path.exists(MPI_BIN) or not MPIRUN:
        print(f"SKIP mpi_rm_test: needs {BUILD}/rlhf-mpi and mpirun")
        return 0
    tmp = tempfile.mkdtemp(prefix="mpi_rm_test.", dir=os.path.join(ROOT, BUILD))
    t0 = time.time()
    figures = {}
    try:
        data = os.path.join(tmp, "data")
        run("data", "--task", "arith", "--out", data, "--digits", "1-2", "--n_pref", "60",
            "--n_train", "60", "--n_eval", "10")
        base = ["--model", "tiny", "--max_steps", "4", "--logging_steps", "1", "--eval_steps", "2",
                "--eval_split", "0.2", "--seed", "5", "--quiet"]
        common = [*base, "--learning_rate", "3e-3"]
        equal("classify", ["rm", "--objective", "classify", "--data",
                           os.path.join(data, "kto.jsonl"), *common],
              ["eval_accuracy", "eval_log_loss", "initial_eval_accuracy", "eval_rows"], tmp,
              figures)
        equal("pairwise", ["rm", "--objective", "pairwise", "--data",
                           os.path.join(data, "prefs.jsonl"), *common],
              ["eval_accuracy", "eval_order_consistency", "initial_eval_accuracy"], tmp, figures)
        equal("brme", ["rm", "--objective", "brme", "--ensemble_size", "2", "--brme_samples", "4",
                       "--data", os.path.join(data, "prefs.jsonl"), *base, "--learning_rate",
                       "3e-4"],
              ["eval_accuracy", "eval_sigma", "eval_member_accuracy"], tmp, figures)
        odd_shares(tmp, figures)
        vpl(tmp)
        for k, v in figures.items():
            print(f"  {k}: {v}")
        print(f"  mpi_rm_test: {time.time() - t0:.1f}s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
