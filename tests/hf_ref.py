"""Independent references for tests/hf_test.py, written from the public
descriptions of the formats and architectures (no transformers, no llama.cpp):

* safetensors with F32/BF16/F16 data, sharded with model.safetensors.index.json
  (the HF hub layout), and bf16 rounding (round to nearest even);
* forward passes of HF GPT-2 (Conv1D weights stored (in, out)), Llama / Qwen2
  (q/k/v biases) / Mistral (sliding-window attention) in float64 torch, keyed
  by the HF tensor names;
* a numpy port of llama2.c's run.c (file formats v0 and v1, interleaved RoPE,
  greedy decoding, its token printing rules);
* a GGUF v3 reader (ggml docs/gguf.md).
"""
import json
import math
import os
import struct

import numpy as np
import torch

# ------------------------------------------------------------------ dtypes --


def bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, round to nearest even (finite input)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def round_to(a, dtype):
    """The float32 values a tensor holds after being stored as dtype."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.copy()
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return bf16_to_f32(bf16_bits(a)).reshape(a.shape)
    raise ValueError(dtype)


def _raw(a, dtype):
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    return bf16_bits(a).astype("<u2").tobytes()


# ------------------------------------------------------------- safetensors --


def save_st(path, tensors, dtype, metadata=None):
    """tensors: {name: float32 array} written as dtype ("F32", "BF16", "F16")."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        raw = _raw(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(a)), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_st(path):
    """{name: (dtype name, float32 array)} for F32/F16/BF16 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = data[8 + n + b: 8 + n + e]
        shape = info["shape"]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, "<f4").astype(np.float32)
        elif dt == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float32)
        elif dt == "BF16":
            a = bf16_to_f32(np.frombuffer(raw, "<u2"))
        else:
            raise ValueError(f"{path}: {name}: dtype {dt}")
        out[name] = (dt, a.reshape(shape))
    return out, meta


def write_hf(folder, config, tensors, dtype, n_shards=1, extra=None):
    """An HF hub folder: config.json and the weights as dtype, in one
    model.safetensors or n_shards files with an index. extra: {name: array}
    written as well (buffers HF keeps). Returns {name: float32 as stored}."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    allt = dict(tensors)
    allt.update(extra or {})
    names = list(allt)
    if n_shards == 1:
        save_st(os.path.join(folder, "model.safetensors"), allt, dtype, {"format": "pt"})
    else:
        weight_map, total = {}, 0
        per = math.ceil(len(names) / n_shards)
        for s in range(n_shards):
            fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
            part = {k: allt[k] for k in names[s * per:(s + 1) * per]}
            save_st(os.path.join(folder, fname), part, dtype, {"format": "pt"})
            for k, a in part.items():
                weight_map[k] = fname
                total += a.size * (4 if dtype == "F32" else 2)
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return {k: round_to(v, dtype) for k, v in tensors.items()}


# ------------------------------------------------------ HF reference math --


