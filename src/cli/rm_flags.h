// cli/rm_flags: the flags of `rlhf rm`'s objectives that live in their own
// files (cli/cmd_rm_<objective>.c). Each adds its flag_defs at defs and returns
// how many (at most 16).
#ifndef RLHF_CLI_RM_FLAGS_H
#define RLHF_CLI_RM_FLAGS_H

#include "cli/flags.h"
#include "train/rm.h"

int rm_brme_flag_defs(flag_def *defs, rm_brme_options *o);
int rm_vpl_flag_defs(flag_def *defs, rm_vpl_options *o);

#endif
