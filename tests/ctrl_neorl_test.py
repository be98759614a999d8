"""NeoRL-2-style tasks (src/ctrl/env_neorl.c, neorl_data.c) against numpy
implementations of their equations written here from NeoRL-2's code
(neorl2/envs/pipline.py, rocketrecovery.py, dmsd.py and the reward files):
several hundred steps of each simulator, every observation and reward within
1e-5; the pipeline's delay is exactly `delay` steps; episodes repeat per seed;
bad names and parameters are refused; the datasets have train/val splits,
references and a behaviour score between random and expert."""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, exit_code  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "neorl_roll")
TOL = 1e-5


def roll(env, seed, steps, policy):
    p = subprocess.run([TOOL, "roll", env, str(seed), str(steps), policy], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    if p.returncode:
        return p.returncode, None, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    return 0, lines, p.stderr


def episodes(lines):
    """[(reset line, [step lines])] from roll's output"""
    out = []
    for x in lines[1:]:
        if "a" in x:
            out[-1][1].append(x)
        else:
            out.append((x, []))
    return out


def close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if a.size else 0.0


f32 = np.float32


# ------------------------------------------------------------------ pipeline
def pipeline_check(lines):
    """replays every episode; the target is the one external input, taken from
    the simulator's observation (checked to be one of the four rates)"""
    worst, n = 0.0, 0
    for reset, steps in episodes(lines):
        st = reset["state"]
        g, d = st[0], int(st[2])
        q = list(st[4:4 + d + 1])
        yh = [reset["obs"][0]] * 26
        ah = [0.0] * 25
        for s in steps:
            a = float(min(1.0, max(-1.0, f32(s["a"][0]))))
            T = s["obs"][1]
            assert T in (50, 80, 110, 140), T
            g = min(200.0, max(0.0, g + a))
            q = [g] + q[:-1]
            y = q[-1]
            yh = [y] + yh[:-1]
            ah = [a] + ah[:-1]
            obs = np.array([y, T] + yh[1:26] + ah[:25], np.float32)
            r = np.square((200 - np.abs(obs[0] - obs[1])) * 0.01) - 3
            worst = max(worst, close(s["obs"], obs), close([s["r"]], [r]))
            assert not s["term"]
            n += 1
    return worst, n


# -------------------------------------------------------------------- rocket
def lander_body():
    P = np.array([(-14, 17), (-17, 0), (-17, -10), (17, -10), (17, 0), (14, 17)], float) / 30.0
    area, c, I = 0.0, np.zeros(2), 0.0
    for i in range(6):
        (x1, y1), (x2, y2) = P[i], P[(i + 1) % 6]
        cr = x1 * y2 - x2 * y1
        area += cr / 2
        c += cr * np.array([x1 + x2, y1 + y2]) / 6
        I += cr * (x1 * x1 + x1 * x2 + x2 * x2 + y1 * y1 + y1 * y2 + y2 * y2) / 12
    c /= area
    m = 5 * area
    return m, 5 * I - m * c @ c


def rocket_obs(x, y, vx, vy, th, om, wind):
    W, H = 20.0, 400 / 30.0
    return np.array([(x - W / 2) / (W / 2), (y - (H / 4 + 18 / 30)) / (H / 2),
                     vx * (W / 2) / 50, vy * (H / 2) / 50, th, 20 * om / 50, wind], np.float32)


def shaping(o):
    o = o.astype(np.float64)
    return -100 * math.hypot(o[0], o[1]) - 100 * math.hypot(o[2], o[3]) - 100 * abs(o[4])


def rocket_check(lines):
    worst, n, landings = 0.0, 0, []
    M, I = lander_body()
    for reset, steps in episodes(lines):
        x, y, vx, vy, th, om, k, wp, m_c, i_c = reset["state"]
        worst = max(worst, close([m_c, i_c], [M, I]))
        for s in steps:
            a = np.clip(np.array(s["a"], np.float32), -1, 1).astype(np.float64)
            prev = rocket_obs(x, y, vx, vy, th, om, 0)
            wind = math.tanh(math.sin(0.02 * k) + math.sin(math.pi * 0.01 * k)) * wp
            k += 1
            tip, side = (math.sin(th), math.cos(th)), (-math.cos(th), math.sin(th))
            dv, dom, mp, sp = np.zeros(2), 0.0, 0.0, 0.0
            if a[0] > 0:
                mp = (min(max(a[0], 0), 1) + 1) * 0.5
                ox, oy = tip[0] * 4 / 30, -tip[1] * 4 / 30
                dv += np.array([-ox, -oy]) * 13 * mp / M
            if abs(a[1]) > 0.5:
                dr = np.sign(a[1])
                sp = min(max(abs(a[1]), 0.5), 1.0)
                ox, oy = side[0] * dr * 12 / 30, -side[1] * dr * 12 / 30
                J = np.array([-ox, -oy]) * 0.6 * sp
                r = np.array([ox - tip[0] * 17 / 30, oy + tip[1] * 14 / 30])
                dv += J / M
                dom += (r[0] * J[1] - r[1] * J[0]) / I
            h = 1 / 50
            vx, vy = vx + dv[0] + h * wind / M, vy + dv[1] + h * -10.0
            om += dom
            x, y, th = x + h * vx, y + h * vy, th + h * om
            obs = rocket_obs(x, y, vx, vy, th, om, wind)
            rew = shaping(obs) - shaping(prev) - 0.3 * mp - 0.03 * sp
            term = abs(float(obs[1])) <= 0.05
            if term:
                safe = abs(obs[4]) < 0.3 and abs(obs[2]) < 0.5 and abs(obs[3]) < 2
                rew = 100 if safe else -100
                landings.append(rew)
            worst = max(worst, close(s["obs"], obs), close([s["r"]], [rew]))
            assert bool(s["term"]) == term, (s, obs)
            n += 1
    return worst, n, landings


# ---------------------------------------------------------------------- dmsd
def dmsd_check(lines):
    worst, n = 0.0, 0
    for reset, steps in episodes(lines):
        st = reset["state"]
        s = np.array(st[0:4])
        tg = [(st[4], st[5], int(st[6])), (st[7], st[8], int(st[9]))]
        m, dt, dd, kk = st[10], 0.2, 4.0, 2.0
        A = np.array([[1, 0, dt, 0], [0, 1, 0, dt],
                      [-dt * 2 * kk / m, dt * kk / m, 1 - dt * 2 * dd / m, dt * dd / m],
                      [dt * kk / m, -dt * 2 * kk / m, dt * dd / m, 1 - dt * 2 * dd / m]])
        for t, rec in enumerate(steps, 1):
            a = np.clip(np.array(rec["a"], np.float32), -1, 1).astype(np.float64)
            force = (a + 1) / 2 * 60 - 30
            s = A @ s
            s[2:] += dt * force / m
            tt = min(t, 99)
            T = [b if tt >= s2 else a_ for (a_, b, s2) in tg]
            obs = np.array([s[0], s[1], s[2], s[3], T[0], T[1]], np.float32)
            r = np.sum(-np.log(np.abs(obs[:2] - obs[4:]) + 0.01))
            worst = max(worst, close(rec["obs"], obs), close([rec["r"]], [r]))
            n += 1
    return worst, n


def check_sim(name, env, fn, steps, policy="random"):
    rc, lines, err = roll(env, 3, steps, policy)
    if rc:
        report(False, name, err)
        return None
    res = fn(lines)
    report(res[0] < TOL and res[1] == steps,
           name, f"max rel error {res[0]:.2e} over {res[1]} steps")
    return lines, res


def main():
    check_sim("pipeline: 1500 random steps (two episodes) vs numpy", "neorl-pipeline",
              pipeline_check, 1500)
    out = check_sim("pipeline with delay=7, switch=0.05 vs numpy",
                    "neorl-pipeline:delay=7,switch=0.05", pipeline_check, 600)
    if out:  # targets do switch at about the set rate
        T = [s["obs"][1] for s in out[0][1:] if "a" in s]
        changes = sum(1 for a, b in zip(T, T[1:]) if a != b)
        report(5 <= changes <= 45, "pipeline: targets switch (external factor)",
               f"{changes} changes")
    for d in (19, 7, 0):
        env = "neorl-pipeline" if d == 19 else f"neorl-pipeline:delay={d},switch=0"
        rc, lines, err = roll(env + ("" if d != 19 else ":switch=0"), 5, 60, "pulse:10")
        ys = [x["obs"][0] for x in lines[2:]]
        moved = [i for i in range(1, len(ys)) if ys[i] != ys[i - 1]]
        report(rc == 0 and moved[:1] == [10 + d],
               f"pipeline: an action's effect shows exactly {d} steps later",
               f"first change at step {moved[:1]}")
    out = check_sim("rocket: 1500 random steps vs numpy", "neorl-rocket", rocket_check, 1500)
    if out:
        report(len(out[1][2]) >= 3, "rocket: episodes end at touchdown with +-100",
               f"{out[1][2]}")
    out = check_sim("rocket: 800 expert steps vs numpy (safe landings)", "neorl-rocket:wind=5",
                    rocket_check, 800, "expert")
    if out:
        report(100 in out[1][2], "rocket: the expert lands safely (+100)", f"{out[1][2]}")
    check_sim("dmsd: 600 random steps vs numpy", "neorl-dmsd", dmsd_check, 600)
    check_sim("dmsd with mass=30: 300 expert steps vs numpy", "neorl-dmsd:mass=30", dmsd_check,
              300, "expert")

    for env in ("neorl-pipeline", "neorl-rocket", "neorl-dmsd"):
        a = roll(env, 11, 300, "random")[1]
        b = roll(env, 11, 300, "random")[1]
        c = roll(env, 12, 300, "random")[1]
        report(a == b and a != c, f"{env}: same seed same episodes, another seed others")

    bad = ["neorl-foo", "neorl-pipeline:delay=-1", "neorl-pipeline:delay=2.5",
           "neorl-pipeline:delay=401", "neorl-pipeline:switch=2", "neorl-rocket:wind=30",
           "neorl-dmsd:mass=0", "neorl-pipeline:foo=1", "neorl-pipeline:", "neorl-dmsd:mass",
           "neorl-rocket:wind=abc", "neorl-dmsd:delay=3"]
    for env in bad:
        rc, _, err = roll(env, 0, 1, "zero")
        report(rc == 1 and env.split(":")[0] in err and "error:" in err, f"refused: {env}",
               err.strip())

    import h5py
    with tempfile.TemporaryDirectory() as tmp:
        for env, eps in (("neorl-dmsd", 12), ("neorl-rocket", 12), ("neorl-pipeline", 2)):
            p = subprocess.run([TOOL, "data", env, tmp + "/" + env, str(eps), "-1", "0"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
            if p.returncode:
                report(False, f"{env}: data", p.stderr)
                continue
            r = json.loads(p.stdout)
            with h5py.File(f"{tmp}/{env}/train.hdf5") as f, h5py.File(f"{tmp}/{env}/val.hdf5") as g:
                attrs = dict(f.attrs)
                ok = (f["observations"].shape[0] == r["train_rows"] and
                      g["observations"].shape[0] == r["val_rows"] and
                      str(attrs["level"]) == "train" and str(g.attrs["level"]) == "val" and
                      abs(attrs["ref_expert_return"] - r["ref_expert"]) < 1e-6 and
                      abs(attrs["ref_random_return"] - r["ref_random"]) < 1e-6)
                done = f["terminals"][:] | f["timeouts"][:]
                # every episode ends with a flag; rewards re-summed give the reported mean
                ends = np.nonzero(done)[0]
                rets = np.add.reduceat(f["rewards"][:], np.r_[0, ends[:-1] + 1])
                ok = ok and len(ends) == eps and ends[-1] == r["train_rows"] - 1
                tol = 1e-3 * max(1, abs(r["data_return"]))
                ok = ok and abs(rets.mean() - r["data_return"]) < tol
                # next_observations continue the episode
                nx, ob = f["next_observations"][:], f["observations"][:]
                ok = ok and np.array_equal(nx[:-1][~done[:-1].astype(bool)],
                                           ob[1:][~done[:-1].astype(bool)])
            report(ok and r["ref_expert"] > r["ref_random"] and 30 <= r["data_score"] <= 95,
                   f"{env}: train/val splits, references, behaviour between random and expert",
                   f"random {r['ref_random']:.1f} expert {r['ref_expert']:.1f} data score "
                   f"{r['data_score']:.1f}, rows {r['train_rows']}/{r['val_rows']}")
        # the command: the same files as the library call, and an earlier run is not overwritten
        rlhf = os.path.join(ROOT, BUILD, "rlhf")
        cmd = [rlhf, "ctrl", "neorl-data", "--env", "neorl-dmsd", "--out", tmp + "/cli",
               "--train_episodes", "12", "--seed", "0", "--quiet"]
        p1 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        p2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        ok = p1.returncode == 0 and p2.returncode == 2 and "--overwrite" in p2.stderr
        if ok:
            with h5py.File(f"{tmp}/cli/train.hdf5") as f, \
                    h5py.File(f"{tmp}/neorl-dmsd/train.hdf5") as g:
                ok = np.array_equal(f["actions"][:], g["actions"][:])
        report(ok, "rlhf ctrl neorl-data writes the datasets and refuses to overwrite them",
               p1.stderr + p2.stderr)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
