// ctrl/algo_famo2o: FamO2O over IQL (famo2o) behind a ctrl_algo table —
// Wang, Chen, Zhu, Zhang, Wang & Huang 2023, "Train Once, Get a Family:
// State-Adaptive Balances for Offline-to-Online Reinforcement Learning".
// Definitions and update order as the authors' IQL variant
// (LeapLabTHU/FamO2O, jax_iql/family_learner.py _family_update_jit,
// family_actor.py, family_temperature.py, family_utils.py); our own code.
//
// Networks: IQL's critic ensemble Q_e(s, a), its Polyak target and V(s) (as
// algo_iql.c); a universal policy pi_u(a | s, beta): a Gaussian with mean
// bias + scale * tanh(net([s | enc(beta)])) and a state-independent log_std
// (A) clamped to [log_std_min, log_std_max] (the authors' family actor:
// log_std_min -5); enc(beta) the 6-wide sin-cos code of famo2o_loss.h; a
// balance model pi_b(beta | s): a tanh-Gaussian of one dimension, mean net(s)
// and a state-independent log_std (1) clamped to [-10, 2] (the authors'
// NormalTanhPolicy defaults), x in [-1, 1] mapped to
// beta = beta_min + (x + 1) / 2 (beta_max - beta_min); and its temperature
// alpha = exp(log_alpha), starting at sac_alpha (the authors' 1).
//
// One update (the authors' order):
//   step += 1
//   noise: eb (B) normals, ea (B, A) normals, then (B) more: uniforms while
//     step <= famo2o_uniform_steps (the offline phase), else normals eb2
//   qt = min_e Q_target_e(s, a); adv = qt - V(s);
//   V loss = mean |iql_tau - 1[adv < 0]| adv^2; Adam step on V
//   balance: x = tanh(mu_b(s) + std_b eb), logp_b its log-probability (on
//     the [-1, 1] scale, with the tanh Jacobian), beta = map(x),
//     a~ = mean_u(s, beta) + std_u ea (not clipped; pi_u held fixed),
//     loss = mean (alpha logp_b - min_e Q_target_e(s, a~)), gradient through
//     logp_b and through beta -> enc -> pi_u -> a~ -> Q_target (reparameterised);
//     Adam step (actor_lr, constant) on the balance net and its log_std
//   alpha: loss = alpha (H - target_entropy), H = -mean logp_b (fixed);
//     Adam step (alpha_lr) on log_alpha
//   actor: adv = qt - V(s) with the UPDATED V; beta per row ~ U(beta_min,
//     beta_max) in the offline phase, else map(tanh(mu_b(s) + std_b eb2)) from
//     the balance model BEFORE its step (as the authors pass the old one);
//     w = min(exp(beta adv), adv_clip); loss = mean -w log pi_u(a | s, beta);
//     Adam step at IQL's cosine lr actor_lr (1 + cos(pi k / max_steps)) / 2
//     (algo_iql.c's schedule; max_steps <= 0: constant)
//   Q: y = r + gamma (1 - d) V(s') with the UPDATED V; loss = (1/E) sum_e
//     mean (Q_e(s, a) - y)^2; Adam step; Polyak (tau) on Q_target.
// (The authors' code, like Kostrikov's original IQL, uses the updated V for
// the actor's advantage and the Q target; algo_iql.c follows CORL, which
// uses V before its step. The authors reuse one PRNG key for the balance
// sample and the policy sample; ours draws them apart.)
// act: beta = map(tanh(mu_b(s))) (the balance model's deterministic choice,
// as the authors' sample_actions), then pi_u's mean (deterministic) or a
// sample clipped to the bounds.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/algo_common.h"
#include "ctrl/ctrl_loss.h"
#include "ctrl/famo2o_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"

// the balance model's log_std clamp (the authors' LOG_STD_MIN / MAX)
#define BAL_LOG_STD_MIN (-10.0f)
#define BAL_LOG_STD_MAX 2.0f

