// report/report: HTML pages with plots as inline SVG, written in C with no
// script and no network (a page opens offline, in any browser, and renders
// the same in headless Chromium). Used by `rlhf report RUN_DIR...` (one page
// for one run or several overlaid) and by `rlhf study` (each study's
// report.html).
//
// Plots: line charts of one or more series over a shared x axis, each series
// a polyline (with optional markers and an optional shaded band ylo..yhi for
// an uncertainty), "nice" ticks on both axes (1-2-5 steps), optional log x,
// a legend, axis labels and a title. Series with no finite point are left out;
// non-finite points break a line in two. Colours come from a fixed
// colour-blind-safe palette in series order.
#ifndef RLHF_REPORT_REPORT_H
#define RLHF_REPORT_REPORT_H

#include <stddef.h>

#include "base/base.h"

typedef struct {
    const char *label;          // legend text (escaped when written)
    int n;                      // points
    const double *x, *y;        // n each
    const double *ylo, *yhi;    // optional band (NULL: none)
    int markers;                // 1: a dot at each point; 2: dots only (no line)
    int dashed;                 // 1: dashed line (e.g. a reference curve)
} report_series;

typedef struct {
    const char *title, *xlabel, *ylabel; // may be NULL
    int width, height;                   // pixels (0: 640 x 360)
    int logx;                            // 1: log10 x axis (x <= 0 points dropped)
} report_plot_opts;

// An <svg ...>...</svg> element as a malloc'd string (never NULL). Every series
// with at least one finite point is drawn as <polyline class="series"> (or its
// markers as <circle class="marker">), with data-label="LABEL" on it, so tests
// can find each curve; the title is <text class="title">, tick labels
// class="xtick"/"ytick", and a plot with no usable point says "no data"
// (class="nodata"). Values beyond +-1e300 are treated as non-finite; a range
// too narrow to draw is widened around its middle; the legend shows about 20
// characters of a label (the whole one as a tooltip). At least 300 x 150.
char *report_svg_plot(const report_plot_opts *o, const report_series *s, int n_series);

// The ticks of an axis over [lo, hi]: the multiples of a 1-2-5 step (1, 2 or
// 5 times a power of ten) giving about `want` intervals that lie in [lo, hi],
// at most cap of them. Returns how many (0 for an empty or non-finite range).
int report_nice_ticks(double lo, double hi, int want, double *ticks, int cap);

// ------------------------------------------------------------ HTML pages --
typedef struct report_page report_page;

report_page *report_page_new(const char *title);  // <!doctype html>, <title>, small inline CSS
void report_h(report_page *p, int level, const char *text);      // <h1>..<h3>, escaped
void report_p(report_page *p, const char *text);                 // <p>, escaped
void report_raw(report_page *p, const char *html);               // as is (e.g. an svg)
void report_pre(report_page *p, const char *text);               // <pre>, escaped
void report_note(report_page *p, const char *text);              // <p class="note">, escaped (small, grey)
// <table>: header[ncols] and cells[nrows*ncols] (row-major), all escaped; NULL cell = ""
void report_table(report_page *p, int ncols, const char *const *header, int nrows,
                  const char *const *cells);
void report_plot(report_page *p, const report_plot_opts *o, const report_series *s, int n);
// Writes the page (closing tags added) atomically to path.
int report_page_write(report_page *p, const char *path, rlhf_err *err);
void report_page_free(report_page *p);

// text with & < > " ' escaped, and control characters other than tab and
// newline shown as Unicode control pictures (U+2400 + c); malloc'd
char *report_escape(const char *text);

#endif
