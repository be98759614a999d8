// ctrl/algo_lamo: --algo lamo in the algorithm table. LaMo trains a decision
// transformer over K-step windows of whole episodes (not per-transition
// batches), so it runs its own loop (lamo_train.c) through the table's `run`
// member; the table gives the name, the --help line and the defaults of the
// lamo_* fields (the paper's and the authors' run.sh), and its
// create/update refuse.
#include <math.h>
#include <string.h>

#include "ctrl/algo_common.h"
#include "ctrl/lamo.h"

static void lamo_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c);
    c->lamo_K = 20, c->lamo_lora_r = 16, c->lamo_lora_alpha = 32.0f;
    c->lamo_lm_coeff = 0.1f, c->lamo_lr = 1e-4f, c->lamo_weight_decay = 1e-5f;
    c->lamo_warmup = -1, c->lamo_clip = 0.25f, c->lamo_target_return = NAN;
    c->lamo_rtg_scale = 1000.0f, c->lamo_pretrained = 1, c->lamo_tanh = 1;
    c->lamo_lm_batch = 4, c->lamo_lm_len = 64;
    c->lamo_dropout = 0.1f, c->lamo_attn_dropout = 0.1f, c->lamo_lora_dropout = 0.1f;
    c->lamo_positions = 0;
}

static int lamo_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *low,
                       const float *high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    *agent = NULL;
    return rlhf_fail(err, "lamo: a decision transformer over K-step windows; it runs in its own "
                          "loop (rlhf ctrl train --algo lamo), not as a per-batch agent");
}

static int lamo_update(void *agent, const ctrl_batch *b, rlhf_rng *rng, ctrl_metrics *m,
                       rlhf_err *err) {
    return rlhf_fail(err, "lamo: no per-batch update (see rlhf ctrl train --algo lamo)");
}

static void lamo_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                     float *action) {}
static int lamo_tensors(void *agent, ctrl_tensor *out, int max) {
    return 0;
}
static void lamo_free(void *agent) {}

const ctrl_algo ctrl_algo_lamo = {
    .name = "lamo",
    .summary = "LaMo: decision transformer on a pre-trained LM (--lamo_model) with LoRA, MLP "
               "embeddings and an LM loss on --lamo_text (Shi et al. 2023); offline, its own loop",
    .offline = 1,
    .data_parallel = 1, // its loop shares each batch's rows (lamo_train.c, loss_grad)
    .defaults = lamo_defaults,
    .create = lamo_create,
    .update = lamo_update,
    .act = lamo_act,
    .tensors = lamo_tensors,
    .free = lamo_free,
    .run = ctrl_lamo_train,
    .own_checkpoints = 1, // lamo_ckpt.c: checkpoints, --resume
    .eval_checkpoint = ctrl_lamo_eval_checkpoint,
};
