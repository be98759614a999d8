// ctrl/algo_h2o: H2O (Niu et al. 2022, "When to Trust Your Simulator:
// Dynamics-Aware Hybrid Offline-and-Online RL"): SAC on batches whose rows
// 0..n_offline-1 are real (the dataset) and the rest come from a simulator
// whose dynamics may differ (the trainer's online phase with --dataset and
// --mix_ratio 0.5 on a parametrised simulator, e.g. --env pendulum:gravity=20).
// Formulas from the authors' SimpleSAC/sim2real_sac.py (pure pieces in
// h2o_loss.c, SAC's in cql_loss.c).
//
// Networks: the SAC actor (tanh-Gaussian), a critic ensemble and its Polyak
// target, log_alpha, and two discriminators D_sa (obs+act -> 1 logit) and
// D_sas (obs+act+next_obs -> 1 logit), each with its Adam.
//
// One update, in the authors' order:
//  1. discriminators (when the batch holds real and sim rows): inputs of every
//     row plus N(0, h2o_disc_noise^2) noise; one Adam step each on
//     sa + sas (h2o_loss.h)
//  2. with the updated D_sas: the ratio w = clip(exp(l_adv(s,a,s')), 1e-5, 1)
//     on the sim rows and u = clip(mean over h2o_u_samples perturbed s' of
//     -l_adv, 1e-45, h2o_u_max), s' perturbed by N(0, std^2) with std the
//     per-dimension (unbiased) std of the batch's real next_obs
//  3. SAC's alpha and actor losses on all rows; target y = r + gamma (1 - d)
//     min_e Qt_e(s', a'), a' ~ pi(s'), no entropy backup (the authors' default)
//  4. critic loss, per member e, summed:
//       mean_real (Q_e - y)^2 + mean_sim w (Q_e - y)^2
//       + h2o_cql_weight * (cql_temp log sum_sim exp((Q_e + log omega)/cql_temp) - mean_real Q_e)
//     with omega = u / sum u (Q_e at the sim rows' own actions, as the authors' code)
//  5. Adam steps: alpha, actor, critic (all from the losses of 3 and 4), then
//     the target moves by tau.
// Without sim rows (an offline phase) the update is SAC without the entropy
// backup on the real rows; without real rows the discriminators do not learn
// and the penalty is off (w and u still come from the discriminators).
// Left out (as in the authors' defaults): Lagrange CQL, clipping of the
// conservative difference to [-1000, 1000], learned-dynamics s' samples.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/algo_common.h"
#include "ctrl/cql_loss.h"
#include "ctrl/h2o_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"

typedef struct {
    ctrl_algo_config c;
    int S, A, E, K;
    float *low, *high, *scale, *bias;
    ctrl_mlp actor, critic, critic_target, d_sa, d_sas;
    ctrl_adam actor_opt, critic_opt, alpha_opt, d_sa_opt, d_sas_opt;
    float log_alpha, dlog_alpha;
    float steps, disc_steps; // updates; discriminator updates (checkpointed)
    int cap;
    float *noise, *x, *dx, *out, *dout, *pre, *logp, *act, *q, *dq, *y, *dlogp, *l_sa, *l_adv,
        *dl_sa, *dl_adv, *w, *std;
    double *u;
} h2o_agent;

static void h2o_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c); // SAC's: 256 x 2, 2 critics, 3e-4, tau 5e-3, alpha 1 learned
    c->cql_temp = 1.0f;
    c->h2o_cql_weight = 0.01f; // the authors' cql_min_q_weight
    c->h2o_disc_noise = 0.1f;  // noise_std_discriminator
    c->h2o_disc_lr = 3e-4f;    // d_sa_lr = d_sas_lr
    c->h2o_ratio_min = 1e-5f;  // clip_dynamics_ratio_min / max
    c->h2o_ratio_max = 1.0f;
    c->h2o_u_samples = 10;     // sampling_n_next_states
    c->h2o_u_max = 10.0f;      // sim_q_coeff_max
}

