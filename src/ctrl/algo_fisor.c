// ctrl/algo_fisor: FISOR — feasibility-guided safe offline RL with a
// diffusion policy (Zheng, Li, Yu, Tan, Huang & Xu 2024, ICLR; update order
// and defaults of the authors' jaxrl5 code, agents/fisor/fisor.py and
// configs/train_config.py; our own code). The losses are in fisor_loss.h,
// the DDPM in fisor_diffusion.h, the draws in algo_fisor.h.
//
// Networks: reward critic Q_r (n_critics members) and its Polyak target, V_r;
// feasibility critic Q_h (n_critics) and its Polyak target, V_h; the denoiser
// eps_theta (a ReLU MLP on [x | s | emb(t)]) and its EMA copy (rate
// fisor_actor_tau), which is the one that samples actions. Actions are mapped
// to [-1, 1] (a = bias + scale x) and the dataset's clipped to +-(1 - 1e-5).
//
// One update on a batch (s, a, r, s', d, cost):
//   step += 1; draw t_b and eps (algo_fisor.h)
//   weights w from the TARGET critics and the current values:
//       Q_r = min_e Q_r,targ(s, a), V_r(s), Q_h = max_e Q_h,targ(s, a), V_h(s)
//   actor: x = noisy(a, t, eps), loss = mean_b w_b |eps_theta(x, s, t) - eps|^2,
//       Adam at lr actor_lr (1 + cos(pi min(k, K) / K)) / 2 (k actor steps
//       before, K = fisor_lr_decay; optax's cosine_decay_schedule), then the
//       EMA copy <- (1 - fisor_actor_tau) copy + fisor_actor_tau eps_theta
//   V_r: expectile iql_tau of Q_r,targ min - V_r(s); Adam
//   Q_r: y = r + gamma (1 - d) V_r(s') (V_r after its step); loss mean over
//       members and rows of (Q_r,e - y)^2; Adam; Polyak tau
//   V_h: reverse expectile fisor_cost_tau of max_e Q_h,targ(s, a) - V_h(s); Adam
//   Q_h: h = constraint(cost); y_h = HJ target with V_h(s') (after its step);
//       loss mean over members and rows; Adam; Polyak tau
// Action (act): N = fisor_samples candidates per state from the EMA denoiser,
// the one with the least max_e Q_h,targ(s, a) (the authors' "minqc"
// extraction); the same rule for evaluation and exploration (the sampler is
// stochastic either way).
// Deviations from the authors' code: the denoiser is a ReLU MLP with fixed
// sinusoidal step features (theirs a LayerNorm residual MLP with mish,
// dropout 0.1 and learned Fourier features); one actor step on the whole
// batch (theirs two on halves of a 2048-row batch, the critics on its first
// 256 rows).
#include "ctrl/algo_fisor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/algo_common.h"
#include "ctrl/ctrl_loss.h"
#include "ctrl/fisor_diffusion.h"
#include "ctrl/fisor_loss.h"
#include "ctrl/mlp.h"

enum { C_STEP, C_ACTOR_T, C_CRITIC_T, C_VALUE_T, C_SCRITIC_T, C_SVALUE_T, N_COUNTERS };

typedef struct {
    int S, A, D, W; // obs, act, time features, denoiser input width (A + S + D)
    ctrl_algo_config c;
    ctrl_fisor_sched sched;
    float *low, *high, *scale, *bias;
    ctrl_mlp score, score_ema, critic, critic_target, value, scritic, scritic_target, svalue;
    ctrl_adam score_opt, critic_opt, value_opt, scritic_opt, svalue_opt;
    float counters[N_COUNTERS];
    int cap, cap_act;
    int *t, *it;
    float *an, *eps, *x, *in, *pred, *dpred, *sa, *q, *dq, *qr, *vr, *qh, *vh, *w, *y, *dv, *h;
    float *obs_rep, *noise, *cand, *cand_env, *cand_q, *cand_sa, *cand_in, *cand_pred;
} fisor_agent;

void ctrl_fisor_draw_update_noise(rlhf_rng *rng, int B, int A, int T, int *t, float *eps) {
    for (int b = 0; b < B; b++) {
        int i = (int)(rng_uniform(rng) * T);
        t[b] = i < T ? i : T - 1;
    }
    for (long k = 0; k < (long)B * A; k++) eps[k] = rng_normal(rng);
}

