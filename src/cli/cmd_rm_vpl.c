// cli/cmd_rm_vpl: the flags of `rlhf rm --objective vpl` (the frame only: being built).
#include "cli/rm_flags.h"

int rm_vpl_flag_defs(flag_def *defs, rm_vpl_options *o) {
    (void)defs, (void)o;
    return 0;
}
