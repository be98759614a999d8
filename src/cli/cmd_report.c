// cli/cmd_report: `rlhf report RUN_DIR... [--out FILE.html] [--samples N]`.
// One HTML page (report/report.h: static markup, inline SVG, no script) for
// one run folder or several side by side: a table of the runs, one plot per
// metric of metrics.jsonl with every run that logs it overlaid (x = "step"),
// the runs' config.json and summary.json as tables, and the first sampled
// completions of samples.jsonl. Works on any run folder the trainers write:
// language-model runs (sft, dpo, rm, grpo, ...) and control runs (ctrl train).
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "io/file.h"
#include "report/report.h"

#define MAX_POINTS 2000 // per curve; a longer one is thinned evenly, first and last kept
#define MAX_SAMPLE_COLUMNS 10

// one metric of one run: its values and the steps they were logged at
typedef struct {
    char *name; // "loss", "eval/return_mean"; keys of nested objects joined with "/"
    int n, cap;
    double *x, *y; // NaN y: logged as null (a NaN or inf value), breaks the curve
} metric;

typedef struct {
    const char *dir; // as given on the command line
    char *label;     // the folder's name (the path as given when two names clash)
    metric *m;
    int nm, cap_m, hint;
    long lines, bad, no_step; // metric lines used, malformed or torn, without a numeric "step"
    double step_first, step_last;
    cJSON *config, *summary; // NULL when the file is absent or unreadable
    int config_bad, summary_bad;
    cJSON *samples; // array of the first --samples lines of samples.jsonl
    int has_samples;
    long samples_bad;
} run_data;

// ------------------------------------------------------------ reading --
static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

// the metric named name, added when new; lines usually list their keys in the
// same order, so the one after the last found is tried first
static metric *metric_get(run_data *r, const char *name) {
    for (int t = 0; t < r->nm; t++) {
        int i = (r->hint + t) % r->nm;
        if (!strcmp(r->m[i].name, name)) {
            r->hint = i + 1;
            return &r->m[i];
        }
    }
    if (r->nm == r->cap_m) {
        r->cap_m = r->cap_m ? 2 * r->cap_m : 16;
        r->m = xrealloc(r->m, (size_t)r->cap_m * sizeof *r->m);
    }
    metric *m = &r->m[r->nm++];
    memset(m, 0, sizeof *m);
    m->name = dup_str(name);
    r->hint = r->nm;
    return m;
}

static void metric_push(metric *m, double x, double y) {
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->x = xrealloc(m->x, (size_t)m->cap * sizeof *m->x);
        m->y = xrealloc(m->y, (size_t)m->cap * sizeof *m->y);
    }
    m->x[m->n] = x;
    m->y[m->n++] = y;
}

// every number of object o (nested objects as "prefix/key"; null as NaN) at x
static void add_numbers(run_data *r, const cJSON *o, const char *prefix, double x) {
    for (const cJSON *it = o->child; it; it = it->next) {
        if (!it->string || (!*prefix && !strcmp(it->string, "step"))) continue;
        char name[512];
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "/" : "", it->string);
        if (cJSON_IsNumber(it))
            metric_push(metric_get(r, name), x, it->valuedouble);
        else if (cJSON_IsNull(it))
            metric_push(metric_get(r, name), x, NAN);
        else if (cJSON_IsObject(it))
            add_numbers(r, it, name, x);
    }
}

// one line of metrics.jsonl (len bytes, newline removed)
static void metric_line(run_data *r, const char *line, size_t len) {
    if (len == 0 || strspn(line, " \t\r") == len) return;
    const char *end = NULL;
    cJSON *j = strlen(line) == len ? cJSON_ParseWithOpts(line, &end, 1) : NULL;
    if (!j || !cJSON_IsObject(j)) {
        r->bad++;
    } else {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
        if (!cJSON_IsNumber(s) || !isfinite(s->valuedouble)) {
            r->no_step++;
        } else {
            add_numbers(r, j, "", s->valuedouble);
            if (!r->lines++) r->step_first = s->valuedouble;
            r->step_last = s->valuedouble;
        }
    }
    cJSON_Delete(j);
}

