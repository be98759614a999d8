// train/rm_vpl: `rlhf rm --objective vpl`, variational preference learning
// (Poddar et al. 2024, arXiv:2408.10075): a reward model conditioned on the
// user. A frozen trunk (--model) turns every prompt + answer into an embedding
// e(x, y) (its final hidden state at the last real token, or the mean over the
// answer's tokens); an encoder maps K of a user's labelled pairs to a latent z
// and the reward is r = MLP([e(x, y); z]), trained with the ELBO of algo/vpl.h.
// Only the small networks train (as in the authors' code with fixed LLM
// embeddings); in the same run, on the same batches, a Bradley-Terry MLP
// r = MLP(e) without z is trained as the baseline.
//
// Data: prompt/chosen/rejected rows with a "user" field (a string or number;
// an optional "population" label is used to break down the eval). Eval is on
// held-out users (--eval_data, or --eval_split of the users): each one's first
// K pairs (file order) are its context, its other pairs are scored with z = mu.
// The run directory holds config.json, metrics.jsonl, summary.json and
// vpl.safetensors + vpl.json (both networks, the dims, the trunk's path).
#ifndef RLHF_TRAIN_RM_VPL_H
#define RLHF_TRAIN_RM_VPL_H

#include "base/base.h"

struct rm_config;

typedef struct {
    int context_pairs;   // K: a user's labelled pairs the encoder reads
    int targets;         // M: a user's pairs scored per step (besides the context)
    int hidden;          // H: width of the pair-encoder and decoder MLPs
    int latent;          // Z: width of the latent
    float kl_beta;       // weight of KL(q || N(0, I))
    int kl_period;       // steps of one cosine annealing cycle of the KL weight (0: none)
    float kl_floor;      // the annealed weight starts each cycle at kl_floor * kl_beta
    const char *pooling; // "last": the hidden state at the last real token; "mean": over the answer
} rm_vpl_options;

void rm_vpl_default_options(rm_vpl_options *o);
int rm_vpl_train(const struct rm_config *c, rlhf_err *err);

#endif
