// train/rm: the reward-model method on the training skeleton (train/trainer.h).
// A batch of n pairs is 2n rows through the model in one pass (chosen rows
// 0..n-1, rejected rows n..2n-1); the score heads read each row's last real
// token. K heads on one trunk make an ensemble; K separate trunks are K runs
// listed in ensemble.json. The pairwise objective (below) trains a causal LM
// to judge pairs instead (reward/pairwise.h). Bradley-Terry with shared trunks
// runs on N MPI ranks (each takes its share of every micro-batch; docs/mpi.md).
#include "train/rm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/rm_loss.h"
#include "base/dist.h"
#include "io/file.h"
#include "reward/llm_judge.h"
#include "reward/pairwise.h"
#include "train/trainer.h"

void rm_default_config(rm_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/rm";
    c->base.learning_rate = 1e-4f;
    c->base.num_train_epochs = 1;
    c->ensemble_size = 1;
    c->ensemble_trunks = RM_TRUNKS_SHARED;
    rm_classify_default_options(&c->classify);
    rm_brme_default_options(&c->brme);
    rm_vpl_default_options(&c->vpl);
}

int rm_objective_from_name(const char *name, rm_objective *out, rlhf_err *err) {
    static const char *const names[] = {"bradley_terry", "pairwise", "classify", "brme", "vpl"};
    for (int i = 0; name && i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(name, names[i])) {
            *out = (rm_objective)i;
            return 0;
        }
    return rlhf_fail(err, "--objective must be bradley_terry, pairwise, classify, brme or vpl (got \"%s\")",
                     name ? name : "");
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
void rm_batch_margins(const ds_dataset *data, const ds_batch *b, double *margins) {
    for (int i = 0; i < b->n_pairs; i++) {
        double m = data->ex[b->example[i]].margin;
        margins[i] = isnan(m) ? 0 : m;
    }
}

// accuracy of the ensemble mean (and mean member variance) on a tokenized set
// (with N MPI ranks each scores its share of the pairs; sums added over ranks)
static int rm_eval_set(rlhf_model *m, const ds_dataset *ds, int bs, rm_ensemble_sums *out,
                       rlhf_err *err) {
    ds_batch b = {0};
    int K = m->cfg.score_head, *idx = xmalloc((size_t)bs * sizeof(int));
    rm_ensemble_sums e = {0};
    long n_pairs = 0, lo, hi;
    int rc = 0;
    dist_share(ds->n, dist_rank(), dist_size(), &lo, &hi);
    for (int s = (int)lo; s < hi && rc == 0; s += bs) {
        int n = hi - s < bs ? (int)hi - s : bs;
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
    if (dist_size() > 1 && rc == 0) {
        double v[4] = {e.acc, e.var, e.member_acc, (double)n_pairs};
        dist_allreduce_sum_f64(v, 4);
        e.acc = v[0], e.var = v[1], e.member_acc = v[2], n_pairs = (long)v[3];
    }
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
    rm_window win;              // since the last log line
    rm_ensemble_sums ev;        // the last eval's means
} rm_state;

int rm_step_end(trainer *t, rm_window *w, int step, int ntok, int n, const char *const *names,
                const double *values, rlhf_err *err) {
    if (!isfinite(values[0]))
        return rlhf_fail(err, "step %d: loss is not finite; stopping (checkpoints already "
                              "written are kept)",
                         step + 1);
    w->lr = lr_at_step(&t->o->cfg, t->o->step);
    w->grad_norm = optim_step(t->o, t->m);
    w->n = n;
    size_t k = 0;
    t->progress[0] = 0;
    for (int i = 0; i < n; i++) {
        w->name[i] = names[i];
        w->sum[i] += values[i];
        if (k < sizeof t->progress)
            k += (size_t)snprintf(t->progress + k, sizeof t->progress - k, "%s%s %.*f",
                                  i ? " " : "", i == 1 ? "acc" : names[i], i ? 3 : 4, values[i]);
    }
    w->steps++;
    t->step_tokens = ntok;
    return 0;
}

void rm_window_log(trainer *t, rm_window *w, cJSON *j) {
    cJSON_AddNumberToObject(j, "epoch", trainer_epoch(t, t->step));
    for (int i = 0; i < w->n; i++) cJSON_AddNumberToObject(j, w->name[i], w->sum[i] / w->steps);
    cJSON_AddNumberToObject(j, "learning_rate", w->lr);
    cJSON_AddNumberToObject(j, "grad_norm", w->grad_norm);
    memset(w->sum, 0, sizeof w->sum);
    w->steps = 0;
}

int rm_set_score_head(trainer *t, int outputs, rlhf_err *err) {
    if (t->m->cfg.score_head == outputs) return 0;
    rlhf_model *m = NULL;
    if (model_with_heads(t->m, outputs, t->m->cfg.value_head, t->c->seed, &m, err)) return -1;
    model_free(t->m);
    t->m = m;
    return 0;
}

// the trunk gets K score heads (a checkpoint that has them already is kept)
static int rm_policy(trainer *t, rlhf_err *err) {
    rm_state *s = t->self;
    return rm_set_score_head(t, s->K, err);
}

int rm_pairs_setup(trainer *t, ds_dataset **train, ds_dataset **eval, train_walk *walk,
                   ds_batch **mb, rlhf_err *err) {
    const train_config *c = t->c;
    if (train_load_data(c, t->tok, t->max_len, 1u << DS_PREFERENCE, train, eval, err)) return -1;
    t->units = (*train)->n;
    t->plan_B = 2 * c->batch_size;  // a pair's two rows in one forward
    train_walk_init(walk, *train, c->seed);
    *mb = xcalloc(c->gradient_accumulation_steps, sizeof **mb);
    return 0;
}

static int rm_setup(trainer *t, rlhf_err *err) {
    rm_state *s = t->self;
    if (rm_pairs_setup(t, &s->train, &s->eval, &s->walk, &s->mb, err)) return -1;
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
        if (b->B == 0) continue;  // an empty share (MPI)
        rlhf_batch view = b->view;
        view.targets = NULL;
        if (model_forward(m, &view, err)) return -1;
        size_t need = (size_t)b->B * K;
        if (need > s->dcap) {
            s->dsc = xrealloc(s->dsc, need * sizeof(float));
            s->margins = xrealloc(s->margins, (size_t)b->B * sizeof(double));  // B = 2 n_pairs
            s->dcap = need;
        }
        rm_batch_margins(s->train, b, s->margins);
        rm_bt_loss(b->n_pairs, K, m->score, s->margins, s->rc->center_rewards_coefficient, pairs,
                   s->dsc, &st);
        model_backward(m, NULL, NULL, s->dsc, NULL);
        for (int i = 0; i < b->B * b->T; i++) ntok += b->mask[i];
    }
    if (dist_size() > 1) {  // the step's sums over the ranks
        double r[5] = {st.loss, st.acc, st.margin, (double)st.pairs, ntok};
        dist_allreduce_sum_f64(r, 5);
        st.loss = r[0], st.acc = r[1], st.margin = r[2], st.pairs = (long)r[3], ntok = r[4];
    }
    static const char *const names[] = {"loss", "accuracy", "margin"};
    double v[] = {st.loss / st.pairs, st.acc / st.pairs, st.margin / st.pairs};
    return rm_step_end(t, &s->win, step, ntok, 3, names, v, err);
}

static void rm_log(trainer *t, cJSON *j) {
    rm_state *s = t->self;
    rm_window_log(t, &s->win, j);
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
    .name = "rm", .data_parallel = 1, .policy = rm_policy, .setup = rm_setup, .step = rm_step, .log = rm_log,
    .eval = rm_eval, .finish = rm_finish, .free = rm_free,
};

// one trunk with K heads, trained with the settings c
static int rm_train_one(const rm_config *rc, const train_config *c, int K, rlhf_err *err) {
    rm_state s = {.rc = rc, .K = K};
    return trainer_run(c, &rm_method, &s, err);
}

// K separate trunks: K runs with seeds seed, seed+1, ... and a manifest
static int rm_train_separate(const rm_config *c, int K, rlhf_err *err) {
    int writer = dist_rank() == 0;  // with MPI ranks, rank 0 writes
    if (writer && make_dirs(c->base.output_dir, err)) return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "members");
    for (int k = 0; k < K; k++) {
        train_config mc = c->base;
        char dir[2200], rel[64];
        snprintf(rel, sizeof rel, "member-%d", k);
        snprintf(dir, sizeof dir, "%s/%s", c->base.output_dir, rel);
        mc.output_dir = dir;
        mc.seed = c->base.seed + (uint64_t)k;
        if (!c->base.quiet && writer)
            fprintf(stderr, "rm: ensemble member %d of %d\n", k + 1, K);
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
    int rc = writer ? atomic_write_file(path, js, strlen(js), err) : 0;
    free(js);
    return rc;
}

// ------------------------------------------------ the pairwise objective --
// A generative pairwise reward model (Pairwise-RL, paper card 33): the LM reads
// PAIRWISE_TEMPLATE (prompt, answer A, answer B, "Better answer:") and is
// trained so that its next token, " A" or " B", names the chosen answer. Every
// pair is shown in both orders in the same step (chosen as A, label A; chosen as
// B, label B), which takes position bias out of the objective; the loss is the
// cross-entropy over the two answer tokens only, -log sigmoid(l_label - l_other)
// (algo/rm_loss.h, rm_pairwise_loss). A micro-batch of n pairs is 2n judging
// texts, each followed by each answer: 4n rows in one forward.

typedef struct {
    const rm_config *rc;
    ds_dataset *train, *eval;
    train_walk walk;
    ds_batch *mb;
    judge_answers ans;
    const char *tmpl;
    rm_window win;               // since the last log line
    rm_pairwise_eval_sums ev0, ev;  // the eval before training and the last one
} pw_state;

static const char *text_of(const ds_field *f) { return f->text ? f->text : ""; }

// out (n, 4): per pair, [l_A, l_B] with the chosen answer as A, then as B
static int pw_logp(trainer *t, const ds_dataset *ds, const int *idx, int n, float *out,
                   rlhf_err *err) {
    pw_state *s = t->self;
    char **texts = xmalloc((size_t)2 * n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        const ds_example *e = &ds->ex[idx[i]];
        pairwise_texts(s->tmpl, text_of(&e->prompt), text_of(&e->chosen), text_of(&e->rejected),
                       texts + 2 * i);
    }
    int rc = judge_answer_logp(t->m, t->tok, &s->ans, (const char *const *)texts, 2 * n, 2 * n,
                               out, err);
    for (int i = 0; i < 2 * n; i++) free(texts[i]);
    free(texts);
    return rc;
}

// the eval set's sums; with N MPI ranks each judges its share of the pairs
// and the sums are added
static int pw_eval_set(trainer *t, const ds_dataset *ds, rm_pairwise_eval_sums *out,
                       rlhf_err *err) {
    int bs = t->c->batch_size, *idx = xmalloc((size_t)bs * sizeof(int));
    float *l = xmalloc((size_t)bs * 4 * sizeof(float));
    rm_pairwise_eval_sums e = {0};
    int rc = 0;
    long lo, hi;
    dist_share(ds->n, dist_rank(), dist_size(), &lo, &hi);
    for (int i0 = (int)lo; i0 < hi && rc == 0; i0 += bs) {
        int n = hi - i0 < bs ? (int)hi - i0 : bs;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        if ((rc = pw_logp(t, ds, idx, n, l, err)) == 0) rm_pairwise_eval(n, l, &e);
    }
    free(idx), free(l);
    if (dist_size() > 1 && rc == 0) {
        double v[6] = {e.acc, e.prob, e.order_acc, e.consistent, e.bias, (double)e.pairs};
        dist_allreduce_sum_f64(v, 6);
        e.acc = v[0], e.prob = v[1], e.order_acc = v[2], e.consistent = v[3], e.bias = v[4];
        e.pairs = (long)v[5];
    }
    *out = e;
    return rc;
}

static void pw_add_eval(cJSON *j, const char *prefix, const rm_pairwise_eval_sums *e) {
    static const char *const names[5] = {"accuracy", "order_accuracy", "order_consistency",
                                         "position_bias", "prob_chosen"};
    double v[5] = {e->acc, e->order_acc, e->consistent, e->bias, e->prob};
    char key[80];
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof key, "%s%s", prefix, names[k]);
        cJSON_AddNumberToObject(j, key, e->pairs ? v[k] / e->pairs : NAN);
    }
}

