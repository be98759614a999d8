// train/rm_classify: `rlhf rm --objective classify` on the training skeleton
// (train/trainer.h): a text classifier with one score head, trained with the
// logistic loss (algo/classify_loss.h). The rows are read here (their format is
// not one of dataset.h's: {"text", "label"}, or KTO's prompt/completion/label),
// then held as an UNPAIRED dataset (prompt "" for text rows) so that
// tokenizing, splitting and batching are dataset.h's own. A batch of n texts is
// n rows; the head reads each row's last real token (EOS).
#include "train/rm_classify.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/classify_loss.h"
#include "base/dist.h"
#include "io/file.h"
#include "io/json.h"
#include "train/rm.h"
#include "train/trainer.h"

void rm_classify_default_options(rm_classify_options *o) {
    memset(o, 0, sizeof *o);
    o->pos_weight = 1;
}

// --------------------------------------------------------------- the rows --

typedef enum { CLS_UNKNOWN = 0, CLS_TEXT, CLS_PROMPT_COMPLETION } cls_input;

static const char *input_name(cls_input k) {
    return k == CLS_TEXT ? "text" : k == CLS_PROMPT_COMPLETION ? "prompt_completion" : "?";
}

static const char *kind_of(const cJSON *v) {
    return cJSON_IsString(v) ? "a string" : cJSON_IsNumber(v) ? "a number" : cJSON_IsBool(v) ? "a boolean"
           : cJSON_IsArray(v) ? "a list" : cJSON_IsObject(v) ? "an object" : "null";
}

// a non-null field of o (NULL when absent or null)
static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

// One row into ex; 0, or -1 + "reason" in why.
static int parse_row(const cJSON *o, cls_input *kind, ds_example *ex, char *why, size_t nw) {
    if (!cJSON_IsObject(o)) return snprintf(why, nw, "not a JSON object"), -1;
    cls_input k = field(o, "text") ? CLS_TEXT : field(o, "completion") ? CLS_PROMPT_COMPLETION
                                                                        : CLS_UNKNOWN;
    if (k == CLS_UNKNOWN)
        return snprintf(why, nw, "field \"text\" missing (a classifier row is {\"text\": \"...\", "
                                 "\"label\": true} or {\"prompt\", \"completion\", \"label\"})"), -1;
    if (*kind == CLS_UNKNOWN) *kind = k;
    if (k != *kind)
        return snprintf(why, nw, "this file's first row has \"%s\", this one has \"%s\" (one kind "
                                 "of row per file)",
                        *kind == CLS_TEXT ? "text" : "completion", k == CLS_TEXT ? "text" : "completion"),
               -1;
    const char *names[2] = {"text", NULL};
    if (k == CLS_PROMPT_COMPLETION) names[0] = "prompt", names[1] = "completion";
    for (int i = 0; i < 2 && names[i]; i++) {
        const cJSON *v = field(o, names[i]);
        if (!v) return snprintf(why, nw, "field \"%s\" missing", names[i]), -1;
        if (!cJSON_IsString(v))
            return snprintf(why, nw, "field \"%s\" is %s, expected a string", names[i], kind_of(v)), -1;
        if (!v->valuestring[0] && strcmp(names[i], "prompt"))
            return snprintf(why, nw, "field \"%s\" is empty", names[i]), -1;
    }
    const cJSON *l = field(o, "label");
    if (!l) return snprintf(why, nw, "field \"label\" missing"), -1;
    int label;
    if (cJSON_IsBool(l)) label = cJSON_IsTrue(l);
    else if (cJSON_IsNumber(l) && (l->valuedouble == 0 || l->valuedouble == 1)) label = l->valuedouble == 1;
    else if (cJSON_IsNumber(l))
        return snprintf(why, nw, "field \"label\" is %g, expected true/false or 1/0", l->valuedouble), -1;
    else return snprintf(why, nw, "field \"label\" is %s, expected true/false or 1/0", kind_of(l)), -1;
    ex->prompt.text = strdup(k == CLS_TEXT ? "" : field(o, "prompt")->valuestring);
    ex->completion.text = strdup(field(o, k == CLS_TEXT ? "text" : "completion")->valuestring);
    ex->label = label;
    return 0;
}

