// study/study_cmd: the `rlhf study` command — run a study (or read its rows
// back with --from), then compute the verdict from the rows and write
// verdict.json, report.html and table.txt.
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "study/study.h"
#include "study/study_ctrl.h"
#include "train/run.h"

// OUT/figure.svg: the page's first plot, for READMEs and docs
static int write_figure(const char *out, rlhf_err *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/report.html", out);
    char *page = read_file(path, NULL, err);
    if (!page) return -1;
    char *a = strstr(page, "<svg"), *b = a ? strstr(a, "</svg>") : NULL;
    int rc = 0;
    if (a && b) {
        snprintf(path, sizeof path, "%s/figure.svg", out);
        rc = atomic_write_file(path, a, (size_t)(b + 6 - a), err);
    }
    free(page);
    return rc;
}

void study_list(FILE *f) {
    for (int i = 0; study_at(i); i++)
        fprintf(f, "  %-18s %s\n", study_at(i)->name, study_at(i)->paper);
}

// every line of a results file as a cJSON array (blank lines skipped)
static cJSON *read_rows(const char *path, rlhf_err *err) {
    size_t len = 0;
    char *text = read_file(path, &len, err);
    if (!text) return NULL;
    cJSON *rows = cJSON_CreateArray();
    int line = 0;
    for (char *p = text, *nl; p < text + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl) nl = text + len;
        *nl = 0;
        line++;
        if (strspn(p, " \t\r") == strlen(p)) continue;
        cJSON *row = cJSON_Parse(p);
        if (!row || !cJSON_IsObject(row)) {
            cJSON_Delete(row);
            cJSON_Delete(rows);
            free(text);
            rlhf_fail(err, "%s:%d: not a JSON object", path, line);
            return NULL;
        }
        cJSON_AddItemToArray(rows, row);
    }
    free(text);
    return rows;
}

// the value of a row's field as table text
static void cell_text(const cJSON *v, char *out, size_t n) {
    if (!v)
        snprintf(out, n, "%s", "");
    else if (cJSON_IsNumber(v))
        snprintf(out, n, "%.4g", v->valuedouble);
    else if (cJSON_IsString(v))
        snprintf(out, n, "%s", v->valuestring);
    else if (cJSON_IsBool(v))
        snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else
        snprintf(out, n, "%s", "…");
}

// the union of the rows' keys in order of first appearance (at most 24)
static int row_keys(const cJSON *rows, const char **keys, int max) {
    int nk = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const cJSON *f;
        cJSON_ArrayForEach(f, row) {
            if (!strcmp(f->string, "study")) continue;
            int seen = 0;
            for (int k = 0; k < nk && !seen; k++) seen = !strcmp(keys[k], f->string);
            if (!seen && nk < max) keys[nk++] = f->string;
        }
    }
    return nk;
}

// rows as cells (row-major, malloc'd strings) under keys
static char **row_cells(const cJSON *rows, const char **keys, int nk, int *nrows) {
    int nr = cJSON_GetArraySize(rows);
    char **cells = xcalloc((size_t)nr * nk + 1, sizeof(char *));
    int r = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        for (int k = 0; k < nk; k++) {
            char buf[256];
            cell_text(cJSON_GetObjectItemCaseSensitive(row, keys[k]), buf, sizeof buf);
            size_t l = strlen(buf) + 1;
            cells[(size_t)r * nk + k] = memcpy(xmalloc(l), buf, l);
        }
        r++;
    }
    *nrows = nr;
    return cells;
}

static void free_cells(char **cells, size_t n) {
    for (size_t i = 0; i < n; i++) free(cells[i]);
    free(cells);
}

