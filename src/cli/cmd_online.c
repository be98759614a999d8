// cli/cmd_online: `rlhf grpo`, `rlhf rloo`, `rlhf ppo` — flags (TRL's and
// verl's names) to online_config. The three commands differ only in their
// defaults (online_default_config); any of them runs any --adv_estimator.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/rl.h"
#include "cli/cmd_online.h"
#include "cli/pref_flags.h"
#include "cli/train_flags.h"
#include "train/online.h"

// "\n  name  paper [needs]" per advantage estimator and policy-loss variant of
// algo/rl's registries, appended to buf.
static void list_rl_registries(char *buf, size_t cap) {
    size_t k = strlen(buf);
    const rl_adv_def *a;
    k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "\n\nadvantage estimators (--adv_estimator):");
    for (int i = 0; (a = rl_adv_at(i)) && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "\n  %-14s %s%s%s%s", a->name, a->paper,
                              rl_adv_needs(a, RL_NEED_VALUES) ? " [value head]" : "",
                              rl_adv_needs(a, RL_NEED_GROUPS) ? " [groups]" : "",
                              rl_adv_needs(a, RL_NEED_BASELINES) ? " [greedy baseline]" : "");
    const rl_policy_loss_def *p;
    if (k < cap)
        k += (size_t)snprintf(buf + k, cap - k, "\n\npolicy losses (--importance_sampling_level):");
    for (int i = 0; (p = rl_policy_at(i)) && k < cap; i++)
    {
        char nm[64];
        snprintf(nm, sizeof nm, p->level ? "%s (%s)" : "%s", p->level ? p->level : p->name,
                 p->name);
        k += (size_t)snprintf(buf + k, cap - k, "\n  %-16s %s", nm, p->paper);
    }
}

