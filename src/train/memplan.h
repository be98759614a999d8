// train/memplan: what a training run will hold in memory, worked out before
// it runs from the model as it will train (adapters attached, 16-bit copies
// made, activation checkpointing set) and the largest forward's shape.
// Printed by every trainer's startup line and by `rlhf info`.
//
// What is counted (bytes; MB = 1e6 bytes in the printed line):
//   weights      n_params * 4, plus 2 per float that has a bf16 copy (dtype.c
//                keeps the fp32 buffer beside the copies)
//   grads        4 per trainable float (the tail [n_frozen, n_params))
//   optimizer    8 per trainable float (AdamW's two moments)
//   activations  model_activation_bytes_ckpt at B x T with m->grad_ckpt, plus
//                what LoRA adapters keep per training forward ((N, r) per adapter)
//                and their shared scratch ((N, r + in) for the widest input)
//   reference    COPY: the reference's fp32 weights (the policy's without adapters)
//                plus one forward's activations; SHARED: the forward's activations;
//                NONE: 0. A reference only ever runs forwards, so its activations
//                are counted with checkpointing's layout (trainers set its grad_ckpt).
// Not counted: the tokenizer, the dataset, rollouts' KV caches, the process itself.
#ifndef RLHF_TRAIN_MEMPLAN_H
#define RLHF_TRAIN_MEMPLAN_H

#include <stdio.h>

#include "rlhf.h"

typedef enum {
    MEM_REF_NONE = 0,   // no reference model (sft, rm, simpo, ...)
    MEM_REF_COPY = 1,   // a second model of its own (weights + forward activations)
    MEM_REF_SHARED = 2, // the policy's base read in place (LoRA): forward activations only
} mem_ref_kind;

typedef struct {
    double weights;     // parameters as held: the fp32 buffer (less its released block
                        // matrices) plus any 16-bit copies
    double grads;       // the trainable floats' gradients
    double optimizer;   // AdamW's two moments of the trainable floats
    double activations; // one forward + backward at B x T (activation checkpointing aware)
    double reference;   // what the reference adds (see mem_ref_kind)
    double total;       // the sum
    int grad_ckpt;      // activations were counted with checkpointing
} mem_plan;

// The model as it will train, in numbers (what mem_plan_compute reads off a
// model; `rlhf info` fills it from a config alone, see mem_shape_from_config).
typedef struct {
    size_t n_params;         // floats of the parameter buffer (adapters included)
    size_t n_trainable;      // floats that train
    size_t n_bf16;           // floats that have a bf16 copy
    size_t ref_params;       // floats of a reference copy (n_params less the adapters)
    size_t lora_kept;        // floats per token the adapters keep per forward (sum of r)
    size_t lora_scratch;     // floats per token of the adapters' scratch (r + widest in)
    int grad_ckpt;
    size_t n_released;       // of those, floats whose fp32 pages were handed back (dtype.h):
                             // counted at 2 bytes (the copy) instead of 4 + 2
} mem_shape;

// Bytes for policy m trained on batches of B rows of T tokens with a reference of kind ref.
void mem_plan_compute(const rlhf_model *m, int B, int T, mem_ref_kind ref, mem_plan *p);
// The same from a config and a shape.
void mem_plan_from_shape(const rlhf_config *c, const mem_shape *s, int B, int T, mem_ref_kind ref,
                         mem_plan *p);
// The shape of a model with config c: full training (lora_r 0), or LoRA adapters
// of rank lora_r on targets (lora_target bits; 0 = PEFT's default for the
// architecture) with the base frozen and the heads training; bf16: the frozen
// matrices (blocks and the LM head) get bf16 copies (LoRA only, as model_to_bf16)
// and the block matrices' fp32 is released (the LM head's stays).
void mem_shape_from_config(const rlhf_config *c, int lora_r, unsigned targets, int bf16,
                           int grad_ckpt, mem_shape *s);
// One line: "<who>: memory plan: weights 498 MB, grads 498 MB, optimizer 995 MB,
// activations 1.2 GB (B=8, T=512), reference 0 B; total 3.2 GB"
void mem_plan_print(FILE *f, const char *who, const mem_plan *p, int B, int T);
// "498 MB", "1.2 GB", "0 B" into out
void mem_bytes_str(double bytes, char *out, size_t n);

#endif
