// The public API on its own: this file includes no project header but
// <rlhf.h> (and the test harness), and the Makefile builds it with -Iinclude
// alone (no -Isrc) against librlhf.a, as a program outside the tree would be.
// It does what such a program does: make a model, train a step, generate,
// save checkpoints into a run directory and load them back (by folder, by run
// directory, by named size), so a declaration that reaches into src/, or a
// function the library does not export, fails the build or this test.
#include <rlhf.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static rlhf_model *tiny(uint64_t seed) {
    rlhf_config c;
    rlhf_err e;
    rlhf_model *m = NULL;
    if (config_from_name(&c, "tiny", &e) || model_create(&m, &c, seed, &e)) {
        printf("  %s\n", e.msg);
        return NULL;
    }
    return m;
}

static int same_params(const rlhf_model *a, const rlhf_model *b) {
    return a->n_params == b->n_params &&
           !memcmp(a->params, b->params, a->n_params * sizeof(float));
}

// mean log-prob of the batch's targets
static float mean_logp(rlhf_model *m, const rlhf_batch *b) {
    rlhf_err e;
    if (model_forward(m, b, &e)) return NAN;
    double s = 0;
    for (int i = 0; i < b->B * b->T; i++) s += m->logp[i];
    return (float)(s / (b->B * b->T));
}

// a forward, one AdamW step that raises the targets' log-probs, generation
static int test_train_and_generate(void) {
    rlhf_model *m = tiny(1);
    CHECK(m != NULL);
    if (!m) return 0;
    size_t n;
    CHECK(config_n_params(&m->cfg, &n) == 0 && n == m->n_params);
    enum { B = 2, T = 8 };
    int tokens[B * T], targets[B * T];
    for (int i = 0; i < B * T; i++) tokens[i] = 'a' + i % 7, targets[i] = 'a' + (i + 1) % 7;
    rlhf_batch b = {B, T, tokens, targets, NULL, NULL};
    float before = mean_logp(m, &b);
    CHECK(isfinite(before) && before < 0);
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.lr = 1e-2f;
    rlhf_optim *o = optim_create(&oc, m->n_params);
    float dlogp[B * T];
    for (int i = 0; i < B * T; i++) dlogp[i] = -1.0f / (B * T);  // d(-mean logp)
    model_zero_grad(m);
    model_backward(m, dlogp, NULL, NULL, NULL);
    CHECK(isfinite(optim_step(o, m)));
    CHECK(o->step == 1);
    float after = mean_logp(m, &b);
    CHECKF(after > before, "mean log-prob %g -> %g", before, after);

    const int prompt[3] = {'a', 'b', 'c'}, *prompts[1] = {prompt}, len[1] = {3};
    rlhf_gen_opts go = {.max_new_tokens = 4, .temperature = 0, .top_k = 0, .top_p = 1,
                        .eos_id = -1, .pad_id = 0};
    rlhf_rng rng;
    rng_seed(&rng, 7);
    rlhf_gen_out out;
    rlhf_err e;
    CHECK(generate(m, prompts, len, 1, &go, &rng, &out, &e) == 0);
    CHECK(out.length[0] == 4 && !out.ended_eos[0]);
    for (int i = 0; i < 4; i++) CHECK(out.tokens[i] >= 0 && out.tokens[i] < m->cfg.vocab_size);
    gen_out_free(&out);
    optim_free(o);
    model_free(m);
    return 0;
}

// checkpoints in a run directory; model_load_any by folder, run directory and size
static int test_checkpoints_and_loading(void) {
    const char *dir = test_tmpdir();
    CHECK(dir != NULL);
    if (!dir) return 0;
    rlhf_model *m = tiny(3), *fresh = tiny(3), *got = NULL;
    rlhf_err e;
    char p[512];
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.001f;  // differs from a fresh tiny
    snprintf(p, sizeof p, "%s/checkpoints/step-00000002", dir);
    CHECK(checkpoint_save(p, fresh, NULL, NULL, &e) == 0);
    snprintf(p, sizeof p, "%s/checkpoints/step-00000004", dir);
    CHECK(checkpoint_save(p, m, NULL, NULL, &e) == 0);
    snprintf(p, sizeof p, "mkdir -p %s/checkpoints/step-00000010", dir);  // incomplete: skipped
    CHECK(system(p) == 0);

    int count = 0, *steps = checkpoint_steps(dir, &count);
    CHECK(count == 3 && steps && steps[0] == 10 && steps[1] == 4 && steps[2] == 2);
    free(steps);
    char latest[512];
    CHECK(checkpoint_latest(dir, latest, sizeof latest) == 0);
    snprintf(p, sizeof p, "%s/checkpoints/step-00000004", dir);
    CHECKF(!strcmp(latest, p), "%s", latest);

    char where[512];
    CHECK(model_resolve_path(dir, where, sizeof where, &e) == 0);
    CHECKF(!strcmp(where, latest), "%s", where);
    CHECK(model_load_any(dir, 0, &got, &e) == 0);  // the run directory: its newest checkpoint
    CHECK(got && same_params(got, m));
    model_free(got);
    snprintf(p, sizeof p, "%s/checkpoints/final", dir);  // ... unless it has a final one
    CHECK(checkpoint_save(p, fresh, NULL, NULL, &e) == 0);
    CHECK(model_resolve_path(dir, where, sizeof where, &e) == 0);
    CHECKF(!strcmp(where, p), "%s", where);
    CHECK(model_load_any(dir, 0, &got, &e) == 0);
    CHECK(got && same_params(got, fresh));
    model_free(got);
    CHECK(model_resolve_path("tiny", where, sizeof where, &e) == 0 && !strcmp(where, "tiny"));
    snprintf(p, sizeof p, "%s/checkpoints/step-00000002", dir);
    CHECK(model_load_any(p, 0, &got, &e) == 0);  // a checkpoint folder
    CHECK(got && same_params(got, fresh));
    model_free(got);
    CHECK(model_load_any("tiny", 3, &got, &e) == 0);  // a named size: the seeded init
    CHECK(got && same_params(got, fresh));
    model_free(got);
    snprintf(p, sizeof p, "%s/no-such-model", dir);
    CHECK(model_load_any(p, 0, &got, &e) == -1);
    CHECKF(strstr(e.msg, "no-such-model") != NULL, "%s", e.msg);

    snprintf(p, sizeof p, "rm -rf %s", dir);
    CHECK(system(p) == 0);
    model_free(m);
    model_free(fresh);
    return 0;
}

int main(void) {
    RUN(test_train_and_generate);
    RUN(test_checkpoints_and_loading);
    TEST_EXIT();
}
