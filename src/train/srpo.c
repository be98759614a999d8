// train/srpo: SRPO as a method of the training skeleton (train/trainer.h). The
// data is a preference file; every pair becomes three examples (the generator's
// prompt and the two revision prompts, data/dataset_rev.h) whose chosen and
// rejected completions give the six log-probs of the loss. All six go through
// one forward of the policy and one of the reference, so one backward carries
// the gradient of the whole loss. The data order depends only on (seed, step),
// so --resume continues bit-for-bit.
#include "train/srpo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "data/dataset_rev.h"
#include "train/implicit.h"
#include "train/trainer.h"

void srpo_default_config(srpo_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/srpo";
    c->base.learning_rate = 1e-6f;
    c->base.num_train_epochs = 1;
    pref_options_default(&c->opt);
    c->revision_prompt = REV_DEFAULT_INSTRUCTION;
}

// ---------------------------------------------------------------- a batch --

int srpo_make_batch(const ds_dataset *rev, const int *pairs, int n, ds_batch *b, rlhf_err *err) {
    int *idx = xmalloc((size_t)REV_VIEWS * n * sizeof(int));
    for (int v = 0; v < REV_VIEWS; v++)
        for (int j = 0; j < n; j++) idx[v * n + j] = REV_VIEWS * pairs[j] + v;
    int rc = ds_make_batch(rev, idx, REV_VIEWS * n, NULL, b, err);
    free(idx);
    return rc;
}

void srpo_work_free(srpo_work *w) {
    free(w->pol), free(w->ref), free(w->grad), free(w->dlogp), free(w->len);
    memset(w, 0, sizeof *w);
}

static void work_fit(srpo_work *w, int B, int T) {
    if ((size_t)B > w->cap_rows) {
        w->cap_rows = (size_t)B;
        w->pol = xrealloc(w->pol, (size_t)B * sizeof(float));
        w->ref = xrealloc(w->ref, (size_t)B * sizeof(float));
        w->grad = xrealloc(w->grad, (size_t)B * sizeof(float));
        w->len = xrealloc(w->len, (size_t)B * sizeof(int));
    }
    if ((size_t)B * T > w->cap_tok) {
        w->cap_tok = (size_t)B * T;
        w->dlogp = xrealloc(w->dlogp, w->cap_tok * sizeof(float));
    }
}

// One input of the loss: the n rows of completion y (0 chosen, 1 rejected) under
// view v, their log-probs and where their gradient goes.
static void bind_set(srpo_work *w, int n, int y, int v, pref_seqs *seqs, pref_grad *grad) {
    int r0 = y * REV_VIEWS * n + v * n;
    *seqs = (pref_seqs){.logps = w->pol + r0, .ref_logps = w->ref + r0, .len = w->len + r0};
    grad->grad = w->grad + r0;
}

// The NLL per token of y_w as a revision (rows n..3n-1: given y_l, given y_w),
// times coef, into w->grad; returns the NLL (over w->rev_len tokens when set).
static double revision_nll(srpo_work *w, int n, double coef) {
    double lp = 0, len = 0;
    for (int r = n; r < REV_VIEWS * n; r++) lp += w->pol[r], len += w->len[r];
    if (w->rev_len > 0) len = w->rev_len;
    if (len <= 0) return 0;
    for (int r = n; r < REV_VIEWS * n && coef != 0; r++) w->grad[r] += (float)(-coef / len);
    return -lp / len;
}

