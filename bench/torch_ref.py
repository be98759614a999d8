#!/usr/bin/python3
"""PyTorch reference for the rlhf.c benchmarks (bench/run.sh).

The same GPT-2 model as the C side (LayerNorm eps 1e-5, GELU(tanh), biases,
fused qkv, tied LM head, GPT-2 init), written as a plain nn.Module -- the
reference a user would write -- and timed on the same workloads:

  sft   forward + cross-entropy + backward + AdamW step
  fwd   no-grad forward returning per-token log-probs of targets
  gen   KV-cache sampling loop (prefill + one token at a time)
  dpo   one DPO step on pairs (reference log-probs precomputed, not timed)
  grpo  one GRPO iteration: generate, score, reference log-probs, update

One JSON line per workload goes to stdout; progress goes to stderr.

FLOP model (shared with the C side), per token:
  training  6*P + 6*L*T*C,   forward only  2*P + 2*L*T*C,
  P = 12*L*C^2 + V*C  (matmul parameters incl. the LM head).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # name: (n_layer, n_head, n_embd, vocab_size, max_seq_len), as src/model/config.c
    "tiny": (4, 4, 128, 259, 256),
    "small": (6, 6, 384, 259, 512),
    "gpt2": (12, 12, 768, 50257, 1024),
}

DEFAULT_STEPS = {"sft": 2, "fwd": 3, "gen": 1, "dpo": 1, "grpo": 1}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------- model --
class Block(nn.Module):
    def __init__(self, C, H, maxT):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)
        self.register_buffer("causal", torch.ones(maxT, maxT, dtype=torch.bool).tril(), persistent=False)

    def attn(self, x, cache):
        B, T, C = x.shape
        H, hs = self.H, C // self.H
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, hs).transpose(1, 2)  # (B,H,T,hs)
        k = k.view(B, T, H, hs).transpose(1, 2)
        v = v.view(B, T, H, hs).transpose(1, 2)
        past = 0
        if cache is not None:
            if cache["k"] is not None:
                past = cache["k"].size(2)
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B,H,T,past+T)
        if T > 1:
            mask = self.causal[past:past + T, :past + T]
            att = att.masked_fill(~mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT(nn.Module):
    def __init__(self, L, H, C, V, maxT):
        super().__init__()
        self.L, self.H, self.C, self.V, self.maxT = L, H, C, V, maxT
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.h = nn.ModuleList([Block(C, H, maxT) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        # GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2L),
        # biases 0, LayerNorm weight 1 / bias 0.
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln_" in name:
                nn.init.ones_(p)
            elif name.endswith("c_proj.weight") or name.endswith("mlp_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, caches=None, pos0=0, last_only=False):
        """idx (B,T) -> logits (B,T,V). With caches (one dict per layer), keys
        and values are appended and positions start at pos0. last_only: logits
        of the last position only, (B,1,V) (generation, as nanoGPT does)."""
        B, T = idx.shape
        pos = torch.arange(pos0, pos0 + T, dtype=torch.long)
        x = self.wte(idx) + self.wpe(pos)
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i])
        if last_only:
            x = x[:, -1:, :]
        x = self.ln_f(x)
        return F.linear(x, self.wte.weight)  # tied LM head


def token_logprobs(logits, targets):
    """Per-token log-prob of targets: log_softmax + gather."""
    return torch.gather(F.log_softmax(logits, dim=-1), -1, targets.unsqueeze(-1)).squeeze(-1)


def make_optimizer(model, args):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr)


@torch.no_grad()
def generate(model, prompts, new_tokens, temperature=1.0, timings=None):
    """Plain KV-cache sampling loop. prompts (B,Tp), all the same length.
    Returns the sampled tokens (B,new_tokens)."""
    caches = [{"k": None, "v": None} for _ in range(model.L)]
    t0 = time.perf_counter()
    logits = model(prompts, caches, 0, last_only=True)[:, -1, :]
    t1 = time.perf_counter()
    pos = prompts.size(1)
    out = []
    for i in range(new_tokens):
        probs = F.softmax(logits / temperature, dim=-1)
        tok = torch.multinomial(probs, 1)  # (B,1)
        out.append(tok)
        if i + 1 < new_tokens:
            logits = model(tok, caches, pos, last_only=True)[:, -1, :]
            pos += 1
    t2 = time.perf_counter()
    if timings is not None:
        timings["prefill_s"] = t1 - t0
        timings["decode_s"] = t2 - t1
    return torch.cat(out, dim=1)


# ----------------------------------------------------------------- helpers --
def matmul_params(m):
    return 12 * m.L * m.C * m.C + m.V * m.C


def train_flops_per_token(m, T):
    return 6 * matmul_params(m) + 6 * m.L * T * m.C


def fwd_flops_per_token(m, T):
    return 2 * matmul_params(m) + 2 * m.L * T * m.C


def base_record(args, work):
    # load average at the end of the workload: > threads means the timings shared the CPUs
    return {"impl": "torch", "work": work, "model": args.model, "threads": args.threads,
            "loadavg": round(os.getloadavg()[0], 2)}


def emit(rec):
    for k, v in rec.items():
        if isinstance(v, float):
            rec[k] = float("%.6g" % v)
    print(json.dumps(rec), flush=True)


def timed(fn, steps, label):
    """One warm-up call, then `steps` timed calls; returns mean seconds."""
    t = time.perf_counter()
    fn()
    log("  %s warm-up %.2fs" % (label, time.perf_counter() - t))
    times = []
    for i in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        log("  %s step %d/%d %.2fs" % (label, i + 1, steps, times[-1]))
    return sum(times) / len(times)


# --------------------------------------------------------------- workloads --
def work_sft(args, model):
    B, T, V = args.batch, args.seq, model.V
    data = torch.randint(0, V, (B, T + 1))
    x, y = data[:, :T], data[:, 1:]
    opt = make_optimizer(model, args)
    model.train()

    def step():
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    s = timed(step, args.steps, "sft")
    tps = B * T / s
    rec = base_record(args, "sft")
    rec.update(batch=B, seq=T, steps=args.steps, tokens_per_s=tps, step_s=s,
               gflops=tps * train_flops_per_token(model, T) / 1e9)
    emit(rec)


def work_fwd(args, model):
    B, T, V = args.batch, args.seq, model.V
    data = torch.randint(0, V, (B, T + 1))
    x, y = data[:, :T], data[:, 1:]
    model.eval()

    def step():
        with torch.no_grad():
            return token_logprobs(model(x), y)

    s = timed(step, args.steps, "fwd")
    tps = B * T / s
    rec = base_record(args, "fwd")
    rec.update(batch=B, seq=T, steps=args.steps, tokens_per_s=tps, step_s=s,
               gflops=tps * fwd_flops_per_token(model, T) / 1e9)
    emit(rec)


def work_gen(args, model):
    B, Tp, N = args.gen_batch, args.prompt_len, args.new_tokens
    if Tp + N > model.maxT:
        raise SystemExit("gen: prompt_len + new_tokens > max_seq_len")
    prompts = torch.randint(0, model.V, (B, Tp))
    model.eval()
    t = time.perf_counter()
    generate(model, prompts, min(N, 4))  # warm-up: short run
    log("  gen warm-up %.2fs" % (time.perf_counter() - t))
    tot, pre, dec = [], [], []
    for i in range(args.steps):
        tm = {}
        t = time.perf_counter()
        generate(model, prompts, N, args.temperature, tm)
        tot.append(time.perf_counter() - t)
        pre.append(tm["prefill_s"])
        dec.append(tm["decode_s"])
        log("  gen run %d/%d %.2fs (prefill %.2fs)" % (i + 1, args.steps, tot[-1], pre[-1]))
    s = sum(tot) / len(tot)
    rec = base_record(args, "gen")
    rec.update(batch=B, prompt_len=Tp, new_tokens=N, steps=args.steps,
               tokens_per_s=B * N / s, total_s=s,
               prefill_s=sum(pre) / len(pre), decode_s=sum(dec) / len(dec))
    emit(rec)


def work_dpo(args, model):
    P, T, V = args.pairs, args.seq, model.V
    beta = args.beta
    half = T // 2
    prompt = torch.randint(0, V, (P, half))
    chosen = torch.cat([prompt, torch.randint(0, V, (P, T - half))], dim=1)
    rejected = torch.cat([prompt, torch.randint(0, V, (P, T - half))], dim=1)
    seqs = torch.cat([chosen, rejected], dim=0)  # (2P, T): chosen rows first
    x, y = seqs, seqs[:, 1:]  # forward over all T tokens; the last position has no target
    # completion mask over the T-1 predicted targets: target index >= half
    cmask = torch.zeros(2 * P, T - 1)
    cmask[:, half - 1:] = 1.0

    def seq_logps(m):
        logits = m(x)[:, :-1, :]
        return (token_logprobs(logits, y) * cmask).sum(-1)  # (2P,)

    ref = GPT(model.L, model.H, model.C, model.V, model.maxT)
    ref.load_state_dict(model.state_dict())
    ref.eval()
    t = time.perf_counter()
    with torch.no_grad():
        ref_lp = seq_logps(ref)
    del ref
    log("  dpo reference log-probs %.2fs (not timed)" % (time.perf_counter() - t))
    rc, rr = ref_lp[:P], ref_lp[P:]
    opt = make_optimizer(model, args)
    model.train()

    def step():
        lp = seq_logps(model)
        pc, pr = lp[:P], lp[P:]
        loss = -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    s = timed(step, args.steps, "dpo")
    rec = base_record(args, "dpo")
    tps = 2 * P * T / s
    rec.update(pairs=P, batch=2 * P, seq=T, steps=args.steps, pairs_per_s=P / s, tokens_per_s=tps,
               step_s=s, gflops=tps * train_flops_per_token(model, T) / 1e9)
    emit(rec)


def grpo_iteration(model, ref, opt, args, n_prompts, n_samples, Tp, N):
    V = model.V
    G = n_samples
    st = {}
    prompts = torch.randint(0, V, (n_prompts, Tp)).repeat_interleave(G, dim=0)  # (n_prompts*G, Tp)

    # 1. rollout
    t = time.perf_counter()
    model.eval()
    comp = generate(model, prompts, N, args.temperature)
    st["gen_s"] = time.perf_counter() - t

    # 2. score: fraction of even token ids in the completion
    t = time.perf_counter()
    rewards = [sum(1 for tok in row if tok % 2 == 0) / len(row) for row in comp.tolist()]
    r = torch.tensor(rewards).view(n_prompts, G)
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).view(-1, 1)
    st["score_s"] = time.perf_counter() - t

    seqs = torch.cat([prompts, comp], dim=1)  # (B, Tp+N)
    x = seqs
    y = seqs[:, Tp:]  # completion tokens, predicted at positions Tp-1 .. Tp+N-2

    def comp_logps(m):
        logits = m(x)[:, Tp - 1:-1, :]
        return token_logprobs(logits, y)  # (B, N)

    # 3. reference log-probs (frozen copy)
    t = time.perf_counter()
    with torch.no_grad():
        ref_lp = comp_logps(ref)
    st["ref_s"] = time.perf_counter() - t

    # 4. policy log-probs + GRPO loss + backward + AdamW
    t = time.perf_counter()
    model.train()
    lp = comp_logps(model)
    old = lp.detach()
    ratio = torch.exp(lp - old)
    pg = -torch.min(ratio * adv, torch.clamp(ratio, 1 - args.clip, 1 + args.clip) * adv)
    d = ref_lp - lp
    kl = torch.exp(d) - d - 1  # k3 estimator
    loss = (pg + args.kl_beta * kl).mean()  # token mean (no padding: every row has N tokens)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    st["update_s"] = time.perf_counter() - t
    st["reward_mean"] = float(r.mean())
    return st


def work_grpo(args, model):
    Tp, N = args.grpo_prompt_len, args.new_tokens
    if Tp + N > model.maxT:
        raise SystemExit("grpo: prompt_len + new_tokens > max_seq_len")
    ref = GPT(model.L, model.H, model.C, model.V, model.maxT)
    ref.load_state_dict(model.state_dict())
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = make_optimizer(model, args)
    t = time.perf_counter()
    grpo_iteration(model, ref, opt, args, 1, 2, Tp, min(N, 4))  # warm-up: small iteration
    log("  grpo warm-up %.2fs" % (time.perf_counter() - t))
    keys = ["gen_s", "score_s", "ref_s", "update_s"]
    acc = {k: 0.0 for k in keys}
    rew = 0.0
    for i in range(args.steps):
        st = grpo_iteration(model, ref, opt, args, args.grpo_prompts, args.grpo_samples, Tp, N)
        for k in keys:
            acc[k] += st[k]
        rew += st["reward_mean"]
        log("  grpo iter %d/%d " % (i + 1, args.steps) + " ".join("%s %.2f" % (k, st[k]) for k in keys))
    for k in keys:
        acc[k] /= args.steps
    total = sum(acc[k] for k in keys)
    B = args.grpo_prompts * args.grpo_samples
    rec = base_record(args, "grpo")
    rec.update(prompts=args.grpo_prompts, samples=args.grpo_samples, batch=B, prompt_len=Tp,
               new_tokens=N, steps=args.steps)
    rec.update(acc)
    rec.update(total_s=total, gen_share=acc["gen_s"] / total, tokens_per_s=B * N / total,
               reward_mean=rew / args.steps)
    emit(rec)


WORKS = {"sft": work_sft, "fwd": work_fwd, "gen": work_gen, "dpo": work_dpo, "grpo": work_grpo}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="sft", help="comma list of: " + ",".join(WORKS))
    ap.add_argument("--model", default="gpt2", choices=sorted(PRESETS))
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps after one warm-up (default per workload: %s)" %
                    ", ".join("%s %d" % kv for kv in DEFAULT_STEPS.items()))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--gen_batch", type=int, default=4, help="gen: number of prompts")
    ap.add_argument("--prompt_len", type=int, default=192, help="gen: prompt length")
    ap.add_argument("--new_tokens", type=int, default=64, help="gen and grpo: tokens sampled")
    ap.add_argument("--pairs", type=int, default=4, help="dpo: preference pairs per step")
    ap.add_argument("--beta", type=float, default=0.1, help="dpo beta")
    ap.add_argument("--grpo_prompts", type=int, default=8)
    ap.add_argument("--grpo_samples", type=int, default=4)
    ap.add_argument("--grpo_prompt_len", type=int, default=64)
    ap.add_argument("--clip", type=float, default=0.2, help="grpo PPO-clip epsilon")
    ap.add_argument("--kl_beta", type=float, default=0.04, help="grpo KL coefficient (k3)")
    args = ap.parse_args()

    works = [w.strip() for w in args.work.split(",") if w.strip()]
    for w in works:
        if w not in WORKS:
            ap.error("unknown workload %r (choose from %s)" % (w, ",".join(WORKS)))
    torch.set_num_threads(args.threads)
    L, H, C, V, maxT = PRESETS[args.model]
    if args.seq > maxT:
        ap.error("--seq %d > max_seq_len %d of %s" % (args.seq, maxT, args.model))
    steps_arg = args.steps
    for w in works:
        args.steps = steps_arg if steps_arg is not None else DEFAULT_STEPS[w]
        if args.steps < 1:
            ap.error("--steps must be >= 1")
        torch.manual_seed(args.seed)
        t = time.perf_counter()
        model = GPT(L, H, C, V, maxT)
        n = sum(p.numel() for p in model.parameters())
        log("[torch %s] %s: %.1fM params, %d threads, init %.1fs" %
            (torch.__version__, w, n / 1e6, args.threads, time.perf_counter() - t))
        WORKS[w](args, model)
        del model


if __name__ == "__main__":
    main()
