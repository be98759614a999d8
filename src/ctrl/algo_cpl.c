// ctrl/algo_cpl: Contrastive Preference Learning (CPL; Hejna, Rafailov,
// Sikchi, Finn, Niekum, Knox & Sadigh 2024, ICLR), the policy learned from
// segment preferences alone — no reward, no critic, no RL. Under the regret
// preference model with the optimal advantage A* = alpha log pi*, the
// preference likelihood becomes a contrastive loss on the policy itself; with
// the authors' conservative bias lambda (their biased_bce_with_logits):
//
//   S(sigma) = alpha sum_{t in sigma} log pi(a_t | s_t)      (no discount, as
//                                                             the authors' code)
//   l21 = S(b) - lambda S(a),  l12 = S(a) - lambda S(b)
//   L = mean over pairs [ y softplus(-l21) + (1 - y) softplus(-l12) ]
//       + cpl_bc_coeff mean over the pairs' rows (-log pi(a|s))
//
// (y = 1: segment b preferred; softplus(-x) = -log sigmoid(x)). alpha 0.1,
// lambda 0.5 (the paper's), cpl_batch pairs per update drawn uniformly with
// replacement from the pairs file (the run's rng, one draw per pair).
//
// The first cpl_bc_steps updates are behaviour cloning (mean -log pi(a|s)) on
// the trainer's transition batches (all of the dataset; the authors clone the
// pairs' segments, which cover it); after the last of them Adam restarts (its
// moments and step counts zeroed), as the authors re-create their optimizer.
//
// The actor is IQL's (CORL's GaussianPolicy): mean = bias + scale * tanh(net(s))
// and a state-independent log_std (A) clamped to [log_std_min, log_std_max],
// initialised to 0; actor_lr for both. act: the mean (deterministic) or a
// sample clipped to the bounds.
//
// CPL-KL (table cpl_kl; the authors' research/algs/cpl_kl.py, configs
// configs/*/cpl_kl.yaml) measures the advantage against a reference policy,
// the actor as it stands after the BC updates (a frozen copy of its MLP and
// log_std taken right after the last one):
//
//   S(sigma) = alpha sum_{t in sigma} [log pi(a_t | s_t) - log pi_ref(a_t | s_t)]
//
// everything else as CPL; at least one BC update is required (the authors
// assert bc_steps > 0). Their defaults: alpha 0.2, lambda 0.75 and a
// learning rate scaled by 0.1 after BC (cpl_lr_scale), warmed up linearly
// over 10000 updates (cpl_warmup); cpl_bc_steps 10000 (their class default).
//
// The pairs: --dataset D.hdf5 makes the trainer call attach, which loads
// D.hdf5.cpl.jsonl (rlhf ctrl prefs writes it; cpl_prefs.h) and checks it
// against the dataset's rows. Rewards are never read.
#include "ctrl/algo_cpl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "ctrl/algo_common.h"
#include "ctrl/ctrl_loss.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"

enum { C_STEP, C_ACTOR_T, C_LOGSTD_T, N_COUNTERS };

typedef struct {
    int S, A;
    int kl;  // CPL-KL: advantages against ref, the actor after BC
    ctrl_algo_config c;
    float *low, *high, *scale, *bias;
    ctrl_mlp actor, ref;  // ref: CPL-KL's frozen reference (allocated when kl)
    ctrl_adam actor_opt, log_std_opt;
    float *log_std, *log_std_grad, *ref_log_std;
    float counters[N_COUNTERS];
    const ctrl_transitions *data;  // the rows the pairs index
    const cpl_pairs *pairs;
    cpl_pairs own;  // loaded by attach
    int cap;        // scratch rows
    float *obs, *act, *u, *du, *mean, *dmean, *logp, *dlogp, *eps;
    float *seg, *dseg, *y;  // (2 P) segment sums and their gradients, (P) labels
    float *ref_logp;        // (rows) log pi_ref of CPL-KL
} cpl_agent;

static void grow(cpl_agent *g, int rows, int P) {
    if (rows <= g->cap) return;
    long RS = (long)rows * g->S, RA = (long)rows * g->A;
    float **bufs[] = {&g->obs,  &g->act,   &g->u,   &g->du,  &g->mean, &g->dmean,   &g->logp,
                      &g->dlogp, &g->eps, &g->seg, &g->dseg, &g->y,    &g->ref_logp};
    long sizes[] = {RS,   RA,   RA,   RA,   RA,   RA, rows, rows, RA, 2L * P + rows, 2L * P + rows,
                    P + rows, rows};
    ctrl_bufs_realloc(bufs, sizes, (int)(sizeof bufs / sizeof bufs[0]));
    g->cap = rows;
}

