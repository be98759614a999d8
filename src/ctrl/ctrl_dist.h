// ctrl/ctrl_dist: `rlhf ctrl train` under MPI (build/rlhf-mpi, docs/mpi.md,
// "Control"); included through ctrl_train_internal.h.
// The algorithms whose table says data_parallel (docs/mpi.md lists them) run
// on N ranks: every rank draws the same batches and noise from the one seed,
// updates on its share of the rows and sums the gradients (algo_common's
// ctrl_share_*), steps its own copy of the environment in the online phase
// (the same actions from the same weights, so the same transitions), and rank
// 0 alone evaluates and writes the run folder. Every other algorithm is
// refused on > 1 rank before anything is loaded or written.
#ifndef RLHF_CTRL_CTRL_DIST_H
#define RLHF_CTRL_CTRL_DIST_H

#include "ctrl/ctrl_train.h"
#include "base/base.h"

// 0 on one process; on dist_size() > 1 ranks 0 when every phase's algorithm
// is data-parallel and each batch has at least one row per rank, else -1 with
// "ctrl train --algo X does not run on N MPI ranks yet ..." (X: --offline_algo's
// name when the offline phase runs another algorithm) or the batch's flag
int ctrl_dist_check(const ctrl_train_config *c, rlhf_err *err);

// 1 on the rank that writes files and evaluates (rank 0; one process: 1)
int ctrl_dist_writer(void);
// the largest signal number any rank caught (sig: this rank's; one process: sig)
int ctrl_dist_signal(int sig);
// rank 0's evaluation (rc, mean, std) on every rank
void ctrl_dist_eval_result(int *rc, double *mean, double *std);
// rank 0's outcome of preparing the run folder (rc, the checkpoint to resume
// from, its error) on every rank
void ctrl_dist_prepare_result(int *rc, char *resume_from, size_t n, rlhf_err *err);

#endif
