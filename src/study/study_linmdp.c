// study/study_linmdp: `rlhf study ftpedel` — Wagenmaker & Pacchiano 2023,
// "Leveraging offline data in online reinforcement learning" (FTPedel), on the
// linear-MDP test bed of ctrl/linmdp (no training runs: the study calls the
// library directly; a run takes seconds).
//
// The instance (linmdp_rare): 2 common states and a rare one (reached with
// probability 0.02) after the first step; the rare state's action decides
// 0.012 of value, the common states' 0.44 each, the first step's 0.6; all 16
// deterministic policies; target eps = 0.008 (the rare state must be
// resolved). Offline rows per step, by coverage: "rare" (the rare state's two
// actions: the direction online exploration reaches least), "common" (the
// start state and the common states: what online reaches easily), "uniform"
// (every reachable state-action); several sizes. Per seed and configuration:
//   online   FTPedel without the offline rows (PEDEL): the online episodes
//            needed for a certified eps-optimal policy;
//   ftpedel  FTPedel with the rows (offline covariance in the design);
//   offline  the rows alone (no episode): certified or not, the true gap.
// Rows: {"phase":"run", seed, coverage, n_off, method, episodes, certified,
// gap (true V* - V of the returned policy), eps, epochs, beta}.
//
// Verdict (from rows): per seed at the largest "rare" size, r = episodes
// (ftpedel) / episodes (online). Supported when on every seed r <= 0.5, both
// online arms return a certified eps-optimal policy and offline-only is not
// certified eps-optimal: offline + online beats either alone. Not supported
// when the mean r >= 1 or offline-only is certified eps-optimal on every seed;
// else inconclusive.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/linmdp.h"
#include "study/stats.h"
#include "study/study.h"

#define NAME "ftpedel"
#define N_COMMON 2
#define P_RARE 0.02
#define GAP_RARE 0.6
#define GAP_COMMON 0.9
#define EPS 0.008
#define MAX_SEEDS 64

static const char *const COVERAGE[] = {"rare", "common", "uniform"};
enum { N_COV = 3 };

// offline sampling weights [H][S][A] of a coverage (states: 0 start, 1..n
// common, n+1 rare)
static void coverage_weights(const linmdp *m, int cov, double *q) {
    int S = m->S, A = m->A, rare = S - 1;
    memset(q, 0, (size_t)m->H * S * A * sizeof(double));
    for (int a = 0; a < A; a++) {
        if (cov != 0) q[a] = 1; // step 1, start state
        for (int s = 1; s < S; s++)
            if ((cov == 0 && s == rare) || (cov == 1 && s != rare) || cov == 2)
                q[((size_t)S + s) * A + a] = 1;
    }
}

static void add_row(study_ctx *c, uint64_t seed, const char *cov, int n_off, const char *method,
                    const linmdp *m, const int *pols, double vstar, const linmdp_ftp_result *r,
                    double eps) {
    int HS = m->H * m->S;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "phase", "run");
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddStringToObject(row, "coverage", cov);
    cJSON_AddNumberToObject(row, "n_off", n_off);
    cJSON_AddStringToObject(row, "method", method);
    cJSON_AddNumberToObject(row, "episodes", (double)r->episodes);
    cJSON_AddNumberToObject(row, "certified", r->certified);
    cJSON_AddNumberToObject(row, "gap", vstar - linmdp_value_dp(m, pols + (size_t)r->chosen * HS));
    cJSON_AddNumberToObject(row, "eps", eps);
    cJSON_AddNumberToObject(row, "epochs", r->epochs);
    cJSON_AddNumberToObject(row, "beta", r->beta);
    study_row(c, NAME, row);
}

static int run_seed(study_ctx *c, uint64_t seed, const int *sizes, int n_sizes, rlhf_err *err) {
    linmdp m;
    if (linmdp_rare(&m, N_COMMON, P_RARE, GAP_RARE, GAP_COMMON, seed, err)) return -1;
    int K, HS = m.H * m.S, *pols = xmalloc((size_t)64 * HS * sizeof(int));
    int *opt = xmalloc((size_t)HS * sizeof(int));
    double *q = xmalloc((size_t)m.H * m.S * m.A * sizeof(double)), vstar = linmdp_optimal(&m, opt);
    int rc = linmdp_policies_all(&m, 64, pols, &K, err);
    linmdp_ftp_opts o;
    linmdp_ftp_defaults(&o);
    o.eps = EPS;
    linmdp_ftp_result r;
    rlhf_rng rng;
    rng_seed(&rng, seed * 7919 + 1);
    if (!rc) rc = linmdp_ftpedel(&m, K, pols, NULL, &o, &rng, &r, NULL, err);
    if (!rc) add_row(c, seed, "none", 0, "online", &m, pols, vstar, &r, EPS);
    for (int cv = 0; cv < N_COV && !rc; cv++)
        for (int i = 0; i < n_sizes && !rc; i++) {
            linmdp_data D;
            linmdp_data_init(&D, &m);
            coverage_weights(&m, cv, q);
            linmdp_offline(&m, q, sizes[i], &rng, &D);
            o.max_episodes = 10000000;
            rc = linmdp_ftpedel(&m, K, pols, &D, &o, &rng, &r, NULL, err);
            if (!rc) add_row(c, seed, COVERAGE[cv], sizes[i], "ftpedel", &m, pols, vstar, &r, EPS);
            o.max_episodes = 0;
            if (!rc) rc = linmdp_ftpedel(&m, K, pols, &D, &o, &rng, &r, NULL, err);
            if (!rc) add_row(c, seed, COVERAGE[cv], sizes[i], "offline", &m, pols, vstar, &r, EPS);
            linmdp_data_free(&D);
        }
    linmdp_free(&m);
    free(pols), free(opt), free(q);
    return rc;
}

