// reward/constraint: the judges of CGPO's mixture (reward/constraint.h): rule
// judges here, scored judges as reward/sources.h sources with a threshold.
#include "reward/constraint.h"

#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    JUDGE_REGEX = 0,
    JUDGE_NOT_REGEX,
    JUDGE_FORMAT_INT,
    JUDGE_FORMAT_NONEMPTY,
    JUDGE_MAX_CHARS,
    JUDGE_MAX_TOKENS,
    JUDGE_SCORED,
} judge_kind;

typedef struct {
    judge_kind kind;
    char name[112];
    regex_t re;
    int re_ok;
    long limit;      // max_chars, max_tokens
    int source;      // JUDGE_SCORED: its index in the set's reward_set
    double thresh;   // JUDGE_SCORED: pass iff score > thresh (>= with or_equal)
    int or_equal;
} judge;

struct constraint_set {
    int n;
    judge *j;
    reward_set rs;   // the scored judges' sources, in order
    float *per;      // scratch (n_rows, rs.n)
    size_t per_cap;
};

static const char *const rule_kinds[] = {"regex", "not_regex", "format", "max_chars",
                                          "max_tokens", NULL};
static const char *const scored_kinds[] = {"verifier", "task", "rm", "reward_model", "command",
                                            "cmd", "url", "remote", "judge", "llm", "pairwise",
                                            NULL};

// the kind at s ("regex:" ...): its length, or 0
static size_t kind_at(const char *s) {
    for (int t = 0; t < 2; t++)
        for (const char *const *k = t ? scored_kinds : rule_kinds; *k; k++) {
            size_t n = strlen(*k);
            if (!strncmp(s, *k, n) && s[n] == ':') return n;
        }
    return 0;
}

// ">T" or ">=T" at the end of arg: cut off, into *t and *eq (1 when found)
static int cut_threshold(char *arg, double *t, int *eq) {
    char *gt = strrchr(arg, '>');
    if (!gt) return 0;
    int e = gt[1] == '=';
    char *num = gt + 1 + e, *end;
    if (!*num) return 0;
    double x = strtod(num, &end);
    if (*end || !isfinite(x)) return 0;
    *t = x, *eq = e, *gt = 0;
    return 1;
}

static void unique_name(constraint_set *cs, judge *jd, const char *base) {
    int rep = 1;
    for (int i = 0; i < cs->n; i++) {
        const char *o = cs->j[i].name;
        size_t b = strlen(base);
        if (!strncmp(o, base, b) && (o[b] == 0 || o[b] == '.')) rep++;
    }
    if (rep == 1) snprintf(jd->name, sizeof jd->name, "%s", base);
    else snprintf(jd->name, sizeof jd->name, "%.100s.%d", base, rep);
}

static int parse_limit(const char *kind, const char *arg, long *out, rlhf_err *err) {
    char *end;
    long v = strtol(arg, &end, 10);
    if (!*arg || *end || v < 0)
        return rlhf_fail(err, "%s:%s: expected a non-negative whole number", kind, arg);
    *out = v;
    return 0;
}

static int add_item(constraint_set *cs, char *item, rlhf_err *err) {
    size_t kn = kind_at(item);
    if (!kn)
        return rlhf_fail(err, "\"%s\" is not KIND:ARG with KIND regex, not_regex, format, "
                              "max_chars, max_tokens, verifier, rm, command, url, judge, llm "
                              "or pairwise",
                         item);
    item[kn] = 0;
    const char *kind = item;
    char *arg = item + kn + 1;
    cs->j = xrealloc(cs->j, (size_t)(cs->n + 1) * sizeof *cs->j);
    judge *jd = &cs->j[cs->n];
    memset(jd, 0, sizeof *jd);
    char base[112];
    snprintf(base, sizeof base, "%s", kind);
    if (!strcmp(kind, "regex") || !strcmp(kind, "not_regex")) {
        jd->kind = !strcmp(kind, "regex") ? JUDGE_REGEX : JUDGE_NOT_REGEX;
        if (!*arg) return rlhf_fail(err, "%s: needs a pattern (%s:PATTERN)", kind, kind);
        int rc = regcomp(&jd->re, arg, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char why[200];
            regerror(rc, &jd->re, why, sizeof why);
            return rlhf_fail(err, "%s:%s: not a POSIX extended regular expression (%s)", kind,
                             arg, why);
        }
        jd->re_ok = 1;
    } else if (!strcmp(kind, "format")) {
        if (!strcmp(arg, "int")) jd->kind = JUDGE_FORMAT_INT;
        else if (!strcmp(arg, "nonempty")) jd->kind = JUDGE_FORMAT_NONEMPTY;
        else return rlhf_fail(err, "format:%s: unknown format (choose int or nonempty)", arg);
        snprintf(base, sizeof base, "format:%s", arg);
    } else if (!strcmp(kind, "max_chars") || !strcmp(kind, "max_tokens")) {
        jd->kind = !strcmp(kind, "max_chars") ? JUDGE_MAX_CHARS : JUDGE_MAX_TOKENS;
        if (parse_limit(kind, arg, &jd->limit, err)) return -1;
        snprintf(base, sizeof base, "%s:%ld", kind, jd->limit);
    } else {
        jd->kind = JUDGE_SCORED;
        if (!cut_threshold(arg, &jd->thresh, &jd->or_equal)) jd->thresh = 0, jd->or_equal = 0;
        if (!strcmp(kind, "verifier") || !strcmp(kind, "task")) {
            char task[64];
            snprintf(task, sizeof task, "%s", arg);
            char *colon = strchr(task, ':');
            if (colon) *colon = 0;
            if (!task_find(task))
                return rlhf_fail(err, "%s:%s: no built-in task \"%s\"", kind, arg, task);
        }
        if (reward_set_add(&cs->rs, kind, arg, 1.0f, err)) return -1;
        jd->source = cs->rs.n - 1;
        snprintf(base, sizeof base, "%s", cs->rs.src[jd->source].name);
    }
    unique_name(cs, jd, base);
    cs->n++;
    return 0;
}

