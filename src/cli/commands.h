// cli/commands: one function per `rlhf <command>`; argv excludes the command.
// Each returns the process exit status (0 ok, 1 failure, 2 bad usage).
#ifndef RLHF_CLI_COMMANDS_H
#define RLHF_CLI_COMMANDS_H

int cmd_bench(int argc, char **argv);
int cmd_engine_demo(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_vpl_policy(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_dpo(int argc, char **argv);
int cmd_pairs(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_kto(int argc, char **argv);
int cmd_srpo(int argc, char **argv);
int cmd_ctrl(int argc, char **argv);
int cmd_ctrl_prefs(int argc, char **argv); // rlhf ctrl prefs (cmd_ctrl_cpl.c)
int cmd_ctrl_neorl_data(int argc, char **argv); // rlhf ctrl neorl-data (cmd_ctrl_neorl.c)
int cmd_study(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_serve(int argc, char **argv);

// `rlhf ARGV...` with argv[0] the program name, as main() receives it: runs the
// named command (cli/command_table.c) and returns its exit status.
int rlhf_cli_main(int argc, char **argv);

#endif
