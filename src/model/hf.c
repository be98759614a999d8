// Hugging Face folders: config.json (model_type gpt2, llama, qwen2, mistral)
// plus model.safetensors or shards named by model.safetensors.index.json, read
// into our model one tensor at a time; and finding a tokenizer's files. The way
// back (hf_export) is in hf_export.c; what every foreign format shares lives in
// foreign.c. See hf.h for the layout conversions.
#include "model/hf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/json.h"
#include "model/model_internal.h"
#include "tok/tok.h"

static void add_piece(fmt_piece *p, int *n, const char *name, const char *ours, int64_t row0,
                      int64_t rows, int64_t cols, int transpose) {
    fmt_piece *q = &p[(*n)++];
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name);
    snprintf(q->ours, sizeof q->ours, "%s", ours);
    q->row0 = row0;
    q->rows = rows;
    q->cols = cols;
    q->transpose = transpose;
}

// The HF tensors of a model with config c, in HF's canonical names
// (GPT2LMHeadModel without its "transformer." prefix; Llama with "model.").
fmt_piece *hf_pieces(const rlhf_config *c, int *n_out) {
    int L = c->n_layer, C = c->n_embd, HS = C / c->n_head, F = c->d_ff;
    int NQ = c->n_head * HS, NK = c->n_kv_head * HS;
    fmt_piece *p = xcalloc((size_t)L * 16 + 8, sizeof *p);
    int n = 0;
    char h[96], o[64];
#define HF(fmt) (snprintf(h, sizeof h, fmt, l), h)
#define OURS(fmt) (snprintf(o, sizeof o, fmt, l), o)
    if (c->arch == ARCH_GPT2) {
        add_piece(p, &n, "wte.weight", "tok_emb.weight", 0, c->vocab_size, C, 0);
        add_piece(p, &n, "wpe.weight", "pos_emb.weight", 0, c->max_seq_len, C, 0);
        for (int l = 0; l < L; l++) {
            add_piece(p, &n, HF("h.%d.ln_1.weight"), OURS("layers.%d.attn_norm.weight"), 0, C, 0, 0);
            add_piece(p, &n, HF("h.%d.ln_1.bias"), OURS("layers.%d.attn_norm.bias"), 0, C, 0, 0);
            add_piece(p, &n, HF("h.%d.attn.c_attn.weight"), OURS("layers.%d.attn.qkv.weight"), 0,
                      3 * C, C, 1);
            add_piece(p, &n, HF("h.%d.attn.c_attn.bias"), OURS("layers.%d.attn.qkv.bias"), 0, 3 * C,
                      0, 0);
            add_piece(p, &n, HF("h.%d.attn.c_proj.weight"), OURS("layers.%d.attn.out.weight"), 0, C,
                      C, 1);
            add_piece(p, &n, HF("h.%d.attn.c_proj.bias"), OURS("layers.%d.attn.out.bias"), 0, C, 0, 0);
            add_piece(p, &n, HF("h.%d.ln_2.weight"), OURS("layers.%d.mlp_norm.weight"), 0, C, 0, 0);
            add_piece(p, &n, HF("h.%d.ln_2.bias"), OURS("layers.%d.mlp_norm.bias"), 0, C, 0, 0);
            add_piece(p, &n, HF("h.%d.mlp.c_fc.weight"), OURS("layers.%d.mlp.up.weight"), 0, F, C, 1);
            add_piece(p, &n, HF("h.%d.mlp.c_fc.bias"), OURS("layers.%d.mlp.up.bias"), 0, F, 0, 0);
            add_piece(p, &n, HF("h.%d.mlp.c_proj.weight"), OURS("layers.%d.mlp.down.weight"), 0, C,
                      F, 1);
            add_piece(p, &n, HF("h.%d.mlp.c_proj.bias"), OURS("layers.%d.mlp.down.bias"), 0, C, 0, 0);
        }
        add_piece(p, &n, "ln_f.weight", "final_norm.weight", 0, C, 0, 0);
        add_piece(p, &n, "ln_f.bias", "final_norm.bias", 0, C, 0, 0);
    } else {
        add_piece(p, &n, "model.embed_tokens.weight", "tok_emb.weight", 0, c->vocab_size, C, 0);
        for (int l = 0; l < L; l++) {
            add_piece(p, &n, HF("model.layers.%d.input_layernorm.weight"),
                      OURS("layers.%d.attn_norm.weight"), 0, C, 0, 0);
            const char *qkv = OURS("layers.%d.attn.qkv.weight");
            add_piece(p, &n, HF("model.layers.%d.self_attn.q_proj.weight"), qkv, 0, NQ, C, 0);
            add_piece(p, &n, HF("model.layers.%d.self_attn.k_proj.weight"), qkv, NQ, NK, C, 0);
            add_piece(p, &n, HF("model.layers.%d.self_attn.v_proj.weight"), qkv, NQ + NK, NK, C, 0);
            if (c->qkv_bias) {
                const char *b = OURS("layers.%d.attn.qkv.bias");
                add_piece(p, &n, HF("model.layers.%d.self_attn.q_proj.bias"), b, 0, NQ, 0, 0);
                add_piece(p, &n, HF("model.layers.%d.self_attn.k_proj.bias"), b, NQ, NK, 0, 0);
                add_piece(p, &n, HF("model.layers.%d.self_attn.v_proj.bias"), b, NQ + NK, NK, 0, 0);
            }
            add_piece(p, &n, HF("model.layers.%d.self_attn.o_proj.weight"),
                      OURS("layers.%d.attn.out.weight"), 0, C, NQ, 0);
            add_piece(p, &n, HF("model.layers.%d.post_attention_layernorm.weight"),
                      OURS("layers.%d.mlp_norm.weight"), 0, C, 0, 0);
            const char *up = OURS("layers.%d.mlp.up.weight");
            add_piece(p, &n, HF("model.layers.%d.mlp.gate_proj.weight"), up, 0, F, C, 0);
            add_piece(p, &n, HF("model.layers.%d.mlp.up_proj.weight"), up, F, F, C, 0);
            add_piece(p, &n, HF("model.layers.%d.mlp.down_proj.weight"),
                      OURS("layers.%d.mlp.down.weight"), 0, C, F, 0);
        }
        add_piece(p, &n, "model.norm.weight", "final_norm.weight", 0, C, 0, 0);
        if (!c->tied) add_piece(p, &n, "lm_head.weight", "lm_head.weight", 0, c->vocab_size, C, 0);
    }
#undef HF
#undef OURS
    *n_out = n;
    return p;
}

