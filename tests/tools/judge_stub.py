#!/usr/bin/env python3
"""A stand-in OpenAI-compatible judge server for tests/judge_api_test.py,
standard library only. It answers POST .../chat/completions and
.../completions in OpenAI's shapes (choices[0].message.content, or
choices[0].text) and counts what it gets (requests, Authorization headers,
paths, the last bodies, the most requests in flight at once); GET /stats
returns the counts.

It reads the judge's default templates (src/reward/judge.h):
  pointwise "[Prompt]\\n...\\n\\n[Response]\\n<completion>\\n\\n..." -> "Score: N/10",
            N = min(10, characters of the completion)
  pairwise  "...[Response A]\\n<a>\\n\\n[Response B]\\n<b>\\n\\nWhich..." -> "A" when a
            is at least as long as b, else "B" (the longer response wins,
            whatever the order it is shown in)

Modes (--mode), applied to --bad requests (-1: all of them) after the first
--after ones, the others answered as in "good":
  good        as above
  always_a    "A" to everything (position bias at its worst)
  malformed   "I cannot decide." (no number, no letter)
  nocontent   a chat answer whose content is null
  error500    HTTP 500 with a JSON error
  slow        waits --delay seconds, then a good answer
  disconnect  sends the status line, headers and half the body, then closes

Prints "PORT <n>" on stdout once it listens on 127.0.0.1:<n> (an OS-chosen
port unless --port).
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"requests": 0, "auth": [], "paths": {}, "bodies": [], "in_flight": 0,
         "max_in_flight": 0, "lock": threading.Lock()}
ARGS = None


def good_answer(user):
    m = re.search(r"\[Response A\]\n(.*)\n\n\[Response B\]\n(.*)\n\nWhich", user, re.S)
    if m:
        return "A" if len(m.group(1)) >= len(m.group(2)) else "B"
    m = re.search(r"\[Response\]\n(.*)\n\nRate", user, re.S)
    if m:
        return f"Score: {min(10, len(m.group(1)))}/10"
    return "I do not know this template."


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    def leave(self):
        # a request stops counting as in flight before its answer is written: the
        # client may send its next request the moment it reads this one's answer
        if getattr(self, "counted", False):
            self.counted = False
            with STATE["lock"]:
                STATE["in_flight"] -= 1

    def send_json(self, code, obj):
        self.leave()
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/stats":
            return self.send_json(404, {"error": {"message": "no such path"}})
        with STATE["lock"]:
            s = {k: v for k, v in STATE.items() if k != "lock"}
            return self.send_json(200, s)

    def do_POST(self):
        with STATE["lock"]:
            STATE["in_flight"] += 1
            STATE["max_in_flight"] = max(STATE["max_in_flight"], STATE["in_flight"])
        self.counted = True
        try:
            self.answer()
        finally:
            self.leave()

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        with STATE["lock"]:
            STATE["requests"] += 1
            k = STATE["requests"]
            auth = self.headers.get("Authorization")
            if auth not in STATE["auth"]:
                STATE["auth"].append(auth)
            STATE["paths"][self.path] = STATE["paths"].get(self.path, 0) + 1
            STATE["bodies"] = (STATE["bodies"] + [body.decode("utf-8", "replace")])[-8:]
        try:
            req = json.loads(body)
        except ValueError:
            return self.send_json(400, {"error": {"message": "body is not JSON"}})
        chat = self.path.endswith("/chat/completions")
        if chat:
            user = next((m.get("content", "") for m in req.get("messages", [])
                         if m.get("role") == "user"), "")
        elif self.path.endswith("/completions"):
            user = req.get("prompt", "")
        else:
            return self.send_json(404, {"error": {"message": "no such path"}})
        bad = k > ARGS.after and (ARGS.bad < 0 or k <= ARGS.after + ARGS.bad)
        mode = ARGS.mode if bad else "good"
        answer = good_answer(user)
        if mode == "always_a":
            answer = "A"
        elif mode in ("malformed", "nocontent"):
            answer = "I cannot decide." if mode == "malformed" else None
        elif mode == "error500":
            return self.send_json(500, {"error": {"message": "the stub fails on purpose"}})
        elif mode == "slow":
            time.sleep(ARGS.delay)
        if chat:
            out = {"id": f"chatcmpl-{k}", "object": "chat.completion", "created": int(time.time()),
                   "model": req.get("model", ""),
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": answer}}]}
        else:
            out = {"id": f"cmpl-{k}", "object": "text_completion", "created": int(time.time()),
                   "model": req.get("model", ""),
                   "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                "text": answer}]}
        if mode == "disconnect":
            data = json.dumps(out).encode()
            self.leave()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_json(200, out)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="good",
                    choices=["good", "always_a", "malformed", "nocontent", "error500", "slow",
                             "disconnect"])
    ap.add_argument("--bad", type=int, default=-1, help="requests that misbehave (-1: all)")
    ap.add_argument("--after", type=int, default=0, help="good requests before the bad ones")
    ap.add_argument("--delay", type=float, default=5.0)
    ap.add_argument("--port", type=int, default=0)
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
