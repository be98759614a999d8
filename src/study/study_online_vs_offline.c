// study/study_online_vs_offline: `rlhf study online-vs-offline` — Tang et al.
// 2024, "Understanding the performance gap between online and offline
// alignment algorithms", on the gold-reward sandbox.
//
// Per seed, one budget of gold labels: B prompts, each with 4 samples scored
// by the gold reward. Offline DPO spends it up front: 4 samples of pi_ref per
// prompt, one gold-labelled pair each (study_gold_pairs), then `rlhf dpo` over
// those pairs for a few epochs. Online DPO (`rlhf online-dpo --task
// arith:shaped`) and GRPO (`rlhf grpo --task arith:shaped`) spend it along
// training: 8 prompts x 4 samples of the current policy per iteration, B / 8
// iterations. Same beta, learning rate and schedule for the two DPOs. Every
// checkpoint is evaluated (gold reward and KL to pi_ref, the same evaluation
// prompts and sampling seed for every model of a seed), which traces each
// method's gold-vs-KL curve from pi_ref (KL 0) outwards.
//
// Rows: {method ("offline-dpo" | "online-dpo" | "grpo"), seed, step, labels
// (gold-scored samples spent so far), kl, gold, accuracy}; step 0 is pi_ref,
// measured once per seed and written for every method.
//
// Verdict (pure, from rows): per seed, the matched KL is the largest KL that
// every method's curve reaches (the smallest of the methods' largest KLs, so
// it is inside all curves' ranges); each method's gold there is read off its
// curve by linear interpolation (stats_interp over its checkpoints). The
// claim's difference d = gold(online DPO) - gold(offline DPO) is taken seed by
// seed; supported when its mean over seeds is > 0 and >= 2 standard errors,
// not supported when <= -2 se (stats_sign_test). GRPO - offline DPO is
// reported the same way.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "study/stats.h"
#include "study/study.h"

#define NAME "online-vs-offline"

enum { M_OFFLINE, M_ONLINE, M_GRPO, N_METHOD };
static const char *const METHOD[N_METHOD] = {"offline-dpo", "online-dpo", "grpo"};
static const char *const LABEL[N_METHOD] = {"offline DPO", "online DPO", "GRPO"};

#define MAX_SEEDS 64
#define MAX_POINTS 256
#define SAMPLES_PER_PROMPT 4 // gold-scored samples per prompt, offline and online
#define ONLINE_BATCH 8       // prompts per online iteration

// --------------------------------------------------------------- the plan --
typedef struct {
    int budget;                      // prompts whose 4 samples the gold reward scores
    int offline_steps, offline_save; // rlhf dpo: optimizer steps, checkpoint spacing
    int offline_batch;               // pairs per dpo step
    int online_save;                 // online-dpo / grpo checkpoint spacing
    double lr, beta, grpo_beta;
} ovo_plan;

// Offline DPO's KL grows fastest (several epochs on fixed pairs) while the
// matched KL is set by the online methods' smaller range, so its checkpoints
// are denser: its curve near pi_ref is measured, not a straight line.
static ovo_plan plan_of(const study_ctx *c) {
    if (c->quick) return (ovo_plan){320, 80, 10, 8, 10, 1e-4, 0.1, 0.04};
    return (ovo_plan){800, 200, 10, 8, 20, 1e-4, 0.1, 0.04};
}

static int online_steps(const ovo_plan *p) {
    return p->budget / ONLINE_BATCH;
}

// ------------------------------------------------------------------- rows --
static int point_row(study_ctx *c, int m, const char *model, int step, int labels, uint64_t seed,
                     rlhf_err *err) {
    study_point pt;
    if (study_eval(c, model, NULL, seed * 1000 + 11, &pt, err)) return -1;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", METHOD[m]);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "step", step);
    cJSON_AddNumberToObject(row, "labels", labels);
    cJSON_AddNumberToObject(row, "kl", pt.kl);
    cJSON_AddNumberToObject(row, "gold", pt.gold);
    cJSON_AddNumberToObject(row, "accuracy", pt.accuracy);
    study_row(c, NAME, row);
    return 0;
}

