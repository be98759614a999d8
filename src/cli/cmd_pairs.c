// cli/cmd_pairs: `rlhf pairs` — preference pairs the way practitioners build
// them: sample the model n times per prompt, judge each sample with a task's
// gold verifier, and pair a correct sample (or, failing that, the gold answer
// where the task knows it) as chosen with a wrong sample as rejected. Prompts
// whose samples are all correct give no pair.
//
// --label gold: the gold-reward sandbox's labelling (rlhf study). Two samples
// of a prompt that differ (the first non-empty one, and the first later
// non-empty one with another text) are compared by the task's shaped (continuous) gold reward; the
// chosen one is drawn by Bradley-Terry, P(a preferred to b) = sigmoid((g_a - g_b) / T) with T =
// --bt_temperature (0: the higher gold wins and ties give no pair). Rows add "chosen_gold" and
// "rejected_gold".
//
// --judge_url URL: an LLM judge behind an OpenAI-compatible API (reward/judge.h,
// docs/judges.md) compares every two different samples of a prompt (in both
// orders unless --judge_both_orders false); each sample's score is its mean
// probability of beating the others (algo/self_judge), and the best sample is
// chosen against the worst (none when all scores are equal). Rows add
// "chosen_score", "rejected_score" and "judge_p" (p(chosen beats rejected)).
//
// --label heron --factors "SRC1,SRC2,..." --margins "d1,d2,...": HERON (Bukharin et
// al. 2023, algo/heron.h, docs/heron.md). Every sample is scored by each factor,
// a reward source (reward/sources.h) listed most important first; "=W" after a
// factor scales it (a negative W prefers smaller values). Every two different
// non-empty samples of a prompt are compared down the ranking: the first
// factor whose difference exceeds its margin (absolute, or "0.5sd": half the
// factor's standard deviation over all samples) picks the chosen one; pairs no
// factor decides are dropped. Rows add "heron_level" (1 = the first factor),
// "heron_factor" (its name) and "chosen_factors" / "rejected_factors" (the
// scaled factor values, in ranking order).
//
// The output file is written atomically: a failure (a judge that errs) leaves
// the previous file, if any, untouched and no partial file behind.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "data/dataset.h"
#include "algo/heron.h"
#include "algo/self_judge.h"
#include "data/task.h"
#include "io/file.h"
#include "reward/judge.h"
#include "reward/sources.h"
#include "train/complete.h"
#include "train/run.h"

