// train/rm_brme: `rlhf rm --objective brme` (the frame only: being built).
#include <string.h>

#include "train/rm.h"

void rm_brme_default_options(rm_brme_options *o) { memset(o, 0, sizeof *o); }

int rm_brme_train(const rm_config *c, rlhf_err *err) {
    (void)c;
    return rlhf_fail(err, "--objective brme: not built yet");
}
