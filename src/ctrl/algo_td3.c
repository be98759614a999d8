// ctrl/algo_td3: the deterministic-actor algorithms — behaviour cloning (bc),
// TD3 (td3) and TD3+BC (td3_bc) — behind ctrl_algo tables.
//
// TD3 (Fujimoto, van Hoof & Meger 2018) and TD3+BC (Fujimoto & Gu 2021), as
// CORL's algorithms/offline/td3_bc.py orders one update (our own code):
//   step += 1
//   eps ~ N(0, 1) (B, A)  — drawn first, row-major, B*A rng_normal calls
//   noise = clip(policy_noise * scale * eps, -noise_clip * scale, noise_clip * scale)
//   a' = clip(pi_target(s') + noise, low, high)
//   y = r + gamma (1 - d) min_e Q_target_e(s', a')
//   critic loss = sum_e mean_b (Q_e(s, a) - y)^2; one Adam step on the critic
//   every policy_freq steps (step % policy_freq == 0), with the updated critic:
//     td3:    actor loss = -mean Q_1(s, pi(s))
//     td3_bc: lambda = alpha / mean |Q_1(s, pi(s))| (detached),
//             actor loss = -lambda mean Q_1(s, pi(s)) + mean (pi(s) - a)^2
//     one Adam step on the actor; Polyak (tau) on both targets.
// policy_noise and noise_clip are fractions of the action half-range `scale`
// (CORL passes policy_noise * max_action). BC (CORL's any_percent_bc.py, the
// training on the whole dataset): loss = mean (pi(s) - a)^2 on a
// deterministic actor, or with deterministic_bc = 0 the negative
// log-likelihood of a Gaussian with a state-independent log_std (CORL's
// GaussianPolicy) whose mean is the same scaled tanh.
//
// Actions are in environment units: pi(s) = bias + scale * tanh(net(s))
// (policy.h's ctrl_det_forward). The critic is one ctrl_mlp with
// ens = n_critics over concat(obs, act).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/algo_common.h"
#include "ctrl/ctrl_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"

enum { KIND_BC, KIND_TD3, KIND_TD3_BC };
// counters: the step and the Adam step counts, as floats for the checkpoint
enum { C_STEP, C_ACTOR_T, C_CRITIC_T, C_LOGSTD_T, N_COUNTERS };

typedef struct {
    int kind, S, A, stochastic;  // stochastic: BC's Gaussian actor
    ctrl_algo_config c;
    float *low, *high, *scale, *bias;  // (A)
    ctrl_mlp actor, actor_target, critic, critic_target;
    ctrl_adam actor_opt, critic_opt;
    float *log_std, *log_std_grad;  // (A), BC's Gaussian only
    ctrl_adam log_std_opt;
    float counters[N_COUNTERS];
    // scratch, grown to the largest batch
    int cap;
    float *sa, *dsa, *u, *du, *pi, *dpi, *q, *dq, *y, *eps, *logp, *dlogp;
} td3_agent;

static void grow(td3_agent *g, int B) {
    if (B <= g->cap) return;
    float **bufs[] = {&g->sa, &g->dsa, &g->u,  &g->du, &g->pi,   &g->dpi,
                      &g->q,  &g->dq,  &g->y,  &g->eps, &g->logp, &g->dlogp};
    long sizes[] = {(long)B * (g->S + g->A), (long)B * (g->S + g->A), (long)B * g->A,
                    (long)B * g->A,          (long)B * g->A,          (long)B * g->A,
                    (long)B * g->c.n_critics, (long)B * g->c.n_critics, B,
                    (long)B * g->A,          B,                       B};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof bufs / sizeof bufs[0]));
    g->cap = B;
}

// the actor's action pi(s) (B, A) into out; keeps the actor's activations
static void actor_forward(td3_agent *g, ctrl_mlp *net, const float *obs, int B, float *out) {
    ctrl_mlp_forward(net, obs, B, g->u);
    ctrl_det_forward(out, g->u, g->scale, g->bias, B, g->A);
}

// CORL's values (any_percent_bc.py, td3_bc.py): BC has no target smoothing
static void bc_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c);
    c->policy_freq = 1;
    c->policy_noise = 0;
    c->noise_clip = 0;
}