// --label gold: one pair of prompt p from its n samples, or 0 when none
static int gold_pair(const rlhf_task *t, const char *p, char *const *smp, int n, double temp,
                     rlhf_rng *rng, cJSON **row) {
    // two non-empty samples with different texts (the data loader refuses empty ones)
    int i = 0;
    while (i < n && !smp[i][0]) i++;
    int j = i + 1;
    while (j < n && (!smp[j][0] || !strcmp(smp[j], smp[i]))) j++;
    if (j >= n) return 0;
    double g0 = 0, g1 = 0;
    t->score(p, smp[i], 1, &g0, NULL);
    t->score(p, smp[j], 1, &g1, NULL);
    int first;
    if (temp > 0) {
        double u = (double)(rng_u64(rng) >> 11) * 0x1.0p-53;
        first = u < 1.0 / (1.0 + exp(-(g0 - g1) / temp));
    } else {
        if (g0 == g1) return 0;
        first = g0 > g1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", p);
    cJSON_AddStringToObject(o, "chosen", first ? smp[i] : smp[j]);
    cJSON_AddStringToObject(o, "rejected", first ? smp[j] : smp[i]);
    cJSON_AddNumberToObject(o, "chosen_gold", first ? g0 : g1);
    cJSON_AddNumberToObject(o, "rejected_gold", first ? g1 : g0);
    *row = o;
    return 1;
}

// one JSON line of o into the output file
static int write_row(atomic_file *f, cJSON *o, rlhf_err *err) {
    char *line = cJSON_PrintUnformatted(o);
    size_t n = strlen(line);
    line[n] = '\n';  // over the NUL: written with its length, not as a string
    int rc = atomic_write(f, line, n + 1, err);
    free(line);
    return rc;
}

// --judge_url: the judge's best sample of each prompt against its worst
static int judged_pairs(const judge_opts *jo, ds_dataset *ds, char *const *samples, int N, int n,
                        atomic_file *f, int *pairs, rlhf_err *err) {
    reward_judge *j;
    if (judge_open(&j, jo, err)) return -1;
    const char **ps = xmalloc((size_t)N * sizeof(char *));
    for (int i = 0; i < N; i++) ps[i] = ds->ex[i].prompt.text;
    double *p = xmalloc((size_t)N * n * n * sizeof(double));
    double *score = xmalloc((size_t)n * sizeof(double));
    int rc = judge_groups(j, ps, (const char *const *)samples, N, n, p, err);
    for (int i = 0; i < N && rc == 0; i++) {
        const double *pg = p + (size_t)i * n * n;
        self_judge_scores(n, pg, score);
        int best = 0, worst = n - 1;
        for (int k = 1; k < n; k++)
            if (score[k] > score[best]) best = k;  // first maximum
        for (int k = n - 2; k >= 0; k--)
            if (score[k] < score[worst]) worst = k;  // last minimum
        if (!(score[best] > score[worst])) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", ps[i]);
        cJSON_AddStringToObject(o, "chosen", samples[(size_t)i * n + best]);
        cJSON_AddStringToObject(o, "rejected", samples[(size_t)i * n + worst]);
        cJSON_AddNumberToObject(o, "chosen_score", score[best]);
        cJSON_AddNumberToObject(o, "rejected_score", score[worst]);
        cJSON_AddNumberToObject(o, "judge_p", pg[best * n + worst]);
        rc = write_row(f, o, err);
        cJSON_Delete(o);
        (*pairs)++;
    }
    judge_stats st;
    judge_get_stats(j, &st);
    fprintf(stderr, "pairs: judge %s: %ld requests, %ld answers from the cache, %ld malformed, "
                    "%ld neutral\n",
            jo->base_url, st.requests, st.cache_hits, st.malformed, st.neutral);
    judge_close(j);
    free(ps), free(p), free(score);
    return rc;
}

// --label heron: every decided pair of every prompt's samples, ranked factors
// from the reward spec `factors`, margins from `margins` (algo/heron.h)
static int heron_pairs(const char *factors, const char *margins, double timeout, ds_dataset *ds,
                       char *const *samples, const char *const *ps, int N, int n,
                       atomic_file *f, int *pairs, rlhf_err *err) {
    reward_set rs = {0};
    reward_set_opts ro;
    reward_set_opts_default(&ro);
    ro.timeout_s = timeout;
    if (reward_set_parse(&rs, factors, err) || reward_set_open(&rs, &ro, err)) {
        reward_set_free(&rs);
        return rlhf_fail_ctx(err, "--factors");
    }
    int L = rs.n, M = N * n, rc = 0;
    double *margin = xmalloc((size_t)L * sizeof(double)), *sd = xmalloc((size_t)L * sizeof(double));
    double *delta = xmalloc((size_t)L * sizeof(double));
    int *relative = xmalloc((size_t)L * sizeof(int));
    float *raw = xmalloc((size_t)M * L * sizeof(float)), *total = xmalloc((size_t)M * sizeof(float));
    double *z = xmalloc((size_t)M * L * sizeof(double));
    unsigned char *use = xcalloc((size_t)M, 1);
    int room = n * (n - 1) / 2, *ch = xmalloc((size_t)room * sizeof(int));
    int *rj = xmalloc((size_t)room * sizeof(int)), *lv = xmalloc((size_t)room * sizeof(int));
    int *per_level = xcalloc((size_t)L, sizeof(int)), ties = 0;
    if ((rc = heron_parse_margins(margins, L, margin, relative, err))) goto out;
    if ((rc = reward_set_score(&rs, ps, (const char *const *)samples, M, raw, total, err))) {
        rlhf_fail_ctx(err, "--factors");
        goto out;
    }
    for (size_t i = 0; i < (size_t)M * L; i++) z[i] = rs.src[i % L].weight * (double)raw[i];
    // the samples a pair may hold: non-empty (the data loader refuses empty
    // texts), each text once per prompt
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++) {
            const char *s = samples[(size_t)i * n + j];
            int fresh = s[0] != 0;
            for (int k = 0; k < j && fresh; k++) fresh = strcmp(s, samples[(size_t)i * n + k]) != 0;
            use[(size_t)i * n + j] = (unsigned char)fresh;
        }
    heron_factor_spread(M, L, z, use, sd);
    heron_margins(L, margin, relative, sd, delta);
    for (int i = 0; i < N && rc == 0; i++) {
        const double *zi = z + (size_t)i * n * L;
        int t = 0, k = heron_group_pairs(n, L, zi, delta, use + (size_t)i * n, ch, rj, lv, &t);
        ties += t;
        for (int q = 0; q < k && rc == 0; q++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "prompt", ds->ex[i].prompt.text);
            cJSON_AddStringToObject(o, "chosen", samples[(size_t)i * n + ch[q]]);
            cJSON_AddStringToObject(o, "rejected", samples[(size_t)i * n + rj[q]]);
            cJSON_AddNumberToObject(o, "heron_level", lv[q] + 1);
            cJSON_AddStringToObject(o, "heron_factor", rs.src[lv[q]].name);
            cJSON_AddItemToObject(o, "chosen_factors",
                                  cJSON_CreateDoubleArray(zi + (size_t)ch[q] * L, L));
            cJSON_AddItemToObject(o, "rejected_factors",
                                  cJSON_CreateDoubleArray(zi + (size_t)rj[q] * L, L));
            rc = write_row(f, o, err);
            cJSON_Delete(o);
            per_level[lv[q]]++;
            (*pairs)++;
        }
    }
    if (rc == 0) {
        fprintf(stderr, "pairs: heron: %d decided pairs, %d ties dropped; by level:", *pairs, ties);
        for (int l = 0; l < L; l++)
            fprintf(stderr, "%s %d. %s (margin %g): %d", l ? "," : "", l + 1, rs.src[l].name,
                    delta[l], per_level[l]);
        fprintf(stderr, "\n");
    }