int srpo_batch_loss(rlhf_model *policy, rlhf_model *ref, const pref_loss_list *l,
                    const pref_options *o, double nll_coef, const ds_batch *b, double scale,
                    srpo_work *w, srpo_sums *sums, rlhf_err *err) {
    int B = b->B, T = b->T, n = B / (2 * REV_VIEWS);
    if (n < 1 || B != 2 * REV_VIEWS * n) return rlhf_fail(err, "srpo: a batch of %d rows", B);
    work_fit(w, B, T);
    if (model_forward(policy, &b->view, err)) return -1;
    batch_logp_sums(policy, b, w->pol, w->len);
    // the policy's activations are kept for backward: the reference is another model
    if (model_forward(ref, &b->view, err)) return -1;
    batch_logp_sums(ref, b, w->ref, NULL);
    memset(w->grad, 0, (size_t)B * sizeof(float));
    // (y, view) of each input; revisions in algo/pref's order w|l, l|l, w|w, l|w
    static const int rev_set[PREF_NREV][2] = {{0, REV_GIVEN_REJECTED},
                                              {1, REV_GIVEN_REJECTED},
                                              {0, REV_GIVEN_CHOSEN},
                                              {1, REV_GIVEN_CHOSEN}};
    pref_batch pb = {.n = n};
    pref_out out = {0};
    bind_set(w, n, 0, REV_GENERATE, &pb.chosen, &out.chosen);
    bind_set(w, n, 1, REV_GENERATE, &pb.rejected, &out.rejected);
    for (int k = 0; k < PREF_NREV; k++)
        bind_set(w, n, rev_set[k][0], rev_set[k][1], &pb.rev[k], &out.rev[k]);
    if (pref_loss(l, o, &pb, &out, err)) return -1;
    // a rank's share of n_global pairs: its part of the NLL counts for all of them
    int ng = w->n_global > 0 ? w->n_global : n;
    double f = ng == n ? 1.0 : (double)ng / n;
    double nll = revision_nll(w, n, nll_coef * f);
    out.m.loss += nll_coef * nll * f;
    sums->revision_nll += nll * ng;
    for (int j = 0; j < n; j++) {
        double r[PREF_NREV];
        for (int k = 0; k < PREF_NREV; k++) r[k] = pb.rev[k].logps[j] - pb.rev[k].ref_logps[j];
        sums->improve_rejected +=
            o->beta * (r[PREF_REV_CHOSEN_GIVEN_REJECTED] - r[PREF_REV_REJECTED_GIVEN_REJECTED]);
        sums->improve_chosen +=
            o->beta * (r[PREF_REV_CHOSEN_GIVEN_CHOSEN] - r[PREF_REV_REJECTED_GIVEN_CHOSEN]);
    }
    pref_metrics *m = &sums->m;
    m->loss += out.m.loss * n;
    m->rewards_chosen += out.m.rewards_chosen * n;
    m->rewards_rejected += out.m.rewards_rejected * n;
    m->rewards_accuracies += out.m.rewards_accuracies * n;
    m->rewards_margins += out.m.rewards_margins * n;
    m->logps_chosen += out.m.logps_chosen * n;
    m->logps_rejected += out.m.logps_rejected * n;
    sums->pairs += n;
    if (!(scale > 0)) return 0;
    // d(loss)/d(a row's summed log-prob) reaches each of its completion tokens
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)r * T + t;
            w->dlogp[i] = b->targets[i] >= 0 ? (float)(w->grad[r] * scale) : 0.0f;
        }
    model_backward(policy, w->dlogp, NULL, NULL, NULL);
    return 0;
}

// ------------------------------------------------------------- the method --

typedef struct {
    const srpo_config *c;
    pref_loss_list losses;
    rlhf_model *ref;
    ds_dataset *train_src, *eval_src; // the pairs as loaded
    ds_dataset *train, *eval;         // their revision datasets
    int *order, order_epoch, *pairs;
    ds_batch *mb;
    srpo_work w;
    srpo_sums win, evs; // since the last log line; the last eval
    double tokens_total, last_loss;
    float lr, grad_norm;
} srpo_state;

