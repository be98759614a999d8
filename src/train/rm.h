// train/rm: reward models — a scalar head on a trunk (from an SFT checkpoint
// or from scratch), Bradley-Terry loss -log sigmoid(r_chosen - r_rejected -
// margin) with an optional per-pair `margin` field and TRL's
// center_rewards_coefficient, eval accuracy; ensembles of K members on one
// trunk (K heads) or on K separate trunks (K runs, listed in ensemble.json);
// or (--objective pairwise) a generative pairwise judge, trained to name the
// chosen answer with the token " A" or " B" (reward/pairwise.h).
#ifndef RLHF_TRAIN_RM_H
#define RLHF_TRAIN_RM_H

#include "train/common.h"
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

#endif
