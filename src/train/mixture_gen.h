// train/mixture_gen: sampling from the geometric mixture of two models, as
// Nash-MD needs (train/online_nash.c; Munos et al. 2023, TRL's
// GeometricMixtureWrapper). At every step both models read the same tokens,
// each with its own KV cache, and the next token is drawn from
//
//   π_mix(·|x, y_<t) ∝ π_ref(·)^c · π(·)^(1−c)   i.e.   logits_mix = c·logits_ref + (1−c)·logits_π
//
// (c = mixture_coef in [0, 1]; the normalisers of the two softmaxes only shift
// the mixed logits, so they are left out), then tempered, cut to top-k/top-p and
// renormalised as generate() does (sample_token). c = 0 draws exactly what
// generate() draws from π with the same stream, c = 1 what it draws from the
// reference (tests/test_nash.c checks both, token for token).
#ifndef RLHF_TRAIN_MIXTURE_GEN_H
#define RLHF_TRAIN_MIXTURE_GEN_H

#include "rlhf.h"
#include "train/rollout.h"

// out (V) = coef * ref (V) + (1 - coef) * policy (V): the mixture's logits (out
// may be policy or ref).
void mixture_logits(int V, float coef, const float *policy, const float *ref, float *out);

// generate() for the mixture of policy and ref (same vocabulary and at least the
// room generate() needs in both): B prompts, left-padded into one KV cache per
// model; out->logp is each token's log-prob under the distribution it was drawn
// from (the mixture after temperature, top-k, top-p). -1 + err on bad input
// (coef outside [0, 1], different vocabularies, empty prompt, no room).
int mixture_generate(rlhf_model *policy, rlhf_model *ref, float coef, const int *const *prompts,
                     const int *prompt_len, int B, const rlhf_gen_opts *o, rlhf_rng *rng,
                     rlhf_gen_out *out, rlhf_err *err);

// rollout_generate() for the mixture: o->n_samples completions of each prompt,
// laid out as a rollout_batch (train/rollout.h), o->batch_size rows per call
// (rollout_generate with mixture_generate as its sampler).
int mixture_rollout(rlhf_model *policy, rlhf_model *ref, float coef, const int *const *prompts,
                    const int *prompt_len, int n_prompts, const rollout_opts *o, rlhf_rng *rng,
                    rollout_batch *out, rlhf_err *err);

#endif
