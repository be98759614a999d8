"""LaMo (src/ctrl/lamo.c, lamo_train.c; rlhf ctrl train --algo lamo) against an
independent float64 PyTorch replay, and its command line.

Replay (tests/tools/ctrl_lamo_dump step: a small random GPT-2 and Llama model
with LoRA r 4, alpha 12 on q/k/v (GPT-2 c_attn), B randomised): the loss
    L = mean over real (b, t), i of (a_hat - a)^2 + lambda * mean NLL(text)
written here from the paper and the authors' code (decision_transformer.py,
utils.py): residual MLP embeddings h = W1 x + b1, e = W2 GELU(h) + b2 + h
(exact erf GELU, nn.GELU's default) of return-to-go, state and action,
stacked (R_1, s_1, a_1, R_2, ...), LayerNorm (eps 1e-5), plus nn.Embedding
of the timestep; the transformer is tests/torch_model_ref.py fed those vectors
(GPT-2's learned positions added, Llama's RoPE) with the adapters merged as
W + (alpha / r) B A on the rows they cover; the head MLP (GELU) and tanh on
the hidden state of each state token. Checked: both loss terms (1e-5
relative), a_hat (1e-5), the gradient of every part of the net's span (the
three embeddings, the LayerNorm, the timestep table, the head; 2e-4 relative
to each part's largest entry) and of every LoRA A and B (2e-4), with
lambda 0.3; each checked gradient must be non-zero.
Frozen (ctrl_lamo_dump frozen): lambda 0 and LoRA B = 0 at init, three AdamW
steps: no base weight of the LM moves, A gets exactly zero gradient at the
first step, B gets a non-zero one and moves.
Command line: bad settings refused with a message naming the flag; a short
run on stories260K with a text loss writes metrics.jsonl and summary.json
with finite losses and a score; --lamo_pretrained 0 --lamo_lora_r 0 trains
every weight of a fresh model (the DT baseline).
Checkpoints (src/ctrl/lamo_ckpt.c): a 12-step run (LoRA, text loss) with
--save_every 5 writes step-5, step-10 and final, no temp folders; the same run
stopped at step 7 (--stop_at) and resumed, and again with step-7's tensors
deleted (resumed from step 5), ends with byte-identical agent.safetensors and
the same metrics.jsonl; so does the DT baseline (every LM weight a trained
tensor) stopped and resumed; --resume with another --lamo_lora_r or --seed is
refused naming the flag, leaving the run untouched; `rlhf ctrl eval` of the
final checkpoints prints the return and score the run's own final evaluation
logged (same --seed, episodes); a changed base model is refused.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, RLHF, report, exit_code  # noqa: E402

try:
    import numpy as np  # noqa: E402
    import torch  # noqa: E402
except ImportError as e:
    print(f"SKIP ctrl_lamo: {e} (install Debian's python3-torch)")
    sys.exit(0)

import st_io  # noqa: E402
import torch_model_ref as ref  # noqa: E402

torch.set_default_dtype(torch.float64)
TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_lamo_dump")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
STORIES = os.path.join(ROOT, "..", "shared", "data", "llama2c", "stories260K.bin")
R, ALPHA = 4, 12.0
TOL_LOSS, TOL_GRAD = 1e-5, 2e-4


def tool(*args):
    p = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=120, env=ENV)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-500:])
    return [json.loads(x) for x in p.stdout.splitlines() if x.strip()]


def rel(c, r):
    c, r = np.asarray(c, dtype=np.float64), np.asarray(r, dtype=np.float64)
    return float(np.abs(c - r).max() / max(float(np.abs(r).max()), 1e-12))


def net_parts(flat, S, A, C, T):
    """The net's span split by the layout of src/ctrl/lamo.c."""
    out, o = {}, 0

    def take(name, *shape):
        nonlocal o
        n = int(np.prod(shape))
        out[name] = flat[o:o + n].reshape(*shape)
        o += n

    for k, w in (("rtg", 1), ("state", S), ("action", A)):
        take(k + ".w1", C, w), take(k + ".b1", C), take(k + ".w2", C, C), take(k + ".b2", C)
    take("ln.w", C), take("ln.b", C), take("time", T, C)
    take("head.w1", C, C), take("head.b1", C), take("head.w2", A, C), take("head.b2", A)
    assert o == flat.numel(), (o, flat.numel())
    return out


