// cli/cmd_model: `rlhf info` (what a model file or folder holds, checked) and
// `rlhf export` (to HF safetensors or GGUF). argv excludes the command name;
// each returns the exit status (0 ok, 1 failure, 2 bad usage).
#ifndef RLHF_CLI_CMD_MODEL_H
#define RLHF_CLI_CMD_MODEL_H

int cmd_info(int argc, char **argv);
int cmd_export(int argc, char **argv);

#endif
