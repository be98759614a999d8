#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ (small valid inputs of every
loader, so the fuzzers start from files that get deep into the parsers).
Run from the repository root: python3 fuzz/make_corpus.py. The output is
committed; this script documents how it was made. Multi-file inputs are joined
with SEP (fuzz/fuzz_common.h's FUZZ_SEP)."""
import gzip, json, os, struct

SEP = b"\n~~~~\n"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def st(tensors, meta=None):
    """safetensors bytes from [(name, dtype, shape, raw bytes)]."""
    hdr, off, blob = {}, 0, b""
    if meta:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(n, start=0.0):
    return struct.pack("<%df" % n, *[start + 0.01 * i for i in range(n)])


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


# ---- safetensors
put("safetensors", "dtypes", st([("a", "F32", [2, 2], f32(4)), ("b", "F16", [3], b"\x00\x3c" * 3),
                                 ("c", "BF16", [1], b"\x80\x3f"), ("d", "I64", [], struct.pack("<q", 42)),
                                 ("e", "U8", [0], b""), ("g", "F64", [1], struct.pack("<d", 1.5)),
                                 ("h", "BOOL", [2], b"\x01\x00")], {"format": "pt", "step": "3"}))
put("safetensors", "empty", st([]))
put("safetensors", "one", st([("w", "F32", [1], f32(1))]))


# ---- our checkpoints: config.json + model.safetensors (+ optimizer.safetensors)
def our_tensors(c):
    C, L, V, F = c["n_embd"], c["n_layer"], c["vocab_size"], c["d_ff"]
    NH, NKV = c["n_head"], c.get("n_kv_head", c["n_head"])
    HS = C // NH
    QKV = (NH + 2 * NKV) * HS
    gpt2 = c["arch"] == "gpt2"
    FF = F if gpt2 else 2 * F
    t = [("tok_emb.weight", [V, C])]
    if gpt2:
        t.append(("pos_emb.weight", [c["max_seq_len"], C]))
    for l in range(L):
        p = "layers.%d." % l
        t.append((p + "attn_norm.weight", [C]))
        if gpt2:
            t.append((p + "attn_norm.bias", [C]))
        t.append((p + "attn.qkv.weight", [QKV, C]))
        if gpt2 or c.get("qkv_bias"):
            t.append((p + "attn.qkv.bias", [QKV]))
        t.append((p + "attn.out.weight", [C, C]))
        if gpt2:
            t.append((p + "attn.out.bias", [C]))
        t.append((p + "mlp_norm.weight", [C]))
        if gpt2:
            t.append((p + "mlp_norm.bias", [C]))
        t.append((p + "mlp.up.weight", [FF, C]))
        if gpt2:
            t.append((p + "mlp.up.bias", [FF]))
        t.append((p + "mlp.down.weight", [C, F]))
        if gpt2:
            t.append((p + "mlp.down.bias", [C]))
    t.append(("final_norm.weight", [C]))
    if gpt2:
        t.append(("final_norm.bias", [C]))
    if not c.get("tied", 1):
        t.append(("lm_head.weight", [V, C]))
    if c.get("score_head"):
        t += [("score_head.weight", [c["score_head"], C]), ("score_head.bias", [c["score_head"]])]
    if c.get("value_head"):
        t += [("value_head.weight", [1, C]), ("value_head.bias", [1])]
    return [(n, "F32", s, f32(numel(s))) for n, s in t]


gpt2_cfg = {"arch": "gpt2", "n_layer": 1, "n_head": 2, "n_kv_head": 2, "n_embd": 4, "d_ff": 8,
            "vocab_size": 5, "max_seq_len": 4, "qkv_bias": 0, "tied": 1, "rope_theta": 0,
            "norm_eps": 1e-5, "score_head": 1, "value_head": 0, "tokenizer": "byte"}
llama_cfg = {"arch": "llama", "n_layer": 2, "n_head": 2, "n_kv_head": 1, "n_embd": 4, "d_ff": 6,
             "vocab_size": 7, "max_seq_len": 8, "qkv_bias": 1, "tied": 0, "rope_theta": 10000.0,
             "norm_eps": 1e-6, "score_head": 0, "value_head": 1}
for name, c in (("gpt2", gpt2_cfg), ("llama", llama_cfg)):
    ts = our_tensors(c)
    n = sum(numel(s) for _, _, s, _ in ts)
    model = st(ts, {"format": "rlhf.c", "step": "0"})
    optim = st([("adam.m", "F32", [n], f32(n)), ("adam.v", "F32", [n], f32(n)),
                ("rng_state", "U64", [4], struct.pack("<4Q", 1, 2, 3, 4))], {"step": "2"})
    cj = json.dumps(c, indent=1).encode()
    put("config", name + "_config_only", cj)
    put("config", name + "_checkpoint", cj + SEP + model)
    put("config", name + "_with_optimizer", cj + SEP + model + SEP + optim)
put("config", "minimal", '{"arch":"llama","n_layer":1,"n_head":1,"n_embd":2,"vocab_size":3,"max_seq_len":2}')


# ---- HF folders
def hf_gpt2():
    C, L, V, T, F = 4, 1, 5, 4, 8
    t = [("transformer.wte.weight", [V, C]), ("transformer.wpe.weight", [T, C])]
    for l in range(L):
        p = "transformer.h.%d." % l
        t += [(p + "ln_1.weight", [C]), (p + "ln_1.bias", [C]), (p + "attn.c_attn.weight", [C, 3 * C]),
              (p + "attn.c_attn.bias", [3 * C]), (p + "attn.c_proj.weight", [C, C]),
              (p + "attn.c_proj.bias", [C]), (p + "ln_2.weight", [C]), (p + "ln_2.bias", [C]),
              (p + "mlp.c_fc.weight", [C, F]), (p + "mlp.c_fc.bias", [F]),
              (p + "mlp.c_proj.weight", [F, C]), (p + "mlp.c_proj.bias", [C])]
    t += [("transformer.ln_f.weight", [C]), ("transformer.ln_f.bias", [C])]
    cfg = {"model_type": "gpt2", "n_layer": L, "n_head": 2, "n_embd": C, "vocab_size": V,
           "n_positions": T, "n_ctx": T, "n_inner": F, "layer_norm_epsilon": 1e-5,
           "activation_function": "gelu_new"}
    return json.dumps(cfg).encode(), [(n, "F32", s, f32(numel(s))) for n, s in t]


def hf_llama(model_type="llama"):
    C, L, V, F, NH, NKV = 4, 1, 6, 6, 2, 1
    HS = C // NH
    t = [("model.embed_tokens.weight", [V, C])]
    for l in range(L):
        p = "model.layers.%d." % l
        t += [(p + "input_layernorm.weight", [C]), (p + "self_attn.q_proj.weight", [NH * HS, C]),
              (p + "self_attn.k_proj.weight", [NKV * HS, C]), (p + "self_attn.v_proj.weight", [NKV * HS, C])]
        if model_type == "qwen2":
            t += [(p + "self_attn.q_proj.bias", [NH * HS]), (p + "self_attn.k_proj.bias", [NKV * HS]),
                  (p + "self_attn.v_proj.bias", [NKV * HS])]
        t += [(p + "self_attn.o_proj.weight", [C, NH * HS]),
              (p + "post_attention_layernorm.weight", [C]), (p + "mlp.gate_proj.weight", [F, C]),
              (p + "mlp.up_proj.weight", [F, C]), (p + "mlp.down_proj.weight", [C, F])]
    t += [("model.norm.weight", [C]), ("lm_head.weight", [V, C])]
    cfg = {"model_type": model_type, "num_hidden_layers": L, "num_attention_heads": NH,
           "num_key_value_heads": NKV, "hidden_size": C, "intermediate_size": F, "vocab_size": V,
           "max_position_embeddings": 16, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
           "tie_word_embeddings": False, "hidden_act": "silu"}
    return json.dumps(cfg).encode(), [(n, "BF16" if "proj" in n else "F32", s,
                                       (b"\x80\x3f" * numel(s)) if "proj" in n else f32(numel(s)))
                                      for n, s in t]


cfg, ts = hf_gpt2()
put("hf", "gpt2_single", cfg + SEP + st(ts, {"format": "pt"}))
cfg, ts = hf_llama("qwen2")
put("hf", "qwen2_single", cfg + SEP + st(ts, {"format": "pt"}))
cfg, ts = hf_llama("llama")
half = len(ts) // 2
wm = {n: ("a.safetensors" if i < half else "b.safetensors") for i, (n, _, _, _) in enumerate(ts)}
index = json.dumps({"metadata": {"total_size": 0}, "weight_map": wm}).encode()
put("hf", "llama_sharded", cfg + SEP + index + SEP + st(ts[:half]) + SEP + st(ts[half:]))
put("hf", "config_only", cfg)


# ---- tokenizers
def byte_char(b):
    if (ord("!") <= b <= ord("~")) or (0xA1 <= b <= 0xAC) or b >= 0xAE:
        return chr(b)
    n = 0
    for c in range(b):
        if not ((ord("!") <= c <= ord("~")) or (0xA1 <= c <= 0xAC) or c >= 0xAE):
            n += 1
    return chr(256 + n)


vocab = {byte_char(b): b for b in range(256)}
vocab.update({"he": 256, "ll": 257, "hell": 258, "\u0120w": 259, "<|endoftext|>": 260})
merges = ["h e", "l l", "he ll", "\u0120 w"]
tj = {"model": {"type": "BPE", "vocab": vocab, "merges": merges},
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}, "normalizer": None,
      "added_tokens": [{"id": 260, "content": "<|endoftext|>", "special": True},
                       {"id": 261, "content": "[X]", "special": False}]}