static int pw_write_meta(const pw_state *s, const char *dir, rlhf_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "objective", "pairwise");
    cJSON_AddStringToObject(o, "template", s->tmpl);
    cJSON *a = cJSON_AddArrayToObject(o, "answers");
    cJSON_AddItemToArray(a, cJSON_CreateString(" A"));
    cJSON_AddItemToArray(a, cJSON_CreateString(" B"));
    char *js = cJSON_Print(o), path[4200];
    cJSON_Delete(o);
    snprintf(path, sizeof path, "%s/%s", dir, PAIRWISE_META);
    int rc = atomic_write_file(path, js, strlen(js), err);
    free(js);
    return rc;
}

static int pw_setup(trainer *t, rlhf_err *err) {
    pw_state *s = t->self;
    const train_config *c = t->c;
    s->tmpl = s->rc->judge_template && *s->rc->judge_template ? s->rc->judge_template
                                                              : PAIRWISE_TEMPLATE;
    if (!strstr(s->tmpl, "{a}") || !strstr(s->tmpl, "{b}"))
        return rlhf_fail(err, "--judge_template must hold {a} and {b} (and usually {prompt})");
    if (train_load_data(c, t->tok, t->max_len, 1u << DS_PREFERENCE, &s->train, &s->eval, err))
        return -1;
    if (s->train->n > 0 && s->train->ex[0].conversational)
        return rlhf_fail(err, "%s: --objective pairwise needs standard (string) prompt/chosen/"
                              "rejected fields, not message lists", c->data);
    static const char *const answers[2] = {" A", " B"};
    if (judge_answers_init(&s->ans, t->tok, answers, 2, t->max_len, err)) return -1;
    t->units = s->train->n;
    t->plan_B = 4 * c->batch_size;  // both orders x both answers
    train_walk_init(&s->walk, s->train, c->seed);
    s->mb = xcalloc(c->gradient_accumulation_steps, sizeof *s->mb);
    if (dist_rank() == 0 && (make_dirs(c->output_dir, err) || pw_write_meta(s, c->output_dir, err)))
        return -1;
    if (s->eval && pw_eval_set(t, s->eval, &s->ev0, err)) return -1;
    s->ev = s->ev0;
    return 0;
}

