// ctrl/algo_ro2o: RO2O (Wen et al. 2024, "Towards Robust Offline-to-Online
// Reinforcement Learning via Uncertainty and Smoothness") and the SAC-N
// ensemble it extends (An et al. 2021, as CORL's sac_n.py) — one agent, two
// tables. sacn is ro2o with every regulariser off.
//
// Networks: actor = ctrl_mlp(obs -> 2A) with policy.h's tanh-Gaussian head;
// critic = one ctrl_mlp with ens = n_critics (10) on concat(obs, act);
// critic_target its Polyak copy; Adam for the actor, the critic and log_alpha.
// Initialisation as EDAC / CORL's sac_n.py: hidden biases 0.1, the last
// layer U(-1e-3, 1e-3) (actor) and U(-3e-3, 3e-3) (critic).
//
// One update, in the order of RO2O's ro2o_mujoco.py (CORL's EDAC / SAC-N
// order: temperature, then actor, then critic, EACH STEP SEEING THE PREVIOUS
// ONE'S RESULT — unlike algo_sac.c, where every loss uses the start-of-update
// parameters):
//  1. alpha loss  -log_alpha mean(logp(a|s) + target_entropy), a ~ pi(s); Adam step;
//     alpha = exp(log_alpha) (the new value) for the rest of the update
//  2. actor loss  mean(alpha logp(a|s) - min_j Q_j(s, a))                   a ~ pi(s)
//  reparameterised
//                 + ro2o_policy_weight * mean_b max_k J(pi(.|s), pi(.|s + d_k))
//     J: the Jeffreys divergence of the pre-tanh Gaussians (ro2o_loss.h; RORL
//     computes it on the Normal before the tanh); Adam step on the actor
//  3. target y = r + gamma (1 - done) (min_j Qt_j(s', a') - alpha logp(a'|s')), a' ~ pi_new(s')
//     critic loss  sum_j mean_b (Q_j(s, a) - y)^2
//                 + ro2o_q_weight * mean_b max_k mean_j [(1-tau) (D+)^2 + tau (D-)^2],
//                   D = Q_j(s + d_k, a) - Q_j(s, a)                       (value smoothing)
//                 + ro2o_ood_weight * mean_{j,b,k} (Q_j(s~, a~) - sg[Q_j(s~, a~) - beta std_j Q(s~,
//                 a~)])^2
//                   s~ = s + d_k, a~ ~ pi_new(s~)                          (OOD penalty)
//     Adam step on the critic; the target moves by tau.
//  beta = max(ro2o_beta - ro2o_beta_decay * (updates before this one), ro2o_beta_min)
//  (RO2O/RORL decrement it once per update, after its use).
// Perturbations d_k = eps * U[-1,1)^O, n of them per term, shared by the
// batch's states as RORL's _get_noised_obs draws them; the draws are listed in
// ro2o_loss.h. Both smoothing terms let gradients reach the clean side too
// (RORL detaches neither Q(s, a) nor pi(.|s)); a~ is a constant (sampled
// without reparameterisation). The same objective serves offline and online
// (the trainer has no phase switch; beta keeps decaying).
// eps is in the units of the observations the agent sees: the trainer's
// --normalize_obs (on by default with a dataset) standardises them, as RO2O's
// script does before training, so eps = 0.01 is 1% of a dataset std. Not
// here: RO2O's log(1 - tanh^2 + 1e-6) (policy.h's exact log-det is used).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/algo_common.h"
#include "ctrl/cql_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"
#include "ctrl/ro2o_loss.h"

typedef struct {
    ctrl_algo_config c;
    int O, A, E, n;
    float *low, *high, *scale, *bias; // (A) action = bias + scale * tanh(pre)
    ctrl_sac_nets net;                // actor, critic, critic_target, their Adams, log_alpha
    float steps;                      // updates taken (also every Adam's t), checkpointed
    // scratch, grown to the largest batch
    int cap;
    float *noise, *xa, *outa, *douta, *pre, *act, *logp, *dlogp, *dact, *xc, *dxc, *qc, *dqc, *q,
        *dq, *y, *qs, *dqs, *qn, *dqn;
} ro2o_agent;

