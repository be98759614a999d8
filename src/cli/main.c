// rlhf: the command-line front end. The command table and the dispatcher are in
// the library (cli/command_table.c), so the Python binding runs the same code.
#include "cli/commands.h"

int main(int argc, char **argv) { return rlhf_cli_main(argc, argv); }