static void grow(fisor_agent *g, int B) {
    if (B <= g->cap) return;
    long BA = (long)B * g->A, BE = (long)B * g->c.n_critics;
    float **bufs[] = {&g->an, &g->eps, &g->x,  &g->in, &g->pred, &g->dpred, &g->sa, &g->q, &g->dq,
                      &g->qr, &g->vr,  &g->qh, &g->vh, &g->w,    &g->y,     &g->dv, &g->h};
    long sizes[] = {
        BA, BA, BA, (long)B * g->W, BA, BA, (long)B * (g->S + g->A), BE, BE, B, B, B, B, B,
        B,  B,  B};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->t);
    g->t = xmalloc(sizeof(int) * B);
    g->cap = B;
}

// scratch of act for B states (B N candidates)
static void grow_act(fisor_agent *g, int B) {
    if (B <= g->cap_act) return;
    long R = (long)B * g->c.fisor_samples, RA = R * g->A;
    float **bufs[] = {&g->obs_rep, &g->noise,   &g->cand,    &g->cand_env,
                      &g->cand_q,  &g->cand_sa, &g->cand_in, &g->cand_pred};
    long sizes[] = {R * g->S,
                    ctrl_fisor_noise_size(g->c.fisor_T, (int)R, g->A),
                    RA,
                    RA,
                    R * g->c.n_critics,
                    R * (g->S + g->A),
                    R * g->W,
                    RA};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->it);
    g->it = xmalloc(sizeof(int) * R);
    g->cap_act = B;
}

static void fisor_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c);
    c->iql_tau = 0.9f;  // reward expectile (critic_hyperparam)
    c->iql_beta = 3.0f; // reward_temperature
    c->adv_clip = 100.0f;
    c->fisor_cost_tau = 0.9f; // cost_critic_hyperparam
    c->fisor_cost_temp = 5.0f;
    c->fisor_cost_ub = 150.0f;
    c->fisor_cost_scale = 25.0f;
    c->fisor_actor_tau = 0.001f;
    c->fisor_ddpm_temp = 1.0f;
    c->fisor_lr_decay = 3e6f;
    c->fisor_T = 5;
    c->fisor_samples = 16;
    c->fisor_time_dim = 16;
}

static int check_config(const ctrl_algo_config *c, rlhf_err *err) {
    if (c->fisor_T < 1 || c->fisor_T > CTRL_FISOR_MAX_T)
        return rlhf_fail(err, "ctrl fisor: fisor_T %d must be in 1..%d", c->fisor_T,
                         CTRL_FISOR_MAX_T);
    if (c->fisor_samples < 1)
        return rlhf_fail(err, "ctrl fisor: fisor_samples %d must be >= 1", c->fisor_samples);
    if (c->fisor_time_dim < 4 || c->fisor_time_dim % 2)
        return rlhf_fail(err, "ctrl fisor: fisor_time_dim %d must be even and >= 4",
                         c->fisor_time_dim);
    if (!(c->fisor_cost_tau > 0 && c->fisor_cost_tau < 1) || !(c->iql_tau > 0 && c->iql_tau < 1))
        return rlhf_fail(err, "ctrl fisor: fisor_cost_tau %g and iql_tau %g must be in (0, 1)",
                         c->fisor_cost_tau, c->iql_tau);
    if (!(c->fisor_actor_tau > 0 && c->fisor_actor_tau <= 1))
        return rlhf_fail(err, "ctrl fisor: fisor_actor_tau %g must be in (0, 1]",
                         c->fisor_actor_tau);
    return 0;
}

static int fisor_create(const ctrl_algo_config *c, int S, int A, const float *low,
                        const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    if (ctrl_check_create("fisor", c, S, A, low, high, 1, err) || check_config(c, err)) return -1;
    fisor_agent *g = xcalloc(1, sizeof *g);
    g->S = S;
    g->A = A;
    g->D = c->fisor_time_dim;
    g->W = A + S + g->D;
    g->c = *c;
    ctrl_fisor_vp_schedule(&g->sched, c->fisor_T);
    ctrl_action_box(low, high, A, &g->low, &g->high, &g->scale, &g->bias);
    int E = c->n_critics;
    ctrl_mlp_init(&g->score, g->W, c->hidden, c->layers, A, 1, rng);
    ctrl_adam_init(&g->score_opt, g->score.n_params, c->actor_lr);
    ctrl_mlp_init(&g->score_ema, g->W, c->hidden, c->layers, A, 1, rng);
    ctrl_mlp_polyak(&g->score_ema, &g->score, 1.0f);
    ctrl_mlp_init(&g->critic, S + A, c->hidden, c->layers, 1, E, rng);
    ctrl_adam_init(&g->critic_opt, g->critic.n_params, c->critic_lr);
    ctrl_mlp_init(&g->critic_target, S + A, c->hidden, c->layers, 1, E, rng);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, 1.0f);
    ctrl_mlp_init(&g->value, S, c->hidden, c->layers, 1, 1, rng);
    ctrl_adam_init(&g->value_opt, g->value.n_params, c->value_lr);
    ctrl_mlp_init(&g->scritic, S + A, c->hidden, c->layers, 1, E, rng);
    ctrl_adam_init(&g->scritic_opt, g->scritic.n_params, c->critic_lr);
    ctrl_mlp_init(&g->scritic_target, S + A, c->hidden, c->layers, 1, E, rng);
    ctrl_mlp_polyak(&g->scritic_target, &g->scritic, 1.0f);
    ctrl_mlp_init(&g->svalue, S, c->hidden, c->layers, 1, 1, rng);
    ctrl_adam_init(&g->svalue_opt, g->svalue.n_params, c->value_lr);
    *out = g;
    return 0;
}

