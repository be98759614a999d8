// ctrl/dataset: transition datasets in D4RL's HDF5 layout, read and written
// with libhdf5: datasets observations (N, obs), actions (N, act), rewards (N),
// terminals (N), timeouts (N), next_observations (N, obs), optional costs (N)
// and infos/* (ignored on read). Root attributes (ours; absent in D4RL's own
// files) record where the data came from and the reference returns for
// normalised scores: env, level, ref_random_return, ref_expert_return.
// A malformed file — a missing key, lengths that disagree, a wrong rank or
// width, a NaN or Inf — is an error naming the file, the dataset and the row.
#ifndef RLHF_CTRL_DATASET_H
#define RLHF_CTRL_DATASET_H

#include "ctrl/buffer.h"

typedef struct {
    char env[64];   // "" when the file does not say
    char level[32]; // random, medium, medium-replay, expert, medium-expert
    double ref_random_return, ref_expert_return; // NAN when unknown
} ctrl_dataset_info;

//
// Load: any float or integer element type is converted to float32 (D4RL's
// float64 too; a value beyond float32 range is refused like an Inf); flags may
// be bool (h5py's enum), integers or floats, nonzero = set. Chunked and
// gzip-compressed datasets are read like contiguous ones. t gets cap = the
// file's rows, next = n % cap; info (may be NULL) gets "" / NAN for absent
// attributes. Without next_observations (older D4RL files) row i's successor
// is observations[i+1], as D4RL's qlearning_dataset (which CORL loads) does;
// rows with no successor — the last row of an episode that ended by timeout,
// and the file's last row unless terminal — are dropped, as qlearning_dataset
// and d3rlpy do, and the kept row before a dropped timeout row is marked
// timeout so the episode boundary survives (qlearning_dataset loses it; CORL
// then finds it by comparing observations). A row with both flags counts as
// terminal; a terminal row's next_obs is observations[i+1] (zeros for the
// file's last row), masked by done anyway. With next_observations every row
// is kept as it is. HDF5's own error printing is switched off process-wide.
int ctrl_dataset_load(const char *path, ctrl_transitions *t, ctrl_dataset_info *info,
                      rlhf_err *err);
// written atomically (a temp file renamed into place: the file is built in
// memory with HDF5's core driver and published by io/file's
// atomic_write_file). Rows are written oldest first (a wrapped ring is
// unrolled); float data as float32, terminals/timeouts as h5py's bool (enum
// over int8, FALSE/TRUE), costs when t has them; mc_return is not saved. The
// root attributes are written only where known (env/level non-empty, refs not
// NAN), strings as variable-length UTF-8, refs as float64. ~8 s for 1M rows of
// hopper's size (17 obs, 6 act) on a loaded 2-core machine, half of it fsync.
int ctrl_dataset_save(const char *path, const ctrl_transitions *t, const ctrl_dataset_info *info,
                      rlhf_err *err);
// 100 * (R - R_random) / (R_expert - R_random)
double ctrl_normalized_score(double ret, double ref_random, double ref_expert);

#endif
