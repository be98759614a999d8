// study/study_overoptimization: `rlhf study overoptimization` — Rafailov et
// al. 2024, "Scaling laws for reward model overoptimization in direct
// alignment algorithms", on the gold-reward sandbox.
//
// Per seed: gold-labelled pairs of two samples of pi_ref (study_gold_pairs),
// then DPO (sigmoid), IPO and SLiC (hinge) at a few betas, each saving
// checkpoints along training; every checkpoint is evaluated (gold, KL to
// pi_ref). Alongside, best-of-n of pi_ref with a proxy reward model trained
// on those gold labels: from one set of K samples per prompt, the gold of the
// proxy-best of n random samples, estimated without bias over all n-subsets,
// at KL_bon = ln n - (n - 1) / n.
//
// Rows: {"method":"ref", seed, gold, kl: 0} (pi_ref), {"method":"dpo"|"ipo"|
// "slic", seed, beta, step, kl, gold, accuracy} per checkpoint,
// {"method":"proxy_rm", seed, labels, accuracy} and {"method":"bon", seed, n,
// kl, gold, proxy}. The verdict and the report read those rows only.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "rlhf.h"
#include "study/stats.h"
#include "study/study.h"

#define NAME "overoptimization"

// the direct alignment algorithms: the name in rows and the --loss_type
static const char *const DA_NAME[] = {"dpo", "ipo", "slic"};
static const char *const DA_LOSS[] = {"sigmoid", "ipo", "hinge"};
#define N_DA 3
#define BON N_DA // method index of best-of-n in the verdict's tables
#define N_METHOD (N_DA + 1)

// --------------------------------------------------------------- the plan --
typedef struct {
    int n_prompts; // prompts whose two samples make a gold-labelled pair
    int n_betas;   // betas swept per method
    double betas[3];
    int steps;      // optimizer steps of each DA run
    int save_every; // checkpoint interval (each is evaluated)
    double lr;      // learning rate (constant)
    int rm_labels;  // gold labels the proxy reward model is trained on
    int bon_k;      // samples per prompt behind the best-of-n estimate
} oo_plan;

// The two betas bracket the hump on this sandbox (measured with lr 1.5e-4,
// batch 16, ~850 pairs of /work/sbase's pi_ref): at beta 0.5 every method's
// gold rises for ~100-200 steps at KL < 1 (DPO's then falls); at beta 0.1
// all three fall from the first checkpoints on, to KL 5-10 by step 250.
static oo_plan plan_of(const study_ctx *c) {
    if (c->quick) return (oo_plan){500, 2, {0.5, 0.1}, 100, 25, 1.5e-4, 400, 16};
    return (oo_plan){1000, 2, {0.5, 0.1}, 250, 25, 1.5e-4, 800, 32};
}

// ------------------------------------------------------- DA runs and evals --
static int eval_checkpoint(study_ctx *c, const char *model, int method, double beta, int step,
                           uint64_t seed, rlhf_err *err) {
    study_point pt;
    if (study_eval(c, model, NULL, seed * 1000 + 7, &pt, err)) return -1;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", DA_NAME[method]);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "beta", beta);
    cJSON_AddNumberToObject(row, "step", step);
    cJSON_AddNumberToObject(row, "kl", pt.kl);
    cJSON_AddNumberToObject(row, "gold", pt.gold);
    cJSON_AddNumberToObject(row, "accuracy", pt.accuracy);
    study_row(c, NAME, row);
    return 0;
}