static int load_metrics(run_data *r, const char *path, rlhf_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return rlhf_fail(err, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    while ((k = getline(&line, &cap, f)) > 0) {
        if (line[k - 1] == '\n') line[--k] = 0;
        metric_line(r, line, (size_t)k);
    }
    int failed = ferror(f);
    free(line);
    fclose(f);
    if (failed) return rlhf_fail(err, "%s: read error", path);
    return 0;
}

// a JSON file of the run folder: NULL when absent; *bad = 1 when unreadable
static cJSON *load_json(const char *dir, const char *name, int *bad) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *bad = 0;
    struct stat st;
    if (stat(path, &st) != 0) return NULL;
    rlhf_err err;
    char *text = read_file(path, NULL, &err);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *bad = 1;
        return NULL;
    }
    return j;
}

// the first n lines of samples.jsonl (objects; others counted as bad)
static void load_samples(run_data *r, int n) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/samples.jsonl", r->dir);
    FILE *f = fopen(path, "r");
    r->samples = cJSON_CreateArray();
    if (!f) return;
    r->has_samples = 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    for (int seen = 0; seen < n && (k = getline(&line, &cap, f)) > 0;) {
        if (line[k - 1] == '\n') line[--k] = 0;
        if (strspn(line, " \t\r") == (size_t)k) continue;
        seen++;
        cJSON *j = strlen(line) == (size_t)k ? cJSON_ParseWithOpts(line, NULL, 1) : NULL;
        if (j && cJSON_IsObject(j))
            cJSON_AddItemToArray(r->samples, j);
        else
            cJSON_Delete(j), r->samples_bad++;
    }
    free(line);
    fclose(f);
}

static int run_load(run_data *r, const char *dir, int n_samples, rlhf_err *err) {
    memset(r, 0, sizeof *r);
    r->dir = dir;
    struct stat st;
    if (stat(dir, &st) != 0) return rlhf_fail(err, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return rlhf_fail(err, "%s is not a folder (give run folders)", dir);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    if (stat(path, &st) != 0)
        return rlhf_fail(err,
                         "%s has no metrics.jsonl (is it a run folder, the --output_dir "
                         "of a training command?)",
                         dir);
    if (load_metrics(r, path, err)) return -1;
    r->config = load_json(dir, "config.json", &r->config_bad);
    r->summary = load_json(dir, "summary.json", &r->summary_bad);
    load_samples(r, n_samples);
    return 0;
}

static void run_free(run_data *r) {
    for (int i = 0; i < r->nm; i++) free(r->m[i].name), free(r->m[i].x), free(r->m[i].y);
    free(r->m);
    free(r->label);
    cJSON_Delete(r->config);
    cJSON_Delete(r->summary);
    cJSON_Delete(r->samples);
}

// the folder's own name: "sft" for runs/sft/ (and the current folder's name for ".")
static char *folder_name(const char *dir) {
    char *abs = realpath(dir, NULL);
    const char *p = abs ? abs : dir;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/') b--;
    char *s = xmalloc(n - b + 1);
    memcpy(s, p + b, n - b);
    s[n - b] = 0;
    free(abs);
    return s;
}

static void set_labels(run_data *runs, int n) {
    for (int i = 0; i < n; i++) runs[i].label = folder_name(runs[i].dir);
    int *clash = xcalloc((size_t)n, sizeof *clash);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (!strcmp(runs[i].label, runs[j].label)) clash[i] = clash[j] = 1;
    for (int i = 0; i < n; i++)
        if (clash[i]) {
            free(runs[i].label);
            runs[i].label = dup_str(runs[i].dir);
        }
    free(clash);
}

// ------------------------------------------------------- key/value text --
typedef struct {
    char **key, **val;
    int n, cap;
} kv_list;

static void kv_add(kv_list *l, const char *key, char *val) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 32;
        l->key = xrealloc(l->key, (size_t)l->cap * sizeof *l->key);
        l->val = xrealloc(l->val, (size_t)l->cap * sizeof *l->val);
    }
    l->key[l->n] = dup_str(key);
    l->val[l->n++] = val;
}

