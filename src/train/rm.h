// train/rm: reward models — a scalar head on a trunk (from an SFT checkpoint
// or from scratch), Bradley-Terry loss -log sigmoid(r_chosen - r_rejected -
// margin) with an optional per-pair `margin` field and TRL's
// center_rewards_coefficient, eval accuracy; ensembles of K members on one
// trunk (K heads) or on K separate trunks (K runs, listed in ensemble.json);
// or (--objective pairwise) a generative pairwise judge, trained to name the
// chosen answer with the token " A" or " B" (reward/pairwise.h).
#ifndef RLHF_TRAIN_RM_H
#define RLHF_TRAIN_RM_H

#include "train/common.h"

// Where the K members of an ensemble live: K score heads on one trunk, or K
// separate models (K runs in output_dir/member-k, listed in ensemble.json).
typedef enum { RM_TRUNKS_SHARED, RM_TRUNKS_SEPARATE } rm_trunks;

typedef struct {
    train_config base;
    float center_rewards_coefficient;
    int ensemble_size;           // K members
    rm_trunks ensemble_trunks;
    int pairwise;                // --objective pairwise: a generative pairwise judge (reward/pairwise.h)
    const char *judge_template;  // its judging template ({prompt}, {a}, {b}); NULL: the default
} rm_config;

void rm_default_config(rm_config *c);
// "shared" or "separate" (--ensemble_trunks); -1 + err otherwise.
int rm_trunks_from_name(const char *name, rm_trunks *out, rlhf_err *err);
int rm_train(const rm_config *c, rlhf_err *err);

#endif
