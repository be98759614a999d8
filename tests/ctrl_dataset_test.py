"""ctrl/dataset: D4RL's HDF5 layout, both ways, against h5py.

h5py writes D4RL-layout files (float64 observations, bool/uint8/float flags,
with and without next_observations, an infos/ group); the C tool
(tests/tools/ctrl_dataset_tool.c) loads them and prints what it read as JSON,
which must equal the file's values converted to float32 (and, without
next_observations, the transitions this file derives independently: D4RL's
qlearning_dataset rule, timeout rows dropped, the boundary kept). The C side
saves; h5py must read back the same values, float32/bool dtypes and the root
attributes. Every malformed file is refused with an error naming the dataset
(and the row and column for a NaN), never a crash.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, exit_code  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_dataset_tool")
try:
    import h5py
except ImportError:
    print("SKIP ctrl_dataset: no h5py (Debian's python3-h5py)")
    sys.exit(0)
_p = subprocess.run([TOOL, "load", "/nonexistent.hdf5"], capture_output=True, text=True)
if "built without HDF5" in _p.stderr:
    print("SKIP ctrl_dataset: rlhf was built without HDF5 (libhdf5-dev)")
    sys.exit(0)
tmp = tempfile.mkdtemp(prefix="ctrl_dataset_")


def tool(*args):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0 else None), p.stderr


def episodes_file(path, next_obs=True, term_dtype=bool, obs_dtype=np.float64, attrs=True, seed=0):
    """Three episodes: 5 steps ending terminal, 6 ending by timeout, 4 cut by the file's end."""
    rng = np.random.default_rng(seed)
    lens, ends = [5, 6, 4], ["terminal", "timeout", "none"]
    N = sum(lens)
    obs = rng.normal(size=(N, 4)).astype(obs_dtype) * 3
    nxt = rng.normal(size=(N, 4)).astype(obs_dtype)
    term, tout = np.zeros(N, term_dtype), np.zeros(N, term_dtype)
    pos = 0
    for ln, e in zip(lens, ends):
        pos += ln
        if e == "terminal":
            term[pos - 1] = 1
        if e == "timeout":
            tout[pos - 1] = 1
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = rng.uniform(-1, 1, size=(N, 2)).astype(obs_dtype)
        f["rewards"] = rng.normal(size=N).astype(obs_dtype)
        f["terminals"] = term
        f["timeouts"] = tout
        if next_obs:
            f["next_observations"] = nxt
        f["infos/qpos"] = rng.normal(size=(N, 3))
        f["infos/goal"] = np.zeros((N, 2))
        if attrs:
            f.attrs["env"] = "hopper"
            f.attrs["level"] = "medium"
            f.attrs["ref_random_return"] = -20.272305
            f.attrs["ref_expert_return"] = 3234.3
    return path


def f32(x):
    return np.asarray(x, np.float64).astype(np.float32).ravel()


def same(got, want):
    return np.array_equal(np.asarray(got, np.float32), f32(want))


def check_fields(name, js, want):
    bad = [k for k, v in want.items() if not same(js[k], v)]
    report(not bad, name, f"fields differ: {bad}")


# --- load with next_observations: every field exactly, attributes, infos ignored
p = episodes_file(os.path.join(tmp, "a.hdf5"))
rc, js, err = tool("load", p)
if rc != 0:
    report(False, "load_d4rl_float64_bool", err)
else:
    with h5py.File(p) as f:
        want = {k: f[k][()] for k in ["observations", "actions", "rewards", "next_observations",
                                      "terminals", "timeouts"]}
    check_fields("load_d4rl_float64_bool", js, want)
    report(js["n"] == 15 and js["obs_dim"] == 4 and js["act_dim"] == 2 and js["has_cost"] == 0
           and js["env"] == "hopper" and js["level"] == "medium"
           and js["ref_random_return"] == -20.272305 and js["ref_expert_return"] == 3234.3,
           "load_attributes", f"{ {k: js[k] for k in ['n', 'env', 'level', 'ref_random_return']} }")

# --- without next_observations: D4RL's rule, derived here independently
p = episodes_file(os.path.join(tmp, "b.hdf5"), next_obs=False, term_dtype=np.uint8, attrs=False)
rc, js, err = tool("load", p)
if rc != 0:
    report(False, "load_derived_next_obs", err)
