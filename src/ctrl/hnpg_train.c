// ctrl/hnpg_train: HNPG's own loop (hnpg.h). HNPG is on-policy: every
// iteration needs whole fresh episodes and refits every critic, so it does not
// fit the control trainer's one-update-per-environment-step protocol;
// ctrl_train calls ctrl_algo_hnpg.run (ctrl_hnpg_train, algo_hnpg.c), which
// maps the trainer's config onto hnpg_train here.
//
// On MPI ranks every rank runs the whole loop alike (the same random numbers:
// the episodes, the offline draws, the actions in the targets and values are
// cheap) except the critics' fits, whose rows are shared out
// (hnpg_critic_fit); rank 0 writes the folder.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "ctrl/algo_common.h"
#include "ctrl/dataset.h"
#include "ctrl/env_comblock.h"
#include "ctrl/ctrl_train_internal.h"
#include "ctrl/hnpg_internal.h"
#include "io/file.h"

static int run_over(const hnpg_config *c, const hnpg_result *r, int it);

void hnpg_default_config(hnpg_config *c) {
    memset(c, 0, sizeof *c);
    c->hybrid = 1, c->offline_episodes = 1000, c->offline_eps = NAN;
    c->batch_steps = 1000, c->critic_steps = 30, c->critic_lr = 3e-4f;
    c->hidden = 64, c->layers = 2, c->value_samples = 10;
    c->gamma = 1.0, c->lambda = 0.97;
    hnpg_npg_default_opts(&c->npg);
    c->eval_episodes = 20, c->solve_return = 0.9, c->stop_when_solved = 1;
}

// On MPI ranks (every rank holding the same rows) each rank forwards and
// back-propagates its share of each part's rows (dist_share), the gradient of
// the means over all n rows; the gradients are summed before every Adam step,
// and the last step's losses over ranks.
void hnpg_critic_fit(ctrl_mlp *q, const float *X_on, const float *y_on, int n_on,
                     const float *X_off, const float *y_off, int n_off, int steps, float lr,
                     double *loss_on, double *loss_off) {
    ctrl_adam opt;
    ctrl_adam_init(&opt, q->n_params, lr);
    int nmax = n_on > n_off ? n_on : n_off, ranks = dist_size() > 1;
    float *y = xmalloc(sizeof(float) * (size_t)(nmax > 0 ? nmax : 1) * 2), *dy = y + nmax;
    double l2[2] = {0, 0}; // the step's summed squared errors, online and offline
    *loss_on = *loss_off = 0;
    for (int it = 0; it < steps; it++) {
        ctrl_mlp_zero_grad(q);
        for (int part = 0; part < 2; part++) {
            int n = part ? n_off : n_on;
            const float *X = part ? X_off : X_on, *tgt = part ? y_off : y_on;
            long lo = 0, hi = n;
            if (ranks) dist_share(n, dist_rank(), dist_size(), &lo, &hi);
            l2[part] = 0;
            if (hi <= lo) continue;
            int k = (int)(hi - lo);
            ctrl_mlp_forward(q, X + lo * q->in, k, y);
            double l = 0;
            for (int i = 0; i < k; i++) {
                double d = (double)y[i] - tgt[lo + i];
                l += d * d;
                dy[i] = (float)(2.0 * d / n);
            }
            l2[part] = l;
            *(part ? loss_off : loss_on) = l / n;
            ctrl_mlp_backward(q, dy, NULL, 1);
        }
        if (ranks) dist_allreduce_sum_f32(q->grads, q->n_params);
        ctrl_adam_step(&opt, q->params, q->grads);
    }
    if (ranks && steps > 0) {
        dist_allreduce_sum_f64(l2, 2);
        *loss_on = n_on > 0 ? l2[0] / n_on : 0, *loss_off = n_off > 0 ? l2[1] / n_off : 0;
    }
    ctrl_adam_free(&opt);
    free(y);
}

