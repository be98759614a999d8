// ctrl/lamo_train: LaMo's own loop (lamo.h), reached through the algorithm
// table's `run` (algo_lamo.c). As the authors' experiment.py does:
//   * the dataset is cut into episodes (terminal or timeout ends one);
//     observations normalised by the dataset's mean and std (+1e-6), actions
//     mapped to [-1, 1] by the action box, returns-to-go undiscounted / scale;
//   * a batch draws B rows uniformly (= an episode with probability
//     proportional to its length, then a uniform start) and takes the window
//     of up to K steps from there, cut at the episode's end, left-padded;
//   * one AdamW over every trained tensor (the net's span and the LM's
//     trainable tail: LoRA adapters, or every weight with --lamo_lora_r 0),
//     lr warmed up linearly (LambdaLR min((t + 1) / warmup, 1)), the global
//     gradient norm clipped (0.25);
//   * the loss is L_act + lambda * L_LM, L_LM the LM's mean next-token NLL
//     on lm_batch random rows of lm_len tokens of --lamo_text;
//   * evaluation: eval_episodes episodes at once, each conditioned on the
//     target return, the return-to-go lowered by each reward / scale, the
//     action predicted from the last K steps (the current action slot 0).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "ctrl/algo_common.h"
#include "ctrl/ctrl_dist.h"
#include "ctrl/ctrl_train.h"
#include "ctrl/ctrl_train_internal.h"
#include "ctrl/dataset.h"
#include "nn/nn.h"
#include "ctrl/lamo.h"
#include "ctrl/lamo_internal.h"
#include "io/file.h"
#include "model/load.h"
#include "model/lora.h"
#include "nn/nn.h"

static int check_config(const ctrl_train_config *c, rlhf_err *err) {
    const ctrl_algo_config *a = &c->algo_cfg;
    if (!c->dataset || !*c->dataset)
        return rlhf_fail(err, "lamo: --dataset is required (LaMo learns offline from episodes)");
    if (!c->lamo_model || !*c->lamo_model)
        return rlhf_fail(err, "lamo: --lamo_model is required (the language model, or with "
                              "--lamo_pretrained 0 the model whose shape a fresh DT takes)");
    if (c->online_steps > 0)
        return rlhf_fail(err, "lamo: --online_steps %d: LaMo is offline; use --offline_steps",
                         c->online_steps);
    if (c->offline_steps <= 0) return rlhf_fail(err, "lamo: --offline_steps must be > 0");
    if (c->batch_size < 1) return rlhf_fail(err, "lamo: --batch_size must be >= 1");
    if (c->eval_episodes < 1) return rlhf_fail(err, "lamo: --eval_episodes must be >= 1");
#define BAD(cond, ...)                                                                             \
    if (cond) return rlhf_fail(err, __VA_ARGS__)
    BAD(a->lamo_K < 1 || a->lamo_K > 4096, "lamo: --lamo_K %d must be in 1..4096", a->lamo_K);
    BAD(a->lamo_lora_r < 0, "lamo: --lamo_lora_r %d must be >= 0 (0: no adapters)", a->lamo_lora_r);
    BAD(a->lamo_lora_r > 0 && !(a->lamo_lora_alpha > 0), "lamo: --lamo_lora_alpha must be > 0");
    BAD(!(a->lamo_lm_coeff >= 0) || !isfinite(a->lamo_lm_coeff),
        "lamo: --lamo_lm_coeff must be finite and >= 0");
    BAD(!(a->lamo_lr > 0) || !isfinite(a->lamo_lr), "lamo: --lamo_lr must be > 0");
    BAD(!(a->lamo_weight_decay >= 0), "lamo: --lamo_weight_decay must be >= 0");
    BAD(!(a->lamo_clip >= 0), "lamo: --lamo_clip must be >= 0 (0: no clipping)");
    BAD(a->lamo_warmup < -1, "lamo: --lamo_warmup must be >= 0, or -1 for min(2500, steps/10)");
    BAD(!(a->lamo_rtg_scale > 0) || !isfinite(a->lamo_rtg_scale),
        "lamo: --lamo_rtg_scale must be > 0");
    BAD(!isnan(a->lamo_target_return) && !isfinite(a->lamo_target_return),
        "lamo: --lamo_target_return must be finite (or nan: the dataset's best episode)");
    BAD(a->lamo_pretrained != 0 && a->lamo_pretrained != 1, "lamo: --lamo_pretrained is 0 or 1");
    BAD(a->lamo_tanh != 0 && a->lamo_tanh != 1, "lamo: --lamo_tanh is 0 or 1");
    BAD(a->lamo_lm_batch < 1, "lamo: --lamo_lm_batch must be >= 1");
    BAD(a->lamo_lm_len < 1, "lamo: --lamo_lm_len must be >= 1");
    BAD(!(a->lamo_dropout >= 0 && a->lamo_dropout < 1), "lamo: --lamo_dropout must be in [0, 1)");
    BAD(!(a->lamo_attn_dropout >= 0 && a->lamo_attn_dropout < 1),
        "lamo: --lamo_attn_dropout must be in [0, 1)");
    BAD(!(a->lamo_lora_dropout >= 0 && a->lamo_lora_dropout < 1),
        "lamo: --lamo_lora_dropout must be in [0, 1)");
    BAD(a->lamo_positions < 0 || a->lamo_positions > 2,
        "lamo: --lamo_positions is 0 (none, the authors'), 1 (padded window) or 2 (real tokens)");
#undef BAD
    return 0;
}

