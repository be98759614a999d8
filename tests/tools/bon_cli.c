// tests/tools/bon_cli: `rlhf bon` as its own binary (bon_cli ARGS == rlhf bon
// ARGS), for tests/bon_test.py on builds whose rlhf does not list bon.
#include "cli/cmd_bon.h"

int main(int argc, char **argv) { return cmd_bon(argc - 1, argv + 1); }
