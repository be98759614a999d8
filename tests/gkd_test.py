#!/usr/bin/env python3
"""Compares algo/gkd (through $BUILD/tests/test_gkd --dump) with the torch
reference in tests/gkd_ref.py: the loss sum_i w_i D_i and its gradient with
respect to the student's logits, on random (N, V) float32 logits, beta 0, 0.1,
0.5, 0.9, 1 and temperatures 1, 0.7, 2, with rows of weight 0 (masked), 1 and
a batchmean-style scale 1/count. Also checks TRL's ends: beta 0 is the forward
KL(teacher || student) and beta 1 the reverse KL(student || teacher), written
here with torch.nn.functional.kl_div.
Prints PASS/FAIL lines (max error relative to max(|ref|, 1e-3) for gradients);
exits 1 on failure; SKIP without torch. Env: BUILD.
"""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"SKIP gkd: {e} (install Debian's python3-torch)")
    sys.exit(0)
import gkd_ref  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(ROOT, BUILD, "tests", "test_gkd")
torch.set_num_threads(1)
failures = 0
tmp = tempfile.mkdtemp(prefix="gkd_test.")


def emit(ok, name, detail):
    global failures
    failures += not ok
    print(f"{'PASS' if ok else 'FAIL'} {name} ({detail})", flush=True)


def c_gjsd(s, t, w, beta, tau, scale):
    n, v = s.shape
    src, dst = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
    with open(src, "wb") as f:
        f.write(struct.pack("<ii3f", n, v, beta, tau, scale))
        f.write(s.astype("<f4").tobytes() + t.astype("<f4").tobytes() + w.astype("<f4").tobytes())
    subprocess.run([TOOL, "--dump", src, dst], check=True)
    raw = open(dst, "rb").read()
    return struct.unpack("<d", raw[:8])[0], np.frombuffer(raw[8:], "<f4").reshape(n, v)


rng = np.random.default_rng(7)
N, V = 24, 97
for tau in (1.0, 0.7, 2.0):
    for beta in (0.0, 0.1, 0.5, 0.9, 1.0):
        s = (rng.standard_normal((N, V)) * 3).astype(np.float32)
        t = (rng.standard_normal((N, V)) * 3).astype(np.float32)
        w = rng.choice([0.0, 1.0], N).astype(np.float32)
        w[0], w[1] = 1, 0
        scale = 1.0 / max(w.sum(), 1)  # batchmean over the counted positions
        loss_c, grad_c = c_gjsd(s, t, w, np.float32(beta), np.float32(tau), np.float32(scale))
        loss_r, grad_r = gkd_ref.gjsd(s, t, w, np.float32(beta).item(), np.float32(tau).item(), np.float32(scale).item())
        e_loss = abs(loss_c - loss_r) / max(abs(loss_r), 1)
        g = grad_r.numpy()
        e_grad = np.abs(grad_c - g).max() / max(np.abs(g).max(), 1e-3)
        zero_ok = np.all(grad_c[w == 0] == 0)
        emit(e_loss < 1e-5 and e_grad < 1e-5 and zero_ok, f"gkd_torch_beta{beta}_tau{tau}",
             f"loss {loss_c:.6f} vs {loss_r:.6f}, rel err {e_loss:.2g}; grad max err {e_grad:.2g}")

# TRL's ends, with torch's kl_div (input = log of the second argument of KL)
s = (rng.standard_normal((N, V)) * 2).astype(np.float32)
t = (rng.standard_normal((N, V)) * 2).astype(np.float32)
ones = np.ones(N, np.float32)
ls = F.log_softmax(torch.tensor(s, dtype=torch.float64), -1)
lt = F.log_softmax(torch.tensor(t, dtype=torch.float64), -1)
fwd = F.kl_div(ls, lt, reduction="sum", log_target=True).item()  # KL(teacher || student)
rev = F.kl_div(lt, ls, reduction="sum", log_target=True).item()  # KL(student || teacher)
l0, _ = c_gjsd(s, t, ones, 0.0, 1.0, 1.0)
l1, _ = c_gjsd(s, t, ones, 1.0, 1.0, 1.0)
emit(abs(l0 - fwd) < 1e-5 * fwd and abs(l1 - rev) < 1e-5 * rev and abs(fwd - rev) > 1e-2,
     "gkd_beta0_forward_beta1_reverse_kl",
     f"beta 0 {l0:.6f} = KL(t||s) {fwd:.6f}; beta 1 {l1:.6f} = KL(s||t) {rev:.6f}")
sys.exit(1 if failures else 0)
