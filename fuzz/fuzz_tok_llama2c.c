// Fuzz target: a llama2.c tokenizer.bin, read to its end and with a vocabulary
// size taken from the input's first byte.
#include "fuzz/fuzz_common.h"
#include "fuzz/fuzz_tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char p[4096];
    fuzz_write("tokenizer.bin", data, size, p);
    rlhf_err err;
    for (int k = 0; k < 2; k++) {
        rlhf_tokenizer *t = NULL;
        int vocab = k == 0 ? 0 : (size ? data[size - 1] % 64 : 1);
        if (tok_load_llama2c(&t, p, vocab, &err) != 0) fuzz_note("tok_load_llama2c", err.msg);
        else {
            fuzz_exercise_tok(t, data, size);
            tok_free(t);
        }
    }
    return 0;
}
