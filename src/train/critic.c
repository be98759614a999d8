// train/critic: PPO's separate critic (see critic.h): loading it from a model
// spec or the policy, its old values of a rollout, and its checkpoint folder.
// The value loss and the optimizer steps are the update method's
// (online_pg.c): it forwards the critic on the same micro-batches as the
// policy and steps the critic's AdamW once per policy step.
#include "train/critic.h"

#include <stdlib.h>
#include <string.h>

#include "model/lora.h"

// the value head starts as a one-output score head (a reward model's), as TRL
// initialises its value model from the reward model
static int copy_score_head(const rlhf_model *src, rlhf_model *dst) {
    if (src->cfg.score_head != 1) return 0;
    const rlhf_tensor *sw = model_find_tensor(src, "score_head.weight");
    const rlhf_tensor *sb = model_find_tensor(src, "score_head.bias");
    const rlhf_tensor *vw = model_find_tensor(dst, "value_head.weight");
    const rlhf_tensor *vb = model_find_tensor(dst, "value_head.bias");
    if (!sw || !sb || !vw || !vb || sw->numel != vw->numel || sb->numel != vb->numel) return 0;
    memcpy(dst->params + vw->offset, src->params + sw->offset, vw->numel * sizeof(float));
    memcpy(dst->params + vb->offset, src->params + sb->offset, vb->numel * sizeof(float));
    return 1;
}

int critic_open(trainer *t, const char *spec, float lr, long optim_steps, online_critic **out,
                rlhf_err *err) {
    const train_config *c = t->c;
    int from_policy = !strcmp(spec, "policy");
    const char *path = from_policy ? c->model : spec;
    rlhf_model *src = NULL, *m = NULL;
    *out = NULL;
    if (model_load_any(path, c->seed, &src, err))
        return rlhf_fail_ctx(err, from_policy ? "--critic_model policy (a copy of --model)"
                                              : "--critic_model %s", spec);
    if (model_lora(src) && model_merge_lora(src, err)) {
        model_free(src);
        return rlhf_fail_ctx(err, "--critic_model %s: merging its adapters", spec);
    }
    const rlhf_config *pc = &t->m->cfg, *cc = &src->cfg;
    if (cc->vocab_size != pc->vocab_size) {
        rlhf_fail(err, "--critic_model %s has a vocabulary of %d tokens, the policy %d: the "
                       "critic reads the policy's tokens, so it needs the policy's tokenizer",
                  spec, cc->vocab_size, pc->vocab_size);
    } else if (cc->max_seq_len < pc->max_seq_len) {
        rlhf_fail(err, "--critic_model %s reads at most %d tokens (max_seq_len), the policy %d: "
                       "the critic must read every prompt + completion the policy writes",
                  spec, cc->max_seq_len, pc->max_seq_len);
    } else if (model_with_heads(src, 0, 1, c->seed ^ 0xC217C0DEULL, &m, err) == 0) {
        online_critic *cr = xcalloc(1, sizeof *cr);
        cr->m = m;
        cr->from_score_head = copy_score_head(src, m);
        snprintf(cr->spec, sizeof cr->spec, "%s", spec);
        model_free(src);
        m->grad_ckpt = c->gradient_checkpointing;  // same gradients, less memory
        model_alloc_grads(m);
        train_config oc = *c;
        oc.learning_rate = lr;
        if (!(cr->o = train_make_optim(&oc, model_n_trainable(m), (int)optim_steps, err))) {
            critic_free(cr);
            return -1;
        }
        *out = cr;
        return 0;
    }
    model_free(src);
    return -1;
}

void critic_free(online_critic *cr) {
    if (!cr) return;
    optim_free(cr->o);
    model_free(cr->m);
    free(cr);
}

int critic_values(online_critic *cr, const rollout_batch *rb, int micro, float *values,
                  rlhf_err *err) {
    size_t BT = (size_t)rb->B * rb->T;
    float *logp = xmalloc((BT ? BT : 1) * sizeof(float));  // computed alongside, unused
    int rc = rollout_forward(cr->m, rb, micro, logp, values, NULL, err);
    free(logp);
    return rc ? rlhf_fail_ctx(err, "the critic's values") : 0;
}

int critic_save(const online_critic *cr, const char *dir, rlhf_err *err) {
    return checkpoint_save(dir, cr->m, cr->o, NULL, err);
}

int critic_restore(online_critic *cr, const char *dir, rlhf_err *err) {
    rlhf_model *saved;
    if (checkpoint_load(dir, &saved, err)) return -1;
    if (saved->n_params != cr->m->n_params || !saved->cfg.value_head) {
        model_free(saved);
        return rlhf_fail(err, "%s: the saved critic does not have the architecture of "
                              "--critic_model %s (resume with the run's flags)",
                         dir, cr->spec);
    }
    memcpy(cr->m->params, saved->params, cr->m->n_params * sizeof(float));
    model_free(saved);
    return checkpoint_load_optim(dir, cr->o, NULL, err);
}