// ----------------------------------------------------------------- config --

// Ranges of the HF config fields (the same limits config_validate applies to
// ours, named here so that a bad value is reported under HF's field name).
#define HF_MAX_LAYER 1024
#define HF_MAX_EMBD (1 << 16)
#define HF_MAX_FF (1 << 20)
#define HF_MAX_VOCAB (1 << 24)
#define HF_MAX_SEQ (1 << 20)

typedef struct {
    rlhf_config cfg;
    char model_type[32];
    char note[512];
    char path[4096]; // config.json
} hf_config;

static const cJSON *jget(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNull(v) ? NULL : v;
}

// integer field; absent or null: def (INT_MIN: required)
static int j_int(const cJSON *o, const char *k, int def, int *out, const char *src, rlhf_err *err) {
    const cJSON *v = jget(o, k);
    if (!v) {
        if (def == INT_MIN) return rlhf_fail(err, "%s: field \"%s\" missing", src, k);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9)
        return rlhf_fail(err, "%s: field \"%s\" must be an integer", src, k);
    *out = (int)v->valuedouble;
    return 0;
}

// integer field that, when present, must lie in [lo, hi] (absent or null: def)
static int j_int_in(const cJSON *o, const char *k, int def, int lo, int hi, int *out,
                    const char *src, rlhf_err *err) {
    if (j_int(o, k, def, out, src, err)) return -1;
    if (jget(o, k) && (*out < lo || *out > hi))
        return rlhf_fail(err, "%s: field \"%s\" = %d is out of range [%d, %d]", src, k, *out, lo,
                         hi);
    return 0;
}

static int j_float(const cJSON *o, const char *k, float def, float *out, const char *src,
                   rlhf_err *err);

