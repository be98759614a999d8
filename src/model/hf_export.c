// The way back to Hugging Face: hf_export writes a folder that transformers (and
// our own loader) reads, config.json, model.safetensors (float32, bf16 or fp16,
// in HF's names and layouts: hf_pieces) and the tokenizer's files. Loading is in
// hf.c.
#include "model/hf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "tok/tok.h"

// ----------------------------------------------------------------- export --

// The shortest decimal that reads back as the same float (1e-05, not 9.99999975e-06).
static void float_text(char *buf, size_t n, float x) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".en")) strncat(buf, ".0", n - strlen(buf) - 1);
}

static void add_float(cJSON *o, const char *k, float x) {
    char buf[64];
    float_text(buf, sizeof buf, x);
    cJSON_AddRawToObject(o, k, buf);
}

static char *hf_config_json(const rlhf_config *c, st_dtype dtype, const rlhf_tokenizer *t,
                            const char *tok_kind) {
    cJSON *o = cJSON_CreateObject();
    const char *arch = c->arch == ARCH_GPT2 ? "GPT2LMHeadModel"
                       : c->qkv_bias        ? "Qwen2ForCausalLM"
                                            : "LlamaForCausalLM";
    cJSON_AddItemToObject(o, "architectures", cJSON_CreateStringArray(&arch, 1));
    int HS = c->n_embd / c->n_head;
    if (c->arch == ARCH_GPT2) {
        cJSON_AddStringToObject(o, "model_type", "gpt2");
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(o, "n_positions", c->max_seq_len);
        cJSON_AddNumberToObject(o, "n_ctx", c->max_seq_len);
        cJSON_AddNumberToObject(o, "n_embd", c->n_embd);
        cJSON_AddNumberToObject(o, "n_layer", c->n_layer);
        cJSON_AddNumberToObject(o, "n_head", c->n_head);
        if (c->d_ff == 4 * c->n_embd) cJSON_AddNullToObject(o, "n_inner");
        else cJSON_AddNumberToObject(o, "n_inner", c->d_ff);
        cJSON_AddStringToObject(o, "activation_function", "gelu_new");
        add_float(o, "layer_norm_epsilon", c->norm_eps);
        add_float(o, "resid_pdrop", 0.0f);
        add_float(o, "embd_pdrop", 0.0f);
        add_float(o, "attn_pdrop", 0.0f);
        add_float(o, "initializer_range", 0.02f);
        cJSON_AddBoolToObject(o, "scale_attn_weights", 1);
    } else {
        cJSON_AddStringToObject(o, "model_type", c->qkv_bias ? "qwen2" : "llama");
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(o, "hidden_size", c->n_embd);
        cJSON_AddNumberToObject(o, "intermediate_size", c->d_ff);
        cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layer);
        cJSON_AddNumberToObject(o, "num_attention_heads", c->n_head);
        cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_head);
        cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_seq_len);
        add_float(o, "rms_norm_eps", c->norm_eps);
        add_float(o, "rope_theta", c->rope_theta);
        cJSON_AddNullToObject(o, "rope_scaling");
        cJSON_AddStringToObject(o, "hidden_act", "silu");
        add_float(o, "attention_dropout", 0.0f);
        add_float(o, "initializer_range", 0.02f);
        if (c->qkv_bias) {
            cJSON_AddBoolToObject(o, "use_sliding_window", 0);
            cJSON_AddNumberToObject(o, "sliding_window", c->max_seq_len);
            cJSON_AddNumberToObject(o, "max_window_layers", c->n_layer);
        } else {
            cJSON_AddNumberToObject(o, "head_dim", HS);
            cJSON_AddBoolToObject(o, "attention_bias", 0);
            cJSON_AddBoolToObject(o, "mlp_bias", 0);
        }
    }
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied);
    cJSON_AddBoolToObject(o, "use_cache", 1);
    cJSON_AddStringToObject(o, "torch_dtype", dtype == ST_BF16  ? "bfloat16"
                                              : dtype == ST_F16 ? "float16"
                                                                : "float32");
    if (t && tok_bos(t) >= 0) cJSON_AddNumberToObject(o, "bos_token_id", tok_bos(t));
    if (t && tok_eos(t) >= 0) cJSON_AddNumberToObject(o, "eos_token_id", tok_eos(t));
    if (t && tok_pad(t) >= 0) cJSON_AddNumberToObject(o, "pad_token_id", tok_pad(t));
    if (!strcmp(tok_kind, "byte")) cJSON_AddStringToObject(o, "rlhf_tokenizer", "byte");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

// a growing string
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (b->p && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
}

