// train/bon: best-of-n sampling and RAFT / SuperHF training (what and why in
// train/bon.h; the losses in docs/online_rl.md). Sampling, layout and scoring
// are the online trainers' (train/rollout, reward/sources); the update is
// SFT's next-token NLL on the kept completions, plus SuperHF's full-vocabulary
// KL prior whose gradient this file takes through the LM head itself.
#include "train/bon.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "nn/nn.h"
#include "reward/sources.h"
#include "train/complete.h"
#include "train/rollout.h"
#include "train/run.h"

void bon_default_config(bon_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/bon";
    c->base.learning_rate = 1e-5f;
    c->base.num_train_epochs = 1;
    c->base.logging_steps = 1;
    c->base.save_steps = 100;
    c->n = 8;
    c->max_new_tokens = 64;
    c->temperature = 1.0f;
    c->top_p = 1.0f;
    c->reward_timeout = 30;
    c->rm_ensemble = "mean";
    c->uwo_lambda = 0.1f;
    c->sft_steps = 1;
    c->kl_coef = 0.35f;
}

typedef struct {
    const bon_config *c;
    rlhf_model *pol, *ref;
    rlhf_tokenizer *tok;
    ds_dataset *ds;
    char **prompt_text;  // (ds->n) what the reward sources see
    reward_set rs;
    rlhf_gen_opts gen;
} bon_ctx;

static void bon_close(bon_ctx *x) {
    reward_set_free(&x->rs);
    if (x->prompt_text)
        for (int i = 0; i < x->ds->n; i++) free(x->prompt_text[i]);
    free(x->prompt_text);
    ds_free(x->ds);
    tok_free(x->tok);
    model_free(x->pol);
    model_free(x->ref);
}

// policy (model_path), tokenizer, prompts (any format with a prompt), rewards
static int bon_open(bon_ctx *x, const char *model_path, rlhf_err *err) {
    const bon_config *c = x->c;
    const train_config *tc = &c->base;
    if (reward_set_from_flags(&x->rs, c->reward, c->task, c->reward_model, c->reward_command,
                              err))
        return -1;
    if (model_load_any(model_path, tc->seed, &x->pol, err)) return -1;
    if (model_tokenizer(x->pol, tc->tokenizer, &x->tok, err)) return -1;
    train_remember_tokenizer(tc, x->pol);
    int room = x->pol->cfg.max_seq_len - c->max_new_tokens;
    if (room < 1)
        return rlhf_fail(err, "--max_new_tokens %d leaves no room for a prompt in max_seq_len %d",
                         c->max_new_tokens, x->pol->cfg.max_seq_len);
    train_config dc = *tc;
    if (dc.max_prompt_length <= 0 || dc.max_prompt_length > room) dc.max_prompt_length = room;
    dc.eval_split = 0, dc.eval_data = NULL;
    ds_dataset *eval = NULL;
    unsigned allowed = 1u << DS_PROMPT_ONLY | 1u << DS_PROMPT_COMPLETION | 1u << DS_PREFERENCE |
                       1u << DS_UNPAIRED;
    if (train_load_data(&dc, x->tok, x->pol->cfg.max_seq_len, allowed, &x->ds, &eval, err))
        return -1;
    ds_free(eval);
    x->prompt_text = xcalloc(x->ds->n, sizeof(char *));
    for (int i = 0; i < x->ds->n; i++) {
        const ds_example *e = &x->ds->ex[i];
        x->prompt_text[i] = !e->conversational && e->prompt.text
                                ? strdup(e->prompt.text)
                                : tok_decode(x->tok, x->ds->tok[i].prompt, x->ds->tok[i].n_prompt);
        if (x->ds->tok[i].n_prompt < 1)
            return rlhf_fail(err, "%s:%d: the prompt is empty", tc->data, e->line);
    }
    reward_set_opts ro;
    reward_set_opts_default(&ro);
    if (rl_ensemble_from_name(c->rm_ensemble, &ro.ensemble, err)) return -1;
    ro.uwo_lambda = c->uwo_lambda;
    ro.timeout_s = c->reward_timeout;
    if (reward_set_open(&x->rs, &ro, err)) return -1;
    x->gen = (rlhf_gen_opts){.max_new_tokens = c->max_new_tokens, .temperature = c->temperature,
                             .top_k = c->top_k, .top_p = c->top_p, .eos_id = tok_eos(x->tok),
                             .pad_id = tok_pad(x->tok) >= 0 ? tok_pad(x->tok) : 0};
    complete_stop_ids(&x->gen, x->tok); // and llama2.c's BOS
    return 0;
}

