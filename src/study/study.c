// study/study: running `rlhf` commands for a study, the gold-reward sandbox
// (base data and policy, gold-labelled pairs, proxy reward models,
// evaluations) and results rows. The command itself (verdict, report, table)
// is in study_cmd.c.
#include "study/study.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/file.h"

// ------------------------------------------------------------- arguments --
static char *sdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

void study_add(study_args *a, ...) {
    va_list ap;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));) {
        if (a->n >= (int)(sizeof a->v / sizeof a->v[0]) - 1) {
            fprintf(stderr, "study: too many arguments\n");
            abort();
        }
        a->v[a->n++] = sdup(s);
    }
    va_end(ap);
}

void study_addf(study_args *a, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    study_add(a, buf, (const char *)NULL);
}

void study_args_free(study_args *a) {
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    a->n = 0;
}

// ---------------------------------------------------------------- running --
static int log_paths(study_ctx *c, const char *log, char *out, char *errp, size_t n,
                     rlhf_err *err) {
    snprintf(out, n, "%s/logs/%s.out", c->out, log);
    snprintf(errp, n, "%s/logs/%s.log", c->out, log);
    char dir[2200];
    snprintf(dir, sizeof dir, "%s", errp);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    return make_dirs(dir, err);
}

// the last `lines` lines of a file, for error messages
static void tail_of(const char *path, char *out, size_t n, int lines) {
    out[0] = 0;
    size_t len = 0;
    char *text = read_file(path, &len, NULL);
    if (!text) return;
    size_t i = len;
    while (i > 0 && (text[i - 1] == '\n' || text[i - 1] == ' ')) i--;
    size_t end = i;
    for (int k = 0; i > 0 && k < lines; k += text[--i] == '\n') {
    }
    if (text[i] == '\n') i++;
    snprintf(out, n, "%.*s", (int)(end - i), text + i);
    free(text);
}

static int last_json(const char *path, cJSON **json) {
    size_t len = 0;
    char *text = read_file(path, &len, NULL);
    if (!text) return -1;
    *json = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '{') continue;
        cJSON *j = cJSON_Parse(line);
        if (j && cJSON_IsObject(j)) {
            cJSON_Delete(*json);
            *json = j;
        } else {
            cJSON_Delete(j);
        }
    }
    free(text);
    return *json ? 0 : -1;
}

// the command's arguments, one per line: what LOG.done holds
static char *args_key(const study_args *a) {
    size_t n = 1;
    for (int i = 0; i < a->n; i++) n += strlen(a->v[i]) + 1;
    char *k = xmalloc(n), *p = k;
    for (int i = 0; i < a->n; i++) p += sprintf(p, "%s\n", a->v[i]);
    *p = 0;
    return k;
}

// --resume: 1 when LOG.done holds these arguments (and LOG.out gives a JSON object
// if one is wanted): the command finished in the earlier study
static int finished_before(const char *done, const char *key, const char *outp, cJSON **json) {
    char *was = read_file(done, NULL, NULL);
    int same = was && !strcmp(was, key);
    free(was);
    return same && (!json || last_json(outp, json) == 0);
}

int study_run(study_ctx *c, const char *log, study_args *a, cJSON **json, rlhf_err *err) {
    char outp[2200], errp[2200], done[2200];
    if (json) *json = NULL;
    if (log_paths(c, log, outp, errp, sizeof outp, err)) {
        study_args_free(a);
        return -1;
    }
    snprintf(done, sizeof done, "%s/logs/%s.done", c->out, log);
    char *key = args_key(a);
    c->runs++;
    if (c->resume && finished_before(done, key, outp, json)) {
        c->reused++;
        free(key);
        study_args_free(a);
        return 0;
    }
    unlink(done); // until this run finishes
    char cmdline[600] = "";
    for (int i = 0; i < a->n && strlen(cmdline) < 400; i++)
        snprintf(cmdline + strlen(cmdline), sizeof cmdline - strlen(cmdline), "%s%s", i ? " " : "",
                 a->v[i]);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        study_args_free(a);
        free(key);
        return rlhf_fail(err, "study: cannot start rlhf %s: %s", cmdline, strerror(errno));
    }
    if (pid == 0) {
        int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        char *argv[sizeof a->v / sizeof a->v[0] + 2];
        argv[0] = c->rlhf;
        for (int i = 0; i < a->n; i++) argv[i + 1] = a->v[i];
        argv[a->n + 1] = NULL;
        execv(c->rlhf, argv);
        _exit(127);
    }
    study_args_free(a);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char tail[800];
        tail_of(errp, tail, sizeof tail, 4);
        free(key);
        return rlhf_fail(err, "study: `rlhf %s` failed (%s %d; log %s):\n%s", cmdline,
                         WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), errp, tail);
    }
    if (json && last_json(outp, json)) {
        free(key);
        return rlhf_fail(err, "study: `rlhf %s` printed no JSON object (see %s)", cmdline, outp);
    }
    int rc = atomic_write_file(done, key, strlen(key), err);
    free(key);
    return rc;
}