static int srpo_init(trainer *t, rlhf_err *err) {
    srpo_state *s = t->self;
    if (pref_parse(&s->losses, "srpo", NULL, err)) return -1;
    if (!pref_list_needs(&s->losses, PREF_NEED_REVISIONS))
        return rlhf_fail(err, "the srpo loss does not declare revisions");
    if (!s->c->revision_prompt || !s->c->revision_prompt[0])
        return rlhf_fail(err, "--revision_prompt must not be empty");
    if (t->c->packing) return rlhf_fail(err, "srpo trains on pairs: --packing does not apply");
    return 0;
}

// the revision dataset of src, tokenized as train_load_data tokenizes
static int build_revisions(trainer *t, const ds_dataset *src, ds_dataset **out, rlhf_err *err) {
    const train_config *c = t->c;
    rev_instructions ins;
    if (rev_instructions_read(src->path, &ins, err)) return -1;
    int rc = rev_dataset_build(src, &ins, ((srpo_state *)t->self)->c->revision_prompt, out, err);
    rev_instructions_free(&ins);
    if (rc) return -1;
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    to.chat_template = c->chat_template;
    to.max_length = t->max_len;
    to.max_prompt_length = c->max_prompt_length;
    to.truncation = !strcmp(c->truncation_mode, "keep_start") ? DS_KEEP_START : DS_KEEP_END;
    to.add_bos = tok_resolve_add_bos(t->tok, c->add_bos);
    return ds_tokenize(*out, t->tok, &to, NULL, err); // no line dropped: views stay in threes
}

static int srpo_setup(trainer *t, rlhf_err *err) {
    srpo_state *s = t->self;
    const train_config *c = t->c;
    if (train_load_data(c, t->tok, t->max_len, 1u << DS_PREFERENCE, &s->train_src, &s->eval_src,
                        err))
        return -1;
    if (build_revisions(t, s->train_src, &s->train, err)) return -1;
    if (s->eval_src && build_revisions(t, s->eval_src, &s->eval, err)) return -1;
    if (trainer_load_ref(t, s->c->ref_model, 1, &s->ref, err)) return -1;
    t->units = s->train_src->n;
    t->plan_B = 2 * REV_VIEWS * c->batch_size;  // a pair's generator and revision rows
    s->order = xmalloc((size_t)t->units * sizeof(int));
    s->pairs = xmalloc((size_t)c->batch_size * sizeof(int));
    s->order_epoch = -1;
    s->mb = xcalloc(c->gradient_accumulation_steps, sizeof *s->mb);
    s->last_loss = NAN;
    return 0;
}

// micro-batch g of the epoch walk over pairs: its *n pairs; on MPI ranks (a global
// micro-batch of --batch_size x ranks pairs, docs/mpi.md) b holds this rank's
// share of them (whole pairs, train_micro_share; none: b->B = 0)
static int next_batch(trainer *t, long g, ds_batch *b, int *n, rlhf_err *err) {
    srpo_state *s = t->self;
    int epoch, first, mine;
    train_micro_share(t->c, t->units, g, &epoch, &first, &mine, n);
    if (epoch != s->order_epoch) {
        ds_epoch_order(t->units, t->c->seed, epoch, s->order);
        s->order_epoch = epoch;
    }
    if (mine == 0) {
        ds_batch_free(b);
        return 0;
    }
    return srpo_make_batch(s->train, s->order + first, mine, b, err);
}

// tokens of b's revision rows of y_w (n..3n-1 of its n pairs, the NLL's divisor)
static double revision_tokens(const ds_batch *b) {
    int n = b->B / (2 * REV_VIEWS);
    double len = 0;
    for (size_t i = (size_t)n * b->T; i < (size_t)REV_VIEWS * n * b->T; i++) len += b->targets[i] >= 0;
    return len;
}