// n samples for each of the prompts ids[0..np), decoded and scored: scores (np*n)
static int sample_scored(bon_ctx *x, const int *ids, int np, rlhf_rng *rng, rollout_batch *rb,
                         float *scores, rlhf_err *err) {
    const int **pp = xmalloc((size_t)np * sizeof(int *));
    int *pl = xmalloc((size_t)np * sizeof(int));
    const char **ps = xmalloc((size_t)np * x->c->n * sizeof(char *));
    for (int j = 0; j < np; j++) pp[j] = x->ds->tok[ids[j]].prompt, pl[j] = x->ds->tok[ids[j]].n_prompt;
    rollout_opts ro = {.n_samples = x->c->n, .gen = x->gen, .batch_size = 0};
    int rc = rollout_generate(x->pol, pp, pl, np, &ro, rng, rb, err);
    if (rc == 0) {
        rollout_decode(rb, x->tok);
        for (int r = 0; r < rb->B; r++) ps[r] = x->prompt_text[ids[rb->prompt_index[r]]];
        rc = reward_set_score(&x->rs, ps, (const char *const *)rb->text, rb->B, NULL, scores, err);
    }
    free(pp), free(pl), free(ps);
    return rc;
}

// the row of each prompt's best sample (the first of equals): best (np)
static void pick_best(int np, int n, const float *scores, int *best) {
    for (int j = 0; j < np; j++) {
        int b = j * n;
        for (int k = 1; k < n; k++)
            if (scores[j * n + k] > scores[b]) b = j * n + k;
        best[j] = b;
    }
}

// one JSONL row (strings JSON-escaped, invalid UTF-8 as U+FFFD); step and
// sample < 0 are left out
static void write_row(FILE *f, int step, const char *prompt, const char *completion, float reward,
                      int sample, int best) {
    char *pj = reward_json_string(prompt, strlen(prompt));
    char *cj = reward_json_string(completion, strlen(completion));
    fprintf(f, "{");
    if (step >= 0) fprintf(f, "\"step\":%d,", step);
    fprintf(f, "\"prompt\":%s,\"completion\":%s,\"reward\":%.9g", pj, cj, reward);
    if (sample >= 0) fprintf(f, ",\"sample\":%d,\"best\":%s", sample, best ? "true" : "false");
    fprintf(f, "}\n");
    free(pj), free(cj);
}

// ------------------------------------------------------------ sampling tool --

