// train/rm_brme: `rlhf rm --objective brme`, a Bayesian reward-model ensemble (reward-robust RLHF, Yan et al. 2024): K heads on one trunk, each giving a mean and a standard deviation.
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_RM_BRME_H
#define RLHF_TRAIN_RM_BRME_H

#include "base/base.h"

struct rm_config;

typedef struct {
    float placeholder;       // the helper defines the options
} rm_brme_options;

void rm_brme_default_options(rm_brme_options *o);
int rm_brme_train(const struct rm_config *c, rlhf_err *err);

#endif
