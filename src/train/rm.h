// train/rm: reward models — a scalar head on a trunk (from an SFT checkpoint
// or from scratch), Bradley-Terry loss -log sigmoid(r_chosen - r_rejected -
// margin) with an optional per-pair `margin` field and TRL's
// center_rewards_coefficient, eval accuracy; ensembles of K members on one
// trunk (K heads) or on K separate trunks (K runs, listed in ensemble.json).
#ifndef RLHF_TRAIN_RM_H
#define RLHF_TRAIN_RM_H

#include "train/common.h"

typedef struct {
    train_config base;
    float center_rewards_coefficient;
    int ensemble_size;           // K members
    const char *ensemble_trunks; // "shared" (K heads on one trunk) or "separate"
} rm_config;

void rm_default_config(rm_config *c);
int rm_train(const rm_config *c, rlhf_err *err);

#endif
