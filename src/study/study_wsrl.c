// study/study_wsrl: `rlhf study wsrl` — Zhou et al. 2024, "Efficient Online
// Reinforcement Learning Fine-Tuning Need Not Retain Offline Data" (WSRL), on
// our control environments (study_ctrl.h: pendulum for --quick, hopper for
// the full version when the build has MuJoCo; --task names another, e.g. halfcheetah).
//
// One dataset (our SAC agent's medium-replay level, or --level); per seed, three arms of
// `rlhf ctrl train --algo wsrl` (Cal-QL pre-training, then SAC with a Q
// ensemble online) with the same pre-training (same seed and offline phase)
// and the same online budget:
//   wsrl       no retention (--retain_offline 0) with a warm-up of W policy steps
//   retain     the offline data kept in every online batch (--retain_offline 1,
//              --mix_ratio 0.5, RLPD-style), same warm-up
//   no_warmup  no retention and no warm-up (the dip the paper explains)
// Every evaluation is a "curve" row; per arm an "o2o" row with the
// pre-trained score (the evaluation at the switch), the dip (the lowest
// evaluation after it) and the final score (study_ctrl_o2o_rows).
//
// Verdict (pure, from rows), the paper's claim in two parts, seed by seed:
//   recovery  rec = final(wsrl) - pretrained(wsrl): fine-tuning without the
//             data ends above where it started;
//   parity    d = final(wsrl) - final(retain): it ends at least as high as
//             keeping the data, within a margin of MARGIN points.
// Supported when rec's mean is > 0 and >= 2 se (stats_sign_test) and
// d's mean - 2 se > -MARGIN; not supported when rec's mean is < 0 and at
// least 2 se, or d's mean + 2 se < -MARGIN (clearly worse); else
// inconclusive (fewer than two seeds too).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "study/study_ctrl.h"

#define NAME "wsrl"
#define MAX_SEEDS 64
#define MARGIN 5.0 // normalised-score points of the parity test

enum { A_WSRL, A_RETAIN, A_NOWARM, N_ARM };
static const char *const ARM[N_ARM] = {"wsrl", "retain", "no_warmup"};
static const char *const LABEL[N_ARM] = {
    "WSRL (no retention, warm-up)", "retain the offline data (50/50)", "no retention, no warm-up"};

typedef struct {
    study_ctrl_data data;
    study_ctrl_o2o o2o;
    int warmup;
    const char *const *settings; // the ctrl train settings of every arm (NULL-terminated)
} wsrl_plan;

static const char *const SMOKE_SET[] = {"--n_critics=2", "--batch_size=32",
                                        "--online_batch_size=64", "--cql_n_actions=4", NULL};
static const char *const QUICK_SET[] = {"--n_critics=4", "--batch_size=64",
                                        "--online_batch_size=256", "--cql_n_actions=4", NULL};
// a MuJoCo task's quick size (--task): batch 256 as the recipe's online batch,
// and the recipe's layer norm in the critics (without it the WSRL arm's Q
// estimates ran away on halfcheetah: docs/ctrl_studies.md) and in the policy
static const char *const MJ_QUICK_SET[] = {"--n_critics=4",
                                           "--batch_size=256",
                                           "--online_batch_size=256",
                                           "--cql_n_actions=4",
                                           "--critic_layer_norm=1",
                                           "--actor_layer_norm=1",
                                           NULL};
// the recipe's defaults (10 critics, 1024 rows) and its layer norm in every network
static const char *const FULL_SET[] = {"--critic_layer_norm=1", "--actor_layer_norm=1", NULL};

static wsrl_plan plan_of(const study_ctx *c) {
    wsrl_plan p = {.data = study_ctrl_data_on(c, c->task)};
    int pendulum = !strcmp(p.data.env, "pendulum");
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE:
        p.o2o = (study_ctrl_o2o){200, 600, 200}, p.warmup = 200, p.settings = SMOKE_SET;
        break;
    case STUDY_CTRL_QUICK:
        if (pendulum) {
            p.o2o = (study_ctrl_o2o){1000, 4000, 500}, p.warmup = 1000, p.settings = QUICK_SET;
        } else {
            p.o2o = (study_ctrl_o2o){10000, 10000, 2000}, p.warmup = 2000;
            p.settings = MJ_QUICK_SET;
        }
        break;
    default:
        if (pendulum)
            p.o2o = (study_ctrl_o2o){2000, 8000, 500}, p.warmup = 2000;
        else
            p.o2o = (study_ctrl_o2o){100000, 100000, 5000}, p.warmup = 5000;
        p.settings = FULL_SET;
        break;
    }
    return p;
}

// ------------------------------------------------------------------ run --
static int run_arm(study_ctx *c, const wsrl_plan *pl, const char *dataset, int arm, uint64_t seed,
                   rlhf_err *err) {
    const char *extra[24];
    int n = 0;
    for (int i = 0; pl->settings[i] && n < 16; i++) extra[n++] = pl->settings[i];
    char warm[48];
    snprintf(warm, sizeof warm, "--warmup_steps=%d", arm == A_NOWARM ? 0 : pl->warmup);
    extra[n++] = warm;
    extra[n++] = arm == A_RETAIN ? "--retain_offline=1" : "--retain_offline=0";
    if (arm == A_RETAIN) extra[n++] = "--mix_ratio=0.5";
    extra[n] = NULL;
    return study_ctrl_o2o_arm(c, NAME, ARM[arm], "wsrl", &pl->data, dataset, &pl->o2o, extra, seed,
                              err);
}

