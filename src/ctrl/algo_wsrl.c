// ctrl/algo_wsrl: WSRL's online update (contract in algo_wsrl.h), written
// from the paper and the loss functions of their SAC agent (wsrl/agents/sac.py):
//
//   per minibatch u (B/U rows), one critic step:
//     a' ~ pi(s'),  y = r + gamma (1 - d) min_{k in idx_u} Qt_k(s', a')
//                       (no entropy backup: their backup_entropy = False)
//     L_Q = mean_{e, b} (Q_e(s, a) - y)^2    (mean over the members too)
//     then Qt <- (1 - tau) Qt + tau Q
//   then on the whole batch (B rows), from the same parameters:
//     actor        mean_b (alpha logp(a|s) - min_e Q_e(s, a)),  a ~ pi(s) reparameterised
//     temperature  -log_alpha mean_b (logp(a'|s') + target_entropy),  a' ~ pi(s')
//   and one Adam step each.
//
// Networks and tensor names are those of algo_sac.c's Cal-QL agent (actor,
// critic, critic_target, log_alpha, their Adam moments, step), so a Cal-QL
// pre-training hands everything over by name at the trainer's phase switch;
// `step` counts actor/temperature Adam steps (it continues Cal-QL's count)
// and `critic_lead` how many more steps the critic's Adam has taken.
#include "ctrl/algo_wsrl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "ctrl/agent.h"
#include "ctrl/algo_common.h"
#include "ctrl/cql_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"

typedef struct {
    ctrl_algo_config c;
    int O, A, E, U;
    float *low, *high, *scale, *bias;
    ctrl_sac_nets net;       // actor, critic, critic_target, their Adams, log_alpha
    float step, critic_lead; // checkpointed counters (exact below 2^24)
    int cap;                 // scratch rows
    float *noise, *x, *dx, *out, *dout, *pre, *act, *logp, *q, *dq, *y, *dlogp, *dact;
} wsrl_agent;

long ctrl_wsrl_noise_size(int B, int A, int U) {
    return (long)B * A + (long)U * CTRL_WSRL_SUBSAMPLE + 2L * B * A;
}

void ctrl_wsrl_draw_noise(rlhf_rng *rng, int B, int A, int U, int E, float *noise) {
    long k = 0, mb = B / U;
    for (int u = 0; u < U; u++) {
        for (long i = 0; i < mb * A; i++) noise[k++] = rng_normal(rng);
        for (int j = 0; j < CTRL_WSRL_SUBSAMPLE; j++) {
            int e = (int)(rng_uniform(rng) * (float)E);
            noise[k++] = (float)(e < E ? e : E - 1);
        }
    }
    for (long i = 0; i < 2L * B * A; i++) noise[k++] = rng_normal(rng);
}

// WSRL's settings (their sac_config.py + wsrl_config.py): 10 critics, 256x2,
// actor and temperature lr 1e-4, critic 3e-4, 4 critic minibatches per actor
// step; and, for the Cal-QL pre-training the trainer's recipe runs on the
// same config, Cal-QL's cql_alpha 5 with 10 sampled actions
static void wsrl_defaults(ctrl_algo_config *c) {
    memset(c, 0, sizeof *c);
    c->hidden = 256;
    c->layers = 2;
    c->n_critics = 10;
    c->gamma = 0.99f;
    c->tau = 5e-3f;
    c->actor_lr = c->alpha_lr = 1e-4f;
    c->critic_lr = c->value_lr = 3e-4f;
    c->policy_freq = 4;
    c->sac_alpha = 1.0f;
    c->autotune_alpha = 1;
    c->target_entropy = NAN;
    c->cql_alpha = 5.0f;
    c->cql_n_actions = 10;
    c->cql_temp = 1.0f;
    c->calql = 1;
    c->log_std_min = -20.0f;
    c->log_std_max = 2.0f;
    c->max_steps = 1000000;
}

static void grow(wsrl_agent *g, int B) {
    if (B <= g->cap) return;
    int O = g->O, A = g->A, E = g->E;
    float **bufs[] = {&g->noise, &g->x, &g->dx, &g->out, &g->dout,  &g->pre, &g->act,
                      &g->logp,  &g->q, &g->dq, &g->y,   &g->dlogp, &g->dact};
    long sizes[] = {ctrl_wsrl_noise_size(B, A, g->U),
                    (long)B * (O + A),
                    (long)B * (O + A),
                    (long)B * 2 * A,
                    (long)B * 2 * A,
                    (long)B * A,
                    (long)B * A,
                    B,
                    (long)E * B,
                    (long)E * B,
                    B,
                    B,
                    (long)B * A};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof sizes / sizeof sizes[0]));
    g->cap = B;
}

