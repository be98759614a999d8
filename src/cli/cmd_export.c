// cli/cmd_export: rlhf export --model CKPT --format hf|gguf --out PATH
// [--dtype f32|bf16|f16]: a model for other tools (transformers, llama.cpp).
// Accepts our checkpoints and run directories, HF folders and llama2.c files.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd_model.h"
#include "cli/flags.h"
#include "model/hf.h"
#include "model/load.h"

// ----------------------------------------------------------------- export --

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *format = NULL, *out = NULL, *dtype = "f32", *tokenizer = NULL;
    flag_def defs[] = {
        {"model", FLAG_STR, &model, "checkpoint or run directory, HF folder or llama2.c .bin"},
        {"format", FLAG_STR, &format, "hf (a folder for transformers) or gguf (a file for llama.cpp)"},
        {"out", FLAG_STR, &out, "hf: the folder to write; gguf: the file"},
        {"dtype", FLAG_STR, &dtype, "weights on disk: f32, bf16 (hf only) or f16"},
        {"tokenizer", FLAG_STR, &tokenizer, "tokenizer to ship with it (default: the model's)"},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "export",
                        "Writes a model for other tools. --format hf: config.json,\n"
                        "model.safetensors and the tokenizer files (loads into transformers and\n"
                        "back into rlhf.c). --format gguf: one GGUF v3 file for llama.cpp.\n"
                        "Files are written atomically: a failed export leaves no partial file.\n"
                        "example: rlhf export --model runs/sft --format hf --out runs/sft-hf",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf export: %s\n", err.msg);
        return 2;
    }
    const char *usage = NULL;
    int hf = format && !strcmp(format, "hf"), gguf = format && !strcmp(format, "gguf");
    st_dtype dt = !strcmp(dtype, "f32")    ? ST_F32
                  : !strcmp(dtype, "bf16") ? ST_BF16
                  : !strcmp(dtype, "f16")  ? ST_F16
                                           : ST_NONE;
    if (!model || !out) usage = "--model and --out are required";
    else if (!hf && !gguf) usage = "--format must be hf or gguf";
    else if (dt == ST_NONE) usage = "--dtype must be f32, bf16 or f16";
    else if (gguf && dt == ST_BF16) usage = "--format gguf writes f32 or f16 (--dtype)";
    if (usage) {
        fprintf(stderr, "rlhf export: %s\n", usage);
        return 2;
    }
    rlhf_model *m = NULL;
    if (model_load_any(model, 1, &m, &err)) {
        fprintf(stderr, "rlhf export: %s\n", err.msg);
        return 1;
    }
    int rc = hf ? hf_export(m, out, dt, tokenizer, &err)
                : gguf_export(m, out, dt == ST_F16, tokenizer, &err);
    if (rc) fprintf(stderr, "rlhf export: %s\n", err.msg);
    else
        printf("wrote %s (%s, %s, %s, %zu parameters)\n", out, hf ? "HF safetensors" : "GGUF v3",
               m->cfg.arch == ARCH_GPT2 ? "gpt2" : m->cfg.qkv_bias && hf ? "qwen2" : "llama",
               st_dtype_name(dt), m->n_params);
    model_free(m);
    return rc ? 1 : 0;
}
