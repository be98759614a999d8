"""An independent PyTorch reference of the rlhf.c transformer (GPT-2 and Llama
families), written from the model description in the parity test, for float64
forward + autograd backward from the engine's float32 weights.

Parameter names follow the engine's table (include/rlhf.h):
  tok_emb.weight, pos_emb.weight (gpt2), layers.{i}.attn_norm.{weight,bias},
  layers.{i}.attn.qkv.{weight,bias}  rows [q heads | k heads | v heads],
  layers.{i}.attn.out.{weight,bias}, layers.{i}.mlp_norm.{weight,bias},
  layers.{i}.mlp.up.{weight,bias}    llama: rows [gate (F) ; up (F)],
  layers.{i}.mlp.down.{weight,bias}, final_norm.{weight,bias},
  lm_head.weight (untied only), score_head.{weight,bias}, value_head.{weight,bias}.
"""
import math

import torch


def positions_from_mask(mask):
    """Real tokens count real tokens before them; padding gets 0."""
    m = mask.long()
    pos = torch.cumsum(m, dim=1) - 1
    return torch.where(m > 0, pos, torch.zeros_like(pos))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def gelu_tanh(u):
    return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def rope(x, pos, theta, convention="rotate_half"):
    """x (B, H, T, HS), pos (B, T). HF rotate_half: halves [x1 | x2] rotate together.
    convention="interleaved" (GPT-J pairs (2i, 2i+1)) exists only for negative tests."""
    HS = x.shape[-1]
    half = HS // 2
    i = torch.arange(half, dtype=torch.float64)
    inv_freq = 1.0 / (float(theta) ** (2.0 * i / HS))
    ang = pos.to(torch.float64)[:, None, :, None] * inv_freq  # (B,1,T,half)
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    if convention == "rotate_half":
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    if convention == "interleaved":
        x1, x2 = x[..., 0::2], x[..., 1::2]
        o1, o2 = x1 * cos - x2 * sin, x2 * cos + x1 * sin
        return torch.stack([o1, o2], dim=-1).flatten(-2)
    raise ValueError(convention)


def attention(q, k, v, mask, pdrop=None):
    """q (B,NH,T,HS), k/v (B,NKV,T,HS); query t sees key s iff s <= t and mask[s];
    a query that sees no key outputs 0. pdrop(p): the probabilities (B,NH,T,T) as
    they weight the values (dropout), or None."""
    B, NH, T, HS = q.shape
    NKV = k.shape[1]
    rep = NH // NKV
    k = k.repeat_interleave(rep, dim=1)  # query head h uses kv head h // rep
    v = v.repeat_interleave(rep, dim=1)
    att = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    allowed = causal[None, None] & (mask[:, None, None, :] > 0)  # (B,1,T,T)
    att = att.masked_fill(~allowed, -1e30)
    p = torch.softmax(att, dim=-1) * allowed.to(att.dtype)  # rows with no key -> 0
    return (pdrop(p) if pdrop else p) @ v


def forward(cfg, P, tokens, mask, rope_convention="rotate_half", pos=None, no_wpe=False,
            drop=None, qkv_extra=None, attn_drop=None):
    """cfg: dict from config.json; P: {name: tensor}; tokens, mask: (B,T) long.
    Returns (hidden (B,T,C), logits (B,T,V)).
    Optional (rlhf_model's LaMo settings): pos (B,T) position ids in place of the
    real-token count; no_wpe: no learned positions added; drop(layer, site, x) applied
    to the embedding output (layer -1, site 0), the attention output (site 0) and the
    MLP output (site 1) before their residual adds; qkv_extra(layer, a) added to the
    qkv projection of the normed input a (LoRA adapters with their own dropout);
    attn_drop(layer, p) applied to the attention probabilities p (B,NH,T,T) before
    they weight the values."""
    arch = cfg["arch"]
    L, NH, NKV, C = cfg["n_layer"], cfg["n_head"], cfg["n_kv_head"], cfg["n_embd"]
    HS = C // NH
    eps = float(cfg["norm_eps"])
    B, T = tokens.shape
    if pos is None:
        pos = positions_from_mask(mask)
    gpt2 = arch == "gpt2"
    x = P["tok_emb.weight"][tokens]
    if gpt2 and not no_wpe:
        x = x + P["pos_emb.weight"][pos]
    if drop:
        x = drop(-1, 0, x)

    def norm(x, name):
        if gpt2:
            return layer_norm(x, P[name + ".weight"], P[name + ".bias"], eps)
        return rms_norm(x, P[name + ".weight"], eps)

    def lin(x, name, bias):
        y = x @ P[name + ".weight"].T
        if bias:
            y = y + P[name + ".bias"]
        return y

    for i in range(L):
        pre = f"layers.{i}."
        a = norm(x, pre + "attn_norm")
        qkv = lin(a, pre + "attn.qkv", gpt2 or bool(cfg.get("qkv_bias", 0)))
        if qkv_extra:
            qkv = qkv + qkv_extra(i, a)
        q = qkv[..., : NH * HS].reshape(B, T, NH, HS).transpose(1, 2)
        k = qkv[..., NH * HS: (NH + NKV) * HS].reshape(B, T, NKV, HS).transpose(1, 2)
        v = qkv[..., (NH + NKV) * HS:].reshape(B, T, NKV, HS).transpose(1, 2)
        if not gpt2:
            q = rope(q, pos, cfg["rope_theta"], rope_convention)
            k = rope(k, pos, cfg["rope_theta"], rope_convention)
        pdrop = (lambda p, i=i: attn_drop(i, p)) if attn_drop else None
        o = attention(q, k, v, mask, pdrop).transpose(1, 2).reshape(B, T, NH * HS)
        o = lin(o, pre + "attn.out", gpt2)
        x = x + (drop(i, 0, o) if drop else o)
        m = norm(x, pre + "mlp_norm")
        u = lin(m, pre + "mlp.up", gpt2)
        if gpt2:
            g = gelu_tanh(u)
        else:
            F = cfg["d_ff"]
            g = torch.nn.functional.silu(u[..., :F]) * u[..., F:]
        g = lin(g, pre + "mlp.down", gpt2)
        x = x + (drop(i, 1, g) if drop else g)
    hidden = norm(x, "final_norm")
    head = P["tok_emb.weight"] if cfg.get("tied", 1) else P["lm_head.weight"]
    logits = hidden @ head.T
    return hidden, logits


