// study/study_vpo: `rlhf study vpo` — Cen et al. 2024, "Value-incentivized
// preference optimization" (VPO; papers.md card 1), on the gold-reward
// sandbox.
//
// VPO adds a value term to DPO's loss: s·α·β·E_{y~pi_cal}[log pi(y|x)]
// (docs/losses.md: `--loss_type vpo --vpo_alpha A --vpo_sign S`); s = -1 is
// pessimism (an SFT-like pull towards the calibration responses), s = +1
// optimism (a push away from them, exploration), α = 0 is plain DPO. The
// study sweeps the sign, -1 / 0 (`--loss_type sigmoid`) / +1 at one α, in
// both settings of the paper:
//
// * offline: `rlhf dpo` for several epochs on pairs of pi_ref's samples
//   labelled by the gold reward (study_gold_pairs); the calibration response
//   is each pair's chosen one. Every checkpoint evaluated (gold, KL).
// * online: `rlhf online-dpo --task arith:shaped --loss_type vpo`, pi_cal =
//   pi_ref (one sample per prompt and iteration). Every checkpoint evaluated.
//
// Rows: {mode ("offline" | "online"), method ("vpo-pessimistic" | "dpo" |
// "vpo-optimistic"), sign, alpha, seed, step, epoch (offline: passes over the
// pairs), kl, gold, accuracy}; step 0 is pi_ref, measured once per seed and
// written for every mode and method.
//
// The claim tested (the verdict): offline, pessimism avoids DPO's late
// over-optimisation — after the last epoch, pessimistic VPO's gold is higher
// than DPO's. Per seed d = final gold(vpo-pessimistic) - final gold(dpo);
// supported when its mean over seeds is > 0 and >= 2 se, not supported when
// it is < 0 and at least 2 se (stats_sign_test). DPO's own late drop (its best
// checkpoint's gold minus its final gold) is reported with it. The online
// claim (optimism explores and reaches a higher gold than online DPO) is
// measured the same way (final gold(vpo-optimistic) - final gold(dpo), sign
// test) and reported in the text; it does not decide the verdict: the paper
// shows it on a bandit, and here pi_ref already samples a right answer half
// the time, so exploration is not what limits the gold reward.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "study/stats.h"
#include "study/study.h"

#define NAME "vpo"

enum { S_PESS, S_DPO, S_OPT, N_SIGN };
static const char *const METHOD[N_SIGN] = {"vpo-pessimistic", "dpo", "vpo-optimistic"};
static const int SIGN[N_SIGN] = {-1, 0, 1};
enum { OFFLINE, ONLINE, N_MODE };
static const char *const MODE[N_MODE] = {"offline", "online"};

#define MAX_SEEDS 64
#define MAX_POINTS 256

// --------------------------------------------------------------- the plan --
typedef struct {
    double alpha, beta;
    int budget; // offline: prompts of pi_ref whose samples make pairs
    int off_steps, off_save, off_batch;
    double off_lr;
    int on_steps, on_save, on_batch, on_generations;
    double on_lr;
} vpo_plan;

static vpo_plan plan_of(const study_ctx *c) {
    if (c->quick) return (vpo_plan){0.3, 0.1, 400, 100, 25, 16, 2e-4, 60, 20, 8, 4, 1e-4};
    return (vpo_plan){0.3, 0.1, 800, 200, 25, 16, 2e-4, 200, 50, 8, 4, 1e-4};
}

// ------------------------------------------------------------------- rows --
static cJSON *new_row(int mode, int k, double alpha, uint64_t seed, int step) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "mode", MODE[mode]);
    cJSON_AddStringToObject(row, "method", METHOD[k]);
    cJSON_AddNumberToObject(row, "sign", SIGN[k]);
    cJSON_AddNumberToObject(row, "alpha", SIGN[k] ? alpha : 0);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "step", step);
    return row;
}

