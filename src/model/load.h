// model/load: a model and its tokenizer from what a user names on the command
// line. model_load_any (a named size, a checkpoint, a run directory's newest
// checkpoint, an HF folder or a llama2.c file) and the run-directory lookups
// (checkpoint_steps, checkpoint_latest) are public: include/rlhf.h. The
// tokenizer API (src/tok/tok.h) is internal to the tree, so model_tokenizer,
// which returns one, is declared here, for the trainers, rewards and commands.
#ifndef RLHF_MODEL_LOAD_H
#define RLHF_MODEL_LOAD_H

#include "rlhf.h"
#include "tok/tok.h"

// The tokenizer for a model: the flag if given, else the model's own
// (cfg.tokenizer; "byte" is the byte tokenizer). Checks that its ids fit the
// model's vocabulary.
int model_tokenizer(const rlhf_model *m, const char *flag, rlhf_tokenizer **t, rlhf_err *err);

#endif