def block(p, k, x):
    h = x @ p[k + ".w1"].T + p[k + ".b1"]
    return torch.nn.functional.gelu(h) @ p[k + ".w2"].T + p[k + ".b2"] + h


def lora_rows(cfg):
    """site -> (rows of attn.qkv it covers); from the config, not the engine."""
    NH, NKV, C = cfg["n_head"], cfg["n_kv_head"], cfg["n_embd"]
    HS = C // NH
    if cfg["arch"] == "gpt2":
        return {"attn.qkv": (0, (NH + 2 * NKV) * HS)}
    return {"attn.q": (0, NH * HS), "attn.k": (NH * HS, NKV * HS),
            "attn.v": ((NH + NKV) * HS, NKV * HS)}


# LaMo's training dropout, rebuilt from src/nn/misc.c (dropout_key, dropout_kept)
# and the keys of src/ctrl/lamo.c (set_dropout), src/model/model.c (drop_key) and
# src/model/lora.c (drop_key): counter-based, so the replay draws the same masks
M64, GOLD = (1 << 64) - 1, 0x9E3779B97F4A7C15
DROP_SEED = 24301  # tests/tools/ctrl_lamo_dump.c


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def dropout_key(seed, site):
    return mix64(seed ^ mix64((GOLD * site) & M64))


def keep_mask(key, shape, p):
    """(shape) float64: 1/(1-p) where kept, 0 where dropped (row-major element index)"""
    n = int(np.prod(shape))
    kept = [(mix64((key + GOLD * (i + 1)) & M64) >> 11) * 2.0 ** -53 >= p for i in range(n)]
    return torch.tensor(np.array(kept, dtype=np.float64).reshape(shape) / (1.0 - p))


def dropper(seed, p):
    """drop(layer, site, x) of rlhf_model's embd/resid dropout keyed on seed"""
    if not p > 0:
        return None
    return lambda layer, site, x: x * keep_mask(dropout_key(seed, 2 * (layer + 1) + site + 1),
                                                tuple(x.shape), p)


ATTN_SITE = 1 << 20  # model.c's ATTN_DROP_SITE: layer l's probabilities are site ATTN_SITE + l


def attn_dropper(seed, p, token0=0):
    """attn_drop(layer, probs) of rlhf_model's attn_dropout keyed on seed: the element of
    (row b, head h, query t, key s) is ((token0 + b T + t) NH + h) T + s (src/nn/attention.c)"""
    if not p > 0:
        return None

    def drop(layer, probs):
        B, NH, T, _ = probs.shape
        assert token0 == 0  # one process: the whole batch
        m = keep_mask(dropout_key(seed, ATTN_SITE + layer), (B, T, NH, T), p)
        return probs * m.permute(0, 2, 1, 3)
    return drop


LORA_KIND = {"attn.q": 0, "attn.k": 1, "attn.v": 2, "attn.qkv": 3}  # lora.c's kinds
N_KIND = 8


