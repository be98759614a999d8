// Fuzz target: a GPT-2 vocabulary pair, encoder.json (part 0) + vocab.bpe
// (part 1), loaded through tok_load on the folder.
#include "fuzz/fuzz_common.h"
#include "fuzz/fuzz_tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_parts parts;
    fuzz_split(data, size, &parts);
    fuzz_clear();
    char p[4096];
    fuzz_write("encoder.json", parts.p[0], parts.n[0], p);
    fuzz_write("vocab.bpe", parts.count >= 2 ? parts.p[1] : (const uint8_t *)"",
               parts.count >= 2 ? parts.n[1] : 0, p);
    rlhf_tokenizer *t = NULL;
    rlhf_err err;
    if (tok_load(&t, fuzz_dir(), &err) != 0) fuzz_note("tok_load", err.msg);
    else {
        fuzz_exercise_tok(t, data, size);
        tok_free(t);
    }
    return 0;
}
