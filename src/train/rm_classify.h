// train/rm_classify: `rlhf rm --objective classify`, a text classifier (the discriminator reward of the health-text-simplification paper): a score head trained with the logistic loss on {"text", "label"} rows, used as a reward source.
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_RM_CLASSIFY_H
#define RLHF_TRAIN_RM_CLASSIFY_H

#include "base/base.h"

struct rm_config;

typedef struct {
    float placeholder;       // the helper defines the options
} rm_classify_options;

void rm_classify_default_options(rm_classify_options *o);
int rm_classify_train(const struct rm_config *c, rlhf_err *err);

#endif
