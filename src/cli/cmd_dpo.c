// cli/cmd_dpo: `rlhf dpo` (every loss of algo/pref) and `rlhf kto` (the same
// with --loss_type kto on prompt/completion/label data).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/train_flags.h"
#include "train/dpo.h"

static int run_dpo(int argc, char **argv, const char *cmd, const char *loss) {
    dpo_config c;
    dpo_default_config(&c);
    c.loss_type = loss;
    if (!strcmp(cmd, "kto")) c.base.output_dir = "runs/kto";
    pref_options *o = &c.opt;
    flag_def defs[96];
    int n = train_flag_defs(defs, &c.base);
    flag_def more[] = {
        {"loss_type", FLAG_STR, &c.loss_type, "preference loss, or a comma list of them (the losses listed above; docs/losses.md)"},
        {"loss_weights", FLAG_STR, &c.loss_weights, "weights of a --loss_type list, e.g. 1,0.5"},
        {"beta", FLAG_DOUBLE, &o->beta, "the loss's temperature (DPO beta, IPO tau, ORPO lambda)", 0, 1e6},
        {"label_smoothing", FLAG_DOUBLE, &o->label_smoothing, "cDPO / robust: assumed share of flipped labels", 0, 0.5},
        {"reference_free", FLAG_BOOL, &o->reference_free, "treat the reference log-probs as 0"},
        {"ref_model", FLAG_STR, &c.ref_model, "reference model (default: the initial policy)"},
        {"precompute_ref_log_probs", FLAG_BOOL, &c.precompute_ref_log_probs, "one reference pass, cached in output_dir and reused on restart"},
        {"f_divergence_type", FLAG_STR, &c.f_divergence_type, "reverse_kl, forward_kl, js_divergence or alpha_divergence"},
        {"f_alpha_divergence_coef", FLAG_DOUBLE, &o->f_alpha_divergence_coef, "alpha of alpha_divergence", 0, 1e3},
        {"ld_alpha", FLAG_DOUBLE, &o->ld_alpha, "LD-DPO: weight of the verbose tail (negative: off)", -1, 1},
        {"use_weighting", FLAG_BOOL, &o->use_weighting, "WPO weighting of pairs"},
        {"simpo_gamma", FLAG_DOUBLE, &o->simpo_gamma, "SimPO target margin gamma", -1e6, 1e6},
        {"cpo_alpha", FLAG_DOUBLE, &o->cpo_alpha, "weight of CPO's NLL term", 0, 1e6},
        {"desirable_weight", FLAG_DOUBLE, &o->desirable_weight, "KTO/BCO weight of desirable examples", 0, 1e6},
        {"undesirable_weight", FLAG_DOUBLE, &o->undesirable_weight, "KTO/BCO weight of undesirable examples", 0, 1e6},
        {"vpo_alpha", FLAG_DOUBLE, &o->vpo_alpha, "VPO's alpha", 0, 1e6},
        {"vpo_sign", FLAG_DOUBLE, &o->vpo_sign, "VPO: -1 pessimistic (offline), +1 optimistic (online)", -1, 1},
        {"inpo_tau", FLAG_DOUBLE, &o->inpo_tau, "INPO's tau", 0, 1e6},
        {"cpl_lambda", FLAG_DOUBLE, &o->cpl_lambda, "CPL's weight on the rejected term", 0, 1e6},
        {"alol_clip", FLAG_DOUBLE, &o->alol_clip, "A-LoL ratio clip epsilon", 0, 1},
        {"discopop_tau", FLAG_DOUBLE, &o->discopop_tau, "DiscoPOP temperature", 0, 1e6},
        {"sync_ref_model", FLAG_BOOL, &c.sync_ref_model, "TR-DPO: move the reference towards the policy"},
        {"ref_model_mixup_alpha", FLAG_FLOAT, &c.ref_model_mixup_alpha, "TR-DPO: ref = alpha*policy + (1-alpha)*ref", 0, 1},
        {"ref_model_sync_steps", FLAG_INT, &c.ref_model_sync_steps, "TR-DPO: steps between syncs", 1, 1 << 30},
        {"kl_prompts", FLAG_INT, &c.kl_prompts, "eval prompts for the KL(policy||reference) estimate (0: none)", 0, 1 << 20},
        {"kl_max_new_tokens", FLAG_INT, &c.kl_max_new_tokens, "tokens sampled per KL prompt", 1, 1 << 20},
    };
    memcpy(defs + n, more, sizeof more);
    n += (int)(sizeof more / sizeof more[0]);
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    char about[6000];
    int k = snprintf(about, sizeof about,
             "Offline preference optimisation with any loss of the DPO family.\n"
             "Metrics (TRL's names): loss, rewards/chosen, rewards/rejected, rewards/accuracies,\n"
             "rewards/margins, logps/chosen, logps/rejected, and kl on eval prompts.\n"
             "example: rlhf %s --model runs/sft --data runs/data/%s --output_dir runs/%s --beta 0.1\n\n"
             "losses (--loss_type; unpaired ones take prompt/completion/label data):",
             cmd, strcmp(cmd, "kto") ? "prefs.jsonl" : "kto.jsonl", cmd);
    const pref_loss_def *d;
    for (int i = 0; (d = pref_loss_at(i)) && k > 0 && k < (int)sizeof about; i++)
        k += snprintf(about + k, sizeof about - k, "\n  %-18s %s%s", d->name, d->paper,
                      d->kind == PREF_KIND_UNPAIRED ? " [unpaired]" : "");
    int r = flags_parse(argc, argv, defs, cmd, about, &err);
    if (r == 1) return 0;
    if (r < 0) {
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
