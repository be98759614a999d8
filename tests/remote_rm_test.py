"""Remote reward models over HTTP (reward source url:URL, --reward_url; OpenRLHF's
protocol, docs/remote_rewards.md), end to end with Python's standard library.

  * against an independent server (tests/tools/remote_rm_server.py: a rule on
    the completion): grpo and bon with --reward_url give exactly the rewards
    of the same rule run as an external command (command:), sample for
    sample and metric for metric, and those equal the rule computed here;
    requests carry "query" (prompt + completion), "prompts" and "labels" ("")
    and hold at most 64 queries (bon's 80 per batch are split 64 + 16);
  * transient failures (503 twice) are retried and the run succeeds; a 400
    fails at once (one try); malformed JSON, a wrong number of rewards, NaN, no
    "rewards" field, a slow server (past --reward_timeout), a server that
    closes the connection, and a refused connection each stop the trainer with
    exit status 1 and a message naming the URL and the reason, no crash, and
    the checkpoints written before are intact (the refused case: a resumed run
    whose server is gone leaves the earlier run's checkpoints byte for byte);
  * a judge: source (an OpenAI-compatible judge, tests/tools/judge_stub.py)
    beside a url: source: each sample's reward is 0.5 * the judge's score +
    the rule; --judge_url alone adds no source; a judge answering 500 stops
    the run cleanly;
  * against `rlhf serve --reward_model RM` (its POST /get_reward): rewards
    equal the in-process rm:RM rewards to 1e-5 (bon samples, grpo iterations).
"""
import atexit
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from harness import BUILD, RLHF, ROOT, exit_code, report, rows, run

sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
from remote_rm_server import rule  # noqa: E402  the server's rule, to check its answers

SERVER = os.path.join(ROOT, "tests", "tools", "remote_rm_server.py")
JUDGE_STUB = os.path.join(ROOT, "tests", "tools", "judge_stub.py")
RULE_CMD = f"{sys.executable} {SERVER} --stdin"
SANITIZE = os.environ.get("RLHF_SANITIZE") == "1"
live = []  # server processes, killed at exit whatever happens


@atexit.register
def kill_all():
    for p in live:
        if p.poll() is None:
            p.kill()
            p.wait()


