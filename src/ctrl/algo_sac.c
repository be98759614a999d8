// ctrl/algo_sac: SAC (Haarnoja et al. 2018, with automatic entropy tuning),
// CQL (Kumar et al. 2020) and Cal-QL (Nakamoto et al. 2023) — one agent, three
// tables. CQL is SAC plus a conservative term on the critics; Cal-QL is CQL
// whose policy-action Q's are bounded below by the Monte-Carlo return.
//
// Networks: actor = ctrl_mlp(obs -> 2A) with the tanh-Gaussian head
// (policy.h); critic = one ctrl_mlp with ens = n_critics on concat(obs, act);
// critic_target its Polyak copy; Adam for the actor, the critic and the
// scalar log_alpha. Actions are in environment units (bias + scale * tanh).
//
// One update, in CORL's cql.py order: every loss is computed with the
// parameters as they were at the start of the update (alpha, policy and
// critic losses from the same forward passes), then log_alpha, the actor and
// the critic each take one Adam step and the target moves by tau.
//   alpha loss  -log_alpha * mean(logp(a|s) + target_entropy)
//   actor loss  mean(alpha logp(a|s) - min_e Q_e(s, a)),  a ~ pi(s) reparameterised
//   target      y = r + gamma (1 - done) (min_e Qt_e(s', a') - [sac] alpha logp(a'|s'))
//   critic loss sum_e mean (Q_e(s, a_data) - y)^2 + cql_alpha * conservative_e
// Choices kept plain (and fixed here, not flags): SAC backs the entropy up
// into the target (the SAC paper); CQL and Cal-QL do not (CORL's default
// backup_entropy = False); no "max target backup", no Lagrange version, no
// clipping of the CQL difference, no BC warm-up steps, no log_std offset.
// CQL's policy samples and their log-probs are constants in the critic loss
// (CORL detaches them), so the actor learns only from its own loss.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/algo_common.h"
#include "ctrl/cql_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"
#include "nn/nn.h"

typedef struct {
    ctrl_algo_config c;
    int obs_dim, A, E, N; // N: CQL's sampled actions per state (0 for SAC)
    int backup_entropy, calql;
    float *low, *high, *scale, *bias; // (A) action = bias + scale * tanh(pre)
    float log_density_rand;           // log density of a uniform action in the box
    ctrl_sac_nets net;                // actor, critic, critic_target, their Adams, log_alpha
    float steps;                      // updates taken (also every Adam's t), checkpointed
    // scratch, grown to the largest batch
    int cap;
    float *noise, *x, *dx, *out, *dout, *pre, *logp, *act, *q, *dq, *y, *dlogp, *out_n, *pre_n,
        *act_n, *logp_n, *qcat, *dqcat;
} sac_agent;

static void sac_defaults(ctrl_algo_config *c) {
    memset(c, 0, sizeof *c);
    c->hidden = 256;
    c->layers = 2; // the SAC paper's two 256-wide hidden layers
    c->n_critics = 2;
    c->gamma = 0.99f;
    c->tau = 5e-3f;
    c->actor_lr = c->critic_lr = c->alpha_lr = c->value_lr = 3e-4f;
    c->sac_alpha = 1.0f; // log_alpha starts at 0, as CORL's
    c->autotune_alpha = 1;
    c->target_entropy = NAN; // -act_dim
    c->cql_alpha = 0.0f;
    c->cql_n_actions = 0;
    c->cql_temp = 1.0f;
    c->log_std_min = -20.0f;
    c->log_std_max = 2.0f;
    c->max_steps = 1000000;
}

// CORL's cql.py TrainConfig: policy lr 3e-5 (alpha's too), critic lr 3e-4,
// cql_alpha 10, 10 sampled actions, temperature 1, 3 hidden layers.
static void cql_defaults(ctrl_algo_config *c) {
    sac_defaults(c);
    c->layers = 3;
    c->actor_lr = c->alpha_lr = 3e-5f;
    c->critic_lr = 3e-4f;
    c->cql_alpha = 10.0f;
    c->cql_n_actions = 10;
}

