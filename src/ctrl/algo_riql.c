// ctrl/algo_riql: RIQL, robust IQL under data corruption (Yang, Zhong, Xu,
// Zhang, Zhang & Zhang 2023, "Towards Robust Offline Reinforcement Learning
// under Diverse Data Corruption"), behind the ctrl_algo table "riql". The
// update follows the authors' RIQL.py (github.com/YangRui2015/RIQL,
// ImplicitQLearning.train); our own code. IQL (algo_iql.c) with three changes:
//
//   * observation normalisation: RIQL.py normalises states by the dataset's
//     mean and std (+1e-3). Here that is the trainer's job (`rlhf ctrl train
//     --normalize_obs 1`, CORL's compute_mean_std); the agent sees normalised
//     observations and does nothing itself.
//   * V's target is the riql_quantile (alpha, 0.25) of the K = n_critics (5)
//     target-Q members (torch.quantile's linear interpolation,
//     ctrl_ensemble_quantile) instead of their minimum.
//   * Q's loss is a Huber loss with threshold delta = 1/riql_sigma^2 on
//     y - Q_k, y clipped to [-100, 1000] (RIQL.py _update_q).
//
//   step += 1
//   v' = V(s')                                       (before V's update)
//   qt = quantile_alpha over k of Q_target_k(s, a)
//   adv = qt - V(s); V loss = mean |iql_tau - 1[adv < 0]| adv^2; Adam step on V
//   y = clip(r + gamma (1 - d) v', -100, 1000)
//   Q loss = mean over k, b of huber_delta(y - Q_k(s, a)); Adam step on Q;
//   Polyak (tau) on Q_target
//   w = min(exp(beta adv), adv_clip)                 (adv from before V's step)
//   actor loss = mean_b w |pi(s) - a|^2 (the deterministic actor, RIQL.py's
//   default iql_deterministic = True); Adam step at the cosine-annealed lr
//   actor_lr (1 + cos(pi k / max_steps)) / 2, k the actor steps before
//   (PyTorch's CosineAnnealingLR, as algo_iql.c).
// pi(s) = bias + scale * tanh(net(s)) (policy.h's deterministic head; for the
// [-1, 1] MuJoCo box that is RIQL.py's DeterministicPolicy).
// The critic starts as RIQL.py's VectorizedQ ("init as in the EDAC paper"):
// hidden biases 0.1, last layer's W and b ~ U(-3e-3, 3e-3); the other weights
// keep ctrl_mlp's PyTorch-default init.
// Exploration (act, not deterministic): clip(expl_noise N(0,1), +-noise_clip)
// * scale added, as algo_iql.c's deterministic actor.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/algo_common.h"
#include "ctrl/ctrl_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"
#include "ctrl/riql_loss.h"

// RIQL.py _update_q: torch.clamp(targets, -100, 1000)
#define RIQL_TARGET_MIN (-100.0f)
#define RIQL_TARGET_MAX 1000.0f

// the step and the Adam step counts, as floats for the checkpoint
enum { C_STEP, C_ACTOR_T, C_CRITIC_T, C_VALUE_T, N_COUNTERS };

typedef struct {
    int S, A;
    ctrl_algo_config c;
    float *low, *high, *scale, *bias; // (A)
    ctrl_mlp actor, critic, critic_target, value;
    ctrl_adam actor_opt, critic_opt, value_opt;
    float counters[N_COUNTERS];
    int cap; // scratch, grown to the largest batch
    float *sa, *u, *du, *mean, *dmean, *q, *dq, *y, *v, *dv, *adv, *w, *qt, *eps;
} riql_agent;

static void grow(riql_agent *g, int B) {
    if (B <= g->cap) return;
    long BA = (long)B * g->A, BX = (long)B * (g->S + g->A), BE = (long)B * g->c.n_critics;
    float **bufs[] = {&g->sa, &g->u, &g->du, &g->mean, &g->dmean, &g->q,  &g->dq,
                      &g->y,  &g->v, &g->dv, &g->adv,  &g->w,     &g->qt, &g->eps};
    long sizes[] = {BX, BA, BA, BA, BA, BE, BE, B, B, B, B, B, B, BA};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof bufs / sizeof bufs[0]));
    g->cap = B;
}

// RIQL.py's TrainConfig: IQL's CORL values, 5 critics, quantile 0.25, sigma
// 1, deterministic actor; the other fields get CORL's defaults so one config
// is complete whatever the table
static void riql_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c);
    c->n_critics = 5;
    c->expl_noise = 0.03f;
    c->log_std_min = -5.0f;
    c->riql_quantile = 0.25f;
    c->riql_sigma = 1.0f;
}

