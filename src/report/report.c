// report/report: HTML pages and SVG line plots (report.h). Everything is
// static markup: no script, no external resource.
#include "report/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

// ---------------------------------------------------------------- strings --
typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
        if (b->n == 0) b->s[0] = 0;
    }
}

char *report_escape(const char *text) {
    sbuf b = {0};
    sb_add(&b, "%s", "");
    for (const char *p = text ? text : ""; *p; p++) {
        switch (*p) {
        case '&': sb_add(&b, "&amp;"); break;
        case '<': sb_add(&b, "&lt;"); break;
        case '>': sb_add(&b, "&gt;"); break;
        case '"': sb_add(&b, "&quot;"); break;
        case '\'': sb_add(&b, "&#39;"); break;
        default: sb_add(&b, "%c", *p);
        }
    }
    return b.s;
}

// ------------------------------------------------------------------ plots --
// colour-blind-safe palette (Okabe & Ito)
static const char *const PALETTE[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};

// a 1-2-5 step giving about `want` intervals over [lo, hi]
static double nice_step(double lo, double hi, int want) {
    double raw = (hi - lo) / want;
    if (!(raw > 0)) return 1;
    double p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

typedef struct {
    double x0, x1, y0, y1; // data range
    double L, R, T, B;     // plot area in pixels
    int logx;
} frame;

static double px(const frame *f, double x) {
    if (f->logx) x = log10(x);
    return f->L + (x - f->x0) / (f->x1 - f->x0) * (f->R - f->L);
}
static double py(const frame *f, double y) {
    return f->B - (y - f->y0) / (f->y1 - f->y0) * (f->B - f->T);
}

static int usable(const frame *f, double x, double y) {
    return isfinite(x) && isfinite(y) && (!f->logx || x > 0);
}

// the data range over all usable points (and bands); 0 if there is none
static int data_range(frame *f, const report_series *s, int ns) {
    int any = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!usable(f, s[k].x[i], s[k].y[i])) continue;
            double x = f->logx ? log10(s[k].x[i]) : s[k].x[i];
            double ylo = s[k].y[i], yhi = s[k].y[i];
            if (s[k].ylo && isfinite(s[k].ylo[i])) ylo = fmin(ylo, s[k].ylo[i]);
            if (s[k].yhi && isfinite(s[k].yhi[i])) yhi = fmax(yhi, s[k].yhi[i]);
            if (!any) f->x0 = f->x1 = x, f->y0 = ylo, f->y1 = yhi;
            f->x0 = fmin(f->x0, x), f->x1 = fmax(f->x1, x);
            f->y0 = fmin(f->y0, ylo), f->y1 = fmax(f->y1, yhi);
            any = 1;
        }
    if (!any) return 0;
    if (f->x1 - f->x0 < 1e-12) f->x0 -= 0.5, f->x1 += 0.5;
    if (f->y1 - f->y0 < 1e-12) f->y0 -= 0.5, f->y1 += 0.5;
    double pad = 0.05 * (f->y1 - f->y0);
    f->y0 -= pad, f->y1 += pad;
    return 1;
}

