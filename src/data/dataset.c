// data/dataset: reading JSONL(.gz) files in TRL's formats into examples,
// with a "FILE:LINE: reason" for every line that cannot be used; the
// train/eval split and the per-epoch shuffle. Tokenizing is dataset_tok.c,
// batching dataset_batch.c.
#include "data/dataset.h"

#include "io/json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const format_names[] = {
    "auto", "text", "messages", "prompt_completion", "preference", "unpaired", "prompt_only"};

const char *ds_format_name(ds_format f) {
    return (f >= DS_AUTO && f <= DS_PROMPT_ONLY) ? format_names[f] : "?";
}

int ds_format_from_name(const char *name) {
    for (int i = 0; name && i <= DS_PROMPT_ONLY; i++)
        if (strcmp(name, format_names[i]) == 0) return i;
    return -1;
}

// ------------------------------------------------------------- reporting --
void ds_report_add(ds_report *rep, const char *reason) {
    if (!rep) return;
    if (rep->n_reasons < DS_REPORT_KEEP) { // kept whole up to 511 bytes, then cut
        char *dst = rep->reason[rep->n_reasons++];
        size_t n = strlen(reason), cap = sizeof rep->reason[0] - 1;
        if (n > cap) n = cap;
        memcpy(dst, reason, n);
        dst[n] = '\0';
    }
    rep->n_skipped++;
}

void ds_report_format(const ds_report *rep, char *buf, size_t n) {
    int k =
        snprintf(buf, n, "kept %d of %d, skipped %d", rep->n_kept, rep->n_lines, rep->n_skipped);
    if (rep->n_fallback && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", %d implicit prompts by fallback", rep->n_fallback);
    if (rep->n_truncated && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", %d truncated", rep->n_truncated);
    for (int i = 0; i < rep->n_reasons && k >= 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, "%s%s", i == 0 ? " (first: " : "; ", rep->reason[i]);
    if (rep->n_reasons && k >= 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, ")");
}

// ---------------------------------------------------------------- fields --
static void field_free(ds_field *f) {
    free(f->text);
    for (int i = 0; i < f->n_msgs; i++) free((char *)f->msgs[i].content);
    free(f->msgs);
    memset(f, 0, sizeof *f);
}

static int field_present(const ds_field *f) {
    return f->text || f->msgs;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *d = xmalloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

// deep copy of messages [from, to) of src
static ds_field field_slice(const ds_field *src, int from, int to) {
    ds_field f = {0};
    f.n_msgs = to - from;
    f.msgs = xcalloc(f.n_msgs > 0 ? (size_t)f.n_msgs : 1, sizeof(chat_message));
    for (int i = 0; i < f.n_msgs; i++) {
        f.msgs[i].role = src->msgs[from + i].role;
        f.msgs[i].content = xstrdup(src->msgs[from + i].content);
    }
    return f;
}

static int messages_equal(const chat_message *a, const chat_message *b) {
    return a->role == b->role && strcmp(a->content, b->content) == 0;
}

static int field_equal(const ds_field *a, const ds_field *b) {
    if (a->text || b->text) return a->text && b->text && strcmp(a->text, b->text) == 0;
    if (a->n_msgs != b->n_msgs) return 0;
    for (int i = 0; i < a->n_msgs; i++)
        if (!messages_equal(&a->msgs[i], &b->msgs[i])) return 0;
    return 1;
}

// a string of zero bytes, or a message list that is empty or has only empty contents
static int field_empty(const ds_field *f) {
    if (f->text) return f->text[0] == '\0';
    for (int i = 0; i < f->n_msgs; i++)
        if (f->msgs[i].content[0]) return 0;
    return 1;
}

void ds_example_free(ds_example *e) {
    field_free(&e->text);
    field_free(&e->messages);
    field_free(&e->prompt);
    field_free(&e->completion);
    field_free(&e->chosen);
    field_free(&e->rejected);
}

static void tokens_free(ds_tokens *t) {
    free(t->prompt);
    for (int k = 0; k < 2; k++) {
        free(t->completion[k]);
        free(t->loss[k]);
    }
    memset(t, 0, sizeof *t);
}

void ds_free(ds_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n; i++) {
        ds_example_free(&ds->ex[i]);
        if (ds->tok) tokens_free(&ds->tok[i]);
    }
    free(ds->ex);
    free(ds->tok);
    free(ds->path);
    free(ds);
}