out:
    reward_set_free(&rs);
    free(margin), free(sd), free(delta), free(relative), free(raw), free(total), free(z);
    free(use), free(ch), free(rj), free(lv), free(per_level);
    return rc;
}

// the flags of `rlhf pairs`
typedef struct {
    const char *model, *prompts, *out, *task, *tokenizer, *judge, *label, *factors, *margins;
    float timeout, temperature;
    int n, max_new, batch, limit, use_gold, add_bos;
    uint64_t seed;
    double bt_temp;
    judge_opts jo;
} pairs_opts;

// defs (room for 40) point into o, which holds the defaults
static void pairs_flags(flag_def *defs, pairs_opts *o) {
    *o = (pairs_opts){.task = "arith", .label = "verifier", .timeout = 30.0f,
                      .temperature = 1.0f, .n = 4, .max_new = 16, .batch = 64, .use_gold = 1,
                      .add_bos = -1, .seed = 1};
    judge_opts_default(&o->jo);
    judge_opts *jo = &o->jo;
    flag_def d[] = {
        {"model", FLAG_STR, &o->model, "the model to sample (checkpoint or run directory)"},
        {"prompts", FLAG_STR, &o->prompts, "JSONL with a prompt field per line"},
        {"task", FLAG_STR, &o->task, "built-in task whose verifier judges the samples"},
        {"reward_command", FLAG_STR, &o->judge,
         "judge with this program instead of --task (JSON lines in, one number per line out; > 0.5 "
         "= good)"},
        {"reward_timeout", FLAG_FLOAT, &o->timeout, "seconds the judge may take per answer", 0.1,
         1e6},
        {"add_bos", FLAG_AUTO, &o->add_bos,
         "BOS before each prompt: true, false or auto (the tokenizer's convention: yes for "
         "llama2.c/sentencepiece, no for GPT-2 and byte)"},
        {"out", FLAG_STR, &o->out, "where to write prompt/chosen/rejected JSONL"},
        {"num_samples", FLAG_INT, &o->n, "samples per prompt", 2, 1024},
        {"temperature", FLAG_FLOAT, &o->temperature, "sampling temperature", 0.01, 100},
        {"max_new_tokens", FLAG_INT, &o->max_new, "longest sample", 1, 1 << 20},
        {"use_gold", FLAG_BOOL, &o->use_gold,
         "when no sample is correct, the gold answer is chosen"},
        {"batch_size", FLAG_INT, &o->batch, "prompts per generation batch", 1, 1 << 16},
        {"limit", FLAG_INT, &o->limit, "use only the first N prompts (0: all)", 0, 1 << 30},
        {"tokenizer", FLAG_STR, &o->tokenizer, "tokenizer (default: the model's)"},
        {"seed", FLAG_U64, &o->seed, "sampling seed"},
        {"label", FLAG_STR, &o->label,
         "verifier (a correct vs a wrong sample), gold (two samples compared by the task's "
         "shaped gold reward, Bradley-Terry noise by --bt_temperature) or heron (every two "
         "samples compared factor by factor down the ranking --factors, docs/heron.md)"},
        {"factors", FLAG_STR, &o->factors,
         "--label heron: reward sources, most important first (e.g. \"verifier:arith,"
         "verifier:arith:shaped,command:python3 len.py=-1\"; =W scales a factor, negative = "
         "smaller is better)"},
        {"margins", FLAG_STR, &o->margins,
         "--label heron: one margin per factor, e.g. \"0,0.05,0.5sd\": a factor decides when "
         "|difference| > margin; \"Xsd\" = X times the factor's standard deviation over the "
         "samples (default: all 0)"},
        {"bt_temperature", FLAG_DOUBLE, &o->bt_temp,
         "--label gold: P(a > b) = sigmoid((gold_a - gold_b) / T) (0: the higher gold wins, ties "
         "dropped)",
         0, 1e6},
        {"judge_url", FLAG_STR, &jo->base_url,
         "an OpenAI-compatible judge's base URL (e.g. http://127.0.0.1:8080/v1): it compares "
         "the samples of a prompt; the best is chosen, the worst rejected (docs/judges.md)"},
        {"judge_model", FLAG_STR, &jo->model, "the judge's model name (the request's \"model\")"},
        {"judge_api_key_env", FLAG_STR, &jo->api_key_env,
         "environment variable holding the judge's API key (sent as a Bearer token, never logged)"},
        {"judge_api", FLAG_STR, &jo->api, "chat (/chat/completions) or completions (/completions)"},
        {"judge_template", FLAG_STR, &jo->pairwise_template,
         "the judging prompt with {prompt}, {a} and {b} (default: docs/judges.md)"},
        {"judge_system", FLAG_STR, &jo->system_prompt,
         "the judge's system message (completions API: the text before the template)"},
        {"judge_max_tokens", FLAG_INT, &jo->max_tokens, "the judge's answer length (max_tokens)",
         1, 1 << 20},
        {"judge_timeout", FLAG_DOUBLE, &jo->timeout_s, "seconds per judge request", 0.01, 1e6},
        {"judge_retries", FLAG_INT, &jo->max_retries,
         "retries of a failed (transient) or malformed judge answer", 0, 100},
        {"judge_concurrency", FLAG_INT, &jo->concurrency, "judge requests in flight", 1, 1024},
        {"judge_cache", FLAG_STR, &jo->cache_path,
         "JSONL file of the judge's answers kept across runs (asked once, ever)"},
        {"judge_both_orders", FLAG_BOOL, &jo->both_orders,
         "ask each pair as (a, b) and (b, a) and average (position bias)"},
        {"judge_malformed_neutral", FLAG_BOOL, &jo->malformed_neutral,
         "an answer still malformed after the retries counts as a tie (default: stop)"},
        {NULL, 0, NULL, NULL}};
    RLHF_ASSERT(sizeof d / sizeof d[0] <= 40);
    memcpy(defs, d, sizeof d);
}

