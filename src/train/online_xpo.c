// train/online_xpo: the online update method `xpo` (the frame only: being built).
#include <stdio.h>

#include "train/online_update.h"

static void xpo_defaults(online_config *c) { (void)c; }
static unsigned xpo_needs_of(const online_config *c) { (void)c; return 0; }
static int xpo_steps(const online_config *c) { (void)c; return 1; }
static void xpo_describe(const online_config *c, char *buf, size_t cap) {
    (void)c;
    snprintf(buf, cap, "(not built yet)");
}
static int xpo_setup(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "xpo: not built yet");
}
static int xpo_update(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "xpo: not built yet");
}
static void xpo_metrics(online_run *r, cJSON *j) { (void)r, (void)j; }

const online_update online_update_xpo = {
    .name = "xpo",
    .about = "(not built yet)",
    .pref_kind = -1,
    .defaults = xpo_defaults,
    .needs_of = xpo_needs_of,
    .steps_per_iteration = xpo_steps,
    .describe = xpo_describe,
    .setup = xpo_setup,
    .update = xpo_update,
    .metrics = xpo_metrics,
};
