// cli/flags: parsing of command-line flags and --config files.
#include "cli/flags.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"

static const flag_def *find_flag(const flag_def *defs, const char *name, size_t len) {
    for (const flag_def *d = defs; d->name; d++) {
        if (strlen(d->name) == len && strncmp(d->name, name, len) == 0) return d;
        if (d->alias && strlen(d->alias) == len && strncmp(d->alias, name, len) == 0) return d;
    }
    return NULL;
}

static int set_value(const flag_def *d, const char *v, const char *where, rlhf_err *err) {
    char *end;
    errno = 0;
    switch (d->type) {
    case FLAG_STR:
        *(const char **)d->ptr = v;
        return 0;
    case FLAG_AUTO:
        if (!strcmp(v, "auto")) {
            *(int *)d->ptr = -1;
            return 0;
        }
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *(int *)d->ptr = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *(int *)d->ptr = 0;
        else return rlhf_fail(err, "%s--%s must be true, false or auto (got \"%s\")", where, d->name, v);
        return 0;
    case FLAG_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *(int *)d->ptr = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *(int *)d->ptr = 0;
        else return rlhf_fail(err, "%s--%s must be true or false (got \"%s\")", where, d->name, v);
        return 0;
    case FLAG_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < -2147483647L || x > 2147483647L)
            return rlhf_fail(err, "%s--%s must be an integer (got \"%s\")", where, d->name, v);
        if ((d->lo || d->hi) && (x < d->lo || x > d->hi))
            return rlhf_fail(err, "%s--%s must be in [%g, %g] (got %ld)", where, d->name, d->lo,
                             d->hi, x);
        *(int *)d->ptr = (int)x;
        return 0;
    }
    case FLAG_U64: {
        if (*v == '-') return rlhf_fail(err, "%s--%s must be a non-negative integer (got \"%s\")", where, d->name, v);
        unsigned long long x = strtoull(v, &end, 10);
        if (!*v || *end || errno)
            return rlhf_fail(err, "%s--%s must be a non-negative integer (got \"%s\")", where,
                             d->name, v);
        *(uint64_t *)d->ptr = x;
        return 0;
    }
    case FLAG_DOUBLE:
    case FLAG_FLOAT: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return rlhf_fail(err, "%s--%s must be a number (got \"%s\")", where, d->name, v);
        if ((d->lo || d->hi) && (x < d->lo || x > d->hi))
            return rlhf_fail(err, "%s--%s must be in [%g, %g] (got %g)", where, d->name, d->lo,
                             d->hi, x);
        if (d->type == FLAG_DOUBLE) *(double *)d->ptr = x;
        else *(float *)d->ptr = (float)x;
        return 0;
    }
    }
    return rlhf_fail(err, "internal: bad flag type");
}

// strings from a --config file must outlive the parse: kept (and reachable)
// until flags_free_config_strings
static char **kept;
static size_t n_kept, cap_kept;

static char *keep_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    if (n_kept == cap_kept) {
        cap_kept = cap_kept ? 2 * cap_kept : 16;
        kept = xrealloc(kept, cap_kept * sizeof *kept);
    }
    kept[n_kept++] = p;
    return p;
}

void flags_free_config_strings(void) {
    for (size_t i = 0; i < n_kept; i++) free(kept[i]);
    free(kept);
    kept = NULL;
    n_kept = cap_kept = 0;
}

// a JSON null in a --config file: what flags_to_json writes for a string flag that
// is unset (none) and for a number that is NaN, so a run's config.json can be given
// back as --config. A number takes it only where its default is NaN (a flag whose
// help says "nan: ..."); elsewhere NaN would be a bad value. 1 when d took it.
static int null_value(const flag_def *d) {
    switch (d->type) {
    case FLAG_STR: *(const char **)d->ptr = NULL; return 1;
    case FLAG_DOUBLE: return isnan(*(double *)d->ptr);
    case FLAG_FLOAT: return isnan(*(float *)d->ptr);
    default: return 0;
    }
}

static int apply_config(const char *path, const flag_def *defs, rlhf_err *err) {
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return rlhf_fail_ctx(err, "--config");
    char nul[256];
    if (json_find_nul(text, len, nul, sizeof nul)) {
        free(text);
        return rlhf_fail(err, "--config %s: %s holds a \\u0000 (NUL) character", path, nul);
    }
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return rlhf_fail(err, "--config %s: not a JSON object", path);
    }
    char where[600];
    snprintf(where, sizeof where, "%s: ", path);
    for (cJSON *it = o->child; it; it = it->next) {
        const char *key = it->string;
        if (!strncmp(key, "--", 2)) key += 2;
        const flag_def *d = find_flag(defs, key, strlen(key));
        if (!d) {
            rlhf_fail(err, "%s: unknown key \"%s\" (keys are the command's flag names)", path,
                      it->string);
            cJSON_Delete(o);
            return -1;
        }
        if (cJSON_IsNull(it) && null_value(d)) continue;
        char buf[64];
        const char *v;
        if (cJSON_IsString(it)) v = keep_string(it->valuestring);
        else if (cJSON_IsBool(it)) v = cJSON_IsTrue(it) ? "true" : "false";
        else if (cJSON_IsNumber(it)) {
            if (it->valuedouble == floor(it->valuedouble) && fabs(it->valuedouble) < 1e15)
                snprintf(buf, sizeof buf, "%.0f", it->valuedouble);
            else
                snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
            v = d->type == FLAG_STR ? keep_string(buf) : buf;
        } else {
            rlhf_fail(err, "%s: key \"%s\" must be a string, number or boolean%s", path, key,
                      cJSON_IsNull(it) ? " (null stands for none only where a flag has none)" : "");
            cJSON_Delete(o);
            return -1;
        }
        if (set_value(d, v, where, err)) {
            cJSON_Delete(o);
            return -1;
        }
    }
    cJSON_Delete(o);
    return 0;
}

