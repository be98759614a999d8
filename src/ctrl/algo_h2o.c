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
//
// On MPI ranks (docs/mpi.md, "Control") every rank draws the whole batch and
// noise; each takes a share of the real rows and a share of the sim rows
// (h2o_split) and runs the update on them, each group's means weighted by the
// rank's share of the group (the batch's for SAC's actor and alpha), the
// real rows' next_obs std, the sum of u and the penalty's logsumexp taken over
// every rank's rows; the gradients are summed, so every rank steps alike.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
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
    ctrl_sac_nets net; // actor, critic, critic_target, their Adams, log_alpha
    ctrl_mlp d_sa, d_sas;
    ctrl_adam d_sa_opt, d_sas_opt;
    float steps, disc_steps; // updates; discriminator updates (checkpointed)
    int cap;
    float *noise, *x, *dx, *out, *dout, *pre, *logp, *act, *q, *dq, *y, *dlogp, *l_sa, *l_adv,
        *dl_sa, *dl_adv, *w, *std;
    double *u;
    // MPI ranks: this rank's rows of the batch ([its real | its sim], copied) and
    // their noise, in the layout of a batch of that many rows
    ctrl_batch lb;
    float *lnoise;
} h2o_agent;

// MPI ranks (docs/mpi.md, "Control"): each rank takes a share of the real rows
// (r0, nr of NR) and a share of the sim rows (s0, ns of NS); one process: NULL
typedef struct {
    int r0, nr, NR, s0, ns, NS;
} h2o_split;

// a mean over this rank's n of a group's N rows -> its part of the group's mean
static double part(double mean, int n, int N) {
    return N ? mean * n / N : 0;
}

static void h2o_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c); // SAC's: 256 x 2, 2 critics, 3e-4, tau 5e-3, alpha 1 learned
    c->cql_temp = 1.0f;
    c->h2o_cql_weight = 0.01f; // the authors' cql_min_q_weight
    c->h2o_disc_noise = 0.1f;  // noise_std_discriminator
    c->h2o_disc_lr = 3e-4f;    // d_sa_lr = d_sas_lr
    c->h2o_ratio_min = 1e-5f;  // clip_dynamics_ratio_min / max
    c->h2o_ratio_max = 1.0f;
    c->h2o_u_samples = 10; // sampling_n_next_states
    c->h2o_u_max = 10.0f;  // sim_q_coeff_max
}