// episodes, normalisation, returns-to-go, step indices
static int setup_data(lamo_run *t, ctrl_env *env, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    if (ctrl_dataset_load(c->dataset, &t->data, &t->info, err)) return -1;
    ctrl_transitions *d = &t->data;
    if (d->obs_dim != env->obs_dim || d->act_dim != env->act_dim)
        return rlhf_fail(err, "lamo: dataset %s has obs %d / act %d, env \"%s\" has %d / %d",
                         c->dataset, d->obs_dim, d->act_dim, c->env, env->obs_dim, env->act_dim);
    if (d->n < 1) return rlhf_fail(err, "lamo: dataset %s has no rows", c->dataset);
    long n = d->n;
    int S = t->S, A = t->A;
    ctrl_obs_norm_fit(&t->norm, d, 1e-6f);
    t->obs = xmalloc(sizeof(float) * (size_t)n * S);
    memcpy(t->obs, d->obs, sizeof(float) * (size_t)n * S);
    ctrl_obs_norm_apply(&t->norm, t->obs, n);
    t->act = xmalloc(sizeof(float) * (size_t)n * A);
    for (long i = 0; i < n * A; i++) {
        int k = (int)(i % A);
        float u = (d->act[i] - t->bias[k]) / t->scale[k];
        t->act[i] = u < -1 ? -1 : u > 1 ? 1 : u;
    }
    t->rtg = xmalloc(sizeof(float) * (size_t)n);
    t->tstep = xmalloc(sizeof(int) * (size_t)n);
    t->ep_end = xmalloc(sizeof(long) * (size_t)n);
    int longest = 0;
    t->best_return = -INFINITY;
    for (long s = 0; s < n;) { // one episode [s, e)
        long e = s;
        while (e < n - 1 && !d->terminal[e] && !d->timeout[e]) e++;
        e++;
        double acc = 0;
        for (long i = e - 1; i >= s; i--) {
            acc += d->rew[i];
            t->rtg[i] = (float)acc;
            t->tstep[i] = (int)(i - s), t->ep_end[i] = e;
        }
        if (acc > t->best_return) t->best_return = acc;
        if (e - s > longest) longest = (int)(e - s);
        s = e;
    }
    t->H = env->max_episode_steps > 0 ? env->max_episode_steps : longest;
    return 0;
}

int lamo_setup_model(lamo_run *t, rlhf_err *err) {
    const ctrl_algo_config *a = t->a;
    if (model_load_any(t->c->lamo_model, t->c->seed, &t->m, err)) return -1;
    if (!a->lamo_pretrained) { // the same shape, a fresh init: the DT baseline
        rlhf_model *fresh;
        if (model_create(&fresh, &t->m->cfg, t->c->seed + 17, err)) return -1;
        model_free(t->m);
        t->m = fresh;
    }
    if (3 * t->K > t->m->cfg.max_seq_len)
        return rlhf_fail(err, "lamo: --lamo_K %d needs 3K = %d positions; the model has %d", t->K,
                         3 * t->K, t->m->cfg.max_seq_len);
    if (a->lamo_lora_r > 0) {
        lora_config lc;
        lora_config_default(&lc);
        lc.r = a->lamo_lora_r, lc.alpha = a->lamo_lora_alpha, lc.dropout = a->lamo_lora_dropout;
        lc.targets = t->m->cfg.arch == ARCH_GPT2 ? LORA_QKV : (LORA_Q | LORA_K | LORA_V);
        if (model_add_lora(t->m, &lc, t->c->seed + 29, err)) return -1;
    }
    // positions as --lamo_positions (rlhf_model): the authors' GPT-2 adds none
    t->m->no_learned_positions = a->lamo_positions == 0;
    t->m->positions_padded = a->lamo_positions == 1;
    model_alloc_grads(t->m);
    int max_ep = t->H > 0 ? t->H : 1;
    lamo_dims d = {.S = t->S,
                   .A = t->A,
                   .K = t->K,
                   .C = t->m->cfg.n_embd,
                   .max_ep_len = max_ep,
                   .tanh_head = a->lamo_tanh};
    if (lamo_net_init(&t->net, &d, &t->rng, err)) return -1;
    t->net.drop.p = a->lamo_dropout; // switched on per training step (train_loop)
    t->net.drop.attn_p = a->lamo_attn_dropout;
    size_t nm = model_n_trainable(t->m);
    t->am = xcalloc((size_t)t->net.n_params, sizeof(float));
    t->av = xcalloc((size_t)t->net.n_params, sizeof(float));
    t->mm = xcalloc(nm + 1, sizeof(float));
    t->mv = xcalloc(nm + 1, sizeof(float));
    return 0;
}