// one DA run (method at beta) on pairs, then every checkpoint's evaluation
static int da_run(study_ctx *c, const oo_plan *pl, const char *dir, const char *pairs, int method,
                  double beta, uint64_t seed, rlhf_err *err) {
    char run[1300], log[128];
    snprintf(run, sizeof run, "%s/%s-beta%g", dir, DA_NAME[method], beta);
    snprintf(log, sizeof log, "train/seed%llu-%s-beta%g", (unsigned long long)seed, DA_NAME[method],
             beta);
    study_args a = {0};
    study_add(&a, "dpo", "--model", c->sft, "--data", pairs, "--output_dir", run, "--loss_type",
              DA_LOSS[method], "--batch_size", "16", "--lr_scheduler_type", "constant",
              "--kl_prompts", "0", "--precompute_ref_log_probs", "--quiet",
              "--overwrite_output_dir", NULL);
    study_addf(&a, "--beta=%g", beta);
    study_addf(&a, "--learning_rate=%g", pl->lr);
    study_addf(&a, "--max_steps=%d", pl->steps);
    study_addf(&a, "--save_steps=%d", pl->save_every);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    if (study_run(c, log, &a, NULL, err)) return -1;
    int n = 0, *steps = checkpoint_steps(run, &n), rc = 0; // newest first
    char model[1400];
    for (int i = n - 1; i >= 0 && rc == 0; i--) {
        snprintf(model, sizeof model, "%s/checkpoints/step-%08d", run, steps[i]);
        rc = eval_checkpoint(c, model, method, beta, steps[i], seed, err);
    }
    int last = n > 0 ? steps[0] : -1;
    free(steps);
    if (rc || last == pl->steps) return rc; // the last save is the final model
    snprintf(model, sizeof model, "%s/checkpoints/final", run);
    return eval_checkpoint(c, model, method, beta, pl->steps, seed, err);
}

// ------------------------------------------------------------- best-of-n --
// log of the binomial coefficient C(n, k)
static double log_choose(int n, int k) {
    return lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0);
}

typedef struct {
    double gold, proxy;
} oo_sample;

static int by_proxy_desc(const void *a, const void *b) {
    double u = ((const oo_sample *)a)->proxy, v = ((const oo_sample *)b)->proxy;
    return (u < v) - (u > v);
}

// Expected gold and proxy of the proxy-best of n samples drawn without
// replacement from the k samples s (sorted by proxy, best first): the i-th
// best is the best of a random n-subset with probability C(k-1-i, n-1) / C(k, n).
static void bon_expect(const oo_sample *s, int k, int n, double *gold, double *proxy) {
    *gold = *proxy = 0;
    for (int i = 0; i + n <= k; i++) {
        double w = exp(log_choose(k - 1 - i, n - 1) - log_choose(k, n));
        *gold += w * s[i].gold;
        *proxy += w * s[i].proxy;
    }
}

// one prompt's samples from an `rlhf eval --output` line into s (at most k)
static int prompt_samples(const cJSON *j, oo_sample *s, int k) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "sample_gold");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "sample_proxy");
    int n = cJSON_GetArraySize(g);
    if (n != k || cJSON_GetArraySize(p) != k) return -1;
    for (int i = 0; i < k; i++) {
        const cJSON *gi = cJSON_GetArrayItem(g, i), *pi = cJSON_GetArrayItem(p, i);
        if (!cJSON_IsNumber(gi) || !cJSON_IsNumber(pi)) return -1;
        s[i] = (oo_sample){gi->valuedouble, pi->valuedouble};
    }
    qsort(s, (size_t)k, sizeof *s, by_proxy_desc);
    return 0;
}

// the best-of-n curve (n = 1, 2, 4, ..., k) from an eval --output file: the
// mean over prompts of each prompt's expected best-of-n gold and proxy
static int bon_curve(const char *path, int k, int *n_out, double *gold, double *proxy,
                     rlhf_err *err) {
    char *text = read_file(path, NULL, err);
    if (!text) return -1;
    int levels = 0;
    for (int n = 1; n <= k; n *= 2) gold[levels] = proxy[levels] = 0, n_out[levels++] = n;
    oo_sample *s = xmalloc((size_t)k * sizeof *s);
    int prompts = 0, rc = 0;
    for (char *line = strtok(text, "\n"); line && rc == 0; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (!j || prompt_samples(j, s, k))
            rc = rlhf_fail(err,
                           "study " NAME ": %s: a line without %d sample_gold and "
                           "sample_proxy numbers",
                           path, k);
        for (int l = 0; rc == 0 && l < levels; l++) {
            double g, p;
            bon_expect(s, k, n_out[l], &g, &p);
            gold[l] += g;
            proxy[l] += p;
        }
        prompts += rc == 0;
        cJSON_Delete(j);
    }
    free(s);
    free(text);
    if (rc == 0 && prompts == 0) rc = rlhf_fail(err, "study " NAME ": %s has no prompts", path);
    for (int l = 0; rc == 0 && l < levels; l++) gold[l] /= prompts, proxy[l] /= prompts;
    return rc ? -1 : levels;
}

