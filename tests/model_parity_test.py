#!/usr/bin/env python3
"""PyTorch parity test of the rlhf.c model (DESIGN.md §5.3).

For each case (gpt2, llama, gpt2_right, llama_left, gpt2_packed, llama_packed) it runs
    $BUILD/tests/tools/parity_dump OUTDIR CASE
which writes OUTDIR/model/{config.json, model.safetensors} (float32 weights) and
OUTDIR/io.safetensors (the batch, the loss weights, and the C model's outputs,
loss, parameter gradients and KV-cache logits). An independent float64 PyTorch
reference (tests/torch_model_ref.py) recomputes everything from the same weights
and each tensor is compared by max|c - ref| / max|ref| (relative to the tensor's
scale): 1e-4 for activations, loss and KV-cache logits, 1e-3 for gradients.
Outputs at padding positions are ignored (C may write anything there).
The _packed cases hold several documents per row with segment ids (TRL's
padding-free packing); their reference runs every document on its own, so they
check that a packed batch gives each document exactly its unpacked outputs,
loss and gradients.

Prints PASS/FAIL/SKIP lines; exits 1 if anything failed.
Env: BUILD (default "build"); PARITY_DUMP overrides the dump command (a shell
command line that gets OUTDIR CASE appended), for testing this script itself.
"""
import json
import os
import shlex
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
except ImportError as e:  # a user's machine without python3-torch: skip, do not fail
    print(f"SKIP model_parity: {e} (install Debian's python3-torch)")
    sys.exit(0)

import st_io  # noqa: E402
import torch_model_ref as ref  # noqa: E402

CASES = ["gpt2", "llama", "gpt2_right", "llama_left", "gpt2_packed", "llama_packed"]
TOL_ACT = 1e-4
TOL_GRAD = 1e-3

torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))

failures = 0


def emit(line):
    global failures
    if line.startswith("FAIL"):
        failures += 1
    print(line, flush=True)


def rel_err(c, r):
    """max|c-r| / max|r| over the given entries (absolute when r is all zero)."""
    c = np.asarray(c, dtype=np.float64).ravel()
    r = np.asarray(r, dtype=np.float64).ravel()
    if c.size == 0:
        return 0.0
    if not np.all(np.isfinite(c)):
        return float("inf")
    d = float(np.max(np.abs(c - r)))
    s = float(np.max(np.abs(r)))
    return d / s if s > 0 else d


def check(name, c, r, tol, sel=None):
    """Compares C tensor c to reference r (same shape); sel: boolean mask (broadcast
    over trailing dims) of entries that count. Returns the error (None on shape error)."""
    c = np.asarray(c)
    r = np.asarray(r)
    if c.shape != r.shape:
        emit(f"FAIL {name}: shape {list(c.shape)} != reference {list(r.shape)}")
        return None
    if sel is not None:
        sel = np.broadcast_to(sel.reshape(sel.shape + (1,) * (c.ndim - sel.ndim)), c.shape)
        c, r = c[sel], r[sel]
    e = rel_err(c, r)
    if e <= tol:
        emit(f"PASS {name} (max rel err {e:.3g})")
    else:
        i = int(np.argmax(np.abs(np.asarray(c, np.float64).ravel() - r.ravel()))) if c.size else 0
        emit(f"FAIL {name}: max rel err {e:.3g} > {tol:g} (worst entry c={float(c.ravel()[i]):.6g} "
             f"ref={float(r.ravel()[i]):.6g}, max|ref|={float(np.max(np.abs(r))) if r.size else 0:.3g})")
    return e


def dump_command(outdir, case):
    override = os.environ.get("PARITY_DUMP")
    if override:
        return shlex.split(override) + [outdir, case]
    build = os.environ.get("BUILD", "build")
    tool = os.path.join(build if os.path.isabs(build) else os.path.join(ROOT, build),
                        "tests", "tools", "parity_dump")
    if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
        return None
    return [tool, outdir, case]