// CORL's cal_ql.py: as CQL with 2 hidden layers in the critic (one `layers`
// here serves both networks) and the Cal-QL paper's cql_alpha 5.
static void calql_defaults(ctrl_algo_config *c) {
    cql_defaults(c);
    c->layers = 2;
    c->cql_alpha = 5.0f;
    c->calql = 1;
}

static void grow(sac_agent *g, int B) {
    if (B <= g->cap) return;
    float **bufs[] = {&g->x,     &g->dx,    &g->out,    &g->dout, &g->pre,   &g->logp,
                      &g->act,   &g->q,     &g->dq,     &g->y,    &g->dlogp, &g->out_n,
                      &g->pre_n, &g->act_n, &g->logp_n, &g->qcat, &g->dqcat, &g->noise};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]);
    int A = g->A, N = g->N, R = B * (1 + 3 * N); // critic rows: data, rand, cur, next
    long in = g->obs_dim + A;
    g->x = xmalloc(sizeof(float) * R * in);
    g->dx = xmalloc(sizeof(float) * B * in);
    g->out = xmalloc(sizeof(float) * B * 2 * A);
    g->dout = xmalloc(sizeof(float) * B * 2 * A);
    g->pre = xmalloc(sizeof(float) * B * A);
    g->logp = xmalloc(sizeof(float) * B);
    g->act = xmalloc(sizeof(float) * B * A);
    g->q = xmalloc(sizeof(float) * g->E * B);
    g->dq = xmalloc(sizeof(float) * g->E * B);
    g->y = xmalloc(sizeof(float) * B);
    g->dlogp = xmalloc(sizeof(float) * B);
    long BN = (long)B * (N > 0 ? N : 1);
    g->out_n = xmalloc(sizeof(float) * BN * 2 * A);
    g->pre_n = xmalloc(sizeof(float) * BN * A);
    g->act_n = xmalloc(sizeof(float) * 2 * BN * A); // cur then next samples
    g->logp_n = xmalloc(sizeof(float) * 2 * BN);
    g->qcat = xmalloc(sizeof(float) * g->E * R);
    g->dqcat = xmalloc(sizeof(float) * g->E * R);
    g->noise = xmalloc(sizeof(float) * ctrl_sac_noise_size(B, A, N));
    g->cap = B;
}

static int sac_create_common(const ctrl_algo_config *c, int obs_dim, int act_dim,
                             const float *act_low, const float *act_high, rlhf_rng *rng,
                             void **agent, rlhf_err *err, int cql, int backup_entropy) {
    if (ctrl_check_create("sac", c, obs_dim, act_dim, act_low, act_high, 1, err)) return -1;
    if (cql && (c->cql_n_actions < 1 || !(c->cql_temp > 0)))
        return rlhf_fail(err, "ctrl sac: cql_n_actions %d must be >= 1 and cql_temp %g > 0",
                         c->cql_n_actions, c->cql_temp);
    sac_agent *g = xcalloc(1, sizeof *g);
    g->c = *c;
    if (isnan(g->c.target_entropy)) g->c.target_entropy = -(float)act_dim;
    g->obs_dim = obs_dim;
    g->A = act_dim;
    g->E = c->n_critics;
    g->N = cql ? c->cql_n_actions : 0;
    g->calql = cql && c->calql;
    g->backup_entropy = backup_entropy;
    ctrl_action_box(act_low, act_high, act_dim, &g->low, &g->high, &g->scale, &g->bias);
    // uniform on [-1,1]^A has density 0.5^A (CORL's log(0.5^A)); mapped to the
    // box by scale, the density divides by prod scale
    g->log_density_rand = 0;
    for (int i = 0; i < act_dim; i++) {
        g->log_density_rand += logf(0.5f) - logf(g->scale[i]);
    }
    ctrl_sac_nets_init(&g->net, c, obs_dim, act_dim, c->n_critics, rng);
    *agent = g;
    return 0;
}

static int sac_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *act_low,
                      const float *act_high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    return sac_create_common(c, obs_dim, act_dim, act_low, act_high, rng, agent, err, 0, 1);
}