// net (E members) at (s, a) -> g->q (E, B), reduced over members into out (B)
static void critic_eval(fisor_agent *g, ctrl_mlp *net, const float *obs, const float *act, int B,
                        int use_max, float *out) {
    ctrl_concat(g->sa, obs, act, B, g->S, g->A);
    ctrl_mlp_forward(net, g->sa, B, g->q);
    if (use_max)
        ctrl_ensemble_max(out, g->q, g->c.n_critics, B);
    else
        ctrl_ensemble_min(out, g->q, g->c.n_critics, B);
}

static void adam(fisor_agent *g, ctrl_mlp *net, ctrl_adam *opt, int counter) {
    ctrl_adam_step_counted(opt, &g->counters[counter], net->params, net->grads);
}

// V regression (plain or reverse expectile) of `value` towards g->qr / g->qh
// (on MPI ranks over this rank's share sh of the rows, as every step here)
static double value_step(fisor_agent *g, ctrl_mlp *value, ctrl_adam *opt, int counter,
                         const float *obs, const float *target, int B, float tau, int reverse,
                         ctrl_share sh) {
    ctrl_mlp_forward(value, obs, B, g->y);
    memset(g->dv, 0, B * sizeof(float));
    double loss = reverse ? ctrl_fisor_reverse_expectile_loss(g->dv, target, g->y, B, tau)
                          : ctrl_expectile_loss(g->dv, target, g->y, B, tau);
    ctrl_mlp_zero_grad(value);
    ctrl_mlp_backward(value, g->dv, NULL, 1);
    ctrl_share_grads(sh, value->grads, value->n_params);
    adam(g, value, opt, counter);
    return loss;
}

// Q regression of `critic` (E members) at (s, a) towards g->y (B); mean over
// members and rows; Polyak on its target
static double critic_step(fisor_agent *g, ctrl_mlp *critic, ctrl_mlp *target, ctrl_adam *opt,
                          int counter, const float *obs, const float *act, int B, double *qmean,
                          ctrl_share sh) {
    int E = g->c.n_critics;
    ctrl_concat(g->sa, obs, act, B, g->S, g->A);
    ctrl_mlp_forward(critic, g->sa, B, g->q);
    double s = 0;
    for (long k = 0; k < (long)E * B; k++) s += g->q[k];
    *qmean = s / ((double)E * B);
    memset(g->dq, 0, (long)E * B * sizeof(float));
    double loss = ctrl_critic_mse_loss(g->dq, g->q, g->y, E, B, 1.0f / E);
    ctrl_mlp_zero_grad(critic);
    ctrl_mlp_backward(critic, g->dq, NULL, 1);
    ctrl_share_grads(sh, critic->grads, critic->n_params);
    adam(g, critic, opt, counter);
    ctrl_mlp_polyak(target, critic, g->c.tau);
    return loss;
}

static double actor_step(fisor_agent *g, const ctrl_batch *b, float lr, ctrl_share sh) {
    int B = b->B, A = g->A;
    ctrl_fisor_noisy(g->x, g->an, g->eps, g->t, &g->sched, B, A);
    ctrl_fisor_input(g->in, g->x, b->obs, g->t, B, A, g->S, g->D);
    ctrl_mlp_forward(&g->score, g->in, B, g->pred);
    memset(g->dpred, 0, (long)B * A * sizeof(float));
    double loss = ctrl_fisor_noise_loss(g->dpred, g->pred, g->eps, g->w, B, A);
    ctrl_mlp_zero_grad(&g->score);
    ctrl_mlp_backward(&g->score, g->dpred, NULL, 1);
    ctrl_share_grads(sh, g->score.grads, g->score.n_params);
    g->score_opt.lr = lr;
    adam(g, &g->score, &g->score_opt, C_ACTOR_T);
    ctrl_mlp_polyak(&g->score_ema, &g->score, g->c.fisor_actor_tau);
    return loss;
}