static void kv_free(kv_list *l) {
    for (int i = 0; i < l->n; i++) free(l->key[i]), free(l->val[i]);
    free(l->key);
    free(l->val);
    memset(l, 0, sizeof *l);
}

static const char *kv_get(const kv_list *l, const char *key) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->key[i], key)) return l->val[i];
    return NULL;
}

// a JSON value as table text: strings as they are, numbers with 10 digits,
// anything else (arrays, booleans, null) as compact JSON
static char *value_text(const cJSON *v) {
    if (cJSON_IsString(v)) return dup_str(v->valuestring);
    if (cJSON_IsNumber(v)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.10g", v->valuedouble);
        return dup_str(buf);
    }
    char *s = cJSON_PrintUnformatted(v);
    return s ? s : dup_str("");
}

// object o's values as "key" -> text, nested objects as "prefix/key"
static void flatten(const cJSON *o, const char *prefix, kv_list *l) {
    for (const cJSON *it = o ? o->child : NULL; it; it = it->next) {
        if (!it->string) continue;
        char name[512];
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "/" : "", it->string);
        if (cJSON_IsObject(it) && it->child)
            flatten(it, name, l);
        else
            kv_add(l, name, value_text(it));
    }
}

// the keys of lists[0..n) in first-seen order (pointers into the lists)
static int union_keys(const kv_list *lists, int n, const char ***keys) {
    int nk = 0, cap = 0;
    *keys = NULL;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < lists[i].n; k++) {
            int seen = 0;
            for (int j = 0; j < nk && !seen; j++) seen = !strcmp((*keys)[j], lists[i].key[k]);
            if (seen) continue;
            if (nk == cap) {
                cap = cap ? 2 * cap : 32;
                *keys = xrealloc((void *)*keys, (size_t)cap * sizeof **keys);
            }
            (*keys)[nk++] = lists[i].key[k];
        }
    return nk;
}

