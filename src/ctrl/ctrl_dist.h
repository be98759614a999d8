// ctrl/ctrl_dist: `rlhf ctrl train` under MPI (build/rlhf-mpi, docs/mpi.md);
// included through ctrl_train_internal.h.
// No control algorithm is data-parallel yet: on more than one rank every one
// is refused before anything is loaded or written, so N ranks never run N
// independent copies that all write the same run directory (issue 17).
#ifndef RLHF_CTRL_CTRL_DIST_H
#define RLHF_CTRL_CTRL_DIST_H

#include "ctrl/ctrl_train.h"
#include "base/base.h"

// 0 on one process; on dist_size() > 1 ranks -1 with "ctrl train --algo X does
// not run on N MPI ranks yet ..." in err (X: --offline_algo's name when the
// offline phase runs another algorithm, else --algo's)
int ctrl_dist_check(const ctrl_train_config *c, rlhf_err *err);

#endif