// ------------------------------------------------------------ JSON values --
static const char *json_kind(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

// the field, or NULL when absent or null
static const cJSON *get(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

// Line-level failure: "why" is written after "FILE:LINE: ".
typedef struct {
    char why[768];
} line_err;

static int bad(line_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(line_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->why, sizeof e->why, fmt, ap);
    va_end(ap);
    return -1;
}

// A list of {"role", "content"} objects into f.
static int parse_messages(const cJSON *v, const char *name, ds_field *f, line_err *e) {
    int n = cJSON_GetArraySize(v);
    f->msgs = xcalloc(n > 0 ? (size_t)n : 1, sizeof(chat_message));
    f->n_msgs = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsObject(m))
            return bad(e, "%s[%d] is %s, expected an object with \"role\" and \"content\"", name, i,
                       json_kind(m));
        const cJSON *role = get(m, "role"), *content = get(m, "content");
        if (!role) return bad(e, "%s[%d]: field \"role\" missing", name, i);
        if (!content) return bad(e, "%s[%d]: field \"content\" missing", name, i);
        if (!cJSON_IsString(role))
            return bad(e, "%s[%d]: field \"role\" is %s, expected a string", name, i,
                       json_kind(role));
        if (!cJSON_IsString(content))
            return bad(e, "%s[%d]: field \"content\" is %s, expected a string", name, i,
                       json_kind(content));
        int r = chat_role_from_name(role->valuestring);
        if (r < 0)
            return bad(e, "%s[%d]: unknown role \"%.64s\" (expected system, user or assistant)",
                       name, i, role->valuestring);
        f->msgs[i].role = (chat_role)r;
        f->msgs[i].content = xstrdup(content->valuestring);
        f->n_msgs = i + 1;
    }
    return 0;
}

// A string or a list of messages. required: missing is an error.
static int parse_field(const cJSON *o, const char *name, int required, ds_field *f, line_err *e) {
    const cJSON *v = get(o, name);
    if (!v) return required ? bad(e, "field \"%s\" missing", name) : 0;
    if (cJSON_IsString(v)) {
        f->text = xstrdup(v->valuestring);
        return 0;
    }
    if (cJSON_IsArray(v)) return parse_messages(v, name, f, e);
    return bad(e, "field \"%s\" is %s, expected a string or a list of messages", name,
               json_kind(v));
}

static int parse_string(const cJSON *o, const char *name, ds_field *f, line_err *e) {
    const cJSON *v = get(o, name);
    if (!v) return bad(e, "field \"%s\" missing", name);
    if (!cJSON_IsString(v))
        return bad(e, "field \"%s\" is %s, expected a string", name, json_kind(v));
    f->text = xstrdup(v->valuestring);
    return 0;
}

static int parse_number(const cJSON *o, const char *name, double *out, line_err *e) {
    const cJSON *v = get(o, name);
    *out = NAN;
    if (!v) return 0;
    if (!cJSON_IsNumber(v))
        return bad(e, "field \"%s\" is %s, expected a number", name, json_kind(v));
    if (!isfinite(v->valuedouble)) // 1e999 parses as inf
        return bad(e, "field \"%s\" is not a finite number", name);
    *out = v->valuedouble;
    return 0;
}

// The format a line's fields ask for. A field that only one format has decides
// it, so a first line missing a field is an error ("field \"rejected\"
// missing") rather than a silent guess of a poorer format.
static ds_format detect_format(const cJSON *o) {
    if (get(o, "chosen") || get(o, "rejected")) return DS_PREFERENCE;
    if (get(o, "label")) return DS_UNPAIRED;
    if (get(o, "completion")) return DS_PROMPT_COMPLETION;
    if (get(o, "messages")) return DS_MESSAGES;
    if (get(o, "text")) return DS_TEXT;
    if (get(o, "prompt")) return DS_PROMPT_ONLY;
    return DS_AUTO;
}

