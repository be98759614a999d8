// ctrl/algo_fisor: FISOR (table `fisor`, algo_fisor.c) — what the tests need
// besides the table: the order of the random draws.
//
// One update draws, in this order: the diffusion step of each row,
// t_b = floor(U[0,1) * T) (capped at T - 1), b = 0 .. B-1, then the training
// noise eps (B, A) standard normal, row-major.
// `act` on B states draws ctrl_fisor_noise_size(T, B * N, A) standard normals
// (N = fisor_samples candidates per state; the candidates of state b are rows
// b N .. b N + N - 1 of the sampler's batch), in the sampler's order.
#ifndef RLHF_CTRL_ALGO_FISOR_H
#define RLHF_CTRL_ALGO_FISOR_H

#include "ctrl/agent.h"

extern const ctrl_algo ctrl_algo_fisor;

// the draws of one update (t: B ints, eps: B * A floats)
void ctrl_fisor_draw_update_noise(rlhf_rng *rng, int B, int A, int T, int *t, float *eps);

#endif
