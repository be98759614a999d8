// study/study_ro2o: `rlhf study ro2o` — Wen et al. 2024, "Towards Robust Offline-to-Online
// Reinforcement Learning via Uncertainty and Smoothness" (RO2O), on our control
// environments (study_ctrl.h: pendulum for --quick, hopper for the full
// version when the build has MuJoCo).
//
// One dataset (our SAC agent's medium level); per seed, two arms of
// `rlhf ctrl train` with the same seed, data, offline updates and online
// budget: SAC-N (a Q ensemble, no regulariser) and RO2O (the same ensemble with value and
// policy smoothing and the OOD uncertainty penalty).
// Every evaluation is a "curve" row; per arm an "o2o" row with the
// pre-trained score (the evaluation at the switch), the dip (the lowest
// evaluation after it) and the final score (study_ctrl_o2o_rows).
//
// Verdict (pure, from rows): per seed d = final(ro2o) - final(sacn);
// supported when d's mean over seeds is > 0 and >= 2 standard errors
// (stats_sign_test), not supported when it is <= -2 se, else inconclusive.
// The dips are reported, not judged.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "study/study_ctrl.h"

#define NAME "ro2o"
#define MAX_SEEDS 64

enum { A_BASE, A_OURS, N_ARM };
static const char *const ARM[N_ARM] = {"sacn", "ro2o"};
static const char *const LABEL[N_ARM] = {"SAC-N", "RO2O"};

typedef struct {
    study_ctrl_data data;
    study_ctrl_o2o o2o;
    const char *const *settings; // shared ctrl train settings (NULL-terminated)
    const char *const *ours;     // ro2o's own settings (NULL-terminated)
} o2o_plan;

static const char *const SMOKE_SET[] = {"--n_critics=2", "--batch_size=32", NULL};
static const char *const QUICK_SET[] = {"--n_critics=4", "--batch_size=64", NULL};
static const char *const FULL_SET[] = {NULL}; // 10 critics, batch 256
// RO2O's cost is its perturbed states: fewer of them below the full size
static const char *const SMOKE_OURS[] = {"--ro2o_samples=2", NULL};
static const char *const QUICK_OURS[] = {"--ro2o_samples=4", NULL};
static const char *const FULL_OURS[] = {NULL};

static o2o_plan plan_of(const study_ctx *c) {
    o2o_plan p = {.data = study_ctrl_data_of(c)};
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        p.o2o = (study_ctrl_o2o){200, 400, 200}, p.settings = SMOKE_SET, p.ours = SMOKE_OURS;
        break;
    case STUDY_CTRL_QUICK:
        p.o2o = (study_ctrl_o2o){3000, 3000, 1000}, p.settings = QUICK_SET, p.ours = QUICK_OURS;
        break;
    default:
        if (!strcmp(p.data.env, "pendulum"))
            p.o2o = (study_ctrl_o2o){20000, 20000, 2000};
        else
            p.o2o = (study_ctrl_o2o){1000000, 100000, 10000};
        p.settings = FULL_SET, p.ours = FULL_OURS;
        break;
    }
    return p;
}

// ------------------------------------------------------------------ run --
static int run_arm(study_ctx *c, const o2o_plan *pl, const char *dataset, int arm, uint64_t seed,
                   rlhf_err *err) {
    const char *extra[40];
    int n = 0;
    for (int i = 0; pl->settings[i] && n < 19; i++) extra[n++] = pl->settings[i];
    for (int i = 0; arm == A_OURS && pl->ours[i] && n < 38; i++) extra[n++] = pl->ours[i];
    extra[n] = NULL;
    return study_ctrl_o2o_arm(c, NAME, ARM[arm], ARM[arm], &pl->data, dataset, &pl->o2o, extra,
                              seed, err);
}

static int o2o_run(study_ctx *c, rlhf_err *err) {
    o2o_plan pl = plan_of(c);
    char dir[1200], data[1300];
    if (study_ctrl_collect(c, &pl.data, dir, sizeof dir, err)) return -1;
    study_ctrl_level(dir, "medium", data, sizeof data);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME " (%s): seed %d of %d\n",
                study_ctrl_size_name(study_ctrl_size_of(c)), s + 1, c->n_seeds);
        for (int a = 0; a < N_ARM; a++)
            if (run_arm(c, &pl, data, a, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- verdict --
static int o2o_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    double d[MAX_SEEDS];
    stats_summary sd = stats_summarize(
        d, study_ctrl_diffs(rows, "o2o", ARM[A_OURS], ARM[A_BASE], "final", d, MAX_SEEDS));
    stats_summary pre[N_ARM], dip[N_ARM], fin[N_ARM];
    for (int a = 0; a < N_ARM; a++) {
        pre[a] = study_ctrl_stat(rows, "o2o", ARM[a], "pretrained");
        dip[a] = study_ctrl_stat(rows, "o2o", ARM[a], "dip");
        fin[a] = study_ctrl_stat(rows, "o2o", ARM[a], "final");
    }
    v->outcome = study_ctrl_outcome(&sd);
    snprintf(v->figure, sizeof v->figure, "%+.1f ± %.1f final score (RO2O - SAC-N, %d seeds)",
             sd.mean, sd.se, sd.n);
    snprintf(v->text, sizeof v->text,
             "Normalised score (mean ± se over seeds). After the offline phase: SAC-N %.1f "
             "± %.1f, RO2O %.1f ± %.1f. Lowest online evaluation (the dip): SAC-N "
             "%.1f, RO2O %.1f. Final: SAC-N %.1f ± %.1f, RO2O %.1f ± %.1f. "
             "RO2O minus SAC-N, final, seed by seed: %+.1f ± %.1f (%d seeds). "
             "Rule: supported when the mean difference is positive and at least 2 se, not "
             "supported when it is negative and at least 2 se, else inconclusive.",
             pre[A_BASE].mean, pre[A_BASE].se, pre[A_OURS].mean, pre[A_OURS].se, dip[A_BASE].mean,
             dip[A_OURS].mean, fin[A_BASE].mean, fin[A_BASE].se, fin[A_OURS].mean, fin[A_OURS].se,
             sd.mean, sd.se, sd.n);
    return 0;
}

// ----------------------------------------------------------------- report --
static int o2o_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p, "SAC-N and RO2O (the same Q ensemble with RORL's smoothing and OOD penalty) "
                "pre-trained offline on one dataset, then fine-tuned online with the same budget; "
                "the switch is at the end of the offline phase. Mean over seeds, band ± se.");
    study_ctrl_plot_curves(p, rows, N_ARM, ARM, LABEL, "Normalised score over training");
    report_h(p, 2, "Pre-trained, dip, final (mean ± se over seeds)");
    static const char *const fields[] = {"pretrained", "dip", "final", "seconds"};
    study_ctrl_table(p, rows, "o2o", N_ARM, ARM, LABEL, 4, fields);
    return 0;
}

const study_def study_ro2o = {
    .name = NAME,
    .paper = "Wen et al. 2024, Towards Robust Offline-to-Online Reinforcement Learning via "
             "Uncertainty and Smoothness (RO2O)",
    .claim = "RO2O's uncertainty penalty and smoothing make offline-to-online fine-tuning end with "
             "a higher normalised score than SAC-N's plain Q ensemble.",
    .run = o2o_run,
    .verdict = o2o_verdict,
    .report = o2o_report,
    .no_sandbox = 1,
};
