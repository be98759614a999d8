// rlhf.h — the public C API of librlhf.
//
// What is public: this header and rlhf_base.h (errors, RNG), nothing else. A
// program built with -Iinclude alone against librlhf.a can make or load a
// model (model_load_any: named sizes, our checkpoints and run directories, HF
// folders, llama2.c files), run it forward and backward, train it with AdamW,
// generate from it, and save and load checkpoints (tests/public_api.c does).
// The tokenizers, datasets, algorithms (losses, advantage estimators),
// rewards and trainers are in librlhf.a too, but their headers (src/*/*.h) are
// internal: the `rlhf` command line (src/cli/) is a sibling of this API, not a
// thin user of it, and includes them, as the tests do. Their names may change
// without notice; the names here change only with the documentation.
//
// A model is a decoder-only transformer (GPT-2 or Llama family) whose parameters
// live in ONE float buffer and whose gradients live in another; a table of named
// tensors gives views into both. The model turns a batch of token sequences into
// per-token log-probs of given targets (and final hidden states, a scalar head
// per sequence, a value head per token), and back-propagates from gradients of
// those. Trainers and algorithms speak only log-probs; see docs/architecture.md.
#ifndef RLHF_H
#define RLHF_H

#include <stddef.h>
#include <stdint.h>

#include "rlhf_base.h"  // rlhf_err, rlhf_rng

// ------------------------------------------------------------------ config --
typedef enum { ARCH_GPT2 = 0, ARCH_LLAMA = 1 } rlhf_arch;

typedef struct {
    rlhf_arch arch;   // GPT2: LayerNorm, learned positions, GELU(tanh), biases, tied head.
                      // LLAMA: RMSNorm, RoPE, SwiGLU, no biases, GQA.
    int n_layer;
    int n_head;       // query heads
    int n_kv_head;    // key/value heads (divides n_head); GPT2: = n_head
    int n_embd;       // C
    int d_ff;         // F: MLP hidden width (GPT2: 4C)
    int vocab_size;   // V
    int max_seq_len;  // longest position (learned positions table size / RoPE table size)
    int qkv_bias;     // Qwen2-style q/k/v biases on a Llama model (GPT2 always has biases)
    int tied;         // LM head shares the token embedding
    float rope_theta; // LLAMA only
    float norm_eps;   // LayerNorm / RMSNorm epsilon
    int score_head;   // K scalar heads (K values per sequence, read at the last real token;
                      // K > 1: an ensemble of reward heads on one trunk); 0 = none
    int value_head;   // a per-token value head
    char tokenizer[512]; // "byte", or the path of the tokenizer the model was trained with
                         // ("" = unknown: commands then need --tokenizer)
} rlhf_config;

// Named sizes: "tiny" (~1M), "small" (~10M), "gpt2" (124M); llama variants
// "llama-tiny", "llama-small". Returns 0, or -1 with err set for an unknown name.
int config_from_name(rlhf_config *c, const char *name, rlhf_err *err);
// Fills defaults for the architecture (d_ff, n_kv_head, eps, theta, tied) where 0.
void config_fill_defaults(rlhf_config *c);
// Checks a config for consistency and range (heads dividing, every field within
// the limits that keep sizes from overflowing); -1 + a message naming the field.
int config_validate(const rlhf_config *c, rlhf_err *err);
// The number of parameters a model with config c has (as model_create builds
// it); -1 when the count overflows. Allocates nothing.
int config_n_params(const rlhf_config *c, size_t *n);
// JSON text of a config (malloc'd) and parsing back; `source` names the file in errors.
char *config_to_json(const rlhf_config *c);
int config_from_json(rlhf_config *c, const char *json, const char *source, rlhf_err *err);

// ------------------------------------------------------------- parameters --
#define RLHF_MAX_DIMS 4
typedef struct {
    char name[64];          // e.g. "layers.3.attn.qkv.weight"
    int ndim;
    int64_t shape[RLHF_MAX_DIMS];
    size_t offset;          // in floats, into the parameter (and gradient) buffer
    size_t numel;
    int decay;              // AdamW weight decay applies (matrices yes; norms, biases no)
} rlhf_tensor;