static int cql_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *act_low,
                      const float *act_high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    return sac_create_common(c, obs_dim, act_dim, act_low, act_high, rng, agent, err, 1, 0);
}

static int calql_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *act_low,
                        const float *act_high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    ctrl_algo_config cc = *c;
    cc.calql = 1;
    return sac_create_common(&cc, obs_dim, act_dim, act_low, act_high, rng, agent, err, 1, 0);
}

// rows of x (R, obs+A): obs row r / rep (each state repeated rep times), action row r
static void concat_rows(float *x, const float *obs, const float *act, int R, int rep, int O,
                        int A) {
    for (int r = 0; r < R; r++) {
        memcpy(x + (long)r * (O + A), obs + (long)(r / rep) * O, sizeof(float) * O);
        memcpy(x + (long)r * (O + A) + O, act + (long)r * A, sizeof(float) * A);
    }
}

// actor samples for each state repeated N times: obs (B, O) -> act (B*N, A), logp (B*N)
static void sample_repeated(sac_agent *g, const float *obs, int B, const float *eps, float *act,
                            float *logp) {
    int O = g->obs_dim, A = g->A, N = g->N;
    float *rep = g->x; // free at this point; (B*N, O) fits in (R, O+A)
    for (int r = 0; r < B * N; r++)
        memcpy(rep + (long)r * O, obs + (long)(r / N) * O, sizeof(float) * O);
    ctrl_mlp_forward(&g->net.actor, rep, B * N, g->out_n);
    ctrl_tanh_gauss_forward(act, logp, g->pre_n, g->out_n, eps, g->scale, g->bias, B * N, A,
                            g->c.log_std_min, g->c.log_std_max);
}

