// data/task_table: the built-in tasks (data/task.h), one entry each, defined
// in the task's own file.
#include <stdio.h>
#include <string.h>

#include "data/task.h"

static const rlhf_task *const tasks[] = {&task_arith, &task_users, &task_market};

const rlhf_task *task_at(int i) {
    return i >= 0 && i < (int)(sizeof tasks / sizeof tasks[0]) ? tasks[i] : NULL;
}

const rlhf_task *task_find(const char *name) {
    for (int i = 0; name && task_at(i); i++)
        if (!strcmp(task_at(i)->name, name)) return task_at(i);
    return NULL;
}

int task_view(const rlhf_task *t, const char *name, int *view) {
    for (int i = 0; t->views && t->views[i]; i++)
        if (!strcmp(t->views[i], name)) return *view = i, 0;
    if (!strcmp(name, "exact") || !strcmp(name, "shaped")) return *view = name[0] == 's', 0;
    return -1;
}

const char *task_view_name(const rlhf_task *t, int v) {
    for (int i = 0; t->views && t->views[i]; i++)
        if (i == v) return t->views[i];
    return v == 0 ? "exact" : v == 1 ? "shaped" : "?";
}

void task_view_list(const rlhf_task *t, char *out, size_t n) {
    size_t len = (size_t)snprintf(out, n, "exact, shaped");
    for (int i = 0; t->views && t->views[i] && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, ", %s", t->views[i]);
}
