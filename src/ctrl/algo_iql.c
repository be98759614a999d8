// ctrl/algo_iql: the advantage-weighted algorithms — IQL (iql) and AWAC
// (awac) — behind ctrl_algo tables. Both fit the actor by weighted maximum
// likelihood of the dataset's actions; they differ in the advantage.
//
// The actor is CORL's GaussianPolicy: mean = bias + scale * tanh(net(s)) (in
// environment units) and a state-independent log_std (A), clamped to
// [log_std_min, log_std_max], initialised to 0. With deterministic_bc = 1,
// IQL uses CORL's DeterministicPolicy instead (weighted squared error).
//
// IQL (Kostrikov, Nair & Levine 2021; update order of CORL's
// algorithms/offline/iql.py and finetune/iql.py, our own code):
//   step += 1
//   v' = V(s')                                 (before V's update)
//   qt = min_e Q_target_e(s, a)
//   adv = qt - V(s); V loss = mean |iql_tau - 1[adv < 0]| adv^2; Adam step on V
//   y = r + gamma (1 - d) v'; Q loss = (1/E) sum_e mean (Q_e(s, a) - y)^2;
//   Adam step on Q; Polyak (tau) on Q_target
//   w = min(exp(beta adv), adv_clip)           (adv from before V's step)
//   actor loss = mean -w log pi(a|s)  (deterministic: mean w |pi(s) - a|^2)
//   Adam step on the actor at lr = actor_lr (1 + cos(pi k / max_steps)) / 2,
//   k the actor steps taken before (PyTorch's CosineAnnealingLR, eta_min 0;
//   max_steps <= 0: constant lr). Past max_steps the cosine rises again, as
//   PyTorch's does: CORL's finetune/iql.py sets T_max to the offline
//   iterations, so its online phase runs on the rising half.
// Exploration (act, not deterministic): a sample of the Gaussian; a
// deterministic IQL actor adds clip(expl_noise N(0,1), +-noise_clip) * scale
// (CORL's finetune/iql.py: expl_noise 0.03, noise_clip 0.5).
//
// AWAC (Nair, Gupta, Dalal & Levine 2020; CORL's algorithms/offline/awac.py
// and finetune/awac.py):
//   step += 1
//   eps1, eps2 ~ N(0, 1) (B, A) each — drawn first, eps1 then eps2, row-major
//   a' = clip(mean(s') + std eps1, low, high)
//   y = r + gamma (1 - d) min_e Q_target_e(s', a')
//   Q loss = sum_e mean (Q_e(s, a) - y)^2; Adam step on Q
//   with the updated Q: pa = clip(mean(s) + std eps2, low, high),
//   adv = min_e Q_e(s, a) - min_e Q_e(s, pa), w = min(exp(adv / lambda), adv_clip)
//   actor loss = mean -w log pi(a|s); Adam step on the actor
//   Polyak (tau) on Q_target.
// CORL's AWAC actor has an unsquashed mean; ours keeps the scaled tanh of
// every actor here, so the mean stays inside the bounds.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/algo_common.h"
#include "ctrl/ctrl_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"

enum { KIND_IQL, KIND_AWAC };
// the step and the Adam step counts, as floats for the checkpoint
enum { C_STEP, C_ACTOR_T, C_LOGSTD_T, C_CRITIC_T, C_VALUE_T, N_COUNTERS };

typedef struct {
    int kind, S, A, stochastic;
    ctrl_algo_config c;
    float *low, *high, *scale, *bias;  // (A)
    ctrl_mlp actor, critic, critic_target, value;  // value: IQL only
    ctrl_adam actor_opt, critic_opt, value_opt, log_std_opt;
    float *log_std, *log_std_grad;  // (A), stochastic only
    float counters[N_COUNTERS];
    int cap;  // scratch, grown to the largest batch
    float *sa, *dsa, *u, *du, *mean, *dmean, *pa, *q, *dq, *y, *v, *dv, *adv, *w, *logp, *dlogp,
        *eps, *qmin;
} iql_agent;

