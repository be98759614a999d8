// ctrl/ctrl_dist: see ctrl_dist.h.
#include "ctrl/ctrl_dist.h"

#include "base/dist.h"

int ctrl_dist_check(const ctrl_train_config *c, rlhf_err *err) {
    int n = dist_size();
    if (n <= 1) return 0;
    const char *algo = c->algo ? c->algo : "(none)";
    if (c->offline_algo && c->offline_algo[0] && c->offline_steps > 0)
        return rlhf_fail(err,
                         "ctrl train --algo %s (--offline_algo %s) does not run on %d MPI ranks "
                         "yet (docs/mpi.md lists what does); run it as one process",
                         algo, c->offline_algo, n);
    return rlhf_fail(err,
                     "ctrl train --algo %s does not run on %d MPI ranks yet (docs/mpi.md lists "
                     "what does); run it as one process",
                     algo, n);
}
