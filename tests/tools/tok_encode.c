// tok_encode: a test tool that runs a tokenizer over stdin, one item a line, so
// scripts (tests/tokenizer_test.py) can compare it with other implementations.
//
//   tok_encode PATH [--allow-special] [--hex] [--decode]
//
// PATH is anything tok_load accepts, or "byte". Each input line is a JSON string
// (or, with --hex, the text's bytes in hex, which can hold NUL); each output line
// is the JSON array of its ids. With --decode each input line is a JSON array of
// ids and each output line the decoded bytes in hex. Exit status 1 on any error.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tok/tok.h"

static int unhex(const char *s, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    if (n % 2) return -1;
    for (size_t i = 0; i < n; i += 2) {
        const char *hi = strchr(digits, s[i] | 0x20), *lo = strchr(digits, s[i + 1] | 0x20);
        if (!s[i] || !s[i + 1] || !hi || !lo) return -1;
        out[i / 2] = (char)((hi - digits) * 16 + (lo - digits));
    }
    return (int)(n / 2);
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int allow_special = 0, hex = 0, decode = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--allow-special") == 0)
            allow_special = 1;
        else if (strcmp(argv[i], "--hex") == 0)
            hex = 1;
        else if (strcmp(argv[i], "--decode") == 0)
            decode = 1;
        else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: %s PATH|byte [--allow-special] [--hex] [--decode]\n", argv[0]);
        return 2;
    }
    rlhf_err err;
    rlhf_tokenizer *t = NULL;
    if (strcmp(path, "byte") == 0)
        t = tok_byte_create();
    else if (tok_load(&t, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char *line = NULL, *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (decode) {
            cJSON *a = cJSON_Parse(line);
            int n = cJSON_GetArraySize(a), k = 0;
            int *ids = (int *)malloc(sizeof(int) * (size_t)(n + 1));
            for (cJSON *e = a ? a->child : NULL; e; e = e->next) ids[k++] = (int)e->valuedouble;
            size_t len;
            char *text = tok_decode_ex(t, ids, n, 0, &len);
            for (size_t i = 0; i < len; i++) printf("%02x", (unsigned char)text[i]);
            printf("\n");
            free(text);
            free(ids);
            cJSON_Delete(a);
            continue;
        }
        const char *text;
        size_t len;
        cJSON *s = NULL;
        if (hex) {
            buf = (char *)realloc(buf, (size_t)got / 2 + 1);
            int n = unhex(line, (size_t)got, buf);
            if (n < 0) {
                fprintf(stderr, "stdin:%d: not hex\n", lineno);
                return 1;
            }
            text = buf;
            len = (size_t)n;
        } else {
            s = cJSON_Parse(line);
            if (!cJSON_IsString(s)) {
                fprintf(stderr, "stdin:%d: not a JSON string\n", lineno);
                return 1;
            }
            text = s->valuestring;
            len = strlen(text);
        }
        int *ids, n;
        if (tok_encode(t, text, len, &ids, &n, allow_special, &err)) {
            fprintf(stderr, "stdin:%d: %s\n", lineno, err.msg);
            printf("null\n");
            rc = 1;
        } else {
            printf("[");
            for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
            printf("]\n");
            free(ids);
        }
        cJSON_Delete(s);
    }
    free(line);
    free(buf);
    tok_free(t);
    return rc;
}