put("tok_json", "small", json.dumps(tj))
put("tok_json", "with_config", json.dumps(tj).encode() + SEP +
    b'{"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>"}, "pad_token": "[X]", "add_bos_token": false}')
tj2 = dict(tj)
tj2["model"] = {"type": "BPE", "vocab": vocab, "merges": [m.split(" ") for m in merges]}
put("tok_json", "pair_merges", json.dumps(tj2))
enc = dict(vocab)
put("tok_gpt2", "small", json.dumps(enc).encode() + SEP + ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())


def l2c_tok(pieces, max_len=None):
    max_len = max_len or max(len(p) for p, _ in pieces)
    out = struct.pack("<i", max_len)
    for p, s in pieces:
        out += struct.pack("<fi", s, len(p)) + p
    return out


pieces = [(b"<unk>", 0.0), (b"\n<s>\n", 0.0), (b"\n</s>\n", 0.0)]
pieces += [(("<0x%02X>" % b).encode(), 0.0) for b in range(256)]
pieces += [(b" ", -1.0), (b"a", -2.0), (b"b", -2.0), (b" a", -3.0), (b"ab", -4.0), (b" ab", -5.0)]
put("tok_llama2c", "small", l2c_tok(pieces))
put("tok_llama2c", "tiny", l2c_tok(pieces[:3] + pieces[-6:]))