static void cpl_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c);
    c->deterministic_bc = 0;
    c->cpl_alpha = 0.1f;
    c->cpl_lambda = 0.5f;
    c->cpl_bc_coeff = 0.0f;
    c->cpl_batch = 32;
    c->cpl_bc_steps = 0;
    c->cpl_lr_scale = 1.0f;
    c->cpl_warmup = 0;
    c->cpl_ranked = 0;
}

// the authors' CPL-KL configs (configs/*/cpl_kl.yaml: alpha 0.2,
// contrastive_bias 0.75, linear_warmup multiplier 0.1 over 10000 steps) and
// their class default bc_steps 10000
static void cpl_kl_defaults(ctrl_algo_config *c) {
    cpl_defaults(c);
    c->cpl_alpha = 0.2f;
    c->cpl_lambda = 0.75f;
    c->cpl_bc_steps = 10000;
    c->cpl_lr_scale = 0.1f;
    c->cpl_warmup = 10000;
}

// the settings' refusals, each naming its field; who: "cpl" or "cpl_kl"
static int check_config(const char *who, const ctrl_algo_config *c, int kl, rlhf_err *err) {
    if (!(c->cpl_alpha > 0) || !isfinite(c->cpl_alpha))
        return rlhf_fail(err, "ctrl agent %s: cpl_alpha %g must be > 0", who, c->cpl_alpha);
    if (!(c->cpl_lambda > 0 && c->cpl_lambda <= 1))
        return rlhf_fail(err, "ctrl agent %s: cpl_lambda %g must be in (0, 1]", who, c->cpl_lambda);
    if (!(c->cpl_bc_coeff >= 0) || !isfinite(c->cpl_bc_coeff))
        return rlhf_fail(err, "ctrl agent %s: cpl_bc_coeff %g must be >= 0", who, c->cpl_bc_coeff);
    if (c->cpl_batch < 1)
        return rlhf_fail(err, "ctrl agent %s: cpl_batch %d must be >= 1", who, c->cpl_batch);
    if (c->cpl_bc_steps < kl)
        return rlhf_fail(err, "ctrl agent %s: cpl_bc_steps %d must be >= %d%s", who,
                         c->cpl_bc_steps, kl,
                         kl ? " (the reference policy is the actor after the BC updates)" : "");
    if (!(c->cpl_lr_scale > 0) || !isfinite(c->cpl_lr_scale))
        return rlhf_fail(err, "ctrl agent %s: cpl_lr_scale %g must be > 0", who, c->cpl_lr_scale);
    if (c->cpl_warmup < 0)
        return rlhf_fail(err, "ctrl agent %s: cpl_warmup %d must be >= 0", who, c->cpl_warmup);
    if (c->cpl_ranked != 0 && c->cpl_ranked != 1)
        return rlhf_fail(err, "ctrl agent %s: cpl_ranked %d must be 0 or 1", who, c->cpl_ranked);
    return 0;
}

static int create_common(const ctrl_algo_config *c, int S, int A, const float *low,
                         const float *high, rlhf_rng *rng, int kl, void **out, rlhf_err *err) {
    const char *who = kl ? "cpl_kl" : "cpl";
    if (ctrl_check_create(who, c, S, A, low, high, 0, err) || check_config(who, c, kl, err))
        return -1;
    cpl_agent *g = xcalloc(1, sizeof *g);
    g->S = S;
    g->A = A;
    g->kl = kl;
    g->c = *c;
    ctrl_action_box(low, high, A, &g->low, &g->high, &g->scale, &g->bias);
    ctrl_mlp_init(&g->actor, S, c->hidden, c->layers, A, 1, rng);
    ctrl_adam_init(&g->actor_opt, g->actor.n_params, c->actor_lr);
    g->log_std = xcalloc(2 * (long)A, sizeof(float));
    g->log_std_grad = g->log_std + A;
    ctrl_adam_init(&g->log_std_opt, A, c->actor_lr);
    if (kl) {  // set from the actor after BC; a copy until then (no draws from rng)
        rlhf_rng unused;
        rng_seed(&unused, 0);
        ctrl_mlp_init(&g->ref, S, c->hidden, c->layers, A, 1, &unused);
        memcpy(g->ref.params, g->actor.params, g->actor.n_params * sizeof(float));
        g->ref_log_std = xcalloc(A, sizeof(float));
    }
    *out = g;
    return 0;
}

