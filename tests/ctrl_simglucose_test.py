"""neorl-simglucose (src/ctrl/env_simglucose.c), NeoRL-2's Simglucose task,
against a float64 reference written here: the UVA/Padova patient ODE as
simglucose's T1DPatient.model states it, integrated by RK4 at 32 steps a
minute (the C uses 16), with NeoRL-2's meals, pump, 3-minute sensor means,
reward (reward/simglucose_reward.py) and termination (BG outside [40, 600]).
Four virtual patients' published parameters are copied below from
simglucose's vpatient_params.csv. When the authors' code is at hand (the
NeoRL2 mirror; NEORL2_GIT names another), the reference's derivative is also
checked against their `model` function (taken out of t1dpatient.py, which
needs scipy only for its integrator) and all 30 patients' observed parameters
against their CSV. The reference is shown to fail on a 1% change of one
parameter, so the tolerance is not loose. Draws, seeds, refusals, and the CLI
(neorl-data, ctrl train --algo iql, ctrl collect) on the task are checked."""
import ast
import json
import math
import os
import subprocess
import sys
import tempfile
from collections import namedtuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, run, exit_code  # noqa: E402
from ctrl_neorl_test import episodes  # noqa: E402  (roll's lines by episode)

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "neorl_roll")
MIRROR = os.environ.get("NEORL2_GIT", "/work/.mirror/polixir+NeoRL2/repo")
SUBSTEPS = 32

# x0_1..x0_13, the 30 observed parameters (in the observation's order), kmin, Vg
OBSERVED = ["BW", "Fsnc", "Ib", "Km0", "Vi", "Vm0", "Vmx", "b", "d", "f", "k1", "k2", "ka1",
            "ka2", "kabs", "kd", "ke1", "ke2", "ki", "kmax", "kp1", "kp2", "kp3", "ksc", "m1",
            "m2", "m30", "m4", "p2u", "u2ss"]
COLS = [f"x0_{i}" for i in range(1, 14)] + OBSERVED + ["kmin", "Vg"]
PATIENTS = {  # simglucose id: name, values in COLS order (vpatient_params.csv)
    1: ("adolescent#001", "0 0 0 250.621836 176.506559902 4.697517762 0 97.554 97.554 "
        "3.19814917262 57.951224472 93.2258828462 250.621836 68.706 1 97.554 260.89 0.048153 "
        "5.92854753098 0.074667 0.83072 0.32294 0.9 0.057252 0.067738 0.0025 0.0115 0.091043 "
        "0.0185 0.0005 339 0.0088838 0.015865 11.5048231338 0.023318 0.023253 0.056 0.15221 "
        "0.259067825939 0.228315 0.103627130376 0.021344 1.21697571391 0.0083338 1.6818"),
    12: ("adult#002", "0 0 0 228.74478 105.42424102 4.2367599 0 107.07 107.07 3.00055352824 "
         "65.2223493778 53.2999844378 228.74478 111.1 1 107.07 223.52 0.03957 3.94361507564 "
         "0.041095 0.62708 0.20388 0.9 0.054895 0.10712 0.0037 0.0186 0.021419 0.0152 0.0005 "
         "339 0.0029398 0.046859 4.89081778378 0.006551 0.010539 0.1043 0.16433 0.290954038543 "
         "0.246495 0.116381615417 0.023888 1.23270240324 0.0065141 1.6764"),
    17: ("adult#007", "0 0 0 249.82522 182.033173951 7.8531681 0 118.61 118.61 2.13475224365 "
         "83.519216599 94.8225692214 249.82522 91.229 1 118.61 212.78 0.06621 4.06279812296 "
         "0.10286 0.93322 0.10058 0.9 0.091015 0.11462 0.0029 0.0133 0.58034 0.0151 0.0005 339 "
         "0.01011 0.032851 4.30434014431 0.0024355 0.0069361 0.0958 0.28169 0.19143177373 "
         "0.422535 0.076572709492 0.04091 1.50334589878 0.013232 1.847"),
    23: ("child#003", "0 0 0 233.426051066 90.1365395679 5.59519238156 0 96.38653336 "
         "96.38653336 1.79509115018 26.8346975874 17.5645293299 233.426051066 41.23304017 1 "
         "96.38653336 260.6177434 0.058049524 4.54376905737 0.063997085 0.595219309 "
         "0.119133938 0.9 0.06352621 0.151559162 0.0081 0.0275 0.099733323 0.018 0.0005 339 "
         "0.002815868 0.053017395 4.00983676085 0.003133049 0.011524925 0.0678 0.156066862 "
         "0.125176322684 0.234100293 0.0500705290734 0.06520304 0.70038560703 0.006550925 "
         "1.744184259"),
}
WORST_BG = [0.0]  # BG and CGM as doubles (the simulator's state), over all cases
TRAIN_IDS = [1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 21, 22, 23, 24, 25]


