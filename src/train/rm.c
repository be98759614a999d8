// train/rm: the reward-model method on the training skeleton (train/trainer.h).
// A batch of n pairs is 2n rows through the model in one pass (chosen rows
// 0..n-1, rejected rows n..2n-1); the score heads read each row's last real
// token. K heads on one trunk make an ensemble; K separate trunks are K runs
// listed in ensemble.json.
#include "train/rm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/rm_loss.h"
#include "io/file.h"
#include "train/trainer.h"

void rm_default_config(rm_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/rm";
    c->base.learning_rate = 1e-4f;
    c->base.num_train_epochs = 1;
    c->ensemble_size = 1;
    c->ensemble_trunks = RM_TRUNKS_SHARED;
}

int rm_trunks_from_name(const char *name, rm_trunks *out, rlhf_err *err) {
    if (name && !strcmp(name, "shared")) *out = RM_TRUNKS_SHARED;
    else if (name && !strcmp(name, "separate")) *out = RM_TRUNKS_SEPARATE;
    else
        return rlhf_fail(err, "--ensemble_trunks must be shared or separate (got \"%s\")",
                         name ? name : "");
    return 0;
}

// the margins of a batch's pairs (0 where a pair has none): margins (n)
static void batch_margins(const ds_dataset *data, const ds_batch *b, double *margins) {
    for (int i = 0; i < b->n_pairs; i++) {
        double m = data->ex[b->example[i]].margin;
        margins[i] = isnan(m) ? 0 : m;
    }
}

// accuracy of the ensemble mean (and mean member variance) on a tokenized set
static int rm_eval_set(rlhf_model *m, const ds_dataset *ds, int bs, rm_ensemble_sums *out,
                       rlhf_err *err) {
    ds_batch b = {0};
    int K = m->cfg.score_head, *idx = xmalloc((size_t)bs * sizeof(int));
    rm_ensemble_sums e = {0};
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
        rm_ensemble_eval(n, K, m->score, &e);
        n_pairs += n;
    }
    free(idx);
    ds_batch_free(&b);
    out->acc = n_pairs ? e.acc / n_pairs : NAN;
    out->var = n_pairs ? e.var / n_pairs : NAN;
    out->member_acc = n_pairs ? e.member_acc / n_pairs : NAN;
    return rc;
}

// ------------------------------------------------------------- the method --

typedef struct {
    const rm_config *rc;
    int K;                      // score heads on the trunk
    ds_dataset *train, *eval;
    train_walk walk;
    ds_batch *mb;
    float *dsc;                 // d(loss)/d(score) of a micro-batch
    size_t dcap;
    double *margins;            // of a micro-batch's pairs
    rm_loss_sums win;           // sums of per-step means since the last log line
    int win_steps;
    float lr, grad_norm;
    rm_ensemble_sums ev;        // the last eval's means
} rm_state;

// the trunk gets K score heads (a checkpoint that has them already is kept)
static int rm_policy(trainer *t, rlhf_err *err) {
    rm_state *s = t->self;
    if (t->m->cfg.score_head == s->K) return 0;
    rlhf_model *m = NULL;
    if (model_with_heads(t->m, s->K, t->m->cfg.value_head, t->c->seed, &m, err)) return -1;
    model_free(t->m);
    t->m = m;
    return 0;
}

static int rm_setup(trainer *t, rlhf_err *err) {
    rm_state *s = t->self;
    const train_config *c = t->c;
    if (train_load_data(c, t->tok, t->max_len, 1u << DS_PREFERENCE, &s->train, &s->eval, err))
        return -1;
    t->units = s->train->n;
    t->plan_B = 2 * c->batch_size;  // a pair's two rows in one forward
    train_walk_init(&s->walk, s->train, c->seed);
    s->mb = xcalloc(c->gradient_accumulation_steps, sizeof *s->mb);
    s->ev = (rm_ensemble_sums){NAN, NAN, NAN};
    return 0;
}

