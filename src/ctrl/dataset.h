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
    char env[64];            // "" when the file does not say
    char level[32];          // random, medium, medium-replay, expert, medium-expert
    double ref_random_return, ref_expert_return;  // NAN when unknown
} ctrl_dataset_info;

int ctrl_dataset_load(const char *path, ctrl_transitions *t, ctrl_dataset_info *info,
                      rlhf_err *err);
// written atomically (a temp file renamed into place)
int ctrl_dataset_save(const char *path, const ctrl_transitions *t, const ctrl_dataset_info *info,
                      rlhf_err *err);
// 100 * (R - R_random) / (R_expert - R_random)
double ctrl_normalized_score(double ret, double ref_random, double ref_expert);

#endif
