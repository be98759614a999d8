// study/study_ctrl_versus: one control method against its base, offline then
// online on one dataset (study_ctrl.h, "one method vs its base"); the famo2o
// and ro2o studies are tables for it.
#include <stdio.h>
#include <string.h>

#include "study/study_ctrl.h"

#define MAX_SEEDS 64

enum { A_BASE, A_OURS, N_ARM };

static int run_arm(study_ctx *c, const study_ctrl_versus *v, const study_ctrl_data *d,
                   const char *dataset, int arm, uint64_t seed, rlhf_err *err) {
    int e = strcmp(d->env, "pendulum") != 0, k = (int)study_ctrl_size_of(c);
    const char *const *set = v->settings[e][k], *const *ours = v->ours[e][k];
    const char *extra[40];
    int n = 0;
    for (int i = 0; set && set[i] && n < 19; i++) extra[n++] = set[i];
    for (int i = 0; arm == A_OURS && ours && ours[i] && n < 38; i++) extra[n++] = ours[i];
    extra[n] = NULL;
    return study_ctrl_o2o_arm(c, v->name, v->algo[arm], v->algo[arm], d, dataset, &v->budget[e][k],
                              extra, seed, err);
}

int study_ctrl_versus_run(study_ctx *c, const study_ctrl_versus *v, rlhf_err *err) {
    study_ctrl_data d = study_ctrl_data_on(c, c->task);
    char dir[1200], data[1300];
    if (study_ctrl_collect(c, &d, dir, sizeof dir, err)) return -1;
    study_ctrl_level(dir, c->level, data, sizeof data);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study %s (%s, %s): seed %d of %d\n", v->name,
                study_ctrl_size_name(study_ctrl_size_of(c)), d.env, s + 1, c->n_seeds);
        for (int a = 0; a < N_ARM; a++)
            if (run_arm(c, v, &d, data, a, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

void study_ctrl_versus_verdict(const study_ctrl_versus *v, const cJSON *rows, study_verdict *out) {
    double d[MAX_SEEDS];
    stats_summary sd = stats_summarize(
        d, study_ctrl_diffs(rows, "o2o", v->algo[A_OURS], v->algo[A_BASE], "final", d, MAX_SEEDS));
    stats_summary pre[N_ARM], dip[N_ARM], fin[N_ARM];
    for (int a = 0; a < N_ARM; a++) {
        pre[a] = study_ctrl_stat(rows, "o2o", v->algo[a], "pretrained");
        dip[a] = study_ctrl_stat(rows, "o2o", v->algo[a], "dip");
        fin[a] = study_ctrl_stat(rows, "o2o", v->algo[a], "final");
    }
    const char *b = v->label[A_BASE], *o = v->label[A_OURS];
    char env[300];
    out->outcome = study_ctrl_outcome(&sd);
    snprintf(out->figure, sizeof out->figure, "%+.1f ± %.1f final score (%s - %s, %d seeds)",
             sd.mean, sd.se, o, b, sd.n);
    snprintf(out->text, sizeof out->text,
             "%sNormalised score (mean ± se over seeds). After the offline phase: %s %.1f ± %.1f, "
             "%s %.1f ± %.1f. Lowest online evaluation (the dip): %s %.1f, %s %.1f. Final: %s "
             "%.1f ± %.1f, %s %.1f ± %.1f. %s minus %s, final, seed by seed: %+.1f ± %.1f (%d "
             "seeds). Rule: supported when the mean difference is positive and at least 2 se, "
             "not supported when it is negative and at least 2 se, else inconclusive.",
             study_ctrl_env_words(rows, env, sizeof env), b, pre[A_BASE].mean, pre[A_BASE].se, o,
             pre[A_OURS].mean, pre[A_OURS].se, b, dip[A_BASE].mean, o, dip[A_OURS].mean, b,
             fin[A_BASE].mean, fin[A_BASE].se, o, fin[A_OURS].mean, fin[A_OURS].se, o, b, sd.mean,
             sd.se, sd.n);
}

void study_ctrl_versus_report(const study_ctrl_versus *v, const cJSON *rows, report_page *p) {
    report_p(p, v->about);
    study_ctrl_plot_curves(p, rows, N_ARM, v->algo, v->label, "Normalised score over training");
    report_h(p, 2, "Pre-trained, dip, final (mean ± se over seeds)");
    static const char *const fields[] = {"pretrained", "dip", "final", "seconds"};
    study_ctrl_table(p, rows, "o2o", N_ARM, v->algo, v->label, 4, fields);
}