// RO2O's ro2o_mujoco.py TrainConfig (its walker2d-medium command line): 10
// critics, 256 x 3 networks, lr 3e-4 everywhere, log_std in [-5, 2] (EDAC's),
// n = 20 perturbations of radius 0.01 for each term, weights 1e-4 (value
// smoothing, fixed in their code), 1.0 (policy), 0.1 (OOD), expectile 0.2,
// beta 1.0 -> 0.1 by 5e-7 per update.
static void ro2o_defaults(ctrl_algo_config *c) {
    memset(c, 0, sizeof *c);
    c->hidden = 256;
    c->layers = 3;
    c->n_critics = 10;
    c->gamma = 0.99f;
    c->tau = 5e-3f;
    c->actor_lr = c->critic_lr = c->alpha_lr = c->value_lr = 3e-4f;
    c->sac_alpha = 1.0f; // log_alpha starts at 0
    c->autotune_alpha = 1;
    c->target_entropy = NAN; // -act_dim
    c->log_std_min = -5.0f;
    c->log_std_max = 2.0f;
    c->max_steps = 1000000;
    c->ro2o_samples = 20;
    c->ro2o_q_eps = c->ro2o_policy_eps = c->ro2o_ood_eps = 0.01f;
    c->ro2o_q_weight = 1e-4f;
    c->ro2o_policy_weight = 1.0f;
    c->ro2o_ood_weight = 0.1f;
    c->ro2o_q_tau = 0.2f;
    c->ro2o_beta = 1.0f;
    c->ro2o_beta_min = 0.1f;
    c->ro2o_beta_decay = 5e-7f;
}

// CORL's sac_n.py: the same networks and rates, no regularisers
static void sacn_defaults(ctrl_algo_config *c) {
    ro2o_defaults(c);
    c->ro2o_samples = 0;
    c->ro2o_q_weight = c->ro2o_policy_weight = c->ro2o_ood_weight = 0;
    c->ro2o_beta = c->ro2o_beta_min = c->ro2o_beta_decay = 0;
}

static void grow(ro2o_agent *g, int B) {
    if (B <= g->cap) return;
    float **bufs[] = {&g->noise, &g->xa,   &g->outa, &g->douta, &g->pre, &g->act, &g->logp,
                      &g->dlogp, &g->dact, &g->xc,   &g->dxc,   &g->qc,  &g->dqc, &g->q,
                      &g->dq,    &g->y,    &g->qs,   &g->dqs,   &g->qn,  &g->dqn};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]);
    int O = g->O, A = g->A, E = g->E, n = g->n;
    long Ra = (long)B * (1 + n), Rc = (long)B * (1 + 2 * n), Bn = (long)B * (n > 0 ? n : 1);
    g->noise = xmalloc(sizeof(float) * ro2o_noise_size(B, O, A, n));
    g->xa = xmalloc(sizeof(float) * Ra * O);
    g->outa = xmalloc(sizeof(float) * Ra * 2 * A);
    g->douta = xmalloc(sizeof(float) * Ra * 2 * A);
    g->pre = xmalloc(sizeof(float) * Ra * A);
    g->act = xmalloc(sizeof(float) * Ra * A);
    g->logp = xmalloc(sizeof(float) * B);
    g->dlogp = xmalloc(sizeof(float) * B);
    g->dact = xmalloc(sizeof(float) * B * A);
    g->xc = xmalloc(sizeof(float) * Rc * (O + A));
    g->dxc = xmalloc(sizeof(float) * B * (O + A));
    g->qc = xmalloc(sizeof(float) * E * Rc);
    g->dqc = xmalloc(sizeof(float) * E * Rc);
    g->q = xmalloc(sizeof(float) * E * B);
    g->dq = xmalloc(sizeof(float) * E * B);
    g->y = xmalloc(sizeof(float) * B);
    g->qs = xmalloc(sizeof(float) * E * Bn);
    g->dqs = xmalloc(sizeof(float) * E * Bn);
    g->qn = xmalloc(sizeof(float) * E * Bn);
    g->dqn = xmalloc(sizeof(float) * E * Bn);
    g->cap = B;
}

