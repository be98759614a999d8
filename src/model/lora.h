// model/lora: low-rank adapters (LoRA, Hu et al. 2021) on a block's
// projections, laid out as PEFT lays them out, so that adapters move between
// this engine and PEFT (src/model/peft.c reads and writes PEFT's files).
//
// A site's adapter adds scale * B (A x) to the projection's output, where A is
// (r, in), B is (out_slice, r), scale = alpha / r (alpha / sqrt(r) with
// use_rslora), and out_slice is the part of the (fused) output the adapter
// covers: our attn.qkv holds q, k and v rows and our Llama mlp.up holds
// [gate; up], so PEFT's q_proj / k_proj / v_proj / gate_proj / up_proj
// adapters are row slices of one of our matrices.
//
// Adapter tensors are ordinary entries of the model's table (so checkpoints,
// the optimizer and the grads see them), named
//     layers.<l>.<site>.lora_A   (r, in)
//     layers.<l>.<site>.lora_B   (out_slice, r)
// with <site> one of
//     attn.q  attn.k  attn.v     Llama q_proj k_proj v_proj: rows of attn.qkv
//     attn.qkv                   GPT-2 c_attn: all of attn.qkv
//     attn.out                   Llama o_proj, GPT-2 attn.c_proj
//     mlp.gate  mlp.up           Llama gate_proj (rows [0,F) of mlp.up), up_proj (rows [F,2F));
//                                GPT-2 c_fc is mlp.up (all of it)
//     mlp.down                   Llama down_proj, GPT-2 mlp.c_proj
// appended after every other tensor, layer by layer in the order above. Adding
// adapters freezes the base: m->n_frozen becomes the offset of the first
// trainable tensor, which is the first score/value head tensor if the model
// has heads (build_table keeps heads last), else the first adapter tensor. So
// heads train beside the adapters (PEFT's modules_to_save).
#ifndef RLHF_MODEL_LORA_H
#define RLHF_MODEL_LORA_H

#include <stdint.h>

#include "model/linear.h"
#include "rlhf.h"

typedef enum {
    LORA_Q = 1u << 0,    // q_proj (Llama)
    LORA_K = 1u << 1,    // k_proj (Llama)
    LORA_V = 1u << 2,    // v_proj (Llama)
    LORA_QKV = 1u << 3,  // c_attn (GPT-2)
    LORA_O = 1u << 4,    // o_proj (Llama), attn.c_proj (GPT-2)
    LORA_GATE = 1u << 5, // gate_proj (Llama)
    LORA_UP = 1u << 6,   // up_proj (Llama), c_fc (GPT-2)
    LORA_DOWN = 1u << 7, // down_proj (Llama), mlp.c_proj (GPT-2)
} lora_target;

typedef struct {
    int r;              // rank (TRL --lora_r; TRL's default 16)
    float alpha;        // scale = alpha / r (TRL --lora_alpha; default 32)
    float dropout;      // dropout on the adapter's input in training forwards (--lora_dropout; default 0.05)
    unsigned targets;   // lora_target bits
    int use_rslora;     // scale = alpha / sqrt(r)
} lora_config;

// TRL's defaults (r 16, alpha 32, dropout 0.05), targets 0 (= the architecture's default).
void lora_config_default(lora_config *lc);
// --lora_target_modules: a comma list of HF module names (q_proj, k_proj,
// v_proj, o_proj, gate_proj, up_proj, down_proj for Llama; c_attn, c_proj, c_fc
// for GPT-2; c_proj means both of GPT-2's, as PEFT's suffix match does) or
// "all-linear" (every projection of every block; never the LM head). NULL or
// "" = PEFT's default for the architecture (GPT-2: c_attn; Llama/Qwen2: q_proj,
// v_proj). -1 + err naming the module and the names this architecture has.
int lora_targets_parse(const char *list, rlhf_arch arch, unsigned *targets, rlhf_err *err);
// The HF module names of targets as a JSON-ready list for adapter_config.json
// ("target_modules"): writes up to max names into names[]; returns the count.
int lora_target_names(unsigned targets, rlhf_arch arch, const char **names, int max);

// Attaches adapters with lc to every layer: A ~ U(-1/sqrt(in), 1/sqrt(in))
// (PEFT's kaiming_uniform(a = sqrt 5)), seeded per tensor from (seed, name);
// B = 0, so the model's outputs are unchanged. Rebuilds the table and the
// parameter buffer (base values kept), frees grads, sets n_frozen. -1 + err for
// a bad config (r < 1, alpha <= 0, dropout outside [0,1), no target, a target
// the architecture lacks) or a model that already has adapters.
int model_add_lora(rlhf_model *m, const lora_config *lc, uint64_t seed, rlhf_err *err);
// The adapters' config, or NULL when the model has none.
const lora_config *model_lora(const rlhf_model *m);
// Adapters on (default) or off: off, every forward is the base model's (bit for
// bit), and the backward of a training forward run with them off gives them no
// gradient.
void model_lora_enable(rlhf_model *m, int on);
// Dropout in the training forward (model_forward): on with a seed for this
// step's masks; off (default) = no dropout. Training forward j after this call
// (j = 0, 1, ...: a step's micro-batches, its passes) draws with its own key, the
// seed itself for j = 0 and one mixed from (seed, j) after: each mask is a pure
// function of (that key, layer, site, element), so a recomputed forward
// (activation checkpointing) draws the same mask, and calling this again with the
// same seed repeats the masks from forward 0. The backward uses the masks of the
// forward it follows (not the current switch). The KV-cache forward never drops.
void model_lora_dropout(rlhf_model *m, int on, uint64_t seed);
// Dropout on or off without a new seed (the forwards' count goes on where it was);
// returns whether it was on. For scoring forwards inside a training step (no
// backward follows: old and reference log-probabilities), which run as at inference.
int model_lora_dropout_switch(rlhf_model *m, int on);
// Folds every adapter into its base weight (W[slice] += scale * B A), removes
// the adapter tensors, and makes the whole model trainable again (n_frozen 0,
// grads freed). For export (--merge_lora) and for sharing with tools.
int model_merge_lora(rlhf_model *m, rlhf_err *err);
// A model that reads src's base parameters in place (not copied, not freed:
// params_borrowed), with src's table minus the adapters and no adapters: the
// reference policy of a LoRA run ("the base with adapters disabled") without a
// second copy of the weights. It has its own activations, so its forwards do
// not disturb src's. src must outlive it and keep its buffer (no
// model_add_lora / model_merge_lora on src while it lives). Its heads are src's
// (read in place too), its 16-bit copies src's (model_share_bf16), its origin src's.
int model_share_base(const rlhf_model *src, rlhf_model **out, rlhf_err *err);

// ---- called by model/model.c and model/linear.c only ----
// model_forward's start: the next training forward's dropout key.
void lora_forward_begin(rlhf_model *m);
// out (N, out) += the site's adapters applied to inp (N, in); train: keep
// A x (N, r) per adapter for the backward and apply dropout when on.
void lora_forward_add(rlhf_model *m, int l, lin_site s, float *out, const float *inp, int N,
                      int train);
// dout (N, out): += into the adapters' grads and into dinp (N, in) when not NULL.
void lora_backward(rlhf_model *m, int l, lin_site s, float *dinp, const float *dout,
                   const float *inp, int N);

#endif