static int ftp_run(study_ctx *c, rlhf_err *err) {
    static const int quick[] = {1000, 10000}, full[] = {300, 1000, 3000, 10000, 30000};
    for (int s = 0; s < c->n_seeds && s < MAX_SEEDS; s++)
        if (run_seed(c, c->seed + (uint64_t)s, c->quick ? quick : full, c->quick ? 2 : 5, err))
            return -1;
    return 0;
}

// ---------------------------------------------------------------- verdict --
static const cJSON *find(const cJSON *rows, double seed, const char *cov, double n_off,
                         const char *method) {
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (strcmp(study_str(row, "phase"), "run") || study_num(row, "seed") != seed ||
            strcmp(study_str(row, "coverage"), cov) || strcmp(study_str(row, "method"), method))
            continue;
        if (n_off < 0 || study_num(row, "n_off") == n_off) return row;
    }
    return NULL;
}

static int ok_row(const cJSON *r) {
    return r && study_num(r, "certified") == 1 &&
           study_num(r, "gap") <= study_num(r, "eps") + 1e-12;
}

static int ftp_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    double seeds[MAX_SEEDS], big = -1, ratio[MAX_SEEDS];
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (strcmp(study_str(row, "phase"), "run")) continue;
        double s = study_num(row, "seed");
        int seen = 0;
        for (int i = 0; i < n; i++) seen |= seeds[i] == s;
        if (!seen && n < MAX_SEEDS && !isnan(s)) seeds[n++] = s;
        if (!strcmp(study_str(row, "coverage"), "rare") && study_num(row, "n_off") > big)
            big = study_num(row, "n_off");
    }
    int used = 0, all_fast = 1, arms_ok = 1, off_fail = 1, off_ok_all = 1;
    double on_sum = 0, ft_sum = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *on = find(rows, seeds[i], "none", -1, "online");
        const cJSON *ft = find(rows, seeds[i], "rare", big, "ftpedel");
        const cJSON *off = find(rows, seeds[i], "rare", big, "offline");
        if (!on || !ft || !off || !(study_num(on, "episodes") > 0)) continue;
        ratio[used++] = study_num(ft, "episodes") / study_num(on, "episodes");
        on_sum += study_num(on, "episodes"), ft_sum += study_num(ft, "episodes");
        all_fast &= ratio[used - 1] <= 0.5;
        arms_ok &= ok_row(on) && ok_row(ft);
        off_fail &= !ok_row(off);
        off_ok_all &= ok_row(off);
    }
    if (used == 0)
        return rlhf_fail(err, "ftpedel verdict: no seed has the online-only row and the rare "
                              "coverage's ftpedel and offline rows");
    stats_summary rs = stats_summarize(ratio, used);
    v->outcome = all_fast && arms_ok && off_fail ? STUDY_SUPPORTED
                 : rs.mean >= 1 || off_ok_all    ? STUDY_NOT_SUPPORTED
                                                 : STUDY_INCONCLUSIVE;
    snprintf(v->figure, sizeof v->figure, "%.3f x the online-only episodes (%d seeds, %g rows)",
             rs.mean, used, big);
    snprintf(v->text, sizeof v->text,
             "With %g offline rows on the rare state (the direction online exploration reaches "
             "with probability %.2g), FTPedel needed %.0f online episodes on average against %.0f "
             "for online-only elimination (ratio %.3f ± %.3f over %d seeds; every seed <= 0.5: "
             "%s); both returned a certified eps-optimal policy on every seed: %s; the offline "
             "rows alone certified an eps-optimal policy on no seed: %s. Rule: supported when all "
             "three hold, not supported when the mean ratio is >= 1 or offline-only succeeds on "
             "every seed, else inconclusive.",
             big, P_RARE, ft_sum / used, on_sum / used, rs.mean, rs.se, used,
             all_fast ? "yes" : "no", arms_ok ? "yes" : "no", off_fail ? "yes" : "no");
    return 0;
}

// ----------------------------------------------------------------- report --
#define MAX_CFG 64