static void grow(iql_agent *g, int B) {
    if (B <= g->cap) return;
    long BA = (long)B * g->A, BX = (long)B * (g->S + g->A), BE = (long)B * g->c.n_critics;
    float **bufs[] = {&g->sa, &g->dsa, &g->u,  &g->du, &g->mean, &g->dmean, &g->pa,
                      &g->q,  &g->dq,  &g->y,  &g->v,  &g->dv,   &g->adv,   &g->w,
                      &g->logp, &g->dlogp, &g->eps, &g->qmin};
    long sizes[] = {BX, BX, BA, BA, BA, BA, BA, BE, BE, B, B, B, B, B, B, B, 2 * BA, B};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof bufs / sizeof bufs[0]));
    g->cap = B;
}

static float std_of(const iql_agent *g, int i) {
    return expf(fminf(fmaxf(g->log_std[i], g->c.log_std_min), g->c.log_std_max));
}

// the actor's mean (B, A) into out; keeps the actor's activations
static void actor_mean(iql_agent *g, const float *obs, int B, float *out) {
    ctrl_mlp_forward(&g->actor, obs, B, g->u);
    ctrl_det_forward(out, g->u, g->scale, g->bias, B, g->A);
}

// out = clip(mean + std * eps, low, high)
static void sample_actions(const iql_agent *g, const float *mean, const float *eps, int B,
                           float *out) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < g->A; i++) {
            long k = (long)b * g->A + i;
            out[k] = mean[k] + std_of(g, i) * eps[k];
        }
    ctrl_clip_actions(out, g->low, g->high, B, g->A);
}

// CORL's values (iql.py, awac.py); the other fields get their CORL defaults
// too, so one config is complete whatever the table
static void common_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c);
    c->deterministic_bc = 0;  // IQL: CORL's iql_deterministic = False
}

static void iql_defaults(ctrl_algo_config *c) {
    common_defaults(c);
    c->expl_noise = 0.03f;  // CORL's finetune/iql.py (deterministic actor only)
}

static void awac_defaults(ctrl_algo_config *c) {
    common_defaults(c);
    c->layers = 3;  // CORL's awac.py: three hidden layers in actor and critics
}

