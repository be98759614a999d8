// train/rm: the reward-model loop. A batch of n pairs is 2n rows through the
// model in one pass (chosen rows 0..n-1, rejected rows n..2n-1); the score heads
// read each row's last real token.
#include "train/rm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "io/file.h"
#include "reward/reward_model.h"
#include "train/run.h"

void rm_default_config(rm_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/rm";
    c->base.learning_rate = 1e-4f;
    c->base.num_train_epochs = 1;
    c->ensemble_size = 1;
    c->ensemble_trunks = "shared";
}

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

typedef struct {
    double loss, acc, margin;
    long pairs;
} rm_stats;

// scores a preference batch: s (2n, K) -> stats; fills ds (2n, K) with d(loss)/d(score)
// scaled by 1/total_pairs when ds != NULL
static void rm_loss(const float *s, int n, int K, const ds_dataset *data, const ds_batch *b,
                    float cc, long total_pairs, float *dsc, rm_stats *st) {
    for (int i = 0; i < n; i++) {
        double margin = 0;
        const ds_example *e = &data->ex[b->example[i]];
        if (!isnan(e->margin)) margin = e->margin;
        for (int k = 0; k < K; k++) {
            double sc = s[(size_t)i * K + k], sr = s[(size_t)(n + i) * K + k];
            double d = sc - sr - margin;
            st->loss += softplus(-d) / K + cc * (sc + sr) * (sc + sr) / K;
            st->acc += (sc > sr) / (double)K;
            st->margin += (sc - sr) / K;
            if (dsc) {
                double g = -sigmoid(-d) / ((double)total_pairs * K);
                double gc = 2.0 * cc * (sc + sr) / ((double)total_pairs * K);
                dsc[(size_t)i * K + k] = (float)(g + gc);
                dsc[(size_t)(n + i) * K + k] = (float)(-g + gc);
            }
        }
    }
    st->pairs += n;
}

// accuracy of the ensemble mean (and mean member variance) on a tokenized set
static int rm_eval(rlhf_model *m, const ds_dataset *ds, int bs, double *acc, double *var,
                   double *member_acc, rlhf_err *err) {
    ds_batch b = {0};
    int K = m->cfg.score_head, *idx = xmalloc((size_t)bs * sizeof(int));
    double a = 0, v = 0, ma = 0;
    long n_pairs = 0;
    int rc = 0;
    for (int s = 0; s < ds->n && rc == 0; s += bs) {
        int n = ds->n - s < bs ? ds->n - s : bs;
        for (int j = 0; j < n; j++) idx[j] = s + j;
        if (ds_make_batch(ds, idx, n, NULL, &b, err)) {
            rc = -1;
            break;
        }
        rlhf_batch view = b.view;
        view.targets = NULL;
        if (model_forward(m, &view, err)) {
            rc = -1;
            break;
        }
        for (int i = 0; i < n; i++) {
            double mc = 0, mr = 0;
            for (int k = 0; k < K; k++) {
                double sc = m->score[(size_t)i * K + k], sr = m->score[(size_t)(n + i) * K + k];
                mc += sc / K, mr += sr / K;
                ma += (sc > sr) / (double)K;
            }
            for (int k = 0; k < K; k++) {
                double sc = m->score[(size_t)i * K + k];
                v += (sc - mc) * (sc - mc) / K;
            }
            a += mc > mr;
        }
        n_pairs += n;
    }
    free(idx);
    ds_batch_free(&b);
    *acc = n_pairs ? a / n_pairs : NAN;
    *var = n_pairs ? v / n_pairs : NAN;
    *member_acc = n_pairs ? ma / n_pairs : NAN;
    return rc;
}

static void log_json(run_dir *r, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    run_log(r, s);
    free(s);
}