static void grow(h2o_agent *g, int B) {
    if (B <= g->cap) return;
    int S = g->S, A = g->A, E = g->E, K = g->K;
    long in_sas = 2 * S + A, rows = (long)B * (K > 1 ? K : 1);
    float **bufs[] = {&g->noise, &g->x,     &g->dx,    &g->out,    &g->dout, &g->pre,
                      &g->logp,  &g->act,   &g->q,     &g->dq,     &g->y,    &g->dlogp,
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
    ctrl_sac_nets_init(&g->net, c, S, A, c->n_critics, rng);
    ctrl_mlp_init(&g->d_sa, S + A, c->hidden, c->layers, 1, 1, rng);
    ctrl_mlp_init(&g->d_sas, 2 * S + A, c->hidden, c->layers, 1, 1, rng);
    ctrl_adam_init(&g->d_sa_opt, g->d_sa.n_params, c->h2o_disc_lr);
    ctrl_adam_init(&g->d_sas_opt, g->d_sas.n_params, c->h2o_disc_lr);
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
// (sp: each group's loss over this rank's rows weighted by its share of the
// group, the parts and the gradients summed over ranks)
static double train_discriminators(h2o_agent *g, const ctrl_batch *b, const float *noise,
                                   int n_real, double *sa, double *sas, const h2o_split *sp) {
    int B = b->B, S = g->S, A = g->A, W = 2 * S + A;
    sas_rows(g->x, b, 0, B, noise, g->c.h2o_disc_noise, S, A);
    float *x_sa = g->dx; // (B, S + A): the first S + A columns of each noisy row
    for (int r = 0; r < B; r++)
        memcpy(x_sa + (long)r * (S + A), g->x + (long)r * W, sizeof(float) * (S + A));
    ctrl_mlp_forward(&g->d_sa, x_sa, B, g->l_sa);
    ctrl_mlp_forward(&g->d_sas, g->x, B, g->l_adv);
    double loss;
    if (!sp) {
        loss =
            ctrl_h2o_disc_loss(g->l_sa, g->l_adv, n_real, B - n_real, g->dl_sa, g->dl_adv, sa, sas);
    } else {
        double v[2] = {0, 0}, a, z;
        int n_sim = B - n_real;
        if (n_real) {
            ctrl_h2o_disc_loss(g->l_sa, g->l_adv, n_real, 0, g->dl_sa, g->dl_adv, &a, &z);
            v[0] += part(a, n_real, sp->NR), v[1] += part(z, n_real, sp->NR);
            for (int r = 0; r < n_real; r++)
                g->dl_sa[r] *= (float)n_real / sp->NR, g->dl_adv[r] *= (float)n_real / sp->NR;
        }
        if (n_sim) {
            ctrl_h2o_disc_loss(g->l_sa + n_real, g->l_adv + n_real, 0, n_sim, g->dl_sa + n_real,
                               g->dl_adv + n_real, &a, &z);
            v[0] += part(a, n_sim, sp->NS), v[1] += part(z, n_sim, sp->NS);
            for (int r = n_real; r < B; r++)
                g->dl_sa[r] *= (float)n_sim / sp->NS, g->dl_adv[r] *= (float)n_sim / sp->NS;
        }
        dist_allreduce_sum_f64(v, 2);
        *sa = v[0], *sas = v[1], loss = v[0] + v[1];
    }
    ctrl_mlp_zero_grad(&g->d_sa);
    ctrl_mlp_backward(&g->d_sa, g->dl_sa, NULL, 1);
    ctrl_mlp_zero_grad(&g->d_sas);
    ctrl_mlp_backward(&g->d_sas, g->dl_adv, NULL, 1);
    if (sp) {
        dist_allreduce_sum_f32(g->d_sa.grads, g->d_sa.n_params);
        dist_allreduce_sum_f32(g->d_sas.grads, g->d_sas.n_params);
    }
    float t = g->disc_steps;
    ctrl_adam_step_counted(&g->d_sa_opt, &t, g->d_sa.params, g->d_sa.grads);
    t = g->disc_steps;
    ctrl_adam_step_counted(&g->d_sas_opt, &t, g->d_sas.params, g->d_sas.grads);
    g->disc_steps = t;
    return loss;
}

// step 2: w (n_sim) and u (n_sim) of the sim rows from the current D_sas
// the std of next_obs over every rank's real rows, per dimension (1 with fewer
// than two real rows in all): sums over ranks, then the squared deviations
static void real_std(h2o_agent *g, const ctrl_batch *b, int n_real, int NR) {
    int S = g->S;
    double *m = xcalloc((size_t)2 * S, sizeof(double)), *v = m + S;
    for (int i = 0; i < S; i++)
        for (int r = 0; r < n_real; r++) m[i] += b->next_obs[(long)r * S + i];
    dist_allreduce_sum_f64(m, S);
    for (int i = 0; i < S; i++) {
        m[i] /= NR > 0 ? NR : 1;
        for (int r = 0; r < n_real; r++) {
            double d = b->next_obs[(long)r * S + i] - m[i];
            v[i] += d * d;
        }
    }
    dist_allreduce_sum_f64(v, S);
    for (int i = 0; i < S; i++) g->std[i] = NR >= 2 ? (float)sqrt(v[i] / (NR - 1)) : 1.0f;
    free(m);
}

// (sp: the std over every rank's real rows, each rank's own sim rows' w and u)
static void ratio_and_u(h2o_agent *g, const ctrl_batch *b, const float *pert, int n_real,
                        const h2o_split *sp) {
    int B = b->B, S = g->S, A = g->A, K = g->K, W = 2 * S + A, n_sim = B - n_real;
    sas_rows(g->x, b, n_real, n_sim, NULL, 0, S, A);
    ctrl_mlp_forward(&g->d_sas, g->x, n_sim, g->l_adv);
    ctrl_h2o_ratio(g->l_adv, n_sim, g->c.h2o_ratio_min, g->c.h2o_ratio_max, g->w);
    if (sp) real_std(g, b, n_real, sp->NR);
    // the real rows' std of next_obs, per dimension (1 with fewer than two real rows)
    for (int i = 0; i < S && !sp; i++) {
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
// (sp: means over this rank's rows weighted by its share of the batch, summed)
static void actor_losses(h2o_agent *g, const ctrl_batch *b, const float *eps_pi, double *actor_loss,
                         double *alpha_loss, double *logp_mean, float alpha, const h2o_split *sp) {
    int B = b->B, S = g->S, A = g->A;
    float lsmin = g->c.log_std_min, lsmax = g->c.log_std_max;
    ctrl_mlp_forward(&g->net.actor, b->obs, B, g->out);
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->out, eps_pi, g->scale, g->bias, B, A, lsmin,
                            lsmax);
    *alpha_loss =
        ctrl_sac_alpha_loss(g->logp, g->net.log_alpha, g->c.target_entropy, B, &g->net.dlog_alpha);
    ctrl_concat(g->x, b->obs, g->act, B, S, A);
    ctrl_mlp_forward(&g->net.critic, g->x, B, g->q);
    *actor_loss = ctrl_sac_actor_loss(g->q, g->logp, alpha, g->E, B, g->dq, g->dlogp);
    memset(g->dx, 0, sizeof(float) * B * (S + A));
    ctrl_mlp_backward(&g->net.critic, g->dq, g->dx, 0);
    for (int r = 0; r < B; r++) // act becomes dL/daction (the action columns of dx)
        memcpy(g->act + (long)r * A, g->dx + (long)r * (S + A) + S, sizeof(float) * A);
    memset(g->dout, 0, sizeof(float) * B * 2 * A);
    ctrl_tanh_gauss_backward(g->dout, g->act, g->dlogp, g->out, eps_pi, g->pre, g->scale, B, A,
                             lsmin, lsmax);
    ctrl_mlp_zero_grad(&g->net.actor);
    ctrl_mlp_backward(&g->net.actor, g->dout, NULL, 1);
    *logp_mean = mean_of(g->logp, B);
    if (sp) {
        int all = sp->NR + sp->NS;
        float f = (float)B / all;
        for (long i = 0; i < g->net.actor.n_params; i++) g->net.actor.grads[i] *= f;
        dist_allreduce_sum_f32(g->net.actor.grads, g->net.actor.n_params);
        double v[4] = {part(*actor_loss, B, all), part(*alpha_loss, B, all),
                       part(*logp_mean, B, all), part(g->net.dlog_alpha, B, all)};
        dist_allreduce_sum_f64(v, 4);
        *actor_loss = v[0], *alpha_loss = v[1], *logp_mean = v[2], g->net.dlog_alpha = (float)v[3];
    }
}

// ctrl_h2o_penalty over every rank's rows: omega = u / usum (usum: every rank's
// sim rows'), the logsumexp's max and sum and the real rows' sum of q over ranks
static double penalty_ranks(const float *q_sim, const double *u, int n_sim, double usum,
                            const float *q_real, int n_real, int NR, float temp, float weight,
                            float *dq_sim, float *dq_real, double *gap_out) {
    double mx = -INFINITY, v[2] = {0, 0};
    for (int b = 0; b < n_sim; b++) mx = fmax(mx, ((double)q_sim[b] + log(u[b] / usum)) / temp);
    dist_allreduce_max_f64(&mx, 1);
    for (int b = 0; b < n_sim; b++) v[0] += exp(((double)q_sim[b] + log(u[b] / usum)) / temp - mx);
    for (int b = 0; b < n_real; b++) v[1] += q_real[b];
    dist_allreduce_sum_f64(v, 2);
    double gap = temp * (mx + log(v[0]));
    for (int b = 0; b < n_sim; b++)
        dq_sim[b] = (float)(weight * exp(((double)q_sim[b] + log(u[b] / usum)) / temp - mx) / v[0]);
    for (int b = 0; b < n_real; b++) dq_real[b] = (float)(-(double)weight / NR);
    *gap_out = gap;
    return weight * (gap - v[1] / NR);
}

// steps 3-4: the target and the critic loss (gradients into the critic)
// (sp: each group's mean over this rank's rows weighted by its share of the group;
// the penalty over every rank's rows, usum every rank's sum of u)
static void critic_loss(h2o_agent *g, const ctrl_batch *b, const float *eps_next, int n_real,
                        int penalty, double *td_real, double *td_sim, double *pen, double *gap,
                        const h2o_split *sp, double usum) {
    int B = b->B, S = g->S, A = g->A, E = g->E, n_sim = B - n_real;
    float lsmin = g->c.log_std_min, lsmax = g->c.log_std_max;
    ctrl_mlp_forward(&g->net.actor, b->next_obs, B, g->out);
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->out, eps_next, g->scale, g->bias, B, A,
                            lsmin, lsmax);
    ctrl_concat(g->x, b->next_obs, g->act, B, S, A);
    ctrl_mlp_forward(&g->net.critic_target, g->x, B, g->q);
    ctrl_sac_target(g->y, g->q, g->logp, b->rew, b->done, g->c.gamma, 0.0f, E, B);
    ctrl_concat(g->x, b->obs, b->act, B, S, A);
    ctrl_mlp_forward(&g->net.critic, g->x, B, g->q);
    *td_real = *td_sim = *pen = *gap = 0;
    float *dpen = g->dlogp; // (B) scratch
    float fr = sp && sp->NR ? (float)n_real / sp->NR : 1.0f;
    float fs = sp && sp->NS ? (float)n_sim / sp->NS : 1.0f;
    for (int e = 0; e < E; e++) {
        float *qe = g->q + (long)e * B, *de = g->dq + (long)e * B;
        if (n_real) *td_real += ctrl_sac_critic_mse(qe, g->y, 1, n_real, de) * fr;
        if (n_sim)
            *td_sim +=
                ctrl_h2o_weighted_mse(qe + n_real, g->y + n_real, g->w, n_sim, de + n_real) * fs;
        if (sp)
            for (int r = 0; r < B; r++) de[r] *= r < n_real ? fr : fs;
        if (!penalty) continue;
        double gap_e;
        *pen += sp ? penalty_ranks(qe + n_real, g->u, n_sim, usum, qe, n_real, sp->NR,
                                   g->c.cql_temp, g->c.h2o_cql_weight, dpen + n_real, dpen, &gap_e)
                   : ctrl_h2o_penalty(qe + n_real, g->u, n_sim, qe, n_real, g->c.cql_temp,
                                      g->c.h2o_cql_weight, dpen + n_real, dpen, &gap_e);
        *gap += gap_e / E;
        for (int r = 0; r < B; r++) de[r] += dpen[r];
    }
    ctrl_mlp_zero_grad(&g->net.critic);
    ctrl_mlp_backward(&g->net.critic, g->dq, NULL, 1);
    if (sp) {
        double v[2] = {*td_real, *td_sim};
        dist_allreduce_sum_f64(v, 2);
        *td_real = v[0], *td_sim = v[1];
        dist_allreduce_sum_f32(g->net.critic.grads, g->net.critic.n_params);
    }
}

// MPI ranks: this rank's rows of b, [its real | its sim], and their noise (the
// layout ctrl_h2o_draw_noise gives a batch of that many rows) into g->lb, g->lnoise
static void local_rows(h2o_agent *g, const ctrl_batch *b, const h2o_split *sp) {
    int S = g->S, A = g->A, K = g->K, W = 2 * S + A, B = b->B, n = sp->nr + sp->ns;
    ctrl_batch *L = &g->lb;
    free(L->obs), free(L->act), free(L->rew), free(L->next_obs), free(L->done), free(g->lnoise);
    *L = (ctrl_batch){.B = n, .obs_dim = S, .act_dim = A, .n_offline = sp->nr};
    L->obs = xmalloc(sizeof(float) * ((size_t)n * S + 1));
    L->next_obs = xmalloc(sizeof(float) * ((size_t)n * S + 1));
    L->act = xmalloc(sizeof(float) * ((size_t)n * A + 1));
    L->rew = xmalloc(sizeof(float) * ((size_t)n + 1));
    L->done = xmalloc(sizeof(float) * ((size_t)n + 1));
    g->lnoise = xmalloc(sizeof(float) * ((size_t)ctrl_h2o_noise_size(n, S, A, sp->ns, K) + 1));
    const float *pert = g->noise + (long)B * W, *pi = pert + (long)sp->NS * K * S;
    const float *nx = pi + (long)B * A;
    float *lpert = g->lnoise + (long)n * W, *lpi = lpert + (long)sp->ns * K * S;
    float *lnx = lpi + (long)n * A;
    for (int i = 0; i < n; i++) {
        int r = i < sp->nr ? sp->r0 + i : sp->NR + sp->s0 + (i - sp->nr); // the row in b
        memcpy(L->obs + (long)i * S, b->obs + (long)r * S, sizeof(float) * S);
        memcpy(L->next_obs + (long)i * S, b->next_obs + (long)r * S, sizeof(float) * S);
        memcpy(L->act + (long)i * A, b->act + (long)r * A, sizeof(float) * A);
        L->rew[i] = b->rew[r], L->done[i] = b->done[r];
        memcpy(g->lnoise + (long)i * W, g->noise + (long)r * W, sizeof(float) * W);
        memcpy(lpi + (long)i * A, pi + (long)r * A, sizeof(float) * A);
        memcpy(lnx + (long)i * A, nx + (long)r * A, sizeof(float) * A);
    }
    memcpy(lpert, pert + (long)sp->s0 * K * S, sizeof(float) * (size_t)sp->ns * K * S);
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
    // MPI ranks: the update runs on this rank's share of each group, B and the
    // group sizes now its own; the whole batch's sizes stay in sp
    h2o_split split, *sp = NULL;
    if (dist_size() > 1) {
        long a, z, c, d;
        dist_share(n_real, dist_rank(), dist_size(), &a, &z);
        dist_share(n_sim, dist_rank(), dist_size(), &c, &d);
        split = (h2o_split){(int)a, (int)(z - a), n_real, (int)c, (int)(d - c), n_sim};
        sp = &split;
        local_rows(g, b, sp);
        b = &g->lb, B = b->B, n_real = sp->nr, n_sim = sp->ns;
    }
    const float *disc_noise = sp ? g->lnoise : g->noise, *pert = disc_noise + (long)B * (2 * S + A);
    const float *eps_pi = pert + (long)n_sim * K * S, *eps_next = eps_pi + (long)B * A;
    float alpha = g->c.autotune_alpha ? expf(g->net.log_alpha) : g->c.sac_alpha;

    double disc = 0, sa = 0, sas = 0, usum = 0;
    if (both) disc = train_discriminators(g, b, disc_noise, n_real, &sa, &sas, sp);
    if (sp ? split.NS > 0 : n_sim > 0) ratio_and_u(g, b, pert, n_real, sp);
    for (int r = 0; r < n_sim; r++) usum += g->u[r];
    if (sp) dist_allreduce_sum_f64(&usum, 1);
    double actor_loss, alpha_loss, logp_mean, td_real, td_sim, pen, gap;
    actor_losses(g, b, eps_pi, &actor_loss, &alpha_loss, &logp_mean, alpha, sp);
    critic_loss(g, b, eps_next, n_real, both && g->c.h2o_cql_weight > 0, &td_real, &td_sim, &pen,
                &gap, sp, usum);
    double q_real = 0, q_sim = 0, ratio_sim = n_sim ? mean_of(g->w, n_sim) : 0, u_mean = 0;
    for (int e = 0; e < g->E; e++) {
        q_real += mean_of(g->q + (long)e * B, n_real) / g->E;
        q_sim += mean_of(g->q + (long)e * B + n_real, n_sim) / g->E;
    }
    for (int r = 0; r < n_sim; r++) u_mean += g->u[r] / n_sim;
    if (sp) { // the groups' means over every rank's rows
        double v[4] = {part(q_real, n_real, sp->NR), part(q_sim, n_sim, sp->NS),
                       part(ratio_sim, n_sim, sp->NS), part(u_mean, n_sim, sp->NS)};
        dist_allreduce_sum_f64(v, 4);
        q_real = v[0], q_sim = v[1], ratio_sim = v[2], u_mean = v[3];
        n_real = sp->NR;
    }

    g->steps += 1.0f;
    int t = (int)g->steps;
    // ctrl_adam_step counts t up
    g->net.actor_opt.t = g->net.critic_opt.t = g->net.alpha_opt.t = t - 1;
    if (g->c.autotune_alpha)
        ctrl_adam_step(&g->net.alpha_opt, &g->net.log_alpha, &g->net.dlog_alpha);
    ctrl_adam_step(&g->net.actor_opt, g->net.actor.params, g->net.actor.grads);
    ctrl_adam_step(&g->net.critic_opt, g->net.critic.params, g->net.critic.grads);
    ctrl_mlp_polyak(&g->net.critic_target, &g->net.critic, g->c.tau);

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
        ctrl_metrics_add(metrics, "ratio_sim", ratio_sim);
        ctrl_metrics_add(metrics, "u_sim", u_mean);
        ctrl_metrics_add(metrics, "real_rows", n_real);
    }
    return 0;
}

static void h2o_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                    float *action) {
    h2o_agent *g = agent;
    grow(g, B);
    ctrl_tanh_gauss_act(&g->net.actor, obs, B, g->A, deterministic, rng, g->scale, g->bias,
                        g->c.log_std_min, g->c.log_std_max, g->out, g->pre, g->noise, action);
}