static void add_point(cJSON *row, const study_point *pt) {
    cJSON_AddNumberToObject(row, "kl", pt->kl);
    cJSON_AddNumberToObject(row, "gold", pt->gold);
    cJSON_AddNumberToObject(row, "accuracy", pt->accuracy);
}

// pi_ref, once per seed, as step 0 of every mode and method
static int ref_rows(study_ctx *c, const vpo_plan *p, uint64_t seed, rlhf_err *err) {
    study_point pt;
    if (study_eval(c, c->sft, NULL, seed * 1000 + 13, &pt, err)) return -1;
    for (int mode = 0; mode < N_MODE; mode++)
        for (int k = 0; k < N_SIGN; k++) {
            cJSON *row = new_row(mode, k, p->alpha, seed, 0);
            if (mode == OFFLINE) cJSON_AddNumberToObject(row, "epoch", 0);
            add_point(row, &pt);
            study_row(c, NAME, row);
        }
    return 0;
}

// one checkpoint's row; n_pairs > 0 adds the epoch (offline)
static int checkpoint_row(study_ctx *c, const vpo_plan *p, int mode, int k, const char *model,
                          int step, int n_pairs, uint64_t seed, rlhf_err *err) {
    study_point pt;
    if (study_eval(c, model, NULL, seed * 1000 + 13, &pt, err)) return -1;
    cJSON *row = new_row(mode, k, p->alpha, seed, step);
    if (n_pairs > 0)
        cJSON_AddNumberToObject(row, "epoch", round(100.0 * step * p->off_batch / n_pairs) / 100);
    add_point(row, &pt);
    study_row(c, NAME, row);
    return 0;
}

// rows for every checkpoint of run (spacing `save`, `steps` in all)
static int checkpoint_rows(study_ctx *c, const vpo_plan *p, int mode, int k, const char *run,
                           int steps, int save, int n_pairs, uint64_t seed, rlhf_err *err) {
    char model[1400];
    for (int step = save; step < steps; step += save) {
        snprintf(model, sizeof model, "%s/checkpoints/step-%08d", run, step);
        if (checkpoint_row(c, p, mode, k, model, step, n_pairs, seed, err)) return -1;
    }
    snprintf(model, sizeof model, "%s/checkpoints/final", run);
    return checkpoint_row(c, p, mode, k, model, steps, n_pairs, seed, err);
}

// the loss flags of sign k
static void loss_flags(study_args *a, const vpo_plan *p, int k) {
    if (SIGN[k] == 0) {
        study_add(a, "--loss_type", "sigmoid", NULL);
        return;
    }
    study_add(a, "--loss_type", "vpo", NULL);
    study_addf(a, "--vpo_sign=%d", SIGN[k]);
    study_addf(a, "--vpo_alpha=%g", p->alpha);
}

static void common_flags(study_args *a, const study_ctx *c, const vpo_plan *p, const char *run,
                         uint64_t seed, int k) {
    study_add(a, "--model", c->sft, "--output_dir", run, "--lr_scheduler_type", "constant",
              "--quiet", "--overwrite_output_dir", NULL);
    study_addf(a, "--beta=%g", p->beta);
    study_addf(a, "--seed=%llu", (unsigned long long)seed);
    loss_flags(a, p, k);
}

static int offline_run(study_ctx *c, const vpo_plan *p, const char *dir, const char *pairs,
                       int n_pairs, int k, uint64_t seed, rlhf_err *err) {
    char run[1300], log[96];
    snprintf(run, sizeof run, "%s/offline-%s", dir, METHOD[k]);
    study_args a = {0};
    study_add(&a, "dpo", "--data", pairs, "--kl_prompts", "0", NULL);
    common_flags(&a, c, p, run, seed, k);
    study_addf(&a, "--learning_rate=%g", p->off_lr);
    study_addf(&a, "--batch_size=%d", p->off_batch);
    study_addf(&a, "--max_steps=%d", p->off_steps);
    study_addf(&a, "--save_steps=%d", p->off_save);
    snprintf(log, sizeof log, "train/seed%llu-offline-%s", (unsigned long long)seed, METHOD[k]);
    if (study_run(c, log, &a, NULL, err)) return -1;
    return checkpoint_rows(c, p, OFFLINE, k, run, p->off_steps, p->off_save, n_pairs, seed, err);
}

