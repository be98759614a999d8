// reward/vpl_model: a VPL run (trained by `rlhf rm --objective vpl`,
// train/rm_vpl.h) opened for MANY users at once — what a trainer needs that
// scores every row for its own user (train/vpl_policy.h). reward/vpl_rm.h is
// the one-user scorer behind `vpl:DIR:CONTEXT` reward sources; this is the same
// model with the user's latent as an argument:
//
//   vpl_model_encode   z = mu of the encoder over K labelled pairs of one user
//   vpl_model_score    r_i = MLP([e(prompt_i, completion_i); z_i]), a latent per row
//
// e is the frozen trunk's embedding recorded in vpl.json (trunk, its seed,
// pooling); texts are tokenized as the trainer's data were with default flags
// (BOS by the tokenizer's convention, the prompt, the completion as its
// continuation, EOS; over-long sequences keep their end).
#ifndef RLHF_REWARD_VPL_MODEL_H
#define RLHF_REWARD_VPL_MODEL_H

#include "base/base.h"

typedef struct vpl_model vpl_model;

// dir: an `rm --objective vpl` run directory (vpl.json, vpl.safetensors).
// tokenizer: NULL = the trunk's.
int vpl_model_open(vpl_model **out, const char *dir, const char *tokenizer, rlhf_err *err);
int vpl_model_latent(const vpl_model *v);        // Z, the width of z
int vpl_model_context_pairs(const vpl_model *v); // K, the pairs the encoder was trained to read
// mu (Z) of one user from its K pairs (prompt, chosen, rejected texts).
int vpl_model_encode(vpl_model *v, const char *const *prompts, const char *const *chosen,
                     const char *const *rejected, int K, double *mu, rlhf_err *err);
// out (n): the reward of each (prompt, completion) for the user whose latent is
// z[i*Z .. i*Z+Z), batch_size rows per trunk forward.
int vpl_model_score(vpl_model *v, const char *const *prompts, const char *const *completions,
                    const double *z, int n, int batch_size, float *out, rlhf_err *err);
void vpl_model_close(vpl_model *v); // NULL is fine

#endif
