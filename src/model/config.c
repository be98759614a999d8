// Model configuration: named sizes, defaults per architecture, validation, and
// the JSON form stored as config.json beside every checkpoint.
#include "rlhf.h"

#include "base/base.h"
#include "io/json.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    rlhf_config c;
} named_config;

// GPT-2-family sizes use the byte-level vocabulary (259 = 256 bytes + BOS/EOS/PAD)
// except "gpt2", which is the 124M configuration with GPT-2's 50257-token vocabulary.
static const named_config NAMED[] = {
    {"tiny", {.arch = ARCH_GPT2, .n_layer = 4, .n_head = 4, .n_embd = 128, .vocab_size = 259,
              .max_seq_len = 256, .tied = 1, .tokenizer = "byte"}},
    {"small", {.arch = ARCH_GPT2, .n_layer = 6, .n_head = 6, .n_embd = 384, .vocab_size = 259,
               .max_seq_len = 512, .tied = 1, .tokenizer = "byte"}},
    {"gpt2", {.arch = ARCH_GPT2, .n_layer = 12, .n_head = 12, .n_embd = 768, .vocab_size = 50257,
              .max_seq_len = 1024, .tied = 1}},
    {"gpt2-mini", {.arch = ARCH_GPT2, .n_layer = 4, .n_head = 4, .n_embd = 128,
                   .vocab_size = 50257, .max_seq_len = 512, .tied = 1}},
    {"llama-tiny", {.arch = ARCH_LLAMA, .n_layer = 4, .n_head = 4, .n_kv_head = 2, .n_embd = 128,
                    .vocab_size = 259, .max_seq_len = 256, .tied = 1, .tokenizer = "byte"}},
    {"llama-small", {.arch = ARCH_LLAMA, .n_layer = 6, .n_head = 6, .n_kv_head = 2, .n_embd = 384,
                     .vocab_size = 259, .max_seq_len = 512, .tied = 1, .tokenizer = "byte"}},
};

void config_fill_defaults(rlhf_config *c) {
    if (c->n_kv_head <= 0) c->n_kv_head = c->n_head;
    if (c->arch == ARCH_GPT2) {
        if (c->d_ff <= 0) c->d_ff = 4 * c->n_embd;
        if (c->norm_eps <= 0) c->norm_eps = 1e-5f;
        c->tied = 1;
    } else {
        // SwiGLU width as in Llama: 2/3 of 4C rounded up to a multiple of 32
        if (c->d_ff <= 0) c->d_ff = ((8 * c->n_embd / 3) + 31) / 32 * 32;
        if (c->norm_eps <= 0) c->norm_eps = 1e-5f;
        if (c->rope_theta <= 0) c->rope_theta = 10000.0f;
    }
}

int config_from_name(rlhf_config *c, const char *name, rlhf_err *err) {
    for (size_t i = 0; i < sizeof NAMED / sizeof NAMED[0]; i++) {
        if (strcmp(NAMED[i].name, name) == 0) {
            *c = NAMED[i].c;
            config_fill_defaults(c);
            return 0;
        }
    }
    return rlhf_fail(err, "unknown model size \"%s\" (known: tiny, small, gpt2, gpt2-mini, llama-tiny, "
                          "llama-small, or a checkpoint directory)",
                     name);
}

// Limits every config must respect. They keep every size product (tensor
// elements, the parameter count, the RoPE table) far from overflowing a size_t
// or the ints the kernels index with, while leaving room for real models
// (Llama 3 405B: n_embd 16384, d_ff 53248, vocab 128256, 126 layers).
#define MAX_LAYER 1024
#define MAX_EMBD (1 << 16)
#define MAX_FF (1 << 20)
#define MAX_VOCAB (1 << 24)
#define MAX_SEQ (1 << 20)
#define MAX_SCORE_HEADS 1024
#define MAX_PARAMS ((uint64_t)1 << 36)
#define MAX_ROPE ((int64_t)1 << 27) // RoPE table entries: 1M positions at head size 128

static int int_out_of_range(rlhf_err *err, const char *field, int v, int lo, int hi) {
    return rlhf_fail(err, "field \"%s\" = %d is out of range [%d, %d]", field, v, lo, hi);
}

