// train/sft: the supervised fine-tuning loop. Batches come from a TRL-format
// dataset; the loss is the mean next-token NLL over loss tokens (completion or
// assistant tokens), averaged over all micro-batches of a step so gradient
// accumulation equals one big batch. The data order depends only on (seed,
// step), so --resume continues bit-for-bit.
#include "train/sft.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "train/run.h"

void sft_default_config(sft_config *c) {
    train_default_config(c);
    c->output_dir = "runs/sft";
}

double eval_nll(rlhf_model *m, const ds_dataset *ds, int batch_size, rlhf_err *err) {
    ds_batch b = {0};
    double sum = 0;
    long count = 0;
    int *idx = xmalloc((size_t)batch_size * sizeof(int));
    for (int s = 0; s < ds->n; s += batch_size) {
        int n = ds->n - s < batch_size ? ds->n - s : batch_size;
        for (int j = 0; j < n; j++) idx[j] = s + j;
        if (ds_make_batch(ds, idx, n, NULL, &b, err) || model_forward(m, &b.view, err)) {
            sum = NAN;
            break;
        }
        for (int i = 0; i < b.B * b.T; i++)
            if (b.targets[i] >= 0) sum -= m->logp[i], count++;
    }
    free(idx);
    ds_batch_free(&b);
    return count ? sum / count : NAN;
}

typedef struct {
    const ds_dataset *ds;
    int batch, packing, T;
    int *order, order_epoch;
    int *row_start, n_rows;  // packing: where each packed row of the current epoch starts
    int row_epoch;
    uint64_t seed;
} batcher;

static void batcher_epoch(batcher *bt, int epoch) {
    if (bt->order_epoch == epoch) return;
    ds_epoch_order(bt->ds->n, bt->seed, epoch, bt->order);
    bt->order_epoch = epoch;
    if (bt->packing) {
        ds_batch tmp = {0};
        int next = 0;
        bt->n_rows = 0;
        while (next < bt->ds->n) {
            bt->row_start[bt->n_rows] = next;
            if (ds_pack_batch(bt->ds, bt->order, bt->ds->n, &next, 1, bt->T, &tmp, NULL) <= 0) break;
            bt->n_rows++;
        }
        ds_batch_free(&tmp);
    }
}

// units per epoch: examples, or packed rows
static int batcher_units(batcher *bt) {
    batcher_epoch(bt, 0);
    return bt->packing ? bt->n_rows : bt->ds->n;
}

// global micro-batch g (train_micro_batch: every unit once per epoch)
static int batcher_get(batcher *bt, long g, ds_batch *b, rlhf_err *err) {
    int epoch, i, n;
    train_micro_batch(batcher_units(bt), bt->batch, g, &epoch, &i, &n);
    batcher_epoch(bt, epoch);
    if (bt->packing) {
        int next = bt->row_start[i];
        return ds_pack_batch(bt->ds, bt->order, bt->ds->n, &next, n, bt->T, b, err) < 0 ? -1 : 0;
    }
    return ds_make_batch(bt->ds, bt->order + i, n, NULL, b, err);
}

