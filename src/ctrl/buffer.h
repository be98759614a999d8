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
    long n, cap;                              // rows held, rows allocated
    long next;                                // ring position for ctrl_buffer_add once n == cap
    float *obs, *act, *rew, *next_obs, *cost; // (cap, obs_dim), (cap, act_dim), (cap) ...
    uint8_t *terminal, *timeout;              // (cap)
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
    float *obs, *act, *rew, *next_obs, *done, *mc_return; // done = terminal as 0/1
    float *cost;
    int n_offline; // rows 0..n_offline-1 came from the dataset, the rest from the online
                   // buffer (set by ctrl_sample_mixed and by the trainer; ctrl_sample leaves it)
} ctrl_batch;
void ctrl_batch_alloc(ctrl_batch *b, int B, int obs_dim, int act_dim);
void ctrl_batch_free(ctrl_batch *b);
// B rows uniformly with replacement from t
void ctrl_sample(const ctrl_transitions *t, ctrl_batch *b, rlhf_rng *rng);
// round(ratio * B) rows from `offline`, the rest from `online` (ratio in
// [0,1]; an empty source gives its share to the other). Rows 0..k-1 of the
// batch are the offline draws and rows k..B-1 the online ones (k from
// ctrl_mixed_offline_count); the rng is drawn once per row in that order, so a
// run is reproducible from the rng state. Either source may be NULL; both
// empty is a programming error (assert).
void ctrl_sample_mixed(const ctrl_transitions *offline, const ctrl_transitions *online, float ratio,
                       ctrl_batch *b, rlhf_rng *rng);
// k, the number of offline rows ctrl_sample_mixed puts first in a batch of B
int ctrl_mixed_offline_count(const ctrl_transitions *offline, const ctrl_transitions *online,
                             float ratio, int B);

// Monte-Carlo return-to-go (Cal-QL's reference values; CORL's cal_ql.py
// get_return_to_go). Rows are visited oldest first (a full ring starts at
// `next`); an episode ends at a row with terminal or timeout set, or at the
// newest row. Within an episode
//     mc_return[i] = r_i + gamma * mc_return[i+1],   and at its last row L
//     mc_return[L] = r_L                              (terminal, or timeout
//                                                      without bootstrap)
// which is what CORL does for every episode when is_sparse_reward is off: a
// timeout is NOT bootstrapped there, the truncated episode simply ends.
// timeout_bootstrap != 0 (ours, not CORL's): the last row of an episode that
// ends by timeout (not terminal) gets r_L / (1 - gamma), as if its reward went
// on forever; for an episode of constant reward r that gives r / (1 - gamma)
// on every row, i.e. Cal-QL's sparse rule for failed antmaze episodes.
// mc_return is allocated (cap rows) on first use; ctrl_buffer_add writes 0
// into it for new rows, as CORL's online buffer does.
void ctrl_transitions_mc_returns(ctrl_transitions *t, float gamma, int timeout_bootstrap);
// Cal-QL's exact sparse-reward rule (is_sparse_reward): an episode whose LAST
// reward equals fail_reward (ref_min_score * reward_scale + reward_bias in
// CORL) gets fail_reward / (1 - gamma) on every row, whatever ended it; other
// episodes as ctrl_transitions_mc_returns(t, gamma, 0).
void ctrl_transitions_mc_returns_sparse(ctrl_transitions *t, float gamma, float fail_reward);

// Observation normalisation (CORL's compute_mean_std / normalize_states: mean
// and population std (ddof 0) of t's observations per column, std + eps, CORL
// uses eps 1e-3; apply computes (x - mean) / std; the caller applies it to obs
// and next_obs alike)
typedef struct {
    int dim;
    float *mean, *std;
} ctrl_obs_norm;
void ctrl_obs_norm_fit(ctrl_obs_norm *nrm, const ctrl_transitions *t, float eps);
void ctrl_obs_norm_identity(ctrl_obs_norm *nrm, int dim);
void ctrl_obs_norm_apply(const ctrl_obs_norm *nrm, float *x, long rows); // in place
void ctrl_obs_norm_free(ctrl_obs_norm *nrm);
// returns of the complete episodes in t (the sums of rewards of episodes that
// end with terminal or timeout, oldest first; a trailing unfinished episode is
// left out, as in CORL's return_reward_range), for reward scaling (CORL's
// locomotion rule: r *= 1000 / (max_return - min_return)); returns the count
// (which may exceed max_out: only the first max_out are written)
long ctrl_episode_returns(const ctrl_transitions *t, float *out, long max_out);
void ctrl_reward_affine(ctrl_transitions *t, float scale, float shift); // r = r*scale + shift
// k whole episodes of t (stored oldest first, as a loaded dataset is; an episode
// ends at a terminal or timeout row, a trailing unfinished one is never drawn)
// into out (allocated, exactly their rows), drawn without replacement by a
// partial Fisher-Yates shuffle on rng and kept in t's order; *episodes gets
// how many complete episodes t holds. -1 + err when k < 1 or k > that count.
int ctrl_transitions_episodes(const ctrl_transitions *t, int k, rlhf_rng *rng,
                              ctrl_transitions *out, long *episodes, rlhf_err *err);

// Checkpoints: a buffer's whole state (rows 0..n-1 in storage order, cap,
// next, costs and mc_returns when present) as a safetensors file (io/
// safetensors.h, so it works without HDF5), written atomically; tensors are
// named as in the HDF5 layout, terminals/timeouts U8, metadata format =
// "ctrl_transitions_v1", cap, next. Load allocates t (cap rows) and restores it
// exactly, so ctrl_buffer_add and ctrl_sample continue as if never stopped; a
// malformed file is an error naming the file and the tensor, t left empty.
int ctrl_transitions_save(const char *path, const ctrl_transitions *t, rlhf_err *err);
int ctrl_transitions_load(const char *path, ctrl_transitions *t, rlhf_err *err);

#endif