def run_case(case, tmp):
    outdir = os.path.join(tmp, case)
    os.makedirs(outdir, exist_ok=True)
    cmd = dump_command(outdir, case)
    try:
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=600)
    except subprocess.TimeoutExpired:
        emit(f"FAIL {case}/dump: parity_dump timed out")
        return
    text = p.stdout.decode("utf-8", "replace").strip()
    if p.returncode == 77:
        emit(f"SKIP {case}: parity_dump says: {text[-300:]}")
        return
    if p.returncode != 0:
        emit(f"FAIL {case}/dump: parity_dump exited {p.returncode}: {text[-500:]}")
        return
    try:
        with open(os.path.join(outdir, "model", "config.json")) as f:
            cfg = json.load(f)
        W = st_io.load(os.path.join(outdir, "model", "model.safetensors"))
        io = st_io.load(os.path.join(outdir, "io.safetensors"))
    except Exception as e:  # noqa: BLE001
        emit(f"FAIL {case}/dump: cannot read the dump: {e}")
        return
    arch = cfg.get("arch")
    desc = (f"{arch} L={cfg.get('n_layer')} NH={cfg.get('n_head')} NKV={cfg.get('n_kv_head')} "
            f"C={cfg.get('n_embd')} F={cfg.get('d_ff')} V={cfg.get('vocab_size')} "
            f"tied={cfg.get('tied')} qkv_bias={cfg.get('qkv_bias')} score={cfg.get('score_head')} "
            f"value={cfg.get('value_head')}")

    # ---- the parameter table matches the documented names and shapes
    want = ref.param_shapes(cfg)
    got = {k: tuple(v.shape) for k, v in W.items()}
    bad = [f"missing {k}" for k in want if k not in got]
    bad += [f"unexpected {k}" for k in got if k not in want]
    bad += [f"{k} {list(got[k])} != {list(want[k])}" for k in want if k in got and got[k] != want[k]]
    bad += [f"{k} is {W[k].dtype}" for k in W if W[k].dtype != np.float32]
    if bad:
        emit(f"FAIL {case}/params: {'; '.join(bad[:6])}")
        return
    emit(f"PASS {case}/params ({desc}; {len(want)} tensors)")

    # ---- the batch is well formed and exercises what the case promises
    for k in ("tokens", "targets", "mask"):
        if k not in io:
            emit(f"FAIL {case}/io: io.safetensors lacks {k}")
            return
    tokens = io["tokens"].astype(np.int64)
    targets = io["targets"].astype(np.int64)
    mask = io["mask"].astype(np.int64)
    B, T = tokens.shape
    real = mask > 0
    packed = case.endswith("_packed")
    segment = io["segment"].astype(np.int64) if "segment" in io else None
    ws = io.get("ws")
    wv = io.get("wv")
    wh = io.get("wh")
    problems = []
    if targets.shape != (B, T) or mask.shape != (B, T):
        problems.append("targets/mask shape differs from tokens")
    if np.any(real.sum(1) == 0):
        problems.append("a row has no real token")
    if np.any((targets >= 0) & ~real):
        problems.append("targets >= 0 at padding positions (loss would depend on padding outputs)")
    if wv is not None and np.any(wv[~real] != 0):
        problems.append("wv nonzero at padding")
    if wh is not None and np.any(wh[~real] != 0):
        problems.append("wh nonzero at padding")
    right_pad = bool(np.any(real[:, :-1] & ~real[:, 1:]))  # a 0 after a 1
    left_pad = bool(np.any(~real[:, :-1] & real[:, 1:]))   # a 1 after a 0
    if case.endswith("_right") and not right_pad:
        problems.append("case promises right padding but the mask has none")
    if case.endswith("_left") and not left_pad:
        problems.append("case promises left padding but the mask has none")
    if not (case.endswith("_right") or packed) and right_pad:
        problems.append("rows are not left-padded")
    if packed != (segment is not None):
        problems.append("segment ids belong to the _packed cases, and they need them")
    elif packed:
        if segment.shape != (B, T):
            problems.append("segment shape differs from tokens")
        else:
            starts = real & np.concatenate([np.ones((B, 1), bool),
                                            segment[:, 1:] != segment[:, :-1]], axis=1)
            if starts.sum(1).max() < 3:
                problems.append("no row packs three documents")
    if np.any(tokens < 0) or np.any(tokens >= cfg["vocab_size"]) or np.any(targets >= cfg["vocab_size"]):
        problems.append("token or target out of range")
    if problems:
        emit(f"FAIL {case}/io: {'; '.join(problems)}")
        return
    pad = "right" if right_pad else ("left" if left_pad else "none")
    docs = f", {int(starts.sum())} documents" if packed else ""
    emit(f"PASS {case}/io (B={B} T={T} padding={pad}, {int((~real).sum())} padded slots, "
         f"{int((targets >= 0).sum())} targets{docs})")

    # ---- the reference, float64 from the float32 weights
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in W.items()}
    tt = torch.tensor(tokens)
    tm = torch.tensor(mask)
    tg = torch.tensor(targets)
    f64 = lambda a: None if a is None else torch.tensor(a, dtype=torch.float64)  # noqa: E731
    out = ref.outputs_and_loss(cfg, P, tt, tg, tm, f64(ws), f64(wv), f64(wh),
                               segment=None if segment is None else torch.tensor(segment))
    out["loss"].backward()
    R = {k: v.detach().numpy() for k, v in out.items()}

    for k in ("logits", "logp", "hidden"):
        if k not in io:
            emit(f"FAIL {case}/{k}: not in the dump")
        else:
            check(f"{case}/{k}", io[k], R[k], TOL_ACT, real)
    for k, sel in (("score", None), ("values", real)):
        if k in R:
            if k not in io:
                emit(f"FAIL {case}/{k}: model has a {k} head but the dump has no {k}")
            else:
                check(f"{case}/{k}", io[k], R[k], TOL_ACT, sel)
        else:
            emit(f"SKIP {case}/{k}: model has no {k} head")
    if "loss" not in io:
        emit(f"FAIL {case}/loss: not in the dump")
    else:
        check(f"{case}/loss", io["loss"].reshape(-1)[:1], R["loss"].reshape(1), TOL_ACT)

    # ---- gradients of every parameter
    worst, worst_name, nbad = 0.0, "", 0
    extra = [k for k in io if k.startswith("grad.") and k[5:] not in P]
    if extra:
        emit(f"FAIL {case}/grads: dump has gradients of unknown tensors {extra[:4]}")
    for name in want:
        key = "grad." + name
        if key not in io:
            emit(f"FAIL {case}/{key}: not in the dump")
            nbad += 1
            continue
        g = P[name].grad
        g = np.zeros(want[name]) if g is None else g.numpy()
        e = check(f"{case}/{key}", io[key], g, TOL_GRAD)
        if e is None or e > TOL_GRAD:
            nbad += 1
        if e is not None and e >= worst:
            worst, worst_name = e, name
    summary = f"{len(want)} tensors, worst grad.{worst_name} max rel err {worst:.3g}"
    if nbad:
        emit(f"FAIL {case}/grads: {nbad} of {len(want)} gradients bad ({summary})")
    else:
        emit(f"PASS {case}/grads ({summary})")

    # ---- KV cache: prefill P slots, then one slot per step
    has_kv = all(k in io for k in ("P", "prefill_logits", "decode_logits"))
    if case.endswith("_right") or packed:
        if has_kv:
            emit(f"FAIL {case}/kv: right-padded case should have no KV-cache entries")
        return
    if not has_kv:
        emit(f"FAIL {case}/kv: dump lacks P / prefill_logits / decode_logits")
        return
    Pn = int(io["P"].reshape(-1)[0])
    if not 1 <= Pn <= T:
        emit(f"FAIL {case}/kv: P={Pn} out of range 1..{T}")
        return
    lg = R["logits"]
    check(f"{case}/kv_prefill (P={Pn})", io["prefill_logits"], lg[:, Pn - 1], TOL_ACT, real[:, Pn - 1])
    dec = io["decode_logits"]
    want_dec = np.transpose(lg[:, Pn:], (1, 0, 2))  # (T-P, B, V)
    if Pn == T:
        emit(f"SKIP {case}/kv_decode: P == T, no decode steps")
    else:
        check(f"{case}/kv_decode ({T - Pn} steps)", dec, want_dec, TOL_ACT, real[:, Pn:].T)


def main():
    if dump_command("x", "x") is None:
        emit("FAIL parity_dump: build/tests/tools/parity_dump missing (run make)")
        return 1
    build = os.environ.get("BUILD", "build")
    tmp_root = os.path.join(build if os.path.isabs(build) else os.path.join(ROOT, build), "tmp")
    os.makedirs(tmp_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="parity.", dir=tmp_root)
    try:
        cases = sys.argv[1:] or CASES
        for case in cases:
            try:
                run_case(case, tmp)
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                emit(f"FAIL {case}: test error: {type(e).__name__}: {e}")
    finally:
        if os.environ.get("PARITY_KEEP"):
            print(f"# dumps kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