// float field that, when present, must be finite and in (0, hi] (absent or null: def)
static int j_pos_float(const cJSON *o, const char *k, float def, double hi, float *out,
                       const char *src, rlhf_err *err) {
    if (j_float(o, k, def, out, src, err)) return -1;
    if (jget(o, k) && !(*out > 0 && *out <= hi))
        return rlhf_fail(err, "%s: field \"%s\" = %g must be in (0, %g]", src, k,
                         jget(o, k)->valuedouble, hi);
    return 0;
}

static int j_float(const cJSON *o, const char *k, float def, float *out, const char *src,
                   rlhf_err *err) {
    const cJSON *v = jget(o, k);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.4e38)
        return rlhf_fail(err, "%s: field \"%s\" must be a finite number", src, k);
    *out = (float)v->valuedouble;
    return 0;
}

static int j_bool(const cJSON *o, const char *k, int def, int *out, const char *src,
                  rlhf_err *err) {
    const cJSON *v = jget(o, k);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return rlhf_fail(err, "%s: field \"%s\" must be true or false", src, k);
    *out = cJSON_IsTrue(v);
    return 0;
}

static const char *j_str(const cJSON *o, const char *k, const char *def) {
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : def;
}

// RoPE settings other than plain RoPE (linear, dynamic, yarn, llama3 scaling)
// change the frequencies: refused rather than silently computed wrong.
static int check_rope(const cJSON *o, float *theta, const char *src, rlhf_err *err) {
    const cJSON *rp = jget(o, "rope_parameters"); // transformers >= 5
    if (cJSON_IsObject(rp)) {
        if (j_pos_float(rp, "rope_theta", *theta, 3.4e38, theta, src, err)) return -1;
        const char *t = j_str(rp, "rope_type", "default");
        if (strcmp(t, "default"))
            return rlhf_fail(err, "%s: rope_parameters.rope_type \"%s\" is not supported (only "
                                  "plain RoPE, \"default\")",
                             src, t);
    }
    const cJSON *rs = jget(o, "rope_scaling");
    if (rs) {
        const char *t = cJSON_IsObject(rs) ? j_str(rs, "rope_type", j_str(rs, "type", "?")) : "?";
        if (strcmp(t, "default"))
            return rlhf_fail(err, "%s: rope_scaling (type \"%s\") is not supported: rlhf.c "
                                  "computes plain RoPE only",
                             src, t);
    }
    return 0;
}

// config.json of a GPT-2 (model_type gpt2) into c
static int gpt2_config(const cJSON *o, rlhf_config *c, const char *src, rlhf_err *err) {
    c->arch = ARCH_GPT2;
    int n_ctx = 1024, tie = 1, scale = 1, inv_layer = 0, upcast = 0;
    // n_inner null or absent: 4 * n_embd (as HF); present, it is used as it is
    if (j_int_in(o, "n_layer", INT_MIN, 1, HF_MAX_LAYER, &c->n_layer, src, err) ||
        j_int_in(o, "n_head", INT_MIN, 1, HF_MAX_EMBD, &c->n_head, src, err) ||
        j_int_in(o, "n_embd", INT_MIN, 1, HF_MAX_EMBD, &c->n_embd, src, err) ||
        j_int_in(o, "vocab_size", INT_MIN, 1, HF_MAX_VOCAB, &c->vocab_size, src, err) ||
        j_int_in(o, "n_ctx", 1024, 1, HF_MAX_SEQ, &n_ctx, src, err) ||
        j_int_in(o, "n_positions", n_ctx, 1, HF_MAX_SEQ, &c->max_seq_len, src, err) ||
        j_int_in(o, "n_inner", 0, 1, HF_MAX_FF, &c->d_ff, src, err) ||
        j_pos_float(o, "layer_norm_epsilon", 1e-5f, 1, &c->norm_eps, src, err) ||
        j_bool(o, "tie_word_embeddings", 1, &tie, src, err) ||
        j_bool(o, "scale_attn_weights", 1, &scale, src, err) ||
        j_bool(o, "scale_attn_by_inverse_layer_idx", 0, &inv_layer, src, err) ||
        j_bool(o, "reorder_and_upcast_attn", 0, &upcast, src, err))
        return -1;
    const char *act = j_str(o, "activation_function", "gelu_new");
    if (strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh") && strcmp(act, "gelu_fast")) {
        rlhf_fail(err, "%s: activation_function \"%s\" is not supported (rlhf.c's GPT-2 uses "
                       "the tanh GELU, \"gelu_new\")",
                  src, act);
        return -1;
    }
    if (!tie || !scale || inv_layer) {
        rlhf_fail(err, "%s: %s is not supported", src,
                  !tie     ? "tie_word_embeddings false (an untied GPT-2 head)"
                  : !scale ? "scale_attn_weights false"
                           : "scale_attn_by_inverse_layer_idx");
        return -1;
    }
    if (c->n_embd % c->n_head) {
        rlhf_fail(err, "%s: field \"n_embd\" = %d is not a multiple of n_head %d", src,
                  c->n_embd, c->n_head);
        return -1;
    }
    c->n_kv_head = c->n_head;
    c->tied = 1;
    return 0;
}

