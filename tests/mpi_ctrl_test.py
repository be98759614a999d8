"""`rlhf ctrl train` under MPI (docs/mpi.md "Control", issue 17).

Data-parallel algorithms (bc, td3, td3_bc, iql, awac, sac, cql, calql, wsrl,
riql, famo2o, ro2o, fisor, cpl, moorl, h2o, and the loops of lamo and hnpg): every rank draws the
same global batch and noise from the one seed, updates on its share of the
rows and the gradients are summed before each Adam step. This test runs each
on a small random Pendulum dataset (h5py) with 1 process (build/rlhf) and on 2
ranks (iql also on 4 and offline->online, td3 and sac online, calql->sac,
calql->wsrl),
and requires

  * every logged number at every step within TOL (relative, |x| >= 1) of one
    process, and the final agent.safetensors within TOL_W;
  * one metrics.jsonl written once (rank 0 alone: 2 writers would double the
    lines), summary.json, the checkpoints;
  * a run stopped on 2 ranks (--stop_at) and resumed on 1 to equal the
    uninterrupted run (interchangeable checkpoints);
  * lamo on 2 and 3 ranks: its logged losses, gradient norms and rank 0's
    evaluation returns within TOL of one process;
  * h2o on 2 and 3 ranks (real and simulated rows split group by group), and
    hnpg (its critics' fits shared out);
  * --batch_size below
    the rank count refused, each exiting nonzero and writing no run folder.

Checked by hand that it fails: with every rank on rows 0..B/2 (bc's
actor_loss off by 0.5 at step 10); with each rank's gradient left divided by
its own row count (the losses stay within 1e-5, as Adam hardly sees a gradient's
scale, but the Adam moments saved in agent.safetensors differ by up to 10);
with td3's noise taken from row 0 on every rank (td3_bc's critic_loss off by
7e-3). Skips cleanly without build/rlhf-mpi, mpirun or h5py. Prints
PASS/FAIL/SKIP lines."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
RLHF_MPI = os.path.join(ROOT, BUILD, "rlhf-mpi")
MPIRUN = shutil.which("mpirun")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
if os.environ.get("RLHF_SANITIZE"):  # Open MPI's own allocations at exit
    ENV["ASAN_OPTIONS"] = (ENV.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
TOL = 1e-4    # logged numbers: float sums in another order, through Adam (measured below)
TOL_W = 1e-4  # final weights, absolute
N = 2000
failed = 0
worst = {}


def report(ok, name, why=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why), flush=True)
    failed += 0 if ok else 1


def make_dataset(path, seed=0, costs=False):
    import h5py
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(N, 3)).astype(np.float32)
    act = rng.uniform(-2, 2, size=(N, 1)).astype(np.float32)
    nxt = (obs + 0.1 * rng.normal(size=(N, 3))).astype(np.float32)
    rew = (-(obs ** 2).sum(1) - 0.1 * act[:, 0] ** 2).astype(np.float32)
    timeouts = np.zeros(N, bool)
    timeouts[199::200] = True
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = obs, act, rew
        f["next_observations"], f["terminals"], f["timeouts"] = nxt, np.zeros(N, bool), timeouts
        if costs:  # FISOR's: a fast pendulum is unsafe
            f["costs"] = (np.abs(obs[:, 2]) > 1.0).astype(np.float32)
        f.attrs["env"] = "pendulum"
        f.attrs["ref_random_return"] = -1200.0
        f.attrs["ref_expert_return"] = -150.0


def train(np_, args, out):
    if np_ == 0:  # the plain single-process binary
        cmd = [RLHF, "ctrl", "train", *args]
    else:
        cmd = [MPIRUN, "--oversubscribe", "-np", str(np_), RLHF_MPI, "ctrl", "train", *args]
    return subprocess.run(cmd + ["--output_dir", out], cwd=ROOT, capture_output=True, text=True,
                          env=ENV, timeout=300)


def rows(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=np.float32)
    return out


def compare(a, b):
    """largest |x - y| / max(1, |x|) over every logged number (timing left out)"""
    if len(a) != len(b):
        return float("inf"), f"{len(a)} lines vs {len(b)}"
    w, where = 0.0, ""
    for x, y in zip(a, b):
        if set(x) != set(y):
            return float("inf"), f"keys differ at step {x.get('step')}: {sorted(x)} vs {sorted(y)}"
        for k, v in x.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                d = abs(v - y[k]) / max(1.0, abs(v))
                if d > w:
                    w, where = d, f"{k} at step {x.get('step')}: {v} vs {y[k]}"
    return w, where


def weights_gap(out1, out2):
    a = tensors(os.path.join(out1, "checkpoints", "final", "agent.safetensors"))
    b = tensors(os.path.join(out2, "checkpoints", "final", "agent.safetensors"))
    if set(a) != set(b):
        return float("inf")
    return max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)


def equal_runs(name, args, ranks, tmp):
    one = os.path.join(tmp, name + "-1")
    p = train(0, args, one)
    if p.returncode:
        report(False, f"{name}: one process", p.stderr[-800:])
        return
    base = rows(one)
    for np_ in ranks:
        out = os.path.join(tmp, f"{name}-{np_}")
        p = train(np_, args, out)
        if p.returncode:
            report(False, f"{name} on {np_} ranks", p.stderr[-800:])
            continue
        got = rows(out)
        w, where = compare(base, got)
        gw = weights_gap(one, out)
        worst[f"{name}/{np_}"] = (w, gw)
        report(w <= TOL and gw <= TOL_W and os.path.exists(os.path.join(out, "summary.json")),
               f"{name}: {np_} ranks = 1 process ({len(got)} lines, worst {w:.1e}, "
               f"weights {gw:.1e})", f"worst {w:.3g} ({where}), weights {gw:.3g}")


def lamo(tmp, data):
    """LaMo's own loop: each rank's share of every batch's windows and text rows,
    weighted by its share of the batch's real steps and text tokens; rank 0
    evaluates and sends the returns; the final checkpoints' tensors are compared too"""
    stories = os.path.join(ROOT, "..", "shared", "data", "llama2c", "stories260K.bin")
    text = os.path.join(tmp, "lamo.txt")
    with open(text, "w") as f:
        f.write("Once upon a time, there was a little girl named Lily. She liked to play in the "
                "park with her dog. " * 8)
    args = ["--algo", "lamo", "--env", "pendulum", "--dataset", data, "--lamo_model",
            stories if os.path.exists(stories) else "llama-tiny", "--lamo_text", text,
            "--offline_steps", "6", "--batch_size", "6", "--eval_every", "3", "--eval_episodes",
            "2", "--log_every", "1", "--seed", "3", "--quiet"]
    own_loop("lamo", args, tmp, lambda base: sum("eval/return_mean" in x for x in base) == 2,
             "2 evaluations logged")