// the proxy reward model on the pairs' gold labels, k samples per prompt of
// pi_ref scored by it and by the gold, and the best-of-n rows
static int bon_rows(study_ctx *c, const oo_plan *pl, const char *dir, const char *pairs,
                    uint64_t seed, rlhf_err *err) {
    char rm[1300], out[1300];
    snprintf(rm, sizeof rm, "%s/proxy_rm", dir);
    snprintf(out, sizeof out, "%s/bon_samples.jsonl", dir);
    double acc = NAN;
    if (study_proxy_rm(c, pairs, pl->rm_labels, 1, seed, rm, &acc, err)) return -1;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", "proxy_rm");
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "labels", pl->rm_labels);
    cJSON_AddNumberToObject(row, "accuracy", acc);
    study_row(c, NAME, row);
    study_args a = {0};
    study_add(&a, "eval", "--task", "arith", "--model", c->sft, "--max_new_tokens", "8",
              "--reward_model", rm, "--output", out, NULL);
    study_addf(&a, "--data=%s/eval.jsonl", c->data);
    study_addf(&a, "--limit=%d", c->n_eval);
    study_addf(&a, "--samples_per_prompt=%d", pl->bon_k);
    study_addf(&a, "--seed=%llu", (unsigned long long)(seed * 1000 + 11));
    char logname[64];
    snprintf(logname, sizeof logname, "eval/bon-seed%llu", (unsigned long long)seed);
    if (study_run(c, logname, &a, NULL, err)) return -1;
    int n[16];
    double gold[16], proxy[16];
    int levels = bon_curve(out, pl->bon_k, n, gold, proxy, err);
    for (int l = 0; l < levels; l++) {
        row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "method", "bon");
        cJSON_AddNumberToObject(row, "seed", (double)seed);
        cJSON_AddNumberToObject(row, "n", n[l]);
        cJSON_AddNumberToObject(row, "kl", log(n[l]) - (n[l] - 1.0) / n[l]);
        cJSON_AddNumberToObject(row, "gold", gold[l]);
        cJSON_AddNumberToObject(row, "proxy", proxy[l]);
        study_row(c, NAME, row);
    }
    return levels < 0 ? -1 : 0;
}

// ------------------------------------------------------------------ run --
static int run_seed(study_ctx *c, const oo_plan *pl, uint64_t seed, rlhf_err *err) {
    char dir[1200], raw[1300], pairs[1300];
    snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
    snprintf(raw, sizeof raw, "%s/pairs_all.jsonl", dir);
    snprintf(pairs, sizeof pairs, "%s/pairs.jsonl", dir);
    if (make_dirs(dir, err)) return -1;
    if (study_gold_pairs(c, c->sft, pl->n_prompts, 0, seed, raw, err)) return -1;
    int kept = 0;
    if (study_keep_pairs(raw, pairs, 0, &kept, err)) return -1;
    if (kept < 20) return rlhf_fail(err, "study " NAME ": %s has %d usable pairs", raw, kept);
    study_point ref;
    if (study_eval(c, c->sft, NULL, seed * 1000 + 7, &ref, err)) return -1;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", "ref");
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "pairs", kept);
    cJSON_AddNumberToObject(row, "kl", 0);
    cJSON_AddNumberToObject(row, "gold", ref.gold);
    cJSON_AddNumberToObject(row, "accuracy", ref.accuracy);
    study_row(c, NAME, row);
    for (int b = 0; b < pl->n_betas; b++)
        for (int m = 0; m < N_DA; m++)
            if (da_run(c, pl, dir, pairs, m, pl->betas[b], seed, err)) return -1;
    return bon_rows(c, pl, dir, pairs, seed, err);
}