else:
    with h5py.File(p) as f:
        O, A, R = f["observations"][()], f["actions"][()], f["rewards"][()]
        T, TO = f["terminals"][()].astype(bool), f["timeouts"][()].astype(bool)
    N = len(R)
    keep = [i for i in range(N) if T[i] or (not TO[i] and i < N - 1)]
    nxt = np.array([O[i + 1] if i + 1 < N else np.zeros(4) for i in keep])
    tout = np.zeros(len(keep))
    for j, i in enumerate(keep):  # the row before a dropped timeout row ends that episode
        if i + 1 < N and TO[i + 1] and not T[i + 1] and not T[i]:
            tout[j] = 1
    want = {"observations": O[keep], "actions": A[keep], "rewards": R[keep],
            "next_observations": nxt, "terminals": T[keep], "timeouts": tout}
    check_fields("load_derived_next_obs", js, want)
    # 15 rows: the timeout row (10) and the file's last row (14) are dropped
    report(js["n"] == 13 and js["timeouts"][9] == 1 and sum(js["timeouts"]) == 1,
           "derived_drops_timeout_and_last_row", f"n={js['n']} timeouts={js['timeouts']}")
    report(js["env"] == "" and js["ref_random_return"] is None, "load_without_attributes",
           f"env={js['env']!r} ref={js['ref_random_return']}")

# --- float32 observations, float terminals, costs
p = os.path.join(tmp, "c.hdf5")
episodes_file(p, term_dtype=np.float32, obs_dtype=np.float32)
with h5py.File(p, "a") as f:
    f["costs"] = np.arange(15, dtype=np.float64) * 0.5
    obs = f["observations"][()]  # chunked and gzip-compressed, as some D4RL files are
    del f["observations"]
    f.create_dataset("observations", data=obs, chunks=(4, 4), compression="gzip")
rc, js, err = tool("load", p)
with h5py.File(p) as f:
    want = {k: f[k][()] for k in ["observations", "terminals", "timeouts", "costs"]}
report(rc == 0 and js["has_cost"] == 1 and all(same(js[k], v) for k, v in want.items()),
       "load_float32_gzip_float_flags_costs", err)

# --- C saves, h5py reads back values, dtypes, attributes
p = episodes_file(os.path.join(tmp, "d.hdf5"))
out = os.path.join(tmp, "d_out.hdf5")
rc, js, err = tool("roundtrip", p, out)
ok, why = rc == 0, err
if ok:
    with h5py.File(out) as f:
        for k in ["observations", "actions", "rewards", "next_observations"]:
            if f[k].dtype != np.float32 or not same(js[k], f[k][()]) or \
                    f[k].shape[0] != 15:
                ok, why = False, f"{k}: dtype {f[k].dtype} shape {f[k].shape}"
        for k in ["terminals", "timeouts"]:
            if f[k].dtype != np.bool_ or not same(js[k], f[k][()]):
                ok, why = False, f"{k}: dtype {f[k].dtype}"
        a = dict(f.attrs)
        if a != {"env": "hopper", "level": "medium", "ref_random_return": -20.272305,
                 "ref_expert_return": 3234.3}:
            ok, why = False, f"attributes {a}"
        if "costs" in f or "infos" in f:
            ok, why = False, "unexpected datasets"
report(ok, "save_read_back_by_h5py", why)
report(not glob.glob(os.path.join(tmp, "*.tmp.*")), "save_leaves_no_temp_file",
       str(glob.glob(os.path.join(tmp, "*.tmp.*"))))

# a wrapped ring (cap 7 after 10 adds) is saved oldest first, with costs
out = os.path.join(tmp, "ring.hdf5")
rc, js, err = tool("synth", out)
ok, why = rc == 0, err
if ok:
    with h5py.File(out) as f:
        got = {k: f[k][()] for k in f}
        ok = all(same(js[k], got[k]) for k in got) and \
            np.allclose(got["observations"][:, 0], [1.5, 2, 2.5, 3, 3.5, 4, 4.5]) and \
            list(got["terminals"]) == [False, True] + [False] * 5 and \
            list(got["timeouts"]) == [False] * 5 + [True, False] and got["costs"].dtype == np.float32
        why = f"obs[:,0]={got['observations'][:, 0]} terminals={got['terminals']}"
    # and it loads back into the same rows
    rc2, js2, err2 = tool("load", out)
    ok = ok and rc2 == 0 and all(js2[k] == js[k] for k in js if k != "n") and js2["n"] == 7
