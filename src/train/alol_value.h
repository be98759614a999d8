// train/alol_value: A-LoL's baseline V_ref(x) for every example of a run
// (Baheti et al. 2024; the math is algo/alol.c). The features of a prompt are
// the reference's final hidden state (after the last norm) at its last token;
// a linear head on them is fit by ridge regression (closed form, deterministic)
// to
//   * the rewards of pi_ref's own samples on the fit prompts (the eval set's,
//     else the training set's), scored by a reward set (reward/sources.h) —
//     the paper's value of the reference policy — when a reward is given;
//   * else the dataset's own rewards R = alol_reward(score): then V estimates
//     the value of the policy that wrote the data, a fallback (docs/losses.md).
// Targets are on the reward's scale (sigmoid(score) with alol_sigmoid_reward),
// so A = R - V compares like with like.
#ifndef RLHF_TRAIN_ALOL_VALUE_H
#define RLHF_TRAIN_ALOL_VALUE_H

#include <stdint.h>

#include "data/dataset.h"
#include "rlhf.h"
#include "tok/tok.h"

typedef struct {
    const char *reward;  // reward-set spec scoring pi_ref's samples; NULL or "": the data's rewards
    int samples;         // samples of pi_ref per fit prompt (temperature 1)
    int max_new_tokens;  // tokens per sample
    int prompts;         // fit prompts (0: all)
    double ridge;        // lambda of the ridge fit
    int sigmoid_reward;  // R = sigmoid(score), as the loss (pref_options.alol_sigmoid_reward)
    int batch_size;      // rows per forward
    uint64_t seed;       // the samples' stream
} alol_value_opts;

typedef struct {
    int rows;            // prompts (or examples) the head was fit on
    double mse;          // the fit's mean squared error on them
    double mean_target;  // their mean target
    int from_samples;    // 1: pi_ref's samples scored by the reward; 0: the data's rewards
} alol_value_report;

// values (train->n) and, eval given, eval_values (eval->n): V_ref of each
// example's prompt, as floats rounded up (alol_value_float). -1 + err (a prompt
// that is empty or leaves no room for samples, a reward that fails).
int alol_value_estimate(rlhf_model *ref, const rlhf_tokenizer *tok, const ds_dataset *train,
                        const ds_dataset *eval, const alol_value_opts *o, float **values,
                        float **eval_values, alol_value_report *rep, rlhf_err *err);

#endif
