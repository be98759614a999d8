// train/online_config: the tables behind the online commands — the update
// methods, the commands (name, update method, defaults) and the loop's own
// options — and the one place option strings become typed values
// (online_config_resolve).
#include <stddef.h>
#include <string.h>

#include "train/online_update.h"

// ----------------------------------------------------------- update methods --

static const online_update *const updates[] = {
    &online_update_pg, &online_update_dpo, &online_update_brain,
    &online_update_hc, &online_update_cgpo, &online_update_gkd,
    &online_update_xpo, &online_update_nash,
};
#define N_UPDATES ((int)(sizeof updates / sizeof updates[0]))

const online_update *online_update_at(int i) {
    return i >= 0 && i < N_UPDATES ? updates[i] : NULL;
}


// ----------------------------------------------------------------- commands --

static const online_command commands[] = {
    {.name = "grpo", .update = &online_update_pg,
     .about = "group-relative advantages (GRPO), KL k3 in the loss",
     .output_dir = "runs/grpo", .learning_rate = 1e-6f, .num_generations = 8, .num_iterations = 1,
     .beta = 0.04f, .adv_estimator = "grpo", .kl_estimator = "k3", .kl_in = "loss"},
    {.name = "rloo", .update = &online_update_pg,
     .about = "leave-one-out baselines (RLOO), KL k1 in the reward",
     .output_dir = "runs/rloo", .learning_rate = 1e-6f, .num_generations = 4, .num_iterations = 1,
     .beta = 0.05f, .adv_estimator = "rloo", .kl_estimator = "k1", .kl_in = "reward"},
    {.name = "ppo", .update = &online_update_pg,
     .about = "a value head and GAE (PPO), 4 epochs per batch",
     .output_dir = "runs/ppo", .learning_rate = 1e-6f, .num_generations = 1, .num_iterations = 4,
     .beta = 0.05f, .adv_estimator = "gae", .kl_estimator = "k1", .kl_in = "reward",
     .value_head = 1},
    {.name = "online-dpo", .update = &online_update_dpo,
     .about = "online / iterative DPO on pairs of samples",
     .output_dir = "runs/online-dpo", .learning_rate = 5e-7f, .num_generations = 4,
     .num_iterations = 1},
    {.name = "brain", .update = &online_update_brain,
     .about = "BRAIn: distil the reward-conditioned posterior (self-normalised importance weights)",
     .output_dir = "runs/brain", .learning_rate = 1e-6f, .num_generations = 8,
     .num_iterations = 1},
    {.name = "hc-rlhf", .update = &online_update_hc,
     .about = "HC-RLHF: reward minus a pessimistic cost (Lagrangian), then a held-out safety test",
     .output_dir = "runs/hc-rlhf", .learning_rate = 1e-6f, .num_generations = 2,
     .num_iterations = 1},
    {.name = "cgpo", .update = &online_update_cgpo,
     .about = "CGPO: judges flag constraint violations; CRPG, CODPO or CRRAFT (--optimizer)",
     .output_dir = "runs/cgpo", .learning_rate = 1e-6f, .num_generations = 4,
     .num_iterations = 1},
    {.name = "gkd", .update = &online_update_gkd,
     .about = "GKD: on-policy distillation from a teacher model (generalised JSD)",
     .output_dir = "runs/gkd", .learning_rate = 1e-5f, .num_generations = 1,
     .num_iterations = 1},
    {.name = "xpo", .update = &online_update_xpo,
     .about = "XPO: online DPO plus an exploration bonus on the reference's samples",
     .output_dir = "runs/xpo", .learning_rate = 5e-7f, .num_generations = 1,
     .num_iterations = 1},
    {.name = "nash-md", .update = &online_update_nash,
     .about = "Nash-MD: the policy's samples against a policy/reference mixture's, judged",
     .output_dir = "runs/nash-md", .learning_rate = 5e-7f, .num_generations = 1,
     .num_iterations = 1},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

const online_command *online_command_at(int i) {
    return i >= 0 && i < N_COMMANDS ? &commands[i] : NULL;
}

const online_command *online_command_find(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (name && !strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

// the loop's defaults, shared by every command
static void loop_defaults(online_config *c) {
    c->base.num_train_epochs = 1;
    c->base.logging_steps = 1;
    c->base.save_steps = 100;
    c->max_new_tokens = 64;
    c->temperature = 1.0f;
    c->top_p = 1.0f;
    c->reward_timeout = 30;
    c->max_turns = 4;
    c->reward_retries = 3;
    c->name.rm_ensemble = "mean";
    c->uwo_lambda = 0.1f;
    c->par_k = 1.0f;
    c->num_iterations = 1;
    c->log_samples = 4;
    c->filter_groups_metric = "reward";
    c->pairwise_anchor = "reference";
    c->max_num_gen_batches = 10;
}

// the command's values over the method's defaults
static void command_defaults(online_config *c, const online_command *k) {
    c->base.output_dir = k->output_dir;
    c->base.learning_rate = k->learning_rate;
    c->num_generations = k->num_generations;
    if (k->num_iterations) c->num_iterations = k->num_iterations;
    if (k->beta) c->pg.beta = k->beta;
    if (k->adv_estimator) c->pg.name.adv_estimator = k->adv_estimator;
    if (k->kl_estimator) c->pg.name.kl_estimator = k->kl_estimator;
    if (k->kl_in) c->pg.name.kl_in = k->kl_in;
    if (k->value_head) c->pg.value_head = k->value_head;
}

int online_default_config(online_config *c, const char *name, rlhf_err *err) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    const online_command *k = online_command_find(name);
    if (!k) return rlhf_fail(err, "unknown online command \"%s\"", name ? name : "");
    c->command = k;
    c->update = k->update;
    loop_defaults(c);
    c->update->defaults(c);
    command_defaults(c, k);
    return online_config_resolve(c, err);
}

int online_config_resolve(online_config *c, rlhf_err *err) {
    if (rl_ensemble_from_name(c->name.rm_ensemble, &c->rm_ensemble, err))
        return rlhf_fail_ctx(err, "--rm_ensemble");
    if (!c->pairwise_anchor ||
        (strcmp(c->pairwise_anchor, "reference") && strcmp(c->pairwise_anchor, "group")))
        return rlhf_fail(err, "--pairwise_anchor must be reference or group (got \"%s\")",
                         c->pairwise_anchor ? c->pairwise_anchor : "");
    return c->update->resolve ? c->update->resolve(c, err) : 0;
}

// -------------------------------------------------------------- the options --

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, field), (help), __VA_ARGS__}

