// io/json: finding \u0000 escapes (which cJSON silently turns into a cut
// string) and naming the field that holds one.
#include "io/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

#define MAX_FRAMES 32
#define KEY_CAP 48

typedef struct {
    char kind;         // '{' or '['
    int index;         // arrays: the element being read
    int expect_key;    // objects: the next string is a key
    char key[KEY_CAP]; // objects: the current key (raw text, cut to KEY_CAP - 1)
} frame;

// "messages[2].content" for the frames [0, n); "..." marks frames not kept.
static void path(const frame *f, int depth, char *out, size_t cap) {
    size_t k = 0;
    out[0] = '\0';
    int shown = depth < MAX_FRAMES ? depth : MAX_FRAMES;
    for (int i = 0; i < shown && k + 1 < cap; i++) {
        int n = f[i].kind == '['
                    ? snprintf(out + k, cap - k, "[%d]", f[i].index)
                    : snprintf(out + k, cap - k, "%s%s", k ? "." : "", f[i].key);
        k += n > 0 ? (size_t)n : 0;
    }
    if (k < cap && depth > MAX_FRAMES) snprintf(out + k, cap - k, "...");
}

static int is_zero_escape(const char *s, size_t i, size_t len) {
    // s[i] is the 'u' of a \u escape
    return i + 4 < len && s[i + 1] == '0' && s[i + 2] == '0' && s[i + 3] == '0' && s[i + 4] == '0';
}

int json_find_nul(const char *s, size_t len, char *where, size_t cap) {
    frame f[MAX_FRAMES];
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        frame *top = depth > 0 && depth <= MAX_FRAMES ? &f[depth - 1] : NULL;
        if (c == '{' || c == '[') {
            if (depth < MAX_FRAMES) {
                frame *n = &f[depth];
                memset(n, 0, sizeof *n);
                n->kind = c;
                n->expect_key = c == '{';
            }
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
        } else if (c == ',') {
            if (top && top->kind == '[') top->index++;
            if (top && top->kind == '{') top->expect_key = 1;
        } else if (c == ':') {
            if (top && top->kind == '{') top->expect_key = 0;
        } else if (c == '"') {
            int is_key = top && top->kind == '{' && top->expect_key;
            int nul = 0;
            size_t start = ++i;
            for (; i < len && s[i] != '"'; i++)
                if (s[i] == '\\' && i + 1 < len) {
                    i++;
                    if (s[i] == 'u' && is_zero_escape(s, i, len)) nul = 1;
                }
            if (is_key) {
                size_t n = i - start < KEY_CAP - 1 ? i - start : KEY_CAP - 1;
                memcpy(top->key, s + start, n);
                top->key[n] = '\0';
            }
            if (!nul) continue;
            if (!where || !cap) return 1;
            char p[512];
            if (is_key) {
                path(f, depth - 1, p, sizeof p); // the object holding the key
                if (p[0]) snprintf(where, cap, "a key in \"%s\"", p);
                else snprintf(where, cap, "a key of the top-level object");
            } else {
                path(f, depth, p, sizeof p);
                if (p[0]) snprintf(where, cap, "\"%s\"", p);
                else snprintf(where, cap, "the top-level string");
            }
            return 1;
        }
    }
    return 0;
}

cJSON *json_read_doc(const char *path, rlhf_err *err) {
    size_t len = 0;
    char *text = read_file(path, &len, err), where[256];
    if (!text) return NULL;
    cJSON *j = NULL;
    if (json_find_nul(text, len, where, sizeof where))
        rlhf_fail(err, "%s: %s holds a \\u0000 (NUL) character", path, where);
    else if (!(j = cJSON_ParseWithLength(text, len)))
        rlhf_fail(err, "%s: not valid JSON", path);
    free(text);
    return j;
}

cJSON *json_read_object(const char *path, rlhf_err *err) {
    cJSON *o = json_read_doc(path, err);
    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        rlhf_fail(err, "%s: not a JSON object", path);
        return NULL;
    }
    return o;
}
