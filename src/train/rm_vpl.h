// train/rm_vpl: `rlhf rm --objective vpl`, variational preference learning (Poddar et al. 2024): an encoder maps a user's context pairs to a latent z; the reward model is conditioned on z; trained with the ELBO.
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_RM_VPL_H
#define RLHF_TRAIN_RM_VPL_H

#include "base/base.h"

struct rm_config;

typedef struct {
    float placeholder;       // the helper defines the options
} rm_vpl_options;

void rm_vpl_default_options(rm_vpl_options *o);
int rm_vpl_train(const struct rm_config *c, rlhf_err *err);

#endif
