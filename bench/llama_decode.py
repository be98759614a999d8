#!/usr/bin/env python3
"""bench/llama_decode.py (make bench-llama): decoding speed of rlhf.c against
llama.cpp on the same model, in one run (issue 16).

  LLAMA_BENCH=/path/to/llama-bench BUILD=build /usr/bin/python3 bench/llama_decode.py
  env: MODEL (gpt2: the GPT-2 124M config, random weights: speed does not depend
  on their values), NEW (128 new tokens), THREADS (2), REPS (3),
  LLAMA_BATCHED (llama-batched-bench, optional: batched decoding too),
  BATCHES ("4 8": sequences decoded together)

llama.cpp is not a dependency: without LLAMA_BENCH the script prints rlhf.c's
figures and the share of the memory bandwidth they reach, and says so.

What is compared:
1. Single-sequence decode, tokens/s. llama.cpp: `llama-bench -p 0 -n NEW`
   (text generation from an empty context, the mean of REPS runs) on our GGUF
   export of MODEL in f16 and in f32. rlhf.c: `rlhf bench --work gen --batch 1
   --prompt_len 8 --new_tokens NEW` with fp32 weights and with bf16 copies
   (`--dtype bfloat16`; the decode rate, prefill excluded). Ratio = rlhf.c
   bf16 / llama.cpp f16 (the issue's goal: >= 1.0) and fp32 / f32.
2. Batched decode (when LLAMA_BATCHED is given): `llama-batched-bench -npp 8
   -ntg NEW -npl B` (B sequences, the S_TG rate) against `rlhf bench --work gen
   --batch B` (all B rows' tokens per second).
3. The weight stream: bytes of weights read per decode step x steps/s against
   a plain read of a buffer of the same size in the same run (rlhf bench's
   bandwidth_share).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
MODEL = os.environ.get("MODEL", "gpt2")
NEW = int(os.environ.get("NEW", "128"))
THREADS = os.environ.get("THREADS", "2")
REPS = os.environ.get("REPS", "3")
LLAMA = os.environ.get("LLAMA_BENCH", "")
BATCHED = os.environ.get("LLAMA_BATCHED", "")
BATCHES = [int(b) for b in os.environ.get("BATCHES", "4 8").split()]
TOK = os.path.join(ROOT, "..", "shared", "data", "gpt2", "encoder.json")


def run(cmd, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": THREADS}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, **kw)
    if p.returncode != 0:
        sys.exit(f"llama_decode: {' '.join(cmd)} exited {p.returncode}: {p.stderr[-1500:]}")
    return p.stdout


def ours(batch, dtype):
    out = run([RLHF, "bench", "--work", "gen", "--model", MODEL, "--batch", str(batch),
               "--prompt_len", "8", "--new_tokens", str(NEW), "--steps", REPS, "--dtype", dtype])
    j = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    return j


def llama_single(gguf):
    out = run([LLAMA, "-m", gguf, "-p", "0", "-n", str(NEW), "-t", THREADS, "-r", REPS, "-o", "json"])
    rows = json.loads(out[out.index("["):])
    return rows[-1]["avg_ts"]


def llama_batched(gguf, b):
    out = run([BATCHED, "-m", gguf, "-c", str(b * (8 + NEW) + 64), "-npp", "8", "-ntg", str(NEW),
               "-npl", str(b), "-t", THREADS, "-tb", THREADS])
    # the table row: | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0] == "8" and cells[2] == str(b):
            return float(cells[7])
    sys.exit(f"llama_decode: no result row in llama-batched-bench's output:\n{out[-1500:]}")


def main():
    if not os.path.exists(RLHF):
        sys.exit(f"llama_decode: {RLHF} missing (make)")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = open("/proc/cpuinfo").read()
    print(f"# {cpu}, {os.cpu_count()} cores, avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, threads {THREADS}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"# model {MODEL}, {NEW} new tokens, best/mean of {REPS}")
    res = {"fp32": ours(1, "float32"), "bf16": ours(1, "bfloat16")}
    llama = {}
    if LLAMA:
        with tempfile.TemporaryDirectory() as tmp:
            for dt in ("f16", "f32"):
                g = os.path.join(tmp, f"m-{dt}.gguf")
                cmd = [RLHF, "export", "--model", MODEL, "--format", "gguf", "--dtype", dt, "--out", g]
                if os.path.exists(TOK) and not os.path.isdir(MODEL):
                    cmd += ["--tokenizer", TOK]
                run(cmd)
                llama[dt] = llama_single(g)
                if BATCHED and dt == "f16":
                    for b in BATCHES:
                        llama[f"f16_b{b}"] = llama_batched(g, b)
    print("\n## Single-sequence decode, tokens/s")
    print("| weights | rlhf.c | llama.cpp | ratio | weight stream GB/s | share of read bandwidth |")
    print("|---|---|---|---|---|---|")
    for ours_dt, ll_dt in (("bf16", "f16"), ("fp32", "f32")):
        j = res[ours_dt]
        ll = llama.get(ll_dt)
        ratio = f"**{j['decode_tokens_per_s'] / ll:.2f}x**" if ll else "(no LLAMA_BENCH)"
        print(f"| {ours_dt} (llama.cpp {ll_dt}) | {j['decode_tokens_per_s']:.1f} | "
              f"{f'{ll:.1f}' if ll else '-'} | {ratio} | {j['weight_stream_gb_s']:.1f} | "
              f"{100 * j['bandwidth_share']:.0f}% |")
    batched = {}
    for b in BATCHES:
        batched[b] = ours(b, "bfloat16")
    print("\n## Batched decode (bf16 / llama.cpp f16), tokens/s of all sequences")
    print("| sequences | rlhf.c | llama.cpp | ratio |")
    print("|---|---|---|---|")
    for b in BATCHES:
        mine = batched[b]["decode_tokens_per_s"]
        ll = llama.get(f"f16_b{b}")
        print(f"| {b} | {mine:.1f} | {f'{ll:.1f}' if ll else '-'} | "
              f"{f'**{mine / ll:.2f}x**' if ll else '(no LLAMA_BATCHED)'} |")
    print(json.dumps({"ours": res, "ours_batched": batched, "llama": llama}))


if __name__ == "__main__":
    main()