static int write_table(const study_def *d, const cJSON *rows, const study_verdict *v,
                       const char *path, rlhf_err *err) {
    const char *keys[24];
    int nk = row_keys(rows, keys, 24), nr = 0;
    char **cells = row_cells(rows, keys, nk, &nr);
    size_t cap = 4096 + (size_t)nr * nk * 16;
    for (int i = 0; i < nr * nk; i++) cap += strlen(cells[i]) + 2;
    char *s = xmalloc(cap);
    size_t n =
        (size_t)snprintf(s, cap, "study: %s\npaper: %s\nclaim: %s\n", d->name, d->paper, d->claim);
    if (d->level) n += (size_t)snprintf(s + n, cap - n, "data: %s\n", study_level(rows, d->level));
    n += (size_t)snprintf(s + n, cap - n, "verdict: %s — %s\n%s\n\n",
                          study_outcome_name(v->outcome), v->figure, v->text);
    int width[24];
    for (int k = 0; k < nk; k++) {
        width[k] = (int)strlen(keys[k]);
        for (int r = 0; r < nr; r++) {
            int l = (int)strlen(cells[(size_t)r * nk + k]);
            if (l > width[k]) width[k] = l;
        }
    }
    for (int k = 0; k < nk; k++) n += (size_t)snprintf(s + n, cap - n, "%-*s  ", width[k], keys[k]);
    n += (size_t)snprintf(s + n, cap - n, "\n");
    for (int r = 0; r < nr; r++) {
        for (int k = 0; k < nk; k++)
            n += (size_t)snprintf(s + n, cap - n, "%-*s  ", width[k], cells[(size_t)r * nk + k]);
        n += (size_t)snprintf(s + n, cap - n, "\n");
    }
    free_cells(cells, (size_t)nr * nk);
    int rc = atomic_write_file(path, s, n, err);
    free(s);
    return rc;
}

static int write_page(const study_def *d, const cJSON *rows, const study_verdict *v, double seconds,
                      const char *path, rlhf_err *err) {
    char title[256];
    snprintf(title, sizeof title, "rlhf study %s", d->name);
    report_page *p = report_page_new(title);
    report_h(p, 1, title);
    char line[1600];
    snprintf(line, sizeof line, "Paper: %s", d->paper);
    report_p(p, line);
    snprintf(line, sizeof line, "Claim: %s", d->claim);
    report_p(p, line);
    if (d->level) {
        snprintf(line, sizeof line, "Data: our SAC agent's %s level (--level)",
                 study_level(rows, d->level));
        report_p(p, line);
    }
    snprintf(line, sizeof line, "Verdict of this run: %s — %s", study_outcome_name(v->outcome),
             v->figure);
    report_h(p, 2, line);
    report_p(p, v->text);
    int rc = d->report ? d->report(rows, p, err) : 0;
    if (rc == 0) {
        report_h(p, 2, "Results");
        snprintf(line, sizeof line,
                 "Every row of results.jsonl (%d rows); the verdict above is computed from them. "
                 "Seconds: %.0f.",
                 cJSON_GetArraySize(rows), seconds);
        report_p(p, line);
        const char *keys[24];
        int nk = row_keys(rows, keys, 24), nr = 0;
        char **cells = row_cells(rows, keys, nk, &nr);
        report_table(p, nk, keys, nr, (const char *const *)cells);
        free_cells(cells, (size_t)nr * nk);
        rc = report_page_write(p, path, err);
    }
    report_page_free(p);
    return rc;
}

int study_write_report(const study_def *d, const cJSON *rows, const char *out, double seconds,
                       study_verdict *v, rlhf_err *err) {
    memset(v, 0, sizeof *v);
    if (d->verdict(rows, v, err)) return -1;
    char path[1200];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "study", d->name);
    cJSON_AddStringToObject(j, "paper", d->paper);
    cJSON_AddStringToObject(j, "claim", d->claim);
    if (d->level) cJSON_AddStringToObject(j, "level", study_level(rows, d->level));
    cJSON_AddStringToObject(j, "verdict", study_outcome_name(v->outcome));
    cJSON_AddStringToObject(j, "figure", v->figure);
    cJSON_AddStringToObject(j, "text", v->text);
    cJSON_AddNumberToObject(j, "rows", cJSON_GetArraySize(rows));
    cJSON_AddNumberToObject(j, "seconds", round(seconds));
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/verdict.json", out);
    int rc = atomic_write_file(path, s, strlen(s), err);
    free(s);
    snprintf(path, sizeof path, "%s/table.txt", out);
    if (rc == 0) rc = write_table(d, rows, v, path, err);
    snprintf(path, sizeof path, "%s/report.html", out);
    if (rc == 0) rc = write_page(d, rows, v, seconds, path, err);
    if (rc == 0) rc = write_figure(out, err);
    return rc;
}