static int create_kind(int kind, const ctrl_algo_config *c, int S, int A, const float *low,
                       const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    if (ctrl_check_create("agent", c, S, A, low, high, 1, err)) return -1;
    if (kind == KIND_AWAC && !(c->awac_lambda > 0))
        return rlhf_fail(err, "ctrl agent: awac_lambda %g must be > 0", c->awac_lambda);
    iql_agent *g = xcalloc(1, sizeof *g);
    g->kind = kind;
    g->S = S;
    g->A = A;
    g->c = *c;
    g->stochastic = kind == KIND_AWAC || !c->deterministic_bc;
    ctrl_action_box(low, high, A, &g->low, &g->high, &g->scale, &g->bias);
    ctrl_mlp_init(&g->actor, S, c->hidden, c->layers, A, 1, rng);
    ctrl_adam_init(&g->actor_opt, g->actor.n_params, c->actor_lr);
    g->log_std = xcalloc(2 * (long)A, sizeof(float));  // log_std = 0 (CORL)
    g->log_std_grad = g->log_std + A;
    ctrl_adam_init(&g->log_std_opt, A, c->actor_lr);
    ctrl_mlp_init(&g->critic, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
    ctrl_adam_init(&g->critic_opt, g->critic.n_params, c->critic_lr);
    ctrl_mlp_init(&g->critic_target, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, 1.0f);
    if (kind == KIND_IQL) {
        ctrl_mlp_init(&g->value, S, c->hidden, c->layers, 1, 1, rng);
        ctrl_adam_init(&g->value_opt, g->value.n_params, c->value_lr);
    }
    *out = g;
    return 0;
}

static int iql_create(const ctrl_algo_config *c, int S, int A, const float *low,
                      const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    return create_kind(KIND_IQL, c, S, A, low, high, rng, out, err);
}
static int awac_create(const ctrl_algo_config *c, int S, int A, const float *low,
                       const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    return create_kind(KIND_AWAC, c, S, A, low, high, rng, out, err);
}

// Q (E, B) at (obs, act) -> g->q and its member minimum -> qmin (B)
static void critic_eval(iql_agent *g, ctrl_mlp *net, const float *obs, const float *act, int B,
                        float *qmin) {
    ctrl_concat(g->sa, obs, act, B, g->S, g->A);
    ctrl_mlp_forward(net, g->sa, B, g->q);
    ctrl_ensemble_min(qmin, g->q, g->c.n_critics, B);
}

// the weighted maximum-likelihood actor step on weights g->w (B rows, this
// rank's share sh of the batch); returns the loss over these rows
static double actor_step(iql_agent *g, const float *obs, const float *act, int B, float lr,
                         ctrl_share sh) {
    int A = g->A;
    actor_mean(g, obs, B, g->mean);
    memset(g->dmean, 0, (long)B * A * sizeof(float));
    double loss;
    if (g->stochastic) {
        memset(g->dlogp, 0, B * sizeof(float));
        memset(g->log_std_grad, 0, A * sizeof(float));
        ctrl_gauss_logprob(g->logp, g->mean, g->log_std, act, B, A, g->c.log_std_min,
                           g->c.log_std_max);
        loss = ctrl_weighted_nll_loss(g->dlogp, g->logp, g->w, B);
        ctrl_gauss_logprob_backward(g->dmean, g->log_std_grad, g->dlogp, g->mean, g->log_std, act,
                                    B, A, g->c.log_std_min, g->c.log_std_max);
    } else {
        loss = ctrl_weighted_sq_loss(g->dmean, g->mean, act, g->w, B, A);
    }
    memset(g->du, 0, (long)B * A * sizeof(float));
    ctrl_det_backward(g->du, g->dmean, g->mean, g->scale, g->bias, B, A);
    ctrl_mlp_zero_grad(&g->actor);
    ctrl_mlp_backward(&g->actor, g->du, NULL, 1);
    g->actor_opt.lr = g->log_std_opt.lr = lr;
    ctrl_share_grads(sh, g->actor.grads, g->actor.n_params);
    ctrl_adam_step_counted(&g->actor_opt, &g->counters[C_ACTOR_T], g->actor.params, g->actor.grads);
    if (g->stochastic) {
        ctrl_share_grads(sh, g->log_std_grad, A);
        ctrl_adam_step_counted(&g->log_std_opt, &g->counters[C_LOGSTD_T], g->log_std,
                               g->log_std_grad);
    }
    return loss;
}

// on MPI ranks each takes its rows of the batch (every term is a mean over rows)
static int iql_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                      rlhf_err *err) {
    (void)rng;
    iql_agent *g = agent;
    if (ctrl_check_batch("agent", gb, g->S, g->A, err)) return -1;
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B, E = g->c.n_critics;
    grow(g, B);
    float k = g->counters[C_ACTOR_T];  // actor steps taken before this one
    g->counters[C_STEP] += 1;

    // V(s') for the Q target, before V moves
    ctrl_mlp_forward(&g->value, b->next_obs, B, g->y);
    ctrl_td_target(g->y, b->rew, b->done, g->y, 1, B, g->c.gamma);

    // V: expectile of the target critic's min
    critic_eval(g, &g->critic_target, b->obs, b->act, B, g->qmin);
    ctrl_mlp_forward(&g->value, b->obs, B, g->v);
    for (int r = 0; r < B; r++) g->adv[r] = g->qmin[r] - g->v[r];
    memset(g->dv, 0, B * sizeof(float));
    double value_loss = ctrl_expectile_loss(g->dv, g->qmin, g->v, B, g->c.iql_tau);
    ctrl_mlp_zero_grad(&g->value);
    ctrl_mlp_backward(&g->value, g->dv, NULL, 1);
    ctrl_share_grads(sh, g->value.grads, g->value.n_params);
    ctrl_adam_step_counted(&g->value_opt, &g->counters[C_VALUE_T], g->value.params, g->value.grads);

    // Q: the mean of the members' MSEs to r + gamma (1 - d) V(s')
    ctrl_concat(g->sa, b->obs, b->act, B, g->S, g->A);
    ctrl_mlp_forward(&g->critic, g->sa, B, g->q);
    double qmean = 0;
    for (int r = 0; r < B; r++) qmean += g->q[r];
    memset(g->dq, 0, (long)E * B * sizeof(float));
    double q_loss = ctrl_critic_mse_loss(g->dq, g->q, g->y, E, B, 1.0f / E);
    ctrl_mlp_zero_grad(&g->critic);
    ctrl_mlp_backward(&g->critic, g->dq, NULL, 1);
    ctrl_share_grads(sh, g->critic.grads, g->critic.n_params);
    ctrl_adam_step_counted(&g->critic_opt, &g->counters[C_CRITIC_T], g->critic.params,
                           g->critic.grads);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, g->c.tau);

    // actor: exp-advantage weighted likelihood, cosine-annealed learning rate
    ctrl_exp_adv_weights(g->w, g->adv, B, g->c.iql_beta, g->c.adv_clip);
    float lr = g->c.actor_lr;
    if (g->c.max_steps > 0)
        lr = (float)(g->c.actor_lr * 0.5 * (1.0 + cos(M_PI * (double)k / g->c.max_steps)));
    double actor_loss = actor_step(g, b->obs, b->act, B, lr, sh);

    double adv_mean = 0;
    for (int r = 0; r < B; r++) adv_mean += g->adv[r];
    static const char *const names[] = {"value_loss", "q_loss", "actor_loss", "q_mean",
                                        "adv_mean"};
    double m[] = {value_loss, q_loss, actor_loss, qmean / B, adv_mean / B};
    ctrl_share_metrics(metrics, sh, names, m, 5);
    ctrl_metrics_add(metrics, "actor_lr", lr);
    return 0;
}

