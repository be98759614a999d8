// cli/cmd_rm_brme: the flags of `rlhf rm --objective brme` (the frame only: being built).
#include "cli/rm_flags.h"

int rm_brme_flag_defs(flag_def *defs, rm_brme_options *o) {
    (void)defs, (void)o;
    return 0;
}
