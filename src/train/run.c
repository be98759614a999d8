// train/run: run directories and checkpoint naming. (Loading a model or a run
// directory's newest checkpoint, and a model's tokenizer: model/load.c.)
#include "train/run.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/file.h"

static int path_exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

// Keeps the lines of a JSONL log whose "step" is <= step (or that have none);
// drops the later ones and torn lines. Rewritten atomically, only if needed.
static int truncate_log(const char *path, int step, rlhf_err *err) {
    size_t len;
    rlhf_err e2;
    char *text = read_file(path, &len, &e2);
    if (!text) return 0;  // no log yet
    char *out = xmalloc(len + 1);
    size_t k = 0;
    int dropped = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        int keep = 0;
        if (nl) {  // a line without its newline was cut by a crash
            cJSON *j = cJSON_ParseWithLength(line, n);
            cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
            keep = j && (!cJSON_IsNumber(s) || s->valuedouble <= step);
            cJSON_Delete(j);
        } else if (n == 0) {
            break;
        }
        if (keep) {
            memcpy(out + k, line, n + 1);
            k += n + 1;
        } else if (n > 0) {
            dropped++;
        }
        line += nl ? n + 1 : n;
    }
    int rc = 0;
    if (dropped) {
        rc = atomic_write_file(path, out, k, err);
        fprintf(stderr, "%s: dropped %d line%s past step %d (the resumed run writes them again)\n",
                path, dropped, dropped == 1 ? "" : "s", step);
    }
    free(out);
    free(text);
    return rc;
}

int run_open(run_dir *r, const char *dir, const char *config_json, int resume_step, rlhf_err *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char path[2200];
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    if (make_dirs(path, err)) return -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (config_json && atomic_write_file(path, config_json, strlen(config_json), err)) return -1;
    if (resume_step >= 0) {
        snprintf(path, sizeof path, "%s/samples.jsonl", dir);
        if (truncate_log(path, resume_step, err)) return -1;
        snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
        if (truncate_log(path, resume_step, err)) return -1;
    }
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    r->metrics = fopen(path, resume_step >= 0 ? "a" : "w");
    if (!r->metrics) return rlhf_fail(err, "%s: cannot open for writing", path);
    return 0;
}

static int is_within(const char *inner, const char *outer) {
    size_t k = strlen(outer);
    if (strncmp(inner, outer, k)) return 0;
    return inner[k] == 0 || inner[k] == '/' || (k == 1 && outer[0] == '/');
}

int run_prepare(const train_config *c, const char *const *extra, char *resume_from, size_t n,
                rlhf_err *err) {
    resume_from[0] = 0;
    const char *dir = c->output_dir;
    if (!dir || !*dir)
        return rlhf_fail(err, "--output_dir is empty: name the run folder (e.g. --output_dir "
                              "runs/sft)");
    char od[PATH_MAX], md[PATH_MAX];
    if (c->model && *c->model && realpath(dir, od) && realpath(c->model, md) && is_within(md, od))
        return rlhf_fail(err, "--output_dir %s holds the --model %s: training there would "
                              "overwrite the model it starts from; choose another --output_dir",
                         dir, c->model);
    char p[2400];
    remove_stale_tmp(dir, 1);
    snprintf(p, sizeof p, "%s/checkpoints", dir);
    remove_stale_tmp(p, 1);
    static const char *run_files[] = {"config.json", "metrics.jsonl", "checkpoints", NULL};
    const char *found = NULL;
    for (int i = 0; run_files[i] && !found; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, run_files[i]);
        if (path_exists(p)) found = run_files[i];
    }
    if (found && !c->resume) {
        if (!c->overwrite_output_dir)
            return rlhf_fail(err, "--output_dir %s already holds a run (%s): pass --resume to "
                                  "continue it, --overwrite_output_dir to replace it, or choose "
                                  "another folder",
                             dir, found);
        static const char *clear[] = {"checkpoints", "metrics.jsonl", "samples.jsonl",
                                      "summary.json", "config.json", "ref_logps.safetensors",
                                      "ref_logps_eval.safetensors", NULL};
        for (int i = 0; clear[i]; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, clear[i]);
            if (remove_tree(p) != 0)
                return rlhf_fail(err, "--overwrite_output_dir: cannot remove %s: %s", p,
                                 strerror(errno));
        }
        fprintf(stderr, "--overwrite_output_dir: removed the earlier run in %s\n", dir);
    }
    if (!c->resume) return 0;
    int count = 0, *steps = checkpoint_steps(dir, &count);
    for (int i = 0; i < count && !resume_from[0]; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/step-%08d", dir, steps[i]);
        rlhf_err e2;
        if (checkpoint_check(p, 1, extra, &e2) == 0) snprintf(resume_from, n, "%s", p);
        else fprintf(stderr, "--resume: skipping the incomplete checkpoint %s (%s)\n", p, e2.msg);
    }
    free(steps);
    if (!resume_from[0])
        fprintf(stderr, "--resume: no complete checkpoint in %s/checkpoints; starting from "
                        "--model %s\n",
                dir, c->model ? c->model : "");
    return 0;
}

void run_log(run_dir *r, const char *json_line) {
    if (!r->metrics) return;
    fputs(json_line, r->metrics);
    fputc('\n', r->metrics);
    fflush(r->metrics);
}

int run_summary(run_dir *r, const char *json, rlhf_err *err) {
    char path[2200];
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    return atomic_write_file(path, json, strlen(json), err);
}

void run_close(run_dir *r) {
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
}

void run_checkpoint_path(const run_dir *r, int step, char *out, size_t n) {
    if (step < 0) snprintf(out, n, "%s/checkpoints/final", r->dir);
    else snprintf(out, n, "%s/checkpoints/step-%08d", r->dir, step);
}