int bon_sample(const bon_config *c, rlhf_err *err) {
    bon_ctx x = {.c = c};
    FILE *out = NULL, *all = NULL;
    rollout_batch rb = {0};
    int rc = -1, *ids = NULL, *best = NULL;
    float *scores = NULL;
    if (!c->out && !c->all_out) {
        rlhf_fail(err, "--out (the best of n per prompt) or --all_out is required");
        goto done;
    }
    if (bon_open(&x, c->base.model, err)) goto done;
    if (c->out && !(out = fopen(c->out, "w"))) {
        rlhf_fail(err, "%s: cannot open for writing", c->out);
        goto done;
    }
    if (c->all_out && !(all = fopen(c->all_out, "w"))) {
        rlhf_fail(err, "%s: cannot open for writing", c->all_out);
        goto done;
    }
    int N = c->limit > 0 && c->limit < x.ds->n ? c->limit : x.ds->n, n = c->n;
    int bs = c->base.batch_size;
    ids = xmalloc((size_t)bs * sizeof(int));
    best = xmalloc((size_t)bs * sizeof(int));
    scores = xmalloc((size_t)bs * n * sizeof(float));
    rlhf_rng rng;
    rng_seed(&rng, c->base.seed);
    double first = 0, top = 0, mean = 0, t0 = time_now();
    for (int s = 0; s < N; s += bs) {
        int np = N - s < bs ? N - s : bs;
        for (int j = 0; j < np; j++) ids[j] = s + j;
        if (sample_scored(&x, ids, np, &rng, &rb, scores, err)) goto done;
        pick_best(np, n, scores, best);
        for (int j = 0; j < np; j++) {
            const char *p = x.prompt_text[ids[j]];
            first += scores[j * n], top += scores[best[j]];
            for (int k = 0; k < n; k++) mean += scores[j * n + k];
            if (out) write_row(out, -1, p, rb.text[best[j]], scores[best[j]], -1, 0);
            if (all)
                for (int k = 0; k < n; k++)
                    write_row(all, -1, p, rb.text[j * n + k], scores[j * n + k], k, j * n + k == best[j]);
        }
        rollout_free(&rb);
    }
    first /= N, top /= N, mean /= (double)N * n;
    printf("{\"prompts\": %d, \"n\": %d, \"reward_first\": %.6g, \"reward_mean\": %.6g, "
           "\"reward_best_of_n\": %.6g, \"seconds\": %.3f}\n",
           N, n, first, mean, top, time_now() - t0);
    fprintf(stderr, "bon: %d prompts x %d samples: mean reward %.4f of the first sample, %.4f of "
                    "the best of %d%s%s\n",
            N, n, first, top, n, c->out ? " -> " : "", c->out ? c->out : "");
    rc = 0;
done:
    if (out && fclose(out) && rc == 0) rc = rlhf_fail(err, "%s: write failed", c->out);
    if (all && fclose(all) && rc == 0) rc = rlhf_fail(err, "%s: write failed", c->all_out);
    rollout_free(&rb);
    free(ids), free(best), free(scores);
    bon_close(&x);
    return rc;
}

// ----------------------------------------------------------------- training --

// SuperHF's prior on the rows of the last forwards of pol and ref (same batch):
// at every target position i (count of them: `count`), KL_i = sum_v q log(q/p)
// with p = softmax(pol logits), q = softmax(ref logits), the forward KL(ref ||
// theta) of SuperHF's KLDivLoss(log p, log q, log_target=True). The loss
// beta/count * sum_i KL_i has d/dlogits = beta/count * (p - q); it goes back
// as dhidden = dlogits @ W_lm (out, (N,C)) and straight into the LM head's
// gradient (dlogits^T @ hidden). Returns sum_i KL_i.
static double superhf_kl(rlhf_model *pol, rlhf_model *ref, const int *targets, float beta,
                         double count, float *dhidden) {
    int N = pol->B * pol->T, V = pol->cfg.vocab_size, C = pol->cfg.n_embd;
    float *lp = xmalloc((size_t)N * V * sizeof(float)), *lq = xmalloc((size_t)N * V * sizeof(float));
    model_logits(pol, lp);
    model_logits(ref, lq);
    double kl = 0;
    for (int i = 0; i < N; i++) {
        float *a = lp + (size_t)i * V, *b = lq + (size_t)i * V;
        if (targets[i] < 0) {
            memset(a, 0, (size_t)V * sizeof(float));
            continue;
        }
        double ma = -INFINITY, mb = -INFINITY, za = 0, zb = 0;
        for (int v = 0; v < V; v++) ma = a[v] > ma ? a[v] : ma, mb = b[v] > mb ? b[v] : mb;
        for (int v = 0; v < V; v++) za += exp(a[v] - ma), zb += exp(b[v] - mb);
        double la = ma + log(za), lb = mb + log(zb), k = 0;
        for (int v = 0; v < V; v++) {
            double lpv = a[v] - la, lqv = b[v] - lb, q = exp(lqv);
            k += q * (lqv - lpv);
            a[v] = (float)(beta / count * (exp(lpv) - q));  // a becomes dlogits
        }
        kl += k > 0 ? k : 0;
    }
    model_alloc_grads(pol);
    gemm(0, 0, N, C, V, 1.0f, lp, V, pol->w.lm_head, C, 0.0f, dhidden, C);
    gemm(1, 0, V, C, N, 1.0f, lp, V, pol->hidden, C, 1.0f, pol->g.lm_head, C);
    free(lp), free(lq);
    return kl;
}