def replay(arch, tmp, drop=0.0, lora_drop=0.0, positions=2, attn_drop=0.0):
    """One LaMo loss and its gradients against the float64 replay; with drop /
    lora_drop / attn_drop the training dropout (masks rebuilt here) and --lamo_positions"""
    tag = "" if (drop, lora_drop, positions, attn_drop) == (0.0, 0.0, 2, 0.0) else \
        f"+drop{drop:g}/lora{lora_drop:g}/attn{attn_drop:g}/pos{positions}"
    out = os.path.join(tmp, arch + tag.replace("/", "_"))
    os.makedirs(out)
    res = tool("step", out, arch, *((drop, lora_drop, positions, attn_drop) if tag else ()))[0]
    cfg = json.load(open(os.path.join(out, "config.json")))
    W = st_io.load(os.path.join(out, "weights.safetensors"))
    io = st_io.load(os.path.join(out, "io.safetensors"))
    S, A, K, C, T, tanh_head = (int(x) for x in io["dims"])
    P = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in W.items()}
    base = {k: v for k, v in P.items() if ".lora_" not in k}
    sites = lora_rows(cfg)

    def adapters(seed):
        """qkv_extra: the adapters, each on its own dropped input (lora.c)"""
        def extra(layer, a):
            Bq, Tq, C_ = a.shape
            parts = []
            for s, (off, n) in sites.items():
                A_, B_ = P[f"layers.{layer}.{s}.lora_A"], P[f"layers.{layer}.{s}.lora_B"]
                key = dropout_key(seed, layer * N_KIND + LORA_KIND[s] + 1)
                x = a * keep_mask(key, (Bq, Tq, C_), lora_drop)
                parts.append((off, n, (ALPHA / R) * (x @ A_.T) @ B_.T))
            width = sum(n for _, n, _ in parts)
            y = torch.zeros(Bq, Tq, width, dtype=a.dtype)
            for off, n, v in parts:
                y = y + torch.nn.functional.pad(v, (off, width - off - n))
            return y
        return extra

    def lm_forward(which, P_, tokens, mask_, pos=None):
        """the model forward of lamo.c's DT (which 0) or text (1) pass"""
        kw = {"no_wpe": positions == 0, "pos": pos}
        if tag:
            kw["drop"] = dropper(dropout_key(DROP_SEED, 2 * which + 1), drop)
            kw["attn_drop"] = attn_dropper(dropout_key(DROP_SEED, 2 * which + 1), attn_drop)
        if lora_drop > 0:
            kw["qkv_extra"] = adapters(dropout_key(DROP_SEED, 2 * which + 2))
        return ref.forward(cfg, P_, tokens, mask_, **kw)

    for layer in range(cfg["n_layer"]):
        if lora_drop > 0:
            break  # the adapters run beside the base (qkv_extra), not merged into it
        key = f"layers.{layer}.attn.qkv.weight"
        delta = torch.zeros_like(base[key])
        for s, (off, n) in sites.items():
            a, b = P[f"layers.{layer}.{s}.lora_A"], P[f"layers.{layer}.{s}.lora_B"]
            d = torch.zeros_like(delta)
            d[off:off + n] = (ALPHA / R) * (b @ a)
            delta = delta + d
        base[key] = base[key] + delta
    flat = torch.tensor(io["net"].astype(np.float64), requires_grad=True)
    p = net_parts(flat, S, A, C, T)
    rtg = torch.tensor(io["rtg"].astype(np.float64))[..., None]
    obs, act = (torch.tensor(io[k].astype(np.float64)) for k in ("obs", "act"))
    mask = torch.tensor(io["mask"].astype(np.int64))
    B = rtg.shape[0]
    e = torch.stack([block(p, "rtg", rtg), block(p, "state", obs), block(p, "action", act)], 2)
    e = e.reshape(B, 3 * K, C)
    x = torch.nn.functional.layer_norm(e, (C,), p["ln.w"], p["ln.b"], 1e-5)
    x = x + p["time"][torch.tensor(io["timestep"].astype(np.int64))].repeat_interleave(3, dim=1)
    mask3 = mask.repeat_interleave(3, dim=1)
    fake = dict(base)
    fake["tok_emb.weight"] = x.reshape(B * 3 * K, C)  # token i reads input vector i
    pos = None
    if positions == 1:  # HF GPT-2's default position ids: the index in the padded window
        pos = torch.arange(3 * K).repeat(B, 1)
    hidden, _ = lm_forward(0, fake, torch.arange(B * 3 * K).reshape(B, 3 * K), mask3, pos)
    y = hidden[:, 1::3]
    ahat = torch.nn.functional.gelu(y @ p["head.w1"].T + p["head.b1"]) @ p["head.w2"].T + p["head.b2"]
    if tanh_head:
        ahat = torch.tanh(ahat)
    real = mask.bool()
    l_act = ((ahat - act) ** 2)[real].mean()
    tok = torch.tensor(io["lm_tokens"].astype(np.int64))
    tgt = torch.tensor(io["lm_targets"].astype(np.int64))
    _, logits = lm_forward(1, base, tok, torch.ones_like(tok))
    lp = torch.log_softmax(logits, -1)
    on = tgt >= 0
    l_lm = -lp.gather(-1, tgt.clamp(min=0)[..., None])[..., 0][on].mean()
    coeff = float(io["losses"][2])
    (l_act + coeff * l_lm).backward()
    name = f"replay/{arch}{tag}"
    if tag:
        report(res["eval_same"] == 1, f"{name}/evaluation forwards deterministic",
               "lamo_predict_last differs between calls or from a dropout-off forward")
    c_act, c_lm = float(io["losses"][0]), float(io["losses"][1])
    report(abs(c_act - l_act.item()) <= TOL_LOSS * abs(l_act.item())
           and abs(c_lm - l_lm.item()) <= TOL_LOSS * abs(l_lm.item()),
           f"{name}/losses (action mse {c_act:.6g}, lm nll {c_lm:.6g})",
           f"C {c_act}, {c_lm}; torch {l_act.item()}, {l_lm.item()}")
    e_a = rel(io["ahat"][io["mask"] > 0], ahat.detach().numpy()[real.numpy()])
    report(e_a <= TOL_LOSS, f"{name}/a_hat (rel err {e_a:.2g})", f"rel err {e_a}")
    gflat = flat.grad.numpy()
    gparts = net_parts(torch.tensor(gflat), S, A, C, T)
    cparts = net_parts(torch.tensor(io["grad_net"]), S, A, C, T)
    worst, bad = 0.0, []
    for k in gparts:
        r_, c_ = gparts[k].numpy(), cparts[k].numpy()
        if not np.abs(r_).max() > 0:
            bad.append(f"{k}: zero gradient in the replay")
            continue
        err = rel(c_, r_)
        worst = max(worst, err)
        if err > TOL_GRAD:
            bad.append(f"{k}: rel err {err:.3g}")
    # only the timesteps the batch used get a gradient
    used = set(int(t) for t, m in zip(io["timestep"].reshape(-1), io["mask"].reshape(-1)) if m)
    unused = [t for t in range(T) if t not in used]
    if unused and np.abs(cparts["time"].numpy()[unused]).max() != 0:
        bad.append("unused timestep rows got a gradient")
    report(not bad, f"{name}/net gradients ({len(gparts)} parts, worst rel err {worst:.2g})",
           "; ".join(bad[:5]))
    worst, bad, n = 0.0, [], 0
    for k, v in P.items():
        if ".lora_" not in k:
            continue
        n += 1
        if "grad." + k not in io:
            bad.append(f"{k} not in the dump")
            continue
        r_ = v.grad.numpy()
        err = rel(io["grad." + k], r_)
        worst = max(worst, err)
        if err > TOL_GRAD or not np.abs(r_).max() > 0:
            bad.append(f"{k}: rel err {err:.3g}")
    extra = [k for k in io if k.startswith("grad.") and ".lora_" not in k]
    if extra:
        bad.append(f"gradients of frozen tensors {extra[:3]}")
    report(not bad and n > 0, f"{name}/lora gradients ({n} tensors, worst rel err {worst:.2g})",
           "; ".join(bad[:5]))
    return io["ahat"][io["mask"] > 0]


