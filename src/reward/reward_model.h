// reward/reward_model: a trained reward model or an ensemble of them, as one
// scorer. An ensemble is either one trunk with K score heads (a checkpoint whose
// config has score_head = K) or K separate checkpoints listed in an
// ensemble.json ({"members": ["path", ...]}). Scores are per member; the mean
// and variance across members are what ensemble aggregation (mean, worst-case,
// uncertainty-weighted) works on.
//
// A Bayesian reward-model ensemble (`rlhf rm --objective brme`, train/rm_brme.h)
// is a checkpoint with score_head = 2K and a brme.json beside its weights
// ({"objective": "brme", "heads": K, "layout": ...}): outputs 0..K-1 are the
// heads' means, K..2K-1 pre-activations x of their standard deviations, sigma =
// softplus(x) + 1e-3 (algo/brme_loss.h). Loaded, it counts K members: the
// scores are the means, and the *_sigma functions give the sigmas too.
#ifndef RLHF_REWARD_MODEL_H
#define RLHF_REWARD_MODEL_H

#include "data/dataset.h"
#include "rlhf.h"
#include "tok/tok.h"

#define BRME_META "brme.json"  // beside a BRME checkpoint's weights

typedef struct {
    int n_models;
    rlhf_model **models;  // each with score_head >= 1
    int K;                // members in all (sum of score heads; a BRME's heads)
    int brme;             // 1: every model is a BRME (means and sigmas), 0: none is
    rlhf_tokenizer *tok;
    char path[1024];
} reward_model;

// path: a checkpoint with a score head, a run directory of `rlhf rm`, or a
// directory holding ensemble.json. tokenizer: NULL = the model's.
int reward_model_load(reward_model *rm, const char *path, const char *tokenizer, rlhf_err *err);
void reward_model_free(reward_model *rm);
// Scores the rows of a batch (reads each row's last real token): out (B, K).
int reward_model_score_batch(reward_model *rm, const rlhf_batch *b, float *out, rlhf_err *err);
// The same with the members' standard deviations: sigma (B, K), NULL to skip;
// for a model that is not a BRME it is an error to ask for them.
int reward_model_score_batch_sigma(reward_model *rm, const rlhf_batch *b, float *out,
                                   float *sigma, rlhf_err *err);
// Scores prompt + completion texts (already rendered): out (n, K). Each text is
// tokenized as the RM trainer does (prompt, completion, EOS).
int reward_model_score_texts(reward_model *rm, const char *const *prompts,
                             const char *const *completions, int n, int batch_size, float *out,
                             rlhf_err *err);
// The same with sigma (n, K) as reward_model_score_batch_sigma (NULL to skip).
int reward_model_score_texts_sigma(reward_model *rm, const char *const *prompts,
                                   const char *const *completions, int n, int batch_size,
                                   float *out, float *sigma, rlhf_err *err);

#endif
