// cli/command_table: every `rlhf <command>` by name, and the dispatcher that
// both the `rlhf` program (main.c) and the Python binding (through
// librlhf.so) call.
#include <stdio.h>
#include <string.h>

#include "base/dist.h"
#include "cli/cmd_bon.h"
#include "cli/cmd_online.h"
#include "cli/cmd_semi_online.h"
#include "cli/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"data", cmd_data, "write a built-in task's datasets (rlhf data --task arith --out DIR)"},
    {"sft", cmd_sft, "supervised fine-tuning on TRL-format data"},
    {"pairs", cmd_pairs, "sample a model and build preference pairs with a task verifier"},
    {"dpo", cmd_dpo, "offline preference optimisation: DPO, IPO, SimPO, ORPO, KTO, ... (--loss_type)"},
    {"kto", cmd_kto, "rlhf dpo --loss_type kto, on prompt/completion/label data"},
    {"srpo", cmd_srpo, "SRPO: one model as generator and self-reviser, on preference pairs"},
    {"grpo", cmd_grpo, "online RL, group-relative advantages (GRPO; any --adv_estimator)"},
    {"rloo", cmd_rloo, "online RL with leave-one-out baselines (RLOO)"},
    {"ppo", cmd_ppo, "online RL with a value head and GAE (PPO)"},
    {"online-dpo", cmd_online_dpo, "online / iterative DPO on samples scored by the reward sources"},
    {"brain", cmd_brain, "BRAIn: distil the reward-conditioned posterior from samples"},
    {"hc-rlhf", cmd_hc_rlhf, "high-confidence safe RLHF: reward, a cost bound, a held-out safety test"},
    {"cgpo", cmd_cgpo, "CGPO: constrained policy optimisation with judges (CRPG, CODPO, CRRAFT)"},
    {"gkd", cmd_gkd, "on-policy distillation from a teacher model (GKD)"},
    {"xpo", cmd_xpo, "XPO: online DPO with an exploration bonus"},
    {"nash-md", cmd_nash_md, "Nash-MD: online preference optimisation against a policy/reference mixture"},
    {"semi-online", cmd_semi_online, "UI-S1 semi-online RL: roll out along expert trajectories, patch divergent turns, SOP advantages"},
    {"bon", cmd_bon, "best-of-n sampling (SFT-ready JSONL), RAFT / SuperHF training (--train)"},
    {"rm", cmd_rm, "train a reward model (or an ensemble) on preference pairs"},
    {"vpl-policy", cmd_vpl_policy, "VPL: a policy conditioned on a user's latent z (GRPO on each user's VPL reward), or generate for one user"},
    {"score", cmd_score, "score a file with a reward model or a DPO policy's implicit reward"},
    {"eval", cmd_eval, "score a model on a built-in task (greedy and sampled accuracy)"},
    {"generate", cmd_generate, "sample completions for prompts"},
    {"chat", cmd_chat, "talk to a model with a chat template"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"info", cmd_info, "describe and check a model (ours, an HF folder, a llama2.c .bin)"},
    {"export", cmd_export, "write a model as an HF folder or a GGUF file"},
    {"ctrl", cmd_ctrl, "continuous control: offline-to-online RL (train), eval, D4RL-style collect"},
    {"study", cmd_study, "reproduce a seed paper's finding on the gold-reward sandbox (rlhf study --list)"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server for a model; --reward_model: a remote reward model"},
    {"report", cmd_report, "one HTML page of plots for one or several run folders"},
    {"bench", cmd_bench, "speed of training, forward and generation (see make bench)"},
    {"demo", cmd_engine_demo, "train a tiny model on a synthetic language for a few steps"},
};

// Commands that handle N MPI ranks themselves (docs/mpi.md): the trainers on the
// trainer skeleton (it refuses a method that is not data-parallel), rm (its vpl
// objective's own loop in rm_vpl.c), ctrl train (ctrl_dist.c) and bench. Every
// other command under mpirun would run N copies writing the same files: refused.
static int handles_ranks(const char *name, int argc, char **argv) {
    static const char *const AWARE[] = {"sft", "dpo", "kto", "srpo", "grpo", "rloo", "ppo",
                                        "online-dpo", "brain", "hc-rlhf", "cgpo", "gkd", "xpo",
                                        "nash-md", "semi-online", "bon", "rm", "vpl-policy", "bench"};
    for (size_t i = 0; i < sizeof AWARE / sizeof AWARE[0]; i++)
        if (!strcmp(name, AWARE[i])) return 1;
    return !strcmp(name, "ctrl") && argc >= 1 && !strcmp(argv[0], "train");
}

static void usage(FILE *f) {
    fprintf(f, "rlhf — online and offline RL from feedback, in C\n\n"
               "usage: rlhf <command> [flags]     (rlhf <command> --help for its flags)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nexample: rlhf data --task arith --out runs/data && \\\n"
               "         rlhf sft --model tiny --data runs/data/sft.jsonl --output_dir runs/sft\n");
}

int rlhf_cli_main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name)) continue;
        if (dist_size() > 1 && !handles_ranks(argv[1], argc - 2, argv + 2)) {
            fprintf(stderr, "rlhf %s%s%s does not run on %d MPI ranks (it would run %d copies writing "
                            "the same files); run it as one process (docs/mpi.md)\n",
                    argv[1], !strcmp(argv[1], "ctrl") && argc > 2 ? " " : "",
                    !strcmp(argv[1], "ctrl") && argc > 2 ? argv[2] : "", dist_size(), dist_size());
            return 2;
        }
        return COMMANDS[i].run(argc - 2, argv + 2);
    }
    fprintf(stderr, "rlhf: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