// EDAC's initialisation on ctrl_mlp's layout: hidden-layer biases 0.1, the
// last layer's W and b uniform in [-last, last] (layer norm's scale and shift,
// with --critic_layer_norm, keep their 1 and 0)
static void edac_init(ctrl_mlp *m, float last) {
    for (int e = 0; e < m->ens; e++)
        for (int l = 0; l < m->layers; l++) {
            int in = l == 0 ? m->in : m->hidden;
            float *b = ctrl_mlp_weight(m, e, l) + (long)m->hidden * in;
            for (int i = 0; i < m->hidden; i++) b[i] = 0.1f;
        }
    // the default last layer is U(+-1/sqrt(hidden)): scale it to U(+-last)
    ctrl_mlp_init_last(m, last * sqrtf((float)m->hidden));
}

static int ro2o_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *act_low,
                       const float *act_high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    if (ctrl_check_create("ro2o", c, obs_dim, act_dim, act_low, act_high, 1, err)) return -1;
    if (c->ro2o_samples < 0)
        return rlhf_fail(err, "ctrl ro2o: ro2o_samples %d must be >= 0", c->ro2o_samples);
    int any = c->ro2o_q_weight != 0 || c->ro2o_policy_weight != 0 || c->ro2o_ood_weight != 0;
    if (any && c->ro2o_samples < 1)
        return rlhf_fail(err, "ctrl ro2o: the smoothing / OOD terms need ro2o_samples >= 1");
    if (c->ro2o_ood_weight != 0 && c->n_critics < 2)
        return rlhf_fail(err, "ctrl ro2o: the OOD penalty needs n_critics >= 2 (an ensemble std)");
    if (!(c->ro2o_q_eps >= 0 && c->ro2o_policy_eps >= 0 && c->ro2o_ood_eps >= 0 &&
          c->ro2o_beta_decay >= 0 && c->ro2o_q_tau >= 0 && c->ro2o_q_tau <= 1))
        return rlhf_fail(err, "ctrl ro2o: ro2o eps radii and beta_decay must be >= 0 and "
                              "ro2o_q_tau in [0, 1]");
    ro2o_agent *g = xcalloc(1, sizeof *g);
    g->c = *c;
    if (isnan(g->c.target_entropy)) g->c.target_entropy = -(float)act_dim;
    g->O = obs_dim;
    g->A = act_dim;
    g->E = c->n_critics;
    g->n = c->ro2o_samples;
    ctrl_action_box(act_low, act_high, act_dim, &g->low, &g->high, &g->scale, &g->bias);
    ctrl_sac_nets_init(&g->net, c, obs_dim, act_dim, c->n_critics, rng);
    edac_init(&g->net.actor, 1e-3f);
    edac_init(&g->net.critic, 3e-3f);
    ctrl_mlp_polyak(&g->net.critic_target, &g->net.critic, 1.0f); // the re-drawn critic
    *agent = g;
    return 0;
}

// x (B*(1+n), O): the B states, then state b + eps * u_k at row B + b*n + k
static void perturbed_rows(float *x, const float *obs, const float *u, float eps, int B, int n,
                           int O, int with_clean) {
    float *z = x;
    if (with_clean) {
        memcpy(z, obs, sizeof(float) * B * O);
        z += (long)B * O;
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < n; k++, z += O)
            for (int i = 0; i < O; i++) z[i] = obs[(long)b * O + i] + eps * u[(long)k * O + i];
}

