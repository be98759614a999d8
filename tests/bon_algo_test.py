#!/usr/bin/env python3
"""Checks src/algo/bon (through $BUILD/tests/tools/bon_dump) against PyTorch:

  * superhf_vocab_kl: the value sum_i KL(softmax(q_i) || softmax(p_i)) over the
    rows with a target (SuperHF's KLDivLoss(log p, log q, log_target=True),
    summed) and its gradient scale * d/dlogits_p by torch autograd in float64,
    on ordinary, large (+-60) and near-one-hot logits, rows without a target,
    and identical distributions (KL 0);
  * bon_pick_best: numpy's argmax (the first of equal maxima) on scores with
    many ties.

Prints PASS/FAIL lines; SKIP without numpy/torch. Env: BUILD (default "build").
"""
import atexit
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
    import torch.nn.functional as F  # noqa: E402
except ImportError as e:
    print(f"SKIP bon_algo: {e} (install Debian's python3-torch)")
    sys.exit(0)

import st_io  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "bon_dump")
torch.set_num_threads(1)
failures = 0
tmp = tempfile.mkdtemp(prefix="bon_algo_test.")
atexit.register(shutil.rmtree, tmp, True)  # removed however the test ends


def emit(ok, name, detail):
    global failures
    failures += 0 if ok else 1
    print(f"{'PASS' if ok else 'FAIL'} {name} ({detail})", flush=True)


def run(op, params, tensors):
    inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
    st_io.save(inp, {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()},
               {"op": op, **{k: str(v) for k, v in params.items()}})
    p = subprocess.run([TOOL, inp, out], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"bon_dump {op}: exit {p.returncode}: {p.stdout}{p.stderr}")
    return {k: v.astype(np.float64) for k, v in st_io.load(out).items()}


def torch_kl(lp, lq, targets, scale):
    """float64 reference from the same float32 values: (sum KL, scale * dKL/dlogits_p)."""
    zp = torch.tensor(lp, dtype=torch.float64, requires_grad=True)
    zq = torch.tensor(lq, dtype=torch.float64)
    on = torch.tensor(targets >= 0)
    per_row = F.kl_div(F.log_softmax(zp, -1), F.log_softmax(zq, -1), log_target=True,
                       reduction="none").sum(-1)
    kl = (per_row.clamp(min=0) * on).sum()
    (scale * kl).backward()
    return kl.item(), zp.grad.numpy()


def check_kl(name, lp, lq, targets, scale):
    lp, lq = lp.astype(np.float32), lq.astype(np.float32)
    got = run("vocab_kl", {"scale": repr(scale)},
              {"logits_p": lp, "logits_q": lq, "targets": targets.astype(np.float32)})
    kl, grad = torch_kl(lp, lq, targets, scale)
    e_val = abs(got["kl"][0] - kl) / max(abs(kl), 1.0)
    gscale = np.abs(grad).max()
    e_grad = np.abs(got["dlogits"] - grad).max() / (gscale if gscale > 0 else 1.0)
    zero_rows = bool(np.all(got["dlogits"][targets < 0] == 0))
    emit(e_val < 1e-6 and e_grad < 1e-5 and zero_rows, f"vocab_kl_{name}",
         f"kl {got['kl'][0]:.6g} vs torch {kl:.6g}, value err {e_val:.1e}, grad err {e_grad:.1e}")


def main():
    if not os.path.exists(TOOL):
        print(f"FAIL bon_algo: {TOOL} is missing (make BUILD={BUILD})")
        sys.exit(1)
    rng = np.random.default_rng(0)
    N, V = 9, 50
    targets = rng.integers(0, V, N)
    targets[[1, 5]] = -1  # rows without a target: no value, no gradient
    check_kl("random", rng.normal(0, 2, (N, V)), rng.normal(0, 2, (N, V)), targets, 0.35 / 17)
    check_kl("large_logits", rng.normal(0, 60, (N, V)), rng.normal(0, 60, (N, V)), targets, 1.0)
    near = rng.normal(0, 1, (N, V))
    near[np.arange(N), rng.integers(0, V, N)] += 25  # the reference almost one-hot
    check_kl("near_one_hot_ref", rng.normal(0, 1, (N, V)), near, targets, 0.5)
    same = rng.normal(0, 3, (N, V))
    check_kl("identical", same + 2.0, same, targets, 1.0)  # shifted logits: the same softmax

    for trial, (np_, n) in enumerate([(7, 4), (5, 1), (6, 9)]):
        scores = rng.integers(-2, 3, (np_, n)).astype(np.float32)  # many ties
        got = run("pick_best", {}, {"scores": scores})["best"].astype(int)
        want = np.arange(np_) * n + scores.argmax(axis=1)  # first of equal maxima
        emit(np.array_equal(got, want), f"pick_best_ties_{np_}x{n}",
             f"got {got.tolist()} want {want.tolist()}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
