// cli/cmd_serve: `rlhf serve` (placeholder until src/serve/ lands).
#include <stdio.h>

#include "cli/commands.h"

int cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "rlhf serve: not built yet\n");
    return 1;
}
