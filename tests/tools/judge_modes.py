#!/usr/bin/env python3
"""A judge for the external-command reward (protocol: src/reward/sources.h),
used by tests/online_test.py. Reads one JSON object per line
({"prompt": ..., "completion": ...}) and answers one number per line: 1 when
the completion starts with one of --chars (--ascii: any printable ASCII
character), else 0. To test failures it can
misbehave after --after answers:

  --mode good      always answer
  --mode crash     exit with status 3
  --mode hang      stop answering (sleep)
  --mode garbage   answer "banana"
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", default="abcdefghijklmnopqrstuvwxyz")
    ap.add_argument("--ascii", action="store_true", help="pay for any printable ASCII first byte")
    ap.add_argument("--mode", default="good", choices=["good", "crash", "hang", "garbage"])
    ap.add_argument("--after", type=int, default=0)
    a = ap.parse_args()
    answered = 0
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        if a.mode != "good" and answered >= a.after:
            if a.mode == "crash":
                print("judge: crashing on purpose", file=sys.stderr)
                sys.exit(3)
            if a.mode == "hang":
                time.sleep(3600)
            if a.mode == "garbage":
                print("banana", flush=True)
                continue
        if a.ascii:
            a.chars = "".join(chr(i) for i in range(32, 127))
        req = json.loads(line)
        c = req["completion"]
        print(1.0 if c[:1] and c[0] in a.chars else 0.0, flush=True)
        answered += 1


if __name__ == "__main__":
    sys.exit(main())
