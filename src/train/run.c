// train/run: run directories and checkpoint naming. (Loading a model or a run
// directory's newest checkpoint, and a model's tokenizer: model/load.c.)
#include "train/run.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/dist.h"
#include "io/file.h"

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

int run_report_to(const char *list, int *tensorboard, rlhf_err *err) {
    int tb = 0, none = 0, items = 0;
    for (const char *p = list ? list : ""; *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, " ,");
        if (!n) break;
        items++;
        if (n == 4 && !strncmp(p, "none", 4)) none = 1;
        else if ((n == 11 && !strncmp(p, "tensorboard", 11)) || (n == 3 && !strncmp(p, "all", 3)))
            tb = 1;
        else
            return rlhf_fail(err, "--report_to: \"%.*s\" is not supported (known: none, "
                                  "tensorboard, all)", (int)n, p);
        p += n;
    }
    if (none && items > 1)
        return rlhf_fail(
            err, "--report_to: none cannot be combined with another value (got \"%s\")", list);
    if (tensorboard) *tensorboard = tb;
    return 0;
}

int run_enable_tensorboard(run_dir *r, rlhf_err *err) {
    char path[2200];
    snprintf(path, sizeof path, "%s/tensorboard", r->dir);
    if (tfevents_open(&r->tb, path, err)) return rlhf_fail_ctx(err, "--report_to tensorboard");
    fprintf(stderr, "TensorBoard events: %s (view: tensorboard --logdir %s)\n",
            tfevents_path(r->tb), path);
    return 0;
}

// whether the run's settings (the flags as JSON) ask for TensorBoard
static int settings_want_tensorboard(const char *config_json, int *tb, rlhf_err *err) {
    *tb = 0;
    if (!config_json) return 0;
    cJSON *j = cJSON_Parse(config_json);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "report_to");
    int rc = cJSON_IsString(v) ? run_report_to(v->valuestring, tb, err) : 0;
    cJSON_Delete(j);
    return rc;
}

int run_open(run_dir *r, const char *dir, const char *config_json, int resume_step, rlhf_err *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char path[2200];
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    if (make_dirs(path, err) || run_lock(dir, err)) return -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (config_json && atomic_write_file(path, config_json, strlen(config_json), err)) return -1;
    if (resume_step >= 0) {
        snprintf(path, sizeof path, "%s/samples.jsonl", dir);
        if (truncate_log(path, resume_step, err)) return -1;
        snprintf(path, sizeof path, "%s/pairs.jsonl", dir); // online DPO's and XPO's
        if (truncate_log(path, resume_step, err)) return -1;
        snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
        if (truncate_log(path, resume_step, err)) return -1;
    }
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    r->metrics = fopen(path, resume_step >= 0 ? "a" : "w");
    if (!r->metrics) return rlhf_fail(err, "%s: cannot open for writing", path);
    // On --resume the events already written stay in their file and the resumed
    // run starts a new one, as a restarted TensorFlow job does: the steps after
    // the checkpoint that the resumed run logs again may show twice there.
    int tb;
    if (settings_want_tensorboard(config_json, &tb, err)) return -1;
    return tb ? run_enable_tensorboard(r, err) : 0;
}

static int is_within(const char *inner, const char *outer) {
    size_t k = strlen(outer);
    if (strncmp(inner, outer, k)) return 0;
    return inner[k] == 0 || inner[k] == '/' || (k == 1 && outer[0] == '/');
}

const char *run_found(const char *dir) {
    static const char *run_files[] = {"config.json", "metrics.jsonl", "checkpoints"};
    for (int i = 0; i < 3; i++) {
        char p[PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/%s", dir, run_files[i]);
        if (path_exists(p)) return run_files[i];
    }
    return NULL;
}

// ------------------------------------------------------------------ lock --
// The folders this process holds (flock on DIR/.rlhf.lock, released by
// run_close or at exit), by their real paths
#define MAX_LOCKS 16
static struct {
    char dir[PATH_MAX];
    int fd;
} g_locks[MAX_LOCKS];

int run_lock(const char *dir, rlhf_err *err) {
    char real[PATH_MAX];
    if (!realpath(dir, real)) return 0; // not there yet: run_open locks it when it makes it
    for (int i = 0; i < MAX_LOCKS; i++)
        if (g_locks[i].dir[0] && !strcmp(g_locks[i].dir, real)) return 0;
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/.rlhf.lock", real);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) // a read-only folder: the writes that follow will name the problem
        return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
        pid[k > 0 ? k : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        if (e != EWOULDBLOCK) return 0; // a file system without locks: no guard
        return rlhf_fail(err,
                         "--output_dir %s is in use by another rlhf process (pid %s, %s): two "
                         "runs in one folder would overwrite each other's checkpoints and logs. "
                         "Wait for it to end, or choose another folder",
                         dir, pid[0] ? pid : "?", p);
    }
    char pid[32];
    int k = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)k, 0) != k) {
        // the lock holds all the same; only the pid in the message is missing
    }
    for (int i = 0; i < MAX_LOCKS; i++)
        if (!g_locks[i].dir[0]) {
            snprintf(g_locks[i].dir, sizeof g_locks[i].dir, "%s", real);
            g_locks[i].fd = fd;
            return 0;
        }
    return 0; // more folders than slots: held until the process ends
}

