// train/rm_brme: the Bayesian reward-model ensemble on the training skeleton
// (train/trainer.h), beside train/rm.c's Bradley-Terry trainer, whose pair
// loading, margins and head set-up it shares. A batch of n pairs is 2n rows in
// one forward (chosen 0..n-1, rejected n..2n-1); the score head has 2K outputs
// per row (K means, then K sigma pre-activations); each step draws the loss's
// standard normal samples from the run's random stream (saved with each
// checkpoint, so --resume goes on bit for bit).
#include "train/rm_brme.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/brme_loss.h"
#include "base/dist.h"
#include "io/file.h"
#include "reward/reward_model.h"
#include "train/rm.h"

void rm_brme_default_options(rm_brme_options *o) {
    memset(o, 0, sizeof *o);
    o->samples = 16;
    o->sigma_prior = 0.01f;
}

typedef struct {
    double acc, member_acc, sigma;   // sums over pairs (mean sigma of the pair's responses)
    double sigma_right, sigma_wrong; // sums of that sigma over pairs the mean of means orders
    long right, wrong;               // rightly / wrongly, and their counts
} brme_eval_sums;

typedef struct {
    const rm_config *rc;
    int K;                       // heads; the score head has 2K outputs
    ds_dataset *train, *eval;
    train_walk walk;
    ds_batch *mb;
    float *dsc, *eps;            // d(loss)/d(score) (2n, 2K); normal draws (n, K, M, 2)
    double *margins;
    size_t dcap, ecap;
    rm_window win;               // since the last log line
    brme_eval_sums ev;           // the last eval's sums
    long ev_pairs;
} brme_state;

// ---------------------------------------------------------------- eval --

// adds n pairs of scores (2n, 2K) to e
static void brme_eval_pairs(int n, int K, const float *s, brme_eval_sums *e) {
    const int W = 2 * K;
    for (int i = 0; i < n; i++) {
        const float *c = s + (size_t)i * W, *r = s + (size_t)(n + i) * W;
        double mc = 0, mr = 0, ma = 0, sg = 0;
        for (int k = 0; k < K; k++) {
            mc += c[k], mr += r[k], ma += c[k] > r[k];
            sg += 0.5 * ((double)brme_sigma(c[K + k]) + brme_sigma(r[K + k]));
        }
        sg /= K;
        e->acc += mc > mr, e->member_acc += ma / K, e->sigma += sg;
        if (mc > mr) e->sigma_right += sg, e->right++;
        else e->sigma_wrong += sg, e->wrong++;
    }
}

// with N MPI ranks each scores its share of the eval pairs; sums added
static int brme_eval_set(trainer *t, brme_state *s, rlhf_err *err) {
    const ds_dataset *ds = s->eval;
    int bs = t->c->batch_size, *idx = xmalloc((size_t)bs * sizeof(int)), rc = 0;
    ds_batch b = {0};
    memset(&s->ev, 0, sizeof s->ev);
    long lo, hi;
    dist_share(ds->n, dist_rank(), dist_size(), &lo, &hi);
    for (int i0 = (int)lo; i0 < hi && rc == 0; i0 += bs) {
        int n = hi - i0 < bs ? (int)hi - i0 : bs;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        rlhf_batch view;
        if ((rc = ds_make_batch(ds, idx, n, NULL, &b, err)) == 0) {
            view = b.view;
            view.targets = NULL;
            rc = model_forward(t->m, &view, err);
        }
        if (rc == 0) brme_eval_pairs(n, s->K, t->m->score, &s->ev);
    }
    s->ev_pairs = ds->n;
    free(idx);
    ds_batch_free(&b);
    if (dist_size() > 1 && rc == 0) {
        brme_eval_sums *e = &s->ev;
        double v[7] = {e->acc, e->member_acc, e->sigma, e->sigma_right, e->sigma_wrong,
                       (double)e->right, (double)e->wrong};
        dist_allreduce_sum_f64(v, 7);
        e->acc = v[0], e->member_acc = v[1], e->sigma = v[2], e->sigma_right = v[3];
        e->sigma_wrong = v[4], e->right = (long)v[5], e->wrong = (long)v[6];
    }
    return rc;
}