static int online_run(study_ctx *c, const vpo_plan *p, const char *dir, int k, uint64_t seed,
                      rlhf_err *err) {
    char run[1300], log[96];
    snprintf(run, sizeof run, "%s/online-%s", dir, METHOD[k]);
    study_args a = {0};
    study_add(&a, "online-dpo", "--task", "arith:shaped", "--max_new_tokens", "8", NULL);
    common_flags(&a, c, p, run, seed, k);
    study_addf(&a, "--data=%s/prompts.jsonl", c->data);
    study_addf(&a, "--learning_rate=%g", p->on_lr);
    study_addf(&a, "--batch_size=%d", p->on_batch);
    study_addf(&a, "--num_generations=%d", p->on_generations);
    study_addf(&a, "--max_steps=%d", p->on_steps);
    study_addf(&a, "--save_steps=%d", p->on_save);
    snprintf(log, sizeof log, "train/seed%llu-online-%s", (unsigned long long)seed, METHOD[k]);
    if (study_run(c, log, &a, NULL, err)) return -1;
    return checkpoint_rows(c, p, ONLINE, k, run, p->on_steps, p->on_save, 0, seed, err);
}

// lines of a file (the pairs written)
static int count_lines(const char *path, rlhf_err *err) {
    size_t len = 0;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    int n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    if (len > 0 && text[len - 1] != '\n') n++;
    free(text);
    return n;
}

static int seed_run(study_ctx *c, const vpo_plan *p, uint64_t seed, rlhf_err *err) {
    char dir[1200], pairs[1300];
    snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
    snprintf(pairs, sizeof pairs, "%s/pairs.jsonl", dir);
    if (make_dirs(dir, err) || ref_rows(c, p, seed, err) ||
        study_gold_pairs(c, c->sft, p->budget, 0, seed, pairs, err))
        return -1;
    int n_pairs = count_lines(pairs, err);
    if (n_pairs < 0) return -1;
    if (n_pairs < p->off_batch)
        return rlhf_fail(err, "study vpo: %s has %d pairs; the offline runs need %d", pairs,
                         n_pairs, p->off_batch);
    for (int k = 0; k < N_SIGN; k++)
        if (offline_run(c, p, dir, pairs, n_pairs, k, seed, err)) return -1;
    for (int k = 0; k < N_SIGN; k++)
        if (online_run(c, p, dir, k, seed, err)) return -1;
    return 0;
}

static int vpo_run(study_ctx *c, rlhf_err *err) {
    vpo_plan p = plan_of(c);
    fprintf(stderr,
            "study %s: %d seeds; VPO sign -1 / 0 / +1 at alpha %g; offline: %d DPO steps on the "
            "pairs of %d prompts; online: %d iterations\n",
            NAME, c->n_seeds, p.alpha, p.off_steps, p.budget, p.on_steps);
    for (int s = 0; s < c->n_seeds; s++) {
        uint64_t seed = c->seed + (uint64_t)s;
        if (seed_run(c, &p, seed, err)) return -1;
        fprintf(stderr, "study %s: seed %llu done (%.0f s)\n", NAME, (unsigned long long)seed,
                time_now() - c->t0);
    }
    return 0;
}

// --------------------------------------------------------------- analysis --
static int index_of(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static int row_is(const cJSON *row, int mode, int k) {
    return index_of(study_str(row, "mode"), MODE, N_MODE) == mode &&
           index_of(study_str(row, "method"), METHOD, N_SIGN) == k;
}

// the distinct seeds of the study's rows, in order of appearance
static int seeds_of(const cJSON *rows, double *seeds) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double s = study_num(row, "seed");
        if (isnan(s) || index_of(study_str(row, "method"), METHOD, N_SIGN) < 0) continue;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = seeds[i] == s;
        if (!seen && n < MAX_SEEDS) seeds[n++] = s;
    }
    return n;
}

