// train/run: what every training command shares — the run directory
// (config.json, metrics.jsonl, summary.json, checkpoints/, and tensorboard/
// with --report_to tensorboard) and checkpoint naming.
#ifndef RLHF_TRAIN_RUN_H
#define RLHF_TRAIN_RUN_H

#include <stdio.h>

#include "io/tfevents.h"
#include "model/load.h"
#include "rlhf.h"
#include "tok/tok.h"
#include "train/common.h"

typedef struct {
    char dir[2048];
    FILE *metrics;
    tfevents *tb; // dir/tensorboard/ event file (--report_to tensorboard), or NULL
    int write_errno;     // the first failed write of a log (0: none), see run_check
    char write_file[32]; // its file's name in dir
} run_dir;

// --report_to (TRL's flag): a comma list of where metrics go besides
// metrics.jsonl: "none" (NULL or "" too) or "tensorboard" ("all": every
// integration there is, here tensorboard). Sets *tensorboard (may be NULL);
// anything else is refused naming --report_to.
int run_report_to(const char *list, int *tensorboard, rlhf_err *err);

// Before a training run loads anything: --report_to must be known (run_report_to),
// --output_dir must be given and must not
// hold the --model it starts from; stale *.tmp.* leftovers of interrupted
// writes are removed; an earlier run in --output_dir (config.json,
// metrics.jsonl or checkpoints/) is refused unless c->resume (continue it) or
// c->overwrite_output_dir (then its files are deleted). With c->resume,
// resume_from gets the newest *complete* checkpoint (see checkpoint_check:
// config.json, model.safetensors, optimizer.safetensors and the trainer's
// `extra` files, NULL-terminated, may be NULL), or "" when there is none (the
// run then starts from --model); the incomplete ones skipped are named on
// stderr. checkpoints/final counts as the newest when its optimizer step is at
// least the newest step checkpoint's (a finished run goes on from it); a final
// that cannot be resumed with no step checkpoint beside it is refused, nothing
// changed. (The control trainer, whose final checkpoint is not resumable,
// refuses a finished run with run_resume_finished.)
int run_prepare(const train_config *c, const char *const *extra, char *resume_from, size_t n,
                rlhf_err *err);
// --resume found no complete step checkpoint in dir: -1 + err when dir holds a
// finished run (checkpoints/final), nothing changed; 0 when there is nothing
// there to lose (the run then starts afresh).
int run_resume_finished(const char *dir, rlhf_err *err);
// On MPI ranks (base/dist.h): run_prepare on rank 0 alone (it may delete an
// earlier run), and every rank gets its outcome (resume_from, or the error).
// One process: run_prepare.
int run_prepare_ranks(const train_config *c, const char *const *extra, char *resume_from,
                      size_t n, rlhf_err *err);
// Creates dir (and dir/checkpoints), writes config.json (the run's settings) and
// opens metrics.jsonl: fresh when resume_step < 0; otherwise appending, after
// dropping the lines of metrics.jsonl and samples.jsonl whose "step" is past
// resume_step (the ones the resumed run writes again) or that are torn. When
// config_json (the flags as JSON: every trainer passes them here) has
// "report_to" naming tensorboard, run_enable_tensorboard follows.
int run_open(run_dir *r, const char *dir, const char *config_json, int resume_step, rlhf_err *err);
// One process at a time writes a run folder: an flock on DIR/.rlhf.lock (the
// holder's pid inside), taken by run_prepare when DIR exists and by run_open
// when it makes it, released by run_close or when the process ends. A folder
// another process holds is refused, naming it and the pid; this process may
// take its own folders again.
int run_lock(const char *dir, rlhf_err *err);
// The first file of an earlier run in dir (config.json, metrics.jsonl or
// checkpoints), or NULL: what makes run_prepare refuse the folder.
const char *run_found(const char *dir);
// Starts a new TensorBoard event file in dir/tensorboard/ (after run_open).
int run_enable_tensorboard(run_dir *r, rlhf_err *err);
// Appends one JSON object (text) as a line to metrics.jsonl, flushed. With
// TensorBoard on, a line with a "step" also becomes scalars at that step, one
// per numeric field but "step" (tag: the key; in a nested object
// "parent/child"), flushed; a failed event write is named on stderr and ends
// the TensorBoard output, not the run.
void run_log(run_dir *r, const char *json_line);
// A failed write of metrics.jsonl (run_log), or of another log of the run
// passed to run_note_write after writing to it (samples.jsonl), is kept: no
// more lines are written to metrics.jsonl, and run_check turns it into the
// error that stops the run (the trainers call it every step), naming the file
// and the reason, so a full disk does not go on training with its logs lost.
void run_note_write(run_dir *r, FILE *f, const char *name);
int run_check(const run_dir *r, rlhf_err *err);
// Opens dir/name to append (or to write afresh) as another log of the run; a
// failure is kept as a failed write (run_check stops the run) and gives NULL.
FILE *run_open_log(run_dir *r, const char *name, int append);
// Writes summary.json atomically.
int run_summary(run_dir *r, const char *json, rlhf_err *err);
void run_close(run_dir *r);
// dir/checkpoints/step-00000123 (or "final" when step < 0)
void run_checkpoint_path(const run_dir *r, int step, char *out, size_t n);

// model_load_any (rlhf.h) and model_tokenizer (model/load.h), which every
// trainer calls, live in the model layer: src/model/load.c.

#endif