// pi_ref, once per seed, as every method's step 0
static int ref_rows(study_ctx *c, uint64_t seed, rlhf_err *err) {
    study_point pt;
    if (study_eval(c, c->sft, NULL, seed * 1000 + 11, &pt, err)) return -1;
    for (int m = 0; m < N_METHOD; m++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "method", METHOD[m]);
        cJSON_AddNumberToObject(row, "seed", (double)seed);
        cJSON_AddNumberToObject(row, "step", 0);
        cJSON_AddNumberToObject(row, "labels", 0);
        cJSON_AddNumberToObject(row, "kl", 0);
        cJSON_AddNumberToObject(row, "gold", pt.gold);
        cJSON_AddNumberToObject(row, "accuracy", pt.accuracy);
        study_row(c, NAME, row);
    }
    return 0;
}

// gold labels spent by a checkpoint at `step` of method m
static int labels_at(const ovo_plan *p, int m, int step) {
    if (m == M_OFFLINE) return p->budget * SAMPLES_PER_PROMPT;
    return step * ONLINE_BATCH * SAMPLES_PER_PROMPT;
}

// rows for every checkpoint of run (save spacing `save`, `steps` in all)
static int checkpoint_rows(study_ctx *c, const ovo_plan *p, int m, const char *run, int steps,
                           int save, uint64_t seed, rlhf_err *err) {
    char model[1400];
    for (int step = save; step < steps; step += save) {
        snprintf(model, sizeof model, "%s/checkpoints/step-%08d", run, step);
        if (point_row(c, m, model, step, labels_at(p, m, step), seed, err)) return -1;
    }
    snprintf(model, sizeof model, "%s/checkpoints/final", run);
    return point_row(c, m, model, steps, labels_at(p, m, steps), seed, err);
}

// the flags both DPOs and GRPO share
static void common_flags(study_args *a, const study_ctx *c, const char *run, uint64_t seed,
                         double lr) {
    study_add(a, "--model", c->sft, "--output_dir", run, "--lr_scheduler_type", "constant",
              "--quiet", "--overwrite_output_dir", NULL);
    study_addf(a, "--learning_rate=%g", lr);
    study_addf(a, "--seed=%llu", (unsigned long long)seed);
}

static int offline_dpo(study_ctx *c, const ovo_plan *p, const char *dir, uint64_t seed,
                       rlhf_err *err) {
    char pairs[1300], run[1300], log[96];
    snprintf(pairs, sizeof pairs, "%s/pairs-seed%llu.jsonl", dir, (unsigned long long)seed);
    if (study_gold_pairs(c, c->sft, p->budget, 0, seed, pairs, err)) return -1;
    snprintf(run, sizeof run, "%s/offline-dpo", dir);
    study_args a = {0};
    study_add(&a, "dpo", "--data", pairs, "--kl_prompts", "0", NULL);
    common_flags(&a, c, run, seed, p->lr);
    study_addf(&a, "--beta=%g", p->beta);
    study_addf(&a, "--batch_size=%d", p->offline_batch);
    study_addf(&a, "--max_steps=%d", p->offline_steps);
    study_addf(&a, "--save_steps=%d", p->offline_save);
    snprintf(log, sizeof log, "train/seed%llu-offline-dpo", (unsigned long long)seed);
    if (study_run(c, log, &a, NULL, err)) return -1;
    return checkpoint_rows(c, p, M_OFFLINE, run, p->offline_steps, p->offline_save, seed, err);
}

// online DPO or GRPO with the gold reward, B / 8 iterations of 8 prompts x 4
static int online(study_ctx *c, const ovo_plan *p, const char *dir, int m, uint64_t seed,
                  rlhf_err *err) {
    char run[1300], log[96];
    snprintf(run, sizeof run, "%s/%s", dir, METHOD[m]);
    study_args a = {0};
    study_add(&a, m == M_ONLINE ? "online-dpo" : "grpo", "--task", "arith:shaped",
              "--max_new_tokens", "8", NULL);
    common_flags(&a, c, run, seed, p->lr);
    study_addf(&a, "--data=%s/prompts.jsonl", c->data);
    study_addf(&a, "--beta=%g", m == M_ONLINE ? p->beta : p->grpo_beta);
    study_addf(&a, "--batch_size=%d", ONLINE_BATCH);
    study_addf(&a, "--num_generations=%d", SAMPLES_PER_PROMPT);
    study_addf(&a, "--max_steps=%d", online_steps(p));
    study_addf(&a, "--save_steps=%d", p->online_save);
    snprintf(log, sizeof log, "train/seed%llu-%s", (unsigned long long)seed, METHOD[m]);
    if (study_run(c, log, &a, NULL, err)) return -1;
    return checkpoint_rows(c, p, m, run, online_steps(p), p->online_save, seed, err);
}

