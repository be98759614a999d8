// train/run: what every training command shares — the run directory
// (config.json, metrics.jsonl, summary.json, checkpoints/), finding a model's
// tokenizer, and checkpoint naming.
#ifndef RLHF_TRAIN_RUN_H
#define RLHF_TRAIN_RUN_H

#include <stdio.h>

#include "rlhf.h"
#include "tok/tok.h"

typedef struct {
    char dir[2048];
    FILE *metrics;
} run_dir;

// Creates dir (and dir/checkpoints), writes config.json (the run's settings) and
// opens metrics.jsonl (appending when resuming, fresh otherwise).
int run_open(run_dir *r, const char *dir, const char *config_json, int resume, rlhf_err *err);
// Appends one JSON object (text) as a line to metrics.jsonl, flushed.
void run_log(run_dir *r, const char *json_line);
// Writes summary.json atomically.
int run_summary(run_dir *r, const char *json, rlhf_err *err);
void run_close(run_dir *r);
// dir/checkpoints/step-00000123 (or "final" when step < 0)
void run_checkpoint_path(const run_dir *r, int step, char *out, size_t n);
// The newest checkpoint of a run directory (final, else highest step) into out.
int run_latest_checkpoint(const char *dir, char *out, size_t n);

// The tokenizer for a model: the flag if given, else the model's own
// (cfg.tokenizer). Checks that its ids fit the model's vocabulary.
int model_tokenizer(const rlhf_model *m, const char *flag, rlhf_tokenizer **t, rlhf_err *err);
// Resolves a --model argument: a named size, a checkpoint directory, or a run
// directory (its newest checkpoint).
int model_load_any(const char *spec, uint64_t seed, rlhf_model **m, rlhf_err *err);

#endif
