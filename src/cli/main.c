// rlhf: the command-line front end. The command table and the dispatcher are in
// the library (cli/command_table.c), so the Python binding runs the same code.
// build/rlhf-mpi is this file linked with MPI (base/dist.h): every rank runs it.
#include "base/dist.h"
#include "cli/commands.h"

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv)) return 1;
    int rc = rlhf_cli_main(argc, argv);
    dist_finalize();
    return rc;
}
