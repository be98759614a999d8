// train/dpo: offline preference optimisation — `rlhf dpo` serves every loss of
// algo/pref (--loss_type sigmoid, ipo, simpo, kto, ... or a weighted list).
// Chosen and rejected of a batch go through the policy in one pass; the
// reference runs in the same step or comes from a cache of precomputed
// log-probs (one pass, stored in the run directory, reused on restart).
// TR-DPO reference sync, KL(policy || reference) estimates on eval prompts, and
// metrics under TRL's names.
#ifndef RLHF_TRAIN_DPO_H
#define RLHF_TRAIN_DPO_H

#include "algo/pref.h"
#include "train/common.h"

typedef struct {
    train_config base;
    const char *loss_type, *loss_weights;
    pref_options opt;
    const char *f_divergence_type;
    const char *ref_model;        // default: the initial policy
    int precompute_ref_log_probs; // one pass with the reference, cached in output_dir
    int sync_ref_model;           // TR-DPO
    float ref_model_mixup_alpha;  // ref <- alpha * policy + (1 - alpha) * ref
    int ref_model_sync_steps;
    int kl_prompts;               // eval prompts used for the KL estimate (0: none)
    int kl_max_new_tokens;
} dpo_config;

void dpo_default_config(dpo_config *c);
int dpo_train(const dpo_config *c, rlhf_err *err);

// KL(policy || ref) estimated on prompts: one sample each from the policy at
// temperature 1, sum over its tokens of log pi - log pi_ref, averaged.
double estimate_kl(rlhf_model *policy, rlhf_model *ref, const int *const *prompts,
                   const int *prompt_len, int n, int max_new_tokens, int eos_id, uint64_t seed,
                   rlhf_err *err);

#endif