// the step and the Adam step counts, as floats for the checkpoint
enum {
    C_STEP,
    C_ACTOR_T,
    C_LOGSTD_T,
    C_CRITIC_T,
    C_VALUE_T,
    C_BAL_T,
    C_BAL_LOGSTD_T,
    C_ALPHA_T,
    N_COUNTERS
};

typedef struct {
    int S, A, D;
    ctrl_algo_config c;
    float target_entropy;
    float *low, *high, *scale, *bias; // (A)
    ctrl_mlp actor, balance, critic, critic_target, value;
    ctrl_adam actor_opt, log_std_opt, balance_opt, bal_log_std_opt, alpha_opt, critic_opt,
        value_opt;
    float *log_std, *log_std_grad; // (A)
    float bal_log_std[1], bal_log_std_grad[1], log_alpha[1], log_alpha_grad[1];
    float counters[N_COUNTERS];
    int cap; // scratch, grown to the largest batch
    float *sx, *dsx, *sa, *dsa, *u, *du, *mean, *dmean, *pa, *q, *dq, *y, *v, *dv, *qt, *adv, *w,
        *logp, *dlogp, *noise, *bmu, *bout, *dbout, *bx, *bpre, *blogp, *dblogp, *beta, *dbeta,
        *enc, *qmin, *dqmin;
} famo2o_agent;

static void grow(famo2o_agent *g, int B) {
    if (B <= g->cap) return;
    long BA = (long)B * g->A, BE = (long)B * g->c.n_critics;
    long BX = (long)B * (g->S + g->D), BQ = (long)B * (g->S + g->A);
    float **bufs[] = {&g->sx,    &g->dsx,   &g->sa,   &g->dsa,  &g->u,     &g->du,     &g->mean,
                      &g->dmean, &g->pa,    &g->q,    &g->dq,   &g->y,     &g->v,      &g->dv,
                      &g->qt,    &g->adv,   &g->w,    &g->logp, &g->dlogp, &g->noise,  &g->bmu,
                      &g->bout,  &g->dbout, &g->bx,   &g->bpre, &g->blogp, &g->dblogp, &g->beta,
                      &g->dbeta, &g->enc,   &g->qmin, &g->dqmin};
    long sizes[] = {BX, BX,     BQ,     BQ, BA, BA, BA, BA, BA, BE,
                    BE, B,      B,      B,  B,  B,  B,  B,  B,  BA + 2L * B,
                    B,  2L * B, 2L * B, B,  B,  B,  B,  B,  B,  (long)B * g->D,
                    B,  B};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof bufs / sizeof bufs[0]));
    g->cap = B;
}

static float beta_of(const famo2o_agent *g, double x) {
    return (float)(g->c.famo2o_beta_min +
                   (x + 1.0) / 2.0 * (g->c.famo2o_beta_max - g->c.famo2o_beta_min));
}

static double bal_std(const famo2o_agent *g) {
    return exp(fmin(fmax(g->bal_log_std[0], BAL_LOG_STD_MIN), BAL_LOG_STD_MAX));
}

// the universal policy's mean (B, A) at (obs, beta) into out; keeps the actor's activations
static void actor_mean(famo2o_agent *g, const float *obs, const float *beta, int B, float *out) {
    ctrl_famo2o_encode(g->enc, beta, B, g->D, CTRL_FAMO2O_ENC_BASE);
    ctrl_concat(g->sx, obs, g->enc, B, g->S, g->D);
    ctrl_mlp_forward(&g->actor, g->sx, B, g->u);
    ctrl_det_forward(out, g->u, g->scale, g->bias, B, g->A);
}

// Q (E, B) at (obs, act) -> g->q and the member minimum -> qmin (B)
static void critic_eval(famo2o_agent *g, ctrl_mlp *net, const float *obs, const float *act, int B,
                        float *qmin) {
    ctrl_concat(g->sa, obs, act, B, g->S, g->A);
    ctrl_mlp_forward(net, g->sa, B, g->q);
    ctrl_ensemble_min(qmin, g->q, g->c.n_critics, B);
}