// MPI ranks: the step's sums over every rank's pairs
static void sums_reduce(srpo_sums *x) {
    pref_metrics *m = &x->m;
    double v[11] = {m->loss, m->rewards_chosen, m->rewards_rejected, m->rewards_accuracies,
                    m->rewards_margins, m->logps_chosen, m->logps_rejected, x->improve_rejected,
                    x->improve_chosen, x->revision_nll, (double)x->pairs};
    dist_allreduce_sum_f64(v, 11);
    m->loss = v[0], m->rewards_chosen = v[1], m->rewards_rejected = v[2];
    m->rewards_accuracies = v[3], m->rewards_margins = v[4], m->logps_chosen = v[5];
    m->logps_rejected = v[6], x->improve_rejected = v[7], x->improve_chosen = v[8];
    x->revision_nll = v[9], x->pairs = (long)v[10];
}

static void sums_add(srpo_sums *a, const srpo_sums *b) {
    pref_metrics *x = &a->m;
    const pref_metrics *y = &b->m;
    x->loss += y->loss, x->rewards_chosen += y->rewards_chosen;
    x->rewards_rejected += y->rewards_rejected, x->rewards_accuracies += y->rewards_accuracies;
    x->rewards_margins += y->rewards_margins, x->logps_chosen += y->logps_chosen;
    x->logps_rejected += y->logps_rejected;
    a->improve_rejected += b->improve_rejected, a->improve_chosen += b->improve_chosen;
    a->revision_nll += b->revision_nll;
    a->pairs += b->pairs;
}

static int srpo_step(trainer *t, int step, rlhf_err *err) {
    srpo_state *s = t->self;
    const train_config *c = t->c;
    int G = c->gradient_accumulation_steps, dp = dist_size() > 1;
    long pairs = 0;
    double ntok = 0, *len = xcalloc(G + 1, sizeof(double));  // len[G]: the tokens
    int *ng = xmalloc((size_t)G * sizeof(int));
    for (int k = 0; k < G; k++) {
        if (next_batch(t, (long)step * G + k, &s->mb[k], &ng[k], err)) {
            free(len), free(ng);
            return -1;
        }
        pairs += ng[k];
        for (int i = 0; i < s->mb[k].B * s->mb[k].T; i++) ntok += s->mb[k].mask[i];
        if (dp && s->mb[k].B > 0) len[k] = revision_tokens(&s->mb[k]);
    }
    len[G] = ntok;
    dist_allreduce_sum_f64(len, G + 1);  // MPI ranks: each micro-batch's NLL divisor, tokens
    ntok = len[G];
    model_zero_grad(t->m);
    srpo_sums sm = {0};
    int rc = 0;
    for (int k = 0; k < G && rc == 0; k++) {
        int n = s->mb[k].B / (2 * REV_VIEWS);
        if (n == 0) continue;  // MPI ranks: no pair of this micro-batch here
        s->w.n_global = dp ? ng[k] : 0, s->w.rev_len = dp ? len[k] : 0;
        rc = srpo_batch_loss(t->m, s->ref, &s->losses, &s->c->opt, s->c->revision_nll_coef,
                             &s->mb[k], (double)n / (double)pairs, &s->w, &sm, err);
    }
    s->w.n_global = 0, s->w.rev_len = 0;
    free(len), free(ng);
    if (rc) return -1;
    if (dp) sums_reduce(&sm);
    double loss = sm.m.loss / (double)sm.pairs;
    if (!isfinite(loss))
        return rlhf_fail(err,
                         "step %d: loss is %g; stopping (checkpoints already written are "
                         "kept; try a lower --learning_rate)",
                         step + 1, loss);
    s->lr = lr_at_step(&t->o->cfg, t->o->step);
    s->grad_norm = optim_step(t->o, t->m);
    sums_add(&s->win, &sm);
    s->last_loss = loss;
    s->tokens_total += ntok;
    snprintf(t->progress, sizeof t->progress, "loss %.4f improve %.2f/%.2f", loss,
             sm.improve_rejected / sm.pairs, sm.improve_chosen / sm.pairs);
    t->step_tokens = ntok;
    return 0;
}

