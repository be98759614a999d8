// cli/capi: the C ABI of the Python binding (see capi.h). Each entry point
// turns its plain arguments into the library's own calls — the ones the
// commands use, so that the binding's numbers are the CLI's: generation goes
// through cli/gen_text (what `rlhf generate` runs), log-probs through the
// trainers' tokenization and batches (ds_tokenize, ds_make_batch), rewards
// through reward_model_score_texts (the rm: source), commands through
// rlhf_cli_main. Errors land in a per-thread buffer instead of stderr.
#include "cli/capi.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/gen_text.h"
#include "data/dataset.h"
#include "data/dataset_rev.h"
#include "model/load.h"
#include "reward/reward_model.h"
#include "tok/chat.h"
#include "train/implicit.h"

// ------------------------------------------------------------------ errors --

static _Thread_local char last_error[1024];

static void set_error(const char *msg) {
    snprintf(last_error, sizeof last_error, "%s", msg);
}

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *rlhf_capi_last_error(void) {
    return last_error;
}

int rlhf_capi_abi_version(void) {
    return 1;
}

void rlhf_capi_free(void *p) {
    free(p);
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

// ------------------------------------------------------------------ models --

struct capi_model {
    rlhf_model *m;
    rlhf_tokenizer *tok;
};

int rlhf_capi_model_load(const char *spec, const char *tokenizer, uint64_t seed, capi_model **out) {
    *out = NULL;
    if (!spec || !*spec)
        return fail("model: give a model (a size name, checkpoint or run directory)");
    rlhf_err err;
    rlhf_model *m = NULL;
    rlhf_tokenizer *t = NULL;
    if (model_load_any(spec, seed, &m, &err) || model_tokenizer(m, tokenizer, &t, &err)) {
        model_free(m);
        set_error(err.msg);
        return -1;
    }
    capi_model *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->tok = t;
    *out = c;
    return 0;
}

void rlhf_capi_model_free(capi_model *c) {
    if (!c) return;
    tok_free(c->tok);
    model_free(c->m);
    free(c);
}

char *rlhf_capi_model_config(const capi_model *c) {
    return config_to_json(&c->m->cfg);
}

// ------------------------------------------------------------- completions --

struct capi_texts {
    int n;
    char **text;
    size_t *len;
    int *ended;
};

int rlhf_capi_texts_count(const capi_texts *t) {
    return t ? t->n : 0;
}

const char *rlhf_capi_texts_get(const capi_texts *t, int i, size_t *len) {
    if (!t || i < 0 || i >= t->n) return NULL;
    if (len) *len = t->len[i];
    return t->text[i];
}

int rlhf_capi_texts_ended(const capi_texts *t, int i) {
    return t && i >= 0 && i < t->n ? t->ended[i] : 0;
}

void rlhf_capi_texts_free(capi_texts *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) free(t->text[i]);
    free(t->text);
    free(t->len);
    free(t->ended);
    free(t);
}

static capi_texts *texts_alloc(int n) {
    capi_texts *t = xcalloc(1, sizeof *t);
    t->n = n;
    t->text = xcalloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    t->len = xcalloc((size_t)(n > 0 ? n : 1), sizeof(size_t));
    t->ended = xcalloc((size_t)(n > 0 ? n : 1), sizeof(int));
    return t;
}

// Checks generate's options as `rlhf generate`'s flag table and checks do.
static int check_gen_options(int max_new, float temperature, int top_k, float top_p, int num_return,
                             int batch_size, const char *chat_template) {
    if (max_new < 1 || max_new > (1 << 20))
        return fail("max_new_tokens must be in [1, 1048576] (got %d)", max_new);
    if (!(temperature >= 0 && temperature <= 100))
        return fail("temperature must be in [0, 100] (got %g)", temperature);
    if (top_k < 0) return fail("top_k must be >= 0 (got %d)", top_k);
    if (!(top_p > 0 && top_p <= 1)) return fail("top_p must be in (0, 1] (got %g)", top_p);
    if (num_return < 1 || num_return > (1 << 16))
        return fail("num_return_sequences must be in [1, 65536] (got %d)", num_return);
    if (batch_size < 1 || batch_size > (1 << 16))
        return fail("batch_size must be in [1, 65536] (got %d)", batch_size);
    if (chat_template && !chat_template_known(chat_template))
        return fail("unknown chat_template \"%s\" (known: %s)", chat_template,
                    chat_template_list());
    return 0;
}

