#!/usr/bin/env python3
"""PyTorch check of LoRA adapters (src/model/lora.c) in float64.

For each case (gpt2: c_attn, both c_proj and c_fc; llama: every projection, with
GQA, q/k/v biases and an untied head; llama_qkv: q_proj, k_proj, v_proj with
rsLoRA scaling) it runs
    $BUILD/tests/tools/lora_dump OUTDIR CASE
which writes the config, every tensor of the model's table (base, heads and
adapters) and the C model's outputs and gradients of a training forward and
backward. The reference here builds the adapted model from LoRA's definition,
independently of the engine's code: a site's adapter turns its projection
y = x W^T into y = x W^T + scale * (x A^T) B^T on the output rows the site
covers (q / k / v rows of the fused qkv, gate / up rows of Llama's fused up
projection), scale = alpha / r (alpha / sqrt(r) with rsLoRA). The slices, the
scale and the set of adapters are derived here from the config and the case,
not read from the engine. The base transformer is tests/torch_model_ref.py.

Checks: the adapter tensors' names and shapes; log-probs, hidden states,
score and values (1e-4, relative to each tensor's scale); the gradient of every
adapter and head tensor (1e-3); and that the dump holds no gradient of a base
tensor (the base is frozen).

Prints PASS/FAIL/SKIP lines; exits 1 if anything failed. Env: BUILD.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

try:
    import numpy as np  # noqa: E402
    import torch  # noqa: E402
except ImportError as e:
    print(f"SKIP lora_torch: {e} (install Debian's python3-torch)")
    sys.exit(0)

import st_io  # noqa: E402
import torch_model_ref as ref  # noqa: E402

TOL_ACT = 1e-4
TOL_GRAD = 1e-3
ALPHA, R = 12.0, 4
# case -> (the sites that carry adapters, rsLoRA)
GPT2_ALL = ["attn.qkv", "attn.out", "mlp.up", "mlp.down"]
LLAMA_ALL = ["attn.q", "attn.k", "attn.v", "attn.out", "mlp.gate", "mlp.up", "mlp.down"]
CASES = {
    "gpt2": (GPT2_ALL, False),
    "llama": (LLAMA_ALL, False),
    "llama_qkv": (["attn.q", "attn.k", "attn.v"], True),
}

torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
failures = 0
worst_seen = {"act": 0.0, "grad": 0.0}


def emit(line):
    global failures
    if line.startswith("FAIL"):
        failures += 1
    print(line, flush=True)


def rel_err(c, r):
    c = np.asarray(c, dtype=np.float64).ravel()
    r = np.asarray(r, dtype=np.float64).ravel()
    if c.size == 0:
        return 0.0
    if not np.all(np.isfinite(c)):
        return float("inf")
    d = float(np.max(np.abs(c - r)))
    s = float(np.max(np.abs(r)))
    return d / s if s > 0 else d


def check(name, c, r, tol, kind, sel=None, quiet=False):
    c, r = np.asarray(c), np.asarray(r)
    if c.shape != r.shape:
        emit(f"FAIL {name}: shape {list(c.shape)} != reference {list(r.shape)}")
        return float("inf")
    if sel is not None:
        sel = np.broadcast_to(sel.reshape(sel.shape + (1,) * (c.ndim - sel.ndim)), c.shape)
        c, r = c[sel], r[sel]
    e = rel_err(c, r)
    worst_seen[kind] = max(worst_seen[kind], e)
    if e > tol:
        emit(f"FAIL {name}: max rel err {e:.3g} > {tol:g}")
    elif not quiet:
        emit(f"PASS {name} (max rel err {e:.3g})")
    return e


def site_geometry(cfg, site):
    """(base weight name suffix, first output row, rows, input width) of a site."""
    C, NH, NKV, F = cfg["n_embd"], cfg["n_head"], cfg["n_kv_head"], cfg["d_ff"]
    HS = C // NH
    llama = cfg["arch"] == "llama"
    qkv = (NH + 2 * NKV) * HS
    table = {
        "attn.q": ("attn.qkv", 0, NH * HS, C),
        "attn.k": ("attn.qkv", NH * HS, NKV * HS, C),
        "attn.v": ("attn.qkv", (NH + NKV) * HS, NKV * HS, C),
        "attn.qkv": ("attn.qkv", 0, qkv, C),
        "attn.out": ("attn.out", 0, C, C),
        "mlp.gate": ("mlp.up", 0, F, C),
        "mlp.up": ("mlp.up", F if llama else 0, F, C),
        "mlp.down": ("mlp.down", 0, C, F),
    }
    return table[site]


def run_case(case, tmp, tool):
    sites, rslora = CASES[case]
    outdir = os.path.join(tmp, case)
    os.makedirs(outdir)
    p = subprocess.run([tool, outdir, case], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    if p.returncode != 0:
        emit(f"FAIL {case}/dump: lora_dump exited {p.returncode}: "
             f"{p.stdout.decode('utf-8', 'replace')[-400:]}")
        return
    with open(os.path.join(outdir, "config.json")) as f:
        cfg = json.load(f)
    W = st_io.load(os.path.join(outdir, "weights.safetensors"))
    io = st_io.load(os.path.join(outdir, "io.safetensors"))
    L = cfg["n_layer"]
    scale = ALPHA / (R ** 0.5 if rslora else R)

    # ---- the adapters' names and shapes
    base_names = set(ref.param_shapes(cfg))
    want = {}
    for layer in range(L):
        for s in sites:
            _, _, n, inp = site_geometry(cfg, s)
            want[f"layers.{layer}.{s}.lora_A"] = (R, inp)
            want[f"layers.{layer}.{s}.lora_B"] = (n, R)
    got = {k: tuple(v.shape) for k, v in W.items() if k not in base_names}
    bad = [f"missing {k}" for k in want if k not in got]
    bad += [f"unexpected {k}" for k in got if k not in want]
    bad += [f"{k} {list(got[k])} != {list(want[k])}" for k in want if k in got and got[k] != want[k]]
    bad += [f"base tensor {k} missing" for k in base_names if k not in W]
    if bad:
        emit(f"FAIL {case}/adapters: {'; '.join(bad[:6])}")
        return
    emit(f"PASS {case}/adapters ({len(want)} tensors on {', '.join(sites)}; scale {scale:g})")
    c_scale = float(io["lora_scale"].reshape(-1)[0])
    if abs(c_scale - scale) > 1e-6 * scale:
        emit(f"FAIL {case}/scale: the dump says {c_scale}, LoRA's definition {scale}")

    # ---- the reference: base weights with each site's rows adapted
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in W.items()}
    Peff = {k: v for k, v in P.items() if k in base_names}
    for layer in range(L):
        for s in sites:
            wname, off, n, _ = site_geometry(cfg, s)
            key = f"layers.{layer}.{wname}.weight"
            A = P[f"layers.{layer}.{s}.lora_A"]
            Bm = P[f"layers.{layer}.{s}.lora_B"]
            # x W^T + scale (x A^T) B^T = x (W + scale B A)^T on rows [off, off + n)
            delta = torch.zeros_like(Peff[key])
            delta[off:off + n] = scale * (Bm @ A)
            Peff[key] = Peff[key] + delta
    tokens = torch.tensor(io["tokens"].astype(np.int64))
    mask = torch.tensor(io["mask"].astype(np.int64))
    targets = torch.tensor(io["targets"].astype(np.int64))
    f64 = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    out = ref.outputs_and_loss(cfg, Peff, tokens, targets, mask, f64(io["ws"]), f64(io["wv"]),
                               f64(io["wh"]))
    out["loss"].backward()
    real = io["mask"] > 0
    for k, sel in (("logp", real), ("hidden", real), ("score", None), ("values", real)):
        check(f"{case}/{k}", io[k], out[k].detach().numpy(), TOL_ACT, "act", sel)
    # without the adapters the outputs differ clearly (so the check above means something)
    out0 = ref.outputs_and_loss(cfg, {k: v.detach() for k, v in P.items() if k in base_names},
                                tokens, targets, mask)
    moved = rel_err(out0["hidden"].numpy()[real], out["hidden"].detach().numpy()[real])
    if moved < 1e-2:
        emit(f"FAIL {case}/adapters_matter: the adapters move hidden by only {moved:.3g}")

    # ---- gradients: every adapter and head tensor, and none of the frozen base
    trainable = list(want) + [k for k in W if k.startswith(("score_head.", "value_head."))]
    grads = {k[5:] for k in io if k.startswith("grad.")}
    extra = sorted(grads - set(trainable))
    if extra:
        emit(f"FAIL {case}/frozen: the dump has gradients of frozen tensors {extra[:4]}")
    worst, worst_name, nbad = 0.0, "", 0
    for name in trainable:
        if name not in grads:
            emit(f"FAIL {case}/grad.{name}: not in the dump")
            nbad += 1
            continue
        g = P[name].grad
        g = np.zeros(W[name].shape) if g is None else g.numpy()
        e = check(f"{case}/grad.{name}", io["grad." + name], g, TOL_GRAD, "grad", quiet=True)
        if e > TOL_GRAD:
            nbad += 1
        if e >= worst:
            worst, worst_name = e, name
    summary = f"{len(trainable)} tensors, worst grad.{worst_name} max rel err {worst:.3g}"
    if nbad:
        emit(f"FAIL {case}/grads: {nbad} bad ({summary})")
    else:
        emit(f"PASS {case}/grads ({summary})")


def main():
    build = os.environ.get("BUILD", "build")
    bdir = build if os.path.isabs(build) else os.path.join(ROOT, build)
    tool = os.path.join(bdir, "tests", "tools", "lora_dump")
    if not os.access(tool, os.X_OK):
        emit(f"FAIL lora_torch: {tool} missing (run make)")
        return 1
    os.makedirs(os.path.join(bdir, "tmp"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="lora_torch.", dir=os.path.join(bdir, "tmp"))
    try:
        for case in sys.argv[1:] or CASES:
            try:
                run_case(case, tmp, tool)
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                emit(f"FAIL {case}: test error: {type(e).__name__}: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# worst max rel err: outputs {worst_seen['act']:.3g}, gradients {worst_seen['grad']:.3g}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