// ------------------------------------------------------------- the page --
// a string of config.json (or, when from_summary, of summary.json where config.json has none)
static const char *config_str(const run_data *r, const char *key, int from_summary) {
    const cJSON *v = NULL;
    if (r->config) v = cJSON_GetObjectItemCaseSensitive(r->config, key);
    if (!cJSON_IsString(v) && from_summary && r->summary)
        v = cJSON_GetObjectItemCaseSensitive(r->summary, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// "algo sac, env pendulum": the settings that say what kind of run it is
static void run_method(const run_data *r, char *buf, size_t cap) {
    static const char *const keys[] = {"algo",      "env",  "adv_estimator",
                                       "loss_type", "task", "model"};
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof keys / sizeof *keys && n < cap; i++) {
        const char *v = config_str(r, keys[i], 0);
        if (v && *v) n += (size_t)snprintf(buf + n, cap - n, "%s%s %s", n ? ", " : "", keys[i], v);
    }
}

static void page_runs(report_page *p, const run_data *runs, int n) {
    static const char *const head[] = {"run",          "folder", "command",      "settings",
                                       "metric lines", "steps",  "lines skipped"};
    enum { NC = 7 };
    char **cells = xcalloc((size_t)n * NC, sizeof *cells);
    char buf[1024];
    for (int i = 0; i < n; i++) {
        const run_data *r = &runs[i];
        char **c = cells + (size_t)i * NC;
        const char *cmd = config_str(r, "command", 1);
        c[0] = dup_str(r->label);
        c[1] = dup_str(r->dir);
        c[2] = dup_str(cmd ? cmd : "?");
        run_method(r, buf, sizeof buf);
        c[3] = dup_str(buf);
        snprintf(buf, sizeof buf, "%ld", r->lines);
        c[4] = dup_str(buf);
        if (r->lines)
            snprintf(buf, sizeof buf, "%.10g to %.10g", r->step_first, r->step_last);
        else
            snprintf(buf, sizeof buf, "none");
        c[5] = dup_str(buf);
        if (r->bad || r->no_step)
            snprintf(buf, sizeof buf, "%ld malformed or torn, %ld without a step", r->bad,
                     r->no_step);
        else
            snprintf(buf, sizeof buf, "0");
        c[6] = dup_str(buf);
    }
    report_h(p, 2, n > 1 ? "Runs" : "Run");
    report_table(p, NC, head, n, (const char *const *)cells);
    for (size_t i = 0; i < (size_t)n * NC; i++) free(cells[i]);
    free(cells);
    for (int i = 0; i < n; i++)
        if (runs[i].bad || runs[i].no_step) {
            snprintf(buf, sizeof buf,
                     "%s/metrics.jsonl: %ld line%s skipped: %ld malformed or torn "
                     "(not a JSON object), %ld without a numeric \"step\".",
                     runs[i].dir, runs[i].bad + runs[i].no_step,
                     runs[i].bad + runs[i].no_step == 1 ? "" : "s", runs[i].bad, runs[i].no_step);
            report_note(p, buf);
        }
}

static const metric *find_metric(const run_data *r, const char *name) {
    for (int i = 0; i < r->nm; i++)
        if (!strcmp(r->m[i].name, name)) return &r->m[i];
    return NULL;
}

// m's points, at most MAX_POINTS of them: evenly spaced by line, first and last kept
static int thin(const metric *m, double *x, double *y) {
    if (m->n <= MAX_POINTS) {
        memcpy(x, m->x, (size_t)m->n * sizeof *x);
        memcpy(y, m->y, (size_t)m->n * sizeof *y);
        return m->n;
    }
    for (int j = 0; j < MAX_POINTS; j++) {
        long i = lround((double)j * (m->n - 1) / (MAX_POINTS - 1));
        x[j] = m->x[i], y[j] = m->y[i];
    }
    return MAX_POINTS;
}

// the plot of one metric, a curve per run that logs it (a run without it keeps
// its slot, so each run has the same colour in every plot)
static void plot_metric(report_page *p, const run_data *runs, int n, const char *name) {
    report_series *s = xcalloc((size_t)n, sizeof *s);
    double *buf = xmalloc((size_t)n * 2 * MAX_POINTS * sizeof *buf);
    for (int k = 0; k < n; k++) {
        const metric *m = find_metric(&runs[k], name);
        double *x = buf + (size_t)k * 2 * MAX_POINTS, *y = x + MAX_POINTS;
        s[k] = (report_series){.label = runs[k].label, .x = x, .y = y};
        if (!m) continue;
        s[k].n = thin(m, x, y);
        s[k].markers = s[k].n <= 30;
    }
    report_plot_opts o = {.title = name, .xlabel = "step", .width = 520, .height = 300};
    report_plot(p, &o, s, n);
    free(buf);
    free(s);
}

// one plot per metric, in the order the runs first log them; returns how many
static int page_plots(report_page *p, const run_data *runs, int n) {
    kv_list *names = xcalloc((size_t)n, sizeof *names);
    int thinned = 0;
    long longest = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < runs[i].nm; k++) {
            kv_add(&names[i], runs[i].m[k].name, NULL);
            if (runs[i].m[k].n > MAX_POINTS) thinned++;
            if (runs[i].m[k].n > longest) longest = runs[i].m[k].n;
        }
    const char **keys;
    int nk = union_keys(names, n, &keys);
    report_h(p, 2, "Metrics");
    char note[512];
    snprintf(note, sizeof note,
             "%d metric%s from metrics.jsonl over \"step\"%s; a break in a "
             "curve is a value logged as null (NaN or infinite).",
             nk, nk == 1 ? "" : "s", n > 1 ? ", the runs overlaid" : "");
    report_note(p, note);
    if (thinned) {
        snprintf(note, sizeof note,
                 "%d curve%s had more than %d points (the longest %ld): each "
                 "is drawn through %d of its points, evenly spaced by line, the first and the "
                 "last kept.",
                 thinned, thinned == 1 ? "" : "s", MAX_POINTS, longest, MAX_POINTS);
        report_note(p, note);
    }
    report_raw(p, "<div class=\"plots\">\n");
    for (int i = 0; i < nk; i++) plot_metric(p, runs, n, keys[i]);
    report_raw(p, "</div>\n");
    free((void *)keys);
    for (int i = 0; i < n; i++) kv_free(&names[i]);
    free(names);
    return nk;
}