// IQL's values (algo_iql.c / CORL) for the shared fields; FamO2O's own from
// the authors' FamilyLearner: beta range (1, 5) (its default; the antmaze
// config uses (8, 14) with expectile 0.9), target entropy -0.5, the family
// actor's log_std_min -5
static void famo2o_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c);
    c->deterministic_bc = 0;
    c->target_entropy = -0.5f;
    c->log_std_min = -5.0f;
    c->famo2o_beta_min = 1.0f;
    c->famo2o_beta_max = 5.0f;
    c->famo2o_uniform_steps = -1;  // the trainer resolves -1 to --offline_steps
}

static int famo2o_create(const ctrl_algo_config *c, int S, int A, const float *low,
                         const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    if (ctrl_check_create("famo2o", c, S, A, low, high, 1, err)) return -1;
    if (!(c->sac_alpha > 0 && isfinite(c->sac_alpha)))
        return rlhf_fail(err,
                         "ctrl famo2o: sac_alpha %g (the balance temperature's start) must be > 0",
                         c->sac_alpha);
    if (!(isfinite(c->famo2o_beta_min) && isfinite(c->famo2o_beta_max) &&
          c->famo2o_beta_min < c->famo2o_beta_max))
        return rlhf_fail(err, "ctrl famo2o: beta range [%g, %g]; need finite min < max",
                         c->famo2o_beta_min, c->famo2o_beta_max);
    famo2o_agent *g = xcalloc(1, sizeof *g);
    g->S = S;
    g->A = A;
    g->D = CTRL_FAMO2O_ENC_DIM;
    g->c = *c;
    g->target_entropy = isnan(c->target_entropy) ? -0.5f : c->target_entropy;
    ctrl_action_box(low, high, A, &g->low, &g->high, &g->scale, &g->bias);
    ctrl_mlp_init(&g->actor, S + g->D, c->hidden, c->layers, A, 1, rng);
    ctrl_adam_init(&g->actor_opt, g->actor.n_params, c->actor_lr);
    g->log_std = xcalloc(2 * (long)A, sizeof(float)); // log_std = 0 (the authors' zeros init)
    g->log_std_grad = g->log_std + A;
    ctrl_adam_init(&g->log_std_opt, A, c->actor_lr);
    ctrl_mlp_init(&g->balance, S, c->hidden, c->layers, 1, 1, rng);
    ctrl_adam_init(&g->balance_opt, g->balance.n_params, c->actor_lr);
    ctrl_adam_init(&g->bal_log_std_opt, 1, c->actor_lr);
    g->log_alpha[0] = logf(c->sac_alpha); // the authors' hierarchical_init_temperature (1)
    ctrl_adam_init(&g->alpha_opt, 1, c->alpha_lr);
    ctrl_mlp_init(&g->critic, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
    ctrl_adam_init(&g->critic_opt, g->critic.n_params, c->critic_lr);
    ctrl_mlp_init(&g->critic_target, S + A, c->hidden, c->layers, 1, c->n_critics, rng);
    ctrl_mlp_polyak(&g->critic_target, &g->critic, 1.0f);
    ctrl_mlp_init(&g->value, S, c->hidden, c->layers, 1, 1, rng);
    ctrl_adam_init(&g->value_opt, g->value.n_params, c->value_lr);
    *out = g;
    return 0;
}

// the balance model's beta (B) for obs: eps NULL: deterministic (tanh of the
// mean); else a sample; logp (B) may be NULL. Keeps the balance net's
// activations and fills bmu, bout, bx, bpre.
static void balance_beta(famo2o_agent *g, const float *obs, int B, const float *eps, float *beta,
                         float *logp) {
    static const float one = 1.0f, zero = 0.0f;
    ctrl_mlp_forward(&g->balance, obs, B, g->bmu);
    for (int b = 0; b < B; b++) {
        g->bout[2 * b] = g->bmu[b];
        g->bout[2 * b + 1] = g->bal_log_std[0];
    }
    ctrl_tanh_gauss_forward(g->bx, logp, g->bpre, g->bout, eps, &one, &zero, B, 1, BAL_LOG_STD_MIN,
                            BAL_LOG_STD_MAX);
    for (int b = 0; b < B; b++) beta[b] = beta_of(g, g->bx[b]);
}

// the balance model's step and its temperature's, on B rows (on MPI ranks this
// rank's share sh; the temperature's entropy is the whole batch's); returns the
// balance loss over these rows
static double balance_step(famo2o_agent *g, const float *obs, const float *eb, const float *ea,
                           int B, ctrl_share sh, double *entropy_out, double *alpha_loss_out) {
    int S = g->S, A = g->A, E = g->c.n_critics;
    double alpha = exp((double)g->log_alpha[0]);
    balance_beta(g, obs, B, eb, g->beta, g->blogp);
    actor_mean(g, obs, g->beta, B, g->mean);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            double ls = fmin(fmax(g->log_std[i], g->c.log_std_min), g->c.log_std_max);
            g->pa[k] = (float)(g->mean[k] + exp(ls) * ea[k]);
        }
    critic_eval(g, &g->critic_target, obs, g->pa, B, g->qmin);
    memset(g->dblogp, 0, B * sizeof(float));
    memset(g->dqmin, 0, B * sizeof(float));
    double loss = ctrl_famo2o_balance_loss(g->dblogp, g->dqmin, g->blogp, g->qmin, B, alpha);
    // d/dQ to the member that gave the minimum (the first on a tie)
    memset(g->dq, 0, (long)E * B * sizeof(float));
    for (int b = 0; b < B; b++) {
        int best = 0;
        for (int e = 1; e < E; e++)
            if (g->q[(long)e * B + b] < g->q[(long)best * B + b]) best = e;
        g->dq[(long)best * B + b] = g->dqmin[b];
    }
    memset(g->dsa, 0, (long)B * (S + A) * sizeof(float));
    ctrl_mlp_backward(&g->critic_target, g->dq, g->dsa, 0);
    for (int b = 0; b < B; b++) // a~ = mean + std ea: d/dmean = d/da~
        memcpy(g->dmean + (long)b * A, g->dsa + (long)b * (S + A) + S, A * sizeof(float));
    memset(g->du, 0, (long)B * A * sizeof(float));
    ctrl_det_backward(g->du, g->dmean, g->mean, g->scale, g->bias, B, A);
    memset(g->dsx, 0, (long)B * (S + g->D) * sizeof(float));
    ctrl_mlp_backward(&g->actor, g->du, g->dsx, 0);
    for (int b = 0; b < B; b++) // d/denc is the tail of d/d[s | enc]
        memmove(g->dsx + (long)b * g->D, g->dsx + (long)b * (S + g->D) + S, g->D * sizeof(float));
    memset(g->dbeta, 0, B * sizeof(float));
    ctrl_famo2o_encode_backward(g->dbeta, g->dsx, g->beta, B, g->D, CTRL_FAMO2O_ENC_BASE);
    double half = 0.5 * ((double)g->c.famo2o_beta_max - g->c.famo2o_beta_min);
    for (int b = 0; b < B; b++) g->dbeta[b] = (float)(g->dbeta[b] * half); // d beta / dx
    static const float one = 1.0f;
    memset(g->dbout, 0, 2L * B * sizeof(float));
    ctrl_tanh_gauss_backward(g->dbout, g->dbeta, g->dblogp, g->bout, eb, g->bpre, &one, B, 1,
                             BAL_LOG_STD_MIN, BAL_LOG_STD_MAX);
    double dls = 0;
    for (int b = 0; b < B; b++) {
        g->dbeta[b] = g->dbout[2 * b]; // reuse as d/dmu_b (B)
        dls += g->dbout[2 * b + 1];
    }
    ctrl_mlp_zero_grad(&g->balance);
    ctrl_mlp_backward(&g->balance, g->dbeta, NULL, 1);
    g->bal_log_std_grad[0] = (float)dls;
    ctrl_share_grads(sh, g->balance.grads, g->balance.n_params);
    ctrl_share_grads(sh, g->bal_log_std_grad, 1);
    ctrl_adam_step_counted(&g->balance_opt, &g->counters[C_BAL_T], g->balance.params,
                           g->balance.grads);
    ctrl_adam_step_counted(&g->bal_log_std_opt, &g->counters[C_BAL_LOGSTD_T], g->bal_log_std,
              g->bal_log_std_grad);

    // the temperature, on the entropy of this sample (held fixed)
    double h = 0;
    for (int b = 0; b < B; b++) h -= g->blogp[b];
    h /= B;
    ctrl_share_means(sh, &h, 1);
    g->log_alpha_grad[0] = 0;
    *alpha_loss_out =
        ctrl_famo2o_alpha_loss(g->log_alpha_grad, g->log_alpha[0], h, g->target_entropy);
    ctrl_adam_step_counted(&g->alpha_opt, &g->counters[C_ALPHA_T], g->log_alpha, g->log_alpha_grad);
    *entropy_out = h;
    return loss;
}

