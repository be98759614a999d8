// model/dtype: 16-bit (bf16) copies of a model's frozen block matrices, read
// by the forwards in place of the fp32 weights (--dtype bfloat16).
#ifndef RLHF_MODEL_DTYPE_H
#define RLHF_MODEL_DTYPE_H

#include "model/linear.h"
#include "rlhf.h"

// Makes bf16 copies (round to nearest even) of every block matrix that does not
// train (offset < n_frozen); -1 + err when nothing is frozen.
int model_to_bf16(rlhf_model *m, rlhf_err *err);
// 1 when the model's forwards read bf16 block weights.
int model_has_bf16(const rlhf_model *m);

// ---- called by model/linear.c only: 0 = not handled (no 16-bit copy), 1 = done ----
// out (N, out) = inp W16^T + b
int dtype_linear_forward(rlhf_model *m, int l, lin_site s, float *out, const float *inp,
                         const float *b, int N, int in, int o);
// dinp (N, in) += dout (N, out) W16
int dtype_linear_backward_input(rlhf_model *m, int l, lin_site s, float *dinp, const float *dout,
                                int N, int in, int o);

#endif