static int cpl_create(const ctrl_algo_config *c, int S, int A, const float *low, const float *high,
                      rlhf_rng *rng, void **out, rlhf_err *err) {
    return create_common(c, S, A, low, high, rng, 0, out, err);
}

static int cpl_kl_create(const ctrl_algo_config *c, int S, int A, const float *low,
                         const float *high, rlhf_rng *rng, void **out, rlhf_err *err) {
    return create_common(c, S, A, low, high, rng, 1, out, err);
}

int cpl_agent_set_pairs(void *agent, const ctrl_transitions *t, const cpl_pairs *p,
                        rlhf_err *err) {
    cpl_agent *g = agent;
    if (t->obs_dim != g->S || t->act_dim != g->A)
        return rlhf_fail(err, "cpl: the dataset has obs %d / act %d, the agent %d / %d",
                         t->obs_dim, t->act_dim, g->S, g->A);
    if (p->rows != t->n)
        return rlhf_fail(err, "cpl: the pairs index %ld rows, the dataset has %ld", p->rows, t->n);
    if (p->n < 1 || p->seg_len < 1) return rlhf_fail(err, "cpl: no segment pairs");
    for (long k = 0; k < p->n; k++) {
        if (p->a[k] < 0 || p->b[k] < 0 || p->a[k] + p->seg_len > t->n ||
            p->b[k] + p->seg_len > t->n)
            return rlhf_fail(err, "cpl: pair %ld's segments leave the dataset's %ld rows", k, t->n);
        if (g->c.cpl_ranked && !(isfinite(p->score_a[k]) && isfinite(p->score_b[k])))
            return rlhf_fail(err, "cpl: cpl_ranked ranks segments by score_a / score_b, and pair "
                                  "%ld has none", k);
    }
    g->data = t;
    g->pairs = p;
    return 0;
}

static int cpl_attach(void *agent, const char *dataset, const ctrl_transitions *t, rlhf_err *err) {
    cpl_agent *g = agent;
    if (!dataset || !t)
        return rlhf_fail(err,
                         "--algo cpl learns from segment preferences: give --dataset D.hdf5 and "
                         "write D.hdf5.cpl.jsonl first with rlhf ctrl prefs --dataset D.hdf5");
    char path[4200];
    cpl_pairs_path(dataset, path, sizeof path);
    cpl_pairs_free(&g->own);
    if (cpl_pairs_load(path, t->n, &g->own, err))
        return rlhf_fail_ctx(err, "--algo cpl (write the pairs with rlhf ctrl prefs --dataset %s)",
                             dataset);
    return cpl_agent_set_pairs(agent, t, &g->own, err);
}

// log pi(act | obs) (rows) -> logp of the network net with log-std log_std;
// g->u and g->mean hold its activations (the actor's are kept for backward)
static void logprob_of(cpl_agent *g, ctrl_mlp *net, const float *log_std, const float *obs,
                       const float *act, int rows, float *logp) {
    ctrl_mlp_forward(net, obs, rows, g->u);
    ctrl_det_forward(g->mean, g->u, g->scale, g->bias, rows, g->A);
    ctrl_gauss_logprob(logp, g->mean, log_std, act, rows, g->A, g->c.log_std_min,
                       g->c.log_std_max);
}

static void logprob(cpl_agent *g, const float *obs, const float *act, int rows) {
    logprob_of(g, &g->actor, g->log_std, obs, act, rows, g->logp);
}

// g->dlogp (rows) -> the actor's and log_std's gradients (on MPI ranks: this
// rank's share sh, summed over the ranks), one Adam step each
static void actor_step(cpl_agent *g, const float *act, int rows, ctrl_share sh) {
    int A = g->A;
    memset(g->dmean, 0, (long)rows * A * sizeof(float));
    memset(g->log_std_grad, 0, A * sizeof(float));
    ctrl_gauss_logprob_backward(g->dmean, g->log_std_grad, g->dlogp, g->mean, g->log_std, act, rows,
                                A, g->c.log_std_min, g->c.log_std_max);
    memset(g->du, 0, (long)rows * A * sizeof(float));
    ctrl_det_backward(g->du, g->dmean, g->mean, g->scale, g->bias, rows, A);
    ctrl_mlp_zero_grad(&g->actor);
    ctrl_mlp_backward(&g->actor, g->du, NULL, 1);
    ctrl_share_grads(sh, g->actor.grads, g->actor.n_params);
    ctrl_share_grads(sh, g->log_std_grad, A);
    ctrl_adam_step_counted(&g->actor_opt, &g->counters[C_ACTOR_T], g->actor.params, g->actor.grads);
    ctrl_adam_step_counted(&g->log_std_opt, &g->counters[C_LOGSTD_T], g->log_std, g->log_std_grad);
}

