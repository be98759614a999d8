// train/online: the online RL loop (PPO, GRPO, RLOO, REINFORCE++, ReMax by
// --adv_estimator). The stages are in train/rollout (sampling and layout),
// reward/sources (scoring) and algo/rl (every formula); this file wires them
// together, runs the epochs over mini-batches, logs and checkpoints. The
// iteration is described in train/online.h; defaults and metric names in
// docs/online_rl.md ("Trainer").
#include "train/online.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "io/file.h"
#include "reward/sources.h"
#include "train/complete.h"
#include "train/rollout.h"
#include "train/run.h"

int online_default_config(online_config *c, const char *algo, rlhf_err *err) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    int grpo = !strcmp(algo, "grpo"), rloo = !strcmp(algo, "rloo"), ppo = !strcmp(algo, "ppo");
    int dpo = !strcmp(algo, "online-dpo");
    if (!grpo && !rloo && !ppo && !dpo)
        return rlhf_fail(err, "unknown online algorithm \"%s\"", algo);
    c->algo = algo;
    c->base.output_dir = grpo ? "runs/grpo" : rloo ? "runs/rloo" : ppo ? "runs/ppo" : "runs/online-dpo";
    c->base.learning_rate = dpo ? 5e-7f : 1e-6f;
    c->base.num_train_epochs = 1;
    c->base.logging_steps = 1;
    c->base.save_steps = 100;
    c->num_generations = grpo ? 8 : rloo || dpo ? 4 : 1;
    c->max_new_tokens = 64;
    c->temperature = 1.0f;
    c->top_p = 1.0f;
    c->reward_timeout = 30;
    c->rm_ensemble = "mean";
    c->uwo_lambda = 0.1f;
    c->par_k = 1.0f;
    c->adv_estimator = grpo || dpo ? "grpo" : rloo ? "rloo" : "gae";
    c->scale_rewards = "group";
    c->loss_agg_mode = "token-mean";
    c->importance_sampling_level = "token";
    c->kl_estimator = grpo ? "k3" : "k1";
    c->kl_in = grpo ? "loss" : "reward";
    c->filter = "none";
    c->filter_power = 2;
    c->macro_action = "none";
    c->gamma = 1.0f;
    c->lam = 0.95f;
    c->adv_eps = 1e-6f;
    c->whiten_advantages = 1;
    c->epsilon = 0.2f;
    c->epsilon_high = -1;  // = epsilon
    c->beta = grpo ? 0.04f : dpo ? 0.0f : 0.05f;
    c->kl_horizon = 10000;
    c->value_head = ppo;
    c->vf_coef = 0.1f;
    c->cliprange_value = 0.2f;
    c->num_iterations = ppo ? 4 : 1;
    c->log_samples = 4;
    c->loss_type = "sigmoid";
    pref_options_default(&c->pref);
    c->pairs = "max_min";
    return 0;
}

// ------------------------------------------------------------------ context --

typedef struct {
    const online_config *c;
    rlhf_model *pol, *ref;
    rlhf_tokenizer *tok;
    ds_dataset *ds;
    char **prompt_text;       // (ds->n)
    int *rollin;              // (batch_size) DR-PO roll-in tokens appended to each prompt
    int **rollin_buf;         // (batch_size) prompt + roll-in tokens
    reward_set rs;
    reward_penalties pen;
    rl_adv_config adv;
    rl_policy_config pc;
    rl_kl_kind kl_kind;
    rl_filter filter;
    rl_kl_ctl kl;
    int kl_in_loss, use_values, use_baselines, use_ref, n, mini, micro;
    int dpo;                  // online DPO instead of the policy-gradient update
    pref_loss_list losses;
    int *chosen, *rejected;   // online DPO pairs
    rlhf_gen_opts gen;
    // per-iteration arrays, (B,T) unless noted
    float *old_logp, *ref_logp, *old_values, *token_rewards, *adv_v, *ret, *train_mask;
    float *scores, *per_source, *baselines, *weights; // (B), (B,S), (B), (B)
    // mini-batch scratch
    rollout_rows rows;
    float *m_mask, *m_old, *m_ref, *m_adv, *m_ret, *m_oldv, *dlogp, *dv;
    size_t cap_bt, cap_mb;
} online_ctx;

typedef struct {
    double pg_loss, kl_loss, kl_token, v_loss, vf_clipfrac, clip_frac, clip_frac_lower;
    double approx_kl, ppo_kl, ratio_max, ratio_min, grad_norm;
    double ent_sum, ent_tokens;
    int updates;
} update_stats;

static void grow(float **p, size_t n) { *p = xrealloc(*p, (n ? n : 1) * sizeof(float)); }

// the text a reward source sees for prompt i
static char *prompt_text_of(const ds_dataset *ds, int i, const rlhf_tokenizer *tok) {
    const ds_example *e = &ds->ex[i];
    if (!e->conversational && e->prompt.text) return strdup(e->prompt.text);
    return tok_decode(tok, ds->tok[i].prompt, ds->tok[i].n_prompt);
}

// which dataset rows iteration `it` uses: units [it*bs, (it+1)*bs) of the
// seeded epoch orders
static void pick_prompts(const online_ctx *x, int it, int *order, int *order_epoch, int *out) {
    int N = x->ds->n, bs = x->c->base.batch_size;
    for (int j = 0; j < bs; j++) {
        long u = (long)it * bs + j;
        int epoch = (int)(u / N);
        if (epoch != *order_epoch) {
            ds_epoch_order(N, x->c->base.seed, epoch, order);
            *order_epoch = epoch;
        }
        out[j] = order[u % N];
    }
}