// Per-layer views into the buffer (NULL where the architecture has none).
typedef struct {
    float *attn_norm_w, *attn_norm_b;  // (C)
    float *qkv_w, *qkv_b;              // ((NH+2*NKV)*HS, C), (...)
    float *attn_out_w, *attn_out_b;    // (C, C), (C)
    float *mlp_norm_w, *mlp_norm_b;    // (C)
    float *mlp_up_w, *mlp_up_b;        // GPT2: (F, C); LLAMA: (2F, C) = [gate; up]
    float *mlp_down_w, *mlp_down_b;    // (C, F), (C)
} rlhf_layer;

typedef struct {
    float *wte;                        // (V, C) token embedding
    float *wpe;                        // (maxT, C) learned positions (GPT2)
    rlhf_layer *layers;                // n_layer
    float *final_norm_w, *final_norm_b;// (C)
    float *lm_head;                    // (V, C); = wte when tied
    float *score_w, *score_b;          // (K, C), (K)
    float *value_w, *value_b;          // (C), (1)
} rlhf_views;

// --------------------------------------------------------------- the batch --
// Sequences of different lengths are padded (left or right); mask says which
// positions are real. Positions count real tokens only (left padding shifts
// nothing), as HF does with position_ids = cumsum(mask) - 1.
// Packed rows (TRL's padding-free packing) also give segment: the document id of
// each token. A token then attends only to earlier real tokens of its own
// document, and positions restart at 0 where the id changes, so each document
// gets exactly the outputs it would get alone. Ids are >= 0 and never decrease
// along a row's real tokens (padding's id is ignored). NULL = one document per
// row, at no extra cost.
typedef struct {
    int B, T;
    const int *tokens;      // (B,T)
    const int *targets;     // (B,T): token whose log-prob to return at each position; <0 = none
    const uint8_t *mask;    // (B,T): 1 real, 0 padding; NULL = all real
    const int *segment;     // (B,T): document id of each token in packed rows; NULL = unpacked
} rlhf_batch;

typedef struct rlhf_model rlhf_model;

struct rlhf_model {
    rlhf_config cfg;
    int n_tensors;
    rlhf_tensor *tensors;   // the table: names, shapes, offsets
    size_t n_params;
    float *params;          // ONE buffer
    float *grads;           // ONE buffer (allocated on first backward / model_alloc_grads)
    rlhf_views w;           // views into params
    rlhf_views g;           // views into grads (valid once grads exist)
    float *rope_cos, *rope_sin; // (maxT, HS/2) for LLAMA

    // activations of the last forward (one buffer, grown as needed)
    int B, T;               // shape of the last forward
    size_t act_capacity;
    float *acts;
    void *act_views;        // internal
    float *bwd;             // backward scratch (gradients of activations), grown as needed
    size_t bwd_capacity;
    // outputs of the last forward (views into acts)
    float *hidden;          // (B,T,C) output of the final norm
    float *logp;            // (B,T) log-prob of targets (0 where target < 0)
    float *entropy;         // (B,T) entropy of the next-token distribution (if requested)
    float *score;           // (B, K) scalar heads at each row's last real token (K = score_head)
    float *values;          // (B,T) value head (if value_head)
    int want_entropy;       // set to 1 before forward to compute entropy too
    float logit_temperature; // forward's LM head: log-probs and entropy of softmax(logits / this)
                            // (0 or 1: none; set before forward, backward follows it). The
                            // online trainer sets --temperature so training matches sampling;
                            // generation (KV cache) ignores it.