// on MPI ranks each takes its rows of the batch and of the three noise
// blocks (drawn whole on every rank)
static int famo2o_update(void *agent, const ctrl_batch *gb, rlhf_rng *rng, ctrl_metrics *metrics,
                         rlhf_err *err) {
    famo2o_agent *g = agent;
    if (ctrl_check_batch("famo2o", gb, g->S, g->A, err)) return -1;
    int GB = gb->B, A = g->A, E = g->c.n_critics;
    grow(g, GB);
    float k = g->counters[C_ACTOR_T]; // actor steps taken before this one
    g->counters[C_STEP] += 1;
    int uniform = g->counters[C_STEP] <= (float)g->c.famo2o_uniform_steps;
    float *eb = g->noise, *ea = eb + GB, *e3 = ea + (long)GB * A;
    for (long i = 0; i < GB + (long)GB * A; i++) g->noise[i] = rng_normal(rng);
    for (int r = 0; r < GB; r++) e3[r] = uniform ? rng_uniform(rng) : rng_normal(rng);
    ctrl_share sh = ctrl_share_rows(GB);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B;
    eb += sh.lo;
    ea += (long)sh.lo * A;
    e3 += sh.lo;

    // V: expectile of the target critic's min
    critic_eval(g, &g->critic_target, b->obs, b->act, B, g->qt);
    ctrl_mlp_forward(&g->value, b->obs, B, g->v);
    memset(g->dv, 0, B * sizeof(float));
    double value_loss = ctrl_expectile_loss(g->dv, g->qt, g->v, B, g->c.iql_tau);
    ctrl_mlp_zero_grad(&g->value);
    ctrl_mlp_backward(&g->value, g->dv, NULL, 1);
    ctrl_share_grads(sh, g->value.grads, g->value.n_params);
    ctrl_adam_step_counted(&g->value_opt, &g->counters[C_VALUE_T], g->value.params, g->value.grads);

    // the balance model and its temperature; keep the old model's beta draw
    // for the actor (the authors pass the balance model before its step)
    double alpha = exp((double)g->log_alpha[0]), entropy, alpha_loss;
    double old_std = bal_std(g);
    double balance_loss = balance_step(g, b->obs, eb, ea, B, sh, &entropy, &alpha_loss);
    double bal_beta_mean = 0;
    for (int r = 0; r < B; r++) bal_beta_mean += g->beta[r];
    // g->bmu still holds the old balance mean (forward before the step)
    for (int r = 0; r < B; r++)
        g->beta[r] = uniform
                         ? (float)(g->c.famo2o_beta_min +
                                   (g->c.famo2o_beta_max - g->c.famo2o_beta_min) * (double)e3[r])
                         : beta_of(g, tanh(g->bmu[r] + old_std * e3[r]));

    // actor: exp(beta (Q - V)) with the updated V, per-row beta
    ctrl_mlp_forward(&g->value, b->obs, B, g->v);
    double adv_mean = 0, beta_mean = 0;
    for (int r = 0; r < B; r++) {
        g->adv[r] = g->qt[r] - g->v[r];
        g->y[r] = g->adv[r] * g->beta[r];
        adv_mean += g->adv[r];
        beta_mean += g->beta[r];
    }
    ctrl_exp_adv_weights(g->w, g->y, B, 1.0f, g->c.adv_clip);
    float lr = g->c.actor_lr;
    if (g->c.max_steps > 0)
        lr = (float)(g->c.actor_lr * 0.5 * (1.0 + cos(M_PI * (double)k / g->c.max_steps)));
    actor_mean(g, b->obs, g->beta, B, g->mean);
    memset(g->dmean, 0, (long)B * A * sizeof(float));
    memset(g->dlogp, 0, B * sizeof(float));
    memset(g->log_std_grad, 0, A * sizeof(float));
    ctrl_gauss_logprob(g->logp, g->mean, g->log_std, b->act, B, A, g->c.log_std_min,
                       g->c.log_std_max);
    double actor_loss = ctrl_weighted_nll_loss(g->dlogp, g->logp, g->w, B);
    ctrl_gauss_logprob_backward(g->dmean, g->log_std_grad, g->dlogp, g->mean, g->log_std, b->act, B,
                                A, g->c.log_std_min, g->c.log_std_max);
    memset(g->du, 0, (long)B * A * sizeof(float));
    ctrl_det_backward(g->du, g->dmean, g->mean, g->scale, g->bias, B, A);
    ctrl_mlp_zero_grad(&g->actor);
    ctrl_mlp_backward(&g->actor, g->du, NULL, 1);
    g->actor_opt.lr = g->log_std_opt.lr = lr;
    ctrl_share_grads(sh, g->actor.grads, g->actor.n_params);
    ctrl_adam_step_counted(&g->actor_opt, &g->counters[C_ACTOR_T], g->actor.params, g->actor.grads);
    ctrl_share_grads(sh, g->log_std_grad, A);
    ctrl_adam_step_counted(&g->log_std_opt, &g->counters[C_LOGSTD_T], g->log_std, g->log_std_grad);

    // Q: the mean of the members' MSEs to r + gamma (1 - d) V(s'), updated V
    ctrl_mlp_forward(&g->value, b->next_obs, B, g->y);
    ctrl_td_target(g->y, b->rew, b->done, g->y, 1, B, g->c.gamma);
    ctrl_concat(g->sa, b->obs, b->act, B, g->S, A);
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

    double m[8] = {value_loss,          q_loss,           actor_loss, balance_loss,
                   bal_beta_mean / B,   beta_mean / B,    qmean / B,  adv_mean / B};
    ctrl_share_means(sh, m, 8);  // alpha_loss and the entropy are the batch's already
    ctrl_metrics_add(metrics, "value_loss", m[0]);
    ctrl_metrics_add(metrics, "q_loss", m[1]);
    ctrl_metrics_add(metrics, "actor_loss", m[2]);
    ctrl_metrics_add(metrics, "balance_loss", m[3]);
    ctrl_metrics_add(metrics, "alpha_loss", alpha_loss);
    ctrl_metrics_add(metrics, "alpha", alpha);
    ctrl_metrics_add(metrics, "balance_entropy", entropy);
    ctrl_metrics_add(metrics, "balance_beta_mean", m[4]);
    ctrl_metrics_add(metrics, "beta_mean", m[5]);
    ctrl_metrics_add(metrics, "q_mean", m[6]);
    ctrl_metrics_add(metrics, "adv_mean", m[7]);
    ctrl_metrics_add(metrics, "actor_lr", lr);
    return 0;
}

