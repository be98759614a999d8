// cli/cmd_srpo: `rlhf srpo` — SRPO on preference data (train/srpo.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/pref_flags.h"
#include "cli/train_flags.h"
#include "train/srpo.h"

int cmd_srpo(int argc, char **argv) {
    srpo_config c;
    srpo_default_config(&c);
    flag_def defs[96];
    int n = train_flag_defs(defs, &c.base);
    flag_def more[] = {
        {"ref_model", FLAG_STR, &c.ref_model,
         "frozen reference model (default: the starting --model)"},
        {"revision_prompt", FLAG_STR, &c.revision_prompt,
         "the instruction between a response and its revision (a line's own \"revision_prompt\" "
         "field wins)"},
        {"revision_nll_coef", FLAG_FLOAT, &c.revision_nll_coef,
         "weight of an NLL term on y_w as the revision of y_l and of y_w (per token; 0: SRPO "
         "alone, the paper's loss)"},
    };
    memcpy(defs + n, more, sizeof more);
    n += (int)(sizeof more / sizeof more[0]);
    const pref_loss_def *srpo = pref_find("srpo");
    n = pref_flags_add(defs, n, &c.opt, srpo ? srpo->options : 0); // beta, srpo_alpha
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    int r = flags_parse(
        argc, argv, defs, "srpo",
        "SRPO (Choi et al. 2024): trains one model as a generator pi(y|x) and as a reviser\n"
        "pi(y'|x, y) of its own answers, on prompt/chosen/rejected data (TRL format).\n"
        "A revision of y into y' is the sequence  x ++ y ++ revision prompt -> y'  (strings;\n"
        "with --chat_template: the prompt's messages, y as the assistant's turn, the\n"
        "revision prompt as a new user turn). Every pair gives the generator's log-probs\n"
        "of y_w and y_l and four revisions (y_l->y_w, y_l->y_l, y_w->y_w, y_w->y_l), under\n"
        "the policy and a frozen reference; the loss is\n"
        "  alpha*[(1/2 - beta*(r(w|l) - r(l|l)))^2 + (1/2 - beta*(r(w|w) - r(l|w)))^2]\n"
        "  + (1-alpha)*(beta*(r(w|l) + rho_w - r(l|w) - rho_l) - 1)^2\n"
        "(r, rho: log-ratios to the reference; alpha = --srpo_alpha), plus, with\n"
        "--revision_nll_coef c > 0, c times the NLL per token of y_w as a revision (of y_l\n"
        "and of y_w): our addition, the revisions' absolute likelihood. Metrics: loss, TRL's\n"
        "rewards/* and logps/* of the generator, revision/improve_rejected and\n"
        "revision/improve_chosen (beta times the revision margins; the loss's target 1/2),\n"
        "revision/nll.\n"
        "At inference, rlhf generate --self_improve N applies the learned revision N times.\n"
        "docs/srpo.md.\n"
        "example: rlhf srpo --model runs/sft --data runs/data/prefs.jsonl --output_dir runs/srpo "
        "--beta 0.1",
        &err);
    if (r == 1) return 0;
    if (r < 0 || train_check_config(&c.base, &err)) {
        fprintf(stderr, "rlhf srpo: %s\n", err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.base.config_json = cfg;
    int rc = srpo_train(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf srpo: %s\n", err.msg);
        return 1;
    }
    return 0;
}