static void brme_add_eval(cJSON *j, const brme_state *s) {
    const brme_eval_sums *e = &s->ev;
    double n = s->ev_pairs > 0 ? (double)s->ev_pairs : NAN;
    cJSON_AddNumberToObject(j, "eval_accuracy", e->acc / n);
    cJSON_AddNumberToObject(j, "eval_member_accuracy", e->member_acc / n);
    cJSON_AddNumberToObject(j, "eval_sigma", e->sigma / n);
    // sigma where the ensemble orders the pair rightly / wrongly: a sigma that
    // means something is larger on the pairs it gets wrong
    cJSON_AddNumberToObject(j, "eval_sigma_right", e->right ? e->sigma_right / e->right : NAN);
    cJSON_AddNumberToObject(j, "eval_sigma_wrong", e->wrong ? e->sigma_wrong / e->wrong : NAN);
}

// ------------------------------------------------------------- the method --

static int brme_policy(trainer *t, rlhf_err *err) {
    brme_state *s = t->self;
    return rm_set_score_head(t, 2 * s->K, err);
}

static int brme_setup(trainer *t, rlhf_err *err) {
    brme_state *s = t->self;
    return rm_pairs_setup(t, &s->train, &s->eval, &s->walk, &s->mb, err);
}

// with N MPI ranks each takes its share of every micro-batch; the normal
// draws are made for the whole micro-batch on every rank (one process's
// numbers) and each uses its pairs' rows of them
static int brme_step(trainer *t, int step, rlhf_err *err) {
    brme_state *s = t->self;
    const train_config *c = t->c;
    rlhf_model *m = t->m;
    int K = s->K, M = s->rc->brme.samples;
    long pairs = 0;
    if (train_step_batches(c, &s->walk, step, s->mb, &pairs, err)) return -1;
    model_zero_grad(m);
    brme_loss_sums st = {0};
    double ntok = 0;
    for (int k = 0; k < c->gradient_accumulation_steps; k++) {
        ds_batch *b = &s->mb[k];
        int epoch, first, n_mine, gn;
        long lo, hi;
        train_micro_share(c, s->train->n, (long)step * c->gradient_accumulation_steps + k, &epoch,
                          &first, &n_mine, &gn);
        dist_share(gn, dist_rank(), dist_size(), &lo, &hi);
        size_t per = (size_t)K * M * 2, ne = (size_t)gn * per;
        if (ne > s->ecap) s->eps = xrealloc(s->eps, ne * sizeof(float)), s->ecap = ne;
        for (size_t i = 0; i < ne; i++) s->eps[i] = rng_normal(&t->rng);
        if (b->B == 0) continue;  // an empty share (MPI): the draws are made all the same
        rlhf_batch view = b->view;
        view.targets = NULL;
        if (model_forward(m, &view, err)) return -1;
        int n = b->n_pairs;
        size_t need = (size_t)b->B * 2 * K;
        if (need > s->dcap) {
            s->dsc = xrealloc(s->dsc, need * sizeof(float));
            s->margins = xrealloc(s->margins, (size_t)b->B * sizeof(double));
            s->dcap = need;
        }
        rm_batch_margins(s->train, b, s->margins);
        brme_loss(n, K, m->score, s->margins, s->eps + (size_t)lo * per, M, s->rc->brme.sigma_prior,
                  s->rc->center_rewards_coefficient, pairs, s->dsc, &st);
        model_backward(m, NULL, NULL, s->dsc, NULL);
        for (int i = 0; i < b->B * b->T; i++) ntok += b->mask[i];
    }
    if (dist_size() > 1) {  // the step's sums over the ranks
        double r[6] = {st.loss, st.nll, st.acc, st.sigma, (double)st.pairs, ntok};
        dist_allreduce_sum_f64(r, 6);
        st.loss = r[0], st.nll = r[1], st.acc = r[2], st.sigma = r[3], st.pairs = (long)r[4];
        ntok = r[5];
    }
    static const char *const names[] = {"loss", "accuracy", "nll", "sigma"};
    double np = (double)st.pairs;
    double v[] = {st.loss / np, st.acc / np, st.nll / np, st.sigma / np};
    return rm_step_end(t, &s->win, step, ntok, 4, names, v, err);
}

