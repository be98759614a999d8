// train/online_nash: the online update method `nash-md` (the frame only: being built).
#include <stdio.h>

#include "train/online_update.h"

static void nash_defaults(online_config *c) { (void)c; }
static unsigned nash_needs_of(const online_config *c) { (void)c; return 0; }
static int nash_steps(const online_config *c) { (void)c; return 1; }
static void nash_describe(const online_config *c, char *buf, size_t cap) {
    (void)c;
    snprintf(buf, cap, "(not built yet)");
}
static int nash_setup(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "nash-md: not built yet");
}
static int nash_update(online_run *r, rlhf_err *err) {
    (void)r;
    return rlhf_fail(err, "nash-md: not built yet");
}
static void nash_metrics(online_run *r, cJSON *j) { (void)r, (void)j; }

const online_update online_update_nash = {
    .name = "nash-md",
    .about = "(not built yet)",
    .pref_kind = -1,
    .defaults = nash_defaults,
    .needs_of = nash_needs_of,
    .steps_per_iteration = nash_steps,
    .describe = nash_describe,
    .setup = nash_setup,
    .update = nash_update,
    .metrics = nash_metrics,
};