// Samples rows [0, n_prompts * num_return) chunk by chunk, as cmd_generate does.
static int sample_all(capi_model *c, const chat_stops *stops, const rlhf_gen_opts *g,
                      prompt_set *ps, int n_prompts, int num_return, int batch_size, uint64_t seed,
                      capi_texts *out, rlhf_err *err) {
    rlhf_rng rng;
    rng_seed(&rng, seed);
    int total = n_prompts * num_return, rc = 0;
    const int **rows = xmalloc((size_t)batch_size * sizeof(int *));
    int *row_len = xmalloc((size_t)batch_size * sizeof(int));
    int *conv = xmalloc((size_t)batch_size * sizeof(int));
    completion *done = xmalloc((size_t)batch_size * sizeof *done);
    for (int s = 0; s < total && rc == 0; s += batch_size) {
        int nb = total - s < batch_size ? total - s : batch_size;
        for (int j = 0; j < nb; j++) {
            const prompt_set *p = &ps[(s + j) / num_return];
            rows[j] = p->ids[0];
            row_len[j] = p->len[0];
            conv[j] = p->conversational;
        }
        rc = sample_rows(c->m, c->tok, stops, g, &rng, rows, row_len, conv, nb, done, err);
        for (int j = 0; j < nb && rc == 0; j++) {
            size_t n = done[j].len - done[j].start;
            char *text = xmalloc(n + 1);
            memcpy(text, done[j].text + done[j].start, n);
            text[n] = '\0';
            free(done[j].text);
            out->text[s + j] = text;
            out->len[s + j] = n;
            out->ended[s + j] = done[j].ended;
        }
    }
    free(rows), free(row_len), free(conv), free(done);
    return rc;
}

int rlhf_capi_generate(capi_model *c, const char *const *prompts, int n_prompts, int max_new_tokens,
                       float temperature, int top_k, float top_p, int num_return, uint64_t seed,
                       int batch_size, int add_bos, int allow_special, const char *chat_template,
                       capi_texts **out) {
    *out = NULL;
    if (!c) return fail("generate: no model");
    if (n_prompts < 1) return fail("generate: give at least one prompt");
    if (check_gen_options(max_new_tokens, temperature, top_k, top_p, num_return, batch_size,
                          chat_template))
        return -1;
    if ((size_t)n_prompts * (size_t)num_return > (1u << 30))
        return fail("generate: %d prompts x %d completions is too many", n_prompts, num_return);
    rlhf_err err;
    chat_stops stops;
    if (chat_stops_for(chat_template, c->tok, &stops, &err)) return fail("%s", err.msg);
    int bos = tok_resolve_add_bos(c->tok, add_bos), rc = 0, maxT = c->m->cfg.max_seq_len;
    prompt_set *ps = xcalloc((size_t)n_prompts, sizeof *ps);
    for (int i = 0; i < n_prompts && rc == 0; i++) {
        if (!prompts[i])
            rc = rlhf_fail(&err, "prompt %d is None", i);
        else if (load_prompts(&ps[i], prompts[i], NULL, c->tok, chat_template, bos, allow_special,
                              &err))
            rc = rlhf_fail_ctx(&err, "prompt %d", i);
        else if (ps[i].len[0] + max_new_tokens > maxT)
            rc = rlhf_fail(&err,
                           "prompt %d has %d tokens; with max_new_tokens %d that is over "
                           "the model's max_seq_len %d",
                           i, ps[i].len[0], max_new_tokens, maxT);
    }
    if (rc == 0) {
        rlhf_gen_opts g;
        gen_opts_for(&stops, c->tok, max_new_tokens, temperature, top_k, top_p, &g);
        capi_texts *t = texts_alloc(n_prompts * num_return);
        rc = sample_all(c, &stops, &g, ps, n_prompts, num_return, batch_size, seed, t, &err);
        if (rc)
            rlhf_capi_texts_free(t);
        else
            *out = t;
    }
    for (int i = 0; i < n_prompts; i++) prompt_set_free(&ps[i]);
    free(ps);
    return rc ? fail("%s", err.msg) : 0;
}

