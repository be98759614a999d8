#!/usr/bin/env python3
"""An environment program for multi-turn episodes (reward/env_program.h's
protocol), for tests/multiturn_test.py. One JSON line in per assistant turn,
one JSON line out.

  --mode arith   a toy game: turn 1 (whatever the assistant said) gets "What is
                 A+B?", turn 2 the second question, turn 3 ends the episode with
                 reward = the number of questions answered right (0, 1 or 2);
                 A, B from the episode id
  --mode script  turn K gets "env K of E" (E the episode id) padded to vary in
                 length; the episode ends after --turns turns, reward = turns
  --mode digits  two turns; reward = the share of digits in what the assistant
                 said (a game a random policy can learn in a few iterations)
  --mode never   never ends by itself: turn 1 answers with reward 0.5, later
                 turns without a reward (truncation by --max_turns keeps 0.5)
  --mode badjson | nan | nodone | hang | exit   protocol errors on turn 2
  --log PATH     every request and answer appended as {"req": ..., "ans": ...}
"""
import argparse
import json
import sys
import time


def question(ep, k):
    a, b = (ep * 7 + k * 3) % 10, (ep * 5 + k) % 10
    return a, b


def answer(mode, req, turns, state):
    ep, k = req["episode"], req["turn"]
    if mode == "arith":
        st = state.setdefault(ep, {"right": 0})
        if k >= 2:
            a, b = question(ep, k - 1)
            st["right"] += req["content"].strip() == str(a + b)
        if k >= 3:
            return {"done": True, "reward": st["right"]}
        a, b = question(ep, k)
        return {"content": f"What is {a}+{b}?"}
    if mode == "script":
        if k >= turns:
            return {"done": True, "reward": float(k)}
        return {"content": f"env {k} of {ep}" + "!" * ((ep + k) % 4)}
    if mode == "digits":  # a learnable game: reward = the share of digits over both turns
        st = state.setdefault(ep, [])
        st.append(req["content"])
        if k < 2:
            return {"content": "and again"}
        text = "".join(st)
        return {"done": True, "reward": sum(c.isdigit() for c in text) / max(len(text), 1)}
    if mode == "never":
        return {"content": f"go on {k}", "reward": 0.5} if k == 1 else {"content": f"more {k}"}
    if k == 1:
        return {"content": "first"}
    if mode == "badjson":
        return "{not json"
    if mode == "nan":
        return '{"done": true, "reward": 1e999}'  # parses as infinity
    if mode == "nodone":
        return {"done": True}
    if mode == "hang":
        time.sleep(60)
    if mode == "exit":
        sys.exit(3)
    return {"done": True, "reward": 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="arith")
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("--log")
    a = ap.parse_args()
    log = open(a.log, "a") if a.log else None
    state = {}
    for line in sys.stdin:
        req = json.loads(line)
        ans = answer(a.mode, req, a.turns, state)
        text = ans if isinstance(ans, str) else json.dumps(ans)
        if log:
            log.write(json.dumps({"req": req, "ans": text}) + "\n")
            log.flush()
        print(text, flush=True)


if __name__ == "__main__":
    main()