static char *fmt_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int sft_train(const sft_config *c, rlhf_err *err) {
    int rc = -1;
    rlhf_model *m = NULL;
    rlhf_tokenizer *tok = NULL;
    ds_dataset *train = NULL, *eval = NULL;
    rlhf_optim *o = NULL;
    ds_batch *mb = NULL;
    batcher bt = {0};
    run_dir run = {0};
    char resume_from[4400] = "";
    float *dlogp = NULL;
    size_t dcap = 0;
    if (run_prepare(c, NULL, resume_from, sizeof resume_from, err)) goto done;
    if (model_load_any(resume_from[0] ? resume_from : c->model, c->seed, &m, err)) goto done;
    if (model_tokenizer(m, c->tokenizer, &tok, err)) goto done;
    train_remember_tokenizer(c, m);
    int max_len = train_max_length(c, m);
    unsigned allowed = 1u << DS_TEXT | 1u << DS_MESSAGES | 1u << DS_PROMPT_COMPLETION;
    if (train_load_data(c, tok, max_len, allowed, &train, &eval, err)) goto done;

    bt = (batcher){.ds = train, .batch = c->batch_size, .packing = c->packing, .T = max_len,
                   .order_epoch = -1, .seed = c->seed};
    bt.order = xmalloc((size_t)train->n * sizeof(int));
    bt.row_start = xmalloc((size_t)(train->n + 1) * sizeof(int));
    int units = batcher_units(&bt);
    int total = train_total_steps(c, units, err);
    if (total < 0) goto done;
    if (!(o = train_make_optim(c, m->n_params, total, err))) goto done;
    rlhf_rng rng;
    rng_seed(&rng, c->seed);
    if (resume_from[0]) {
        if (checkpoint_load_optim(resume_from, o, &rng, err)) goto done;
        fprintf(stderr, "sft: resuming from %s (step %d)\n", resume_from, o->step);
    }
    if (run_open(&run, c->output_dir, c->config_json, resume_from[0] ? o->step : -1, err)) goto done;

    mb = xcalloc(c->gradient_accumulation_steps, sizeof *mb);
    progress pb;
    progress_start(&pb, "sft", total, c->logging_steps);
    double t_start = time_now(), tokens_total = 0, last_loss = NAN, eval_loss = NAN;
    double win_loss = 0, win_tokens = 0, win_t0 = time_now();
    int win_steps = 0;
    for (int step = o->step; step < total; step++) {
        long count = 0;
        for (int k = 0; k < c->gradient_accumulation_steps; k++) {
            if (batcher_get(&bt, (long)step * c->gradient_accumulation_steps + k, &mb[k], err))
                goto done;
            for (int i = 0; i < mb[k].B * mb[k].T; i++) count += mb[k].targets[i] >= 0;
        }
        model_zero_grad(m);
        double loss = 0, ntok = 0;
        for (int k = 0; k < c->gradient_accumulation_steps; k++) {
            ds_batch *b = &mb[k];
            size_t N = (size_t)b->B * b->T;
            if (N > dcap) {
                dlogp = xrealloc(dlogp, N * sizeof(float));
                dcap = N;
            }
            if (model_forward(m, &b->view, err)) goto done;
            for (size_t i = 0; i < N; i++) {
                int t = b->targets[i] >= 0;
                if (t) loss -= m->logp[i];
                dlogp[i] = t ? -1.0f / (float)(count ? count : 1) : 0.0f;
                ntok += b->mask[i];
            }
            model_backward(m, dlogp, NULL, NULL, NULL);
        }
        loss /= count ? count : 1;
        if (!isfinite(loss)) {
            rlhf_fail(err, "step %d: loss is %g; stopping (checkpoints already written are kept; "
                           "try a lower --learning_rate)",
                      step + 1, loss);
            goto done;
        }
        float lr = lr_at_step(&o->cfg, o->step);
        float gn = optim_step(o, m);
        tokens_total += ntok;
        last_loss = loss;
        win_loss += loss, win_tokens += ntok, win_steps++;
        int done_steps = step + 1;
        if (done_steps % c->logging_steps == 0 || done_steps == total) {
            double now = time_now();
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done_steps);
            cJSON_AddNumberToObject(j, "epoch", train_epoch_at(c, units, done_steps));
            cJSON_AddNumberToObject(j, "loss", win_loss / win_steps);
            cJSON_AddNumberToObject(j, "learning_rate", lr);
            cJSON_AddNumberToObject(j, "grad_norm", gn);
            cJSON_AddNumberToObject(j, "tokens_per_s", win_tokens / (now - win_t0));
            cJSON_AddNumberToObject(j, "num_tokens", tokens_total);
            char *line = fmt_json(j);
            run_log(&run, line);
            free(line);
            win_loss = win_tokens = 0, win_steps = 0, win_t0 = now;
        }
        if (eval && c->eval_steps > 0 && done_steps % c->eval_steps == 0 && done_steps != total) {
            eval_loss = eval_nll(m, eval, c->batch_size, err);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done_steps);
            cJSON_AddNumberToObject(j, "eval_loss", eval_loss);
            char *line = fmt_json(j);
            run_log(&run, line);
            free(line);
        }
        if (c->save_steps > 0 && done_steps % c->save_steps == 0 && done_steps != total) {
            char path[4400];
            run_checkpoint_path(&run, done_steps, path, sizeof path);
            if (checkpoint_save(path, m, o, &rng, err)) goto done;
        }
        if (!c->quiet) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f lr %.2e", loss, lr);
            progress_update(&pb, done_steps, extra, ntok);
        }
    }
    if (!c->quiet) progress_end(&pb);
    {
        char path[4400];
        run_checkpoint_path(&run, -1, path, sizeof path);
        if (checkpoint_save(path, m, o, &rng, err)) goto done;
        if (eval) {
            eval_loss = eval_nll(m, eval, c->batch_size, err);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", o->step);
            cJSON_AddNumberToObject(j, "eval_loss", eval_loss);
            char *line = fmt_json(j);
            run_log(&run, line);
            free(line);
        }
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "command", "sft");
        cJSON_AddNumberToObject(s, "steps", o->step);
        cJSON_AddNumberToObject(s, "train_loss", last_loss);
        if (eval) cJSON_AddNumberToObject(s, "eval_loss", eval_loss);
        cJSON_AddNumberToObject(s, "seconds", time_now() - t_start);
        cJSON_AddNumberToObject(s, "tokens", tokens_total);
        cJSON_AddStringToObject(s, "model", path);
        char *js = cJSON_Print(s);
        cJSON_Delete(s);
        int r2 = run_summary(&run, js, err);
        free(js);
        if (r2) goto done;
        if (!c->quiet)
            fprintf(stderr, "sft: %d steps, final loss %.4f%s, model in %s\n", o->step, last_loss,
                    eval ? "" : "", path);
    }
    rc = 0;
done:
    free(dlogp);
    if (mb)
        for (int k = 0; k < c->gradient_accumulation_steps; k++) ds_batch_free(&mb[k]);
    free(mb);
    free(bt.order);
    free(bt.row_start);
    run_close(&run);
    optim_free(o);
    ds_free(train);
    ds_free(eval);
    tok_free(tok);
    model_free(m);
    return rc;
}