// malformed HERON factors or margins, refused before any sampling
static int check_heron(const pairs_opts *o, rlhf_err *err) {
    reward_set spec = {0};
    int L = reward_set_parse(&spec, o->factors, err) ? -1 : spec.n;
    if (L < 0) rlhf_fail_ctx(err, "--factors");
    if (L == 0) L = -1, rlhf_fail(err, "--factors: no reward source given");
    double *m1 = xmalloc((size_t)(L > 0 ? L : 1) * sizeof(double));
    int *r1 = xmalloc((size_t)(L > 0 ? L : 1) * sizeof(int));
    int bad = L < 0 || heron_parse_margins(o->margins, L, m1, r1, err);
    reward_set_free(&spec);
    free(m1), free(r1);
    return bad ? -1 : 0;
}

// the flags that do not go together, refused with what to do instead
static int check_flags(const pairs_opts *o, rlhf_err *err) {
    int gold = !strcmp(o->label, "gold"), heron = !strcmp(o->label, "heron");
    if (!gold && !heron && strcmp(o->label, "verifier"))
        return rlhf_fail(err, "--label must be verifier, gold or heron, not \"%s\"", o->label);
    if (heron != (o->factors != NULL) || (o->margins && !heron))
        return rlhf_fail(err, "%s",
                         heron ? "--label heron needs --factors (reward sources, most important "
                                 "first)"
                               : "--factors and --margins go with --label heron");
    if (heron && (o->jo.base_url || o->judge))
        return rlhf_fail(err, "--label heron scores with --factors; it takes neither "
                              "--judge_url nor --reward_command");
    if (heron && check_heron(o, err)) return -1;
    if (o->jo.base_url && (gold || o->judge))
        return rlhf_fail(err, "--judge_url takes neither --label gold nor --reward_command");
    if (gold && o->judge)
        return rlhf_fail(err, "--label gold uses the task's gold reward; it does not take "
                              "--reward_command");
    if (!task_find(o->task)) return rlhf_fail(err, "unknown --task");
    if (!o->model || !o->prompts || !o->out)
        return rlhf_fail(err, "--model, --prompts and --out are required");
    if (same_file(o->out, o->prompts))
        return rlhf_fail(err,
                         "--out %s is the --prompts file: the pairs would replace the "
                         "prompts; name another file",
                         o->out);
    return 0;
}

