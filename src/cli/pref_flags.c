// cli/pref_flags: preference-loss flags from algo/pref's declarations.
#include "cli/pref_flags.h"

#include <stdio.h>
#include <string.h>

int pref_flags_add(flag_def *defs, int n, pref_options *o, unsigned used) {
    const pref_option_def *od;
    for (int i = 0; (od = pref_option_at(i)); i++) {
        if (!(od->option & used)) continue;
        flag_def f = {od->name,
                      od->is_bool ? FLAG_BOOL : FLAG_DOUBLE,
                      (char *)o + od->offset,
                      od->help,
                      od->lo,
                      od->hi};
        int at = n;
        for (int k = 0; k < n; k++)
            if (!strcmp(defs[k].name, od->name)) at = k;
        defs[at] = f;
        if (at == n) n++;
    }
    return n;
}

void pref_flags_list_losses(char *buf, size_t cap, int kind, unsigned inputs) {
    size_t k = strlen(buf);
    const pref_loss_def *d;
    for (int i = 0; (d = pref_loss_at(i)) && k < cap; i++) {
        if ((kind >= 0 && (int)d->kind != kind) || (d->needs & ~inputs)) continue;
        int w = snprintf(buf + k, cap - k, "\n  %-18s %s%s", d->name, d->paper,
                         d->kind == PREF_KIND_UNPAIRED ? " [unpaired]" : "");
        if (w < 0) break;
        k += (size_t)w;
    }
}
