// study/study_dporm_vs_exrm: `rlhf study dporm-vs-exrm` — Lin et al. 2024,
// "On the limited generalization capability of the implicit reward model
// induced by direct preference optimization", on the gold-reward sandbox.
//
// Per seed: gold-labelled pairs of two samples of pi_ref on the training
// prompts (study_gold_pairs); on the same pairs an explicit reward model
// (study_proxy_rm, Bradley-Terry head) and a DPO policy (rlhf dpo, sigmoid)
// whose implicit reward is beta * log(pi / pi_ref). Both are then scored
// (rlhf score) on fresh gold-labelled test pairs:
//   in          pi_ref's samples on held-out prompts (the training distribution)
//   temp        pi_ref's samples at temperature 2 on the same prompts
//   digits3     pi_ref's samples on 3-digit additions (prompts never seen)
//   sub         pi_ref's samples on 1-2 digit subtractions
//   dpo_policy  the trained DPO policy's own samples on held-out prompts
// A test pair counts when both completions are non-empty and differ, and the
// chosen one's gold exceeds the rejected one's by at least MARGIN (on 3-digit
// prompts most wrong answers sit within 1e-4 of each other in gold: such a
// "preference" is a coin flip, not a label). Accuracy: the share of pairs whose
// chosen completion scores strictly higher.
//
// Rows: {"method":"dpo"|"rm", seed, split, shifted (0|1), pairs, accuracy} per
// model and split, and {"method":"train", seed, pairs, rm_heldout_accuracy,
// dpo_kl} per seed. Verdict: per seed the accuracy drop of each model, drop =
// acc(in) - mean over shifted splits of acc(split), and the difference
// drop(dpo) - drop(rm), summarised over seeds (stats_sign_test).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "study/stats.h"
#include "study/study.h"

#define NAME "dporm-vs-exrm"
#define MARGIN 0.01 // least gold difference of a test pair
#define MAX_SEEDS 64
#define MAX_SPLITS 16

// --------------------------------------------------------------- the plan --
typedef struct {
    int train_prompts; // prompts of base/data/prompts.jsonl behind the training pairs
    int train_rounds;  // pair sets over those prompts (different samples each)
    int test_prompts;  // prompts per test split (3x that for digits3: few pairs survive)
    int dpo_steps;
    double dpo_lr, beta;
} dx_plan;

static dx_plan plan_of(const study_ctx *c) {
    if (c->quick) return (dx_plan){600, 1, 150, 120, 2e-4, 0.1};
    return (dx_plan){1000, 2, 300, 300, 2e-4, 0.1};
}

// the test splits: name, sampled by the DPO policy (else pi_ref), temperature,
// prompt file (NULL: base/data/eval.jsonl; else OUT/shift/NAME/eval.jsonl made
// by `rlhf data` with these digits and ops), prompts (times plan's test_prompts)
typedef struct {
    const char *name;
    int by_dpo;
    double temperature;
    const char *digits, *ops;
    int prompt_factor;
} dx_split;

static const dx_split SPLITS[] = {
    {"in", 0, 1.0, NULL, NULL, 1},         {"temp", 0, 2.0, NULL, NULL, 1},
    {"digits3", 0, 1.0, "3", "+", 3},      {"sub", 0, 1.0, "1-2", "-", 1},
    {"dpo_policy", 1, 1.0, NULL, NULL, 1},
};
#define N_SPLITS ((int)(sizeof SPLITS / sizeof SPLITS[0]))

