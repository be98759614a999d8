#!/usr/bin/env python3
"""LoRA and bf16 SFT steps against a full fp32 SFT step, from `rlhf bench` rows.

Usage: BUILD=build OMP_NUM_THREADS=2 /usr/bin/python3 bench/lora_bench.py [--quick] [--torch]

For the GPT-2 124M config (random weights, GPT-2's vocabulary) and llama-small,
one SFT step (forward, backward, AdamW) at batch 4 x seq 256 in five settings:

  full fp32             every weight trains
  LoRA fp32 base        --use_peft (r 16, PEFT's default targets: GPT-2 c_attn,
                        Llama q_proj,v_proj), the base frozen in fp32
  LoRA bf16 base        the same with --dtype bfloat16: the frozen matrices read in bf16
  LoRA bf16 + ckpt      and --gradient_checkpointing
  all-linear LoRA bf16  adapters on every projection

and, with --torch, PyTorch's full and LoRA (c_attn, same r/alpha/dropout, a
plain low-rank delta: no peft package) fp32 steps on the GPT-2 shape (the model
of bench/torch_ref.py; off by default: on 2 shared cores they alone take minutes).
Each setting runs in a process of its own, the settings in turn, twice over
(ROUNDS): a burst of load from other jobs then hurts one pass of a setting, not
all of it, and each setting's figure is its fastest step (step_min_s).

Prints every row, then per model: tokens/s, step time, the training peak
(resident-set high-water mark reset before the first step, so loading and
attaching adapters are left out), the process peak, the memory plan, and the
ratios to the full step; then the bf16 / fp32 ratio of the LoRA step (issue 16's
goal: >= 1.5x on an AVX512_BF16 CPU). The rows go to $BUILD/bench.jsonl too.
The CPU, load average and OPENBLAS_CORETYPE are printed: on a shared machine the
absolute figures move a lot; compare rows of one run.
"""
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(BUILD, "rlhf")
QUICK = "--quick" in sys.argv
TORCH = "--torch" in sys.argv
ROUNDS = 1 if QUICK else 2
THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))
SEQ, BATCH = (128, 2) if QUICK else (256, 4)
LORA = ["--use_peft"]
BF16 = ["--dtype", "bfloat16"]
SETTINGS = [
    ("full fp32", []),
    ("LoRA fp32 base", LORA),
    ("LoRA bf16 base", LORA + BF16),
    ("LoRA bf16 + ckpt", LORA + BF16 + ["--gradient_checkpointing"]),
    ("all-linear LoRA bf16", LORA + BF16 + ["--lora_target_modules", "all-linear"]),
]
# timed steps after the warm-up: the 124M steps take seconds each on 2 threads
STEPS = {"gpt2": 1, "llama-small": 2 if QUICK else 3}


def env():
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = str(THREADS)
    return e


def rlhf_row(model, label, extra):
    args = [RLHF, "bench", "--work", "sft", "--model", model, "--seq", str(SEQ), "--batch",
            str(BATCH), "--steps", str(STEPS[model]), *extra]
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env()).stdout
    row = [json.loads(line) for line in out.splitlines() if line.startswith("{")][0]
    row["setting"] = label
    return row


def torch_row(kind):
    args = ["/usr/bin/python3", os.path.abspath(__file__), "--torch-row", kind]
    if QUICK:
        args.append("--quick")
    p = subprocess.run(args, capture_output=True, text=True, env=env())
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode or not lines:
        print(f"torch {kind}: skipped ({(p.stderr.strip().splitlines() or ['no output'])[-1]})")
        return None
    return json.loads(lines[0])


# ------------------------------------------------- the PyTorch side (child) --
def vm_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return -1