static int pw_step(trainer *t, int step, rlhf_err *err) {
    pw_state *s = t->self;
    const train_config *c = t->c;
    rlhf_model *m = t->m;
    long pairs = 0;
    if (train_step_batches(c, &s->walk, step, s->mb, &pairs, err)) return -1;
    model_zero_grad(m);
    rm_pairwise_sums st = {0};
    double ntok = 0;
    int pad = tok_pad(t->tok) >= 0 ? tok_pad(t->tok) : 0, rc = 0;
    for (int k = 0; k < c->gradient_accumulation_steps && rc == 0; k++) {
        const ds_batch *mb = &s->mb[k];
        int n = mb->n_pairs;
        if (n == 0) continue;  // an empty share (MPI)
        char **texts = xmalloc((size_t)2 * n * sizeof(char *));
        int *label = xmalloc((size_t)2 * n * sizeof(int));
        for (int i = 0; i < n; i++) {
            const ds_example *e = &s->train->ex[mb->example[i]];
            pairwise_texts(s->tmpl, text_of(&e->prompt), text_of(&e->chosen),
                           text_of(&e->rejected), texts + 2 * i);
            label[2 * i] = 0, label[2 * i + 1] = 1;  // the chosen answer is A, then B
        }
        rlhf_batch b = {0};
        rc = judge_rows_build(t->tok, &s->ans, (const char *const *)texts, 2 * n, t->max_len, pad,
                              &b, err);
        if (rc == 0 && (rc = model_forward(m, &b, err)) == 0) {
            float *l = xmalloc((size_t)4 * n * sizeof(float)), *dl = xmalloc((size_t)4 * n * sizeof(float));
            float *dlogp = xmalloc((size_t)b.B * b.T * sizeof(float));
            judge_rows_logp(m, &b, &s->ans, l);
            rm_pairwise_loss(2 * n, l, label, 2 * pairs, dl, &st);
            judge_rows_dlogp(&b, &s->ans, dl, dlogp);
            model_backward(m, dlogp, NULL, NULL, NULL);
            for (int i = 0; i < b.B * b.T; i++) ntok += b.mask[i];
            free(l), free(dl), free(dlogp);
        }
        if (b.tokens) judge_rows_free(&b);
        for (int i = 0; i < 2 * n; i++) free(texts[i]);
        free(texts), free(label);
    }
    if (rc) return -1;
    if (dist_size() > 1) {  // the step's sums over the ranks
        double r[4] = {st.loss, st.acc, (double)st.rows, ntok};
        dist_allreduce_sum_f64(r, 4);
        st.loss = r[0], st.acc = r[1], st.rows = (long)r[2], ntok = r[3];
    }
    static const char *const names[] = {"loss", "accuracy"};
    double v[] = {st.loss / st.rows, st.acc / st.rows};
    return rm_step_end(t, &s->win, step, ntok, 2, names, v, err);
}

