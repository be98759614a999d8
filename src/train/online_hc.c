// train/online_hc: the online update method `hc` (the frame only: being built).
#include <stdio.h>

#include "train/online_update.h"

static void hc_defaults(online_config *c) { (void)c; }
static unsigned hc_needs_of(const online_config *c) { (void)c; return 0; }
static int hc_steps(const online_config *c) { (void)c; return 1; }
static void hc_describe(const online_config *c, char *buf, size_t cap) {
    (void)c;
    snprintf(buf, cap, "(not built yet)");
}
static int hc_setup(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "hc: not built yet");
}
static int hc_update(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "hc: not built yet");
}
static void hc_metrics(online_run *r, cJSON *j) { (void)r, (void)j; }

const online_update online_update_hc = {
    .name = "hc",
    .about = "(not built yet)",
    .pref_kind = -1,
    .defaults = hc_defaults,
    .needs_of = hc_needs_of,
    .steps_per_iteration = hc_steps,
    .describe = hc_describe,
    .setup = hc_setup,
    .update = hc_update,
    .metrics = hc_metrics,
};