// n samples of each of the first N prompts: ps[i n + j] = prompt i, samples[i n + j] its j-th
static int sample_all(const pairs_opts *o, rlhf_model *m, rlhf_tokenizer *tok,
                      const ds_dataset *ds, int N, const char **ps, char **samples,
                      rlhf_err *err) {
    int n = o->n;
    for (int i = 0; i < N; i++) {
        if (!ds->ex[i].prompt.text)
            return rlhf_fail(err, "%s:%d: needs a text prompt", o->prompts, ds->ex[i].line);
        for (int j = 0; j < n; j++) ps[(size_t)i * n + j] = ds->ex[i].prompt.text;
    }
    complete_opts co;
    complete_default_opts(&co);
    co.batch_size = o->batch;
    co.gen.max_new_tokens = o->max_new;
    co.gen.temperature = o->temperature;
    co.add_bos = o->add_bos;
    rlhf_rng rng;
    rng_seed(&rng, o->seed);
    return complete_texts(m, tok, ps, N * n, &co, &rng, samples, NULL, err);
}

// --reward_command: every sample's score in one call (*judged, N n, caller frees)
static int command_scores(const pairs_opts *o, const char **ps, char *const *samples, int total,
                          double **judged, rlhf_err *err) {
    reward_command *rc;
    float *sc = xmalloc((size_t)total * sizeof(float));
    if (reward_command_start(&rc, o->judge, o->timeout, err) ||
        reward_command_score(rc, ps, (const char *const *)samples, total, sc, err)) {
        free(sc);
        return -1;
    }
    reward_command_close(rc);
    *judged = xmalloc((size_t)total * sizeof(double));
    for (int i = 0; i < total; i++) (*judged)[i] = sc[i];
    free(sc);
    return 0;
}

