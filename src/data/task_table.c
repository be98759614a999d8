// data/task_table: the built-in tasks (data/task.h), one entry each, defined
// in the task's own file.
#include <string.h>

#include "data/task.h"

static const rlhf_task *const tasks[] = {&task_arith, &task_users};

const rlhf_task *task_at(int i) {
    return i >= 0 && i < (int)(sizeof tasks / sizeof tasks[0]) ? tasks[i] : NULL;
}

const rlhf_task *task_find(const char *name) {
    for (int i = 0; name && task_at(i); i++)
        if (!strcmp(task_at(i)->name, name)) return task_at(i);
    return NULL;
}
