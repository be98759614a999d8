"""A small environment for the external protocol of src/ctrl/env_external.c
(used by tests/ctrl_env_test.py): a point mass on a line. State (x, v); the
action is a force in [-1, 1]; obs is (x, v, the action received), so the test
sees what arrived; reward -x^2, cost |a|; terminated when |x| > 1; 20 steps.
The initial x is uniform in [-0.5, 0.5] from random.Random(seed).

--mode MODE makes it misbehave on the first step (or at the start):
  badjson  answers a line that is not JSON       short   obs of the wrong length
  nan      answers NaN in obs                    exit    exits with status 4
  hang     never answers                         notbool terminated is a number
  badspaces the first line lacks act_high        extra   answers reset twice
  huge     obs holds 1e999 (JSON, but not a finite float)
"""
import json
import random
import sys

mode = sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "ok"


def say(obj):
    sys.stdout.write(obj if isinstance(obj, str) else json.dumps(obj))
    sys.stdout.write("\n")
    sys.stdout.flush()


spaces = {"obs_dim": 3, "act_dim": 1, "act_low": [-1.0], "act_high": [1.0],
          "max_episode_steps": 20}
if mode == "badspaces":
    del spaces["act_high"]
say(spaces)
rng = random.Random(0)
x = v = 0.0
for line in sys.stdin:
    req = json.loads(line)
    if req["cmd"] == "seed":
        rng = random.Random(req["seed"])
    elif req["cmd"] == "reset":
        x, v = rng.uniform(-0.5, 0.5), 0.0
        say({"obs": [x, v, 0.0]})
        if mode == "extra":
            say({"obs": [x, v, 0.0]})
    elif req["cmd"] == "step":
        a = req["action"][0]
        if mode == "badjson":
            say("this is not json")
            continue
        if mode == "exit":
            sys.exit(4)
        if mode == "hang":
            continue
        if mode == "huge":
            say('{"obs": [0, 1e999, 0], "reward": 0, "terminated": false}')
            continue
        v = v + 0.1 * a
        x = x + 0.1 * v
        reply = {"obs": [x, v, a], "reward": -x * x, "terminated": abs(x) > 1.0, "cost": abs(a)}
        if mode == "short":
            reply["obs"] = [x, v]
        if mode == "nan":
            reply["obs"][1] = float("nan")
        if mode == "notbool":
            reply["terminated"] = 0
        say(reply)
    elif req["cmd"] == "close":
        break