// --label gold: a pair per prompt whose samples differ
static int gold_pairs(const pairs_opts *o, const ds_dataset *ds, char *const *samples, int N,
                      atomic_file *f, int *pairs, char *said, size_t cap, rlhf_err *err) {
    const rlhf_task *t = task_find(o->task);
    rlhf_rng label_rng;
    rng_seed(&label_rng, o->seed ^ 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < N; i++) {
        cJSON *row = NULL;
        if (!gold_pair(t, ds->ex[i].prompt.text, samples + (size_t)i * o->n, o->n, o->bt_temp,
                       &label_rng, &row))
            continue;
        int wfail = write_row(f, row, err);
        cJSON_Delete(row);
        if (wfail) return -1;
        ++*pairs;
    }
    snprintf(said, cap, "%d prompts x %d samples; %d gold-labelled pairs (T = %g)", N, o->n,
             *pairs, o->bt_temp);
    return 0;
}

// the verifier's (or --reward_command's) labels: the first correct sample (else,
// on arith with --use_gold, the gold answer) against the first wrong one
static int verifier_pairs(const pairs_opts *o, const ds_dataset *ds, const char **ps,
                          char *const *samples, int N, atomic_file *f, int *pairs, char *said,
                          size_t cap, rlhf_err *err) {
    const rlhf_task *t = task_find(o->task);
    int n = o->n, from_gold = 0, all_right = 0;
    double correct = 0, *judged = NULL;
    if (o->judge && command_scores(o, ps, samples, N * n, &judged, err)) return -1;
    int wfail = 0;
    for (int i = 0; i < N && !wfail; i++) {
        const char *p = ds->ex[i].prompt.text, *good = NULL, *bad = NULL;
        for (int j = 0; j < n; j++) {
            double rw = 0;
            const char *s = samples[(size_t)i * n + j];
            if (judged)
                rw = judged[(size_t)i * n + j];
            else
                t->score(p, s, 0, &rw, NULL);
            correct += rw;
            if (rw > 0.5 && !good) good = s;
            if (rw <= 0.5 && !bad && s[0]) bad = s;
        }
        char gold[64];
        if (!good && bad && o->use_gold && !judged && !strcmp(t->name, "arith")) {
            long long a, b;
            char op;
            if (arith_parse_prompt(p, &a, &op, &b, NULL) == 0) {
                snprintf(gold, sizeof gold, "%lld", arith_answer(a, op, b));
                good = gold;
                from_gold++;
            }
        }
        if (!bad) all_right++;
        if (!good || !bad) continue;
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "prompt", p);
        cJSON_AddStringToObject(row, "chosen", good);
        cJSON_AddStringToObject(row, "rejected", bad);
        wfail = write_row(f, row, err);
        cJSON_Delete(row);
        *pairs += !wfail;
    }
    free(judged);
    if (wfail) return -1;
    snprintf(said, cap,
             "%d prompts x %d samples, %.1f%% correct; %d pairs (%d with the gold answer as "
             "chosen), %d prompts all correct",
             N, n, 100.0 * correct / ((double)N * n), *pairs, from_gold, all_right);
    return 0;
}