typedef struct {
    double nll, kl_vocab, grad_norm;
    int tokens;
} sft_stats;

// c->sft_steps optimizer steps on rows keep[0..nk) of rb: mean NLL over their
// completion tokens (+ SuperHF's prior when superhf)
static int sft_on_kept(bon_ctx *x, rlhf_optim *o, const rollout_batch *rb, const int *keep, int nk,
                       int superhf, sft_stats *st, rlhf_err *err) {
    const bon_config *c = x->c;
    int micro = c->micro_batch_size > 0 && c->micro_batch_size < nk ? c->micro_batch_size : nk;
    int T = rb->T;
    double count = 0;
    for (int j = 0; j < nk; j++)
        for (int t = 0; t < T; t++) count += rb->targets[(size_t)keep[j] * T + t] >= 0;
    if (count == 0) return 0;
    rollout_rows rows = {0};
    float *dlogp = xmalloc((size_t)micro * T * sizeof(float));
    float *dh = superhf ? xmalloc((size_t)micro * T * x->pol->cfg.n_embd * sizeof(float)) : NULL;
    int rc = 0;
    for (int step = 0; step < c->sft_steps && rc == 0; step++) {
        model_zero_grad(x->pol);
        double nll = 0, kl = 0;
        for (int s = 0; s < nk && rc == 0; s += micro) {
            int u = nk - s < micro ? nk - s : micro;
            rollout_gather(rb, keep + s, u, &rows);
            if ((rc = model_forward(x->pol, &rows.view, err))) break;
            for (int i = 0; i < u * T; i++) {
                int on = rows.targets[i] >= 0;
                if (on) nll -= x->pol->logp[i];
                dlogp[i] = on ? (float)(-1.0 / count) : 0.0f;
            }
            if (superhf) {
                if ((rc = model_forward(x->ref, &rows.view, err))) break;
                kl += superhf_kl(x->pol, x->ref, rows.targets, c->kl_coef, count, dh);
            }
            model_backward(x->pol, dlogp, dh, NULL, NULL);
        }
        if (rc) break;
        nll /= count, kl /= count;
        if (!isfinite(nll + kl)) {
            rc = rlhf_fail(err, "the loss is %g; stopping (checkpoints already written are kept; "
                                "try a lower --learning_rate)",
                           nll + c->kl_coef * kl);
            break;
        }
        st->grad_norm = optim_step(o, x->pol);
        st->nll = nll, st->kl_vocab = kl;
    }
    st->tokens = (int)count;
    rollout_rows_free(&rows);
    free(dlogp), free(dh);
    return rc;
}

static void log_json(run_dir *run, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    run_log(run, s);
    free(s);
}