int constraint_parse(constraint_set **out, const char *spec, rlhf_err *err) {
    *out = NULL;
    if (!spec || !*spec) return rlhf_fail(err, "no judges given (e.g. format:int,max_chars:8)");
    constraint_set *cs = xcalloc(1, sizeof *cs);
    reward_set_opts_default(&cs->rs.opt);
    char *buf = strdup(spec);
    size_t n = strlen(buf), start = 0;
    int rc = 0;
    while (start <= n && rc == 0) {
        size_t end = start;
        while (end < n && !(buf[end] == ',' && kind_at(buf + end + 1))) end++;
        buf[end] = 0;
        char *item = buf + start;
        while (*item == ' ') item++;
        char copy[300];
        snprintf(copy, sizeof copy, "%s", item);
        if ((rc = add_item(cs, item, err))) rlhf_fail_ctx(err, "judge %d (\"%s\")", cs->n + 1, copy);
        start = end + 1;
    }
    free(buf);
    if (rc) {
        constraint_free(cs);
        return -1;
    }
    *out = cs;
    return 0;
}

int constraint_open(constraint_set *cs, const reward_set_opts *o, rlhf_err *err) {
    if (cs->rs.n == 0) return 0;
    return reward_set_open(&cs->rs, o, err) ? rlhf_fail_ctx(err, "--judges") : 0;
}

int constraint_count(const constraint_set *cs) { return cs->n; }
const char *constraint_name(const constraint_set *cs, int j) { return cs->j[j].name; }

static int is_blank(char c) { return c && strchr(" \t\n\r\v\f", c); }

static int nonempty(const char *s) {
    for (; *s; s++)
        if (!is_blank(*s)) return 1;
    return 0;
}

int constraint_judge(constraint_set *cs, const char *const *prompts,
                     const char *const *completions, const int *n_tokens, int n,
                     uint8_t *violated, rlhf_err *err) {
    int J = cs->n, S = cs->rs.n;
    if (S > 0) {
        size_t need = (size_t)n * S;
        if (need > cs->per_cap) {
            cs->per = xrealloc(cs->per, need * sizeof(float));
            cs->per_cap = need;
        }
        float *total = xmalloc((size_t)(n ? n : 1) * sizeof(float));
        int rc = reward_set_score(&cs->rs, prompts, completions, n, cs->per, total, err);
        free(total);
        if (rc) return rlhf_fail_ctx(err, "--judges");
    }
    for (int i = 0; i < n; i++) {
        const char *c = completions[i] ? completions[i] : "";
        for (int j = 0; j < J; j++) {
            const judge *jd = &cs->j[j];
            long long v;
            int bad = 0;
            switch (jd->kind) {
            case JUDGE_REGEX: bad = regexec(&jd->re, c, 0, NULL, 0) != 0; break;
            case JUDGE_NOT_REGEX: bad = regexec(&jd->re, c, 0, NULL, 0) == 0; break;
            case JUDGE_FORMAT_INT: bad = arith_parse_answer(c, &v) != 0; break;
            case JUDGE_FORMAT_NONEMPTY: bad = !nonempty(c); break;
            case JUDGE_MAX_CHARS: bad = (long)strlen(c) > jd->limit; break;
            case JUDGE_MAX_TOKENS:
                bad = (n_tokens ? n_tokens[i] : (long)strlen(c)) > jd->limit;
                break;
            case JUDGE_SCORED: {
                double s = cs->per[(size_t)i * S + jd->source];
                bad = !(jd->or_equal ? s >= jd->thresh : s > jd->thresh);
                break;
            }
            }
            violated[(size_t)i * J + j] = (uint8_t)bad;
        }
    }
    return 0;
}

void constraint_free(constraint_set *cs) {
    if (!cs) return;
    for (int j = 0; j < cs->n; j++)
        if (cs->j[j].re_ok) regfree(&cs->j[j].re);
    free(cs->j);
    reward_set_free(&cs->rs);
    free(cs->per);
    free(cs);
}
