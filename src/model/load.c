// model/load: the one model loader. Whatever a user passes as --model — a
// named size, one of our checkpoints (a folder or its model.safetensors; a
// LoRA checkpoint or any PEFT adapter folder: the base plus the adapters), a
// run directory (its checkpoints/final, else its newest complete
// checkpoints/step-N), an HF folder or a llama2.c file — ends up here; and
// the tokenizer that goes with a model. Every model loaded here is noted with
// where it came from (peft_note_origin), which LoRA checkpoints record as the
// base of their adapters.
#include "model/load.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/hf.h"
#include "model/lora.h"
#include "model/peft.h"

// ------------------------------------------------------- run directories --

// "step-00000123" -> 123; -1 for any other name (temp folders included)
static int step_of(const char *name) {
    int s, used = 0;
    if (sscanf(name, "step-%d%n", &s, &used) != 1 || name[used] || s < 0) return -1;
    return s;
}

static int cmp_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

int *checkpoint_steps(const char *run_dir, int *n) {
    char ck[2200];
    snprintf(ck, sizeof ck, "%s/checkpoints", run_dir);
    *n = 0;
    DIR *d = opendir(ck);
    if (!d) return NULL;
    int cap = 16, *s = xmalloc((size_t)cap * sizeof(int));
    struct dirent *e;
    while ((e = readdir(d))) {
        int k = step_of(e->d_name);
        if (k < 0) continue;
        if (*n == cap) s = xrealloc(s, (size_t)(cap *= 2) * sizeof(int));
        s[(*n)++] = k;
    }
    closedir(d);
    qsort(s, (size_t)*n, sizeof(int), cmp_desc);
    return s;
}

int checkpoint_latest(const char *run_dir, char *out, size_t n) {
    int count = 0, *steps = checkpoint_steps(run_dir, &count), rc = -1;
    for (int i = 0; i < count && rc; i++) {
        char p[2400];
        rlhf_err e2;
        snprintf(p, sizeof p, "%s/checkpoints/step-%08d", run_dir, steps[i]);
        if (checkpoint_check(p, 0, NULL, &e2) == 0) {
            snprintf(out, n, "%s", p);
            rc = 0;
        }
    }
    free(steps);
    return rc;
}

// ---------------------------------------------------------------- models --

// A named size creates a fresh model; a foreign model loads as such; anything
// else is one of our checkpoints.
static int load_named_or_file(const char *spec, uint64_t seed, rlhf_model **m, rlhf_err *err) {
    rlhf_config c;
    rlhf_err e2;
    if (config_from_name(&c, spec, &e2) == 0) return model_create(m, &c, seed, err);
    if (peft_is_adapter_dir(spec)) return peft_load(spec, NULL, seed, m, err);
    struct stat st;
    if (stat(spec, &st) != 0)
        return rlhf_fail(err, "--model %s: not a known size (tiny, small, gpt2, llama-tiny, "
                              "llama-small) and no such checkpoint",
                         spec);
    int foreign = model_load_foreign(spec, m, err);
    if (foreign <= 0) return foreign;
    // a file is our weights beside their config.json; anything else (a dataset, a
    // device) would be reported as a config.json missing beside it
    if (!S_ISDIR(st.st_mode) && !fmt_ends_with(spec, ".safetensors"))
        return rlhf_fail(err,
                         "--model %s: not a model (a known size, a run or checkpoint folder, an "
                         "HF model folder, a llama2.c .bin, or a .safetensors file beside its "
                         "config.json)",
                         spec);
    return checkpoint_load(spec, m, err);
}

int model_resolve_path(const char *spec, char *out, size_t n, rlhf_err *err) {
    if (fmt_is_dir(spec) && !hf_is_model_dir(spec) && !fmt_has(spec, "model.safetensors") &&
        !peft_is_adapter_dir(spec)) {
        char path[4400];  // a run directory
        snprintf(path, sizeof path, "%s/checkpoints/final", spec);
        if (!fmt_has(path, "model.safetensors") && !peft_is_adapter_dir(path) &&
            checkpoint_latest(spec, path, sizeof path))
            return rlhf_fail(err, "--model %s: a directory without model.safetensors or "
                                  "checkpoints/",
                             spec);
        if ((size_t)snprintf(out, n, "%s", path) >= n)
            return rlhf_fail(err, "--model %s: path too long", spec);
        return 0;
    }
    if ((size_t)snprintf(out, n, "%s", spec) >= n)
        return rlhf_fail(err, "--model %s: path too long", spec);
    return 0;
}

int model_load_any(const char *spec, uint64_t seed, rlhf_model **m, rlhf_err *err) {
    int foreign = model_load_foreign(spec, m, err);
    if (foreign == 0) peft_note_origin(*m, spec, seed);
    if (foreign <= 0) return foreign;
    char path[4400];
    if (model_resolve_path(spec, path, sizeof path, err)) return -1;
    if (load_named_or_file(path, seed, m, err)) return -1;
    if (!model_lora(*m)) peft_note_origin(*m, path, seed);  // peft_load notes the base itself
    return 0;
}

// ------------------------------------------------------------- tokenizer --

int model_tokenizer(const rlhf_model *m, const char *flag, rlhf_tokenizer **t, rlhf_err *err) {
    const char *spec = flag && *flag ? flag : m->cfg.tokenizer;
    if (!spec || !*spec)
        return rlhf_fail(err, "the model does not name its tokenizer: pass --tokenizer PATH (a "
                              "folder with encoder.json+vocab.bpe, vocab.json+merges.txt or "
                              "tokenizer.json, or a tokenizer.bin), or --tokenizer byte");
    if (!strcmp(spec, "byte")) *t = tok_byte_create();
    else if (tok_load(t, spec, err)) return -1;
    int V = tok_vocab_size(*t);
    if (V > m->cfg.vocab_size) {
        rlhf_fail(err, "tokenizer %s has %d tokens but the model's vocabulary has %d", spec, V,
                  m->cfg.vocab_size);
        tok_free(*t);
        *t = NULL;
        return -1;
    }
    return 0;
}
