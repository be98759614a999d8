// model/dtype: 16-bit (bf16) copies of a model's block matrices, read by the
// forwards in place of the fp32 weights (--dtype bfloat16).
//
// What is copied: each layer's attn.qkv, attn.out, mlp.up and mlp.down weights
// (biases and norms stay fp32), and the LM head (the embedding when tied), which
// the KV-cache forward's last gemm (generation and rollouts) and the training
// forward's fused log-prob head (logits and the hidden states' gradient; the
// head's own gradient, when it trains, has no copy) read. The products use
// fp32 accumulation (nn/gemm_bf16.c: AVX512_BF16 where the CPU has it, which
// also rounds the fp32 activations to bf16; a portable fallback elsewhere).
//
// Memory: once the copies exist, the fp32 pages of the copied block matrices are
// handed back to the system (madvise MADV_DONTNEED on the whole pages strictly
// inside each matrix; the pages at its edges, shared with neighbouring tensors,
// stay), so a 2-byte copy replaces a 4-byte weight. The LM head / embedding is never
// released (the embedding lookup reads fp32). A model that
// borrows its params (model_share_base) releases nothing; it reads the owner's
// copies. While released, those fp32 ranges read as zeros: nothing may read them
// but the forwards, which read the copies. Whenever the copies go away from the
// owner (dtype_free: model_merge_lora, model_to_bf16 again) they are first widened
// back into the fp32 ranges, exactly (bf16 -> fp32 is exact), so merging, export
// and checkpoints see the bf16-rounded base; model_bf16_restore does that and
// keeps the copies. Only dtype_discard (the buffer is freed next: model_free)
// skips it.
//
// The copies are made once. model_to_bf16 copies only frozen matrices (they never
// change); model_to_bf16_inference copies every matrix and is for commands that do
// not train (after it, an update to the fp32 weights is not seen by the forwards).
#ifndef RLHF_MODEL_DTYPE_H
#define RLHF_MODEL_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "model/linear.h"
#include "rlhf.h"

// Makes bf16 copies (round to nearest even) of every block matrix that does not
// train (entirely below n_frozen), and of the LM head when it is frozen too;
// -1 + err when nothing is frozen. Again on a model that has copies: redone (from
// the widened-back fp32). The copied block matrices' fp32 pages are released (above).
int model_to_bf16(rlhf_model *m, rlhf_err *err);
// Copies every block matrix and the LM head, frozen or not: for inference
// (rlhf generate --dtype bfloat16, bench). -1 + err on an empty model. Releases the
// block matrices' fp32 too: training the model afterwards needs dtype_free first.
int model_to_bf16_inference(rlhf_model *m, rlhf_err *err);
// 1 when the model's forwards read bf16 block weights.
int model_has_bf16(const rlhf_model *m);
// Bytes held by the bf16 copies (0 without); counted once however many models share them.
size_t model_bf16_bytes(const rlhf_model *m);
// Floats of the block matrices whose fp32 this model released (0 for a model
// that borrows its params, and after the copies were widened back).
size_t model_bf16_released(const rlhf_model *m);
// Bytes of whole pages actually handed back (page edges and failed madvise excluded).
size_t model_bf16_released_bytes(const rlhf_model *m);
// Widens the copies back into the released fp32 ranges (the bf16-rounded values);
// the copies stay and the forwards keep reading them. A no-op when nothing is released.
void model_bf16_restore(rlhf_model *m);
// Drops m's copies without widening them back: for model_free, whose params go
// next. (dtype_free, in model_internal.h, widens first.)
void dtype_discard(rlhf_model *m);
// The bf16 LM head (V, C), or NULL when the logits gemm reads fp32.
const uint16_t *dtype_lm_head(const rlhf_model *m);
// dst (a model that borrows src's params: model_share_base) reads src's bf16 copies
// too; they are reference-counted, so either model may be freed first. Drops
// whatever copies dst had. A no-op when src has none. (The copies outlive either
// model; src's params do not: dst runs no forward once src is freed or merged, and
// trainers free the reference first, see trainer_run.)
void model_share_bf16(rlhf_model *dst, const rlhf_model *src);

// ---- called by model/linear.c only: 0 = not handled (no 16-bit copy), 1 = done ----
// out (N, out) = inp W16^T + b
int dtype_linear_forward(rlhf_model *m, int l, lin_site s, float *out, const float *inp,
                         const float *b, int N, int in, int o);
// dinp (N, in) += dout (N, out) W16
int dtype_linear_backward_input(rlhf_model *m, int l, lin_site s, float *dinp, const float *dout,
                                int N, int in, int o);

#endif
