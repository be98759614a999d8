// rlhf: the command-line front end. The command table and the dispatcher are in
// the library (cli/command_table.c), so the Python binding runs the same code.
// build/rlhf-mpi is this file linked with MPI (base/dist.h): every rank runs it.
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/dist.h"
#include "cli/commands.h"

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv)) return 1;
    int rc = rlhf_cli_main(argc, argv);
    // Output sent to a file that could not take it all (a full disk, a file-size
    // limit): without this the command exits 0 with its output cut short
    errno = 0;
    int flush_failed = fflush(stdout) != 0, e = errno;
    if (rc == 0 && (flush_failed || ferror(stdout))) {
        fprintf(stderr, "rlhf %s: writing the standard output failed (%s); it is incomplete\n",
                argc > 1 ? argv[1] : "", e ? strerror(e) : "a write failed: is the disk full?");
        rc = 1;
    }
    // Under mpirun a failure on one rank must end the others, which may wait in
    // a collective: MPI_Abort (the command printed its error already; a training
    // error ended the job earlier, in trainer_run, with its rank's message).
    if (rc != 0 && dist_size() > 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "rlhf %s exited with status %d (its error is above)",
                 argc > 1 ? argv[1] : "", rc);
        dist_abort(rc, msg);
    }
    dist_finalize();
    return rc;
}