static double mean_of(const float *x, int B) {
    double s = 0;
    for (int b = 0; b < B; b++) s += x[b];
    return s / B;
}

// on MPI ranks each takes its rows of the batch and of the noise (the
// diffusion times and eps, drawn whole on every rank)
static int fisor_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                        rlhf_err *err) {
    fisor_agent *g = agent;
    if (ctrl_check_batch("fisor", gb, g->S, g->A, err)) return -1;
    int A = g->A;
    grow(g, gb->B);
    g->counters[C_STEP] += 1;
    ctrl_fisor_draw_update_noise(rng, gb->B, A, g->c.fisor_T, g->t, g->eps);
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B;
    if (sh.lo > 0) {  // this rank's rows of the noise to the front
        memmove(g->t, g->t + sh.lo, (size_t)B * sizeof(int));
        memmove(g->eps, g->eps + (long)sh.lo * A, (size_t)B * A * sizeof(float));
    }
    const float lim = 1 - 1e-5f;
    for (int r = 0; r < B; r++)
        for (int i = 0; i < A; i++) {
            long k = (long)r * A + i;
            float x = (b->act[k] - g->bias[i]) / g->scale[i];
            g->an[k] = fminf(fmaxf(x, -lim), lim);
        }

    // weights from the target critics and the values before this update
    critic_eval(g, &g->critic_target, b->obs, b->act, B, 0, g->qr);
    ctrl_mlp_forward(&g->value, b->obs, B, g->vr);
    critic_eval(g, &g->scritic_target, b->obs, b->act, B, 1, g->qh);
    ctrl_mlp_forward(&g->svalue, b->obs, B, g->vh);
    int n_unsafe;
    int n_safe =
        ctrl_fisor_weights(g->w, g->qr, g->vr, g->qh, g->vh, B, g->c.iql_beta, g->c.adv_clip,
                           g->c.fisor_cost_temp, g->c.fisor_cost_ub, &n_unsafe);
    double w_mean = mean_of(g->w, B), vh_mean = mean_of(g->vh, B);

    float k = g->counters[C_ACTOR_T], K = g->c.fisor_lr_decay, lr = g->c.actor_lr;
    if (K > 0) lr = (float)(g->c.actor_lr * 0.5 * (1.0 + cos(M_PI * fmin(k, K) / K)));
    double actor_loss = actor_step(g, b, lr, sh);

    // reward critic (IQL): V_r, then Q_r to r + gamma (1 - d) V_r(s')
    double v_loss =
        value_step(g, &g->value, &g->value_opt, C_VALUE_T, b->obs, g->qr, B, g->c.iql_tau, 0, sh);
    ctrl_mlp_forward(&g->value, b->next_obs, B, g->h);
    ctrl_td_target(g->y, b->rew, b->done, g->h, 1, B, g->c.gamma);
    double q_mean, q_loss = critic_step(g, &g->critic, &g->critic_target, &g->critic_opt,
                                        C_CRITIC_T, b->obs, b->act, B, &q_mean, sh);

    // feasibility critic: V_h (reverse expectile of max Q_h), then Q_h (HJ target)
    double vh_loss = value_step(g, &g->svalue, &g->svalue_opt, C_SVALUE_T, b->obs, g->qh, B,
                                g->c.fisor_cost_tau, 1, sh);
    ctrl_mlp_forward(&g->svalue, b->next_obs, B, g->vr); // V_h(s') (vr is free now)
    ctrl_fisor_constraint(g->h, b->cost, B, g->c.fisor_cost_scale);
    ctrl_fisor_hj_target(g->y, g->h, g->vr, b->done, B, g->c.gamma);
    double qh_mean, qh_loss = critic_step(g, &g->scritic, &g->scritic_target, &g->scritic_opt,
                                          C_SCRITIC_T, b->obs, b->act, B, &qh_mean, sh);

    static const char *const names[] = {"actor_loss",  "value_loss",    "q_loss",
                                        "safe_value_loss", "safe_q_loss", "q_mean",
                                        "qh_mean",     "vh_mean",       "weight_mean",
                                        "feasible_frac", "infeasible_frac"};
    double m[] = {actor_loss, v_loss, q_loss, vh_loss, qh_loss, q_mean, qh_mean, vh_mean,
                  w_mean,     (double)n_safe / B, (double)n_unsafe / B};
    ctrl_share_metrics(metrics, sh, names, m, 11);
    ctrl_metrics_add(metrics, "actor_lr", lr);
    return 0;
}