// ------------------------------------------------------------------ pairs --
// The pairs of the files src[0..n_src) into dst, keeping those whose chosen
// and rejected are non-empty and different and (margin > 0) whose gold differs
// by at least margin; the number kept in *kept.
static int keep_pairs(const char *const *src, int n_src, const char *dst, double margin, int *kept,
                      rlhf_err *err) {
    size_t cap = 1 << 16, n = 0;
    char *out = xmalloc(cap);
    *kept = 0;
    for (int f = 0; f < n_src; f++) {
        size_t len = 0;
        char *text = read_file(src[f], &len, err);
        if (!text) {
            free(out);
            return -1;
        }
        for (char *p = text, *nl; p < text + len; p = nl + 1) {
            nl = memchr(p, '\n', (size_t)(text + len - p));
            if (!nl) nl = text + len;
            *nl = 0;
            cJSON *j = cJSON_Parse(p);
            const char *ch = study_str(j, "chosen"), *rj = study_str(j, "rejected");
            double gap = study_num(j, "chosen_gold") - study_num(j, "rejected_gold");
            int keep = ch[0] && rj[0] && strcmp(ch, rj) != 0 && (margin <= 0 || gap >= margin);
            cJSON_Delete(j);
            if (!keep) continue;
            size_t l = strlen(p);
            if (n + l + 2 > cap) out = xrealloc(out, cap = 2 * (n + l + 2));
            memcpy(out + n, p, l);
            out[n + l] = '\n';
            n += l + 1;
            (*kept)++;
        }
        free(text);
    }
    int rc = atomic_write_file(dst, out, n, err);
    free(out);
    return rc;
}

// gold-labelled pairs (Bradley-Terry temperature 0) of `model` on the first
// limit prompts of `prompts`, sampled at temperature
static int sample_pairs(study_ctx *c, const char *model, const char *prompts, int limit,
                        double temperature, uint64_t seed, const char *out, const char *log,
                        rlhf_err *err) {
    study_args a = {0};
    study_add(&a, "pairs", "--model", model, "--task", "arith", "--label", "gold", "--out", out,
              "--prompts", prompts, "--num_samples", "4", "--max_new_tokens", "8",
              "--bt_temperature", "0", NULL);
    study_addf(&a, "--limit=%d", limit);
    study_addf(&a, "--temperature=%g", temperature);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    return study_run(c, log, &a, NULL, err);
}

// the prompt file of a shifted split, written once per study
static int shift_prompts(study_ctx *c, const dx_split *s, int n, char *path, size_t size,
                         rlhf_err *err) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/shift/%s", c->out, s->name);
    snprintf(path, size, "%s/eval.jsonl", dir);
    study_args a = {0};
    study_add(&a, "data", "--task", "arith", "--out", dir, "--digits", s->digits, "--ops", s->ops,
              "--n_train", "10", "--n_pref", "10", "--n_prompts", "10", "--seed", "7", NULL);
    study_addf(&a, "--n_eval=%d", n);
    char log[128];
    snprintf(log, sizeof log, "shift/%s", s->name);
    return study_run(c, log, &a, NULL, err);
}

// ------------------------------------------------------------- accuracies --
// the share of lines of an `rlhf score --output` file with chosen_score >
// rejected_score
static int score_accuracy(const char *path, double *acc, rlhf_err *err) {
    char *text = read_file(path, NULL, err);
    if (!text) return -1;
    int n = 0, right = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        double ch = study_num(j, "chosen_score"), rj = study_num(j, "rejected_score");
        cJSON_Delete(j);
        if (isnan(ch) || isnan(rj)) {
            free(text);
            return rlhf_fail(err,
                             "study " NAME ": %s: a line without chosen_score and "
                             "rejected_score",
                             path);
        }
        n++;
        right += ch > rj;
    }
    free(text);
    if (n == 0) return rlhf_fail(err, "study " NAME ": %s scores no pairs", path);
    *acc = (double)right / n;
    return 0;
}

// accuracy of the explicit reward model (rm != NULL) or of the DPO policy's
// implicit reward on the pairs file
static int model_accuracy(study_ctx *c, const char *rm, const char *dpo, double beta,
                          const char *pairs, const char *log, double *acc, rlhf_err *err) {
    char out[1300];
    snprintf(out, sizeof out, "%s.%s.scores", pairs, rm ? "rm" : "dpo");
    study_args a = {0};
    study_add(&a, "score", "--data", pairs, "--output", out, NULL);
    if (rm) {
        study_add(&a, "--reward_model", rm, NULL);
    } else {
        study_add(&a, "--policy", dpo, "--ref_model", c->sft, NULL);
        study_addf(&a, "--beta=%g", beta);
    }
    if (study_run(c, log, &a, NULL, err)) return -1;
    return score_accuracy(out, acc, err);
}

