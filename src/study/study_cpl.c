// study/study_cpl: `rlhf study cpl` — Hejna et al. 2024, "Contrastive
// Preference Learning: Learning from Human Feedback without RL" (CPL), on our
// control environments (study_ctrl.h: pendulum for --quick).
//
// One dataset (study_ctrl_collect: our SAC agent's medium-replay level, a mix
// of qualities); per seed s, `rlhf ctrl prefs` cuts it into segments and labels
// pairs by the regret of the collect run's own SAC agent (its advantage
// Q(s, a) - Q(s, pi(s)): the paper's oracle, an SAC expert), pair seed s; then
// five offline learners on the same rows, training seed s:
//   cpl         `--algo cpl` from the preference pairs alone (BC steps first)
//   cpl_kl      `--algo cpl_kl` (CPL-KL: the score measured against the
//               frozen BC policy; its warm-up as long as the BC phase)
//   cpl_ranked  `--algo cpl --cpl_ranked 1` (batches ranked by the oracle's
//               segment scores)
//   bc          `--algo bc` (stochastic), cloning every row
//   iql         `--algo iql` on the dataset's (to CPL hidden) rewards
// each run's final normalised score read from its summary.
//
// Rows: {"phase":"final", method, seed, score, return, ...}.
//
// Verdict (pure, from rows): per seed d = score(CPL) - score(BC). Supported
// when d's mean over seeds is > 0 and >= 2 standard errors
// (stats_sign_test), not supported when it is <= -2 se, else inconclusive.
// CPL - IQL, CPL-KL - BC and ranked CPL - BC are reported beside it (the paper
// finds CPL on par with reward-based offline RL; that part is not the verdict).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "study/study_ctrl.h"

#define NAME "cpl"
#define MAX_SEEDS 64

enum { M_CPL, M_CPL_KL, M_CPL_RANKED, M_BC, M_IQL, N_METHOD };
static const char *const METHOD[N_METHOD] = {"cpl", "cpl_kl", "cpl_ranked", "bc", "iql"};
static const char *const ALGO[N_METHOD] = {"cpl", "cpl_kl", "cpl", "bc", "iql"};
static const char *const LABEL[N_METHOD] = {"CPL (preferences)", "CPL-KL (preferences)",
                                            "CPL, ranked batches", "BC", "IQL (rewards)"};

typedef struct {
    study_ctrl_data data;
    const char *level;
    int offline_steps, bc_steps, segment, pairs, cpl_batch;
} cpl_plan;

static cpl_plan plan_of(const study_ctx *c) {
    cpl_plan p = {.data = study_ctrl_data_of(c), .level = c->level, .segment = 64};
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        p.offline_steps = 60, p.bc_steps = 20, p.segment = 32, p.pairs = 200, p.cpl_batch = 4;
        break;
    case STUDY_CTRL_QUICK:
        p.offline_steps = 5000, p.bc_steps = 1000, p.pairs = 2000, p.cpl_batch = 16;
        break;
    default:
        p.offline_steps = 20000, p.bc_steps = 4000, p.pairs = 5000, p.cpl_batch = 32;
        break;
    }
    return p;
}

// ------------------------------------------------------------------ run --
static int train_one(study_ctx *c, const cpl_plan *pl, int m, const char *dataset, uint64_t seed,
                     rlhf_err *err) {
    study_args a = {0};
    study_ctrl_common(&a, ALGO[m], &pl->data, dataset, seed);
    study_addf(&a, "--offline_steps=%d", pl->offline_steps);
    study_add(&a, "--eval_every=0", "--save_every=0", NULL);
    if (m == M_BC) study_add(&a, "--deterministic_bc=0", NULL);
    if (m == M_CPL || m == M_CPL_KL || m == M_CPL_RANKED) {
        study_addf(&a, "--cpl_bc_steps=%d", pl->bc_steps);
        study_addf(&a, "--cpl_batch=%d", pl->cpl_batch);
    }
    if (m == M_CPL_KL) study_addf(&a, "--cpl_warmup=%d", pl->bc_steps);
    if (m == M_CPL_RANKED) study_add(&a, "--cpl_ranked=1", NULL);
    char name[256];
    snprintf(name, sizeof name, "seed%llu/%s", (unsigned long long)seed, METHOD[m]);
    study_ctrl_result r;
    if (study_ctrl_train(c, name, &a, NULL, 0, &r, err)) return -1;
    cJSON *row = study_ctrl_row(METHOD[m], seed, &r);
    cJSON_AddStringToObject(row, "phase", "final");
    study_row(c, NAME, row);
    return 0;
}