def _t(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt2_logits(cfg, W, tokens):
    """HF GPT-2: W keyed by names without "transformer."; Conv1D is x @ W + b."""
    W = {k: _t(v) for k, v in W.items()}
    tok = torch.as_tensor(tokens, dtype=torch.long)
    B, T = tok.shape
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    HS = C // NH
    eps = cfg.get("layer_norm_epsilon", 1e-5)

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (C,), W[p + ".weight"], W[p + ".bias"], eps)

    x = W["wte.weight"][tok] + W["wpe.weight"][torch.arange(T)][None]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(L):
        p = f"h.{i}."
        a = ln(x, p + "ln_1")
        qkv = a @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = [t.reshape(B, T, NH, HS).transpose(1, 2) for t in qkv.split(C, dim=-1)]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
        s = s.masked_fill(~causal, float("-inf")).softmax(-1)
        o = (s @ v).transpose(1, 2).reshape(B, T, C)
        x = x + o @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        m = ln(x, p + "ln_2")
        h = gelu_new(m @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
        x = x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = ln(x, "ln_f")
    return (x @ W["wte.weight"].T).numpy()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def llama_logits(cfg, W, tokens):
    """HF Llama / Qwen2 / Mistral: W keyed by "model.*" names and "lm_head.weight"."""
    W = {k: _t(v) for k, v in W.items()}
    tok = torch.as_tensor(tokens, dtype=torch.long)
    B, T = tok.shape
    C, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    NKV = cfg.get("num_key_value_heads", NH)
    HS = C // NH
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    window = cfg.get("sliding_window") if cfg["model_type"] == "mistral" else None
    bias = cfg["model_type"] == "qwen2"

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    inv_freq = 1.0 / theta ** (torch.arange(0, HS, 2, dtype=torch.float64) / HS)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None]
    emb = torch.cat([ang, ang], dim=-1)
    cos, sin = emb.cos(), emb.sin()
    idx = torch.arange(T)
    allowed = idx[None, :] <= idx[:, None]
    if window:
        allowed &= idx[:, None] - idx[None, :] < window
    x = W["model.embed_tokens.weight"][tok]
    for i in range(L):
        p = f"model.layers.{i}."
        a = rms(x, W[p + "input_layernorm.weight"])

        def proj(n, heads):
            y = a @ W[p + f"self_attn.{n}_proj.weight"].T
            if bias:
                y = y + W[p + f"self_attn.{n}_proj.bias"]
            return y.reshape(B, T, heads, HS).transpose(1, 2)

        q, k, v = proj("q", NH), proj("k", NKV), proj("v", NKV)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
        s = s.masked_fill(~allowed, float("-inf")).softmax(-1)
        o = (s @ v).transpose(1, 2).reshape(B, T, C)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        m = rms(x, W[p + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(m @ W[p + "mlp.gate_proj.weight"].T)
        x = x + (g * (m @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    x = rms(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else W["lm_head.weight"]
    return (x @ head.T).numpy()


def hf_permute(w, n_heads):
    """Meta/llama2.c interleaved RoPE rows -> HF rotate-half rows (the permutation
    HF's convert_llama_weights_to_hf.py applies to wq and wk)."""
    rows = w.shape[0]
    rest = w.shape[1:]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)


def gguf_unpermute(w, n_heads):
    """GGUF (llama.cpp, interleaved) rows -> HF rotate-half rows: the same as hf_permute."""
    return hf_permute(w, n_heads)


# ------------------------------------------------------------- llama2.c --


class Llama2c:
    """llama2.c run.c, in float32 numpy: checkpoint formats v0 and v1."""

    def __init__(self, path):
        data = open(path, "rb").read()
        (magic,) = struct.unpack("<I", data[:4])
        if magic == 0x616B3432:
            ver, dim, hid, L, nh, nkv, V, T = struct.unpack("<8i", data[4:36])
            assert ver == 1
            shared = data[36] == 1
            off = 256
        else:
            dim, hid, L, nh, nkv, V, T = struct.unpack("<7i", data[:28])
            shared = V > 0
            V = abs(V)
            off = 28
            ver = 0
        self.dim, self.hidden, self.L, self.nh, self.nkv, self.V, self.T = dim, hid, L, nh, nkv, V, T
        self.HS = dim // nh
        f = np.frombuffer(data, dtype="<f4", offset=off).astype(np.float32)
        pos = [0]

        def take(*shape):
            n = int(np.prod(shape))
            a = f[pos[0]:pos[0] + n].reshape(shape)
            pos[0] += n
            return a

        kv = nkv * self.HS
        if ver == 0:
            self.emb = take(V, dim)
            self.att_norm = take(L, dim)
            self.wq, self.wk, self.wv = take(L, dim, dim), take(L, kv, dim), take(L, kv, dim)
            self.wo = take(L, dim, dim)
            self.ffn_norm = take(L, dim)
            self.w1, self.w2, self.w3 = take(L, hid, dim), take(L, dim, hid), take(L, hid, dim)
            self.norm = take(dim)
            take(T * self.HS // 2)
            take(T * self.HS // 2)
        else:
            self.att_norm, self.ffn_norm, self.norm = take(L, dim), take(L, dim), take(dim)
            self.emb = take(V, dim)
            self.wq, self.wk, self.wv = take(L, dim, dim), take(L, kv, dim), take(L, kv, dim)
            self.wo = take(L, dim, dim)
            self.w1, self.w2, self.w3 = take(L, hid, dim), take(L, dim, hid), take(L, hid, dim)
        self.wcls = self.emb if shared else take(V, dim)
        assert pos[0] == f.size, "file size does not match the header"
        self.shared = shared
        self.version = ver

    def reset(self):
        kv = self.nkv * self.HS
        self.kc = np.zeros((self.L, self.T, kv), np.float32)
        self.vc = np.zeros((self.L, self.T, kv), np.float32)

    @staticmethod
    def _rms(x, w):
        ss = np.float32(np.mean(x * x, dtype=np.float32)) + np.float32(1e-5)
        return (w * (x / np.sqrt(ss))).astype(np.float32)

    def forward(self, token, pos):
        HS, kv_dim, kv_mul = self.HS, self.nkv * self.HS, self.nh // self.nkv
        x = self.emb[token].copy()
        j = np.arange(0, self.dim, 2)
        hd = (j % HS).astype(np.float32)
        freq = (1.0 / np.power(np.float32(10000.0), hd / np.float32(HS))).astype(np.float32)
        val = np.float32(pos) * freq
        fcr, fci = np.cos(val).astype(np.float32), np.sin(val).astype(np.float32)
        for l in range(self.L):
            xb = self._rms(x, self.att_norm[l])
            q, k, v = self.wq[l] @ xb, self.wk[l] @ xb, self.wv[l] @ xb
            q0, q1 = q[0::2].copy(), q[1::2].copy()
            q[0::2], q[1::2] = q0 * fcr - q1 * fci, q0 * fci + q1 * fcr
            nk = kv_dim // 2
            k0, k1 = k[0::2].copy(), k[1::2].copy()
            k[0::2], k[1::2] = k0 * fcr[:nk] - k1 * fci[:nk], k0 * fci[:nk] + k1 * fcr[:nk]
            self.kc[l, pos], self.vc[l, pos] = k, v
            out = np.zeros(self.dim, np.float32)
            for h in range(self.nh):
                g = h // kv_mul
                qh = q[h * HS:(h + 1) * HS]
                K = self.kc[l, :pos + 1, g * HS:(g + 1) * HS]
                s = (K @ qh) / np.float32(math.sqrt(HS))
                s = np.exp(s - s.max())
                s /= s.sum()
                out[h * HS:(h + 1) * HS] = s @ self.vc[l, :pos + 1, g * HS:(g + 1) * HS]
            x = x + self.wo[l] @ out
            xb = self._rms(x, self.ffn_norm[l])
            h1, h3 = self.w1[l] @ xb, self.w3[l] @ xb
            x = x + self.w2[l] @ ((h1 / (1.0 + np.exp(-h1))) * h3)
        x = self._rms(x, self.norm)
        return self.wcls @ x

    def logits(self, tokens):
        self.reset()
        return np.stack([self.forward(t, p) for p, t in enumerate(tokens)])

    def greedy(self, steps):
        """run.c with an empty prompt: start at BOS (1), `steps` forward passes,
        stop early at BOS. Returns the generated ids (BOS excluded)."""
        self.reset()
        token, out = 1, []
        for pos in range(steps):
            nxt = int(np.argmax(self.forward(token, pos)))
            if nxt == 1:
                break
            out.append(nxt)
            token = nxt
        return out


def llama2c_vocab(path):
    data = open(path, "rb").read()
    o, toks, scores = 4, [], []
    while o < len(data):
        s, n = struct.unpack("<fi", data[o:o + 8])
        toks.append(data[o + 8:o + 8 + n])
        scores.append(s)
        o += 8 + n
    return toks, scores


def llama2c_decode(vocab, ids, prev=1):
    """run.c's printing: after BOS a leading space is dropped; <0xXX> is a byte;
    a lone unprintable byte is not printed (safe_printf)."""
    out = b""
    for t in ids:
        piece = vocab[t]
        if prev == 1 and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            piece = bytes([int(piece[3:5], 16)])
        if len(piece) == 1 and not (32 <= piece[0] < 127 or piece[0] in b"\t\n\v\f\r"):
            piece = b""
        out += piece
        prev = t
    return out


def write_llama2c(path, W, version, shared):
    """A llama2.c checkpoint from {"dim", ..., arrays} (W holds wq etc. in llama2.c's
    interleaved order)."""
    dim, hid, L, nh, nkv, V, T = (W[k] for k in ("dim", "hidden", "L", "nh", "nkv", "V", "T"))
    HS = dim // nh
    with open(path, "wb") as f:
        if version == 0:
            f.write(struct.pack("<7i", dim, hid, L, nh, nkv, V if shared else -V, T))
            order = ["emb", "att_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3", "norm"]
        else:
            f.write(struct.pack("<Ii7iB", 0x616B3432, 1, dim, hid, L, nh, nkv, V, T, int(shared)))
            f.write(b"\0" * (256 - f.tell()))
            order = ["att_norm", "ffn_norm", "norm", "emb", "wq", "wk", "wv", "wo", "w1", "w2", "w3"]
        for k in order:
            f.write(np.asarray(W[k], "<f4").tobytes())
        if version == 0:
            ang = np.arange(T)[:, None] * (1.0 / 10000 ** (np.arange(0, HS, 2) / HS))[None]
            f.write(np.cos(ang).astype("<f4").tobytes())
            f.write(np.sin(ang).astype("<f4").tobytes())
        if not shared:
            f.write(np.asarray(W["wcls"], "<f4").tobytes())


# ------------------------------------------------------------------- GGUF --

_GG_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
              10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    """Returns (version, metadata {key: value}, tensors {name: (ggml type, ne, array)},
    alignment, data_offset). Arrays are shaped reversed(ne) (rows, cols)."""
    data = open(path, "rb").read()
    assert data[:4] == b"GGUF", "bad magic"
    pos = [4]

    def rd(fmt):
        v = struct.unpack_from(fmt, data, pos[0])[0]
        pos[0] += struct.calcsize(fmt)
        return v

    def rstr():
        n = rd("<Q")
        s = data[pos[0]:pos[0] + n]
        pos[0] += n
        return s.decode("utf-8")

    def rval(t):
        if t in _GG_SCALAR:
            return rd(_GG_SCALAR[t])
        if t == 8:
            return rstr()
        if t == 9:
            et, n = rd("<I"), rd("<Q")
            return [rval(et) for _ in range(n)]
        raise ValueError(f"value type {t}")

    version = rd("<I")
    n_t, n_kv = rd("<Q"), rd("<Q")
    meta, types = {}, {}
    for _ in range(n_kv):
        k = rstr()
        t = rd("<I")
        types[k] = t
        meta[k] = rval(t)
    infos = []
    for _ in range(n_t):
        name = rstr()
        nd = rd("<I")
        ne = [rd("<Q") for _ in range(nd)]
        typ, off = rd("<I"), rd("<Q")
        infos.append((name, ne, typ, off))
    align = meta.get("general.alignment", 32)
    base = (pos[0] + align - 1) // align * align
    assert all(b == 0 for b in data[pos[0]:base]), "padding not zero"
    tensors = {}
    for name, ne, typ, off in infos:
        assert off % align == 0, f"{name}: offset {off} not aligned"
        n = int(np.prod(ne))
        dt = {0: "<f4", 1: "<f2"}[typ]
        a = np.frombuffer(data, dt, count=n, offset=base + off).astype(np.float32)
        tensors[name] = (typ, ne, a.reshape(list(reversed(ne))))
    return version, meta, types, tensors, align, base