// config.json (which = 0) or summary.json (1) of every run as one table: a
// row per key (nested keys joined with "/"), a column per run
static void page_json_table(report_page *p, const run_data *runs, int n, int which) {
    const char *file = which ? "summary.json" : "config.json";
    kv_list *l = xcalloc((size_t)n, sizeof *l);
    char note[1024];
    report_h(p, 2, which ? "Summary" : "Config");
    for (int i = 0; i < n; i++) {
        flatten(which ? runs[i].summary : runs[i].config, "", &l[i]);
        int bad = which ? runs[i].summary_bad : runs[i].config_bad;
        if (l[i].n == 0) {
            snprintf(note, sizeof note, "%s: %s %s.", runs[i].dir, file,
                     bad     ? "is not a readable JSON object"
                     : which ? "is missing (the run has not finished)"
                             : "is missing");
            report_note(p, note);
        }
    }
    const char **keys;
    int nk = union_keys(l, n, &keys), nc = n + 1, ndiff = 0;
    const char **head = xmalloc((size_t)nc * sizeof *head);
    const char **cells = xmalloc((size_t)nk * nc * sizeof *cells + 1);
    size_t used = 0;
    head[0] = "key";
    for (int i = 0; i < n; i++) head[i + 1] = runs[i].label;
    for (int k = 0; k < nk; k++) {
        cells[(size_t)k * nc] = keys[k];
        int differs = 0;
        for (int i = 0; i < n; i++) {
            const char *v = kv_get(&l[i], keys[k]);
            cells[(size_t)k * nc + i + 1] = v;
            const char *v0 = cells[(size_t)k * nc + 1];
            differs |= strcmp(v ? v : "", v0 ? v0 : "") != 0;
        }
        if (differs && ndiff++ < 24 && !which && used < sizeof note - 64)
            used += (size_t)snprintf(note + used, sizeof note - used, "%s%s", used ? ", " : "",
                                     keys[k]);
    }
    if (nk) report_table(p, nc, head, nk, cells);
    if (n > 1 && !which && ndiff) {
        char line[1200];
        snprintf(line, sizeof line, "%d setting%s differ between the runs: %s%s", ndiff,
                 ndiff == 1 ? "" : "s", note,
                 ndiff > 24 || used >= sizeof note - 64 ? ", ..." : ".");
        report_note(p, line);
    }
    free(head);
    free(cells);
    free((void *)keys);
    for (int i = 0; i < n; i++) kv_free(&l[i]);
    free(l);
}

