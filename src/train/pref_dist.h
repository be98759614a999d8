// train/pref_dist: a preference loss on a batch split over MPI ranks, for the
// losses that read the whole batch at once (PREF_NEED_WHOLE_BATCH: sft's NLL
// per token of the batch, cpo's and orpo's sft term, AOT's sorts). Such a loss
// is not a mean of per-example terms, so the ranks cannot each compute it on
// their share. Instead every rank gathers the whole batch's per-row inputs (a
// few numbers a row, and the per-token log-probs when they are given: far less
// than a forward), computes the loss on it exactly as one process does on the
// whole batch, and keeps the gradients of its own rows. With one process it is
// pref_loss.
#ifndef RLHF_TRAIN_PREF_DIST_H
#define RLHF_TRAIN_PREF_DIST_H

#include "algo/pref.h"

// mine: this rank's rows (mine->n, 0 for an empty share), in the order of the
// whole batch: rank 0's rows first, then rank 1's, ... (dist_share's order).
// Every rank must call it, an empty share too, with the same inputs present
// (non-NULL pointers in the same fields; an empty share's point at anything).
// out: the gradients of this rank's rows ADDED into out's arrays as pref_loss
// does (per token at mine's token layout when the sets were given per token),
// reward_* of this rank's rows, and out->m the whole batch's metrics (the same
// on every rank). SRPO's revisions and VPO's calibration samples are refused
// (no loss that reads them reads the whole batch). Returns 0, or -1 with err,
// on every rank alike (the loss runs on the same numbers everywhere).
int pref_loss_gathered(const pref_loss_list *l, const pref_options *o, const pref_batch *mine,
                       pref_out *out, rlhf_err *err);

#endif