static int oo_run(study_ctx *c, rlhf_err *err) {
    oo_plan pl = plan_of(c);
    for (int s = 0; s < c->n_seeds; s++) {
        fprintf(stderr, "study " NAME ": seed %d of %d\n", s + 1, c->n_seeds);
        if (run_seed(c, &pl, c->seed + (uint64_t)s, err)) return -1;
    }
    return 0;
}

// ------------------------------------------------------------ reading rows --
// A measured point: method (DA_NAME index, or BON), seed index, the setting
// (beta and step of a DA checkpoint; n of best-of-n), d = sqrt(KL) and the
// gold gain over pi_ref (a DA point: minus the seed's "ref" row; best-of-n:
// minus its own n = 1, the same samples, else the "ref" row).
#define MAX_SEEDS 64

typedef struct {
    int method, seed;
    double beta, step, n, kl, d, gain;
} oo_point;

typedef struct {
    int n;
    oo_point *p;
    int n_seeds;
    double seed[MAX_SEEDS], ref_gold[MAX_SEEDS], bon_gold1[MAX_SEEDS];
} oo_data;

static int method_index(const char *m) {
    for (int i = 0; i < N_DA; i++)
        if (!strcmp(m, DA_NAME[i])) return i;
    return strcmp(m, "bon") ? -1 : BON;
}

static int seed_index(oo_data *D, double s) {
    for (int i = 0; i < D->n_seeds; i++)
        if (D->seed[i] == s) return i;
    if (D->n_seeds >= MAX_SEEDS || isnan(s)) return -1;
    D->ref_gold[D->n_seeds] = D->bon_gold1[D->n_seeds] = NAN;
    D->seed[D->n_seeds] = s;
    return D->n_seeds++;
}

// the gold of every seed's pi_ref ("ref" rows) and best-of-1 ("bon", n = 1)
static int collect_bases(const cJSON *rows, oo_data *D, rlhf_err *err) {
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *m = study_str(row, "method");
        int is_ref = !strcmp(m, "ref"), is_bon1 = !strcmp(m, "bon") && study_num(row, "n") == 1;
        if (!is_ref && !is_bon1 && method_index(m) < 0) continue;
        int s = seed_index(D, study_num(row, "seed"));
        if (s < 0)
            return rlhf_fail(err,
                             "study " NAME ": a \"%s\" row without a number \"seed\" (or "
                             "over %d seeds)",
                             m, MAX_SEEDS);
        if (is_ref) D->ref_gold[s] = study_num(row, "gold");
        if (is_bon1) D->bon_gold1[s] = study_num(row, "gold");
    }
    return 0;
}

static int oo_collect(const cJSON *rows, oo_data *D, rlhf_err *err) {
    memset(D, 0, sizeof *D);
    if (collect_bases(rows, D, err)) return -1;
    D->p = xcalloc((size_t)cJSON_GetArraySize(rows) + 1, sizeof *D->p);
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        int m = method_index(study_str(row, "method"));
        if (m < 0) continue;
        int s = seed_index(D, study_num(row, "seed"));
        double base = m == BON && !isnan(D->bon_gold1[s]) ? D->bon_gold1[s] : D->ref_gold[s];
        double kl = study_num(row, "kl"), gold = study_num(row, "gold");
        if (isnan(base))
            return rlhf_fail(err, "study " NAME ": no \"ref\" row (pi_ref's gold) for seed %g",
                             D->seed[s]);
        if (!isfinite(kl) || !isfinite(gold))
            return rlhf_fail(err,
                             "study " NAME ": a \"%s\" row of seed %g without numbers "
                             "\"kl\" and \"gold\"",
                             study_str(row, "method"), D->seed[s]);
        D->p[D->n++] = (oo_point){m,
                                  s,
                                  study_num(row, "beta"),
                                  study_num(row, "step"),
                                  study_num(row, "n"),
                                  kl,
                                  sqrt(kl > 0 ? kl : 0),
                                  gold - base};
    }
    return 0;
}