// ------------------------------------------------------------ offline data --
int hnpg_comblock_episodes(const char *env_name, int episodes, double eps, uint64_t seed,
                           ctrl_transitions *t, rlhf_err *err) {
    ctrl_env *e;
    if (!ctrl_env_is_comblock(env_name))
        return rlhf_fail(err, "hnpg: eps-greedy data needs a comblock environment, not \"%s\"",
                         env_name);
    if (ctrl_env_make(env_name, &e, err)) return -1;
    ctrl_env_seed(e, seed);
    int H = e->max_episode_steps, S = e->obs_dim, A = e->act_dim;
    ctrl_transitions_alloc(t, S, A, (long)episodes * H, 0);
    float *obs = xmalloc(sizeof(float) * (size_t)(2 * S + A)), *nobs = obs + S, *a = nobs + S;
    int rc = 0;
    for (int ep = 0; ep < episodes && !rc; ep++) {
        rc = ctrl_env_reset(e, obs, err);
        for (int h = 0; h < H && !rc; h++) {
            int latent, hh, best;
            ctrl_comblock_state(e, &latent, &hh, &best, err);
            if (rng_uniform(&e->rng) < eps) {
                for (int k = 0; k < A; k++) a[k] = rng_uniform(&e->rng);
            } else {
                for (int k = 0; k < A; k++) a[k] = k == (best < 0 ? 0 : best) ? 1.0f : 0.0f;
            }
            ctrl_step_info info;
            if ((rc = ctrl_env_step(e, a, nobs, &info, err))) break;
            ctrl_buffer_add(t, obs, a, info.reward, nobs, info.terminated, info.truncated, 0);
            memcpy(obs, nobs, sizeof(float) * (size_t)S);
        }
    }
    free(obs);
    ctrl_env_free(e);
    if (rc) ctrl_transitions_free(t);
    return rc;
}

int hnpg_comblock_dataset(const char *env, int episodes, double eps, uint64_t seed,
                          const char *path, rlhf_err *err) {
    ctrl_transitions t;
    if (hnpg_comblock_episodes(env, episodes, eps, seed, &t, err)) return -1;
    ctrl_dataset_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.env, sizeof info.env, "%s", env);
    snprintf(info.level, sizeof info.level, "eps-greedy");
    info.ref_random_return = 0.05, info.ref_expert_return = 1.0;
    int rc = ctrl_dataset_save(path, &t, &info, err);
    ctrl_transitions_free(&t);
    return rc;
}

// ------------------------------------------------------------------ state --
static void rows_push(hnpg_rows *b, int S, int A, const float *s, const float *a, float r, float m,
                      int h) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->s = xrealloc(b->s, sizeof(float) * (size_t)b->cap * S);
        b->a = xrealloc(b->a, sizeof(float) * (size_t)b->cap * A);
        float **f[] = {&b->r, &b->mask, &b->ret, &b->adv, &b->val};
        for (int i = 0; i < 5; i++) *f[i] = xrealloc(*f[i], sizeof(float) * (size_t)b->cap);
        b->h = xrealloc(b->h, sizeof(int) * (size_t)b->cap);
    }
    memcpy(b->s + (long)b->n * S, s, sizeof(float) * (size_t)S);
    memcpy(b->a + (long)b->n * A, a, sizeof(float) * (size_t)A);
    b->r[b->n] = r, b->mask[b->n] = m, b->h[b->n] = h;
    b->n++;
}

static void rows_free(hnpg_rows *b) {
    free(b->s), free(b->a), free(b->r), free(b->mask), free(b->ret), free(b->adv), free(b->val);
    free(b->h);
}

// step index of every offline row: its place in its episode (rows in order)
static int index_offline(hnpg_run *t, rlhf_err *err) {
    t->off_idx = xcalloc((size_t)t->H, sizeof(int *));
    t->off_cnt = xcalloc((size_t)t->H, sizeof(int));
    int *hs = xmalloc(sizeof(int) * (size_t)(t->off.n > 0 ? t->off.n : 1));
    int h = 0;
    for (long i = 0; i < t->off.n; i++) {
        if (h >= t->H) {
            free(hs);
            return rlhf_fail(err,
                             "hnpg: offline row %ld is step %d of its episode, past the "
                             "horizon %d (rows must be whole episodes in order)",
                             i, h, t->H);
        }
        hs[i] = h;
        t->off_cnt[h]++;
        h = (t->off.terminal[i] || t->off.timeout[i]) ? 0 : h + 1;
    }
    for (int k = 0; k < t->H; k++)
        t->off_idx[k] = xmalloc(sizeof(int) * (size_t)(t->off_cnt[k] + 1));
    int *fill = xcalloc((size_t)t->H, sizeof(int));
    for (long i = 0; i < t->off.n; i++) t->off_idx[hs[i]][fill[hs[i]]++] = (int)i;
    free(fill);
    free(hs);
    return 0;
}