static int ovo_run(study_ctx *c, rlhf_err *err) {
    ovo_plan p = plan_of(c);
    fprintf(stderr,
            "study %s: %d seeds; %d gold-scored samples per method and seed (offline: %d "
            "prompts' pairs, %d DPO steps; online: %d iterations of %d prompts)\n",
            NAME, c->n_seeds, p.budget * SAMPLES_PER_PROMPT, p.budget, p.offline_steps,
            online_steps(&p), ONLINE_BATCH);
    for (int s = 0; s < c->n_seeds; s++) {
        uint64_t seed = c->seed + (uint64_t)s;
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
        if (make_dirs(dir, err) || ref_rows(c, seed, err) || offline_dpo(c, &p, dir, seed, err) ||
            online(c, &p, dir, M_ONLINE, seed, err) || online(c, &p, dir, M_GRPO, seed, err))
            return -1;
        fprintf(stderr, "study %s: seed %llu done (%.0f s)\n", NAME, (unsigned long long)seed,
                time_now() - c->t0);
    }
    return 0;
}

// --------------------------------------------------------------- analysis --
static int method_of(const cJSON *row) {
    for (int m = 0; m < N_METHOD; m++)
        if (!strcmp(study_str(row, "method"), METHOD[m])) return m;
    return -1;
}

// the distinct seeds of the rows, in order of appearance
static int seeds_of(const cJSON *rows, double *seeds) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double s = study_num(row, "seed");
        if (isnan(s) || method_of(row) < 0) continue;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = seeds[i] == s;
        if (!seen && n < MAX_SEEDS) seeds[n++] = s;
    }
    return n;
}

// method m's (kl, gold) points of one seed
static int curve(const cJSON *rows, int m, double seed, double *kl, double *gold) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (method_of(row) != m || study_num(row, "seed") != seed || n >= MAX_POINTS) continue;
        double k = study_num(row, "kl"), g = study_num(row, "gold");
        if (isnan(k) || isnan(g)) continue;
        kl[n] = k;
        gold[n++] = g;
    }
    return n;
}

// one seed at its matched KL: gold of each method there (NAN when the method
// has no curve in that seed), and the KL itself (NAN when offline or online
// DPO has fewer than two points, or the curves share no KL above 0)
typedef struct {
    double seed, kl, gold[N_METHOD];
} ovo_match;

static ovo_match match_seed(const cJSON *rows, double seed) {
    ovo_match r = {seed, NAN, {NAN, NAN, NAN}};
    static double kl[N_METHOD][MAX_POINTS], gold[N_METHOD][MAX_POINTS];
    int n[N_METHOD];
    double at = INFINITY;
    for (int m = 0; m < N_METHOD; m++) {
        n[m] = curve(rows, m, seed, kl[m], gold[m]);
        if (n[m] < 2) continue;
        double top = -INFINITY;
        for (int i = 0; i < n[m]; i++) top = fmax(top, kl[m][i]);
        at = fmin(at, top);
    }
    if (n[M_OFFLINE] < 2 || n[M_ONLINE] < 2 || !(at > 0) || isinf(at)) return r;
    r.kl = at;
    for (int m = 0; m < N_METHOD; m++)
        if (n[m] >= 2) r.gold[m] = stats_interp(kl[m], gold[m], n[m], at);
    return r;
}

static int match_all(const cJSON *rows, ovo_match *out) {
    double seeds[MAX_SEEDS];
    int ns = seeds_of(rows, seeds), k = 0;
    for (int i = 0; i < ns; i++) {
        ovo_match r = match_seed(rows, seeds[i]);
        if (!isnan(r.kl)) out[k++] = r;
    }
    return k;
}

