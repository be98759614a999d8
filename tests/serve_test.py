"""rlhf serve end to end, from an independent client (Python's standard library
only: http.client, threading, json); prints PASS/FAIL lines, exit 1 on failure.

One server (--port 0, loopback) serves a tiny SFT model with the chatml
template and a tiny 2-member reward model together:
  * /v1/models, /v1/completions and /v1/chat/completions, plain and streamed,
    checked field by field against OpenAI's documented response shapes
    (docs/serve.md names the pages); streamed text equals the plain answer;
  * greedy completions equal `rlhf generate --temperature 0 --batch_size 1` for
    50 different prompts sent at once: all answered, batched (the X-Batch-Size
    headers and GET /v1/stats show batches of more than one sequence), and the
    batching changes no token;
  * sampling with a seed is reproducible; n, stop, logprobs;
  * bad requests (bad JSON, wrong types, out-of-range values, a prompt too long
    for the context, an unknown model, path, method, a body over the limit, a
    client that hangs up mid-stream) get 4xx JSON errors and the server keeps
    answering;
  * POST /get_reward (OpenRLHF's protocol) gives `rlhf score`'s rewards to 1e-5;
  * a --reward_model-only server answers generation with 404 JSON and stops on
    SIGINT with exit status 0; the main one stops on SIGTERM with status 0.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, RLHF, ROOT, exit_code, report, run  # noqa: E402

SANITIZE = os.environ.get("RLHF_SANITIZE") == "1"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


class Server:
    """rlhf serve ARGS on a free port; stop() ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, *args):
        self.p = subprocess.Popen([RLHF, "serve", "--port", "0", *args], cwd=ROOT, env=ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = []
        t = threading.Thread(target=lambda: line.append(self.p.stdout.readline()), daemon=True)
        t.start()
        t.join(60)
        first = line[0] if line else ""
        if not first.startswith("listening on http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"no 'listening on' line: {first!r} {self.p.stderr.read()[-1500:]}")
        self.port = int(first.strip().rsplit(":", 1)[1])

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def request(port, method, path, body=None, raw=None, timeout=60):
    """(status, headers, parsed JSON or text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return r.status, dict(r.getheaders()), parsed


def stream(port, path, body, timeout=60):
    """The JSON events of a streamed answer, and whether it ended with [DONE]."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", path, body=json.dumps({**body, "stream": True}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    ctype = r.getheader("Content-Type")
    text = r.read().decode()
    c.close()
    events, done = [], False
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: "):]
        if payload == "[DONE]":
            done = True
        else:
            events.append(json.loads(payload))
    return r.status, ctype, events, done


# ------------------------------------------------------------------ shapes --

def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def check_usage(u, why):
    assert set(u) >= {"prompt_tokens", "completion_tokens", "total_tokens"}, why
    assert all(is_int(u[k]) and u[k] >= 0 for k in u), why
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], why


def check_head(o, obj, prefix):
    assert o["object"] == obj, o
    assert isinstance(o["id"], str) and o["id"].startswith(prefix), o
    assert is_int(o["created"]) and o["created"] > 1.6e9, o
    assert isinstance(o["model"], str), o
    assert isinstance(o["choices"], list), o


def check_completion(o, n_choices):
    """OpenAI's completion object (API reference, 'The completion object')."""
    check_head(o, "text_completion", "cmpl-")
    assert len(o["choices"]) == n_choices, o
    for i, c in enumerate(o["choices"]):
        assert set(c) == {"index", "text", "logprobs", "finish_reason"}, c
        assert c["index"] == i and isinstance(c["text"], str), c
        assert c["finish_reason"] in ("stop", "length"), c
    check_usage(o["usage"], o)


def check_chat(o, n_choices):
    """OpenAI's chat completion object."""
    check_head(o, "chat.completion", "chatcmpl-")
    assert len(o["choices"]) == n_choices, o
    for i, c in enumerate(o["choices"]):
        assert set(c) == {"index", "message", "logprobs", "finish_reason"}, c
        assert c["index"] == i and c["message"]["role"] == "assistant", c
        assert isinstance(c["message"]["content"], str), c
        assert c["finish_reason"] in ("stop", "length"), c
    check_usage(o["usage"], o)


def check_chunks(events, chat, n_choices):
    """Stream chunks: every event a chunk object; per choice the text pieces and
    exactly one finish_reason, on its last chunk. Returns the texts."""
    obj, prefix = ("chat.completion.chunk", "chatcmpl-") if chat else ("text_completion", "cmpl-")
    texts, finished = [""] * n_choices, [None] * n_choices
    ids = {e["id"] for e in events}
    assert len(ids) == 1, ids
    for e in events:
        check_head(e, obj, prefix)
        if not e["choices"]:  # the usage chunk (stream_options.include_usage)
            check_usage(e["usage"], e)
            continue
        for c in e["choices"]:
            k = c["index"]
            assert finished[k] is None, f"chunk after the finish of choice {k}"
            assert set(c) == ({"index", "delta", "logprobs", "finish_reason"} if chat
                              else {"index", "text", "logprobs", "finish_reason"}), c
            if chat:
                assert set(c["delta"]) <= {"role", "content"}, c
                texts[k] += c["delta"].get("content", "")
            else:
                texts[k] += c["text"]
            assert c["finish_reason"] in (None, "stop", "length"), c
            finished[k] = c["finish_reason"]
    assert all(f in ("stop", "length") for f in finished), finished
    return texts, finished


def check_error(status, body, want_status, param=None):
    assert status == want_status, (status, body)
    e = body["error"]
    assert set(e) == {"message", "type", "param", "code"}, e
    assert isinstance(e["message"], str) and e["message"] and isinstance(e["type"], str), e
    if param:
        assert e["param"] == param, e


def test(name, fn, *args):
    try:
        fn(*args)
        report(True, name)
    except Exception as e:  # noqa: BLE001 -- a failed check is a FAIL line, not a crash
        report(False, name, f"{type(e).__name__}: {str(e)[:600]}")


# ------------------------------------------------------------------- tests --

def models(port, name):
    st, _, o = request(port, "GET", "/v1/models")
    assert st == 200 and o["object"] == "list" and len(o["data"]) == 1, o
    m = o["data"][0]
    assert m["id"] == name and m["object"] == "model" and is_int(m["created"]), m
    assert abs(m["created"] - time.time()) < 3600, m
    assert isinstance(m["owned_by"], str), m


def completions_shapes(port, name):
    body = {"model": name, "prompt": ["3+4=", "1+1="], "max_tokens": 6, "temperature": 0.8,
            "seed": 7, "n": 2}
    st, h, o = request(port, "POST", "/v1/completions", body)
    assert st == 200 and int(h["X-Batch-Size"]) >= 4, (st, h, o)
    check_completion(o, 4)
    st, h2, o2 = request(port, "POST", "/v1/completions", body)
    assert [c["text"] for c in o2["choices"]] == [c["text"] for c in o["choices"]], "seed"
    st, ctype, ev, done = stream(port, "/v1/completions",
                                 {**body, "stream_options": {"include_usage": True}})
    assert st == 200 and ctype.startswith("text/event-stream") and done, (st, ctype, done)
    texts, fin = check_chunks(ev, False, 4)
    assert texts == [c["text"] for c in o["choices"]], (texts, o)
    assert fin == [c["finish_reason"] for c in o["choices"]], fin
    assert ev[-1]["usage"] == o["usage"], (ev[-1], o["usage"])


def chat_shapes(port, name):
    body = {"model": name, "messages": [{"role": "system", "content": "Add."},
                                        {"role": "user", "content": "2+2="}],
            "max_tokens": 8, "temperature": 0}
    st, h, o = request(port, "POST", "/v1/chat/completions", body)
    assert st == 200, (st, o)
    check_chat(o, 1)
    st, ctype, ev, done = stream(port, "/v1/chat/completions", body)
    assert st == 200 and done and ctype.startswith("text/event-stream"), (st, ctype)
    texts, fin = check_chunks(ev, True, 1)
    assert ev[0]["choices"][0]["delta"].get("role") == "assistant", ev[0]
    assert texts[0] == o["choices"][0]["message"]["content"], (texts, o)
    assert fin[0] == o["choices"][0]["finish_reason"], fin
    # content as a list of text parts is the same message
    parts = {**body, "messages": [body["messages"][0], {"role": "user", "content": [
        {"type": "text", "text": "2+"}, {"type": "text", "text": "2="}]}]}
    st, _, o2 = request(port, "POST", "/v1/chat/completions", parts)
    assert st == 200 and o2["choices"][0]["message"] == o["choices"][0]["message"], o2


def stop_and_logprobs(port):
    body = {"prompt": "5+5=", "max_tokens": 8, "temperature": 0, "logprobs": 2}
    st, _, o = request(port, "POST", "/v1/completions", body)
    assert st == 200, o
    c = o["choices"][0]
    lp = c["logprobs"]
    assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}, lp
    n = o["usage"]["completion_tokens"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == n, lp
    for tok, x, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert x <= 0 and 1 <= len(top) <= 2 and max(top.values()) >= x - 1e-6, (tok, x, top)
        assert abs(top.get(tok, x) - x) < 1e-6, "greedy picks the top token"
    text = c["text"]
    cuts = [k for k in range(1, len(text)) if text.find(text[k:]) == k]
    if cuts:  # a stop string cuts the text where it first begins
        k = cuts[0]
        st, _, o2 = request(port, "POST", "/v1/completions", {**body, "stop": ["zz", text[k:]]})
        c2 = o2["choices"][0]
        assert c2["text"] == text[:k] and c2["finish_reason"] == "stop", (text, c2)
    st, _, o3 = request(port, "POST", "/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "1+2="}], "max_tokens": 4,
                         "temperature": 0, "logprobs": True, "top_logprobs": 1})
    items = o3["choices"][0]["logprobs"]["content"]
    assert items and all(set(i) == {"token", "logprob", "bytes", "top_logprobs"} for i in items), o3
    assert all(len(i["top_logprobs"]) == 1 for i in items), items


def greedy_batched_equals_generate(port, prompts, gen_rows):
    """50 requests at once: all answered, batched, each equal to rlhf generate."""
    results = [None] * len(prompts)

    def one(i):
        try:
            results[i] = request(port, "POST", "/v1/completions",
                                 {"prompt": prompts[i], "max_tokens": 8, "temperature": 0},
                                 timeout=120)
        except Exception as e:  # noqa: BLE001
            results[i] = (0, {}, str(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    bad = [r for r in results if not r or r[0] != 200]
    assert not bad, f"{len(bad)} of {len(prompts)} not answered: {bad[:2]}"
    sizes = [int(r[1]["X-Batch-Size"]) for r in results]
    differ = [(p, r[2]["choices"][0]["text"], g["completion"])
              for p, r, g in zip(prompts, results, gen_rows)
              if r[2]["choices"][0]["text"] != g["completion"]]
    print(f"  50 concurrent requests: batch sizes seen {sorted(set(sizes))}")
    assert max(sizes) > 1, f"never batched: {sizes}"
    assert not differ, f"{len(differ)} differ from rlhf generate, e.g. {differ[:3]}"
    st, _, s = request(port, "GET", "/v1/stats")
    h = s["batch_size_histogram"]
    assert st == 200 and s["max_batch_size_seen"] > 1 and any(int(k.rstrip("+")) > 1 for k in h), s
    assert sum(int(k.rstrip("+")) * v for k, v in h.items()) == s["sequences"], s


def bad_requests(port, name):
    P = "/v1/completions"
    cases = [
        ("bad_json", P, b'{"prompt": ', 400, None),
        ("not_an_object", P, b'[1, 2]', 400, None),
        ("not_utf8", P, b'{"prompt": "\xff\xfe"}', 400, None),
        ("prompt_type", P, {"prompt": 5}, 400, "prompt"),
        ("prompt_list_type", P, {"prompt": ["a", 3]}, 400, "prompt"),
        ("prompt_missing", P, {"max_tokens": 3}, 400, "prompt"),
        ("max_tokens_type", P, {"prompt": "1", "max_tokens": "8"}, 400, "max_tokens"),
        ("max_tokens_zero", P, {"prompt": "1", "max_tokens": 0}, 400, "max_tokens"),
        ("max_tokens_huge", P, {"prompt": "1", "max_tokens": 10 ** 9}, 400, "max_tokens"),
        ("max_tokens_fraction", P, {"prompt": "1", "max_tokens": 2.5}, 400, "max_tokens"),
        ("temperature_range", P, {"prompt": "1", "temperature": -1}, 400, "temperature"),
        ("top_p_zero", P, {"prompt": "1", "top_p": 0}, 400, "top_p"),
        ("n_zero", P, {"prompt": "1", "n": 0}, 400, "n"),
        ("n_over_batch", P, {"prompt": "1", "n": 100000}, 400, "n"),
        ("stream_type", P, {"prompt": "1", "stream": "yes"}, 400, "stream"),
        ("stop_too_many", P, {"prompt": "1", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ("stop_type", P, {"prompt": "1", "stop": 3}, 400, "stop"),
        ("logprobs_range", P, {"prompt": "1", "logprobs": 99}, 400, "logprobs"),
        ("model_type", P, {"prompt": "1", "model": 3}, 400, "model"),
        ("nul_escape", P, b'{"prompt": "a\\u0000b"}', 400, None),
        ("too_long_for_context", P, {"prompt": "9" * 300, "max_tokens": 4}, 400, None),
        ("unknown_model", P, {"prompt": "1", "model": "gpt-4o"}, 404, "model"),
        ("chat_role", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]},
         400, "messages"),
        ("chat_messages_type", "/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
        ("reward_query_type", "/get_reward", {"query": "not a list"}, 400, "query"),
        ("reward_prompts_mismatch", "/get_reward", {"query": ["1+1=2"], "prompts": ["2+2="]},
         400, "prompts"),
        ("reward_prompts_length", "/get_reward", {"query": ["a", "b"], "prompts": ["a"]}, 400,
         "prompts"),
    ]
    failed = []
    for case, path, body, want, param in cases:
        raw = body if isinstance(body, bytes) else None
        st, _, o = request(port, "POST", path, None if raw else body, raw=raw)
        try:
            check_error(st, o, want, param)
        except Exception as e:  # noqa: BLE001
            failed.append(f"{case}: {e}")
    st, _, o = request(port, "GET", "/v1/nothing")
    check_error(st, o, 404)
    st, _, o = request(port, "GET", "/v1/completions")
    check_error(st, o, 405)
    st, _, o = request(port, "DELETE", "/v1/models")
    check_error(st, o, 405)
    try:  # a body over --max_body_bytes
        st, _, o = request(port, "POST", P, raw=b'{"prompt": "' + b"1" * 9000 + b'"}')
        check_error(st, o, 413)
    except (ConnectionError, http.client.HTTPException) as e:
        failed.append(f"too_large: the connection broke instead of a 413: {e}")
    assert not failed, "; ".join(failed)
    hang_up_mid_stream(port)
    models(port, name)  # still answering


def hang_up_mid_stream(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = json.dumps({"prompt": "1+", "max_tokens": 200, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = s.recv(100)
    s.close()
    assert got.startswith(b"HTTP/1.1 200"), got


def rewards_equal_score(port, rm, tmp):
    pairs = [("1+2=", "3"), ("7-4=", "3"), ("9+9=", "18"), ("5+0=", "50"), ("", "2+2=4"),
             ("3*3=", "9")]
    path = os.path.join(tmp, "pc.jsonl")
    with open(path, "w") as f:
        for p, c in pairs:
            f.write(json.dumps({"prompt": p, "completion": c}) + "\n")
    want = [json.loads(x)["score"] for x in run("score", "--reward_model", rm, "--data",
                                                 path).stdout.splitlines() if x.strip()]
    body = {"query": [p + c for p, c in pairs], "prompts": [p for p, _ in pairs],
            "labels": ["" for _ in pairs]}
    st, _, o = request(port, "POST", "/get_reward", body)
    assert st == 200 and set(o) == {"rewards", "scores", "extra_logs"}, (st, o)
    assert len(o["rewards"]) == len(pairs) and o["scores"] == o["rewards"], o
    worst = max(abs(a - b) for a, b in zip(o["rewards"], want))
    assert worst < 1e-5, f"largest difference {worst}: {o['rewards']} vs {want}"
    # without "prompts" a query is scored whole, as a completion of an empty prompt
    st, _, o = request(port, "POST", "/get_reward", {"query": ["2+2=4"]})
    assert st == 200 and abs(o["rewards"][0] - want[4]) < 1e-5, (o, want[4])


def reward_only(rm):
    """--reward_model alone: no generation endpoints (404 JSON), no models;
    SIGINT stops it with exit status 0. No flags at all: usage, exit 2."""
    p = run("serve", check=False)
    assert p.returncode == 2 and "--model" in p.stderr, (p.returncode, p.stderr)
    srv = Server("--reward_model", rm, "--threads", "1")
    try:
        st, _, o = request(srv.port, "POST", "/v1/completions", {"prompt": "1"})
        check_error(st, o, 404)
        st, _, o = request(srv.port, "POST", "/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "1"}]})
        check_error(st, o, 404)
        st, _, o = request(srv.port, "GET", "/v1/models")
        assert st == 200 and o == {"object": "list", "data": []}, o
        st, _, o = request(srv.port, "POST", "/get_reward", {"query": ["1+1=2"]})
        assert st == 200 and len(o["rewards"]) == 1, o
    finally:
        rc = srv.stop(signal.SIGINT)
    assert rc == 0, f"exit status {rc} after SIGINT"


def main():
    if not os.path.exists(RLHF):
        report(False, "serve_binary", f"{RLHF} missing")
        return
    if run("serve", "--help", check=False).returncode != 0:
        report(False, "serve_help", "rlhf serve --help failed")
        return
    tmp = tempfile.mkdtemp(prefix="serve_test.", dir=os.path.join(ROOT, BUILD))
    server = None
    try:
        data, sft, rm = (os.path.join(tmp, x) for x in ("data", "sft", "rm"))
        run("data", "--task", "arith", "--out", data, "--digits", "1", "--n_pref", "64",
            "--n_train", "64", "--n_eval", "10", "--n_prompts", "50")
        run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir",
            sft, "--max_steps", "10" if SANITIZE else "30", "--batch_size", "32",
            "--learning_rate", "3e-3", "--quiet")
        run("rm", "--model", "tiny", "--data", os.path.join(data, "prefs.jsonl"), "--output_dir",
            rm, "--max_steps", "3", "--batch_size", "8", "--ensemble_size", "2", "--quiet")
        prompts_file = os.path.join(data, "prompts.jsonl")
        prompts = [json.loads(x)["prompt"] for x in open(prompts_file)][:50]
        gen = run("generate", "--model", sft, "--prompts", prompts_file, "--temperature", "0",
                  "--max_new_tokens", "8", "--batch_size", "1", "--format", "jsonl").stdout
        gen_rows = [json.loads(x) for x in gen.splitlines() if x.strip()][:50]
        name = "arith-sft"
        server = Server("--model", sft, "--served_model_name", name, "--chat_template", "chatml",
                        "--reward_model", rm, "--max_body_bytes", "4096", "--threads", "1")
        port = server.port
        test("serve_models", models, port, name)
        test("serve_completions_shapes_and_stream", completions_shapes, port, name)
        test("serve_chat_shapes_and_stream", chat_shapes, port, name)
        test("serve_stop_and_logprobs", stop_and_logprobs, port)
        test("serve_50_concurrent_batched_equal_generate", greedy_batched_equals_generate, port,
             prompts, gen_rows)
        test("serve_bad_requests_4xx_json", bad_requests, port, name)
        test("serve_get_reward_equals_score", rewards_equal_score, port, rm, tmp)
        test("serve_reward_only_and_sigint", reward_only, rm)
        t0 = time.time()
        rc = server.stop(signal.SIGTERM)
        report(rc == 0 and time.time() - t0 < 20, "serve_sigterm_clean_exit",
               f"exit status {rc} after {time.time() - t0:.1f} s: {server.p.stderr.read()[-800:]}")
    finally:
        if server:
            server.stop(signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    sys.exit(exit_code())