static int load_offline(hnpg_run *t, rlhf_err *err) {
    const hnpg_config *c = t->c;
    if (!c->hybrid) return 0;
    if (c->dataset && *c->dataset) {
        if (ctrl_dataset_load(c->dataset, &t->off, NULL, err)) return -1;
    } else {
        double eps = isnan(c->offline_eps) ? 1.0 / t->H : c->offline_eps;
        if (!ctrl_env_is_comblock(c->env))
            return rlhf_fail(err,
                             "hnpg: env \"%s\" needs --dataset (offline episodes are made "
                             "here only for comblock)",
                             c->env);
        if (hnpg_comblock_episodes(c->env, c->offline_episodes, eps, c->seed + 7919, &t->off, err))
            return -1;
    }
    t->have_off = 1;
    if (t->off.obs_dim != t->S || t->off.act_dim != t->A)
        return rlhf_fail(err, "hnpg: dataset %s has obs %d / act %d, env \"%s\" has %d / %d",
                         c->dataset ? c->dataset : "(made)", t->off.obs_dim, t->off.act_dim, c->env,
                         t->S, t->A);
    return index_offline(t, err);
}

int hnpg_run_nets(hnpg_run *t, rlhf_err *err) {
    const hnpg_config *c = t->c;
    if (ctrl_env_make(c->env, &t->env, err) || ctrl_env_make(c->env, &t->eval_env, err))
        return -1;
    t->H = t->env->max_episode_steps, t->S = t->env->obs_dim, t->A = t->env->act_dim;
    if (t->H < 1 || t->H > 10000)
        return rlhf_fail(err,
                         "hnpg: env \"%s\" has no time limit in 1..10000 (HNPG keeps one "
                         "policy per step)",
                         c->env);
    t->in = t->S + t->A;
    t->pol = (hnpg_pol){t->S, t->A, c->policy_hidden};
    t->np = hnpg_policy_nparams(&t->pol);
    rng_seed(&t->rng, c->seed);
    ctrl_env_seed(t->env, c->seed);
    t->theta = xcalloc((size_t)t->H, sizeof(float *));
    t->q = xcalloc((size_t)t->H, sizeof(ctrl_mlp));
    for (int h = 0; h < t->H; h++) {
        t->theta[h] = xmalloc(sizeof(float) * (size_t)t->np);
        hnpg_policy_init(&t->pol, t->theta[h], &t->rng);
        ctrl_mlp_init(&t->q[h], t->in, c->hidden, c->layers, 1, 1, &t->rng);
        ctrl_mlp_init_last(&t->q[h], 0.1f);
        ctrl_mlp_set_tanh(&t->q[h], c->critic_tanh);
    }
    return 0;
}

// the nets, the offline data, --resume's checkpoint (into t and r), then the
// folder (rank 0 writes; a resumed run appends to its metrics.jsonl)
static int run_setup(hnpg_run *t, hnpg_result *r, rlhf_err *err) {
    const hnpg_config *c = t->c;
    if (c->batch_steps < 1 || c->critic_steps < 0 || c->value_samples < 1 || c->hidden < 1 ||
        c->layers < 1 || !(c->npg.max_kl > 0) || c->npg.damping < 0 || c->eval_episodes < 1)
        return rlhf_fail(err, "hnpg: want batch_steps >= 1, critic_steps >= 0, value_samples >= 1, "
                              "hidden, layers >= 1, max_kl > 0, damping >= 0, eval_episodes >= 1");
    if (c->online_steps <= 0 && c->max_iterations <= 0)
        return rlhf_fail(err, "hnpg: set online_steps or max_iterations (else it never stops)");
    if (c->critic_tanh != 0 && c->critic_tanh != 1)
        return rlhf_fail(err, "hnpg: --hnpg_critic_tanh is 0 (ReLU critics) or 1 (tanh), not %d",
                         c->critic_tanh);
    if (c->policy_hidden < 0 || c->policy_hidden > 4096)
        return rlhf_fail(err,
                         "hnpg: --hnpg_policy_hidden is 0 (linear policies) or the width of "
                         "the policies' two tanh layers (the authors' 16), up to 4096; not %d",
                         c->policy_hidden);
    if (hnpg_run_nets(t, err) || load_offline(t, err)) return -1;
    int resumed = c->resume_from && *c->resume_from;
    if (resumed && hnpg_ckpt_resume(t, r, c->resume_from, err)) return -1;
    if (resumed && run_over(c, r, r->iterations))
        return rlhf_fail(err,
                         "--resume: %s is finished (iteration %d, %ld online steps%s): nothing to "
                         "do; give a larger --online_steps (or --hnpg_max_iterations) to extend "
                         "it. Nothing was changed",
                         c->output_dir, r->iterations, r->online_steps,
                         c->stop_when_solved && r->solved ? ", solved" : "");
    if (resumed && !c->quiet && dist_rank() == 0)
        fprintf(stderr, "hnpg: resuming from %s (iteration %d, %ld online steps)\n",
                c->resume_from, r->iterations, r->online_steps);
    if (!c->output_dir || !*c->output_dir) return 0;
    if (dist_rank() != 0) { // MPI: rank 0 alone writes the run folder
        snprintf(t->run.dir, sizeof t->run.dir, "%s", c->output_dir);
        return 0;
    }
    return run_open(&t->run, c->output_dir, c->train ? c->train->config_json : NULL,
                    resumed ? (int)r->online_steps : -1, err);
}

