// cli/cmd_vpl_policy: `rlhf vpl-policy` — a policy conditioned on the user's
// VPL latent z (train/vpl_policy.h): training, or --generate for one user.
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/train_flags.h"
#include "train/vpl_policy.h"

int cmd_vpl_policy(int argc, char **argv);

int cmd_vpl_policy(int argc, char **argv) {
    vpl_policy_config c;
    vpl_policy_default_config(&c);
    c.base.model = "tiny";
    flag_def defs[96];
    train_flags_use use = {
        .omit = TRAIN_FLAGS_PACKING | TRAIN_FLAGS_ACCUMULATION,
        .data = "the users' labelled pairs: prompt/chosen/rejected rows with a \"user\" field "
                "(e.g. rlhf data --task users: prefs.jsonl); a user's first K pairs are its "
                "context, the prompts of its other pairs are the ones the policy answers",
        .batch_size = "users per iteration (one of each user's prompts, --num_generations samples)",
        .max_steps = "iterations (rollout -> the users' VPL rewards -> one GRPO step); default 200",
    };
    int n = train_flag_defs_for(defs, &c.base, &use);
    defs[n++] = (flag_def){"vpl_run", FLAG_STR, &c.vpl_run,
                           "the VPL reward model: a run directory of rlhf rm --objective vpl"};
    defs[n++] = (flag_def){"vpl_condition", FLAG_STR, &c.condition,
                           "z: the policy reads the user's latent before the prompt (\"z:\" + one "
                           "letter per coordinate + newline); none: it does not (one policy for all "
                           "users, the baseline)"};
    defs[n++] = (flag_def){"vpl_z_levels", FLAG_INT, &c.z_levels,
                           "letters each coordinate of z in [-1, 1] is quantised to", 2, 26};
    defs[n++] = (flag_def){"num_generations", FLAG_INT, &c.num_generations,
                           "samples per (user, prompt): GRPO's group (--generate: samples)", 1, 4096};
    defs[n++] = (flag_def){"max_new_tokens", FLAG_INT, &c.max_new_tokens,
                           "tokens generated per sample at most", 1, 1 << 20};
    defs[n++] = (flag_def){"temperature", FLAG_FLOAT, &c.temperature, "sampling temperature",
                           1e-3, 100};
    defs[n++] = (flag_def){"beta", FLAG_FLOAT, &c.beta,
                           "weight of the k3 KL to the starting policy in the loss (GRPO's; it keeps "
                           "the policy from answers the VPL reward never saw, e.g. empty ones); 0: "
                           "no reference model", 0, 1e6};
    defs[n++] = (flag_def){"eval_prompts", FLAG_INT, &c.eval_prompts,
                           "eval: prompts per held-out user (0: all its prompts)", 0, 1 << 20};
    defs[n++] = (flag_def){"generate", FLAG_BOOL, &c.generate,
                           "sample completions of --prompt for the user of --context (one JSON line "
                           "each: completion and its reward for that user) instead of training"};
    defs[n++] = (flag_def){"context", FLAG_STR, &c.context,
                           "--generate: the user's labelled pairs (JSONL; the first K are read)"};
    defs[n++] = (flag_def){"user", FLAG_STR, &c.user,
                           "--generate: the user in --context when it holds pairs of several users"};
    defs[n++] = (flag_def){"prompt", FLAG_STR, &c.prompt, "--generate: the prompt to complete"};
    defs[n++] = (flag_def){"best_of", FLAG_BOOL, &c.best_of,
                           "--generate: print only the sample with the highest reward for the user "
                           "(best-of-n steering with the user's VPL reward; works for any policy)"};
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "vpl-policy",
                        "A policy conditioned on a user's VPL latent z (docs/vpl.md). A VPL run (rlhf rm\n"
                        "--objective vpl) infers z from K labelled pairs of a user and scores answers for\n"
                        "that user. Training (GRPO): each iteration draws --batch_size users and one of\n"
                        "each user's own prompts; the policy reads \"z:<letters>\\n\" + the prompt (each\n"
                        "coordinate of z quantised to --vpl_z_levels letters) and every sample is scored\n"
                        "with that user's z. --vpl_condition none trains the same way without z: one\n"
                        "policy for all users. Eval (--eval_data, held-out users): the mean reward by\n"
                        "each user's own z, by population; samples in eval_samples.jsonl.\n"
                        "--generate samples --prompt for one user (z from --context); --best_of keeps the\n"
                        "sample that user's reward likes best.\n"
                        "example: rlhf vpl-policy --model runs/sft --vpl_run runs/vpl --data runs/users/prefs.jsonl --eval_data runs/users/eval.jsonl --output_dir runs/vpl_policy --max_steps 200\n"
                        "example: rlhf vpl-policy --generate --model runs/vpl_policy --vpl_run runs/vpl --context runs/users/eval.jsonl --user 201 --prompt 12+30= --num_generations 4",
                        &err);
    if (r == 1) return 0;
    if (r < 0 || train_check_config(&c.base, &err) || vpl_policy_check(&c, &err)) {
        fprintf(stderr, "rlhf vpl-policy: %s\n", err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.base.config_json = cfg;
    int rc = c.generate ? vpl_policy_generate(&c, &err) : vpl_policy_train(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf vpl-policy: %s\n", err.msg);
        return 1;
    }
    return 0;
}