static double mean_of(const float *v, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

// the update's metrics: m[] as ro2o_actor_step and ro2o_critic_step fill it (means
// over this rank's rows, turned into the batch's), the temperature and, with samples,
// the OOD beta
static void ro2o_metrics(ctrl_metrics *metrics, ctrl_share sh, double *m, float alpha, double beta,
                         int samples) {
    ctrl_share_means(sh, m, 10);
    ctrl_metrics_add(metrics, "critic_loss", m[0] + m[1] + m[2]);
    ctrl_metrics_add(metrics, "td_loss", m[0]);
    ctrl_metrics_add(metrics, "actor_loss", m[3] + m[4]);
    ctrl_metrics_add(metrics, "alpha_loss", m[5]);
    ctrl_metrics_add(metrics, "alpha", alpha);
    ctrl_metrics_add(metrics, "entropy", m[6]);
    ctrl_metrics_add(metrics, "q_data", m[7]);
    ctrl_metrics_add(metrics, "target", m[8]);
    if (samples) {
        ctrl_metrics_add(metrics, "q_smooth_loss", m[1]);
        ctrl_metrics_add(metrics, "policy_smooth_loss", m[4]);
        ctrl_metrics_add(metrics, "ood_loss", m[2]);
        ctrl_metrics_add(metrics, "ood_std", m[9]);
        ctrl_metrics_add(metrics, "ood_beta", beta);
    }
}

// one update's noise at this rank's rows (ro2o_draw_noise draws the whole batch's):
// the temperature's and the actor's action noise, the policy-smoothing directions,
// the next actions' noise, the Q-smoothing and OOD directions, the OOD actions' noise
typedef struct {
    const float *eps_alpha, *eps_pi, *u_pol, *eps_next, *u_q, *u_ood, *eps_ood;
} ro2o_noise;

static ro2o_noise noise_at(const ro2o_agent *g, int GB, long lo) {
    int O = g->O, A = g->A, n = g->n;
    long GBA = (long)GB * A, nO = (long)n * O;
    ro2o_noise z;
    z.eps_alpha = g->noise + lo * A;
    z.eps_pi = g->noise + GBA + lo * A;
    z.u_pol = g->noise + 2 * GBA;
    z.eps_next = z.u_pol + nO + lo * A;
    z.u_q = z.u_pol + nO + GBA;
    z.u_ood = z.u_q + nO;
    z.eps_ood = z.u_ood + nO + lo * n * A;
    return z;
}

// rows (s, a) of the B states with the actions act (B, A) into g->xc
static void state_action_rows(ro2o_agent *g, const float *obs, const float *act, int B) {
    int O = g->O, A = g->A;
    for (int r = 0; r < B; r++) {
        memcpy(g->xc + (long)r * (O + A), obs + (long)r * O, sizeof(float) * O);
        memcpy(g->xc + (long)r * (O + A) + O, act + (long)r * A, sizeof(float) * A);
    }
}

// 1. the temperature and 2. the actor (a ~ pi(s), the gradient through the critic to
// a, plus policy smoothing); returns the temperature the critic's step uses. m[3..6]:
// actor Q loss, policy smoothing loss, temperature loss, entropy.
static float ro2o_actor_step(ro2o_agent *g, const ctrl_batch *b, ctrl_share sh, const ro2o_noise *z,
                             int pol, double *m) {
    const ctrl_algo_config *c = &g->c;
    int O = g->O, A = g->A, E = g->E, n = g->n, B = b->B;
    float lsmin = c->log_std_min, lsmax = c->log_std_max;
    // actor forward on [s ; s + d_pol] (the perturbed rows only with policy smoothing)
    int Ra = B + (pol ? B * n : 0);
    perturbed_rows(g->xa, b->obs, z->u_pol, c->ro2o_policy_eps, B, pol ? n : 0, O, 1);
    ctrl_mlp_forward(&g->net.actor, g->xa, Ra, g->outa);

    // the temperature (the actor is unchanged by this step, so its rows serve both losses)
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->outa, z->eps_alpha, g->scale, g->bias, B, A,
                            lsmin, lsmax);
    m[5] = ctrl_sac_alpha_loss(g->logp, g->net.log_alpha, c->target_entropy, B, &g->net.dlog_alpha);
    if (c->autotune_alpha) {
        ctrl_share_grads(sh, &g->net.dlog_alpha, 1);
        ctrl_adam_step(&g->net.alpha_opt, &g->net.log_alpha, &g->net.dlog_alpha);
    }
    float alpha = c->autotune_alpha ? expf(g->net.log_alpha) : c->sac_alpha;

    // the actor
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->outa, z->eps_pi, g->scale, g->bias, B, A,
                            lsmin, lsmax);
    m[6] = -mean_of(g->logp, B);
    state_action_rows(g, b->obs, g->act, B);
    ctrl_mlp_forward(&g->net.critic, g->xc, B, g->q);
    m[3] = ctrl_sac_actor_loss(g->q, g->logp, alpha, E, B, g->dq, g->dlogp);
    memset(g->dxc, 0, sizeof(float) * B * (O + A));
    ctrl_mlp_backward(&g->net.critic, g->dq, g->dxc, 0);
    for (int r = 0; r < B; r++)
        memcpy(g->dact + (long)r * A, g->dxc + (long)r * (O + A) + O, sizeof(float) * A);
    m[4] = 0;
    if (pol)
        m[4] = ro2o_jeffreys(g->outa, g->outa + (long)B * 2 * A, lsmin, lsmax,
                             c->ro2o_policy_weight, B, n, A, g->douta, g->douta + (long)B * 2 * A);
    else
        memset(g->douta, 0, sizeof(float) * B * 2 * A);
    ctrl_tanh_gauss_backward(g->douta, g->dact, g->dlogp, g->outa, z->eps_pi, g->pre, g->scale, B,
                             A, lsmin, lsmax);
    ctrl_mlp_zero_grad(&g->net.actor);
    ctrl_mlp_backward(&g->net.actor, g->douta, NULL, 1);
    ctrl_share_grads(sh, g->net.actor.grads, g->net.actor.n_params);
    ctrl_adam_step(&g->net.actor_opt, g->net.actor.params, g->net.actor.grads);
    return alpha;
}