def patient(pid):
    name, values = PATIENTS[pid]
    return name, dict(zip(COLS, map(float, values.split())))


def deriv(x, cho, insulin, p, dbar):
    """dx/dt (minutes) of the 13 states, written from the model's equations"""
    dx = np.zeros(13)
    d = cho * 1000.0
    u = insulin * 6000.0 / p["BW"]
    qsto = x[0] + x[1]
    kgut = p["kmax"]
    if dbar > 0:
        aa = 2.5 / (1 - p["b"]) / dbar
        cc = 2.5 / p["d"] / dbar
        kgut = p["kmin"] + (p["kmax"] - p["kmin"]) / 2 * (
            math.tanh(aa * (qsto - p["b"] * dbar)) - math.tanh(cc * (qsto - p["d"] * dbar)) + 2)
    dx[0] = -p["kmax"] * x[0] + d
    dx[1] = p["kmax"] * x[0] - kgut * x[1]
    dx[2] = kgut * x[1] - p["kabs"] * x[2]
    ra = p["f"] * p["kabs"] * x[2] / p["BW"]
    egp = p["kp1"] - p["kp2"] * x[3] - p["kp3"] * x[8]
    renal = p["ke1"] * (x[3] - p["ke2"]) if x[3] > p["ke2"] else 0.0
    dx[3] = max(egp, 0.0) + ra - p["Fsnc"] - renal - p["k1"] * x[3] + p["k2"] * x[4]
    dx[3] *= x[3] >= 0
    uid = (p["Vm0"] + p["Vmx"] * x[6]) * x[4] / (p["Km0"] + x[4])
    dx[4] = (-uid + p["k1"] * x[3] - p["k2"] * x[4]) * (x[4] >= 0)
    dx[5] = (-(p["m2"] + p["m4"]) * x[5] + p["m1"] * x[9] + p["ka1"] * x[10]
             + p["ka2"] * x[11]) * (x[5] >= 0)
    it = x[5] / p["Vi"]
    dx[6] = p["p2u"] * (it - p["Ib"]) - p["p2u"] * x[6]
    dx[7] = -p["ki"] * (x[7] - it)
    dx[8] = -p["ki"] * (x[8] - x[7])
    dx[9] = (-(p["m1"] + p["m30"]) * x[9] + p["m2"] * x[5]) * (x[9] >= 0)
    dx[10] = (u - (p["ka1"] + p["kd"]) * x[10]) * (x[10] >= 0)
    dx[11] = (p["kd"] * x[10] - p["ka2"] * x[11]) * (x[11] >= 0)
    dx[12] = p["ksc"] * (x[3] - x[12]) * (x[12] >= 0)
    return dx


def risk(g):
    return 10 * (1.509 * (math.log(g) ** 1.084 - 5.381)) ** 2


def basal(a):
    f32 = np.float32
    u = (f32(min(1.0, max(-1.0, a))) + f32(1)) / f32(2) * f32(5)
    return min(30.0, max(0.0, float(np.round(float(u) * 6000 / 0.05)) * 0.05 / 6000))