void hnpg_run_free(hnpg_run *t) {
    for (int h = 0; t->theta && h < t->H; h++) free(t->theta[h]), ctrl_mlp_free(&t->q[h]);
    free(t->theta), free(t->q);
    for (int h = 0; t->off_idx && h < t->H; h++) free(t->off_idx[h]);
    free(t->off_idx), free(t->off_cnt);
    if (t->have_off) ctrl_transitions_free(&t->off);
    rows_free(&t->on);
    if (t->env) ctrl_env_free(t->env);
    if (t->eval_env) ctrl_env_free(t->eval_env);
    run_close(&t->run);
}

// ------------------------------------------------------------- one round --
// whole episodes until at least batch_steps rows; returns episodes, *ret_sum.
// On a comblock, reach[0] / reach[1]: the most / the mean right choices an
// episode made before its first wrong one (H: opened); else -1.
static int collect(hnpg_run *t, long *episodes, double *ret_sum, double reach[2],
                   rlhf_err *err) {
    int S = t->S, A = t->A, lock = ctrl_env_is_comblock(t->c->env);
    float *obs = xmalloc(sizeof(float) * (size_t)(2 * S + A)), *nobs = obs + S, *a = nobs + S;
    t->on.n = 0;
    *episodes = 0, *ret_sum = 0;
    reach[0] = lock ? 0 : -1, reach[1] = lock ? 0 : -1;
    int rc = 0;
    while (t->on.n < t->c->batch_steps && !rc) {
        if ((rc = ctrl_env_reset(t->env, obs, err))) break;
        int right = 0, failed = 0;
        for (int h = 0; h < t->H; h++) {
            hnpg_policy_act(&t->pol, t->theta[h], obs, 1, 0, &t->rng, a);
            ctrl_step_info info;
            if ((rc = ctrl_env_step(t->env, a, nobs, &info, err))) break;
            int latent = 0, hh, best;
            if (lock && !failed && !ctrl_comblock_state(t->env, &latent, &hh, &best, err))
                failed = latent == 2, right += !failed;
            int done = info.terminated || info.truncated || h == t->H - 1;
            rows_push(&t->on, S, A, obs, a, info.reward, done ? 0.0f : 1.0f, h);
            *ret_sum += info.reward;
            memcpy(obs, nobs, sizeof(float) * (size_t)S);
            if (done) break;
        }
        (*episodes)++;
        if (lock) reach[0] = right > reach[0] ? right : reach[0], reach[1] += right;
    }
    if (lock && *episodes) reach[1] /= (double)*episodes;
    free(obs);
    return rc;
}

// V(s) = mean over k draws of Q(s, a ~ pi) for n states; X scratch (n, in), y (n)
static void values(hnpg_run *t, int h, const float *s, int n, float *X, float *y, float *v) {
    int S = t->S, A = t->A;
    float *a = xmalloc(sizeof(float) * (size_t)n * A);
    for (int i = 0; i < n; i++) v[i] = 0;
    for (int k = 0; k < t->c->value_samples; k++) {
        hnpg_policy_act(&t->pol, t->theta[h], s, n, 0, &t->rng, a);
        ctrl_concat(X, s, a, n, S, A);
        ctrl_mlp_forward(&t->q[h], X, n, y);
        for (int i = 0; i < n; i++) v[i] += y[i] / t->c->value_samples;
    }
    free(a);
}

