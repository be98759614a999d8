// study/study_lamo: `rlhf study lamo` — Shi et al. 2023, "Unleashing the
// Power of Pre-trained Language Models for Offline Reinforcement Learning"
// (LaMo), on our own D4RL-style data (study_ctrl.h).
//
// One dataset (the medium-expert level of study_ctrl_collect: pendulum at the
// smoke and quick sizes, a few dozen episodes, the paper's small-data
// setting), a text corpus sampled from the language model itself (`rlhf
// generate`, 200 stories; the paper uses WikiText with GPT-2), and per seed
// two arms of `rlhf ctrl train --algo lamo` with the same seed, data, K,
// batch and number of updates:
//   lamo  the pre-trained LM (RLHF_LAMO_MODEL, default stories260K) frozen
//         with LoRA (r 16, alpha 32) on q/k/v, MLP embeddings, lambda 0.1
//   dt    the paper's DT baseline: the same shape from a fresh init, every
//         weight trained, no text loss (--lamo_pretrained 0 --lamo_lora_r 0
//         --lamo_lm_coeff 0); same MLP embeddings and head
// Rows: {"phase": "curve", method, seed, step, score, return} per evaluation
// and {"phase": "final", method, seed, score, return, return_std, seconds,
// updates}.
//
// --task episodes=N: the paper's own experiment is low-data (hopper with 1% of
// its data); this keeps N of the level's complete episodes, drawn with --seed
// (the same subset for every training seed), written as OUT/data/LEVEL-Nep.hdf5
// with the level's references, and a row {"phase": "data", episodes, of, rows}.
//
// Verdict (pure, from rows): per seed d = final score(lamo) - final score(dt);
// supported when mean d > 0 by at least 2 se, not supported when mean d < 0
// by at least 2 se, else inconclusive (study_ctrl_outcome).
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctrl/dataset.h"
#include "io/file.h"
#include "study/study_ctrl.h"

#define NAME "lamo"
#define MAX_SEEDS 64

static const char *const METHOD[2] = {"lamo", "dt"};
static const char *const LABEL[2] = {"LaMo (pre-trained LM, LoRA, LM loss)",
                                     "DT (same shape, fresh init, all weights)"};

typedef struct {
    int steps, batch, K, eval_every, stories, lm_len;
} lamo_plan;

static lamo_plan plan_of(const study_ctx *c) {
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        return (lamo_plan){20, 4, 4, 10, 8, 32};
    case STUDY_CTRL_QUICK:
        return (lamo_plan){1500, 16, 20, 250, 200, 64};
    default:
        return (lamo_plan){6000, 64, 20, 1000, 400, 64};
    }
}

// the language model: $RLHF_LAMO_MODEL, else stories260K beside the repository
static int model_path(char *out, size_t n, rlhf_err *err) {
    const char *env = getenv("RLHF_LAMO_MODEL");
    const char *p = env && *env ? env : "../shared/data/llama2c/stories260K.bin";
    char real[PATH_MAX];
    if (!realpath(p, real))
        return rlhf_fail(err,
                         "study " NAME ": no language model at %s (set RLHF_LAMO_MODEL to a "
                         "checkpoint, HF folder or llama2.c .bin)",
                         p);
    snprintf(out, n, "%s", real);
    return 0;
}

// text for the LM loss: stories sampled from the model (OUT/logs/text.out)
static int make_text(study_ctx *c, const char *model, const lamo_plan *pl, char *out, size_t n,
                     rlhf_err *err) {
    study_args a = {0};
    study_add(&a, "generate", "--model", model, "--prompt", "", "--temperature", "1", NULL);
    study_addf(&a, "--num_return_sequences=%d", pl->stories);
    study_add(&a, "--max_new_tokens=200", NULL);
    study_addf(&a, "--seed=%llu", (unsigned long long)c->seed);
    snprintf(out, n, "%s/logs/text.out", c->out);
    return study_run(c, "text", &a, NULL, err);
}

