"""Peak memory of training runs beside their memory plans (issue 16).

Rows:
  dpo-full        rlhf dpo on the GPT-2 124M config (--model gpt2: a fresh
                  seeded model), every weight trained, a reference copy
  dpo-lora        the same with --use_peft (LoRA r 16 on c_attn; the reference
                  is the base with adapters off, no second copy)
  dpo-lora-ckpt   --use_peft --gradient_checkpointing
  grpo-qwen2-0.5b one GRPO iteration on a Qwen2-0.5B-shaped random model
                  (24 layers, 896 wide, 14/2 heads, 4864 MLP, 151936 tokens,
                  tied, q/k/v biases) written as a bf16 HF folder, with
                  --use_peft --dtype bfloat16 --gradient_checkpointing
                  (skipped with MEMBENCH_QUICK=1)

Each run is one child process; its peak resident set is the child's own
ru_maxrss (os.wait4), so rows do not see each other's peaks; "training" is the
largest VmRSS sampled after the trainer printed its plan (start-up transients,
such as attaching adapters, left out). The plan is the trainer's startup line
("<cmd>: memory plan: ... total X"); train/plan compares it with "training". Goals (issue 16):
dpo-lora peak <= 40% of dpo-full; the 0.5B GRPO row <= 6 GB. A row whose flags
the trainer does not know prints "not available".

Prints a table and appends one JSON object per row to $BUILD/bench.jsonl.
Standard library, plus numpy for the 0.5B model's random weights.

  BUILD=build /usr/bin/python3 bench/memory_bench.py
  env: MEMBENCH_QUICK=1, MEMBENCH_T (DPO max_length, 128), MEMBENCH_B (DPO pairs per
       step, 2), MEMBENCH_STEPS (2), OMP_NUM_THREADS (1)
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
QUICK = os.environ.get("MEMBENCH_QUICK", "") not in ("", "0")
T = int(os.environ.get("MEMBENCH_T", "128"))
B = int(os.environ.get("MEMBENCH_B", "2"))
STEPS = int(os.environ.get("MEMBENCH_STEPS", "2"))
ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}

UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def parse_bytes(s):
    m = re.match(r"([\d.]+) (B|kB|MB|GB)", s.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def plan_of(stderr):
    """The plan line's parts in bytes, or None when the trainer printed none."""
    for line in stderr.splitlines():
        if "memory plan:" not in line:
            continue
        parts = {}
        for key in ("weights", "grads", "optimizer", "activations", "reference", "total"):
            m = re.search(key + r" ([\d.]+ (?:B|kB|MB|GB))", line)
            if m:
                parts[key] = parse_bytes(m.group(1))
        return parts, line.split("memory plan:", 1)[1].strip()
    return None, ""


