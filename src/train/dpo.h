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
    // A-LoL (losses that need batch.value or batch.score; train/alol_value.h)
    const char *alol_value_reward; // reward set scoring pi_ref's samples for V_ref (NULL: the data's)
    int alol_value_samples;        // samples per fit prompt
    int alol_value_max_new_tokens;
    int alol_value_prompts;        // fit prompts (0: all)
    float alol_value_ridge;        // lambda of the ridge fit
    int alol_priority;             // train on A > 0 only, drawn with probability ~ A (R for rlol)
} dpo_config;

void dpo_default_config(dpo_config *c);
int dpo_train(const dpo_config *c, rlhf_err *err);

// KL(policy || ref) estimated on prompts: one sample each from the policy at
// temperature 1, sum over its tokens of log pi - log pi_ref, averaged.
double estimate_kl(rlhf_model *policy, rlhf_model *ref, const int *const *prompts,
                   const int *prompt_len, int n, int max_new_tokens, int eos_id, uint64_t seed,
                   rlhf_err *err);

#endif
