// GGUF v3 export for llama.cpp (format: ggml docs/gguf.md). Layout, all
// little-endian:
//   "GGUF", u32 version 3, u64 tensor count, u64 key-value count,
//   key-values: string key, u32 type, value (strings are u64 length + bytes;
//     arrays are u32 element type, u64 count, elements),
//   tensor infos: string name, u32 n_dims, u64 ne[n_dims] (ne[0] is the
//     fastest-varying: a PyTorch (out, in) matrix is ne = [in, out]), u32 ggml
//     type (0 F32, 1 F16), u64 offset into the data section,
//   zero padding to the alignment (32), then each tensor's data, each padded
//   to the alignment.
// Tensor names and metadata keys follow llama.cpp's "llama" and "gpt2"
// architectures. llama.cpp rotates interleaved RoPE pairs (Meta's original
// order), so attn_q/attn_k rows (and biases) are written permuted per head, as
// its convert_hf_to_gguf.py does; a tied head is written once, as token_embd.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/hf.h"
#include "model/model_internal.h"
#include "tok/tok.h"

#define GGUF_ALIGN 32
enum { GG_U8 = 0, GG_U32 = 4, GG_I32 = 5, GG_F32 = 6, GG_BOOL = 7, GG_STR = 8, GG_ARR = 9 };
enum { TOKTYPE_NORMAL = 1, TOKTYPE_UNKNOWN = 2, TOKTYPE_CONTROL = 3, TOKTYPE_UNUSED = 5,
       TOKTYPE_BYTE = 6 };

// ------------------------------------------------------------ byte buffer --

typedef struct {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
} bbuf;

static void bput(bbuf *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 1024;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put_u32(bbuf *b, uint32_t v) { bput(b, &v, 4); }
static void put_u64(bbuf *b, uint64_t v) { bput(b, &v, 8); }
static void put_str(bbuf *b, const char *s, size_t n) {
    put_u64(b, n);
    bput(b, s, n);
}
static void kv_key(bbuf *b, const char *key, uint32_t type) {
    put_str(b, key, strlen(key));
    put_u32(b, type);
    b->n_kv++;
}
static void kv_str(bbuf *b, const char *key, const char *v) {
    kv_key(b, key, GG_STR);
    put_str(b, v, strlen(v));
}
static void kv_u32(bbuf *b, const char *key, uint32_t v) {
    kv_key(b, key, GG_U32);
    put_u32(b, v);
}
static void kv_f32(bbuf *b, const char *key, float v) {
    kv_key(b, key, GG_F32);
    bput(b, &v, 4);
}
static void kv_bool(bbuf *b, const char *key, int v) {
    kv_key(b, key, GG_BOOL);
    unsigned char c = v ? 1 : 0;
    bput(b, &c, 1);
}
static void kv_arr(bbuf *b, const char *key, uint32_t type, uint64_t n) {
    kv_key(b, key, GG_ARR);
    put_u32(b, type);
    put_u64(b, n);
}

// ------------------------------------------------------------- vocabulary --

typedef struct {
    const char *model, *pre; // tokenizer.ggml.model, tokenizer.ggml.pre (NULL: none)
    int n;
    char **tok;
    size_t *len;
    float *score; // NULL: none
    int32_t *type;
    int n_merges;
    char **merge;
    int bos, eos, pad, unk; // -1: none
} gguf_vocab;

static void vocab_free(gguf_vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->tok[i]);
    for (int i = 0; i < v->n_merges; i++) free(v->merge[i]);
    free(v->tok);
    free(v->len);
    free(v->score);
    free(v->type);
    free(v->merge);
}

