// Tests of report/report: escaping, nice ticks, the SVG a plot becomes (curves
// split at NaN, log x, "no data", no NaN/inf in the markup for extreme values,
// the legend's cut), and the atomic page write.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report/report.h"
#include "test.h"

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

// the point counts of the <polyline class="series"> elements of svg, in order
static int polyline_points(const char *svg, int *counts, int cap) {
    int n = 0;
    for (const char *p = strstr(svg, "<polyline class=\"series\""); p && n < cap;
         p = strstr(p + 1, "<polyline class=\"series\"")) {
        const char *pts = strstr(p, "points=\"") + 8, *end = strchr(pts, '"');
        int k = 0;
        for (const char *q = pts; q < end; q++) k += *q == ',';
        counts[n++] = k;
    }
    return n;
}

static int test_escape(void) {
    char *e = report_escape("<script>alert('x') & \"q\"</script>");
    CHECKF(!strcmp(e, "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;q&quot;&lt;/script&gt;"), "%s",
           e);
    free(e);
    e = report_escape("a\tb\nc\x01"
                      "d\x7f"
                      "é");
    CHECKF(!strcmp(e, "a\tb\nc\xe2\x90\x81"
                      "d\xe2\x90\xa1"
                      "é"),
           "%s", e);
    free(e);
    e = report_escape(NULL);
    CHECK(e && !strcmp(e, ""));
    free(e);
    return 0;
}

static int test_nice_ticks(void) {
    double t[64];
    int n = report_nice_ticks(0, 1, 5, t, 64);
    CHECKF(n == 6, "%d", n);
    for (int i = 0; i < n; i++) CHECK_CLOSE(t[i], 0.2 * i, 1e-12, 0);
    n = report_nice_ticks(0.3, 7.9, 6, t, 64); // step 1: 1..7
    CHECKF(n == 7 && t[0] == 1 && t[6] == 7, "%d %g", n, t[0]);
    n = report_nice_ticks(-0.5, 0.5, 5, t, 64); // step 0.2: -0.4..0.4, an exact 0
    CHECKF(n == 5 && t[2] == 0, "%d %g", n, t[2]);
    CHECK_CLOSE(t[0], -0.4, 1e-12, 0);
    n = report_nice_ticks(0, 3e-5, 5, t, 64); // step 5e-6 (1-2-5): 0, 5e-6, ..., 3e-5
    CHECKF(n == 7, "%d", n);
    CHECK_CLOSE(t[1], 5e-6, 1e-18, 0);
    n = report_nice_ticks(0, 1700, 6, t, 64); // raw step 283: 200, so 0..1600
    CHECKF(n == 9 && t[8] == 1600, "%d %g", n, n ? t[n - 1] : 0);
    CHECK(report_nice_ticks(1, 1, 5, t, 64) == 0);
    CHECK(report_nice_ticks(0, INFINITY, 5, t, 64) == 0);
    CHECK(report_nice_ticks(0, NAN, 5, t, 64) == 0);
    CHECK(report_nice_ticks(1e17, 1e17 + 1e3, 5, t, 3) <= 3);
    return 0;
}

static int test_nan_splits_line(void) {
    double x[6] = {0, 1, 2, 3, 4, 5}, y[6] = {1, 2, NAN, 3, 4, 5};
    report_series s = {.label = "run<a>", .n = 6, .x = x, .y = y};
    char *svg = report_svg_plot(NULL, &s, 1);
    int c[8], n = polyline_points(svg, c, 8);
    CHECKF(n == 2 && c[0] == 2 && c[1] == 3, "%d lines", n);
    CHECKF(count_of(svg, "data-label=\"run&lt;a&gt;\"") == 2, "%s", svg);
    CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"));
    free(svg);
    return 0;
}

static int test_logx_drops_nonpositive(void) {
    double x[5] = {-1, 0, 1, 10, 100}, y[5] = {5, 4, 3, 2, 1};
    report_series s = {.label = "a", .n = 5, .x = x, .y = y};
    report_plot_opts o = {.logx = 1};
    char *svg = report_svg_plot(&o, &s, 1);
    int c[8], n = polyline_points(svg, c, 8);
    // x <= 0 points are unusable on a log axis: they split the line like NaN,
    // and leave one curve of the 3 others
    CHECKF(n == 1 && c[0] == 3, "%d lines, %d points", n, n ? c[0] : 0);
    CHECK(strstr(svg, ">100</text>") && strstr(svg, ">1</text>"));
    free(svg);
    return 0;
}

static int test_empty_is_no_data(void) {
    double x[2] = {0, 1}, y[2] = {NAN, INFINITY};
    report_series s[2] = {{.label = "empty", .n = 0, .x = x, .y = y},
                          {.label = "nan", .n = 2, .x = x, .y = y}};
    char *svg = report_svg_plot(NULL, s, 2);
    CHECK(strstr(svg, "no data") != NULL);
    CHECK(!strstr(svg, "<polyline"));
    CHECK(!strstr(svg, "nan\"") && !strstr(svg, "inf"));
    free(svg);
    svg = report_svg_plot(NULL, s, 0);
    CHECK(strstr(svg, "no data") != NULL);
    free(svg);
    return 0;
}