// ---------------------------------------------------------------- sandbox --
static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

#define BASE_SFT_STEPS 1500

int study_base(study_ctx *c, rlhf_err *err) {
    char final[1300];
    snprintf(final, sizeof final, "%s/checkpoints/final/model.safetensors", c->sft);
    if (exists(final)) return 0;
    study_args a = {0};
    study_add(&a, "data", "--task", "arith", "--out", c->data, "--digits", "1-2", "--ops", "+",
              "--n_train", "20000", "--n_eval", "500", "--n_prompts", "2000", "--n_pref", "2000",
              NULL);
    study_addf(&a, "--seed=%llu", (unsigned long long)c->seed);
    if (study_run(c, "base/data", &a, NULL, err)) return -1;
    fprintf(stderr, "study: the starting policy: SFT of a tiny byte-level model (%d steps)\n",
            BASE_SFT_STEPS);
    study_add(&a, "sft", "--model", "tiny", "--output_dir", c->sft, "--batch_size", "64",
              "--learning_rate", "2e-3", "--warmup_ratio", "0.02", "--lr_scheduler_type", "cosine",
              "--save_steps", "0", "--quiet", "--overwrite_output_dir", NULL);
    study_addf(&a, "--data=%s/sft.jsonl", c->data);
    study_addf(&a, "--max_steps=%d", BASE_SFT_STEPS);
    study_addf(&a, "--seed=%llu", (unsigned long long)c->seed);
    return study_run(c, "base/sft", &a, NULL, err);
}

int study_gold_pairs(study_ctx *c, const char *model, int n_prompts, double bt_temp, uint64_t seed,
                     const char *out, rlhf_err *err) {
    study_args a = {0};
    study_add(&a, "pairs", "--model", model, "--task", "arith", "--label", "gold", "--out", out,
              "--num_samples", "4", "--max_new_tokens", "8", NULL);
    study_addf(&a, "--prompts=%s/prompts.jsonl", c->data);
    study_addf(&a, "--limit=%d", n_prompts);
    study_addf(&a, "--bt_temperature=%g", bt_temp);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    char log[256];
    const char *slash = strrchr(out, '/');
    snprintf(log, sizeof log, "pairs/%s", slash ? slash + 1 : out);
    return study_run(c, log, &a, NULL, err);
}

int study_keep_pairs(const char *src, const char *dst, int max, int *kept, rlhf_err *err) {
    size_t len = 0;
    char *text = read_file(src, &len, err);
    if (!text) return -1;
    char *out = xmalloc(len + 1);
    size_t n = 0;
    *kept = 0;
    for (char *p = text, *nl; p < text + len && (max <= 0 || *kept < max); p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl) nl = text + len;
        *nl = 0;
        cJSON *j = cJSON_Parse(p);
        const char *ch = study_str(j, "chosen"), *rj = study_str(j, "rejected");
        int keep = ch[0] && rj[0] && strcmp(ch, rj) != 0;
        cJSON_Delete(j);
        if (!keep) continue;
        size_t l = strlen(p);
        memcpy(out + n, p, l);
        out[n + l] = '\n';
        n += l + 1;
        (*kept)++;
    }
    int rc = atomic_write_file(dst, out, n, err);
    free(out);
    free(text);
    return rc;
}