// --------------------------------------------------------------- log-probs --

struct capi_logprobs {
    int n;
    int *n_tokens, *n_prompt;
    int **tokens, **prompt;
    float **values;
    double *sum;
};

int rlhf_capi_logprobs_count(const capi_logprobs *l) {
    return l ? l->n : 0;
}

static int in_range(const capi_logprobs *l, int i) {
    return l && i >= 0 && i < l->n;
}

int rlhf_capi_logprobs_n_tokens(const capi_logprobs *l, int i) {
    return in_range(l, i) ? l->n_tokens[i] : 0;
}
const int *rlhf_capi_logprobs_tokens(const capi_logprobs *l, int i) {
    return in_range(l, i) ? l->tokens[i] : NULL;
}
const float *rlhf_capi_logprobs_values(const capi_logprobs *l, int i) {
    return in_range(l, i) ? l->values[i] : NULL;
}
int rlhf_capi_logprobs_n_prompt(const capi_logprobs *l, int i) {
    return in_range(l, i) ? l->n_prompt[i] : 0;
}
const int *rlhf_capi_logprobs_prompt(const capi_logprobs *l, int i) {
    return in_range(l, i) ? l->prompt[i] : NULL;
}
double rlhf_capi_logprobs_sum(const capi_logprobs *l, int i) {
    return in_range(l, i) ? l->sum[i] : 0;
}

void rlhf_capi_logprobs_free(capi_logprobs *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->tokens[i]), free(l->prompt[i]), free(l->values[i]);
    free(l->tokens), free(l->prompt), free(l->values);
    free(l->n_tokens), free(l->n_prompt), free(l->sum);
    free(l);
}

static capi_logprobs *logprobs_alloc(int n) {
    capi_logprobs *l = xcalloc(1, sizeof *l);
    l->n = n;
    l->n_tokens = xcalloc((size_t)n, sizeof(int));
    l->n_prompt = xcalloc((size_t)n, sizeof(int));
    l->tokens = xcalloc((size_t)n, sizeof(int *));
    l->prompt = xcalloc((size_t)n, sizeof(int *));
    l->values = xcalloc((size_t)n, sizeof(float *));
    l->sum = xcalloc((size_t)n, sizeof(double));
    return l;
}

static int *copy_ints(const int *a, int n) {
    int *d = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (n > 0) memcpy(d, a, (size_t)n * sizeof(int));
    return d;
}

