// Model configuration: named sizes, defaults per architecture, validation, and
// the JSON form stored as config.json beside every checkpoint.
#include "rlhf.h"

#include <cjson/cJSON.h>
#include <math.h>
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

int config_validate(const rlhf_config *c, rlhf_err *err) {
    if (c->arch != ARCH_GPT2 && c->arch != ARCH_LLAMA)
        return rlhf_fail(err, "arch must be gpt2 or llama");
    if (c->n_layer <= 0 || c->n_layer > 1024) return rlhf_fail(err, "n_layer %d out of range", c->n_layer);
    if (c->n_head <= 0) return rlhf_fail(err, "n_head must be positive (got %d)", c->n_head);
    if (c->n_embd <= 0 || c->n_embd % c->n_head)
        return rlhf_fail(err, "n_embd %d must be a positive multiple of n_head %d", c->n_embd,
                         c->n_head);
    if (c->n_kv_head <= 0 || c->n_head % c->n_kv_head)
        return rlhf_fail(err, "n_kv_head %d must divide n_head %d", c->n_kv_head, c->n_head);
    if (c->arch == ARCH_GPT2 && c->n_kv_head != c->n_head)
        return rlhf_fail(err, "gpt2 models have n_kv_head == n_head");
    int HS = c->n_embd / c->n_head;
    if (c->arch == ARCH_LLAMA && HS % 2)
        return rlhf_fail(err, "head size %d must be even for RoPE", HS);
    if (c->d_ff <= 0) return rlhf_fail(err, "d_ff must be positive (got %d)", c->d_ff);
    if (c->vocab_size <= 0) return rlhf_fail(err, "vocab_size must be positive");
    if (c->max_seq_len <= 0 || c->max_seq_len > (1 << 20))
        return rlhf_fail(err, "max_seq_len %d out of range", c->max_seq_len);
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps)) return rlhf_fail(err, "norm_eps must be > 0");
    if (c->arch == ARCH_LLAMA && (!(c->rope_theta > 0) || !isfinite(c->rope_theta)))
        return rlhf_fail(err, "rope_theta must be > 0");
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
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
        return rlhf_fail(err, "%s: field \"%s\" must be an integer", src, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_float(const cJSON *o, const char *key, float *out, const char *src, rlhf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return rlhf_fail(err, "%s: field \"%s\" must be a number", src, key);
    *out = (float)v->valuedouble;
    return 0;
}

int config_from_json(rlhf_config *c, const char *json, const char *source, rlhf_err *err) {
    memset(c, 0, sizeof *c);
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
    if (!cJSON_GetObjectItemCaseSensitive(o, "tied")) c->tied = 1;
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokenizer");
    if (tk && !cJSON_IsString(tk)) {
        rlhf_fail(err, "%s: field \"tokenizer\" must be a string", source);
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