static int setup_text(lamo_run *t, rlhf_err *err) {
    const ctrl_algo_config *a = t->a;
    if (!t->c->lamo_text || !*t->c->lamo_text || !(a->lamo_lm_coeff > 0)) return 0;
    if (a->lamo_lm_len > t->m->cfg.max_seq_len)
        return rlhf_fail(err, "lamo: --lamo_lm_len %d exceeds the model's max_seq_len %d",
                         a->lamo_lm_len, t->m->cfg.max_seq_len);
    size_t len;
    char *txt = read_file(t->c->lamo_text, &len, err);
    if (!txt) return -1;
    rlhf_tokenizer *tok;
    int rc = model_tokenizer(t->m, NULL, &tok, err);
    if (!rc) {
        rc = tok_encode(tok, txt, len, &t->text, &t->n_text, 0, err);
        tok_free(tok);
    }
    free(txt);
    if (rc) return -1;
    if (t->n_text < a->lamo_lm_len + 1)
        return rlhf_fail(err, "lamo: --lamo_text %s has %d tokens; --lamo_lm_len %d needs %d",
                         t->c->lamo_text, t->n_text, a->lamo_lm_len, a->lamo_lm_len + 1);
    long n = (long)a->lamo_lm_batch * a->lamo_lm_len;
    t->lm_tok = xmalloc(sizeof(int) * (size_t)n);
    t->lm_tgt = xmalloc(sizeof(int) * (size_t)n);
    return 0;
}

// B windows: rows drawn uniformly, up to K steps from there within the episode
static void sample_batch(lamo_run *t) {
    lamo_batch *b = &t->batch;
    int K = t->K, S = t->S, A = t->A;
    for (int r = 0; r < b->B; r++) {
        long i = (long)(rng_u64(&t->rng) % (uint64_t)t->data.n);
        long L = t->ep_end[i] - i < K ? t->ep_end[i] - i : K;
        long pad = K - L;
        for (long j = 0; j < K; j++) {
            long o = (long)r * K + j, src = i + j - pad;
            int real = j >= pad;
            b->mask[o] = (uint8_t)real;
            b->rtg[o] = real ? t->rtg[src] / t->a->lamo_rtg_scale : 0.0f;
            b->timestep[o] = real ? (t->tstep[src] < t->H ? t->tstep[src] : t->H - 1) : 0;
            for (int k = 0; k < S; k++) b->obs[o * S + k] = real ? t->obs[src * S + k] : 0.0f;
            for (int k = 0; k < A; k++) b->act[o * A + k] = real ? t->act[src * A + k] : 0.0f;
        }
    }
}

static void sample_text(lamo_run *t, rlhf_batch *lm) {
    int B = t->a->lamo_lm_batch, T = t->a->lamo_lm_len;
    for (int r = 0; r < B; r++) {
        int s = (int)(rng_u64(&t->rng) % (uint64_t)(t->n_text - T));
        for (int j = 0; j < T; j++)
            t->lm_tok[r * T + j] = t->text[s + j], t->lm_tgt[r * T + j] = t->text[s + j + 1];
    }
    *lm = (rlhf_batch){.B = B, .T = T, .tokens = t->lm_tok, .targets = t->lm_tgt, .mask = NULL};
}