def reference(p, hour, actions):
    """per step (CGM, BG, reward, terminated) of an episode with these actions"""
    x = np.array([p[f"x0_{i}"] for i in range(1, 14)])
    planned, last_cho, qsto0, eaten, eating = 0.0, 0.0, x[0] + x[1], 0.0, False
    minute = 0
    sensor = min(600.0, max(10.0, x[12] / p["Vg"]))
    cgm_prev, out = sensor, []
    meals = {420: 45.0, 720: 70.0, 1080: 80.0}
    h = 1.0 / SUBSTEPS
    for a in actions:
        ins = basal(a)
        bg = cgm = 0.0
        for _ in range(3):
            planned += meals.get((60 * hour + minute) % 1440, 0.0)
            eat = min(5.0, planned) if planned > 0 else 0.0
            planned = max(0.0, planned - eat)
            if eat > 0 and last_cho <= 0:
                qsto0, eaten, eating = x[0] + x[1], 0.0, True
            if eating:
                eaten += eat
            if eat <= 0 and last_cho > 0:
                eating = False
            last_cho = eat
            dbar = qsto0 + eaten * 1000
            for _ in range(SUBSTEPS):
                k1 = deriv(x, eat, ins, p, dbar)
                k2 = deriv(x + h / 2 * k1, eat, ins, p, dbar)
                k3 = deriv(x + h / 2 * k2, eat, ins, p, dbar)
                k4 = deriv(x + h * k3, eat, ins, p, dbar)
                x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            minute += 1
            g = x[12] / p["Vg"]
            if minute % 3 == 0:
                sensor = min(600.0, max(10.0, g))
            bg += g / 3
            cgm += sensor / 3
        r = (risk(cgm_prev) - risk(cgm) + 100) / 100
        r = -15.0 if cgm <= 40 else 0.0 if cgm >= 600 else r
        out.append((cgm, bg, r, bg < 40 or bg > 600))
        cgm_prev = cgm
    return out