// values that overflow a naive range, and a flat series far from 0: finite markup
static int test_extreme_values(void) {
    double x[3] = {0, 1, 2}, big[3] = {1e308, -1e308, 1}, flat[3] = {1e20, 1e20, 1e20};
    double tiny[3] = {2e-5, 1.5e-5, 1e-5};
    report_series s[3] = {{.label = "big", .n = 3, .x = x, .y = big},
                          {.label = "flat", .n = 3, .x = x, .y = flat},
                          {.label = "tiny", .n = 3, .x = x, .y = tiny}};
    for (int k = 0; k < 3; k++) {
        char *svg = report_svg_plot(NULL, &s[k], 1);
        CHECKF(!strstr(svg, "nan") && !strstr(svg, "inf"), "%s", s[k].label);
        int c[4];
        CHECKF(polyline_points(svg, c, 4) >= 1, "%s has no curve", s[k].label);
        if (k == 2) CHECKF(strstr(svg, ">1.2e-5<") && strstr(svg, ">2.0e-5<"), "%s", svg);
        free(svg);
    }
    return 0;
}

static int test_ticks_and_legend(void) {
    double x[3] = {0, 500, 1000}, y[3] = {0, 0.5, 1};
    const char *longname = "a-very-long-run-folder-name-indeed";
    report_series s = {.label = longname, .n = 3, .x = x, .y = y, .markers = 1};
    char *svg = report_svg_plot(NULL, &s, 1);
    CHECK(strstr(svg, ">0.2</text>") && strstr(svg, ">1.0</text>"));
    CHECK(strstr(svg, ">200</text>") && strstr(svg, ">1000</text>"));
    CHECK(count_of(svg, "<circle class=\"marker\"") == 3);
    CHECK(strstr(svg, "data-label=\"a-very-long-run-folder-name-indeed\""));
    CHECK(strstr(svg, ">a-very-long-run-fold...</text>"));
    free(svg);
    return 0;
}

// a band (ylo..yhi) is one polygon under the curve; dots-only series have no line
static int test_band_and_dots(void) {
    double x[3] = {1, 2, 3}, y[3] = {1, 2, 3}, lo[3] = {0.5, NAN, 2.5}, hi[3] = {1.5, 2.5, 3.5};
    report_series s[2] = {{.label = "mean", .n = 3, .x = x, .y = y, .ylo = lo, .yhi = hi},
                          {.label = "dots", .n = 3, .x = x, .y = hi, .markers = 2}};
    char *svg = report_svg_plot(NULL, s, 2);
    CHECK(count_of(svg, "<polygon class=\"band\"") == 1);
    const char *head = "<polygon class=\"band\" points=\"", *pts = strstr(svg, head);
    int k = 0;
    for (const char *q = pts ? pts + strlen(head) : ""; *q && *q != '"'; q++) k += *q == ',';
    CHECKF(k == 4, "band corners %d (the NaN point left out)", k);
    int c[4];
    CHECK(polyline_points(svg, c, 4) == 1 && c[0] == 3);
    CHECK(count_of(svg, "<circle class=\"marker\" data-label=\"dots\"") == 3);
    free(svg);
    return 0;
}

static int test_page_write_atomic(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch folder");
    char path[512];
    snprintf(path, sizeof path, "%s/page.html", dir);
    report_page *p = report_page_new("T & <t>");
    report_h(p, 1, "<h>");
    const char *head[2] = {"k", "v"}, *cells[2] = {"a<b", NULL};
    report_table(p, 2, head, 1, cells);
    rlhf_err err;
    CHECK(report_page_write(p, path, &err) == 0);
    report_p(p, "after");
    CHECK(report_page_write(p, path, &err) == 0); // the page goes on after a write
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char buf[4096] = {0};
    if (f) fread(buf, 1, sizeof buf - 1, f), fclose(f);
    CHECK(strstr(buf, "<title>T &amp; &lt;t&gt;</title>") &&
          strstr(buf, "<td>a&lt;b</td><td></td>"));
    CHECK(count_of(buf, "</body></html>") == 1 && strstr(buf, "<p>after</p>\n</body></html>\n"));
    DIR *d = opendir(dir);
    int entries = 0, tmp = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') entries++, tmp += strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    CHECKF(entries == 1 && tmp == 0, "%d entries, %d temp files", entries, tmp);
    snprintf(path, sizeof path, "%s/missing/page.html", dir);
    CHECK(report_page_write(p, path, &err) != 0 && strstr(err.msg, "missing"));
    report_page_free(p);
    return 0;
}

int main(void) {
    RUN(test_escape);
    RUN(test_nice_ticks);
    RUN(test_nan_splits_line);
    RUN(test_logx_drops_nonpositive);
    RUN(test_empty_is_no_data);
    RUN(test_extreme_values);
    RUN(test_ticks_and_legend);
    RUN(test_band_and_dots);
    RUN(test_page_write_atomic);
    TEST_EXIT();
}
