// train/rm_classify: `rlhf rm --objective classify`, a text classifier (the
// discriminator reward of the health-text-simplification paper: a classifier
// of simple vs complex text whose probability is the RL reward). A score head
// on a trunk (from an SFT/base checkpoint or from scratch) reads each text's
// last token and is trained with the logistic loss (algo/classify_loss.h) on
// rows
//   {"text": "...", "label": true}                      input "text"
//   {"prompt": "...", "completion": "...", "label": 1}   input "prompt_completion"
// (label true/false or 1/0; the first row decides the kind and every row must
// be of it). Eval on a held-out split (--eval_split / --eval_data): accuracy,
// log loss, mean P(true), the majority-class accuracy, before and after.
//
// The run directory and every checkpoint hold classify.json
//   {"objective": "classify", "input": "text" | "prompt_completion"}
// so the reward source classify:PATH (reward/classify.h) feeds the model what
// it was trained on: the completion alone ("text": a policy's completion is
// the text classified) or prompt + completion.
#ifndef RLHF_TRAIN_RM_CLASSIFY_H
#define RLHF_TRAIN_RM_CLASSIFY_H

#include "base/base.h"
#include "reward/classify.h"  // CLASSIFY_META: what the trainer writes, the source reads

struct rm_config;

typedef struct {
    float pos_weight;  // --classify_pos_weight: loss weight of label-true rows (default 1)
} rm_classify_options;

void rm_classify_default_options(rm_classify_options *o);
int rm_classify_train(const struct rm_config *c, rlhf_err *err);

#endif