def hnpg(tmp):
    """HNPG's loop: every rank runs it alike but for the critics' fits, whose rows
    are shared out (the combination lock, H 3, 3 iterations of 1000 steps)"""
    args = ["--algo", "hnpg", "--env", "comblock:H=3", "--online_steps", "3000", "--seed", "2",
            "--quiet"]
    own_loop("hnpg", args, tmp,
             lambda base: len(base) == 3 and all(x["critic_loss_offline"] > 0 for x in base),
             "3 iterations with offline rows")


def logged(out):
    """metrics.jsonl without its seconds (the rest printed to 6 digits)"""
    return [{k: v for k, v in x.items() if k != "seconds"} for x in rows(out)]


def own_loop(name, args, tmp, check, what):
    """a loop of its own (LaMo, HNPG): one process (whose lines must pass check),
    then 2 and 3 ranks, whose logged numbers must be within TOL of its"""
    one = os.path.join(tmp, f"{name}-1")
    p = train(0, args, one)
    if p.returncode:
        report(False, f"{name}: one process", p.stderr[-800:])
        return
    base = logged(one)
    report(check(base), f"{name}: {what}", f"{base}")
    for np_ in (2, 3):
        out = os.path.join(tmp, f"{name}-{np_}")
        p = train(np_, args, out)
        if p.returncode:
            report(False, f"{name} on {np_} ranks", p.stderr[-800:])
            continue
        w, where = compare(base, logged(out))
        ckpt = os.path.join(one, "checkpoints", "final", "agent.safetensors")
        gw = weights_gap(one, out) if os.path.exists(ckpt) else 0.0  # hnpg keeps none
        worst[f"{name}/{np_}"] = (w, gw)
        report(w <= TOL and gw <= TOL_W and os.path.exists(os.path.join(out, "summary.json")),
               f"{name}: {np_} ranks = 1 process ({len(base)} lines, worst {w:.1e}, "
               f"weights {gw:.1e})", f"worst {w:.3g} ({where}), weights {gw:.3g}")


