// cli/gen_text: how `rlhf generate` turns prompts into token rows and sampled
// tokens into completion text (stop rules, prompt sets, one batch of
// completions); cli/cmd_gen and the Python binding's C ABI (cli/capi) share it.
#ifndef RLHF_CLI_GEN_TEXT_H
#define RLHF_CLI_GEN_TEXT_H

#include <stddef.h>

#include "data/dataset.h"
#include "rlhf.h"
#include "tok/chat.h"
#include "tok/tok.h"


// The prompts of one generate call, tokenized, with what to echo back.
typedef struct {
    int n;
    int **ids, *len;
    ds_dataset *ds;     // --prompts: the examples (prompt values, line numbers)
    const char *text;   // --prompt
    int conversational; // --prompt with --chat_template: one user message
} prompt_set;

// One completion of a row: text[start, len) is what it adds to its prompt (stop
// text cut, a conversational reply's prefix dropped).
typedef struct {
    char *text;
    size_t start, len;
    int ended;
} completion;

void prompt_set_free(prompt_set *p);

// "prompt 3 (prompts.jsonl:7)" or "the prompt", for messages
void prompt_name(const prompt_set *p, int i, char *buf, size_t n);

int prompt_is_conversational(const prompt_set *p, int i);

// Tokenizes --prompt or --prompts into p, with BOS first when add_bos
// (resolved: tok_resolve_add_bos). An empty prompt becomes [BOS] either way,
// the one token a model can start from (what llama2.c does with an empty
// prompt).
int load_prompts(prompt_set *p, const char *text, const char *file, const rlhf_tokenizer *t,
                 const char *chat_template, int add_bos, int allow_special, rlhf_err *err);

// Samples one completion of each of rows[0..nb) into out (conv[j]: row j's
// prompt is conversational).
int sample_rows(rlhf_model *m, const rlhf_tokenizer *t, const chat_stops *stops,
                const rlhf_gen_opts *g, rlhf_rng *rng, const int **rows, const int *row_len,
                const int *conv, int nb, completion *out, rlhf_err *err);

// The generation options of `rlhf generate`: generate() stops rows at the stop
// ids (the first as eos_id); the stop texts cut the text afterwards.
void gen_opts_for(const chat_stops *stops, const rlhf_tokenizer *t, int max_new, float temperature,
                  int top_k, float top_p, rlhf_gen_opts *g);

#endif