static double mean_of(const float *v, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

// the steps: temperature, actor, critic (their gradients summed over MPI
// ranks first), then the target
static void sac_steps(sac_agent *g, ctrl_share sh) {
    g->steps += 1.0f;
    int t = (int)g->steps;
    // ctrl_adam_step counts t up
    g->net.actor_opt.t = g->net.critic_opt.t = g->net.alpha_opt.t = t - 1;
    if (g->c.autotune_alpha) {
        ctrl_share_grads(sh, &g->net.dlog_alpha, 1);
        ctrl_adam_step(&g->net.alpha_opt, &g->net.log_alpha, &g->net.dlog_alpha);
    }
    ctrl_share_grads(sh, g->net.actor.grads, g->net.actor.n_params);
    ctrl_adam_step(&g->net.actor_opt, g->net.actor.params, g->net.actor.grads);
    ctrl_share_grads(sh, g->net.critic.grads, g->net.critic.n_params);
    ctrl_adam_step(&g->net.critic_opt, g->net.critic.params, g->net.critic.grads);
    ctrl_mlp_polyak(&g->net.critic_target, &g->net.critic, g->c.tau);
}

// on MPI ranks each takes its rows of the batch and of every noise block
// (drawn whole on every rank); every term is a mean over rows
static int sac_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                      rlhf_err *err) {
    sac_agent *g = agent;
    int O = g->obs_dim, A = g->A, E = g->E, N = g->N;
    if (ctrl_check_batch("sac", gb, O, A, err)) return -1;
    if (g->calql && !gb->mc_return)
        return rlhf_fail(err, "ctrl sac: calql needs the batch's mc_return (Monte-Carlo returns)");
    grow(g, gb->B);
    float lsmin = g->c.log_std_min, lsmax = g->c.log_std_max;
    float *noise = g->noise;
    ctrl_sac_draw_noise(rng, gb->B, A, N, noise);
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B;
    long GA = (long)gb->B * A, GNA = GA * N, lo = sh.lo;
    const float *eps_pi = noise + lo * A, *eps_next = noise + GA + lo * A;
    const float *eps_cur = noise + 2 * GA + lo * N * A, *eps_nxt = eps_cur + GNA;
    const float *uni = eps_nxt + GNA;
    float alpha = g->c.autotune_alpha ? expf(g->net.log_alpha) : g->c.sac_alpha;

    // actor and temperature losses: a ~ pi(s), gradient through the critic to a
    ctrl_mlp_forward(&g->net.actor, b->obs, B, g->out);
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->out, eps_pi, g->scale, g->bias, B, A, lsmin,
                            lsmax);
    double alpha_loss =
        ctrl_sac_alpha_loss(g->logp, g->net.log_alpha, g->c.target_entropy, B, &g->net.dlog_alpha);
    concat_rows(g->x, b->obs, g->act, B, 1, O, A);
    ctrl_mlp_forward(&g->net.critic, g->x, B, g->q);
    double actor_loss = ctrl_sac_actor_loss(g->q, g->logp, alpha, E, B, g->dq, g->dlogp);
    memset(g->dx, 0, sizeof(float) * B * (O + A));
    ctrl_mlp_backward(&g->net.critic, g->dq, g->dx, 0);
    float *dact = g->act_n; // (B, A) scratch: the action columns of dx
    for (int r = 0; r < B; r++)
        memcpy(dact + (long)r * A, g->dx + (long)r * (O + A) + O, sizeof(float) * A);
    memset(g->dout, 0, sizeof(float) * B * 2 * A);
    ctrl_tanh_gauss_backward(g->dout, dact, g->dlogp, g->out, eps_pi, g->pre, g->scale, B, A, lsmin,
                             lsmax);
    ctrl_mlp_zero_grad(&g->net.actor);
    ctrl_mlp_backward(&g->net.actor, g->dout, NULL, 1);
    double logp_mean = mean_of(g->logp, B);

    // target: a' ~ pi(s'), y = r + gamma (1 - d) (min_e Qt_e(s', a') - [sac] alpha logp')
    ctrl_mlp_forward(&g->net.actor, b->next_obs, B, g->out);
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->out, eps_next, g->scale, g->bias, B, A,
                            lsmin, lsmax);
    concat_rows(g->x, b->next_obs, g->act, B, 1, O, A);
    ctrl_mlp_forward(&g->net.critic_target, g->x, B, g->q);
    ctrl_sac_target(g->y, g->q, g->logp, b->rew, b->done, g->c.gamma,
                    g->backup_entropy ? alpha : 0.0f, E, B);

    // CQL's sampled actions (constants in the critic loss): uniform in the box,
    // pi(s) and pi(s') samples, all evaluated at s
    long BN = (long)B * N;
    float *act_cur = g->act_n, *act_nxt = g->act_n + BN * A;
    float *logp_cur = g->logp_n, *logp_nxt = g->logp_n + BN;
    if (N) {
        sample_repeated(g, b->obs, B, eps_cur, act_cur, logp_cur);
        sample_repeated(g, b->next_obs, B, eps_nxt, act_nxt, logp_nxt);
    }
    // critic rows: [data (B) | rand (B*N) | cur (B*N) | next (B*N)]
    int R = B + 3 * (int)BN;
    concat_rows(g->x, b->obs, b->act, B, 1, O, A);
    if (N) {
        float *xr = g->x + (long)B * (O + A);
        for (long r = 0; r < BN; r++) {
            float *row = xr + r * (O + A);
            memcpy(row, b->obs + (r / N) * O, sizeof(float) * O);
            for (int i = 0; i < A; i++) row[O + i] = g->bias[i] + g->scale[i] * uni[r * A + i];
        }
        concat_rows(xr + BN * (O + A), b->obs, act_cur, (int)BN, N, O, A);
        concat_rows(xr + 2 * BN * (O + A), b->obs, act_nxt, (int)BN, N, O, A);
    }
    ctrl_mlp_forward(&g->net.critic, g->x, R, g->qcat);
    // the data rows of each member, contiguous for the MSE: (E, B)
    for (int e = 0; e < E; e++)
        memcpy(g->q + (long)e * B, g->qcat + (long)e * R, sizeof(float) * B);
    double mse = ctrl_sac_critic_mse(g->q, g->y, E, B, g->dq);
    double cql_loss = 0, ood = 0, q_data_mean = mean_of(g->q, (long)E * B);
    for (int e = 0; e < E; e++) {
        float *qe = g->qcat + (long)e * R, *de = g->dqcat + (long)e * R;
        memcpy(de, g->dq + (long)e * B, sizeof(float) * B);
        if (!N) continue;
        float *ddata = g->dlogp; // (B) free here
        double ood_e;
        cql_loss += ctrl_cql_conservative(qe + B, qe + B + BN, logp_cur, qe + B + 2 * BN, logp_nxt,
                                          qe, g->calql ? b->mc_return : NULL, g->log_density_rand,
                                          g->c.cql_temp, g->c.cql_alpha, B, N, de + B, de + B + BN,
                                          de + B + 2 * BN, ddata, &ood_e);
        for (int r = 0; r < B; r++) de[r] += ddata[r];
        ood += ood_e / E;
    }
    ctrl_mlp_zero_grad(&g->net.critic);
    ctrl_mlp_backward(&g->net.critic, g->dqcat, NULL, 1);

    sac_steps(g, sh);

    if (metrics) {
        double m[8] = {mse,        cql_loss,    actor_loss,       alpha_loss,
                       -logp_mean, q_data_mean, mean_of(g->y, B), ood};
        ctrl_share_means(sh, m, 8);
        ctrl_metrics_add(metrics, "critic_loss", m[0] + m[1]);
        ctrl_metrics_add(metrics, "td_loss", m[0]);
        ctrl_metrics_add(metrics, "actor_loss", m[2]);
        ctrl_metrics_add(metrics, "alpha_loss", m[3]);
        ctrl_metrics_add(metrics, "alpha", alpha);
        ctrl_metrics_add(metrics, "entropy", m[4]);
        ctrl_metrics_add(metrics, "q_data", m[5]);
        ctrl_metrics_add(metrics, "target", m[6]);
        if (N) {
            ctrl_metrics_add(metrics, "cql_loss", m[1]);
            ctrl_metrics_add(metrics, "cql_ood", m[7]);
        }
    }
    return 0;
}

