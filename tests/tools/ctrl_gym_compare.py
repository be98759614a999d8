"""Optional, not part of `make test`: our classic-control tasks against
Gymnasium's own Python classes, step by step from the same states with the same
(clipped) actions. Needs an importable gymnasium (a wheel, or its source tree on
PYTHONPATH) and numpy:

    PYTHONPATH=/path/to/Gymnasium BUILD=build /usr/bin/python3 tests/tools/ctrl_gym_compare.py

Prints the largest differences; exits 1 when an observation differs by more
than 1e-6, a reward by more than 1e-5 (ours is a float) or a termination flag
differs, 77 when gymnasium is not importable. The continuous CartPole is
Gymnasium's CartPole with force_mag set to 10 * action before each step.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLL = os.path.join(ROOT, os.environ.get("BUILD", "build"), "tests", "tools", "ctrl_env_roll")

try:
    import numpy as np
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv
    from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
    from gymnasium.envs.classic_control.pendulum import PendulumEnv
except ImportError as e:
    print(f"SKIP ctrl_gym_compare: {e}")
    sys.exit(77)

TASKS = [("pendulum", PendulumEnv, 2.0, 200), ("mountaincar", Continuous_MountainCarEnv, 1.0, 300),
         ("cartpole", CartPoleEnv, 1.0, 200)]
rng = np.random.default_rng(0)
bad = 0
for name, cls, hi, T in TASKS:
    w_obs = w_rew = 0.0
    flags = steps = 0
    for ep in range(20):
        env = cls()
        env.reset(seed=ep)
        s0 = np.array(env.state, dtype=np.float64)
        if name == "mountaincar":  # anywhere on the hill, so the wall and the goal are met
            s0 = np.array([rng.uniform(-1.2, 0.4), rng.uniform(-0.07, 0.07)])
        env.state = s0.copy()
        acts = rng.uniform(-1.3 * hi, 1.3 * hi, size=T).astype(np.float32)
        cmds = ["state " + " ".join(repr(float(x)) for x in s0)]
        cmds += [f"step {float(a)!r}" for a in acts]
        out = subprocess.run([ROLL, name], input="\n".join(cmds) + "\n", capture_output=True,
                             text=True, check=True).stdout.splitlines()[2:]
        for t, a in enumerate(acts):
            a = np.clip(np.array([a], dtype=np.float32), -hi, hi)  # Gymnasium's ClipAction
            if name == "cartpole":
                env.force_mag = 10.0 * float(a[0])
                o, r, term, _, _ = env.step(1)
            else:
                o, r, term, _, _ = env.step(a)
            c = json.loads(out[t])
            w_obs = max(w_obs, float(np.max(np.abs(np.array(c["obs"]) - o))))
            w_rew = max(w_rew, abs(c["reward"] - r))
            flags += int(c["terminated"] != bool(term))
            steps += 1
            if term:
                break
    print(f"{name}: {steps} steps, max |obs diff| {w_obs:.3g}, max |reward diff| {w_rew:.3g}, "
          f"termination mismatches {flags}")
    bad += w_obs > 1e-6 or w_rew > 1e-5 or flags > 0
sys.exit(1 if bad else 0)