const online_option online_loop_options[] = {
    OPT("num_generations", INT, num_generations, "samples per prompt (a group)", 1, 1 << 16, "n"),
    OPT("max_new_tokens", INT, max_new_tokens, "longest completion in tokens", 1, 1 << 20, "max_completion_length"),
    OPT("temperature", FLOAT, temperature, "sampling temperature; training log-probs are those of softmax(logits / temperature) too (as TRL and verl)", 0.01, 100),
    OPT("top_k", INT, top_k, "sample from the k most likely tokens (0: off)", 0, 1 << 30),
    OPT("top_p", FLOAT, top_p, "nucleus sampling mass (1: off)", 0.01, 1),
    OPT("generation_batch_size", INT, generation_batch_size, "rows per generation call (0: all)", 0, 1 << 20),
    OPT("reward", STR, reward, "weighted reward sources: \"verifier:arith=1,rm:runs/rm=0.5,command:./judge.py=1\""),
    OPT("task", STR, task, "shortcut for --reward verifier:TASK (arith; arith:shaped for partial credit)"),
    OPT("reward_model", STR, reward_model, "shortcut for --reward rm:PATH (a reward model or ensemble)"),
    OPT("reward_command", STR, reward_command, "shortcut for --reward command:CMD (JSON lines in, one number per line out)"),
    OPT("reward_timeout", DOUBLE, reward_timeout, "seconds an external command may take per answer, and an HTTP reward request (url:, judge:) in all", 0.01, 1e6),
    OPT("reward_url", STR, reward_url, "shortcut for --reward url:URL (a remote reward model in OpenRLHF's protocol: docs/remote_rewards.md)"),
    OPT("reward_retries", INT, reward_retries, "retries of transient HTTP failures of url: and judge: rewards (doubling back-off from 0.5 s)", 0, 100),
    OPT("judge_url", STR, judge_url, "an OpenAI-compatible judge's base URL (e.g. http://127.0.0.1:8080/v1), for --reward judge: and --judge api; adds no reward by itself"),
    OPT("llm_judge_template", STR, llm_judge_template, "the question llm:PATH reward sources ask ({prompt}, {completion}; answered \" Yes\"/\" No\"; default: docs/pairwise_rm.md)"),
    OPT("judge_model", STR, judge_model, "the judge's model name (the requests' \"model\")"),
    OPT("judge_api_key_env", STR, judge_api_key_env, "environment variable holding the judge's API key (never logged)"),
    OPT("rm_ensemble", STR, name.rm_ensemble, "reward-model ensemble aggregation: mean, wco (min), uwo (mean - lambda*var) or brme (lambda*mu of the lowest-sigma head + (1-lambda)*min mu; a model from rlhf rm --objective brme)"),
    OPT("uwo_lambda", FLOAT, uwo_lambda, "uwo's lambda; with --rm_ensemble brme the paper's lambda in [0,1]", 0, 1e6),
    OPT("pairwise_anchor", STR, pairwise_anchor, "what a pairwise:PATH reward compares each sample with: reference (the dataset's completion of the prompt where the row has one, else the group's first sample; the Pairwise-RL paper's anchor) or group (the first sample of the prompt's group)"),
    OPT("length_penalty", FLOAT, length_penalty, "reward -= alpha * completion tokens", -1e6, 1e6),
    OPT("missing_eos_penalty", FLOAT, missing_eos_penalty, "reward -= this for a completion cut before EOS (TRL)", -1e6, 1e6),
    OPT("overlong_buffer_len", INT, overlong_buffer_len, "DAPO soft overlong punishment over the last N of --max_new_tokens (0: off)", 0, 1 << 20),
    OPT("par_samples", INT, par_samples, "PAR shaping: reference samples per prompt (0: off)", 0, 1024),
    OPT("par_k", FLOAT, par_k, "PAR: sigmoid(k (r - r_ref))", 0, 1e6),
    OPT("num_iterations", INT, num_iterations, "epochs over each batch (PPO epochs)", 1, 1000, "num_ppo_epochs"),
    OPT("micro_batch_size", INT, micro_batch_size, "rows per forward pass (0: the whole mini-batch)", 0, 1 << 20),
    OPT("ref_model", STR, ref_model, "reference model (default: the initial policy)"),
    OPT("reset_prob", FLOAT, reset_prob, "DR-PO dataset reset: share of prompts rolled in on a prefix of their reference completion (prompt+completion data; 0: off)", 0, 1),
    OPT("log_samples", INT, log_samples, "completions per iteration written to samples.jsonl", 0, 1 << 20),
    OPT("filter_groups", BOOL, filter_groups, "DAPO dynamic sampling: drop groups whose --filter_groups_metric is the same for every sample (no learning signal) and sample more prompts until --batch_size groups remain (verl algorithm.filter_groups.enable)", 0, 0, "dynamic_sampling"),
    OPT("filter_groups_metric", STR, filter_groups_metric, "what must vary within a kept group: reward (the total) or a reward source's name (as in rewards/<name>)"),
    OPT("max_num_gen_batches", INT, max_num_gen_batches, "--filter_groups: generation rounds per iteration at most; the run stops with an error when the batch is still short (as verl; 0: no cap)", 0, 1 << 20),
    OPT("env_program", STR, env_program, "multi-turn episodes: a program that answers each assistant turn with a user turn ({\"content\": ...}) or ends the episode ({\"done\": true, \"reward\": r}), JSON lines over pipes (docs/multiturn.md); needs --chat_template; its reward adds to --reward's"),
    OPT("max_turns", INT, max_turns, "--env_program: assistant turns per episode at most (--max_new_tokens is per turn)", 1, 1 << 16, "max_assistant_turns"),
    {NULL},
};