static int run_seed(study_ctx *c, const cpl_plan *pl, const char *collect_dir, const char *file,
                    uint64_t seed, rlhf_err *err) {
    char dir[1200], link[1400], oracle[1300], log[64];
    snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
    if (make_dirs(dir, err)) return -1;
    // the pairs file lies beside the dataset: a link per seed keeps seeds apart
    snprintf(link, sizeof link, "%s/%s.hdf5", dir, pl->level);
    unlink(link);
    if (symlink(file, link)) return rlhf_fail(err, "study cpl: cannot link %s to %s", link, file);
    snprintf(oracle, sizeof oracle, "%s/sac", collect_dir);
    study_args a = {0};
    study_add(&a, "ctrl", "prefs", "--dataset", link, "--oracle", oracle, NULL);
    study_addf(&a, "--segment=%d", pl->segment);
    study_addf(&a, "--pairs=%d", pl->pairs);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    snprintf(log, sizeof log, "prefs/seed%llu", (unsigned long long)seed);
    if (study_run(c, log, &a, NULL, err)) return -1;
    for (int m = 0; m < N_METHOD; m++)
        if (train_one(c, pl, m, link, seed, err)) return -1;
    return 0;
}

static int cpl_run(study_ctx *c, rlhf_err *err) {
    cpl_plan pl = plan_of(c);
    char dir[1200], file[1300];
    if (study_ctrl_collect(c, &pl.data, dir, sizeof dir, err)) return -1;
    study_ctrl_level(dir, pl.level, file, sizeof file);
    char abs_file[4096];
    if (!realpath(file, abs_file)) return rlhf_fail(err, "study cpl: %s is missing", file);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME " (%s): seed %d of %d\n",
                study_ctrl_size_name(study_ctrl_size_of(c)), s + 1, c->n_seeds);
        if (run_seed(c, &pl, dir, abs_file, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- verdict --
// "; CPL-KL minus BC: +d ± se (n seeds)" when the rows hold that method
static void variant_vs_bc(const cJSON *rows, int m, char *out, size_t cap) {
    double d[MAX_SEEDS];
    stats_summary s =
        stats_summarize(d, study_ctrl_diffs(rows, "final", METHOD[m], "bc", "score", d, MAX_SEEDS));
    if (s.n > 0)
        snprintf(out, cap, "; %s minus BC: %+.1f ± %.1f (%d seeds)", LABEL[m], s.mean, s.se, s.n);
    else
        out[0] = 0;
}

static int cpl_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    double d_bc[MAX_SEEDS], d_iql[MAX_SEEDS];
    stats_summary bc = stats_summarize(
        d_bc, study_ctrl_diffs(rows, "final", "cpl", "bc", "score", d_bc, MAX_SEEDS));
    stats_summary iql = stats_summarize(
        d_iql, study_ctrl_diffs(rows, "final", "cpl", "iql", "score", d_iql, MAX_SEEDS));
    stats_summary s[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) s[m] = study_ctrl_stat(rows, "final", METHOD[m], "score");
    char kl[160], ranked[160];
    variant_vs_bc(rows, M_CPL_KL, kl, sizeof kl);
    variant_vs_bc(rows, M_CPL_RANKED, ranked, sizeof ranked);
    v->outcome = study_ctrl_outcome(&bc);
    snprintf(v->figure, sizeof v->figure, "%+.1f ± %.1f score (CPL - BC, %d seeds)", bc.mean, bc.se,
             bc.n);
    snprintf(v->text, sizeof v->text,
             "Final normalised score (mean ± se over seeds): CPL from segment preferences %.1f ± "
             "%.1f, BC on the same rows %.1f ± %.1f, IQL on the hidden rewards %.1f ± %.1f. CPL "
             "minus BC, seed by seed: %+.1f ± %.1f (%d seeds); CPL minus IQL: %+.1f ± %.1f (%d "
             "seeds)%s%s (reported, not judged). Rule: supported when CPL - BC is positive and "
             "at least 2 se, not supported when it is negative and at least 2 se, else "
             "inconclusive.",
             s[M_CPL].mean, s[M_CPL].se, s[M_BC].mean, s[M_BC].se, s[M_IQL].mean, s[M_IQL].se,
             bc.mean, bc.se, bc.n, iql.mean, iql.se, iql.n, kl, ranked);
    return 0;
}

// ----------------------------------------------------------------- report --
static int cpl_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p, "Five offline learners on the same dataset: CPL from pairs of segments labelled by "
                "the SAC agent's regret "
                "(rlhf ctrl prefs), CPL-KL and CPL with ranked batches from the same pairs, BC "
                "cloning every row, and IQL with the rewards the CPL variants never see. Final "
                "normalised score, mean ± se over seeds.");
    static const char *const fields[] = {"score", "return", "seconds"};
    study_ctrl_table(p, rows, "final", N_METHOD, METHOD, LABEL, 3, fields);
    return 0;
}

const study_def study_cpl = {
    .name = NAME,
    .paper = "Hejna et al. 2024, Contrastive Preference Learning: Learning from Human Feedback "
             "without RL (CPL)",
    .claim = "A policy learned by CPL from regret-labelled segment preferences scores higher than "
             "behaviour cloning of the same data (the paper also finds it on par with offline RL "
             "on the true rewards).",
    .run = cpl_run,
    .verdict = cpl_verdict,
    .report = cpl_report,
    .no_sandbox = 1,
    .level = "medium-replay",
};