// on MPI ranks each takes its rows of the batch and of both noise draws
// (drawn whole on every rank)
static int awac_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                       rlhf_err *err) {
    iql_agent *g = agent;
    if (ctrl_check_batch("agent", gb, g->S, g->A, err)) return -1;
    grow(g, gb->B);
    g->counters[C_STEP] += 1;
    for (long k = 0; k < 2L * gb->B * g->A; k++) g->eps[k] = rng_normal(rng);
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B, A = g->A, E = g->c.n_critics;
    float *eps1 = g->eps + (long)sh.lo * A, *eps2 = g->eps + (long)gb->B * A + (long)sh.lo * A;

    // target: a policy sample at s', min over the target ensemble
    actor_mean(g, b->next_obs, B, g->mean);
    sample_actions(g, g->mean, eps1, B, g->pa);
    critic_eval(g, &g->critic_target, b->next_obs, g->pa, B, g->qmin);
    ctrl_td_target(g->y, b->rew, b->done, g->qmin, 1, B, g->c.gamma);

    // Q: the sum of the members' MSEs (CORL's q1_loss + q2_loss)
    ctrl_concat(g->sa, b->obs, b->act, B, g->S, A);
    ctrl_mlp_forward(&g->critic, g->sa, B, g->q);
    double qmean = 0;
    for (int r = 0; r < B; r++) qmean += g->q[r];
    memset(g->dq, 0, (long)E * B * sizeof(float));
    double q_loss = ctrl_critic_mse_loss(g->dq, g->q, g->y, E, B, 1.0f);
    ctrl_mlp_zero_grad(&g->critic);
    ctrl_mlp_backward(&g->critic, g->dq, NULL, 1);
    ctrl_share_grads(sh, g->critic.grads, g->critic.n_params);
    ctrl_adam_step_counted(&g->critic_opt, &g->counters[C_CRITIC_T], g->critic.params,
                           g->critic.grads);

    // advantage with the updated critic: Q(s, a) - Q(s, a ~ pi)
    actor_mean(g, b->obs, B, g->mean);
    sample_actions(g, g->mean, eps2, B, g->pa);
    critic_eval(g, &g->critic, b->obs, g->pa, B, g->v);
    critic_eval(g, &g->critic, b->obs, b->act, B, g->qmin);
    for (int r = 0; r < B; r++) g->adv[r] = g->qmin[r] - g->v[r];
    ctrl_awac_weights(g->w, g->adv, B, g->c.awac_lambda, g->c.adv_clip);
    double actor_loss = actor_step(g, b->obs, b->act, B, g->c.actor_lr, sh);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, g->c.tau);

    double adv_mean = 0;
    for (int r = 0; r < B; r++) adv_mean += g->adv[r];
    static const char *const names[] = {"critic_loss", "actor_loss", "q_mean", "adv_mean"};
    double m[] = {q_loss, actor_loss, qmean / B, adv_mean / B};
    ctrl_share_metrics(metrics, sh, names, m, 4);
    return 0;
}