// one trunk with K heads
static int rm_train_one(const rm_config *rc_, const train_config *c, int K, double *final_acc,
                        rlhf_err *err) {
    int rc = -1;
    rlhf_model *base = NULL, *m = NULL;
    rlhf_tokenizer *tok = NULL;
    ds_dataset *train = NULL, *eval = NULL;
    rlhf_optim *o = NULL;
    ds_batch *mb = NULL;
    train_walk walk = {0};
    float *dsc = NULL;
    size_t dcap = 0;
    run_dir run = {0};
    char resume_from[4400] = "";
    if (run_prepare(c, NULL, resume_from, sizeof resume_from, err)) goto done;
    if (model_load_any(resume_from[0] ? resume_from : c->model, c->seed, &base, err)) goto done;
    if (base->cfg.score_head == K) {
        m = base;
        base = NULL;
    } else if (model_with_heads(base, K, base->cfg.value_head, c->seed, &m, err)) {
        goto done;
    }
    if (model_tokenizer(m, c->tokenizer, &tok, err)) goto done;
    train_remember_tokenizer(c, m);
    int max_len = train_max_length(c, m);
    if (train_load_data(c, tok, max_len, 1u << DS_PREFERENCE, &train, &eval, err)) goto done;
    int units = train->n;
    int total = train_total_steps(c, units, err);
    if (total < 0) goto done;
    if (!(o = train_make_optim(c, m->n_params, total, err))) goto done;
    rlhf_rng rng;
    rng_seed(&rng, c->seed);
    if (resume_from[0] && checkpoint_load_optim(resume_from, o, &rng, err)) goto done;
    if (run_open(&run, c->output_dir, c->config_json, resume_from[0] ? o->step : -1, err)) goto done;
    train_walk_init(&walk, train, c->seed);
    mb = xcalloc(c->gradient_accumulation_steps, sizeof *mb);
    progress pb;
    progress_start(&pb, "rm", total, c->logging_steps);
    double t0 = time_now();
    rm_stats win = {0};
    int win_steps = 0;
    double eval_acc = NAN, eval_var = NAN, member_acc = NAN;
    for (int step = o->step; step < total; step++) {
        long pairs = 0;
        if (train_step_batches(c, &walk, step, mb, &pairs, err)) goto done;
        model_zero_grad(m);
        rm_stats st = {0};
        double ntok = 0;
        for (int k = 0; k < c->gradient_accumulation_steps; k++) {
            ds_batch *b = &mb[k];
            rlhf_batch view = b->view;
            view.targets = NULL;
            if (model_forward(m, &view, err)) goto done;
            size_t need = (size_t)b->B * K;
            if (need > dcap) {
                dsc = xrealloc(dsc, need * sizeof(float));
                dcap = need;
            }
            rm_loss(m->score, b->n_pairs, K, train, b, rc_->center_rewards_coefficient, pairs, dsc,
                    &st);
            model_backward(m, NULL, NULL, dsc, NULL);
            for (int i = 0; i < b->B * b->T; i++) ntok += b->mask[i];
        }
        if (!isfinite(st.loss)) {
            rlhf_fail(err, "step %d: loss is not finite; stopping (checkpoints already written "
                           "are kept)",
                      step + 1);
            goto done;
        }
        float lr = lr_at_step(&o->cfg, o->step);
        float gn = optim_step(o, m);
        win.loss += st.loss / st.pairs, win.acc += st.acc / st.pairs,
            win.margin += st.margin / st.pairs;
        win_steps++;
        int done_steps = step + 1;
        if (done_steps % c->logging_steps == 0 || done_steps == total) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done_steps);
            cJSON_AddNumberToObject(j, "epoch", train_epoch_at(c, units, done_steps));
            cJSON_AddNumberToObject(j, "loss", win.loss / win_steps);
            cJSON_AddNumberToObject(j, "accuracy", win.acc / win_steps);
            cJSON_AddNumberToObject(j, "margin", win.margin / win_steps);
            cJSON_AddNumberToObject(j, "learning_rate", lr);
            cJSON_AddNumberToObject(j, "grad_norm", gn);
            log_json(&run, j);
            memset(&win, 0, sizeof win);
            win_steps = 0;
        }
        if (eval && ((c->eval_steps > 0 && done_steps % c->eval_steps == 0) || done_steps == total)) {
            if (rm_eval(m, eval, c->batch_size, &eval_acc, &eval_var, &member_acc, err)) goto done;
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done_steps);
            cJSON_AddNumberToObject(j, "eval_accuracy", eval_acc);
            if (K > 1) {
                cJSON_AddNumberToObject(j, "eval_member_accuracy", member_acc);
                cJSON_AddNumberToObject(j, "eval_ensemble_variance", eval_var);
            }
            log_json(&run, j);
        }
        if (c->save_steps > 0 && done_steps % c->save_steps == 0 && done_steps != total) {
            char path[4400];
            run_checkpoint_path(&run, done_steps, path, sizeof path);
            if (checkpoint_save(path, m, o, &rng, err)) goto done;
        }
        if (!c->quiet) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f acc %.3f", st.loss / st.pairs,
                     st.acc / st.pairs);
            progress_update(&pb, done_steps, extra, ntok);
        }
    }
    if (!c->quiet) progress_end(&pb);
    char path[4400];
    run_checkpoint_path(&run, -1, path, sizeof path);
    if (checkpoint_save(path, m, o, &rng, err)) goto done;
    {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "command", "rm");
        cJSON_AddNumberToObject(s, "steps", o->step);
        cJSON_AddNumberToObject(s, "ensemble_size", K);
        if (eval) cJSON_AddNumberToObject(s, "eval_accuracy", eval_acc);
        if (eval && K > 1) cJSON_AddNumberToObject(s, "eval_ensemble_variance", eval_var);
        cJSON_AddNumberToObject(s, "seconds", time_now() - t0);
        cJSON_AddStringToObject(s, "model", path);
        char *js = cJSON_Print(s);
        cJSON_Delete(s);
        int r2 = run_summary(&run, js, err);
        free(js);
        if (r2) goto done;
    }
    if (final_acc) *final_acc = eval_acc;
    if (!c->quiet && eval)
        fprintf(stderr, "rm: eval accuracy %.4f, model in %s\n", eval_acc, path);
    rc = 0;