// config.json of a Llama-family model (llama, qwen2, mistral) into h->cfg; h->note says
// when the context was capped at a sliding window
static int llama_config(const cJSON *o, hf_config *h, int llama, int qwen2, int mistral,
                        const char *src, rlhf_err *err) {
    rlhf_config *c = &h->cfg;
    c->arch = ARCH_LLAMA;
    int head_dim = 0, attn_bias = 0, mlp_bias = 0;
    int max_pos_default = llama ? 2048 : qwen2 ? 32768 : 4096 * 32;
    if (j_int_in(o, "num_hidden_layers", INT_MIN, 1, HF_MAX_LAYER, &c->n_layer, src, err) ||
        j_int_in(o, "num_attention_heads", INT_MIN, 1, HF_MAX_EMBD, &c->n_head, src, err) ||
        j_int_in(o, "num_key_value_heads", c->n_head, 1, c->n_head, &c->n_kv_head, src, err) ||
        j_int_in(o, "hidden_size", INT_MIN, 1, HF_MAX_EMBD, &c->n_embd, src, err) ||
        j_int_in(o, "intermediate_size", INT_MIN, 1, HF_MAX_FF, &c->d_ff, src, err) ||
        j_int_in(o, "vocab_size", INT_MIN, 1, HF_MAX_VOCAB, &c->vocab_size, src, err) ||
        j_int_in(o, "max_position_embeddings", max_pos_default, 1, HF_MAX_SEQ, &c->max_seq_len,
                 src, err) ||
        j_int_in(o, "head_dim", 0, 1, HF_MAX_EMBD, &head_dim, src, err) ||
        j_pos_float(o, "rms_norm_eps", 1e-6f, 1, &c->norm_eps, src, err) ||
        j_pos_float(o, "rope_theta", 10000.0f, 3.4e38, &c->rope_theta, src, err) ||
        j_bool(o, "tie_word_embeddings", 0, &c->tied, src, err) ||
        j_bool(o, "attention_bias", 0, &attn_bias, src, err) ||
        j_bool(o, "mlp_bias", 0, &mlp_bias, src, err) ||
        check_rope(o, &c->rope_theta, src, err))
        return -1;
    const char *act = j_str(o, "hidden_act", "silu");
    if (strcmp(act, "silu")) {
        rlhf_fail(err, "%s: hidden_act \"%s\" is not supported (SwiGLU uses \"silu\")", src,
                  act);
        return -1;
    }
    if (attn_bias || mlp_bias) {
        rlhf_fail(err, "%s: %s true is not supported (rlhf.c's Llama has biases on q/k/v "
                       "only, as Qwen2)",
                  src, attn_bias ? "attention_bias" : "mlp_bias");
        return -1;
    }
    if (c->n_embd % c->n_head) {
        rlhf_fail(err, "%s: field \"hidden_size\" = %d is not a multiple of "
                       "num_attention_heads %d",
                  src, c->n_embd, c->n_head);
        return -1;
    }
    if (c->n_head % c->n_kv_head) {
        rlhf_fail(err, "%s: field \"num_key_value_heads\" = %d does not divide "
                       "num_attention_heads %d",
                  src, c->n_kv_head, c->n_head);
        return -1;
    }
    if (head_dim && (int64_t)head_dim * c->n_head != c->n_embd) {
        rlhf_fail(err, "%s: head_dim %d * num_attention_heads %d != hidden_size %d: not "
                       "supported",
                  src, head_dim, c->n_head, c->n_embd);
        return -1;
    }
    c->qkv_bias = qwen2;
    // Sliding-window attention equals full attention for sequences no longer
    // than the window, so the context is capped there instead of refusing.
    int window = 0, use_window = mistral;
    if (j_int_in(o, "sliding_window", 0, 0, INT_MAX, &window, src, err) ||
        (qwen2 && j_bool(o, "use_sliding_window", 0, &use_window, src, err)))
        return -1;
    if (use_window && window > 0 && window < c->max_seq_len) {
        snprintf(h->note, sizeof h->note,
                 "sliding_window %d < max_position_embeddings %d: rlhf.c computes full "
                 "attention, equal within the window, so max_seq_len is capped at %d",
                 window, c->max_seq_len, window);
        c->max_seq_len = window;
    }
    return 0;
}

