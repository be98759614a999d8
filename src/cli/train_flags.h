// cli/train_flags: the flags shared by sft, rm, dpo and the online trainers.
#ifndef RLHF_CLI_TRAIN_FLAGS_H
#define RLHF_CLI_TRAIN_FLAGS_H

#include "cli/flags.h"
#include "train/common.h"

// Writes the shared flag definitions into out (room for at least 40) and
// returns how many; the caller appends its own and a {NULL} terminator.
int train_flag_defs(flag_def *out, train_config *c);

#endif