static int create_kind(int kind, const ctrl_algo_config *c, int S, int A, const float *low,
                       const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    if (ctrl_check_create("agent", c, S, A, low, high, kind != KIND_BC, err)) return -1;
    if (kind != KIND_BC && c->policy_freq < 1)
        return rlhf_fail(err, "ctrl agent: policy_freq %d must be >= 1", c->policy_freq);
    td3_agent *g = xcalloc(1, sizeof *g);
    g->kind = kind;
    g->S = S;
    g->A = A;
    g->c = *c;
    g->stochastic = kind == KIND_BC && !c->deterministic_bc;
    ctrl_action_box(low, high, A, &g->low, &g->high, &g->scale, &g->bias);
    ctrl_mlp_init(&g->actor, S, c->hidden, c->layers, A, 1, rng);
    ctrl_adam_init(&g->actor_opt, g->actor.n_params, c->actor_lr);
    if (g->stochastic) {
        g->log_std = xcalloc(2 * (long)A, sizeof(float));  // log_std = 0 (CORL)
        g->log_std_grad = g->log_std + A;
        ctrl_adam_init(&g->log_std_opt, A, c->actor_lr);
    }
    if (kind != KIND_BC) {
        ctrl_mlp_init(&g->critic, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
        ctrl_adam_init(&g->critic_opt, g->critic.n_params, c->critic_lr);
        ctrl_mlp_init(&g->actor_target, S, c->hidden, c->layers, A, 1, rng);
        ctrl_mlp_init(&g->critic_target, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
        ctrl_mlp_polyak(&g->actor_target, &g->actor, 1.0f);
        ctrl_mlp_polyak(&g->critic_target, &g->critic, 1.0f);
    }
    *out = g;
    return 0;
}

static int bc_create(const ctrl_algo_config *c, int S, int A, const float *low, const float *high,
                     rlhf_rng *rng, void **out, rlhf_err *err) {
    return create_kind(KIND_BC, c, S, A, low, high, rng, out, err);
}
static int td3_create(const ctrl_algo_config *c, int S, int A, const float *low,
                      const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    return create_kind(KIND_TD3, c, S, A, low, high, rng, out, err);
}
static int td3_bc_create(const ctrl_algo_config *c, int S, int A, const float *low,
                         const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    return create_kind(KIND_TD3_BC, c, S, A, low, high, rng, out, err);
}

// behaviour cloning: one step on the actor (on MPI ranks: this rank's rows)
static int bc_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                     rlhf_err *err) {
    (void)rng;
    td3_agent *g = agent;
    if (ctrl_check_batch("agent", gb, g->S, g->A, err)) return -1;
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B, A = g->A;
    grow(g, B);
    g->counters[C_STEP] += 1;
    actor_forward(g, &g->actor, b->obs, B, g->pi);
    memset(g->dpi, 0, (long)B * A * sizeof(float));
    double loss;
    if (g->stochastic) {
        memset(g->dlogp, 0, B * sizeof(float));
        memset(g->log_std_grad, 0, A * sizeof(float));
        ctrl_gauss_logprob(g->logp, g->pi, g->log_std, b->act, B, A, g->c.log_std_min,
                           g->c.log_std_max);
        loss = ctrl_weighted_nll_loss(g->dlogp, g->logp, NULL, B);
        ctrl_gauss_logprob_backward(g->dpi, g->log_std_grad, g->dlogp, g->pi, g->log_std, b->act,
                                    B, A, g->c.log_std_min, g->c.log_std_max);
    } else {
        loss = ctrl_bc_mse_loss(g->dpi, g->pi, b->act, B, A);
    }
    memset(g->du, 0, (long)B * A * sizeof(float));
    ctrl_det_backward(g->du, g->dpi, g->pi, g->scale, g->bias, B, A);
    ctrl_mlp_zero_grad(&g->actor);
    ctrl_mlp_backward(&g->actor, g->du, NULL, 1);
    ctrl_share_grads(sh, g->actor.grads, g->actor.n_params);
    ctrl_adam_step_counted(&g->actor_opt, &g->counters[C_ACTOR_T], g->actor.params, g->actor.grads);
    if (g->stochastic) {
        ctrl_share_grads(sh, g->log_std_grad, A);
        ctrl_adam_step_counted(&g->log_std_opt, &g->counters[C_LOGSTD_T], g->log_std,
                               g->log_std_grad);
    }
    ctrl_share_means(sh, &loss, 1);
    ctrl_metrics_add(metrics, "actor_loss", loss);
    return 0;
}

// the actor's step through member 0 of the updated critic (CORL's critic_1);
// TD3+BC's lambda from the whole batch's mean |Q| (summed over the ranks)
static double td3_actor_step(td3_agent *g, const ctrl_batch *b, ctrl_share sh,
                             ctrl_metrics *metrics) {
    int B = b->B, A = g->A, S = g->S, E = g->c.n_critics;
    actor_forward(g, &g->actor, b->obs, B, g->pi);
    ctrl_concat(g->sa, b->obs, g->pi, B, S, A);
    ctrl_mlp_forward(&g->critic, g->sa, B, g->q);
    memset(g->dq, 0, (long)E * B * sizeof(float));
    memset(g->dpi, 0, (long)B * A * sizeof(float));
    double actor_loss;
    if (g->kind == KIND_TD3_BC) {
        double lambda;
        if (sh.n == sh.B) {
            actor_loss = ctrl_td3bc_actor_loss(g->dq, g->dpi, g->q, g->pi, b->act, B, A,
                                               g->c.td3bc_alpha, &lambda);
        } else {
            double abs_sum = 0;
            for (int r = 0; r < B; r++) abs_sum += fabs((double)g->q[r]);
            ctrl_share_sums(sh, &abs_sum, 1);
            lambda = g->c.td3bc_alpha / (abs_sum / sh.B);
            actor_loss = ctrl_td3bc_actor_loss_at(g->dq, g->dpi, g->q, g->pi, b->act, B, A, lambda);
        }
        ctrl_metrics_add(metrics, "lambda", lambda);
    } else {
        actor_loss = ctrl_dpg_actor_loss(g->dq, g->q, B);
    }
    memset(g->dsa, 0, (long)B * (S + A) * sizeof(float));
    ctrl_mlp_backward(&g->critic, g->dq, g->dsa, 0);
    for (int r = 0; r < B; r++)
        for (int i = 0; i < A; i++) g->dpi[(long)r * A + i] += g->dsa[(long)r * (S + A) + S + i];
    memset(g->du, 0, (long)B * A * sizeof(float));
    ctrl_det_backward(g->du, g->dpi, g->pi, g->scale, g->bias, B, A);
    ctrl_mlp_zero_grad(&g->actor);
    ctrl_mlp_backward(&g->actor, g->du, NULL, 1);
    ctrl_share_grads(sh, g->actor.grads, g->actor.n_params);
    ctrl_adam_step_counted(&g->actor_opt, &g->counters[C_ACTOR_T], g->actor.params,
                           g->actor.grads);
    return actor_loss;
}

// TD3 / TD3+BC: the critic every step, the actor and targets every
// policy_freq; on MPI ranks each takes its rows of the batch and its columns
// of the noise, drawn whole on every rank
static int td3_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                      rlhf_err *err) {
    td3_agent *g = agent;
    if (ctrl_check_batch("agent", gb, g->S, g->A, err)) return -1;
    grow(g, gb->B);
    g->counters[C_STEP] += 1;
    long step = (long)g->counters[C_STEP];
    for (long k = 0; k < (long)gb->B * g->A; k++) g->eps[k] = rng_normal(rng);
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B, A = g->A, S = g->S, E = g->c.n_critics;
    const float *eps = g->eps + (long)sh.lo * A;

    // target: smoothed target action, min over the target ensemble
    actor_forward(g, &g->actor_target, b->next_obs, B, g->pi);
    for (int r = 0; r < B; r++)
        for (int i = 0; i < A; i++) {
            long k = (long)r * A + i;
            float c = g->c.noise_clip * g->scale[i];
            float n = fminf(fmaxf(g->c.policy_noise * g->scale[i] * eps[k], -c), c);
            g->pi[k] += n;
        }
    ctrl_clip_actions(g->pi, g->low, g->high, B, A);
    ctrl_concat(g->sa, b->next_obs, g->pi, B, S, A);
    ctrl_mlp_forward(&g->critic_target, g->sa, B, g->q);
    ctrl_td_target(g->y, b->rew, b->done, g->q, E, B, g->c.gamma);

    // critic: the sum of the members' MSEs (CORL's critic_1 + critic_2 losses)
    ctrl_concat(g->sa, b->obs, b->act, B, S, A);
    ctrl_mlp_forward(&g->critic, g->sa, B, g->q);
    double m[2] = {0, 0};  // critic loss, q mean
    for (int k = 0; k < B; k++) m[1] += g->q[k];
    memset(g->dq, 0, (long)E * B * sizeof(float));
    m[0] = ctrl_critic_mse_loss(g->dq, g->q, g->y, E, B, 1.0f);
    ctrl_mlp_zero_grad(&g->critic);
    ctrl_mlp_backward(&g->critic, g->dq, NULL, 1);
    ctrl_share_grads(sh, g->critic.grads, g->critic.n_params);
    ctrl_adam_step_counted(&g->critic_opt, &g->counters[C_CRITIC_T], g->critic.params,
                           g->critic.grads);
    m[1] /= B;
    ctrl_share_means(sh, m, 2);
    ctrl_metrics_add(metrics, "critic_loss", m[0]);
    ctrl_metrics_add(metrics, "q_mean", m[1]);

    if (step % g->c.policy_freq == 0) {
        double actor_loss = td3_actor_step(g, b, sh, metrics);
        ctrl_share_means(sh, &actor_loss, 1);
        ctrl_metrics_add(metrics, "actor_loss", actor_loss);
        ctrl_mlp_polyak(&g->critic_target, &g->critic, g->c.tau);
        ctrl_mlp_polyak(&g->actor_target, &g->actor, g->c.tau);
    }
    return 0;
}