static void put_sums(cJSON *j, const char *prefix, const srpo_sums *x) {
    double n = x->pairs > 0 ? (double)x->pairs : 1;
    char k[96];
#define PUT(name, v)                                                                               \
    (snprintf(k, sizeof k, "%s%s", prefix, name), cJSON_AddNumberToObject(j, k, (v) / n))
    PUT("loss", x->m.loss);
    PUT("rewards/chosen", x->m.rewards_chosen);
    PUT("rewards/rejected", x->m.rewards_rejected);
    PUT("rewards/accuracies", x->m.rewards_accuracies);
    PUT("rewards/margins", x->m.rewards_margins);
    PUT("logps/chosen", x->m.logps_chosen);
    PUT("logps/rejected", x->m.logps_rejected);
    PUT("revision/improve_rejected", x->improve_rejected);
    PUT("revision/improve_chosen", x->improve_chosen);
    PUT("revision/nll", x->revision_nll);
#undef PUT
}

static void srpo_log(trainer *t, cJSON *j) {
    srpo_state *s = t->self;
    cJSON_AddNumberToObject(j, "epoch", trainer_epoch(t, t->step));
    put_sums(j, "", &s->win);
    cJSON_AddNumberToObject(j, "learning_rate", s->lr);
    cJSON_AddNumberToObject(j, "grad_norm", s->grad_norm);
    cJSON_AddNumberToObject(j, "num_tokens", s->tokens_total);
    memset(&s->win, 0, sizeof s->win);
}

// the loss and its parts on every pair of the eval set (no backward)
static int srpo_eval(trainer *t, cJSON *j, rlhf_err *err) {
    srpo_state *s = t->self;
    if (!s->eval) return 0;
    memset(&s->evs, 0, sizeof s->evs);
    int bs = t->c->batch_size, n_pairs = s->eval_src->n;
    ds_batch b = {0};
    int rc = 0;
    for (int i0 = 0; i0 < n_pairs && rc == 0; i0 += bs) {
        int n = n_pairs - i0 < bs ? n_pairs - i0 : bs;
        for (int k = 0; k < n; k++) s->pairs[k] = i0 + k;
        rc = srpo_make_batch(s->eval, s->pairs, n, &b, err) ||
                     srpo_batch_loss(t->m, s->ref, &s->losses, &s->c->opt,
                                     s->c->revision_nll_coef, &b, 0, &s->w, &s->evs, err)
                 ? -1
                 : 0;
    }
    ds_batch_free(&b);
    if (rc == 0) put_sums(j, "eval_", &s->evs);
    return rc;
}

static void srpo_finish(trainer *t, cJSON *sum, const char *path) {
    srpo_state *s = t->self;
    cJSON_AddNumberToObject(sum, "steps", t->o->step);
    cJSON_AddNumberToObject(sum, "train_loss", s->last_loss);
    if (s->eval) put_sums(sum, "eval_", &s->evs);
    cJSON_AddNumberToObject(sum, "tokens", s->tokens_total);
    if (!t->c->quiet)
        fprintf(stderr, "srpo: %d steps, final loss %.4f, model in %s\n", t->o->step, s->last_loss,
                path);
}

static void srpo_free(trainer *t) {
    srpo_state *s = t->self;
    if (s->mb)
        for (int k = 0; k < t->c->gradient_accumulation_steps; k++) ds_batch_free(&s->mb[k]);
    free(s->mb);
    free(s->order);
    free(s->pairs);
    srpo_work_free(&s->w);
    ds_free(s->train_src), ds_free(s->eval_src), ds_free(s->train), ds_free(s->eval);
    model_free(s->ref);
}

static const trainer_method srpo_method = {
    .name = "srpo",
    .data_parallel = 1,
    .init = srpo_init,
    .setup = srpo_setup,
    .step = srpo_step,
    .log = srpo_log,
    .eval = srpo_eval,
    .finish = srpo_finish,
    .free = srpo_free,
};

int srpo_train(const srpo_config *c, rlhf_err *err) {
    srpo_state s = {.c = c};
    return trainer_run(&c->base, &srpo_method, &s, err);
}