def frozen(arch):
    d = tool("frozen", arch)[0]
    ok = d["base_change"] == 0 and d["grad_A_step1"] == 0 and d["grad_B_step1"] > 0 and d["B_change"] > 0
    report(ok, f"frozen/{arch}: lambda 0, B = 0 at init: base unchanged, dA = 0, B moves", str(d))


def cli(tmp):
    data = os.path.join(tmp, "pend.hdf5")
    tool("data", data, 4, 3)
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.write("Once upon a time, there was a little girl named Lily. She liked to play in the "
                "park with her dog. One day the sun was hot and they sat under a big tree. " * 4)
    have_model = os.path.exists(STORIES)
    model = STORIES if have_model else "llama-tiny"
    common = ["ctrl", "train", "--algo", "lamo", "--env", "pendulum", "--dataset", data,
              "--lamo_model", model, "--quiet"]

    def go(*extra):
        return subprocess.run([RLHF, *common, *extra], capture_output=True, text=True, env=ENV,
                              timeout=300, cwd=ROOT)

    cases = [(["--lamo_K", "0"], "--lamo_K"), (["--lamo_lora_r", "-1"], "--lamo_lora_r"),
             (["--lamo_lm_coeff", "-1"], "--lamo_lm_coeff"),
             (["--lamo_rtg_scale", "0"], "--lamo_rtg_scale"),
             (["--online_steps", "5"], "--online_steps"),
             (["--lamo_K", "400"], "--lamo_K"),  # 3K past the model's positions
             (["--lamo_pretrained", "2"], "--lamo_pretrained")]
    bad = []
    for extra, flag in cases:
        p = go("--offline_steps", "2", *extra)
        if p.returncode == 0 or flag not in p.stderr:
            bad.append(f"{' '.join(extra)}: rc {p.returncode}, {p.stderr.strip()[-160:]!r}")
    p = subprocess.run([RLHF, "ctrl", "train", "--algo", "lamo", "--env", "pendulum", "--dataset",
                        data, "--offline_steps", "2", "--quiet"], capture_output=True, text=True,
                       env=ENV, timeout=60, cwd=ROOT)
    if p.returncode == 0 or "--lamo_model" not in p.stderr:
        bad.append(f"no --lamo_model: rc {p.returncode}, {p.stderr.strip()[-160:]!r}")
    report(not bad, f"cli/refused ({len(cases) + 1} bad settings name their flag)", "; ".join(bad))

    out = os.path.join(tmp, "run")
    p = go("--offline_steps", "30", "--batch_size", "4", "--lamo_K", "5", "--eval_episodes", "2",
           "--eval_every", "15", "--log_every", "10", "--lamo_text", text, "--lamo_lm_len", "16",
           "--output_dir", out)
    if p.returncode != 0:
        report(False, "cli/run", p.stderr[-400:])
        return
    rows = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    train = [r for r in rows if "action_mse" in r]
    evals = [r for r in rows if "eval/return_mean" in r]
    s = json.load(open(os.path.join(out, "summary.json")))
    ok = (len(train) == 3 and len(evals) == 2 and all(math.isfinite(r["action_mse"]) and r["lm_nll"] > 0
                                                      for r in train)
          and s["lm_loss"] == 1 and s["lora_r"] == 16 and s["updates"] == 30
          and s["normalized_score"] is not None and math.isfinite(s["eval_return_mean"])
          and s["eval_return_mean"] == evals[-1]["eval/return_mean"])
    report(ok, f"cli/run (30 steps, mse {train[0]['action_mse']:.3f} -> {train[-1]['action_mse']:.3f}, "
               f"lm nll {train[-1]['lm_nll']:.2f}, score {s['normalized_score']:.1f})",
           json.dumps(s)[:400])
    out2 = os.path.join(tmp, "dt")
    p = go("--offline_steps", "3", "--batch_size", "2", "--lamo_K", "3", "--eval_episodes", "1",
           "--lamo_pretrained", "0", "--lamo_lora_r", "0", "--lamo_lm_coeff", "0", "--output_dir", out2)
    s2 = json.load(open(os.path.join(out2, "summary.json"))) if p.returncode == 0 else {}
    want = s.get("trainable_lm_params", 0)
    report(p.returncode == 0 and s2.get("pretrained") == 0 and s2.get("lm_loss") == 0
           and s2.get("trainable_lm_params", 0) > 5 * max(want, 1),
           f"cli/dt baseline (fresh init, {s2.get('trainable_lm_params')} LM floats train "
           f"vs {want} with LoRA)", p.stderr[-300:] + json.dumps(s2)[:300])
    try:
        checkpoints(tmp, data, text, model)
    except Exception as e:  # noqa: BLE001
        report(False, "ckpt", repr(e)[:400])
    if have_model:
        base_changed(tmp, data)