# ---- llama2.c checkpoints
def l2c_model(version, dim=4, hidden=6, layers=1, heads=2, kv=1, vocab=5, seq=4, shared=True):
    HS = dim // heads
    sizes = {"emb": vocab * dim, "an": dim, "wq": heads * HS * dim, "wk": kv * HS * dim,
             "wv": kv * HS * dim, "wo": dim * heads * HS, "fn": dim, "w1": hidden * dim,
             "w2": dim * hidden, "w3": hidden * dim, "norm": dim, "fr": seq * HS // 2,
             "fi": seq * HS // 2, "out": vocab * dim}
    per = {"an", "wq", "wk", "wv", "wo", "fn", "w1", "w2", "w3"}
    order = (["emb", "an", "wq", "wk", "wv", "wo", "fn", "w1", "w2", "w3", "norm", "fr", "fi"]
             if version == 0 else ["an", "fn", "norm", "emb", "wq", "wk", "wv", "wo", "w1", "w2", "w3"])
    if not shared:
        order.append("out")
    n = sum(sizes[k] * (layers if k in per else 1) for k in order)
    if version == 0:
        hdr = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq)
    else:
        hdr = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, layers, heads, kv, vocab, seq,
                          1 if shared else 0)
        hdr += b"\0" * (256 - len(hdr))
    return hdr + f32(n)