report(ok, "save_ring_oldest_first", why)

# saving over an existing file replaces it; into a missing folder is an error
rc, _, err = tool("roundtrip", p, out)
with h5py.File(out) as f:
    report(rc == 0 and f["observations"].shape == (15, 4), "save_replaces_existing", err)
rc, _, err = tool("roundtrip", p, os.path.join(tmp, "no_such_dir", "x.hdf5"))
report(rc == 1 and "no_such_dir" in err, "save_into_missing_folder_errors", err)


# --- malformed files: exit 1, the message names the file and the dataset (and row)
def malformed(name, edit, needles):
    path = os.path.join(tmp, f"bad_{name}.hdf5")
    episodes_file(path)
    with h5py.File(path, "a") as f:
        edit(f)
    rc, _, err = tool("load", path)
    ok = rc == 1 and path in err and all(s in err for s in needles) and "HDF5-DIAG" not in err
    report(ok, f"malformed_{name}", f"rc={rc} stderr={err.strip()!r}")


def replace(key, value):
    def edit(f):
        del f[key]
        f[key] = value
    return edit


def set_value(key, index, value):
    def edit(f):
        x = f[key][()]
        x[index] = value
        del f[key]
        f[key] = x
    return edit


for key in ["observations", "actions", "rewards", "terminals", "timeouts"]:
    malformed(f"missing_{key}", lambda f, k=key: f.__delitem__(k), [f'"{key}"', "missing"])
malformed("rank_observations", replace("observations", np.zeros(15)), ['"observations"', "rank 1"])
malformed("rank_rewards", replace("rewards", np.zeros((15, 1))), ['"rewards"', "rank 2"])
malformed("next_obs_width", replace("next_observations", np.zeros((15, 5))),
          ['"next_observations"', "width 5", "width 4"])
malformed("length_actions", replace("actions", np.zeros((14, 2))), ['"actions"', "14 rows", "15"])
malformed("length_timeouts", replace("timeouts", np.zeros(16, bool)), ['"timeouts"', "16 rows"])
malformed("nan_observations", set_value("observations", (7, 2), np.nan),
          ['"observations"', "row 7", "column 2", "NaN"])
malformed("inf_rewards", set_value("rewards", 3, np.inf), ['"rewards"', "row 3", "Inf"])
malformed("nan_next_obs", set_value("next_observations", (14, 0), np.nan),
          ['"next_observations"', "row 14", "column 0"])
malformed("overflow_actions", set_value("actions", (2, 1), 1e300), ['"actions"', "row 2", "column 1"])
malformed("nan_terminals", replace("terminals", np.where(np.arange(15) == 4, np.nan, 0.0)),
          ['"terminals"', "row 4", "NaN"])
malformed("string_rewards", replace("rewards", np.array([b"x"] * 15)), ['"rewards"', "numbers"])

# not an HDF5 file, a truncated one, a missing one
path = os.path.join(tmp, "text.hdf5")
open(path, "w").write("observations,actions\n1,2\n")
rc, _, err = tool("load", path)
report(rc == 1 and path in err and "not an HDF5 file" in err, "not_hdf5", err)

src = episodes_file(os.path.join(tmp, "whole.hdf5"))
data = open(src, "rb").read()
ok, why = True, ""
for frac in [0.9, 0.5, 0.05]:
    path = os.path.join(tmp, f"cut{int(frac * 100)}.hdf5")
    open(path, "wb").write(data[:int(len(data) * frac)])
    rc, _, err = tool("load", path)
    if rc != 1 or path not in err or "HDF5-DIAG" in err:
        ok, why = False, f"cut to {frac}: rc={rc} {err.strip()!r}"
report(ok, "truncated_file_errors_cleanly", why)

rc, _, err = tool("load", os.path.join(tmp, "absent.hdf5"))
report(rc == 1 and "absent.hdf5" in err, "missing_file", err)

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(exit_code())