// softplus(-x) = -log sigmoid(x), stable
static double nls(double x) { return x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); }
static double sigm(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

// CPL's pair loss over P pairs: sums sa = seg[0..P), sb = seg[P..2P), labels
// y (P) -> the mean loss, dseg (2P) = dL/dseg, *acc the share of pairs whose
// larger sum is the preferred segment's (ties in y: round(0.5) = 0 as torch)
static double pair_loss(const float *seg, const float *y, int P, float lam, float *dseg,
                        double *acc) {
    double loss = 0, hit = 0;
    for (int k = 0; k < P; k++) {
        double sa = seg[k], sb = seg[P + k], l21 = sb - lam * sa, l12 = sa - lam * sb;
        loss += y[k] * nls(l21) + (1 - y[k]) * nls(l12);
        double g21 = -y[k] * sigm(-l21), g12 = -(1 - y[k]) * sigm(-l12);  // d/dl
        dseg[P + k] = (float)((g21 - lam * g12) / P);
        dseg[k] = (float)((g12 - lam * g21) / P);
        hit += (sb > sa) == (y[k] > 0.5f);
    }
    *acc = hit / P;
    return loss / P;
}

// the authors' biased_bce_with_scores over M segments: sums seg (M), scores
// (M) -> the mean over every i < j of the score-sorted order of
// softplus(-(seg_j - lambda seg_i)) (j the higher score; ties keep the draw
// order), dseg (M) = dL/dseg, *acc the share of those with seg_j > seg_i
static double rank_loss(const float *seg, const float *score, int M, float lam, float *dseg,
                        double *acc) {
    int *ord = xmalloc(M * sizeof(int));
    for (int i = 0; i < M; i++) {  // insertion sort by score, stable
        int k = i;
        for (; k > 0 && score[ord[k - 1]] > score[i]; k--) ord[k] = ord[k - 1];
        ord[k] = i;
    }
    double loss = 0, hit = 0, N = 0.5 * M * (M - 1);
    memset(dseg, 0, M * sizeof(float));
    for (int i = 0; i < M; i++)
        for (int j = i + 1; j < M; j++) {
            double lo = seg[ord[i]], hi = seg[ord[j]], l = hi - lam * lo, d = -sigm(-l) / N;
            loss += nls(l);
            dseg[ord[j]] += (float)d;
            dseg[ord[i]] -= (float)(lam * d);
            hit += hi > lo;
        }
    free(ord);
    *acc = hit / N;
    return loss / N;
}

static void bc_update(cpl_agent *g, const ctrl_batch *gb, ctrl_metrics *metrics) {
    ctrl_share sh = ctrl_share_rows(gb->B);
    ctrl_batch lb = ctrl_share_batch(gb, sh), *b = &lb;
    int B = b->B;
    grow(g, B, 1);
    logprob(g, b->obs, b->act, B);
    memset(g->dlogp, 0, B * sizeof(float));
    double loss = ctrl_weighted_nll_loss(g->dlogp, g->logp, NULL, B);
    actor_step(g, b->act, B, sh);
    ctrl_share_means(sh, &loss, 1);
    if (g->counters[C_STEP] == g->c.cpl_bc_steps) {  // the last BC step: Adam restarts
        memset(g->actor_opt.m, 0, g->actor_opt.n * sizeof(float));
        memset(g->actor_opt.v, 0, g->actor_opt.n * sizeof(float));
        memset(g->log_std_opt.m, 0, g->log_std_opt.n * sizeof(float));
        memset(g->log_std_opt.v, 0, g->log_std_opt.n * sizeof(float));
        g->counters[C_ACTOR_T] = g->counters[C_LOGSTD_T] = 0;
        if (g->kl) {  // CPL-KL's reference: the actor as BC left it
            memcpy(g->ref.params, g->actor.params, g->actor.n_params * sizeof(float));
            memcpy(g->ref_log_std, g->log_std, g->A * sizeof(float));
        }
    }
    ctrl_metrics_add(metrics, "bc_loss", loss);
}

// draws P pairs with rng (every rank all P) and gathers the rows of pairs
// [sh.lo, sh.lo + sh.n) (one process: all): segments a of each pair, then
// segments b, L rows each, into g->obs / g->act; labels -> g->y
static void gather(cpl_agent *g, rlhf_rng *rng, int P, ctrl_share sh) {
    const cpl_pairs *p = g->pairs;
    int L = p->seg_len, S = g->S, A = g->A, n = sh.n;
    for (int k = 0; k < P; k++) {
        long i = (long)(rng_uniform(rng) * p->n);
        if (i >= p->n) i = p->n - 1;
        if (k < sh.lo || k >= sh.lo + n) continue;
        int j = k - sh.lo;
        g->y[j] = p->y[i];
        long starts[2] = {p->a[i], p->b[i]};
        for (int s = 0; s < 2; s++) {
            long r = ((long)s * n + j) * L;
            memcpy(g->obs + r * S, g->data->obs + starts[s] * S, (long)L * S * sizeof(float));
            memcpy(g->act + r * A, g->data->act + starts[s] * A, (long)L * A * sizeof(float));
        }
    }
}

// the lr of the k-th CPL update (k from 0): actor_lr * cpl_lr_scale *
// min(1, k / cpl_warmup), the authors' linear_warmup started after BC
static void set_cpl_lr(cpl_agent *g) {
    const ctrl_algo_config *c = &g->c;
    float f = c->cpl_lr_scale;
    if (c->cpl_warmup > 0) {
        double k = g->counters[C_STEP] - 1 - c->cpl_bc_steps;
        f = (float)(f * fmin(1.0, k / c->cpl_warmup));
    }
    g->actor_opt.lr = g->log_std_opt.lr = c->actor_lr * f;
}

// cpl_ranked: draws M segments uniformly from the pairs file's 2 n (each
// pair's a and b; one rng draw each) into g->obs / g->act, their scores -> g->y
static void gather_ranked(cpl_agent *g, rlhf_rng *rng, int M) {
    const cpl_pairs *p = g->pairs;
    int L = p->seg_len, S = g->S, A = g->A;
    for (int k = 0; k < M; k++) {
        long i = (long)(rng_uniform(rng) * 2 * p->n);
        if (i >= 2 * p->n) i = 2 * p->n - 1;
        long start = i < p->n ? p->a[i] : p->b[i - p->n];
        g->y[k] = (float)(i < p->n ? p->score_a[i] : p->score_b[i - p->n]);
        memcpy(g->obs + (long)k * L * S, g->data->obs + start * S, (long)L * S * sizeof(float));
        memcpy(g->act + (long)k * L * A, g->data->act + start * A, (long)L * A * sizeof(float));
    }
}

static int cpl_update(void *agent, const ctrl_batch *b, rlhf_rng *rng, ctrl_metrics *metrics,
                      rlhf_err *err) {
    cpl_agent *g = agent;
    if (ctrl_check_batch("cpl", b, g->S, g->A, err)) return -1;
    if (!g->pairs)
        return rlhf_fail(err, "ctrl agent cpl: no segment pairs (--dataset with its .cpl.jsonl)");
    g->counters[C_STEP] += 1;
    if (g->counters[C_STEP] <= g->c.cpl_bc_steps) {
        bc_update(g, b, metrics);
        return 0;
    }
    int P = g->c.cpl_batch, L = g->pairs->seg_len;
    if (P < dist_size())
        return rlhf_fail(err, "ctrl cpl: cpl_batch %d pairs is less than the %d MPI ranks", P,
                         dist_size());
    if (g->c.cpl_ranked && dist_size() > 1)
        return rlhf_fail(err, "ctrl cpl: cpl_ranked ranks the whole batch; run it on one process");
    ctrl_share sp = ctrl_share_rows(P);  // on MPI ranks: this rank's pairs
    int n = sp.n, rows = 2 * n * L;
    grow(g, rows, n);
    if (g->c.cpl_ranked)
        gather_ranked(g, rng, 2 * n);
    else
        gather(g, rng, P, sp);
    if (g->kl)  // before the actor's forward, whose activations backward reads
        logprob_of(g, &g->ref, g->ref_log_std, g->obs, g->act, rows, g->ref_logp);
    logprob(g, g->obs, g->act, rows);
    float alpha = g->c.cpl_alpha;
    for (int s = 0; s < 2 * n; s++) {
        double sum = 0;
        for (int t = 0; t < L; t++) {
            long r = (long)s * L + t;
            sum += g->kl ? (double)g->logp[r] - g->ref_logp[r] : g->logp[r];
        }
        g->seg[s] = (float)(alpha * sum);
    }
    double acc, loss = g->c.cpl_ranked
                           ? rank_loss(g->seg, g->y, 2 * n, g->c.cpl_lambda, g->dseg, &acc)
                           : pair_loss(g->seg, g->y, n, g->c.cpl_lambda, g->dseg, &acc);
    for (int s = 0; s < 2 * n; s++)
        for (int t = 0; t < L; t++) g->dlogp[(long)s * L + t] = alpha * g->dseg[s];
    double bc = 0;
    for (int r = 0; r < rows; r++) bc -= g->logp[r];
    bc /= rows;
    if (g->c.cpl_bc_coeff > 0)
        for (int r = 0; r < rows; r++) g->dlogp[r] -= g->c.cpl_bc_coeff / rows;
    set_cpl_lr(g);
    actor_step(g, g->act, rows, sp);
    double m[3] = {loss, bc, acc};
    ctrl_share_means(sp, m, 3);
    ctrl_metrics_add(metrics, "cpl_loss", m[0]);
    ctrl_metrics_add(metrics, "bc_loss", m[1]);
    ctrl_metrics_add(metrics, "accuracy", m[2]);
    return 0;
}

static void cpl_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                    float *action) {
    cpl_agent *g = agent;
    grow(g, B, 1);
    ctrl_mlp_forward(&g->actor, obs, B, g->u);
    ctrl_det_forward(action, g->u, g->scale, g->bias, B, g->A);
    if (deterministic) return;
    for (int r = 0; r < B; r++)
        for (int i = 0; i < g->A; i++) {
            float sd = expf(fminf(fmaxf(g->log_std[i], g->c.log_std_min), g->c.log_std_max));
            action[(long)r * g->A + i] += sd * rng_normal(rng);
        }
    ctrl_clip_actions(action, g->low, g->high, B, g->A);
}