// The examples (prompts[i], completions[i]) as an in-memory prompt/completion
// dataset, tokenized as the trainers tokenize such a file.
static int logprob_dataset(const capi_model *c, const char *const *prompts,
                           const char *const *completions, int n, int add_eos, ds_dataset **out,
                           rlhf_err *err) {
    ds_dataset *ds = rev_dataset_alloc("(python)", DS_PROMPT_COMPLETION, n);
    for (int i = 0; i < n; i++) {
        ds_example *e = &ds->ex[i];
        e->line = i + 1;
        e->label = -1;
        e->margin = e->strength = e->score = NAN;
        e->prompt.text = dup_string(prompts[i]);
        e->completion.text = dup_string(completions[i]);
    }
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    to.add_bos = tok_default_add_bos(c->tok); // as the trainers tokenize
    to.add_eos = add_eos;
    to.max_length = c->m->cfg.max_seq_len;
    to.truncation = DS_TRUNCATE_OFF; // a log-prob of a cut text would mislead
    int rc = ds_tokenize(ds, c->tok, &to, NULL, err);
    for (int i = 0; i < n && rc == 0; i++)
        if (ds->tok[i].n_prompt == 0) // the first completion token would have no context
            rc = rlhf_fail(err,
                           "prompt %d is empty and the tokenizer (%s) adds no BOS to start "
                           "from: give a non-empty prompt",
                           i, tok_kind(c->tok));
    if (rc) {
        ds_free(ds);
        return -1;
    }
    *out = ds;
    return 0;
}

// Copies row r of the last forward (batch b, example i of ds) into l.
static void logprob_row(const rlhf_model *m, const ds_batch *b, int r, const ds_tokens *k, int i,
                        capi_logprobs *l) {
    int n = 0;
    float *v = xmalloc((size_t)(b->T > 0 ? b->T : 1) * sizeof(float));
    int *ids = xmalloc((size_t)(b->T > 0 ? b->T : 1) * sizeof(int));
    double s = 0;
    for (int t = 0; t < b->T; t++) {
        size_t at = (size_t)r * b->T + t;
        if (b->targets[at] < 0) continue;
        ids[n] = b->targets[at];
        v[n++] = m->logp[at];
        s += m->logp[at];
    }
    l->n_tokens[i] = n;
    l->tokens[i] = ids;
    l->values[i] = v;
    l->sum[i] = s;
    l->n_prompt[i] = k->n_prompt;
    l->prompt[i] = copy_ints(k->prompt, k->n_prompt);
}

int rlhf_capi_logprobs(capi_model *c, const char *const *prompts, const char *const *completions,
                       int n, int add_eos, int batch_size, capi_logprobs **out) {
    *out = NULL;
    if (!c) return fail("logprobs: no model");
    if (n < 1) return fail("logprobs: give at least one prompt and completion");
    if (batch_size < 1) return fail("logprobs: batch_size must be >= 1 (got %d)", batch_size);
    for (int i = 0; i < n; i++)
        if (!prompts[i] || !completions[i])
            return fail("logprobs: prompt or completion %d is None", i);
    rlhf_err err;
    ds_dataset *ds;
    if (logprob_dataset(c, prompts, completions, n, add_eos, &ds, &err))
        return fail("logprobs: %s", err.msg);
    capi_logprobs *l = logprobs_alloc(n);
    ds_batch b = {0};
    int *idx = xmalloc((size_t)batch_size * sizeof(int)), rc = 0;
    for (int i0 = 0; i0 < n && rc == 0; i0 += batch_size) {
        int nb = n - i0 < batch_size ? n - i0 : batch_size;
        for (int j = 0; j < nb; j++) idx[j] = i0 + j;
        rc = ds_make_batch(ds, idx, nb, NULL, &b, &err) || model_forward(c->m, &b.view, &err);
        for (int j = 0; j < nb && rc == 0; j++)
            logprob_row(c->m, &b, j, &ds->tok[i0 + j], i0 + j, l);
    }
    free(idx);
    ds_batch_free(&b);
    ds_free(ds);
    if (rc) {
        rlhf_capi_logprobs_free(l);
        return fail("logprobs: %s", err.msg);
    }
    *out = l;
    return 0;
}

// ------------------------------------------------------------ reward model --

struct capi_reward_model {
    reward_model rm;
};

int rlhf_capi_reward_model_load(const char *path, const char *tokenizer, capi_reward_model **out) {
    *out = NULL;
    if (!path || !*path) return fail("reward model: give a path");
    capi_reward_model *r = xcalloc(1, sizeof *r);
    rlhf_err err;
    if (reward_model_load(&r->rm, path, tokenizer, &err)) {
        free(r);
        return fail("%s", err.msg);
    }
    *out = r;
    return 0;
}