// RIQL.py's VectorizedQ init: hidden biases 0.1, last W and b ~ U(-3e-3, 3e-3)
static void edac_critic_init(ctrl_mlp *m, rlhf_rng *rng) {
    for (int e = 0; e < m->ens; e++) {
        int in = m->in;
        for (int l = 0; l < m->layers; l++) {
            float *b = ctrl_mlp_weight(m, e, l) + (long)m->hidden * in;
            for (int j = 0; j < m->hidden; j++) b[j] = 0.1f;
            in = m->hidden;
        }
        float *p = ctrl_mlp_weight(m, e, m->layers);
        for (long j = 0; j < (long)m->out * (in + 1); j++)
            p[j] = (2 * rng_uniform(rng) - 1) * 3e-3f;
    }
}

static int riql_create(const ctrl_algo_config *c, int S, int A, const float *low, const float *high,
                       rlhf_rng *rng, void **out, rlhf_err *err) {
    if (ctrl_check_create("riql", c, S, A, low, high, 1, err)) return -1;
    if (c->n_critics > 64)
        return rlhf_fail(err, "ctrl riql: n_critics %d must be in [1, 64]", c->n_critics);
    if (!(c->riql_quantile >= 0 && c->riql_quantile <= 1))
        return rlhf_fail(err, "ctrl riql: riql_quantile %g must be in [0, 1]", c->riql_quantile);
    if (!(c->riql_sigma > 0 && isfinite(c->riql_sigma)))
        return rlhf_fail(err, "ctrl riql: riql_sigma %g must be > 0", c->riql_sigma);
    riql_agent *g = xcalloc(1, sizeof *g);
    g->S = S;
    g->A = A;
    g->c = *c;
    ctrl_action_box(low, high, A, &g->low, &g->high, &g->scale, &g->bias);
    ctrl_mlp_init(&g->actor, S, c->hidden, c->layers, A, 1, rng);
    ctrl_adam_init(&g->actor_opt, g->actor.n_params, c->actor_lr);
    ctrl_mlp_init(&g->critic, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
    edac_critic_init(&g->critic, rng);
    ctrl_adam_init(&g->critic_opt, g->critic.n_params, c->critic_lr);
    ctrl_mlp_init(&g->critic_target, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, 1.0f);
    ctrl_mlp_init(&g->value, S, c->hidden, c->layers, 1, 1, rng);
    ctrl_adam_init(&g->value_opt, g->value.n_params, c->value_lr);
    *out = g;
    return 0;
}

// on MPI ranks each takes its rows of the batch (every term is per row: the
// ensemble's quantile and spread are over the members of a row)
static int riql_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                       rlhf_err *err) {
    (void)rng;
    riql_agent *g = agent;
    if (ctrl_check_batch("riql", gb, g->S, g->A, err)) return -1;
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B, E = g->c.n_critics, A = g->A;
    grow(g, B);
    float k = g->counters[C_ACTOR_T]; // actor steps taken before this one
    g->counters[C_STEP] += 1;

    // V(s') for the Q target, before V moves; y = clip(r + gamma (1 - d) V(s'))
    ctrl_mlp_forward(&g->value, b->next_obs, B, g->y);
    ctrl_td_target(g->y, b->rew, b->done, g->y, 1, B, g->c.gamma);
    for (int r = 0; r < B; r++) g->y[r] = fminf(fmaxf(g->y[r], RIQL_TARGET_MIN), RIQL_TARGET_MAX);

    // V: expectile towards the alpha-quantile of the target ensemble
    ctrl_concat(g->sa, b->obs, b->act, B, g->S, A);
    ctrl_mlp_forward(&g->critic_target, g->sa, B, g->q);
    ctrl_ensemble_quantile(g->qt, g->q, E, B, g->c.riql_quantile);
    double qt_std = 0; // the target members' spread (RIQL.py logs it)
    for (int r = 0; r < B; r++) {
        double m = 0, s = 0;
        for (int e = 0; e < E; e++) m += g->q[(long)e * B + r];
        m /= E;
        for (int e = 0; e < E; e++) s += (g->q[(long)e * B + r] - m) * (g->q[(long)e * B + r] - m);
        qt_std += E > 1 ? sqrt(s / (E - 1)) : 0;
    }
    ctrl_mlp_forward(&g->value, b->obs, B, g->v);
    for (int r = 0; r < B; r++) g->adv[r] = g->qt[r] - g->v[r];
    memset(g->dv, 0, B * sizeof(float));
    double value_loss = ctrl_expectile_loss(g->dv, g->qt, g->v, B, g->c.iql_tau);
    ctrl_mlp_zero_grad(&g->value);
    ctrl_mlp_backward(&g->value, g->dv, NULL, 1);
    ctrl_share_grads(sh, g->value.grads, g->value.n_params);
    ctrl_adam_step_counted(&g->value_opt, &g->counters[C_VALUE_T], g->value.params, g->value.grads);

    // Q: Huber to the clipped target, mean over members and rows
    ctrl_mlp_forward(&g->critic, g->sa, B, g->q);
    double qmean = 0;
    for (long r = 0; r < (long)E * B; r++) qmean += g->q[r];
    memset(g->dq, 0, (long)E * B * sizeof(float));
    double q_loss = ctrl_riql_huber_loss(g->dq, g->q, g->y, E, B, g->c.riql_sigma);
    ctrl_mlp_zero_grad(&g->critic);
    ctrl_mlp_backward(&g->critic, g->dq, NULL, 1);
    ctrl_share_grads(sh, g->critic.grads, g->critic.n_params);
    ctrl_adam_step_counted(&g->critic_opt, &g->counters[C_CRITIC_T], g->critic.params,
                           g->critic.grads);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, g->c.tau);

    // actor: exp-advantage weighted squared error, cosine-annealed lr
    ctrl_exp_adv_weights(g->w, g->adv, B, g->c.iql_beta, g->c.adv_clip);
    float lr = g->c.actor_lr;
    if (g->c.max_steps > 0)
        lr = (float)(g->c.actor_lr * 0.5 * (1.0 + cos(M_PI * (double)k / g->c.max_steps)));
    ctrl_mlp_forward(&g->actor, b->obs, B, g->u);
    ctrl_det_forward(g->mean, g->u, g->scale, g->bias, B, A);
    memset(g->dmean, 0, (long)B * A * sizeof(float));
    double actor_loss = ctrl_weighted_sq_loss(g->dmean, g->mean, b->act, g->w, B, A);
    memset(g->du, 0, (long)B * A * sizeof(float));
    ctrl_det_backward(g->du, g->dmean, g->mean, g->scale, g->bias, B, A);
    ctrl_mlp_zero_grad(&g->actor);
    ctrl_mlp_backward(&g->actor, g->du, NULL, 1);
    g->actor_opt.lr = lr;
    ctrl_share_grads(sh, g->actor.grads, g->actor.n_params);
    ctrl_adam_step_counted(&g->actor_opt, &g->counters[C_ACTOR_T], g->actor.params, g->actor.grads);

    double adv_mean = 0;
    for (int r = 0; r < B; r++) adv_mean += g->adv[r];
    static const char *const names[] = {"value_loss", "q_loss",   "actor_loss",
                                        "q_mean",     "adv_mean", "target_q_std"};
    double m[] = {value_loss,  q_loss, actor_loss, qmean / ((double)E * B), adv_mean / B,
                  qt_std / B};
    ctrl_share_metrics(metrics, sh, names, m, 6);
    ctrl_metrics_add(metrics, "actor_lr", lr);
    return 0;
}

