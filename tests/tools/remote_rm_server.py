#!/usr/bin/env python3
"""A minimal remote reward model in OpenRLHF's protocol (docs/remote_rewards.md),
Python's standard library only, for tests/remote_rm_test.py. Independent of
rlhf.c: it reads {"query", "prompts", "labels"} and answers {"rewards",
"scores", "extra_logs"} the way OpenRLHF's serve_rm does.

The reward is a rule on the completion (the query after its prompt), rule()
below. With --stdin the same rule answers the external-command protocol
instead (one JSON line in, one number out), so a trainer can be run with the
rule in-process-equivalent (command:) and over HTTP (url:) and compared.

Misbehaving on purpose (after --fail_after good answers, --fail_times times;
-1: for ever):
  --mode good       always answer
  --mode status     answer HTTP --status with a short JSON error
  --mode malformed  answer a body that is not JSON
  --mode short      answer one reward too few
  --mode nan        answer NaN for the first reward (Python's json writes NaN)
  --mode norewards  answer {"scores": [...]} without "rewards"
  --mode slow       sleep --delay seconds before answering
  --mode close      close the connection without an answer

The first stdout line is the port (bound on 127.0.0.1; --port 0 picks one).
--log FILE appends one JSON line per request: its batch size, the fields it
had, its labels, and what was answered.
"""
import argparse
import http.server
import json
import sys
import threading
import time


def rule(completion):
    """A reward that depends on every character of the completion."""
    if not completion:
        return -0.5
    first = 1.0 if completion[0].islower() else 0.0
    return first + (sum(ord(c) for c in completion) % 13) / 13.0 - 0.125 * len(completion)


def stdin_judge():
    for line in sys.stdin:
        x = json.loads(line)
        print(repr(rule(x["completion"])), flush=True)
    return 0


class State:
    def __init__(self, a):
        self.a = a
        self.requests = 0
        self.bad = 0
        self.lock = threading.Lock()


def make_handler(st):
    a = st.a

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, code, body, ctype="application/json"):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            req = json.loads(self.rfile.read(n))
            queries, prompts, labels = req["query"], req.get("prompts"), req.get("labels")
            rewards = []
            for q, p in zip(queries, prompts):
                if not q.startswith(p):
                    self.answer(400, json.dumps({"error": "query does not start with its prompt"}))
                    return
                rewards.append(rule(q[len(p):]))
            with st.lock:
                st.requests += 1
                misbehave = st.requests > a.fail_after and a.mode != "good" and (
                    a.fail_times < 0 or st.bad < a.fail_times)
                st.bad += misbehave
            what = a.mode if misbehave else "good"
            if a.log:
                with st.lock, open(a.log, "a") as f:
                    f.write(json.dumps({"n": len(queries), "fields": sorted(req), "labels": labels,
                                        "prompts": len(prompts or []), "answer": what}) + "\n")
            if not misbehave:
                self.answer(200, json.dumps({"rewards": rewards, "scores": rewards,
                                             "extra_logs": {"dummy_scores": rewards}}))
            elif a.mode == "status":
                self.answer(a.status, json.dumps({"error": f"status {a.status} on purpose"}))
            elif a.mode == "malformed":
                self.answer(200, "<html>this is not json</html>", "text/html")
            elif a.mode == "short":
                self.answer(200, json.dumps({"rewards": rewards[:-1]}))
            elif a.mode == "nan":
                self.answer(200, json.dumps({"rewards": [float("nan")] + rewards[1:]}))
            elif a.mode == "norewards":
                self.answer(200, json.dumps({"scores": rewards}))
            elif a.mode == "slow":
                time.sleep(a.delay)
                try:
                    self.answer(200, json.dumps({"rewards": rewards}))
                except OSError:  # the client gave up first
                    pass
            elif a.mode == "close":
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stdin", action="store_true", help="the rule as an external command instead")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", default="good", choices=["good", "status", "malformed", "short", "nan",
                                                       "norewards", "slow", "close"])
    ap.add_argument("--status", type=int, default=503)
    ap.add_argument("--fail_after", type=int, default=0)
    ap.add_argument("--fail_times", type=int, default=-1)
    ap.add_argument("--delay", type=float, default=5.0)
    ap.add_argument("--log")
    a = ap.parse_args()
    if a.stdin:
        return stdin_judge()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(State(a)))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
