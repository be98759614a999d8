// algo/heron: HERON's decision-tree labels over ranked reward factors (see
// algo/heron.h).
#include "algo/heron.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_blank(char c) { return c == ' ' || c == '\t'; }

int heron_parse_margins(const char *spec, int L, double *margin, int *relative, rlhf_err *err) {
    for (int l = 0; l < L; l++) margin[l] = 0, relative[l] = 0;
    if (!spec || !spec[0]) return 0;
    const char *p = spec;
    int k = 0;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        if (len >= sizeof item)
            return rlhf_fail(err, "--margins: item %d is too long (\"%.20s...\")", k + 1, p);
        memcpy(item, p, len);
        item[len] = 0;
        char *s = item, *e;
        while (is_blank(*s)) s++;
        size_t m = strlen(s);
        while (m > 0 && is_blank(s[m - 1])) s[--m] = 0;
        int rel = 0;
        if (m >= 2 && !strcmp(s + m - 2, "sd")) {
            rel = 1, s[m -= 2] = 0;
            while (m > 0 && is_blank(s[m - 1])) s[--m] = 0;
        }
        double v = strtod(s, &e);
        if (!s[0] || *e || !isfinite(v))
            return rlhf_fail(err,
                             "--margins: item %d (\"%s\") is not a number (want e.g. 0, 0.1 or "
                             "0.5sd)",
                             k + 1, item);
        if (v < 0)
            return rlhf_fail(err,
                             "--margins: item %d (\"%s\") is negative; a margin is a tolerance "
                             ">= 0",
                             k + 1, item);
        if (k < L) margin[k] = v, relative[k] = rel;
        k++;
        if (!end) break;
        p = end + 1;
    }
    if (k != L)
        return rlhf_fail(err, "--margins: %d margin%s for %d factor%s (one per factor, in order)",
                         k, k == 1 ? "" : "s", L, L == 1 ? "" : "s");
    return 0;
}

void heron_factor_spread(int n, int L, const double *z, const unsigned char *use, double *sd) {
    for (int l = 0; l < L; l++) {
        double mean = 0, ss = 0;
        int m = 0;
        for (int i = 0; i < n; i++)
            if (!use || use[i]) mean += z[(size_t)i * L + l], m++;
        if (m < 2) {
            sd[l] = 0;
            continue;
        }
        mean /= m;
        for (int i = 0; i < n; i++)
            if (!use || use[i]) {
                double d = z[(size_t)i * L + l] - mean;
                ss += d * d;
            }
        sd[l] = sqrt(ss / m);
    }
}

void heron_margins(int L, const double *margin, const int *relative, const double *sd,
                   double *delta) {
    for (int l = 0; l < L; l++) delta[l] = relative && relative[l] ? margin[l] * sd[l] : margin[l];
}

int heron_compare(int L, const double *za, const double *zb, const double *delta, int *level) {
    for (int l = 0; l < L; l++) {
        double d = za[l] - zb[l];
        if (fabs(d) > delta[l]) {  // false for NaN: a factor that cannot compare passes on
            if (level) *level = l;
            return d > 0 ? 1 : -1;
        }
    }
    if (level) *level = -1;
    return 0;
}

int heron_group_pairs(int n, int L, const double *z, const double *delta,
                      const unsigned char *use, int *chosen, int *rejected, int *level,
                      int *ties) {
    int k = 0, t = 0;
    for (int i = 0; i < n; i++) {
        if (use && !use[i]) continue;
        for (int j = i + 1; j < n; j++) {
            if (use && !use[j]) continue;
            int lv, s = heron_compare(L, z + (size_t)i * L, z + (size_t)j * L, delta, &lv);
            if (!s) {
                t++;
                continue;
            }
            chosen[k] = s > 0 ? i : j;
            rejected[k] = s > 0 ? j : i;
            level[k++] = lv;
        }
    }
    if (ties) *ties = t;
    return k;
}