static void pw_log(trainer *t, cJSON *j) {
    pw_state *s = t->self;
    rm_window_log(t, &s->win, j);
}

static int pw_eval(trainer *t, cJSON *j, rlhf_err *err) {
    pw_state *s = t->self;
    if (!s->eval) return 0;
    if (pw_eval_set(t, s->eval, &s->ev, err)) return -1;
    pw_add_eval(j, "eval_", &s->ev);
    return 0;
}

static int pw_save(trainer *t, const char *dir, rlhf_err *err) {
    return pw_write_meta(t->self, dir, err);
}

static void pw_finish(trainer *t, cJSON *sum, const char *path) {
    pw_state *s = t->self;
    cJSON_AddNumberToObject(sum, "steps", t->o->step);
    cJSON_AddStringToObject(sum, "objective", "pairwise");
    if (s->eval) {
        pw_add_eval(sum, "initial_eval_", &s->ev0);
        pw_add_eval(sum, "eval_", &s->ev);
    }
    if (!t->c->quiet && s->eval)
        fprintf(stderr,
                "rm: pairwise judge, eval accuracy %.4f (before training %.4f), verdicts kept "
                "when swapped %.4f (before %.4f), model in %s\n",
                s->ev.acc / s->ev.pairs, s->ev0.acc / s->ev0.pairs,
                s->ev.consistent / s->ev.pairs, s->ev0.consistent / s->ev0.pairs, path);
}