static int setup_ctx(study_ctx *c, const study_def *d, const study_cmd *o, rlhf_err *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->out, sizeof c->out, "%s", o->out);
    if (o->base)
        snprintf(c->base, sizeof c->base, "%s", o->base);
    else
        snprintf(c->base, sizeof c->base, "%s/base", o->out);
    snprintf(c->data, sizeof c->data, "%s/data", c->base);
    snprintf(c->sft, sizeof c->sft, "%s/sft", c->base);
    if (o->rlhf) {
        snprintf(c->rlhf, sizeof c->rlhf, "%s", o->rlhf);
    } else {
        ssize_t n = readlink("/proc/self/exe", c->rlhf, sizeof c->rlhf - 1);
        if (n <= 0) return rlhf_fail(err, "study: cannot find the rlhf binary (/proc/self/exe)");
        c->rlhf[n] = 0;
    }
    c->quick = o->quick;
    c->n_seeds = o->seeds > 0 ? o->seeds : o->quick ? 2 : 3;
    c->seed = o->seed;
    c->n_eval = o->quick ? 100 : 300;
    c->eval_samples = o->quick ? 4 : 8;
    snprintf(c->task, sizeof c->task, "%s", o->task ? o->task : "");
    snprintf(c->level, sizeof c->level, "%s", o->level ? o->level : d->level ? d->level : "");
    c->t0 = time_now();
    c->resume = o->resume && !o->overwrite; // --overwrite_output_dir: everything again
    return make_dirs(c->out, err);
}

// results.jsonl of an earlier run is kept unless --overwrite_output_dir
static int open_results(study_ctx *c, const study_cmd *o, rlhf_err *err) {
    if (run_lock(c->out, err)) return -1; // one study at a time in a folder
    char path[1200];
    snprintf(path, sizeof path, "%s/results.jsonl", c->out);
    struct stat st;
    if (stat(path, &st) == 0 && !o->overwrite && !o->resume)
        return rlhf_fail(err,
                         "study: %s holds an earlier study's results; pass --resume to go on "
                         "with it (the runs it finished are reused), --overwrite_output_dir to "
                         "replace them, or --from %s to redo the report",
                         c->out, path);
    c->results = fopen(path, "w");
    if (!c->results) return rlhf_fail(err, "study: cannot write %s", path);
    return 0;
}

// --task: checked before anything is made, so a typo costs no run (with --from
// too: the rows name their setting, but a bad value is still a mistake)
static int check_task(const study_def *d, const char *task, rlhf_err *err) {
    if (!task) return 0;
    if (!d->check_task)
        return rlhf_fail(err, "study: --task %s: study %s has one setting and takes no --task",
                         task, d->name);
    if (strlen(task) >= sizeof((study_ctx *)0)->task)
        return rlhf_fail(err, "study: --task is too long (%zu characters)", strlen(task));
    return d->check_task(task, err);
}

// --level: a study that trains on one dataset level takes another of them
static int check_level(const study_def *d, const char *level, rlhf_err *err) {
    if (!level) return 0;
    if (!d->level)
        return rlhf_fail(err,
                         "study: --level %s: study %s does not train on one dataset level and "
                         "takes no --level",
                         level, d->name);
    return study_ctrl_level_check(level, err);
}

// The children's GEMM paths: the built-in ones (RLHF_GEMM=fixed, src/nn/gemm.c) unless
// the user set RLHF_GEMM. The measured choice (auto) follows timings and the machine's
// cache of them, and RL runs diverge on other roundings: two runs of `study lamo --quick`
// collected different SAC data (their 1-row policy forwards on another decode path), and
// LaMo's seed 1 scored -2.2 on one and 41.9 on the other (docs/studies.md).
static void pin_gemm_paths(void) {
    const char *e = getenv("RLHF_GEMM");
    if (!e || !*e) setenv("RLHF_GEMM", "fixed", 1);
}

