// cli/cmd_bon: `rlhf bon` — best-of-n sampling as a data / evaluation tool,
// and RAFT / SuperHF training (--train), on train/bon.
#ifndef RLHF_CLI_CMD_BON_H
#define RLHF_CLI_CMD_BON_H

int cmd_bon(int argc, char **argv);

#endif
