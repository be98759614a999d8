// train/online_brain: the online update method `brain` (the frame only: being built).
#include <stdio.h>

#include "train/online_update.h"

static void brain_defaults(online_config *c) { (void)c; }
static unsigned brain_needs_of(const online_config *c) { (void)c; return 0; }
static int brain_steps(const online_config *c) { (void)c; return 1; }
static void brain_describe(const online_config *c, char *buf, size_t cap) {
    (void)c;
    snprintf(buf, cap, "(not built yet)");
}
static int brain_setup(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "brain: not built yet");
}
static int brain_update(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "brain: not built yet");
}
static void brain_metrics(online_run *r, cJSON *j) { (void)r, (void)j; }

const online_update online_update_brain = {
    .name = "brain",
    .about = "(not built yet)",
    .pref_kind = -1,
    .defaults = brain_defaults,
    .needs_of = brain_needs_of,
    .steps_per_iteration = brain_steps,
    .describe = brain_describe,
    .setup = brain_setup,
    .update = brain_update,
    .metrics = brain_metrics,
};
