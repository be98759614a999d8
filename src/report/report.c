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

static void sb_put(sbuf *b, const char *t, size_t k) {
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, t, k);
    b->n += k;
    b->s[b->n] = 0;
}

// Control characters other than tab and newline (a sampled completion may hold
// any byte) are shown as their Unicode "control picture" (U+2400 + c, U+2421
// for DEL): visible, and never a stray byte in the markup.
char *report_escape(const char *text) {
    sbuf b = {0};
    sb_put(&b, "", 0);
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
        switch (*p) {
        case '&':
            sb_put(&b, "&amp;", 5);
            break;
        case '<':
            sb_put(&b, "&lt;", 4);
            break;
        case '>':
            sb_put(&b, "&gt;", 4);
            break;
        case '"':
            sb_put(&b, "&quot;", 6);
            break;
        case '\'':
            sb_put(&b, "&#39;", 5);
            break;
        case '\t':
        case '\n':
            sb_put(&b, (const char *)p, 1);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                char pic[3] = {(char)0xe2, (char)0x90, (char)(*p == 0x7f ? 0xa1 : 0x80 + *p)};
                sb_put(&b, pic, 3);
            } else {
                sb_put(&b, (const char *)p, 1);
            }
        }
    }
    return b.s;
}

// ------------------------------------------------------------------ plots --
// colour-blind-safe palette (Okabe & Ito)
static const char *const PALETTE[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};

// Values beyond this are left out of a plot like non-finite ones: their range
// would overflow the pixel arithmetic.
#define PLOT_LIMIT 1e300

static int plottable(double v) {
    return isfinite(v) && fabs(v) <= PLOT_LIMIT;
}

// a 1-2-5 step giving about `want` intervals over [lo, hi]; 0 when there is none
static double nice_step(double lo, double hi, int want) {
    double raw = (hi - lo) / want;
    if (!(raw > 0) || !isfinite(raw)) return 0;
    double p = pow(10, floor(log10(raw))), f = raw / p;
    if (!(p > 0) || !isfinite(f)) return 0;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

int report_nice_ticks(double lo, double hi, int want, double *ticks, int cap) {
    double st = nice_step(lo, hi, want > 0 ? want : 1);
    if (st == 0) return 0;
    double k0 = ceil(lo / st - 1e-9), k1 = floor(hi / st + 1e-9);
    int n = 0;
    for (double k = k0; k <= k1 && n < cap; k += 1) ticks[n++] = k == 0 ? 0 : k * st;
    return n;
}

// A tick's text: plain decimals, as many as the step needs (0, 200000, 400000;
// 0.05, 0.1), or for tiny steps and huge values a short mantissa and exponent
// with the digits the step needs (1e-4, 8e-5, 1.5e-5; 2.5e9).
static void tick_label(char *buf, size_t cap, double v, double st, double mag) {
    if (v == 0) {
        snprintf(buf, cap, "0");
    } else if (st >= 1e-3 && mag < 1e7) {
        int dec = st >= 1 ? 0 : (int)ceil(-log10(st) - 1e-9);
        snprintf(buf, cap, "%.*f", dec, v);
    } else {
        int e = (int)floor(log10(fabs(v)) + 1e-9);
        int dec = e - (int)floor(log10(st) + 1e-9);
        double mant = v / pow(10, e);
        snprintf(buf, cap, "%.*fe%d", dec < 0 ? 0 : dec > 12 ? 12 : dec, mant, e);
    }
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
    return plottable(x) && plottable(y) && (!f->logx || x > 0);
}

// a range too narrow to draw (one value, or differences lost in rounding)
// becomes +-10% around its middle (+-0.5 around 0)
static void widen(double *lo, double *hi) {
    double m = fmax(fabs(*lo), fabs(*hi));
    if (*hi - *lo > 1e-9 * m && *hi - *lo > 1e-200) return;
    double c = 0.5 * (*lo + *hi), h = m > 1e-200 ? 0.1 * m : 0.5;
    *lo = c - h, *hi = c + h;
}

// the data range over all usable points (and bands); 0 if there is none
static int data_range(frame *f, const report_series *s, int ns) {
    int any = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!usable(f, s[k].x[i], s[k].y[i])) continue;
            double x = f->logx ? log10(s[k].x[i]) : s[k].x[i];
            double ylo = s[k].y[i], yhi = s[k].y[i];
            if (s[k].ylo && plottable(s[k].ylo[i])) ylo = fmin(ylo, s[k].ylo[i]);
            if (s[k].yhi && plottable(s[k].yhi[i])) yhi = fmax(yhi, s[k].yhi[i]);
            if (!any) f->x0 = f->x1 = x, f->y0 = ylo, f->y1 = yhi;
            f->x0 = fmin(f->x0, x), f->x1 = fmax(f->x1, x);
            f->y0 = fmin(f->y0, ylo), f->y1 = fmax(f->y1, yhi);
            any = 1;
        }
    if (!any) return 0;
    widen(&f->x0, &f->x1);
    widen(&f->y0, &f->y1);
    double pad = 0.05 * (f->y1 - f->y0);
    f->y0 -= pad, f->y1 += pad;
    return 1;
}

