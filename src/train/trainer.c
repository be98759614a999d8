// train/trainer: the training skeleton (see trainer.h for the contract).
#include "train/trainer.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "base/progress.h"
#include "model/dtype.h"
#include "model/lora.h"
#include "model/peft.h"

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

// the units of one micro-batch of the walk: --batch_size in all for a method whose
// batch is global, else on each rank
static int walk_batch(const trainer *t) {
    return t->method->global_batch ? t->c->batch_size : train_global_batch(t->c);
}

double trainer_epoch(const trainer *t, int steps) {
    return train_epoch_at_of(t->c, t->units, walk_batch(t), steps);
}

int trainer_lora(const trainer *t) { return t->m && model_lora(t->m) != NULL; }

// floats of the policy without its adapters (what a full reference holds)
static size_t params_without_adapters(const rlhf_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (!strstr(m->tensors[i].name, ".lora_")) n += m->tensors[i].numel;
    return n;
}

int trainer_load_ref(trainer *t, const char *path, int same_shape, rlhf_model **ref,
                     rlhf_err *err) {
    if (!path && trainer_lora(t)) {  // the base with adapters off, read in place
        if (model_share_base(t->m, ref, err)) return -1;
        (*ref)->grad_ckpt = 1;  // forwards only: the smaller layout, same outputs
        if (t->ref_kind == MEM_REF_NONE) t->ref_kind = MEM_REF_SHARED;
        return 0;
    }
    const char *rp = path ? path : t->c->model;
    if (model_load_any(rp, t->c->seed, ref, err)) return -1;
    size_t want = trainer_lora(t) ? params_without_adapters(t->m) : t->m->n_params;
    if ((*ref)->cfg.vocab_size != t->m->cfg.vocab_size) {
        rlhf_fail(err, "--ref_model %s has a vocabulary of %d, the policy %d", rp,
                  (*ref)->cfg.vocab_size, t->m->cfg.vocab_size);
    } else if (same_shape && (*ref)->n_params != want) {
        rlhf_fail(err, "--ref_model %s does not have the policy's architecture", rp);
    } else {
        (*ref)->grad_ckpt = 1;  // forwards only: the smaller layout, same outputs
        t->ref_kind = MEM_REF_COPY;
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

// step-N (or final when step < 0) with the method's extra state. Every rank
// comes here at the same step: with N ranks checkpoint_save_with gathers the
// optimizer's shards to rank 0 (collective), which alone writes (and runs the
// method's save); the others then wait until it has (a rank that stops right
// after must not end the job mid-write).
static int save_checkpoint(trainer *t, int step, char *path, size_t n, rlhf_err *err) {
    run_checkpoint_path(&t->run, step, path, n);
    int rc = checkpoint_save_with(path, t->m, t->o, &t->rng,
                                  t->method->save ? save_extra : NULL, t, err);
    if (rc == 0) dist_barrier();
    return rc;
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

// ------------------------------------------------------------------- LoRA --

// the adapters of a resumed checkpoint must be the ones the flags ask for
static int lora_check_resumed(const trainer *t, const lora_config *want, rlhf_err *err) {
    const lora_config *have = model_lora(t->m);
    const char *where = t->resume_from;
    if (have->r != want->r)
        return rlhf_fail(err, "--lora_r %d: the checkpoint %s has adapters of rank %d (resume "
                              "with the run's flags)", want->r, where, have->r);
    if (fabsf(have->alpha - want->alpha) > 1e-6f * fabsf(want->alpha))
        return rlhf_fail(err, "--lora_alpha %g: the checkpoint %s has alpha %g (resume with "
                              "the run's flags)", want->alpha, where, have->alpha);
    if (fabsf(have->dropout - want->dropout) > 1e-6f)
        return rlhf_fail(err, "--lora_dropout %g: the checkpoint %s was trained with %g (resume "
                              "with the run's flags)", want->dropout, where, have->dropout);
    if (!have->use_rslora != !want->use_rslora)
        return rlhf_fail(err, "--use_rslora: the checkpoint %s was trained %s it", where,
                         have->use_rslora ? "with" : "without");
    if (have->targets != want->targets) {
        const char *hn[16];
        int k = lora_target_names(have->targets, t->m->cfg.arch, hn, 16);
        char list[256] = "";
        for (int i = 0; i < k; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", hn[i]);
        return rlhf_fail(err, "--lora_target_modules: the checkpoint %s has adapters on %s "
                              "(resume with the run's flags)", where, list);
    }
    return 0;
}

// After policy: adapters (attached, or checked against the flags when the
// model came with them), then 16-bit frozen weights and checkpointing.
static int prepare_model(trainer *t, int came_with_adapters, rlhf_err *err) {
    const train_config *c = t->c;
    if (came_with_adapters && !model_lora(t->m))
        return rlhf_fail(err, "--model %s: %s adds a head to the model, which drops an adapter "
                              "folder's adapters; merge them first (rlhf export --merge_lora) "
                              "and train the merged model", c->model, t->name);
    if (c->use_peft) {
        lora_config want = c->lora;
        if (lora_targets_parse(c->lora_target_modules, t->m->cfg.arch, &want.targets, err))
            return rlhf_fail_ctx(err, "--lora_target_modules");
        if (t->resume_from[0]) {
            if (lora_check_resumed(t, &want, err)) return -1;
        } else if (model_lora(t->m)) {
            if (!c->quiet)
                fprintf(stderr, "%s: --model %s has adapters: training them as they are "
                                "(their r, alpha and modules win over the --lora_* flags)\n",
                        t->name, c->model);
        } else if (model_add_lora(t->m, &want, c->seed, err)) {
            return -1;
        }
    }
    if (c->dtype && !strcmp(c->dtype, "bfloat16") && model_to_bf16(t->m, err))
        return rlhf_fail_ctx(err, "--dtype bfloat16");
    if (c->gradient_checkpointing) t->m->grad_ckpt = 1;
    return 0;
}

// a seed for the adapters' dropout masks of one step: a function of (--seed, step)
static uint64_t dropout_seed(uint64_t seed, int step) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * ((uint64_t)step + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// LoRA dropout's seed for a step on this rank: rank 0's is dropout_seed(seed, step), the
// other ranks' mixed from it, so each rank draws its own masks (its rows are other
// examples); within the step each forward draws its own (model_lora_dropout)
static uint64_t step_dropout_seed(uint64_t seed, int step) {
    uint64_t s = dropout_seed(seed, step);
    int r = dist_rank();
    return r == 0 ? s : dropout_seed(s, r);
}

static void print_plan(const trainer *t) {
    int B = t->plan_B > 0 ? t->plan_B : t->c->batch_size;
    int T = t->plan_T > 0 ? t->plan_T : t->max_len;
    mem_plan p;
    mem_plan_compute(t->m, B, T, t->ref_kind, &p);
    mem_plan_print(stderr, t->name, &p, B, T);
    if (t->ref_kind == MEM_REF_SHARED)
        fprintf(stderr, "%s: reference: the policy's base with adapters off, shared in place "
                        "(no second copy)\n", t->name);
    else if (t->ref_kind == MEM_REF_COPY)
        fprintf(stderr, "%s: reference: a model of its own (a second copy of the weights)\n",
                t->name);
}

// ------------------------------------------------------------------ phases --

// run_prepare on rank 0 alone; every rank gets its outcome (run.h)
static int prepare_run_dir(trainer *t, rlhf_err *err) {
    return run_prepare_ranks(t->c, t->extra, t->resume_from, sizeof t->resume_from, err);
}

// the policy: the checkpoint resumed from, else --model; --base_model is the
// base of every adapter folder this run loads (peft_set_base_override)
static int load_policy(trainer *t, rlhf_err *err) {
    const train_config *c = t->c;
    if (c->base_model) peft_set_base_override(c->base_model);
    return model_load_any(t->resume_from[0] ? t->resume_from : c->model, c->seed, &t->m, err);
}

// everything before the first step: run directory, models, data, optimizer
static int trainer_start(trainer *t, rlhf_err *err) {
    const train_config *c = t->c;
    const trainer_method *me = t->method;
    if (me->init && me->init(t, err)) return -1;
    if (prepare_run_dir(t, err)) return -1;
    int resuming = t->resume_from[0] != 0;
    if (load_policy(t, err)) return -1;
    int came_with_adapters = model_lora(t->m) != NULL;
    if (came_with_adapters && !c->use_peft) {
        if (resuming)
            return rlhf_fail(err, "--resume: %s is a checkpoint of a LoRA run: add --use_peft "
                                  "(with the run's --lora_* flags)", t->resume_from);
        // an adapter folder without --use_peft: full training of the merged model
        if (model_merge_lora(t->m, err)) return -1;
        came_with_adapters = 0;
        if (!c->quiet)
            fprintf(stderr, "%s: --model %s is an adapter: merged into its base, training every "
                            "weight (add --use_peft to train the adapters alone)\n",
                    t->name, c->model);
    } else if (!came_with_adapters && c->use_peft && resuming) {
        return rlhf_fail(err, "--use_peft: the checkpoint %s to resume has no adapters (its run "
                              "trained every weight)", t->resume_from);
    }
    if (me->policy && me->policy(t, err)) return -1;
    // every rank starts from rank 0's weights (they load the same files with the
    // same seed; this makes it so whatever a file system or a library does)
    dist_bcast(t->m->params, t->m->n_params * sizeof(float), 0);
    if (prepare_model(t, came_with_adapters, err)) return -1;
    if (model_tokenizer(t->m, c->tokenizer, &t->tok, err)) return -1;
    train_remember_tokenizer(c, t->m);
    t->max_len = train_max_length(c, t->m);
    if (me->setup(t, err)) return -1;
    if (dist_rank() == 0) print_plan(t);
    if (t->total <= 0 && (t->total = train_total_steps_of(c, t->units, walk_batch(t), err)) < 0)
        return -1;
    long optim_steps = t->optim_steps > 0 ? t->optim_steps : t->total;
    if (optim_steps > 0x7fffffff) return rlhf_fail(err, "%ld optimizer steps is too many", optim_steps);
    if (!(t->o = train_make_optim(c, model_n_trainable(t->m), (int)optim_steps, err))) return -1;
    rng_seed(&t->rng, c->seed);
    if (resuming) {
        if (checkpoint_load_optim(t->resume_from, t->o, &t->rng, err)) return -1;
        t->step = t->o->step;
        if (me->resume && me->resume(t, err)) return -1;
        // (a step past the run's end was refused by checkpoint_load_optim)
        if (t->step >= t->total && dist_rank() == 0)
            fprintf(stderr, "%s: --resume: %s is at the run's last step (%d): nothing to "
                            "train (raise --max_steps or --num_train_epochs to train on); its "
                            "model is written again as the final checkpoint, unchanged\n",
                    t->name, t->resume_from, t->step);
        if (dist_rank() == 0)
            fprintf(stderr, "%s: resuming from %s (step %d)\n", t->name, t->resume_from, t->step);
    }
    if (dist_rank() != 0) {  // rank 0 alone writes the run directory
        snprintf(t->run.dir, sizeof t->run.dir, "%s", c->output_dir);
        return 0;
    }
    if (run_open(&t->run, c->output_dir, c->config_json, resuming ? t->step : -1, err)) return -1;
    if (dist_size() > 1 && !c->quiet) {
        if (me->global_batch)
            fprintf(stderr, "%s: %d MPI ranks sharing each iteration's %d prompts by whole groups "
                            "(docs/mpi.md)\n", t->name, dist_size(), c->batch_size);
        else
            fprintf(stderr, "%s: %d MPI ranks, %d examples each per micro-batch, a global batch of "
                            "%d (docs/mpi.md)\n", t->name, dist_size(), c->batch_size,
                    train_global_batch(c) * c->gradient_accumulation_steps);
    }
    if (me->writes_samples) {
        char sp[2200];
        snprintf(sp, sizeof sp, "%s/samples.jsonl", t->run.dir);
        if (!(t->samples = fopen(sp, resuming ? "a" : "w")))
            return rlhf_fail(err, "cannot write %s", sp);
    }
    return 0;
}

// whether to stop after this step: a signal came (to any rank: they stop at
// the same step, so that each takes part in the checkpoint)
static int stop_requested(void) {
    if (dist_size() == 1) return stop_signal != 0;
    double s = stop_signal;
    dist_allreduce_max_f64(&s, 1);
    if (s != 0 && !stop_signal) stop_signal = (sig_atomic_t)s;
    return s != 0;
}

// RLHF_TEST_FAIL_RANK=R (and RLHF_TEST_FAIL_STEP=S, default 2): rank R fails
// after step S, alone, as a rank that meets a bad file would (tests/mpi_test.py)
static int injected_failure(int done, rlhf_err *err) {
    const char *r = getenv("RLHF_TEST_FAIL_RANK"), *s = getenv("RLHF_TEST_FAIL_STEP");
    if (!r || !*r || atoi(r) != dist_rank() || done != (s && *s ? atoi(s) : 2)) return 0;
    return rlhf_fail(err, "injected failure (RLHF_TEST_FAIL_RANK=%d) after step %d", dist_rank(),
                     done);
}

// the step loop; stops after a finished step when a signal came
static int trainer_loop(trainer *t, rlhf_err *err) {
    const train_config *c = t->c;
    progress pb;
    progress_start(&pb, t->name, t->total, c->logging_steps);
    for (; t->step < t->total; ) {
        t->progress[0] = 0;
        t->step_tokens = 0;
        const lora_config *lc = model_lora(t->m);
        int drop = lc && lc->dropout > 0;
        if (drop) model_lora_dropout(t->m, 1, step_dropout_seed(c->seed, t->step));
        long bad = optim_nonfinite_steps();
        int rc = t->method->step(t, t->step, err);
        if (drop) model_lora_dropout(t->m, 0, 0);
        if (rc) return -1;
        if (optim_nonfinite_steps() != bad) // optim_step left the weights as they were
            return rlhf_fail(err,
                             "step %d: the gradient is not finite (NaN or inf), so the "
                             "weights were not updated; stopping. Checkpoints already "
                             "written are kept (--resume goes on from the last). Try a "
                             "lower --learning_rate, --max_grad_norm, or look for bad rows "
                             "in the data",
                             t->step + 1);
        int done = ++t->step;
        if (done % c->logging_steps == 0 || done == t->total) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done);
            t->method->log(t, j);
            trainer_log_json(t, j);
        }
        if ((c->eval_steps > 0 && done % c->eval_steps == 0) || done == t->total)
            if (eval_line(t, done, err)) return -1;
        run_note_write(&t->run, t->samples, "samples.jsonl");
        if (run_check(&t->run, err)) return -1; // a log could not be written: stop
        if (injected_failure(done, err)) return -1;
        int stop = stop_requested() && done != t->total;
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
// (1 when accept refused the model: summary.json says why, err too)
static int trainer_end(trainer *t, rlhf_err *err) {
    char path[4400] = "";
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "command", t->name);
    int refused = t->method->accept ? t->method->accept(t, s, err) : 0;
    if (refused < 0 || (!refused && save_checkpoint(t, -1, path, sizeof path, err))) {
        cJSON_Delete(s);
        return -1;
    }
    if (t->method->finish) t->method->finish(t, s, path);
    cJSON_AddNumberToObject(s, "seconds", time_now() - t->t_start);
    if (refused) {
        cJSON_AddNullToObject(s, "model");
        cJSON_AddStringToObject(s, "refused", err->msg);
    } else {
        cJSON_AddStringToObject(s, "model", path);
    }
    char *js = cJSON_Print(s);
    cJSON_Delete(s);
    rlhf_err reason = *err;
    int rc = dist_rank() == 0 ? run_summary(&t->run, js, err) : 0;
    free(js);
    if (rc) return -1;
    if (refused) *err = reason;
    return refused;
}

int trainer_run(const train_config *c, const trainer_method *method, void *self, rlhf_err *err) {
    if (dist_size() > 1 && !method->data_parallel)
        return rlhf_fail(err, "%s does not run on %d MPI ranks yet (docs/mpi.md lists the trainers "
                              "that do); run it as one process",
                         method->name, dist_size());
    train_config quiet;  // ranks other than 0 print no progress and no notes
    if (dist_rank() != 0) {
        quiet = *c;
        quiet.quiet = 1;
        c = &quiet;
    }
    trainer t = {.c = c, .method = method, .self = self, .name = method->name,
                 .t_start = time_now()};
    saved_handlers h = catch_signals();
    int rc = -1;
    if (trainer_start(&t, err) == 0 && trainer_loop(&t, err) == 0) rc = trainer_end(&t, err);
    restore_signals(h);
    // one rank's error ends every rank (the others may wait in a collective)
    if (rc < 0 && dist_size() > 1) dist_abort(1, err ? err->msg : "training failed");
    if (c->base_model) peft_set_base_override(NULL);
    if (method->free) method->free(&t);
    if (t.samples) fclose(t.samples);
    run_close(&t.run);
    optim_free(t.o);
    tok_free(t.tok);
    model_free(t.m);
    return rc;
}
