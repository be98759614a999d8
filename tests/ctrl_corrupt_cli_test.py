"""`rlhf ctrl corrupt` (src/cli/cmd_ctrl.c over src/ctrl/corrupt.c): files in,
files out, checked with h5py.

A small pendulum-shaped dataset (2000 rows, obs 3, act 1, episodes of 200
with timeouts, root attributes env/level/refs) is written with h5py. Then:
* random rewards at rate 0.3: only `rewards` differs from the input, on a
  share of rows within 5 sigma of 0.3 (the count the command prints), the new
  rewards lie in [-30, 30]; every other dataset is identical; env and the
  reference returns are kept and level becomes "medium+rew-random-0.3";
* the same seed gives the same file, byte for byte, another seed other rewards;
* adversarial rewards: hit rows are exactly -r, the rest untouched;
* adversarial observations with --agent (a 200-step IQL run on the same
  dataset, as a run folder and as its checkpoint folder: the same output):
  only `observations` changes, each change within scale * the column's std;
* refusals (missing or invalid flags, --out naming the input, adversarial obs
  without --agent, an --agent of other widths, adversarial dyn without --agent): non-zero
  exit, a message naming the flag, the input's bytes unchanged, no --out file.
"""
import hashlib
import math
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import report, run, exit_code  # noqa: E402

N = 2000
FIELDS = ["observations", "actions", "rewards", "next_observations", "terminals", "timeouts"]


def make_dataset(path, obs_dim=3, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(N, obs_dim)).astype(np.float32) * np.float32(2.0)
    nxt = np.roll(obs, -1, axis=0)
    act = rng.uniform(-2, 2, size=(N, 1)).astype(np.float32)
    rew = -rng.uniform(0.1, 16, size=N).astype(np.float32)
    timeouts = np.zeros(N, bool)
    timeouts[199::200] = True
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = act
        f["rewards"] = rew
        f["next_observations"] = nxt
        f["terminals"] = np.zeros(N, bool)
        f["timeouts"] = timeouts
        f.attrs["env"] = "pendulum"
        f.attrs["level"] = "medium"
        f.attrs["ref_random_return"] = -1200.0
        f.attrs["ref_expert_return"] = -150.0


def load(path):
    with h5py.File(path, "r") as f:
        d = {k: np.asarray(f[k][()]) for k in FIELDS}
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return d, a


def md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def changed_rows(x, y):
    x, y = x.reshape(N, -1), y.reshape(N, -1)
    return np.any(x != y, axis=1)


def within_5_sigma(k, rate=0.3):
    return abs(k - rate * N) <= 5 * math.sqrt(N * rate * (1 - rate))


def printed_hits(p):
    # "OUT: rew random corruption of K of N rows (...)"
    try:
        return int(p.stdout.split(" corruption of ")[1].split()[0])
    except (IndexError, ValueError):
        return -1


def only_changed(base, out, field):
    """names of the fields other than `field` that differ"""
    return [k for k in FIELDS if k != field and not np.array_equal(base[k], out[k])]


