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
#include "io/file.h"
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

// the flags of `rlhf eval`
typedef struct {
    const char *task, *model, *data, *tokenizer, *out, *completions, *ref_model, *proxy_rm;
    int k, batch, max_new, limit, add_bos;
    float temperature;
    uint64_t seed;
} eval_opts;

// defs (room for 20) point into o, which holds the defaults
static void eval_flags(flag_def *defs, eval_opts *o) {
    *o = (eval_opts){.task = "arith", .k = 4, .batch = 64, .max_new = 16, .add_bos = -1,
                     .temperature = 1.0f, .seed = 1};
    flag_def d[] = {
        {"task", FLAG_STR, &o->task, "built-in task whose verifier scores the completions"},
        {"model", FLAG_STR, &o->model, "checkpoint or run directory"},
        {"data", FLAG_STR, &o->data,
         "prompts with gold completions (default: the task's held-out eval set)"},
        {"tokenizer", FLAG_STR, &o->tokenizer, "tokenizer (default: the model's)"},
        {"samples_per_prompt", FLAG_INT, &o->k,
         "samples per prompt for sampled_accuracy (0: skip)", 0, 1024},
        {"temperature", FLAG_FLOAT, &o->temperature, "sampling temperature for sampled_accuracy",
         0, 100},
        {"max_new_tokens", FLAG_INT, &o->max_new, "longest completion", 1, 1 << 20},
        {"batch_size", FLAG_INT, &o->batch, "prompts per generation batch", 1, 1 << 16},
        {"limit", FLAG_INT, &o->limit, "score only the first N prompts (0: all)", 0, 1 << 30},
        {"seed", FLAG_U64, &o->seed, "sampling seed"},
        {"add_bos", FLAG_AUTO, &o->add_bos,
         "BOS before each prompt: true, false or auto (the tokenizer's convention: yes for "
         "llama2.c/sentencepiece, no for GPT-2 and byte)"},
        {"completions", FLAG_STR, &o->completions,
         "score the prompt+completion pairs of this JSONL file instead of a model"},
        {"ref_model", FLAG_STR, &o->ref_model,
         "also estimate KL(model || ref_model) on the prompts (one sample each)"},
        {"reward_model", FLAG_STR, &o->proxy_rm,
         "also score the samples with this reward model (a proxy): proxy_reward (an ensemble: its "
         "members' mean)"},
        {"output", FLAG_STR, &o->out,
         "also write every prompt, completion and reward as JSONL here (with samples: their gold "
         "rewards, and proxy rewards with --reward_model)"},
        {NULL, 0, NULL, NULL}};
    RLHF_ASSERT(sizeof d / sizeof d[0] <= 20);
    memcpy(defs, d, sizeof d);
}

// the task's held-out set (independent of the seed), written into tmpdir; path
// receives its eval.jsonl
static int held_out_set(const rlhf_task *t, const char *tmpdir, char *path, size_t cap,
                        rlhf_err *err) {
    void *opts = xcalloc(1, t->opts_size);
    t->default_opts(opts);
    t->set_opt(opts, "n_train", "1", NULL);
    t->set_opt(opts, "n_pref", "1", NULL);
    t->set_opt(opts, "n_prompts", "1", NULL);
    int rc = t->write_dir(tmpdir, opts, err);
    free(opts);
    snprintf(path, cap, "%s/eval.jsonl", tmpdir);
    return rc;
}