// the critic's rows into g->xc: [data (B) | (s + d_q, a) (B*n) | (s + d_ood, a~) (B*n)],
// only the active parts (the OOD states and actions are in g->xa and g->act after
// row B); returns the row count, *off_o the first OOD row (the Q-smoothing rows start
// at B)
static long critic_rows(ro2o_agent *g, const ctrl_batch *b, const float *u_q, int qsm, int ood,
                        long *off_o) {
    int O = g->O, A = g->A, n = g->n, B = b->B;
    long Bn = (long)B * n, BA = (long)B * A, Rc = B;
    float q_eps = g->c.ro2o_q_eps;
    float *z = g->xc;
    for (int r = 0; r < B; r++, z += O + A) {
        memcpy(z, b->obs + (long)r * O, sizeof(float) * O);
        memcpy(z + O, b->act + (long)r * A, sizeof(float) * A);
    }
    if (qsm) {
        for (int r = 0; r < B; r++)
            for (int k = 0; k < n; k++, z += O + A) {
                for (int i = 0; i < O; i++)
                    z[i] = b->obs[(long)r * O + i] + q_eps * u_q[(long)k * O + i];
                memcpy(z + O, b->act + (long)r * A, sizeof(float) * A);
            }
        Rc += Bn;
    }
    *off_o = Rc;
    if (ood) {
        for (long r = 0; r < Bn; r++, z += O + A) {
            memcpy(z, g->xa + (B + r) * O, sizeof(float) * O);
            memcpy(z + O, g->act + BA + r * A, sizeof(float) * A);
        }
        Rc += Bn;
    }
    return Rc;
}

