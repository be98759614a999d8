// study/study_ro2o: `rlhf study ro2o` — Wen et al. 2024, "Towards Robust Offline-to-Online
// Reinforcement Learning via Uncertainty and Smoothness" (RO2O), on our control
// environments (study_ctrl.h: pendulum for --quick, hopper for the full
// version when the build has MuJoCo; --task names another, e.g. halfcheetah).
//
// One dataset (our SAC agent's medium level, or --level); per seed, two arms of
// `rlhf ctrl train` with the same seed, data, offline updates and online
// budget: SAC-N (a Q ensemble, no regulariser) and RO2O (the same ensemble with value and
// policy smoothing and the OOD uncertainty penalty).
// Every evaluation is a "curve" row; per arm an "o2o" row with the
// pre-trained score (the evaluation at the switch), the dip (the lowest
// evaluation after it) and the final score (study_ctrl_o2o_rows).
//
// The runs, verdict and report are study_ctrl_versus's (study_ctrl.h).
// Verdict (pure, from rows): per seed d = final(ro2o) - final(sacn);
// supported when d's mean over seeds is > 0 and >= 2 standard errors
// (stats_sign_test), not supported when it is <= -2 se, else inconclusive.
// The dips are reported, not judged.
#include "study/study_ctrl.h"

static const char *const SMOKE_SET[] = {"--n_critics=2", "--batch_size=32", NULL};
static const char *const QUICK_SET[] = {"--n_critics=4", "--batch_size=64", NULL};
// a MuJoCo task's quick size keeps the batch of 256
static const char *const MJ_QUICK_SET[] = {"--n_critics=4", NULL};
// the full size keeps the defaults: 10 critics, batch 256. RO2O's cost is its
// perturbed states: fewer of them below the full size
static const char *const SMOKE_OURS[] = {"--ro2o_samples=2", NULL};
static const char *const QUICK_OURS[] = {"--ro2o_samples=4", NULL};

static const study_ctrl_versus V = {
    .name = "ro2o",
    .algo = {"sacn", "ro2o"},
    .label = {"SAC-N", "RO2O"},
    // pendulum: smoke, quick, full; a MuJoCo task (--task): smoke, quick (about
    // 25 minutes a seed on the 2-core Zen 5: SAC-N 24 ms and RO2O 52 ms an update
    // with its environment step, 4 critics, width 256), full (1M offline + 100k online)
    .budget = {{{200, 400, 200}, {3000, 3000, 1000}, {20000, 20000, 2000}},
               {{200, 400, 200}, {10000, 10000, 2000}, {1000000, 100000, 10000}}},
    .settings = {{SMOKE_SET, QUICK_SET, NULL}, {SMOKE_SET, MJ_QUICK_SET, NULL}},
    .ours = {{SMOKE_OURS, QUICK_OURS, NULL}, {SMOKE_OURS, QUICK_OURS, NULL}},
    .about = "SAC-N and RO2O (the same Q ensemble with RORL's smoothing and OOD penalty) "
             "pre-trained offline on one dataset, then fine-tuned online with the same budget; the "
             "switch is at the end of the offline phase. Mean over seeds, band ± se.",
};

static int run(study_ctx *c, rlhf_err *err) {
    return study_ctrl_versus_run(c, &V, err);
}

static int verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    study_ctrl_versus_verdict(&V, rows, v);
    return 0;
}

static int report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    study_ctrl_versus_report(&V, rows, p);
    return 0;
}

const study_def study_ro2o = {
    .name = "ro2o",
    .paper = "Wen et al. 2024, Towards Robust Offline-to-Online Reinforcement Learning via "
             "Uncertainty and Smoothness (RO2O)",
    .claim = "RO2O's uncertainty penalty and smoothing make offline-to-online fine-tuning end with "
             "a higher normalised score than SAC-N's plain Q ensemble.",
    .run = run,
    .check_task = study_ctrl_env_check,
    .verdict = verdict,
    .report = report,
    .no_sandbox = 1,
    .level = "medium",
};
