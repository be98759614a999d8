// Fuzz target: an HF tokenizer.json (part 0), with tokenizer_config.json
// beside it when there is a part 1.
#include "fuzz/fuzz_common.h"
#include "fuzz/fuzz_tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_parts parts;
    fuzz_split(data, size, &parts);
    fuzz_clear();
    char p[4096], q[4096];
    fuzz_write("tokenizer.json", parts.p[0], parts.n[0], p);
    if (parts.count >= 2) fuzz_write("tokenizer_config.json", parts.p[1], parts.n[1], q);
    rlhf_tokenizer *t = NULL;
    rlhf_err err;
    if (tok_load_hf_json(&t, p, &err) != 0) fuzz_note("tok_load_hf_json", err.msg);
    else {
        fuzz_exercise_tok(t, data, size);
        tok_free(t);
    }
    return 0;
}
