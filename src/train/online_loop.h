// train/online_loop: the online loop's state (online.c) and its SCORE and
// old-log-prob stages (online_score.c), shared by those two files only.
#ifndef RLHF_TRAIN_ONLINE_LOOP_H
#define RLHF_TRAIN_ONLINE_LOOP_H

#include "data/dataset.h"
#include "reward/sources.h"
#include "train/episode.h"
#include "train/online_update.h"
#include "train/rollout.h"

typedef struct {
    online_run run;           // what the update method sees
    const online_update *update;
    int moving_ref;           // the reference is part of each checkpoint (ref/)
    const char *extra[9];     // the checkpoint files --resume requires
    ds_dataset *ds;
    char **prompt_text;       // (ds->n)
    int *order, order_epoch;  // the epoch's prompt order
    int *ids, **pp, *pl;      // (batch_size) the iteration's prompts: rows, tokens, lengths
    const char **texts;       // (batch_size) the iteration's prompts as reward sources see them
    int **cc, *cl;            // (batch_size) their dataset completions (NULL, 0: none)
    int no_reward;            // ONLINE_NEED_NO_REWARD and no reward given: nothing is scored
    int *rollin;              // (batch_size) DR-PO roll-in tokens appended to each prompt
    int **rollin_buf;         // (batch_size) prompt + roll-in tokens
    int room;                 // longest prompt leaving room for max_new_tokens
    reward_set rs;
    reward_penalties pen;
    rlhf_gen_opts gen;
    size_t cap_bt;
    // the iteration's numbers
    double logp_diff, reward, len_sum, truncated, tokens;
    int len_min, len_max;
    double t_generate, t_score, t_logprobs, t_update;
    double first_reward, last_reward, last_kl;
    // DAPO dynamic sampling (--filter_groups)
    int metric_source;        // the reward source whose scores must vary (-1: the total)
    int **dyn_pp;             // (batch_size) kept prompts' tokens (roll-in included)
    int gen_batches, groups_sampled, groups_dropped; // the iteration's
    episode_runner *episodes; // --env_program: multi-turn episodes (train/episode.h)
} online_loop;

// the rollout's options for n samples a prompt: --env_program's episodes go
// through rollout_generate's hook
rollout_opts online_rollout_options(const online_loop *L, int n);
// SCORE: the reward set, then PAR, the penalties and ReMax's greedy baseline
int online_score(online_loop *L, rlhf_err *err);
// every training forward gives log-probs at the sampling temperature
void online_logits_at_temperature(online_run *r);
// old log-probs (and values) under the rollout weights, the reference's and
// the previous iterate's, and the KL between them
int online_old_logprobs(online_loop *L, rlhf_err *err);

#endif
