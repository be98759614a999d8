// base/dist: the processes of a data-parallel run. Built into build/rlhf-mpi
// (make links it when Debian's libopenmpi-dev is installed; dist.c compiled
// with -DRLHF_HAVE_MPI, everything else the same objects) it is MPI; in
// build/rlhf it is one process: rank 0 of 1, every collective a no-op, so the
// single-process program is unchanged (docs/mpi.md).
//
// Conventions for the trainers (train/trainer.h's data_parallel):
//   * every rank runs the same command with the same seed, so the model's
//     initial weights, the data order and the schedule are the same on every
//     rank; a rank takes its share of each global batch (dist_share);
//   * a rank's gradient is its share's part of the global batch's loss (each
//     term divided by the global count, not the rank's), so the sum over ranks
//     (dist_allreduce_sum_f32 in optim_step) is the one-process gradient;
//   * rank 0 alone writes the run directory, metrics, samples and checkpoints;
//   * an error on any rank ends the job (dist_abort) with that rank's message.
#ifndef RLHF_BASE_DIST_H
#define RLHF_BASE_DIST_H

#include <stddef.h>

// MPI_Init when built with MPI (called by main before anything else); returns 0
// or -1 with a message on stderr. Without MPI: nothing.
int dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);  // 0 .. dist_size()-1
int dist_size(void);  // 1 without MPI or under a plain (non-mpirun) start
int dist_is_mpi(void);  // 1 when this binary was built with MPI

// the share of n items (0..n-1) that this rank takes: [*begin, *end), in rank
// order, sizes differing by at most one
void dist_share(long n, int rank, int size, long *begin, long *end);

// element-wise sums over all ranks, in place (every rank gets the result)
void dist_allreduce_sum_f32(float *x, long n);
void dist_allreduce_sum_f64(double *x, long n);
void dist_allreduce_max_f64(double *x, long n);
// root's bytes to every rank
void dist_bcast(void *buf, size_t bytes, int root);
// each rank's `count` floats, concatenated in rank order on every rank
// (counts[r] floats from rank r; displs computed from counts). mine may be
// all + (this rank's offset): then it is done in place.
void dist_allgatherv_f32(const float *mine, long count, float *all, const long *counts);
// element-wise sum over ranks of x (the sum of counts[] floats on every rank):
// rank r gets the sum of its part, counts[r] floats at offset counts[0] + ... +
// counts[r-1], in place in x; the rest of x is left undefined (ZeRO-1: with
// dist_allgatherv_f32 after it, one all-reduce's traffic). One process: nothing.
void dist_reduce_scatterv_sum_f32(float *x, const long *counts);
void dist_barrier(void);
// ends every rank of the job: prints "rank R: msg" on stderr and aborts
// (MPI_Abort); without MPI, exit(code)
void dist_abort(int code, const char *msg) __attribute__((noreturn));

#endif