// clip the joint gradient norm, one AdamW step on both spans; returns the norm
// (not finite: nothing was updated)
static double opt_step(lamo_run *t, int step, double *lr_out) {
    const ctrl_algo_config *a = t->a;
    size_t nm = model_n_trainable(t->m);
    float *mp = t->m->params + t->m->n_frozen;
    double norm =
        sqrt(sum_squares(t->net.grads, t->net.n_params) + sum_squares(t->m->grads, (long)nm));
    if (rlhf_test_nan_step(step + 1)) norm = NAN;
    *lr_out = 0;
    if (!isfinite(norm)) return norm; // no update: the caller stops the run
    if (a->lamo_clip > 0 && norm > a->lamo_clip) {
        float s = (float)(a->lamo_clip / (norm + 1e-6));
        scale_inplace(t->net.grads, t->net.n_params, s);
        scale_inplace(t->m->grads, (long)nm, s);
    }
    double f = t->warm > 0 ? (step + 1.0) / t->warm : 1.0;
    float lr = (float)(a->lamo_lr * (f < 1 ? f : 1));
    adamw_update(t->net.params, t->net.grads, t->am, t->av, t->net.n_params, lr, 0.9f, 0.999f,
                 1e-8f, a->lamo_weight_decay, step + 1);
    adamw_update(mp, t->m->grads, t->mm, t->mv, (long)nm, lr, 0.9f, 0.999f, 1e-8f,
                 a->lamo_weight_decay, step + 1);
    *lr_out = lr;
    return norm;
}

typedef struct {
    int E;
    ctrl_env **env;
    float *obs, *act, *rtg;     // (E, H + 1, S) normalised, (E, H + 1, A) in [-1, 1], (E, H + 1)
    float *raw, *a_out, *a_env; // (S), (E, A), (A)
    int *t, *done;
    double *ret;
} rollout;

static void rollout_free(rollout *r) {
    for (int e = 0; r->env && e < r->E; e++)
        if (r->env[e]) ctrl_env_free(r->env[e]);
    free(r->env), free(r->obs), free(r->act), free(r->rtg), free(r->raw), free(r->a_out);
    free(r->a_env), free(r->t), free(r->done), free(r->ret);
}

// the windows of the E episodes at their current steps into b (B = E)
static void rollout_windows(lamo_run *t, rollout *r, lamo_batch *b) {
    int K = t->K, S = t->S, A = t->A, H1 = t->H + 1;
    for (int e = 0; e < r->E; e++) {
        int now = r->t[e], L = now + 1 < K ? now + 1 : K, pad = K - L;
        for (int j = 0; j < K; j++) {
            long o = (long)e * K + j;
            int real = j >= pad, idx = real ? now - (K - 1 - j) : 0;
            b->mask[o] = (uint8_t)real;
            b->rtg[o] = real ? r->rtg[(long)e * H1 + idx] / t->a->lamo_rtg_scale : 0.0f;
            b->timestep[o] = real ? (idx < t->H ? idx : t->H - 1) : 0;
            for (int k = 0; k < S; k++)
                b->obs[o * S + k] = real ? r->obs[((long)e * H1 + idx) * S + k] : 0.0f;
            for (int k = 0; k < A; k++)
                b->act[o * A + k] = real ? r->act[((long)e * H1 + idx) * A + k] : 0.0f;
        }
    }
}