// the first sampled completions of each run that has samples.jsonl: a table,
// a row per line, a column per key (the first MAX_SAMPLE_COLUMNS keys seen)
static void page_samples(report_page *p, const run_data *runs, int n, int n_samples) {
    int any = 0;
    for (int i = 0; i < n; i++) any |= runs[i].has_samples;
    if (!any || n_samples <= 0) return;
    report_h(p, 2, "Samples");
    char note[512];
    snprintf(note, sizeof note,
             "The first %d line%s of each run's samples.jsonl (text as written, "
             "control characters shown as symbols).",
             n_samples, n_samples == 1 ? "" : "s");
    report_note(p, note);
    for (int i = 0; i < n; i++) {
        if (!runs[i].has_samples) continue;
        int rows = cJSON_GetArraySize(runs[i].samples);
        kv_list *l = xcalloc((size_t)rows + 1, sizeof *l);
        for (int r = 0; r < rows; r++) flatten(cJSON_GetArrayItem(runs[i].samples, r), "", &l[r]);
        const char **keys;
        int nk = union_keys(l, rows, &keys);
        if (nk > MAX_SAMPLE_COLUMNS) nk = MAX_SAMPLE_COLUMNS;
        const char **cells = xmalloc((size_t)rows * nk * sizeof *cells + 1);
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < nk; k++) cells[(size_t)r * nk + k] = kv_get(&l[r], keys[k]);
        report_h(p, 3, runs[i].label);
        if (rows && nk)
            report_table(p, nk, keys, rows, cells);
        else
            report_note(p, "samples.jsonl has no sample lines.");
        if (runs[i].samples_bad) {
            snprintf(note, sizeof note, "%ld malformed line%s of samples.jsonl skipped.",
                     runs[i].samples_bad, runs[i].samples_bad == 1 ? "" : "s");
            report_note(p, note);
        }
        free(cells);
        free((void *)keys);
        for (int r = 0; r < rows; r++) kv_free(&l[r]);
        free(l);
    }
}

static report_page *build_page(const run_data *runs, int n, int n_samples, int *n_plots) {
    char title[300];
    size_t used = (size_t)snprintf(title, sizeof title, "rlhf report:");
    for (int i = 0; i < n && used < sizeof title; i++)
        used += (size_t)snprintf(title + used, sizeof title - used, "%s %s", i ? "," : "",
                                 runs[i].label);
    if (used >= sizeof title) memcpy(title + sizeof title - 4, "...", 4);
    report_page *p = report_page_new(title);
    report_h(p, 1, title);
    page_runs(p, runs, n);
    *n_plots = page_plots(p, runs, n);
    page_json_table(p, runs, n, 0);
    page_json_table(p, runs, n, 1);
    page_samples(p, runs, n, n_samples);
    return p;
}

// argv's run folders (entries not starting with "-") apart from its flags and
// their values; a flag of defs that takes a value (not --name=value, not a
// boolean) takes the entry after it
static void split_args(int argc, char **argv, const flag_def *defs, char **flags, int *nf,
                       char **dirs, int *nd) {
    *nf = *nd = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            dirs[(*nd)++] = argv[i];
            continue;
        }
        flags[(*nf)++] = argv[i];
        if (strncmp(a, "--", 2) || strchr(a, '=') || i + 1 >= argc) continue;
        int takes = !strcmp(a + 2, "config");
        for (const flag_def *d = defs; d->name && !takes; d++)
            takes = !strcmp(a + 2, d->name) && d->type != FLAG_BOOL && d->type != FLAG_AUTO;
        if (takes) flags[(*nf)++] = argv[++i];
    }
}

// the page of the loaded runs to out (default: RUN_DIR/report.html for one
// run, report.html for several); 0, or 1 after a message
static int write_page(const run_data *runs, int n, const char *out, int n_samples) {
    char path[PATH_MAX + 64];
    if (!out && n == 1) {
        snprintf(path, sizeof path, "%s/report.html", runs[0].dir);
        out = path;
    }
    if (!out) out = "report.html";
    int n_plots, rc = 0;
    rlhf_err err;
    report_page *p = build_page(runs, n, n_samples, &n_plots);
    if (report_page_write(p, out, &err)) {
        fprintf(stderr, "rlhf report: --out %s: %s\n", out, err.msg);
        rc = 1;
    } else {
        long skipped = 0;
        for (int i = 0; i < n; i++) skipped += runs[i].bad + runs[i].no_step;
        printf("rlhf report: %s: %d plot%s from %d run%s", out, n_plots, n_plots == 1 ? "" : "s", n,
               n == 1 ? "" : "s");
        if (skipped) printf(" (%ld metric line%s skipped)", skipped, skipped == 1 ? "" : "s");
        printf("\n");
    }
    report_page_free(p);
    return rc;
}