// offline rows at each step h for this round (with replacement), as many as
// there were online episodes (the authors' len(rewards) // H)
typedef struct {
    int n;
    float *s, *a, *r, *ns, *d, *adv; // (n, S), (n, A), (n), (n, S), (n), (n)
} off_rows;

static void sample_offline(hnpg_run *t, long episodes, off_rows *o) {
    int S = t->S, A = t->A;
    for (int h = 0; h < t->H; h++) {
        off_rows *b = &o[h];
        memset(b, 0, sizeof *b);
        if (!t->have_off || t->off_cnt[h] == 0) continue;
        b->n = (int)(episodes < t->off_cnt[h] ? episodes : t->off_cnt[h]);
        b->s = xmalloc(sizeof(float) * (size_t)b->n * (2 * S + A + 3));
        b->a = b->s + (long)b->n * S, b->ns = b->a + (long)b->n * A;
        b->r = b->ns + (long)b->n * S, b->d = b->r + b->n, b->adv = b->d + b->n;
        for (int i = 0; i < b->n; i++) {
            long j = t->off_idx[h][rng_u64(&t->rng) % (uint64_t)t->off_cnt[h]];
            memcpy(b->s + (long)i * S, t->off.obs + j * S, sizeof(float) * (size_t)S);
            memcpy(b->ns + (long)i * S, t->off.next_obs + j * S, sizeof(float) * (size_t)S);
            memcpy(b->a + (long)i * A, t->off.act + j * A, sizeof(float) * (size_t)A);
            b->r[i] = t->off.rew[j], b->d[i] = t->off.terminal[j] ? 1.0f : 0.0f;
        }
    }
}

// the online rows at step h gathered: X [s, a] (n, in), y the returns; count
static int gather_online(hnpg_run *t, int h, float *X, float *y, int *idx) {
    int n = 0;
    for (int i = 0; i < t->on.n; i++) {
        if (t->on.h[i] != h) continue;
        ctrl_concat(X + (long)n * t->in, t->on.s + (long)i * t->S, t->on.a + (long)i * t->A, 1,
                    t->S, t->A);
        y[n] = t->on.ret[i];
        idx[n++] = i;
    }
    return n;
}

// critics backward over h (MC on online rows + FQE on offline rows), then the
// online values V_h(s); *lon / *loff: the mean losses over h
static void fit_critics(hnpg_run *t, off_rows *o, double *lon, double *loff) {
    int N = t->on.n, S = t->S, A = t->A, in = t->in;
    int nmax = N;
    for (int h = 0; h < t->H; h++) nmax = o[h].n > nmax ? o[h].n : nmax;
    float *X = xmalloc(sizeof(float) * (size_t)nmax * in), *y = xmalloc(sizeof(float) * nmax);
    float *Xo = xmalloc(sizeof(float) * (size_t)nmax * in), *yo = xmalloc(sizeof(float) * nmax);
    float *a2 = xmalloc(sizeof(float) * (size_t)nmax * A), *v = xmalloc(sizeof(float) * nmax);
    int *idx = xmalloc(sizeof(int) * (size_t)(N + 1));
    *lon = *loff = 0;
    for (int h = t->H - 1; h >= 0; h--) {
        off_rows *b = &o[h];
        int n_on = gather_online(t, h, X, y, idx);
        if (b->n > 0 && h < t->H - 1) { // FQE target r + (1 - d) Q_{h+1}(s', a' ~ pi_{h+1})
            hnpg_policy_act(&t->pol, t->theta[h + 1], b->ns, b->n, 0, &t->rng, a2);
            ctrl_concat(Xo, b->ns, a2, b->n, S, A);
            ctrl_mlp_forward(&t->q[h + 1], Xo, b->n, yo);
            for (int i = 0; i < b->n; i++) yo[i] = b->r[i] + (1.0f - b->d[i]) * yo[i];
        } else {
            for (int i = 0; i < b->n; i++) yo[i] = b->r[i];
        }
        ctrl_concat(Xo, b->s, b->a, b->n, S, A);
        double l1, l2;
        hnpg_critic_fit(&t->q[h], X, y, n_on, Xo, yo, b->n, t->c->critic_steps, t->c->critic_lr,
                        &l1, &l2);
        *lon += l1 / t->H, *loff += l2 / t->H;
    }
    for (int h = 0; h < t->H; h++) { // V_h on the online states at h
        int n = 0;
        for (int i = 0; i < N; i++)
            if (t->on.h[i] == h) idx[n++] = i;
        float *s = xmalloc(sizeof(float) * (size_t)(n + 1) * S);
        for (int i = 0; i < n; i++)
            memcpy(s + (long)i * S, t->on.s + (long)idx[i] * S, sizeof(float) * (size_t)S);
        values(t, h, s, n, X, y, v);
        for (int i = 0; i < n; i++) t->on.val[idx[i]] = v[i];
        free(s);
    }
    free(X), free(y), free(Xo), free(yo), free(a2), free(v), free(idx);
}