def roll(env, seed, steps, policy):
    p = subprocess.run([TOOL, "roll", env, str(seed), str(steps), policy], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    if p.returncode:
        return p.returncode, None, p.stderr
    return 0, [json.loads(x) for x in p.stdout.splitlines()], p.stderr


def compare(p, hour, reset, steps):
    """worst relative CGM error, worst reward error, termination mismatches"""
    ref = reference(p, hour, [s["a"][0] for s in steps])
    x0 = min(600.0, max(10.0, p["x0_13"] / p["Vg"]))
    worst_c = abs(reset["obs"][0] - x0) / x0
    worst_r, bad_term, bad_obs = 0.0, 0, 0
    props = np.array([p[k] for k in OBSERVED], np.float32)
    bad_obs += not np.array_equal(np.array(reset["obs"][1:], np.float32), props)
    for s, (cgm, bg, r, term) in zip(steps, ref):
        worst_c = max(worst_c, abs(s["obs"][0] - cgm) / cgm, abs(s["state"][16] - bg) / bg)
        WORST_BG[0] = max(WORST_BG[0], abs(s["state"][16] - bg) / bg,
                          abs(s["state"][17] - cgm) / cgm)
        worst_r = max(worst_r, abs(s["r"] - r))
        bad_term += bool(s["term"]) != term
        bad_obs += not np.array_equal(np.array(s["obs"][1:], np.float32), props)
    return worst_c, worst_r, bad_term, bad_obs, len(steps)


def authors_model():
    """simglucose's T1DPatient.model out of the mirror (None when absent)"""
    try:
        src = subprocess.run(["git", "--git-dir", MIRROR, "show",
                              "HEAD:neorl2/envs/data/simglucose/patient/t1dpatient.py"],
                             capture_output=True, text=True, timeout=30)
        csv = subprocess.run(["git", "--git-dir", MIRROR, "show",
                              "HEAD:neorl2/envs/data/simglucose/patient/vpatient_params.csv"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    if src.returncode or csv.returncode:
        return None, None
    tree = ast.parse(src.stdout)
    fn = next(n for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "T1DPatient"
              for n in c.body if isinstance(n, ast.FunctionDef) and n.name == "model")
    fn.decorator_list = []
    ns = {"np": np, "logger": type("L", (), {"debug": staticmethod(lambda *a: None)})}
    exec(compile(ast.Module([fn], []), "t1dpatient_model", "exec"), ns)
    lines = csv.stdout.strip().splitlines()
    hdr = [h.replace(" ", "") for h in lines[0].split(",")]
    table = [dict(zip(hdr, r.split(","))) for r in lines[1:]]
    return ns["model"], table


def main():
    rc, lines, err = roll("neorl-simglucose", 0, 1, "zero")
    report(rc == 0 and lines[0] == {"obs_dim": 31, "act_dim": 1, "max_episode_steps": 480},
           "neorl-simglucose: obs 31, act 1, 480 steps", err)

    # the reference against the authors' model function and their CSV
    model, table = authors_model()
    if model is None:
        print("(the NeoRL2 mirror is absent: the checks against the authors' code are skipped)")
    else:
        Act = namedtuple("patient_action", ["CHO", "insulin"])
        rng = np.random.default_rng(0)
        worst = 0.0
        for pid in PATIENTS:
            name, p = patient(pid)
            row = next(r for r in table if r["Name"] == name)
            same = all(float(row[c.replace(" ", "")]) == p[c] for c in COLS)
            report(same, f"{name}: the parameters copied here equal the authors' CSV")
            P = type("Params", (), {k: float(v) for k, v in row.items() if k != "Name"})
            x0 = np.array([p[f"x0_{i}"] for i in range(1, 14)])
            for _ in range(200):
                x = x0 * rng.uniform(0, 2, 13) + rng.uniform(0, 50, 13) * (rng.random(13) < .3)
                cho, ins = rng.choice([0.0, 5.0]), rng.uniform(0, 0.1)
                qs, food = rng.uniform(0, 5e4) * (rng.random() < .7), rng.uniform(0, 80)
                theirs = model(0.0, x, Act(cho, ins), P, qs, food)
                ours = deriv(x, cho, ins, p, qs + food * 1000)
                worst = max(worst, np.max(np.abs(theirs - ours) / (1 + np.abs(theirs))))
        report(worst < 1e-12, "the reference's derivative equals the authors' model function",
               f"max rel diff {worst:.1e} over 800 random states and inputs")
        bad = []
        for pid in range(1, 31):
            rc, lines, err = roll(f"neorl-simglucose:patient={pid}", 0, 1, "zero")
            row = table[pid - 1]
            want = np.array([float(row[k]) for k in OBSERVED], np.float32)
            x0 = min(600, max(10, float(row["x0_13"]) / float(row["Vg"])))
            if rc or not np.array_equal(np.array(lines[1]["obs"][1:], np.float32), want) or \
                    abs(lines[1]["obs"][0] - x0) > 1e-4 * x0 or lines[1]["state"][13] != pid:
                bad.append(pid)
        report(not bad, "all 30 patients: observed parameters and first CGM as their CSV",
               f"wrong: {bad}")

    # trajectories against the reference
    cases = [("neorl-simglucose:patient=1,hour=6", "expert", 480),
             ("neorl-simglucose:patient=12,hour=17", "expert", 480),
             ("neorl-simglucose:patient=23,hour=0", "expert", 480),
             ("neorl-simglucose:patient=17,hour=11", "random", 60),
             ("neorl-simglucose:patient=1,hour=7", "zero", 60)]
    for env, policy, steps in cases:
        rc, lines, err = roll(env, 3, steps, policy)
        if rc:
            report(False, env, err)
            continue
        pid = int(env.split("patient=")[1].split(",")[0])
        hour = int(env.split("hour=")[1])
        wc = wr = 0.0
        bt = bo = n = 0
        ends = []
        for reset, st in episodes(lines):
            c, r, t, o, k = compare(patient(pid)[1], hour, reset, st)
            wc, wr, bt, bo, n = max(wc, c), max(wr, r), bt + t, bo + o, n + k
            ends.append((len(st), st[-1]["term"] if st else None))
        report(wc < 1e-6 and wr < 1e-5 and bt == 0 and bo == 0 and n == steps,
               f"{env}, {policy} actions: {n} steps vs the float64 reference",
               f"CGM/BG max rel diff {wc:.1e}, reward max abs diff {wr:.1e}, "
               f"termination mismatches {bt}, parameter mismatches {bo}, episodes {ends}")
        print(f"  {env} {policy}: CGM/BG max rel diff {wc:.2e}, reward {wr:.2e}, "
              f"episodes (steps, terminated) {ends}")
        if policy == "expert" and pid == 1:  # the expert lives the day; the meals show
            st = episodes(lines)[0][1]
            bgs = [s["state"][16] for s in st]
            meal_steps = [((420 - 360) % 1440) // 3, ((720 - 360) % 1440) // 3]
            rises = all(max(bgs[m:m + 60]) > bgs[m] + 15 for m in meal_steps)
            report(len(st) == 480 and st[-1]["trunc"] and rises,
                   "the expert keeps adolescent#001 alive 24 h; BG rises after 7:00 and 12:00",
                   f"{len(st)} steps, BG at 7:00 and 12:00 then 3 h later "
                   f"{[(round(bgs[m]), round(max(bgs[m:m + 60]))) for m in meal_steps]}")
            # the tolerance has teeth: kp1 1% off moves the reference far beyond it
            _, p = patient(1)
            p2 = dict(p, kp1=p["kp1"] * 1.01)
            acts = [s["a"][0] for s in st[:100]]
            a_ref, b_ref = reference(p, 6, acts), reference(p2, 6, acts)
            d = max(abs(u[0] - v[0]) / u[0] for u, v in zip(a_ref, b_ref))
            report(d > 100e-6, "a 1% change of kp1 moves CGM far beyond the tolerance",
                   f"{d:.1e}")

    print(f"  BG and CGM in double (the simulator's state): max rel diff {WORST_BG[0]:.2e}")

    # draws: training patients only, hours 0..23, per seed
    rc, lines, err = roll("neorl-simglucose", 5, 60 * 20, "random")
    draws = [(r["state"][13], r["state"][14]) for r, _ in episodes(lines)] if not rc else []
    pids = {int(a) for a, _ in draws}
    hours = {int(b) for _, b in draws}
    report(len(draws) >= 20 and pids <= set(TRAIN_IDS) and len(pids) >= 8 and
           hours <= set(range(24)) and len(hours) >= 10,
           "episodes draw NeoRL-2's 15 training patients and a start hour 0..23",
           f"{len(draws)} episodes, patients {sorted(pids)}, hours {sorted(hours)}")
    a = roll("neorl-simglucose", 11, 200, "random")[1]
    b = roll("neorl-simglucose", 11, 200, "random")[1]
    c = roll("neorl-simglucose", 12, 200, "random")[1]
    report(a == b and a != c, "neorl-simglucose: same seed same episodes, another seed others")

    bad = ["neorl-simglucose:patient=0", "neorl-simglucose:patient=31",
           "neorl-simglucose:patient=2.5", "neorl-simglucose:hour=24",
           "neorl-simglucose:hour=-1", "neorl-simglucose:meal=3", "neorl-simglucose:",
           "neorl-simglucose:patient"]
    for env in bad:
        rc, _, err = roll(env, 0, 1, "zero")
        report(rc == 1 and "neorl-simglucose" in err and "error:" in err, f"refused: {env}",
               err.strip())

    # the CLI: datasets, IQL offline then online, SAC collection
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run("ctrl", "neorl-data", "--env", "neorl-simglucose", "--out", tmp + "/data",
                "--train_episodes", "4", "--seed", "0", "--quiet")
            info = json.load(open(tmp + "/data/neorl.json"))
            run("ctrl", "train", "--algo", "iql", "--env", "neorl-simglucose", "--dataset",
                tmp + "/data/train.hdf5", "--offline_steps", "50", "--online_steps", "20",
                "--hidden", "32", "--eval_every", "50", "--eval_episodes", "1",
                "--output_dir", tmp + "/iql", "--quiet")
            run("ctrl", "collect", "--env", "neorl-simglucose", "--out", tmp + "/col",
                "--steps", "300", "--start_steps", "100", "--checkpoints", "2",
                "--eval_episodes", "1", "--hidden", "32", "--quiet")
            ok = all(os.path.exists(f"{tmp}/col/{k}.hdf5") for k in ("random", "expert"))
            report(ok and info["ref_expert_return"] > info["ref_random_return"],
                   "rlhf ctrl neorl-data, train --algo iql and collect run on neorl-simglucose",
                   json.dumps(info))
        except (RuntimeError, OSError, KeyError, ValueError) as e:
            report(False, "rlhf ctrl neorl-data, train --algo iql and collect run on "
                   "neorl-simglucose", str(e)[-1500:])
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
