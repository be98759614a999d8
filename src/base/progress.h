// base/progress: a progress bar on stderr for long work. On a terminal it
// redraws one line (step/total, the caller's figures, tokens/s, ETA); when
// stderr is not a terminal it prints a plain line every `every` steps instead.
#ifndef RLHF_PROGRESS_H
#define RLHF_PROGRESS_H

typedef struct {
    const char *label;
    int total, every, tty;
    double t0, last_draw;
    double tokens;
} progress;

void progress_start(progress *p, const char *label, int total, int every);
// extra: short text such as "loss 1.234 lr 3.0e-04"; tokens: processed this step
void progress_update(progress *p, int step, const char *extra, double tokens);
void progress_end(progress *p);

#endif