static int hf_read_config(const char *dir, hf_config *h, rlhf_err *err) {
    memset(h, 0, sizeof *h);
    fmt_join(h->path, sizeof h->path, dir, "config.json");
    const char *src = h->path;
    cJSON *o = json_read_object(src, err);
    if (!o) return -1;
    int rc = -1;
    rlhf_config *c = &h->cfg;
    const char *mt = j_str(o, "model_type", NULL);
    if (!mt) {
        rlhf_fail(err, "%s: no \"model_type\" field (not a Hugging Face model config)", src);
        goto done;
    }
    snprintf(h->model_type, sizeof h->model_type, "%s", mt);
    int gpt2 = !strcmp(mt, "gpt2");
    int llama = !strcmp(mt, "llama"), qwen2 = !strcmp(mt, "qwen2"), mistral = !strcmp(mt, "mistral");
    if (!gpt2 && !llama && !qwen2 && !mistral) {
        rlhf_fail(err, "%s: model_type \"%s\" is not supported (rlhf.c loads gpt2, llama, qwen2 "
                       "and mistral)",
                  src, mt);
        goto done;
    }
    if (gpt2 ? gpt2_config(o, c, src, err) : llama_config(o, h, llama, qwen2, mistral, src, err))
        goto done;
    config_fill_defaults(c);
    if (config_validate(c, err)) {
        rlhf_fail_ctx(err, "%s", src);
        goto done;
    }
    if (fmt_has(dir, "tokenizer.json") || (fmt_has(dir, "vocab.json") && fmt_has(dir, "merges.txt")) ||
        (fmt_has(dir, "encoder.json") && fmt_has(dir, "vocab.bpe")) || fmt_has(dir, "tokenizer.bin"))
        fmt_set_tokenizer_path(c, dir);
    else if (!strcmp(j_str(o, "rlhf_tokenizer", ""), "byte"))
        snprintf(c->tokenizer, sizeof c->tokenizer, "byte");
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

int hf_is_model_dir(const char *dir) {
    char p[4096];
    if (!fmt_is_file(fmt_join(p, sizeof p, dir, "config.json"))) return 0;
    char *text = read_file(p, NULL, NULL);
    if (!text) return 0;
    cJSON *o = cJSON_Parse(text);
    free(text);
    int yes = cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, "model_type") &&
              !cJSON_GetObjectItemCaseSensitive(o, "arch");
    cJSON_Delete(o);
    return yes;
}

// ----------------------------------------------------------------- shards --

typedef struct {
    int n;
    st_file *f;
    uint8_t **used; // per file, per entry: matched by a piece
    char dir[4096];
    char index[4096]; // the index path, "" for a single file
} hf_files;

static void hf_files_close(hf_files *h) {
    for (int i = 0; i < h->n; i++) {
        st_close(&h->f[i]);
        free(h->used[i]);
    }
    free(h->f);
    free(h->used);
    memset(h, 0, sizeof *h);
}

static int hf_open_one(hf_files *h, const char *path, rlhf_err *err) {
    st_file *f = &h->f[h->n];
    if (st_open(f, path, err)) return -1;
    h->used[h->n] = xcalloc((size_t)f->n_entries + 1, 1);
    h->n++;
    return 0;
}

