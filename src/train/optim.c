// AdamW over the model's one parameter buffer: global grad-norm clipping, then
// decoupled weight decay on matrices only (norms, biases and heads' biases
// excluded), with warm-up and cosine / linear decay schedules.
//
// ZeRO-1 (as llm.c; docs/mpi_scaling.md): with N > 1 MPI ranks each rank holds
// the Adam moments of its shard [lo, hi) = dist_share(n, rank, N) of the n
// trainable elements only (n/N floats of m and of v), updates that shard of the
// parameters, and the shards are then all-gathered so that every rank has the
// whole model. The shard cuts tensors anywhere: each tensor's part in the shard
// gets that tensor's weight decay. With one rank the shard is everything and the
// arithmetic is exactly the one-process AdamW.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/dist.h"
#include "model/zero_track.h"
#include "nn/nn.h"
#include "rlhf.h"

void optim_default_config(rlhf_optim_config *c) {
    memset(c, 0, sizeof *c);
    c->lr = 1e-4f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = 0.0f;
    c->max_grad_norm = 1.0f;
    c->schedule = LR_CONSTANT;
    c->min_lr_ratio = 0.0f;
}

// this rank's shard of the n trainable elements (the moments' extent); the
// same split checkpoint.c uses to save and load the moments
static void shard(size_t n, size_t *lo, size_t *hi) {
    long b, e;
    dist_share((long)n, dist_rank(), dist_size(), &b, &e);
    *lo = (size_t)b;
    *hi = (size_t)e;
}

rlhf_optim *optim_create(const rlhf_optim_config *c, size_t n_params) {
    rlhf_optim *o = xcalloc(1, sizeof *o);
    o->cfg = *c;
    o->n = n_params;
    size_t lo, hi;
    shard(n_params, &lo, &hi);
    size_t k = hi - lo > 0 ? hi - lo : 1;  // n < ranks leaves a rank an empty shard
    o->m = xalloc_aligned(k * sizeof(float));
    o->v = xalloc_aligned(k * sizeof(float));
    if (dist_size() > 1) zero_track(o);  // checkpoints gather its shards (model/checkpoint.c)
    return o;
}

void optim_free(rlhf_optim *o) {
    if (!o) return;
    if (dist_size() > 1) zero_untrack(o);
    free(o->m);
    free(o->v);
    free(o);
}

// Learning rate for 0-based step: linear warm-up from lr/warmup to lr over
// warmup_steps, then constant, or decay to min_lr_ratio*lr at total_steps.
float lr_at_step(const rlhf_optim_config *c, int step) {
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    if (c->schedule == LR_CONSTANT || c->total_steps <= c->warmup_steps) return c->lr;
    double progress = (double)(step - c->warmup_steps) / (double)(c->total_steps - c->warmup_steps);
    if (progress > 1.0) progress = 1.0;
    double floor = c->min_lr_ratio;
    double f = c->schedule == LR_COSINE ? 0.5 * (1.0 + cos(M_PI * progress)) : 1.0 - progress;
    return (float)(c->lr * (floor + (1.0 - floor) * f));
}

// RLHF_OPTIM_TIMERS=1: one stderr line a step with the seconds spent in the
// gradient reduction, the update and the parameter gather (bench/mpi_bench.py),
// and in waiting for the slowest rank (a barrier before each collective, so
// that the collectives' times are the transfers alone; no number changes)
static int timers_on(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("RLHF_OPTIM_TIMERS");
        on = e && *e && strcmp(e, "0") != 0;
    }
    return on;
}

// seconds waited for the other ranks (0 when the timers are off)
static double wait_ranks(void) {
    if (!timers_on() || dist_size() == 1) return 0;
    double t = time_now();
    dist_barrier();
    return time_now() - t;
}