    // What is trained. The trainable parameters are the tail [n_frozen, n_params)
    // of the one buffer: grads (and an optimizer's moments) hold only that tail,
    // and the views in g are NULL for frozen tensors. 0 = everything trains.
    // LoRA (src/model/lora.h) freezes the base: the table then ends with the
    // score/value heads and the adapters, which are what trains.
    size_t n_frozen;
    int params_borrowed;    // params belong to another model (model_share_base): not freed
    int grad_ckpt;          // activation checkpointing: keep each block's input, recompute in
                            // backward (set before model_forward; gradients are bit-identical)
    void *lora;             // internal (src/model/lora.c): the adapters; NULL = none
    void *w16;              // internal (src/model/dtype.c): 16-bit copies of frozen matrices; NULL = none
    // Where the weights came from, as model_load_any resolved it: the real path of
    // the checkpoint / HF folder / .bin, or a named size ("tiny", ...) with the
    // seed that made it (origin_seed). "" = made in memory. A LoRA checkpoint
    // records it as its base (adapter_config.json base_model_name_or_path).
    // model_with_heads and model_share_base copy it.
    char origin[1024];
    uint64_t origin_seed;
    // Input vectors in place of tokens (decision transformers over a language model,
    // LaMo: src/ctrl/lamo.c). Set input_embeds (B,T,C) before model_forward: each real
    // position's input is that vector (+ the learned position embedding on GPT-2) instead
    // of wte[token]; the batch's tokens are then not read (may be NULL), targets and mask
    // are. wte gets no gradient from such a forward. When input_embeds_grad (B,T,C) is set
    // too, model_backward writes into it (=, not +=) the loss's gradient with respect to
    // input_embeds (0 at padding). NULL (the default) = tokens, as before.
    const float *input_embeds;
    float *input_embeds_grad;
    // Dropout in a training forward (GPT-2's embd_pdrop, resid_pdrop and attn_pdrop, as
    // LaMo's GPT-2 config sets them: src/ctrl/lamo.c): embd_dropout on the embedding output
    // (input vectors + positions), resid_dropout on each block's attention and MLP
    // output projections before their residual add, attn_dropout on each block's attention
    // probabilities (after the softmax, before they weight the values). Set before
    // model_forward; 0 (the default) = none, so evaluation forwards stay deterministic
    // (the KV-cache forward never drops). The masks are a function of (dropout_seed,
    // layer, site, element), recorded by the forward, so the backward (and a
    // checkpointed recompute) applies the same ones.
    float embd_dropout, resid_dropout, attn_dropout;
    uint64_t dropout_seed;
    // The global index of the batch's first token when a data-parallel rank runs a
    // share of a batch's rows (0 on one process): the masks of token t are those of
    // token dropout_token0 + t, so the ranks together draw one process's masks (the
    // LoRA adapters' dropout too).
    uint64_t dropout_token0;
    // Positions. positions_padded: a token's position is its index in the row, padding
    // included (HF GPT-2's default position_ids), instead of the count of real tokens
    // before it (0, the default). no_learned_positions: add no learned position
    // embedding (wpe) at all, as the decision transformers of Chen et al. and LaMo do
    // (their GPT2Model never adds wpe); RoPE (Llama) still rotates by the positions.
    int positions_padded, no_learned_positions;
};

// Creates a model with seeded GPT-2-style init (N(0, 0.02); residual projections
// scaled by 1/sqrt(2*n_layer); norms 1, biases 0). -1 + err if cfg is invalid.
int model_create(rlhf_model **out, const rlhf_config *cfg, uint64_t seed, rlhf_err *err);
void model_free(rlhf_model *m);
// A copy of src with score_head K outputs and/or a value head: the trunk (and
// any head of the same shape) is copied, new heads get the seeded init.
int model_with_heads(const rlhf_model *src, int score_head, int value_head, uint64_t seed,
                     rlhf_model **out, rlhf_err *err);
const rlhf_tensor *model_find_tensor(const rlhf_model *m, const char *name);
void model_alloc_grads(rlhf_model *m);
void model_zero_grad(rlhf_model *m);
// Floats that train: n_params - n_frozen (the size of grads and of an optimizer's moments).
size_t model_n_trainable(const rlhf_model *m);

// Forward over a batch. Writes m->logp, m->hidden, m->score, m->values.
// Keeps what backward needs. -1 + err on bad input (token out of range, T > max).
int model_forward(rlhf_model *m, const rlhf_batch *b, rlhf_err *err);
// Backward from the gradients of the last forward's outputs, accumulating into
// m->grads. Each argument may be NULL: dlogp (B,T), dhidden (B,T,C), dscore (B,K),
// dvalues (B,T).
void model_backward(rlhf_model *m, const float *dlogp, const float *dhidden, const float *dscore,
                    const float *dvalues);
// The same with dentropy (B,T): the gradient of the loss with respect to m->entropy,
// the entropy of each position's next-token distribution (softmax of the logits /
// logit_temperature; positions with a target only). NULL: model_backward.
void model_backward_entropy(rlhf_model *m, const float *dlogp, const float *dentropy,
                            const float *dhidden, const float *dscore, const float *dvalues);
// Full logits (B*T, V) of the last forward, for tests and tools (costly).
void model_logits(rlhf_model *m, float *out);
// Bytes of activation memory a forward+backward of this shape uses (documented peak).
size_t model_activation_bytes(const rlhf_config *c, int B, int T);
// The same with activation checkpointing on (grad_ckpt 1: m->grad_ckpt set before
// the forward) or off (0: = model_activation_bytes). Checkpointing keeps one
// (B,T,C) stream per layer and one layer's activations, recomputed in backward.
size_t model_activation_bytes_ckpt(const rlhf_config *c, int B, int T, int grad_ckpt);
// What a forward alone keeps (no backward scratch): a model that only scores
// (a reference policy) holds this much.
size_t model_forward_activation_bytes(const rlhf_config *c, int B, int T, int grad_ckpt);