void ctrl_famo2o_betas(void *agent, const float *obs, int B, float *beta) {
    famo2o_agent *g = agent;
    grow(g, B);
    balance_beta(g, obs, B, NULL, beta, NULL);
}

void ctrl_famo2o_family_act(void *agent, const float *obs, const float *beta, int B,
                            float *action) {
    famo2o_agent *g = agent;
    grow(g, B);
    actor_mean(g, obs, beta, B, action);
}

static void famo2o_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                       float *action) {
    famo2o_agent *g = agent;
    grow(g, B);
    balance_beta(g, obs, B, NULL, g->beta, NULL);
    actor_mean(g, obs, g->beta, B, action);
    if (deterministic) return;
    for (int r = 0; r < B; r++)
        for (int i = 0; i < g->A; i++) {
            long k = (long)r * g->A + i;
            double ls = fmin(fmax(g->log_std[i], g->c.log_std_min), g->c.log_std_max);
            action[k] = (float)(action[k] + exp(ls) * rng_normal(rng));
        }
    ctrl_clip_actions(action, g->low, g->high, B, g->A);
}

static int famo2o_tensors(void *agent, ctrl_tensor *out, int max) {
    famo2o_agent *g = agent;
    ctrl_tensor all[24];
    int n = 0;
    CTRL_TENSORS_ADAM(all, n, "actor", g->actor.params, g->actor_opt);
    CTRL_TENSORS_ADAM(all, n, "log_std", g->log_std, g->log_std_opt);
    CTRL_TENSORS_ADAM(all, n, "balance", g->balance.params, g->balance_opt);
    CTRL_TENSORS_ADAM(all, n, "balance_log_std", g->bal_log_std, g->bal_log_std_opt);
    CTRL_TENSORS_ADAM(all, n, "log_alpha", g->log_alpha, g->alpha_opt);
    CTRL_TENSORS_ADAM(all, n, "critic", g->critic.params, g->critic_opt);
    all[n++] = (ctrl_tensor){"critic_target", g->critic_target.params, g->critic.n_params};
    CTRL_TENSORS_ADAM(all, n, "value", g->value.params, g->value_opt);
    // step, then the actor / log_std / critic / value / balance / balance
    // log_std / log_alpha Adam t
    all[n++] = (ctrl_tensor){"counters", g->counters, N_COUNTERS};
    return ctrl_tensors_out(out, max, all, n);
}