// Reads a classifier file into an UNPAIRED dataset (prompt "" for text rows).
// *kind: the rows' kind (CLS_UNKNOWN: set by the first row; else rows must match).
static int load_rows(const char *path, int skip_bad, cls_input *kind, ds_dataset **out,
                     rlhf_err *err) {
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    char where[64];
    if (json_find_nul(text, len, where, sizeof where)) {
        free(text);
        return rlhf_fail(err, "%s: a string holds \\u0000 (%s)", path, where);
    }
    ds_dataset *ds = xcalloc(1, sizeof *ds);
    ds->path = strdup(path);
    ds->format = DS_UNPAIRED;
    int cap = 0, line = 0, skipped = 0, rc = 0;
    char first_bad[600] = "";
    char *p = text, *end = text + len;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;  // a UTF-8 BOM
    while (p < end && rc == 0) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        size_t a = 0;
        while (a < n && (p[a] == ' ' || p[a] == '\t' || p[a] == '\r')) a++;
        if (a < n) {
            char why[400] = "";
            cJSON *o = cJSON_ParseWithLength(p, n);
            if (cap == ds->n) {
                cap = cap ? 2 * cap : 256;
                ds->ex = xrealloc(ds->ex, (size_t)cap * sizeof *ds->ex);
            }
            ds_example *ex = &ds->ex[ds->n];
            memset(ex, 0, sizeof *ex);
            ex->line = line, ex->margin = ex->strength = ex->score = NAN;
            int bad = !o ? (snprintf(why, sizeof why, "invalid JSON"), -1)
                         : parse_row(o, kind, ex, why, sizeof why);
            cJSON_Delete(o);
            if (bad) {
                ds_example_free(ex);
                if (!skip_bad) rc = rlhf_fail(err, "%s:%d: %s", path, line, why);
                else if (!skipped++) snprintf(first_bad, sizeof first_bad, "%s:%d: %s", path, line, why);
            } else {
                ds->n++;
            }
        }
        p += n + (nl ? 1 : 0);
    }
    free(text);
    if (rc == 0 && skipped)
        fprintf(stderr, "%s: skipped %d bad rows (first: %s)\n", path, skipped, first_bad);
    if (rc == 0 && ds->n == 0) rc = rlhf_fail(err, "%s: no rows (expected {\"text\", \"label\"} lines)", path);
    if (rc) {
        ds_free(ds);
        return -1;
    }
    *out = ds;
    return 0;
}

// ------------------------------------------------------------- the method --

typedef struct {
    const rm_config *rc;
    cls_input input;
    ds_dataset *train, *eval;
    train_walk walk;
    ds_batch *mb;
    float *dscore;
    int dcap;
    rm_window win;  // since the last log line
    classify_sums ev0, ev;  // the eval before training and the last one
} cls_state;

static int write_meta(const cls_state *s, const char *dir, rlhf_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "objective", "classify");
    cJSON_AddStringToObject(o, "input", input_name(s->input));
    cJSON_AddStringToObject(o, "score", "P(label true) = sigmoid(score head)");
    char *js = cJSON_Print(o), path[4200];
    cJSON_Delete(o);
    snprintf(path, sizeof path, "%s/%s", dir, CLASSIFY_META);
    int rc = atomic_write_file(path, js, strlen(js), err);
    free(js);
    return rc;
}

static int cls_policy(trainer *t, rlhf_err *err) {
    if (t->m->cfg.score_head == 1) return 0;
    rlhf_model *m = NULL;
    if (model_with_heads(t->m, 1, t->m->cfg.value_head, t->c->seed, &m, err)) return -1;
    model_free(t->m);
    t->m = m;
    return 0;
}

static int count_positives(const ds_dataset *ds) {
    int k = 0;
    for (int i = 0; i < ds->n; i++) k += ds->ex[i].label == 1;
    return k;
}

// the sums over ranks of a step's or an eval's sums (every rank gets them)
static void sums_allreduce(classify_sums *e, double *ntok) {
    if (dist_size() == 1) return;
    double v[7] = {e->loss, e->log_loss, e->correct, e->prob_true, (double)e->rows,
                   (double)e->positives, ntok ? *ntok : 0};
    dist_allreduce_sum_f64(v, 7);
    e->loss = v[0], e->log_loss = v[1], e->correct = v[2], e->prob_true = v[3];
    e->rows = (long)v[4], e->positives = (long)v[5];
    if (ntok) *ntok = v[6];
}

