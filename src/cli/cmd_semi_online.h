// cli/cmd_semi_online: `rlhf semi-online` — UI-S1's semi-online RL on expert
// trajectories (train/semi_online.h, docs/ui_s1.md).
#ifndef RLHF_CLI_CMD_SEMI_ONLINE_H
#define RLHF_CLI_CMD_SEMI_ONLINE_H

int cmd_semi_online(int argc, char **argv);

#endif