static int wsrl_run(study_ctx *c, rlhf_err *err) {
    wsrl_plan pl = plan_of(c);
    char dir[1200], data[1300];
    if (study_ctrl_collect(c, &pl.data, dir, sizeof dir, err)) return -1;
    study_ctrl_level(dir, c->level, data, sizeof data);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME " (%s, %s): seed %d of %d\n",
                study_ctrl_size_name(study_ctrl_size_of(c)), pl.data.env, s + 1, c->n_seeds);
        for (int a = 0; a < N_ARM; a++)
            if (run_arm(c, &pl, data, a, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- verdict --
static int wsrl_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    double rec[MAX_SEEDS], d[MAX_SEEDS], seed[MAX_SEEDS];
    int ns = study_ctrl_seeds(rows, "phase", "o2o", seed, MAX_SEEDS), nr = 0;
    for (int s = 0; s < ns; s++) {
        const cJSON *r = study_ctrl_match(rows, seed[s], "phase", "o2o", "method", "wsrl", NULL);
        double x = study_num(r, "final") - study_num(r, "pretrained");
        if (!isnan(x)) rec[nr++] = x;
    }
    stats_summary sr = stats_summarize(rec, nr);
    stats_summary sd =
        stats_summarize(d, study_ctrl_diffs(rows, "o2o", "wsrl", "retain", "final", d, MAX_SEEDS));
    stats_summary fin[N_ARM], dip[N_ARM], pre = study_ctrl_stat(rows, "o2o", "wsrl", "pretrained");
    for (int a = 0; a < N_ARM; a++) {
        fin[a] = study_ctrl_stat(rows, "o2o", ARM[a], "final");
        dip[a] = study_ctrl_stat(rows, "o2o", ARM[a], "dip");
    }
    int recovers = stats_sign_test(&sr);
    int enough = sr.n >= 2 && sd.n >= 2;
    int parity = enough && sd.mean - 2 * sd.se > -MARGIN;
    int worse = enough && sd.mean + 2 * sd.se < -MARGIN;
    v->outcome = !enough                  ? STUDY_INCONCLUSIVE
                 : recovers < 0 || worse  ? STUDY_NOT_SUPPORTED
                 : recovers > 0 && parity ? STUDY_SUPPORTED
                                          : STUDY_INCONCLUSIVE;
    snprintf(v->figure, sizeof v->figure,
             "%+.1f ± %.1f final score (no retention - retention), %+.1f ± %.1f over "
             "pre-training (%d seeds)",
             sd.mean, sd.se, sr.mean, sr.se, sd.n);
    char env[300];
    snprintf(v->text, sizeof v->text,
             "%sNormalised score (mean ± se over seeds). Pre-trained (Cal-QL, the evaluation at "
             "the switch): %.1f ± %.1f. Final: WSRL %.1f ± %.1f, retaining the data %.1f ± %.1f, "
             "no warm-up %.1f ± %.1f. Lowest online evaluation (the dip): WSRL %.1f, retaining "
             "%.1f, no warm-up %.1f. Recovery (WSRL's final minus its pre-trained score, seed by "
             "seed): %+.1f ± %.1f (%d seeds). WSRL minus retaining, final: %+.1f ± %.1f. Rule: "
             "supported when the recovery is positive by at least 2 se and the final difference "
             "is above -%g points by 2 se; not supported when the recovery is negative by 2 se "
             "or the difference is below -%g points by 2 se; else inconclusive.",
             study_ctrl_env_words(rows, env, sizeof env), pre.mean, pre.se, fin[A_WSRL].mean,
             fin[A_WSRL].se, fin[A_RETAIN].mean, fin[A_RETAIN].se, fin[A_NOWARM].mean,
             fin[A_NOWARM].se, dip[A_WSRL].mean, dip[A_RETAIN].mean, dip[A_NOWARM].mean, sr.mean,
             sr.se, sr.n, sd.mean, sd.se, MARGIN, MARGIN);
    return 0;
}

// ----------------------------------------------------------------- report --
static int wsrl_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p, "Cal-QL pre-training on the dataset, then online fine-tuning with "
                "WSRL's SAC (Q ensemble): without the offline data after a warm-up of policy "
                "steps (WSRL), keeping the data in every batch, and without the data or the "
                "warm-up. The switch is at the first evaluation after the offline phase; mean "
                "over seeds, band ± se.");
    study_ctrl_plot_curves(p, rows, N_ARM, ARM, LABEL, "Normalised score over training");
    report_h(p, 2, "Pre-trained, dip, final (mean ± se over seeds)");
    static const char *const fields[] = {"pretrained", "dip", "final", "seconds"};
    study_ctrl_table(p, rows, "o2o", N_ARM, ARM, LABEL, 4, fields);
    return 0;
}

const study_def study_wsrl = {
    .name = NAME,
    .paper = "Zhou et al. 2024, Efficient Online Reinforcement Learning Fine-Tuning Need Not "
             "Retain Offline Data (WSRL)",
    .claim = "Fine-tuning without retaining the offline data, after a warm-up of policy steps, "
             "recovers from the switch and ends at least as high as fine-tuning that keeps the "
             "data.",
    .run = wsrl_run,
    .check_task = study_ctrl_env_check,
    .verdict = wsrl_verdict,
    .report = wsrl_report,
    .no_sandbox = 1,
    .level = "medium-replay",
};
