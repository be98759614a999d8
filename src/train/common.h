// train/common: what the training commands share — the settings every
// trainer takes (TRL's names), loading, splitting and tokenizing data,
// the optimizer and the step count, and the flag table for the CLI.
#ifndef RLHF_TRAIN_COMMON_H
#define RLHF_TRAIN_COMMON_H

#include "data/dataset.h"
#include "model/lora.h"
#include "rlhf.h"
#include "tok/tok.h"

typedef struct {
    const char *model;         // size name, checkpoint or run directory
    const char *data;          // JSONL(.gz) in a TRL format
    const char *eval_data;     // optional second file
    float eval_split;          // share of data held out when eval_data is absent
    const char *output_dir;
    const char *tokenizer;     // overrides the model's
    const char *chat_template; // for messages / conversational data
    int max_length, max_prompt_length;
    const char *truncation_mode; // keep_end | keep_start
    int add_bos;               // BOS before each prompt / text: 1, 0, or -1 the tokenizer's
                               // convention (tok_resolve_add_bos)
    int packing, skip_bad_lines;
    float learning_rate, warmup_ratio, weight_decay, max_grad_norm;
    const char *lr_scheduler_type; // constant | linear | cosine
    int num_train_epochs, max_steps, batch_size, gradient_accumulation_steps;
    int logging_steps, save_steps, eval_steps;
    int resume, quiet;
    int overwrite_output_dir;  // replace an earlier run in output_dir (else refused)
    const char *report_to;     // none (NULL too) | tensorboard; run_open reads config_json's copy
    uint64_t seed;
    const char *config_json;   // the flags as JSON, recorded in the run directory
    // LoRA and memory (TRL's names; docs/lora.md)
    int use_peft;              // train low-rank adapters on a frozen base
    lora_config lora;          // --lora_r, --lora_alpha, --lora_dropout, --use_rslora
                               // (lora.targets is resolved against the model's architecture)
    const char *lora_target_modules; // comma list of HF module names or all-linear; NULL: PEFT's default
    const char *base_model;    // the base of an adapter folder given as --model
    int gradient_checkpointing;// keep one activation per block, recompute in backward
    const char *dtype;         // float32 | bfloat16 (frozen weights in bf16; needs use_peft)
} train_config;

void train_default_config(train_config *c);
// Checks the LoRA / dtype settings once, at the flags' boundary (the CLI exits
// 2 on failure): -1 + err naming the flag (a module name no architecture has,
// r < 1, alpha <= 0, dropout outside [0, 1), an unknown dtype, bfloat16 without
// use_peft).
int train_check_config(const train_config *c, rlhf_err *err);
int parse_lr_schedule(const char *s, rlhf_lr_schedule *out, rlhf_err *err);
// Loads c->data (and c->eval_data or a c->eval_split share of it), checks the
// format is one of `allowed` (a bit mask of 1 << ds_format), tokenizes both.
int train_load_data(const train_config *c, const rlhf_tokenizer *tok, int max_len,
                    unsigned allowed, ds_dataset **train, ds_dataset **eval, rlhf_err *err);
// An AdamW configured from c for `total` steps.
rlhf_optim *train_make_optim(const train_config *c, size_t n_params, int total, rlhf_err *err);
// Optimizer steps: --max_steps, else num_train_epochs epochs of global
// micro-batches (train_micro_batches of train_global_batch) at
// gradient_accumulation_steps micro-batches per step; -1 + err when nothing to do.
int train_total_steps(const train_config *c, int units, rlhf_err *err);
// The same for `batch` units per micro-batch: the methods whose --batch_size is
// the global number of prompts per iteration on any number of ranks (online,
// bon, semi-online, vpl-policy: trainer_method.global_batch) pass c->batch_size.
int train_total_steps_of(const train_config *c, int units, int batch, rlhf_err *err);

// Data parallelism (base/dist.h, docs/mpi.md). --per_device_train_batch_size is
// per rank (TRL's meaning): a global micro-batch is batch_size x dist_size()
// units and the walk over an epoch goes in global micro-batches, each split over
// the ranks (dist_share). So a step's global batch is batch_size x ranks x
// gradient_accumulation_steps; the same global batch on N ranks is
// batch_size / N per rank. One process: batch_size.
int train_global_batch(const train_config *c);

// Global micro-batch g of a walk over `units` per epoch in batches of `batch`:
// its epoch, its first unit and its size. Every unit is visited once per epoch;
// an epoch's last micro-batch holds the remainder (no unit skipped, none repeated).
void train_micro_batch(int units, int batch, long g, int *epoch, int *first, int *n);
// Micro-batches in one epoch: ceil(units / batch).
long train_micro_batches(int units, int batch);
// Epochs done after `steps` optimizer steps (the "epoch" of metrics.jsonl).
double train_epoch_at(const train_config *c, int units, int steps);
// The same for `batch` units per micro-batch (as train_total_steps_of).
double train_epoch_at_of(const train_config *c, int units, int batch, int steps);
// This rank's share [*first, *first + *n) of global micro-batch g of the walk
// (train_micro_batch of train_global_batch, then dist_share); *global_n is the
// global micro-batch's size. *n may be 0 (a short last micro-batch of an epoch).
void train_micro_share(const train_config *c, int units, long g, int *epoch, int *first, int *n,
                       int *global_n);

// An epoch-shuffled walk over a dataset: the micro-batches of optimizer step
// `step` depend only on (seed, step), so --resume continues bit-for-bit.
typedef struct {
    const ds_dataset *ds;
    uint64_t seed;
    int *order, epoch;
} train_walk;
void train_walk_init(train_walk *w, const ds_dataset *ds, uint64_t seed);
void train_walk_free(train_walk *w);
// Fills mb[0 .. gradient_accumulation_steps) for `step` with this rank's share
// of each global micro-batch; *items = examples in all, over every rank (the
// count a step's mean divides by). An empty share is a batch with B = 0 and
// n_pairs = 0 (skip its compute, but join the step's collectives).
int train_step_batches(const train_config *c, train_walk *w, int step, ds_batch *mb, long *items,
                       rlhf_err *err);
// The examples of global micro-batch g (every rank's, in walk order) into ex
// (room for train_global_batch(c)); returns how many. Moves w to g's epoch.
int train_global_examples(const train_config *c, train_walk *w, long g, int *ex);

// c->max_length resolved against the model (0 or too long: max_seq_len).
int train_max_length(const train_config *c, const rlhf_model *m);
// Records --tokenizer in the model's config so checkpoints carry it.
void train_remember_tokenizer(const train_config *c, rlhf_model *m);

#endif