// deterministic: pi(s); else TD3's exploration pi(s) + N(0, (expl_noise scale)^2)
// clipped to the bounds (BC's Gaussian: a sample of its policy, clipped)
static void td3_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                    float *action) {
    td3_agent *g = agent;
    grow(g, B);
    actor_forward(g, &g->actor, obs, B, action);
    if (deterministic) return;
    for (int r = 0; r < B; r++)
        for (int i = 0; i < g->A; i++) {
            float sd = g->stochastic ? expf(fminf(fmaxf(g->log_std[i], g->c.log_std_min),
                                                  g->c.log_std_max))
                                     : g->c.expl_noise * g->scale[i];
            action[(long)r * g->A + i] += sd * rng_normal(rng);
        }
    ctrl_clip_actions(action, g->low, g->high, B, g->A);
}

static int td3_tensors(void *agent, ctrl_tensor *out, int max) {
    td3_agent *g = agent;
    ctrl_tensor all[16];
    int n = 0;
    CTRL_TENSORS_ADAM(all, n, "actor", g->actor.params, g->actor_opt);
    if (g->stochastic) {
        CTRL_TENSORS_ADAM(all, n, "log_std", g->log_std, g->log_std_opt);
    }
    if (g->kind != KIND_BC) {
        all[n++] = (ctrl_tensor){"actor_target", g->actor_target.params, g->actor.n_params};
        CTRL_TENSORS_ADAM(all, n, "critic", g->critic.params, g->critic_opt);
        all[n++] = (ctrl_tensor){"critic_target", g->critic_target.params, g->critic.n_params};
    }
    // step, actor Adam t, critic Adam t, log_std Adam t
    all[n++] = (ctrl_tensor){"counters", g->counters, N_COUNTERS};
    return ctrl_tensors_out(out, max, all, n);
}

