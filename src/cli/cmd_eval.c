// cli/cmd_eval: `rlhf eval --task arith --model CKPT` — greedy exact-match
// accuracy, sampled accuracy (temperature, k samples per prompt: the policy's
// expected gold reward, which RLHF optimises) and mean shaped reward, as one
// JSON line on stdout.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "data/dataset.h"
#include "data/task.h"
#include "reward/reward_model.h"
#include "reward/sources.h"
#include "train/complete.h"
#include "train/dpo.h"
#include "train/run.h"

// --completions: the verifier alone, on completions made elsewhere
static int score_file(const rlhf_task *t, const char *path) {
    rlhf_err err;
    ds_dataset *ds;
    ds_load_opts lo = {.format = DS_PROMPT_COMPLETION};
    if (ds_load(&ds, path, &lo, NULL, &err)) {
        fprintf(stderr, "rlhf eval: %s\n", err.msg);
        return 1;
    }
    double acc = 0, shaped = 0;
    for (int i = 0; i < ds->n; i++) {
        double r = 0, s = 0;
        if (t->score(ds->ex[i].prompt.text, ds->ex[i].completion.text, 0, &r, &err) ||
            t->score(ds->ex[i].prompt.text, ds->ex[i].completion.text, 1, &s, &err)) {
            fprintf(stderr, "rlhf eval: %s:%d: %s\n", path, ds->ex[i].line, err.msg);
            ds_free(ds);
            return 1;
        }
        acc += r;
        shaped += s;
    }
    printf("{\"task\":\"%s\",\"completions\":\"%s\",\"n\":%d,\"accuracy\":%.6f,"
           "\"mean_reward\":%.6f}\n",
           t->name, path, ds->n, ds->n ? acc / ds->n : 0.0, ds->n ? shaped / ds->n : 0.0);
    ds_free(ds);
    return 0;
}

// --reward_model: every sample's proxy reward (n, K members) in *members and
// the members' mean per sample in *mean (both malloc'd)
static int proxy_scores(const char *path, const char *tokenizer, const char *const *prompts,
                        const char *const *samples, int n, float **mean, float **members, int *K,
                        rlhf_err *err) {
    reward_model rm;
    if (reward_model_load(&rm, path, tokenizer, err)) return -1;
    *K = rm.K;
    *members = xmalloc((size_t)(n > 0 ? n : 1) * rm.K * sizeof(float));
    *mean = xcalloc((size_t)(n > 0 ? n : 1), sizeof(float));
    int rc = reward_model_score_texts(&rm, prompts, samples, n, 32, *members, err);
    for (int i = 0; rc == 0 && i < n; i++) {
        for (int k = 0; k < rm.K; k++) (*mean)[i] += (*members)[(size_t)i * rm.K + k];
        (*mean)[i] /= rm.K;
    }
    reward_model_free(&rm);
    return rc;
}

