// ctrl/algo_hnpg: --algo hnpg in the algorithm table. HNPG is on-policy
// (whole fresh episodes and a refit of every per-step critic each
// iteration), so it has its own loop (hnpg_train.c): the table's `run`
// member, which ctrl_train calls instead of its protocol. The table also
// gives the name, the --help line and the defaults of the hnpg_* fields; its
// create/update refuse: they are never the way to run it. Its checkpoints,
// --resume and `rlhf ctrl eval` (own_checkpoints, eval_checkpoint) are
// hnpg_ckpt.c's.
#include <math.h>
#include <string.h>

#include "ctrl/algo_common.h"
#include "ctrl/dataset.h"
#include "ctrl/env_comblock.h"
#include "ctrl/ctrl_train_internal.h"
#include "ctrl/hnpg_internal.h"

static void hnpg_defaults(ctrl_algo_config *c) {
    ctrl_corl_defaults(c);
    hnpg_config h;
    hnpg_default_config(&h);
    c->hidden = h.hidden, c->layers = h.layers, c->critic_lr = h.critic_lr;
    c->hnpg_batch_steps = h.batch_steps, c->hnpg_critic_steps = h.critic_steps;
    c->hnpg_value_samples = h.value_samples, c->hnpg_hybrid = h.hybrid;
    c->hnpg_critic_tanh = h.critic_tanh, c->hnpg_policy_hidden = h.policy_hidden;
    c->hnpg_offline_episodes = h.offline_episodes, c->hnpg_cg_iters = h.npg.cg_iters;
    c->hnpg_gamma = (float)h.gamma, c->hnpg_lambda = (float)h.lambda;
    c->hnpg_max_kl = (float)h.npg.max_kl, c->hnpg_damping = (float)h.npg.damping;
    c->hnpg_solve_return = (float)h.solve_return, c->hnpg_offline_eps = -1.0f;
}

static int hnpg_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *low,
                       const float *high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    *agent = NULL;
    return rlhf_fail(err, "hnpg: an on-policy method with one policy per time step; it runs in "
                          "its own loop (rlhf ctrl train --algo hnpg), not as a per-batch agent");
}

static int hnpg_update(void *agent, const ctrl_batch *b, rlhf_rng *rng, ctrl_metrics *m,
                       rlhf_err *err) {
    return rlhf_fail(err, "hnpg: no per-batch update (on-policy; see rlhf ctrl train --algo hnpg)");
}

static void hnpg_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                     float *action) {}
static int hnpg_tensors(void *agent, ctrl_tensor *out, int max) {
    return 0;
}
static void hnpg_free(void *agent) {}

const ctrl_algo ctrl_algo_hnpg = {
    .name = "hnpg",
    .summary = "HNPG: on-policy natural policy gradient, per-step critics fit by MC on online "
               "and FQE on offline data (Zhou et al. 2023); its own loop",
    .offline = 0,
    .data_parallel = 1, // the critics' fits share their rows out (hnpg_train.c)
    .defaults = hnpg_defaults,
    .create = hnpg_create,
    .update = hnpg_update,
    .act = hnpg_act,
    .tensors = hnpg_tensors,
    .free = hnpg_free,
    .run = ctrl_hnpg_train,
    .own_checkpoints = 1, // hnpg_ckpt.c: checkpoints, --resume
    .eval_checkpoint = ctrl_hnpg_eval_checkpoint,
};

void hnpg_config_from_train(const ctrl_train_config *c, hnpg_config *h) {
    const ctrl_algo_config *a = &c->algo_cfg;
    hnpg_default_config(h);
    h->env = c->env, h->dataset = c->dataset, h->online_steps = c->online_steps;
    h->seed = c->seed, h->output_dir = c->output_dir, h->quiet = c->quiet;
    h->eval_episodes = c->eval_episodes > 0 ? c->eval_episodes : h->eval_episodes;
    h->hidden = a->hidden, h->layers = a->layers, h->critic_lr = a->critic_lr;
    h->batch_steps = a->hnpg_batch_steps, h->critic_steps = a->hnpg_critic_steps;
    h->value_samples = a->hnpg_value_samples, h->hybrid = a->hnpg_hybrid;
    h->critic_tanh = a->hnpg_critic_tanh, h->policy_hidden = a->hnpg_policy_hidden;
    h->offline_episodes = a->hnpg_offline_episodes, h->npg.cg_iters = a->hnpg_cg_iters;
    h->gamma = a->hnpg_gamma, h->lambda = a->hnpg_lambda, h->npg.max_kl = a->hnpg_max_kl;
    h->npg.damping = a->hnpg_damping, h->solve_return = a->hnpg_solve_return;
    h->offline_eps = a->hnpg_offline_eps < 0 ? NAN : a->hnpg_offline_eps;
    h->train = c;
}

// --output_dir as the control trainer's (ctrl_prepare_run_dir: an earlier run
// refused unless --resume or --overwrite_output_dir; --resume's newest complete
// checkpoint into resume_from); no folder: nothing is written
static int prepare_dir(const ctrl_train_config *c, char *resume_from, size_t n, rlhf_err *err) {
    if (c->output_dir && *c->output_dir) return ctrl_prepare_run_dir(c, 1, resume_from, n, err);
    if (c->resume) return rlhf_fail(err, "hnpg: --resume needs the run's --output_dir");
    return 0;
}

int ctrl_hnpg_train(const ctrl_train_config *c, ctrl_train_result *res, rlhf_err *err) {
    if (res) memset(res, 0, sizeof *res);
    if (c->offline_steps > 0)
        return rlhf_fail(err,
                         "hnpg: --offline_steps %d: HNPG has no offline phase (the data "
                         "enters every online iteration); use --online_steps",
                         c->offline_steps);
    if (c->online_steps <= 0)
        return rlhf_fail(err, "hnpg: --online_steps must be > 0 (the environment-step budget)");
    char resume_from[4400] = "";
    if (prepare_dir(c, resume_from, sizeof resume_from, err)) return -1;
    hnpg_config h;
    hnpg_config_from_train(c, &h);
    h.resume_from = resume_from;
    hnpg_result r;
    ctrl_stop_signals sigs;
    ctrl_stop_signals_catch(&sigs);
    int rc = hnpg_train(&h, &r, err);
    ctrl_stop_signals_restore(&sigs);
    if (rc) return -1;
    if (res && r.stopped) res->stopped = 1;
    if (res && !r.stopped) {
        res->n_evals = 1;
        res->eval_step = xmalloc(sizeof(int));
        res->eval_mean = xmalloc(sizeof(double));
        res->eval_std = xmalloc(sizeof(double));
        res->eval_step[0] = (int)r.online_steps;
        res->eval_mean[0] = res->final_mean = r.final_eval;
        res->eval_std[0] = res->final_std = r.final_std;
        res->final_score =
            ctrl_env_is_comblock(c->env) ? ctrl_normalized_score(r.final_eval, 0.05, 1.0) : NAN;
        snprintf(res->final_checkpoint, sizeof res->final_checkpoint, "%s", r.final_checkpoint);
    }
    return 0;
}