def forward_documents(cfg, P, tokens, mask, segment, rope_convention="rotate_half"):
    """Packed rows, the way an unpacked model sees them: each document (a run of real
    tokens with one segment id) goes through forward() on its own, as a batch of one
    without padding; the outputs are put back in place (zeros at padding)."""
    B, T = tokens.shape
    C, V = cfg["n_embd"], cfg["vocab_size"]
    rows_h, rows_l = [], []
    for b in range(B):
        parts_h, parts_l = [], []
        t = 0
        while t < T:
            e = t + 1
            if mask[b, t] > 0:
                while e < T and mask[b, e] > 0 and segment[b, e] == segment[b, t]:
                    e += 1
                doc = tokens[b, t:e][None]
                h, lg = forward(cfg, P, doc, torch.ones_like(doc), rope_convention)
                parts_h.append(h[0])
                parts_l.append(lg[0])
            else:
                parts_h.append(torch.zeros(1, C, dtype=torch.float64))
                parts_l.append(torch.zeros(1, V, dtype=torch.float64))
            t = e
        rows_h.append(torch.cat(parts_h))
        rows_l.append(torch.cat(parts_l))
    return torch.stack(rows_h), torch.stack(rows_l)


def outputs_and_loss(cfg, P, tokens, targets, mask, ws=None, wv=None, wh=None,
                     rope_convention="rotate_half", segment=None):
    """Everything the parity dump holds, plus the scalar loss
    loss = -mean(logp over target>=0) + sum(score*ws) + sum(values*wv) + sum(hidden*wh).
    segment (B,T): packed rows; each document is run on its own (forward_documents)."""
    if segment is None:
        hidden, logits = forward(cfg, P, tokens, mask, rope_convention)
    else:
        hidden, logits = forward_documents(cfg, P, tokens, mask, segment, rope_convention)
    has_t = targets >= 0
    lsm = torch.log_softmax(logits, dim=-1)
    logp = torch.gather(lsm, -1, targets.clamp(min=0)[..., None])[..., 0]
    logp = torch.where(has_t, logp, torch.zeros_like(logp))
    n = int(has_t.sum())
    loss = -logp.sum() / max(n, 1)
    out = {"hidden": hidden, "logits": logits, "logp": logp}
    B, T = tokens.shape
    if cfg.get("score_head", 0):
        idx = torch.arange(T)[None, :].expand(B, T)
        t_last = torch.where(mask > 0, idx, torch.full_like(idx, -1)).max(dim=1).values.clamp(min=0)
        h_last = hidden[torch.arange(B), t_last]
        score = h_last @ P["score_head.weight"][0] + P["score_head.bias"][0]
        out["score"] = score
        if ws is not None:
            loss = loss + (score * ws).sum()
    if cfg.get("value_head", 0):
        values = hidden @ P["value_head.weight"][0] + P["value_head.bias"][0]
        out["values"] = values
        if wv is not None:
            loss = loss + (values * wv).sum()
    if wh is not None:
        loss = loss + (hidden * wh).sum()
    out["loss"] = loss
    return out


def param_shapes(cfg):
    """Expected {name: shape} of the engine's parameter table."""
    gpt2 = cfg["arch"] == "gpt2"
    L, NH, NKV, C, F, V = (cfg["n_layer"], cfg["n_head"], cfg["n_kv_head"], cfg["n_embd"],
                           cfg["d_ff"], cfg["vocab_size"])
    HS = C // NH
    s = {"tok_emb.weight": (V, C)}
    if gpt2:
        s["pos_emb.weight"] = (cfg["max_seq_len"], C)
    for i in range(L):
        p = f"layers.{i}."
        s[p + "attn_norm.weight"] = (C,)
        s[p + "attn.qkv.weight"] = ((NH + 2 * NKV) * HS, C)
        if gpt2 or cfg.get("qkv_bias", 0):
            s[p + "attn.qkv.bias"] = ((NH + 2 * NKV) * HS,)
        s[p + "attn.out.weight"] = (C, NH * HS)
        s[p + "mlp_norm.weight"] = (C,)
        s[p + "mlp.up.weight"] = (F, C) if gpt2 else (2 * F, C)
        s[p + "mlp.down.weight"] = (C, F)
        if gpt2:
            s[p + "attn_norm.bias"] = (C,)
            s[p + "attn.out.bias"] = (C,)
            s[p + "mlp_norm.bias"] = (C,)
            s[p + "mlp.up.bias"] = (F,)
            s[p + "mlp.down.bias"] = (C,)
    s["final_norm.weight"] = (C,)
    if gpt2:
        s["final_norm.bias"] = (C,)
    if not cfg.get("tied", 1):
        s["lm_head.weight"] = (V, C)
    if cfg.get("score_head", 0):
        s["score_head.weight"] = (1, C)
        s["score_head.bias"] = (1,)
    if cfg.get("value_head", 0):
        s["value_head.weight"] = (1, C)
        s["value_head.bias"] = (1,)
    return s
