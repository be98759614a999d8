// train/sft: supervised fine-tuning — next-token NLL on completion tokens only
// (assistant tokens only for `messages`; all tokens for `text`), with eval loss,
// periodic checkpoints, metrics.jsonl and a progress bar.
#ifndef RLHF_TRAIN_SFT_H
#define RLHF_TRAIN_SFT_H

#include "data/dataset.h"
#include "rlhf.h"

typedef struct {
    const char *model;         // size name, checkpoint or run directory
    const char *data;          // JSONL(.gz) in a TRL format
    const char *eval_data;     // optional second file
    float eval_split;          // share of data held out when eval_data is absent
    const char *output_dir;
    const char *tokenizer;     // overrides the model's
    const char *chat_template; // for messages / conversational data
    int max_length, max_prompt_length;
    const char *truncation_mode; // keep_end | keep_start
    int packing, skip_bad_lines;
    float learning_rate, warmup_ratio, weight_decay, max_grad_norm;
    const char *lr_scheduler_type; // constant | linear | cosine
    int num_train_epochs, max_steps, batch_size, gradient_accumulation_steps;
    int logging_steps, save_steps, eval_steps;
    int resume, quiet;
    uint64_t seed;
    const char *config_json;   // the flags as JSON, recorded in the run directory
} sft_config;

void sft_default_config(sft_config *c);
// Trains; the final model goes to output_dir/checkpoints/final.
int sft_train(const sft_config *c, rlhf_err *err);

// Mean next-token NLL over the loss tokens of a tokenized dataset (eval).
double eval_nll(rlhf_model *m, const ds_dataset *ds, int batch_size, rlhf_err *err);

#endif