static void ticks(sbuf *b, const frame *f) {
    double t[64], mag = fmax(fabs(f->y0), fabs(f->y1));
    char lab[64];
    int n = report_nice_ticks(f->y0, f->y1, 5, t, 64);
    for (int i = 0; i < n; i++) {
        double yy = py(f, t[i]);
        tick_label(lab, sizeof lab, t[i], n > 1 ? t[1] - t[0] : fabs(t[0]), mag);
        sb_add(b,
               "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
               "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
               "font-size=\"11\">%s</text>\n",
               f->L, f->R, yy, yy, f->L - 4, yy + 4, lab);
    }
    if (f->logx) {
        for (double e = ceil(f->x0 - 1e-9); e <= f->x1 + 1e-9; e += 1) {
            double xx = f->L + (e - f->x0) / (f->x1 - f->x0) * (f->R - f->L);
            sb_add(b,
                   "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                   "font-size=\"11\">%g</text>\n",
                   xx, f->B + 14, pow(10, e));
        }
        return;
    }
    mag = fmax(fabs(f->x0), fabs(f->x1));
    n = report_nice_ticks(f->x0, f->x1, 6, t, 64);
    for (int i = 0; i < n; i++) {
        tick_label(lab, sizeof lab, t[i], n > 1 ? t[1] - t[0] : fabs(t[0]), mag);
        sb_add(b,
               "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
               "font-size=\"11\">%s</text>\n",
               px(f, t[i]), f->B + 14, lab);
    }
}

static void axes(sbuf *b, const frame *f, const report_plot_opts *o) {
    sb_add(b,
           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
           "stroke=\"#888\"/>\n",
           f->L, f->T, f->R - f->L, f->B - f->T);
    ticks(b, f);
    char *t = report_escape(o->title), *xl = report_escape(o->xlabel),
         *yl = report_escape(o->ylabel);
    if (o->title)
        sb_add(b,
               "<text class=\"title\" x=\"%.1f\" y=\"16\" text-anchor=\"middle\" "
               "font-size=\"13\" font-weight=\"bold\">%s</text>\n",
               (f->L + f->R) / 2, t);
    if (o->xlabel)
        sb_add(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
               (f->L + f->R) / 2, f->B + 30, xl);
    if (o->ylabel)
        sb_add(b,
               "<text transform=\"translate(14,%.1f) rotate(-90)\" text-anchor=\"middle\" "
               "font-size=\"12\">%s</text>\n",
               (f->T + f->B) / 2, yl);
    free(t), free(xl), free(yl);
}