static void grow(h2o_agent *g, int B) {
    if (B <= g->cap) return;
    int S = g->S, A = g->A, E = g->E, K = g->K;
    long in_sas = 2 * S + A, rows = (long)B * (K > 1 ? K : 1);
    float **bufs[] = {&g->noise, &g->x,    &g->dx,    &g->out,   &g->dout,  &g->pre,
                      &g->logp,  &g->act,  &g->q,     &g->dq,    &g->y,     &g->dlogp,
                      &g->l_sa,  &g->l_adv, &g->dl_sa, &g->dl_adv, &g->w,    &g->std};
    long sizes[] = {ctrl_h2o_noise_size(B, S, A, B, K),
                    rows * in_sas,
                    (long)B * in_sas,
                    (long)B * 2 * A,
                    (long)B * 2 * A,
                    (long)B * A,
                    B,
                    (long)B * A,
                    (long)E * B,
                    (long)E * B,
                    B,
                    B,
                    B,
                    rows,
                    B,
                    B,
                    B,
                    S};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof sizes / sizeof sizes[0]));
    free(g->u);
    g->u = xmalloc(sizeof(double) * B);
    g->cap = B;
}

static int h2o_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *act_low,
                      const float *act_high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    if (ctrl_check_create("h2o", c, obs_dim, act_dim, act_low, act_high, 1, err)) return -1;
    if (!(c->h2o_ratio_min > 0) || !(c->h2o_ratio_max >= c->h2o_ratio_min))
        return rlhf_fail(err, "ctrl h2o: h2o_ratio_min %g must be > 0 and <= h2o_ratio_max %g",
                         c->h2o_ratio_min, c->h2o_ratio_max);
    if (c->h2o_u_samples < 1 || !(c->h2o_u_max > 0) || !(c->cql_temp > 0) ||
        !(c->h2o_cql_weight >= 0) || !(c->h2o_disc_noise >= 0) || !(c->h2o_disc_lr > 0))
        return rlhf_fail(err,
                         "ctrl h2o: h2o_u_samples %d must be >= 1, h2o_u_max %g > 0, cql_temp %g "
                         "> 0, h2o_cql_weight %g >= 0, h2o_disc_noise %g >= 0, h2o_disc_lr %g > 0",
                         c->h2o_u_samples, c->h2o_u_max, c->cql_temp, c->h2o_cql_weight,
                         c->h2o_disc_noise, c->h2o_disc_lr);
    h2o_agent *g = xcalloc(1, sizeof *g);
    g->c = *c;
    if (isnan(g->c.target_entropy)) g->c.target_entropy = -(float)act_dim;
    g->S = obs_dim, g->A = act_dim, g->E = c->n_critics, g->K = c->h2o_u_samples;
    ctrl_action_box(act_low, act_high, act_dim, &g->low, &g->high, &g->scale, &g->bias);
    int S = obs_dim, A = act_dim;
    ctrl_mlp_init(&g->actor, S, c->hidden, c->layers, 2 * A, 1, rng);
    ctrl_mlp_init(&g->critic, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
    ctrl_mlp_init(&g->critic_target, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, 1.0f);
    ctrl_mlp_init(&g->d_sa, S + A, c->hidden, c->layers, 1, 1, rng);
    ctrl_mlp_init(&g->d_sas, 2 * S + A, c->hidden, c->layers, 1, 1, rng);
    ctrl_adam_init(&g->actor_opt, g->actor.n_params, c->actor_lr);
    ctrl_adam_init(&g->critic_opt, g->critic.n_params, c->critic_lr);
    ctrl_adam_init(&g->alpha_opt, 1, c->alpha_lr);
    ctrl_adam_init(&g->d_sa_opt, g->d_sa.n_params, c->h2o_disc_lr);
    ctrl_adam_init(&g->d_sas_opt, g->d_sas.n_params, c->h2o_disc_lr);
    g->log_alpha = logf(c->sac_alpha);
    *agent = g;
    return 0;
}

// x (R, 2S + A) = [obs | act | next_obs] of rows r0.., each input plus
// `scale` times its noise row (noise NULL: none)
static void sas_rows(float *x, const ctrl_batch *b, int r0, int R, const float *noise, float scale,
                     int S, int A) {
    int W = 2 * S + A;
    for (int r = 0; r < R; r++) {
        float *row = x + (long)r * W;
        memcpy(row, b->obs + (long)(r0 + r) * S, sizeof(float) * S);
        memcpy(row + S, b->act + (long)(r0 + r) * A, sizeof(float) * A);
        memcpy(row + S + A, b->next_obs + (long)(r0 + r) * S, sizeof(float) * S);
        if (noise)
            for (int i = 0; i < W; i++) row[i] += scale * noise[(long)r * W + i];
    }
}