static void run_unlock(const char *dir) {
    char real[PATH_MAX];
    if (!realpath(dir, real)) return;
    for (int i = 0; i < MAX_LOCKS; i++)
        if (g_locks[i].dir[0] && !strcmp(g_locks[i].dir, real)) {
            close(g_locks[i].fd); // releases the flock
            g_locks[i].dir[0] = 0;
        }
}

int run_prepare(const train_config *c, const char *const *extra, char *resume_from, size_t n,
                rlhf_err *err) {
    resume_from[0] = 0;
    if (run_report_to(c->report_to, NULL, err)) return -1;
    const char *dir = c->output_dir;
    if (!dir || !*dir)
        return rlhf_fail(err, "--output_dir is empty: name the run folder (e.g. --output_dir "
                              "runs/sft)");
    char od[PATH_MAX], md[PATH_MAX];
    if (c->model && *c->model && realpath(dir, od) && realpath(c->model, md) && is_within(md, od))
        return rlhf_fail(err, "--output_dir %s holds the --model %s: training there would "
                              "overwrite the model it starts from; choose another --output_dir",
                         dir, c->model);
    // before anything in it is read, removed or replaced
    if (run_lock(dir, err)) return -1;
    char p[2400];
    remove_stale_tmp(dir, 1);
    snprintf(p, sizeof p, "%s/checkpoints", dir);
    remove_stale_tmp(p, 1);
    const char *found = run_found(dir);
    if (found && !c->resume) {
        if (!c->overwrite_output_dir)
            return rlhf_fail(err, "--output_dir %s already holds a run (%s): pass --resume to "
                                  "continue it, --overwrite_output_dir to replace it, or choose "
                                  "another folder",
                             dir, found);
        static const char *clear[] = {"checkpoints",           "metrics.jsonl",
                                      "samples.jsonl",         "pairs.jsonl",
                                      "summary.json",          "config.json",
                                      "ref_logps.safetensors", "ref_logps_eval.safetensors",
                                      "tensorboard",           NULL};
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
    // The final checkpoint holds the whole training state as a step checkpoint
    // does (optimizer, random stream, the method's extras): a finished run goes
    // on from it (with a larger --max_steps), unless a step checkpoint is newer
    // (such a continuation stopped part way). It is never trained over afresh.
    snprintf(p, sizeof p, "%s/checkpoints/final", dir);
    if (path_exists(p)) {
        rlhf_err e2;
        int fs = 0, ss = 0;
        if (checkpoint_check(p, 1, extra, &e2) || checkpoint_optim_step(p, &fs, &e2)) {
            if (!resume_from[0])
                return rlhf_fail(err,
                                 "--resume: %s holds a finished run whose final checkpoint "
                                 "%s cannot be resumed (%s), and no step checkpoint; "
                                 "nothing was changed. To train it again pass "
                                 "--overwrite_output_dir instead of --resume, or choose "
                                 "another --output_dir",
                                 dir, p, e2.msg);
            fprintf(stderr, "--resume: skipping the final checkpoint %s (%s)\n", p, e2.msg);
        } else if (!resume_from[0] || checkpoint_optim_step(resume_from, &ss, &e2) || fs >= ss) {
            snprintf(resume_from, n, "%s", p);
        }
    }
    if (!resume_from[0])
        fprintf(stderr, "--resume: no complete checkpoint in %s/checkpoints; starting from "
                        "--model %s\n",
                dir, c->model ? c->model : "");
    return 0;
}

int run_resume_finished(const char *dir, rlhf_err *err) {
    char p[2400];
    snprintf(p, sizeof p, "%s/checkpoints/final", dir);
    if (!path_exists(p)) return 0;
    return rlhf_fail(err,
                     "--resume: %s holds a finished run (%s) and no step checkpoint to continue "
                     "from; nothing was changed. To train it again pass --overwrite_output_dir "
                     "instead of --resume, or choose another --output_dir",
                     dir, p);
}

// the numeric fields of object o as scalars (tags prefix/key), but a top-level "step"
static int add_scalars(tfevents *w, const cJSON *o, const char *prefix, int64_t step, double wall,
                       int depth, rlhf_err *err) {
    for (const cJSON *it = o->child; it; it = it->next) {
        if (!it->string || (!*prefix && !strcmp(it->string, "step"))) continue;
        char tag[512];
        int n = snprintf(tag, sizeof tag, "%s%s%s", prefix, *prefix ? "/" : "", it->string);
        if (n < 0 || (size_t)n >= sizeof tag) continue; // no metric has so long a name
        if (cJSON_IsNumber(it)) {
            if (tfevents_scalar(w, tag, step, wall, (float)it->valuedouble, err)) return -1;
        } else if (cJSON_IsObject(it) && depth < 8) {
            if (add_scalars(w, it, tag, step, wall, depth + 1, err)) return -1;
        }
    }
    return 0;
}

// a metrics line as TensorBoard scalars at its "step" (none without one)
static void log_scalars(run_dir *r, const char *json_line) {
    cJSON *j = cJSON_Parse(json_line);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
    rlhf_err err;
    int rc = 0;
    if (cJSON_IsNumber(s) && fabs(s->valuedouble) < 9e18)
        rc = add_scalars(r->tb, j, "", (int64_t)s->valuedouble, tfevents_wall_time(), 0, &err);
    cJSON_Delete(j);
    if (rc == 0) rc = tfevents_flush(r->tb, &err);
    if (rc) {
        fprintf(stderr, "warning: %s; no more TensorBoard events (metrics.jsonl goes on)\n",
                err.msg);
        tfevents_close(r->tb, &err);
        r->tb = NULL;
    }
}

void run_note_write(run_dir *r, FILE *f, const char *name) {
    if (!f || r->write_errno) return;
    errno = 0;
    if (fflush(f) == 0 && !ferror(f)) return;
    r->write_errno = errno ? errno : EIO;
    snprintf(r->write_file, sizeof r->write_file, "%s", name);
}

FILE *run_open_log(run_dir *r, const char *name, int append) {
    char path[2400];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    errno = 0;
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f && !r->write_errno) {
        r->write_errno = errno ? errno : EIO;
        snprintf(r->write_file, sizeof r->write_file, "%s", name);
    }
    return f;
}