// ------------------------------------------------------------------ fits --
typedef struct {
    int n, ok;              // points used; ok: the fit succeeded
    double alpha, beta, r2; // R(d) = d (alpha - beta ln d)
} oo_fit;

// fit over the points of method m (any m: -1 means every DA method) and seed
// s (-1: every seed)
static oo_fit fit_points(const oo_data *D, int m, int s) {
    double *d = xcalloc((size_t)D->n + 1, sizeof *d), *g = xcalloc((size_t)D->n + 1, sizeof *g);
    oo_fit f = {0, 0, NAN, NAN, NAN};
    for (int i = 0; i < D->n; i++) {
        const oo_point *p = &D->p[i];
        int m_ok = m < 0 ? p->method < N_DA : p->method == m;
        if (!m_ok || (s >= 0 && p->seed != s)) continue;
        d[f.n] = p->d;
        g[f.n++] = p->gain;
    }
    f.ok = stats_fit_overopt(d, g, f.n, &f.alpha, &f.beta, &f.r2) == 0;
    if (!f.ok) f.alpha = f.beta = f.r2 = NAN;
    free(d);
    free(g);
    return f;
}

static int by_d(const void *a, const void *b) {
    double u = ((const double *)a)[0], v = ((const double *)b)[0];
    return (u > v) - (u < v);
}

// The pooled DA curve of seed s (every DA method, beta and checkpoint, plus
// pi_ref at d = 0, gain 0), sorted by d and cut into B equal-count bins
// (B = points / 3, 2..6): the best bin's mean gain minus the last (highest
// KL) bin's. 0 when the curve peaks at its highest KL.
static double seed_drop(const oo_data *D, int s) {
    double *dg = xcalloc(2 * ((size_t)D->n + 1), sizeof *dg);
    int m = 1; // dg[0..1] = pi_ref: (0, 0)
    for (int i = 0; i < D->n; i++)
        if (D->p[i].method < N_DA && D->p[i].seed == s) {
            dg[2 * m] = D->p[i].d;
            dg[2 * m + 1] = D->p[i].gain;
            m++;
        }
    qsort(dg, (size_t)m, 2 * sizeof *dg, by_d);
    int bins = m / 3 < 2 ? 2 : m / 3 > 6 ? 6 : m / 3;
    double best = -INFINITY, last = NAN;
    for (int b = 0; b < bins && m >= 2; b++) {
        int lo = b * m / bins, hi = (b + 1) * m / bins;
        double sum = 0;
        for (int i = lo; i < hi; i++) sum += dg[2 * i + 1];
        last = sum / (hi - lo);
        if (last > best) best = last;
    }
    free(dg);
    return m >= 2 ? best - last : NAN;
}

// -------------------------------------------------------------- verdict --
// "dpo alpha=0.1 beta=0.05 (R2 0.9, 30 points); ..." for every method with
// points (the pooled fit over seeds and betas)
static void fits_text(const oo_data *D, char *out, size_t n) {
    size_t len = 0;
    out[0] = 0;
    for (int m = 0; m < N_METHOD; m++) {
        oo_fit f = fit_points(D, m, -1);
        if (f.n == 0 || len >= n) continue;
        len += (size_t)snprintf(out + len, n - len,
                                "%s%s alpha=%.4g beta=%.4g (R2 %.2f, %d points)", len ? "; " : "",
                                m == BON ? "bon" : DA_NAME[m], f.alpha, f.beta, f.r2, f.n);
    }
}