// one --output line: the greedy completion and, with samples, their texts,
// gold (shaped) rewards and proxy rewards
static void output_row(FILE *f, const rlhf_task *t, const char *prompt, const char *greedy,
                       char *const *smp, int k, const float *proxy, const float *members, int K) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "prompt", reward_json_text(prompt));  // any bytes -> valid UTF-8
    cJSON_AddItemToObject(o, "completion", reward_json_text(greedy));
    double rwd = 0;
    t->score(prompt, greedy, 0, &rwd, NULL);
    cJSON_AddNumberToObject(o, "reward", rwd);
    if (k > 0) {
        cJSON *arr = cJSON_AddArrayToObject(o, "samples");
        cJSON *gold = cJSON_AddArrayToObject(o, "sample_gold");
        for (int j = 0; j < k; j++) {
            double g = 0;
            t->score(prompt, smp[j], 1, &g, NULL);
            cJSON_AddItemToArray(arr, reward_json_text(smp[j]));
            cJSON_AddItemToArray(gold, cJSON_CreateNumber(g));
        }
        if (proxy) {
            cJSON *px = cJSON_AddArrayToObject(o, "sample_proxy");
            for (int j = 0; j < k; j++) cJSON_AddItemToArray(px, cJSON_CreateNumber(proxy[j]));
        }
        if (members && K > 1) {
            cJSON *pm = cJSON_AddArrayToObject(o, "sample_proxy_members");
            for (int j = 0; j < k; j++) {
                cJSON *row = cJSON_CreateArray();
                for (int m = 0; m < K; m++)
                    cJSON_AddItemToArray(row, cJSON_CreateNumber(members[(size_t)j * K + m]));
                cJSON_AddItemToArray(pm, row);
            }
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    fprintf(f, "%s\n", s);
    free(s);
    cJSON_Delete(o);
}

int cmd_eval(int argc, char **argv) {
    const char *task = "arith", *model = NULL, *data = NULL, *tokenizer = NULL, *out = NULL,
               *completions = NULL, *ref_model = NULL, *proxy_rm = NULL;
    int k = 4, batch = 64, max_new = 16, limit = 0, add_bos = -1;
    float temperature = 1.0f;
    uint64_t seed = 1;
    flag_def defs[] = {
        {"task", FLAG_STR, &task, "built-in task whose verifier scores the completions"},
        {"model", FLAG_STR, &model, "checkpoint or run directory"},
        {"data", FLAG_STR, &data,
         "prompts with gold completions (default: the task's held-out eval set)"},
        {"tokenizer", FLAG_STR, &tokenizer, "tokenizer (default: the model's)"},
        {"samples_per_prompt", FLAG_INT, &k, "samples per prompt for sampled_accuracy (0: skip)", 0,
         1024},
        {"temperature", FLAG_FLOAT, &temperature, "sampling temperature for sampled_accuracy", 0,
         100},
        {"max_new_tokens", FLAG_INT, &max_new, "longest completion", 1, 1 << 20},
        {"batch_size", FLAG_INT, &batch, "prompts per generation batch", 1, 1 << 16},
        {"limit", FLAG_INT, &limit, "score only the first N prompts (0: all)", 0, 1 << 30},
        {"seed", FLAG_U64, &seed, "sampling seed"},
        {"add_bos", FLAG_AUTO, &add_bos,
         "BOS before each prompt: true, false or auto (the tokenizer's convention: yes for "
         "llama2.c/sentencepiece, no for GPT-2 and byte)"},
        {"completions", FLAG_STR, &completions,
         "score the prompt+completion pairs of this JSONL file instead of a model"},
        {"ref_model", FLAG_STR, &ref_model,
         "also estimate KL(model || ref_model) on the prompts (one sample each)"},
        {"reward_model", FLAG_STR, &proxy_rm,
         "also score the samples with this reward model (a proxy): proxy_reward (an ensemble: its "
         "members' mean)"},
        {"output", FLAG_STR, &out,
         "also write every prompt, completion and reward as JSONL here (with samples: their gold "
         "rewards, and proxy rewards with --reward_model)"},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r =
        flags_parse(argc, argv, defs, "eval",
                    "Scores a model on a built-in task with its gold verifier.\n"
                    "Prints {\"accuracy\", \"sampled_accuracy\", \"mean_reward\" (the mean shaped\n"
                    "reward of the samples: the gold reward of rlhf study), \"n\", ...}.\n"
                    "example: rlhf eval --task arith --model runs/sft",
                    &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf eval: %s\n", err.msg);
        return 2;
    }
    const rlhf_task *t = task_find(task);
    if (!t) {
        fprintf(stderr, "rlhf eval: unknown task \"%s\"\n", task);
        return 2;
    }
    if (completions) return score_file(t, completions);
    if (!model) {
        fprintf(stderr, "rlhf eval: --model (or --completions) is required\n");
        return 2;
    }
    char tmpdir[] = "/tmp/rlhf-eval-XXXXXX", path[600];
    int made_tmp = 0;
    if (!data) { // the task's held-out set (independent of the seed)
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "rlhf eval: cannot create a temporary directory\n");
            return 1;
        }
        made_tmp = 1;
        void *opts = calloc(1, t->opts_size);
        t->default_opts(opts);
        t->set_opt(opts, "n_train", "1", NULL);
        t->set_opt(opts, "n_pref", "1", NULL);
        t->set_opt(opts, "n_prompts", "1", NULL);
        int rc = t->write_dir(tmpdir, opts, &err);
        free(opts);
        if (rc) {
            fprintf(stderr, "rlhf eval: %s\n", err.msg);
            return 1;
        }
        snprintf(path, sizeof path, "%s/eval.jsonl", tmpdir);
        data = path;
    }
    rlhf_model *m = NULL;
    rlhf_tokenizer *tok = NULL;
    ds_dataset *ds = NULL;
    int status = 1;
    if (model_load_any(model, seed, &m, &err) || model_tokenizer(m, tokenizer, &tok, &err) ||
        ds_load(&ds, data, NULL, NULL, &err)) {
        fprintf(stderr, "rlhf eval: %s\n", err.msg);
        goto done;
    }
    int n = limit > 0 && limit < ds->n ? limit : ds->n;
    const char **prompts = xmalloc((size_t)n * (k > 0 ? k : 1) * sizeof(char *));
    for (int i = 0; i < n; i++) {
        if (!ds->ex[i].prompt.text) {
            fprintf(stderr, "rlhf eval: %s: line %d has no text prompt\n", data, ds->ex[i].line);
            free(prompts);
            goto done;
        }
        prompts[i] = ds->ex[i].prompt.text;
    }
    complete_opts co;
    complete_default_opts(&co);
    co.batch_size = batch;
    co.gen.max_new_tokens = max_new;
    co.gen.temperature = 0;
    co.add_bos = add_bos;
    rlhf_rng rng;
    rng_seed(&rng, seed);
    char **greedy = xcalloc(n, sizeof(char *));
    char **sampled = xcalloc((size_t)n * (k > 0 ? k : 1), sizeof(char *));
    double acc = 0, sacc = 0, shaped = 0;
    float *proxy = NULL, *members = NULL;
    int K = 0;
    if (complete_texts(m, tok, prompts, n, &co, &rng, greedy, NULL, &err)) {
        fprintf(stderr, "rlhf eval: %s\n", err.msg);
        goto free_all;
    }
    for (int i = 0; i < n; i++) {
        double rwd = 0;
        t->score(prompts[i], greedy[i], 0, &rwd, NULL);
        acc += rwd;
    }
    if (k > 0) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) prompts[(size_t)i * k + j] = ds->ex[i].prompt.text;
        co.gen.temperature = temperature;
        if (complete_texts(m, tok, prompts, n * k, &co, &rng, sampled, NULL, &err)) {
            fprintf(stderr, "rlhf eval: %s\n", err.msg);
            goto free_all;
        }
        for (int i = 0; i < n * k; i++) {
            double rwd = 0, sh = 0;
            t->score(prompts[i], sampled[i], 0, &rwd, NULL);
            t->score(prompts[i], sampled[i], 1, &sh, NULL);
            sacc += rwd;
            shaped += sh;
        }
    }
    if (proxy_rm && k > 0 &&
        proxy_scores(proxy_rm, tokenizer, prompts, (const char *const *)sampled, n * k, &proxy,
                     &members, &K, &err)) {
        fprintf(stderr, "rlhf eval: --reward_model: %s\n", err.msg);
        goto free_all;
    }
    if (out) {
        FILE *f = fopen(out, "w");
        if (!f) {
            fprintf(stderr, "rlhf eval: cannot write %s\n", out);
            goto free_all;
        }
        for (int i = 0; i < n; i++)
            output_row(f, t, ds->ex[i].prompt.text, greedy[i], sampled + (size_t)i * k, k,
                       proxy ? proxy + (size_t)i * k : NULL,
                       members ? members + (size_t)i * k * K : NULL, K);
        fclose(f);
    }
    double kl = NAN;
    if (ref_model) {
        rlhf_model *ref = NULL;
        int **pi = xcalloc(n, sizeof(int *)), *pl = xcalloc(n, sizeof(int));
        int ok = model_load_any(ref_model, seed, &ref, &err) == 0;
        for (int i = 0; ok && i < n; i++)
            ok = tok_encode(tok, ds->ex[i].prompt.text, strlen(ds->ex[i].prompt.text), &pi[i],
                            &pl[i], 1, &err) == 0;
        for (int i = 0; ok && i < n; i++)
            if (tok_resolve_add_bos(tok, add_bos)) tok_prepend_bos(tok, &pi[i], &pl[i]);
        if (ok)
            kl = estimate_kl(m, ref, (const int *const *)pi, pl, n, max_new, tok_eos(tok), seed,
                             &err);
        for (int i = 0; i < n; i++) free(pi[i]);
        free(pi);
        free(pl);
        model_free(ref);
        if (!ok || isnan(kl)) {
            fprintf(stderr, "rlhf eval: KL estimate: %s\n", err.msg);
            goto free_all;
        }
    }
    printf("{\"task\":\"%s\",\"model\":\"%s\",\"n\":%d,\"accuracy\":%.6f,\"sampled_accuracy\":%.6f,"
           "\"mean_reward\":%.6f,\"samples_per_prompt\":%d,\"temperature\":%g",
           task, model, n, acc / n, k > 0 ? sacc / ((double)n * k) : 0.0,
           k > 0 ? shaped / ((double)n * k) : 0.0, k, temperature);
    if (ref_model) printf(",\"kl\":%.6f", kl);
    if (proxy) {
        double sum = 0;
        for (int i = 0; i < n * k; i++) sum += proxy[i];
        printf(",\"proxy_reward\":%.6f", sum / ((double)n * k));
    }
    printf("}\n");
    status = 0;
free_all:
    free(proxy);
    free(members);
    for (int i = 0; i < n; i++) free(greedy[i]);
    for (int i = 0; i < n * (k > 0 ? k : 1); i++) free(sampled[i]);
    free(greedy);
    free(sampled);
    free(prompts);
done:
    if (made_tmp) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) { /* best effort */
        }
    }
    ds_free(ds);
    tok_free(tok);
    model_free(m);
    return status;
}