int study_check(const study_cmd *o, rlhf_err *err) {
    const study_def *d = o->name ? study_find(o->name) : NULL;
    if (!d)
        return rlhf_fail(err, "study: unknown study \"%s\" (rlhf study --list)",
                         o->name ? o->name : "");
    if (!o->out) return rlhf_fail(err, "study: --out DIR is required");
    return check_task(d, o->task, err) || check_level(d, o->level, err) ? -1 : 0;
}

int study_command(const study_cmd *o, rlhf_err *err) {
    if (study_check(o, err)) return -1;
    const study_def *d = study_find(o->name);
    study_ctx c;
    if (setup_ctx(&c, d, o, err)) return -1;
    double seconds = 0;
    char results[1200];
    snprintf(results, sizeof results, "%s/results.jsonl", c.out);
    const char *from = o->from ? o->from : results;
    if (!o->from) {
        pin_gemm_paths();
        if (open_results(&c, o, err)) return -1;
        int rc = d->no_sandbox ? 0 : study_base(&c, err);
        if (rc == 0) rc = d->run(&c, err);
        if (c.resume)
            fprintf(stderr,
                    "study: --resume: %d of its %d rlhf runs were finished before and reused\n",
                    c.reused, c.runs);
        // a row that could not be written (a full disk) would leave the verdict to the rest
        errno = 0;
        int werr = fflush(c.results) != 0 || ferror(c.results) ? (errno ? errno : EIO) : 0;
        if (fclose(c.results) != 0 && !werr) werr = errno ? errno : EIO;
        c.results = NULL;
        if (rc) return -1;
        if (werr)
            return rlhf_fail(err, "%s: write failed (%s); the study's rows are incomplete", results,
                             strerror(werr));
        seconds = time_now() - c.t0;
    }
    cJSON *rows = read_rows(from, err);
    if (!rows) return -1;
    if (o->from) {
        const cJSON *last = cJSON_GetArrayItem(rows, cJSON_GetArraySize(rows) - 1);
        seconds = last ? study_num(last, "t") : 0;
        if (isnan(seconds)) seconds = 0;
    }
    study_verdict v;
    int rc = study_write_report(d, rows, c.out, seconds, &v, err);
    if (rc == 0) {
        char path[1200];
        snprintf(path, sizeof path, "%s/table.txt", c.out);
        char *t = read_file(path, NULL, NULL);
        if (t) fputs(t, stdout);
        free(t);
        printf("{\"study\":\"%s\",\"verdict\":\"%s\",\"seconds\":%.0f}\n", d->name,
               study_outcome_name(v.outcome), seconds);
    }
    cJSON_Delete(rows);
    return rc;
}

// one table cell of markdown: '|' and newlines would break the table
static void md_cell(FILE *f, const char *s) {
    fputc(' ', f);
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else
            fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputs(" |", f);
}

int study_findings(const char *dir, FILE *f, rlhf_err *err) {
    fprintf(f,
            "| study | finding (the paper's claim) | paper | our verdict | key figure | seconds |\n"
            "|---|---|---|---|---|---|\n");
    int found = 0;
    for (int i = 0; study_at(i); i++) {
        const study_def *d = study_at(i);
        char path[1200];
        snprintf(path, sizeof path, "%s/%s/verdict.json", dir, d->name);
        char *text = read_file(path, NULL, NULL);
        cJSON *j = text ? cJSON_Parse(text) : NULL;
        free(text);
        fprintf(f, "|");
        md_cell(f, d->name);
        md_cell(f, d->claim);
        md_cell(f, d->paper);
        if (!j) {
            fprintf(f, " not run | | |\n");
            continue;
        }
        found++;
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(j, "seconds");
        md_cell(f, study_str(j, "verdict"));
        md_cell(f, study_str(j, "figure"));
        fprintf(f, " %.0f |\n", cJSON_IsNumber(sec) ? sec->valuedouble : 0.0);
        cJSON_Delete(j);
    }
    if (!found) return rlhf_fail(err, "study: no verdict.json under %s/<study>/", dir);
    return 0;
}