// a run's final gold (its row with the largest step > 0) and best gold (over
// all its rows, pi_ref's step 0 included); NAN when it has no trained row
typedef struct {
    double final, best, final_step, final_epoch;
} vpo_run_end;

static vpo_run_end run_end(const cJSON *rows, int mode, int k, double seed) {
    vpo_run_end e = {NAN, NAN, -1, NAN};
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double st = study_num(row, "step"), g = study_num(row, "gold");
        if (!row_is(row, mode, k) || study_num(row, "seed") != seed || isnan(st) || isnan(g))
            continue;
        if (isnan(e.best) || g > e.best) e.best = g;
        if (st > 0 && st > e.final_step) {
            e.final_step = st;
            e.final = g;
            e.final_epoch = study_num(row, "epoch");
        }
    }
    if (isnan(e.final)) e.best = NAN;
    return e;
}

// per seed: final golds of every mode and method, DPO's offline late drop
typedef struct {
    double seed, final[N_MODE][N_SIGN], drop, epoch;
} vpo_seed;

static int per_seed(const cJSON *rows, vpo_seed *out) {
    double seeds[MAX_SEEDS];
    int ns = seeds_of(rows, seeds);
    for (int i = 0; i < ns; i++) {
        out[i].seed = seeds[i];
        for (int mode = 0; mode < N_MODE; mode++)
            for (int k = 0; k < N_SIGN; k++)
                out[i].final[mode][k] = run_end(rows, mode, k, seeds[i]).final;
        vpo_run_end dpo = run_end(rows, OFFLINE, S_DPO, seeds[i]);
        out[i].drop = dpo.best - dpo.final;
        out[i].epoch = dpo.final_epoch;
    }
    return ns;
}

// ---------------------------------------------------------------- verdict --
typedef struct {
    stats_summary off, drop, on, epoch, fin[N_MODE][N_SIGN];
} vpo_stats;

static vpo_stats summarize(const vpo_seed *ps, int n) {
    vpo_stats st;
    double d_off[MAX_SEEDS], d_on[MAX_SEEDS], drop[MAX_SEEDS], ep[MAX_SEEDS], f[MAX_SEEDS];
    for (int i = 0; i < n; i++) {
        d_off[i] = ps[i].final[OFFLINE][S_PESS] - ps[i].final[OFFLINE][S_DPO];
        d_on[i] = ps[i].final[ONLINE][S_OPT] - ps[i].final[ONLINE][S_DPO];
        drop[i] = ps[i].drop;
        ep[i] = ps[i].epoch;
    }
    st.off = stats_summarize(d_off, n);
    st.on = stats_summarize(d_on, n);
    st.drop = stats_summarize(drop, n);
    st.epoch = stats_summarize(ep, n);
    for (int mode = 0; mode < N_MODE; mode++)
        for (int k = 0; k < N_SIGN; k++) {
            for (int i = 0; i < n; i++) f[i] = ps[i].final[mode][k];
            st.fin[mode][k] = stats_summarize(f, n);
        }
    return st;
}