// ------------------------------------------------------ implicit prompts --
static const char HH_MARK[] = "\n\nAssistant:";
#define HH_MARK_LEN (sizeof HH_MARK - 1)

// end of the last HH_MARK lying wholly in s[0..limit), or 0 when none
static size_t last_mark_end(const char *s, size_t limit) {
    size_t best = 0;
    for (const char *p = s; (p = strstr(p, HH_MARK)) != NULL; p++) {
        size_t end = (size_t)(p - s) + HH_MARK_LEN;
        if (end > limit) break;
        best = end;
    }
    return best;
}

// Splits chosen/rejected strings into prompt + rest (see dataset.h).
static int split_implicit_text(ds_example *ex, line_err *e) {
    const char *c = ex->chosen.text, *r = ex->rejected.text;
    size_t plen = last_mark_end(c, strlen(c));
    if (plen == 0 || strncmp(c, r, plen) != 0) {
        size_t lcp = 0;
        while (c[lcp] && c[lcp] == r[lcp]) lcp++;
        plen = last_mark_end(c, lcp);
        if (plen == 0)
            return bad(e, "\"chosen\" and \"rejected\" share no prompt ending in "
                          "\"\\n\\nAssistant:\" (give an explicit \"prompt\")");
        ex->prompt_fallback = 1;
    }
    ex->prompt.text = xmalloc(plen + 1);
    memcpy(ex->prompt.text, c, plen);
    ex->prompt.text[plen] = '\0';
    char *nc = xstrdup(c + plen), *nr = xstrdup(r + plen);
    free(ex->chosen.text);
    free(ex->rejected.text);
    ex->chosen.text = nc;
    ex->rejected.text = nr;
    return 0;
}

// Splits message lists at their longest common prefix of whole messages.
static int split_implicit_messages(ds_example *ex, line_err *e) {
    ds_field *c = &ex->chosen, *r = &ex->rejected;
    int k = 0;
    while (k < c->n_msgs && k < r->n_msgs && messages_equal(&c->msgs[k], &r->msgs[k])) k++;
    if (k == 0)
        return bad(e, "\"chosen\" and \"rejected\" share no prompt (their first messages differ)");
    ds_field p = field_slice(c, 0, k), nc = field_slice(c, k, c->n_msgs),
             nr = field_slice(r, k, r->n_msgs);
    field_free(c);
    field_free(r);
    ex->prompt = p;
    *c = nc;
    *r = nr;
    return 0;
}

// ------------------------------------------------------------ one example --
static int check_kinds(const ds_example *ex, line_err *e) {
    const ds_field *f[4] = {&ex->prompt, &ex->completion, &ex->chosen, &ex->rejected};
    static const char *names[4] = {"prompt", "completion", "chosen", "rejected"};
    int first = -1;
    for (int i = 0; i < 4; i++) {
        if (!field_present(f[i])) continue;
        if (first < 0) {
            first = i;
            continue;
        }
        if ((f[i]->msgs != NULL) != (f[first]->msgs != NULL))
            return bad(e, "\"%s\" is %s but \"%s\" is %s", names[first],
                       f[first]->msgs ? "a list of messages" : "a string", names[i],
                       f[i]->msgs ? "a list of messages" : "a string");
    }
    return 0;
}

