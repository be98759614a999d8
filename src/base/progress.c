// base/progress: terminal progress bar, plain lines when not a terminal.
#include "base/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

void progress_start(progress *p, const char *label, int total, int every) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->every = every > 0 ? every : 1;
    p->tty = isatty(2);
    p->t0 = time_now();
}

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

void progress_update(progress *p, int step, const char *extra, double tokens) {
    p->tokens += tokens;
    double now = time_now(), el = now - p->t0;
    int last = step >= p->total;
    if (p->tty ? (now - p->last_draw < 0.1 && !last) : (step % p->every != 0 && !last && step != 1))
        return;
    p->last_draw = now;
    double tps = el > 0 ? p->tokens / el : 0;
    char eta[32], elapsed[32];
    fmt_time(eta, sizeof eta, step > 0 ? el / step * (p->total - step) : -1);
    fmt_time(elapsed, sizeof elapsed, el);
    if (p->tty) {
        int width = 24, fill = p->total > 0 ? (int)((double)width * step / p->total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%s [%s] %d/%d %s | %.0f tok/s | %s, ETA %s\033[K", p->label, bar, step,
                p->total, extra ? extra : "", tps, elapsed, eta);
    } else {
        fprintf(stderr, "%s step %d/%d %s | %.0f tok/s | %s elapsed, ETA %s\n", p->label, step,
                p->total, extra ? extra : "", tps, elapsed, eta);
    }
    fflush(stderr);
}

void progress_end(progress *p) {
    if (p->tty) fprintf(stderr, "\n");
}