// the eval set's sums (no gradient); with N MPI ranks each scores its share
// of the rows and the sums are added
static int cls_eval_set(trainer *t, const ds_dataset *ds, classify_sums *out, rlhf_err *err) {
    cls_state *s = t->self;
    int bs = t->c->batch_size, *idx = xmalloc((size_t)bs * sizeof(int)), rc = 0;
    ds_batch b = {0};
    classify_sums e = {0};
    long lo, hi;
    dist_share(ds->n, dist_rank(), dist_size(), &lo, &hi);
    for (int i0 = (int)lo; i0 < hi && rc == 0; i0 += bs) {
        int n = hi - i0 < bs ? (int)hi - i0 : bs;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        rlhf_batch view;
        if ((rc = ds_make_batch(ds, idx, n, NULL, &b, err))) break;
        view = b.view;
        view.targets = NULL;
        if ((rc = model_forward(t->m, &view, err))) break;
        classify_bce_loss(n, t->m->score, b.label, s->rc->classify.pos_weight, n, NULL, &e);
    }
    free(idx);
    ds_batch_free(&b);
    if (rc == 0) sums_allreduce(&e, NULL);
    *out = e;
    return rc;
}

static int tokenize(const train_config *c, const rlhf_tokenizer *tok, int max_len, ds_dataset *ds,
                    rlhf_err *err) {
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    to.max_length = max_len;
    to.max_prompt_length = c->max_prompt_length;
    to.truncation = !strcmp(c->truncation_mode, "keep_start") ? DS_KEEP_START : DS_KEEP_END;
    to.skip_bad_lines = c->skip_bad_lines;
    to.add_bos = tok_resolve_add_bos(tok, c->add_bos);
    return ds_tokenize(ds, tok, &to, NULL, err);
}

static int cls_setup(trainer *t, rlhf_err *err) {
    cls_state *s = t->self;
    const train_config *c = t->c;
    if (!c->data) return rlhf_fail(err, "--data is required (JSONL rows {\"text\": \"...\", \"label\": true})");
    if (tok_resolve_add_bos(t->tok, c->add_bos) != tok_default_add_bos(t->tok))
        return rlhf_fail(err, "--objective classify: leave --add_bos at the tokenizer's convention "
                              "(the classify: reward source tokenizes that way)");
    ds_dataset *all = NULL;
    if (load_rows(c->data, c->skip_bad_lines, &s->input, &all, err)) return -1;
    if (c->eval_data) {
        s->train = all;
        if (load_rows(c->eval_data, c->skip_bad_lines, &s->input, &s->eval, err)) return -1;
    } else if (c->eval_split > 0) {
        if (ds_split(all, c->eval_split, c->seed, &s->train, &s->eval, err)) return -1;
    } else {
        s->train = all;
    }
    int pos = count_positives(s->train);
    if (pos == 0 || pos == s->train->n)
        return rlhf_fail(err, "%s: all %d training rows have label %s: a classifier needs both labels",
                         c->data, s->train->n, pos ? "true" : "false");
    if (tokenize(c, t->tok, t->max_len, s->train, err) ||
        (s->eval && tokenize(c, t->tok, t->max_len, s->eval, err)))
        return -1;
    t->units = s->train->n;
    t->plan_B = c->batch_size;
    train_walk_init(&s->walk, s->train, c->seed);
    s->mb = xcalloc(c->gradient_accumulation_steps, sizeof *s->mb);
    if (dist_rank() == 0 && (make_dirs(c->output_dir, err) || write_meta(s, c->output_dir, err)))
        return -1;
    if (s->eval && cls_eval_set(t, s->eval, &s->ev0, err)) return -1;
    s->ev = s->ev0;
    if (!c->quiet)
        fprintf(stderr, "rm: classifier on %s rows: %d to train (%.1f%% true)%s\n",
                input_name(s->input), s->train->n, 100.0 * pos / s->train->n,
                s->eval ? ", held-out set below" : "");
    return 0;
}

