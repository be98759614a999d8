// cli/cmd_bon: `rlhf bon` — flags to bon_config. Without --train it samples
// and writes the best of n; with --train raft|superhf it trains.
#include "cli/cmd_bon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/train_flags.h"
#include "train/bon.h"

int cmd_bon(int argc, char **argv) {
    bon_config c;
    bon_default_config(&c);
    flag_def defs[96];
    // no eval set, packing, accumulation or --max_length; a step is an iteration
    static const train_flags_use use = {
        .omit = TRAIN_FLAGS_EVAL | TRAIN_FLAGS_PACKING | TRAIN_FLAGS_ACCUMULATION |
                TRAIN_FLAGS_MAX_LENGTH,
        .data = "prompts: JSONL(.gz) with a prompt field (prompt-only, or any format with a prompt)",
        .batch_size = "prompts per iteration (--train) or per generation batch (each sampled --num_samples times)",
        .max_steps = "--train: iterations (sample, keep the best, --sft_steps updates)",
        .save_steps = "--train: iterations between checkpoints (0: only the final one)",
        .logging_steps = "--train: iterations between metrics lines",
    };
    int n = train_flag_defs_for(defs, &c.base, &use);
    const char *mode = NULL;
    flag_def more[] = {
        {"train", FLAG_STR, &mode, "none (sample only), raft (SFT on the best of n) or superhf (+ KL prior to the reference)"},
        {"num_samples", FLAG_INT, &c.n, "samples per prompt (n)", 1, 1 << 16, "num_generations"},
        {"max_new_tokens", FLAG_INT, &c.max_new_tokens, "longest completion in tokens", 1, 1 << 20},
        {"temperature", FLAG_FLOAT, &c.temperature, "sampling temperature", 0.01, 100},
        {"top_k", FLAG_INT, &c.top_k, "sample from the k most likely tokens (0: off)", 0, 1 << 30},
        {"top_p", FLAG_FLOAT, &c.top_p, "nucleus sampling mass (1: off)", 0.01, 1},
        {"reward", FLAG_STR, &c.reward, "weighted reward sources: \"verifier:arith=1,rm:runs/rm=0.5,command:./judge.py=1\""},
        {"task", FLAG_STR, &c.task, "shortcut for --reward verifier:TASK"},
        {"reward_model", FLAG_STR, &c.reward_model, "shortcut for --reward rm:PATH"},
        {"reward_command", FLAG_STR, &c.reward_command, "shortcut for --reward command:CMD (JSON lines in, one number per line out)"},
        {"reward_timeout", FLAG_DOUBLE, &c.reward_timeout, "seconds an external command may take per answer, and an HTTP reward request (url:, judge:) in all", 0.01, 1e6},
        {"reward_url", FLAG_STR, &c.reward_url, "shortcut for --reward url:URL (a remote reward model in OpenRLHF's protocol: docs/remote_rewards.md)"},
        {"reward_retries", FLAG_INT, &c.reward_retries, "retries of transient HTTP failures of url: and judge: rewards (doubling back-off from 0.5 s)", 0, 100},
        {"judge_url", FLAG_STR, &c.judge_url, "an OpenAI-compatible judge's base URL (e.g. http://127.0.0.1:8080/v1) for --reward judge:; adds no reward by itself"},
        {"judge_model", FLAG_STR, &c.judge_model, "the judge's model name (the requests' \"model\")"},
        {"judge_api_key_env", FLAG_STR, &c.judge_api_key_env, "environment variable holding the judge's API key (never logged)"},
        {"llm_judge_template", FLAG_STR, &c.llm_judge_template, "the question llm:PATH reward sources ask ({prompt}, {completion}; answered \" Yes\"/\" No\")"},
        {"rm_ensemble", FLAG_STR, &c.rm_ensemble, "reward-model ensemble aggregation: mean, wco (min), uwo (mean - lambda*var) or brme (lambda*mu of the lowest-sigma head + (1-lambda)*min mu; a model from rlhf rm --objective brme)"},
        {"uwo_lambda", FLAG_FLOAT, &c.uwo_lambda, "uwo's lambda; with --rm_ensemble brme the paper's lambda in [0,1]", 0, 1e6},
        {"out", FLAG_STR, &c.out, "sampling: the best of n per prompt as prompt/completion/reward JSONL (SFT-ready)"},
        {"all_out", FLAG_STR, &c.all_out, "sampling: every sample as prompt/completion/reward/sample/best JSONL"},
        {"limit", FLAG_INT, &c.limit, "sampling: the first N prompts only (0: all)", 0, 1 << 30},
        {"sft_steps", FLAG_INT, &c.sft_steps, "--train: optimizer steps on each iteration's kept samples", 1, 1 << 20},
        {"micro_batch_size", FLAG_INT, &c.micro_batch_size, "--train: rows per forward pass (0: all kept rows)", 0, 1 << 20},
        {"kl_coef", FLAG_FLOAT, &c.kl_coef, "superhf: beta_KL of the KL(ref || policy) prior", 0, 1e6, "beta"},
        {"ref_model", FLAG_STR, &c.ref_model, "--train: reference model (default: the initial policy)"},
    };
    memcpy(defs + n, more, sizeof more);
    n += (int)(sizeof more / sizeof more[0]);
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "bon",
                        "Best-of-n: sample --num_samples completions per prompt, score them with the\n"
                        "reward sources and keep the best. Without --train: write the best as\n"
                        "prompt/completion JSONL (--out; every sample with --all_out) and print the mean\n"
                        "reward of the first sample and of the best of n. --train raft: each iteration SFT\n"
                        "on the best of n (RAFT); --train superhf: plus beta * KL(ref || policy) (SuperHF).\n"
                        "example: rlhf bon --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
                        "         --num_samples 8 --out runs/bon.jsonl\n"
                        "         rlhf bon --train raft --model runs/sft --data runs/data/prompts.jsonl \\\n"
                        "         --task arith --output_dir runs/raft --max_steps 50",
                        &err);
    if (r == 1) return 0;
    if (r < 0 || bon_mode_from_name(mode, &c.train, &err) || train_check_config(&c.base, &err)) {
        fprintf(stderr, "rlhf bon: %s\n", err.msg);
        return 2;
    }
    int train = c.train != BON_SAMPLE;
    if (!train && (c.base.use_peft || c.base.gradient_checkpointing)) {
        fprintf(stderr, "rlhf bon: --%s trains: it needs --train raft or superhf\n",
                c.base.use_peft ? "use_peft" : "gradient_checkpointing");
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.base.config_json = cfg;
    int rc = train ? bon_train(&c, &err) : bon_sample(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf bon: %s\n", err.msg);
        return 1;
    }
    return 0;
}
