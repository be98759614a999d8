// train/trainer: the training skeleton (see trainer.h for the contract).
#include "train/trainer.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"

// ------------------------------------------------------------ clean stops --

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
    signal(sig, SIG_DFL);  // a second one stops at once
}

typedef struct {
    void (*int_handler)(int), (*term_handler)(int);
} saved_handlers;

static saved_handlers catch_signals(void) {
    stop_signal = 0;
    return (saved_handlers){signal(SIGINT, on_signal), signal(SIGTERM, on_signal)};
}

static void restore_signals(saved_handlers h) {
    signal(SIGINT, h.int_handler == SIG_ERR ? SIG_DFL : h.int_handler);
    signal(SIGTERM, h.term_handler == SIG_ERR ? SIG_DFL : h.term_handler);
}

// ---------------------------------------------------------------- helpers --

void trainer_log_json(trainer *t, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    run_log(&t->run, s);
    free(s);
}

double trainer_epoch(const trainer *t, int steps) { return train_epoch_at(t->c, t->units, steps); }

int trainer_load_ref(const trainer *t, const char *path, int same_shape, rlhf_model **ref,
                     rlhf_err *err) {
    const char *rp = path ? path : t->c->model;
    if (model_load_any(rp, t->c->seed, ref, err)) return -1;
    if ((*ref)->cfg.vocab_size != t->m->cfg.vocab_size) {
        rlhf_fail(err, "--ref_model %s has a vocabulary of %d, the policy %d", rp,
                  (*ref)->cfg.vocab_size, t->m->cfg.vocab_size);
    } else if (same_shape && (*ref)->n_params != t->m->n_params) {
        rlhf_fail(err, "--ref_model %s does not have the policy's architecture", rp);
    } else {
        return 0;
    }
    model_free(*ref);
    *ref = NULL;
    return -1;
}

static int save_extra(const char *tmp, void *ctx, rlhf_err *err) {
    trainer *t = ctx;
    return t->method->save(t, tmp, err);
}

// step-N (or final when step < 0) with the method's extra state
static int save_checkpoint(trainer *t, int step, char *path, size_t n, rlhf_err *err) {
    run_checkpoint_path(&t->run, step, path, n);
    return checkpoint_save_with(path, t->m, t->o, &t->rng, t->method->save ? save_extra : NULL, t,
                                err);
}

// a metrics line with the method's eval numbers, when it has any
static int eval_line(trainer *t, int step, rlhf_err *err) {
    if (!t->method->eval) return 0;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "step", step);
    if (t->method->eval(t, j, err)) {
        cJSON_Delete(j);
        return -1;
    }
    if (cJSON_GetArraySize(j) > 1) trainer_log_json(t, j);
    else cJSON_Delete(j);
    return 0;
}

// ------------------------------------------------------------------ phases --

// everything before the first step: run directory, models, data, optimizer
static int trainer_start(trainer *t, rlhf_err *err) {
    const train_config *c = t->c;
    const trainer_method *me = t->method;
    if (me->init && me->init(t, err)) return -1;
    if (run_prepare(c, t->extra, t->resume_from, sizeof t->resume_from, err)) return -1;
    if (model_load_any(t->resume_from[0] ? t->resume_from : c->model, c->seed, &t->m, err))
        return -1;
    if (me->policy && me->policy(t, err)) return -1;
    if (model_tokenizer(t->m, c->tokenizer, &t->tok, err)) return -1;
    train_remember_tokenizer(c, t->m);
    t->max_len = train_max_length(c, t->m);
    if (me->setup(t, err)) return -1;
    if (t->total <= 0 && (t->total = train_total_steps(c, t->units, err)) < 0) return -1;
    long optim_steps = t->optim_steps > 0 ? t->optim_steps : t->total;
    if (optim_steps > 0x7fffffff) return rlhf_fail(err, "%ld optimizer steps is too many", optim_steps);
    if (!(t->o = train_make_optim(c, model_n_trainable(t->m), (int)optim_steps, err))) return -1;
    rng_seed(&t->rng, c->seed);
    int resuming = t->resume_from[0] != 0;
    if (resuming) {
        if (checkpoint_load_optim(t->resume_from, t->o, &t->rng, err)) return -1;
        t->step = t->o->step;
        if (me->resume && me->resume(t, err)) return -1;
        fprintf(stderr, "%s: resuming from %s (step %d)\n", t->name, t->resume_from, t->step);
    }
    if (run_open(&t->run, c->output_dir, c->config_json, resuming ? t->step : -1, err)) return -1;
    if (me->writes_samples) {
        char sp[2200];
        snprintf(sp, sizeof sp, "%s/samples.jsonl", t->run.dir);
        if (!(t->samples = fopen(sp, resuming ? "a" : "w")))
            return rlhf_fail(err, "cannot write %s", sp);
    }
    return 0;
}

// the step loop; stops after a finished step when a signal came
static int trainer_loop(trainer *t, rlhf_err *err) {
    const train_config *c = t->c;
    progress pb;
    progress_start(&pb, t->name, t->total, c->logging_steps);
    for (; t->step < t->total; ) {
        t->progress[0] = 0;
        t->step_tokens = 0;
        if (t->method->step(t, t->step, err)) return -1;
        int done = ++t->step;
        if (done % c->logging_steps == 0 || done == t->total) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done);
            t->method->log(t, j);
            trainer_log_json(t, j);
        }
        if ((c->eval_steps > 0 && done % c->eval_steps == 0) || done == t->total)
            if (eval_line(t, done, err)) return -1;
        int stop = stop_signal != 0 && done != t->total;
        if ((c->save_steps > 0 && done % c->save_steps == 0 && done != t->total) || stop) {
            char path[4400];
            if (save_checkpoint(t, done, path, sizeof path, err)) return -1;
            if (stop)
                return rlhf_fail(err, "stopped by signal %d after step %d of %d; checkpoint %s "
                                      "written (--resume goes on from it)",
                                 (int)stop_signal, done, t->total, path);
        }
        if (!c->quiet) progress_update(&pb, done, t->progress, t->step_tokens);
    }
    if (!c->quiet) progress_end(&pb);
    return 0;
}

// the final checkpoint and summary.json
static int trainer_end(trainer *t, rlhf_err *err) {
    char path[4400];
    if (save_checkpoint(t, -1, path, sizeof path, err)) return -1;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "command", t->name);
    if (t->method->finish) t->method->finish(t, s, path);
    cJSON_AddNumberToObject(s, "seconds", time_now() - t->t_start);
    cJSON_AddStringToObject(s, "model", path);
    char *js = cJSON_Print(s);
    cJSON_Delete(s);
    int rc = run_summary(&t->run, js, err);
    free(js);
    return rc;
}

int trainer_run(const train_config *c, const trainer_method *method, void *self, rlhf_err *err) {
    trainer t = {.c = c, .method = method, .self = self, .name = method->name,
                 .t_start = time_now()};
    saved_handlers h = catch_signals();
    int rc = -1;
    if (trainer_start(&t, err) == 0 && trainer_loop(&t, err) == 0 && trainer_end(&t, err) == 0)
        rc = 0;
    restore_signals(h);
    if (method->free) method->free(&t);
    if (t.samples) fclose(t.samples);
    run_close(&t.run);
    optim_free(t.o);
    tok_free(t.tok);
    model_free(t.m);
    return rc;
}