static int vpo_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    vpo_seed ps[MAX_SEEDS];
    int n = per_seed(rows, ps);
    vpo_stats st = summarize(ps, n);
    v->outcome = (study_outcome)stats_sign_test(&st.off);
    if (st.off.n == 0) {
        snprintf(v->text, sizeof v->text,
                 "No seed has both an offline DPO run and an offline pessimistic VPO run with a "
                 "trained checkpoint: nothing to compare.");
        snprintf(v->figure, sizeof v->figure, "no offline comparison");
        return 0;
    }
    snprintf(v->text, sizeof v->text,
             "Offline, after %.3g epochs over the pairs: final gold of pessimistic VPO %.4f, DPO "
             "%.4f, optimistic VPO %.4f (means over seeds). Pessimistic VPO minus DPO: %+.4f ± "
             "%.4f gold (mean ± se over %d seeds; 95%% CI %+.4f..%+.4f). DPO's late drop (its best "
             "checkpoint's gold, pi_ref included, minus its final gold): %.4f ± %.4f. Supported "
             "when pessimistic VPO minus DPO is positive and at least 2 se, not supported when it "
             "is negative and at least 2 se. Online (reported, not part of the verdict): final "
             "gold of optimistic VPO %.4f, DPO %.4f, pessimistic VPO %.4f; optimistic minus DPO: "
             "%+.4f ± %.4f over %d seeds (%s by the same rule).",
             st.epoch.mean, st.fin[OFFLINE][S_PESS].mean, st.fin[OFFLINE][S_DPO].mean,
             st.fin[OFFLINE][S_OPT].mean, st.off.mean, st.off.se, st.off.n, st.off.lo, st.off.hi,
             st.drop.mean, st.drop.se, st.fin[ONLINE][S_OPT].mean, st.fin[ONLINE][S_DPO].mean,
             st.fin[ONLINE][S_PESS].mean, st.on.mean, st.on.se, st.on.n,
             study_outcome_name((study_outcome)stats_sign_test(&st.on)));
    snprintf(
        v->figure, sizeof v->figure,
        "%+.3f ± %.3f final gold offline (pessimistic VPO − DPO); online optimism %+.3f ± %.3f",
        st.off.mean, st.off.se, st.on.mean, st.on.se);
    return 0;
}

// ----------------------------------------------------------------- report --
// one method's curve in one mode averaged over seeds step by step: x = mean
// of xkey, y = mean of ykey, band ± se of y
typedef struct {
    int n;
    double x[MAX_POINTS], y[MAX_POINTS], lo[MAX_POINTS], hi[MAX_POINTS];
} vpo_curve;

static int by_double(const void *a, const void *b) {
    double u = *(const double *)a, w = *(const double *)b;
    return (u > w) - (u < w);
}

static void mean_curve(const cJSON *rows, int mode, int k, const char *xkey, const char *ykey,
                       vpo_curve *cv) {
    double steps[MAX_POINTS];
    int ns = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        double st = study_num(row, "step");
        if (!row_is(row, mode, k) || isnan(st)) continue;
        int seen = 0;
        for (int i = 0; i < ns && !seen; i++) seen = steps[i] == st;
        if (!seen && ns < MAX_POINTS) steps[ns++] = st;
    }
    qsort(steps, (size_t)ns, sizeof steps[0], by_double);
    cv->n = 0;
    for (int i = 0; i < ns; i++) {
        double x[MAX_SEEDS], y[MAX_SEEDS];
        int m = 0;
        cJSON_ArrayForEach(row, rows) {
            if (!row_is(row, mode, k) || study_num(row, "step") != steps[i] || m >= MAX_SEEDS)
                continue;
            x[m] = study_num(row, xkey);
            y[m++] = study_num(row, ykey);
        }
        stats_summary sx = stats_summarize(x, m), sy = stats_summarize(y, m);
        double se = isnan(sy.se) ? 0 : sy.se;
        cv->x[cv->n] = sx.mean;
        cv->y[cv->n] = sy.mean;
        cv->lo[cv->n] = sy.mean - se;
        cv->hi[cv->n++] = sy.mean + se;
    }
}