done:
    train_walk_free(&walk);
    free(dsc);
    if (mb)
        for (int k = 0; k < c->gradient_accumulation_steps; k++) ds_batch_free(&mb[k]);
    free(mb);
    run_close(&run);
    optim_free(o);
    ds_free(train);
    ds_free(eval);
    tok_free(tok);
    model_free(m);
    model_free(base);
    return rc;
}

int rm_train(const rm_config *c, rlhf_err *err) {
    int K = c->ensemble_size > 0 ? c->ensemble_size : 1;
    if (strcmp(c->ensemble_trunks, "shared") && strcmp(c->ensemble_trunks, "separate"))
        return rlhf_fail(err, "--ensemble_trunks must be shared or separate (got \"%s\")",
                         c->ensemble_trunks);
    if (K == 1 || !strcmp(c->ensemble_trunks, "shared"))
        return rm_train_one(c, &c->base, K, NULL, err);
    // K separate trunks: K runs with seeds seed, seed+1, ... and a manifest
    if (make_dirs(c->base.output_dir, err)) return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "members");
    for (int k = 0; k < K; k++) {
        train_config mc = c->base;
        char dir[2200], rel[64];
        snprintf(rel, sizeof rel, "member-%d", k);
        snprintf(dir, sizeof dir, "%s/%s", c->base.output_dir, rel);
        mc.output_dir = dir;
        mc.seed = c->base.seed + (uint64_t)k;
        if (!c->base.quiet) fprintf(stderr, "rm: ensemble member %d of %d\n", k + 1, K);
        if (rm_train_one(c, &mc, 1, NULL, err)) {
            cJSON_Delete(o);
            return rlhf_fail_ctx(err, "ensemble member %d", k);
        }
        cJSON_AddItemToArray(arr, cJSON_CreateString(rel));
    }
    char *js = cJSON_Print(o);
    cJSON_Delete(o);
    char path[2200];
    snprintf(path, sizeof path, "%s/ensemble.json", c->base.output_dir);
    int rc = atomic_write_file(path, js, strlen(js), err);
    free(js);
    return rc;
}
