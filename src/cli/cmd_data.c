// cli/cmd_data: `rlhf data --task NAME --out DIR [task options]` writes a
// built-in task's TRL-format datasets (sft, prefs, prompts, kto, eval).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "data/task.h"

int cmd_data(int argc, char **argv) {
    const char *task = "arith", *out = NULL;
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
            printf("usage: rlhf data --task %s --out DIR [--KEY VALUE ...]\n\n%s\n\n"
                   "Writes %s into DIR.\nOptions and defaults:\n",
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
    if (t->write_dir(out, opts, &err)) {
        fprintf(stderr, "rlhf data: %s\n", err.msg);
        free(opts);
        return 1;
    }
    printf("wrote task %s to %s\n", t->name, out);
    free(opts);
    return 0;
}