typedef struct {
    char cov[16], method[16];
    double n_off, episodes, certified, gap;
    int n;
} ftp_cfg;

// mean episodes, certified share and mean gap per (coverage, n_off, method)
static int configs(const cJSON *rows, ftp_cfg *cf) {
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (strcmp(study_str(row, "phase"), "run")) continue;
        const char *cov = study_str(row, "coverage"), *me = study_str(row, "method");
        double no = study_num(row, "n_off");
        int i = 0;
        while (i < n && (strcmp(cf[i].cov, cov) || strcmp(cf[i].method, me) || cf[i].n_off != no))
            i++;
        if (i == n) {
            if (n == MAX_CFG) continue;
            memset(&cf[n], 0, sizeof cf[n]);
            snprintf(cf[n].cov, sizeof cf[n].cov, "%s", cov);
            snprintf(cf[n].method, sizeof cf[n].method, "%s", me);
            cf[n++].n_off = no;
        }
        cf[i].episodes += study_num(row, "episodes");
        cf[i].certified += study_num(row, "certified");
        cf[i].gap += study_num(row, "gap");
        cf[i].n++;
    }
    for (int i = 0; i < n; i++)
        cf[i].episodes /= cf[i].n, cf[i].certified /= cf[i].n, cf[i].gap /= cf[i].n;
    return n;
}

static int ftp_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    ftp_cfg cf[MAX_CFG];
    int n = configs(rows, cf);
    report_p(p, "A linear MDP (tabular features) whose rare state, reached with probability 0.02, "
                "decides 0.012 of value; target eps 0.008. Online episodes FTPedel needs for a "
                "certified eps-optimal policy, by the offline rows' coverage and size; the "
                "online-only elimination (PEDEL, no rows) dashed.");
    double x[N_COV][MAX_CFG], y[N_COV][MAX_CFG], ox[2] = {1e9, 0}, oy[2] = {0, 0};
    int nx[N_COV] = {0};
    for (int i = 0; i < n; i++) {
        if (!strcmp(cf[i].method, "online")) oy[0] = oy[1] = cf[i].episodes;
        for (int cv = 0; cv < N_COV; cv++)
            if (!strcmp(cf[i].method, "ftpedel") && !strcmp(cf[i].cov, COVERAGE[cv])) {
                x[cv][nx[cv]] = cf[i].n_off, y[cv][nx[cv]++] = cf[i].episodes;
                ox[0] = fmin(ox[0], cf[i].n_off), ox[1] = fmax(ox[1], cf[i].n_off);
            }
    }
    report_series s[N_COV + 1];
    static const char *const LAB[N_COV] = {"FTPedel, rare-state rows", "FTPedel, common-state rows",
                                           "FTPedel, uniform rows"};
    for (int cv = 0; cv < N_COV; cv++)
        s[cv] =
            (report_series){.label = LAB[cv], .n = nx[cv], .x = x[cv], .y = y[cv], .markers = 1};
    s[N_COV] = (report_series){.label = "online only", .n = 2, .x = ox, .y = oy, .dashed = 1};
    report_plot_opts o = {.title = "Online episodes to a certified eps-optimal policy",
                          .xlabel = "offline rows per step",
                          .ylabel = "online episodes",
                          .logx = 1};
    report_plot(p, &o, s, N_COV + 1);
    static const char *const head[] = {"coverage",        "rows",      "method",
                                       "online episodes", "certified", "true gap"};
    char **cells = xcalloc((size_t)n * 6 + 1, sizeof *cells);
    for (int i = 0; i < n; i++) {
        char b[6][48];
        snprintf(b[0], 48, "%.15s", cf[i].cov), snprintf(b[1], 48, "%g", cf[i].n_off);
        snprintf(b[2], 48, "%.15s", cf[i].method), snprintf(b[3], 48, "%.0f", cf[i].episodes);
        snprintf(b[4], 48, "%.2f", cf[i].certified), snprintf(b[5], 48, "%.4f", cf[i].gap);
        for (int k = 0; k < 6; k++) cells[i * 6 + k] = strcpy(xmalloc(strlen(b[k]) + 1), b[k]);
    }
    report_h(p, 2, "Every configuration (mean over seeds)");
    report_table(p, 6, head, n, (const char *const *)cells);
    for (int i = 0; i < n * 6; i++) free(cells[i]);
    free(cells);
    return 0;
}

const study_def study_ftpedel = {
    .name = NAME,
    .paper = "Wagenmaker & Pacchiano 2023, Leveraging offline data in online reinforcement "
             "learning (FTPedel)",
    .claim = "On a linear MDP, offline data covering the directions online exploration reaches "
             "least cut the online episodes FTPedel needs for a certified eps-optimal policy "
             "well below online-only exploration, while the offline data alone cannot certify "
             "one: offline plus online beats either alone.",
    .run = ftp_run,
    .verdict = ftp_verdict,
    .report = ftp_report,
    .no_sandbox = 1,
};