static int run_online(int argc, char **argv, const char *cmd) {
    online_config c;
    rlhf_err err;
    if (online_default_config(&c, cmd, &err)) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err.msg);
        return 2;
    }
    flag_def defs[128];
    int n = train_flag_defs(defs, &c.base);
    static const char *unused[] = {"eval_data", "eval_split", "packing", "eval_steps",
                                   "gradient_accumulation_steps", "max_length", NULL};
    int kept = 0;
    for (int i = 0; i < n; i++) {  // drop what an online run does not use
        int drop = 0;
        for (int k = 0; unused[k]; k++) drop |= !strcmp(defs[i].name, unused[k]);
        if (!drop) defs[kept++] = defs[i];
    }
    n = kept;
    for (int i = 0; i < n; i++) {  // what the shared flags mean here
        if (!strcmp(defs[i].name, "data"))
            defs[i].help = "prompts: JSONL(.gz) with a prompt field (prompt-only, or any format with a prompt)";
        else if (!strcmp(defs[i].name, "per_device_train_batch_size"))
            defs[i].help = "prompts per iteration (each sampled --num_generations times)";
        else if (!strcmp(defs[i].name, "max_steps"))
            defs[i].help = "iterations (rollout + update); overrides --num_train_epochs when > 0";
        else if (!strcmp(defs[i].name, "save_steps"))
            defs[i].help = "iterations between checkpoints (0: only the final one)";
        else if (!strcmp(defs[i].name, "logging_steps"))
            defs[i].help = "iterations between metrics lines";
    }
    char adv_help[300], pl_help[300], names[256];
    rl_adv_names(names, sizeof names);
    snprintf(adv_help, sizeof adv_help, "advantage estimator: %s (listed above)", names);
    rl_policy_names(names, sizeof names);
    snprintf(pl_help, sizeof pl_help, "policy loss by ratio level: %s (listed above)", names);
    flag_def more[] = {
        {"num_generations", FLAG_INT, &c.num_generations, "samples per prompt (a group)", 1, 1 << 16, "n"},
        {"max_new_tokens", FLAG_INT, &c.max_new_tokens, "longest completion in tokens", 1, 1 << 20, "max_completion_length"},
        {"temperature", FLAG_FLOAT, &c.temperature, "sampling temperature (1: the ratio's old log-probs match the sampler's; see docs)", 0.01, 100},
        {"top_k", FLAG_INT, &c.top_k, "sample from the k most likely tokens (0: off)", 0, 1 << 30},
        {"top_p", FLAG_FLOAT, &c.top_p, "nucleus sampling mass (1: off)", 0.01, 1},
        {"generation_batch_size", FLAG_INT, &c.generation_batch_size, "rows per generation call (0: all)", 0, 1 << 20},
        {"reward", FLAG_STR, &c.reward, "weighted reward sources: \"verifier:arith=1,rm:runs/rm=0.5,command:./judge.py=1\""},
        {"task", FLAG_STR, &c.task, "shortcut for --reward verifier:TASK (arith; arith:shaped for partial credit)"},
        {"reward_model", FLAG_STR, &c.reward_model, "shortcut for --reward rm:PATH (a reward model or ensemble)"},
        {"reward_command", FLAG_STR, &c.reward_command, "shortcut for --reward command:CMD (JSON lines in, one number per line out)"},
        {"reward_timeout", FLAG_DOUBLE, &c.reward_timeout, "seconds an external command may take per answer", 0.01, 1e6},
        {"rm_ensemble", FLAG_STR, &c.rm_ensemble, "reward-model ensemble aggregation: mean, wco (min) or uwo (mean - lambda*var)"},
        {"uwo_lambda", FLAG_FLOAT, &c.uwo_lambda, "uwo's lambda", 0, 1e6},
        {"length_penalty", FLAG_FLOAT, &c.length_penalty, "reward -= alpha * completion tokens", -1e6, 1e6},
        {"missing_eos_penalty", FLAG_FLOAT, &c.missing_eos_penalty, "reward -= this for a completion cut before EOS (TRL)", -1e6, 1e6},
        {"overlong_buffer_len", FLAG_INT, &c.overlong_buffer_len, "DAPO soft overlong punishment over the last N of --max_new_tokens (0: off)", 0, 1 << 20},
        {"par_samples", FLAG_INT, &c.par_samples, "PAR shaping: reference samples per prompt (0: off)", 0, 1024},
        {"par_k", FLAG_FLOAT, &c.par_k, "PAR: sigmoid(k (r - r_ref))", 0, 1e6},
        {"adv_estimator", FLAG_STR, &c.adv_estimator, adv_help},
        {"scale_rewards", FLAG_STR, &c.scale_rewards, "grpo: divide by the std of the group, the batch, or none (Dr. GRPO)"},
        {"loss_agg_mode", FLAG_STR, &c.loss_agg_mode, "token-mean, seq-mean-token-mean, seq-mean-token-sum or seq-mean-token-sum-norm (TRL: bnpo, grpo, dr_grpo)"},
        {"importance_sampling_level", FLAG_STR, &c.importance_sampling_level, pl_help},
        {"kl_estimator", FLAG_STR, &c.kl_estimator, "k1, k2, k3 or abs"},
        {"kl_in", FLAG_STR, &c.kl_in, "where the KL to the reference goes: reward (per token) or loss"},
        {"beta", FLAG_FLOAT, &c.beta, "KL coefficient (0: no reference model)", 0, 1e6, "kl_coef"},
        {"kl_target", FLAG_FLOAT, &c.kl_target, "adaptive KL controller's target (0: fixed --beta)", 0, 1e6},
        {"kl_horizon", FLAG_FLOAT, &c.kl_horizon, "adaptive KL controller's horizon in samples", 1, 1e12},
        {"epsilon", FLAG_FLOAT, &c.epsilon, "PPO clip range (lower)", 0, 10, "cliprange"},
        {"epsilon_high", FLAG_FLOAT, &c.epsilon_high, "upper clip range, DAPO clip-higher (-1: --epsilon)", -1, 10},
        {"dual_clip", FLAG_FLOAT, &c.dual_clip, "dual-clip bound c > 1 for negative advantages (0: off)", 0, 1e6, "clip_ratio_c"},
        {"num_iterations", FLAG_INT, &c.num_iterations, "epochs over each batch (PPO epochs)", 1, 1000, "num_ppo_epochs"},
        {"mini_batch_size", FLAG_INT, &c.mini_batch_size, "prompts per optimizer step (0: the whole batch)", 0, 1 << 20},
        {"micro_batch_size", FLAG_INT, &c.micro_batch_size, "rows per forward pass (0: the whole mini-batch)", 0, 1 << 20},
        {"filter", FLAG_STR, &c.filter, "PF-PPO: none, best, best_random, best_worst or reweight"},
        {"filter_power", FLAG_FLOAT, &c.filter_power, "PF-PPO reweight: |score|^p", 0, 100},
        {"macro_action", FLAG_STR, &c.macro_action, "MA-RLHF: none or ngram:N (gae)"},
        {"gamma", FLAG_FLOAT, &c.gamma, "discount (gae, reinforce_pp)", 0, 1},
        {"lam", FLAG_FLOAT, &c.lam, "GAE lambda", 0, 1, "lambda"},
        {"adv_eps", FLAG_FLOAT, &c.adv_eps, "grpo: std epsilon", 0, 1},
        {"whiten_advantages", FLAG_BOOL, &c.whiten_advantages, "gae: whiten advantages over the batch"},
        {"value_head", FLAG_BOOL, &c.value_head, "a value head on the policy (needed by gae)"},
        {"vf_coef", FLAG_FLOAT, &c.vf_coef, "weight of the value loss", 0, 1e6},
        {"cliprange_value", FLAG_FLOAT, &c.cliprange_value, "value clip range (0: unclipped)", 0, 1e6},
        {"ref_model", FLAG_STR, &c.ref_model, "reference model (default: the initial policy)"},
        {"reset_prob", FLAG_FLOAT, &c.reset_prob, "DR-PO dataset reset: share of prompts rolled in on a prefix of their reference completion (prompt+completion data; 0: off)", 0, 1},
        {"log_samples", FLAG_INT, &c.log_samples, "completions per iteration written to samples.jsonl", 0, 1 << 20},
    };
    memcpy(defs + n, more, sizeof more);
    n += (int)(sizeof more / sizeof more[0]);
    int dpo = !strcmp(cmd, "online-dpo");
    const char *fdiv = pref_fdiv_name(c.pref.f_divergence_type); // --f_divergence_type
    if (dpo) {  // --beta is DPO's beta here; the policy-gradient flags do not apply
        static const char *pg_only[] = {"adv_estimator", "scale_rewards", "loss_agg_mode",
            "importance_sampling_level", "kl_estimator", "kl_in", "kl_target", "kl_horizon",
            "epsilon", "epsilon_high", "dual_clip", "filter", "filter_power", "macro_action",
            "gamma", "lam", "adv_eps", "whiten_advantages", "value_head", "vf_coef",
            "cliprange_value", "mini_batch_size", NULL};
        kept = 0;
        for (int i = 0; i < n; i++) {
            int drop = 0;
            for (int k = 0; pg_only[k]; k++) drop |= !strcmp(defs[i].name, pg_only[k]);
            if (!drop) defs[kept++] = defs[i];
        }
        n = kept;
        pref_options *o = &c.pref;
        flag_def d[] = {
            {"loss_type", FLAG_STR, &c.loss_type, "paired preference loss or a comma list of them (the losses listed above; docs/losses.md)"},
            {"loss_weights", FLAG_STR, &c.loss_weights, "weights of a --loss_type list"},
            {"pairs", FLAG_STR, &c.pairs, "max_min (best vs worst sample of a prompt) or all (every better/worse pair)"},
            {"ref_update_steps", FLAG_INT, &c.ref_update_steps, "iterative DPO: the reference becomes the policy every N iterations (0: fixed)", 0, 1 << 30},
            {"f_divergence_type", FLAG_STR, &fdiv, "reverse_kl, forward_kl, js_divergence or alpha_divergence"},
        };
        memcpy(defs + n, d, sizeof d);
        n += (int)(sizeof d / sizeof d[0]);
        // the options the losses online DPO takes read (algo/pref declares them);
        // --beta becomes DPO's beta
        n = pref_flags_add(defs, n, o, pref_options_used(PREF_KIND_PAIRED, ONLINE_DPO_INPUTS));
    }
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    char about[4500];
    if (dpo) {
        snprintf(about, sizeof about,
                 "Online DPO: sample --num_generations completions per prompt, score them with the\n"
                 "reward sources, pair the best against the worst (--pairs max_min) and take a\n"
                 "preference loss (--loss_type, default sigmoid) on the pairs; --ref_update_steps N\n"
                 "makes it iterative DPO. Writes metrics.jsonl (reward, rewards/<source>, kl, pairs,\n"
                 "loss, rewards/chosen, rewards/margins, ...), samples.jsonl and checkpoints.\n"
                 "example: rlhf online-dpo --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
                 "         --output_dir runs/online-dpo --max_steps 100 --learning_rate 5e-7\n\n"
                 "losses (--loss_type):");
        pref_flags_list_losses(about, sizeof about, PREF_KIND_PAIRED, ONLINE_DPO_INPUTS);
    } else snprintf(about, sizeof about,
             "Online RL: sample --num_generations completions per prompt, score them, update the\n"
             "policy with the PPO clipped loss (%s defaults: --adv_estimator %s, KL %s in the %s,\n"
             "beta %g%s). Writes metrics.jsonl (reward, rewards/<source>, kl, entropy, clip_frac,\n"
             "approx_kl, completion_length, truncated_share%s), samples.jsonl and checkpoints.\n"
             "example: rlhf %s --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
             "         --output_dir runs/%s --max_steps 100 --learning_rate 1e-5",
             cmd, c.adv_estimator, c.kl_estimator, c.kl_in, c.beta,
             c.value_head ? ", a value head" : "", c.value_head ? ", value_loss, explained_variance" : "",
             cmd, cmd);
    if (!dpo) list_rl_registries(about, sizeof about);
    int r = flags_parse(argc, argv, defs, cmd, about, &err);
    if (r == 1) return 0;
    if (r < 0 || (dpo && pref_fdiv_from_name(fdiv, &c.pref.f_divergence_type, &err))) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.base.config_json = cfg;
    int rc = online_train(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}

int cmd_grpo(int argc, char **argv) { return run_online(argc, argv, "grpo"); }
int cmd_rloo(int argc, char **argv) { return run_online(argc, argv, "rloo"); }
int cmd_ppo(int argc, char **argv) { return run_online(argc, argv, "ppo"); }
int cmd_online_dpo(int argc, char **argv) { return run_online(argc, argv, "online-dpo"); }
