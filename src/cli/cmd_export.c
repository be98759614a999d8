// cli/cmd_export: rlhf export --model CKPT --format hf|gguf|peft --out PATH
// [--dtype f32|bf16|f16] [--merge_lora]: a model for other tools
// (transformers, llama.cpp, PEFT). Accepts our checkpoints and run directories,
// HF folders, llama2.c files and PEFT adapter folders (LoRA checkpoints): an
// adapter model goes to hf/gguf only merged (--merge_lora folds the adapters
// into the base weights), or as it is to --format peft (the adapter folder).
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cmd_model.h"
#include "cli/flags.h"
#include "io/file.h"
#include "model/hf.h"
#include "model/load.h"
#include "model/lora.h"
#include "model/peft.h"

// ----------------------------------------------------------------- export --

static int exists(const char *dir, const char *name) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return path_exists(p);
}

// --out must not be the model being exported, a training run's folder (its
// config.json holds the run's settings) or a training checkpoint (its f32
// weights and optimizer state are what --resume needs): an export writes
// config.json and the weights, so it would replace them. -1 + err, nothing written.
static int check_out(const char *model, const char *out, int folder, rlhf_err *err) {
    if (same_file(out, model))
        return rlhf_fail(err,
                         "--out %s is the --model being exported: writing there would "
                         "replace it; choose another --out",
                         out);
    if (!folder) {
        struct stat st;
        if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
            return rlhf_fail(err,
                             "--out %s is a folder: --format gguf writes one file (e.g. "
                             "--out %s/model.gguf)",
                             out, out);
        return 0;
    }
    if (exists(out, "optimizer.safetensors"))
        return rlhf_fail(err,
                         "--out %s is a training checkpoint (it holds optimizer.safetensors): "
                         "the export would replace its weights and config.json; choose "
                         "another --out",
                         out);
    if (exists(out, "metrics.jsonl") || exists(out, "checkpoints"))
        return rlhf_fail(err,
                         "--out %s is a training run's folder: the export would replace its "
                         "config.json (the run's settings); choose another --out (e.g. "
                         "%s-hf)",
                         out, out);
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *format = NULL, *out = NULL, *dtype = "f32", *tokenizer = NULL;
    const char *base_model = NULL;
    int merge = 0;
    flag_def defs[] = {
        {"model", FLAG_STR, &model, "checkpoint or run directory, HF folder or llama2.c .bin"},
        {"format", FLAG_STR, &format, "hf (a folder for transformers), gguf (a file for llama.cpp) "
                                      "or peft (a LoRA model's adapter folder)"},
        {"out", FLAG_STR, &out, "hf: the folder to write; gguf: the file"},
        {"dtype", FLAG_STR, &dtype, "weights on disk: f32, bf16 (hf only) or f16"},
        {"tokenizer", FLAG_STR, &tokenizer, "tokenizer to ship with it (default: the model's)"},
        {"merge_lora", FLAG_BOOL, &merge, "fold a LoRA model's adapters into its weights first"},
        {"base_model", FLAG_STR, &base_model, "an adapter folder's base (default: its "
                                              "base_model_name_or_path)"},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "export",
                        "Writes a model for other tools. --format hf: config.json,\n"
                        "model.safetensors and the tokenizer files (loads into transformers and\n"
                        "back into rlhf.c). --format gguf: one GGUF v3 file for llama.cpp.\n"
                        "--format peft: adapter_config.json and adapter_model.safetensors of a\n"
                        "LoRA model (loads in PEFT). A LoRA model (a PEFT adapter folder or a\n"
                        "LoRA run) exports to hf/gguf with --merge_lora only.\n"
                        "Files are written atomically: a failed export leaves no partial file.\n"
                        "example: rlhf export --model runs/sft --format hf --out runs/sft-hf\n"
                        "example: rlhf export --model runs/lora --merge_lora --format gguf --out m.gguf",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf export: %s\n", err.msg);
        return 2;
    }
    const char *usage = NULL;
    int hf = format && !strcmp(format, "hf"), gguf = format && !strcmp(format, "gguf");
    int peft = format && !strcmp(format, "peft");
    st_dtype dt = !strcmp(dtype, "f32")    ? ST_F32
                  : !strcmp(dtype, "bf16") ? ST_BF16
                  : !strcmp(dtype, "f16")  ? ST_F16
                                           : ST_NONE;
    if (!model || !out) usage = "--model and --out are required";
    else if (!hf && !gguf && !peft) usage = "--format must be hf, gguf or peft";
    else if (peft && merge) usage = "--format peft writes the adapters: not with --merge_lora";
    else if (dt == ST_NONE) usage = "--dtype must be f32, bf16 or f16";
    else if (gguf && dt == ST_BF16) usage = "--format gguf writes f32 or f16 (--dtype)";
    if (usage) {
        fprintf(stderr, "rlhf export: %s\n", usage);
        return 2;
    }
    if (check_out(model, out, !gguf, &err)) {
        fprintf(stderr, "rlhf export: %s\n", err.msg);
        return 1;
    }
    rlhf_model *m = NULL;
    if (base_model) peft_set_base_override(base_model);
    if (model_load_any(model, 1, &m, &err)) {
        fprintf(stderr, "rlhf export: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (peft) {
        if (!model_lora(m))
            rc = rlhf_fail(&err, "--model %s has no LoRA adapters: --format peft writes adapters "
                                 "(use --format hf or gguf)",
                           model);
        else if (dt != ST_F32)
            rc = rlhf_fail(&err, "--format peft writes float32 adapters (--dtype f32)");
        else
            rc = peft_save(out, m, NULL, &err);
    } else if (model_lora(m) && !merge) {
        rc = rlhf_fail(&err, "--model %s is a LoRA model (base + adapters): pass --merge_lora to "
                             "fold the adapters into the weights for --format %s, or use "
                             "--format peft for the adapter folder",
                       model, format);
    } else if (model_lora(m) && model_merge_lora(m, &err)) {
        rc = -1;
    } else {
        rc = hf ? hf_export(m, out, dt, tokenizer, &err)
                : gguf_export(m, out, dt == ST_F16, tokenizer, &err);
    }
    if (rc) fprintf(stderr, "rlhf export: %s\n", err.msg);
    else
        printf("wrote %s (%s, %s, %s, %zu parameters)\n", out,
               peft ? "PEFT adapter" : hf ? "HF safetensors" : "GGUF v3",
               m->cfg.arch == ARCH_GPT2 ? "gpt2" : m->cfg.qkv_bias && hf ? "qwen2" : "llama",
               st_dtype_name(dt), m->n_params);
    model_free(m);
    return rc ? 1 : 0;
}
