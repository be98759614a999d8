// train/common: settings, data and optimizer shared by the trainers.
#include "train/common.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"

void train_default_config(train_config *c) {
    memset(c, 0, sizeof *c);
    c->model = "tiny";
    c->output_dir = "runs/train";
    c->max_length = 0;  // the model's max_seq_len
    c->truncation_mode = "keep_end";
    c->add_bos = -1;  // the tokenizer's convention
    c->learning_rate = 2e-5f;
    c->max_grad_norm = 1.0f;
    c->lr_scheduler_type = "linear";
    c->num_train_epochs = 3;
    c->max_steps = -1;
    c->batch_size = 8;
    c->gradient_accumulation_steps = 1;
    c->logging_steps = 10;
    c->save_steps = 500;
    c->seed = 42;
    lora_config_default(&c->lora);
    c->dtype = "float32";
}

int train_check_config(const train_config *c, rlhf_err *err) {
    const lora_config *l = &c->lora;
    if (l->r < 1) return rlhf_fail(err, "--lora_r must be at least 1 (got %d)", l->r);
    if (!(l->alpha > 0)) return rlhf_fail(err, "--lora_alpha must be > 0 (got %g)", l->alpha);
    if (!(l->dropout >= 0 && l->dropout < 1))
        return rlhf_fail(err, "--lora_dropout must be in [0, 1) (got %g)", l->dropout);
    const char *m = c->lora_target_modules;
    if (m && m[0]) {  // a name one of the architectures has (the model's is checked at load)
        unsigned bits;
        rlhf_err e1, e2;
        if (lora_targets_parse(m, ARCH_GPT2, &bits, &e1) &&
            lora_targets_parse(m, ARCH_LLAMA, &bits, &e2))
            return rlhf_fail(err, "--lora_target_modules \"%s\": %s; %s", m, e1.msg, e2.msg);
    }
    if (!c->dtype || (strcmp(c->dtype, "float32") && strcmp(c->dtype, "bfloat16")))
        return rlhf_fail(err, "--dtype must be float32 or bfloat16 (got \"%s\")",
                         c->dtype ? c->dtype : "");
    if (!strcmp(c->dtype, "bfloat16") && !c->use_peft)
        return rlhf_fail(err, "--dtype bfloat16 stores the frozen weights in bf16, and only a "
                              "LoRA run has frozen weights: add --use_peft (full bf16 training "
                              "is not supported yet)");
    return 0;
}

int parse_lr_schedule(const char *s, rlhf_lr_schedule *out, rlhf_err *err) {
    if (!strcmp(s, "constant") || !strcmp(s, "constant_with_warmup")) *out = LR_CONSTANT;
    else if (!strcmp(s, "linear")) *out = LR_LINEAR;
    else if (!strcmp(s, "cosine")) *out = LR_COSINE;
    else
        return rlhf_fail(err, "--lr_scheduler_type must be constant, linear or cosine (got \"%s\")",
                         s);
    return 0;
}

int train_max_length(const train_config *c, const rlhf_model *m) {
    if (c->max_length > m->cfg.max_seq_len)
        fprintf(stderr, "note: --max_length %d is longer than the model's max_seq_len %d; using %d\n",
                c->max_length, m->cfg.max_seq_len, m->cfg.max_seq_len);
    if (c->max_length <= 0 || c->max_length > m->cfg.max_seq_len) return m->cfg.max_seq_len;
    return c->max_length;
}

void train_remember_tokenizer(const train_config *c, rlhf_model *m) {
    if (!c->tokenizer) return;
    if (!strcmp(c->tokenizer, "byte")) {
        snprintf(m->cfg.tokenizer, sizeof m->cfg.tokenizer, "byte");
        return;
    }
    char abs[PATH_MAX];
    if (realpath(c->tokenizer, abs) && strlen(abs) < sizeof m->cfg.tokenizer)
        memcpy(m->cfg.tokenizer, abs, strlen(abs) + 1);
}

int train_load_data(const train_config *c, const rlhf_tokenizer *tok, int max_len,
                    unsigned allowed, ds_dataset **train, ds_dataset **eval, rlhf_err *err) {
    if (!c->data) return rlhf_fail(err, "--data is required (a JSONL file in a TRL format)");
    if (strcmp(c->truncation_mode, "keep_end") && strcmp(c->truncation_mode, "keep_start"))
        return rlhf_fail(err, "--truncation_mode must be keep_end or keep_start (got \"%s\")",
                         c->truncation_mode);
    ds_load_opts lo = {.format = DS_AUTO, .skip_bad_lines = c->skip_bad_lines};
    ds_report rep = {0};
    ds_dataset *all;
    *train = *eval = NULL;
    if (ds_load(&all, c->data, &lo, &rep, err)) return -1;
    if (rep.n_skipped) {
        char buf[3000];
        ds_report_format(&rep, buf, sizeof buf);
        fprintf(stderr, "%s: %s\n", c->data, buf);
    }
    if (!(allowed & (1u << all->format))) {
        char names[200] = "";
        for (int f = DS_TEXT; f <= DS_PROMPT_ONLY; f++)
            if (allowed & (1u << f)) {
                if (names[0]) strncat(names, ", ", sizeof names - strlen(names) - 1);
                strncat(names, ds_format_name((ds_format)f), sizeof names - strlen(names) - 1);
            }
        rlhf_fail(err, "%s: this command needs %s data (this file is %s)", c->data, names,
                  ds_format_name(all->format));
        ds_free(all);
        return -1;
    }
    if (c->eval_data) {
        *train = all;
        lo.format = all->format;
        if (ds_load(eval, c->eval_data, &lo, NULL, err)) goto fail;
    } else if (c->eval_split > 0) {
        if (ds_split(all, c->eval_split, c->seed, train, eval, err)) return -1;
    } else {
        *train = all;
    }
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    to.chat_template = c->chat_template;
    to.max_length = max_len;
    to.max_prompt_length = c->max_prompt_length;
    to.truncation = !strcmp(c->truncation_mode, "keep_start") ? DS_KEEP_START : DS_KEEP_END;
    to.skip_bad_lines = c->skip_bad_lines;
    to.add_bos = tok_resolve_add_bos(tok, c->add_bos);
    if (ds_tokenize(*train, tok, &to, NULL, err)) goto fail;
    if (*eval && ds_tokenize(*eval, tok, &to, NULL, err)) goto fail;
    return 0;
fail:
    ds_free(*train);
    ds_free(*eval);
    *train = *eval = NULL;
    return -1;
}