static void riql_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                     float *action) {
    riql_agent *g = agent;
    grow(g, B);
    ctrl_mlp_forward(&g->actor, obs, B, g->u);
    ctrl_det_forward(action, g->u, g->scale, g->bias, B, g->A);
    if (deterministic) return;
    for (long k = 0; k < (long)B * g->A; k++) g->eps[k] = rng_normal(rng);
    for (int r = 0; r < B; r++)
        for (int i = 0; i < g->A; i++) {
            long k = (long)r * g->A + i;
            float n = fminf(fmaxf(g->c.expl_noise * g->eps[k], -g->c.noise_clip), g->c.noise_clip);
            action[k] += n * g->scale[i];
        }
    ctrl_clip_actions(action, g->low, g->high, B, g->A);
}

static int riql_tensors(void *agent, ctrl_tensor *out, int max) {
    riql_agent *g = agent;
    ctrl_tensor all[12];
    int n = 0;
    CTRL_TENSORS_ADAM(all, n, "actor", g->actor.params, g->actor_opt);
    CTRL_TENSORS_ADAM(all, n, "critic", g->critic.params, g->critic_opt);
    all[n++] = (ctrl_tensor){"critic_target", g->critic_target.params, g->critic.n_params};
    CTRL_TENSORS_ADAM(all, n, "value", g->value.params, g->value_opt);
    // step, actor / critic / value Adam t
    all[n++] = (ctrl_tensor){"counters", g->counters, N_COUNTERS};
    return ctrl_tensors_out(out, max, all, n);
}

static void riql_free(void *agent) {
    riql_agent *g = agent;
    if (!g) return;
    ctrl_mlp_free(&g->actor);
    ctrl_mlp_free(&g->critic);
    ctrl_mlp_free(&g->critic_target);
    ctrl_mlp_free(&g->value);
    ctrl_adam_free(&g->actor_opt);
    ctrl_adam_free(&g->critic_opt);
    ctrl_adam_free(&g->value_opt);
    float *bufs[] = {g->sa, g->u, g->du, g->mean, g->dmean, g->q,  g->dq,
                     g->y,  g->v, g->dv, g->adv,  g->w,     g->qt, g->eps};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_riql = {
    .name = "riql",
    .summary = "RIQL: IQL with a quantile of 5 target critics for V, Huber critic loss, "
               "deterministic AWR actor (Yang et al. 2023)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = riql_defaults,
    .create = riql_create,
    .update = riql_update,
    .act = riql_act,
    .tensors = riql_tensors,
    .free = riql_free,
};