static void sign_plot(report_page *p, const cJSON *rows, int mode, const char *xkey,
                      const char *ykey, const report_plot_opts *o) {
    static vpo_curve cv[N_SIGN];
    static const char *const label[N_SIGN] = {"VPO pessimistic", "DPO", "VPO optimistic"};
    report_series s[N_SIGN];
    for (int k = 0; k < N_SIGN; k++) {
        mean_curve(rows, mode, k, xkey, ykey, &cv[k]);
        s[k] = (report_series){.label = label[k],
                               .n = cv[k].n,
                               .x = cv[k].x,
                               .y = cv[k].y,
                               .ylo = cv[k].lo,
                               .yhi = cv[k].hi,
                               .markers = 1};
    }
    report_plot(p, o, s, N_SIGN);
}

static void final_table(report_page *p, const cJSON *rows) {
    vpo_seed ps[MAX_SEEDS];
    int n = per_seed(rows, ps);
    enum { NC = 9 };
    static const char *const head[NC] = {"seed",         "offline VPO-", "offline DPO",
                                         "offline VPO+", "VPO- − DPO",   "DPO drop",
                                         "online VPO-",  "online DPO",   "online VPO+ − DPO"};
    char **cells = xcalloc((size_t)n * NC + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const vpo_seed *q = &ps[i];
        double v[NC] = {q->seed,
                        q->final[OFFLINE][S_PESS],
                        q->final[OFFLINE][S_DPO],
                        q->final[OFFLINE][S_OPT],
                        q->final[OFFLINE][S_PESS] - q->final[OFFLINE][S_DPO],
                        q->drop,
                        q->final[ONLINE][S_PESS],
                        q->final[ONLINE][S_DPO],
                        q->final[ONLINE][S_OPT] - q->final[ONLINE][S_DPO]};
        for (int j = 0; j < NC; j++) {
            cells[i * NC + j] = xmalloc(32);
            snprintf(cells[i * NC + j], 32,
                     j == 0               ? "%.0f"
                     : (j == 4 || j == 8) ? "%+.4f"
                                          : "%.4f",
                     v[j]);
        }
    }
    report_table(p, NC, head, n, (const char *const *)cells);
    for (int i = 0; i < n * NC; i++) free(cells[i]);
    free(cells);
}

static int vpo_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p,
             "The sign of VPO's value term swept at one alpha: -1 (pessimism: a pull towards the "
             "calibration responses), 0 (plain DPO), +1 (optimism). Offline: rlhf dpo for "
             "several epochs on gold-labelled pairs of pi_ref's samples (calibration response: "
             "the chosen one). Online: rlhf online-dpo with the gold reward (calibration: one "
             "pi_ref sample per prompt). Mean over seeds, band ± se; epoch/step 0 is pi_ref.");
    report_plot_opts o = {.title = "Offline: gold reward over epochs",
                          .xlabel = "epochs over the pairs",
                          .ylabel = "gold reward"};
    sign_plot(p, rows, OFFLINE, "epoch", "gold", &o);
    o = (report_plot_opts){.title = "Offline: KL to pi_ref over epochs",
                           .xlabel = "epochs over the pairs",
                           .ylabel = "KL(policy || pi_ref), nats"};
    sign_plot(p, rows, OFFLINE, "epoch", "kl", &o);
    o = (report_plot_opts){.title = "Online: gold reward over iterations",
                           .xlabel = "iteration",
                           .ylabel = "gold reward"};
    sign_plot(p, rows, ONLINE, "step", "gold", &o);
    report_h(p, 2, "Final gold reward, seed by seed");
    report_p(p,
             "DPO drop: the offline DPO run's best gold (pi_ref included) minus its final gold.");
    final_table(p, rows);
    return 0;
}

const study_def study_vpo = {
    .name = NAME,
    .paper = "Cen et al. 2024, Value-incentivized preference optimization: a unified approach "
             "to online and offline RLHF",
    .claim = "Offline, VPO with a pessimistic value term avoids DPO's late over-optimisation: "
             "after several epochs on the same gold-labelled pairs its gold reward is higher than "
             "DPO's (the online claim, that optimism reaches a higher gold than online DPO, is "
             "measured and reported alongside).",
    .run = vpo_run,
    .verdict = vpo_verdict,
    .report = vpo_report,
};