// offline advantages: a~ ~ pi_h(s) replaces the row's action, A = Q_h(s, a~) - V_h(s)
static void offline_advantages(hnpg_run *t, off_rows *o) {
    for (int h = 0; h < t->H; h++) {
        off_rows *b = &o[h];
        if (b->n == 0) continue;
        float *X = xmalloc(sizeof(float) * (size_t)b->n * t->in),
              *q = xmalloc(sizeof(float) * b->n);
        float *v = xmalloc(sizeof(float) * b->n);
        hnpg_policy_act(&t->pol, t->theta[h], b->s, b->n, 0, &t->rng, b->a);
        ctrl_concat(X, b->s, b->a, b->n, t->S, t->A);
        ctrl_mlp_forward(&t->q[h], X, b->n, q);
        values(t, h, b->s, b->n, X, v, b->adv); // v: scratch, adv <- V
        for (int i = 0; i < b->n; i++) b->adv[i] = q[i] - b->adv[i];
        free(X), free(q), free(v);
    }
}

// one NPG step per h on the online rows at h and the offline rows at h
static void actor_steps(hnpg_run *t, off_rows *o, double *kl, double *improve) {
    int S = t->S, A = t->A;
    float *s = xmalloc(sizeof(float) * (size_t)(t->on.n + 1) * S);
    float *a = xmalloc(sizeof(float) * (size_t)(t->on.n + 1) * A);
    float *adv = xmalloc(sizeof(float) * (size_t)(t->on.n + 1));
    *kl = *improve = 0;
    for (int h = 0; h < t->H; h++) {
        off_rows *b = &o[h];
        int n = 0;
        for (int i = 0; i < t->on.n; i++) {
            if (t->on.h[i] != h) continue;
            memcpy(s + (long)n * S, t->on.s + (long)i * S, sizeof(float) * (size_t)S);
            memcpy(a + (long)n * A, t->on.a + (long)i * A, sizeof(float) * (size_t)A);
            adv[n++] = t->on.adv[i];
        }
        int m = n + b->n;
        float *S2 = xmalloc(sizeof(float) * (size_t)(m + 1) * S);
        float *A2 = xmalloc(sizeof(float) * (size_t)(m + 1) * A),
              *D2 = xmalloc(sizeof(float) * (m + 1));
        memcpy(S2, s, sizeof(float) * (size_t)n * S), memcpy(A2, a, sizeof(float) * (size_t)n * A);
        memcpy(D2, adv, sizeof(float) * (size_t)n);
        if (b->n) {
            memcpy(S2 + (long)n * S, b->s, sizeof(float) * (size_t)b->n * S);
            memcpy(A2 + (long)n * A, b->a, sizeof(float) * (size_t)b->n * A);
            memcpy(D2 + n, b->adv, sizeof(float) * (size_t)b->n);
        }
        hnpg_npg_info info;
        hnpg_npg_step(&t->pol, t->theta[h], S2, A2, D2, m, &t->c->npg, &info, NULL);
        *kl += info.kl / t->H, *improve += (info.loss_before - info.loss_after) / t->H;
        free(S2), free(A2), free(D2);
    }
    free(s), free(a), free(adv);
}

int hnpg_evaluate(hnpg_run *t, uint64_t seed, double *mean, double *std, rlhf_err *err) {
    ctrl_env *e = t->eval_env;
    ctrl_env_seed(e, seed);
    float *obs = xmalloc(sizeof(float) * (size_t)(t->S + t->A)), *a = obs + t->S;
    double sum = 0, sum2 = 0;
    int rc = 0, n = t->c->eval_episodes;
    for (int ep = 0; ep < n && !rc; ep++) {
        if ((rc = ctrl_env_reset(e, obs, err))) break;
        double ret = 0;
        for (int h = 0; h < t->H; h++) {
            hnpg_policy_act(&t->pol, t->theta[h], obs, 1, 1, NULL, a);
            ctrl_step_info info;
            if ((rc = ctrl_env_step(e, a, obs, &info, err))) break;
            ret += info.reward;
            if (info.terminated || info.truncated) break;
        }
        sum += ret, sum2 += ret * ret;
    }
    free(obs);
    *mean = sum / n;
    *std = sqrt(fmax(0.0, sum2 / n - *mean * *mean));
    return rc;
}

