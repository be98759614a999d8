// ctrl/corrupt: the data-corruption tool of RIQL's paper (Yang et al. 2023,
// "Towards Robust Offline Reinforcement Learning under Diverse Data
// Corruption"; definitions from the authors' attack.py,
// github.com/YangRui2015/RIQL): a share of an offline dataset's rows gets its
// observations, actions, rewards or next observations ("dynamics") corrupted,
// at random or adversarially. One call corrupts one field in place; call it
// again (another kind) to stack corruptions, as attack.py's attack_dataset does.
//
// Rows: each row is hit independently when u < rate, u ~ U[0, 1) drawn for
// every row in order (attack.py sample_indexs: a Bernoulli share, so the
// count is rate * n on average, not exactly).
// random (attack.py corrupt_obs / corrupt_act / corrupt_next_obs /
// corrupt_rew with corruption_random):
//   obs, act, dyn: x[i, j] += U(-scale, scale) * std_j, std_j the field's
//                  population std (ddof 0) over all n rows before corruption
//   rew:           r[i] = U(-scale, scale) * 30   (replaced, not added)
// adversarial:
//   rew:           r[i] = -scale * r[i]
//   obs, act:      attack.py's gradient attack on a given critic Q (an
//                  ensemble over [obs | act]): noise = p * std, p per entry in
//                  [-scale, scale], p found by `attack_steps` steps of
//                  p <- clip(p - lr g / (|g| + 1e-8), -scale, scale),
//                  lr = attack_step_size * scale, g = d mean_{k,b} Q_k / dp over
//                  the rows of one of 10 chunks (attack.py makes a fresh Adam
//                  each step, and Adam's first step is exactly this); start
//                  p = U(-scale, scale) * std (attack.py's sample_para, whose
//                  extra factor std we keep). Q must read the dataset's units:
//                  pass the critic's observation normaliser as `norm`.
//   dyn:           the same attack on next observations through the
//                  attacker's actor as well: g = d mean Q_k(s', pi(s')) / dp,
//                  s' = next_obs + p * std (attack.py loss_Q_for_next_obs);
//                  pi(s') the actor's deterministic action bias + scale *
//                  tanh(first act_dim outputs) in the box [act_low, act_high]
//                  (attack.py calls its EDAC actor in eval mode, whose
//                  forward as written samples; we take the deterministic
//                  action, as the actor acts at evaluation).
// Draws: one rlhf_rng seeded with `seed`: the n row draws, then the noise of
// the hit rows, row by row, column by column. Reproducible per seed.
#ifndef RLHF_CTRL_CORRUPT_H
#define RLHF_CTRL_CORRUPT_H

#include <stdint.h>

#include "base/base.h"
#include "ctrl/agent.h"
#include "ctrl/buffer.h"
#include "ctrl/mlp.h"

enum { CTRL_CORRUPT_OBS, CTRL_CORRUPT_ACT, CTRL_CORRUPT_REW, CTRL_CORRUPT_DYN };
enum { CTRL_CORRUPT_RANDOM, CTRL_CORRUPT_ADVERSARIAL };

typedef struct {
    int kind;    // CTRL_CORRUPT_OBS / _ACT / _REW / _DYN
    int mode;    // CTRL_CORRUPT_RANDOM / _ADVERSARIAL
    float rate;  // share of rows hit, in [0, 1] (RIQL's corruption_rate, 0.3)
    float scale; // RIQL's corruption_range (1.0), >= 0
    uint64_t seed;
    // adversarial obs / act / dyn: the attacker's Q ensemble (in = obs_dim +
    // act_dim, out 1; forward/backward are used, so not const), the
    // normaliser of its observations (NULL: raw), steps and step size
    ctrl_mlp *critic;
    // adversarial dyn: the attacker's actor (in obs_dim, out act_dim or 2 *
    // act_dim: a tanh head's pre-activations first) and its action box
    ctrl_mlp *actor;
    const float *act_low, *act_high;
    const ctrl_obs_norm *norm;
    int attack_steps;       // 100 (attack.py update_times)
    float attack_step_size; // 0.01 (attack.py step_size)
} ctrl_corrupt_opts;

// rate 0.3, scale 1, seed 0, random observations, 100 steps of 0.01
void ctrl_corrupt_defaults(ctrl_corrupt_opts *o);

// Corrupts t in place. hit (n, may be NULL) receives 1 for a corrupted row,
// 0 otherwise; *n_hit (may be NULL) the count. Returns 0, or -1 with err
// naming the bad field (rate, scale, kind, mode, critic shape).
int ctrl_corrupt(ctrl_transitions *t, const ctrl_corrupt_opts *o, uint8_t *hit, long *n_hit,
                 rlhf_err *err);

// "obs" | "act" | "rew" | "dyn" and "random" | "adversarial" -> the enum;
// 0, or -1 naming the word
int ctrl_corrupt_kind_parse(const char *s, int *kind, rlhf_err *err);
int ctrl_corrupt_mode_parse(const char *s, int *mode, rlhf_err *err);

// The attacker's critic from a trained agent: the agent's "critic" tensor
// (every algorithm here names its Q ensemble so) copied into a fresh ctrl_mlp
// of c's hidden / layers / n_critics over [obs | act]. 0, or -1 when the
// agent has no "critic" of that size. Free with ctrl_mlp_free.
int ctrl_corrupt_critic_from_agent(const ctrl_algo *algo, void *agent, const ctrl_algo_config *c,
                                   int obs_dim, int act_dim, ctrl_mlp *critic, rlhf_err *err);

// The attacker's actor from a trained agent: its "actor" tensor as a ctrl_mlp
// of c's hidden / layers over obs, out act_dim (iql, riql, td3, cpl: a tanh
// mean) or 2 * act_dim (the sac family: mean then log-std). 0, or -1 when the
// agent's actor is neither (famo2o's reads a balance too; fisor's is a
// diffusion score). Free with ctrl_mlp_free.
int ctrl_corrupt_actor_from_agent(const ctrl_algo *algo, void *agent, const ctrl_algo_config *c,
                                  int obs_dim, int act_dim, ctrl_mlp *actor, rlhf_err *err);

#endif
