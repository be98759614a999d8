// cli/train_flags: the flags shared by sft, rm, dpo and the online trainers.
#ifndef RLHF_CLI_TRAIN_FLAGS_H
#define RLHF_CLI_TRAIN_FLAGS_H

#include "cli/flags.h"
#include "train/common.h"

// Groups of shared flags a command may have no use for (TRAIN_FLAGS_*).
enum {
    TRAIN_FLAGS_EVAL = 1 << 0,         // --eval_data, --eval_split, --eval_steps
    TRAIN_FLAGS_PACKING = 1 << 1,      // --packing
    TRAIN_FLAGS_ACCUMULATION = 1 << 2, // --gradient_accumulation_steps
    TRAIN_FLAGS_MAX_LENGTH = 1 << 3,   // --max_length
};

// Which shared flags a command takes and what some of them mean there (help
// texts; NULL: the shared one), e.g. an online command's step is an iteration.
typedef struct {
    unsigned omit; // TRAIN_FLAGS_* groups left out
    const char *data, *batch_size, *max_steps, *save_steps, *logging_steps;
} train_flags_use;

// Writes the shared flag definitions into out (room for at least 48) and
// returns how many; the caller appends its own and a {NULL} terminator.
int train_flag_defs(flag_def *out, train_config *c);
// The same, as `use` says.
int train_flag_defs_for(flag_def *out, train_config *c, const train_flags_use *use);

// A command checks the shared values after parsing with train_check_config
// (train/common.h) and exits 2 when it fails.
#endif