// the Bradley-Terry loss summed over the step's micro-batches, mean over pairs
static int rm_step(trainer *t, int step, rlhf_err *err) {
    rm_state *s = t->self;
    const train_config *c = t->c;
    rlhf_model *m = t->m;
    int K = s->K;
    long pairs = 0;
    if (train_step_batches(c, &s->walk, step, s->mb, &pairs, err)) return -1;
    model_zero_grad(m);
    rm_loss_sums st = {0};
    double ntok = 0;
    for (int k = 0; k < c->gradient_accumulation_steps; k++) {
        ds_batch *b = &s->mb[k];
        rlhf_batch view = b->view;
        view.targets = NULL;
        if (model_forward(m, &view, err)) return -1;
        size_t need = (size_t)b->B * K;
        if (need > s->dcap) {
            s->dsc = xrealloc(s->dsc, need * sizeof(float));
            s->margins = xrealloc(s->margins, (size_t)b->B * sizeof(double));  // B = 2 n_pairs
            s->dcap = need;
        }
        batch_margins(s->train, b, s->margins);
        rm_bt_loss(b->n_pairs, K, m->score, s->margins, s->rc->center_rewards_coefficient, pairs,
                   s->dsc, &st);
        model_backward(m, NULL, NULL, s->dsc, NULL);
        for (int i = 0; i < b->B * b->T; i++) ntok += b->mask[i];
    }
    if (!isfinite(st.loss))
        return rlhf_fail(err, "step %d: loss is not finite; stopping (checkpoints already "
                              "written are kept)",
                         step + 1);
    s->lr = lr_at_step(&t->o->cfg, t->o->step);
    s->grad_norm = optim_step(t->o, m);
    s->win.loss += st.loss / st.pairs, s->win.acc += st.acc / st.pairs,
        s->win.margin += st.margin / st.pairs;
    s->win_steps++;
    snprintf(t->progress, sizeof t->progress, "loss %.4f acc %.3f", st.loss / st.pairs,
             st.acc / st.pairs);
    t->step_tokens = ntok;
    return 0;
}

static void rm_log(trainer *t, cJSON *j) {
    rm_state *s = t->self;
    cJSON_AddNumberToObject(j, "epoch", trainer_epoch(t, t->step));
    cJSON_AddNumberToObject(j, "loss", s->win.loss / s->win_steps);
    cJSON_AddNumberToObject(j, "accuracy", s->win.acc / s->win_steps);
    cJSON_AddNumberToObject(j, "margin", s->win.margin / s->win_steps);
    cJSON_AddNumberToObject(j, "learning_rate", s->lr);
    cJSON_AddNumberToObject(j, "grad_norm", s->grad_norm);
    memset(&s->win, 0, sizeof s->win);
    s->win_steps = 0;
}

static int rm_eval(trainer *t, cJSON *j, rlhf_err *err) {
    rm_state *s = t->self;
    if (!s->eval) return 0;
    if (rm_eval_set(t->m, s->eval, t->c->batch_size, &s->ev, err)) return -1;
    cJSON_AddNumberToObject(j, "eval_accuracy", s->ev.acc);
    if (s->K > 1) {
        cJSON_AddNumberToObject(j, "eval_member_accuracy", s->ev.member_acc);
        cJSON_AddNumberToObject(j, "eval_ensemble_variance", s->ev.var);
    }
    return 0;
}

static void rm_finish(trainer *t, cJSON *sum, const char *path) {
    rm_state *s = t->self;
    cJSON_AddNumberToObject(sum, "steps", t->o->step);
    cJSON_AddNumberToObject(sum, "ensemble_size", s->K);
    if (s->eval) cJSON_AddNumberToObject(sum, "eval_accuracy", s->ev.acc);
    if (s->eval && s->K > 1) cJSON_AddNumberToObject(sum, "eval_ensemble_variance", s->ev.var);
    if (!t->c->quiet && s->eval)
        fprintf(stderr, "rm: eval accuracy %.4f, model in %s\n", s->ev.acc, path);
}

static void rm_free(trainer *t) {
    rm_state *s = t->self;
    train_walk_free(&s->walk);
    free(s->dsc);
    free(s->margins);
    if (s->mb)
        for (int k = 0; k < t->c->gradient_accumulation_steps; k++) ds_batch_free(&s->mb[k]);
    free(s->mb);
    ds_free(s->train);
    ds_free(s->eval);
}

static const trainer_method rm_method = {
    .name = "rm", .policy = rm_policy, .setup = rm_setup, .step = rm_step, .log = rm_log,
    .eval = rm_eval, .finish = rm_finish, .free = rm_free,
};

// one trunk with K heads, trained with the settings c
static int rm_train_one(const rm_config *rc, const train_config *c, int K, rlhf_err *err) {
    rm_state s = {.rc = rc, .K = K};
    return trainer_run(c, &rm_method, &s, err);
}

// K separate trunks: K runs with seeds seed, seed+1, ... and a manifest
static int rm_train_separate(const rm_config *c, int K, rlhf_err *err) {
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
        if (rm_train_one(c, &mc, 1, err)) {
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

int rm_train(const rm_config *c, rlhf_err *err) {
    int K = c->ensemble_size > 0 ? c->ensemble_size : 1;
    if (K == 1 || c->ensemble_trunks == RM_TRUNKS_SHARED) return rm_train_one(c, &c->base, K, err);
    return rm_train_separate(c, K, err);
}
