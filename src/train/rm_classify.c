// train/rm_classify: `rlhf rm --objective classify` (the frame only: being built).
#include <string.h>

#include "train/rm.h"

void rm_classify_default_options(rm_classify_options *o) { memset(o, 0, sizeof *o); }

int rm_classify_train(const rm_config *c, rlhf_err *err) {
    (void)c;
    return rlhf_fail(err, "--objective classify: not built yet");
}
