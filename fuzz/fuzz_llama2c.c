// Fuzz target: llama2.c model checkpoints (v0 legacy header, v1 "ak42"),
// through detection, inspection and loading.
#include "fuzz/fuzz_common.h"
#include "model/hf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_clear();
    char p[4096];
    fuzz_write("model.bin", data, size, p);
    rlhf_err err;
    if (!llama2c_detect(p)) return 0;
    model_file_info info;
    int ok_inspect = llama2c_inspect(p, &info, &err) == 0;
    rlhf_model *m = NULL;
    int ok_load = llama2c_load(p, &m, &err) == 0;
    if (!ok_load) fuzz_note("llama2c_load", err.msg);
    if (ok_load && !ok_inspect) abort(); // what loads must also inspect
    if (ok_load) {
        if (config_validate(&m->cfg, &err) != 0) abort();
        model_free(m);
    }
    return 0;
}
