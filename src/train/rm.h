// train/rm: reward models — a scalar head on a trunk (from an SFT checkpoint
// or from scratch), Bradley-Terry loss -log sigmoid(r_chosen - r_rejected -
// margin) with an optional per-pair `margin` field and TRL's
// center_rewards_coefficient, eval accuracy; ensembles of K members on one
// trunk (K heads) or on K separate trunks (K runs, listed in ensemble.json);
// or (--objective pairwise) a generative pairwise judge, trained to name the
// chosen answer with the token " A" or " B" (reward/pairwise.h).
#ifndef RLHF_TRAIN_RM_H
#define RLHF_TRAIN_RM_H

#include <cjson/cJSON.h>

#include "train/common.h"
#include "train/trainer.h"
#include "train/rm_brme.h"
#include "train/rm_classify.h"
#include "train/rm_vpl.h"

// Where the K members of an ensemble live: K score heads on one trunk, or K
// separate models (K runs in output_dir/member-k, listed in ensemble.json).
typedef enum { RM_TRUNKS_SHARED, RM_TRUNKS_SEPARATE } rm_trunks;

// What the model is trained to do (--objective).
typedef enum {
    RM_OBJ_BRADLEY_TERRY = 0, // a scalar score head, pairs (above)
    RM_OBJ_PAIRWISE,          // a generative pairwise judge (reward/pairwise.h)
    RM_OBJ_CLASSIFY,          // a text classifier on {"text","label"} rows (train/rm_classify.h)
    RM_OBJ_BRME,              // a Bayesian reward-model ensemble: heads of (mean, sigma) (train/rm_brme.h)
    RM_OBJ_VPL,               // variational preference learning: a user-conditioned RM (train/rm_vpl.h)
} rm_objective;

// "bradley_terry", "pairwise", "classify", "brme", "vpl"; -1 + err otherwise.
int rm_objective_from_name(const char *name, rm_objective *out, rlhf_err *err);

typedef struct rm_config {
    train_config base;
    rm_objective objective;
    float center_rewards_coefficient;
    int ensemble_size;           // K members
    rm_trunks ensemble_trunks;
    const char *judge_template;  // pairwise: its judging template ({prompt}, {a}, {b}); NULL: the default
    rm_classify_options classify; // --objective classify
    rm_brme_options brme;         // --objective brme
    rm_vpl_options vpl;           // --objective vpl
} rm_config;

void rm_default_config(rm_config *c);
// "shared" or "separate" (--ensemble_trunks); -1 + err otherwise.
int rm_trunks_from_name(const char *name, rm_trunks *out, rlhf_err *err);
int rm_train(const rm_config *c, rlhf_err *err);

// ------------------------------------- what the objectives' trainers share --
// (defined in train/rm.c)

// The policy's score head gets `outputs` outputs (fresh, seeded from --seed;
// kept when it has that many already).
int rm_set_score_head(trainer *t, int outputs, rlhf_err *err);
// Loads the pairs (train and optional eval split), sets t->units and t->plan_B,
// starts the walk over the pairs and allocates the step's micro-batches.
int rm_pairs_setup(trainer *t, ds_dataset **train, ds_dataset **eval, train_walk *walk,
                   ds_batch **mb, rlhf_err *err);
// the margins of a batch's pairs (0 where a pair has none): margins (n)
void rm_batch_margins(const ds_dataset *data, const ds_batch *b, double *margins);

// A log line's window: per-step means of named values ("loss" and "accuracy"
// first), summed since the last log line, and the last step's learning rate
// and gradient norm.
#define RM_WINDOW_MAX 6
typedef struct {
    int n;                               // values per step
    const char *name[RM_WINDOW_MAX];
    double sum[RM_WINDOW_MAX];
    int steps;
    float lr, grad_norm;
} rm_window;
// The end of an optimizer step, after its backward: a non-finite loss
// (values[0]) stops the run (-1 + err: checkpoints already written are kept);
// else the optimizer step, the step's n values (means over its rows) added to
// the window, the progress text (every value) and t->step_tokens = ntok.
int rm_step_end(trainer *t, rm_window *w, int step, int ntok, int n, const char *const *names,
                const double *values, rlhf_err *err);
// The log line's epoch, the window's means, learning_rate and grad_norm; empties it.
void rm_window_log(trainer *t, rm_window *w, cJSON *j);

#endif
