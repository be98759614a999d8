// algo/sop: the math of UI-S1's semi-online RL (Lu et al. 2025, "UI-S1: Advancing
// GUI Automation via Semi-online Reinforcement Learning", arXiv 2509.11543; the
// authors' code: github.com/X-PLUG/MobileAgent, UI-S1/uis1/core_uis1.py and
// verl/utils/dataset/universal_multiround.py) as pure functions: whether a
// policy's turn matches the expert's, the patch module's decision, the
// discounted future returns of an episode and Semi-online Policy Optimisation's
// (SOP) step- and episode-level advantages. docs/ui_s1.md has the formulas.
// Nothing here touches files, models or tokenizers.
#ifndef RLHF_ALGO_SOP_H
#define RLHF_ALGO_SOP_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

// ------------------------------------------------------------ action match --
// The action of a turn: its text after the LAST occurrence of `tag` when tag is
// a non-empty string (a turn "thought ... Action: 7" with tag "Action:" has the
// action "7"; a turn without the tag has no action), else the whole text; then
// normalised: leading and trailing whitespace (space \t \n \r \v \f) dropped and
// every inner run of whitespace made one space. Writes the action into out
// (NUL-terminated, cut at cap - 1 bytes) and returns its length, or -1 when the
// tag is absent.
long sop_action(const char *text, size_t len, const char *tag, char *out, size_t cap);
// 1 when the policy's turn and the expert's have equal actions (both present,
// byte for byte after normalisation), else 0. The expert's turn must have the
// tag when a tag is given (callers check the data).
int sop_match(const char *policy, size_t policy_len, const char *expert, size_t expert_len,
              const char *tag);

// ------------------------------------------------------------ patch module --
typedef enum {
    SOP_KEEP = 0,  // the policy's turn matched: the episode goes on with it
    SOP_PATCH = 1, // mismatch within the budget: the expert's turn replaces it
    SOP_END = 2,   // mismatch with the budget spent: the episode ends here
} sop_decision;
// The decision for a turn: KEEP when matched; else PATCH while patches_done <
// budget (budget < 0: no limit), else END. (The authors' MultiRoundGenerator:
// patch while patch_threshold > error_num or patch_threshold == -1; budget 0 is
// the paper's no-patch baseline, where the first mismatch ends the episode.)
sop_decision sop_patch_decide(int matched, int patches_done, int budget);
const char *sop_decision_name(sop_decision d); // "keep", "patch", "end"

// ---------------------------------------------------- discounted returns --
// G[t] for the n steps of one episode with step rewards r[0..n):
//   G_t = r_t + gamma * G_{t+1}   (G_n = 0)
// With cut (the authors' compute_step_discounted_returns), a step whose turn did
// not match (matched[t] == 0: patched, or the step that ended the episode) ends
// the sum for the steps before it, its own reward included: G_t = r_t there, and
// a step t before it gets r_t + gamma * 0 from it — the future after a patch is
// the expert's doing, not the policy's. Without cut (matched may be NULL) the sum
// runs to the episode's end (the paper's formula). Sums in double.
void sop_returns(int n, const float *r, const uint8_t *matched, float gamma, int cut, float *G);

// -------------------------------------------------------------- advantages --
// Rows are the policy's turns of a batch of episodes: row i belongs to group
// task[i] (the expert trajectory: its N episodes form one group), episode
// episode[i] (ids unique across the batch) and step index step[i]; G[i] is its
// discounted return and R[i] its episode's return (the same for every row of an
// episode: the sum of the episode's step rewards).
//   step level     A^S_i = (G_i - mean G) / (std G + eps) over the rows with the
//                  same (task, step) — the same turn of the same trajectory in
//                  the group's episodes; a (task, step) with one row gives 0
//                  (its mean is itself, the authors' step_norm_reward);
//   episode level  A^E_i = (R - mean R) / (std R + eps) over the group's
//                  EPISODES (each counted once); a group of one episode has
//                  mean 0 and std 1 (as verl's GRPO);
//   A_i = episode_w * A^E_i + step_w * A^S_i      (the paper: A^E + omega A^S)
// std is the unbiased (n - 1) standard deviation (torch.std); scale_std = 0
// leaves the division out (the authors' "mean_norm" mode; 1 is "mean_std_norm").
// A_step and A_episode may be NULL. -1 + err for n < 0, a non-finite input or
// rows of one episode that disagree on R or task.
typedef struct {
    float step_w, episode_w; // default 1, 1 (the authors' defaults)
    int scale_std;           // default 1
    float eps;               // default 1e-6
} sop_adv_config;
void sop_adv_config_default(sop_adv_config *c);

int sop_advantages(const sop_adv_config *c, int n, const int *task, const int *episode,
                   const int *step, const float *G, const float *R, float *A, float *A_step,
                   float *A_episode, rlhf_err *err);

#endif