int lamo_evaluate(lamo_run *t, uint64_t seed, double *mean, double *std, rlhf_err *err) {
    int E = t->c->eval_episodes, S = t->S, A = t->A, H1 = t->H + 1;
    rollout r = {.E = E};
    r.env = xcalloc((size_t)E, sizeof(ctrl_env *));
    r.obs = xcalloc((size_t)E * H1 * S, sizeof(float));
    r.act = xcalloc((size_t)E * H1 * A, sizeof(float));
    r.rtg = xcalloc((size_t)E * H1, sizeof(float));
    r.raw = xmalloc(sizeof(float) * (size_t)S);
    r.a_out = xmalloc(sizeof(float) * (size_t)E * A);
    r.a_env = xmalloc(sizeof(float) * (size_t)A);
    r.t = xcalloc((size_t)E, sizeof(int)), r.done = xcalloc((size_t)E, sizeof(int));
    r.ret = xcalloc((size_t)E, sizeof(double));
    lamo_batch b;
    lamo_batch_alloc(&b, E, t->K, S, A);
    int rc = 0, live = E;
    for (int e = 0; e < E && !rc; e++) {
        rc = ctrl_env_make(t->c->env, &r.env[e], err);
        if (rc) break;
        ctrl_env_seed(r.env[e], seed + (uint64_t)e);
        rc = ctrl_env_reset(r.env[e], r.raw, err);
        ctrl_obs_normalize(&t->norm, r.raw, r.obs + (long)e * H1 * S, S);
        r.rtg[(long)e * H1] = (float)t->target;
    }
    while (!rc && live > 0) {
        rollout_windows(t, &r, &b);
        if ((rc = lamo_predict_last(&t->net, t->m, &b, &t->sc, r.a_out, err))) break;
        for (int e = 0; e < E && !rc; e++) {
            if (r.done[e]) continue;
            int now = r.t[e];
            const float *u = r.a_out + (long)e * A;
            memcpy(r.act + ((long)e * H1 + now) * A, u, sizeof(float) * (size_t)A);
            for (int k = 0; k < A; k++) r.a_env[k] = t->bias[k] + t->scale[k] * u[k];
            ctrl_clip_actions(r.a_env, t->lo, t->hi, 1, A);
            ctrl_step_info info;
            if ((rc = ctrl_env_step(r.env[e], r.a_env, r.raw, &info, err))) break;
            r.ret[e] += info.reward;
            r.t[e] = now + 1;
            if (info.terminated || info.truncated || r.t[e] >= t->H) {
                r.done[e] = 1, live--;
                continue;
            }
            ctrl_obs_normalize(&t->norm, r.raw, r.obs + ((long)e * H1 + now + 1) * S, S);
            r.rtg[(long)e * H1 + now + 1] = r.rtg[(long)e * H1 + now] - info.reward;
        }
    }
    double s = 0, s2 = 0;
    for (int e = 0; e < E; e++) s += r.ret[e], s2 += r.ret[e] * r.ret[e];
    *mean = s / E;
    *std = sqrt(fmax(0.0, s2 / E - *mean * *mean));
    lamo_batch_free(&b);
    rollout_free(&r);
    return rc;
}

void lamo_run_free(lamo_run *t) {
    ctrl_transitions_free(&t->data);
    if (t->norm.mean) ctrl_obs_norm_free(&t->norm);
    free(t->obs), free(t->act), free(t->rtg), free(t->tstep), free(t->ep_end), free(t->lo);
    if (t->m) model_free(t->m);
    lamo_net_free(&t->net);
    lamo_scratch_free(&t->sc);
    if (t->batch.B) lamo_batch_free(&t->batch);
    free(t->text), free(t->lm_tok), free(t->lm_tgt);
    free(t->am), free(t->av), free(t->mm), free(t->mv);
    run_close(&t->run);
}

static int setup(lamo_run *t, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    if (check_config(c, err)) return -1;
    ctrl_env *env;
    if (ctrl_env_make(c->env, &env, err)) return -1;
    t->S = env->obs_dim, t->A = env->act_dim, t->K = t->a->lamo_K;
    ctrl_action_box(env->act_low, env->act_high, t->A, &t->lo, &t->hi, &t->scale, &t->bias);
    int rc = setup_data(t, env, err);
    ctrl_env_free(env);
    if (rc) return -1;
    rng_seed(&t->rng, c->seed);
    if (lamo_setup_model(t, err) || setup_text(t, err)) return -1;
    lamo_batch_alloc(&t->batch, c->batch_size, t->K, t->S, t->A);
    t->target = isnan(t->a->lamo_target_return) ? t->best_return : t->a->lamo_target_return;
    t->ref_random =
        isfinite(c->ref_random_return) ? c->ref_random_return : t->info.ref_random_return;
    t->ref_expert =
        isfinite(c->ref_expert_return) ? c->ref_expert_return : t->info.ref_expert_return;
    t->warm = t->a->lamo_warmup >= 0 ? t->a->lamo_warmup : c->offline_steps / 10;
    if (t->a->lamo_warmup < 0 && t->warm > 2500) t->warm = 2500;
    if (!c->output_dir || !*c->output_dir) return 0; // nothing is written
    if (t->resume_from[0] && lamo_ckpt_resume(t, t->resume_from, err)) return -1;
    if (t->resume_from[0] && t->step == c->offline_steps)
        return rlhf_fail(err,
                         "--resume: %s is finished at step %d of %d: nothing to do; give a "
                         "larger --offline_steps to extend it (with --lamo_warmup set, so the "
                         "warm-up stays). Nothing was changed",
                         c->output_dir, t->step, c->offline_steps);
    if (!ctrl_dist_writer()) { // MPI: rank 0 alone writes the run folder
        snprintf(t->run.dir, sizeof t->run.dir, "%s", c->output_dir);
        return 0;
    }
    if (t->resume_from[0] && !c->quiet)
        fprintf(stderr, "lamo: resuming from %s (step %d)\n", t->resume_from, t->step);
    return run_open(&t->run, c->output_dir, c->config_json, t->resume_from[0] ? t->step : -1, err);
}

