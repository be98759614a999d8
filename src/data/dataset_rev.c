// data/dataset_rev: SRPO's revision sequences as ordinary examples (see dataset_rev.h).
#include "data/dataset_rev.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/json.h"

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

// ----------------------------------------------------------- instructions --

// One line of f into *buf (grown), without its newline: 1, or 0 at the end.
static int read_line(gzFile f, char **buf, size_t *cap, size_t *len) {
    *len = 0;
    for (;;) {
        if (*cap - *len < 2) {
            *cap = *cap ? 2 * *cap : 4096;
            *buf = xrealloc(*buf, *cap);
        }
        if (!gzgets(f, *buf + *len, (int)(*cap - *len))) return *len > 0;
        *len += strlen(*buf + *len);
        if (*len && (*buf)[*len - 1] == '\n') {
            (*buf)[--*len] = '\0';
            return 1;
        }
    }
}

int rev_instructions_read(const char *path, rev_instructions *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb"); // plain files are read as they are
    if (!f) return rlhf_fail(err, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, len;
    int rc = 0, cap_lines = 0;
    for (int no = 1; rc == 0 && read_line(f, &line, &cap, &len); no++) {
        char *s = line;
        if (no == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) s += 3, len -= 3;
        if (no >= cap_lines) {
            int grow = cap_lines ? 2 * cap_lines : 1024;
            out->at = xrealloc(out->at, (size_t)grow * sizeof(char *));
            memset(out->at + cap_lines, 0, (size_t)(grow - cap_lines) * sizeof(char *));
            cap_lines = grow;
        }
        out->n_lines = no;
        if (!strstr(s, "revision_prompt")) continue; // the common case: nothing to parse
        char where[128];
        if (json_find_nul(s, len, where, sizeof where)) {
            rc = rlhf_fail(err, "%s:%d: %s holds a \\u0000 (NUL) character", path, no, where);
            break;
        }
        cJSON *j = cJSON_ParseWithLength(s, len);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "revision_prompt");
        if (!cJSON_IsObject(j))
            rc = rlhf_fail(err, "%s:%d: not a JSON object", path, no);
        else if (cJSON_IsString(v))
            out->at[no] = dup_str(v->valuestring);
        else if (v && !cJSON_IsNull(v))
            rc = rlhf_fail(err, "%s:%d: \"revision_prompt\" must be a string", path, no);
        cJSON_Delete(j);
    }
    free(line);
    gzclose(f);
    if (rc) rev_instructions_free(out);
    return rc;
}

const char *rev_instruction(const rev_instructions *r, int line, const char *fallback) {
    if (r && line >= 1 && line <= r->n_lines && r->at[line]) return r->at[line];
    return fallback;
}

void rev_instructions_free(rev_instructions *r) {
    for (int i = 0; r->at && i <= r->n_lines; i++) free(r->at[i]);
    free(r->at);
    memset(r, 0, sizeof *r);
}

// --------------------------------------------------------------- prompts --

void rev_field_free(ds_field *f) {
    free(f->text);
    for (int i = 0; i < f->n_msgs; i++) free((char *)f->msgs[i].content);
    free(f->msgs);
    memset(f, 0, sizeof *f);
}

static ds_field field_copy(const ds_field *src) {
    ds_field f = {0};
    if (src->text) f.text = dup_str(src->text);
    if (src->msgs) {
        f.n_msgs = src->n_msgs;
        f.msgs = xcalloc(f.n_msgs > 0 ? (size_t)f.n_msgs : 1, sizeof(chat_message));
        for (int i = 0; i < f.n_msgs; i++)
            f.msgs[i] = (chat_message){src->msgs[i].role, dup_str(src->msgs[i].content)};
    }
    return f;
}

void rev_prompt_field(const ds_field *prompt, const ds_field *response, const char *instruction,
                      ds_field *out) {
    memset(out, 0, sizeof *out);
    if (!prompt->msgs) { // strings: one text
        const char *y = response->text ? response->text : "";
        size_t a = strlen(prompt->text ? prompt->text : ""), b = strlen(y), c = strlen(instruction);
        out->text = xmalloc(a + b + c + 1);
        memcpy(out->text, prompt->text ? prompt->text : "", a);
        memcpy(out->text + a, y, b);
        memcpy(out->text + a + b, instruction, c + 1);
        return;
    }
    int ny = response->msgs ? response->n_msgs : 1;
    out->n_msgs = prompt->n_msgs + ny + 1;
    out->msgs = xcalloc((size_t)out->n_msgs, sizeof(chat_message));
    int k = 0;
    for (int i = 0; i < prompt->n_msgs; i++)
        out->msgs[k++] = (chat_message){prompt->msgs[i].role, dup_str(prompt->msgs[i].content)};
    if (response->msgs)
        for (int i = 0; i < response->n_msgs; i++)
            out->msgs[k++] =
                (chat_message){response->msgs[i].role, dup_str(response->msgs[i].content)};
    else
        out->msgs[k++] =
            (chat_message){CHAT_ASSISTANT, dup_str(response->text ? response->text : "")};
    out->msgs[k++] = (chat_message){CHAT_USER, dup_str(instruction)};
}

// -------------------------------------------------------------- datasets --

ds_dataset *rev_dataset_alloc(const char *path, ds_format f, int n) {
    ds_dataset *ds = xcalloc(1, sizeof *ds);
    ds->path = dup_str(path);
    ds->format = f;
    ds->n = n;
    ds->ex = xcalloc(n > 0 ? (size_t)n : 1, sizeof(ds_example));
    return ds;
}

int rev_dataset_build(const ds_dataset *src, const rev_instructions *instructions,
                      const char *default_instruction, ds_dataset **out, rlhf_err *err) {
    *out = NULL;
    if (src->format != DS_PREFERENCE)
        return rlhf_fail(err,
                         "%s: revisions need preference data (prompt, chosen, rejected); this "
                         "file is %s",
                         src->path, ds_format_name(src->format));
    ds_dataset *ds = rev_dataset_alloc(src->path, DS_PREFERENCE, REV_VIEWS * src->n);
    for (int i = 0; i < src->n; i++) {
        const ds_example *e = &src->ex[i];
        const char *ins = rev_instruction(instructions, e->line, default_instruction);
        for (int v = 0; v < REV_VIEWS; v++) {
            ds_example *x = &ds->ex[REV_VIEWS * i + v];
            *x = *e; // numbers, flags and line; the fields are copied below
            x->chosen = field_copy(&e->chosen);
            x->rejected = field_copy(&e->rejected);
            memset(&x->text, 0, sizeof x->text);
            memset(&x->messages, 0, sizeof x->messages);
            memset(&x->completion, 0, sizeof x->completion);
            if (v == REV_GENERATE)
                x->prompt = field_copy(&e->prompt);
            else
                rev_prompt_field(&e->prompt, v == REV_GIVEN_REJECTED ? &e->rejected : &e->chosen,
                                 ins, &x->prompt);
        }
    }
    *out = ds;
    return 0;
}
