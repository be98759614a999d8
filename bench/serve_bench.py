"""rlhf serve throughput: completion tokens/s at 1, 8 and 32 concurrent clients
on the GPT-2 124M config, and llama.cpp's server on the same weights (a GGUF
written by `rlhf export`) when LLAMA_SERVER=/path/to/llama-server is given.

Each client sends its requests one after another (POST /v1/completions,
max_tokens tokens, temperature 1, its own seed); tokens/s is the sum of the
answers' usage.completion_tokens over the wall time of the round. The model is
the randomly initialised `--model gpt2` (seed 1): the cost of a token does not
depend on the weights, only how many tokens a reply has does, and a random
model practically never samples EOS, so every reply is max_tokens long on both
servers. Standard library only.

  BUILD=build python3 bench/serve_bench.py
  env: LLAMA_SERVER, SERVE_BENCH_THREADS (default 1), SERVE_BENCH_MAX_TOKENS (32),
       SERVE_BENCH_ROUNDS (requests per client, 2), SERVE_BENCH_TOKENIZER
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
THREADS = int(os.environ.get("SERVE_BENCH_THREADS", "1"))
MAX_TOKENS = int(os.environ.get("SERVE_BENCH_MAX_TOKENS", "32"))
ROUNDS = int(os.environ.get("SERVE_BENCH_ROUNDS", "2"))
TOKENIZER = os.environ.get("SERVE_BENCH_TOKENIZER",
                           os.path.join(os.path.dirname(ROOT), "shared", "data", "gpt2"))
CLIENTS = (1, 8, 32)
PROMPTS = ["The quick brown fox", "Once upon a time, in a land far away,",
           "def fibonacci(n):", "The capital of France is", "In 1969, the first"]


def post(port, path, body, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status} {data}")
    return data


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def round_of(port, clients, model):
    """(completion tokens/s, mean latency s) of `clients` clients x ROUNDS requests."""
    tokens, lat, errors = [0] * clients, [], []

    def client(k):
        for r in range(ROUNDS):
            body = {"model": model, "prompt": PROMPTS[(k + r) % len(PROMPTS)],
                    "max_tokens": MAX_TOKENS, "temperature": 1.0, "seed": 1000 * k + r}
            t0 = time.time()
            try:
                tokens[k] += post(port, "/v1/completions", body)["usage"]["completion_tokens"]
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(str(e))
            lat.append(time.time() - t0)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[0]}")
    return sum(tokens) / wall, sum(lat) / len(lat)


def start(cmd, ready):
    """Starts a server; ready(proc) returns its port once it answers."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
    try:
        return p, ready(p)
    except Exception:
        p.kill()
        raise


def rlhf_ready(p):
    line = p.stdout.readline()
    if not line.startswith("listening on"):
        raise RuntimeError(f"rlhf serve did not start: {line!r} {p.stderr.read()[-1000:]}")
    return int(line.strip().rsplit(":", 1)[1])


def stats(port):
    return json.loads(get(port, "/v1/stats")[1])


def bench_rlhf(tok):
    p, port = start([RLHF, "serve", "--model", "gpt2", "--tokenizer", tok, "--port", "0",
                     "--threads", str(THREADS), "--max_batch_size", "32"], rlhf_ready)
    out = {}
    try:
        post(port, "/v1/completions", {"prompt": "warm up", "max_tokens": 2})
        for c in CLIENTS:
            s0 = stats(port)
            tps, lat = round_of(port, c, "gpt2")
            s1 = stats(port)
            mean_b = (s1["sequences"] - s0["sequences"]) / max(1, s1["batches"] - s0["batches"])
            out[c] = (tps, lat, mean_b)
            print(f"  rlhf serve, {c:2d} clients: {tps:8.1f} tokens/s, mean latency {lat:.2f} s, "
                  f"mean batch {mean_b:.1f}", flush=True)
    finally:
        p.terminate()
        p.wait(60)
    return out


def bench_llama(server, tok, tmp):
    gguf = os.path.join(tmp, "gpt2.gguf")
    subprocess.run([RLHF, "export", "--model", "gpt2", "--format", "gguf", "--out", gguf,
                    "--tokenizer", tok], cwd=ROOT, check=True, capture_output=True)
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    def ready(p):
        for _ in range(600):
            if p.poll() is not None:
                raise RuntimeError(f"llama-server exited: {p.stderr.read()[-1000:]}")
            try:
                if get(port, "/health")[0] == 200:
                    return port
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("llama-server did not answer /health")

    ctx = 32 * 256
    p, _ = start([server, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-np", "32",
                  "-c", str(ctx), "-t", str(THREADS), "-cb"], ready)
    out = {}
    try:
        post(port, "/v1/completions", {"prompt": "warm up", "max_tokens": 2})
        for c in CLIENTS:
            tps, lat = round_of(port, c, "gpt2")
            out[c] = (tps, lat)
            print(f"  llama.cpp,  {c:2d} clients: {tps:8.1f} tokens/s, mean latency {lat:.2f} s",
                  flush=True)
    finally:
        p.terminate()
        p.wait(60)
    return out


def cpu_model():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    if not os.path.exists(RLHF):
        sys.exit(f"{RLHF} missing: make first")
    tok = TOKENIZER if os.path.isdir(TOKENIZER) else "byte"
    print(f"rlhf serve throughput: GPT-2 124M config (random init), {MAX_TOKENS} tokens per "
          f"reply, {ROUNDS} requests per client, {THREADS} thread(s), tokenizer {tok}")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores visible); OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(not set)')}", flush=True)
    ours = bench_rlhf(tok)
    theirs = {}
    server = os.environ.get("LLAMA_SERVER")
    if server and tok == "byte":
        print("llama.cpp: skipped (the GGUF export needs the GPT-2 tokenizer files)")
    elif server:
        with tempfile.TemporaryDirectory() as tmp:
            theirs = bench_llama(server, tok, tmp)
    else:
        print("llama.cpp: skipped (set LLAMA_SERVER=/path/to/llama-server to compare)")
    print("\n| clients | rlhf serve tokens/s | mean batch | mean latency s | llama.cpp tokens/s |")
    print("|---:|---:|---:|---:|---:|")
    for c in CLIENTS:
        tps, lat, b = ours[c]
        other = f"{theirs[c][0]:.1f}" if c in theirs else "skipped"
        print(f"| {c} | {tps:.1f} | {b:.1f} | {lat:.2f} | {other} |")


if __name__ == "__main__":
    main()
