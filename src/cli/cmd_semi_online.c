// cli/cmd_semi_online: `rlhf semi-online` — UI-S1 semi-online RL (Lu et al. 2025)
// on expert trajectories (train/semi_online.h; docs/ui_s1.md).
#include "cli/cmd_semi_online.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/train_flags.h"
#include "train/semi_online.h"

static const train_flags_use so_use = {
    .omit = TRAIN_FLAGS_PACKING | TRAIN_FLAGS_ACCUMULATION | TRAIN_FLAGS_MAX_LENGTH,
    .data = "expert trajectories: JSONL with a \"messages\" list per line (system/user/assistant; "
            "each assistant turn is the expert's action, each user turn after it the "
            "observation recorded after it)",
    .batch_size = "trajectories per iteration (each rolled out --num_generations times)",
    .max_steps = "iterations (rollout + one update); overrides --num_train_epochs when > 0",
    .save_steps = "iterations between checkpoints (0: only the final one)",
    .logging_steps = "iterations between metrics lines",
};

static const char *HELP =
    "UI-S1 semi-online RL (Lu et al. 2025, arXiv 2509.11543): online-style RL on OFFLINE\n"
    "expert trajectories. Each trajectory is a conversation (--data, TRL messages format):\n"
    "the assistant turns are the expert's actions, the user turns after them the recorded\n"
    "observations. Per iteration, each of --per_device_train_batch_size trajectories is\n"
    "walked by --num_generations episodes. At turn t the policy sees the history (with its\n"
    "own earlier turns) and samples a turn (up to the template's end of turn, at most\n"
    "--max_new_tokens tokens). If its action equals the expert's (whitespace-normalised\n"
    "text; with --action_tag TAG only what follows the last TAG) the episode goes on with\n"
    "the policy's turn; otherwise the PATCH MODULE writes the expert's turn into the history\n"
    "instead (at most --patch_budget times per episode; the next mismatch ends the episode).\n"
    "The next observation is always the recorded one.\n"
    "Rewards and advantages (Semi-online Policy Optimisation):\n"
    "  r_t = (1 - w) * match_t + w * format_t             (w = --format_weight)\n"
    "  G_t = r_t + gamma * G_{t+1}, cut at patched turns   (--gamma, --return_cut)\n"
    "  A^S = (G_t - mean) / std over the group's episodes at the same turn\n"
    "  A^E = (R - mean) / std over the group's episodes, R = sum_t r_t\n"
    "  A   = --episode_advantage_w * A^E + --step_advantage_w * A^S\n"
    "(--sop_scale mean: no division by std). One policy-gradient step per iteration on\n"
    "the policy's own sampled turns only (patched-in expert turns are context, never\n"
    "trained), token-mean. Metrics: sop/match_rate, sop/patches_per_episode,\n"
    "sop/ended_share, sop/success, sop/reward; with --eval_data (or --eval_split) the\n"
    "paper's SOP evaluation (greedy, no patch): eval/sop_progress, eval/sop_success.\n"
    "samples.jsonl: one line per policy turn (--log_token_ids adds prompt and trained ids).\n"
    "docs/ui_s1.md.\n"
    "example: rlhf semi-online --model runs/sft --data trajs.jsonl --chat_template chatml "
    "--output_dir runs/uis1 --max_steps 50";

int cmd_semi_online(int argc, char **argv) {
    semi_online_config c;
    semi_online_default_config(&c);
    flag_def defs[96];
    int n = train_flag_defs_for(defs, &c.base, &so_use);
    flag_def more[] = {
        {"num_generations", FLAG_INT, &c.num_generations,
         "episodes rolled out per trajectory (the group of SOP's advantages)", 1, 4096},
        {"max_new_tokens", FLAG_INT, &c.max_new_tokens, "tokens per policy turn at most", 1,
         1 << 20},
        {"temperature", FLAG_FLOAT, &c.temperature, "sampling temperature of the rollout", 0, 100},
        {"patch_budget", FLAG_INT, &c.patch_budget,
         "expert patches per episode; the next mismatch ends it (0: no patching, the paper's "
         "baseline; -1: no limit; default 2, the authors' training script)",
         -1, 1 << 20},
        {"gamma", FLAG_FLOAT, &c.gamma, "discount of future step rewards in G_t (authors: 0.5)", 0,
         1},
        {"return_cut", FLAG_BOOL, &c.return_cut,
         "G_t stops at a turn that did not match (the authors' code; false: sum to the end)"},
        {"step_advantage_w", FLAG_FLOAT, &c.adv.step_w, "weight of the step-level advantage A^S"},
        {"episode_advantage_w", FLAG_FLOAT, &c.adv.episode_w,
         "weight of the episode-level advantage A^E"},
        {"sop_scale", FLAG_STR, &c.sop_scale,
         "std: (x - mean) / (std + 1e-6) (the authors' mean_std_norm); mean: x - mean"},
        {"action_tag", FLAG_STR, &c.action_tag,
         "compare only the text after the last occurrence of TAG (e.g. \"Action:\"); every "
         "expert turn must hold it"},
        {"format_weight", FLAG_FLOAT, &c.format_weight,
         "w in r = (1 - w) * match + w * format (format: the turn ended, with the tag)", 0, 1},
        {"micro_batch_size", FLAG_INT, &c.micro_batch_size,
         "rows (policy turns) per forward in the update (0: all at once)", 0, 1 << 20},
        {"log_token_ids", FLAG_BOOL, &c.log_token_ids,
         "samples.jsonl rows carry prompt_ids and trained_ids (for checks)"},
    };
    memcpy(defs + n, more, sizeof more);
    n += (int)(sizeof more / sizeof more[0]);
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "semi-online", HELP, &err);
    if (r == 1) return 0;
    if (r < 0 || train_check_config(&c.base, &err) || semi_online_check_config(&c, &err)) {
        fprintf(stderr, "rlhf semi-online: %s\n", err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.base.config_json = cfg;
    int rc = semi_online_train(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf semi-online: %s\n", err.msg);
        return 1;
    }
    return 0;
}