// ------------------------------------------------------------------ run --
static void accuracy_row(study_ctx *c, const char *method, uint64_t seed, const dx_split *s,
                         int pairs, double acc) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", method);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddStringToObject(row, "split", s->name);
    cJSON_AddNumberToObject(row, "shifted", strcmp(s->name, "in") != 0);
    cJSON_AddNumberToObject(row, "pairs", pairs);
    cJSON_AddNumberToObject(row, "accuracy", acc);
    study_row(c, NAME, row);
}

// the training pairs, the reward model and the DPO policy of one seed
static int train_seed(study_ctx *c, const dx_plan *pl, const char *dir, uint64_t seed,
                      const char *rm, const char *dpo, rlhf_err *err) {
    char raw[4][1300], pairs[1300];
    const char *src[4];
    int rounds = pl->train_rounds < 4 ? pl->train_rounds : 4, kept = 0;
    for (int r = 0; r < rounds; r++) {
        snprintf(raw[r], sizeof raw[r], "%s/train_pairs%d.jsonl", dir, r);
        src[r] = raw[r];
        if (study_gold_pairs(c, c->sft, pl->train_prompts, 0, seed * 100 + (uint64_t)r, raw[r],
                             err))
            return -1;
    }
    snprintf(pairs, sizeof pairs, "%s/train.jsonl", dir);
    if (keep_pairs(src, rounds, pairs, 0, &kept, err)) return -1;
    if (kept < 40) return rlhf_fail(err, "study " NAME ": %s has %d usable pairs", pairs, kept);
    double rm_acc = NAN;
    if (study_proxy_rm(c, pairs, kept, 1, seed, rm, &rm_acc, err)) return -1;
    study_args a = {0};
    study_add(&a, "dpo", "--model", c->sft, "--data", pairs, "--output_dir", dpo, "--loss_type",
              "sigmoid", "--batch_size", "32", "--lr_scheduler_type", "cosine", "--eval_split",
              "0.1", "--precompute_ref_log_probs", "--save_steps", "0", "--quiet",
              "--overwrite_output_dir", NULL);
    study_addf(&a, "--beta=%g", pl->beta);
    study_addf(&a, "--learning_rate=%g", pl->dpo_lr);
    study_addf(&a, "--max_steps=%d", pl->dpo_steps);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    char log[128];
    snprintf(log, sizeof log, "train/seed%llu-dpo", (unsigned long long)seed);
    cJSON *summary = NULL;
    if (study_run(c, log, &a, NULL, err)) return -1;
    char path[1400];
    snprintf(path, sizeof path, "%s/summary.json", dpo);
    char *text = read_file(path, NULL, NULL);
    summary = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", "train");
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "pairs", kept);
    cJSON_AddNumberToObject(row, "rm_heldout_accuracy", rm_acc);
    cJSON_AddNumberToObject(row, "dpo_kl", study_num(summary, "kl"));
    cJSON_Delete(summary);
    study_row(c, NAME, row);
    return 0;
}