// -------------------------------------------------------------- KV cache --
typedef struct {
    int B, maxT, len;       // len: slots used so far (same for every row; rows are left-padded)
    int n_layer, NKV, HS;
    float *k, *v;           // (L, B, NKV, maxT, HS)
    uint8_t *mask;          // (B, maxT) 1 real slot
    int *pos;               // (B) next position of each row (count of real tokens so far)
    float *scratch;         // inference activations
    size_t scratch_cap;
} rlhf_kv_cache;

rlhf_kv_cache *kv_cache_create(const rlhf_config *c, int B, int maxT);
void kv_cache_free(rlhf_kv_cache *kv);
void kv_cache_reset(rlhf_kv_cache *kv);
// Appends n slots to every row: tokens (B,n), mask (B,n) (NULL = all real), and
// writes the logits at the last of the n slots of each row into logits (B,V)
// (logits may be NULL). -1 + err if the cache is full or a token is out of range.
int model_forward_cached(rlhf_model *m, rlhf_kv_cache *kv, const int *tokens, const uint8_t *mask,
                         int n, float *logits, rlhf_err *err);

// -------------------------------------------------------------- generation --
typedef struct {
    int max_new_tokens;
    float temperature;      // 0 = greedy
    int top_k;              // 0 = off
    float top_p;            // 1 = off
    int eos_id;             // -1 = none
    int pad_id;             // written after a row stops
    int stop_ids[2];        // stop_ids[0 .. n_stop_ids) end a row as eos_id does
    int n_stop_ids;         // (e.g. llama2.c's BOS: tok_stop_id); 0 = none
} rlhf_gen_opts;

typedef struct {
    int B, n_new;           // n_new = max_new_tokens
    int *tokens;            // (B, n_new) sampled tokens; pad_id after stop
    float *logp;            // (B, n_new) log-prob of each sampled token under the
                            // distribution it was sampled from (after temperature/top-k/top-p)
    int *length;            // (B) tokens generated (including the EOS if any)
    uint8_t *ended_eos;     // (B) 1 if the row stopped at EOS (or a stop id), 0 if truncated
} rlhf_gen_out;

// prompts: B arrays of token ids with lengths; left-padded internally.
int generate(rlhf_model *m, const int *const *prompts, const int *prompt_len, int B,
             const rlhf_gen_opts *o, rlhf_rng *rng, rlhf_gen_out *out, rlhf_err *err);
void gen_out_free(rlhf_gen_out *o);
// Samples one token from logits (V) (modified in place); returns the token and
// writes its log-prob under the sampling distribution.
int sample_token(float *logits, int V, const rlhf_gen_opts *o, rlhf_rng *rng, float *logp);

// -------------------------------------------------------------- optimizer --
typedef enum { LR_CONSTANT = 0, LR_COSINE = 1, LR_LINEAR = 2 } rlhf_lr_schedule;

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float max_grad_norm;    // <= 0: no clipping
    rlhf_lr_schedule schedule;
    int warmup_steps, total_steps;
    float min_lr_ratio;     // cosine floor as a fraction of lr
} rlhf_optim_config;

typedef struct {
    rlhf_optim_config cfg;
    size_t n;
    float *m, *v;           // ONE buffer each, same layout as the trainable params; with N > 1
                            // MPI ranks (ZeRO-1) only this rank's shard [lo, hi) =
                            // dist_share(n, rank, N): hi - lo floats (docs/mpi_scaling.md)
    int step;               // updates done
} rlhf_optim;

void optim_default_config(rlhf_optim_config *c);
rlhf_optim *optim_create(const rlhf_optim_config *c, size_t n_params);
void optim_free(rlhf_optim *o);
float lr_at_step(const rlhf_optim_config *c, int step); // step is 0-based
// Clips the global grad norm (if configured), applies AdamW with no decay on
// tensors whose decay flag is 0, increments step. Returns the pre-clip grad norm.
// Only the trainable tail [n_frozen, n_params) is updated; o->n must equal
// model_n_trainable(m). With N > 1 MPI ranks: gradients reduced over ranks, each
// rank updates its shard of the parameters, then the parameters are all-gathered
// (collective: every rank calls it). A gradient whose norm is not finite (NaN
// or inf) changes nothing (weights, moments, step): the norm is returned and
// optim_nonfinite_steps() counts it, so a trainer can stop with its weights
// intact (rlhf's trainers do).
float optim_step(rlhf_optim *o, rlhf_model *m);
// How many optim_step calls in this process met a non-finite gradient.
long optim_nonfinite_steps(void);