static int run_arm(study_ctx *c, const study_ctrl_data *d, const char *dataset, const char *model,
                   const char *text, const lamo_plan *pl, int m, uint64_t seed, rlhf_err *err) {
    study_args a = {0};
    study_ctrl_common(&a, "lamo", d, dataset, seed);
    study_add(&a, "--lamo_model", model, NULL);
    study_addf(&a, "--offline_steps=%d", pl->steps);
    study_addf(&a, "--batch_size=%d", pl->batch);
    study_addf(&a, "--lamo_K=%d", pl->K);
    study_addf(&a, "--eval_every=%d", pl->eval_every);
    if (m == 0) {
        study_add(&a, "--lamo_text", text, NULL);
        study_addf(&a, "--lamo_lm_len=%d", pl->lm_len);
    } else {
        study_add(&a, "--lamo_pretrained=0", "--lamo_lora_r=0", "--lamo_lm_coeff=0", NULL);
    }
    char name[256], dir[1400];
    snprintf(name, sizeof name, "seed%llu/%s", (unsigned long long)seed, METHOD[m]);
    study_ctrl_result r;
    if (study_ctrl_train(c, name, &a, dir, sizeof dir, &r, err)) return -1;
    double step[256], ret[256], score[256];
    int n = 0;
    if (study_ctrl_evals(dir, 256, step, ret, score, &n, err)) return -1;
    for (int i = 0; i < n; i++) {
        study_ctrl_curve_row(c, NAME, METHOD[m], seed, step[i], score[i], ret[i]);
    }
    cJSON *row = study_ctrl_row(METHOD[m], seed, &r);
    cJSON_AddStringToObject(row, "phase", "final");
    study_row(c, NAME, row);
    return 0;
}

// N of --task episodes=N (0: no --task, every episode)
static int episodes_of(const char *task, int *n, rlhf_err *err) {
    *n = 0;
    if (!task || !*task) return 0;
    char *end = NULL;
    long v = strncmp(task, "episodes=", 9) ? 0 : strtol(task + 9, &end, 10);
    if (!end || end == task + 9 || *end || v < 1 || v > 1000000)
        return rlhf_fail(err,
                         "--task %s: study " NAME " takes episodes=N (N >= 1: train on N of the "
                         "level's episodes, drawn with --seed, the paper's low-data setting); "
                         "without --task every episode",
                         task);
    *n = (int)v;
    return 0;
}

static int lamo_check_task(const char *task, rlhf_err *err) {
    int n;
    return episodes_of(task, &n, err);
}

// k whole episodes of src drawn with the study's seed (ctrl_transitions_episodes),
// written to out with src's attributes, and a "data" row
static int subset(const study_ctx *c, const char *src, int k, const char *out, rlhf_err *err) {
    ctrl_transitions t = {0}, s = {0};
    ctrl_dataset_info info;
    if (ctrl_dataset_load(src, &t, &info, err)) return -1;
    rlhf_rng r;
    rng_seed(&r, c->seed ^ 0x4c614d6f45505321ULL);
    long ne = 0;
    int rc = ctrl_transitions_episodes(&t, k, &r, &s, &ne, err);
    if (rc) rlhf_fail_ctx(err, "--task episodes=%d: %s", k, src);
    if (rc == 0) rc = ctrl_dataset_save(out, &s, &info, err);
    if (rc == 0) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "phase", "data");
        cJSON_AddNumberToObject(row, "episodes", k);
        cJSON_AddNumberToObject(row, "of", (double)ne);
        cJSON_AddNumberToObject(row, "rows", (double)s.n);
        study_row((study_ctx *)c, NAME, row);
        fprintf(stderr, "study " NAME ": %d of the level's %ld episodes (%ld rows): %s\n", k, ne,
                s.n, out);
    }
    ctrl_transitions_free(&t);
    ctrl_transitions_free(&s);
    return rc;
}