static double score_of(const lamo_run *t, double ret) {
    return isfinite(t->ref_random) && isfinite(t->ref_expert)
               ? ctrl_normalized_score(ret, t->ref_random, t->ref_expert)
               : NAN;
}

static void log_line(lamo_run *t, const char *line) {
    run_log(&t->run, line);
}

static int eval_at(lamo_run *t, int step, ctrl_train_result *r, double t0, rlhf_err *err) {
    double mean = 0, std = 0;
    int rc = ctrl_dist_writer() &&
             lamo_evaluate(t, t->c->seed + 100, &mean, &std, err);
    ctrl_dist_eval_result(&rc, &mean, &std);  // MPI ranks: rank 0's episodes, on every rank
    if (rc) return ctrl_dist_writer() ? -1 : rlhf_fail(err, "lamo: rank 0's evaluation failed");
    int n = r->n_evals + 1;
    r->eval_step = xrealloc(r->eval_step, sizeof(int) * (size_t)n);
    r->eval_mean = xrealloc(r->eval_mean, sizeof(double) * (size_t)n);
    r->eval_std = xrealloc(r->eval_std, sizeof(double) * (size_t)n);
    r->eval_step[n - 1] = step, r->eval_mean[n - 1] = mean, r->eval_std[n - 1] = std;
    r->n_evals = n;
    r->final_mean = mean, r->final_std = std, r->final_score = score_of(t, mean);
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"step\": %d, \"eval/return_mean\": %.6g, \"eval/return_std\": %.6g, "
             "\"eval/normalized_score\": %.6g, \"seconds\": %.3f}",
             step, mean, std, isnan(r->final_score) ? -1e9 : r->final_score, time_now() - t0);
    if (isnan(r->final_score)) { // JSON has no NaN
        char *p = strstr(buf, "-1e+09");
        if (p) memcpy(p, "null  ", 6);
    }
    log_line(t, buf);
    if (!t->c->quiet && ctrl_dist_writer())
        fprintf(stderr, "lamo step %d: eval return %.2f ± %.2f (target %.1f), score %.1f\n", step,
                mean, std, t->target, r->final_score);
    return 0;
}

// The step's loss and gradients. On MPI ranks (docs/mpi.md, "Control") each rank
// takes its share of the batch's windows and of the text rows, weighted by its
// share of the batch's real steps and text tokens; the gradients are summed over
// ranks (then every rank clips and steps alike) and so are the weighted means.
static int loss_grad(lamo_run *t, const rlhf_batch *lm, double *la, double *ll, rlhf_err *err) {
    float coeff = t->a->lamo_lm_coeff;
    t->net.drop.token0[0] = t->net.drop.token0[1] = 0;
    if (dist_size() == 1)
        return lamo_loss_grad(&t->net, t->m, &t->batch, lm, coeff, &t->sc, la, ll, err);
    const lamo_batch *b = &t->batch;
    int K = t->K, S = t->S, A = t->A;
    long lo, hi, n_real = 0, my_real = 0, n_tok = 0, my_tok = 0;
    dist_share(b->B, dist_rank(), dist_size(), &lo, &hi);
    lamo_batch mine = {.B = (int)(hi - lo), .K = K, .rtg = b->rtg + lo * K,
                       .obs = b->obs + lo * K * S, .act = b->act + lo * K * A,
                       .timestep = b->timestep + lo * K, .mask = b->mask + lo * K};
    for (long i = 0; i < (long)b->B * K; i++) n_real += b->mask[i] != 0;
    for (long i = lo * K; i < hi * K; i++) my_real += b->mask[i] != 0;
    rlhf_batch lmv = {0};
    if (lm) {  // the text rows: a share of them too (none on a rank past their count)
        long a, z;
        dist_share(lm->B, dist_rank(), dist_size(), &a, &z);
        lmv = (rlhf_batch){.B = (int)(z - a), .T = lm->T, .tokens = lm->tokens + a * lm->T,
                           .targets = lm->targets + a * lm->T};
        for (long i = 0; i < (long)lm->B * lm->T; i++) n_tok += lm->targets[i] >= 0;
        for (long i = 0; i < (long)lmv.B * lm->T; i++) my_tok += lmv.targets[i] >= 0;
    }
    double w_act = n_real ? (double)my_real / n_real : 0, w_lm = n_tok ? (double)my_tok / n_tok : 0;
    // the dropout masks of these rows are those one process draws for them
    t->net.drop.token0[0] = (uint64_t)lo * (uint64_t)(3 * K);
    t->net.drop.token0[1] = lm ? (uint64_t)(lmv.tokens - lm->tokens) : 0;
    if (lamo_loss_grad_w(&t->net, t->m, &mine, lmv.B > 0 ? &lmv : NULL, coeff, w_act, w_lm, &t->sc,
                         la, ll, err))
        return -1;
    double v[2] = {*la * w_act, *ll * w_lm};
    dist_allreduce_sum_f64(v, 2);
    *la = v[0], *ll = v[1];
    dist_allreduce_sum_f32(t->net.grads, t->net.n_params);
    dist_allreduce_sum_f32(t->m->grads, (long)model_n_trainable(t->m));
    return 0;
}