// N candidates per state from the EMA denoiser, the one of least max_e Q_h
static void fisor_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                      float *action) {
    (void)deterministic;
    fisor_agent *g = agent;
    grow_act(g, B);
    int N = g->c.fisor_samples, S = g->S, A = g->A, E = g->c.n_critics;
    int R = B * N;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < N; j++)
            memcpy(g->obs_rep + ((long)b * N + j) * S, obs + (long)b * S, S * sizeof(float));
    long nz = ctrl_fisor_noise_size(g->c.fisor_T, R, A);
    for (long k = 0; k < nz; k++) g->noise[k] = rng_normal(rng);
    ctrl_fisor_sample(&g->score_ema, g->obs_rep, R, S, A, g->D, &g->sched, g->noise,
                      g->c.fisor_ddpm_temp, 1, g->cand_in, g->cand_pred, g->it, g->cand);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < A; i++)
            g->cand_env[(long)r * A + i] = g->bias[i] + g->scale[i] * g->cand[(long)r * A + i];
    ctrl_concat(g->cand_sa, g->obs_rep, g->cand_env, R, S, A);
    ctrl_mlp_forward(&g->scritic_target, g->cand_sa, R, g->cand_q);
    for (int b = 0; b < B; b++) {
        int best = 0;
        float best_q = INFINITY;
        for (int j = 0; j < N; j++) {
            long r = (long)b * N + j;
            float m = g->cand_q[r];
            for (int e = 1; e < E; e++) m = fmaxf(m, g->cand_q[(long)e * R + r]);
            if (m < best_q) best_q = m, best = j;
        }
        memcpy(action + (long)b * A, g->cand_env + ((long)b * N + best) * A, A * sizeof(float));
    }
    ctrl_clip_actions(action, g->low, g->high, B, A);
}

static int fisor_tensors(void *agent, ctrl_tensor *out, int max) {
    fisor_agent *g = agent;
    ctrl_tensor all[24];
    int n = 0;
    CTRL_TENSORS_ADAM(all, n, "actor", g->score.params, g->score_opt);
    all[n++] = (ctrl_tensor){"actor_ema", g->score_ema.params, g->score_ema.n_params};
    CTRL_TENSORS_ADAM(all, n, "critic", g->critic.params, g->critic_opt);
    all[n++] = (ctrl_tensor){"critic_target", g->critic_target.params, g->critic_target.n_params};
    CTRL_TENSORS_ADAM(all, n, "value", g->value.params, g->value_opt);
    CTRL_TENSORS_ADAM(all, n, "safe_critic", g->scritic.params, g->scritic_opt);
    all[n++] =
        (ctrl_tensor){"safe_critic_target", g->scritic_target.params, g->scritic_target.n_params};
    CTRL_TENSORS_ADAM(all, n, "safe_value", g->svalue.params, g->svalue_opt);
    all[n++] = (ctrl_tensor){"counters", g->counters, N_COUNTERS};
    return ctrl_tensors_out(out, max, all, n);
}

static void fisor_free(void *agent) {
    fisor_agent *g = agent;
    if (!g) return;
    ctrl_mlp *nets[] = {&g->score, &g->score_ema, &g->critic,         &g->critic_target,
                        &g->value, &g->scritic,   &g->scritic_target, &g->svalue};
    for (int i = 0; i < 8; i++) ctrl_mlp_free(nets[i]);
    ctrl_adam *opts[] = {&g->score_opt, &g->critic_opt, &g->value_opt, &g->scritic_opt,
                         &g->svalue_opt};
    for (int i = 0; i < 5; i++) ctrl_adam_free(opts[i]);
    float *bufs[] = {g->an,       g->eps,    g->x,       g->in,      g->pred,
                     g->dpred,    g->sa,     g->q,       g->dq,      g->qr,
                     g->vr,       g->qh,     g->vh,      g->w,       g->y,
                     g->dv,       g->h,      g->obs_rep, g->noise,   g->cand,
                     g->cand_env, g->cand_q, g->cand_sa, g->cand_in, g->cand_pred};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->t);
    free(g->it);
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_fisor = {
    .name = "fisor",
    .summary = "FISOR: HJ feasibility critic, IQL reward critic, feasibility-weighted DDPM policy "
               "(Zheng et al. 2024; needs costs in the dataset)",
    .offline = 1,
    .data_parallel = 1,
    .defaults = fisor_defaults,
    .create = fisor_create,
    .update = fisor_update,
    .act = fisor_act,
    .tensors = fisor_tensors,
    .free = fisor_free,
};
