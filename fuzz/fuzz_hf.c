// Fuzz target: a Hugging Face model folder. Part 0 is config.json. When part 1
// starts with '{' it is model.safetensors.index.json and parts 2, 3, ... are
// the shards a.safetensors, b.safetensors, ...; otherwise part 1 is
// model.safetensors. Loaded with model_inspect and model_load_foreign.
#include "fuzz/fuzz_common.h"
#include "model/hf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_parts parts;
    fuzz_split(data, size, &parts);
    fuzz_clear();
    char p[4096];
    fuzz_write("config.json", parts.p[0], parts.n[0], p);
    if (parts.count >= 2) {
        if (parts.n[1] && parts.p[1][0] == '{') {
            fuzz_write("model.safetensors.index.json", parts.p[1], parts.n[1], p);
            for (int i = 2; i < parts.count; i++) {
                char name[32];
                snprintf(name, sizeof name, "%c.safetensors", 'a' + i - 2);
                fuzz_write(name, parts.p[i], parts.n[i], p);
            }
        } else {
            fuzz_write("model.safetensors", parts.p[1], parts.n[1], p);
        }
    }
    rlhf_err err;
    model_file_info info;
    int ok_inspect = model_inspect(fuzz_dir(), &info, &err) == 0;
    rlhf_model *m = NULL;
    int r = model_load_foreign(fuzz_dir(), &m, &err);
    if (r != 0) fuzz_note("model_load_foreign", r < 0 ? err.msg : "not a foreign model");
    if (r == 0) {
        if (!ok_inspect) abort(); // what loads must also inspect
        if (config_validate(&m->cfg, &err) != 0) abort();
        model_free(m);
    }
    return 0;
}