// step 1: the discriminators on all B rows (noisy inputs); returns sa + sas
static double train_discriminators(h2o_agent *g, const ctrl_batch *b, const float *noise,
                                   int n_real, double *sa, double *sas) {
    int B = b->B, S = g->S, A = g->A, W = 2 * S + A;
    sas_rows(g->x, b, 0, B, noise, g->c.h2o_disc_noise, S, A);
    float *x_sa = g->dx; // (B, S + A): the first S + A columns of each noisy row
    for (int r = 0; r < B; r++)
        memcpy(x_sa + (long)r * (S + A), g->x + (long)r * W, sizeof(float) * (S + A));
    ctrl_mlp_forward(&g->d_sa, x_sa, B, g->l_sa);
    ctrl_mlp_forward(&g->d_sas, g->x, B, g->l_adv);
    double loss =
        ctrl_h2o_disc_loss(g->l_sa, g->l_adv, n_real, B - n_real, g->dl_sa, g->dl_adv, sa, sas);
    ctrl_mlp_zero_grad(&g->d_sa);
    ctrl_mlp_backward(&g->d_sa, g->dl_sa, NULL, 1);
    ctrl_mlp_zero_grad(&g->d_sas);
    ctrl_mlp_backward(&g->d_sas, g->dl_adv, NULL, 1);
    float t = g->disc_steps;
    ctrl_adam_step_counted(&g->d_sa_opt, &t, g->d_sa.params, g->d_sa.grads);
    t = g->disc_steps;
    ctrl_adam_step_counted(&g->d_sas_opt, &t, g->d_sas.params, g->d_sas.grads);
    g->disc_steps = t;
    return loss;
}

// step 2: w (n_sim) and u (n_sim) of the sim rows from the current D_sas
static void ratio_and_u(h2o_agent *g, const ctrl_batch *b, const float *pert, int n_real) {
    int B = b->B, S = g->S, A = g->A, K = g->K, W = 2 * S + A, n_sim = B - n_real;
    sas_rows(g->x, b, n_real, n_sim, NULL, 0, S, A);
    ctrl_mlp_forward(&g->d_sas, g->x, n_sim, g->l_adv);
    ctrl_h2o_ratio(g->l_adv, n_sim, g->c.h2o_ratio_min, g->c.h2o_ratio_max, g->w);
    // the real rows' std of next_obs, per dimension (1 with fewer than two real rows)
    for (int i = 0; i < S; i++) {
        double m = 0, v = 0;
        for (int r = 0; r < n_real; r++) m += b->next_obs[(long)r * S + i] / (double)n_real;
        for (int r = 0; r < n_real; r++) {
            double d = b->next_obs[(long)r * S + i] - m;
            v += d * d;
        }
        g->std[i] = n_real >= 2 ? (float)sqrt(v / (n_real - 1)) : 1.0f;
    }
    for (int r = 0; r < n_sim; r++)
        for (int k = 0; k < K; k++) {
            float *row = g->x + ((long)r * K + k) * W;
            sas_rows(row, b, n_real + r, 1, NULL, 0, S, A);
            for (int i = 0; i < S; i++)
                row[S + A + i] += g->std[i] * pert[((long)r * K + k) * S + i];
        }
    ctrl_mlp_forward(&g->d_sas, g->x, n_sim * K, g->l_adv);
    ctrl_h2o_u(g->l_adv, n_sim, K, 1e-45, g->c.h2o_u_max, g->u);
}

static double mean_of(const float *v, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

// step 3's actor and alpha losses (gradients into the actor, dlog_alpha)
static void actor_losses(h2o_agent *g, const ctrl_batch *b, const float *eps_pi, double *actor_loss,
                         double *alpha_loss, double *logp_mean, float alpha) {
    int B = b->B, S = g->S, A = g->A;
    float lsmin = g->c.log_std_min, lsmax = g->c.log_std_max;
    ctrl_mlp_forward(&g->actor, b->obs, B, g->out);
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->out, eps_pi, g->scale, g->bias, B, A,
                            lsmin, lsmax);
    *alpha_loss =
        ctrl_sac_alpha_loss(g->logp, g->log_alpha, g->c.target_entropy, B, &g->dlog_alpha);
    ctrl_concat(g->x, b->obs, g->act, B, S, A);
    ctrl_mlp_forward(&g->critic, g->x, B, g->q);
    *actor_loss = ctrl_sac_actor_loss(g->q, g->logp, alpha, g->E, B, g->dq, g->dlogp);
    memset(g->dx, 0, sizeof(float) * B * (S + A));
    ctrl_mlp_backward(&g->critic, g->dq, g->dx, 0);
    for (int r = 0; r < B; r++) // act becomes dL/daction (the action columns of dx)
        memcpy(g->act + (long)r * A, g->dx + (long)r * (S + A) + S, sizeof(float) * A);
    memset(g->dout, 0, sizeof(float) * B * 2 * A);
    ctrl_tanh_gauss_backward(g->dout, g->act, g->dlogp, g->out, eps_pi, g->pre, g->scale, B, A,
                             lsmin, lsmax);
    ctrl_mlp_zero_grad(&g->actor);
    ctrl_mlp_backward(&g->actor, g->dout, NULL, 1);
    *logp_mean = mean_of(g->logp, B);
}

