// train/episode: multi-turn rollouts. An episode is a conversation: the policy
// writes an assistant turn, an environment program (reward/env_program.h)
// answers with a user turn, again and again, until the program ends the episode
// with a reward (or --max_turns, or the context is full). A batch of episodes
// becomes one rollout_batch (train/rollout.h): each row holds the prompt and the
// whole conversation after it, and only the tokens the policy sampled in its
// assistant turns carry targets (mask 1, with their sampling log-probs); the
// environment's turns and the template's markup around them are conditioning
// only (targets -1, mask 0). Every loss of the online trainers then trains
// assistant tokens only, with nothing to change. docs/multiturn.md.
//
// Tokens are kept as sampled ("token in, token out"): turn k is generated from
// the row's exact token prefix, so the training forward sees what the sampler
// saw and the recomputed log-probs equal the sampling ones. Around them:
//   * an assistant turn ends at a stop id (EOS, the tokenizer's other stop id,
//     the chat template's end-of-turn token where the vocabulary has one), kept
//     in the row with mask 1; or at the template's end-of-turn text (chatml's
//     "<|im_end|>" in a vocabulary without that token): the turn is cut after the
//     token that completes the text, all kept with mask 1; or it is cut at
//     --max_new_tokens (per turn): the template's end-of-turn marker is then
//     appended with mask 0 (the policy did not write it) before the next turn;
//   * the environment's answer is rendered by the chat template as a user
//     message followed by the generation prompt (chatml: "\n<|im_start|>user\n"
//     CONTENT "<|im_end|>\n<|im_start|>assistant\n"), encoded segment by segment
//     as tok/chat.h does, mask 0;
//   * "hh" has no end-of-turn text: its turns end at EOS (or --max_new_tokens).
// The row's completion (rollout_batch.length) is everything after the prompt;
// ended_eos says whether the last assistant turn ended by itself (a stop id or
// the end-of-turn text) rather than at --max_new_tokens.
#ifndef RLHF_TRAIN_EPISODE_H
#define RLHF_TRAIN_EPISODE_H

#include <stdint.h>

#include "reward/env_program.h"
#include "tok/chat.h"
#include "train/rollout.h"

// ------------------------------------------------------------- rendering --
// A conversation as tokens, with the tokens the loss trains.
typedef struct {
    int *ids;       // (n)
    uint8_t *train; // (n) 1 on tokens of trained assistant messages
    int n;
} episode_tokens;

// Renders messages m[0..n) with chat template tmpl (tok/chat.h: chatml, llama3,
// hh) and encodes them segment by segment (chat_encode). train[i] = 1 marks
// message i as the policy's (only assistant messages can be; train NULL: every
// assistant message): its content and end-of-turn marker get train = 1 (the
// template's assistant mask), everything else 0. add_generation_prompt appends
// the assistant header. -1 + err (an unknown template or role, the tokenizer).
// For semi-online RL over offline trajectories (expert turns not trained, the
// policy's turns trained) as for multi-turn rollouts.
int episode_render(const rlhf_tokenizer *tok, const char *tmpl, const chat_message *m, int n,
                   const uint8_t *train, int add_generation_prompt, int parse_special,
                   episode_tokens *out, rlhf_err *err);
void episode_tokens_free(episode_tokens *t);
// A row's training targets from its tokens: targets[t] = ids[t+1] where
// train[t+1], else -1 (and targets[n-1] = -1); mask[t] = 1 where targets[t] >= 0.
// mask may be NULL.
void episode_targets(const episode_tokens *t, int *targets, float *mask);

// --------------------------------------------------------------- rollouts --
typedef struct episode_runner episode_runner;

// Starts the environment program cmd (reward/env_program.h) for episodes of at
// most max_turns assistant turns rendered with chat_template (required: one of
// chatml, llama3, hh); timeout_s per answer. -1 + err.
int episode_open(episode_runner **out, const char *cmd, int max_turns, const char *chat_template,
                 const rlhf_tokenizer *tok, double timeout_s, rlhf_err *err);
// rollout_opts.episodes (ctx: the runner): n_samples episodes per prompt, each
// opening with its prompt's tokens (which should end with the template's
// generation prompt), laid out as rollout_generate lays out completions, with
// env_reward (B) and turns (B) set. o->gen.max_new_tokens caps each turn; the
// end-of-turn id joins o->gen's stop ids; o->generate, when set, samples.
// On MPI ranks (base/dist.h) each rank plays the episodes of its own prompt
// groups (rollout_share) against its own environment program; every turn is
// sampled with the random numbers one process gives it (rollout.h,
// rollout_sample_chunk_dist) and episode ids are one process's, so the episodes
// are one process's; then every rank gets all of them.
int episode_rollout(void *ctx, rlhf_model *m, const int *const *prompts, const int *prompt_len,
                    int n_prompts, const rollout_opts *o, rlhf_rng *rng, rollout_batch *out,
                    rlhf_err *err);
// Episodes run so far (the next episode's id).
long episode_count(const episode_runner *e);
void episode_close(episode_runner *e);

#endif