static void td3_free(void *agent) {
    td3_agent *g = agent;
    if (!g) return;
    ctrl_mlp_free(&g->actor);
    ctrl_adam_free(&g->actor_opt);
    if (g->stochastic) {
        free(g->log_std);
        ctrl_adam_free(&g->log_std_opt);
    }
    if (g->kind != KIND_BC) {
        ctrl_mlp_free(&g->actor_target);
        ctrl_mlp_free(&g->critic);
        ctrl_mlp_free(&g->critic_target);
        ctrl_adam_free(&g->critic_opt);
    }
    float *bufs[] = {g->sa, g->dsa, g->u, g->du, g->pi, g->dpi, g->q, g->dq, g->y, g->eps,
                     g->logp, g->dlogp};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_bc = {
    .name = "bc",
    .summary = "behaviour cloning: MSE (or Gaussian NLL) to the dataset's actions (CORL any_percent_bc)",
    .offline = 1,
    .data_parallel = 1,
    .defaults = bc_defaults,
    .create = bc_create,
    .update = bc_update,
    .act = td3_act,
    .tensors = td3_tensors,
    .free = td3_free,
};

const ctrl_algo ctrl_algo_td3 = {
    .name = "td3",
    .summary = "TD3: twin critics, target smoothing, delayed actor (Fujimoto et al. 2018)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = ctrl_corl_defaults,
    .create = td3_create,
    .update = td3_update,
    .act = td3_act,
    .tensors = td3_tensors,
    .free = td3_free,
};

const ctrl_algo ctrl_algo_td3_bc = {
    .name = "td3_bc",
    .summary = "TD3+BC: TD3 with a normalised behaviour-cloning term (Fujimoto & Gu 2021)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = ctrl_corl_defaults,
    .create = td3_bc_create,
    .update = td3_update,
    .act = td3_act,
    .tensors = td3_tensors,
    .free = td3_free,
};