// ---------------------------------------------------------------- verdict --
static int ovo_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    ovo_match mt[MAX_SEEDS];
    int n = match_all(rows, mt);
    double d_on[MAX_SEEDS], d_grpo[MAX_SEEDS], klm[MAX_SEEDS], g[N_METHOD][MAX_SEEDS];
    for (int i = 0; i < n; i++) {
        d_on[i] = mt[i].gold[M_ONLINE] - mt[i].gold[M_OFFLINE];
        d_grpo[i] = mt[i].gold[M_GRPO] - mt[i].gold[M_OFFLINE];
        klm[i] = mt[i].kl;
        for (int m = 0; m < N_METHOD; m++) g[m][i] = mt[i].gold[m];
    }
    stats_summary on = stats_summarize(d_on, n), gr = stats_summarize(d_grpo, n),
                  k = stats_summarize(klm, n), gm[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) gm[m] = stats_summarize(g[m], n);
    v->outcome = (study_outcome)stats_sign_test(&on);
    if (n == 0) {
        snprintf(v->text, sizeof v->text,
                 "No seed has both an offline and an online DPO curve with two or more points "
                 "reaching a KL above 0: nothing to compare.");
        snprintf(v->figure, sizeof v->figure, "no matched-KL comparison");
        return 0;
    }
    double klo = INFINITY, khi = -INFINITY;
    for (int i = 0; i < n; i++) {
        klo = fmin(klo, klm[i]);
        khi = fmax(khi, klm[i]);
    }
    snprintf(
        v->text, sizeof v->text,
        "Per seed, each method's gold reward is read off its gold-vs-KL curve at the largest "
        "KL every method reaches (mean %.3g nats over %d seeds, range %.3g..%.3g). There, "
        "online DPO minus offline DPO: %+.4f ± %.4f gold (mean ± se over seeds; 95%% CI "
        "%+.4f..%+.4f); GRPO minus offline DPO: %+.4f ± %.4f (%s). Gold at matched KL: "
        "offline DPO %.4f, online DPO %.4f, GRPO %.4f. Supported when the online-minus-offline "
        "difference is positive and at least 2 se, not supported when it is negative and at "
        "least 2 se.",
        k.mean, n, klo, khi, on.mean, on.se, on.lo, on.hi, gr.mean, gr.se,
        study_outcome_name((study_outcome)stats_sign_test(&gr)), gm[M_OFFLINE].mean,
        gm[M_ONLINE].mean, gm[M_GRPO].mean);
    snprintf(v->figure, sizeof v->figure, "%+.3f ± %.3f gold at matched KL (online − offline DPO)",
             on.mean, on.se);
    return 0;
}

// ----------------------------------------------------------------- report --
// method m's curve averaged over seeds step by step: x = mean KL, y = mean
// gold, band = ± se of gold; n points (distinct steps, ascending)
typedef struct {
    int n;
    double x[MAX_POINTS], y[MAX_POINTS], lo[MAX_POINTS], hi[MAX_POINTS];
} ovo_curve;

static int by_double(const void *a, const void *b) {
    double u = *(const double *)a, w = *(const double *)b;
    return (u > w) - (u < w);
}

static void mean_curve(const cJSON *rows, int m, ovo_curve *cv) {
    double steps[MAX_POINTS];
    int ns = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double st = study_num(row, "step");
        if (method_of(row) != m || isnan(st)) continue;
        int seen = 0;
        for (int i = 0; i < ns && !seen; i++) seen = steps[i] == st;
        if (!seen && ns < MAX_POINTS) steps[ns++] = st;
    }
    qsort(steps, (size_t)ns, sizeof steps[0], by_double);
    cv->n = 0;
    for (int i = 0; i < ns; i++) {
        double kl[MAX_SEEDS], gold[MAX_SEEDS];
        int k = 0;
        cJSON_ArrayForEach(row, rows) {
            if (method_of(row) != m || study_num(row, "step") != steps[i] || k >= MAX_SEEDS)
                continue;
            kl[k] = study_num(row, "kl");
            gold[k++] = study_num(row, "gold");
        }
        stats_summary sk = stats_summarize(kl, k), sg = stats_summarize(gold, k);
        double se = isnan(sg.se) ? 0 : sg.se;
        cv->x[cv->n] = sk.mean;
        cv->y[cv->n] = sg.mean;
        cv->lo[cv->n] = sg.mean - se;
        cv->hi[cv->n++] = sg.mean + se;
    }
}

