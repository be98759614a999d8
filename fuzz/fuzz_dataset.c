// Fuzz target: JSONL datasets (plain or gzip), loaded strictly and with
// skip_bad_lines, then tokenized with the byte tokenizer and a chat template.
#include "fuzz/fuzz_common.h"
#include "data/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char p[4096];
    fuzz_write("data.jsonl", data, size, p);
    rlhf_tokenizer *t = tok_byte_create();
    const char *templates[3] = {"chatml", "llama3", "hh"};
    for (int skip = 0; skip < 2; skip++) {
        ds_load_opts lo = {.format = DS_AUTO, .skip_bad_lines = skip};
        ds_dataset *ds = NULL;
        ds_report rep;
        rlhf_err err;
        if (ds_load(&ds, p, &lo, &rep, &err) != 0) {
            fuzz_note("ds_load", err.msg);
            continue;
        }
        ds_tok_opts to;
        ds_tok_opts_default(&to);
        to.chat_template = templates[size % 3];
        to.skip_bad_lines = skip;
        to.max_length = skip ? 16 : 0;
        to.max_prompt_length = skip ? 8 : 0;
        to.truncation = skip ? DS_KEEP_END : DS_TRUNCATE_OFF;
        to.add_bos = skip;
        int tok_ok = ds_tokenize(ds, t, &to, &rep, &err) == 0;
        if (!tok_ok) fuzz_note("ds_tokenize", err.msg);
        if (tok_ok) {
            for (int i = 0; i < ds->n; i++) {
                const ds_tokens *k = &ds->tok[i];
                for (int j = 0; j < k->n_prompt; j++)
                    if (k->prompt[j] < 0 || k->prompt[j] >= tok_vocab_size(t)) abort();
            }
        }
        char buf[2048];
        ds_report_format(&rep, buf, sizeof buf);
        ds_free(ds);
    }
    tok_free(t);
    return 0;
}
