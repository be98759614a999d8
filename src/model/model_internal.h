// Internal to src/model: shared between the training forward, the KV-cache
// forward, generation and checkpoint loading.
#ifndef RLHF_MODEL_INTERNAL_H
#define RLHF_MODEL_INTERNAL_H

#include "base/base.h"
#include "nn/attn_cache.h"
#include "nn/nn.h"
#include "rlhf.h"

// (re)points m->w at params and, when grads exist, m->g at grads (trainable
// tail only: NULL views for frozen tensors). Call after the table or a buffer changes.
void model_set_views(rlhf_model *m);
// release what src/model/lora.c and src/model/dtype.c attached (model_free calls them)
void lora_free(rlhf_model *m);
void dtype_free(rlhf_model *m);

// allocates the parameter buffer (uninitialised values: zeros) for cfg
int model_create_empty(rlhf_model **out, const rlhf_config *cfg, rlhf_err *err);

#endif