// --out naming one of a run's own files (a slip for --out RUN_DIR/report.html)
// would replace it with the page: refused before anything is read
static int check_out(char **dirs, int n, const char *out, rlhf_err *err) {
    static const char *const kept[] = {"metrics.jsonl", "config.json", "summary.json",
                                       "samples.jsonl", NULL};
    char p[PATH_MAX + 64];
    for (int i = 0; out && i < n; i++)
        for (int k = 0; kept[k]; k++) {
            snprintf(p, sizeof p, "%s/%s", dirs[i], kept[k]);
            if (same_file(out, p))
                return rlhf_fail(err,
                                 "--out %s is the run's %s: nothing was written (name an "
                                 "HTML file, e.g. --out %s/report.html)",
                                 out, p, dirs[i]);
        }
    return 0;
}

// reads every run folder, then writes the page; 0, or 1 after a message
static int report_runs(char **dirs, int n, const char *out, int n_samples) {
    rlhf_err err;
    if (check_out(dirs, n, out, &err)) {
        fprintf(stderr, "rlhf report: %s\n", err.msg);
        return 1;
    }
    run_data *runs = xcalloc((size_t)n, sizeof *runs);
    int loaded = 0, rc = 0;
    for (; loaded < n && rc == 0; loaded++)
        if (run_load(&runs[loaded], dirs[loaded], n_samples, &err)) rc = 1;
    if (rc) fprintf(stderr, "rlhf report: %s\n", err.msg);
    if (rc == 0) {
        set_labels(runs, n);
        rc = write_page(runs, n, out, n_samples);
    }
    for (int i = 0; i < loaded; i++) run_free(&runs[i]);
    free(runs);
    return rc;
}

int cmd_report(int argc, char **argv) {
    const char *out = NULL;
    int n_samples = 8;
    flag_def defs[] = {{"out", FLAG_STR, &out,
                        "the page to write (default: RUN_DIR/report.html for one run, "
                        "report.html in the current folder for several)"},
                       {"samples", FLAG_INT, &n_samples,
                        "sample lines shown per run (the first N of samples.jsonl; 0: none)", 0,
                        100000},
                       {NULL, 0, NULL, NULL}};
    char **flags = xmalloc((size_t)(argc + 1) * sizeof *flags);
    char **dirs = xmalloc((size_t)(argc + 1) * sizeof *dirs);
    int nf, nd, rc;
    split_args(argc, argv, defs, flags, &nf, dirs, &nd);
    rlhf_err err;
    int r =
        flags_parse(nf, flags, defs, "report",
                    "rlhf report RUN_DIR... [--out FILE.html]: one HTML page for one run folder\n"
                    "or several overlaid: a plot per metric of metrics.jsonl (x = step), each\n"
                    "run's config.json and summary.json as tables, and the first lines of\n"
                    "samples.jsonl. Static markup and inline SVG: no script, opens offline.\n"
                    "Malformed or torn lines of metrics.jsonl are skipped and counted on the\n"
                    "page; curves longer than 2000 points are thinned evenly (first and last\n"
                    "kept). Default --out: RUN_DIR/report.html for one run, else report.html in\n"
                    "the current folder.\n"
                    "example: rlhf report runs/sft runs/dpo --out runs/compare.html",
                    &err);
    if (r != 0 || nd == 0) {
        if (r < 0)
            fprintf(stderr, "rlhf report: %s\n", err.msg);
        else if (r == 0)
            fprintf(stderr, "rlhf report: name at least one run folder "
                            "(rlhf report RUN_DIR... [--out FILE.html]; see --help)\n");
        free(flags);
        free(dirs);
        return r == 1 ? 0 : 2;
    }
    rc = report_runs(dirs, nd, out, n_samples);
    free(flags);
    free(dirs);
    return rc;
}