def metrics(out):
    """metrics.jsonl without its seconds"""
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"}
            for x in open(os.path.join(out, "metrics.jsonl"))]


def final_bytes(out):
    with open(os.path.join(out, "checkpoints", "final", "agent.safetensors"), "rb") as f:
        return f.read()


def eval_matches(out, episodes, seed):
    """rlhf ctrl eval of the run's final checkpoint against its summary.json"""
    p = subprocess.run([RLHF, "ctrl", "eval", "--run", out, "--episodes", str(episodes), "--seed",
                        str(seed)], capture_output=True, text=True, env=ENV, timeout=120, cwd=ROOT)
    s = json.load(open(os.path.join(out, "summary.json")))
    want = f"return {s['eval_return_mean']:.2f} ± {s['eval_return_std']:.2f} over {episodes} episodes"
    if s["normalized_score"] is not None:
        want += f"; normalized score {s['normalized_score']:.1f}"
    return p.returncode == 0 and want in p.stdout, f"{p.stdout.strip()} {p.stderr.strip()[-200:]} | want {want}"


def checkpoints(tmp, data, text, model):
    def go(out, *extra, check=True):
        p = subprocess.run([RLHF, "ctrl", "train", "--algo", "lamo", "--env", "pendulum",
                            "--dataset", data, "--lamo_model", model, "--quiet", "--batch_size", "4",
                            "--lamo_K", "5", "--eval_episodes", "2", "--eval_every", "6",
                            "--log_every", "3", "--save_every", "5", "--seed", "4",
                            "--output_dir", out, *extra],
                           capture_output=True, text=True, env=ENV, timeout=300, cwd=ROOT)
        if check and p.returncode:
            raise RuntimeError(f"{' '.join(extra)}: {p.stderr[-400:]}")
        return p

    lora = ["--offline_steps", "12", "--lamo_text", text, "--lamo_lm_len", "16"]
    a = os.path.join(tmp, "ck-a")
    go(a, *lora)
    ck = sorted(os.listdir(os.path.join(a, "checkpoints")))
    st = json.load(open(os.path.join(a, "checkpoints", "final", "state.json")))
    names = set(st_io.load(os.path.join(a, "checkpoints", "final", "agent.safetensors")))
    want = {"net", "net.adam_m", "net.adam_v", "lm.adam_m", "lm.adam_v", "obs_norm.mean",
            "obs_norm.std"}
    report(ck == ["final", "step-00000005", "step-00000010"] and st["step"] == 12
           and st["lamo_model"] == model and want <= names
           and any(n.startswith("lm.") and n.endswith("lora_A") for n in names),
           f"ckpt/written ({', '.join(ck)}; {len(names)} tensors)", f"{ck} {sorted(names)[:12]} {st.get('step')}")

    b = os.path.join(tmp, "ck-b")
    p = go(b, *lora, "--stop_at", "7")
    ck_b = sorted(os.listdir(os.path.join(b, "checkpoints")))
    stopped = ck_b == ["step-00000005", "step-00000007"] and not os.path.exists(
        os.path.join(b, "summary.json"))
    go(b, *lora, "--resume")
    report(stopped and final_bytes(a) == final_bytes(b) and metrics(a) == metrics(b),
           "ckpt/stopped at 7, resumed: final agent.safetensors and metrics.jsonl identical",
           f"stopped {stopped} {ck_b}; bytes same {final_bytes(a) == final_bytes(b)}")

    c = os.path.join(tmp, "ck-c")  # the newest checkpoint incomplete: resumed from step 5
    go(c, *lora, "--stop_at", "7")
    os.remove(os.path.join(c, "checkpoints", "step-00000007", "agent.safetensors"))
    p = go(c, *lora, "--resume")
    report("skipping the incomplete checkpoint" in p.stderr and "step-00000007" in p.stderr
           and final_bytes(a) == final_bytes(c) and metrics(a) == metrics(c),
           "ckpt/incomplete step-7 skipped, resumed from step 5: identical", p.stderr[-300:])

    # a finished run extended by --resume with more --offline_steps (the warm-up given, so it
    # stays): bit-identical to the longer run; the same steps again: nothing to do, refused
    warm = ["--lamo_warmup", "3", "--lamo_text", text, "--lamo_lm_len", "16"]
    x, y = os.path.join(tmp, "ck-x"), os.path.join(tmp, "ck-y")
    go(x, "--offline_steps", "12", *warm)
    go(y, "--offline_steps", "6", *warm)
    go(y, "--offline_steps", "12", *warm, "--resume")
    again = go(y, "--offline_steps", "12", *warm, "--resume", check=False)
    report(final_bytes(x) == final_bytes(y) and metrics(x) == metrics(y) and again.returncode == 1
           and "is finished at step 12 of 12: nothing to do" in again.stderr,
           "ckpt/a finished 6-step run extended to 12 by --resume: identical to the 12-step run; "
           "again: nothing to do", again.stderr[-300:])

    n = os.path.join(tmp, "ck-n")  # a NaN gradient at step 8: no update, stopped, step-5 kept
    p = subprocess.run([RLHF, "ctrl", "train", "--algo", "lamo", "--env", "pendulum", "--dataset",
                        data, "--lamo_model", model, "--quiet", "--batch_size", "4", "--lamo_K",
                        "5", "--eval_episodes", "2", "--eval_every", "6", "--log_every", "3",
                        "--save_every", "5", "--seed", "4", "--output_dir", n, *lora],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**ENV, "RLHF_TEST_NAN_GRAD_STEP": "8"})
    ck_n = sorted(os.listdir(os.path.join(n, "checkpoints")))
    go(n, *lora, "--resume")
    report(p.returncode == 1 and "lamo step 8: a gradient is not finite" in p.stderr
           and ck_n == ["step-00000005"] and final_bytes(a) == final_bytes(n)
           and metrics(a) == metrics(n),
           "ckpt/NaN gradient at step 8: stopped with step-5 kept; resumed: identical",
           f"exit {p.returncode}, {ck_n}: {p.stderr[-300:]}")

    before = final_bytes(a)
    bad = []
    for extra, flag in ((["--lamo_lora_r", "8"], "--lamo_lora_r"), (["--seed", "5"], "--seed"),
                        (["--lamo_attn_dropout", "0.2"], "--lamo_attn_dropout")):
        q = go(a, *lora, "--resume", *extra, check=False)
        if q.returncode == 0 or flag not in q.stderr:
            bad.append(f"{flag}: rc {q.returncode}, {q.stderr.strip()[-200:]!r}")
    report(not bad and final_bytes(a) == before, "ckpt/--resume with other settings refused "
           "(--lamo_lora_r, --seed, --lamo_attn_dropout named), run untouched", "; ".join(bad))

    # the runs above train with the default dropout (0.1, 0.1, 0.1); without it, others
    off = ["--lamo_dropout", "0", "--lamo_attn_dropout", "0", "--lamo_lora_dropout", "0",
           "--lamo_positions", "2"]
    f = os.path.join(tmp, "ck-f")
    go(f, *lora, *off)
    report(final_bytes(f) != final_bytes(a), "ckpt/dropout on trains other weights than off", "")
    g = os.path.join(tmp, "ck-g")  # the attention probabilities' dropout alone off
    go(g, *lora, "--lamo_attn_dropout", "0")
    gs = json.load(open(os.path.join(g, "checkpoints", "final", "state.json")))["algo_config"]
    sa = json.load(open(os.path.join(a, "checkpoints", "final", "state.json")))["algo_config"]
    report(final_bytes(g) != final_bytes(a) and gs.get("lamo_attn_dropout") == 0
           and abs(sa.get("lamo_attn_dropout", -1) - 0.1) < 1e-6,
           "ckpt/--lamo_attn_dropout 0 trains other weights than the default 0.1 (both recorded)",
           f"{gs.get('lamo_attn_dropout')} {sa.get('lamo_attn_dropout')}")
    # a checkpoint from before the settings (keys removed) is one without dropout,
    # positions by real tokens: refused with the defaults, resumed with those
    e = os.path.join(tmp, "ck-e")
    go(e, *lora, *off, "--stop_at", "7")
    sp = os.path.join(e, "checkpoints", "step-00000007", "state.json")
    st = json.load(open(sp))
    for k in ("lamo_dropout", "lamo_attn_dropout", "lamo_lora_dropout", "lamo_positions"):
        del st["algo_config"][k]
    json.dump(st, open(sp, "w"))
    q = go(e, *lora, "--resume", check=False)
    go(e, *lora, *off, "--resume")
    report(q.returncode != 0 and "--lamo_dropout 0" in q.stderr and final_bytes(e) == final_bytes(f)
           and metrics(e) == metrics(f), "ckpt/a checkpoint without the dropout settings: refused "
           "with the defaults (--lamo_dropout named), resumed without dropout: identical",
           q.stderr[-300:])

    dt = ["--offline_steps", "8", "--lamo_pretrained", "0", "--lamo_lora_r", "0", "--lamo_lm_coeff", "0"]
    d1, d2 = os.path.join(tmp, "ck-dt1"), os.path.join(tmp, "ck-dt2")
    go(d1, *dt)
    go(d2, *dt, "--stop_at", "3")
    go(d2, *dt, "--resume")
    report(final_bytes(d1) == final_bytes(d2) and metrics(d1) == metrics(d2),
           "ckpt/dt baseline (every LM weight trained) stopped at 3, resumed: identical", "")

    for out, what in ((a, "lora"), (d1, "dt")):
        ok, why = eval_matches(out, 2, 4)
        report(ok, f"eval/{what}: rlhf ctrl eval of final = the run's final evaluation", why)


