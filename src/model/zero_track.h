// model/zero_track: the ZeRO-1 optimizers alive in this process (issue 17,
// docs/mpi_scaling.md). train/optim.c registers each optimizer it creates when
// there are N > 1 MPI ranks; checkpoint_save_with (model/checkpoint.c) gathers
// the moment shards of all of them to rank 0 when a save starts, so that a save
// nested in a trainer's extra files (a PPO critic's, on rank 0 alone) finds its
// full moments without another collective. Every rank creates the same
// optimizers in the same order, so the gathers match.
#ifndef RLHF_MODEL_ZERO_TRACK_H
#define RLHF_MODEL_ZERO_TRACK_H

#include "rlhf.h"

void zero_track(const rlhf_optim *o);    // after optim_create (N > 1 ranks)
void zero_untrack(const rlhf_optim *o);  // before optim_free

#endif