static void report_times(int step, double wait_s, double reduce_s, double update_s,
                         double gather_s) {
    if (timers_on())
        fprintf(stderr, "optim_timers: rank %d of %d step %d reduce_s %.6f update_s %.6f "
                        "gather_s %.6f wait_s %.6f\n",
                dist_rank(), dist_size(), step, reduce_s, update_s, gather_s, wait_s);
}

// every rank's shard size of n elements (the caller frees)
static long *shard_counts(size_t n) {
    int size = dist_size();
    long *counts = xcalloc((size_t)size, sizeof *counts);
    for (int r = 0; r < size; r++) {
        long b, e;
        dist_share((long)n, r, size, &b, &e);
        counts[r] = e - b;
    }
    return counts;
}

// every rank's shard of the trainable params p (n), gathered into p on every rank
static void gather_params(float *p, size_t n, size_t lo, size_t hi) {
    if (dist_size() == 1) return;
    long *counts = shard_counts(n);
    // the shard already lies at its place in p: dist_allgatherv_f32 gathers in
    // place (MPI_IN_PLACE), with no copy of it (a fresh 250 MB copy for GPT-2 on
    // 2 ranks cost more than the transfer: docs/mpi_scaling.md)
    dist_allgatherv_f32(p + lo, (long)(hi - lo), p, counts);
    free(counts);
}

static long g_nonfinite; // optim_step calls that met a non-finite gradient

long optim_nonfinite_steps(void) {
    return g_nonfinite;
}

float optim_step(rlhf_optim *o, rlhf_model *m) {
    size_t n = model_n_trainable(m), skip = m->n_frozen, lo, hi;
    RLHF_ASSERT(o->n == n && m->grads);
    shard(n, &lo, &hi);
    double wait_s = wait_ranks(), t0 = time_now();
    // data-parallel runs: each rank holds its share's part of the global
    // gradient (base/dist.h); the sum is the one-process gradient. This rank
    // needs only its shard [lo, hi) of the sum: a reduce-scatter (the rest of
    // m->grads is left undefined; the parameter all-gather below completes one
    // all-reduce's traffic).
    if (dist_size() > 1) {
        long *counts = shard_counts(n);
        dist_reduce_scatterv_sum_f32(m->grads, counts);
        free(counts);
    }
    double t1 = time_now();
    // the norm of the whole gradient: the shards' sums of squares summed
    double sq = sum_squares(m->grads + lo, (long)(hi - lo)), t2 = time_now();
    dist_allreduce_sum_f64(&sq, 1);
    double norm = sqrt(sq), reduce_s = t1 - t0 + time_now() - t2;
    if (rlhf_test_nan_step(o->step + 1)) norm = NAN; // tests
    if (!isfinite(norm)) { // the same on every rank (summed): none updates
        g_nonfinite++;
        return (float)norm;
    }
    if (o->cfg.max_grad_norm > 0 && norm > o->cfg.max_grad_norm)
        scale_inplace(m->grads + lo, (long)(hi - lo), (float)(o->cfg.max_grad_norm / (norm + 1e-6)));
    float lr = lr_at_step(&o->cfg, o->step);
    o->step++;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        if (t->offset < skip) continue;  // frozen
        size_t off = t->offset - skip;   // in grads (and the unsharded moments)
        size_t a = off > lo ? off : lo, b = off + t->numel < hi ? off + t->numel : hi;
        if (a >= b) continue;  // not in this rank's shard
        adamw_update(m->params + skip + a, m->grads + a, o->m + (a - lo), o->v + (a - lo),
                     (long)(b - a), lr, o->cfg.beta1, o->cfg.beta2, o->cfg.eps,
                     t->decay ? o->cfg.weight_decay : 0.0f, o->step);
    }
    double t3 = time_now(), w = wait_ranks(), t4 = time_now();
    gather_params(m->params + skip, n, lo, hi);
    report_times(o->step, wait_s + w, reduce_s, t3 - t0 - reduce_s, time_now() - t4);
    return (float)norm;
}
