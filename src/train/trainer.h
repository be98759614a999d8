// train/trainer: the one training skeleton every method runs on. It owns what
// every trainer shares — the run directory (config.json, metrics.jsonl,
// samples.jsonl, summary.json, checkpoints/), --resume, the policy and its
// tokenizer, the optimizer and its schedule, the step loop with periodic
// log / eval / save, the progress bar, a clean stop on error or on SIGINT /
// SIGTERM (a checkpoint of the last finished step is written, so --resume goes
// on from there) — and a method provides a table of functions:
//
//   init      validate options before anything is loaded; may set t->name and
//             t->extra (files a checkpoint of this method holds besides the
//             model's and optimizer's, checked by --resume)
//   policy    after the policy is loaded: change it (add a score or value head)
//   setup     after the tokenizer: load data, references, buffers; set
//             t->units (units per epoch: the skeleton counts steps from the
//             epochs, as train_total_steps) or t->total (steps) and
//             t->optim_steps (optimizer steps in all, the schedule's length)
//   resume    after the optimizer state of t->resume_from is loaded: restore
//             extra state and set t->step (default: the optimizer's step)
//   step      one step (an optimizer step, or an iteration of rollout → score
//             → update for online methods); may write t->progress and
//             t->step_tokens for the progress bar
//   log       add the metrics since the last log line to j (it holds "step",
//             which t->step equals)
//   eval      (optional) add eval metrics to j at --eval_steps and at the end;
//             a line is written when it added anything
//   save      (optional) write extra state into a checkpoint's temp folder
//   accept    (optional) before the final checkpoint: 0 keeps the model, 1 refuses
//             it (err says why: HC-RLHF's failed safety test) — no final/ is
//             written, summary.json has "model": null and "refused": the reason,
//             and trainer_run returns 1; -1 is an error
//   finish    (optional) add to summary.json and print the closing line
//   free      release the method's state (always called)
//
// The order of calls is fixed (init, run_prepare, load, policy, adapters,
// tokenizer, setup, memory plan, optimizer, resume, run_open, steps, final
// save, eval, summary), so a method's numbers depend only on its own functions.
//
// LoRA (--use_peft, docs/lora.md) is the skeleton's: after policy (heads added)
// it attaches adapters (model_add_lora, seeded from --seed), so the optimizer
// and the grads hold only what trains (heads and adapters); on --resume the
// checkpoint's adapters must match the --lora_* flags. Adapter dropout is on
// during each step (a mask stream of (--seed, step)) and off for eval.
// --dtype bfloat16 then makes 16-bit copies of the frozen weights and
// --gradient_checkpointing sets m->grad_ckpt. A method that rewrites its
// reference from the policy's weights refuses --use_peft in init.
#ifndef RLHF_TRAIN_TRAINER_H
#define RLHF_TRAIN_TRAINER_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "rlhf.h"
#include "train/common.h"
#include "train/memplan.h"
#include "train/run.h"
#include "tok/tok.h"

typedef struct trainer trainer;

typedef struct {
    const char *name;          // progress label and summary "command" (t->name may override)
    int writes_samples;        // open samples.jsonl (appending on --resume) as t->samples
    int data_parallel;         // 1: the method shards its batches over MPI ranks
    int global_batch;          // 1: --batch_size is the global number of prompts per
                               // iteration (online, bon), else each rank's micro-batch
                               // (base/dist.h); 0: trainer_run refuses > 1 rank
    int (*init)(trainer *t, rlhf_err *err);
    int (*policy)(trainer *t, rlhf_err *err);
    int (*setup)(trainer *t, rlhf_err *err);
    int (*resume)(trainer *t, rlhf_err *err);
    int (*step)(trainer *t, int step, rlhf_err *err);
    void (*log)(trainer *t, cJSON *j);
    int (*eval)(trainer *t, cJSON *j, rlhf_err *err);
    int (*save)(trainer *t, const char *tmp_dir, rlhf_err *err);
    int (*accept)(trainer *t, cJSON *summary, rlhf_err *err);
    void (*finish)(trainer *t, cJSON *summary, const char *final_path);
    void (*free)(trainer *t);
} trainer_method;

struct trainer {
    const train_config *c;
    const trainer_method *method;
    void *self;                // the method's state
    const char *name;          // run name: method->name unless init sets another
    const char *const *extra;  // NULL-terminated checkpoint files the method adds (or NULL)
    rlhf_model *m;             // the model being trained
    rlhf_tokenizer *tok;
    rlhf_optim *o;
    rlhf_rng rng;              // the run's stream, saved with each checkpoint
    run_dir run;
    FILE *samples;             // samples.jsonl (writes_samples)
    char resume_from[4400];    // the checkpoint resumed from, or ""
    int units;                 // units per epoch (offline methods)
    int total;                 // steps of the run
    long optim_steps;          // optimizer steps in all (0: total)
    int step;                  // steps done
    int max_len;               // --max_length resolved against the model
    double t_start;
    char progress[160];        // the step's progress-bar text
    double step_tokens;        // the step's tokens (progress-bar rate)
    int plan_B, plan_T;        // setup: the largest forward's rows and tokens, for the
                               // memory plan (0: --per_device_train_batch_size x max_len)
    mem_ref_kind ref_kind;     // what trainer_load_ref loaded (the memory plan's reference)
};

// Runs a method: 0 when it finished (final checkpoint and summary.json
// written), 1 when it finished but accept refused the model (summary.json
// written, no final checkpoint; err says why), -1 + err otherwise (checkpoints
// written before are kept).
int trainer_run(const train_config *c, const trainer_method *method, void *self, rlhf_err *err);

// Appends j (consumed) as a line of metrics.jsonl.
void trainer_log_json(trainer *t, cJSON *j);
// Epochs done after `steps` steps, for offline methods (train_epoch_at).
double trainer_epoch(const trainer *t, int steps);
// Loads a reference model (path, else the starting --model) and checks it can
// score the policy's tokens: same vocabulary, and with same_shape the same
// parameter count (references that the policy's weights are copied into; a
// LoRA policy's count without its adapters). With adapters on the policy and
// no path, the reference is the policy's base read in place (model_share_base:
// the base with adapters off, no second copy); it must be freed before the
// policy, and nothing may write its parameters.
int trainer_load_ref(trainer *t, const char *path, int same_shape, rlhf_model **ref,
                     rlhf_err *err);
// 1 when the policy trains LoRA adapters (its base is frozen and shared with
// the reference).
int trainer_lora(const trainer *t);

#endif
