// cli/cmd_data: `rlhf data --task NAME --out DIR [task options]` writes a
// built-in task's TRL-format datasets (sft, prefs, prompts, kto, eval).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "data/task.h"
#include "io/file.h"

// --out's folder may be written when none of the task's files is there, or when
// its task.json is this task's (the folder is an earlier `rlhf data` of it, and
// everything in it can be made again); otherwise a file of the user's would be
// replaced, and it is refused unless --overwrite_output_dir
static int check_out(const rlhf_task *t, const char *out, int overwrite, rlhf_err *err) {
    char p[4200];
    const char *found = NULL;
    for (int i = 0; t->outputs && t->outputs[i] && !found; i++) {
        snprintf(p, sizeof p, "%s/%s", out, t->outputs[i]);
        if (path_exists(p)) found = t->outputs[i];
    }
    if (!found || overwrite) return 0;
    snprintf(p, sizeof p, "%s/task.json", out);
    char why[sizeof err->msg + 32] = "it holds no task.json";
    if (path_exists(p)) {
        void *o = calloc(1, t->opts_size);
        rlhf_err e2;
        int rc = t->load_opts(out, o, &e2);
        free(o);
        if (rc == 0) return 0; // this task's own folder: made again
        snprintf(why, sizeof why, "%s", e2.msg);
    }
    return rlhf_fail(err,
                     "--out %s: %s/%s exists and the folder is not one `rlhf data --task %s` "
                     "wrote (%s); nothing was written. Choose another --out, or pass "
                     "--overwrite_output_dir to replace its files",
                     out, out, found, t->name, why);
}

int cmd_data(int argc, char **argv) {
    const char *task = "arith", *out = NULL;
    int overwrite = 0;
    const rlhf_task *t = NULL;
    // first pass: --task and --help
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--task") && i + 1 < argc) task = argv[i + 1];
        else if (!strncmp(argv[i], "--task=", 7)) task = argv[i] + 7;
    }
    t = task_find(task);
    if (!t) {
        fprintf(stderr, "rlhf data: unknown task \"%s\" (known:", task);
        for (int i = 0; task_at(i); i++) fprintf(stderr, " %s", task_at(i)->name);
        fprintf(stderr, ")\n");
        return 2;
    }
    void *opts = calloc(1, t->opts_size);
    t->default_opts(opts);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: rlhf data --task %s --out DIR [--overwrite_output_dir] "
                   "[--KEY VALUE ...]\n\n%s\n\n"
                   "Writes %s into DIR.\nA DIR holding one of these files is refused unless it "
                   "is this task's earlier output\n(its task.json) or --overwrite_output_dir is "
                   "given.\nOptions and defaults:\n",
                   t->name, t->summary, t->files ? t->files : "its files");
            t->print_opts(opts, stdout);
            free(opts);
            return 0;
        }
    }
    rlhf_err err;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "rlhf data: unexpected argument \"%s\"\n", a);
            free(opts);
            return 2;
        }
        if (!strcmp(a, "--overwrite_output_dir") &&
            (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
            overwrite = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        char key[64];
        const char *val;
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof key) len = sizeof key - 1;
        memcpy(key, a + 2, len);
        key[len] = 0;
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else {
            fprintf(stderr, "rlhf data: flag --%s needs a value\n", key);
            free(opts);
            return 2;
        }
        if (!strcmp(key, "task")) continue;
        if (!strcmp(key, "overwrite_output_dir")) {
            if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes"))
                overwrite = 1;
            else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no"))
                overwrite = 0;
            else {
                fprintf(stderr,
                        "rlhf data: --overwrite_output_dir must be true or false (got "
                        "\"%s\")\n",
                        val);
                free(opts);
                return 2;
            }
            continue;
        }
        if (!strcmp(key, "out") || !strcmp(key, "output_dir")) {
            out = val;
            continue;
        }
        if (t->set_opt(opts, key, val, &err)) {
            fprintf(stderr, "rlhf data: --%s: %s\n", key, err.msg);
            free(opts);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "rlhf data: --out DIR is required\n");
        free(opts);
        return 2;
    }
    if (check_out(t, out, overwrite, &err) || t->write_dir(out, opts, &err)) {
        fprintf(stderr, "rlhf data: %s\n", err.msg);
        free(opts);
        return 1;
    }
    printf("wrote task %s to %s\n", t->name, out);
    free(opts);
    return 0;
}
