// Internal to src/model: shared between the training forward, the KV-cache
// forward, generation and checkpoint loading.
#ifndef RLHF_MODEL_INTERNAL_H
#define RLHF_MODEL_INTERNAL_H

#include "base/base.h"
#include "nn/attn_cache.h"
#include "nn/nn.h"
#include "rlhf.h"

// allocates the parameter buffer (uninitialised values: zeros) for cfg
int model_create_empty(rlhf_model **out, const rlhf_config *cfg, rlhf_err *err);

#endif