def base_changed(tmp, data):
    """ctrl eval of a checkpoint whose --lamo_model file has changed since: refused"""
    model = os.path.join(tmp, "base.bin")
    with open(STORIES, "rb") as f:
        raw = bytearray(f.read())
    with open(model, "wb") as f:
        f.write(raw)
    out = os.path.join(tmp, "ck-base")
    p = subprocess.run([RLHF, "ctrl", "train", "--algo", "lamo", "--env", "pendulum", "--dataset",
                        data, "--lamo_model", model, "--quiet", "--offline_steps", "2",
                        "--batch_size", "2", "--lamo_K", "3", "--eval_episodes", "1",
                        "--output_dir", out], capture_output=True, text=True, env=ENV, timeout=120)
    raw[len(raw) // 2] ^= 0x40
    with open(model, "wb") as f:
        f.write(raw)
    q = subprocess.run([RLHF, "ctrl", "eval", "--run", out, "--episodes", "1"], capture_output=True,
                       text=True, env=ENV, timeout=120)
    report(p.returncode == 0 and q.returncode == 1 and "frozen weights differ" in q.stderr
           and model in q.stderr, "eval/a changed base model is refused, naming it",
           p.stderr[-200:] + q.stdout + q.stderr[-300:])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("gpt2", "llama"):
            try:
                old = replay(arch, tmp)
                for drop, lora_drop, positions, attn in ((0.1, 0.1, 0, 0.1), (0.3, 0.2, 1, 0.25),
                                                         (0.0, 0.0, 2, 0.3)):
                    replay(arch, tmp, drop, lora_drop, positions, attn)
                # positions alone (each replayed above to 1e-5): GPT-2's a_hat moves
                # by far more than that from the real-token count (2, the builds before
                # --lamo_positions) under 0 (no learned positions, the authors') and 1
                # (the padded window); Llama's RoPE is relative, so 1 leaves it equal
                for positions in (0, 1):
                    moved = rel(replay(arch, tmp, 0.0, 0.0, positions), old)
                    if arch == "gpt2":
                        report(moved > 1e-3, f"positions/gpt2: --lamo_positions {positions} moves "
                               f"a_hat from the real-token count's (rel {moved:.2g})", "")
                    elif positions == 1:
                        report(moved <= 1e-5, f"positions/llama: RoPE over the padded window = "
                               f"the real-token count (a_hat rel {moved:.2g})", "")
            except Exception as e:  # noqa: BLE001
                report(False, f"replay/{arch}", repr(e)[:400])
            try:
                frozen(arch)
            except Exception as e:  # noqa: BLE001
                report(False, f"frozen/{arch}", repr(e)[:400])
        cli(tmp)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