static int parse_example(const cJSON *o, ds_format fmt, ds_example *ex, int *fallback,
                         line_err *e) {
    ex->label = -1;
    switch (fmt) {
    case DS_TEXT:
        if (parse_string(o, "text", &ex->text, e)) return -1;
        if (!ex->text.text[0]) return bad(e, "field \"text\" is empty");
        break;
    case DS_MESSAGES: {
        const cJSON *v = get(o, "messages");
        if (!v) return bad(e, "field \"messages\" missing");
        if (!cJSON_IsArray(v))
            return bad(e, "field \"messages\" is %s, expected a list of messages", json_kind(v));
        if (parse_messages(v, "messages", &ex->messages, e)) return -1;
        int any = 0;
        for (int i = 0; i < ex->messages.n_msgs; i++)
            any |= ex->messages.msgs[i].role == CHAT_ASSISTANT;
        if (!any) return bad(e, "field \"messages\" has no assistant message (nothing to learn)");
        ex->conversational = 1;
        break;
    }
    case DS_PROMPT_COMPLETION:
    case DS_UNPAIRED:
        if (parse_field(o, "prompt", 1, &ex->prompt, e)) return -1;
        if (parse_field(o, "completion", 1, &ex->completion, e)) return -1;
        if (check_kinds(ex, e)) return -1;
        if (field_empty(&ex->completion)) return bad(e, "field \"completion\" is empty");
        if (fmt == DS_UNPAIRED) {
            const cJSON *l = get(o, "label");
            if (!l) return bad(e, "field \"label\" missing");
            if (cJSON_IsBool(l))
                ex->label = cJSON_IsTrue(l) ? 1 : 0;
            else if (cJSON_IsNumber(l) && (l->valuedouble == 0 || l->valuedouble == 1))
                ex->label = (int)l->valuedouble;
            else
                return bad(e, "field \"label\" is %s, expected true or false", json_kind(l));
        }
        break;
    case DS_PREFERENCE:
        if (parse_field(o, "prompt", 0, &ex->prompt, e)) return -1;
        if (parse_field(o, "chosen", 1, &ex->chosen, e)) return -1;
        if (parse_field(o, "rejected", 1, &ex->rejected, e)) return -1;
        if (check_kinds(ex, e)) return -1;
        if (field_equal(&ex->chosen, &ex->rejected))
            return bad(e, "\"chosen\" and \"rejected\" are identical");
        if (!field_present(&ex->prompt)) {
            ex->implicit_prompt = 1;
            if (ex->chosen.text ? split_implicit_text(ex, e) : split_implicit_messages(ex, e))
                return -1;
            *fallback += ex->prompt_fallback;
        }
        if (field_empty(&ex->chosen))
            return bad(e, "field \"chosen\" is empty%s",
                       ex->implicit_prompt ? " after the prompt" : "");
        if (field_empty(&ex->rejected))
            return bad(e, "field \"rejected\" is empty%s",
                       ex->implicit_prompt ? " after the prompt" : "");
        break;
    case DS_PROMPT_ONLY:
        if (parse_field(o, "prompt", 1, &ex->prompt, e)) return -1;
        break;
    case DS_AUTO:
        return bad(e, "no format");
    }
    ex->conversational |= ex->prompt.msgs || ex->completion.msgs || ex->chosen.msgs;
    if (parse_number(o, "margin", &ex->margin, e)) return -1;
    if (parse_number(o, "strength", &ex->strength, e)) return -1;
    if (parse_number(o, "score", &ex->score, e)) return -1;
    return 0;
}

// ------------------------------------------------------------ line reader --
// Lines of a plain or gzip file (zlib reads both; gzip is told by its magic
// bytes), one at a time, of any length.
typedef struct {
    gzFile gz;
    char *buf;
    size_t cap, pos, fill;
    int eof, gzip;
    long lines; // lines returned
} line_reader;

// A line this long is not a dataset row (a binary file, or an endless stream
// such as /dev/zero, which would otherwise fill the memory)
#define DS_MAX_LINE ((size_t)256 << 20)

static int reader_open(line_reader *r, const char *path, rlhf_err *err) {
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) return rlhf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[2] = {0, 0};
    size_t got = fread(magic, 1, 2, f);
    fclose(f);
    r->gzip = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    r->gz = gzopen(path, "rb");
    if (!r->gz) return rlhf_fail(err, "%s: cannot open", path);
    gzbuffer(r->gz, 1 << 17);
    r->cap = 1 << 16;
    r->buf = xmalloc(r->cap);
    return 0;
}

