// AdamW over the model's one parameter buffer: global grad-norm clipping, then
// decoupled weight decay on matrices only (norms, biases and heads' biases
// excluded), with warm-up and cosine / linear decay schedules.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/dist.h"
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

rlhf_optim *optim_create(const rlhf_optim_config *c, size_t n_params) {
    rlhf_optim *o = xcalloc(1, sizeof *o);
    o->cfg = *c;
    o->n = n_params;
    o->m = xalloc_aligned(n_params * sizeof(float));
    o->v = xalloc_aligned(n_params * sizeof(float));
    return o;
}

void optim_free(rlhf_optim *o) {
    if (!o) return;
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

float optim_step(rlhf_optim *o, rlhf_model *m) {
    size_t n = model_n_trainable(m), skip = m->n_frozen;
    RLHF_ASSERT(o->n == n && m->grads);
    // data-parallel runs: each rank holds its share's part of the global
    // gradient (base/dist.h); the sum is the one-process gradient
    dist_allreduce_sum_f32(m->grads, (long)n);
    double norm = sqrt(sum_squares(m->grads, (long)n));
    if (o->cfg.max_grad_norm > 0 && norm > o->cfg.max_grad_norm)
        scale_inplace(m->grads, (long)n, (float)(o->cfg.max_grad_norm / (norm + 1e-6)));
    float lr = lr_at_step(&o->cfg, o->step);
    o->step++;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        if (t->offset < skip) continue;  // frozen
        size_t off = t->offset - skip;   // in grads and moments
        float *p = m->params + t->offset;
        adamw_update(p, m->grads + off, o->m + off, o->v + off, (long)t->numel, lr,
                     o->cfg.beta1, o->cfg.beta2, o->cfg.eps, t->decay ? o->cfg.weight_decay : 0.0f,
                     o->step);
    }
    return (float)norm;
}