// +1 / -1 / 0: the claim holds / fails / the seeds cannot tell (see the verdict)
static int decide(const stats_summary *drop, const stats_summary *beta, const double *drops,
                  int n) {
    int all_flat = n >= 2;
    for (int s = 0; s < n; s++) all_flat = all_flat && !(drops[s] > 0);
    int tb = stats_sign_test(beta), td = stats_sign_test(drop);
    if (tb == 1 && td == 1) return 1;
    if (tb == -1 || all_flat) return -1;
    return 0;
}

// Per seed, the pooled DA curve's drop from its peak to its highest-KL bin and
// the sign of its fitted beta; the claim is supported when both are positive
// by the sign test over seeds (mean >= 2 se), not supported when the fitted
// beta is negative by it (gold accelerates with KL: no hump) or no seed's
// curve falls at all, inconclusive otherwise.
static int oo_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    oo_data D;
    if (oo_collect(rows, &D, err)) {
        free(D.p);
        return -1;
    }
    double drops[MAX_SEEDS], betas[MAX_SEEDS];
    int n = 0, pos = 0;
    for (int s = 0; s < D.n_seeds; s++) {
        oo_fit f = fit_points(&D, -1, s);
        if (f.n == 0) continue;
        drops[n] = seed_drop(&D, s);
        betas[n] = f.beta;
        pos += f.beta > 0;
        n++;
    }
    stats_summary sd = stats_summarize(drops, n), sb = stats_summarize(betas, n);
    int d = decide(&sd, &sb, drops, n);
    v->outcome = d > 0 ? STUDY_SUPPORTED : d < 0 ? STUDY_NOT_SUPPORTED : STUDY_INCONCLUSIVE;
    char fits[700];
    fits_text(&D, fits, sizeof fits);
    snprintf(v->text, sizeof v->text,
             "Gold reward gain over pi_ref against d = sqrt(KL), all DA checkpoints (DPO, IPO, "
             "SLiC; every beta) of a seed pooled: the peak bin's gain minus the highest-KL bin's "
             "is %.4f +- %.4f (mean +- se over %d seeds), the fitted beta of R(d) = d(alpha - "
             "beta ln d) is %.4f +- %.4f (> 0 in %d of %d seeds). Supported when both are > 0 "
             "by at least 2 se, not supported when beta < 0 by 2 se or no seed's gold falls. "
             "Fits over seeds and betas: %s.",
             sd.mean, sd.se, sd.n, sb.mean, sb.se, pos, n, fits);
    snprintf(v->figure, sizeof v->figure,
             "gold falls %.3f +- %.3f past its peak; beta %+.3g +- %.2g", sd.mean, sd.se, sb.mean,
             sb.se);
    free(D.p);
    return 0;
}