// ------------------------------------------------------------ checkpoints --
// A checkpoint is a directory: config.json, model.safetensors, and optionally
// optimizer.safetensors (moments + step + RNG state). A model with LoRA
// adapters is saved as a PEFT adapter folder instead (adapter_config.json +
// adapter_model.safetensors: the adapters and heads only, its base named by
// base_model_name_or_path; docs/peft.md), with the optimizer's moments of the
// trainable tail. The whole folder is
// written under a temporary name (DIR.tmp.<pid>), fsync'ed, then renamed to DIR
// in one step (an existing DIR is replaced: renamed away, the new one renamed
// in, the old one deleted), so a good checkpoint is never replaced by a
// half-written one. Saving refuses non-finite weights, and refuses to replace a
// folder that holds anything but checkpoint files.
int checkpoint_save(const char *dir, const rlhf_model *m, const rlhf_optim *o,
                    const rlhf_rng *rng, rlhf_err *err);
// The same, with a trainer's own files (written by extra into the temporary
// folder before the rename) made part of the checkpoint.
typedef int (*checkpoint_extra_fn)(const char *tmp_dir, void *ctx, rlhf_err *err);
int checkpoint_save_with(const char *dir, const rlhf_model *m, const rlhf_optim *o,
                         const rlhf_rng *rng, checkpoint_extra_fn extra, void *ctx,
                         rlhf_err *err);
// 0 when dir holds a complete checkpoint: config.json and model.safetensors (and
// optimizer.safetensors when need_optim, and every path of the NULL-terminated
// list extra) present, with valid safetensors headers and JSON objects; else -1
// and err naming what is missing or damaged.
int checkpoint_check(const char *dir, int need_optim, const char *const *extra, rlhf_err *err);
// Loads a checkpoint directory (or a bare .safetensors file with config.json
// beside it). -1 + err naming the file and tensor on any inconsistency.
int checkpoint_load(const char *dir, rlhf_model **m, rlhf_err *err);
// Loads optimizer.safetensors into o (sized and configured by the caller) and the
// RNG state. Refuses non-finite moments, negative second moments, a "step" that
// is not an int, and a step beyond o->cfg.total_steps (when set), naming the
// file and tensor.
int checkpoint_load_optim(const char *dir, rlhf_optim *o, rlhf_rng *rng, rlhf_err *err);
// The optimizer step a checkpoint holds (optimizer.safetensors' "step"), into
// *step; -1 + err when the file or a valid step is missing.
int checkpoint_optim_step(const char *dir, int *step, rlhf_err *err);
// A run directory's checkpoints: the N of every RUN/checkpoints/step-N folder,
// newest first (malloc'd; NULL with *n = 0 when there are none).
int *checkpoint_steps(const char *run_dir, int *n);
// The newest complete checkpoint of a run directory (checkpoint_check with
// need_optim 0: config.json and model.safetensors) into out; -1 when none.
int checkpoint_latest(const char *run_dir, char *out, size_t n);

// ---------------------------------------------------------------- loading --
// The one loader behind every --model: an HF folder (or a .safetensors file in
// one) or a llama2.c .bin file (see src/model/hf.h); a run directory (its
// checkpoints/final, else its newest complete checkpoint); a named size
// ("tiny", "gpt2", ...: a fresh model with the seeded init); one of our
// checkpoints (a folder, or a model.safetensors with config.json beside it); a
// PEFT LoRA adapter folder (its base loaded, the adapters attached).
// seed is used by named sizes only. -1 + err saying what spec is not.
int model_load_any(const char *spec, uint64_t seed, rlhf_model **m, rlhf_err *err);
// Where model_load_any finds a model on disk: a run directory (a folder that
// is neither an HF folder nor holds model.safetensors) becomes its
// checkpoints/final, else its newest complete checkpoint; any other spec is
// copied as it is. -1 + err for a folder with neither.
int model_resolve_path(const char *spec, char *out, size_t n, rlhf_err *err);

#endif