static void pw_free(trainer *t) {
    pw_state *s = t->self;
    train_walk_free(&s->walk);
    if (s->mb)
        for (int k = 0; k < t->c->gradient_accumulation_steps; k++) ds_batch_free(&s->mb[k]);
    free(s->mb);
    judge_answers_free(&s->ans);
    ds_free(s->train);
    ds_free(s->eval);
}

static const trainer_method pw_method = {
    .name = "rm", .data_parallel = 1, .setup = pw_setup, .step = pw_step, .log = pw_log, .eval = pw_eval,
    .save = pw_save, .finish = pw_finish, .free = pw_free,
};

int rm_train(const rm_config *c, rlhf_err *err) {
    if (c->objective == RM_OBJ_CLASSIFY) return rm_classify_train(c, err);
    if (c->objective == RM_OBJ_BRME) return rm_brme_train(c, err);
    if (c->objective == RM_OBJ_VPL) return rm_vpl_train(c, err);
    if (c->objective == RM_OBJ_PAIRWISE) {
        if (c->ensemble_size > 1)
            return rlhf_fail(err, "--objective pairwise trains one judge: leave out --ensemble_size");
        pw_state s = {.rc = c};
        return trainer_run(&c->base, &pw_method, &s, err);
    }
    int K = c->ensemble_size > 0 ? c->ensemble_size : 1;
    if (K == 1 || c->ensemble_trunks == RM_TRUNKS_SHARED) return rm_train_one(c, &c->base, K, err);
    return rm_train_separate(c, K, err);
}
