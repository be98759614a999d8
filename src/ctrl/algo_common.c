// ctrl/algo_common: the helpers algo_*.c share (algo_common.h)
#include "ctrl/algo_common.h"

#include "base/dist.h"
#include "ctrl/policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ctrl_concat(float *dst, const float *obs, const float *x, int B, int S, int W) {
    for (int b = 0; b < B; b++) {
        memcpy(dst + (long)b * (S + W), obs + (long)b * S, S * sizeof(float));
        memcpy(dst + (long)b * (S + W) + S, x + (long)b * W, W * sizeof(float));
    }
}

void ctrl_adam_step_counted(ctrl_adam *opt, float *t, float *params, const float *grads) {
    opt->t = (int)*t;
    ctrl_adam_step(opt, params, grads);
    *t = (float)opt->t;
}

void ctrl_bufs_realloc(float **const bufs[], const long sizes[], int n) {
    for (int i = 0; i < n; i++) {
        free(*bufs[i]);
        *bufs[i] = xmalloc(sizes[i] * sizeof(float));
    }
}

void ctrl_bufs_free(float *const bufs[], int n) {
    for (int i = 0; i < n; i++) free(bufs[i]);
}

void ctrl_action_box(const float *low, const float *high, int A, float **lo, float **hi,
                     float **scale, float **bias) {
    *lo = xmalloc(4 * (long)A * sizeof(float));
    *hi = *lo + A;
    *scale = *lo + 2 * A;
    *bias = *lo + 3 * A;
    for (int i = 0; i < A; i++) {
        (*lo)[i] = low[i];
        (*hi)[i] = high[i];
        (*scale)[i] = (high[i] - low[i]) / 2;
        (*bias)[i] = (high[i] + low[i]) / 2;
    }
}

void ctrl_clip_actions(float *a, const float *low, const float *high, int B, int A) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < A; i++) {
            float *x = a + (long)b * A + i;
            *x = fminf(fmaxf(*x, low[i]), high[i]);
        }
}

int ctrl_check_create(const char *who, const ctrl_algo_config *c, int S, int A, const float *low,
                      const float *high, int critics, rlhf_err *err) {
    if (S < 1 || A < 1)
        return rlhf_fail(err, "ctrl %s: obs_dim %d / act_dim %d must be >= 1", who, S, A);
    if (c->hidden < 1 || c->layers < 1)
        return rlhf_fail(err, "ctrl %s: hidden %d and layers %d must be >= 1", who, c->hidden,
                         c->layers);
    if (critics && c->n_critics < 1)
        return rlhf_fail(err, "ctrl %s: n_critics %d must be >= 1", who, c->n_critics);
    for (int i = 0; i < A; i++)
        if (!(isfinite(low[i]) && isfinite(high[i]) && low[i] < high[i]))
            return rlhf_fail(err, "ctrl %s: action bound %d is [%g, %g]; need finite low < high",
                             who, i, low[i], high[i]);
    return 0;
}

int ctrl_check_batch(const char *who, const ctrl_batch *b, int S, int A, rlhf_err *err) {
    if (b->B < 1 || b->obs_dim != S || b->act_dim != A)
        return rlhf_fail(err,
                         "ctrl %s: batch of %d rows (obs %d, act %d) for an agent of obs %d, "
                         "act %d",
                         who, b->B, b->obs_dim, b->act_dim, S, A);
    return 0;
}

void ctrl_corl_defaults(ctrl_algo_config *c) {
    memset(c, 0, sizeof *c);
    c->hidden = 256;
    c->layers = 2;
    c->n_critics = 2;
    c->gamma = 0.99f;
    c->tau = 0.005f;
    c->actor_lr = c->critic_lr = c->value_lr = c->alpha_lr = 3e-4f;
    c->policy_freq = 2;
    c->policy_noise = 0.2f;
    c->noise_clip = 0.5f;
    c->expl_noise = 0.1f;
    c->td3bc_alpha = 2.5f;
    c->iql_tau = 0.7f;
    c->iql_beta = 3.0f;
    c->adv_clip = 100.0f;
    c->awac_lambda = 1.0f;
    c->sac_alpha = 1.0f;
    c->autotune_alpha = 1;
    c->target_entropy = NAN;
    c->cql_alpha = 5.0f;
    c->cql_n_actions = 10;
    c->cql_temp = 1.0f;
    c->deterministic_bc = 1;
    c->log_std_min = -20.0f;
    c->log_std_max = 2.0f;
    c->max_steps = 1000000;
}

int ctrl_tensors_out(ctrl_tensor *out, int max, const ctrl_tensor *all, int n) {
    if (n > max) n = max;
    memcpy(out, all, n * sizeof *out);
    return n;
}

