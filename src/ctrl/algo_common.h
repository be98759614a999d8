// ctrl/algo_common: small helpers the algorithm files (algo_*.c) share —
// row concatenation, Adam steps counted in floats, scratch buffers, the action
// box, the refusals every create/update makes, CORL's default config and
// copying a tensor list out. Nothing here knows an algorithm.
#ifndef RLHF_CTRL_ALGO_COMMON_H
#define RLHF_CTRL_ALGO_COMMON_H

#include "ctrl/agent.h"
#include "ctrl/mlp.h"

// dst (B, S + W) = [obs | x] per row (obs (B, S), x (B, W))
void ctrl_concat(float *dst, const float *obs, const float *x, int B, int S, int W);

// one Adam step whose step count lives in the float *t (a checkpointed counter)
void ctrl_adam_step_counted(ctrl_adam *opt, float *t, float *params, const float *grads);

// scratch: frees *bufs[i] and allocates sizes[i] floats in its place, i < n
void ctrl_bufs_realloc(float **const bufs[], const long sizes[], int n);
// frees bufs[i], i < n
void ctrl_bufs_free(float *const bufs[], int n);

// the action box as one block of 4 A floats: *low (free this one) | *high |
// *scale = (high - low) / 2 | *bias = (high + low) / 2, so an action is
// bias + scale * tanh(...)
void ctrl_action_box(const float *low, const float *high, int A, float **lo, float **hi,
                     float **scale, float **bias);
// a[b, i] = clip(a[b, i], low[i], high[i]) for B rows of A
void ctrl_clip_actions(float *a, const float *low, const float *high, int B, int A);

// a tanh-Gaussian actor's actions for B rows (the `act` of SAC, RO2O, WSRL):
// the actor's output (B, 2A) goes to scratch `out`, `pre` and `noise` are
// (B, A) scratch; deterministic: bias + scale * tanh(mu), else one sample with
// standard normal noise drawn from rng, row by row
void ctrl_tanh_gauss_act(ctrl_mlp *actor, const float *obs, int B, int A, int deterministic,
                         rlhf_rng *rng, const float *scale, const float *bias, float log_std_min,
                         float log_std_max, float *out, float *pre, float *noise, float *action);

// create's common refusals, naming the algorithm `who`: obs/act dims, hidden
// and layers >= 1, n_critics >= 1 when `critics`, every bound finite low < high
int ctrl_check_create(const char *who, const ctrl_algo_config *c, int S, int A, const float *low,
                      const float *high, int critics, rlhf_err *err);
// update's refusal: a batch of no rows or of other dims than the agent's
int ctrl_check_batch(const char *who, const ctrl_batch *b, int S, int A, rlhf_err *err);

// CORL's values (td3_bc.py, iql.py, awac.py, cql.py) for every field, TD3's
// target smoothing (policy_freq 2, noise 0.2 / 0.5) included; the algorithms
// change what differs
void ctrl_corl_defaults(ctrl_algo_config *c);

// ---- MPI ranks (docs/mpi.md, "Control"): a data-parallel update. Every rank
// draws the same global batch and the same noise (one seed); a rank computes
// its rows' part and the gradients are summed over the ranks before each Adam
// step, so every rank takes the same step. On one process every function
// here leaves the numbers as they were (bit for bit).
typedef struct {
    int lo, n, B; // this rank's rows [lo, lo + n) of a batch of B
} ctrl_share;
// this rank's share of B rows (dist_share); one process, or inside
// ctrl_share_whole(1): all of them
ctrl_share ctrl_share_rows(int B);
// on = 1: every rank computes each batch whole and the same, and the
// functions below do nothing, until ctrl_share_whole(0) (for a batch of fewer
// rows than ranks: MOORL's meta-epoch on a small buffer); every rank must make
// the same calls
void ctrl_share_whole(int on);
// a view of b's rows [s.lo, s.lo + s.n) (pointers into b; n_offline clipped)
ctrl_batch ctrl_share_batch(const ctrl_batch *b, ctrl_share s);
// g (n floats): the gradient of a mean over this rank's s.n rows becomes its
// part of the gradient of the mean over all B (times s.n / B), summed over
// the ranks in place
void ctrl_share_grads(ctrl_share s, float *g, long n);
// v[0..k): means over this rank's s.n rows become the means over all B rows
void ctrl_share_means(ctrl_share s, double *v, int k);
// v[0..k): sums over this rank's rows become the sums over all rows
void ctrl_share_sums(ctrl_share s, double *v, int k);
// adds names[i] = v[i] to m, i < k: v[i] means over this rank's rows, turned
// into the batch's means first (ctrl_share_means)
void ctrl_share_metrics(ctrl_metrics *m, ctrl_share s, const char *const *names, double *v, int k);

// appends NAME (params), NAME.adam_m and NAME.adam_v (the moments of the
// ctrl_adam opt), opt.n floats each, to all[n++]; NAME is a string literal
#define CTRL_TENSORS_ADAM(all, n, NAME, params, opt)                                               \
    ((all)[(n)++] = (ctrl_tensor){NAME, (params), (opt).n},                                        \
     (all)[(n)++] = (ctrl_tensor){NAME ".adam_m", (opt).m, (opt).n},                               \
     (all)[(n)++] = (ctrl_tensor){NAME ".adam_v", (opt).v, (opt).n})

// copies the first min(n, max) of all[] into out; returns that count
int ctrl_tensors_out(ctrl_tensor *out, int max, const ctrl_tensor *all, int n);

// the SAC family's networks (SAC/CQL/Cal-QL, SAC-N/RO2O, WSRL, H2O): the
// tanh-Gaussian actor (S -> 2A), the critic ensemble (S + A -> 1, E members)
// and its Polyak target, the temperature log_alpha and its gradient, an Adam
// for each trained one
typedef struct {
    ctrl_mlp actor, critic, critic_target;
    ctrl_adam actor_opt, critic_opt, alpha_opt;
    float log_alpha, dlog_alpha;
} ctrl_sac_nets;

// draws actor, critic, critic_target from rng in that order, copies the critic
// into the target, sets up the three Adams (c's actor_lr, critic_lr, alpha_lr)
// and log_alpha = log(c->sac_alpha)
void ctrl_sac_nets_init(ctrl_sac_nets *k, const ctrl_algo_config *c, int S, int A, int E,
                        rlhf_rng *rng);
// appends actor, critic (each with its Adam moments), critic_target and
// log_alpha (with its moments) to all[n...]: 10 tensors; returns the new n
int ctrl_sac_nets_tensors(ctrl_sac_nets *k, ctrl_tensor *all, int n);
void ctrl_sac_nets_free(ctrl_sac_nets *k);

#endif
