// train/rm_vpl: `rlhf rm --objective vpl` (the frame only: being built).
#include <string.h>

#include "train/rm.h"

void rm_vpl_default_options(rm_vpl_options *o) { memset(o, 0, sizeof *o); }

int rm_vpl_train(const rm_config *c, rlhf_err *err) {
    (void)c;
    return rlhf_fail(err, "--objective vpl: not built yet");
}
