"""The LLM judge over an OpenAI-compatible API (src/reward/judge.c) end to end:
`rlhf pairs --judge_url` and `rlhf online-dpo --judge api` against a stub
server (tests/tools/judge_stub.py) and against `rlhf serve`. Standard library
only; prints PASS/FAIL/SKIP lines, exit 1 on failure.

  * good answers: pairs are the judge's (chosen's mean win probability above
    the rejected's); the requests have OpenAI's shapes (chat: model, system +
    user messages, temperature 0, max_tokens; completions: prompt); the API
    key arrives as "Authorization: Bearer KEY" and is in no output, log or
    cache file;
  * the cache: a second run makes zero requests and writes the same file;
  * both orders: a judge that always answers "A" gives every pair p = 0.5,
    hence no pair; asked in one order only, the first sample always wins;
  * failures, each with the outcome docs/judges.md states: malformed answers
    (retried, then a stop naming the URL and the answer; or, with
    --judge_malformed_neutral, ties that are counted), a null content, HTTP
    500 (twice then OK: retried and fine; always: a stop), answers slower
    than --judge_timeout, disconnects mid-answer (once: retried; always: a
    stop). A stop leaves the previous pairs file as it was and no temp file;
  * --judge_concurrency N: N requests in flight at once, never more (the stub
    counts); pointwise, as grpo's `--reward judge:` source: each sample's
    reward is the stub's score of the text it was shown;
  * online-dpo --judge api: a judge that starts failing in iteration 3 stops
    the run after the step-2 checkpoint; resumed with a working judge, the run
    ends bit-for-bit where an uninterrupted one ends;
  * `rlhf serve --model M` as the judge: the client gets answers and treats a
    tiny model's text by the rule (a pair or a counted malformed answer).
"""
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
STUB = os.path.join(ROOT, "tests", "tools", "judge_stub.py")
COMMAND_JUDGE = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')} --ascii"
KEY = "sk-judge-test-" + uuid.uuid4().hex
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "JUDGE_TEST_KEY": KEY}
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def run(*args, timeout=120):
    return subprocess.run([RLHF, *args], cwd=ROOT, capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def read_port(proc, word, timeout=30):
    """The port from the first stdout line of proc holding `word`."""
    end = time.time() + timeout
    buf = b""
    while time.time() < end:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if word in line:
                    return int(line.rstrip("/").rsplit(":", 1)[-1].split()[-1].split("/")[0])
        elif proc.poll() is not None:
            break
    raise RuntimeError(f"no port from {proc.args}: {buf[-500:]!r}")


class Stub:
    """judge_stub.py in a subprocess, killed on exit."""

    def __init__(self, *args):
        self.p = subprocess.Popen([sys.executable, STUB, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        try:
            self.port = read_port(self.p, "PORT")
        except Exception:
            self.close()
            raise
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return json.loads(r.read())

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def pairs_args(prompts, out, url, extra=()):
    return ["pairs", "--model", "tiny", "--prompts", prompts, "--out", out, "--num_samples", "4",
            "--max_new_tokens", "6", "--seed", "3", "--judge_url", url,
            "--judge_api_key_env", "JUDGE_TEST_KEY", *extra]


def rows_of(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [json.loads(x) for x in f if x.strip()]


def key_nowhere(paths, texts):
    """The API key in none of the files under paths and none of the texts."""
    hits = [t[:40] for t in texts if KEY in t]
    for top in paths:
        walk = [(top, [], [os.path.basename(top)])] if os.path.isfile(top) else os.walk(top)
        for d, _, files in walk:
            for f in files:
                p = os.path.join(d if os.path.isdir(d) else os.path.dirname(d), f)
                if os.path.isfile(p) and KEY.encode() in open(p, "rb").read():
                    hits.append(p)
    return hits


def good_and_cache(tmp, prompts):
    out, cache = os.path.join(tmp, "good.jsonl"), os.path.join(tmp, "cache.jsonl")
    with Stub("--mode", "good") as s:
        p = run(*pairs_args(prompts, out, s.url, ["--judge_cache", cache]))
        st = s.stats()
        ok = p.returncode == 0
        rows = rows_of(out) if ok else []
        right = all(r["chosen_score"] > r["rejected_score"] and 0 <= r["judge_p"] <= 1
                    and r["chosen"] != r["rejected"] for r in rows)
        report(ok and len(rows) > 0 and right, "pairs_good_answers",
               f"exit {p.returncode}, {len(rows)} rows: {p.stderr[-600:]}")
        print(f"  {len(rows)} pairs from 6 prompts x 4 samples, {st['requests']} requests")
        body = json.loads(st["bodies"][-1])
        shape = (set(body) == {"model", "messages", "temperature", "max_tokens"}
                 and [m["role"] for m in body["messages"]] == ["system", "user"]
                 and body["temperature"] == 0 and body["max_tokens"] == 16
                 and body["model"] == "default" and "[Response A]" in body["messages"][1]["content"]
                 and list(st["paths"]) == ["/v1/chat/completions"])
        report(shape, "request_shape_chat", f"{body} {st['paths']}")
        report(st["auth"] == [f"Bearer {KEY}"], "api_key_sent_as_bearer", f"{st['auth']}")
        n1 = st["requests"]
        before = open(out, "rb").read()
        p2 = run(*pairs_args(prompts, out, s.url, ["--judge_cache", cache]))
        n2 = s.stats()["requests"]
        report(p2.returncode == 0 and n2 == n1 and open(out, "rb").read() == before,
               "cache_second_run_zero_requests",
               f"requests {n1} then {n2}, same file {open(out, 'rb').read() == before}")
        # a crash mid-append leaves a torn last line: skipped at load, the file goes on
        with open(cache, "a") as f:
            f.write('{"key": "00ff", "answ')
        p3 = run(*pairs_args(prompts, out, s.url, ["--judge_cache", cache]))
        n3 = s.stats()["requests"]
        lines = open(cache).read().split("\n")
        report(p3.returncode == 0 and n3 == n1 and open(out, "rb").read() == before
               and lines[-1] == "" and lines[-2].startswith('{"key": "00ff"'),
               "cache_torn_line_skipped", f"exit {p3.returncode}, requests {n1} then {n3}: "
               f"{p3.stderr[-300:]}")
        hits = key_nowhere([out, cache], [p.stdout, p.stderr, p2.stdout, p2.stderr])
        report(not hits, "api_key_in_no_file_or_log", f"found in {hits}")
    # the completions API: same questions in one prompt, same answers, same pairs
    out_c = os.path.join(tmp, "good_c.jsonl")
    with Stub("--mode", "good") as s:
        p = run(*pairs_args(prompts, out_c, s.url, ["--judge_api", "completions"]))
        st = s.stats()
        body = json.loads(st["bodies"][-1])
        ok = (p.returncode == 0 and list(st["paths"]) == ["/v1/completions"]
              and set(body) == {"model", "prompt", "temperature", "max_tokens"}
              and body["prompt"].startswith("You are a strict") and open(out_c, "rb").read() == before)
        report(ok, "completions_api_same_pairs", f"exit {p.returncode} {st['paths']} {p.stderr[-400:]}")


def both_orders(tmp, prompts):
    out = os.path.join(tmp, "always_a.jsonl")
    with Stub("--mode", "always_a") as s:
        p = run(*pairs_args(prompts, out, s.url))
        rows = rows_of(out) if p.returncode == 0 else None
        report(rows == [] and s.stats()["requests"] > 0, "both_orders_cancel_position_bias",
               f"exit {p.returncode}, rows {rows and rows[:1]}: {p.stderr[-300:]}")
        p = run(*pairs_args(prompts, out, s.url, ["--judge_both_orders", "false"]))
        rows = rows_of(out) if p.returncode == 0 else []
        report(len(rows) > 0 and all(r["judge_p"] == 1 and r["chosen_score"] == 1 for r in rows),
               "one_order_position_bias_shows", f"exit {p.returncode}, {rows[:1]}")


def failures(tmp, prompts):
    out = os.path.join(tmp, "fail.jsonl")
    old = b'{"prompt": "old", "chosen": "a", "rejected": "b"}\n'
    # (name, stub args, extra flags, want exit 0?, words in the last stderr line)
    cases = [
        ("malformed_stops", ["--mode", "malformed"], ["--judge_retries", "2"], False,
         ["chat/completions", "\"I cannot decide.\"", "after 3 tries"]),
        ("malformed_then_good", ["--mode", "malformed", "--bad", "2"],
         ["--judge_retries", "2", "--judge_concurrency", "1"], True, ["2 malformed"]),
        ("malformed_neutral_counted", ["--mode", "malformed"],
         ["--judge_retries", "0", "--judge_malformed_neutral", "true"], True, ["neutral"]),
        ("null_content_stops", ["--mode", "nocontent"], ["--judge_retries", "1"], False,
         ["chat/completions", "no choices[0].message.content string", "after 2 tries"]),
        ("http500_then_ok", ["--mode", "error500", "--bad", "2"],
         ["--judge_retries", "3", "--judge_concurrency", "1"], True, ["judged pairs"]),
        ("http500_always_stops", ["--mode", "error500"], ["--judge_retries", "1"], False,
         ["HTTP 500", "2 tries", "/v1/chat/completions"]),
        ("slow_times_out", ["--mode", "slow", "--delay", "5"],
         ["--judge_retries", "1", "--judge_timeout", "0.5"], False,
         ["/v1/chat/completions", "2 tries"]),
        ("disconnect_once_retried", ["--mode", "disconnect", "--bad", "1"],
         ["--judge_retries", "2", "--judge_concurrency", "1"], True, ["judged pairs"]),
        ("disconnect_always_stops", ["--mode", "disconnect"], ["--judge_retries", "1"], False,
         ["/v1/chat/completions", "2 tries"]),
    ]
    for name, stub_args, extra, want_ok, words in cases:
        with open(out, "wb") as f:
            f.write(old)
        with Stub(*stub_args) as s:
            t0 = time.time()
            p = run(*pairs_args(prompts, out, s.url, extra), timeout=60)
            secs = time.time() - t0
            n = s.stats()["requests"]
        err = p.stderr.strip()
        last = "\n".join(err.splitlines()[-2:])
        left = [f for f in os.listdir(tmp) if ".tmp." in f]
        if want_ok:
            rows = rows_of(out) if p.returncode == 0 else None
            ok = p.returncode == 0 and rows is not None and all(w in err for w in words)
        else:
            ok = (p.returncode == 1 and all(w in last for w in words)
                  and open(out, "rb").read() == old and "Traceback" not in err)
        report(ok and not left and KEY not in err, f"judge_{name}",
               f"exit {p.returncode}, {n} requests, temp files {left}: {last[-600:]}")
        print(f"  {name}: exit {p.returncode} after {secs:.1f} s, {n} requests: {last[-160:]}")


def concurrency_and_pointwise(tmp, prompts):
    # --judge_concurrency 3 against answers that take 0.2 s: 3 requests in flight, never more
    out = os.path.join(tmp, "conc.jsonl")
    with Stub("--mode", "slow", "--delay", "0.2") as s:
        t0 = time.time()
        p = run(*pairs_args(prompts, out, s.url, ["--judge_concurrency", "3", "--limit", "2"]))
        secs = time.time() - t0
        st = s.stats()
    report(p.returncode == 0 and st["max_in_flight"] == 3, "concurrency_requests_in_flight",
           f"exit {p.returncode}, at most {st['max_in_flight']} in flight: {p.stderr[-300:]}")
    print(f"  {st['requests']} requests of 0.2 s, 3 in flight: {secs:.1f} s")
    # pointwise, as a reward source of grpo (reward/sources' judge:): every sample's reward is
    # the stub's score, the length of the completion it was shown (capped at 10)
    run_dir = os.path.join(tmp, "grpo_judge")
    with Stub("--mode", "good") as s:
        p = run("grpo", "--model", "tiny", "--data", prompts, "--output_dir", run_dir,
                "--max_steps", "2", "--batch_size", "3", "--num_generations", "2",
                "--max_new_tokens", "5", "--quiet", "--reward", "judge:", "--judge_url", s.url,
                "--judge_api_key_env", "JUDGE_TEST_KEY", "--log_samples", "100")
        st = s.stats()
    if p.returncode != 0:
        report(False, "pointwise_judge_rewards", p.stderr[-800:])
        return
    smp = rows_of(os.path.join(run_dir, "samples.jsonl"))
    want = [min(10, len(x["completion"])) for x in smp]
    got = [x["reward"] for x in smp]
    report(len(smp) == 12 and got == want and st["requests"] > 0, "pointwise_judge_rewards",
           f"{len(smp)} samples, rewards {got[:6]} want {want[:6]}")
    report(st["auth"] == [f"Bearer {KEY}"] and not key_nowhere([run_dir], [p.stderr]),
           "pointwise_judge_key", f"{st['auth']}")


def online_dpo(tmp, prompts):
    common = ["online-dpo", "--model", "tiny", "--data", prompts, "--max_steps", "4",
              "--batch_size", "2", "--num_generations", "3", "--max_new_tokens", "4",
              "--learning_rate", "3e-3", "--save_steps", "2", "--quiet", "--seed", "5",
              "--reward_command", COMMAND_JUDGE, "--judge", "api", "--judge_api_key_env",
              "JUDGE_TEST_KEY", "--reward_retries", "1", "--reward_timeout", "5"]
    a, b = os.path.join(tmp, "dpo_a"), os.path.join(tmp, "dpo_b")
    with Stub("--mode", "good") as s:
        p = run(*common, "--output_dir", a, "--judge_url", s.url)
    if p.returncode != 0:
        report(False, "online_dpo_judge_api", p.stderr[-1000:])
        return
    m = rows_of(os.path.join(a, "metrics.jsonl"))
    at2 = m[1]["judge/requests"]
    used = sum(x["pairs"] for x in m)
    strength = [x["judge/strength"] for x in m if x["pairs"] > 0]
    report(len(m) == 4 and used > 0 and all(0.5 < v <= 1 for v in strength),
           "online_dpo_judge_api", f"{len(m)} steps, {used} pairs, strengths {strength}")
    with Stub("--mode", "error500", "--after", str(at2)) as s:
        p = run(*common, "--output_dir", b, "--judge_url", s.url)
    ck = sorted(os.listdir(os.path.join(b, "checkpoints")))
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    stop_ok = p.returncode == 1 and ck == ["step-00000002"] and "HTTP 500" in last
    report(stop_ok, "online_dpo_judge_failure_keeps_checkpoint",
           f"exit {p.returncode}, checkpoints {ck}: {last[-400:]}")
    with Stub("--mode", "good") as s:
        p = run(*common, "--output_dir", b, "--judge_url", s.url, "--resume")
    fa = open(os.path.join(a, "checkpoints", "final", "model.safetensors"), "rb").read()
    fb = open(os.path.join(b, "checkpoints", "final", "model.safetensors"), "rb").read() \
        if p.returncode == 0 else b""
    report(p.returncode == 0 and fa == fb, "online_dpo_judge_resume_bit_exact",
           f"exit {p.returncode}, same final weights {fa == fb}: {p.stderr[-400:]}")
    hits = key_nowhere([a, b], [p.stderr])
    report(not hits, "online_dpo_api_key_in_no_file", f"found in {hits}")
    # --judge_template reaches the API judge: the stub knows only the default template
    with Stub("--mode", "good") as s:
        p = run(*common, "--output_dir", os.path.join(tmp, "dpo_t"), "--judge_url", s.url,
                "--judge_template", "Q: {prompt} 1: {a} 2: {b} A or B?")
        body = json.loads(s.stats()["bodies"][-1])
    report(p.returncode == 1 and "I do not know this template." in p.stderr
           and body["messages"][1]["content"].startswith("Q: "), "online_dpo_judge_template_used",
           f"exit {p.returncode}: {p.stderr[-300:]}")


def against_serve(tmp, prompts):
    """rlhf serve --model M as the judge. A tiny model's answer follows no
    format; the rule decides: a standalone A or B makes a choice, anything
    else is malformed (here counted as a tie)."""
    help_ = subprocess.run([RLHF, "serve", "--help"], capture_output=True, text=True)
    if help_.returncode != 0 or "--model" not in help_.stdout + help_.stderr:
        report(False, "judge_against_rlhf_serve",
               "`rlhf serve --model` is not available in this build")
        return
    proc = subprocess.Popen([RLHF, "serve", "--model", "tiny", "--port", "0", "--chat_template",
                             "chatml"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        try:
            port = read_port(proc, "http://127.0.0.1:")
        except RuntimeError:
            proc.kill()
            why = proc.communicate()[1].decode(errors="replace")
            if "built without libmicrohttpd" in why:
                print(f"SKIP judge_against_rlhf_serve: {why.strip()[-200:]}")
                return
            raise RuntimeError(f"rlhf serve did not start: {why[-800:]}")
        url = f"http://127.0.0.1:{port}/v1"
        with urllib.request.urlopen(f"{url}/models", timeout=30) as r:
            model = json.loads(r.read())["data"][0]["id"]
        for api in ("completions", "chat"):
            out = os.path.join(tmp, f"serve_{api}.jsonl")
            cache = os.path.join(tmp, f"serve_cache_{api}.jsonl")
            p = run(*pairs_args(prompts, out, url, [
                "--judge_api", api, "--judge_retries", "1", "--judge_malformed_neutral", "true",
                "--judge_cache", cache, "--judge_max_tokens", "4", "--judge_model", model,
                # short: the tiny model reads 256 tokens
                "--judge_system", "Judge.", "--judge_template", "{prompt}|A:{a}|B:{b}|Better:"]))
            st = [x for x in p.stderr.splitlines() if "requests," in x]
            cached = rows_of(cache) if os.path.exists(cache) else []
            # every cached answer holds a standalone A or B (the rule); the others were malformed
            rule = re.compile(r"(?<![A-Za-z0-9_])[AB](?![A-Za-z0-9_])")
            nums = [int(w) for w in re.findall(r"(\d+) (?:requests|malformed)", st[-1])] if st else []
            # each request's answer either parsed (and was cached) or was malformed
            ok = (p.returncode == 0 and len(nums) == 2 and nums[0] > 0
                  and nums[0] == nums[1] + len(cached)
                  and all(rule.search(c["answer"]) for c in cached))
            report(bool(ok), f"judge_against_rlhf_serve_{api}",
                   f"exit {p.returncode}: {p.stderr[-600:]}")
            print(f"  rlhf serve ({api}): {st[-1] if st else '?'}; {len(cached)} answers parsed "
                  "and cached")
    finally:
        proc.kill()
        proc.wait()


def main():
    if not os.path.exists(RLHF):
        print(f"SKIP judge_api_test: {RLHF} not built")
        return 0
    # built without libcurl (the Makefile links it when found), every request fails
    ldd = subprocess.run(["ldd", RLHF], capture_output=True, text=True)
    if ldd.returncode == 0 and "libcurl" not in ldd.stdout:
        print("SKIP judge_api_test: rlhf was built without libcurl (install "
              "libcurl4-openssl-dev and rebuild)")
        return 0
    tmp = tempfile.mkdtemp(prefix="judge_api_test.", dir=os.path.join(ROOT, BUILD))
    try:
        prompts = os.path.join(tmp, "prompts.jsonl")
        with open(prompts, "w") as f:
            for q in ("Q1:", "Q2:", "Say:", "X=", "Name:", "Go:"):
                f.write(json.dumps({"prompt": q}) + "\n")
        for part in (good_and_cache, both_orders, failures, concurrency_and_pointwise, online_dpo,
                     against_serve):
            try:
                t0 = time.time()
                part(tmp, prompts)
                print(f"  ({part.__name__}: {time.time() - t0:.1f} s)")
            except Exception as e:  # noqa: BLE001 - a broken part is a failure, not a crash
                report(False, part.__name__, repr(e)[-1500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