static void reader_close(line_reader *r) {
    if (r->gz) gzclose(r->gz);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

// 1: a line (NUL-terminated, without "\n" or "\r\n") in *line; 0: end; -1: error.
static int reader_next(line_reader *r, const char *path, char **line, size_t *len, rlhf_err *err) {
    for (;;) {
        char *start = r->buf + r->pos;
        char *nl = memchr(start, '\n', r->fill - r->pos);
        if (nl || (r->eof && r->fill > r->pos)) {
            size_t n = nl ? (size_t)(nl - start) : r->fill - r->pos;
            r->pos += n + (nl ? 1 : 0);
            start[n] = '\0'; // there is room: the buffer keeps one spare byte
            if (n && start[n - 1] == '\r') start[--n] = '\0';
            *line = start;
            *len = n;
            r->lines++;
            return 1;
        }
        if (r->eof) return 0;
        if (r->fill - r->pos > DS_MAX_LINE)
            return rlhf_fail(err,
                             "%s: line %ld runs past %zu MiB without a newline (not a JSONL "
                             "file?)",
                             path, r->lines + 1, DS_MAX_LINE >> 20);
        // keep the unconsumed tail, make room, read more
        memmove(r->buf, r->buf + r->pos, r->fill - r->pos);
        r->fill -= r->pos;
        r->pos = 0;
        if (r->cap - r->fill < 4096) {
            r->cap *= 2;
            r->buf = xrealloc(r->buf, r->cap);
        }
        int got = gzread(r->gz, r->buf + r->fill, (unsigned)(r->cap - r->fill - 1));
        int errnum = Z_OK;
        const char *msg = gzerror(r->gz, &errnum);
        if (got < 0 || (errnum != Z_OK && errnum != Z_STREAM_END))
            return rlhf_fail(err, "%s: %s (%s)", path,
                             r->gzip ? "gzip stream is truncated or corrupt" : "read error", msg);
        if (got == 0) r->eof = 1;
        r->fill += (size_t)got;
    }
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

// ------------------------------------------------------------------ load --
int ds_load(ds_dataset **out, const char *path, const ds_load_opts *o, ds_report *rep,
            rlhf_err *err) {
    *out = NULL;
    ds_load_opts def = {0};
    if (!o) o = &def;
    ds_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    if (o->format < DS_AUTO || o->format > DS_PROMPT_ONLY)
        return rlhf_fail(err, "%s: invalid format %d", path, (int)o->format);
    line_reader r;
    if (reader_open(&r, path, err)) return -1;
    ds_dataset *ds = xcalloc(1, sizeof *ds);
    ds->path = xstrdup(path);
    ds->format = o->format;
    int cap = 0, lineno = 0, rc = 0;
    char *line = NULL;
    size_t len = 0;
    int got;
    while ((got = reader_next(&r, path, &line, &len, err)) == 1) {
        lineno++;
        if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3;
            len -= 3;
        }
        if (blank(line, len)) continue;
        rep->n_lines++;
        line_err e = {{0}};
        ds_example ex;
        memset(&ex, 0, sizeof ex);
        int fallback = 0, ok = 0;
        const char *end = NULL;
        char nul[256] = "";
        // cJSON would cut the string at the NUL and the text would silently change
        cJSON *j = json_find_nul(line, len, nul, sizeof nul)
                       ? NULL
                       : cJSON_ParseWithLengthOpts(line, len + 1, &end, 1); // + its NUL
        if (!j && nul[0]) {
            bad(&e, "%s%s holds a \\u0000 (NUL) character, which is not supported",
                nul[0] == '"' ? "field " : "", nul);
        } else if (!j) {
            size_t col = end && end >= line && end <= line + len ? (size_t)(end - line) + 1 : 1;
            bad(&e, "invalid JSON at column %zu", col);
        } else if (!cJSON_IsObject(j)) {
            bad(&e, "expected a JSON object, found %s", json_kind(j));
        } else {
            ds_format fmt = ds->format;
            if (fmt == DS_AUTO) fmt = detect_format(j);
            if (fmt == DS_AUTO)
                bad(&e, "cannot tell the format: no field \"text\", \"messages\", \"prompt\", or "
                        "\"chosen\" + \"rejected\"");
            else if (parse_example(j, fmt, &ex, &fallback, &e) == 0) {
                ok = 1;
                ds->format = fmt; // fixed by the first good line
            }
        }
        cJSON_Delete(j);
        if (!ok) {
            ds_example_free(&ex);
            char msg[1024];
            snprintf(msg, sizeof msg, "%s:%d: %s", path, lineno, e.why);
            if (!o->skip_bad_lines) {
                rlhf_fail(err, "%s", msg);
                rc = -1;
                break;
            }
            ds_report_add(rep, msg);
            continue;
        }
        ex.line = lineno;
        ds->n_fallback += fallback;
        if (ds->n == cap) {
            cap = cap ? 2 * cap : 256;
            ds->ex = xrealloc(ds->ex, (size_t)cap * sizeof(ds_example));
        }
        ds->ex[ds->n++] = ex;
    }
    if (got < 0) rc = -1;
    reader_close(&r);
    if (rc == 0 && ds->n == 0)
        rc = rlhf_fail(err, "%s: no examples (%d non-blank lines, %d skipped)", path, rep->n_lines,
                       rep->n_skipped);
    if (rc) {
        ds_free(ds);
        return -1;
    }
    rep->n_kept = ds->n;
    rep->n_fallback = ds->n_fallback;
    *out = ds;
    return 0;
}

// ----------------------------------------------------- split and shuffle --
static uint64_t below(rlhf_rng *r, uint64_t n) { // uniform in [0, n) (n < 2^32)
    return ((rng_u64(r) >> 32) * n) >> 32;
}

void ds_epoch_order(int n, uint64_t seed, int epoch, int *order) {
    rlhf_rng r;
    rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1)));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)below(&r, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static ds_dataset *empty_like(const ds_dataset *ds, int n) {
    ds_dataset *d = xcalloc(1, sizeof *d);
    d->path = xstrdup(ds->path);
    d->format = ds->format;
    d->pad_id = ds->pad_id;
    d->ex = xcalloc(n > 0 ? (size_t)n : 1, sizeof(ds_example));
    if (ds->tok) d->tok = xcalloc(n > 0 ? (size_t)n : 1, sizeof(ds_tokens));
    return d;
}

int ds_split(ds_dataset *all, double eval_ratio, uint64_t seed, ds_dataset **train,
             ds_dataset **eval, rlhf_err *err) {
    *train = *eval = NULL;
    if (!(eval_ratio >= 0 && eval_ratio < 1))
        return rlhf_fail(err, "eval ratio %g is not in [0, 1)", eval_ratio);
    int n = all->n;
    int n_eval = (int)floor(eval_ratio * n + 0.5);
    if (eval_ratio > 0 && n_eval == 0) n_eval = 1;
    if (n_eval >= n)
        return rlhf_fail(err, "%s: %d examples leave none for training with eval ratio %g",
                         all->path, n, eval_ratio);
    int *order = xmalloc((size_t)n * sizeof(int));
    uint8_t *is_eval = xcalloc((size_t)n, 1);
    ds_epoch_order(n, seed, -1, order);
    for (int i = 0; i < n_eval; i++) is_eval[order[i]] = 1;
    ds_dataset *tr = empty_like(all, n - n_eval), *ev = empty_like(all, n_eval);
    for (int i = 0; i < n; i++) {
        ds_dataset *d = is_eval[i] ? ev : tr;
        d->ex[d->n] = all->ex[i];
        if (all->tok) d->tok[d->n] = all->tok[i];
        d->n_fallback += all->ex[i].prompt_fallback;
        d->n++;
    }
    free(order);
    free(is_eval);
    all->n = 0; // the examples moved
    ds_free(all);
    *train = tr;
    *eval = ev;
    return 0;
}
