// cli/cmd_sft: `rlhf sft` — flags (TRL's names) to sft_config.
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/train_flags.h"
#include "train/sft.h"

int cmd_sft(int argc, char **argv) {
    sft_config c;
    sft_default_config(&c);
    c.model = "tiny";
    flag_def defs[64];
    int n = train_flag_defs(defs, &c);
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "sft",
                        "Supervised fine-tuning: next-token loss on completion tokens only\n"
                        "(assistant tokens for messages; every token for text).\n"
                        "example: rlhf sft --model tiny --data runs/data/sft.jsonl --output_dir runs/sft --max_steps 300",
                        &err);
    if (r == 1) return 0;
    if (r < 0 || train_check_config(&c, &err)) {
        fprintf(stderr, "rlhf sft: %s\n", err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.config_json = cfg;
    int rc = sft_train(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf sft: %s\n", err.msg);
        return 1;
    }
    return 0;
}
