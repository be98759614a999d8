// ctrl/buffer: transitions — an offline dataset in memory (D4RL's fields), the
// online replay buffer (a ring of the same layout), sampling from one or from
// both at a ratio, observation and reward normalisation, and Monte-Carlo
// returns-to-go (Cal-QL's reference values).
#ifndef RLHF_CTRL_BUFFER_H
#define RLHF_CTRL_BUFFER_H

#include <stdint.h>

#include "base/base.h"

// D4RL's layout: row i is (observations[i], actions[i], rewards[i],
// next_observations[i], terminals[i], timeouts[i]); costs may be NULL.
typedef struct {
    int obs_dim, act_dim;
    long n, cap;      // rows held, rows allocated
    long next;        // ring position for ctrl_buffer_add once n == cap
    float *obs, *act, *rew, *next_obs, *cost;  // (cap, obs_dim), (cap, act_dim), (cap) ...
    uint8_t *terminal, *timeout;               // (cap)
    float *mc_return; // (cap) discounted return-to-go, or NULL until computed
} ctrl_transitions;

void ctrl_transitions_alloc(ctrl_transitions *t, int obs_dim, int act_dim, long cap, int with_cost);
void ctrl_transitions_free(ctrl_transitions *t);
// appends one transition; when full, overwrites the oldest (a ring)
void ctrl_buffer_add(ctrl_transitions *t, const float *obs, const float *act, float rew,
                     const float *next_obs, int terminal, int timeout, float cost);

// A sampled batch (rows gathered into contiguous arrays; the batch owns them)
typedef struct {
    int B, obs_dim, act_dim;
    float *obs, *act, *rew, *next_obs, *done, *mc_return;  // done = terminal as 0/1
    float *cost;
} ctrl_batch;
void ctrl_batch_alloc(ctrl_batch *b, int B, int obs_dim, int act_dim);
void ctrl_batch_free(ctrl_batch *b);
// B rows uniformly with replacement from t
void ctrl_sample(const ctrl_transitions *t, ctrl_batch *b, rlhf_rng *rng);
// round(ratio * B) rows from `offline`, the rest from `online` (ratio in
// [0,1]; an empty source gives its share to the other)
void ctrl_sample_mixed(const ctrl_transitions *offline, const ctrl_transitions *online, float ratio,
                       ctrl_batch *b, rlhf_rng *rng);

// Episode boundaries are rows with terminal or timeout set (and the last row).
// mc_return[i] = r_i + gamma * mc_return[i+1] within an episode; a truncated
// (timeout) episode's last row uses r / (1 - gamma) continuation as Cal-QL's
// reference code does for sparse tasks only when `timeout_bootstrap`, else r.
void ctrl_transitions_mc_returns(ctrl_transitions *t, float gamma, int timeout_bootstrap);

// Observation normalisation (CORL's: mean and std over the dataset, std + eps)
typedef struct {
    int dim;
    float *mean, *std;
} ctrl_obs_norm;
void ctrl_obs_norm_fit(ctrl_obs_norm *nrm, const ctrl_transitions *t, float eps);
void ctrl_obs_norm_identity(ctrl_obs_norm *nrm, int dim);
void ctrl_obs_norm_apply(const ctrl_obs_norm *nrm, float *x, long rows);  // in place
void ctrl_obs_norm_free(ctrl_obs_norm *nrm);
// returns of the complete episodes in t (the sums of rewards), for reward scaling
// (CORL's locomotion rule: r *= 1000 / (max_return - min_return)); returns count
long ctrl_episode_returns(const ctrl_transitions *t, float *out, long max_out);
void ctrl_reward_affine(ctrl_transitions *t, float scale, float shift);  // r = r*scale + shift

#endif
