// ctrl/ctrl_dist: see ctrl_dist.h.
#include "ctrl/ctrl_dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "ctrl/agent.h"

// "bc, td3, ..." of the registry's data-parallel algorithms
static void parallel_names(char *buf, size_t n) {
    char all[256];
    snprintf(all, sizeof all, "%s", ctrl_algo_names());
    buf[0] = 0;
    for (char *s = strtok(all, ", "); s; s = strtok(NULL, ", ")) {
        const ctrl_algo *a = ctrl_algo_find(s);
        size_t k = strlen(buf);
        if (a && a->data_parallel) snprintf(buf + k, n - k, "%s%s", k ? ", " : "", s);
    }
}

int ctrl_dist_check(const ctrl_train_config *c, rlhf_err *err) {
    int n = dist_size();
    if (n <= 1) return 0;
    const char *algo = c->algo ? c->algo : "(none)";
    const ctrl_algo *on = c->algo ? ctrl_algo_find(c->algo) : NULL;
    int two = c->offline_algo && c->offline_algo[0] && c->offline_steps > 0;
    const ctrl_algo *off = two ? ctrl_algo_find(c->offline_algo) : on;
    char names[256];
    parallel_names(names, sizeof names);
    if (two && !(off && off->data_parallel))
        return rlhf_fail(err,
                         "ctrl train --algo %s (--offline_algo %s) does not run on %d MPI ranks "
                         "yet: on N ranks both phases need one of %s (docs/mpi.md); run it as "
                         "one process",
                         algo, c->offline_algo, n, names);
    if (!(on && on->data_parallel))
        return rlhf_fail(err,
                         "ctrl train --algo %s does not run on %d MPI ranks yet (data-parallel: "
                         "%s; docs/mpi.md); run it as one process",
                         algo, n, names);
    int online_rows = c->online_batch_size > 0 ? c->online_batch_size : c->batch_size;
    if (c->batch_size < n || (c->online_steps > 0 && online_rows < n))
        return rlhf_fail(err,
                         "--%s %d is less than the %d MPI ranks: each rank takes a share of every "
                         "batch's rows (--batch_size is the global batch)",
                         c->batch_size < n ? "batch_size" : "online_batch_size",
                         c->batch_size < n ? c->batch_size : online_rows, n);
    return 0;
}

int ctrl_dist_writer(void) { return dist_rank() == 0; }

int ctrl_dist_signal(int sig) {
    if (dist_size() == 1) return sig;
    double s = sig;
    dist_allreduce_max_f64(&s, 1);
    return (int)s;
}

void ctrl_dist_eval_result(int *rc, double *mean, double *std) {
    if (dist_size() == 1) return;
    double v[3] = {*rc, *mean, *std};
    dist_bcast(v, sizeof v, 0);
    *rc = (int)v[0];
    *mean = v[1];
    *std = v[2];
}

void ctrl_dist_prepare_result(int *rc, char *resume_from, size_t n, rlhf_err *err) {
    if (dist_size() == 1) return;
    rlhf_err e;
    memset(&e, 0, sizeof e);
    if (err) e = *err;
    dist_bcast(rc, sizeof *rc, 0);
    dist_bcast(resume_from, n, 0);
    dist_bcast(&e, sizeof e, 0);
    if (err) *err = e;
}