static void axes(sbuf *b, const frame *f, const report_plot_opts *o) {
    sb_add(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
              "stroke=\"#888\"/>\n", f->L, f->T, f->R - f->L, f->B - f->T);
    double st = nice_step(f->y0, f->y1, 5);
    for (double y = ceil(f->y0 / st) * st; y <= f->y1 + 1e-9 * st; y += st) {
        double yy = py(f, y), v = fabs(y) < 1e-9 * st ? 0 : y;
        sb_add(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%g</text>\n",
               f->L, f->R, yy, yy, f->L - 4, yy + 4, v);
    }
    if (f->logx) {
        for (double e = ceil(f->x0 - 1e-9); e <= f->x1 + 1e-9; e += 1) {
            double xx = f->L + (e - f->x0) / (f->x1 - f->x0) * (f->R - f->L);
            sb_add(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%g</text>\n",
                   xx, f->B + 14, pow(10, e));
        }
    } else {
        double sx = nice_step(f->x0, f->x1, 6);
        for (double x = ceil(f->x0 / sx) * sx; x <= f->x1 + 1e-9 * sx; x += sx) {
            double v = fabs(x) < 1e-9 * sx ? 0 : x;
            sb_add(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%g</text>\n",
                   px(f, x), f->B + 14, v);
        }
    }
    char *t = report_escape(o->title), *xl = report_escape(o->xlabel), *yl = report_escape(o->ylabel);
    if (o->title) sb_add(b, "<text x=\"%.1f\" y=\"16\" text-anchor=\"middle\" font-size=\"13\" "
                            "font-weight=\"bold\">%s</text>\n", (f->L + f->R) / 2, t);
    if (o->xlabel) sb_add(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
                          (f->L + f->R) / 2, f->B + 30, xl);
    if (o->ylabel) sb_add(b, "<text transform=\"translate(14,%.1f) rotate(-90)\" text-anchor=\"middle\" "
                             "font-size=\"12\">%s</text>\n", (f->T + f->B) / 2, yl);
    free(t), free(xl), free(yl);
}

static void band(sbuf *b, const frame *f, const report_series *s, const char *col) {
    if (!s->ylo || !s->yhi) return;
    sbuf pts = {0};
    sb_add(&pts, "%s", "");
    int m = 0;
    for (int i = 0; i < s->n; i++)
        if (usable(f, s->x[i], s->y[i]) && isfinite(s->yhi[i]) && isfinite(s->ylo[i]))
            sb_add(&pts, "%.1f,%.1f ", px(f, s->x[i]), py(f, s->yhi[i])), m++;
    for (int i = s->n - 1; i >= 0; i--)
        if (usable(f, s->x[i], s->y[i]) && isfinite(s->yhi[i]) && isfinite(s->ylo[i]))
            sb_add(&pts, "%.1f,%.1f ", px(f, s->x[i]), py(f, s->ylo[i]));
    if (m >= 2)
        sb_add(b, "<polygon class=\"band\" points=\"%s\" fill=\"%s\" fill-opacity=\"0.15\" "
                  "stroke=\"none\"/>\n", pts.s, col);
    free(pts.s);
}

// a series' lines (split at unusable points) and markers
static void series(sbuf *b, const frame *f, const report_series *s, const char *col,
                   const char *label) {
    if (s->markers != 2) {
        sbuf pts = {0};
        sb_add(&pts, "%s", "");
        for (int i = 0; i <= s->n; i++) {
            if (i < s->n && usable(f, s->x[i], s->y[i])) {
                sb_add(&pts, "%.2f,%.2f ", px(f, s->x[i]), py(f, s->y[i]));
                continue;
            }
            if (pts.n)
                sb_add(b, "<polyline class=\"series\" data-label=\"%s\" points=\"%s\" fill=\"none\" "
                          "stroke=\"%s\" stroke-width=\"1.8\"%s/>\n", label, pts.s, col,
                       s->dashed ? " stroke-dasharray=\"5,4\"" : "");
            pts.n = 0;
            pts.s[0] = 0;
        }
        free(pts.s);
    }
    if (s->markers)
        for (int i = 0; i < s->n; i++)
            if (usable(f, s->x[i], s->y[i]))
                sb_add(b, "<circle class=\"marker\" data-label=\"%s\" cx=\"%.2f\" cy=\"%.2f\" r=\"3\" "
                          "fill=\"%s\"/>\n", label, px(f, s->x[i]), py(f, s->y[i]), col);
}