static void band(sbuf *b, const frame *f, const report_series *s, const char *col) {
    if (!s->ylo || !s->yhi) return;
    sbuf pts = {0};
    sb_add(&pts, "%s", "");
    int m = 0;
    for (int i = 0; i < s->n; i++)
        if (usable(f, s->x[i], s->y[i]) && plottable(s->yhi[i]) && plottable(s->ylo[i]))
            sb_add(&pts, "%.1f,%.1f ", px(f, s->x[i]), py(f, s->yhi[i])), m++;
    for (int i = s->n - 1; i >= 0; i--)
        if (usable(f, s->x[i], s->y[i]) && plottable(s->yhi[i]) && plottable(s->ylo[i]))
            sb_add(&pts, "%.1f,%.1f ", px(f, s->x[i]), py(f, s->ylo[i]));
    if (m >= 2)
        sb_add(b,
               "<polygon class=\"band\" points=\"%s\" fill=\"%s\" fill-opacity=\"0.15\" "
               "stroke=\"none\"/>\n",
               pts.s, col);
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
                sb_add(b,
                       "<polyline class=\"series\" data-label=\"%s\" points=\"%s\" fill=\"none\" "
                       "stroke=\"%s\" stroke-width=\"1.8\"%s/>\n",
                       label, pts.s, col, s->dashed ? " stroke-dasharray=\"5,4\"" : "");
            pts.n = 0;
            pts.s[0] = 0;
        }
        free(pts.s);
    }
    if (s->markers)
        for (int i = 0; i < s->n; i++)
            if (usable(f, s->x[i], s->y[i]))
                sb_add(b,
                       "<circle class=\"marker\" data-label=\"%s\" cx=\"%.2f\" cy=\"%.2f\" r=\"3\" "
                       "fill=\"%s\"/>\n",
                       label, px(f, s->x[i]), py(f, s->y[i]), col);
}

// The legend's text: the label cut to about 20 characters (whole UTF-8
// characters, "..." appended) so that it stays inside the svg; the full label
// is in the entry's <title> (a tooltip) and in the curve's data-label.
static void legend_entry(sbuf *b, const frame *f, int row, const report_series *s, const char *col,
                         const char *label) {
    const char *full = s->label ? s->label : "";
    size_t cut = 0;
    int chars = 0;
    while (full[cut] && chars < 20) {
        cut++;
        while ((full[cut] & 0xc0) == 0x80) cut++;
        chars++;
    }
    char *shown_raw = xmalloc(cut + 4);
    memcpy(shown_raw, full, cut);
    strcpy(shown_raw + cut, full[cut] ? "..." : "");
    char *shown = report_escape(shown_raw);
    double ly = f->T + 8 + 16 * row;
    sb_add(b,
           "<g class=\"legend\"><title>%s</title><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" "
           "y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/><text x=\"%.1f\" y=\"%.1f\" "
           "font-size=\"11\">%s</text></g>\n",
           label, f->R + 10, f->R + 28, ly, ly, col, s->dashed ? " stroke-dasharray=\"5,4\"" : "",
           f->R + 32, ly + 4, shown);
    free(shown_raw);
    free(shown);
}

char *report_svg_plot(const report_plot_opts *o, const report_series *s, int ns) {
    report_plot_opts dflt = {0};
    if (!o) o = &dflt;
    int W = o->width > 0 ? o->width : 640, H = o->height > 0 ? o->height : 360;
    if (W < 300) W = 300;
    if (H < 150) H = 150;
    frame f = {.L = 58, .R = W - 150, .T = 26, .B = H - 40, .logx = o->logx};
    sbuf b = {0};
    sb_add(&b,
           "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"%d\" height=\"%d\" "
           "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
           W, H, W, H);
    if (!data_range(&f, s, ns)) {
        f.x0 = 0, f.x1 = 1, f.y0 = 0, f.y1 = 1;
        axes(&b, &f, o);
        sb_add(
            &b,
            "<text class=\"nodata\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no data</text>\n",
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
            legend_entry(&b, &f, shown++, &s[k], col, label);
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
    sb_add(
        &p->b,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<title>%s</title>\n<style>\n"
        "body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}\n"
        "table{border-collapse:collapse;font-size:13px;margin:0.5em 0}\n"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\n"
        "th{background:#f3f3f3}\npre{background:#f7f7f7;padding:0.6em;overflow-x:auto}\n"
        "svg.plot{margin:0.4em 0;background:#fff}\n"
        ".plots{display:flex;flex-wrap:wrap;gap:0 12px}\n"
        "td{vertical-align:top;white-space:pre-wrap;overflow-wrap:anywhere}\n"
        "p.note{color:#555;font-size:13px}\n</style></head><body>\n",
        t);
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

void report_note(report_page *p, const char *text) {
    char *t = report_escape(text);
    sb_add(&p->b, "<p class=\"note\">%s</p>\n", t);
    free(t);
}

void report_raw(report_page *p, const char *html) {
    sb_add(&p->b, "%s", html ? html : "");
}

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
