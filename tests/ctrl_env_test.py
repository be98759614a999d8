"""The external-environment protocol (src/ctrl/env_external.c): a point mass in
Python (tests/tools/ctrl_fake_env.py) driven through ctrl_env by
tests/tools/ctrl_env_roll, its episodes checked against the same point mass
computed here; and programs that misbehave (bad JSON, wrong lengths, NaN,
exiting, hanging) give an error naming the program and the line, quickly."""
import json
import os
import random
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, exit_code  # noqa: E402

ROLL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_env_roll")
FAKE = "cmd:/usr/bin/python3 tests/tools/ctrl_fake_env.py"


def roll(env, commands, timeout_env="2"):
    """runs ctrl_env_roll ENV with COMMANDS on stdin -> (rc, JSON lines, stderr, seconds)"""
    t0 = time.time()
    p = subprocess.run([ROLL, env], input="".join(c + "\n" for c in commands), cwd=ROOT,
                       capture_output=True, text=True, timeout=30,
                       env={**os.environ, "RLHF_ENV_TIMEOUT": timeout_env})
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    return p.returncode, lines, p.stderr, time.time() - t0


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def reference(seed, actions):
    """the fake point mass, written out again: the replies ctrl_env_roll should print"""
    rng = random.Random(seed)
    x, v = rng.uniform(-0.5, 0.5), 0.0
    out = [{"obs": [x, v, 0.0], "t": 0}]
    for t, a in enumerate(actions, 1):
        a = min(1.0, max(-1.0, f32(a)))  # clipped on our side, as a float
        v = v + 0.1 * a
        x = x + 0.1 * v
        term = abs(x) > 1.0
        out.append({"obs": [x, v, a], "reward": -x * x, "cost": abs(a), "terminated": term,
                    "truncated": t >= 20 and not term, "t": t})
        if term:
            break
    return out


def same(got, want, tol=1e-6):
    for k, w in want.items():
        g = got.get(k)
        if isinstance(w, list):
            if len(g) != len(w) or any(abs(a - b) > tol for a, b in zip(g, w)):
                return f"{k}: {g} != {w}"
        elif isinstance(w, bool) or isinstance(w, int):
            if g != w:
                return f"{k}: {g} != {w}"
        elif abs(g - w) > tol * max(1.0, abs(w)):
            return f"{k}: {g} != {w}"
    return ""


def episode(seed, actions, seed_cmd=True):
    cmds = ([f"seed {seed}"] if seed_cmd else []) + ["reset"] + [f"step {a!r}" for a in actions]
    rc, lines, err, _ = roll(FAKE, cmds)
    if rc != 0:
        raise RuntimeError(err[-500:])
    return lines


def check_spaces():
    rc, lines, err, _ = roll(FAKE, [])
    ok = rc == 0 and lines and lines[0] == {"obs_dim": 3, "act_dim": 1, "act_low": [-1],
                                            "act_high": [1], "max_episode_steps": 20}
    report(ok, "external_spaces_line", f"rc {rc}: {lines[:1]} {err[-300:]}")


def check_episode():
    # out-of-range actions arrive clipped; the episode is truncated at exactly 20 steps
    actions = [0.3, -2.5, 0.7, 4.0, -0.1] * 4 + [0.2]
    lines = episode(3, actions[:20])
    want = reference(3, actions[:20])
    got = [x for x in lines[1:] if "seeded" not in x]
    why = "" if len(got) == len(want) else f"{len(got)} replies, expected {len(want)}"
    for g, w in zip(got, want):
        why = why or same(g, w)
    trunc = [x.get("truncated") for x in got[1:]]
    if not why and trunc != [False] * 19 + [True]:
        why = f"truncated flags {trunc}"
    report(not why, "external_episode_matches_point_mass", why)

    # the goal of |x| > 1 under a constant push: terminated (not truncated) there
    lines = episode(11, [1.0] * 20)
    got = [x for x in lines[1:] if "seeded" not in x]
    want = reference(11, [1.0] * 20)
    end = next((i for i, x in enumerate(got) if x.get("terminated")), None)
    why = ""
    if end is None or end != len(want) - 1 or got[end].get("truncated"):
        why = f"terminated at reply {end}, reference {len(want) - 1}"
    for g, w in zip(got, want):
        why = why or same(g, w)
    report(not why, "external_termination", why)


def check_seeding():
    a = episode(5, [0.1, 0.2])
    b = episode(5, [0.1, 0.2])
    c = episode(6, [0.1, 0.2])
    d = episode(0, [0.1], seed_cmd=False)  # never seeded: the program hears seed 0
    ok = a == b and a[2]["obs"] != c[2]["obs"] and not same(d[1], reference(0, [])[0])
    report(ok, "external_seed_reaches_program", f"{a[2]} {b[2]} {c[2]} {d[1]}")


BAD = {  # mode -> phrases the error must hold
    "badjson": ["line 3 of its output", "not a JSON object", "this is not json"],
    "short": ["line 3", "\"obs\" has 2 numbers, expected 3"],
    "nan": ["line 3", "NaN"],
    "huge": ["line 3", "element 1 is not a finite number"],
    "notbool": ["\"terminated\" is not true or false"],
    "exit": ["exited with status 4", "reply to step"],
    "hang": ["no reply to step within 1 s", "killed"],
    "badspaces": ["line 1", "\"act_high\" is missing"],
    "extra": ["line"],
}


def alive(mode):
    """whether a fake environment started with --mode MODE is still running"""
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return any("ctrl_fake_env.py --mode " + mode in x and "ps -eo" not in x
               for x in ps.splitlines())


def check_misbehaving():
    for mode, phrases in BAD.items():
        env = f"{FAKE} --mode {mode}"
        rc, lines, err, secs = roll(env, ["reset", "step 0.5", "reset", "step 0.5"],
                                    timeout_env="1")
        msg = err.strip()
        why = ""
        if rc != 1:
            why = f"exit {rc}"
        elif f'env "{env}"' not in msg:
            why = "the program is not named"
        elif not all(p in msg for p in phrases):
            why = f"missing one of {phrases}"
        elif secs > 8:
            why = f"took {secs:.1f} s"
        time.sleep(0.05)
        if not why and alive(mode):
            why = "the program still runs"
        report(not why, f"external_refuses_{mode}", f"{why}: {msg[-400:]}")

    # a NaN action is refused on our side, before the program hears it
    rc, lines, err, _ = roll(FAKE, ["reset", "step nan"])
    report(rc == 1 and "action[0]" in err and "not a finite number" in err,
           "external_nan_action_refused", err[-300:])


if __name__ == "__main__":
    if not os.path.exists(ROLL):
        report(False, "ctrl_env_roll", f"{ROLL} not built")
        sys.exit(exit_code())
    t0 = time.time()
    check_spaces()
    check_episode()
    check_seeding()
    check_misbehaving()
    print(f"# ctrl_env_test: {time.time() - t0:.1f} s")
    sys.exit(exit_code())