static int wsrl_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *act_low,
                       const float *act_high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    if (ctrl_check_create("wsrl", c, obs_dim, act_dim, act_low, act_high, 1, err)) return -1;
    if (c->policy_freq < 1)
        return rlhf_fail(err,
                         "ctrl wsrl: policy_freq (critic minibatches per actor step) is %d; "
                         "it must be at least 1",
                         c->policy_freq);
    wsrl_agent *g = xcalloc(1, sizeof *g);
    g->c = *c;
    if (isnan(g->c.target_entropy)) g->c.target_entropy = -(float)act_dim;
    g->O = obs_dim;
    g->A = act_dim;
    g->E = c->n_critics;
    g->U = c->policy_freq;
    ctrl_action_box(act_low, act_high, act_dim, &g->low, &g->high, &g->scale, &g->bias);
    // the same draws, in the same order, as SAC's create
    ctrl_sac_nets_init(&g->net, c, obs_dim, act_dim, g->E, rng);
    *agent = g;
    return 0;
}

static double mean_of(const float *v, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

// a ~ pi(rows of obs) with eps -> g->act, g->logp (g->out, g->pre kept for backward)
static void policy_sample(wsrl_agent *g, const float *obs, int R, const float *eps) {
    ctrl_mlp_forward(&g->net.actor, obs, R, g->out);
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->out, eps, g->scale, g->bias, R, g->A,
                            g->c.log_std_min, g->c.log_std_max);
}

// one critic step on rows [r0, r0 + R) of b (on MPI ranks: this rank's share
// sh of a minibatch); returns the loss, *qmean the mean Q(s, a), over these rows
static double critic_step(wsrl_agent *g, const ctrl_batch *b, int r0, int R, const float *eps,
                          const float *idx, double *qmean, ctrl_share sh) {
    int O = g->O, A = g->A, E = g->E;
    const float *obs = b->obs + (long)r0 * O, *next = b->next_obs + (long)r0 * O;
    const float *act = b->act + (long)r0 * A, *rew = b->rew + r0, *done = b->done + r0;
    policy_sample(g, next, R, eps);
    ctrl_concat(g->x, next, g->act, R, O, A);
    ctrl_mlp_forward(&g->net.critic_target, g->x, R, g->q);
    for (int r = 0; r < R; r++) {
        float m = INFINITY;
        for (int k = 0; k < CTRL_WSRL_SUBSAMPLE; k++) m = fminf(m, g->q[(long)idx[k] * R + r]);
        g->y[r] = rew[r] + g->c.gamma * (1.0f - done[r]) * m;
    }
    ctrl_concat(g->x, obs, act, R, O, A);
    ctrl_mlp_forward(&g->net.critic, g->x, R, g->q);
    // ctrl_sac_critic_mse sums the members' MSE; WSRL takes the mean over them
    double loss = ctrl_sac_critic_mse(g->q, g->y, E, R, g->dq) / E;
    for (long i = 0; i < (long)E * R; i++) g->dq[i] /= (float)E;
    *qmean = mean_of(g->q, (long)E * R);
    ctrl_mlp_zero_grad(&g->net.critic);
    ctrl_mlp_backward(&g->net.critic, g->dq, NULL, 1);
    ctrl_share_grads(sh, g->net.critic.grads, g->net.critic.n_params);
    g->net.critic_opt.t = (int)(g->step + g->critic_lead); // ctrl_adam_step counts t up
    ctrl_adam_step(&g->net.critic_opt, g->net.critic.params, g->net.critic.grads);
    g->critic_lead += 1.0f;
    ctrl_mlp_polyak(&g->net.critic_target, &g->net.critic, g->c.tau);
    return loss;
}

// the actor and temperature step on the whole batch (on MPI ranks: b holds
// this rank's share sh of it); fills the metrics
static void actor_step(wsrl_agent *g, const ctrl_batch *b, const float *eps_pi,
                       const float *eps_temp, ctrl_share sh, ctrl_metrics *metrics) {
    int B = b->B, O = g->O, A = g->A, E = g->E;
    float alpha = g->c.autotune_alpha ? expf(g->net.log_alpha) : g->c.sac_alpha;
    policy_sample(g, b->obs, B, eps_pi);
    ctrl_concat(g->x, b->obs, g->act, B, O, A);
    ctrl_mlp_forward(&g->net.critic, g->x, B, g->q);
    double actor_loss = ctrl_sac_actor_loss(g->q, g->logp, alpha, E, B, g->dq, g->dlogp);
    double entropy = -mean_of(g->logp, B);
    memset(g->dx, 0, sizeof(float) * B * (O + A));
    ctrl_mlp_backward(&g->net.critic, g->dq, g->dx, 0);
    for (int r = 0; r < B; r++)
        memcpy(g->dact + (long)r * A, g->dx + (long)r * (O + A) + O, sizeof(float) * A);
    memset(g->dout, 0, sizeof(float) * B * 2 * A);
    ctrl_tanh_gauss_backward(g->dout, g->dact, g->dlogp, g->out, eps_pi, g->pre, g->scale, B, A,
                             g->c.log_std_min, g->c.log_std_max);
    ctrl_mlp_zero_grad(&g->net.actor);
    ctrl_mlp_backward(&g->net.actor, g->dout, NULL, 1);
    // the temperature's entropy at s' (a constant in its loss)
    policy_sample(g, b->next_obs, B, eps_temp);
    double alpha_loss =
        ctrl_sac_alpha_loss(g->logp, g->net.log_alpha, g->c.target_entropy, B, &g->net.dlog_alpha);
    g->net.actor_opt.t = g->net.alpha_opt.t = (int)g->step;
    if (g->c.autotune_alpha) {
        ctrl_share_grads(sh, &g->net.dlog_alpha, 1);
        ctrl_adam_step(&g->net.alpha_opt, &g->net.log_alpha, &g->net.dlog_alpha);
    }
    ctrl_share_grads(sh, g->net.actor.grads, g->net.actor.n_params);
    ctrl_adam_step(&g->net.actor_opt, g->net.actor.params, g->net.actor.grads);
    g->step += 1.0f;
    g->critic_lead -= 1.0f;
    if (metrics) {
        double m[3] = {actor_loss, alpha_loss, entropy};
        ctrl_share_means(sh, m, 3);
        ctrl_metrics_add(metrics, "actor_loss", m[0]);
        ctrl_metrics_add(metrics, "alpha_loss", m[1]);
        ctrl_metrics_add(metrics, "alpha", alpha);
        ctrl_metrics_add(metrics, "entropy", m[2]);
    }
}