static int hf_files_open(hf_files *h, const char *dir, rlhf_err *err) {
    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "%s", dir);
    char p[4096];
    if (fmt_is_file(fmt_join(p, sizeof p, dir, "model.safetensors"))) {
        h->f = xcalloc(1, sizeof *h->f);
        h->used = xcalloc(1, sizeof *h->used);
        if (hf_open_one(h, p, err) == 0) return 0;
        hf_files_close(h);
        return -1;
    }
    fmt_join(h->index, sizeof h->index, dir, "model.safetensors.index.json");
    if (!fmt_is_file(h->index)) {
        const char *why = fmt_has(dir, "pytorch_model.bin") || fmt_has(dir, "pytorch_model.bin.index.json")
                              ? " (it has PyTorch .bin weights: convert them to safetensors)"
                              : "";
        return rlhf_fail(err, "%s: no model.safetensors or model.safetensors.index.json%s", dir,
                         why);
    }
    cJSON *o = json_read_object(h->index, err);
    if (!o) return -1;
    const cJSON *wm = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "weight_map") : NULL;
    int rc = -1;
    if (!cJSON_IsObject(wm) || !wm->child) {
        rlhf_fail(err, "%s: no \"weight_map\" object", h->index);
        goto done;
    }
    int cap = cJSON_GetArraySize(wm);
    h->f = xcalloc((size_t)cap, sizeof *h->f);
    h->used = xcalloc((size_t)cap, sizeof *h->used);
    const char **names = xcalloc((size_t)cap, sizeof *names);
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            rlhf_fail(err, "%s: weight_map[\"%s\"] is not a file name", h->index, e->string);
            goto done_names;
        }
        const char *file = e->valuestring;
        if (!*file || strchr(file, '/') || !strcmp(file, "..")) {
            rlhf_fail(err, "%s: weight_map[\"%s\"] = \"%s\" is not a file in the folder",
                      h->index, e->string, file);
            goto done_names;
        }
        int k = 0;
        while (k < h->n && strcmp(names[k], file)) k++;
        if (k == h->n) {
            fmt_join(p, sizeof p, dir, file);
            if (!fmt_is_file(p)) {
                rlhf_fail(err, "%s: shard \"%s\" (holding \"%s\") is missing from the folder",
                          h->index, file, e->string);
                goto done_names;
            }
            names[k] = file;
            if (hf_open_one(h, p, err)) goto done_names;
        }
        if (!st_find(&h->f[k], e->string)) {
            rlhf_fail(err, "%s: names shard \"%s\" for tensor \"%s\", but %s does not hold it",
                      h->index, file, e->string, h->f[k].path);
            goto done_names;
        }
    }
    rc = 0;
done_names:
    free(names);
done:
    cJSON_Delete(o);
    if (rc) hf_files_close(h);
    return rc;
}

// Finds canonical HF name `name` under the names real checkpoints use: GPT-2
// with or without "transformer.", Llama with or without "model.".
static const st_entry *hf_find(hf_files *h, const char *name, int gpt2, int *file) {
    char alt[2][128];
    int n_alt = 0;
    if (gpt2) {
        snprintf(alt[n_alt++], sizeof alt[0], "transformer.%s", name);
        snprintf(alt[n_alt++], sizeof alt[0], "%s", name);
    } else {
        snprintf(alt[n_alt++], sizeof alt[0], "%s", name);
        if (!strncmp(name, "model.", 6)) snprintf(alt[n_alt++], sizeof alt[0], "%s", name + 6);
    }
    for (int a = 0; a < n_alt; a++)
        for (int i = 0; i < h->n; i++) {
            const st_entry *e = st_find(&h->f[i], alt[a]);
            if (e) {
                h->used[i][e - h->f[i].entries] = 1;
                *file = i;
                return e;
            }
        }
    return NULL;
}

// Tensors HF keeps that carry no weights of their own.
static int hf_ignorable(const char *name, const rlhf_config *c) {
    return fmt_ends_with(name, ".attn.bias") || fmt_ends_with(name, ".attn.masked_bias") ||
           fmt_ends_with(name, ".rotary_emb.inv_freq") ||
           (c->tied && !strcmp(name, "lm_head.weight"));
}


