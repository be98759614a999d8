// model/linear: the four projections of a transformer block, with what is
// attached to them. The training forward (model.c), its backward and the
// KV-cache forward (kvcache.c) call these instead of the nn kernels, so that
// LoRA adapters (lora.c) and 16-bit frozen weights (dtype.c) apply everywhere
// the model multiplies by a block's weight.
#ifndef RLHF_MODEL_LINEAR_H
#define RLHF_MODEL_LINEAR_H

#include "rlhf.h"

typedef enum {
    LIN_QKV = 0,      // attn.qkv:  C -> (NH + 2 NKV) HS
    LIN_ATTN_OUT = 1, // attn.out:  C -> C
    LIN_MLP_UP = 2,   // mlp.up:    C -> F (GPT2) or 2F = [gate; up] (LLAMA)
    LIN_MLP_DOWN = 3, // mlp.down:  F -> C
    LIN_N = 4
} lin_site;

// Input and output widths of a site.
void lin_dims(const rlhf_config *c, lin_site s, int *in, int *out);
// The base weight (out, in) and bias (out) or NULL of layer l's site s, and their
// gradients (NULL when frozen or absent).
const float *lin_weight(const rlhf_model *m, int l, lin_site s, const float **bias);
void lin_grads(rlhf_model *m, int l, lin_site s, float **dw, float **db);

// out (N, out) = inp (N, in) W^T + b, plus the site's adapters when enabled.
// train = 1 in the training forward (adapters keep what their backward needs and
// apply dropout); 0 in the KV-cache forward.
void model_linear_forward(rlhf_model *m, int l, lin_site s, float *out, const float *inp, int N,
                          int train);
// dout (N, out) -> dinp (N, in) +=, and += into the gradients of what trains
// (the base weight and bias unless frozen; the adapters). inp is the forward's input.
void model_linear_backward(rlhf_model *m, int l, lin_site s, float *dinp, const float *dout,
                           const float *inp, int N);

#endif