int config_n_params(const rlhf_config *c, size_t *out) {
    // mirrors build_table in model.c (tested against it); every term is bounded
    // by config_validate's limits, but each step is checked anyway
    uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->vocab_size, F = (uint64_t)c->d_ff;
    uint64_t NH = (uint64_t)c->n_head, NKV = (uint64_t)c->n_kv_head;
    if (c->n_embd <= 0 || c->n_head <= 0 || c->n_kv_head < 0 || c->vocab_size < 0 ||
        c->d_ff < 0 || c->n_layer < 0 || c->max_seq_len < 0 || c->score_head < 0)
        return -1;
    int gpt2 = c->arch == ARCH_GPT2;
    uint64_t HS = C / NH, QKV, FF = gpt2 ? F : 2 * F, layer = 0, n = 0, t;
    if (__builtin_mul_overflow(NH + 2 * NKV, HS, &QKV)) return -1;
#define ADD(acc, x) if (__builtin_add_overflow(acc, x, &acc)) return -1
#define ADDMUL(acc, a, b) if (__builtin_mul_overflow(a, b, &t) || __builtin_add_overflow(acc, t, &acc)) return -1
    ADD(layer, C * (gpt2 ? 2 : 1));                  // attn_norm (+ bias)
    ADDMUL(layer, QKV, C);                           // attn.qkv.weight
    if (gpt2 || c->qkv_bias) ADD(layer, QKV);        // attn.qkv.bias
    ADDMUL(layer, C, C);                             // attn.out.weight
    if (gpt2) ADD(layer, C);                         // attn.out.bias
    ADD(layer, C * (gpt2 ? 2 : 1));                  // mlp_norm (+ bias)
    ADDMUL(layer, FF, C);                            // mlp.up.weight
    if (gpt2) ADD(layer, FF);                        // mlp.up.bias
    ADDMUL(layer, C, F);                             // mlp.down.weight
    if (gpt2) ADD(layer, C);                         // mlp.down.bias
    ADDMUL(n, V, C);                                 // tok_emb
    if (gpt2) ADDMUL(n, (uint64_t)c->max_seq_len, C); // pos_emb
    ADDMUL(n, layer, (uint64_t)c->n_layer);
    ADD(n, C * (gpt2 ? 2 : 1));                      // final_norm
    if (!c->tied) ADDMUL(n, V, C);                   // lm_head
    if (c->score_head) ADDMUL(n, (uint64_t)c->score_head, C + 1);
    if (c->value_head) ADD(n, C + 1);
#undef ADD
#undef ADDMUL
    if (n > SIZE_MAX / (4 * sizeof(float))) return -1; // params, grads, two moments
    *out = (size_t)n;
    return 0;
}

