// cli/cmd_online: `rlhf grpo`, `rlhf rloo`, `rlhf ppo` and `rlhf online-dpo` —
// flags (TRL's and verl's names) to online_config. Every flag comes from a
// declaration: the shared training flags an online run uses (cli/train_flags),
// the loop's options (online_loop_options) and those the command's update
// method declares (its options; the options of the preference losses it takes,
// cli/pref_flags). --help lists the registries the update method uses and the
// update methods. After parsing, online_config_resolve turns the option
// strings into typed values once.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/rl.h"
#include "cli/cmd_online.h"
#include "cli/pref_flags.h"
#include "cli/train_flags.h"
#include "train/online.h"
#include "train/online_update.h"

// what the shared training flags mean to an online run
static const train_flags_use online_use = {
    .omit = TRAIN_FLAGS_EVAL | TRAIN_FLAGS_PACKING | TRAIN_FLAGS_ACCUMULATION |
            TRAIN_FLAGS_MAX_LENGTH,
    .data = "prompts: JSONL(.gz) with a prompt field (prompt-only, or any format with a prompt)",
    .batch_size = "prompts per iteration (each sampled --num_generations times)",
    .max_steps = "iterations (rollout + update); overrides --num_train_epochs when > 0",
    .save_steps = "iterations between checkpoints (0: only the final one)",
    .logging_steps = "iterations between metrics lines",
};

// flags of options o[] of c (appended at defs[n]); returns the new count
static int option_flags(flag_def *defs, int n, const online_option *o, online_config *c) {
    static const flag_type types[] = {
        [ONLINE_OPT_STR] = FLAG_STR,       [ONLINE_OPT_INT] = FLAG_INT,
        [ONLINE_OPT_FLOAT] = FLAG_FLOAT,   [ONLINE_OPT_DOUBLE] = FLAG_DOUBLE,
        [ONLINE_OPT_BOOL] = FLAG_BOOL,
    };
    for (; o && o->name; o++)
        defs[n++] = (flag_def){o->name, types[o->type], (char *)c + o->offset, o->help,
                               o->lo, o->hi, o->alias};
    return n;
}

// ------------------------------------------------------------------- --help --

// appends to buf[k..cap) what fmt says; returns the new length
static size_t put(char *buf, size_t cap, size_t k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t cap, size_t k, const char *fmt, ...) {
    if (k >= cap) return k;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + k, cap - k, fmt, ap);
    va_end(ap);
    return w < 0 ? k : k + (size_t)w;
}

// "\n  name  paper [needs]" per advantage estimator and policy-loss variant of
// algo/rl's registries, as the update method's lists say
static size_t list_rl_registries(char *buf, size_t cap, size_t k, unsigned lists) {
    const rl_adv_def *a;
    if (lists & ONLINE_LISTS_ADV_ESTIMATORS) {
        k = put(buf, cap, k, "\n\nadvantage estimators (--adv_estimator):");
        for (int i = 0; (a = rl_adv_at(i)); i++)
            k = put(buf, cap, k, "\n  %-14s %s%s%s%s", a->name, a->paper,
                    rl_adv_needs(a, RL_NEED_VALUES) ? " [value head]" : "",
                    rl_adv_needs(a, RL_NEED_GROUPS) ? " [groups]" : "",
                    rl_adv_needs(a, RL_NEED_BASELINES) ? " [greedy baseline]" : "");
    }
    const rl_policy_loss_def *p;
    if (lists & ONLINE_LISTS_POLICY_LOSSES) {
        k = put(buf, cap, k, "\n\npolicy losses (--importance_sampling_level):");
        for (int i = 0; (p = rl_policy_at(i)); i++) {
            char nm[64];
            snprintf(nm, sizeof nm, p->level ? "%s (%s)" : "%s", p->level ? p->level : p->name,
                     p->name);
            k = put(buf, cap, k, "\n  %-16s %s", nm, p->paper);
        }
    }
    return k;
}

// "\n  name  about (commands)" per update method
static size_t list_updates(char *buf, size_t cap, size_t k) {
    k = put(buf, cap, k, "\n\nupdate methods (one per command):");
    const online_update *u;
    for (int i = 0; (u = online_update_at(i)); i++) {
        char cmds[200] = "";
        const online_command *m;
        for (int j = 0; (m = online_command_at(j)); j++)
            if (m->update == u)
                snprintf(cmds + strlen(cmds), sizeof cmds - strlen(cmds), "%s%s", *cmds ? ", " : "",
                         m->name);
        k = put(buf, cap, k, "\n  %-16s %s (%s)", u->name, u->about, cmds);
    }
    return k;
}

static void about_text(const online_config *c, char *buf, size_t cap) {
    const online_update *u = c->update;
    u->describe(c, buf, cap);
    size_t k = list_rl_registries(buf, cap, strlen(buf), u->lists);
    if (u->pref_inputs && k < cap) {
        put(buf, cap, k, "\n\nlosses (--loss_type):");
        pref_flags_list_losses(buf, cap, u->pref_kind, u->pref_inputs);
        k = strlen(buf);
    }
    list_updates(buf, cap, k);
}

// ---------------------------------------------------------------- commands --

static int run_online(int argc, char **argv, const char *cmd) {
    online_config c;
    rlhf_err err;
    if (online_default_config(&c, cmd, &err)) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err.msg);
        return 2;
    }
    const online_update *u = c.update;
    flag_def defs[200];
    int n = train_flag_defs_for(defs, &c.base, &online_use);
    n = option_flags(defs, n, online_loop_options, &c);
    n = option_flags(defs, n, u->options, &c);
    if (u->pref_inputs)  // the options the losses it takes read (algo/pref declares them)
        n = pref_flags_add(defs, n, (pref_options *)((char *)&c + u->pref_offset),
                           pref_options_used(u->pref_kind, u->pref_inputs));
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    char about[6000];
    about_text(&c, about, sizeof about);
    int r = flags_parse(argc, argv, defs, cmd, about, &err);
    if (r == 1) return 0;
    if (r < 0 || train_check_config(&c.base, &err) || online_config_resolve(&c, &err)) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.base.config_json = cfg;
    int rc = online_train(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err.msg);
        return rc > 0 ? 3 : 1; // 3: finished, the model refused (HC-RLHF's safety test)
    }
    return 0;
}

int cmd_grpo(int argc, char **argv) { return run_online(argc, argv, "grpo"); }
int cmd_rloo(int argc, char **argv) { return run_online(argc, argv, "rloo"); }
int cmd_ppo(int argc, char **argv) { return run_online(argc, argv, "ppo"); }
int cmd_online_dpo(int argc, char **argv) { return run_online(argc, argv, "online-dpo"); }
int cmd_brain(int argc, char **argv) { return run_online(argc, argv, "brain"); }
int cmd_hc_rlhf(int argc, char **argv) { return run_online(argc, argv, "hc-rlhf"); }
int cmd_cgpo(int argc, char **argv) { return run_online(argc, argv, "cgpo"); }
int cmd_gkd(int argc, char **argv) { return run_online(argc, argv, "gkd"); }
int cmd_xpo(int argc, char **argv) { return run_online(argc, argv, "xpo"); }
int cmd_nash_md(int argc, char **argv) { return run_online(argc, argv, "nash-md"); }