def torch_child(kind):
    import math

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    sys.path.insert(0, HERE)
    import torch_ref

    class LoraLinear(nn.Module):
        """base(x) + scale * B(A(dropout(x))): the base frozen, A kaiming-uniform, B zero."""

        def __init__(self, base, r=16, alpha=32.0, dropout=0.05):
            super().__init__()
            self.base = base
            self.A = nn.Parameter(torch.empty(r, base.in_features))
            self.B = nn.Parameter(torch.zeros(base.out_features, r))
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
            self.drop = nn.Dropout(dropout)
            self.scale = alpha / r

        def forward(self, x):
            return self.base(x) + F.linear(F.linear(self.drop(x), self.A), self.B) * self.scale

    torch.set_num_threads(THREADS)
    torch.manual_seed(1337)
    L, H, C, V, maxT = torch_ref.PRESETS["gpt2"]
    model = torch_ref.GPT(L, H, C, V, maxT)
    if kind == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        for blk in model.h:
            blk.c_attn = LoraLinear(blk.c_attn)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=1e-4)
    data = torch.randint(0, V, (BATCH, SEQ + 1))
    x, y = data[:, :SEQ], data[:, 1:]
    model.train()
    rss0 = vm_kb("VmRSS:") / 1024
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    steps, total, best = max(STEPS["gpt2"], 2), 0.0, 1e30
    for s in range(steps + 1):
        t0 = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if s > 0:
            dt = time.perf_counter() - t0
            total, best = total + dt, min(best, dt)
    tps = BATCH * SEQ * steps / total
    print(json.dumps({
        "impl": "torch", "work": "sft", "model": "gpt2", "batch": BATCH, "seq": SEQ,
        "tokens_per_s": round(tps, 2), "step_s": round(total / steps, 4),
        "step_min_s": round(best, 4), "threads": THREADS,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mb": round(rss0),
        "train_peak_rss_mb": round(vm_kb("VmHWM:") / 1024) if reset else -1,
        "dtype": "float32", "use_peft": kind == "lora", "lora_r": 16 if kind == "lora" else 0,
        "lora_targets": "c_attn" if kind == "lora" else "", "grad_ckpt": 0,
        "trainable_params": sum(p.numel() for p in params), "torch": torch.__version__,
        "load1": round(os.getloadavg()[0], 2)}))


# ------------------------------------------------------------------ report --
def table(model, rows):
    full = rows[0]
    print(f"\n{model}: SFT step, batch {BATCH} x seq {SEQ}, {THREADS} threads")
    print(f"  {'setting':26} {'tok/s':>8} {'min s':>8} {'x full':>7} {'train peak MB':>14} "
          f"{'x full':>7} {'proc peak MB':>13} {'plan MB':>8} {'load':>5}")
    for r in rows:
        plan = r.get("plan_mb", "-")
        name = ("torch " if r["impl"] == "torch" else "") + r["setting"]
        print(f"  {name:26} {r['best_tps']:8.1f} {r['step_min_s']:8.3f} "
              f"{r['best_tps'] / full['best_tps']:7.2f} {r['train_peak_rss_mb']:14.0f} "
              f"{r['train_peak_rss_mb'] / full['train_peak_rss_mb']:7.2f} {r['peak_rss_mb']:13.0f} "
              f"{plan:>8} {r['load1']:5.2f}")
    by = {r["setting"]: r for r in rows if r["impl"] == "rlhf.c"}
    f32, b16 = by["LoRA fp32 base"], by["LoRA bf16 base"]
    ratio = b16["best_tps"] / f32["best_tps"]
    print(f"  bf16 / fp32 LoRA step: {ratio:.2f}x (goal >= 1.5x: {'met' if ratio >= 1.5 else 'not met'}), "
          f"bf16 path {b16.get('bf16_path')}")


def main():
    if "--torch-row" in sys.argv:
        torch_child(sys.argv[sys.argv.index("--torch-row") + 1])
        return
    load0 = os.getloadavg()
    t0 = time.time()
    out = open(os.path.join(BUILD, "bench.jsonl"), "a")
    results = {}
    for model in ("gpt2", "llama-small"):
        best = {}  # setting -> the row with the fastest step over the rounds
        for rnd in range(ROUNDS):
            for label, extra in SETTINGS:
                r = rlhf_row(model, label, extra)
                r["round"] = rnd
                print(json.dumps(r), flush=True)
                out.write(json.dumps({"bench": "lora", **r}) + "\n")
                if label not in best or r["step_min_s"] < best[label]["step_min_s"]:
                    best[label] = r
        rows = [best[label] for label, _ in SETTINGS]
        if model == "gpt2" and TORCH:
            for kind, label in (("full", "full fp32"), ("lora", "LoRA fp32 base")):
                r = torch_row(kind)
                if r:
                    r["setting"] = label
                    print(json.dumps(r), flush=True)
                    out.write(json.dumps({"bench": "lora", **r}) + "\n")
                    rows.append(r)
        for r in rows:
            r["best_tps"] = r["batch"] * r["seq"] / r["step_min_s"]
        results[model] = rows
    out.close()
    r0 = results["gpt2"][0]
    print(f"\nCPU {r0['cpu']}, {THREADS} threads, OPENBLAS_CORETYPE "
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, load average "
          f"{load0[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
          f"(nproc {os.cpu_count()}), {time.time() - t0:.0f} s")
    for model, rows in results.items():
        table(model, rows)


if __name__ == "__main__":
    main()