// 3. the critic, with the updated actor: a' ~ pi(s'), a~ ~ pi(s + d_ood); TD, Q
// smoothing and the OOD penalty; then the target's Polyak step. m[0..2], m[7..9]:
// TD loss, Q smoothing loss, OOD loss, mean Q on the data, mean target, OOD std.
static void ro2o_critic_step(ro2o_agent *g, const ctrl_batch *b, ctrl_share sh, const ro2o_noise *z,
                             float alpha, double beta, int qsm, int ood, double *m) {
    const ctrl_algo_config *c = &g->c;
    int O = g->O, A = g->A, E = g->E, n = g->n, B = b->B;
    long BA = (long)B * A, Bn = (long)B * n;
    float lsmin = c->log_std_min, lsmax = c->log_std_max;
    int Rn = B + (ood ? (int)Bn : 0);
    memcpy(g->xa, b->next_obs, sizeof(float) * B * O);
    if (ood) perturbed_rows(g->xa + (long)B * O, b->obs, z->u_ood, c->ro2o_ood_eps, B, n, O, 0);
    ctrl_mlp_forward(&g->net.actor, g->xa, Rn, g->outa);
    ctrl_tanh_gauss_forward(g->act, g->logp, g->pre, g->outa, z->eps_next, g->scale, g->bias, B, A,
                            lsmin, lsmax);
    if (ood)
        ctrl_tanh_gauss_forward(g->act + BA, NULL, g->pre + BA, g->outa + (long)B * 2 * A,
                                z->eps_ood, g->scale, g->bias, (int)Bn, A, lsmin, lsmax);
    state_action_rows(g, b->next_obs, g->act, B);
    ctrl_mlp_forward(&g->net.critic_target, g->xc, B, g->q);
    ctrl_sac_target(g->y, g->q, g->logp, b->rew, b->done, c->gamma, alpha, E, B);

    long off_q = B, off_o;
    long Rc = critic_rows(g, b, z->u_q, qsm, ood, &off_o);
    ctrl_mlp_forward(&g->net.critic, g->xc, (int)Rc, g->qc);
    for (int e = 0; e < E; e++) memcpy(g->q + (long)e * B, g->qc + (long)e * Rc, sizeof(float) * B);
    m[0] = ctrl_sac_critic_mse(g->q, g->y, E, B, g->dq);
    m[7] = mean_of(g->q, (long)E * B);
    m[8] = mean_of(g->y, B);
    for (int e = 0; e < E; e++)
        memcpy(g->dqc + (long)e * Rc, g->dq + (long)e * B, sizeof(float) * B);
    m[1] = m[2] = m[9] = 0;
    if (qsm) {
        for (int e = 0; e < E; e++)
            memcpy(g->qs + e * Bn, g->qc + e * Rc + off_q, sizeof(float) * Bn);
        m[1] = ro2o_q_smooth(g->q, g->qs, c->ro2o_q_tau, c->ro2o_q_weight, E, B, n, g->dq, g->dqs);
        for (int e = 0; e < E; e++) {
            float *d = g->dqc + e * Rc;
            for (int r = 0; r < B; r++) d[r] += g->dq[(long)e * B + r];
            memcpy(d + off_q, g->dqs + e * Bn, sizeof(float) * Bn);
        }
    }
    if (ood) {
        for (int e = 0; e < E; e++)
            memcpy(g->qn + e * Bn, g->qc + e * Rc + off_o, sizeof(float) * Bn);
        m[2] = ro2o_ood_penalty(g->qn, (float)beta, c->ro2o_ood_weight, E, (int)Bn, g->dqn, &m[9]);
        for (int e = 0; e < E; e++)
            memcpy(g->dqc + e * Rc + off_o, g->dqn + e * Bn, sizeof(float) * Bn);
    }
    ctrl_mlp_zero_grad(&g->net.critic);
    ctrl_mlp_backward(&g->net.critic, g->dqc, NULL, 1);
    ctrl_share_grads(sh, g->net.critic.grads, g->net.critic.n_params);
    ctrl_adam_step(&g->net.critic_opt, g->net.critic.params, g->net.critic.grads);
    ctrl_mlp_polyak(&g->net.critic_target, &g->net.critic, c->tau);
}

