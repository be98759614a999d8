#!/usr/bin/env python3
"""bf16 vs fp32 weights: the Linear alone, decoding at 1/4/16 rows and a prefill
forward on the GPT-2 124M config (random weights), from `rlhf bench` rows.

Usage: BUILD=build OMP_NUM_THREADS=2 python3 bench/bf16_bench.py [--quick]
Prints every JSON row, then a table of the ratios (bf16 / fp32) and the share of
the measured memory read bandwidth that decoding reaches (weight bytes per step /
step time / memcpy-like read bandwidth). The CPU model and the 1-minute load
average are in each row: on a shared machine the absolute numbers move a lot, so
compare rows from the same run.
"""
import json
import os
import subprocess
import sys

BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(BUILD, "rlhf")
QUICK = "--quick" in sys.argv


def bench(*args):
    out = subprocess.run([RLHF, "bench", *args], check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in rows:
        print(json.dumps(r))
    return rows


def main():
    kern = {d: bench("--work", "kernel", "--dtype", d) for d in ("float32", "bfloat16")}
    gen = {}
    pl, nt = ("16", "16") if QUICK else ("32", "32")
    for b in (1, 4, 16):
        for d in ("float32", "bfloat16"):
            gen[b, d] = bench("--model", "gpt2", "--work", "gen", "--batch", str(b),
                              "--prompt_len", pl, "--new_tokens", nt, "--steps", "1",
                              "--dtype", d)[0]
    fwd = {d: bench("--model", "gpt2", "--work", "fwd", "--batch", "4", "--seq",
                    "64" if QUICK else "128", "--steps", "2", "--dtype", d)[0]
           for d in ("float32", "bfloat16")}
    r0 = kern["float32"][0]
    print(f"\nCPU {r0['cpu']}, threads {r0['threads']}, load {r0['load1']}, "
          f"bf16 path {kern['bfloat16'][0].get('bf16_path')}")
    print("Linear 768->3072   rows  fp32 GFLOP/s  bf16 GFLOP/s  ratio")
    for a, b in zip(kern["float32"], kern["bfloat16"]):
        print(f"{'':18} {a['rows']:5d} {a['gflops']:13.1f} {b['gflops']:13.1f} "
              f"{b['gflops'] / a['gflops']:6.2f}")
    print("decode (gpt2)     batch  fp32 tok/s  bf16 tok/s  ratio  bw share fp32/bf16")
    for b in (1, 4, 16):
        f, h = gen[b, "float32"], gen[b, "bfloat16"]
        print(f"{'':18} {b:5d} {f['decode_tokens_per_s']:11.1f} {h['decode_tokens_per_s']:11.1f} "
              f"{h['decode_tokens_per_s'] / f['decode_tokens_per_s']:6.2f}  "
              f"{f['bandwidth_share']:.2f}/{h['bandwidth_share']:.2f}")
    f, h = fwd["float32"], fwd["bfloat16"]
    print(f"prefill fwd (gpt2, 4x{f['seq']})  fp32 {f['tokens_per_s']:.0f} tok/s  "
          f"bf16 {h['tokens_per_s']:.0f} tok/s  ratio {h['tokens_per_s'] / f['tokens_per_s']:.2f}")


if __name__ == "__main__":
    main()