static int lamo_run_study(study_ctx *c, rlhf_err *err) {
    lamo_plan pl = plan_of(c);
    study_ctrl_data d = study_ctrl_data_of(c);
    char model[PATH_MAX], text[1300], dir[1200], data[1500];
    if (model_path(model, sizeof model, err)) return -1;
    if (study_ctrl_collect(c, &d, dir, sizeof dir, err)) return -1;
    study_ctrl_level(dir, c->level, data, sizeof data);
    int k = 0;
    if (episodes_of(c->task, &k, err)) return -1;
    if (k > 0) {
        char sub[1400], folder[1100];
        snprintf(folder, sizeof folder, "%s/data", c->out);
        snprintf(sub, sizeof sub, "%s/%s-%dep.hdf5", folder, c->level, k);
        if (make_dirs(folder, err) || subset(c, data, k, sub, err)) return -1;
        snprintf(data, sizeof data, "%s", sub);
    }
    if (make_text(c, model, &pl, text, sizeof text, err)) return -1;
    for (int s = 0; s < c->n_seeds; s++)
        for (int m = 0; m < 2; m++) {
            fprintf(stderr, "study " NAME " (%s): seed %d of %d, %s\n",
                    study_ctrl_size_name(study_ctrl_size_of(c)), s + 1, c->n_seeds, METHOD[m]);
            if (run_arm(c, &d, data, model, text, &pl, m, c->seed + (uint64_t)s, err)) return -1;
        }
    return 0;
}

static int lamo_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    double d[MAX_SEEDS];
    stats_summary sd = stats_summarize(
        d, study_ctrl_diffs(rows, "final", METHOD[0], METHOD[1], "score", d, MAX_SEEDS));
    stats_summary f[2];
    for (int m = 0; m < 2; m++) f[m] = study_ctrl_stat(rows, "final", METHOD[m], "score");
    v->outcome = sd.n > 0 ? study_ctrl_outcome(&sd) : STUDY_INCONCLUSIVE;
    char data[160] = "";
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (!strcmp(study_str(row, "phase"), "data"))
            snprintf(data, sizeof data, "Data: %.0f of the level's %.0f episodes (%.0f rows). ",
                     study_num(row, "episodes"), study_num(row, "of"), study_num(row, "rows"));
    }
    snprintf(v->figure, sizeof v->figure, "%+.1f ± %.1f final score (LaMo - DT, %d seeds)", sd.mean,
             sd.se, sd.n);
    snprintf(v->text, sizeof v->text,
             "%sFinal normalised score (mean ± se over seeds): LaMo %.1f ± %.1f, DT %.1f ± %.1f. "
             "LaMo minus DT, seed by seed: %+.1f ± %.1f (%d seeds). Rule: supported when the mean "
             "difference is positive and at least 2 se, not supported when it is negative and at "
             "least 2 se, else inconclusive.",
             data, f[0].mean, f[0].se, f[1].mean, f[1].se, sd.mean, sd.se, sd.n);
    (void)err;
    return 0;
}

static int lamo_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    report_p(p, "Both arms are `rlhf ctrl train --algo lamo` on the same data, seed, context, "
                "batch and number of updates. LaMo keeps the pre-trained language model frozen "
                "with LoRA on q/k/v and adds lambda 0.1 times its next-token loss on text sampled "
                "from the same model; DT takes the model's shape with a fresh init and trains "
                "every weight without text. Scores are 100 (R - R_random) / (R_expert - R_random) "
                "with the references `rlhf ctrl collect` recorded.");
    study_ctrl_plot_curves(p, rows, 2, METHOD, LABEL, "Normalised score over training");
    report_h(p, 2, "Final evaluation (mean ± se over seeds)");
    static const char *const fields[] = {"score", "return", "seconds"};
    study_ctrl_table(p, rows, "final", 2, METHOD, LABEL, 3, fields);
    (void)err;
    return 0;
}

const study_def study_lamo = {
    .name = NAME,
    .paper = "Shi et al. 2023, Unleashing the Power of Pre-trained Language Models for Offline "
             "Reinforcement Learning (LaMo)",
    .claim = "With little data, a decision transformer on a pre-trained language model (frozen, "
             "LoRA, MLP embeddings, an auxiliary language loss) scores higher than the same "
             "decision transformer trained from a random init.",
    .run = lamo_run_study,
    .verdict = lamo_verdict,
    .report = lamo_report,
    .no_sandbox = 1,
    .check_task = lamo_check_task,
    .level = "medium-expert",
};