// on MPI ranks each takes its rows of the batch and of the per-row noise (the
// perturbation directions u are shared by all rows); everything is drawn whole
// on every rank
static int ro2o_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                       rlhf_err *err) {
    ro2o_agent *g = agent;
    if (ctrl_check_batch("ro2o", gb, g->O, g->A, err)) return -1;
    grow(g, gb->B);
    const ctrl_algo_config *c = &g->c;
    ro2o_draw_noise(rng, gb->B, g->O, g->A, g->n, g->noise);
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh);
    ro2o_noise z = noise_at(g, gb->B, sh.lo);
    int t = (int)g->steps + 1;
    // ctrl_adam_step counts t up
    g->net.actor_opt.t = g->net.critic_opt.t = g->net.alpha_opt.t = t - 1;
    double beta = (double)c->ro2o_beta - (double)c->ro2o_beta_decay * (t - 1);
    if (beta < c->ro2o_beta_min) beta = c->ro2o_beta_min;
    int n = g->n;
    int pol = c->ro2o_policy_weight != 0 && n > 0, qsm = c->ro2o_q_weight != 0 && n > 0;
    int ood = c->ro2o_ood_weight != 0 && n > 0;
    double m[10];
    float alpha = ro2o_actor_step(g, &lb, sh, &z, pol, m);
    ro2o_critic_step(g, &lb, sh, &z, alpha, beta, qsm, ood, m);
    g->steps += 1.0f;
    if (metrics) ro2o_metrics(metrics, sh, m, alpha, beta, n > 0);
    return 0;
}

static void ro2o_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                     float *action) {
    ro2o_agent *g = agent;
    grow(g, B);
    ctrl_tanh_gauss_act(&g->net.actor, obs, B, g->A, deterministic, rng, g->scale, g->bias,
                        g->c.log_std_min, g->c.log_std_max, g->outa, g->pre, g->noise, action);
}

static int ro2o_tensors(void *agent, ctrl_tensor *out, int max) {
    ro2o_agent *g = agent;
    ctrl_tensor all[12];
    int n = 0;
    n = ctrl_sac_nets_tensors(&g->net, all, n);
    // step: updates taken: every Adam's t and beta's decay (exact below 2^24)
    all[n++] = (ctrl_tensor){"step", &g->steps, 1};
    return ctrl_tensors_out(out, max, all, n);
}

static void ro2o_free(void *agent) {
    ro2o_agent *g = agent;
    if (!g) return;
    ctrl_sac_nets_free(&g->net);
    float *bufs[] = {g->noise, g->xa,   g->outa, g->douta, g->pre, g->act, g->logp,
                     g->dlogp, g->dact, g->xc,   g->dxc,   g->qc,  g->dqc, g->q,
                     g->dq,    g->y,    g->qs,   g->dqs,   g->qn,  g->dqn};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_ro2o = {
    .critic_layer_norm = 1,
    .name = "ro2o",
    .summary = "RO2O: SAC-N with value/policy smoothing and an OOD uncertainty penalty "
               "(Wen et al. 2024)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = ro2o_defaults,
    .create = ro2o_create,
    .update = ro2o_update,
    .act = ro2o_act,
    .tensors = ro2o_tensors,
    .free = ro2o_free,
};

const ctrl_algo ctrl_algo_sacn = {
    .critic_layer_norm = 1,
    .name = "sacn",
    .summary = "SAC-N: SAC with N critics and the ensemble minimum (An et al. 2021)",
    .offline = 0,
    .defaults = sacn_defaults,
    .create = ro2o_create,
    .update = ro2o_update,
    .act = ro2o_act,
    .tensors = ro2o_tensors,
    .free = ro2o_free,
};