// KL(m || ref_model) on the n prompts of ds (one sample each); NAN and err on failure
static double eval_kl(const eval_opts *o, rlhf_model *m, rlhf_tokenizer *tok,
                      const ds_dataset *ds, int n, rlhf_err *err) {
    rlhf_model *ref = NULL;
    double kl = NAN;
    int **pi = xcalloc(n, sizeof(int *)), *pl = xcalloc(n, sizeof(int));
    int ok = model_load_any(o->ref_model, o->seed, &ref, err) == 0;
    for (int i = 0; ok && i < n; i++)
        ok = tok_encode(tok, ds->ex[i].prompt.text, strlen(ds->ex[i].prompt.text), &pi[i],
                        &pl[i], 1, err) == 0;
    for (int i = 0; ok && i < n; i++)
        if (tok_resolve_add_bos(tok, o->add_bos)) tok_prepend_bos(tok, &pi[i], &pl[i]);
    if (ok)
        kl = estimate_kl(m, ref, (const int *const *)pi, pl, n, o->max_new, tok_eos(tok),
                         o->seed, err);
    for (int i = 0; i < n; i++) free(pi[i]);
    free(pi);
    free(pl);
    model_free(ref);
    return ok ? kl : NAN;
}

// what one evaluation holds: the n prompts (n k once sampled), greedy and sampled
// completions, their gold sums, and the proxy reward model's scores
typedef struct {
    int n, k, K;
    const char **prompts;
    char **greedy, **sampled;
    double acc, sacc, shaped;
    float *proxy, *members;
} eval_run;

static void eval_run_free(eval_run *e) {
    free(e->proxy);
    free(e->members);
    for (int i = 0; e->greedy && i < e->n; i++) free(e->greedy[i]);
    for (int i = 0; e->sampled && i < e->n * (e->k > 0 ? e->k : 1); i++) free(e->sampled[i]);
    free(e->greedy);
    free(e->sampled);
    free(e->prompts);
}

// greedy completions and their exact-match sum; then k samples per prompt (the
// prompts array repeats each prompt k times from here on) with their gold and
// shaped sums
static int generate_and_score(const eval_opts *o, const rlhf_task *t, rlhf_model *m,
                              rlhf_tokenizer *tok, const ds_dataset *ds, eval_run *e,
                              rlhf_err *err) {
    int n = e->n, k = e->k;
    complete_opts co;
    complete_default_opts(&co);
    co.batch_size = o->batch;
    co.gen.max_new_tokens = o->max_new;
    co.gen.temperature = 0;
    co.add_bos = o->add_bos;
    rlhf_rng rng;
    rng_seed(&rng, o->seed);
    if (complete_texts(m, tok, e->prompts, n, &co, &rng, e->greedy, NULL, err)) return -1;
    for (int i = 0; i < n; i++) {
        double rwd = 0;
        t->score(e->prompts[i], e->greedy[i], 0, &rwd, NULL);
        e->acc += rwd;
    }
    if (k == 0) return 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) e->prompts[(size_t)i * k + j] = ds->ex[i].prompt.text;
    co.gen.temperature = o->temperature;
    if (complete_texts(m, tok, e->prompts, n * k, &co, &rng, e->sampled, NULL, err)) return -1;
    for (int i = 0; i < n * k; i++) {
        double rwd = 0, sh = 0;
        t->score(e->prompts[i], e->sampled[i], 0, &rwd, NULL);
        t->score(e->prompts[i], e->sampled[i], 1, &sh, NULL);
        e->sacc += rwd;
        e->shaped += sh;
    }
    return 0;
}

// --output: one JSON line per prompt, written whole (temp file, renamed into place)
static int write_output(const eval_opts *o, const rlhf_task *t, const ds_dataset *ds,
                        const eval_run *e, rlhf_err *err) {
    atomic_file a;
    if (atomic_open(&a, o->out, err)) return -1;
    int k = e->k, K = e->K;
    for (int i = 0; i < e->n; i++)
        output_row(a.f, t, ds->ex[i].prompt.text, e->greedy[i], e->sampled + (size_t)i * k, k,
                   e->proxy ? e->proxy + (size_t)i * k : NULL,
                   e->members ? e->members + (size_t)i * k * K : NULL, K);
    return atomic_commit(&a, err);
}