// one split's test pairs, scored by both models
static int test_split(study_ctx *c, const dx_plan *pl, const char *dir, uint64_t seed,
                      const dx_split *s, const char *prompts, const char *rm, const char *dpo,
                      rlhf_err *err) {
    char raw[1300], pairs[1300], log[160];
    snprintf(raw, sizeof raw, "%s/test_%s_all.jsonl", dir, s->name);
    snprintf(pairs, sizeof pairs, "%s/test_%s.jsonl", dir, s->name);
    snprintf(log, sizeof log, "pairs/seed%llu-%s", (unsigned long long)seed, s->name);
    if (sample_pairs(c, s->by_dpo ? dpo : c->sft, prompts, pl->test_prompts * s->prompt_factor,
                     s->temperature, seed * 100 + 50, raw, log, err))
        return -1;
    const char *src[1] = {raw};
    int kept = 0;
    if (keep_pairs(src, 1, pairs, MARGIN, &kept, err)) return -1;
    if (kept < 10) { // e.g. a policy that answers 3-digit sums with near-identical junk
        fprintf(stderr,
                "study " NAME ": split %s of seed %llu left out: %d pairs differ in gold "
                "by %g or more (%s)\n",
                s->name, (unsigned long long)seed, kept, MARGIN, raw);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "method", "skipped");
        cJSON_AddNumberToObject(row, "seed", (double)seed);
        cJSON_AddStringToObject(row, "split", s->name);
        cJSON_AddNumberToObject(row, "pairs", kept);
        study_row(c, NAME, row);
        return 0; // the verdict uses the splits both models were measured on
    }
    double acc_rm, acc_dpo;
    snprintf(log, sizeof log, "score/seed%llu-%s-rm", (unsigned long long)seed, s->name);
    if (model_accuracy(c, rm, NULL, pl->beta, pairs, log, &acc_rm, err)) return -1;
    snprintf(log, sizeof log, "score/seed%llu-%s-dpo", (unsigned long long)seed, s->name);
    if (model_accuracy(c, NULL, dpo, pl->beta, pairs, log, &acc_dpo, err)) return -1;
    accuracy_row(c, "dpo", seed, s, kept, acc_dpo);
    accuracy_row(c, "rm", seed, s, kept, acc_rm);
    return 0;
}

static int dx_run(study_ctx *c, rlhf_err *err) {
    dx_plan pl = plan_of(c);
    char prompts[N_SPLITS][1300];
    for (int i = 0; i < N_SPLITS; i++) {
        const dx_split *s = &SPLITS[i];
        if (!s->digits) {
            snprintf(prompts[i], sizeof prompts[i], "%s/eval.jsonl", c->data);
        } else if (shift_prompts(c, s, pl.test_prompts * s->prompt_factor, prompts[i],
                                 sizeof prompts[i], err)) {
            return -1;
        }
    }
    for (int k = 0; k < c->n_seeds; k++) {
        uint64_t seed = c->seed + (uint64_t)k;
        fprintf(stderr, "study " NAME ": seed %d of %d\n", k + 1, c->n_seeds);
        char dir[1200], rm[1300], dpo[1300];
        snprintf(dir, sizeof dir, "%s/runs/seed%llu", c->out, (unsigned long long)seed);
        snprintf(rm, sizeof rm, "%s/rm-seed%llu", dir, (unsigned long long)seed);
        snprintf(dpo, sizeof dpo, "%s/dpo", dir);
        if (make_dirs(dir, err) || train_seed(c, &pl, dir, seed, rm, dpo, err)) return -1;
        for (int i = 0; i < N_SPLITS; i++)
            if (test_split(c, &pl, dir, seed, &SPLITS[i], prompts[i], rm, dpo, err)) return -1;
    }
    return 0;
}

// ------------------------------------------------------------ reading rows --
enum { DPO, RM, N_METHODS };
static const char *const METHOD[N_METHODS] = {"dpo", "rm"};
static const char *const LABEL[N_METHODS] = {"DPO implicit reward", "explicit RM"};

typedef struct {
    int n_seeds, n_splits;
    double seed[MAX_SEEDS];
    char split[MAX_SPLITS][32];
    int shifted[MAX_SPLITS];
    double acc[N_METHODS][MAX_SEEDS][MAX_SPLITS]; // NAN: not measured
    // per seed: accuracy in distribution, mean over shifted splits, drop
    double in[N_METHODS][MAX_SEEDS], out[N_METHODS][MAX_SEEDS], drop[N_METHODS][MAX_SEEDS];
    double diff[MAX_SEEDS]; // drop(dpo) - drop(rm)
} dx_data;

static int index_of_seed(dx_data *D, double s) {
    for (int i = 0; i < D->n_seeds; i++)
        if (D->seed[i] == s) return i;
    if (D->n_seeds >= MAX_SEEDS || isnan(s)) return -1;
    D->seed[D->n_seeds] = s;
    return D->n_seeds++;
}