def main():
    tmp = tempfile.mkdtemp(prefix="ctrl_corrupt_cli_")
    src = os.path.join(tmp, "medium.hdf5")
    make_dataset(src)
    base, battrs = load(src)
    src_md5 = md5(src)

    # random rewards
    o1 = os.path.join(tmp, "rew1.hdf5")
    p = run("ctrl", "corrupt", "--dataset", src, "--out", o1, "--kind", "rew", "--rate", "0.3",
            "--seed", "0")
    d1, a1 = load(o1)
    hit = changed_rows(base["rewards"], d1["rewards"])
    k = int(hit.sum())
    others = only_changed(base, d1, "rewards")
    report(not others and within_5_sigma(k) and printed_hits(p) == k
           and np.all(np.abs(d1["rewards"]) <= 30),
           f"ctrl corrupt random rew: {k} of {N} rows changed, other fields identical",
           f"others changed {others}, printed {printed_hits(p)}: {p.stdout}")
    report(a1.get("env") == "pendulum" and a1.get("level") == "medium+rew-random-0.3"
           and a1.get("ref_random_return") == -1200.0 and a1.get("ref_expert_return") == -150.0,
           "ctrl corrupt keeps env and refs, level medium+rew-random-0.3", str(a1))
    report(md5(src) == src_md5, "ctrl corrupt leaves the input file untouched")

    # seeds
    o2 = os.path.join(tmp, "rew2.hdf5")
    o3 = os.path.join(tmp, "rew3.hdf5")
    run("ctrl", "corrupt", "--dataset", src, "--out", o2, "--kind", "rew", "--seed", "0")
    run("ctrl", "corrupt", "--dataset", src, "--out", o3, "--kind", "rew", "--seed", "1")
    d2, a2 = load(o2)
    d3, _ = load(o3)
    same = all(np.array_equal(d1[f], d2[f]) for f in FIELDS) and a1 == a2
    report(same, "ctrl corrupt: the same seed gives the same file contents")
    # and the same bytes: the datasets carry no creation times (dataset.c turns them off)
    report(md5(o1) == md5(o2), "ctrl corrupt: the same seed gives a byte-identical file")
    report(not np.array_equal(d1["rewards"], d3["rewards"]),
           "ctrl corrupt: another seed gives other rewards")

    # adversarial rewards: -r on the hit rows
    o4 = os.path.join(tmp, "rew_adv.hdf5")
    p = run("ctrl", "corrupt", "--dataset", src, "--out", o4, "--kind", "rew", "--mode",
            "adversarial", "--seed", "3")
    d4, a4 = load(o4)
    hit = changed_rows(base["rewards"], d4["rewards"])
    k = int(hit.sum())
    neg = np.array_equal(d4["rewards"][hit], -base["rewards"][hit])
    report(neg and within_5_sigma(k) and not only_changed(base, d4, "rewards")
           and printed_hits(p) == k and a4.get("level") == "medium+rew-adv-0.3",
           f"ctrl corrupt adversarial rew: {k} rows exactly negated, the rest untouched",
           f"negated {neg}, printed {printed_hits(p)}, level {a4.get('level')}")

    # adversarial observations against a tiny IQL agent
    rundir = os.path.join(tmp, "iql")
    run("ctrl", "train", "--algo", "iql", "--env", "pendulum", "--dataset", src,
        "--offline_steps", "200", "--hidden", "32", "--batch_size", "64", "--eval_every", "0",
        "--eval_episodes", "1", "--output_dir", rundir, "--quiet", threads=1)
    o5 = os.path.join(tmp, "obs_adv.hdf5")
    o6 = os.path.join(tmp, "obs_adv_ckpt.hdf5")
    p = run("ctrl", "corrupt", "--dataset", src, "--out", o5, "--kind", "obs", "--mode",
            "adversarial", "--agent", rundir, "--attack_steps", "20", threads=1)
    run("ctrl", "corrupt", "--dataset", src, "--out", o6, "--kind", "obs", "--mode",
        "adversarial", "--agent", os.path.join(rundir, "checkpoints", "final"),
        "--attack_steps", "20", threads=1)
    d5, a5 = load(o5)
    d6, _ = load(o6)
    hit = changed_rows(base["observations"], d5["observations"])
    k = int(hit.sum())
    std = base["observations"].astype(np.float64).std(axis=0)
    delta = np.abs(d5["observations"].astype(np.float64) - base["observations"]).max(axis=0)
    others = only_changed(base, d5, "observations")
    report(not others and within_5_sigma(k) and printed_hits(p) == k
           and np.all(delta <= std * 1.0001 + 1e-6) and a5.get("level") == "medium+obs-adv-0.3",
           f"ctrl corrupt adversarial obs with --agent: {k} rows, only observations, "
           f"max |change| / std {np.max(delta / std):.3f}",
           f"others {others}, printed {printed_hits(p)}, delta {delta}, std {std}, "
           f"level {a5.get('level')}")
    report(all(np.array_equal(d5[f], d6[f]) for f in FIELDS),
           "ctrl corrupt --agent: run folder and its checkpoint folder agree")
    o8 = os.path.join(tmp, "act_adv.hdf5")
    run("ctrl", "corrupt", "--dataset", src, "--out", o8, "--kind", "act", "--mode",
        "adversarial", "--agent", rundir, "--attack_steps", "20", threads=1)
    d8, _ = load(o8)
    k = int(changed_rows(base["actions"], d8["actions"]).sum())
    report(not only_changed(base, d8, "actions") and within_5_sigma(k),
           f"ctrl corrupt adversarial act with --agent: {k} rows, only actions")

    # refusals
    wide = os.path.join(tmp, "wide.hdf5")
    make_dataset(wide, obs_dim=4, seed=1)
    wide_md5 = md5(wide)
    bad_out = os.path.join(tmp, "never.hdf5")
    cases = [
        ("no --dataset", ["--out", bad_out, "--kind", "rew"], "--dataset", src),
        ("no --out", ["--dataset", src, "--kind", "rew"], "--out", src),
        ("no --kind", ["--dataset", src, "--out", bad_out], "--kind", src),
        ("bad --kind", ["--dataset", src, "--out", bad_out, "--kind", "reward"], "--kind", src),
        ("bad --mode", ["--dataset", src, "--out", bad_out, "--kind", "rew", "--mode", "evil"],
         "--mode", src),
        ("bad --rate", ["--dataset", src, "--out", bad_out, "--kind", "rew", "--rate", "1.5"],
         "--rate", src),
        ("--out is --dataset", ["--dataset", src, "--out", src, "--kind", "rew"], "--out", src),
        ("--out is --dataset by another path",
         ["--dataset", src, "--out", os.path.join(tmp, ".", "medium.hdf5"), "--kind", "rew"],
         "--out", src),
        ("adversarial obs without --agent",
         ["--dataset", src, "--out", bad_out, "--kind", "obs", "--mode", "adversarial"],
         "--agent", src),
        ("adversarial act without --agent",
         ["--dataset", src, "--out", bad_out, "--kind", "act", "--mode", "adversarial"],
         "--agent", src),
        ("--agent of other widths",
         ["--dataset", wide, "--out", bad_out, "--kind", "obs", "--mode", "adversarial",
          "--agent", rundir], "--agent", wide),
        ("adversarial dyn without --agent",
         ["--dataset", src, "--out", bad_out, "--kind", "dyn", "--mode", "adversarial"],
         "--agent", src),
        ("--agent without an adversarial obs/act attack",
         ["--dataset", src, "--out", bad_out, "--kind", "rew", "--agent", rundir], "--agent", src),
        ("missing --dataset file",
         ["--dataset", os.path.join(tmp, "nope.hdf5"), "--out", bad_out, "--kind", "rew"],
         "--dataset", src),
    ]
    for name, args, flag, inp in cases:
        p = run("ctrl", "corrupt", *args, check=False)
        before = src_md5 if inp == src else wide_md5
        ok = (p.returncode != 0 and flag in p.stderr and md5(inp) == before
              and not os.path.exists(bad_out))
        report(ok, f"ctrl corrupt refuses: {name} (exit {p.returncode})",
               f"stderr {p.stderr.strip()[:300]!r}")
    # adversarial dyn: next observations attacked through the IQL agent's actor and critic
    o9 = os.path.join(tmp, "dyn_adv.hdf5")
    p = run("ctrl", "corrupt", "--dataset", src, "--out", o9, "--kind", "dyn", "--mode",
            "adversarial", "--agent", rundir, "--attack_steps", "20", threads=1)
    d9, a9 = load(o9)
    k = int(changed_rows(base["next_observations"], d9["next_observations"]).sum())
    std = base["next_observations"].astype(np.float64).std(axis=0)
    delta = np.abs(d9["next_observations"].astype(np.float64) - base["next_observations"]).max(axis=0)
    report(not only_changed(base, d9, "next_observations") and within_5_sigma(k)
           and printed_hits(p) == k and np.all(delta <= std * 1.0001 + 1e-6),
           f"ctrl corrupt adversarial dyn with --agent: {k} rows, only next_observations, "
           f"max |change| / std {np.max(delta / std):.3f}", f"level {a9.get('level')}")
    # random dyn works and changes only next_observations
    o7 = os.path.join(tmp, "dyn.hdf5")
    run("ctrl", "corrupt", "--dataset", src, "--out", o7, "--kind", "dyn", "--rate", "0.3")
    d7, _ = load(o7)
    k = int(changed_rows(base["next_observations"], d7["next_observations"]).sum())
    report(not only_changed(base, d7, "next_observations") and within_5_sigma(k),
           f"ctrl corrupt random dyn: {k} rows, only next_observations")
    shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
