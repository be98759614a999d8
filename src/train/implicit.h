// train/implicit: summed completion log-probs of preference batches (what
// every DPO-family loss consumes), and scoring a file with a DPO policy's
// implicit reward beta * (log pi(y|x) - log pi_ref(y|x)).
#ifndef RLHF_TRAIN_IMPLICIT_H
#define RLHF_TRAIN_IMPLICIT_H

#include "data/dataset.h"
#include "rlhf.h"

// After model_forward on batch b: per-row sums of m->logp over loss tokens
// (sums (B)) and completion lengths in tokens (lens (B)).
void batch_logp_sums(const rlhf_model *m, const ds_batch *b, float *sums, int *lens);

typedef struct {
    const char *policy, *ref, *data, *out, *tokenizer, *chat_template;
    float beta;
    int batch_size, max_length;
} implicit_opts;

// Writes one JSON line per example: chosen_score / rejected_score (pairs) or
// score, each beta * (log pi - log pi_ref); prints the pair accuracy.
int implicit_reward_score(const implicit_opts *o, rlhf_err *err);

#endif