int bon_train(const bon_config *c, rlhf_err *err) {
    const train_config *tc = &c->base;
    bon_ctx x = {.c = c};
    rlhf_optim *o = NULL;
    run_dir run = {0};
    rollout_batch rb = {0};
    FILE *samples = NULL;
    int rc = -1, *ids = NULL, *order = NULL, *best = NULL;
    float *scores = NULL, *logp = NULL, *ref_logp = NULL;
    char resume_from[4400] = "";
    int superhf = !strcmp(c->train, "superhf");
    if (!superhf && strcmp(c->train, "raft")) {
        rlhf_fail(err, "--train must be raft or superhf (got \"%s\")", c->train);
        goto done;
    }
    if (run_prepare(tc, NULL, resume_from, sizeof resume_from, err)) goto done;
    if (bon_open(&x, resume_from[0] ? resume_from : tc->model, err)) goto done;
    const char *rp = c->ref_model ? c->ref_model : tc->model;
    if (model_load_any(rp, tc->seed, &x.ref, err)) goto done;
    if (x.ref->cfg.vocab_size != x.pol->cfg.vocab_size) {
        rlhf_fail(err, "--ref_model %s has a vocabulary of %d, the policy %d", rp,
                  x.ref->cfg.vocab_size, x.pol->cfg.vocab_size);
        goto done;
    }
    int bs = tc->batch_size, n = c->n, B = bs * n;
    int total = tc->max_steps > 0 ? tc->max_steps : tc->num_train_epochs * ((x.ds->n + bs - 1) / bs);
    if (total <= 0) {
        rlhf_fail(err, "nothing to train: set --max_steps or --num_train_epochs");
        goto done;
    }
    if (!(o = train_make_optim(tc, x.pol->n_params, total * c->sft_steps, err))) goto done;
    rlhf_rng rng;
    rng_seed(&rng, tc->seed);
    int start = 0;
    if (resume_from[0]) {
        if (checkpoint_load_optim(resume_from, o, &rng, err)) goto done;
        start = o->step / c->sft_steps;
        if (!tc->quiet) fprintf(stderr, "%s: resuming from %s (iteration %d)\n", c->train, resume_from, start);
    }
    if (run_open(&run, tc->output_dir, tc->config_json, resume_from[0] ? start : -1, err)) goto done;
    {
        char sp[2200];
        snprintf(sp, sizeof sp, "%s/samples.jsonl", run.dir);
        samples = fopen(sp, resume_from[0] ? "a" : "w");
    }
    ids = xmalloc((size_t)bs * sizeof(int));
    best = xmalloc((size_t)bs * sizeof(int));
    order = xmalloc((size_t)x.ds->n * sizeof(int));
    scores = xmalloc((size_t)B * sizeof(float));
    int order_epoch = -1;
    progress pb;
    progress_start(&pb, c->train, total, tc->logging_steps);
    double t_start = time_now(), first_reward = NAN, last_reward = NAN, last_kept = NAN;
    for (int it = start; it < total; it++) {
        rlhf_rng irng;  // this iteration's sampling stream depends only on (seed, iteration)
        rng_seed(&irng, tc->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(it + 1)));
        for (int j = 0; j < bs; j++) {  // units [it*bs, (it+1)*bs) of the seeded epoch orders
            long u = (long)it * bs + j;
            int epoch = (int)(u / x.ds->n);
            if (epoch != order_epoch) ds_epoch_order(x.ds->n, tc->seed, epoch, order), order_epoch = epoch;
            ids[j] = order[u % x.ds->n];
        }
        double t0 = time_now();
        if (sample_scored(&x, ids, bs, &irng, &rb, scores, err)) {
            rlhf_fail_ctx(err, "iteration %d: sampling or scoring failed; stopping (checkpoints "
                               "already written are kept)",
                          it + 1);
            goto done;
        }
        pick_best(bs, n, scores, best);
        // KL(pi || ref) of the samples (they are drawn from pi): sum over tokens of
        // log pi - log pi_ref, mean over all samples and over the kept ones
        size_t BT = (size_t)rb.B * rb.T;
        logp = xrealloc(logp, BT * sizeof(float));
        ref_logp = xrealloc(ref_logp, BT * sizeof(float));
        if (rollout_forward(x.pol, &rb, 64, logp, NULL, NULL, err) ||
            rollout_forward(x.ref, &rb, 64, ref_logp, NULL, NULL, err))
            goto done;
        double kl = 0, kl_kept = 0, r_all = 0, r_kept = 0, r_first = 0, len = 0;
        for (int r = 0; r < rb.B; r++) {
            double s = 0;
            for (int t = 0; t < rb.T; t++) s += logp[(size_t)r * rb.T + t] - ref_logp[(size_t)r * rb.T + t];
            kl += s, r_all += scores[r], len += rb.length[r];
            if (r % n == 0) r_first += scores[r];
        }
        for (int j = 0; j < bs; j++) {
            double s = 0;
            for (int t = 0; t < rb.T; t++)
                s += logp[(size_t)best[j] * rb.T + t] - ref_logp[(size_t)best[j] * rb.T + t];
            kl_kept += s, r_kept += scores[best[j]];
        }
        kl /= rb.B, r_all /= rb.B, r_first /= bs, kl_kept /= bs, r_kept /= bs, len /= rb.B;
        double t1 = time_now();
        sft_stats st = {0};
        if (sft_on_kept(&x, o, &rb, best, bs, superhf, &st, err)) {
            rlhf_fail_ctx(err, "iteration %d", it + 1);
            goto done;
        }
        double t2 = time_now();
        int done_it = it + 1;
        if (isnan(first_reward)) first_reward = r_all;
        last_reward = r_all, last_kept = r_kept;
        if (done_it % tc->logging_steps == 0 || done_it == total) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done_it);
            cJSON_AddNumberToObject(j, "epoch", (double)done_it * bs / x.ds->n);
            cJSON_AddNumberToObject(j, "reward", r_all);
            cJSON_AddNumberToObject(j, "reward_kept", r_kept);
            cJSON_AddNumberToObject(j, "reward_first", r_first);
            cJSON_AddNumberToObject(j, "kl", kl);
            cJSON_AddNumberToObject(j, "kl_kept", kl_kept);
            cJSON_AddNumberToObject(j, "nll", st.nll);
            if (superhf) {
                cJSON_AddNumberToObject(j, "kl_vocab", st.kl_vocab);
                cJSON_AddNumberToObject(j, "loss", st.nll + c->kl_coef * st.kl_vocab);
            } else {
                cJSON_AddNumberToObject(j, "loss", st.nll);
            }
            cJSON_AddNumberToObject(j, "kept_tokens", st.tokens);
            cJSON_AddNumberToObject(j, "completion_length", len);
            cJSON_AddNumberToObject(j, "grad_norm", st.grad_norm);
            cJSON_AddNumberToObject(j, "learning_rate", lr_at_step(&o->cfg, o->step > 0 ? o->step - 1 : 0));
            cJSON_AddNumberToObject(j, "time/sample", t1 - t0);
            cJSON_AddNumberToObject(j, "time/update", t2 - t1);
            log_json(&run, j);
        }
        for (int j = 0; samples && j < bs && j < 4; j++) {  // the first kept samples
            write_row(samples, done_it, x.prompt_text[ids[j]], rb.text[best[j]], scores[best[j]],
                      -1, 0);
        }
        if (samples) fflush(samples);
        if (tc->save_steps > 0 && done_it % tc->save_steps == 0 && done_it != total) {
            char path[4400];
            run_checkpoint_path(&run, done_it, path, sizeof path);
            if (checkpoint_save(path, x.pol, o, &rng, err)) goto done;
        }
        if (!tc->quiet) {
            char extra[128];
            snprintf(extra, sizeof extra, "reward %.3f kept %.3f kl %.3f", r_all, r_kept, kl);
            progress_update(&pb, done_it, extra, (double)st.tokens);
        }
        rollout_free(&rb);
    }
    if (!tc->quiet) progress_end(&pb);
    {
        char path[4400];
        run_checkpoint_path(&run, -1, path, sizeof path);
        if (checkpoint_save(path, x.pol, o, &rng, err)) goto done;
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "command", c->train);
        cJSON_AddNumberToObject(s, "iterations", total);
        cJSON_AddNumberToObject(s, "optimizer_steps", o->step);
        if (isfinite(first_reward)) cJSON_AddNumberToObject(s, "reward_first", first_reward);
        if (isfinite(last_reward)) cJSON_AddNumberToObject(s, "reward", last_reward);
        if (isfinite(last_kept)) cJSON_AddNumberToObject(s, "reward_kept", last_kept);
        cJSON_AddNumberToObject(s, "seconds", time_now() - t_start);
        cJSON_AddStringToObject(s, "model", path);
        char *js = cJSON_Print(s);
        cJSON_Delete(s);
        int r2 = run_summary(&run, js, err);
        free(js);
        if (r2) goto done;
        if (!tc->quiet)
            fprintf(stderr, "%s: %d iterations, reward %.4f (kept %.4f), model in %s\n", c->train,
                    total, last_reward, last_kept, path);
    }
    rc = 0;
done:
    rollout_free(&rb);
    if (samples) fclose(samples);
    run_close(&run);
    optim_free(o);
    free(ids), free(best), free(order), free(scores), free(logp), free(ref_logp);
    bon_close(&x);
    return rc;
}