// the labelling --label / --judge_url ask for, into f (not committed); said: what
// was written, for the line printed once the file is in place
static int label_pairs(const pairs_opts *o, ds_dataset *ds, const char **ps, char **samples,
                       int N, atomic_file *f, char *said, size_t cap, rlhf_err *err) {
    int pairs = 0;
    if (!strcmp(o->label, "heron")) {
        if (heron_pairs(o->factors, o->margins, o->timeout, ds, samples, ps, N, o->n, f, &pairs,
                        err))
            return -1;
        snprintf(said, cap, "%d prompts x %d samples; %d HERON pairs", N, o->n, pairs);
        return 0;
    }
    if (o->jo.base_url) {
        if (judged_pairs(&o->jo, ds, samples, N, o->n, f, &pairs, err)) return -1;
        snprintf(said, cap, "%d prompts x %d samples; %d judged pairs", N, o->n, pairs);
        return 0;
    }
    if (!strcmp(o->label, "gold")) return gold_pairs(o, ds, samples, N, f, &pairs, said, cap, err);
    return verifier_pairs(o, ds, ps, samples, N, f, &pairs, said, cap, err);
}

int cmd_pairs(int argc, char **argv) {
    pairs_opts o;
    flag_def defs[40];
    pairs_flags(defs, &o);
    rlhf_err err;
    int r =
        flags_parse(argc, argv, defs, "pairs",
                    "Samples a model on prompts and builds preference pairs with a verifier:\n"
                    "chosen = a correct sample (else the gold answer), rejected = a wrong sample.\n"
                    "example: rlhf pairs --model runs/sft --prompts runs/data/prompts.jsonl --out "
                    "runs/pairs.jsonl\n"
                    "HERON: --label heron --factors \"verifier:arith,verifier:arith:shaped\" "
                    "--margins \"0,0.05\"\n"
                    "  the first factor (in order) whose difference exceeds its margin decides;\n"
                    "  pairs none decides are dropped",
                    &err);
    if (r == 1) return 0;
    if (r < 0 || check_flags(&o, &err)) {
        fprintf(stderr, "rlhf pairs: %s\n", err.msg);
        return 2;
    }
    rlhf_model *m = NULL;
    rlhf_tokenizer *tok = NULL;
    ds_dataset *ds = NULL;
    char **samples = NULL;
    const char **ps = NULL;
    int status = 1, N = 0;
    if (model_load_any(o.model, o.seed, &m, &err) ||
        model_tokenizer(m, o.tokenizer, &tok, &err) || ds_load(&ds, o.prompts, NULL, NULL, &err))
        goto done;
    N = o.limit > 0 && o.limit < ds->n ? o.limit : ds->n;
    ps = xmalloc((size_t)N * o.n * sizeof(char *));
    samples = xcalloc((size_t)N * o.n, sizeof(char *));
    if (sample_all(&o, m, tok, ds, N, ps, samples, &err)) goto done;
    atomic_file f;
    char said[512] = "";
    if (atomic_open(&f, o.out, &err)) goto done;
    if (label_pairs(&o, ds, ps, samples, N, &f, said, sizeof said, &err) ||
        atomic_commit(&f, &err)) {
        atomic_abort(&f);
        goto done;
    }
    fprintf(stderr, "pairs: %s -> %s\n", said, o.out);
    status = 0;
done:
    if (status) fprintf(stderr, "rlhf pairs: %s\n", err.msg);
    if (samples)
        for (int i = 0; i < N * o.n; i++) free(samples[i]);
    free(samples);
    free(ps);
    ds_free(ds);
    tok_free(tok);
    model_free(m);
    return status;
}