int config_validate(const rlhf_config *c, rlhf_err *err) {
    if (c->arch != ARCH_GPT2 && c->arch != ARCH_LLAMA)
        return rlhf_fail(err, "field \"arch\" must be gpt2 or llama");
    if (c->n_layer < 1 || c->n_layer > MAX_LAYER)
        return int_out_of_range(err, "n_layer", c->n_layer, 1, MAX_LAYER);
    if (c->n_embd < 1 || c->n_embd > MAX_EMBD)
        return int_out_of_range(err, "n_embd", c->n_embd, 1, MAX_EMBD);
    if (c->n_head < 1 || c->n_head > c->n_embd)
        return int_out_of_range(err, "n_head", c->n_head, 1, c->n_embd);
    if (c->n_embd % c->n_head)
        return rlhf_fail(err, "field \"n_embd\" = %d must be a multiple of n_head %d", c->n_embd,
                         c->n_head);
    if (c->n_kv_head < 1 || c->n_kv_head > c->n_head)
        return int_out_of_range(err, "n_kv_head", c->n_kv_head, 1, c->n_head);
    if (c->n_head % c->n_kv_head)
        return rlhf_fail(err, "field \"n_kv_head\" = %d must divide n_head %d", c->n_kv_head,
                         c->n_head);
    if (c->arch == ARCH_GPT2 && c->n_kv_head != c->n_head)
        return rlhf_fail(err, "field \"n_kv_head\" = %d: gpt2 models have n_kv_head == n_head %d",
                         c->n_kv_head, c->n_head);
    int HS = c->n_embd / c->n_head;
    if (c->arch == ARCH_LLAMA && HS % 2)
        return rlhf_fail(err, "head size n_embd / n_head = %d must be even for RoPE", HS);
    if (c->d_ff < 1 || c->d_ff > MAX_FF) return int_out_of_range(err, "d_ff", c->d_ff, 1, MAX_FF);
    if (c->vocab_size < 1 || c->vocab_size > MAX_VOCAB)
        return int_out_of_range(err, "vocab_size", c->vocab_size, 1, MAX_VOCAB);
    if (c->max_seq_len < 1 || c->max_seq_len > MAX_SEQ)
        return int_out_of_range(err, "max_seq_len", c->max_seq_len, 1, MAX_SEQ);
    if (c->qkv_bias != 0 && c->qkv_bias != 1) return int_out_of_range(err, "qkv_bias", c->qkv_bias, 0, 1);
    if (c->tied != 0 && c->tied != 1) return int_out_of_range(err, "tied", c->tied, 0, 1);
    if (c->arch == ARCH_GPT2 && !c->tied)
        return rlhf_fail(err, "field \"tied\" = 0: gpt2 models tie the LM head to the embedding");
    if (c->score_head < 0 || c->score_head > MAX_SCORE_HEADS)
        return int_out_of_range(err, "score_head", c->score_head, 0, MAX_SCORE_HEADS);
    if (c->value_head != 0 && c->value_head != 1)
        return int_out_of_range(err, "value_head", c->value_head, 0, 1);
    if (!(c->norm_eps > 0 && c->norm_eps <= 1))
        return rlhf_fail(err, "field \"norm_eps\" = %g must be in (0, 1]", (double)c->norm_eps);
    if (c->arch == ARCH_LLAMA && !(c->rope_theta > 0 && isfinite(c->rope_theta)))
        return rlhf_fail(err, "field \"rope_theta\" = %g must be a finite number > 0",
                         (double)c->rope_theta);
    if (c->arch == ARCH_GPT2 && !(c->rope_theta >= 0 && isfinite(c->rope_theta)))
        return rlhf_fail(err, "field \"rope_theta\" = %g must be finite (and is unused by gpt2)",
                         (double)c->rope_theta);
    if (c->arch == ARCH_LLAMA && (int64_t)c->max_seq_len * HS > MAX_ROPE)
        return rlhf_fail(err, "field \"max_seq_len\" = %d: the RoPE tables (max_seq_len x head size "
                              "%d) would exceed 2^27 entries",
                         c->max_seq_len, HS);
    size_t n;
    if (config_n_params(c, &n) != 0 || n > MAX_PARAMS)
        return rlhf_fail(err, "the model would have more than 2^36 parameters");
    return 0;
}

char *config_to_json(const rlhf_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arch", c->arch == ARCH_GPT2 ? "gpt2" : "llama");
    cJSON_AddNumberToObject(o, "n_layer", c->n_layer);
    cJSON_AddNumberToObject(o, "n_head", c->n_head);
    cJSON_AddNumberToObject(o, "n_kv_head", c->n_kv_head);
    cJSON_AddNumberToObject(o, "n_embd", c->n_embd);
    cJSON_AddNumberToObject(o, "d_ff", c->d_ff);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "max_seq_len", c->max_seq_len);
    cJSON_AddNumberToObject(o, "qkv_bias", c->qkv_bias);
    cJSON_AddNumberToObject(o, "tied", c->tied);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(o, "score_head", c->score_head);
    cJSON_AddNumberToObject(o, "value_head", c->value_head);
    if (c->tokenizer[0]) cJSON_AddStringToObject(o, "tokenizer", c->tokenizer);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static int get_int(const cJSON *o, const char *key, int *out, int required, const char *src,
                   rlhf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (required) return rlhf_fail(err, "%s: field \"%s\" missing", src, key);
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    // the range test comes first: converting an out-of-range double to int is undefined
    if (!(d >= INT_MIN && d <= INT_MAX) || d != floor(d))
        return rlhf_fail(err, "%s: field \"%s\" must be an integer", src, key);
    *out = (int)d;
    return 0;
}

