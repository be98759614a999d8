// train/online_cgpo: the online update method `cgpo` (the frame only: being built).
#include <stdio.h>

#include "train/online_update.h"

static void cgpo_defaults(online_config *c) { (void)c; }
static unsigned cgpo_needs_of(const online_config *c) { (void)c; return 0; }
static int cgpo_steps(const online_config *c) { (void)c; return 1; }
static void cgpo_describe(const online_config *c, char *buf, size_t cap) {
    (void)c;
    snprintf(buf, cap, "(not built yet)");
}
static int cgpo_setup(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "cgpo: not built yet");
}
static int cgpo_update(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "cgpo: not built yet");
}
static void cgpo_metrics(online_run *r, cJSON *j) { (void)r, (void)j; }

const online_update online_update_cgpo = {
    .name = "cgpo",
    .about = "(not built yet)",
    .pref_kind = -1,
    .defaults = cgpo_defaults,
    .needs_of = cgpo_needs_of,
    .steps_per_iteration = cgpo_steps,
    .describe = cgpo_describe,
    .setup = cgpo_setup,
    .update = cgpo_update,
    .metrics = cgpo_metrics,
};