// model.safetensors written as it is converted (HF names, F32/BF16/F16), never
// holding a second copy of the model. (Tensor names here need no JSON escapes.)
static int hf_write_weights(const rlhf_model *m, const char *path, st_dtype dtype,
                            rlhf_err *err) {
    int n;
    fmt_piece *p = hf_pieces(&m->cfg, &n);
    const char *pre = m->cfg.arch == ARCH_GPT2 ? "transformer." : "";
    sbuf h = {0};
    sb_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        int64_t shape[2];
        int nd = fmt_piece_shape(&p[i], shape);
        uint64_t bytes = fmt_piece_numel(&p[i]) * st_dtype_size(dtype);
        sb_printf(&h, ",\"%s%s\":{\"dtype\":\"%s\",\"shape\":[%lld", pre, p[i].name,
                  st_dtype_name(dtype), (long long)shape[0]);
        if (nd == 2) sb_printf(&h, ",%lld", (long long)shape[1]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + bytes));
        off += bytes;
    }
    sb_printf(&h, "}");
    while (h.n % 8) sb_printf(&h, " "); // so the data starts 8-aligned, as HF's writer does
    unsigned char n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    atomic_file a;
    int rc = atomic_open(&a, path, err);
    if (rc == 0) rc = atomic_write(&a, n8, 8, err);
    if (rc == 0) rc = atomic_write(&a, h.p, h.n, err);
    for (int i = 0; i < n && rc == 0; i++) rc = fmt_write_piece(&a, m, &p[i], dtype, err);
    if (rc == 0) rc = atomic_commit(&a, err);
    else atomic_abort(&a);
    free(h.p);
    free(p);
    return rc;
}

static int copy_file(const char *from, const char *to, rlhf_err *err) {
    size_t n;
    char *data = read_file(from, &n, err);
    if (!data) return -1;
    int rc = atomic_write_file(to, data, n, err);
    free(data);
    return rc;
}

// Copies the tokenizer's files into dir under the names HF (and tok_load) use.
// GPT-2 vocabulary files without a tokenizer_config.json get one naming
// GPT2Tokenizer, so that transformers' AutoTokenizer finds them under any
// model_type.
static int hf_write_tokenizer(const tok_files *tf, const rlhf_tokenizer *t, int max_len,
                              const char *dir, rlhf_err *err) {
    char to[4096], from[4096];
    if (!strcmp(tf->kind, "bpe-json")) {
        if (copy_file(tf->vocab, fmt_join(to, sizeof to, dir, "tokenizer.json"), err)) return -1;
    } else if (!strcmp(tf->kind, "bpe")) {
        if (copy_file(tf->vocab, fmt_join(to, sizeof to, dir, "vocab.json"), err) ||
            copy_file(tf->merges, fmt_join(to, sizeof to, dir, "merges.txt"), err))
            return -1;
        if (!fmt_is_file(fmt_join(from, sizeof from, tf->dir, "tokenizer_config.json"))) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "tokenizer_class", "GPT2Tokenizer");
            cJSON_AddNumberToObject(o, "model_max_length", max_len);
            const char *keys[3] = {"bos_token", "eos_token", "unk_token"};
            int ids[3] = {tok_bos(t), tok_eos(t), tok_eos(t)};
            for (int i = 0; i < 3; i++)
                if (ids[i] >= 0) cJSON_AddStringToObject(o, keys[i], tok_piece(t, ids[i], NULL));
            char *text = cJSON_Print(o);
            cJSON_Delete(o);
            int rc = atomic_write_file(fmt_join(to, sizeof to, dir, "tokenizer_config.json"), text,
                                       strlen(text), err);
            free(text);
            if (rc) return -1;
        }
    } else if (!strcmp(tf->kind, "llama2c")) {
        return copy_file(tf->vocab, fmt_join(to, sizeof to, dir, "tokenizer.bin"), err);
    } else {
        return 0;
    }
    const char *extra[] = {"tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "added_tokens.json"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        if (fmt_is_file(fmt_join(from, sizeof from, tf->dir, extra[i])) &&
            copy_file(from, fmt_join(to, sizeof to, dir, extra[i]), err))
            return -1;
    return 0;
}

int hf_export(const rlhf_model *m, const char *dir, st_dtype dtype, const char *tokenizer,
              rlhf_err *err) {
    if (dtype != ST_F32 && dtype != ST_BF16 && dtype != ST_F16)
        return rlhf_fail(err, "HF export: dtype must be F32, BF16 or F16");
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->params[i]))
            return rlhf_fail(err, "refusing to export to %s: the weights contain NaN or inf", dir);
    tok_files tf;
    rlhf_tokenizer *t = NULL;
    const char *spec = tokenizer && *tokenizer ? tokenizer : m->cfg.tokenizer;
    if (tok_files_find(spec, &tf, err)) return -1;
    if (!strcmp(tf.kind, "byte")) t = tok_byte_create();
    else if (tf.kind[0] && tok_load(&t, spec, err))
        return rlhf_fail_ctx(err, "HF export: the model's tokenizer");
    if (!tf.kind[0])
        fprintf(stderr, "note: the model names no tokenizer: %s gets no tokenizer files\n", dir);
    if (m->cfg.score_head || m->cfg.value_head)
        fprintf(stderr, "note: HF causal-LM checkpoints have no place for the score/value "
                        "heads: they are not exported\n");
    char path[4096];
    int rc = make_dirs(dir, err);
    if (rc == 0) rc = hf_write_weights(m, fmt_join(path, sizeof path, dir, "model.safetensors"), dtype, err);
    if (rc == 0) rc = hf_write_tokenizer(&tf, t, m->cfg.max_seq_len, dir, err);
    if (rc == 0) {
        // config.json last: a folder with it is a model, so it comes once the weights are there
        char *cfg = hf_config_json(&m->cfg, dtype, t, tf.kind);
        rc = atomic_write_file(fmt_join(path, sizeof path, dir, "config.json"), cfg, strlen(cfg), err);
        free(cfg);
    }
    tok_free(t);
    return rc;
}