// the logistic loss summed over the step's micro-batches, mean over rows (with
// N MPI ranks each its share of every micro-batch, over the global row count)
static int cls_step(trainer *t, int step, rlhf_err *err) {
    cls_state *s = t->self;
    const train_config *c = t->c;
    rlhf_model *m = t->m;
    long rows = 0;
    if (train_step_batches(c, &s->walk, step, s->mb, &rows, err)) return -1;
    model_zero_grad(m);
    classify_sums st = {0};
    double ntok = 0;
    for (int k = 0; k < c->gradient_accumulation_steps; k++) {
        ds_batch *b = &s->mb[k];
        if (b->B == 0) continue;  // an empty share (MPI)
        rlhf_batch view = b->view;
        view.targets = NULL;
        if (model_forward(m, &view, err)) return -1;
        if (b->B > s->dcap) s->dscore = xrealloc(s->dscore, (size_t)(s->dcap = b->B) * sizeof(float));
        classify_bce_loss(b->B, m->score, b->label, s->rc->classify.pos_weight, rows, s->dscore, &st);
        model_backward(m, NULL, NULL, s->dscore, NULL);
        for (int i = 0; i < b->B * b->T; i++) ntok += b->mask[i];
    }
    sums_allreduce(&st, &ntok);
    static const char *const names[] = {"loss", "accuracy"};
    double v[] = {st.loss / st.rows, st.correct / st.rows};
    return rm_step_end(t, &s->win, step, ntok, 2, names, v, err);
}

static void cls_log(trainer *t, cJSON *j) {
    cls_state *s = t->self;
    rm_window_log(t, &s->win, j);
}

static void add_eval(cJSON *j, const char *prefix, const classify_sums *e) {
    char key[80];
    double n = e->rows > 0 ? (double)e->rows : NAN, pos = e->positives / n;
    const char *names[5] = {"accuracy", "log_loss", "prob_true", "positive_rate", "majority_accuracy"};
    double v[5] = {e->correct / n, e->log_loss / n, e->prob_true / n, pos, pos > 0.5 ? pos : 1 - pos};
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof key, "%s%s", prefix, names[k]);
        cJSON_AddNumberToObject(j, key, v[k]);
    }
}

static int cls_eval(trainer *t, cJSON *j, rlhf_err *err) {
    cls_state *s = t->self;
    if (!s->eval) return 0;
    if (cls_eval_set(t, s->eval, &s->ev, err)) return -1;
    add_eval(j, "eval_", &s->ev);
    return 0;
}

static int cls_save(trainer *t, const char *dir, rlhf_err *err) { return write_meta(t->self, dir, err); }

static void cls_finish(trainer *t, cJSON *sum, const char *path) {
    cls_state *s = t->self;
    cJSON_AddNumberToObject(sum, "steps", t->o->step);
    cJSON_AddStringToObject(sum, "objective", "classify");
    cJSON_AddStringToObject(sum, "input", input_name(s->input));
    cJSON_AddNumberToObject(sum, "train_rows", s->train->n);
    if (s->eval) {
        cJSON_AddNumberToObject(sum, "eval_rows", s->eval->n);
        add_eval(sum, "initial_eval_", &s->ev0);
        add_eval(sum, "eval_", &s->ev);
    }
    if (!t->c->quiet && s->eval) {
        double n = (double)s->ev.rows, pos = s->ev.positives / n;
        fprintf(stderr,
                "rm: classifier, held-out accuracy %.4f (before training %.4f; majority class %.4f), "
                "log loss %.4f (before %.4f), model in %s\n",
                s->ev.correct / n, s->ev0.correct / n, pos > 0.5 ? pos : 1 - pos, s->ev.log_loss / n,
                s->ev0.log_loss / n, path);
    }
}

static void cls_free(trainer *t) {
    cls_state *s = t->self;
    train_walk_free(&s->walk);
    if (s->mb)
        for (int k = 0; k < t->c->gradient_accumulation_steps; k++) ds_batch_free(&s->mb[k]);
    free(s->mb);
    free(s->dscore);
    ds_free(s->train);
    ds_free(s->eval);
}

static const trainer_method cls_method = {
    .name = "rm", .data_parallel = 1, .policy = cls_policy, .setup = cls_setup, .step = cls_step, .log = cls_log,
    .eval = cls_eval, .save = cls_save, .finish = cls_finish, .free = cls_free,
};

int rm_classify_train(const rm_config *c, rlhf_err *err) {
    if (c->ensemble_size > 1)
        return rlhf_fail(err, "--objective classify trains one classifier: leave out --ensemble_size");
    if (!(c->classify.pos_weight > 0) || !isfinite(c->classify.pos_weight))
        return rlhf_fail(err, "--classify_pos_weight must be a positive number (got %g)",
                         c->classify.pos_weight);
    cls_state s = {.rc = c};
    return trainer_run(&c->base, &cls_method, &s, err);
}
