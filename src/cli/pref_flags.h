// cli/pref_flags: the preference-loss flags of `rlhf dpo`, `rlhf kto` and
// `rlhf online-dpo`, made from algo/pref's declarations (the options table and
// the loss registry), so that a new option or loss needs no flag written by hand.
#ifndef RLHF_CLI_PREF_FLAGS_H
#define RLHF_CLI_PREF_FLAGS_H

#include <stddef.h>

#include "algo/pref.h"
#include "cli/flags.h"

// One flag per option of pref_option_at whose PREF_OPT_* bit is in `used`, bound
// to o's field: appended to defs[0..n), or put in place of a flag of the same
// name already there. Returns the new count (room: n + every option).
int pref_flags_add(flag_def *defs, int n, pref_options *o, unsigned used);
// Appends to buf (holding a string) one line per loss of `kind` (< 0: both) that
// needs nothing outside `inputs`: "  name  source [unpaired]".
void pref_flags_list_losses(char *buf, size_t cap, int kind, unsigned inputs);

#endif
