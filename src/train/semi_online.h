// train/semi_online: UI-S1's semi-online RL (Lu et al. 2025, arXiv 2509.11543;
// docs/ui_s1.md) on the trainer skeleton. The data are expert trajectories in
// TRL's messages format: each assistant turn is the expert's action, each user
// turn after it the observation recorded after that action (offline: no
// environment runs). An iteration:
//
//   ROLLOUT  for each of --per_device_train_batch_size trajectories, G =
//            --num_generations episodes walk its turns: at turn t the history is
//            the trajectory's messages before its t-th assistant turn, with the
//            episode's own earlier turns in place of the expert's; the policy
//            samples a turn (stopped by the chat template's end of turn); if its
//            action matches the expert's (algo/sop.h: sop_match, normalised text,
//            optionally after --action_tag) the episode goes on with the policy's
//            turn, else the patch module puts the expert's turn in the history
//            (at most --patch_budget times; one more mismatch ends the episode).
//            The next observation is the recorded one either way.
//   SCORE    step reward r_t = (1 - w) * match + w * format (w = --format_weight;
//            format: the turn ended with the template's end of turn, and holds the
//            action tag when one is given); discounted returns G_t (--gamma, cut at
//            patched turns as the authors' code) and the episode return R = sum r_t.
//   ADVANTAGE  SOP: A = episode_w * A^E + step_w * A^S (sop_advantages).
//   UPDATE   one policy-gradient step (algo/rl's PPO-clip loss at ratio 1: one update
//            per rollout), token-mean over every trained token of the iteration.
//            Trained tokens are the policy's own sampled turns only — including the
//            turns that were then patched or ended the episode, which carry their low
//            reward — up to and including the end-of-turn marker; prompts (the
//            history, with patched expert turns and observations) are never trained.
//
// samples.jsonl gets one line per policy turn (trajectory line, episode, turn,
// the turn's text, the expert's, match, decision, reward, return, advantages; with
// --log_token_ids also the prompt's and the trained token ids). --eval_data (or
// --eval_split) is rolled out greedily with no patch (the paper's SOP evaluation):
// eval/sop_progress (turns matched before the first mismatch / turns) and
// eval/sop_success (every turn matched).
#ifndef RLHF_TRAIN_SEMI_ONLINE_H
#define RLHF_TRAIN_SEMI_ONLINE_H

#include "algo/sop.h"
#include "data/dataset.h"
#include "rlhf.h"
#include "train/common.h"

typedef struct {
    train_config base;      // --per_device_train_batch_size: trajectories per iteration
    int num_generations;    // episodes per trajectory (G); default 4
    int max_new_tokens;     // per turn; default 32
    float temperature;      // sampling; default 1
    int patch_budget;       // patches per episode (-1: no limit); default 2
    float gamma;            // discount of future step rewards; default 0.5
    int return_cut;         // 1: G_t stops at a patched turn (authors' code); default 1
    sop_adv_config adv;     // step_w, episode_w, scale_std (default 1, 1, 1)
    const char *sop_scale;  // "std" | "mean" (the flag; sets adv.scale_std)
    const char *action_tag; // compare only the text after the last TAG (NULL: whole turn)
    float format_weight;    // w in r = (1 - w) match + w format; default 0
    int micro_batch_size;   // rows per forward in the update (0: all); default 0
    int log_token_ids;      // samples.jsonl rows carry prompt and trained token ids
} semi_online_config;

void semi_online_default_config(semi_online_config *c);
// Checks the options (flag names in messages); -1 + err.
int semi_online_check_config(const semi_online_config *c, rlhf_err *err);
int semi_online_train(const semi_online_config *c, rlhf_err *err);

// The expert trajectories of a messages file: every line must be a messages list
// with at least one assistant turn, and a system or user message before the first
// one; with a tag, every assistant turn must hold it. -1 + "FILE:LINE: reason".
int semi_online_check_data(const ds_dataset *ds, const char *action_tag, rlhf_err *err);

#endif