// --------------------------------------------------------------- report --
static int cmp_double(const void *a, const void *b) {
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

// the distinct values of a field of method m's points (sorted), at most max
static int distinct(const oo_data *D, int m, int field_step, double *v, int max) {
    int n = 0;
    for (int i = 0; i < D->n; i++) {
        if (D->p[i].method != m) continue;
        double x = m == BON ? D->p[i].n : field_step ? D->p[i].step : D->p[i].beta;
        int seen = isnan(x);
        for (int k = 0; k < n && !seen; k++) seen = v[k] == x;
        if (!seen && n < max) v[n++] = x;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n;
}

// the seed mean of the gain (want_kl: of KL) of method m's points with
// beta b at each step (best-of-n: at each n; b ignored)
static void mean_over_seeds(const oo_data *D, int m, double b, const double *at, int n_at,
                            int want_kl, double *y) {
    for (int k = 0; k < n_at; k++) {
        double sum = 0;
        int cnt = 0;
        for (int i = 0; i < D->n; i++) {
            const oo_point *p = &D->p[i];
            double x = m == BON ? p->n : p->step;
            if (p->method != m || x != at[k] || (m != BON && p->beta != b)) continue;
            sum += want_kl ? p->kl : p->gain;
            cnt++;
        }
        y[k] = cnt ? sum / cnt : NAN;
    }
}

// series storage for one plot: the arrays are freed together
typedef struct {
    int n;
    report_series s[16];
    char label[16][64];
    double *mem[32];
    int n_mem;
} oo_plot;

static double *plot_alloc(oo_plot *P, int n) {
    double *x = xcalloc((size_t)n + 1, sizeof *x);
    P->mem[P->n_mem++] = x;
    return x;
}

static void plot_free(oo_plot *P) {
    for (int i = 0; i < P->n_mem; i++) free(P->mem[i]);
}

static void add_series(oo_plot *P, const char *label, int n, double *x, double *y, int markers,
                       int dashed) {
    if (P->n >= 16) return;
    snprintf(P->label[P->n], sizeof P->label[P->n], "%s", label);
    P->s[P->n] = (report_series){P->label[P->n], n, x, y, NULL, NULL, markers, dashed};
    P->n++;
}

// method m's fitted curve on (0, dmax] as a dashed series
static void add_fit(oo_plot *P, const oo_data *D, int m, double dmax) {
    oo_fit f = fit_points(D, m, -1);
    if (!f.ok || !(dmax > 0)) return;
    enum { GRID = 40 };
    double *x = plot_alloc(P, GRID), *y = plot_alloc(P, GRID);
    for (int k = 0; k < GRID; k++) {
        x[k] = dmax * (k + 1) / GRID;
        y[k] = x[k] * (f.alpha - f.beta * log(x[k]));
    }
    char label[64];
    snprintf(label, sizeof label, "%s fit", m == BON ? "best-of-n" : DA_NAME[m]);
    add_series(P, label, GRID, x, y, 0, 1);
}

// gold gain against sqrt(KL): every DA checkpoint (dots), best-of-n (the
// seed mean at each n) and each method's fitted law (dashed)
static void plot_hump(const oo_data *D, report_page *p) {
    oo_plot P = {0};
    for (int m = 0; m < N_DA; m++) {
        double *x = plot_alloc(&P, D->n), *y = plot_alloc(&P, D->n), dmax = 0;
        int n = 0;
        for (int i = 0; i < D->n; i++)
            if (D->p[i].method == m) {
                x[n] = D->p[i].d;
                y[n++] = D->p[i].gain;
                dmax = fmax(dmax, D->p[i].d);
            }
        if (n == 0) continue;
        add_series(&P, DA_NAME[m], n, x, y, 2, 0);
        add_fit(&P, D, m, dmax);
    }
    double ns[64];
    int nn = distinct(D, BON, 0, ns, 64);
    if (nn > 0) {
        double *x = plot_alloc(&P, nn), *y = plot_alloc(&P, nn), *kl = plot_alloc(&P, nn);
        mean_over_seeds(D, BON, 0, ns, nn, 0, y);
        mean_over_seeds(D, BON, 0, ns, nn, 1, kl);
        for (int k = 0; k < nn; k++) x[k] = sqrt(kl[k] > 0 ? kl[k] : 0);
        add_series(&P, "best-of-n (proxy RM)", nn, x, y, 1, 0);
        add_fit(&P, D, BON, x[nn - 1]);
    }
    report_plot_opts o = {"Gold reward against sqrt(KL): the over-optimisation hump",
                          "d = sqrt(KL(policy || pi_ref))",
                          "gold reward minus pi_ref's",
                          0,
                          0,
                          0};
    report_plot(p, &o, P.s, P.n);
    plot_free(&P);
}

// the seed mean of the gold gain (want_kl: of KL) along training, one line
// per method and beta
static void plot_training(const oo_data *D, report_page *p, int want_kl) {
    oo_plot P = {0};
    for (int m = 0; m < N_DA; m++) {
        double betas[8], steps[256];
        int nb = distinct(D, m, 0, betas, 8), nst = distinct(D, m, 1, steps, 256);
        for (int b = 0; b < nb && nst > 0; b++) {
            double *x = plot_alloc(&P, nst), *y = plot_alloc(&P, nst);
            memcpy(x, steps, (size_t)nst * sizeof *x);
            mean_over_seeds(D, m, betas[b], steps, nst, want_kl, y);
            char label[64];
            snprintf(label, sizeof label, "%s beta=%g", DA_NAME[m], betas[b]);
            add_series(&P, label, nst, x, y, 1, 0);
        }
    }
    report_plot_opts o = {want_kl ? "KL to pi_ref along training (mean over seeds)"
                                  : "Gold reward along training (mean over seeds)",
                          "optimizer step",
                          want_kl ? "KL(policy || pi_ref)" : "gold minus pi_ref's",
                          0,
                          0,
                          0};
    report_plot(p, &o, P.s, P.n);
    plot_free(&P);
}

// the fitted law per method (pooled over seeds and betas): coefficients, the
// peak d* = exp(alpha / beta - 1) and its gain beta d* (when beta > 0), and
// in how many seeds the method's own fit has beta > 0
static void coef_table(const oo_data *D, report_page *p) {
    static const char *const head[] = {"method", "alpha",   "beta",      "R2",
                                       "points", "peak d*", "peak gain", "beta > 0 (seeds)"};
    enum { NC = 8 };
    char cells[N_METHOD][NC][48];
    const char *ptr[N_METHOD * NC];
    int nr = 0;
    for (int m = 0; m < N_METHOD; m++) {
        oo_fit f = fit_points(D, m, -1);
        if (f.n == 0) continue;
        int pos = 0, seeds = 0;
        for (int s = 0; s < D->n_seeds; s++) {
            oo_fit fs = fit_points(D, m, s);
            seeds += fs.n > 0;
            pos += fs.beta > 0;
        }
        double dstar = f.beta > 0 ? exp(f.alpha / f.beta - 1) : NAN;
        char(*c)[48] = cells[nr];
        snprintf(c[0], 48, "%s", m == BON ? "best-of-n" : DA_NAME[m]);
        snprintf(c[1], 48, "%.4g", f.alpha);
        snprintf(c[2], 48, "%.4g", f.beta);
        snprintf(c[3], 48, "%.3f", f.r2);
        snprintf(c[4], 48, "%d", f.n);
        snprintf(c[5], 48, "%.3g", dstar);
        snprintf(c[6], 48, "%.3g", f.beta * dstar);
        snprintf(c[7], 48, "%d of %d", pos, seeds);
        for (int k = 0; k < NC; k++) ptr[nr * NC + k] = c[k];
        nr++;
    }
    report_table(p, NC, head, nr, ptr);
}

static int oo_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    oo_data D;
    if (oo_collect(rows, &D, err)) {
        free(D.p);
        return -1;
    }
    report_h(p, 2, "Gold reward against KL");
    report_p(p, "Each dot is one checkpoint of one seed (DA methods, every beta); the gold "
                "reward is the mean shaped verifier score of sampled completions minus pi_ref's "
                "in the same evaluation. Best-of-n: the proxy-best of n samples of pi_ref, "
                "averaged over all n-subsets of K samples per prompt, at KL = ln n - (n-1)/n. "
                "Dashed: the fitted R(d) = d(alpha - beta ln d).");
    plot_hump(&D, p);
    report_h(p, 2, "Fitted scaling law R(d) = d(alpha - beta ln d), d = sqrt(KL)");
    coef_table(&D, p);
    report_h(p, 2, "Along training");
    plot_training(&D, p, 0);
    plot_training(&D, p, 1);
    free(D.p);
    return 0;
}

const study_def study_overoptimization = {
    NAME,
    "Rafailov et al. 2024, Scaling laws for reward model overoptimization in direct alignment "
    "algorithms",
    "For direct alignment algorithms (DPO, IPO, SLiC) trained on offline gold-labelled pairs, "
    "gold reward as a function of sqrt(KL) to the reference is hump-shaped: the fitted "
    "R(d) = d(alpha - beta ln d) has beta > 0 and the gold at the largest KL is below the "
    "peak, i.e. over-optimisation happens without an explicit reward model.",
    oo_run,
    oo_verdict,
    oo_report,
};