// on MPI ranks each takes its rows of every critic minibatch and of the
// actor's batch, with the matching noise rows (drawn whole on every rank)
static int wsrl_update(void *agent, const ctrl_batch *b, rlhf_rng *rng, ctrl_metrics *metrics,
                       rlhf_err *err) {
    wsrl_agent *g = agent;
    int B = b->B, A = g->A, U = g->U;
    if (ctrl_check_batch("wsrl", b, g->O, A, err)) return -1;
    if (B % U)
        return rlhf_fail(err,
                         "ctrl wsrl: a batch of %d rows does not split into policy_freq %d "
                         "critic minibatches (make --batch_size a multiple of it)",
                         B, U);
    if (B / U < dist_size())
        return rlhf_fail(err,
                         "ctrl wsrl: a critic minibatch of %d rows (--batch_size / policy_freq) "
                         "is less than the %d MPI ranks",
                         B / U, dist_size());
    grow(g, B);
    ctrl_wsrl_draw_noise(rng, B, A, U, g->E, g->noise);
    int mb = B / U;
    ctrl_share su = ctrl_share_rows(mb);
    const float *z = g->noise;
    double m[2] = {0, 0}; // critic loss, q mean
    for (int u = 0; u < U; u++) {
        double qm;
        m[0] += critic_step(g, b, u * mb + su.lo, su.n, z + (long)su.lo * A, z + (long)mb * A, &qm,
                            su) /
                U;
        m[1] += qm / U;
        z += (long)mb * A + CTRL_WSRL_SUBSAMPLE;
    }
    if (metrics) {
        ctrl_share_means(su, m, 2);
        ctrl_metrics_add(metrics, "critic_loss", m[0]);
        ctrl_metrics_add(metrics, "q_data", m[1]);
    }
    ctrl_share sh = ctrl_share_rows(B);
    ctrl_batch lb = ctrl_share_batch(b, sh);
    actor_step(g, &lb, z + (long)sh.lo * A, z + (long)B * A + (long)sh.lo * A, sh, metrics);
    return 0;
}

static void wsrl_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                     float *action) {
    wsrl_agent *g = agent;
    grow(g, B);
    ctrl_tanh_gauss_act(&g->net.actor, obs, B, g->A, deterministic, rng, g->scale, g->bias,
                        g->c.log_std_min, g->c.log_std_max, g->out, g->pre, g->noise, action);
}

static int wsrl_tensors(void *agent, ctrl_tensor *out, int max) {
    wsrl_agent *g = agent;
    ctrl_tensor all[13];
    int n = 0;
    n = ctrl_sac_nets_tensors(&g->net, all, n);
    all[n++] = (ctrl_tensor){"step", &g->step, 1};
    all[n++] = (ctrl_tensor){"critic_lead", &g->critic_lead, 1};
    return ctrl_tensors_out(out, max, all, n);
}

static void wsrl_free(void *agent) {
    wsrl_agent *g = agent;
    if (!g) return;
    ctrl_sac_nets_free(&g->net);
    float *bufs[] = {g->noise, g->x, g->dx, g->out, g->dout,  g->pre, g->act,
                     g->logp,  g->q, g->dq, g->y,   g->dlogp, g->dact};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_wsrl = {
    .critic_layer_norm = 1,
    .name = "wsrl",
    .summary = "WSRL: Cal-QL pre-training, then online SAC on 10 critics (REDQ target), no "
               "offline data kept, policy warm-up (Zhou et al. 2024)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = wsrl_defaults,
    .create = wsrl_create,
    .update = wsrl_update,
    .act = wsrl_act,
    .tensors = wsrl_tensors,
    .free = wsrl_free,
};
