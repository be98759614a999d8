// ctrl/ctrl_run_state: what the control training loops share besides the run
// folder (ctrl_train.c, and HNPG's and LaMo's own loops): the random streams
// as state.json writes and reads them, and the SIGINT / SIGTERM stop flag that
// makes a loop save a checkpoint and return (ctrl_train_internal.h).
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctrl/ctrl_train_internal.h"

void ctrl_rng_to_json(cJSON *o, const char *key, const rlhf_rng *r) {
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int i = 0; i < 4; i++) {
        char h[24];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)r->s[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(h));
    }
}

int ctrl_rng_from_json(const cJSON *o, const char *key, rlhf_rng *r, const char *path,
                       rlhf_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4)
        return rlhf_fail(err, "%s: \"%s\" must be an array of 4 hex strings", path, key);
    for (int i = 0; i < 4; i++) {
        const cJSON *h = cJSON_GetArrayItem(a, i);
        char *end;
        if (!cJSON_IsString(h))
            return rlhf_fail(err, "%s: \"%s\"[%d] is not a string", path, key, i);
        r->s[i] = strtoull(h->valuestring, &end, 16);
        if (*end || !*h->valuestring)
            return rlhf_fail(err, "%s: \"%s\"[%d] is not hex", path, key, i);
    }
    return 0;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
    signal(sig, SIG_DFL); // a second one stops at once
}

void ctrl_stop_signals_catch(ctrl_stop_signals *s) {
    stop_signal = 0;
    s->old_int = signal(SIGINT, on_signal);
    s->old_term = signal(SIGTERM, on_signal);
}

void ctrl_stop_signals_restore(const ctrl_stop_signals *s) {
    signal(SIGINT, s->old_int == SIG_ERR ? SIG_DFL : s->old_int);
    signal(SIGTERM, s->old_term == SIG_ERR ? SIG_DFL : s->old_term);
}

int ctrl_stop_signal(void) {
    int sig = ctrl_dist_signal(stop_signal); // MPI: a signal to any rank stops all at one step
    if (sig && !stop_signal) stop_signal = sig;
    return stop_signal;
}

int ctrl_nonfinite_fail(rlhf_err *err, const char *where) {
    return rlhf_fail(err,
                     "%s: a gradient is not finite (NaN or inf), so the weights were not "
                     "updated; stopping. Checkpoints already written are kept (--resume goes "
                     "on from the last). Try lower learning rates, or look for huge values in "
                     "the dataset's observations and rewards",
                     where);
}