static int index_of_split(dx_data *D, const char *name, int shifted) {
    for (int i = 0; i < D->n_splits; i++)
        if (!strcmp(D->split[i], name)) return i;
    if (D->n_splits >= MAX_SPLITS || !name[0] || strlen(name) >= sizeof D->split[0]) return -1;
    snprintf(D->split[D->n_splits], sizeof D->split[0], "%s", name);
    D->shifted[D->n_splits] = shifted;
    return D->n_splits++;
}

// each seed's in-distribution and shifted accuracy of both models over the
// splits both were measured on, the drops and their difference
static void dx_drops(dx_data *D) {
    for (int s = 0; s < D->n_seeds; s++) {
        for (int m = 0; m < N_METHODS; m++) {
            double sum[2] = {0, 0};
            int n[2] = {0, 0};
            for (int k = 0; k < D->n_splits; k++) {
                if (isnan(D->acc[DPO][s][k]) || isnan(D->acc[RM][s][k])) continue;
                sum[D->shifted[k]] += D->acc[m][s][k];
                n[D->shifted[k]]++;
            }
            D->in[m][s] = n[0] ? sum[0] / n[0] : NAN;
            D->out[m][s] = n[1] ? sum[1] / n[1] : NAN;
            D->drop[m][s] = D->in[m][s] - D->out[m][s];
        }
        D->diff[s] = D->drop[DPO][s] - D->drop[RM][s];
    }
}

static int dx_collect(const cJSON *rows, dx_data *D, rlhf_err *err) {
    memset(D, 0, sizeof *D);
    for (int m = 0; m < N_METHODS; m++)
        for (int s = 0; s < MAX_SEEDS; s++)
            for (int k = 0; k < MAX_SPLITS; k++) D->acc[m][s][k] = NAN;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *method = study_str(row, "method");
        int m = !strcmp(method, METHOD[DPO]) ? DPO : !strcmp(method, METHOD[RM]) ? RM : -1;
        if (m < 0) continue;
        double shifted = study_num(row, "shifted"), acc = study_num(row, "accuracy");
        int s = index_of_seed(D, study_num(row, "seed"));
        int k = index_of_split(D, study_str(row, "split"), shifted != 0);
        if (s < 0 || k < 0 || (shifted != 0 && shifted != 1) || !(acc >= 0 && acc <= 1))
            return rlhf_fail(err,
                             "study " NAME ": a \"%s\" row needs a number \"seed\", a "
                             "\"split\" name, \"shifted\" 0 or 1 and an \"accuracy\" in [0, 1] "
                             "(at most %d seeds and %d splits)",
                             method, MAX_SEEDS, MAX_SPLITS);
        if (D->shifted[k] != (shifted != 0))
            return rlhf_fail(err, "study " NAME ": split \"%s\" is both shifted and not",
                             D->split[k]);
        D->acc[m][s][k] = acc;
    }
    dx_drops(D);
    return 0;
}

// mean +- se of an array over seeds as text
static void summary_text(const double *x, int n, char *out, size_t size) {
    stats_summary s = stats_summarize(x, n);
    if (s.n >= 2)
        snprintf(out, size, "%.3f ± %.3f", s.mean, s.se);
    else
        snprintf(out, size, "%.3f", s.mean);
}

// ---------------------------------------------------------------- verdict --
// "name dpo/rm" per split, mean over seeds
static void split_text(const dx_data *D, char *out, size_t size) {
    size_t n = 0;
    out[0] = 0;
    for (int k = 0; k < D->n_splits && n + 1 < size; k++) {
        double mean[N_METHODS];
        for (int m = 0; m < N_METHODS; m++) {
            double x[MAX_SEEDS];
            for (int s = 0; s < D->n_seeds; s++) x[s] = D->acc[m][s][k];
            mean[m] = stats_summarize(x, D->n_seeds).mean;
        }
        n += (size_t)snprintf(out + n, size - n, "%s%s %.3f/%.3f", k ? ", " : "", D->split[k],
                              mean[DPO], mean[RM]);
    }
}