// Matches every piece to an entry with the right shape, and every entry to a
// piece. load: m to fill (NULL: only check). Fills the info counters.
static int hf_walk(hf_files *h, const hf_config *hc, rlhf_model *m, model_file_info *info,
                   rlhf_err *err) {
    int n, rc = -1, gpt2 = hc->cfg.arch == ARCH_GPT2;
    fmt_piece *p = hf_pieces(&hc->cfg, &n);
    float *scratch = NULL;
    size_t cap = 0;
    unsigned dtypes = 0;
    for (int i = 0; i < n; i++) {
        int fi;
        const st_entry *e = hf_find(h, p[i].name, gpt2, &fi);
        if (!e) {
            rlhf_fail(err, "%s: tensor \"%s\" missing (%s expects it)",
                      h->index[0] ? h->index : h->f[0].path, p[i].name, hc->path);
            goto done;
        }
        int64_t want[2];
        int nd = fmt_piece_shape(&p[i], want);
        if (e->ndim != nd || e->shape[0] != want[0] || (nd == 2 && e->shape[1] != want[1])) {
            char a[128], b[128];
            fmt_shape_str(a, sizeof a, e->ndim, e->shape);
            fmt_shape_str(b, sizeof b, nd, want);
            rlhf_fail(err, "%s: tensor \"%s\" has shape %s, expected %s from %s", h->f[fi].path,
                      e->name, a, b, hc->path);
            goto done;
        }
        if (e->dtype != ST_F32 && e->dtype != ST_BF16 && e->dtype != ST_F16 && e->dtype != ST_F64) {
            rlhf_fail(err, "%s: tensor \"%s\" has dtype %s (rlhf.c reads F32, BF16, F16, F64)",
                      h->f[fi].path, e->name, st_dtype_name(e->dtype));
            goto done;
        }
        dtypes |= 1u << e->dtype;
        if (info) {
            info->n_params += (size_t)e->numel;
            info->file_bytes += e->nbytes;
            info->n_tensors++;
        }
        if (!m) continue;
        const rlhf_tensor *t = model_find_tensor(m, p[i].ours);
        RLHF_ASSERT(t);
        size_t k = fmt_piece_numel(&p[i]);
        float *dst = m->params + t->offset + p[i].row0 * (p[i].cols ? p[i].cols : 1);
        if (!p[i].transpose) {
            if (st_read_f32(&h->f[fi], e, dst, k, err)) goto done;
        } else {
            if (k > cap) {
                free(scratch);
                scratch = xmalloc(k * sizeof(float));
                cap = k;
            }
            if (st_read_f32(&h->f[fi], e, scratch, k, err)) goto done;
            fmt_place(dst, &p[i], scratch);
        }
        for (size_t j = 0; j < k; j++)
            if (!isfinite(dst[j])) {
                rlhf_fail(err, "%s: tensor \"%s\" contains NaN or inf", h->f[fi].path, e->name);
                goto done;
            }
        // hand the file pages just read back: the float32 copy is what we keep
        long page = sysconf(_SC_PAGESIZE);
        uintptr_t b = (uintptr_t)e->data & ~(uintptr_t)(page - 1);
        uintptr_t end = (uintptr_t)e->data + e->nbytes;
        if (e->nbytes) madvise((void *)b, end - b, MADV_DONTNEED);
    }
    for (int f = 0; f < h->n; f++)
        for (int i = 0; i < h->f[f].n_entries; i++) {
            const char *name = h->f[f].entries[i].name;
            if (h->used[f][i] || hf_ignorable(name, &hc->cfg)) continue;
            rlhf_fail(err, "%s: unexpected tensor \"%s\" (not part of the %s model described by %s)",
                      h->f[f].path, name, hc->model_type, hc->path);
            goto done;
        }
    if (info) fmt_dtype_names(info->dtype, sizeof info->dtype, dtypes);
    rc = 0;
done:
    free(scratch);
    free(p);
    return rc;
}

int hf_load(const char *dir, rlhf_model **out, rlhf_err *err) {
    hf_config hc;
    if (hf_read_config(dir, &hc, err)) return -1;
    if (hc.note[0]) fprintf(stderr, "warning: %s: %s\n", hc.path, hc.note);
    hf_files h;
    if (hf_files_open(&h, dir, err)) return -1;
    // every tensor present with its shape before the model is allocated, so a
    // config's sizes are backed by the files' bytes
    if (hf_walk(&h, &hc, NULL, NULL, err)) {
        hf_files_close(&h);
        return -1;
    }
    rlhf_model *m;
    if (model_create_empty(&m, &hc.cfg, err)) {
        hf_files_close(&h);
        return rlhf_fail_ctx(err, "%s", hc.path);
    }
    int rc = hf_walk(&h, &hc, m, NULL, err);
    hf_files_close(&h);
    if (rc) model_free(m);
    else *out = m;
    return rc;
}

