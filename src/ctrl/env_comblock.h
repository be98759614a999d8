// ctrl/env_comblock: the continuous combination lock of HNPG's paper (Zhou et
// al. 2023, "Offline Data Enhanced On-Policy Policy Gradient with Provable
// Guarantees"; the authors' lock_continuous.py), a hard-exploration task:
//
//   latent states A, B (good) and C (dead), time h = 0 .. H-1; the episode
//   starts in A or B (probability 1/2 each). An action is a vector of K = 10
//   numbers (the box says [0, 1], but as in the authors' code it is not
//   enforced: raw_actions, no clipping); the environment turns it into one of
//   K discrete choices by sampling softmax(action / 0.1). The right choice at (A, h) is
//   opt_a[h], at (B, h) opt_b[h]: then the next latent is A or B (a fair
//   coin); any other choice, or any choice in C, leads to C for good. Reward
//   comes only at the last step: 1 for the right choice in A or B, else 0.1
//   with probability 1/2 (the "anti-reward" that lures a myopic learner).
//   A uniformly random policy opens the lock with probability 10^-H.
//
//   observation (dim 2^ceil(log2(H+4))): x = Had * z, where z has 1 at the
//   latent (0, 1, 2) and 1 at 3 + h, N(0, 0.1^2) noise on the first H + 3
//   entries, and Had is the +-1 Sylvester-Hadamard matrix (scipy's hadamard).
//
// Names: "comblock" (H = 10) or "comblock:H=20,lock=3,noise=0.1": H in 1..256,
// lock seeds the secret sequences opt_a, opt_b (default 0; the environment's
// own seed does not change them, so a dataset and a training run share the
// lock), noise >= 0. The last step reports terminated (a fixed-horizon task);
// max_episode_steps is H.
#ifndef RLHF_CTRL_ENV_COMBLOCK_H
#define RLHF_CTRL_ENV_COMBLOCK_H

#include "ctrl/env.h"

// builds e (already named and seeded by the caller, as ctrl_env_make does)
int ctrl_env_comblock_make(const char *name, ctrl_env *e, rlhf_err *err);
// 1 when name is a comblock name ("comblock" or "comblock:...")
int ctrl_env_is_comblock(const char *name);
// A comblock's hidden state (for the eps-greedy expert and for tests): the
// latent (0 A, 1 B, 2 C), the step h, and the right choice at this state
// (-1 in C or after the last step). -1 + err for another environment.
int ctrl_comblock_state(const ctrl_env *e, int *latent, int *h, int *best, rlhf_err *err);
// the last discrete choice the environment sampled from the action (-1 before any)
int ctrl_comblock_last_choice(const ctrl_env *e);

#endif
