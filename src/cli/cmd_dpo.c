// cli/cmd_dpo: `rlhf dpo` (every loss of algo/pref) and `rlhf kto` (the same
// with --loss_type kto on prompt/completion/label data).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/pref_flags.h"
#include "cli/train_flags.h"
#include "train/dpo.h"

static int run_dpo(int argc, char **argv, const char *cmd, const char *loss) {
    dpo_config c;
    dpo_default_config(&c);
    c.loss_type = loss;
    if (!strcmp(cmd, "kto")) c.base.output_dir = "runs/kto";
    pref_options *o = &c.opt;
    flag_def defs[128];
    int n = train_flag_defs(defs, &c.base);
    flag_def more[] = {
        {"loss_type", FLAG_STR, &c.loss_type, "preference loss, or a comma list of them (the losses listed above; docs/losses.md)"},
        {"loss_weights", FLAG_STR, &c.loss_weights, "weights of a --loss_type list, e.g. 1,0.5"},
        {"ref_model", FLAG_STR, &c.ref_model, "reference model (default: the initial policy)"},
        {"precompute_ref_log_probs", FLAG_BOOL, &c.precompute_ref_log_probs, "one reference pass, cached in output_dir and reused on restart"},
        {"f_divergence_type", FLAG_STR, &c.f_divergence_type, "reverse_kl, forward_kl, js_divergence or alpha_divergence"},
        {"sync_ref_model", FLAG_BOOL, &c.sync_ref_model, "TR-DPO: move the reference towards the policy"},
        {"ref_model_mixup_alpha", FLAG_FLOAT, &c.ref_model_mixup_alpha, "TR-DPO: ref = alpha*policy + (1-alpha)*ref", 0, 1},
        {"ref_model_sync_steps", FLAG_INT, &c.ref_model_sync_steps, "TR-DPO: steps between syncs", 1, 1 << 30},
        {"kl_prompts", FLAG_INT, &c.kl_prompts, "eval prompts for the KL(policy||reference) estimate (0: none)", 0, 1 << 20},
        {"kl_max_new_tokens", FLAG_INT, &c.kl_max_new_tokens, "tokens sampled per KL prompt", 1, 1 << 20},
        {"alol_value_reward", FLAG_STR, &c.alol_value_reward, "A-LoL: reward set (verifier:NAME, rm:PATH, command:CMD) scoring the reference's samples to fit V_ref; unset: fit V_ref to the data's own rewards"},
        {"alol_value_samples", FLAG_INT, &c.alol_value_samples, "A-LoL: reference samples per fit prompt", 1, 1 << 16},
        {"alol_value_max_new_tokens", FLAG_INT, &c.alol_value_max_new_tokens, "A-LoL: tokens per reference sample", 1, 1 << 20},
        {"alol_value_prompts", FLAG_INT, &c.alol_value_prompts, "A-LoL: prompts V_ref is fit on (eval set's, else training set's; 0: all)", 0, 1 << 30},
        {"alol_value_ridge", FLAG_FLOAT, &c.alol_value_ridge, "A-LoL: ridge lambda of the V_ref fit", 1e-12, 1e12},
        {"alol_priority", FLAG_BOOL, &c.alol_priority, "A-LoL/R-LoL: train only on A > 0 (R > 0), drawn with probability proportional to A (R)"},
    };
    memcpy(defs + n, more, sizeof more);
    n += (int)(sizeof more / sizeof more[0]);
    n = pref_flags_add(defs, n, o, pref_options_used(-1, ~0u));  // every option of algo/pref
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    char about[6000];
    snprintf(about, sizeof about,
             "Offline preference optimisation with any loss of the DPO family.\n"
             "Metrics (TRL's names): loss, rewards/chosen, rewards/rejected, rewards/accuracies,\n"
             "rewards/margins, logps/chosen, logps/rejected, and kl on eval prompts.\n"
             "example: rlhf %s --model runs/sft --data runs/data/%s --output_dir runs/%s --beta 0.1\n\n"
             "losses (--loss_type; unpaired ones take prompt/completion/label data):",
             cmd, strcmp(cmd, "kto") ? "prefs.jsonl" : "kto.jsonl", cmd);
    pref_flags_list_losses(about, sizeof about, -1, ~0u);
    int r = flags_parse(argc, argv, defs, cmd, about, &err);
    if (r == 1) return 0;
    if (r < 0 || train_check_config(&c.base, &err)) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.base.config_json = cfg;
    int rc = dpo_train(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}

int cmd_dpo(int argc, char **argv) { return run_dpo(argc, argv, "dpo", "sigmoid"); }
int cmd_kto(int argc, char **argv) { return run_dpo(argc, argv, "kto", "kto"); }