int study_proxy_rm(study_ctx *c, const char *pairs, int n_labels, int ensemble_k, uint64_t seed,
                   const char *out_dir, double *acc, rlhf_err *err) {
    char labels[1300];
    snprintf(labels, sizeof labels, "%s.labels.jsonl", out_dir);
    int got = 0;
    if (study_keep_pairs(pairs, labels, n_labels, &got, err)) return -1;
    if (got < 20)
        return rlhf_fail(err, "study: %s has %d pairs; a proxy reward model needs 20", pairs, got);
    int steps = c->quick ? 150 : 400;
    study_args a = {0};
    study_add(&a, "rm", "--model", c->sft, "--data", labels, "--output_dir", out_dir,
              "--batch_size", "32", "--learning_rate", "1e-3", "--eval_split", "0.1",
              "--lr_scheduler_type", "cosine", "--save_steps", "0", "--quiet",
              "--overwrite_output_dir", NULL);
    study_addf(&a, "--max_steps=%d", steps);
    study_addf(&a, "--ensemble_size=%d", ensemble_k > 1 ? ensemble_k : 1);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    char log[256];
    const char *slash = strrchr(out_dir, '/');
    snprintf(log, sizeof log, "rm/%s", slash ? slash + 1 : out_dir);
    if (study_run(c, log, &a, NULL, err)) return -1;
    if (acc) {
        *acc = NAN;
        char path[1400];
        snprintf(path, sizeof path, "%s/summary.json", out_dir);
        char *text = read_file(path, NULL, NULL);
        cJSON *j = text ? cJSON_Parse(text) : NULL;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "eval_accuracy");
        if (cJSON_IsNumber(v)) *acc = v->valuedouble;
        cJSON_Delete(j);
        free(text);
    }
    return 0;
}

static double num_or_nan(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int study_eval(study_ctx *c, const char *model, const char *proxy_rm, uint64_t seed,
               study_point *pt, rlhf_err *err) {
    static int counter;
    study_args a = {0};
    study_add(&a, "eval", "--task", "arith", "--model", model, "--max_new_tokens", "8", NULL);
    study_addf(&a, "--data=%s/eval.jsonl", c->data);
    study_addf(&a, "--limit=%d", c->n_eval);
    study_addf(&a, "--samples_per_prompt=%d", c->eval_samples);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    if (strcmp(model, c->sft) != 0) study_add(&a, "--ref_model", c->sft, NULL);
    if (proxy_rm) study_add(&a, "--reward_model", proxy_rm, NULL);
    char log[64];
    snprintf(log, sizeof log, "eval/%04d", ++counter);
    cJSON *j = NULL;
    if (study_run(c, log, &a, &j, err)) return -1;
    pt->gold = num_or_nan(j, "mean_reward");
    pt->accuracy = num_or_nan(j, "accuracy");
    pt->sampled_accuracy = num_or_nan(j, "sampled_accuracy");
    pt->proxy = proxy_rm ? num_or_nan(j, "proxy_reward") : NAN;
    pt->kl = strcmp(model, c->sft) != 0 ? num_or_nan(j, "kl") : 0.0;
    cJSON_Delete(j);
    if (isnan(pt->gold) || isnan(pt->kl) || (proxy_rm && isnan(pt->proxy)))
        return rlhf_fail(err, "study: rlhf eval of %s gave no gold/kl/proxy_reward (logs/%s.out)",
                         model, log);
    return 0;
}

// ------------------------------------------------------------------- rows --
void study_row(study_ctx *c, const char *study, cJSON *row) {
    if (!cJSON_GetObjectItemCaseSensitive(row, "study"))
        cJSON_AddStringToObject(row, "study", study);
    if (!cJSON_GetObjectItemCaseSensitive(row, "t"))
        cJSON_AddNumberToObject(row, "t", round((time_now() - c->t0) * 10) / 10);
    if (c->level[0] && !cJSON_GetObjectItemCaseSensitive(row, "level"))
        cJSON_AddStringToObject(row, "level", c->level);
    char *s = cJSON_PrintUnformatted(row);
    if (c->results) {
        fprintf(c->results, "%s\n", s);
        fflush(c->results);
    }
    free(s);
    cJSON_Delete(row);
}

double study_num(const cJSON *row, const char *key) {
    return num_or_nan(row, key);
}

const char *study_str(const cJSON *row, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

const char *study_level(const cJSON *rows, const char *dflt) {
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) if (*study_str(row, "level")) return study_str(row, "level");
    return dflt;
}

const char *study_outcome_name(study_outcome o) {
    return o == STUDY_SUPPORTED       ? "supported"
           : o == STUDY_NOT_SUPPORTED ? "not supported"
                                      : "inconclusive";
}

const study_def *study_find(const char *name) {
    for (int i = 0; study_at(i); i++)
        if (!strcmp(study_at(i)->name, name)) return study_at(i);
    return NULL;
}