static int get_float(const cJSON *o, const char *key, float *out, const char *src, rlhf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > FLT_MAX)
        return rlhf_fail(err, "%s: field \"%s\" must be a finite number", src, key);
    *out = (float)v->valuedouble;
    return 0;
}

int config_from_json(rlhf_config *c, const char *json, const char *source, rlhf_err *err) {
    memset(c, 0, sizeof *c);
    char where[256];
    if (json_find_nul(json, strlen(json), where, sizeof where))
        return rlhf_fail(err, "%s: %s holds a \\u0000 (NUL) character", source, where);
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return rlhf_fail(err, "%s: not a JSON object", source);
    }
    int rc = -1;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(o, "arch");
    if (!cJSON_IsString(arch)) {
        rlhf_fail(err, "%s: field \"arch\" missing or not a string", source);
        goto done;
    }
    if (strcmp(arch->valuestring, "gpt2") == 0) c->arch = ARCH_GPT2;
    else if (strcmp(arch->valuestring, "llama") == 0) c->arch = ARCH_LLAMA;
    else {
        rlhf_fail(err, "%s: unknown arch \"%s\" (expected gpt2 or llama)", source, arch->valuestring);
        goto done;
    }
    if (get_int(o, "n_layer", &c->n_layer, 1, source, err) ||
        get_int(o, "n_head", &c->n_head, 1, source, err) ||
        get_int(o, "n_kv_head", &c->n_kv_head, 0, source, err) ||
        get_int(o, "n_embd", &c->n_embd, 1, source, err) ||
        get_int(o, "d_ff", &c->d_ff, 0, source, err) ||
        get_int(o, "vocab_size", &c->vocab_size, 1, source, err) ||
        get_int(o, "max_seq_len", &c->max_seq_len, 1, source, err) ||
        get_int(o, "qkv_bias", &c->qkv_bias, 0, source, err) ||
        get_int(o, "tied", &c->tied, 0, source, err) ||
        get_int(o, "score_head", &c->score_head, 0, source, err) ||
        get_int(o, "value_head", &c->value_head, 0, source, err) ||
        get_float(o, "rope_theta", &c->rope_theta, source, err) ||
        get_float(o, "norm_eps", &c->norm_eps, source, err))
        goto done;
    // a field that is present is used as it is: never replaced by a default
#define HAS(k) (cJSON_GetObjectItemCaseSensitive(o, k) != NULL)
    if (!HAS("tied")) c->tied = 1;
    const char *bad = HAS("n_kv_head") && c->n_kv_head < 1 ? "n_kv_head"
                      : HAS("d_ff") && c->d_ff < 1         ? "d_ff"
                      : HAS("norm_eps") && !(c->norm_eps > 0) ? "norm_eps"
                      : c->arch == ARCH_LLAMA && HAS("rope_theta") && !(c->rope_theta > 0)
                          ? "rope_theta"
                          : NULL;
#undef HAS
    if (bad) {
        rlhf_fail(err, "%s: field \"%s\" must be positive", source, bad);
        goto done;
    }
    if (c->arch == ARCH_GPT2 && c->tied != 1) {
        rlhf_fail(err, "%s: field \"tied\" = %d: gpt2 models tie the LM head to the embedding",
                  source, c->tied);
        goto done;
    }
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokenizer");
    if (tk && !cJSON_IsString(tk)) {
        rlhf_fail(err, "%s: field \"tokenizer\" must be a string", source);
        goto done;
    }
    if (tk && strlen(tk->valuestring) >= sizeof c->tokenizer) {
        rlhf_fail(err, "%s: field \"tokenizer\" is longer than %zu bytes", source,
                  sizeof c->tokenizer - 1);
        goto done;
    }
    if (tk) snprintf(c->tokenizer, sizeof c->tokenizer, "%s", tk->valuestring);
    config_fill_defaults(c);
    if (config_validate(c, err)) {
        rlhf_fail_ctx(err, "%s", source);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}
