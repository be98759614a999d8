// cli/cmd_online: `rlhf grpo`, `rlhf rloo`, `rlhf ppo`, `rlhf online-dpo`,
// `rlhf brain`, `rlhf hc-rlhf`, `rlhf cgpo`, `rlhf gkd`, `rlhf xpo` and
// `rlhf nash-md` —
// one online RL trainer (train/online) with each method's defaults.
#ifndef RLHF_CLI_CMD_ONLINE_H
#define RLHF_CLI_CMD_ONLINE_H

int cmd_grpo(int argc, char **argv);
int cmd_rloo(int argc, char **argv);
int cmd_ppo(int argc, char **argv);
int cmd_online_dpo(int argc, char **argv);
int cmd_brain(int argc, char **argv);
int cmd_hc_rlhf(int argc, char **argv);
int cmd_cgpo(int argc, char **argv);
int cmd_gkd(int argc, char **argv);
int cmd_xpo(int argc, char **argv);
int cmd_nash_md(int argc, char **argv);

#endif