// DR-PO dataset reset (Chang et al. 2024): with probability reset_prob, prompt
// j of the batch rolls in on the first h ~ U{1..|y*|-1} tokens of its reference
// completion y* (a final EOS not counted): pp[j]/pl[j] become prompt + y*[0..h),
// so the rollout treats the roll-in as prompt — the policy completes it and only
// the generated tokens carry targets (the loss mask). h is capped so the prompt
// keeps room for max_new_tokens. x->rollin[j] = h (0: no reset).
static void dataset_reset(online_ctx *x, const int *ids, int bs, int room, int eos, rlhf_rng *rng,
                          int **pp, int *pl) {
    for (int j = 0; j < bs; j++) {
        x->rollin[j] = 0;
        const ds_tokens *t = &x->ds->tok[ids[j]];
        int ny = t->n_completion[0];
        if (ny > 0 && t->completion[0][ny - 1] == eos) ny--;
        if (x->c->reset_prob <= 0 || ny < 2 || rng_uniform(rng) >= x->c->reset_prob) continue;
        int h = 1 + (int)(rng_u64(rng) % (uint64_t)(ny - 1));
        if (h > room - pl[j]) h = room - pl[j];
        if (h < 1) continue;
        x->rollin_buf[j] = xrealloc(x->rollin_buf[j], (size_t)(pl[j] + h) * sizeof(int));
        memcpy(x->rollin_buf[j], pp[j], (size_t)pl[j] * sizeof(int));
        memcpy(x->rollin_buf[j] + pl[j], t->completion[0], (size_t)h * sizeof(int));
        pp[j] = x->rollin_buf[j], pl[j] += h, x->rollin[j] = h;
    }
}

// decodes, scores with the reward set; totals (B) and per-source (B,S)
static int score_batch(online_ctx *x, rollout_batch *rb, const int *prompt_ids, float *total,
                       float *per_source, rlhf_err *err) {
    rollout_decode(rb, x->tok);
    for (int r = 0; r < rb->B; r++) {  // DR-PO: the judge sees roll-in + generated tokens
        int h = x->rollin ? x->rollin[rb->prompt_index[r]] : 0;
        if (h == 0) continue;
        free(rb->text[r]);
        const int *row = rb->tokens + (size_t)r * rb->T;  // continues the original prompt
        rb->text[r] = tok_decode_next(x->tok, rb->P - h > 0 ? row[rb->P - h - 1] : -1,
                                      row + rb->P - h, h + rb->length[r] - (rb->ended_eos[r] ? 1 : 0),
                                      0, NULL);
    }
    const char **ps = xmalloc((size_t)rb->B * sizeof(char *));
    for (int r = 0; r < rb->B; r++) ps[r] = x->prompt_text[prompt_ids[rb->prompt_index[r]]];
    int rc = reward_set_score(&x->rs, ps, (const char *const *)rb->text, rb->B, per_source, total,
                              err);
    free(ps);
    return rc;
}

// scores of extra samples for each prompt of the batch (greedy for ReMax,
// the reference's for PAR): out (n_prompts * k)
static int side_scores(online_ctx *x, rlhf_model *m, const int *const *prompts, const int *plen,
                       int n_prompts, const int *prompt_ids, int k, float temperature,
                       int penalties, rlhf_rng *rng, float *out, rlhf_err *err) {
    rollout_opts ro = {.n_samples = k, .gen = x->gen, .batch_size = x->c->generation_batch_size};
    ro.gen.temperature = temperature;
    rollout_batch rb;
    if (rollout_generate(m, prompts, plen, n_prompts, &ro, rng, &rb, err)) return -1;
    int rc = score_batch(x, &rb, prompt_ids, out, NULL, err);
    if (rc == 0 && penalties) reward_apply_penalties(&x->pen, rb.B, rb.length, rb.ended_eos, out);
    rollout_free(&rb);
    return rc;
}

// -------------------------------------------------------------- the update --

// the share of a mini-batch's loss that a micro-batch holds, for the
// aggregation mode (token-mean: tokens; the sequence modes: sequences)
static double micro_weight(rl_agg agg, const float *mask, int u, int T, double tok_mini,
                           double seq_mini) {
    double tok = 0, seq = 0;
    for (int r = 0; r < u; r++) {
        double k = 0;
        for (int t = 0; t < T; t++) k += mask[(size_t)r * T + t] != 0;
        tok += k;
        seq += k > 0;
    }
    if (agg == RL_AGG_TOKEN_MEAN) return tok_mini > 0 ? tok / tok_mini : 0;
    return seq_mini > 0 ? seq / seq_mini : 0;
}