static void mean_plot(report_page *p, const cJSON *rows) {
    static ovo_curve cv[N_METHOD];
    report_series s[N_METHOD];
    for (int m = 0; m < N_METHOD; m++) {
        mean_curve(rows, m, &cv[m]);
        s[m] = (report_series){.label = LABEL[m],
                               .n = cv[m].n,
                               .x = cv[m].x,
                               .y = cv[m].y,
                               .ylo = cv[m].lo,
                               .yhi = cv[m].hi,
                               .markers = 1};
    }
    report_plot_opts o = {.title = "Gold reward against KL to pi_ref (mean over seeds by step)",
                          .xlabel = "KL(policy || pi_ref), nats",
                          .ylabel = "gold reward"};
    report_plot(p, &o, s, N_METHOD);
}

// every seed's own curve (the verdict reads these)
static void seed_plot(report_page *p, const cJSON *rows) {
    double seeds[MAX_SEEDS];
    int ns = seeds_of(rows, seeds);
    if (ns > 8) ns = 8; // a readable plot
    static double kl[N_METHOD * 8][MAX_POINTS], gold[N_METHOD * 8][MAX_POINTS];
    char labels[N_METHOD * 8][64];
    report_series s[N_METHOD * 8];
    int k = 0;
    for (int i = 0; i < ns; i++)
        for (int m = 0; m < N_METHOD; m++, k++) {
            int n = curve(rows, m, seeds[i], kl[k], gold[k]);
            snprintf(labels[k], sizeof labels[k], "%s, seed %.0f", METHOD[m], seeds[i]);
            s[k] = (report_series){.label = labels[k],
                                   .n = n,
                                   .x = kl[k],
                                   .y = gold[k],
                                   .markers = 2,
                                   .dashed = m == M_OFFLINE};
        }
    report_plot_opts o = {.title = "Every seed's checkpoints: gold against KL",
                          .xlabel = "KL(policy || pi_ref), nats",
                          .ylabel = "gold reward"};
    report_plot(p, &o, s, k);
}

static void match_table(report_page *p, const cJSON *rows) {
    ovo_match mt[MAX_SEEDS];
    int n = match_all(rows, mt);
    static const char *const head[] = {"seed", "matched KL",       "offline DPO",   "online DPO",
                                       "GRPO", "online − offline", "GRPO − offline"};
    char **cells = xcalloc((size_t)n * 7 + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        double v[7] = {mt[i].seed,
                       mt[i].kl,
                       mt[i].gold[M_OFFLINE],
                       mt[i].gold[M_ONLINE],
                       mt[i].gold[M_GRPO],
                       mt[i].gold[M_ONLINE] - mt[i].gold[M_OFFLINE],
                       mt[i].gold[M_GRPO] - mt[i].gold[M_OFFLINE]};
        for (int j = 0; j < 7; j++) {
            cells[i * 7 + j] = xmalloc(32);
            snprintf(cells[i * 7 + j], 32, j == 0 ? "%.0f" : j >= 5 ? "%+.4f" : "%.4f", v[j]);
        }
    }
    report_table(p, 7, head, n, (const char *const *)cells);
    for (int i = 0; i < n * 7; i++) free(cells[i]);
    free(cells);
}

static int ovo_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p, "Offline DPO trains on pairs of pi_ref's samples labelled once by the gold reward; "
                "online DPO and GRPO label their own samples along training with the same number "
                "of gold-scored samples in all. Every checkpoint's gold reward and KL to pi_ref "
                "(step 0 is pi_ref itself). Online DPO and offline DPO share beta and learning "
                "rate.");
    mean_plot(p, rows);
    seed_plot(p, rows);
    report_h(p, 2, "Gold at matched KL, seed by seed");
    report_p(p, "Matched KL: the largest KL every method's curve of that seed reaches; each "
                "method's gold there by linear interpolation between its checkpoints.");
    match_table(p, rows);
    return 0;
}

const study_def study_online_vs_offline = {
    .name = NAME,
    .paper = "Tang et al. 2024, Understanding the performance gap between online and offline "
             "alignment algorithms",
    .claim = "At the same KL to pi_ref, online DPO (labelling its own samples with the gold "
             "reward along training) reaches a higher gold reward than offline DPO on pairs "
             "sampled once from pi_ref, with the same number of gold labels (GRPO reported too).",
    .run = ovo_run,
    .verdict = ovo_verdict,
    .report = ovo_report,
};
