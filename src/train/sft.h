// train/sft: supervised fine-tuning — next-token NLL on completion tokens only
// (assistant tokens only for `messages`; all tokens for `text`), with eval loss,
// periodic checkpoints, metrics.jsonl and a progress bar.
#ifndef RLHF_TRAIN_SFT_H
#define RLHF_TRAIN_SFT_H

#include "data/dataset.h"
#include "rlhf.h"
#include "train/common.h"

typedef train_config sft_config;

void sft_default_config(sft_config *c);
// Trains; the final model goes to output_dir/checkpoints/final.
int sft_train(const sft_config *c, rlhf_err *err);

// Mean next-token NLL over the loss tokens of a tokenized dataset (eval).
double eval_nll(rlhf_model *m, const ds_dataset *ds, int batch_size, rlhf_err *err);

#endif
