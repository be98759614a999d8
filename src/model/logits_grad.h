// model/logits_grad: the backward of model_logits, for losses that need the
// full next-token distribution (SuperHF's vocabulary KL) rather than the
// log-probs of given targets that the fused LM head returns.
#ifndef RLHF_MODEL_LOGITS_GRAD_H
#define RLHF_MODEL_LOGITS_GRAD_H

#include "rlhf.h"

// Given dlogits (B*T, V), the gradient of a loss w.r.t. the logits of m's last
// forward (model_logits): writes dhidden (B*T, C) = dlogits @ W_lm, to be
// passed to model_backward as its dhidden, and ACCUMULATES dlogits^T @ hidden
// into the LM head's gradient (the token embedding's when tied). Allocates
// m's gradients when it has none.
void model_logits_backward(rlhf_model *m, const float *dlogits, float *dhidden);

#endif