static void brme_log(trainer *t, cJSON *j) {
    brme_state *s = t->self;
    rm_window_log(t, &s->win, j);
}

static int brme_eval(trainer *t, cJSON *j, rlhf_err *err) {
    brme_state *s = t->self;
    if (!s->eval) return 0;
    if (brme_eval_set(t, s, err)) return -1;
    brme_add_eval(j, s);
    return 0;
}

// brme.json beside the weights: what reward/reward_model.c reads
static int brme_save(trainer *t, const char *dir, rlhf_err *err) {
    brme_state *s = t->self;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "objective", "brme");
    cJSON_AddNumberToObject(o, "heads", s->K);
    cJSON_AddStringToObject(o, "layout", "score_head outputs 0..heads-1: the heads' reward means; "
                                         "heads..2*heads-1: x, sigma = softplus(x) + 0.001");
    cJSON_AddNumberToObject(o, "samples", s->rc->brme.samples);
    cJSON_AddNumberToObject(o, "sigma_prior", s->rc->brme.sigma_prior);
    char *js = cJSON_Print(o), path[4400];
    cJSON_Delete(o);
    snprintf(path, sizeof path, "%s/%s", dir, BRME_META);
    int rc = atomic_write_file(path, js, strlen(js), err);
    free(js);
    return rc;
}

static void brme_finish(trainer *t, cJSON *sum, const char *path) {
    brme_state *s = t->self;
    cJSON_AddNumberToObject(sum, "steps", t->o->step);
    cJSON_AddStringToObject(sum, "objective", "brme");
    cJSON_AddNumberToObject(sum, "ensemble_size", s->K);
    if (s->eval) brme_add_eval(sum, s);
    if (!t->c->quiet && s->eval)
        fprintf(stderr,
                "rm: Bayesian ensemble of %d heads, eval accuracy %.4f, mean sigma %.3f (%.3f on "
                "pairs it orders rightly, %.3f wrongly), model in %s\n",
                s->K, s->ev.acc / s->ev_pairs, s->ev.sigma / s->ev_pairs,
                s->ev.right ? s->ev.sigma_right / s->ev.right : NAN,
                s->ev.wrong ? s->ev.sigma_wrong / s->ev.wrong : NAN, path);
}

static void brme_free(trainer *t) {
    brme_state *s = t->self;
    train_walk_free(&s->walk);
    free(s->dsc);
    free(s->eps);
    free(s->margins);
    if (s->mb)
        for (int k = 0; k < t->c->gradient_accumulation_steps; k++) ds_batch_free(&s->mb[k]);
    free(s->mb);
    ds_free(s->train);
    ds_free(s->eval);
}

static const trainer_method brme_method = {
    .name = "rm", .data_parallel = 1, .policy = brme_policy, .setup = brme_setup, .step = brme_step,
    .log = brme_log, .eval = brme_eval, .save = brme_save, .finish = brme_finish,
    .free = brme_free,
};

int rm_brme_train(const rm_config *c, rlhf_err *err) {
    int K = c->ensemble_size > 0 ? c->ensemble_size : 1;
    if (K > 1 && c->ensemble_trunks == RM_TRUNKS_SEPARATE)
        return rlhf_fail(err, "--objective brme puts its --ensemble_size heads on one trunk: "
                              "leave out --ensemble_trunks separate");
    if (c->brme.samples < 1 || c->brme.samples > BRME_MAX_SAMPLES)
        return rlhf_fail(err, "--brme_samples must be in 1..%d (got %d)", BRME_MAX_SAMPLES,
                         c->brme.samples);
    if (!(c->brme.sigma_prior >= 0))
        return rlhf_fail(err, "--brme_sigma_prior must be >= 0 (got %g)", c->brme.sigma_prior);
    brme_state s = {.rc = c, .K = K};
    return trainer_run(&c->base, &brme_method, &s, err);
}