put("llama2c", "v0_shared", l2c_model(0))
put("llama2c", "v0_untied", l2c_model(0, shared=False, layers=2))
put("llama2c", "v1_shared", l2c_model(1))
put("llama2c", "v1_untied", l2c_model(1, shared=False))


# ---- JSONL datasets
lines = {
    "text": ['{"text": "hello world"}', '{"text": "caf\\u00e9 \\ud83d\\ude00"}'],
    "messages": ['{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}'],
    "prompt_completion": ['{"prompt": "2+2=", "completion": "4"}', '{"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "assistant", "content": "y"}]}'],
    "preference": ['{"prompt": "q", "chosen": "good", "rejected": "bad", "margin": 1.5}',
                   '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: go away"}',
                   '{"chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "rejected": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "c"}]}'],
    "unpaired": ['{"prompt": "p", "completion": "c", "label": true}', '{"prompt": "p", "completion": "d", "label": 0}'],
    "prompt_only": ['{"prompt": "tell me"}', '', '{"prompt": [{"role": "user", "content": "x"}]}'],
}
for k, ls in lines.items():
    put("dataset", k, "\n".join(ls) + "\n")
put("dataset", "bom_crlf", b"\xef\xbb\xbf" + b'{"text": "a"}\r\n{"text": "b"}\r\n')
put("dataset", "gzip", gzip.compress(b'{"prompt": "a", "completion": "b"}\n', mtime=0))

# ---- --config files
put("flags", "all_types", json.dumps({"model": "tiny", "out": "/tmp/x", "steps": 3, "batch_size": 8,
                                      "packing": True, "lr": 0.001, "beta": 0.1, "seed": 7}))
put("flags", "strings", json.dumps({"--model": "gpt2", "packing": "false", "seed": "123", "lr": "1e-4"}))

# ---- rlhf serve request bodies: byte 0 = endpoint (bit 0: chat) and the server's
# chat template ((b >> 1) % 4: chatml, llama3, hh, none); the rest is the body
def serve(name, head, body):
    put("serve_request", name, bytes([head]) + json.dumps(body).encode())


serve("completion_basic", 0, {"model": "tiny", "prompt": "2+3=", "max_tokens": 4,
                              "temperature": 0.7, "n": 2, "seed": 5, "stop": ["\n"], "logprobs": 2})
serve("completion_list_stream", 0, {"prompt": ["a", "bc", ""], "stream": True,
                                    "stream_options": {"include_usage": True}, "top_k": -1,
                                    "top_p": 0.9})
serve("completion_context_exceeded", 0, {"prompt": "x" * 230, "max_tokens": 40})
serve("chat_chatml", 1, {"model": "tiny", "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_completion_tokens": 3})
serve("chat_llama3", 3, {"messages": [{"role": "user", "content": "x"},
                                      {"role": "assistant", "content": "y"},
                                      {"role": "user", "content": "z"}], "n": 3})
serve("chat_hh_logprobs", 5, {"messages": [{"role": "user", "content": "hello"}],
                              "logprobs": True, "top_logprobs": 1, "max_tokens": 2})
serve("chat_bad_top_logprobs", 1, {"messages": [{"role": "user", "content": "hi"}],
                                   "logprobs": False, "top_logprobs": 3})
serve("chat_without_template", 7, {"messages": [{"role": "user", "content": "no template"}]})
put("serve_request", "not_object", b"\x00[1,2,3]")

# ---- CPL segment pairs (DATASET.cpl.jsonl)
cpl_head = {"format": "cpl_pairs_v1", "rows": 100, "segment": 8, "pairs": 3, "label": "regret",
            "oracle": "sac", "offsets": "random"}
cpl_rows = [{"a": 0, "b": 40, "y": 1, "score_a": 2.5, "score_b": -1.0},
            {"a": 92, "b": 3, "y": 0}, {"a": 10, "b": 11, "y": 0.5}]
put("cpl_pairs", "three_pairs", "\n".join(json.dumps(x) for x in [cpl_head] + cpl_rows) + "\n")
put("cpl_pairs", "header_only", json.dumps(dict(cpl_head, pairs=1)) + "\n")