static int h2o_tensors(void *agent, ctrl_tensor *out, int max) {
    h2o_agent *g = agent;
    ctrl_tensor all[20];
    int n = 0;
    n = ctrl_sac_nets_tensors(&g->net, all, n);
    CTRL_TENSORS_ADAM(all, n, "d_sa", g->d_sa.params, g->d_sa_opt);
    CTRL_TENSORS_ADAM(all, n, "d_sas", g->d_sas.params, g->d_sas_opt);
    all[n++] = (ctrl_tensor){"step", &g->steps, 1};
    all[n++] = (ctrl_tensor){"disc_step", &g->disc_steps, 1};
    return ctrl_tensors_out(out, max, all, n);
}

static void h2o_free(void *agent) {
    h2o_agent *g = agent;
    if (!g) return;
    ctrl_sac_nets_free(&g->net);
    ctrl_mlp_free(&g->d_sa);
    ctrl_mlp_free(&g->d_sas);
    ctrl_adam_free(&g->d_sa_opt);
    ctrl_adam_free(&g->d_sas_opt);
    float *bufs[] = {g->noise, g->x,     g->dx,    g->out,    g->dout, g->pre,
                     g->logp,  g->act,   g->q,     g->dq,     g->y,    g->dlogp,
                     g->l_sa,  g->l_adv, g->dl_sa, g->dl_adv, g->w,    g->std};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->u);
    free(g->lb.obs), free(g->lb.act), free(g->lb.rew), free(g->lb.next_obs), free(g->lb.done);
    free(g->lnoise);
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_h2o = {
    .critic_layer_norm = 1,
    .name = "h2o",
    .summary = "H2O: SAC on real + simulated rows, discriminator dynamics ratio weighting the sim "
               "Bellman error, sim-weighted CQL penalty (Niu et al. 2022)",
    .offline = 0,
    .data_parallel = 1, // each group (real, sim) split over ranks: h2o_split
    .defaults = h2o_defaults,
    .create = h2o_create,
    .update = h2o_update,
    .act = h2o_act,
    .tensors = h2o_tensors,
    .free = h2o_free,
};
