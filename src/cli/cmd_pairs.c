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
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "data/dataset.h"
#include "data/task.h"
#include "io/file.h"
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

int cmd_pairs(int argc, char **argv) {
    const char *model = NULL, *prompts = NULL, *out = NULL, *task = "arith", *tokenizer = NULL,
               *judge = NULL;
    float timeout = 30.0f;
    int n = 4, max_new = 16, batch = 64, limit = 0, use_gold = 1, add_bos = -1;
    float temperature = 1.0f;
    uint64_t seed = 1;
    const char *label = "verifier";
    double bt_temp = 0;
    flag_def defs[] = {
        {"model", FLAG_STR, &model, "the model to sample (checkpoint or run directory)"},
        {"prompts", FLAG_STR, &prompts, "JSONL with a prompt field per line"},
        {"task", FLAG_STR, &task, "built-in task whose verifier judges the samples"},
        {"reward_command", FLAG_STR, &judge,
         "judge with this program instead of --task (JSON lines in, one number per line out; > 0.5 "
         "= good)"},
        {"reward_timeout", FLAG_FLOAT, &timeout, "seconds the judge may take per answer", 0.1, 1e6},
        {"add_bos", FLAG_AUTO, &add_bos,
         "BOS before each prompt: true, false or auto (the tokenizer's convention: yes for "
         "llama2.c/sentencepiece, no for GPT-2 and byte)"},
        {"out", FLAG_STR, &out, "where to write prompt/chosen/rejected JSONL"},
        {"num_samples", FLAG_INT, &n, "samples per prompt", 2, 1024},
        {"temperature", FLAG_FLOAT, &temperature, "sampling temperature", 0.01, 100},
        {"max_new_tokens", FLAG_INT, &max_new, "longest sample", 1, 1 << 20},
        {"use_gold", FLAG_BOOL, &use_gold, "when no sample is correct, the gold answer is chosen"},
        {"batch_size", FLAG_INT, &batch, "prompts per generation batch", 1, 1 << 16},
        {"limit", FLAG_INT, &limit, "use only the first N prompts (0: all)", 0, 1 << 30},
        {"tokenizer", FLAG_STR, &tokenizer, "tokenizer (default: the model's)"},
        {"seed", FLAG_U64, &seed, "sampling seed"},
        {"label", FLAG_STR, &label,
         "verifier (a correct vs a wrong sample) or gold (two samples compared by the task's "
         "shaped gold reward, Bradley-Terry noise by --bt_temperature)"},
        {"bt_temperature", FLAG_DOUBLE, &bt_temp,
         "--label gold: P(a > b) = sigmoid((gold_a - gold_b) / T) (0: the higher gold wins, ties "
         "dropped)",
         0, 1e6},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r =
        flags_parse(argc, argv, defs, "pairs",
                    "Samples a model on prompts and builds preference pairs with a verifier:\n"
                    "chosen = a correct sample (else the gold answer), rejected = a wrong sample.\n"
                    "example: rlhf pairs --model runs/sft --prompts runs/data/prompts.jsonl --out "
                    "runs/pairs.jsonl",
                    &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf pairs: %s\n", err.msg);
        return 2;
    }
    const rlhf_task *t = task_find(task);
    int gold_mode = !strcmp(label, "gold");
    if (!gold_mode && strcmp(label, "verifier")) {
        fprintf(stderr, "rlhf pairs: --label must be verifier or gold, not \"%s\"\n", label);
        return 2;
    }
    if (gold_mode && judge) {
        fprintf(stderr, "rlhf pairs: --label gold uses the task's gold reward; it does not take "
                        "--reward_command\n");
        return 2;
    }
    if (!t || !model || !prompts || !out) {
        fprintf(stderr, "rlhf pairs: %s\n",
                !t ? "unknown --task" : "--model, --prompts and --out are required");
        return 2;
    }
    rlhf_model *m = NULL;
    rlhf_tokenizer *tok = NULL;
    ds_dataset *ds = NULL;
    char **samples = NULL;
    const char **ps = NULL;
    int status = 1, N = 0;
    if (model_load_any(model, seed, &m, &err) || model_tokenizer(m, tokenizer, &tok, &err) ||
        ds_load(&ds, prompts, NULL, NULL, &err))
        goto done;
    N = limit > 0 && limit < ds->n ? limit : ds->n;
    ps = xmalloc((size_t)N * n * sizeof(char *));
    samples = xcalloc((size_t)N * n, sizeof(char *));
    for (int i = 0; i < N; i++) {
        if (!ds->ex[i].prompt.text) {
            rlhf_fail(&err, "%s:%d: needs a text prompt", prompts, ds->ex[i].line);
            goto done;
        }
        for (int j = 0; j < n; j++) ps[(size_t)i * n + j] = ds->ex[i].prompt.text;
    }
    complete_opts co;
    complete_default_opts(&co);
    co.batch_size = batch;
    co.gen.max_new_tokens = max_new;
    co.gen.temperature = temperature;
    co.add_bos = add_bos;
    rlhf_rng rng;
    rng_seed(&rng, seed);
    if (complete_texts(m, tok, ps, N * n, &co, &rng, samples, NULL, &err)) goto done;
    FILE *f = fopen(out, "w");
    if (!f) {
        rlhf_fail(&err, "%s: cannot open for writing", out);
        goto done;
    }
    int pairs = 0, from_gold = 0, all_right = 0;
    double correct = 0;
    double *judged = NULL;
    if (judge) { // one call for every sample
        reward_command *rc;
        float *sc = xmalloc((size_t)N * n * sizeof(float));
        if (reward_command_start(&rc, judge, timeout, &err) ||
            reward_command_score(rc, ps, (const char *const *)samples, N * n, sc, &err)) {
            free(sc);
            fclose(f);
            goto done;
        }
        reward_command_close(rc);
        judged = xmalloc((size_t)N * n * sizeof(double));
        for (int i = 0; i < N * n; i++) judged[i] = sc[i];
        free(sc);
    }
    rlhf_rng label_rng;
    rng_seed(&label_rng, seed ^ 0x9e3779b97f4a7c15ull);
    for (int i = 0; gold_mode && i < N; i++) {
        cJSON *o = NULL;
        if (!gold_pair(t, ds->ex[i].prompt.text, samples + (size_t)i * n, n, bt_temp, &label_rng,
                       &o))
            continue;
        char *line = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(o);
        pairs++;
    }
    for (int i = 0; !gold_mode && i < N; i++) {
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
        if (!good && bad && use_gold && !judged && !strcmp(t->name, "arith")) {
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
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", p);
        cJSON_AddStringToObject(o, "chosen", good);
        cJSON_AddStringToObject(o, "rejected", bad);
        char *line = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(o);
        pairs++;
    }
    fclose(f);
    free(judged);
    if (gold_mode)
        fprintf(stderr, "pairs: %d prompts x %d samples; %d gold-labelled pairs (T = %g) -> %s\n",
                N, n, pairs, bt_temp, out);
    else
        fprintf(stderr,
                "pairs: %d prompts x %d samples, %.1f%% correct; %d pairs (%d with the gold "
                "answer as chosen), %d prompts all correct -> %s\n",
                N, n, 100.0 * correct / ((double)N * n), pairs, from_gold, all_right, out);
    status = 0;
done:
    if (status) fprintf(stderr, "rlhf pairs: %s\n", err.msg);
    if (samples)
        for (int i = 0; i < N * n; i++) free(samples[i]);
    free(samples);
    free(ps);
    ds_free(ds);
    tok_free(tok);
    model_free(m);
    return status;
}