// the result line on stdout
static void print_result(const eval_opts *o, const eval_run *e, double kl) {
    int n = e->n, k = e->k;
    printf("{\"task\":\"%s\",\"model\":\"%s\",\"n\":%d,\"accuracy\":%.6f,\"sampled_accuracy\":%.6f,"
           "\"mean_reward\":%.6f,\"samples_per_prompt\":%d,\"temperature\":%g",
           o->task, o->model, n, e->acc / n, k > 0 ? e->sacc / ((double)n * k) : 0.0,
           k > 0 ? e->shaped / ((double)n * k) : 0.0, k, o->temperature);
    if (o->ref_model) printf(",\"kl\":%.6f", kl);
    if (e->proxy) {
        double sum = 0;
        for (int i = 0; i < n * k; i++) sum += e->proxy[i];
        printf(",\"proxy_reward\":%.6f", sum / ((double)n * k));
    }
    printf("}\n");
}

// the evaluation of a loaded model on ds; the message (prefix included) in err
static int eval_model(const eval_opts *o, const rlhf_task *t, rlhf_model *m,
                      rlhf_tokenizer *tok, const ds_dataset *ds, rlhf_err *err) {
    eval_run e = {.k = o->k};
    e.n = o->limit > 0 && o->limit < ds->n ? o->limit : ds->n;
    int n = e.n, k = e.k, rc = -1;
    e.prompts = xmalloc((size_t)n * (k > 0 ? k : 1) * sizeof(char *));
    e.greedy = xcalloc(n, sizeof(char *));
    e.sampled = xcalloc((size_t)n * (k > 0 ? k : 1), sizeof(char *));
    for (int i = 0; i < n; i++) {
        if (!ds->ex[i].prompt.text) {
            rlhf_fail(err, "%s: line %d has no text prompt", o->data, ds->ex[i].line);
            goto done;
        }
        e.prompts[i] = ds->ex[i].prompt.text;
    }
    if (generate_and_score(o, t, m, tok, ds, &e, err)) goto done;
    if (o->proxy_rm && k > 0 &&
        proxy_scores(o->proxy_rm, o->tokenizer, e.prompts, (const char *const *)e.sampled, n * k,
                     &e.proxy, &e.members, &e.K, err)) {
        rlhf_fail_ctx(err, "--reward_model");
        goto done;
    }
    if (o->out && write_output(o, t, ds, &e, err)) goto done;
    double kl = NAN;
    if (o->ref_model && isnan(kl = eval_kl(o, m, tok, ds, n, err))) {
        rlhf_fail_ctx(err, "KL estimate");
        goto done;
    }
    print_result(o, &e, kl);
    rc = 0;
done:
    eval_run_free(&e);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    eval_opts o;
    flag_def defs[20];
    eval_flags(defs, &o);
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
    const rlhf_task *t = task_find(o.task);
    if (!t) {
        fprintf(stderr, "rlhf eval: unknown task \"%s\"\n", o.task);
        return 2;
    }
    if (o.completions) return score_file(t, o.completions);
    if (!o.model) {
        fprintf(stderr, "rlhf eval: --model (or --completions) is required\n");
        return 2;
    }
    char tmpdir[] = "/tmp/rlhf-eval-XXXXXX", path[600];
    int made_tmp = 0;
    if (!o.data) {
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "rlhf eval: cannot create a temporary directory\n");
            return 1;
        }
        made_tmp = 1;
        if (held_out_set(t, tmpdir, path, sizeof path, &err)) {
            fprintf(stderr, "rlhf eval: %s\n", err.msg);
            remove_tree(tmpdir);
            return 1;
        }
        o.data = path;
    }
    rlhf_model *m = NULL;
    rlhf_tokenizer *tok = NULL;
    ds_dataset *ds = NULL;
    int status = 1;
    if (model_load_any(o.model, o.seed, &m, &err) ||
        model_tokenizer(m, o.tokenizer, &tok, &err) || ds_load(&ds, o.data, NULL, NULL, &err) ||
        eval_model(&o, t, m, tok, ds, &err))
        fprintf(stderr, "rlhf eval: %s\n", err.msg);
    else
        status = 0;
    if (made_tmp) remove_tree(tmpdir);
    ds_free(ds);
    tok_free(tok);
    model_free(m);
    return status;
}