// deterministic: the mean; else a sample of the Gaussian, clipped to the
// bounds (a deterministic IQL actor: clipped Gaussian noise, CORL's finetune)
static void iql_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                    float *action) {
    iql_agent *g = agent;
    grow(g, B);
    actor_mean(g, obs, B, action);
    if (deterministic) return;
    for (long k = 0; k < (long)B * g->A; k++) g->eps[k] = rng_normal(rng);
    if (g->stochastic) {
        sample_actions(g, action, g->eps, B, action);
        return;
    }
    for (int r = 0; r < B; r++)
        for (int i = 0; i < g->A; i++) {
            long k = (long)r * g->A + i;
            float n = fminf(fmaxf(g->c.expl_noise * g->eps[k], -g->c.noise_clip), g->c.noise_clip);
            action[k] += n * g->scale[i];
        }
    ctrl_clip_actions(action, g->low, g->high, B, g->A);
}

static int iql_tensors(void *agent, ctrl_tensor *out, int max) {
    iql_agent *g = agent;
    ctrl_tensor all[16];
    int n = 0;
    CTRL_TENSORS_ADAM(all, n, "actor", g->actor.params, g->actor_opt);
    if (g->stochastic) {
        CTRL_TENSORS_ADAM(all, n, "log_std", g->log_std, g->log_std_opt);
    }
    CTRL_TENSORS_ADAM(all, n, "critic", g->critic.params, g->critic_opt);
    all[n++] = (ctrl_tensor){"critic_target", g->critic_target.params, g->critic.n_params};
    if (g->kind == KIND_IQL) {
        CTRL_TENSORS_ADAM(all, n, "value", g->value.params, g->value_opt);
    }
    // step, actor / log_std / critic / value Adam t
    all[n++] = (ctrl_tensor){"counters", g->counters, N_COUNTERS};
    return ctrl_tensors_out(out, max, all, n);
}

static void iql_free(void *agent) {
    iql_agent *g = agent;
    if (!g) return;
    ctrl_mlp_free(&g->actor);
    ctrl_mlp_free(&g->critic);
    ctrl_mlp_free(&g->critic_target);
    ctrl_adam_free(&g->actor_opt);
    ctrl_adam_free(&g->critic_opt);
    ctrl_adam_free(&g->log_std_opt);
    free(g->log_std);
    if (g->kind == KIND_IQL) {
        ctrl_mlp_free(&g->value);
        ctrl_adam_free(&g->value_opt);
    }
    float *bufs[] = {g->sa, g->dsa,  g->u,   g->du,   g->mean, g->dmean, g->pa, g->q,   g->dq,
                     g->y,  g->v,    g->dv,  g->adv,  g->w,    g->logp,  g->dlogp, g->eps, g->qmin};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_iql = {
    .name = "iql",
    .summary = "IQL: expectile V, Q to r + gamma V(s'), exp-advantage weighted actor (Kostrikov et al. 2021)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = iql_defaults,
    .create = iql_create,
    .update = iql_update,
    .act = iql_act,
    .tensors = iql_tensors,
    .free = iql_free,
};

const ctrl_algo ctrl_algo_awac = {
    .name = "awac",
    .summary = "AWAC: twin critics on policy samples, advantage-weighted actor (Nair et al. 2020)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = awac_defaults,
    .create = awac_create,
    .update = awac_update,
    .act = iql_act,
    .tensors = iql_tensors,
    .free = iql_free,
};