static char *dup_n(const char *s, size_t n) {
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void push_merge(gguf_vocab *v, int *cap, const char *s, size_t n) {
    if (v->n_merges == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        v->merge = xrealloc(v->merge, (size_t)*cap * sizeof *v->merge);
    }
    v->merge[v->n_merges++] = dup_n(s, n);
}

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves,
// the other bytes for U+0100 onwards, in byte order. Writes UTF-8; returns length.
static int byte_unicode(unsigned char c, char *out) {
    unsigned cp;
    if ((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE)) {
        cp = c;
    } else {
        unsigned k = 0;
        for (unsigned x = 0; x < c; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

// merges from a GPT-2 merges file ("#version" line, then "a b" per line)
static int merges_from_text(gguf_vocab *v, const char *path, rlhf_err *err) {
    size_t n;
    char *text = read_file(path, &n, err);
    if (!text) return -1;
    int cap = 0;
    for (char *line = text; line < text + n;) {
        char *end = memchr(line, '\n', (size_t)(text + n - line));
        if (!end) end = text + n;
        size_t k = (size_t)(end - line);
        if (k && line[k - 1] == '\r') k--;
        if (k && !(line == text && !strncmp(line, "#version", 8))) push_merge(v, &cap, line, k);
        line = end + 1;
    }
    free(text);
    return 0;
}

// merges from an HF tokenizer.json: model.merges as "a b" strings or [a, b] pairs
static int merges_from_json(gguf_vocab *v, const char *path, rlhf_err *err) {
    char *text = read_file(path, NULL, err);
    if (!text) return -1;
    cJSON *o = cJSON_Parse(text);
    free(text);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *mg = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int rc = 0, cap = 0;
    if (!cJSON_IsArray(mg)) {
        rc = rlhf_fail(err, "%s: no model.merges list", path);
        goto done;
    }
    for (const cJSON *e = mg->child; e; e = e->next) {
        if (cJSON_IsString(e)) {
            push_merge(v, &cap, e->valuestring, strlen(e->valuestring));
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            size_t a = strlen(e->child->valuestring), b = strlen(e->child->next->valuestring);
            char *s = xmalloc(a + b + 2);
            memcpy(s, e->child->valuestring, a);
            s[a] = ' ';
            memcpy(s + a + 1, e->child->next->valuestring, b + 1);
            push_merge(v, &cap, s, a + b + 1);
            free(s);
        } else {
            rc = rlhf_fail(err, "%s: model.merges holds an entry that is not \"a b\" or [a, b]",
                           path);
            goto done;
        }
    }
done:
    cJSON_Delete(o);
    return rc;
}

// A byte-level BPE vocabulary (or the byte tokenizer, which is one without
// merges) as llama.cpp's "gpt2" tokenizer: token strings in GPT-2's byte alphabet.
static void vocab_bpe(gguf_vocab *v, const rlhf_tokenizer *t) {
    int n = tok_vocab_size(t);
    v->model = "gpt2";
    v->n = n;
    v->tok = xcalloc((size_t)n, sizeof *v->tok);
    v->len = xcalloc((size_t)n, sizeof *v->len);
    v->type = xcalloc((size_t)n, sizeof *v->type);
    for (int id = 0; id < n; id++) {
        size_t k;
        const char *s = tok_piece(t, id, &k);
        if (tok_is_special(t, id)) {
            v->tok[id] = dup_n(s, k);
            v->len[id] = k;
            v->type[id] = TOKTYPE_CONTROL;
        } else {
            char *o = xmalloc(2 * k + 1);
            size_t m = 0;
            for (size_t j = 0; j < k; j++) m += (size_t)byte_unicode((unsigned char)s[j], o + m);
            o[m] = '\0';
            v->tok[id] = o;
            v->len[id] = m;
            v->type[id] = TOKTYPE_NORMAL;
        }
    }
    v->bos = tok_bos(t);
    v->eos = tok_eos(t);
    v->pad = tok_pad(t);
    v->unk = -1;
}

// llama2.c tokenizer.bin (i32 max_token_length, then per token f32 score, i32
// length, bytes) as llama.cpp's "llama" (SentencePiece) tokenizer: spaces back
// to U+2581, <0xXX> byte tokens, <unk> <s> </s> at 0 1 2.
static int vocab_llama2c(gguf_vocab *v, const char *path, rlhf_err *err) {
    size_t n;
    char *d = read_file(path, &n, err);
    if (!d) return -1;
    v->model = "llama";
    int cap = 0;
    size_t o = 4;
    int rc = 0;
    while (o < n) {
        float score;
        int32_t len;
        if (o + 8 > n) {
            rc = rlhf_fail(err, "%s: truncated at byte %zu", path, o);
            break;
        }
        memcpy(&score, d + o, 4);
        memcpy(&len, d + o + 4, 4);
        o += 8;
        if (len < 0 || (size_t)len > n - o) {
            rc = rlhf_fail(err, "%s: token %d has a bad length %d", path, v->n, len);
            break;
        }
        if (v->n == cap) {
            cap = cap ? 2 * cap : 1024;
            v->tok = xrealloc(v->tok, (size_t)cap * sizeof *v->tok);
            v->len = xrealloc(v->len, (size_t)cap * sizeof *v->len);
            v->score = xrealloc(v->score, (size_t)cap * sizeof *v->score);
            v->type = xrealloc(v->type, (size_t)cap * sizeof *v->type);
        }
        int id = v->n++;
        const char *s = d + o;
        o += (size_t)len;
        char *t = xmalloc(3 * (size_t)len + 8);
        size_t m = 0;
        int type = TOKTYPE_NORMAL;
        if (id == 1 || id == 2) {
            m = (size_t)sprintf(t, "%s", id == 1 ? "<s>" : "</s>");
            type = TOKTYPE_CONTROL;
        } else {
            for (int j = 0; j < len; j++) {
                if (s[j] == ' ') {
                    memcpy(t + m, "\xe2\x96\x81", 3);
                    m += 3;
                } else {
                    t[m++] = s[j];
                }
            }
            t[m] = '\0';
            if (id == 0) type = TOKTYPE_UNKNOWN;
            else if (len == 6 && !strncmp(s, "<0x", 3) && s[5] == '>') type = TOKTYPE_BYTE;
        }
        v->tok[id] = t;
        v->len[id] = m;
        v->score[id] = score;
        v->type[id] = type;
    }
    free(d);
    v->bos = 1;
    v->eos = 2;
    v->pad = -1;
    v->unk = 0;
    return rc;
}

static int vocab_build(gguf_vocab *v, const char *spec, int V, rlhf_err *err) {
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->pad = v->unk = -1;
    tok_files tf;
    if (tok_files_find(spec, &tf, err)) return -1;
    if (!tf.kind[0])
        return rlhf_fail(err, "GGUF export: the model names no tokenizer and llama.cpp needs "
                              "one: pass --tokenizer PATH");
    int rc = 0;
    if (!strcmp(tf.kind, "llama2c")) {
        rc = vocab_llama2c(v, tf.vocab, err);
    } else {
        rlhf_tokenizer *t = NULL;
        if (!strcmp(tf.kind, "byte")) t = tok_byte_create();
        else if (tok_load(&t, spec, err)) return -1;
        vocab_bpe(v, t);
        v->pre = strcmp(tf.kind, "byte") ? "gpt-2" : "default";
        tok_free(t);
        if (!strcmp(tf.kind, "bpe")) rc = merges_from_text(v, tf.merges, err);
        else if (!strcmp(tf.kind, "bpe-json")) rc = merges_from_json(v, tf.vocab, err);
    }
    if (rc == 0 && v->n > V)
        rc = rlhf_fail(err, "GGUF export: tokenizer %s has %d tokens, more than the model's "
                            "vocabulary of %d",
                       spec, v->n, V);
    if (rc) return -1;
    // llama.cpp wants one token per row of token_embd: pad as convert_hf_to_gguf.py does
    v->tok = xrealloc(v->tok, (size_t)V * sizeof *v->tok);
    v->len = xrealloc(v->len, (size_t)V * sizeof *v->len);
    v->type = xrealloc(v->type, (size_t)V * sizeof *v->type);
    if (v->score) v->score = xrealloc(v->score, (size_t)V * sizeof *v->score);
    for (int id = 0; id < V; id++) {
        if (id < v->n && v->len[id] > 0) continue;
        if (id < v->n) free(v->tok[id]);
        char buf[32];
        int k = snprintf(buf, sizeof buf, "[PAD%d]", id);
        v->tok[id] = dup_n(buf, (size_t)k);
        v->len[id] = (size_t)k;
        v->type[id] = TOKTYPE_UNUSED;
        if (v->score) v->score[id] = 0.0f;
    }
    v->n = V;
    return 0;
}

// ----------------------------------------------------------------- tensors --

static void piece(fmt_piece *p, int *n, const char *name, const char *ours, int64_t row0,
                  int64_t rows, int64_t cols, int rope_heads) {
    fmt_piece *q = &p[(*n)++];
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name);
    snprintf(q->ours, sizeof q->ours, "%s", ours);
    q->row0 = row0;
    q->rows = rows;
    q->cols = cols;
    q->rope_heads = rope_heads;
}

static fmt_piece *gguf_pieces(const rlhf_config *c, int *n_out) {
    int L = c->n_layer, C = c->n_embd, HS = C / c->n_head, F = c->d_ff;
    int NQ = c->n_head * HS, NK = c->n_kv_head * HS, gpt2 = c->arch == ARCH_GPT2;
    fmt_piece *p = xcalloc((size_t)L * 16 + 8, sizeof *p);
    int n = 0;
    char g[96], o[64];
#define G(fmt) (snprintf(g, sizeof g, fmt, l), g)
#define O(fmt) (snprintf(o, sizeof o, fmt, l), o)
    piece(p, &n, "token_embd.weight", "tok_emb.weight", 0, c->vocab_size, C, 0);
    if (gpt2) piece(p, &n, "position_embd.weight", "pos_emb.weight", 0, c->max_seq_len, C, 0);
    for (int l = 0; l < L; l++) {
        piece(p, &n, G("blk.%d.attn_norm.weight"), O("layers.%d.attn_norm.weight"), 0, C, 0, 0);
        if (gpt2) {
            piece(p, &n, G("blk.%d.attn_norm.bias"), O("layers.%d.attn_norm.bias"), 0, C, 0, 0);
            piece(p, &n, G("blk.%d.attn_qkv.weight"), O("layers.%d.attn.qkv.weight"), 0, 3 * C, C, 0);
            piece(p, &n, G("blk.%d.attn_qkv.bias"), O("layers.%d.attn.qkv.bias"), 0, 3 * C, 0, 0);
            piece(p, &n, G("blk.%d.attn_output.weight"), O("layers.%d.attn.out.weight"), 0, C, C, 0);
            piece(p, &n, G("blk.%d.attn_output.bias"), O("layers.%d.attn.out.bias"), 0, C, 0, 0);
            piece(p, &n, G("blk.%d.ffn_norm.weight"), O("layers.%d.mlp_norm.weight"), 0, C, 0, 0);
            piece(p, &n, G("blk.%d.ffn_norm.bias"), O("layers.%d.mlp_norm.bias"), 0, C, 0, 0);
            piece(p, &n, G("blk.%d.ffn_up.weight"), O("layers.%d.mlp.up.weight"), 0, F, C, 0);
            piece(p, &n, G("blk.%d.ffn_up.bias"), O("layers.%d.mlp.up.bias"), 0, F, 0, 0);
            piece(p, &n, G("blk.%d.ffn_down.weight"), O("layers.%d.mlp.down.weight"), 0, C, F, 0);
            piece(p, &n, G("blk.%d.ffn_down.bias"), O("layers.%d.mlp.down.bias"), 0, C, 0, 0);
            continue;
        }
        const char *qkv = O("layers.%d.attn.qkv.weight");
        piece(p, &n, G("blk.%d.attn_q.weight"), qkv, 0, NQ, C, c->n_head);
        piece(p, &n, G("blk.%d.attn_k.weight"), qkv, NQ, NK, C, c->n_kv_head);
        piece(p, &n, G("blk.%d.attn_v.weight"), qkv, NQ + NK, NK, C, 0);
        if (c->qkv_bias) {
            const char *b = O("layers.%d.attn.qkv.bias");
            piece(p, &n, G("blk.%d.attn_q.bias"), b, 0, NQ, 0, c->n_head);
            piece(p, &n, G("blk.%d.attn_k.bias"), b, NQ, NK, 0, c->n_kv_head);
            piece(p, &n, G("blk.%d.attn_v.bias"), b, NQ + NK, NK, 0, 0);
        }
        piece(p, &n, G("blk.%d.attn_output.weight"), O("layers.%d.attn.out.weight"), 0, C, NQ, 0);
        piece(p, &n, G("blk.%d.ffn_norm.weight"), O("layers.%d.mlp_norm.weight"), 0, C, 0, 0);
        const char *up = O("layers.%d.mlp.up.weight");
        piece(p, &n, G("blk.%d.ffn_gate.weight"), up, 0, F, C, 0);
        piece(p, &n, G("blk.%d.ffn_up.weight"), up, F, F, C, 0);
        piece(p, &n, G("blk.%d.ffn_down.weight"), O("layers.%d.mlp.down.weight"), 0, C, F, 0);
    }
#undef G
#undef O
    piece(p, &n, "output_norm.weight", "final_norm.weight", 0, C, 0, 0);
    if (gpt2) piece(p, &n, "output_norm.bias", "final_norm.bias", 0, C, 0, 0);
    if (!c->tied) piece(p, &n, "output.weight", "lm_head.weight", 0, c->vocab_size, C, 0);
    *n_out = n;
    return p;
}

// ------------------------------------------------------------------ writer --

static void metadata(bbuf *b, const rlhf_config *c, int f16, const gguf_vocab *v) {
    const char *arch = c->arch == ARCH_GPT2 ? "gpt2" : "llama";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s." s, arch), k)
    kv_str(b, "general.architecture", arch);
    kv_str(b, "general.name", "rlhf.c export");
    kv_u32(b, "general.alignment", GGUF_ALIGN);
    kv_u32(b, "general.file_type", f16 ? 1 : 0); // ALL_F32 / MOSTLY_F16
    kv_u32(b, KEY("context_length"), (uint32_t)c->max_seq_len);
    kv_u32(b, KEY("embedding_length"), (uint32_t)c->n_embd);
    kv_u32(b, KEY("block_count"), (uint32_t)c->n_layer);
    kv_u32(b, KEY("feed_forward_length"), (uint32_t)c->d_ff);
    kv_u32(b, KEY("attention.head_count"), (uint32_t)c->n_head);
    kv_u32(b, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_head);
    if (c->arch == ARCH_GPT2) {
        kv_f32(b, KEY("attention.layer_norm_epsilon"), c->norm_eps);
    } else {
        kv_f32(b, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
        kv_f32(b, KEY("rope.freq_base"), c->rope_theta);
        kv_u32(b, KEY("rope.dimension_count"), (uint32_t)(c->n_embd / c->n_head));
        kv_u32(b, KEY("vocab_size"), (uint32_t)c->vocab_size);
    }
#undef KEY
    kv_str(b, "tokenizer.ggml.model", v->model);
    if (v->pre) kv_str(b, "tokenizer.ggml.pre", v->pre);
    kv_arr(b, "tokenizer.ggml.tokens", GG_STR, (uint64_t)v->n);
    for (int i = 0; i < v->n; i++) put_str(b, v->tok[i], v->len[i]);
    if (v->score) {
        kv_arr(b, "tokenizer.ggml.scores", GG_F32, (uint64_t)v->n);
        bput(b, v->score, (size_t)v->n * 4);
    }
    kv_arr(b, "tokenizer.ggml.token_type", GG_I32, (uint64_t)v->n);
    bput(b, v->type, (size_t)v->n * 4);
    if (!strcmp(v->model, "gpt2")) {
        kv_arr(b, "tokenizer.ggml.merges", GG_STR, (uint64_t)v->n_merges);
        for (int i = 0; i < v->n_merges; i++) put_str(b, v->merge[i], strlen(v->merge[i]));
    }
    if (v->bos >= 0) kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (v->eos >= 0) kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->unk >= 0) kv_u32(b, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    if (v->pad >= 0) kv_u32(b, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    kv_bool(b, "tokenizer.ggml.add_bos_token", !strcmp(v->model, "llama"));
}

static size_t align_up(size_t x) { return (x + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN; }

int gguf_export(const rlhf_model *m, const char *path, int f16, const char *tokenizer,
                rlhf_err *err) {
    const rlhf_config *c = &m->cfg;
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->params[i]))
            return rlhf_fail(err, "refusing to export to %s: the weights contain NaN or inf", path);
    if (c->score_head || c->value_head)
        fprintf(stderr, "note: GGUF has no place for the score/value heads: not exported\n");
    gguf_vocab v;
    if (vocab_build(&v, tokenizer && *tokenizer ? tokenizer : c->tokenizer, c->vocab_size, err)) {
        vocab_free(&v);
        return -1;
    }
    int n;
    fmt_piece *p = gguf_pieces(c, &n);
    bbuf kv = {0}, info = {0};
    metadata(&kv, c, f16, &v);
    vocab_free(&v);
    size_t off = 0;
    st_dtype *dt = xmalloc((size_t)n * sizeof *dt);
    for (int i = 0; i < n; i++) {
        dt[i] = f16 && p[i].cols ? ST_F16 : ST_F32; // norms and biases stay F32
        put_str(&info, p[i].name, strlen(p[i].name));
        put_u32(&info, p[i].cols ? 2 : 1);
        if (p[i].cols) put_u64(&info, (uint64_t)p[i].cols);
        put_u64(&info, (uint64_t)p[i].rows);
        put_u32(&info, dt[i] == ST_F16 ? 1 : 0);
        put_u64(&info, off);
        off = align_up(off + fmt_piece_numel(&p[i]) * st_dtype_size(dt[i]));
    }
    bbuf head = {0};
    bput(&head, "GGUF", 4);
    put_u32(&head, 3);
    put_u64(&head, (uint64_t)n);
    put_u64(&head, kv.n_kv);
    static const unsigned char zeros[GGUF_ALIGN] = {0};
    size_t pos = head.n + kv.n + info.n;
    atomic_file a;
    int rc = atomic_open(&a, path, err);
    if (rc == 0) rc = atomic_write(&a, head.p, head.n, err);
    if (rc == 0) rc = atomic_write(&a, kv.p, kv.n, err);
    if (rc == 0) rc = atomic_write(&a, info.p, info.n, err);
    if (rc == 0) rc = atomic_write(&a, zeros, align_up(pos) - pos, err);
    for (int i = 0; i < n && rc == 0; i++) {
        size_t bytes = fmt_piece_numel(&p[i]) * st_dtype_size(dt[i]);
        rc = fmt_write_piece(&a, m, &p[i], dt[i], err);
        if (rc == 0) rc = atomic_write(&a, zeros, align_up(bytes) - bytes, err);
    }
    if (rc == 0) rc = atomic_commit(&a, err);
    else atomic_abort(&a);
    free(head.p);
    free(kv.p);
    free(info.p);
    free(dt);
    free(p);
    return rc;
}