def main():
    if not os.path.exists(RLHF_MPI) or not MPIRUN:
        print("SKIP mpi_ctrl_test: build/rlhf-mpi or mpirun is absent")
        return 0
    try:
        import h5py  # noqa: F401
    except ImportError:
        print("SKIP mpi_ctrl_test: no h5py")
        return 0
    tmp = tempfile.mkdtemp(prefix="mpi_ctrl_")
    try:
        data = os.path.join(tmp, "pendulum.hdf5")
        make_dataset(data)
        costly = os.path.join(tmp, "pendulum-costs.hdf5")
        make_dataset(costly, costs=True)
        small = ["--env", "pendulum", "--hidden", "32", "--batch_size", "16", "--seed", "3",
                 "--log_every", "1", "--eval_episodes", "1", "--quiet"]
        off = [*small, "--dataset", data, "--offline_steps", "40", "--eval_every", "20"]
        equal_runs("bc", ["--algo", "bc", *off], (2,), tmp)
        equal_runs("bc-gauss", ["--algo", "bc", "--deterministic_bc", "0", *off], (2,), tmp)
        equal_runs("td3_bc", ["--algo", "td3_bc", *off], (2,), tmp)
        equal_runs("iql", ["--algo", "iql", *off], (2, 4), tmp)
        equal_runs("awac", ["--algo", "awac", *off], (2,), tmp)
        equal_runs("riql", ["--algo", "riql", "--n_critics", "3", *off], (2,), tmp)
        equal_runs("ro2o", ["--algo", "ro2o", "--ro2o_samples", "3", *small, "--dataset", data,
                            "--offline_steps", "20", "--online_steps", "60", "--eval_every",
                            "40"], (2,), tmp)
        equal_runs("fisor", ["--algo", "fisor", *small, "--dataset", costly, "--offline_steps",
                             "40", "--eval_every", "20"], (2,), tmp)
        prefd = os.path.join(tmp, "pendulum-cpl.hdf5")
        make_dataset(prefd)
        p = subprocess.run([RLHF, "ctrl", "prefs", "--dataset", prefd, "--segment", "10",
                            "--pairs", "40"], cwd=ROOT, capture_output=True, text=True, env=ENV,
                           timeout=120)
        report(p.returncode == 0, "ctrl prefs writes CPL's segment pairs", p.stderr[-400:])
        equal_runs("cpl", ["--algo", "cpl", *small, "--dataset", prefd, "--offline_steps", "40",
                           "--cpl_batch", "5", "--cpl_bc_steps", "10", "--eval_every", "20"],
                   (2,), tmp)
        # MOORL: SAC's split inside each meta-epoch; with --mix_ratio 0.95 the online
        # buffer's share of a batch is 1 row, fewer than the ranks: computed whole
        moorl = ["--algo", "moorl", *small, "--dataset", data, "--online_steps", "60",
                 "--start_steps", "20", "--eval_every", "40"]
        equal_runs("moorl", moorl, (2,), tmp)
        equal_runs("moorl-small", [*moorl, "--mix_ratio", "0.95"], (2,), tmp)
        lamo(tmp, data)
        hnpg(tmp)
        # H2O: the real rows and the simulator's rows are split over the ranks group by
        # group; its discriminators, ratio, penalty and SAC losses over the whole batch.
        # A batch of 13 (9 real, 4 sim at --mix_ratio 0.7) leaves 3 ranks unequal shares
        h2o = ["--algo", "h2o", "--env", "pendulum:gravity=20", "--dataset", data,
               "--online_steps", "60", "--start_steps", "20", "--mix_ratio", "0.7",
               "--h2o_cql_weight", "1", "--eval_every", "40", *small, "--batch_size", "13"]
        equal_runs("h2o", h2o, (2, 3), tmp)
        equal_runs("famo2o", ["--algo", "famo2o", *small, "--dataset", data, "--offline_steps",
                              "20", "--online_steps", "60", "--eval_every", "40"], (2,), tmp)
        equal_runs("iql-online", ["--algo", "iql", *small, "--dataset", data, "--offline_steps",
                                  "20", "--online_steps", "60", "--eval_every", "40"], (2,), tmp)
        equal_runs("td3-online", ["--algo", "td3", *small, "--online_steps", "80",
                                  "--start_steps", "30", "--eval_every", "40"], (2,), tmp)
        equal_runs("sac-online", ["--algo", "sac", *small, "--online_steps", "80",
                                  "--start_steps", "30", "--eval_every", "40"], (2,), tmp)
        equal_runs("cql", ["--algo", "cql", *off, "--cql_n_actions", "4"], (2,), tmp)
        equal_runs("calql-sac", ["--algo", "sac", "--offline_algo", "calql", *small, "--dataset",
                                 data, "--offline_steps", "20", "--online_steps", "60",
                                 "--cql_n_actions", "4", "--eval_every", "40"], (2,), tmp)
        equal_runs("calql-wsrl", ["--algo", "wsrl", "--offline_algo", "calql", *small,
                                  "--dataset", data, "--offline_steps", "20", "--online_steps",
                                  "60", "--warmup_steps", "20", "--online_batch_size", "16", "--cql_n_actions", "4",
                                  "--n_critics", "4", "--eval_every", "40"], (2,), tmp)

        # one metrics file, written once
        r = rows(os.path.join(tmp, "iql-2"))
        steps = [x["step"] for x in r if "q_loss" in x]
        report(steps == list(range(1, 41)), "2 ranks: one writer (steps 1..40 once each)",
               f"steps {steps[:12]}...")

        # stopped on 2 ranks, resumed on 1: the checkpoint is interchangeable
        args = ["--algo", "iql", *off, "--save_every", "10"]
        cut = os.path.join(tmp, "cut")
        p = train(2, [*args, "--stop_at", "20"], cut)
        ck = os.path.join(cut, "checkpoints", "step-00000020", "agent.safetensors")
        report(p.returncode == 0 and os.path.exists(ck), "2 ranks stop at 20 with a checkpoint",
               f"exit {p.returncode}: {p.stderr[-600:]}")
        p = train(0, [*args, "--resume"], cut)
        base = [x for x in rows(os.path.join(tmp, "iql-1"))]
        got = rows(cut)
        w, where = compare(base, got) if p.returncode == 0 else (float("inf"), p.stderr[-600:])
        gw = weights_gap(os.path.join(tmp, "iql-1"), cut) if p.returncode == 0 else float("inf")
        report(w <= TOL and gw <= TOL_W,
               f"iql: 2 ranks to step 20, resumed on 1 process = uninterrupted (worst {w:.1e})",
               f"worst {w:.3g} ({where}), weights {gw:.3g}")

        # refusals, before anything is written
        absent = os.path.join(tmp, "absent.hdf5")
        cases = [
            ("batch 1", "--batch_size 1 is less than the 2 MPI ranks",
             ["--algo", "iql", "--env", "pendulum", "--dataset", absent, "--offline_steps", "20",
              "--batch_size", "1"]),
        ]
        for i, (name, want, args) in enumerate(cases):
            out = os.path.join(tmp, f"refused{i}")
            p = train(2, args, out)
            ok = p.returncode != 0 and want in p.stderr and not os.path.exists(out)
            report(ok, f"2 ranks refuse {name}",
                   f"exit {p.returncode}, run folder written: {os.path.exists(out)}, "
                   f"stderr: {p.stderr[-600:]}")
        print("worst gaps (logged numbers, weights): " +
              ", ".join(f"{k} {a:.1e}/{b:.1e}" for k, (a, b) in worst.items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