static int dx_verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    dx_data *D = xmalloc(sizeof *D);
    if (dx_collect(rows, D, err)) {
        free(D);
        return -1;
    }
    stats_summary d = stats_summarize(D->diff, D->n_seeds);
    if (d.n == 0) {
        free(D);
        return rlhf_fail(err, "study " NAME ": no seed has both models' accuracies on an "
                              "in-distribution split (shifted 0) and a shifted one");
    }
    int sign = stats_sign_test(&d);
    v->outcome = sign > 0 ? STUDY_SUPPORTED : sign < 0 ? STUDY_NOT_SUPPORTED : STUDY_INCONCLUSIVE;
    char t[N_METHODS][3][48], splits[400], seeds[300] = "", diff[48];
    for (int m = 0; m < N_METHODS; m++) {
        summary_text(D->in[m], D->n_seeds, t[m][0], sizeof t[m][0]);
        summary_text(D->out[m], D->n_seeds, t[m][1], sizeof t[m][1]);
        summary_text(D->drop[m], D->n_seeds, t[m][2], sizeof t[m][2]);
    }
    split_text(D, splits, sizeof splits);
    summary_text(D->diff, D->n_seeds, diff, sizeof diff);
    for (int s = 0, n = 0; s < D->n_seeds; s++)
        if (!isnan(D->diff[s]))
            n +=
                snprintf(seeds + n, sizeof seeds - (size_t)n, "%s%+.3f", n ? ", " : "", D->diff[s]);
    snprintf(v->text, sizeof v->text,
             "Pairwise accuracy against gold labels, mean ± se over %d seed(s). DPO implicit "
             "reward: in distribution %s, under shift %s, drop %s. Explicit RM: in "
             "distribution %s, under shift %s, drop %s. Drop of DPO minus drop of the RM: "
             "%s (per seed: %s). Supported when that difference is positive by at least 2 se, "
             "not supported when it is negative by 2 se, inconclusive otherwise (and with one "
             "seed). Per split, DPO/RM accuracy: %s.",
             d.n, t[DPO][0], t[DPO][1], t[DPO][2], t[RM][0], t[RM][1], t[RM][2], diff, seeds,
             splits);
    snprintf(v->figure, sizeof v->figure,
             "accuracy drop under shift: DPO %+.3f vs RM %+.3f (difference %s, %d seeds)",
             stats_summarize(D->drop[DPO], D->n_seeds).mean,
             stats_summarize(D->drop[RM], D->n_seeds).mean, diff, d.n);
    free(D);
    return 0;
}

// ----------------------------------------------------------------- report --
// accuracy per split (mean over seeds, band +- se) of both models
static void plot_splits(const dx_data *D, report_page *p) {
    double x[MAX_SPLITS], y[N_METHODS][MAX_SPLITS], lo[N_METHODS][MAX_SPLITS],
        hi[N_METHODS][MAX_SPLITS];
    char xlabel[400] = "split:";
    for (int k = 0; k < D->n_splits; k++) {
        x[k] = k;
        size_t n = strlen(xlabel);
        snprintf(xlabel + n, sizeof xlabel - n, " %d %s%s", k, D->split[k],
                 D->shifted[k] ? "" : " (in distribution)");
        for (int m = 0; m < N_METHODS; m++) {
            double a[MAX_SEEDS];
            for (int s = 0; s < D->n_seeds; s++) a[s] = D->acc[m][s][k];
            stats_summary st = stats_summarize(a, D->n_seeds);
            y[m][k] = st.mean;
            lo[m][k] = st.n >= 2 ? st.mean - st.se : st.mean;
            hi[m][k] = st.n >= 2 ? st.mean + st.se : st.mean;
        }
    }
    report_series sr[N_METHODS];
    for (int m = 0; m < N_METHODS; m++)
        sr[m] = (report_series){LABEL[m], D->n_splits, x, y[m], lo[m], hi[m], 1, 0};
    report_plot_opts o = {"Pairwise accuracy against gold labels (mean ± se over seeds)",
                          xlabel,
                          "accuracy",
                          0,
                          0,
                          0};
    report_plot(p, &o, sr, N_METHODS);
}

