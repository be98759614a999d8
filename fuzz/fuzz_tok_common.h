// What the tokenizer harnesses do with a tokenizer that loaded: encode and
// decode a fixed text and the input's own bytes, and decode every id.
#ifndef RLHF_FUZZ_TOK_COMMON_H
#define RLHF_FUZZ_TOK_COMMON_H

#include "tok/tok.h"

static inline void fuzz_exercise_tok(const rlhf_tokenizer *t, const uint8_t *extra, size_t n_extra) {
    rlhf_err err;
    static const char text[] = "Hello world! <|endoftext|> <s> caf\xc3\xa9 \xff\xfe 12 345  \n\n";
    const char *texts[2] = {text, (const char *)extra};
    size_t lens[2] = {sizeof text - 1, n_extra > 256 ? 256 : n_extra};
    for (int k = 0; k < 2; k++)
        for (int special = 0; special < 2; special++) {
            int *ids = NULL, n = 0;
            if (tok_encode(t, texts[k], lens[k], &ids, &n, special, &err) == 0) {
                int V = tok_vocab_size(t);
                for (int i = 0; i < n; i++)
                    if (ids[i] < 0 || ids[i] >= V) abort(); // encode gives ids in the vocabulary
                size_t len;
                free(tok_decode_ex(t, ids, n, 0, &len));
                free(tok_decode_ex(t, ids, n, 1, &len));
            }
            free(ids);
        }
    int V = tok_vocab_size(t);
    int all[64];
    int n = 0;
    for (int id = -1; id <= V && n < 64; id += V / 60 + 1) all[n++] = id; // and out of range
    free(tok_decode(t, all, n));
    for (int id = -1; id <= V && id < 5000; id++) {
        size_t len;
        (void)tok_piece(t, id, &len);
    }
    (void)tok_bos(t);
    (void)tok_eos(t);
    (void)tok_pad(t);
    (void)tok_find_special(t, "<|endoftext|>");
}

#endif