def start(cmd, pattern, wait=30):
    """Starts cmd; returns (process, port) once its stdout names the port."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    live.append(p)
    deadline = time.time() + wait
    while time.time() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            line = p.stdout.readline()
            m = re.search(pattern, line)
            if m:
                return p, int(m.group(1))
            if not line:
                break
        if p.poll() is not None:
            break
    stop(p)
    raise RuntimeError(f"{' '.join(cmd)} did not start: {p.stderr.read()[-1500:]}")


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def rule_server(*args):
    return start([sys.executable, SERVER, *args], r"^(\d+)$")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    return port


def rlhf(*args, timeout=120):
    return run(*args, check=False, threads=1, timeout=timeout)


def grpo_args(prompts, out, steps, extra=()):
    return ["grpo", "--model", "tiny", "--data", prompts, "--output_dir", out, "--max_steps",
            str(steps), "--batch_size", "2", "--num_generations", "4", "--max_new_tokens", "3",
            "--learning_rate", "3e-3", "--log_samples", "8", "--seed", "7", "--quiet", *extra]


def same_rewards_as_command(tmp, prompts):
    log = os.path.join(tmp, "good.log")
    srv, port = rule_server("--log", log)
    url = f"http://127.0.0.1:{port}/get_reward"
    a, b = os.path.join(tmp, "grpo_url"), os.path.join(tmp, "grpo_cmd")
    pa = rlhf(*grpo_args(prompts, a, 4, ["--reward_url", url]))
    pb = rlhf(*grpo_args(prompts, b, 4, ["--reward_command", RULE_CMD]))
    stop(srv)
    if pa.returncode or pb.returncode:
        report(False, "grpo_reward_url_equals_command", (pa.stderr + pb.stderr)[-1500:])
        return
    sa, sb = rows(os.path.join(a, "samples.jsonl")), rows(os.path.join(b, "samples.jsonl"))
    same = [(x["prompt"], x["completion"], x["reward"]) for x in sa] == \
           [(x["prompt"], x["completion"], x["reward"]) for x in sb]
    worst = max(abs(x["reward"] - rule(x["completion"])) for x in sa)
    ma, mb = rows(os.path.join(a, "metrics.jsonl")), rows(os.path.join(b, "metrics.jsonl"))
    keys = ("reward", "reward_std", "kl", "grad_norm")
    same_m = [[x[k] for k in keys] for x in ma] == [[x[k] for k in keys] for x in mb]
    report(len(sa) == 32 and same and same_m and worst < 1e-6, "grpo_reward_url_equals_command",
           f"{len(sa)} samples, same samples {same}, same metrics {same_m}, rule mismatch {worst}")
    print(f"  grpo 4 iterations: {len(sa)} rewards over HTTP equal the command's and the rule "
          f"(largest |diff| {worst:.2g})")
    req = rows(log)
    ok = (len(req) == 4 and all(r["fields"] == ["labels", "prompts", "query"] and r["n"] == 8
                                and r["prompts"] == 8 and r["labels"] == [""] * 8 for r in req))
    report(ok, "remote_request_fields", str(req[:2]))


def bon_batches(tmp, prompts):
    log = os.path.join(tmp, "bon.log")
    srv, port = rule_server("--log", log)
    url = f"http://127.0.0.1:{port}/get_reward"
    outs = {}
    for name, flag in (("url", ["--reward_url", url]), ("cmd", ["--reward_command", RULE_CMD])):
        o = os.path.join(tmp, f"bon_{name}.jsonl")
        p = rlhf("bon", "--model", "tiny", "--data", prompts, "--num_samples", "20",
                 "--batch_size", "4", "--max_new_tokens", "3", "--seed", "3", "--out",
                 os.path.join(tmp, f"best_{name}.jsonl"), "--all_out", o, "--quiet", *flag)
        outs[name] = rows(o) if p.returncode == 0 else p.stderr[-1500:]
    stop(srv)
    if not all(isinstance(v, list) for v in outs.values()):
        report(False, "bon_reward_url_equals_command", str(outs)[-1500:])
        return
    u, c = outs["url"], outs["cmd"]
    worst = max(abs(x["reward"] - rule(x["completion"])) for x in u)
    same = [(x["completion"], x["reward"], x["best"]) for x in u] == \
           [(x["completion"], x["reward"], x["best"]) for x in c]
    report(len(u) == 80 and same and worst < 1e-6, "bon_reward_url_equals_command",
           f"{len(u)} samples, same {same}, rule mismatch {worst}")
    sizes = [r["n"] for r in rows(log)]
    report(sizes == [64, 16], "remote_batches_at_most_64", f"request sizes {sizes}")


def checkpoints(out):
    ck = os.path.join(out, "checkpoints")
    return sorted(os.listdir(ck)) if os.path.isdir(ck) else []


def intact(out, want):
    have = checkpoints(out)
    return have == want and all(
        os.path.getsize(os.path.join(out, "checkpoints", d, "model.safetensors")) > 0 and
        os.path.isfile(os.path.join(out, "checkpoints", d, "config.json")) for d in have)


def transient_retried(tmp, prompts):
    log = os.path.join(tmp, "flaky.log")
    srv, port = rule_server("--mode", "status", "--status", "503", "--fail_times", "2", "--log", log)
    out = os.path.join(tmp, "flaky")
    t0 = time.time()
    p = rlhf(*grpo_args(prompts, out, 2, ["--reward_url", f"http://127.0.0.1:{port}/get_reward"]))
    secs = time.time() - t0
    stop(srv)
    answers = [r["answer"] for r in rows(log)] if os.path.exists(log) else []
    s = rows(os.path.join(out, "samples.jsonl")) if p.returncode == 0 else []
    worst = max((abs(x["reward"] - rule(x["completion"])) for x in s), default=1)
    ok = p.returncode == 0 and answers == ["status", "status", "good", "good"] and worst < 1e-6
    report(ok, "remote_503_retried", f"exit {p.returncode}, answers {answers}: {p.stderr[-800:]}")
    print(f"  two 503s then answers: retried, run finished in {secs:.1f} s")


FAILURES = {
    # name: (server args, trainer extra flags, reason in the message, tries expected)
    "status400": (["--mode", "status", "--status", "400"], [], "HTTP 400 (1 try, not retried)", 1),
    "malformed": (["--mode", "malformed"], [], "the answer is not JSON", 1),
    "short": (["--mode", "short"], [], "\"rewards\" has 7 entries for 8 queries", 1),
    "nan": (["--mode", "nan"], [], "the answer is not JSON", 1),
    "norewards": (["--mode", "norewards"], [], "has no \"rewards\" field", 1),
    "slow": (["--mode", "slow", "--delay", "6"], ["--reward_timeout", "1", "--reward_retries", "1"],
             "timed out", 2),
    "close": (["--mode", "close"], ["--reward_retries", "2"], "Empty reply from server", 3),
}


def failures_stop_cleanly(tmp, prompts):
    # one POST per iteration (2 prompts x 4 samples); the server misbehaves from the
    # third on, so iterations 1 and 2 leave checkpoints and iteration 3 stops the run
    two = ["step-00000001", "step-00000002"]
    for name, (sargs, extra, reason, tries) in FAILURES.items():
        log = os.path.join(tmp, f"{name}.log")
        srv, port = rule_server("--fail_after", "2", "--log", log, *sargs)
        url = f"http://127.0.0.1:{port}/get_reward"
        out = os.path.join(tmp, f"fail_{name}")
        t0 = time.time()
        p = rlhf(*grpo_args(prompts, out, 6, ["--save_steps", "1", "--reward_url", url, *extra]),
                 timeout=60)
        secs = time.time() - t0
        stop(srv)
        msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        made = len(rows(log)) if os.path.exists(log) else 0
        ok = (p.returncode == 1 and reason in msg and f"127.0.0.1:{port}/get_reward" in msg
              and "Sanitizer" not in p.stderr and made == 2 + tries)
        report(ok, f"remote_{name}_stops_cleanly",
               f"exit {p.returncode}, {made} requests (want {2 + tries}): {p.stderr[-800:]}")
        report(intact(out, two), f"remote_{name}_checkpoints_kept", f"checkpoints {checkpoints(out)}")
        print(f"  {name}: exit {p.returncode} after {secs:.1f} s: {msg[:160]}")


def refused_keeps_run(tmp, prompts):
    srv, port = rule_server()
    out = os.path.join(tmp, "refused")
    p = rlhf(*grpo_args(prompts, out, 2, ["--save_steps", "1", "--reward_url",
                                          f"http://127.0.0.1:{port}/get_reward"]))
    stop(srv)
    if p.returncode:
        report(False, "remote_refused_stops_cleanly", p.stderr[-800:])
        return
    before = {d: open(os.path.join(out, "checkpoints", d, "model.safetensors"), "rb").read()
              for d in checkpoints(out)}
    dead = free_port()
    url = f"http://127.0.0.1:{dead}/get_reward"
    p = rlhf(*grpo_args(prompts, out, 4, ["--save_steps", "1", "--resume", "--reward_url", url,
                                          "--reward_retries", "1"]))
    msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    ok = p.returncode == 1 and "onnect" in msg and f"127.0.0.1:{dead}" in msg and "2 tries" in msg
    report(ok, "remote_refused_stops_cleanly", f"exit {p.returncode}: {p.stderr[-800:]}")
    after = {d: open(os.path.join(out, "checkpoints", d, "model.safetensors"), "rb").read()
             for d in checkpoints(out)}
    report(set(before) == {"step-00000001", "final"} and after == before,
           "remote_refused_checkpoints_kept", f"before {sorted(before)}, after {sorted(after)}")
    print(f"  refused: {msg[:160]}")


def judge_source(tmp, prompts):
    srv, port = rule_server()
    judge, jport = start([sys.executable, JUDGE_STUB], r"^PORT (\d+)")
    url = f"http://127.0.0.1:{port}/get_reward"
    base = f"http://127.0.0.1:{jport}/v1"
    out = os.path.join(tmp, "judge_mix")
    jflags = ["--judge_url", base, "--judge_model", "stub"]
    p = rlhf(*grpo_args(prompts, out, 2, ["--reward", "judge:=0.5", "--reward_url", url, *jflags]))
    s = rows(os.path.join(out, "samples.jsonl")) if p.returncode == 0 else []
    # the stub's score: min(10, characters of the completion)
    worst = max((abs(x["reward"] - (0.5 * min(10, len(x["completion"])) + rule(x["completion"])))
                 for x in s), default=1)
    keys = {"rewards/judge:stub", f"rewards/url:127.0.0.1:{port}"}
    report(len(s) == 16 and worst < 1e-5 and all(keys <= set(x) for x in s),
           "judge_and_url_sources_weighted_sum",
           f"exit {p.returncode}, {len(s)} samples, largest mismatch {worst}: {p.stderr[-800:]}")
    # --judge_url configures judges; alone it adds no reward source
    out = os.path.join(tmp, "judge_url_only")
    p = rlhf(*grpo_args(prompts, out, 1, ["--reward_url", url, *jflags]))
    s = rows(os.path.join(out, "samples.jsonl")) if p.returncode == 0 else []
    report(s and not any(k.startswith("rewards/judge") for k in s[0]), "judge_url_adds_no_source",
           f"exit {p.returncode}: {p.stderr[-500:]} {s[:1]}")
    stop(judge)
    stop(srv)
    judge, jport = start([sys.executable, JUDGE_STUB, "--mode", "error500", "--after", "16"],
                         r"^PORT (\d+)")
    out = os.path.join(tmp, "judge_500")
    p = rlhf(*grpo_args(prompts, out, 4, ["--save_steps", "1", "--reward", "judge:",
                                          "--reward_retries", "1", "--judge_url",
                                          f"http://127.0.0.1:{jport}/v1"]), timeout=60)
    stop(judge)
    msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    ok = p.returncode == 1 and "HTTP 500" in msg and "judge:" in msg and "Sanitizer" not in p.stderr
    report(ok, "judge_500_stops_cleanly", f"exit {p.returncode}: {p.stderr[-800:]}")
    report(intact(out, ["step-00000001", "step-00000002"]), "judge_500_checkpoints_kept",
           f"checkpoints {checkpoints(out)}")
    print(f"  judge 500: {msg[:200]}")


def valid(text):
    """JSON carries text: a completion that is not UTF-8 reaches a server with U+FFFD
    for each bad byte, so a byte-level reward model scores other bytes there."""
    return "\ufffd" not in text


def against_serve(tmp):
    data = os.path.join(tmp, "arith")
    run("data", "--task", "arith", "--out", data, "--digits", "1", "--n_pref", "100",
        "--n_train", "10", "--n_eval", "10", "--n_prompts", "20", threads=1)
    rm, sft = os.path.join(tmp, "rm"), os.path.join(tmp, "sft")
    run("rm", "--model", "tiny", "--data", os.path.join(data, "prefs.jsonl"), "--output_dir", rm,
        "--max_steps", "3", "--batch_size", "8", "--quiet", threads=1)
    # a policy that writes (mostly) ASCII answers, so the texts are the same bytes on both sides
    run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir", sft,
        "--max_steps", "60", "--batch_size", "8", "--learning_rate", "3e-3", "--quiet", threads=1)
    prompts = os.path.join(data, "prompts.jsonl")
    try:
        srv, port = start([RLHF, "serve", "--reward_model", rm, "--port", "0", "--threads", "1"],
                          r"listening on http://[^:]+:(\d+)")
    except (RuntimeError, OSError) as e:
        report(False, "serve_reward_model_equals_rm", f"rlhf serve --reward_model: {e}")
        return
    url = f"http://127.0.0.1:{port}/get_reward"
    res = {}
    for name, flag in (("url", ["--reward_url", url]), ("rm", ["--reward_model", rm])):
        o = os.path.join(tmp, f"serve_bon_{name}.jsonl")
        p = rlhf("bon", "--model", sft, "--data", prompts, "--num_samples", "8", "--batch_size",
                 "8", "--limit", "8", "--max_new_tokens", "6", "--seed", "5", "--out",
                 os.path.join(tmp, f"serve_best_{name}.jsonl"), "--all_out", o, "--quiet", *flag)
        g = os.path.join(tmp, f"serve_grpo_{name}")
        q = rlhf(*grpo_args(prompts, g, 3, ["--model", sft, "--max_new_tokens", "6", *flag]))
        res[name] = (p, o, q, g)
    stop(srv)
    bad = [n for n, (p, o, q, g) in res.items() if p.returncode or q.returncode]
    if bad:
        report(False, "serve_reward_model_equals_rm",
               " | ".join(res[n][0].stderr[-600:] + res[n][2].stderr[-600:] for n in bad))
        return
    u, r = rows(res["url"][1]), rows(res["rm"][1])
    same_text = [x["completion"] for x in u] == [x["completion"] for x in r]
    both = [(a, b) for a, b in zip(u, r) if valid(a["completion"])]
    worst = max((abs(a["reward"] - b["reward"]) for a, b in both), default=1)
    report(len(u) == 64 and same_text and len(both) >= 48 and worst <= 1e-5,
           "serve_bon_reward_url_equals_rm",
           f"{len(u)} samples, same texts {same_text}, {len(both)} UTF-8, largest |diff| {worst:.3g}")
    su, sr = rows(os.path.join(res["url"][3], "samples.jsonl")), \
        rows(os.path.join(res["rm"][3], "samples.jsonl"))
    pairs = [(a, b) for a, b in zip(su, sr) if valid(a["completion"]) and
             (a["step"], a["prompt"], a["completion"]) == (b["step"], b["prompt"], b["completion"])]
    gworst = max((abs(a["reward"] - b["reward"]) for a, b in pairs), default=1)
    step1 = sum(a["step"] == 1 for a, _ in pairs)
    report(step1 >= 6 and gworst <= 1e-5, "serve_grpo_reward_url_equals_rm",
           f"{len(pairs)} matching UTF-8 samples ({step1} of iteration 1), largest |diff| {gworst:.3g}")
    print(f"  rlhf serve --reward_model: bon {len(both)} and grpo {len(pairs)} rewards over HTTP vs "
          f"in-process rm: largest |diff| {max(worst, gworst):.3g}")


def main():
    if not os.path.exists(RLHF):
        print(f"SKIP remote_rm_test: {RLHF} not built")
        return 0
    tmp = tempfile.mkdtemp(prefix="remote_rm_test.", dir=os.path.join(ROOT, BUILD))
    try:
        prompts = os.path.join(tmp, "prompts.jsonl")
        with open(prompts, "w") as f:
            for q in ("Q1:", "Q2:", "Say:", "X="):
                f.write(json.dumps({"prompt": q}) + "\n")
        for part in (same_rewards_as_command, bon_batches, transient_retried,
                     failures_stop_cleanly, refused_keeps_run, judge_source):
            t0 = time.time()
            try:
                part(tmp, prompts)
            except Exception as e:  # noqa: BLE001 - a broken part is a failure, not a crash
                report(False, part.__name__, repr(e))
            print(f"  ({part.__name__}: {time.time() - t0:.1f} s)")
        t0 = time.time()
        try:
            against_serve(tmp)
        except Exception as e:  # noqa: BLE001
            report(False, "against_serve", repr(e))
        print(f"  (against_serve: {time.time() - t0:.1f} s)")
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