// one metrics line: the losses averaged since the last one
static void log_train(lamo_run *t, double gn, double lr, double t0) {
    const ctrl_train_config *c = t->c;
    double n = t->n_acc > 0 ? t->n_acc : 1;
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"step\": %d, \"action_mse\": %.6g, \"lm_nll\": %.6g, \"loss\": %.6g, "
             "\"grad_norm\": %.6g, \"lr\": %.6g, \"seconds\": %.3f}",
             t->step, t->sum_act / n, t->sum_lm / n,
             (t->sum_act + t->a->lamo_lm_coeff * t->sum_lm) / n, gn, lr, time_now() - t0);
    log_line(t, buf);
    if (!c->quiet && ctrl_dist_writer())
        fprintf(stderr, "lamo step %d/%d: action mse %.4f, lm nll %.3f, %.1f s\n", t->step,
                c->offline_steps, t->sum_act / n, t->sum_lm / n, time_now() - t0);
    t->sum_act = t->sum_lm = 0, t->n_acc = 0;
}

// a periodic checkpoint (--save_every) or a stop (--stop_at, SIGINT / SIGTERM:
// a checkpoint, then res->stopped; a signal's stop is an error, as the
// control trainer's); *stop set when the run ends here
static int maybe_save(lamo_run *t, ctrl_train_result *r, int *stop, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    int done = t->step, total = c->offline_steps, sig = ctrl_stop_signal();
    *stop = (sig || (c->stop_at > 0 && done >= c->stop_at)) && done != total;
    if (!*stop && !(c->save_every > 0 && done % c->save_every == 0 && done != total)) return 0;
    char path[4400] = "";
    if (t->run.dir[0] && lamo_ckpt_save(t, 0, path, sizeof path, err)) return -1;
    if (!*stop) return 0;
    r->stopped = 1;
    const char *how = sig ? "a signal" : "--stop_at";
    if (!path[0])
        fprintf(stderr, "lamo: stopped (%s) after step %d of %d; no --output_dir, no checkpoint\n",
                how, done, total);
    else if (ctrl_dist_writer())
        fprintf(stderr,
                "lamo: stopped (%s) after step %d of %d; checkpoint %s written (--resume goes on "
                "from it)\n",
                how, done, total, path);
    return sig ? rlhf_fail(err, "stopped by signal %d after step %d of %d", sig, done, total) : 0;
}

static int train_loop(lamo_run *t, ctrl_train_result *r, double t0, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    int lm_on = t->text != NULL;
    int log_every = c->log_every > 0 ? c->log_every : 100;
    while (t->step < c->offline_steps) {
        sample_batch(t);
        rlhf_batch lm;
        if (lm_on) sample_text(t, &lm);
        lamo_net_zero_grad(&t->net);
        model_zero_grad(t->m);
        double la, ll, lr;
        // this step's dropout masks: a function of (--seed, step) and of each token's
        // index in the whole batch, so --resume draws the same ones with no state of
        // their own to save, and MPI ranks together draw one process's
        t->net.drop.on = 1;
        t->net.drop.seed = dropout_key(dropout_key(c->seed, (uint64_t)t->step + 1), 1);
        int rc = loss_grad(t, lm_on ? &lm : NULL, &la, &ll, err);
        t->net.drop.on = 0;
        if (rc) return -1;
        double gn = opt_step(t, t->step, &lr);
        if (!isfinite(gn)) {
            char where[64];
            snprintf(where, sizeof where, "lamo step %d", t->step + 1);
            return ctrl_nonfinite_fail(err, where);
        }
        t->sum_act += la, t->sum_lm += ll, t->n_acc++;
        int done = ++t->step, last = done == c->offline_steps, stop;
        if (done % log_every == 0 || last) log_train(t, gn, lr, t0);
        if (last || (c->eval_every > 0 && done % c->eval_every == 0))
            if (eval_at(t, done, r, t0, err)) return -1;
        if (run_check(&t->run, err)) return -1; // metrics.jsonl could not be written: stop
        if (maybe_save(t, r, &stop, err)) return -1;
        if (stop) return 0;
    }
    return 0;
}