static void print_help(const flag_def *defs, const char *cmd, const char *about) {
    printf("usage: rlhf %s [flags]\n\n%s\n\nflags:\n", cmd, about);
    for (const flag_def *d = defs; d->name; d++) {
        char name[64], def[64] = "";
        snprintf(name, sizeof name, "--%s%s%s", d->name, d->alias ? ", --" : "",
                 d->alias ? d->alias : "");
        switch (d->type) {
        case FLAG_STR: {
            const char *s = *(const char **)d->ptr;
            if (!s) s = "none";
            size_t k = 0;  // one line: newlines and tabs as \n, \t; cut with "..."
            for (; *s && k + 4 < sizeof def; s++) {
                if (*s == '\n' || *s == '\t') def[k++] = '\\', def[k++] = *s == '\n' ? 'n' : 't';
                else def[k++] = *s;
            }
            if (*s) memcpy(def + (k < sizeof def - 4 ? k : sizeof def - 4), "...", 4);
            else def[k] = 0;
            break;
        }
        case FLAG_INT: snprintf(def, sizeof def, "%d", *(int *)d->ptr); break;
        case FLAG_BOOL: snprintf(def, sizeof def, "%s", *(int *)d->ptr ? "true" : "false"); break;
        case FLAG_AUTO: {
            int x = *(int *)d->ptr;
            snprintf(def, sizeof def, "%s", x < 0 ? "auto" : x ? "true" : "false");
            break;
        }
        case FLAG_U64: snprintf(def, sizeof def, "%llu", (unsigned long long)*(uint64_t *)d->ptr); break;
        case FLAG_FLOAT: snprintf(def, sizeof def, "%g", *(float *)d->ptr); break;
        case FLAG_DOUBLE: snprintf(def, sizeof def, "%g", *(double *)d->ptr); break;
        }
        printf("  %-32s %s [%s]\n", name, d->help, def);
    }
    printf("  %-32s %s\n", "--config FILE", "JSON object of flag names and values (flags given on the command line win)");
}

int flags_parse(int argc, char **argv, const flag_def *defs, const char *cmd, const char *about,
                rlhf_err *err) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help(defs, cmd, about);
            return 1;
        }
    // the config file first, so that the command line overrides it
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "--config=", 9)) {
            if (apply_config(argv[i] + 9, defs, err)) return -1;
        } else if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return rlhf_fail(err, "--config needs a file name");
            if (apply_config(argv[i + 1], defs, err)) return -1;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            return rlhf_fail(err, "unexpected argument \"%s\" (flags look like --name value; see "
                                  "rlhf %s --help)",
                             a, cmd);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 6 && !strncmp(name, "config", 6)) {
            if (!eq) i++;
            continue;
        }
        const flag_def *d = find_flag(defs, name, len);
        if (!d)
            return rlhf_fail(err, "unknown flag --%.*s (see rlhf %s --help)", (int)len, name, cmd);
        const char *v;
        if (eq) v = eq + 1;
        else if ((d->type == FLAG_BOOL || d->type == FLAG_AUTO) &&
                 (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)))
            v = "true";
        else if (i + 1 < argc) v = argv[++i];
        else return rlhf_fail(err, "flag --%s needs a value", d->name);
        if (set_value(d, v, "", err)) return -1;
    }
    return 0;
}

char *flags_to_json(const flag_def *defs) {
    cJSON *o = cJSON_CreateObject();
    for (const flag_def *d = defs; d->name; d++) {
        switch (d->type) {
        case FLAG_STR: {
            const char *s = *(const char **)d->ptr;
            if (s) cJSON_AddStringToObject(o, d->name, s);
            else cJSON_AddNullToObject(o, d->name);
            break;
        }
        case FLAG_INT: cJSON_AddNumberToObject(o, d->name, *(int *)d->ptr); break;
        case FLAG_BOOL: cJSON_AddBoolToObject(o, d->name, *(int *)d->ptr); break;
        case FLAG_AUTO:
            if (*(int *)d->ptr < 0) cJSON_AddStringToObject(o, d->name, "auto");
            else cJSON_AddBoolToObject(o, d->name, *(int *)d->ptr);
            break;
        case FLAG_U64: cJSON_AddNumberToObject(o, d->name, (double)*(uint64_t *)d->ptr); break;
        case FLAG_DOUBLE: cJSON_AddNumberToObject(o, d->name, *(double *)d->ptr); break;
        case FLAG_FLOAT: {
            char buf[32];  // the float's shortest decimal form, not its double expansion
            snprintf(buf, sizeof buf, "%.7g", *(float *)d->ptr);
            cJSON_AddNumberToObject(o, d->name, strtod(buf, NULL));
            break;
        }
        }
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}
