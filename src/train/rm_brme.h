// train/rm_brme: `rlhf rm --objective brme`, a Bayesian reward-model ensemble
// (BRME; reward-robust RLHF, Yan et al. 2024, arXiv:2409.15360): K heads on one
// trunk (--ensemble_size K), each giving a mean and a standard deviation of the
// reward, trained on pairs with the marginal-likelihood Bradley-Terry loss of
// algo/brme_loss.h (M reparameterised samples per head, a prior pulling sigma
// toward 1). The checkpoint has a score head of 2K outputs and a brme.json that
// records the layout (reward/reward_model.h loads it as K members with sigmas;
// `--rm_ensemble brme` mixes them as the paper does). docs/reward_robust.md.
#ifndef RLHF_TRAIN_RM_BRME_H
#define RLHF_TRAIN_RM_BRME_H

#include "base/base.h"
#include "train/trainer.h"

struct rm_config;

typedef struct {
    int samples;        // M reparameterised samples per pair and head (--brme_samples)
    float sigma_prior;  // alpha, the weight of KL(N(mu, sigma^2) || N(mu, 1)) (--brme_sigma_prior)
} rm_brme_options;

void rm_brme_default_options(rm_brme_options *o);
int rm_brme_train(const struct rm_config *c, rlhf_err *err);

#endif
