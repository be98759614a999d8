// train/srpo: SRPO (Choi et al. 2024, "Self-Improving Robust Preference
// Optimization") on preference data. One model is trained jointly as the
// generator pi(y|x) and as the reviser pi(y'|x, y): every pair (x, y_w, y_l)
// gives the generator's log-probs of y_w and y_l and four revision log-probs
// (y_l into y_w, y_l into y_l, y_w into y_w, y_w into y_l; data/dataset_rev.h
// lays the revision sequences out), each under the policy and under a frozen
// reference (the starting model, or --ref_model), and algo/pref's "srpo" loss
// turns them into d(loss)/d(log-prob). docs/srpo.md.
#ifndef RLHF_TRAIN_SRPO_H
#define RLHF_TRAIN_SRPO_H

#include "algo/pref.h"
#include "data/dataset.h"
#include "rlhf.h"
#include "train/common.h"

typedef struct {
    train_config base;
    pref_options opt;            // beta, srpo_alpha (the loss's declared options)
    const char *ref_model;       // NULL: the starting model
    const char *revision_prompt; // the instruction, unless a line has "revision_prompt"
    float revision_nll_coef;     // weight of the NLL of y_w as a revision (0: SRPO alone)
} srpo_config;

void srpo_default_config(srpo_config *c);
int srpo_train(const srpo_config *c, rlhf_err *err);

// ------------------------------------------ one batch, for the trainer and tests --
// A batch of n pairs of a revision dataset (rev_dataset_build, tokenized) has
// 6n rows: chosen completions in rows 0..3n-1, rejected in 3n..6n-1, each block
// of three holding the views REV_GENERATE, REV_GIVEN_REJECTED, REV_GIVEN_CHOSEN
// for the n pairs in turn. So row v*n + j is y_w under view v of pair j, and
// row 3n + v*n + j is y_l.
int srpo_make_batch(const ds_dataset *rev, const int *pairs, int n, ds_batch *b, rlhf_err *err);

// Buffers of srpo_batch_loss, reused across calls (zero-initialise; srpo_work_free).
typedef struct {
    float *pol, *ref, *grad, *dlogp;
    int *len;
    size_t cap_rows, cap_tok;
    // MPI ranks (srpo.c, srpo_step): the batch is this rank's share of a micro-batch
    // of n_global pairs whose revision rows hold rev_len tokens in all; the NLL is
    // over rev_len and weighted as n_global pairs. 0: the batch is the whole one.
    int n_global;
    double rev_len;
} srpo_work;
void srpo_work_free(srpo_work *w);

// What one batch adds to a step's metrics (sums over its pairs).
typedef struct {
    pref_metrics m;          // the loss's own, each weighted by the pairs
    double improve_rejected; // beta * (r(w|l) - r(l|l)), the loss's target 1/2
    double improve_chosen;   // beta * (r(w|w) - r(l|w)), target 1/2
    double revision_nll;     // the NLL per token of y_w as a revision (of y_l and of y_w)
    long pairs;
} srpo_sums;

// Forward of the policy and the reference over b, the loss, and (scale > 0) the
// policy's backward with d(loss)/d(log-prob) * scale (scale: the batch's share of
// the step's pairs). The loss is l's plus nll_coef times the NLL per token of
// y_w as the revision of y_l and of y_w (rows n..3n-1): -sum logp / sum len over
// those 2n rows, as the "sft" loss takes it on the generator's chosen. After it
// w->pol and w->ref hold each row's summed completion log-probs. Adds to *sums.
int srpo_batch_loss(rlhf_model *policy, rlhf_model *ref, const pref_loss_list *l,
                    const pref_options *o, double nll_coef, const ds_batch *b, double scale,
                    srpo_work *w, srpo_sums *sums, rlhf_err *err);

#endif
