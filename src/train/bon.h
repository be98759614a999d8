// train/bon: best-of-n behind `rlhf bon`. Two uses of one step — sample n
// completions per prompt (train/rollout), score them with the reward sources
// (reward/sources.h), keep the best:
//
//   * a data / evaluation tool (bon_sample): the best completion of each prompt
//     as prompt/completion JSONL (SFT-ready), optionally every sample with its
//     reward, and the mean reward of the first sample against that of the best
//     of n (what best-of-n buys at this n);
//   * RAFT / SuperHF training (bon_train): each iteration samples n per prompt
//     for --batch_size prompts, keeps each prompt's best, and takes --sft_steps
//     optimizer steps on the kept samples. RAFT (Dong et al. 2023) uses the
//     NLL of the kept completions; SuperHF (Mukobi et al. 2023) adds
//     beta * KL(pi_ref || pi_theta) over the full vocabulary at every kept
//     completion token (docs/online_rl.md, "Best-of-n, RAFT and SuperHF").
#ifndef RLHF_TRAIN_BON_H
#define RLHF_TRAIN_BON_H

#include "train/common.h"

// What `rlhf bon` does (--train): sample only, or train with RAFT or SuperHF.
typedef enum { BON_SAMPLE, BON_RAFT, BON_SUPERHF } bon_mode;

typedef struct {
    train_config base;          // --data: prompts; --batch_size prompts per iteration (train)
                                // or per generation batch (sample); --max_steps iterations
    bon_mode train;
    int n;                      // samples per prompt
    int max_new_tokens;
    float temperature, top_p;
    int top_k;
    // reward (as the online trainers: reward/sources.h)
    const char *reward, *task, *reward_model, *reward_command;
    double reward_timeout;
    const char *reward_url, *judge_url, *judge_model, *judge_api_key_env; // as online_config's
    const char *llm_judge_template; // as online_config's
    int reward_retries;
    const char *rm_ensemble;
    float uwo_lambda;
    // sampling tool
    const char *out;            // best of n per prompt: prompt/completion/reward JSONL
    const char *all_out;        // every sample: prompt/completion/reward/sample/best JSONL
    int limit;                  // the first N prompts only (0: all)
    // training
    int sft_steps;              // optimizer steps on each iteration's kept samples
    int micro_batch_size;       // rows per forward (0: all kept rows)
    float kl_coef;              // SuperHF's beta_KL (default 0.35, the paper's)
    const char *ref_model;      // default: the initial policy
} bon_config;

void bon_default_config(bon_config *c);
// --train: NULL or "none" (BON_SAMPLE), "raft" or "superhf"; -1 + err otherwise.
int bon_mode_from_name(const char *name, bon_mode *out, rlhf_err *err);
// The sampling tool: writes c->out (and c->all_out); prints the summary.
int bon_sample(const bon_config *c, rlhf_err *err);
// RAFT / SuperHF: a run directory with metrics.jsonl, samples and checkpoints.
int bon_train(const bon_config *c, rlhf_err *err);

#endif