static void famo2o_free(void *agent) {
    famo2o_agent *g = agent;
    if (!g) return;
    ctrl_mlp *nets[] = {&g->actor, &g->balance, &g->critic, &g->critic_target, &g->value};
    for (int i = 0; i < 5; i++) ctrl_mlp_free(nets[i]);
    ctrl_adam *opts[] = {&g->actor_opt, &g->log_std_opt, &g->balance_opt, &g->bal_log_std_opt,
                         &g->alpha_opt, &g->critic_opt,  &g->value_opt};
    for (int i = 0; i < 7; i++) ctrl_adam_free(opts[i]);
    free(g->log_std);
    float *bufs[] = {g->sx,   g->dsx,   g->sa,     g->dsa,   g->u,     g->du,   g->mean,  g->dmean,
                     g->pa,   g->q,     g->dq,     g->y,     g->v,     g->dv,   g->qt,    g->adv,
                     g->w,    g->logp,  g->dlogp,  g->noise, g->bmu,   g->bout, g->dbout, g->bx,
                     g->bpre, g->blogp, g->dblogp, g->beta,  g->dbeta, g->enc,  g->qmin,  g->dqmin};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_famo2o = {
    .name = "famo2o",
    .summary = "FamO2O over IQL: a beta-conditioned policy family and a per-state balance model "
               "(Wang et al. 2023)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = famo2o_defaults,
    .create = famo2o_create,
    .update = famo2o_update,
    .act = famo2o_act,
    .tensors = famo2o_tensors,
    .free = famo2o_free,
};