// steps 3-4: the target and the critic loss (gradients into the critic)
static void critic_loss(h2o_agent *g, const ctrl_batch *b, const float *eps_next, int n_real,
                        int penalty, double *td_real, double *td_sim, double *pen, double *gap) {
    int B = b->B, S = g->S, A = g->A, E = g->E, n_sim = B - n_real;
    float lsmin = g->c.log_std_min, lsmax = g->c.log_std_max;
    ctrl_mlp_forward(&g->actor, b->next_obs, B, g->out);
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->out, eps_next, g->scale, g->bias, B, A,
                            lsmin, lsmax);
    ctrl_concat(g->x, b->next_obs, g->act, B, S, A);
    ctrl_mlp_forward(&g->critic_target, g->x, B, g->q);
    ctrl_sac_target(g->y, g->q, g->logp, b->rew, b->done, g->c.gamma, 0.0f, E, B);
    ctrl_concat(g->x, b->obs, b->act, B, S, A);
    ctrl_mlp_forward(&g->critic, g->x, B, g->q);
    *td_real = *td_sim = *pen = *gap = 0;
    float *dpen = g->dlogp; // (B) scratch
    for (int e = 0; e < E; e++) {
        float *qe = g->q + (long)e * B, *de = g->dq + (long)e * B;
        if (n_real) *td_real += ctrl_sac_critic_mse(qe, g->y, 1, n_real, de);
        if (n_sim)
            *td_sim += ctrl_h2o_weighted_mse(qe + n_real, g->y + n_real, g->w, n_sim, de + n_real);
        if (!penalty) continue;
        double gap_e;
        *pen += ctrl_h2o_penalty(qe + n_real, g->u, n_sim, qe, n_real, g->c.cql_temp,
                                 g->c.h2o_cql_weight, dpen + n_real, dpen, &gap_e);
        *gap += gap_e / E;
        for (int r = 0; r < B; r++) de[r] += dpen[r];
    }
    ctrl_mlp_zero_grad(&g->critic);
    ctrl_mlp_backward(&g->critic, g->dq, NULL, 1);
}

static int h2o_update(void *agent, const ctrl_batch *b, rlhf_rng *rng, ctrl_metrics *metrics,
                      rlhf_err *err) {
    h2o_agent *g = agent;
    int B = b->B, S = g->S, A = g->A, K = g->K;
    if (ctrl_check_batch("h2o", b, S, A, err)) return -1;
    if (b->n_offline < 0 || b->n_offline > B)
        return rlhf_fail(err, "ctrl h2o: the batch's n_offline %d is not within 0..%d",
                         b->n_offline, B);
    int n_real = b->n_offline, n_sim = B - n_real, both = n_real > 0 && n_sim > 0;
    grow(g, B);
    ctrl_h2o_draw_noise(rng, B, S, A, n_sim, K, g->noise);
    const float *disc_noise = g->noise, *pert = disc_noise + (long)B * (2 * S + A);
    const float *eps_pi = pert + (long)n_sim * K * S, *eps_next = eps_pi + (long)B * A;
    float alpha = g->c.autotune_alpha ? expf(g->log_alpha) : g->c.sac_alpha;

    double disc = 0, sa = 0, sas = 0;
    if (both) disc = train_discriminators(g, b, disc_noise, n_real, &sa, &sas);
    if (n_sim) ratio_and_u(g, b, pert, n_real);
    double actor_loss, alpha_loss, logp_mean, td_real, td_sim, pen, gap;
    actor_losses(g, b, eps_pi, &actor_loss, &alpha_loss, &logp_mean, alpha);
    critic_loss(g, b, eps_next, n_real, both && g->c.h2o_cql_weight > 0, &td_real, &td_sim, &pen,
                &gap);
    double q_real = 0, q_sim = 0;
    for (int e = 0; e < g->E; e++) {
        q_real += mean_of(g->q + (long)e * B, n_real) / g->E;
        q_sim += mean_of(g->q + (long)e * B + n_real, n_sim) / g->E;
    }

    g->steps += 1.0f;
    int t = (int)g->steps;
    g->actor_opt.t = g->critic_opt.t = g->alpha_opt.t = t - 1; // ctrl_adam_step counts t up
    if (g->c.autotune_alpha) ctrl_adam_step(&g->alpha_opt, &g->log_alpha, &g->dlog_alpha);
    ctrl_adam_step(&g->actor_opt, g->actor.params, g->actor.grads);
    ctrl_adam_step(&g->critic_opt, g->critic.params, g->critic.grads);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, g->c.tau);

    if (metrics) {
        ctrl_metrics_add(metrics, "critic_loss", td_real + td_sim + pen);
        ctrl_metrics_add(metrics, "td_real", td_real);
        ctrl_metrics_add(metrics, "td_sim", td_sim);
        ctrl_metrics_add(metrics, "penalty", pen);
        ctrl_metrics_add(metrics, "penalty_gap", gap);
        ctrl_metrics_add(metrics, "actor_loss", actor_loss);
        ctrl_metrics_add(metrics, "alpha_loss", alpha_loss);
        ctrl_metrics_add(metrics, "alpha", alpha);
        ctrl_metrics_add(metrics, "entropy", -logp_mean);
        ctrl_metrics_add(metrics, "q_real", q_real);
        ctrl_metrics_add(metrics, "q_sim", q_sim);
        ctrl_metrics_add(metrics, "disc_loss", disc);
        ctrl_metrics_add(metrics, "disc_sa_loss", sa);
        ctrl_metrics_add(metrics, "disc_sas_loss", sas);
        double u_mean = 0;
        for (int r = 0; r < n_sim; r++) u_mean += g->u[r] / n_sim;
        ctrl_metrics_add(metrics, "ratio_sim", n_sim ? mean_of(g->w, n_sim) : 0);
        ctrl_metrics_add(metrics, "u_sim", u_mean);
        ctrl_metrics_add(metrics, "real_rows", n_real);
    }
    return 0;
}