static void off_rows_free(off_rows *o, int H) {
    for (int h = 0; h < H; h++) free(o[h].s);
}

static int iterate(hnpg_run *t, int it, hnpg_result *r, rlhf_err *err) {
    long episodes;
    double ret_sum, lon, loff, kl, improve, eval, reach[2];
    if (collect(t, &episodes, &ret_sum, reach, err)) return -1;
    hnpg_gae(t->on.r, t->on.val, t->on.mask, t->on.n, t->c->gamma, t->c->lambda, t->on.ret,
             t->on.adv); // returns only (the values are refit next)
    off_rows *o = xcalloc((size_t)t->H, sizeof(off_rows));
    sample_offline(t, episodes, o);
    long bad = ctrl_adam_nonfinite_steps();
    if (rlhf_test_nan_step(it + 1)) ctrl_adam_poison(1);
    fit_critics(t, o, &lon, &loff);
    ctrl_adam_poison(0);
    if (ctrl_adam_nonfinite_steps() != bad) { // the critics kept their weights
        off_rows_free(o, t->H);
        free(o);
        char where[64];
        snprintf(where, sizeof where, "hnpg iteration %d", it + 1);
        return ctrl_nonfinite_fail(err, where);
    }
    hnpg_gae(t->on.r, t->on.val, t->on.mask, t->on.n, t->c->gamma, t->c->lambda, t->on.ret,
             t->on.adv);
    offline_advantages(t, o);
    actor_steps(t, o, &kl, &improve);
    int n_off = 0;
    for (int h = 0; h < t->H; h++) n_off += o[h].n;
    off_rows_free(o, t->H);
    free(o);
    r->iterations = it + 1;
    r->online_steps += t->on.n, r->online_episodes += episodes;
    // every evaluation on the same episodes (seed + 100, as the control trainer's
    // and rlhf ctrl eval --seed S of a --seed S run)
    if (hnpg_evaluate(t, t->c->seed + 100, &eval, &r->final_std, err)) return -1;
    r->final_eval = eval;
    if (it == 0 || eval > r->best_eval) r->best_eval = eval;
    if (!r->solved && eval >= t->c->solve_return)
        r->solved = 1, r->episodes_to_solve = r->online_episodes,
        r->steps_to_solve = r->online_steps;
    if (t->run.metrics) {
        char buf[1024], more[128] = "";
        if (reach[0] >= 0)
            snprintf(more, sizeof more, ", \"reach_max\": %.0f, \"reach_mean\": %.6g", reach[0],
                     reach[1]);
        snprintf(buf, sizeof buf,
                 "{\"step\": %ld, \"iteration\": %d, \"online_steps\": %ld, "
                 "\"online_episodes\": %ld, \"train_return\": %.6g, \"eval_return\": %.6g, "
                 "\"critic_loss_online\": %.6g, \"critic_loss_offline\": %.6g, "
                 "\"offline_rows\": %d, \"kl\": %.6g, \"surrogate_improvement\": %.6g%s, "
                 "\"seconds\": %.3f}",
                 r->online_steps, it + 1, r->online_steps, r->online_episodes, ret_sum / episodes,
                 eval, lon, loff, n_off, kl, improve, more, time_now() - r->seconds);
        run_log(&t->run, buf);
        if (run_check(&t->run, err)) return -1; // metrics.jsonl could not be written: stop
    }
    char line[64] = "";
    if (reach[0] >= 0) snprintf(line, sizeof line, ", reach %.0f (mean %.2f)", reach[0], reach[1]);
    if (!t->c->quiet && dist_rank() == 0)
        fprintf(stderr,
                "hnpg %s it %d: episodes %ld, train return %.3f, greedy eval %.3f, "
                "critic %.4g/%.4g, kl %.4g%s\n",
                t->c->hybrid ? "hybrid" : "on-policy", it + 1, r->online_episodes,
                ret_sum / episodes, eval, lon, loff, kl, line);
    return 0;
}

