// train/complete: prompts (text) in, completions (text) out — batched KV-cache
// generation with a tokenizer on both sides. Used by eval, generate and,
// later, rollouts.
#ifndef RLHF_TRAIN_COMPLETE_H
#define RLHF_TRAIN_COMPLETE_H

#include "rlhf.h"
#include "tok/tok.h"

typedef struct {
    int batch_size;       // prompts per generate() call
    rlhf_gen_opts gen;    // eos_id/pad_id: -1 = the tokenizer's
    int add_bos;          // prepend the tokenizer's BOS to each prompt: 1 yes, 0 no,
                          // -1 (default) the tokenizer's convention (tok_resolve_add_bos)
    int parse_special;    // special-token strings in prompts map to their ids
} complete_opts;

void complete_default_opts(complete_opts *o);
// The tokenizer's stop rules into g: eos_id (where it is < 0) its EOS, and its
// other stop id (tok_stop_id: llama2.c's BOS) into stop_ids.
void complete_stop_ids(rlhf_gen_opts *g, const rlhf_tokenizer *t);
// out[i] (malloc'd) is the decoded completion of prompts[i], without the EOS
// (or other stop id), decoded as the continuation of its prompt (tok_decode_next).
// If ended_eos is not NULL, ended_eos[i] says whether it stopped at EOS.
int complete_texts(rlhf_model *m, const rlhf_tokenizer *t, const char *const *prompts, int n,
                   const complete_opts *o, rlhf_rng *rng, char **out, uint8_t *ended_eos,
                   rlhf_err *err);

#endif
