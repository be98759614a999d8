// cli/cmd_model: rlhf info --model PATH: format, architecture, sizes, dtype on
// disk, tokenizer, parameter count; checks that every tensor is there with the
// shape the config implies. Accepts our checkpoints and run directories, HF
// folders and llama2.c files; and the memory plan of training it (full vs
// LoRA, with and without activation checkpointing) at a stated batch shape.
// (rlhf export is in cmd_export.c.)
#include "cli/cmd_model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/flags.h"
#include "model/hf.h"
#include "model/load.h"
#include "tok/tok.h"
#include "train/memplan.h"

// ------------------------------------------------------------------- info --

// "bpe, 50257 tokens, BOS 50256, EOS 50256" or why it does not load
static void describe_tokenizer(const char *spec, int V, char *out, size_t n, int *ok) {
    *ok = 0;
    if (!spec || !*spec) {
        snprintf(out, n, "none named (commands need --tokenizer)");
        return;
    }
    rlhf_tokenizer *t = NULL;
    rlhf_err e;
    if (!strcmp(spec, "byte")) t = tok_byte_create();
    else if (tok_load(&t, spec, &e)) {
        snprintf(out, n, "%s: does not load: %s", spec, e.msg);
        return;
    }
    int tv = tok_vocab_size(t);
    snprintf(out, n, "%s (%s, %d tokens, BOS %d, EOS %d)%s", spec, tok_kind(t), tv, tok_bos(t),
             tok_eos(t), tv > V ? ": MORE TOKENS THAN THE MODEL'S VOCABULARY" : "");
    *ok = tv <= V;
    tok_free(t);
}

// The memory plans `rlhf info` prints: full training (a reference copy, as DPO
// holds one) and LoRA with TRL's default rank on PEFT's default modules (the
// base shared as the reference), each with and without checkpointing.
typedef struct {
    const char *name;
    int lora, bf16, ckpt;
} plan_row;

static const plan_row plan_rows[] = {
    {"full", 0, 0, 0},
    {"full + checkpointing", 0, 0, 1},
    {"LoRA", 1, 0, 0},
    {"LoRA + checkpointing", 1, 0, 1},
    {"LoRA + bf16 base + checkpointing", 1, 1, 1},
};
#define N_PLAN_ROWS ((int)(sizeof plan_rows / sizeof plan_rows[0]))
#define INFO_LORA_R 16

static void row_plan(const rlhf_config *c, const plan_row *row, int B, int T, mem_plan *p) {
    mem_shape s;
    mem_shape_from_config(c, row->lora ? INFO_LORA_R : 0, 0, row->bf16, row->ckpt, &s);
    mem_plan_from_shape(c, &s, B, T, row->lora ? MEM_REF_SHARED : MEM_REF_COPY, p);
}

// what `rlhf info` prints: the file's facts, the tokenizer and the memory plans
typedef struct {
    const char *path, *tok, *lora_mods;
    const model_file_info *fi;
    int tok_ok, B, T;
    const mem_plan *plans;
} info_view;

// --json: one object
static void print_info_json(const info_view *v) {
    const model_file_info *fi = v->fi;
    const rlhf_config *c = &fi->cfg;
    const char *path = v->path, *lora_mods = v->lora_mods;
    int B = v->B, T = v->T, tok_ok = v->tok_ok;
    const mem_plan *plans = v->plans;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "format", fi->format);
    cJSON_AddStringToObject(o, "model_type", fi->model_type);
    cJSON_AddStringToObject(o, "arch", c->arch == ARCH_GPT2 ? "gpt2" : "llama");
    cJSON_AddNumberToObject(o, "n_layer", c->n_layer);
    cJSON_AddNumberToObject(o, "n_head", c->n_head);
    cJSON_AddNumberToObject(o, "n_kv_head", c->n_kv_head);
    cJSON_AddNumberToObject(o, "n_embd", c->n_embd);
    cJSON_AddNumberToObject(o, "d_ff", c->d_ff);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "max_seq_len", c->max_seq_len);
    cJSON_AddNumberToObject(o, "tied", c->tied);
    cJSON_AddNumberToObject(o, "qkv_bias", c->qkv_bias);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
    cJSON_AddStringToObject(o, "dtype", fi->dtype);
    cJSON_AddNumberToObject(o, "n_files", fi->n_files);
    cJSON_AddNumberToObject(o, "n_tensors", fi->n_tensors);
    cJSON_AddNumberToObject(o, "n_params", (double)fi->n_params);
    cJSON_AddStringToObject(o, "tokenizer", c->tokenizer);
    cJSON_AddBoolToObject(o, "tokenizer_loads", tok_ok);
    cJSON_AddStringToObject(o, "note", fi->note);
    cJSON *mp = cJSON_AddObjectToObject(o, "memory_plan");
    cJSON_AddNumberToObject(mp, "batch_size", B);
    cJSON_AddNumberToObject(mp, "max_length", T);
    cJSON_AddNumberToObject(mp, "lora_r", INFO_LORA_R);
    cJSON_AddStringToObject(mp, "lora_target_modules", lora_mods);
    cJSON *rows = cJSON_AddArrayToObject(mp, "rows");
    for (int i = 0; i < N_PLAN_ROWS; i++) {
        cJSON *row = cJSON_CreateObject();
        const mem_plan *p = &plans[i];
        cJSON_AddStringToObject(row, "name", plan_rows[i].name);
        cJSON_AddNumberToObject(row, "weights", p->weights);
        cJSON_AddNumberToObject(row, "grads", p->grads);
        cJSON_AddNumberToObject(row, "optimizer", p->optimizer);
        cJSON_AddNumberToObject(row, "activations", p->activations);
        cJSON_AddNumberToObject(row, "reference", p->reference);
        cJSON_AddNumberToObject(row, "total", p->total);
        cJSON_AddItemToArray(rows, row);
    }
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