rlhf_optim *train_make_optim(const train_config *c, size_t n_params, int total, rlhf_err *err) {
    rlhf_lr_schedule sched = LR_CONSTANT;
    if (parse_lr_schedule(c->lr_scheduler_type, &sched, err)) return NULL;
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.lr = c->learning_rate;
    oc.weight_decay = c->weight_decay;
    oc.max_grad_norm = c->max_grad_norm;
    oc.schedule = sched;
    oc.total_steps = total;
    oc.warmup_steps = (int)ceil(c->warmup_ratio * total);
    return optim_create(&oc, n_params);
}

int train_total_steps(const train_config *c, int units, rlhf_err *err) {
    return train_total_steps_of(c, units, train_global_batch(c), err);
}

int train_total_steps_of(const train_config *c, int units, int batch, rlhf_err *err) {
    // epochs of micro-batches (the last of each epoch may be short), grouped into steps
    long micro = (long)c->num_train_epochs * train_micro_batches(units, batch);
    long ga = c->gradient_accumulation_steps;
    int total = c->max_steps > 0 ? c->max_steps : (int)((micro + ga - 1) / ga);
    if (total <= 0) return rlhf_fail(err, "nothing to train: set --max_steps or --num_train_epochs");
    return total;
}

long train_micro_batches(int units, int batch) { return ((long)units + batch - 1) / batch; }

int train_global_batch(const train_config *c) { return c->batch_size * dist_size(); }

double train_epoch_at(const train_config *c, int units, int steps) {
    return train_epoch_at_of(c, units, train_global_batch(c), steps);
}

double train_epoch_at_of(const train_config *c, int units, int batch, int steps) {
    return (double)steps * c->gradient_accumulation_steps / train_micro_batches(units, batch);
}

void train_micro_share(const train_config *c, int units, long g, int *epoch, int *first, int *n,
                       int *global_n) {
    int i, gn;
    train_micro_batch(units, train_global_batch(c), g, epoch, &i, &gn);
    long b, e;
    dist_share(gn, dist_rank(), dist_size(), &b, &e);
    *first = i + (int)b;
    *n = (int)(e - b);
    *global_n = gn;
}

void train_micro_batch(int units, int batch, long g, int *epoch, int *first, int *n) {
    long per_epoch = train_micro_batches(units, batch); // the last one may be short
    *epoch = (int)(g / per_epoch);
    *first = (int)(g % per_epoch) * batch;
    *n = units - *first < batch ? units - *first : batch;
}

void train_walk_init(train_walk *w, const ds_dataset *ds, uint64_t seed) {
    w->ds = ds;
    w->seed = seed;
    w->order = xmalloc((size_t)(ds->n > 0 ? ds->n : 1) * sizeof(int));
    w->epoch = -1;
}

void train_walk_free(train_walk *w) {
    free(w->order);
    w->order = NULL;
}

int train_step_batches(const train_config *c, train_walk *w, int step, ds_batch *mb, long *items,
                       rlhf_err *err) {
    int units = w->ds->n;
    *items = 0;
    for (int k = 0; k < c->gradient_accumulation_steps; k++) {
        int epoch, i, n, gn;
        train_micro_share(c, units, (long)step * c->gradient_accumulation_steps + k, &epoch, &i,
                          &n, &gn);
        if (epoch != w->epoch) {
            ds_epoch_order(units, w->seed, epoch, w->order);
            w->epoch = epoch;
        }
        *items += gn;
        if (n == 0) {  // this rank's share of a short micro-batch is empty
            mb[k].B = mb[k].view.B = 0;
            mb[k].n_pairs = 0;
            continue;
        }
        if (ds_make_batch(w->ds, w->order + i, n, NULL, &mb[k], err)) return -1;
    }
    return 0;
}

int train_global_examples(const train_config *c, train_walk *w, long g, int *ex) {
    int epoch, i, n;
    train_micro_batch(w->ds->n, train_global_batch(c), g, &epoch, &i, &n);
    if (epoch != w->epoch) {
        ds_epoch_order(w->ds->n, w->seed, epoch, w->order);
        w->epoch = epoch;
    }
    memcpy(ex, w->order + i, (size_t)n * sizeof(int));
    return n;
}