int run_check(const run_dir *r, rlhf_err *err) {
    if (!r->write_errno) return 0;
    return rlhf_fail(err,
                     "%s/%s: write failed (%s); stopping. Checkpoints already written are "
                     "kept (--resume goes on from the last, and cuts the log back to it)",
                     r->dir, r->write_file, strerror(r->write_errno));
}

void run_log(run_dir *r, const char *json_line) {
    if (!r->metrics || r->write_errno) return;
    fputs(json_line, r->metrics);
    fputc('\n', r->metrics);
    run_note_write(r, r->metrics, "metrics.jsonl");
    if (r->tb && !r->write_errno) log_scalars(r, json_line);
}

int run_summary(run_dir *r, const char *json, rlhf_err *err) {
    char path[2200];
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    return atomic_write_file(path, json, strlen(json), err);
}

void run_close(run_dir *r) {
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
    if (r->dir[0]) run_unlock(r->dir);
    rlhf_err err;
    if (tfevents_close(r->tb, &err)) fprintf(stderr, "warning: %s\n", err.msg);
    r->tb = NULL;
}

void run_checkpoint_path(const run_dir *r, int step, char *out, size_t n) {
    if (step < 0) snprintf(out, n, "%s/checkpoints/final", r->dir);
    else snprintf(out, n, "%s/checkpoints/step-%08d", r->dir, step);
}

int run_prepare_ranks(const train_config *c, const char *const *extra, char *resume_from,
                      size_t n, rlhf_err *err) {
    if (dist_size() == 1) return run_prepare(c, extra, resume_from, n, err);
    struct {
        int rc;
        rlhf_err err;
    } r;
    memset(&r, 0, sizeof r);
    if (dist_rank() == 0) r.rc = run_prepare(c, extra, resume_from, n, &r.err);
    dist_bcast(&r, sizeof r, 0);
    dist_bcast(resume_from, n, 0);
    if (r.rc && err) *err = r.err;
    return r.rc;
}