// each seed's accuracy drop (in distribution minus shifted) of both models
static void plot_drops(const dx_data *D, report_page *p) {
    report_series sr[N_METHODS];
    for (int m = 0; m < N_METHODS; m++)
        sr[m] = (report_series){LABEL[m], D->n_seeds, D->seed, D->drop[m], NULL, NULL, 2, 0};
    report_plot_opts o = {"Accuracy drop under shift, per seed",
                          "seed",
                          "accuracy in distribution - mean shifted accuracy",
                          0,
                          0,
                          0};
    report_plot(p, &o, sr, N_METHODS);
}

// split x method: mean accuracy +- se and test pairs
static void table_splits(const cJSON *rows, const dx_data *D, report_page *p) {
    static const char *const head[] = {"split", "shifted", "DPO implicit reward", "explicit RM",
                                       "test pairs (mean)"};
    char **cells = xcalloc((size_t)D->n_splits * 5 + 1, sizeof(char *));
    for (int k = 0; k < D->n_splits; k++) {
        char buf[5][64];
        snprintf(buf[0], sizeof buf[0], "%s", D->split[k]);
        snprintf(buf[1], sizeof buf[1], "%s", D->shifted[k] ? "yes" : "no");
        for (int m = 0; m < N_METHODS; m++) {
            double a[MAX_SEEDS];
            for (int s = 0; s < D->n_seeds; s++) a[s] = D->acc[m][s][k];
            summary_text(a, D->n_seeds, buf[2 + m], sizeof buf[2 + m]);
        }
        double pairs = 0;
        int n = 0;
        const cJSON *row;
        cJSON_ArrayForEach(row, rows) {
            if (strcmp(study_str(row, "split"), D->split[k]) || isnan(study_num(row, "pairs")))
                continue;
            pairs += study_num(row, "pairs");
            n++;
        }
        snprintf(buf[4], sizeof buf[4], "%.0f", n ? pairs / n : NAN);
        for (int c = 0; c < 5; c++) {
            size_t l = strlen(buf[c]) + 1;
            cells[(size_t)k * 5 + c] = memcpy(xmalloc(l), buf[c], l);
        }
    }
    report_table(p, 5, head, D->n_splits, (const char *const *)cells);
    for (int i = 0; i < D->n_splits * 5; i++) free(cells[i]);
    free(cells);
}

static int dx_report(const cJSON *rows, report_page *p, rlhf_err *err) {
    dx_data *D = xmalloc(sizeof *D);
    if (dx_collect(rows, D, err)) {
        free(D);
        return -1;
    }
    report_h(p, 2, "Accuracy by split");
    report_p(p, "Test pairs: two samples of a policy on a prompt, the higher gold (shaped "
                "verifier) reward chosen, gold gap at least 0.01. in: pi_ref's samples on "
                "held-out 1-2 digit additions (the training distribution); temp: pi_ref at "
                "temperature 2; digits3: 3-digit additions; sub: 1-2 digit subtractions; "
                "dpo_policy: the trained DPO policy's own samples. Both models are trained on "
                "the same gold-labelled pairs of pi_ref's samples.");
    plot_splits(D, p);
    table_splits(rows, D, p);
    report_h(p, 2, "Accuracy drop per seed");
    plot_drops(D, p);
    free(D);
    return 0;
}

const study_def study_dporm_vs_exrm = {
    NAME,
    "Lin et al. 2024, On the limited generalization capability of the implicit reward model "
    "induced by direct preference optimization",
    "Trained on the same preference pairs, the DPO implicit reward (beta log pi/pi_ref) "
    "generalises worse than an explicit reward model: its pairwise accuracy against gold labels "
    "drops more from in-distribution pairs to pairs under distribution shift.",
    dx_run,
    dx_verdict,
    dx_report,
};
