// study/study_famo2o: `rlhf study famo2o` — Wang et al. 2023, "Train Once, Get a Family:
// State-Adaptive Balances for Offline-to-Online Reinforcement Learning" (FamO2O), on our control
// environments (study_ctrl.h: pendulum for --quick, hopper for the full
// version when the build has MuJoCo; --task names another, e.g. halfcheetah).
//
// One dataset (our SAC agent's medium level, or --level); per seed, two arms of
// `rlhf ctrl train` with the same seed, data, offline updates and online
// budget: IQL (one fixed balance, beta = 3) and FamO2O (IQL with a family of policies
// and a balance model choosing beta per state; famo2o_uniform_steps = the offline
// steps, as the authors' offline phase).
// Every evaluation is a "curve" row; per arm an "o2o" row with the
// pre-trained score (the evaluation at the switch), the dip (the lowest
// evaluation after it) and the final score (study_ctrl_o2o_rows).
//
// The runs, verdict and report are study_ctrl_versus's (study_ctrl.h).
// Verdict (pure, from rows): per seed d = final(famo2o) - final(iql);
// supported when d's mean over seeds is > 0 and >= 2 standard errors
// (stats_sign_test), not supported when it is <= -2 se, else inconclusive.
// The dips are reported, not judged.
#include "study/study_ctrl.h"

static const study_ctrl_versus V = {
    .name = "famo2o",
    .algo = {"iql", "famo2o"},
    .label = {"IQL", "FamO2O"},
    // pendulum: smoke, quick, full; a MuJoCo task (--task): smoke, quick (about 15
    // minutes a seed on the 2-core Zen 5: IQL 17 ms and FamO2O 32 ms an update
    // with its environment step at width 256, batch 256), full (the authors' 1M + 1M)
    .budget = {{{200, 400, 200}, {4000, 4000, 1000}, {20000, 20000, 2000}},
               {{200, 400, 200}, {10000, 10000, 2000}, {1000000, 1000000, 10000}}},
    .about = "IQL and FamO2O pre-trained offline on one dataset, then fine-tuned online (batches "
             "mixing the dataset and the online buffer) with the same budget; the switch is at the "
             "end of the offline phase. Mean over seeds, band ± se.",
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

const study_def study_famo2o = {
    .name = "famo2o",
    .paper = "Wang et al. 2023, Train Once, Get a Family: State-Adaptive Balances for "
             "Offline-to-Online Reinforcement Learning (FamO2O)",
    .claim = "FamO2O (IQL with a balance model choosing the improvement/constraint balance per "
             "state) ends offline-to-online fine-tuning with a higher normalised score than IQL "
             "with one fixed balance.",
    .run = run,
    .check_task = study_ctrl_env_check,
    .verdict = verdict,
    .report = report,
    .no_sandbox = 1,
    .level = "medium",
};