def rss_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(args):
    """(peak RSS bytes, peak RSS after the plan line, exit status, seconds, stderr) of one
    rlhf child. The first is the kernel's ru_maxrss of that child; the second samples
    VmRSS every 50 ms once the trainer has printed its plan (models loaded, adapters
    attached), so it leaves out start-up transients and may miss a short spike."""
    t0 = time.time()
    with tempfile.NamedTemporaryFile() as err:
        p = subprocess.Popen([RLHF, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=err)
        train_peak, planned = 0, False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if not planned:
                with open(err.name, "rb") as f:
                    planned = b"memory plan:" in f.read()
            if planned:
                train_peak = max(train_peak, rss_of(p.pid))
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return ru.ru_maxrss * 1024, train_peak, p.returncode, time.time() - t0, text


def write_prefs(path, n=16):
    import random
    r = random.Random(1)

    def text(k):
        return "".join(r.choice("abcdefghij klmnop") for _ in range(k))

    # byte tokenizer: one token a character; rows fill max_length
    with open(path, "w") as f:
        for _ in range(n):
            f.write(json.dumps({"prompt": text(T // 4), "chosen": text(T), "rejected": text(T)})
                    + "\n")


QWEN = {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "max_position_embeddings": 256, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True}


def write_qwen(folder):
    """A Qwen2-0.5B-shaped HF folder: config.json and bf16 model.safetensors of N(0, 0.02)
    (norms 1, biases 0); written tensor by tensor to keep this process small."""
    import numpy as np
    os.makedirs(folder, exist_ok=True)
    c = QWEN
    cfg = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_act": "silu",
           "torch_dtype": "bfloat16", **c}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    C, F, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    HS = C // c["num_attention_heads"]
    NK = c["num_key_value_heads"] * HS
    shapes = [("model.embed_tokens.weight", (V, C), "w")]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes += [(p + "input_layernorm.weight", (C,), "one"),
                   (p + "self_attn.q_proj.weight", (C, C), "w"),
                   (p + "self_attn.q_proj.bias", (C,), "zero"),
                   (p + "self_attn.k_proj.weight", (NK, C), "w"),
                   (p + "self_attn.k_proj.bias", (NK,), "zero"),
                   (p + "self_attn.v_proj.weight", (NK, C), "w"),
                   (p + "self_attn.v_proj.bias", (NK,), "zero"),
                   (p + "self_attn.o_proj.weight", (C, C), "w"),
                   (p + "post_attention_layernorm.weight", (C,), "one"),
                   (p + "mlp.gate_proj.weight", (F, C), "w"),
                   (p + "mlp.up_proj.weight", (F, C), "w"),
                   (p + "mlp.down_proj.weight", (C, F), "w")]
    shapes.append(("model.norm.weight", (C,), "one"))
    header, off = {}, 0
    for name, shape, _ in shapes:
        n = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    rng = np.random.default_rng(1)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj)
        for name, shape, kind in shapes:
            if kind == "w":
                x = (rng.standard_normal(shape, dtype=np.float32) * 0.02)
            else:
                x = np.full(shape, 1.0 if kind == "one" else 0.0, dtype=np.float32)
            f.write((x.view(np.uint32) >> 16).astype(np.uint16).tobytes())


def write_prompts(path, n=8):
    with open(path, "w") as f:
        for i in range(n):
            a, b = 3 + i, 5 + 2 * i
            f.write(json.dumps({"prompt": f"{a}+{b}=", "answer": str(a + b)}) + "\n")


def main():
    if not os.path.exists(RLHF):
        print(f"memory_bench: {RLHF} not built", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="membench") as tmp:
        prefs = os.path.join(tmp, "prefs.jsonl")
        write_prefs(prefs)
        dpo = ["dpo", "--model", "gpt2", "--tokenizer", "byte", "--data", prefs,
               "--max_steps", str(STEPS), "--batch_size", str(B), "--max_length", str(T),
               "--logging_steps", "1", "--save_steps", "0"]
        cases = [("dpo-full", dpo, []),
                 ("dpo-lora", dpo, ["--use_peft"]),
                 ("dpo-lora-ckpt", dpo, ["--use_peft", "--gradient_checkpointing"])]
        if not QUICK:
            qdir = os.path.join(tmp, "qwen2-0.5b-shaped")
            prompts = os.path.join(tmp, "prompts.jsonl")
            write_prompts(prompts)
            grpo = ["grpo", "--model", qdir, "--tokenizer", "byte", "--data", prompts,
                    "--task", "arith", "--batch_size", "2", "--num_generations", "4",
                    "--max_new_tokens", "16", "--max_steps", "1", "--logging_steps", "1",
                    "--save_steps", "0"]
            cases.append(("grpo-qwen2-0.5b", grpo, ["--use_peft", "--dtype", "bfloat16",
                                                    "--gradient_checkpointing"]))
        for name, base, extra in cases:
            if name.startswith("grpo"):
                write_qwen(qdir)
            out = os.path.join(tmp, "out-" + name)
            peak, train_peak, rc, secs, err = run([*base, *extra, "--output_dir", out])
            plan, plan_text = plan_of(err)
            row = {"impl": "rlhf.c", "work": "memory", "case": name, "seconds": round(secs, 1),
                   "args": " ".join(base[:1] + extra)}
            if rc != 0:
                why = err.strip().splitlines()[-1] if err.strip() else f"exit {rc}"
                row.update(status="not available", why=why[:300])
            else:
                row.update(status="ok", peak_rss=peak, train_peak_rss=train_peak, plan=plan,
                           plan_line=plan_text)
            rows.append(row)
            print(f"{name}: {row['status']}" + (f", peak {peak / 1e9:.2f} GB" if rc == 0 else
                                                f" ({row.get('why', '')})"),
                  file=sys.stderr, flush=True)
    full = next((r for r in rows if r["case"] == "dpo-full" and r["status"] == "ok"), None)
    print(f"\nmemory: peak RSS vs plan (DPO: gpt2 124M, {B} pairs x {T} tokens, {STEPS} steps; "
          f"OMP_NUM_THREADS={ENV['OMP_NUM_THREADS']})")
    print(f"{'case':<18} {'peak':>9} {'training':>9} {'plan':>9} {'train/plan':>10} {'vs full':>8}"
          f"  plan line")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['case']:<18} {'not available':>9}  {r.get('why', '')}")
            continue
        pt = (r["plan"] or {}).get("total")
        ratio = r["train_peak_rss"] / pt if pt and r["train_peak_rss"] else None
        vs = r["peak_rss"] / full["peak_rss"] if full and r["case"].startswith("dpo") else None
        r["peak_over_plan"] = round(ratio, 3) if ratio else None
        r["peak_vs_full"] = round(vs, 3) if vs else None
        print(f"{r['case']:<18} {r['peak_rss'] / 1e9:>7.2f}GB {r['train_peak_rss'] / 1e9:>7.2f}GB "
              f"{(pt or 0) / 1e9:>7.2f}GB {ratio or 0:>10.2f} "
              f"{(f'{vs:.0%}' if vs else '-'):>8}  {r['plan_line']}")
    lora = next((r for r in rows if r["case"] == "dpo-lora" and r["status"] == "ok"), None)
    if full and lora:
        print(f"goal: dpo-lora peak <= 40% of dpo-full: {lora['peak_rss'] / full['peak_rss']:.0%}")
    q = next((r for r in rows if r["case"].startswith("grpo") and r["status"] == "ok"), None)
    if q:
        print(f"goal: 0.5B GRPO (LoRA + bf16 + checkpointing) <= 6 GB: "
              f"{q['peak_rss'] / 1e9:.2f} GB")
    os.makedirs(os.path.join(ROOT, BUILD), exist_ok=True)
    with open(os.path.join(ROOT, BUILD, "bench.jsonl"), "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