static void sac_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                    float *action) {
    sac_agent *g = agent;
    grow(g, B);
    ctrl_tanh_gauss_act(&g->net.actor, obs, B, g->A, deterministic, rng, g->scale, g->bias,
                        g->c.log_std_min, g->c.log_std_max, g->out, g->pre, g->noise, action);
}

static int sac_tensors(void *agent, ctrl_tensor *out, int max) {
    sac_agent *g = agent;
    ctrl_tensor all[12];
    int n = 0;
    n = ctrl_sac_nets_tensors(&g->net, all, n);
    // step: updates taken = every Adam's t (exact below 2^24)
    all[n++] = (ctrl_tensor){"step", &g->steps, 1};
    return ctrl_tensors_out(out, max, all, n);
}

static void sac_free(void *agent) {
    sac_agent *g = agent;
    if (!g) return;
    ctrl_sac_nets_free(&g->net);
    float *bufs[] = {g->x,     g->dx,    g->out,    g->dout, g->pre,   g->logp,
                     g->act,   g->q,     g->dq,     g->y,    g->dlogp, g->out_n,
                     g->pre_n, g->act_n, g->logp_n, g->qcat, g->dqcat, g->noise};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_sac = {
    .critic_layer_norm = 1,
    .name = "sac",
    .summary = "soft actor-critic with learned entropy temperature (Haarnoja et al. 2018)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = sac_defaults,
    .create = sac_create,
    .update = sac_update,
    .act = sac_act,
    .tensors = sac_tensors,
    .free = sac_free,
};

const ctrl_algo ctrl_algo_cql = {
    .critic_layer_norm = 1,
    .name = "cql",
    .summary = "conservative Q-learning on SAC, logsumexp over sampled actions (Kumar et al. 2020)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = cql_defaults,
    .create = cql_create,
    .update = sac_update,
    .act = sac_act,
    .tensors = sac_tensors,
    .free = sac_free,
};

const ctrl_algo ctrl_algo_calql = {
    .critic_layer_norm = 1,
    .name = "calql",
    .summary =
        "Cal-QL: CQL with policy Q's bounded below by Monte-Carlo returns (Nakamoto et al. 2023)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = calql_defaults,
    .create = calql_create,
    .update = sac_update,
    .act = sac_act,
    .tensors = sac_tensors,
    .free = sac_free,
};