// the text: one fact per line, then the memory plans
static void print_info_text(const info_view *v) {
    const model_file_info *fi = v->fi;
    const rlhf_config *c = &fi->cfg;
    const char *path = v->path, *tok = v->tok, *lora_mods = v->lora_mods;
    int B = v->B, T = v->T, HS = c->n_embd / c->n_head;
    const mem_plan *plans = v->plans;
    printf("%-13s %s\n", "path", path);
    printf("%-13s %s\n", "format", fi->format);
    printf("%-13s %s\n", "model_type", fi->model_type);
    if (c->arch == ARCH_GPT2)
        printf("%-13s gpt2: LayerNorm, learned positions, GELU (tanh), biases, tied head\n",
               "architecture");
    else
        printf("%-13s llama: RMSNorm, RoPE (theta %g), SwiGLU, %s head%s\n", "architecture",
               (double)c->rope_theta, c->tied ? "tied" : "untied",
               c->qkv_bias ? ", q/k/v biases" : "");
    printf("%-13s %d\n", "layers", c->n_layer);
    printf("%-13s %d (kv heads %d, head size %d)\n", "heads", c->n_head, c->n_kv_head, HS);
    printf("%-13s %d\n", "n_embd", c->n_embd);
    printf("%-13s %d\n", "d_ff", c->d_ff);
    printf("%-13s %d\n", "vocab_size", c->vocab_size);
    printf("%-13s %d\n", "max_seq_len", c->max_seq_len);
    printf("%-13s %g\n", "norm_eps", (double)c->norm_eps);
    printf("%-13s %s", "dtype", fi->dtype);
    if (fi->n_files) printf(" (%d file%s, %.1f MB of weights)", fi->n_files, fi->n_files > 1 ? "s" : "",
                           (double)fi->file_bytes / 1e6);
    printf("\n%-13s %s\n", "tokenizer", tok);
    printf("%-13s %zu (%.2fM)\n", "parameters", fi->n_params, (double)fi->n_params / 1e6);
    if (fi->n_files)
        printf("%-13s ok: %d tensors present with the shapes the config implies\n", "check",
               fi->n_tensors);
    if (fi->note[0]) printf("%-13s %s\n", "note", fi->note);
    printf("%-13s training at B=%d, T=%d with AdamW; full: a reference copy (as DPO holds); LoRA: "
           "r=%d on %s, heads train, the base is the reference\n",
           "memory plan", B, T, INFO_LORA_R, lora_mods);
    for (int i = 0; i < N_PLAN_ROWS; i++) {
        char who[64];
        snprintf(who, sizeof who, "  %s", plan_rows[i].name);
        mem_plan_print(stdout, who, &plans[i], B, T);
    }
}

int cmd_info(int argc, char **argv) {
    const char *model = NULL;
    int json = 0, B = 8, T = 512;
    flag_def defs[] = {
        {"model", FLAG_STR, &model, "checkpoint or run directory, HF folder, llama2.c .bin, or a size name"},
        {"json", FLAG_BOOL, &json, "print one JSON object instead of text"},
        {"batch_size", FLAG_INT, &B, "rows per forward for the memory plan", 1, 1 << 16},
        {"max_length", FLAG_INT, &T, "tokens per row for the memory plan (capped at max_seq_len)", 1, 1 << 20},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "info",
                        "Describes a model and checks its files: format, architecture, sizes,\n"
                        "dtype on disk, tokenizer, parameter count; every tensor must be present\n"
                        "with the shape its config implies.\n"
                        "example: rlhf info --model ../shared/data/llama2c/stories260K.bin",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf info: %s\n", err.msg);
        return 2;
    }
    if (!model) {
        fprintf(stderr, "rlhf info: --model is required\n");
        return 2;
    }
    model_file_info fi;
    char path[4400];
    snprintf(path, sizeof path, "%s", model);
    rlhf_config named;  // a run directory (not a named size): the checkpoint --model loads
    if (config_from_name(&named, model, NULL) &&
        model_resolve_path(model, path, sizeof path, &err)) {
        fprintf(stderr, "rlhf info: %s\n", err.msg);
        return 1;
    }
    if (model_inspect(path, &fi, &err)) {
        fprintf(stderr, "rlhf info: %s\n", err.msg);
        return 1;
    }
    const rlhf_config *c = &fi.cfg;
    if (T > c->max_seq_len) T = c->max_seq_len;
    mem_plan plans[N_PLAN_ROWS];
    for (int i = 0; i < N_PLAN_ROWS; i++) row_plan(c, &plan_rows[i], B, T, &plans[i]);
    const char *lora_mods = c->arch == ARCH_GPT2 ? "c_attn" : "q_proj, v_proj";
    int tok_ok;
    char tok[1600];
    describe_tokenizer(c->tokenizer, c->vocab_size, tok, sizeof tok, &tok_ok);
    info_view v = {.path = path, .tok = tok, .lora_mods = lora_mods, .fi = &fi,
                   .tok_ok = tok_ok, .B = B, .T = T, .plans = plans};
    if (json)
        print_info_json(&v);
    else
        print_info_text(&v);
    return 0;
}
