// train/sft: the supervised fine-tuning loop. Batches come from a TRL-format
// dataset; the loss is the mean next-token NLL over loss tokens (completion or
// assistant tokens), averaged over all micro-batches of a step so gradient
// accumulation equals one big batch. The data order depends only on (seed,
// step), so --resume continues bit-for-bit. With N MPI ranks each global
// micro-batch is split over the ranks and each loss token's gradient is divided
// by the step's global token count (docs/mpi.md).
#include "train/sft.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "train/trainer.h"

void sft_default_config(sft_config *c) {
    train_default_config(c);
    c->output_dir = "runs/sft";
}

// With N MPI ranks each rank scores its share of the examples (dist_share) and
// the sums are added over the ranks: every rank must call it.
double eval_nll(rlhf_model *m, const ds_dataset *ds, int batch_size, rlhf_err *err) {
    ds_batch b = {0};
    double sum = 0;
    long count = 0, lo, hi;
    dist_share(ds->n, dist_rank(), dist_size(), &lo, &hi);
    int *idx = xmalloc((size_t)batch_size * sizeof(int));
    for (int s = (int)lo; s < hi; s += batch_size) {
        int n = hi - s < batch_size ? (int)hi - s : batch_size;
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
    if (dist_size() > 1 && !isnan(sum)) {
        double v[2] = {sum, (double)count};
        dist_allreduce_sum_f64(v, 2);
        sum = v[0], count = (long)v[1];
    }
    return count ? sum / count : NAN;
}

typedef struct {
    const ds_dataset *ds;
    int batch, packing, T;     // batch: the global micro-batch (train_global_batch)
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

// this rank's share of global micro-batch g (train_micro_batch: every unit once
// per epoch; dist_share); an empty share is a batch of B = 0
static int batcher_get(batcher *bt, long g, ds_batch *b, rlhf_err *err) {
    int epoch, i, n;
    train_micro_batch(batcher_units(bt), bt->batch, g, &epoch, &i, &n);
    batcher_epoch(bt, epoch);
    if (dist_size() > 1) {
        long lo, hi;
        dist_share(n, dist_rank(), dist_size(), &lo, &hi);
        i += (int)lo, n = (int)(hi - lo);
        if (n == 0) {
            b->B = b->view.B = 0;
            return 0;
        }
    }
    if (bt->packing) {
        int next = bt->row_start[i];
        return ds_pack_batch(bt->ds, bt->order, bt->ds->n, &next, n, bt->T, b, err) < 0 ? -1 : 0;
    }
    return ds_make_batch(bt->ds, bt->order + i, n, NULL, b, err);
}

// ------------------------------------------------------------- the method --

typedef struct {
    batcher bt;
    const ds_dataset *eval;
    ds_dataset *train_ds, *eval_ds;
    ds_batch *mb;
    float *dlogp;
    size_t dcap;
    double tokens_total, last_loss, eval_loss;
    double win_loss, win_tokens, win_t0;  // since the last log line
    int win_steps;
    float lr, grad_norm;
} sft_state;

static int sft_setup(trainer *t, rlhf_err *err) {
    sft_state *s = t->self;
    const train_config *c = t->c;
    unsigned allowed = 1u << DS_TEXT | 1u << DS_MESSAGES | 1u << DS_PROMPT_COMPLETION;
    if (train_load_data(c, t->tok, t->max_len, allowed, &s->train_ds, &s->eval_ds, err)) return -1;
    s->eval = s->eval_ds;
    s->bt = (batcher){.ds = s->train_ds, .batch = train_global_batch(c), .packing = c->packing,
                      .T = t->max_len, .order_epoch = -1, .seed = c->seed};
    s->bt.order = xmalloc((size_t)s->train_ds->n * sizeof(int));
    s->bt.row_start = xmalloc((size_t)(s->train_ds->n + 1) * sizeof(int));
    t->units = batcher_units(&s->bt);
    s->mb = xcalloc(c->gradient_accumulation_steps, sizeof *s->mb);
    s->last_loss = s->eval_loss = NAN;
    s->win_t0 = time_now();
    return 0;
}

// the mean NLL over all loss tokens of the step's micro-batches
static int sft_step(trainer *t, int step, rlhf_err *err) {
    sft_state *s = t->self;
    const train_config *c = t->c;
    rlhf_model *m = t->m;
    long count = 0;
    for (int k = 0; k < c->gradient_accumulation_steps; k++) {
        if (batcher_get(&s->bt, (long)step * c->gradient_accumulation_steps + k, &s->mb[k], err))
            return -1;
        for (int i = 0; i < s->mb[k].B * s->mb[k].T; i++) count += s->mb[k].targets[i] >= 0;
    }
    if (dist_size() > 1) {  // every rank divides by the step's global count
        double v = (double)count;
        dist_allreduce_sum_f64(&v, 1);
        count = (long)v;
    }
    model_zero_grad(m);
    double loss = 0, ntok = 0;
    for (int k = 0; k < c->gradient_accumulation_steps; k++) {
        ds_batch *b = &s->mb[k];
        size_t N = (size_t)b->B * b->T;
        if (N == 0) continue;  // an empty share (MPI)
        if (N > s->dcap) {
            s->dlogp = xrealloc(s->dlogp, N * sizeof(float));
            s->dcap = N;
        }
        if (model_forward(m, &b->view, err)) return -1;
        for (size_t i = 0; i < N; i++) {
            int tg = b->targets[i] >= 0;
            if (tg) loss -= m->logp[i];
            s->dlogp[i] = tg ? -1.0f / (float)(count ? count : 1) : 0.0f;
            ntok += b->mask[i];
        }
        model_backward(m, s->dlogp, NULL, NULL, NULL);
    }
    if (dist_size() > 1) {  // the step's sums over the ranks
        double v[2] = {loss, ntok};
        dist_allreduce_sum_f64(v, 2);
        loss = v[0], ntok = v[1];
    }
    loss /= count ? count : 1;
    if (!isfinite(loss))
        return rlhf_fail(err, "step %d: loss is %g; stopping (checkpoints already written are "
                              "kept; try a lower --learning_rate)",
                         step + 1, loss);
    s->lr = lr_at_step(&t->o->cfg, t->o->step);
    s->grad_norm = optim_step(t->o, m);
    s->tokens_total += ntok;
    s->last_loss = loss;
    s->win_loss += loss, s->win_tokens += ntok, s->win_steps++;
    snprintf(t->progress, sizeof t->progress, "loss %.4f lr %.2e", loss, s->lr);
    t->step_tokens = ntok;
    return 0;
}

static void sft_log(trainer *t, cJSON *j) {
    sft_state *s = t->self;
    double now = time_now();
    cJSON_AddNumberToObject(j, "epoch", trainer_epoch(t, t->step));
    cJSON_AddNumberToObject(j, "loss", s->win_loss / s->win_steps);
    cJSON_AddNumberToObject(j, "learning_rate", s->lr);
    cJSON_AddNumberToObject(j, "grad_norm", s->grad_norm);
    cJSON_AddNumberToObject(j, "tokens_per_s", s->win_tokens / (now - s->win_t0));
    cJSON_AddNumberToObject(j, "num_tokens", s->tokens_total);
    s->win_loss = s->win_tokens = 0, s->win_steps = 0, s->win_t0 = now;
}

static int sft_eval(trainer *t, cJSON *j, rlhf_err *err) {
    sft_state *s = t->self;
    if (!s->eval) return 0;
    s->eval_loss = eval_nll(t->m, s->eval, t->c->batch_size, err);
    cJSON_AddNumberToObject(j, "eval_loss", s->eval_loss);
    return 0;
}

static void sft_finish(trainer *t, cJSON *sum, const char *path) {
    sft_state *s = t->self;
    cJSON_AddNumberToObject(sum, "steps", t->o->step);
    cJSON_AddNumberToObject(sum, "train_loss", s->last_loss);
    if (s->eval) cJSON_AddNumberToObject(sum, "eval_loss", s->eval_loss);
    cJSON_AddNumberToObject(sum, "tokens", s->tokens_total);
    if (!t->c->quiet)
        fprintf(stderr, "sft: %d steps, final loss %.4f, model in %s\n", t->o->step, s->last_loss,
                path);
}

static void sft_free(trainer *t) {
    sft_state *s = t->self;
    free(s->dlogp);
    if (s->mb)
        for (int k = 0; k < t->c->gradient_accumulation_steps; k++) ds_batch_free(&s->mb[k]);
    free(s->mb);
    free(s->bt.order);
    free(s->bt.row_start);
    ds_free(s->train_ds);
    ds_free(s->eval_ds);
}

static const trainer_method sft_method = {
    .name = "sft", .data_parallel = 1, .setup = sft_setup, .step = sft_step, .log = sft_log,
    .eval = sft_eval, .finish = sft_finish, .free = sft_free,
};

int sft_train(const sft_config *c, rlhf_err *err) {
    sft_state s = {0};
    return trainer_run(c, &sft_method, &s, err);
}