static int cpl_tensors(void *agent, ctrl_tensor *out, int max) {
    cpl_agent *g = agent;
    ctrl_tensor all[10];
    int n = 0;
    CTRL_TENSORS_ADAM(all, n, "actor", g->actor.params, g->actor_opt);
    CTRL_TENSORS_ADAM(all, n, "log_std", g->log_std, g->log_std_opt);
    all[n++] = (ctrl_tensor){"counters", g->counters, N_COUNTERS};  // step, actor / log_std Adam t
    if (g->kl) {
        all[n++] = (ctrl_tensor){"reference", g->ref.params, g->ref.n_params};
        all[n++] = (ctrl_tensor){"reference_log_std", g->ref_log_std, g->A};
    }
    return ctrl_tensors_out(out, max, all, n);
}

static void cpl_free(void *agent) {
    cpl_agent *g = agent;
    if (!g) return;
    ctrl_mlp_free(&g->actor);
    if (g->kl) ctrl_mlp_free(&g->ref);
    free(g->ref_log_std);
    ctrl_adam_free(&g->actor_opt);
    ctrl_adam_free(&g->log_std_opt);
    free(g->log_std);
    cpl_pairs_free(&g->own);
    float *bufs[] = {g->obs,  g->act,   g->u,   g->du,  g->mean, g->dmean,   g->logp,
                     g->dlogp, g->eps, g->seg, g->dseg, g->y,    g->ref_logp};
    ctrl_bufs_free(bufs, (int)(sizeof bufs / sizeof bufs[0]));
    free(g->low);
    free(g);
}

const ctrl_algo ctrl_algo_cpl = {
    .name = "cpl",
    .summary = "CPL: the policy from segment preferences by a contrastive loss on alpha sum log pi (Hejna et al. 2024); needs DATASET.cpl.jsonl from rlhf ctrl prefs",
    .offline = 1,
    .data_parallel = 1,
    .defaults = cpl_defaults,
    .create = cpl_create,
    .update = cpl_update,
    .act = cpl_act,
    .tensors = cpl_tensors,
    .free = cpl_free,
    .attach = cpl_attach,
};

const ctrl_algo ctrl_algo_cpl_kl = {
    .name = "cpl_kl",
    .summary = "CPL-KL: CPL with the advantage alpha (log pi - log pi_ref) against the policy after BC (the authors' cpl_kl.py); needs DATASET.cpl.jsonl",
    .offline = 1,
    .data_parallel = 1,
    .defaults = cpl_kl_defaults,
    .create = cpl_kl_create,
    .update = cpl_update,
    .act = cpl_act,
    .tensors = cpl_tensors,
    .free = cpl_free,
    .attach = cpl_attach,
};
