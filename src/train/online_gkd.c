// train/online_gkd: the online update method `gkd` (the frame only: being built).
#include <stdio.h>

#include "train/online_update.h"

static void gkd_defaults(online_config *c) { (void)c; }
static unsigned gkd_needs_of(const online_config *c) { (void)c; return 0; }
static int gkd_steps(const online_config *c) { (void)c; return 1; }
static void gkd_describe(const online_config *c, char *buf, size_t cap) {
    (void)c;
    snprintf(buf, cap, "(not built yet)");
}
static int gkd_setup(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "gkd: not built yet");
}
static int gkd_update(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "gkd: not built yet");
}
static void gkd_metrics(online_run *r, cJSON *j) { (void)r, (void)j; }

const online_update online_update_gkd = {
    .name = "gkd",
    .about = "(not built yet)",
    .pref_kind = -1,
    .defaults = gkd_defaults,
    .needs_of = gkd_needs_of,
    .steps_per_iteration = gkd_steps,
    .describe = gkd_describe,
    .setup = gkd_setup,
    .update = gkd_update,
    .metrics = gkd_metrics,
};