static int update(online_ctx *x, const rollout_batch *rb, rlhf_optim *o, rlhf_rng *rng,
                  update_stats *st, rlhf_err *err) {
    const online_config *c = x->c;
    int n = x->n, T = rb->T, n_prompts = rb->n_prompts;
    int mini = x->mini < n_prompts ? x->mini : n_prompts;
    int mini_rows = mini * n, micro = x->micro > 0 && x->micro < mini_rows ? x->micro : mini_rows;
    size_t need = (size_t)micro * T;
    if (need > x->cap_mb) {
        float **bufs[] = {&x->m_mask, &x->m_old, &x->m_ref, &x->m_adv, &x->m_ret, &x->m_oldv,
                          &x->dlogp, &x->dv};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) grow(bufs[i], need);
        x->cap_mb = need;
    }
    int *perm = xmalloc((size_t)n_prompts * sizeof(int));
    int *idx = xmalloc((size_t)mini_rows * sizeof(int));
    rlhf_model *m = x->pol;
    int rc = 0;
    for (int epoch = 0; epoch < c->num_iterations && rc == 0; epoch++) {
        for (int i = 0; i < n_prompts; i++) perm[i] = i;
        if (epoch > 0 || mini < n_prompts)  // shuffle groups between mini-batches
            for (int i = n_prompts - 1; i > 0; i--) {
                int j = (int)(rng_u64(rng) % (uint64_t)(i + 1)), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
        for (int p0 = 0; p0 < n_prompts && rc == 0; p0 += mini) {
            int np = n_prompts - p0 < mini ? n_prompts - p0 : mini, rows = np * n;
            for (int i = 0; i < np; i++)
                for (int j = 0; j < n; j++) idx[i * n + j] = perm[p0 + i] * n + j;
            double tok_mini = 0, seq_mini = 0;
            for (int i = 0; i < rows; i++) {
                double k = 0;
                for (int t = 0; t < T; t++) k += x->train_mask[(size_t)idx[i] * T + t] != 0;
                tok_mini += k, seq_mini += k > 0;
            }
            if (tok_mini == 0) continue;
            model_zero_grad(m);
            double pg = 0, klv = 0, klt = 0, vl = 0, vcf = 0, cf = 0, cfl = 0, ak = 0, pk = 0;
            double rmax = 0, rmin = INFINITY;
            for (int s = 0; s < rows && rc == 0; s += micro) {
                int u = rows - s < micro ? rows - s : micro;
                size_t UT = (size_t)u * T;
                rollout_gather(rb, idx + s, u, &x->rows);
                rollout_gather_f(x->train_mask, T, idx + s, u, x->m_mask);
                rollout_gather_f(x->old_logp, T, idx + s, u, x->m_old);
                rollout_gather_f(x->adv_v, T, idx + s, u, x->m_adv);
                if (x->use_ref) rollout_gather_f(x->ref_logp, T, idx + s, u, x->m_ref);
                if (x->use_values) {
                    rollout_gather_f(x->ret, T, idx + s, u, x->m_ret);
                    rollout_gather_f(x->old_values, T, idx + s, u, x->m_oldv);
                }
                double w = micro_weight(x->pc.agg, x->m_mask, u, T, tok_mini, seq_mini);
                if (w == 0) continue;
                m->want_entropy = 1;
                rc = model_forward(m, &x->rows.view, err);
                m->want_entropy = 0;
                if (rc) break;
                memset(x->dlogp, 0, UT * sizeof(float));
                rl_policy_stats ps;
                if ((rc = rl_policy_loss(&x->pc, u, T, m->logp, x->m_old, x->m_adv, x->m_mask,
                                         x->dlogp, &ps, err)))
                    break;
                pg += w * ps.loss, cf += w * ps.clip_frac, cfl += w * ps.clip_frac_lower;
                ak += w * ps.kl_k3, pk += w * ps.kl_k1;
                if (ps.ratio_max > rmax) rmax = ps.ratio_max;
                if (ps.ratio_min < rmin) rmin = ps.ratio_min;
                if (x->kl_in_loss && x->use_ref) {
                    float mean_kl = 0;
                    klv += w * rl_kl_loss(x->kl_kind, x->pc.agg, x->pc.norm_len, x->kl.value, u, T,
                                          m->logp, x->m_ref, x->m_mask, x->dlogp, &mean_kl);
                    klt += w * mean_kl;
                }
                for (size_t i = 0; i < UT; i++) x->dlogp[i] *= (float)w;
                if (x->use_values) {
                    memset(x->dv, 0, UT * sizeof(float));
                    rl_value_stats vs;
                    rl_value_loss(u, T, c->cliprange_value, x->pc.agg, x->pc.norm_len, m->values,
                                  x->m_oldv, x->m_ret, x->m_mask, x->dv, &vs);
                    vl += w * vs.loss, vcf += w * vs.clip_frac;
                    for (size_t i = 0; i < UT; i++) x->dv[i] *= (float)(w * c->vf_coef);
                }
                for (size_t i = 0; i < UT; i++)
                    if (x->m_mask[i] != 0) st->ent_sum += m->entropy[i], st->ent_tokens++;
                model_backward(m, x->dlogp, NULL, NULL, x->use_values ? x->dv : NULL);
            }
            if (rc) break;
            double loss = pg + klv + c->vf_coef * vl;
            if (!isfinite(loss)) {
                rc = rlhf_fail(err, "the loss is %g (policy %g, KL %g, value %g); stopping "
                                    "(checkpoints already written are kept; try a lower "
                                    "--learning_rate)",
                               loss, pg, klv, vl);
                break;
            }
            st->grad_norm += optim_step(o, m);
            st->pg_loss += pg, st->kl_loss += klv, st->kl_token += klt, st->v_loss += vl;
            st->vf_clipfrac += vcf, st->clip_frac += cf, st->clip_frac_lower += cfl;
            st->approx_kl += ak, st->ppo_kl += pk;
            if (rmax > st->ratio_max) st->ratio_max = rmax;
            if (rmin < st->ratio_min) st->ratio_min = rmin;
            st->updates++;
        }
    }
    free(perm);
    free(idx);
    return rc;
}

// ------------------------------------------------------------------ logging --