void rlhf_capi_reward_model_free(capi_reward_model *r) {
    if (!r) return;
    reward_model_free(&r->rm);
    free(r);
}

int rlhf_capi_reward_model_members(const capi_reward_model *r) {
    return r ? r->rm.K : 0;
}

int rlhf_capi_reward_model_score(capi_reward_model *r, const char *const *prompts,
                                 const char *const *completions, int n, int batch_size,
                                 float *out) {
    if (!r) return fail("score: no reward model");
    if (n < 1) return fail("score: give at least one prompt and completion");
    if (batch_size < 1) return fail("score: batch_size must be >= 1 (got %d)", batch_size);
    for (int i = 0; i < n; i++)
        if (!prompts[i] || !completions[i])
            return fail("score: prompt or completion %d is None", i);
    rlhf_err err;
    if (reward_model_score_texts(&r->rm, prompts, completions, n, batch_size, out, &err))
        return fail("score: %s", err.msg);
    return 0;
}

// -------------------------------------------------------------- commands --

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;

// The whole of a temporary file (malloc'd, NUL-terminated).
static char *slurp(FILE *f) {
    fflush(f);
    long n = ftell(f);
    char *s = xmalloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = 0;
    if (n > 0 && fseek(f, 0, SEEK_SET) == 0) got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    return s;
}

// The last non-empty line of s, as the error.
static void error_from_output(const char *s, int status) {
    const char *end = s + strlen(s);
    while (end > s && (end[-1] == '\n' || end[-1] == '\r')) end--;
    const char *start = end;
    while (start > s && start[-1] != '\n') start--;
    if (end > start)
        fail("%.*s", (int)(end - start), start);
    else
        fail("the command exited with status %d", status);
}

// Points fd at file f for the call's duration; *saved keeps the old one.
static int redirect(int fd, FILE *f, int *saved) {
    *saved = dup(fd);
    if (*saved < 0) return -1;
    if (dup2(fileno(f), fd) < 0) {
        close(*saved);
        return -1;
    }
    return 0;
}

static void restore(int fd, int saved) {
    dup2(saved, fd);
    close(saved);
}

static int run_captured(int argc, char **argv, char **out_text, char **err_text) {
    FILE *fo = tmpfile(), *fe = tmpfile();
    int so = -1, se = -1;
    fflush(stdout);
    fflush(stderr);
    if (!fo || !fe || redirect(1, fo, &so) || redirect(2, fe, &se)) {
        if (so >= 0) restore(1, so);
        if (fo) fclose(fo);
        if (fe) fclose(fe);
        return fail("run: cannot capture the command's output (tmpfile or dup2 failed)");
    }
    int status = rlhf_cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    restore(1, so);
    restore(2, se);
    char *o = slurp(fo), *e = slurp(fe);
    fclose(fo);
    fclose(fe);
    if (status != 0) error_from_output(e, status);
    if (out_text)
        *out_text = o;
    else
        free(o);
    if (err_text)
        *err_text = e;
    else
        free(e);
    return status;
}

int rlhf_capi_run(int argc, char **argv, int capture, char **out_text, char **err_text) {
    if (out_text) *out_text = NULL;
    if (err_text) *err_text = NULL;
    if (argc < 1 || !argv) return fail("run: argv must hold at least the program name");
    pthread_mutex_lock(&run_lock);
    int status;
    if (capture) {
        status = run_captured(argc, argv, out_text, err_text);
    } else {
        status = rlhf_cli_main(argc, argv);
        fflush(stdout);
        fflush(stderr);
        if (status != 0)
            fail("the command exited with status %d (its message is on stderr)", status);
    }
    pthread_mutex_unlock(&run_lock);
    return status;
}