static void h2o_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                    float *action) {
    h2o_agent *g = agent;
    grow(g, B);
    ctrl_tanh_gauss_act(&g->actor, obs, B, g->A, deterministic, rng, g->scale, g->bias,
                        g->c.log_std_min, g->c.log_std_max, g->out, g->pre, g->noise, action);
}

static int h2o_tensors(void *agent, ctrl_tensor *out, int max) {
    h2o_agent *g = agent;
    ctrl_tensor all[20];
    int n = 0;
    CTRL_TENSORS_ADAM(all, n, "actor", g->actor.params, g->actor_opt);
    CTRL_TENSORS_ADAM(all, n, "critic", g->critic.params, g->critic_opt);
    all[n++] = (ctrl_tensor){"critic_target", g->critic_target.params, g->critic_target.n_params};
    CTRL_TENSORS_ADAM(all, n, "log_alpha", &g->log_alpha, g->alpha_opt);
    CTRL_TENSORS_ADAM(all, n, "d_sa", g->d_sa.params, g->d_sa_opt);
    CTRL_TENSORS_ADAM(all, n, "d_sas", g->d_sas.params, g->d_sas_opt);
    all[n++] = (ctrl_tensor){"step", &g->steps, 1};
    all[n++] = (ctrl_tensor){"disc_step", &g->disc_steps, 1};
    return ctrl_tensors_out(out, max, all, n);
}

static void h2o_free(void *agent) {
    h2o_agent *g = agent;
    if (!g) return;
    ctrl_mlp *nets[] = {&g->actor, &g->critic, &g->critic_target, &g->d_sa, &g->d_sas};
    for (int i = 0; i < 5; i++) ctrl_mlp_free(nets[i]);
    ctrl_adam *opts[] = {&g->actor_opt, &g->critic_opt, &g->alpha_opt, &g->d_sa_opt, &g->d_sas_opt};
    for (int i = 0; i < 5; i++) ctrl_adam_free(opts[i]);
    float *bufs[] = {g->noise, g->x,     g->dx,    g->out,    g->dout,   g->pre,
                     g->logp,  g->act,   g->q,     g->dq,     g->y,      g->dlogp,
                     g->l_sa,  g->l_adv, g->dl_sa, g->dl_adv, g->w,      g->std};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->u);
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_h2o = {
    .name = "h2o",
    .summary = "H2O: SAC on real + simulated rows, discriminator dynamics ratio weighting the sim "
               "Bellman error, sim-weighted CQL penalty (Niu et al. 2022)",
    .offline = 0,
    .defaults = h2o_defaults,
    .create = h2o_create,
    .update = h2o_update,
    .act = h2o_act,
    .tensors = h2o_tensors,
    .free = h2o_free,
};