int hf_inspect(const char *dir, model_file_info *info, rlhf_err *err) {
    hf_config hc;
    memset(info, 0, sizeof *info);
    if (hf_read_config(dir, &hc, err)) return -1;
    hf_files h;
    if (hf_files_open(&h, dir, err)) return -1;
    snprintf(info->format, sizeof info->format, "HF safetensors%s",
             h.index[0] ? " (sharded, with model.safetensors.index.json)" : "");
    snprintf(info->model_type, sizeof info->model_type, "%s", hc.model_type);
    snprintf(info->note, sizeof info->note, "%s", hc.note);
    info->cfg = hc.cfg;
    info->n_files = h.n;
    int rc = hf_walk(&h, &hc, NULL, info, err);
    hf_files_close(&h);
    return rc;
}

// ------------------------------------------------------------- tokenizer --

int tok_files_find(const char *spec, tok_files *tf, rlhf_err *err) {
    memset(tf, 0, sizeof *tf);
    if (!spec || !*spec) return 0;
    if (!strcmp(spec, "byte")) {
        snprintf(tf->kind, sizeof tf->kind, "byte");
        return 0;
    }
    struct stat st;
    if (stat(spec, &st) != 0)
        return rlhf_fail(err, "tokenizer %s: cannot open: %s", spec, strerror(errno));
    char a[4096], b[4096];
    if (S_ISDIR(st.st_mode)) {
        snprintf(tf->dir, sizeof tf->dir, "%s", spec);
        const char *pairs[][2] = {{"encoder.json", "vocab.bpe"}, {"vocab.json", "merges.txt"}};
        if (fmt_is_file(fmt_join(a, sizeof a, spec, "tokenizer.json"))) {
            snprintf(tf->kind, sizeof tf->kind, "bpe-json");
            snprintf(tf->vocab, sizeof tf->vocab, "%s", a);
            return 0;
        }
        for (int i = 0; i < 2; i++)
            if (fmt_is_file(fmt_join(a, sizeof a, spec, pairs[i][0]))) {
                snprintf(tf->kind, sizeof tf->kind, "bpe");
                snprintf(tf->vocab, sizeof tf->vocab, "%s", a);
                snprintf(tf->merges, sizeof tf->merges, "%s", fmt_join(b, sizeof b, spec, pairs[i][1]));
                return 0;
            }
        if (fmt_is_file(fmt_join(a, sizeof a, spec, "tokenizer.bin"))) {
            snprintf(tf->kind, sizeof tf->kind, "llama2c");
            snprintf(tf->vocab, sizeof tf->vocab, "%s", a);
            return 0;
        }
        return rlhf_fail(err, "%s: no tokenizer files in this folder", spec);
    }
    fmt_dir_of(tf->dir, sizeof tf->dir, spec);
    const char *base = strrchr(spec, '/') ? strrchr(spec, '/') + 1 : spec;
    const char *sib[][2] = {{"encoder.json", "vocab.bpe"}, {"vocab.json", "merges.txt"}};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            if (!strcmp(base, sib[i][k])) {
                snprintf(tf->kind, sizeof tf->kind, "bpe");
                fmt_join(tf->vocab, sizeof tf->vocab, tf->dir, sib[i][0]);
                fmt_join(tf->merges, sizeof tf->merges, tf->dir, sib[i][1]);
                return 0;
            }
    FILE *f = fopen(spec, "rb");
    int c = f ? fgetc(f) : EOF;
    while (c == ' ' || c == '\n' || c == '\r' || c == '\t') c = fgetc(f);
    if (f) fclose(f);
    snprintf(tf->kind, sizeof tf->kind, fmt_ends_with(base, ".json") || c == '{' ? "bpe-json" : "llama2c");
    snprintf(tf->vocab, sizeof tf->vocab, "%s", spec);
    return 0;
}