static double mean_of(const float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

static double std_of(const float *v, int n) {
    if (n < 2) return 0;
    double m = mean_of(v, n), s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

static void log_line(run_dir *run, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    run_log(run, s);
    free(s);
}

static void log_samples(FILE *f, const online_ctx *x, const rollout_batch *rb, const int *ids,
                        int it) {
    if (!f || x->c->log_samples <= 0) return;
    int step = rb->n_samples, k = 0;  // one sample per prompt first, then the rest
    for (int pass = 0; pass < rb->n_samples && k < x->c->log_samples; pass++)
        for (int r = pass; r < rb->B && k < x->c->log_samples; r += step, k++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", it);
            // valid JSON even for byte soup: invalid UTF-8 becomes U+FFFD
            const char *pt = x->prompt_text[ids[rb->prompt_index[r]]];
            char *pj = reward_json_string(pt, strlen(pt));
            char *cj = reward_json_string(rb->text[r], strlen(rb->text[r]));
            cJSON_AddRawToObject(j, "prompt", pj);
            cJSON_AddRawToObject(j, "completion", cj);
            free(pj);
            free(cj);
            cJSON_AddNumberToObject(j, "reward", x->scores[r]);
            for (int s = 0; s < x->rs.n; s++) {
                char key[128];
                snprintf(key, sizeof key, "rewards/%s", x->rs.src[s].name);
                cJSON_AddNumberToObject(j, key, x->per_source[(size_t)r * x->rs.n + s]);
            }
            cJSON_AddNumberToObject(j, "length", rb->length[r]);
            if (x->c->reset_prob > 0) cJSON_AddNumberToObject(j, "rollin_tokens", x->rollin[rb->prompt_index[r]]);
            cJSON_AddBoolToObject(j, "ended_eos", rb->ended_eos[r]);
            char *s = cJSON_PrintUnformatted(j);
            cJSON_Delete(j);
            fprintf(f, "%s\n", s);
            free(s);
        }
    fflush(f);
}

// what a checkpoint holds beyond the policy and optimizer: the moving reference
// of iterative DPO (ref/) and the iteration and KL coefficient
// (online_state.json), written into the checkpoint's temp folder so the whole
// folder appears at once
typedef struct {
    const online_ctx *x;
    int it;
} state_extra;

static int save_extra(const char *tmp, void *ctx, rlhf_err *err) {
    const state_extra *se = ctx;
    const online_ctx *x = se->x;
    char sp[4600], js[200];
    if (x->dpo && x->c->ref_update_steps > 0 && x->ref) {  // iterative DPO: the moving reference
        snprintf(sp, sizeof sp, "%s/ref", tmp);
        if (checkpoint_save(sp, x->ref, NULL, NULL, err)) return -1;
    }
    snprintf(sp, sizeof sp, "%s/online_state.json", tmp);
    snprintf(js, sizeof js, "{\"iteration\": %d, \"kl_coef\": %.9g}\n", se->it, x->kl.value);
    return atomic_write_file(sp, js, strlen(js), err);
}

static int save_state(const run_dir *run, int it, const online_ctx *x, rlhf_optim *o,
                      rlhf_rng *rng, int final, char *path, size_t n, rlhf_err *err) {
    run_checkpoint_path(run, final ? -1 : it, path, n);
    state_extra se = {.x = x, .it = it};
    return checkpoint_save_with(path, x->pol, o, rng, save_extra, &se, err);
}

// online_state.json of a checkpoint: the iteration (0 .. total) and KL coefficient
static int load_state(const char *ckpt, int total, int *it, online_ctx *x, rlhf_err *err) {
    char sp[4600];
    snprintf(sp, sizeof sp, "%s/online_state.json", ckpt);
    char *text = read_file(sp, NULL, err);
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "iteration");
    cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "kl_coef");
    int rc = 0;
    if (!cJSON_IsNumber(a) || a->valuedouble != floor(a->valuedouble) || a->valuedouble < 0 ||
        a->valuedouble > total)
        rc = rlhf_fail(err, "%s: \"iteration\" must be a whole number in 0 .. %d (this run's "
                            "iterations)",
                       sp, total);
    else if (!cJSON_IsNumber(b) || !isfinite(b->valuedouble) || b->valuedouble < 0)
        rc = rlhf_fail(err, "%s: \"kl_coef\" must be a finite number >= 0", sp);
    else {
        *it = (int)a->valuedouble;
        x->kl.value = (float)b->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

// ---------------------------------------------------------------- settings --

static int setup(online_ctx *x, rlhf_err *err) {
    const online_config *c = x->c;
    if (!rl_adv_find(c->adv_estimator))
        return rl_adv_compute(c->adv_estimator, NULL, NULL, NULL, NULL, err);
    rl_adv_config_default(&x->adv);
    x->adv.gamma = c->gamma;
    x->adv.lambda = c->lam;
    x->adv.eps = c->adv_eps;
    x->adv.whiten = c->whiten_advantages;
    x->adv.group_size = c->num_generations;
    if (rl_scale_from_name(c->scale_rewards, &x->adv.scale, err)) return -1;
    if (rl_macro_parse(c->macro_action, &x->adv.macro_n, err)) return -1;
    rl_policy_config_default(&x->pc);
    x->pc.clip_low = c->epsilon;
    x->pc.clip_high = c->epsilon_high >= 0 ? c->epsilon_high : c->epsilon;
    x->pc.clip_c = c->dual_clip;
    x->pc.norm_len = (float)c->max_new_tokens;
    if (c->dual_clip != 0 && c->dual_clip <= 1)
        return rlhf_fail(err, "--dual_clip must be > 1 (verl uses 3), or 0 for off");
    if (rl_policy_lookup(c->importance_sampling_level, &x->pc.variant, err))
        return rlhf_fail_ctx(err, "--importance_sampling_level");
    if (rl_agg_from_name(c->loss_agg_mode, &x->pc.agg, err)) return -1;
    if (rl_kl_from_name(c->kl_estimator, &x->kl_kind, err)) return -1;
    if (!strcmp(c->kl_in, "loss")) x->kl_in_loss = 1;
    else if (strcmp(c->kl_in, "reward"))
        return rlhf_fail(err, "--kl_in must be reward (a per-token penalty in the reward, as PPO "
                              "and RLOO) or loss (GRPO)");
    if (rl_filter_from_name(c->filter, &x->filter, err)) return -1;
    if (c->kl_target > 0) rl_kl_ctl_adaptive(&x->kl, c->beta, c->kl_target, c->kl_horizon);
    else rl_kl_ctl_fixed(&x->kl, c->beta);
    const rl_adv_def *est = rl_adv_find(c->adv_estimator);
    x->dpo = !strcmp(c->algo, "online-dpo");
    if (x->dpo) {
        if (pref_parse(&x->losses, c->loss_type, c->loss_weights, err)) return -1;
        for (int i = 0; i < x->losses.n; i++) {
            const pref_loss_def *d = x->losses.def[i];
            if (d->kind != PREF_KIND_PAIRED || (d->needs & ~ONLINE_DPO_INPUTS)) {
                char names[600];
                pref_loss_names(names, sizeof names, PREF_KIND_PAIRED, ONLINE_DPO_INPUTS);
                return rlhf_fail(err, "--loss_type %s: online DPO takes paired losses on summed "
                                      "log-probs (%s)",
                                 d->name, names);
            }
        }
        if (c->pref.ld_alpha >= 0) return rlhf_fail(err, "--ld_alpha is not supported online");
        if (c->num_generations < 2)
            return rlhf_fail(err, "online DPO pairs samples of one prompt: set "
                                  "--num_generations 2 or more");
        x->use_ref = !c->pref.reference_free;
        est = rl_adv_find("grpo");
    }
    x->use_values = rl_adv_needs(est, RL_NEED_VALUES) && !x->dpo;
    x->use_baselines = rl_adv_needs(est, RL_NEED_BASELINES);
    if (x->use_values && !c->value_head)
        return rlhf_fail(err, "--adv_estimator %s needs a value model: add --value_head",
                         c->adv_estimator);
    if (c->value_head && !x->use_values)
        fprintf(stderr, "note: --value_head is unused with --adv_estimator %s\n", c->adv_estimator);
    if (rl_adv_needs(est, RL_NEED_GROUPS) && c->num_generations < 2)
        return rlhf_fail(err, "--adv_estimator %s compares samples of one prompt: set "
                              "--num_generations 2 or more",
                         c->adv_estimator);
    if (x->filter != RL_FILTER_NONE && c->num_generations < 2)
        return rlhf_fail(err, "--filter %s picks among the samples of a prompt: set "
                              "--num_generations 2 or more",
                         c->filter);
    x->use_ref = x->use_ref || c->beta > 0 || c->par_samples > 0;
    x->n = c->num_generations;
    x->mini = c->mini_batch_size > 0 ? c->mini_batch_size : c->base.batch_size;
    x->micro = c->micro_batch_size;
    // rewards
    if (reward_set_from_flags(&x->rs, c->reward, c->task, c->reward_model, c->reward_command,
                              err))
        return -1;
    x->pen = (reward_penalties){.length_penalty = c->length_penalty,
                                .missing_eos_penalty = c->missing_eos_penalty,
                                .overlong_max = c->overlong_buffer_len > 0 ? c->max_new_tokens : 0,
                                .overlong_buffer = c->overlong_buffer_len};
    return 0;
}

static int open_rewards(online_ctx *x, rlhf_err *err) {
    reward_set_opts ro;
    reward_set_opts_default(&ro);
    if (rl_ensemble_from_name(x->c->rm_ensemble, &ro.ensemble, err)) return -1;
    ro.uwo_lambda = x->c->uwo_lambda;
    ro.timeout_s = x->c->reward_timeout;
    return reward_set_open(&x->rs, &ro, err);
}

// ------------------------------------------------------------------ the loop --

int online_train(const online_config *c, rlhf_err *err) {
    const train_config *tc = &c->base;
    int rc = -1;
    online_ctx x = {.c = c};
    rlhf_optim *o = NULL;
    run_dir run = {0};
    FILE *samples = NULL;
    int *order = NULL, *ids = NULL, **pp = NULL, *pl = NULL;
    rollout_batch rb = {0};
    char resume_from[4400] = "";
    x.kl.value = c->beta;
    if (setup(&x, err)) goto done;
    // a checkpoint to resume from holds online_state.json, and for iterative DPO ref/
    const char *extra[] = {"online_state.json", NULL, NULL, NULL};
    if (x.dpo && c->ref_update_steps > 0 && x.use_ref)
        extra[1] = "ref/config.json", extra[2] = "ref/model.safetensors";
    if (run_prepare(tc, extra, resume_from, sizeof resume_from, err)) goto done;
    if (model_load_any(resume_from[0] ? resume_from : tc->model, tc->seed, &x.pol, err)) goto done;
    if (x.use_values && !x.pol->cfg.value_head) {  // PPO: a value head on the policy
        rlhf_model *with;
        if (model_with_heads(x.pol, x.pol->cfg.score_head, 1, tc->seed, &with, err)) goto done;
        model_free(x.pol);
        x.pol = with;
    }
    if (model_tokenizer(x.pol, tc->tokenizer, &x.tok, err)) goto done;
    train_remember_tokenizer(tc, x.pol);
    if (x.use_ref) {
        const char *rp = c->ref_model ? c->ref_model : tc->model;
        if (model_load_any(rp, tc->seed, &x.ref, err)) goto done;
        if (x.dpo && c->ref_update_steps > 0 && x.ref->n_params != x.pol->n_params) {
            rlhf_fail(err, "--ref_update_steps copies the policy into the reference: %s must "
                           "have the policy's architecture",
                      rp);
            goto done;
        }
        if (x.ref->cfg.vocab_size != x.pol->cfg.vocab_size) {
            rlhf_fail(err, "--ref_model %s has a vocabulary of %d, the policy %d", rp,
                      x.ref->cfg.vocab_size, x.pol->cfg.vocab_size);
            goto done;
        }
    }
    // prompts: any format with a prompt; prompts keep room for the completion
    int room = x.pol->cfg.max_seq_len - c->max_new_tokens;
    if (room < 1) {
        rlhf_fail(err, "--max_new_tokens %d leaves no room for a prompt in max_seq_len %d",
                  c->max_new_tokens, x.pol->cfg.max_seq_len);
        goto done;
    }
    train_config dc = *tc;
    if (dc.max_prompt_length <= 0 || dc.max_prompt_length > room) dc.max_prompt_length = room;
    ds_dataset *eval = NULL;
    dc.eval_split = 0, dc.eval_data = NULL;
    unsigned allowed = 1u << DS_PROMPT_ONLY | 1u << DS_PROMPT_COMPLETION | 1u << DS_PREFERENCE |
                       1u << DS_UNPAIRED;
    if (train_load_data(&dc, x.tok, x.pol->cfg.max_seq_len, allowed, &x.ds, &eval, err)) goto done;
    ds_free(eval);
    x.prompt_text = xcalloc(x.ds->n, sizeof(char *));
    for (int i = 0; i < x.ds->n; i++) {
        x.prompt_text[i] = prompt_text_of(x.ds, i, x.tok);
        if (x.ds->tok[i].n_prompt < 1) {
            rlhf_fail(err, "%s:%d: the prompt is empty (generation needs at least one token)",
                      tc->data, x.ds->ex[i].line);
            goto done;
        }
    }
    if (open_rewards(&x, err)) goto done;
    int eos = tok_eos(x.tok);
    x.gen = (rlhf_gen_opts){.max_new_tokens = c->max_new_tokens, .temperature = c->temperature,
                            .top_k = c->top_k, .top_p = c->top_p, .eos_id = eos,
                            .pad_id = tok_pad(x.tok) >= 0 ? tok_pad(x.tok) : 0};
    complete_stop_ids(&x.gen, x.tok); // and llama2.c's BOS

    int bs = tc->batch_size, n = x.n, B = bs * n;
    int total = tc->max_steps > 0 ? tc->max_steps
                                  : tc->num_train_epochs * ((x.ds->n + bs - 1) / bs);
    int n_mini = (bs + x.mini - 1) / x.mini, per_iter = c->num_iterations * n_mini;
    if (total <= 0) {
        rlhf_fail(err, "nothing to train: set --max_steps or --num_train_epochs");
        goto done;
    }
    if (!(o = train_make_optim(tc, x.pol->n_params, total * per_iter, err))) goto done;
    rlhf_rng rng;
    rng_seed(&rng, tc->seed);
    int start = 0;
    if (resume_from[0]) {
        if (checkpoint_load_optim(resume_from, o, &rng, err)) goto done;
        if (load_state(resume_from, total, &start, &x, err)) goto done;
        if (x.dpo && c->ref_update_steps > 0 && x.ref) {  // required: run_prepare checked it
            char rp[4600];
            rlhf_model *r2;
            snprintf(rp, sizeof rp, "%s/ref", resume_from);
            if (checkpoint_load(rp, &r2, err)) goto done;
            if (r2->n_params != x.pol->n_params) {
                rlhf_fail(err, "%s: the saved reference does not have the policy's architecture",
                          rp);
                model_free(r2);
                goto done;
            }
            model_free(x.ref);
            x.ref = r2;
        }
        if (!tc->quiet)
            fprintf(stderr, "%s: resuming from %s (iteration %d)\n", c->algo, resume_from, start);
    }
    if (run_open(&run, tc->output_dir, tc->config_json, resume_from[0] ? start : -1, err)) goto done;
    {
        char sp[2200];
        snprintf(sp, sizeof sp, "%s/samples.jsonl", run.dir);
        samples = fopen(sp, resume_from[0] ? "a" : "w");
    }
    order = xmalloc((size_t)x.ds->n * sizeof(int));
    ids = xmalloc((size_t)bs * sizeof(int));
    pp = xmalloc((size_t)bs * sizeof(int *));
    pl = xmalloc((size_t)bs * sizeof(int));
    int order_epoch = -1, S = x.rs.n;
    grow(&x.scores, B), grow(&x.per_source, (size_t)B * S), grow(&x.baselines, B);
    grow(&x.weights, B);
    x.chosen = xmalloc((size_t)B * n * sizeof(int));
    x.rollin = xcalloc(bs, sizeof(int));
    x.rollin_buf = xcalloc(bs, sizeof(int *));
    if (c->reset_prob > 0 && x.ds->format != DS_PROMPT_COMPLETION && !tc->quiet)
        fprintf(stderr, "note: --reset_prob needs reference completions (prompt+completion "
                        "data); %s has none, so no prompt is reset\n", tc->data);
    x.rejected = xmalloc((size_t)B * n * sizeof(int));
    progress pb;
    progress_start(&pb, c->algo, total, tc->logging_steps);
    double t_start = time_now(), first_reward = NAN, last_reward = NAN, last_kl = NAN;
    int par_m = c->par_samples;
    for (int it = start; it < total; it++) {
        rlhf_rng irng;  // this iteration's stream: sampling, shuffling, filters
        rng_seed(&irng, tc->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(it + 1)));
        pick_prompts(&x, it, order, &order_epoch, ids);
        for (int j = 0; j < bs; j++) pp[j] = x.ds->tok[ids[j]].prompt, pl[j] = x.ds->tok[ids[j]].n_prompt;
        if (c->reset_prob > 0) dataset_reset(&x, ids, bs, room, eos, &irng, pp, pl);
        // ROLLOUT
        double t0 = time_now();
        rollout_opts ro = {.n_samples = n, .gen = x.gen, .batch_size = c->generation_batch_size};
        if (rollout_generate(x.pol, (const int *const *)pp, pl, bs, &ro, &irng, &rb, err)) goto done;
        int T = rb.T;
        size_t BT = (size_t)B * T;
        if (BT > x.cap_bt) {
            float **bufs[] = {&x.old_logp, &x.ref_logp, &x.old_values, &x.token_rewards,
                              &x.adv_v, &x.ret, &x.train_mask};
            for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) grow(bufs[i], BT);
            x.cap_bt = BT;
        }
        // SCORE
        double t1 = time_now();
        if (score_batch(&x, &rb, ids, x.scores, x.per_source, err)) {
            rlhf_fail_ctx(err, "iteration %d: scoring failed; stopping (checkpoints already "
                               "written are kept, none is written now)",
                          it + 1);
            goto done;
        }
        if (par_m > 0) {
            float *refs = xmalloc((size_t)bs * par_m * sizeof(float));
            int r2 = side_scores(&x, x.ref, (const int *const *)pp, pl, bs, ids, par_m,
                                 c->temperature, 0, &irng, refs, err);
            if (r2 == 0) reward_par(bs, n, x.scores, par_m, refs, c->par_k);
            free(refs);
            if (r2) {
                rlhf_fail_ctx(err, "iteration %d: PAR reference samples", it + 1);
                goto done;
            }
        }
        reward_apply_penalties(&x.pen, B, rb.length, rb.ended_eos, x.scores);
        if (x.use_baselines) {  // remax: the greedy sample's reward is the baseline
            float *g = xmalloc((size_t)bs * sizeof(float));
            int r2 = side_scores(&x, x.pol, (const int *const *)pp, pl, bs, ids, 1, 0.0f, 1,
                                 &irng, g, err);
            for (int r = 0; r < B && r2 == 0; r++) x.baselines[r] = g[r / n];
            free(g);
            if (r2) {
                rlhf_fail_ctx(err, "iteration %d: ReMax greedy baseline", it + 1);
                goto done;
            }
        }
        // old log-probs (and values) under the rollout weights; the reference's
        double t2 = time_now();
        // (no gradient here: rows in chunks of 64 unless --micro_batch_size says otherwise)
        int chunk = x.micro > 0 ? x.micro : 64;
        if (rollout_forward(x.pol, &rb, chunk, x.old_logp, x.use_values ? x.old_values : NULL,
                            NULL, err))
            goto done;
        if (!x.use_values) memset(x.old_values, 0, BT * sizeof(float));
        if (x.use_ref && rollout_forward(x.ref, &rb, chunk, x.ref_logp, NULL, NULL, err)) goto done;
        double logp_diff = 0, kl_seq = 0, kl_tok = 0;
        for (int r = 0; r < B; r++) {
            double s = 0, k = 0;
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)r * T + t;
                if (rb.mask[i] == 0) continue;
                double d = fabs((double)x.old_logp[i] - rb.sample_logp[i]);
                if (d > logp_diff) logp_diff = d;
                if (x.use_ref) s += x.old_logp[i] - x.ref_logp[i], k++;
            }
            kl_seq += s, kl_tok += k > 0 ? s / k : 0;
        }
        kl_seq /= B, kl_tok /= B;
        double t3 = time_now();
        update_stats us = {.ratio_min = INFINITY};
        pref_metrics pm = {0};
        int n_pairs = 0;
        float ev = NAN;
        if (x.dpo) {
            n_pairs = online_dpo_pairs(c->pairs, bs, n, x.scores, x.chosen, x.rejected, err);
            if (n_pairs < 0) goto done;
            for (int e = 0; e < c->num_iterations; e++) {
                float gn = 0;
                if (e > 0 && rollout_forward(x.pol, &rb, chunk, x.old_logp, NULL, NULL, err))
                    goto done;
                if (online_dpo_update(x.pol, o, &rb, x.old_logp, x.use_ref ? x.ref_logp : NULL,
                                      x.chosen, x.rejected, n_pairs, &x.losses, &c->pref, x.micro,
                                      &pm, &gn, err)) {
                    rlhf_fail_ctx(err, "iteration %d", it + 1);
                    goto done;
                }
                us.grad_norm += gn, us.updates += n_pairs > 0;
            }
            if (c->ref_update_steps > 0 && x.ref && (it + 1) % c->ref_update_steps == 0)
                memcpy(x.ref->params, x.pol->params, x.pol->n_params * sizeof(float));
        } else {
            // token rewards, advantages, filter
            memset(x.token_rewards, 0, BT * sizeof(float));
            rl_add_outcome_rewards(B, T, x.scores, rb.mask, x.token_rewards);
            if (!x.kl_in_loss && x.use_ref && c->beta > 0)
                kl_tok = rl_kl_in_reward(x.kl_kind, B, T, x.kl.value, x.old_logp, x.ref_logp, rb.mask,
                                         x.token_rewards);
            rl_adv_input in = {.B = B, .T = T, .token_rewards = x.token_rewards,
                               .values = x.old_values, .mask = rb.mask, .baselines = x.baselines};
            if (rl_adv_compute(c->adv_estimator, &x.adv, &in, x.adv_v, x.ret, err)) goto done;
            memcpy(x.train_mask, rb.mask, BT * sizeof(float));
            if (x.filter != RL_FILTER_NONE) {
                if (rl_filter_weights(x.filter, B, n, x.scores, c->filter_power, &irng, x.weights, err))
                    goto done;
                rl_apply_seq_weights(B, T, x.weights, x.train_mask, x.adv_v);
            }
            if (x.use_values) ev = rl_explained_variance(BT, x.old_values, x.ret, rb.mask);
            if (update(&x, &rb, o, &irng, &us, err)) {
                rlhf_fail_ctx(err, "iteration %d", it + 1);
                goto done;
            }
        }
        double t4 = time_now();
        if (x.use_ref && c->beta > 0) rl_kl_ctl_update(&x.kl, (float)kl_tok, B);
        // metrics
        int done_it = it + 1;
        double rmean = mean_of(x.scores, B), len_sum = 0, trunc = 0, ntok = 0;
        int len_min = 1 << 30, len_max = 0;
        for (int r = 0; r < B; r++) {
            len_sum += rb.length[r];
            trunc += !rb.ended_eos[r];
            if (rb.length[r] < len_min) len_min = rb.length[r];
            if (rb.length[r] > len_max) len_max = rb.length[r];
            ntok += rb.length[r] + rb.prompt_len[r];
        }
        if (isnan(first_reward)) first_reward = rmean;
        last_reward = rmean, last_kl = kl_seq;
        if (done_it % tc->logging_steps == 0 || done_it == total) {
            double u = us.updates ? us.updates : 1;
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done_it);
            cJSON_AddNumberToObject(j, "epoch", (double)done_it * bs / x.ds->n);
            cJSON_AddNumberToObject(j, "reward", rmean);
            cJSON_AddNumberToObject(j, "reward_std", std_of(x.scores, B));
            for (int s = 0; s < S; s++) {
                char key[128];
                double sm = 0;
                for (int r = 0; r < B; r++) sm += x.per_source[(size_t)r * S + s];
                snprintf(key, sizeof key, "rewards/%s", x.rs.src[s].name);
                cJSON_AddNumberToObject(j, key, sm / B);
            }
            if (x.use_ref) {
                cJSON_AddNumberToObject(j, "kl", kl_seq);
                cJSON_AddNumberToObject(j, "kl_token", kl_tok);
                if (!x.dpo) cJSON_AddNumberToObject(j, "kl_coef", x.kl.value);
                if (x.kl_in_loss) cJSON_AddNumberToObject(j, "kl_loss", us.kl_loss / u);
            }
            if (x.dpo) cJSON_AddNumberToObject(j, "pairs", n_pairs);
            if (x.dpo && n_pairs > 0) {  // TRL's names; the last epoch's pairs
                cJSON_AddNumberToObject(j, "loss", pm.loss);
                cJSON_AddNumberToObject(j, "rewards/chosen", pm.rewards_chosen);
                cJSON_AddNumberToObject(j, "rewards/rejected", pm.rewards_rejected);
                cJSON_AddNumberToObject(j, "rewards/accuracies", pm.rewards_accuracies);
                cJSON_AddNumberToObject(j, "rewards/margins", pm.rewards_margins);
                cJSON_AddNumberToObject(j, "logps/chosen", pm.logps_chosen);
                cJSON_AddNumberToObject(j, "logps/rejected", pm.logps_rejected);
                double gap = 0;
                for (int k = 0; k < n_pairs; k++) gap += x.scores[x.chosen[k]] - x.scores[x.rejected[k]];
                cJSON_AddNumberToObject(j, "score_gap", n_pairs ? gap / n_pairs : 0);
            } else if (!x.dpo) {
                cJSON_AddNumberToObject(j, "entropy", us.ent_tokens ? us.ent_sum / us.ent_tokens : 0);
                cJSON_AddNumberToObject(j, "pg_loss", us.pg_loss / u);
                cJSON_AddNumberToObject(j, "clip_frac", us.clip_frac / u);
                cJSON_AddNumberToObject(j, "clip_frac_lower", us.clip_frac_lower / u);
                cJSON_AddNumberToObject(j, "approx_kl", us.approx_kl / u);
                cJSON_AddNumberToObject(j, "ppo_kl", us.ppo_kl / u);
                cJSON_AddNumberToObject(j, "ratio_max", us.updates ? us.ratio_max : 1);
                cJSON_AddNumberToObject(j, "ratio_min", us.updates ? us.ratio_min : 1);
            }
            if (x.use_values) {
                cJSON_AddNumberToObject(j, "value_loss", us.v_loss / u);
                cJSON_AddNumberToObject(j, "vf_clipfrac", us.vf_clipfrac / u);
                if (isfinite(ev)) cJSON_AddNumberToObject(j, "explained_variance", ev);
                else cJSON_AddNullToObject(j, "explained_variance");
            }
            if (c->reset_prob > 0) {  // DR-PO: roll-in tokens are prompt, never loss tokens
                double h = 0, resets = 0, loss_tokens = 0;
                for (int r = 0; r < B; r++) h += x.rollin[r / n], resets += x.rollin[r / n] > 0;
                for (size_t i = 0; i < (size_t)B * rb.T; i++) loss_tokens += rb.mask[i] != 0;
                cJSON_AddNumberToObject(j, "rollin_tokens", h / B);
                cJSON_AddNumberToObject(j, "reset_share", resets / B);
                cJSON_AddNumberToObject(j, "loss_tokens", loss_tokens / B);
            }
            cJSON_AddNumberToObject(j, "completion_length", len_sum / B);
            cJSON_AddNumberToObject(j, "completion_length_min", len_min);
            cJSON_AddNumberToObject(j, "completion_length_max", len_max);
            cJSON_AddNumberToObject(j, "truncated_share", trunc / B);
            cJSON_AddNumberToObject(j, "rollout/logp_diff_max", logp_diff);
            cJSON_AddNumberToObject(j, "grad_norm", us.grad_norm / u);
            cJSON_AddNumberToObject(j, "learning_rate", lr_at_step(&o->cfg, o->step > 0 ? o->step - 1 : 0));
            cJSON_AddNumberToObject(j, "updates", us.updates);
            cJSON_AddNumberToObject(j, "time/generate", t1 - t0);
            cJSON_AddNumberToObject(j, "time/score", t2 - t1);
            cJSON_AddNumberToObject(j, "time/logprobs", t3 - t2);
            cJSON_AddNumberToObject(j, "time/update", t4 - t3);
            log_line(&run, j);
        }
        log_samples(samples, &x, &rb, ids, done_it);
        if (tc->save_steps > 0 && done_it % tc->save_steps == 0 && done_it != total) {
            char path[4400];
            if (save_state(&run, done_it, &x, o, &rng, 0, path, sizeof path, err)) goto done;
        }
        if (!tc->quiet) {
            char extra[128];
            snprintf(extra, sizeof extra, "reward %.3f kl %.3f len %.1f", rmean, kl_seq,
                     len_sum / B);
            progress_update(&pb, done_it, extra, ntok);
        }
        rollout_free(&rb);
    }
    if (!tc->quiet) progress_end(&pb);
    {
        char path[4400];
        if (save_state(&run, total, &x, o, &rng, 1, path, sizeof path, err)) goto done;
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "command", c->algo);
        cJSON_AddStringToObject(s, "adv_estimator", c->adv_estimator);
        cJSON_AddNumberToObject(s, "iterations", total);
        cJSON_AddNumberToObject(s, "optimizer_steps", o->step);
        if (isfinite(first_reward)) cJSON_AddNumberToObject(s, "reward_first", first_reward);
        if (isfinite(last_reward)) cJSON_AddNumberToObject(s, "reward", last_reward);
        if (x.use_ref && isfinite(last_kl)) cJSON_AddNumberToObject(s, "kl", last_kl);
        cJSON_AddNumberToObject(s, "seconds", time_now() - t_start);
        cJSON_AddStringToObject(s, "model", path);
        char *js = cJSON_Print(s);
        cJSON_Delete(s);
        int r2 = run_summary(&run, js, err);
        free(js);
        if (r2) goto done;
        if (!tc->quiet)
            fprintf(stderr, "%s: %d iterations, reward %.4f, model in %s\n", c->algo, total,
                    last_reward, path);
    }
    rc = 0;
done:
    rollout_free(&rb);
    rollout_rows_free(&x.rows);
    reward_set_free(&x.rs);
    if (samples) fclose(samples);
    run_close(&run);
    optim_free(o);
    free(order), free(ids), free(pp), free(pl), free(x.chosen), free(x.rejected);
    if (x.rollin_buf)
        for (int j = 0; j < tc->batch_size; j++) free(x.rollin_buf[j]);
    free(x.rollin_buf), free(x.rollin);
    float *bufs[] = {x.old_logp, x.ref_logp, x.old_values, x.token_rewards, x.adv_v, x.ret,
                     x.train_mask, x.scores, x.per_source, x.baselines, x.weights, x.m_mask,
                     x.m_old, x.m_ref, x.m_adv, x.m_ret, x.m_oldv, x.dlogp, x.dv};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    if (x.prompt_text)
        for (int i = 0; i < x.ds->n; i++) free(x.prompt_text[i]);
    free(x.prompt_text);
    ds_free(x.ds);
    tok_free(x.tok);
    model_free(x.pol);
    model_free(x.ref);
    return rc;
}