static int write_summary(lamo_run *t, const ctrl_train_result *r, double secs, rlhf_err *err) {
    char buf[6144], score[64];
    if (isnan(r->final_score))
        snprintf(score, sizeof score, "null");
    else
        snprintf(score, sizeof score, "%.6g", r->final_score);
    snprintf(buf, sizeof buf,
             "{\"algo\": \"lamo\", \"env\": \"%s\", \"model\": \"%s\", \"pretrained\": %d, "
             "\"lora_r\": %d, \"lm_loss\": %d, \"lm_coeff\": %.6g, \"K\": %d, "
             "\"updates\": %d, \"trainable_lm_params\": %zu, \"net_params\": %ld, "
             "\"target_return\": %.6g, \"eval_return_mean\": %.6g, \"eval_return_std\": %.6g, "
             "\"normalized_score\": %s, \"seconds\": %.3f, \"checkpoint\": \"%s\"}\n",
             t->c->env, t->c->lamo_model, t->a->lamo_pretrained, t->a->lamo_lora_r,
             t->text != NULL, t->a->lamo_lm_coeff, t->K, t->step, model_n_trainable(t->m),
             t->net.n_params, t->target, r->final_mean, r->final_std, score, secs,
             r->final_checkpoint);
    return run_summary(&t->run, buf, err);
}

// --output_dir as the control trainer's (ctrl_prepare_run_dir: an earlier run
// refused unless --resume or --overwrite_output_dir; --resume's newest complete
// checkpoint into t->resume_from); no folder: nothing is written
static int prepare_dir(lamo_run *t, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    if (c->output_dir && *c->output_dir)
        return ctrl_prepare_run_dir(c, 1, t->resume_from, sizeof t->resume_from, err);
    if (c->resume) return rlhf_fail(err, "lamo: --resume needs the run's --output_dir");
    return 0;
}

// the final checkpoint and summary.json (rank 0 writes them)
static int finish(lamo_run *t, ctrl_train_result *r, double t0, rlhf_err *err) {
    if (!t->run.dir[0]) return 0;
    if (lamo_ckpt_save(t, 1, r->final_checkpoint, sizeof r->final_checkpoint, err)) return -1;
    return ctrl_dist_writer() ? write_summary(t, r, time_now() - t0, err) : 0;
}

int ctrl_lamo_train(const ctrl_train_config *c, ctrl_train_result *res, rlhf_err *err) {
    ctrl_train_result local;
    ctrl_train_result *r = res ? res : &local;
    memset(r, 0, sizeof *r);
    double t0 = time_now();
    lamo_run t;
    memset(&t, 0, sizeof t);
    t.c = c, t.a = &c->algo_cfg;
    int rc = prepare_dir(&t, err) || setup(&t, err) ? -1 : 0;
    int quiet = c->quiet || !ctrl_dist_writer();
    if (!rc && !quiet)
        fprintf(stderr,
                "lamo: %s (%s, %zu trainable LM floats, net %ld), %ld rows, K %d, target return "
                "%.1f, LM loss %s\n",
                c->lamo_model, t.a->lamo_pretrained ? "pre-trained" : "fresh init",
                model_n_trainable(t.m), t.net.n_params, t.data.n, t.K, t.target,
                t.text ? "on" : "off");
    ctrl_stop_signals sigs;
    ctrl_stop_signals_catch(&sigs);
    if (!rc) rc = train_loop(&t, r, t0, err);
    ctrl_stop_signals_restore(&sigs);
    if (!rc && !r->stopped) rc = finish(&t, r, t0, err);
    if (!rc && !quiet && !r->stopped)
        fprintf(stderr,
                "ctrl train: lamo on %s: return %.2f ± %.2f, normalized score %.1f (%.1f s)%s%s\n",
                c->env, r->final_mean, r->final_std, r->final_score, time_now() - t0,
                r->final_checkpoint[0] ? "; " : "", r->final_checkpoint);
    lamo_run_free(&t);
    if (!res) ctrl_train_result_free(&local);
    return rc;
}