char *report_svg_plot(const report_plot_opts *o, const report_series *s, int ns) {
    report_plot_opts dflt = {0};
    if (!o) o = &dflt;
    int W = o->width > 0 ? o->width : 640, H = o->height > 0 ? o->height : 360;
    frame f = {.L = 58, .R = W - 150, .T = 26, .B = H - 40, .logx = o->logx};
    sbuf b = {0};
    sb_add(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", W, H, W, H);
    if (!data_range(&f, s, ns)) {
        f.x0 = 0, f.x1 = 1, f.y0 = 0, f.y1 = 1;
        axes(&b, &f, o);
        sb_add(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no data</text>\n",
               (f.L + f.R) / 2, (f.T + f.B) / 2);
    } else {
        axes(&b, &f, o);
        int shown = 0;
        for (int k = 0; k < ns; k++) {
            int any = 0;
            for (int i = 0; i < s[k].n && !any; i++) any = usable(&f, s[k].x[i], s[k].y[i]);
            if (!any) continue;
            const char *col = PALETTE[k % 8];
            char *label = report_escape(s[k].label ? s[k].label : "");
            band(&b, &f, &s[k], col);
            series(&b, &f, &s[k], col, label);
            double ly = f.T + 8 + 16 * shown++;
            sb_add(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"2\"%s/><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s</text>\n",
                   f.R + 10, f.R + 28, ly, ly, col, s[k].dashed ? " stroke-dasharray=\"5,4\"" : "",
                   f.R + 32, ly + 4, label);
            free(label);
        }
    }
    sb_add(&b, "</svg>\n");
    return b.s;
}

// ------------------------------------------------------------------ pages --
struct report_page {
    sbuf b;
};

report_page *report_page_new(const char *title) {
    report_page *p = xcalloc(1, sizeof *p);
    char *t = report_escape(title);
    sb_add(&p->b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                  "<title>%s</title>\n<style>\n"
                  "body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}\n"
                  "table{border-collapse:collapse;font-size:13px;margin:0.5em 0}\n"
                  "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\n"
                  "th{background:#f3f3f3}\npre{background:#f7f7f7;padding:0.6em;overflow-x:auto}\n"
                  "svg.plot{margin:0.4em 0;background:#fff}\n</style></head><body>\n", t);
    free(t);
    return p;
}

void report_h(report_page *p, int level, const char *text) {
    if (level < 1) level = 1;
    if (level > 3) level = 3;
    char *t = report_escape(text);
    sb_add(&p->b, "<h%d>%s</h%d>\n", level, t, level);
    free(t);
}

void report_p(report_page *p, const char *text) {
    char *t = report_escape(text);
    sb_add(&p->b, "<p>%s</p>\n", t);
    free(t);
}

void report_raw(report_page *p, const char *html) { sb_add(&p->b, "%s", html ? html : ""); }

void report_pre(report_page *p, const char *text) {
    char *t = report_escape(text);
    sb_add(&p->b, "<pre>%s</pre>\n", t);
    free(t);
}

void report_table(report_page *p, int ncols, const char *const *header, int nrows,
                  const char *const *cells) {
    sb_add(&p->b, "<table>\n<tr>");
    for (int c = 0; c < ncols; c++) {
        char *t = report_escape(header ? header[c] : "");
        sb_add(&p->b, "<th>%s</th>", t);
        free(t);
    }
    sb_add(&p->b, "</tr>\n");
    for (int r = 0; r < nrows; r++) {
        sb_add(&p->b, "<tr>");
        for (int c = 0; c < ncols; c++) {
            char *t = report_escape(cells[(size_t)r * ncols + c]);
            sb_add(&p->b, "<td>%s</td>", t);
            free(t);
        }
        sb_add(&p->b, "</tr>\n");
    }
    sb_add(&p->b, "</table>\n");
}

void report_plot(report_page *p, const report_plot_opts *o, const report_series *s, int n) {
    char *svg = report_svg_plot(o, s, n);
    sb_add(&p->b, "<div>%s</div>\n", svg);
    free(svg);
}

int report_page_write(report_page *p, const char *path, rlhf_err *err) {
    size_t mark = p->b.n;
    sb_add(&p->b, "</body></html>\n");
    int rc = atomic_write_file(path, p->b.s, p->b.n, err);
    p->b.n = mark;
    p->b.s[mark] = 0;
    return rc;
}

void report_page_free(report_page *p) {
    if (!p) return;
    free(p->b.s);
    free(p);
}
