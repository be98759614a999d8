// Fuzz target: our checkpoint's config.json (config_from_json), and a whole
// checkpoint folder: part 0 = config.json, part 1 = model.safetensors
// (checkpoint_load), optional part 2 = optimizer.safetensors
// (checkpoint_load_optim).
#include "fuzz/fuzz_common.h"
#include "rlhf.h"

// Models above this many parameters are not built (allocation and init time
// only; the config itself has been checked by then).
#define FUZZ_MAX_PARAMS (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_parts parts;
    fuzz_split(data, size, &parts);
    char *json = fuzz_strdup(parts.p[0], parts.n[0]);
    rlhf_config c;
    rlhf_err err;
    int ok = config_from_json(&c, json, "config.json", &err) == 0;
    if (!ok) fuzz_note("config_from_json", err.msg);
    if (ok) {
        if (config_validate(&c, &err) != 0) abort(); // accepted means valid
        char *back = config_to_json(&c);             // and it round-trips
        rlhf_config c2;
        if (config_from_json(&c2, back, "again", &err) != 0) abort();
        free(back);
    }
    size_t n_params = 0;
    if (ok && parts.count >= 2 && config_n_params(&c, &n_params) == 0 &&
        n_params <= FUZZ_MAX_PARAMS) {
        fuzz_clear();
        char p[4096];
        fuzz_write("config.json", parts.p[0], parts.n[0], p);
        fuzz_write("model.safetensors", parts.p[1], parts.n[1], p);
        if (parts.count >= 3) fuzz_write("optimizer.safetensors", parts.p[2], parts.n[2], p);
        rlhf_model *m = NULL;
        int loaded = checkpoint_load(fuzz_dir(), &m, &err) == 0;
        if (!loaded) fuzz_note("checkpoint_load", err.msg);
        if (loaded) {
            if (m->n_params != n_params) abort();
            if (parts.count >= 3) {
                rlhf_optim_config oc;
                optim_default_config(&oc);
                rlhf_optim *o = optim_create(&oc, m->n_params);
                rlhf_rng rng;
                if (checkpoint_load_optim(fuzz_dir(), o, &rng, &err) != 0)
                    fuzz_note("checkpoint_load_optim", err.msg);
                optim_free(o);
            }
            model_free(m);
        }
    }
    free(json);
    return 0;
}
