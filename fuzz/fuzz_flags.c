// Fuzz target: --config files (a JSON object of flag names and values) for a
// flag table with every flag type.
#include "fuzz/fuzz_common.h"
#include "cli/flags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char p[4096];
    fuzz_write("config.json", data, size, p);
    const char *s = "default", *s2 = NULL;
    int i = 1, b = 0, r = 5;
    float f = 0.5f;
    double d = 1e-3;
    uint64_t u = 42;
    flag_def defs[] = {
        {"model", FLAG_STR, &s, "a string", 0, 0, NULL},
        {"output_dir", FLAG_STR, &s2, "another", 0, 0, "out"},
        {"steps", FLAG_INT, &i, "an integer", 0, 0, NULL},
        {"batch", FLAG_INT, &r, "a ranged integer", 1, 1024, "batch_size"},
        {"packing", FLAG_BOOL, &b, "a boolean", 0, 0, NULL},
        {"lr", FLAG_FLOAT, &f, "a float", 0, 10, NULL},
        {"beta", FLAG_DOUBLE, &d, "a double", 0, 0, NULL},
        {"seed", FLAG_U64, &u, "a u64", 0, 0, NULL},
        {NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    char a0[] = "--config", a2[] = "--steps", a3[] = "7";
    char *argv[] = {a0, p, a2, a3};
    rlhf_err err;
    int ok = flags_parse(4, argv, defs, "fuzz", "fuzz target", &err) == 0;
    if (!ok) fuzz_note("flags_parse", err.msg);
    if (ok) {
        if (i != 7) abort(); // the command line wins over the file
        char *json = flags_to_json(defs);
        free(json);
    }
    flags_free_config_strings();
    return 0;
}
