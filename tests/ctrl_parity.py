"""What the control parity tests (tests/ctrl_*_test.py) share: ctrl_mlp's
parameter layout rebuilt in PyTorch (float64), reading the raw float32 files
the dump tools write, and flattening parameters and Adam moments to compare
with the C agent's tensors. torch and numpy are None when missing (the tests
then skip)."""
import json
import os
import subprocess

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError:
    np = torch = nn = None


def run_tool(path, *args, timeout=300):
    """A test tool's run, its output as text, on one OpenMP thread (idle
    threads spin on a busy machine)."""
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def dump_meta(d, tool, *args):
    """Runs a dump tool (tool *args, which name the folder d) on one thread;
    returns (meta.json of d, None), or (None, the end of its stderr)."""
    p = run_tool(tool, *args)
    if p.returncode != 0:
        return None, p.stderr[-500:]
    return json.load(open(os.path.join(d, "meta.json"))), None


def report_parity(report, d, label, worst, why,
                  owned=("actor", "critic", "critic_target", "log_alpha")):
    """The end of an update-parity check: every tensor the update owns must have
    moved in update 1 (else the comparison proves little); prints the largest
    errors (params, Adam moments, losses) and reports LABEL_parity."""
    for name in owned:
        if torch.equal(load_f32(d, f"init.{name}"), load_f32(d, f"after.1.{name}")):
            why.append(f"{name} did not change")
    print(f"  {label}: max error params {worst[0]:.2e}, Adam moments {worst[1]:.2e}, "
          f"losses {worst[2]:.2e} (relative to max(1, |value|))")
    report(not why, f"{label}_parity", "; ".join(why[:6]))


def load_f32(d, name):
    """DIR/NAME.f32 (raw float32, as dump_write_f32 writes) as a float64 tensor."""
    return torch.from_numpy(np.fromfile(os.path.join(d, name + ".f32"), dtype=np.float32).astype(np.float64))


def mlp(flat, x, n_in, hidden, layers, n_out, ens, layer_norm=False):
    """ctrl_mlp's forward as a function of its flat span: member by member,
    layer by layer W (out, in) then b (then, with layer_norm, a hidden layer's
    LayerNorm scale and shift, torch's layer_norm at eps 1e-5, before the ReLU;
    layer_norm "post": after it, a wrong order for tests to catch); returns (E, R, out)."""
    dims = [n_in] + [hidden] * layers + [n_out]
    size = sum(dims[i + 1] * dims[i] + dims[i + 1] for i in range(len(dims) - 1))
    if layer_norm:
        size += 2 * hidden * layers
    assert flat.numel() == size * ens
    ys = []
    for e in range(ens):
        p, off, h = flat[e * size:(e + 1) * size], 0, x
        for i in range(len(dims) - 1):
            w = p[off:off + dims[i + 1] * dims[i]].view(dims[i + 1], dims[i])
            off += dims[i + 1] * dims[i]
            b = p[off:off + dims[i + 1]]
            off += dims[i + 1]
            h = h @ w.T + b
            if i < len(dims) - 2:
                if layer_norm:
                    g, s = p[off:off + dims[i + 1]], p[off + dims[i + 1]:off + 2 * dims[i + 1]]
                    off += 2 * dims[i + 1]
                    ln = lambda v: torch.nn.functional.layer_norm(v, (dims[i + 1],), g, s, eps=1e-5)  # noqa: E731
                    h = ln(torch.relu(h)) if layer_norm == "post" else torch.relu(ln(h))
                else:
                    h = torch.relu(h)
        ys.append(h)
    return torch.stack(ys)


def mlp_members(flat, dims, E):
    """ctrl_mlp's span -> E nn.Sequential (float64): member by member, layer by
    layer W (out, in) row-major then b."""
    flat = torch.tensor(flat, dtype=torch.float64)
    per = flat.numel() // E
    members = []
    for e in range(E):
        off = e * per
        layers = []
        for i in range(len(dims) - 1):
            lin = nn.Linear(dims[i], dims[i + 1]).double()
            nw = dims[i] * dims[i + 1]
            with torch.no_grad():
                lin.weight.copy_(flat[off:off + nw].view(dims[i + 1], dims[i]))
                lin.bias.copy_(flat[off + nw:off + nw + dims[i + 1]])
            off += nw + dims[i + 1]
            layers += [lin, nn.ReLU()] if i < len(dims) - 2 else [lin]
        members.append(nn.Sequential(*layers))
    return members


def params_of(members):
    return [p for m in members for p in m.parameters()]


def flat_of(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def adam_flat(opt, params, key):
    """torch.optim.Adam's exp_avg / exp_avg_sq over params, flat (zeros before a step)."""
    return torch.cat([opt.state[p][key].reshape(-1) if p in opt.state
                      else torch.zeros(p.numel(), dtype=torch.float64) for p in params])