void ctrl_tanh_gauss_act(ctrl_mlp *actor, const float *obs, int B, int A, int deterministic,
                         rlhf_rng *rng, const float *scale, const float *bias, float log_std_min,
                         float log_std_max, float *out, float *pre, float *noise, float *action) {
    ctrl_mlp_forward(actor, obs, B, out);
    float *eps = NULL;
    if (!deterministic) {
        eps = noise;
        for (long i = 0; i < (long)B * A; i++) eps[i] = rng_normal(rng);
    }
    ctrl_tanh_gauss_forward(action, NULL, pre, out, eps, scale, bias, B, A, log_std_min,
                            log_std_max);
}

static int share_whole; // ctrl_share_whole

void ctrl_share_whole(int on) {
    share_whole = on;
}

// 1 when the rows are split over ranks (more than one, not in ctrl_share_whole)
static int sharing(void) {
    return dist_size() > 1 && !share_whole;
}

ctrl_share ctrl_share_rows(int B) {
    long lo = 0, hi = B;
    if (sharing()) dist_share(B, dist_rank(), dist_size(), &lo, &hi);
    return (ctrl_share){(int)lo, (int)(hi - lo), B};
}

ctrl_batch ctrl_share_batch(const ctrl_batch *b, ctrl_share s) {
    ctrl_batch v = *b;
    long S = b->obs_dim, A = b->act_dim, lo = s.lo;
    v.B = s.n;
    v.obs = b->obs + lo * S;
    v.next_obs = b->next_obs + lo * S;
    v.act = b->act + lo * A;
    v.rew = b->rew + lo;
    v.done = b->done + lo;
    if (b->mc_return) v.mc_return = b->mc_return + lo;
    if (b->cost) v.cost = b->cost + lo;
    int k = b->n_offline - s.lo;
    v.n_offline = k < 0 ? 0 : k > s.n ? s.n : k;
    return v;
}

void ctrl_share_grads(ctrl_share s, float *g, long n) {
    if (!sharing()) return;
    float f = (float)s.n / (float)s.B;
    for (long i = 0; i < n; i++) g[i] *= f;
    dist_allreduce_sum_f32(g, n);
}

void ctrl_share_means(ctrl_share s, double *v, int k) {
    if (!sharing()) return;
    for (int i = 0; i < k; i++) v[i] *= s.n;
    dist_allreduce_sum_f64(v, k);
    for (int i = 0; i < k; i++) v[i] /= s.B;
}

void ctrl_share_sums(ctrl_share s, double *v, int k) {
    (void)s;
    if (sharing()) dist_allreduce_sum_f64(v, k);
}

void ctrl_share_metrics(ctrl_metrics *m, ctrl_share s, const char *const *names, double *v, int k) {
    ctrl_share_means(s, v, k);
    for (int i = 0; i < k; i++) ctrl_metrics_add(m, names[i], v[i]);
}

void ctrl_sac_nets_init(ctrl_sac_nets *k, const ctrl_algo_config *c, int S, int A, int E,
                        rlhf_rng *rng) {
    ctrl_mlp_init_ln(&k->actor, S, c->hidden, c->layers, 2 * A, 1, c->actor_layer_norm, rng);
    ctrl_mlp_init_ln(&k->critic, S + A, c->hidden, c->layers, 1, E, c->critic_layer_norm, rng);
    ctrl_mlp_init_ln(&k->critic_target, S + A, c->hidden, c->layers, 1, E, c->critic_layer_norm,
                     rng);
    ctrl_mlp_polyak(&k->critic_target, &k->critic, 1.0f);
    ctrl_adam_init(&k->actor_opt, k->actor.n_params, c->actor_lr);
    ctrl_adam_init(&k->critic_opt, k->critic.n_params, c->critic_lr);
    ctrl_adam_init(&k->alpha_opt, 1, c->alpha_lr);
    k->log_alpha = logf(c->sac_alpha);
    k->dlog_alpha = 0;
}

int ctrl_sac_nets_tensors(ctrl_sac_nets *k, ctrl_tensor *all, int n) {
    CTRL_TENSORS_ADAM(all, n, "actor", k->actor.params, k->actor_opt);
    CTRL_TENSORS_ADAM(all, n, "critic", k->critic.params, k->critic_opt);
    all[n++] = (ctrl_tensor){"critic_target", k->critic_target.params, k->critic_target.n_params};
    CTRL_TENSORS_ADAM(all, n, "log_alpha", &k->log_alpha, k->alpha_opt);
    return n;
}

void ctrl_sac_nets_free(ctrl_sac_nets *k) {
    ctrl_mlp_free(&k->actor);
    ctrl_mlp_free(&k->critic);
    ctrl_mlp_free(&k->critic_target);
    ctrl_adam_free(&k->actor_opt);
    ctrl_adam_free(&k->critic_opt);
    ctrl_adam_free(&k->alpha_opt);
}
