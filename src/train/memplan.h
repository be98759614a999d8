// train/memplan: what a training run will hold in memory, worked out before
// it runs from the model as it will train (adapters attached, 16-bit copies
// made, activation checkpointing set) and the largest forward's shape.
// Printed by every trainer's startup line and by `rlhf info`.
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
    double weights;     // parameters as held: the fp32 buffer plus any 16-bit copies
    double grads;       // the trainable floats' gradients
    double optimizer;   // AdamW's two moments of the trainable floats
    double activations; // one forward + backward at B x T (activation checkpointing aware)
    double reference;   // what the reference adds (see mem_ref_kind)
    double total;       // the sum
} mem_plan;

// Bytes for policy m trained on batches of B rows of T tokens with a reference of kind ref.
void mem_plan_compute(const rlhf_model *m, int B, int T, mem_ref_kind ref, mem_plan *p);
// One line: "<who>: memory plan: weights 498 MB, grads 498 MB, optimizer 995 MB,
// activations 1.2 GB (B=8, T=512), reference 0 B; total 3.2 GB"
void mem_plan_print(FILE *f, const char *who, const mem_plan *p, int B, int T);

#endif
