// ctrl/algo_wsrl: WSRL's online update (Zhou, Peng, Li, Levine, Kumar 2024,
// "Efficient Online RL Fine-Tuning Need Not Retain Offline Data"): SAC on a Q
// ensemble whose target takes the minimum over a random subset of K = 2 of
// the E target critics (REDQ's rule; WSRL's E = 10), with the high-UTD step of
// their code: a batch of B rows is cut into U = policy_freq minibatches of
// B / U rows, each one critic step (and a target Polyak step), then ONE actor
// and temperature step on the whole batch. The table entry "wsrl" is this
// update; the trainer's recipe for --algo wsrl (ctrl_train.c) pre-trains with
// Cal-QL and hands its tensors (same names) to this agent at the phase switch.
#ifndef RLHF_CTRL_ALGO_WSRL_H
#define RLHF_CTRL_ALGO_WSRL_H

#include "base/base.h"

// target critics in the random subset of the target's minimum (with
// replacement, as their jax.random.randint draw)
#define CTRL_WSRL_SUBSAMPLE 2

// The draws of one update, in this order (floats):
//   for u = 0 .. U-1:  eps_next_u (B/U, A) N(0,1): the target's a' ~ pi(s')
//                      idx_u (K) the subset's members, floor(U[0,1) * E)
//   eps_pi   (B, A)  N(0,1): the actor loss's a ~ pi(s)
//   eps_temp (B, A)  N(0,1): the temperature loss's a' ~ pi(s') (their
//                    temperature_loss_fn takes the entropy at s')
// A test copies the rng before an update and calls this to see the same draws.
long ctrl_wsrl_noise_size(int B, int A, int U);
void ctrl_wsrl_draw_noise(rlhf_rng *rng, int B, int A, int U, int E, float *noise);

#endif