static int write_summary(hnpg_run *t, const hnpg_result *r, rlhf_err *err) {
    char buf[6000];
    snprintf(buf, sizeof buf,
             "{\"algo\": \"hnpg\", \"env\": \"%s\", \"hybrid\": %d, \"iterations\": %d, "
             "\"online_steps\": %ld, \"online_episodes\": %ld, \"solved\": %d, "
             "\"episodes_to_solve\": %ld, \"steps_to_solve\": %ld, \"final_eval\": %.6g, "
             "\"final_eval_std\": %.6g, \"best_eval\": %.6g, \"seconds\": %.3f, "
             "\"checkpoint\": \"%s\"}\n",
             t->c->env, t->c->hybrid, r->iterations, r->online_steps, r->online_episodes,
             r->solved, r->episodes_to_solve, r->steps_to_solve, r->final_eval, r->final_std,
             r->best_eval, r->seconds, r->final_checkpoint);
    return run_summary(&t->run, buf, err);
}

// 1 when the loop ends before iteration it (its limits, or solved)
static int run_over(const hnpg_config *c, const hnpg_result *r, int it) {
    return (c->max_iterations > 0 && it >= c->max_iterations) ||
           (c->online_steps > 0 && r->online_steps >= c->online_steps) ||
           (c->stop_when_solved && r->solved);
}

// after an iteration that does not end the run: a periodic checkpoint (the
// online steps crossed a multiple of --save_every) or a stop (--stop_at, a
// signal: a checkpoint, then r->stopped; a signal's stop is an error, as the
// control trainer's). *stop set when the run ends here.
static int maybe_save(hnpg_run *t, hnpg_result *r, long before, int *stop, rlhf_err *err) {
    const ctrl_train_config *tc = t->c->train;
    *stop = 0;
    if (!tc) return 0;
    int sig = ctrl_stop_signal();
    long done = r->online_steps;
    *stop = sig || (tc->stop_at > 0 && done >= tc->stop_at);
    int periodic = tc->save_every > 0 && done / tc->save_every != before / tc->save_every;
    if (!*stop && !periodic) return 0;
    char path[4400] = "";
    if (t->run.dir[0] && hnpg_ckpt_save(t, r, 0, path, sizeof path, err)) return -1;
    if (!*stop) return 0;
    r->stopped = 1;
    const char *how = sig ? "a signal" : "--stop_at";
    if (!path[0])
        fprintf(stderr, "hnpg: stopped (%s) after %ld online steps; no --output_dir, no checkpoint\n",
                how, done);
    else if (dist_rank() == 0)
        fprintf(stderr,
                "hnpg: stopped (%s) after %ld online steps; checkpoint %s written (--resume goes "
                "on from it)\n",
                how, done, path);
    return sig ? rlhf_fail(err, "stopped by signal %d after %ld online steps", sig, done) : 0;
}

int hnpg_train(const hnpg_config *c, hnpg_result *res, rlhf_err *err) {
    hnpg_result local;
    hnpg_result *r = res ? res : &local;
    memset(r, 0, sizeof *r);
    r->episodes_to_solve = r->steps_to_solve = -1;
    double t0 = time_now();
    r->seconds = t0;
    hnpg_run t;
    memset(&t, 0, sizeof t);
    t.c = c;
    int rc = run_setup(&t, r, err), stop = 0;
    for (int it = r->iterations; !rc && !stop && !run_over(c, r, it); it++) {
        long before = r->online_steps;
        rc = iterate(&t, it, r, err);
        if (!rc && !run_over(c, r, it + 1)) rc = maybe_save(&t, r, before, &stop, err);
    }
    r->seconds = time_now() - t0;
    if (!rc && !stop && t.run.dir[0])
        rc = hnpg_ckpt_save(&t, r, 1, r->final_checkpoint, sizeof r->final_checkpoint, err);
    if (!rc && !stop && t.run.metrics) rc = write_summary(&t, r, err);
    if (!rc && !stop && !c->quiet && dist_rank() == 0)
        fprintf(stderr,
                "hnpg: %s after %ld online episodes (%d iterations, %.1f s); greedy return "
                "%.3f\n",
                r->solved ? "solved" : "not solved", r->online_episodes, r->iterations, r->seconds,
                r->final_eval);
    hnpg_run_free(&t);
    return rc;
}
