#!/usr/bin/env python3
"""Reward judge for rlhf's --reward_command: reads one JSON object per line
({"prompt": ..., "completion": ...}) on stdin and answers 1 if the completion
mentions the word (default "dog", or the first argument), else 0."""
import json
import re
import sys

word = sys.argv[1] if len(sys.argv) > 1 else "dog"
pattern = re.compile(r"\b" + re.escape(word) + r"s?\b", re.IGNORECASE)
for line in sys.stdin:
    obj = json.loads(line)
    print(1.0 if pattern.search(obj["completion"]) else 0.0, flush=True)
