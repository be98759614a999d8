// data/task_arith: the built-in addition/subtraction task (see task.h for the
// files, the held-out split and the exact scoring rules), and the task table.
#include "data/task.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"

#define ARITH_MAX_ANSWER_DIGITS 18 // completions longer than this cannot be right

// ---------------------------------------------------------------- small helpers

static long long pow10ll(int d) {
    long long p = 1;
    while (d-- > 0) p *= 10;
    return p;
}

static uint64_t mix64(uint64_t z) { // splitmix64's finalizer
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// uniform in [0, n), n > 0, without modulo bias
static uint64_t rng_below(rlhf_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do x = rng_u64(r);
    while (x >= limit);
    return x % n;
}

static int rng_chance(rlhf_rng *r, double p) {
    return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0) < p;
}

static int is_space(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static long long abs_diff(long long x, long long y) {
    return x > y ? x - y : y - x;
}

// ---------------------------------------------------------------- problems and answers

long long arith_answer(long long a, char op, long long b) {
    return op == '-' ? a - b : a + b;
}

int arith_is_heldout(long long a, char op, long long b) {
    // a fixed hash of the problem alone, so the split never moves with seed or size
    uint64_t h = mix64((uint64_t)a ^ 0x243f6a8885a308d3ULL);
    h = mix64(h ^ (uint64_t)(unsigned char)op);
    h = mix64(h ^ (uint64_t)b ^ 0x13198a2e03707344ULL);
    return h % 100 < ARITH_HELDOUT_PERCENT;
}

// 1..max_digits decimal digits at *s; advances *s
static int parse_operand(const char **s, int max_digits, long long *v) {
    const char *p = *s;
    long long x = 0;
    int n = 0;
    while (*p >= '0' && *p <= '9') {
        if (++n > max_digits) return -1;
        x = x * 10 + (*p++ - '0');
    }
    if (n == 0) return -1;
    *v = x;
    *s = p;
    return 0;
}

int arith_parse_prompt(const char *prompt, long long *a, char *op, long long *b, rlhf_err *err) {
    if (!prompt) return rlhf_fail(err, "arith: no prompt");
    const char *p = prompt;
    long long x, y;
    char o;
    while (is_space(*p)) p++;
    if (parse_operand(&p, ARITH_MAX_DIGITS, &x) != 0) goto bad;
    while (*p == ' ') p++;
    o = *p;
    if (o != '+' && o != '-') goto bad;
    p++;
    while (*p == ' ') p++;
    if (parse_operand(&p, ARITH_MAX_DIGITS, &y) != 0) goto bad;
    while (*p == ' ') p++;
    if (*p++ != '=') goto bad;
    while (is_space(*p)) p++;
    if (*p) goto bad;
    *a = x, *op = o, *b = y;
    return 0;
bad:;
    char shown[64];
    snprintf(shown, sizeof shown, "%.40s%s", prompt, strlen(prompt) > 40 ? "..." : "");
    for (char *c = shown; *c; c++)
        if ((unsigned char)*c < 32) *c = ' ';
    return rlhf_fail(err,
                     "arith: malformed prompt \"%s\" (want \"a+b=\" or \"a-b=\", operands of "
                     "1 to %d digits)",
                     shown, ARITH_MAX_DIGITS);
}

int arith_parse_answer(const char *text, long long *value) {
    if (!text) return -1;
    const char *p = text, *end = text + strlen(text);
    while (is_space(*p)) p++;
    while (end > p && is_space(end[-1])) end--;
    int neg = 0;
    if (p < end && *p == '-') neg = 1, p++;
    size_t n = (size_t)(end - p);
    if (n == 0 || n > ARITH_MAX_ANSWER_DIGITS) return -1;
    if (*p == '0' && (n > 1 || neg)) return -1; // "0522", "-0"
    long long x = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return -1;
        x = x * 10 + (*p - '0');
    }
    *value = neg ? -x : x;
    return 0;
}

int arith_reward(const char *prompt, const char *completion, int shaped, double *reward,
                 rlhf_err *err) {
    long long a, b, got;
    char op;
    if (arith_parse_prompt(prompt, &a, &op, &b, err) != 0) return -1;
    long long gold = arith_answer(a, op, b);
    if (arith_parse_answer(completion, &got) != 0)
        *reward = 0.0;
    else if (got == gold)
        *reward = 1.0;
    else if (!shaped)
        *reward = 0.0;
    else
        *reward = 0.5 / (1.0 + log10(1.0 + (double)abs_diff(got, gold)));
    return 0;
}

double arith_score(const char *prompt, const char *completion, int shaped) {
    double r;
    return arith_reward(prompt, completion, shaped, &r, NULL) == 0 ? r : NAN;
}

// ---------------------------------------------------------------- the teacher's mistakes

const char *arith_error_name(arith_error kind, char op) {
    switch (kind) {
    case ARITH_DROP_CARRY:
        return op == '-' ? "dropped_borrow" : "dropped_carry";
    case ARITH_DROP_ALL_CARRIES:
        return op == '-' ? "dropped_all_borrows" : "dropped_all_carries";
    case ARITH_SWAP_DIGITS:
        return "swapped_digits";
    case ARITH_OFF_BY_ONE:
        return "off_by_one";
    default:
        return "none";
    }
}

// Column-wise x op y (x >= y >= 0 for '-'), least significant column first: the
// columns with a carry (borrow) out go to cols, and *digitwise gets the result
// with every carry (borrow) ignored. Returns the number of such columns.
static int columns(long long x, char op, long long y, int *cols, long long *digitwise) {
    int n = 0, c = 0;
    long long place = 1, sum = 0;
    for (int i = 0; x > 0 || y > 0; i++, x /= 10, y /= 10, place *= 10) {
        int xi = (int)(x % 10), yi = (int)(y % 10);
        if (op == '-') {
            sum += place * ((xi - yi + 10) % 10);
            c = xi - c < yi;
        } else {
            sum += place * ((xi + yi) % 10);
            c = xi + yi + c >= 10;
        }
        if (c) cols[n++] = i;
    }
    *digitwise = sum;
    return n;
}

int arith_wrong_answer(long long a, char op, long long b, arith_error kind, rlhf_rng *rng,
                       long long *out) {
    long long limit = pow10ll(ARITH_MAX_DIGITS);
    if (a < 0 || b < 0 || a >= limit || b >= limit || (op != '+' && op != '-')) return 0;
    long long gold = arith_answer(a, op, b);
    // subtraction is done as a child does it: larger minus smaller, then the sign
    long long x = a, y = b, sign = 1;
    if (op == '-' && a < b) x = b, y = a, sign = -1;
    int cols[24];
    long long digitwise, wrong;
    int n_cols = columns(x, op, y, cols, &digitwise);
    switch (kind) {
    case ARITH_DROP_CARRY: {
        if (n_cols == 0) return 0;
        int i = cols[rng ? rng_below(rng, (uint64_t)n_cols) : 0];
        // the next column misses its +1 (its -1): every later column is still right
        long long place = pow10ll(i + 1);
        wrong = op == '-' ? sign * (x - y + place) : gold - place;
        break;
    }
    case ARITH_DROP_ALL_CARRIES:
        if (n_cols == 0) return 0;
        wrong = op == '-' ? sign * digitwise : digitwise;
        break;
    case ARITH_SWAP_DIGITS: {
        char s[32];
        int len = snprintf(s, sizeof s, "%lld", gold < 0 ? -gold : gold);
        int pairs[32], n = 0;
        for (int j = 0; j + 1 < len; j++)
            if (s[j] != s[j + 1] && !(j == 0 && s[1] == '0')) pairs[n++] = j;
        if (n == 0) return 0;
        int j = pairs[rng ? rng_below(rng, (uint64_t)n) : 0];
        char t = s[j];
        s[j] = s[j + 1], s[j + 1] = t;
        wrong = strtoll(s, NULL, 10);
        if (gold < 0) wrong = -wrong;
        break;
    }
    case ARITH_OFF_BY_ONE: {
        static const int offsets[4] = {1, -1, 10, -10};
        wrong = gold + offsets[rng ? rng_below(rng, 4) : 0];
        break;
    }
    default:
        return 0;
    }
    RLHF_ASSERT(wrong != gold);
    *out = wrong;
    return 1;
}

// One of the mistakes that apply to this problem, chosen uniformly; returns its kind.
static arith_error teacher_mistake(long long a, char op, long long b, rlhf_rng *r, long long *out) {
    arith_error kinds[ARITH_N_ERRORS];
    long long values[ARITH_N_ERRORS];
    int n = 0;
    for (int k = ARITH_DROP_CARRY; k < ARITH_N_ERRORS; k++)
        if (arith_wrong_answer(a, op, b, (arith_error)k, r, &values[n])) kinds[n++] = k;
    RLHF_ASSERT(n > 0); // off-by-one always applies
    int i = (int)rng_below(r, (uint64_t)n);
    *out = values[i];
    return kinds[i];
}

// ---------------------------------------------------------------- options

void arith_default_opts(arith_opts *o) {
    memset(o, 0, sizeof *o);
    o->min_digits = 1;
    o->max_digits = 3;
    strcpy(o->ops, "+-");
    o->noise = 0.3;
    o->pref_both_wrong = 0.25;
    o->n_train = 10000;
    o->n_pref = 10000;
    o->n_prompts = 2000;
    o->n_eval = 500;
    o->seed = 1;
}

#define ARITH_MAX_ROWS 100000000

// "+", "-", "+-" or "-+"
static int check_ops(const char *ops, rlhf_err *err) {
    size_t n = strlen(ops);
    int ok = n >= 1 && n <= 2;
    for (size_t i = 0; ok && i < n; i++)
        ok = (ops[i] == '+' || ops[i] == '-') && !memchr(ops, ops[i], i);
    return ok ? 0 : rlhf_fail(err, "arith: ops \"%s\": want \"+\", \"-\" or \"+-\"", ops);
}

int arith_check_opts(const arith_opts *o, rlhf_err *err) {
    if (o->min_digits < 1 || o->max_digits > ARITH_MAX_DIGITS || o->min_digits > o->max_digits)
        return rlhf_fail(err, "arith: digits %d-%d: want 1 <= min <= max <= %d", o->min_digits,
                         o->max_digits, ARITH_MAX_DIGITS);
    if (!memchr(o->ops, 0, sizeof o->ops))
        return rlhf_fail(err, "arith: ops: want \"+\", \"-\" or \"+-\"");
    if (check_ops(o->ops, err) != 0) return -1;
    if (!(o->noise >= 0 && o->noise <= 1))
        return rlhf_fail(err, "arith: noise %g: want a share in [0, 1]", o->noise);
    if (!(o->pref_both_wrong >= 0 && o->pref_both_wrong <= 1))
        return rlhf_fail(err, "arith: pref_both_wrong %g: want a share in [0, 1]",
                         o->pref_both_wrong);
    const int counts[4] = {o->n_train, o->n_pref, o->n_prompts, o->n_eval};
    static const char *names[4] = {"n_train", "n_pref", "n_prompts", "n_eval"};
    for (int i = 0; i < 4; i++)
        if (counts[i] < 0 || counts[i] > ARITH_MAX_ROWS)
            return rlhf_fail(err, "arith: %s %d: want 0 to %d", names[i], counts[i],
                             ARITH_MAX_ROWS);
    return 0;
}

static int parse_int(const char *key, const char *s, int *v, rlhf_err *err) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < 0 || x > ARITH_MAX_ROWS)
        return rlhf_fail(err, "arith: %s \"%s\": want a whole number from 0 to %d", key, s,
                         ARITH_MAX_ROWS);
    *v = (int)x;
    return 0;
}

static int parse_share(const char *key, const char *s, double *v, rlhf_err *err) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno || !(x >= 0 && x <= 1))
        return rlhf_fail(err, "arith: %s \"%s\": want a share in [0, 1]", key, s);
    *v = x;
    return 0;
}

int arith_set_opt(arith_opts *o, const char *key, const char *value, rlhf_err *err) {
    if (!key || !value) return rlhf_fail(err, "arith: option without a value");
    if (key[0] == '-' && key[1] == '-') key += 2;
    if (!strcmp(key, "digits")) {
        int lo, hi, used = 0;
        if (sscanf(value, "%d-%d%n", &lo, &hi, &used) == 2 && !value[used]) {
        } else if (sscanf(value, "%d%n", &lo, &used) == 1 && !value[used]) {
            hi = lo;
        } else {
            return rlhf_fail(err, "arith: digits \"%s\": want MIN-MAX (\"1-3\") or N", value);
        }
        if (lo < 1 || hi > ARITH_MAX_DIGITS || lo > hi)
            return rlhf_fail(err, "arith: digits \"%s\": want 1 <= min <= max <= %d", value,
                             ARITH_MAX_DIGITS);
        o->min_digits = lo, o->max_digits = hi;
        return 0;
    }
    if (!strcmp(key, "min_digits") || !strcmp(key, "max_digits")) {
        int d = 0;
        if (parse_int(key, value, &d, err) != 0) return -1;
        if (d < 1 || d > ARITH_MAX_DIGITS)
            return rlhf_fail(err, "arith: %s %d: want 1 to %d", key, d, ARITH_MAX_DIGITS);
        *(key[1] == 'i' ? &o->min_digits : &o->max_digits) = d;
        return 0;
    }
    if (!strcmp(key, "ops")) {
        if (check_ops(value, err) != 0) return -1;
        strcpy(o->ops, value);
        return 0;
    }
    if (!strcmp(key, "noise")) return parse_share(key, value, &o->noise, err);
    if (!strcmp(key, "pref_both_wrong")) return parse_share(key, value, &o->pref_both_wrong, err);
    if (!strcmp(key, "n_train")) return parse_int(key, value, &o->n_train, err);
    if (!strcmp(key, "n_pref")) return parse_int(key, value, &o->n_pref, err);
    if (!strcmp(key, "n_prompts")) return parse_int(key, value, &o->n_prompts, err);
    if (!strcmp(key, "n_eval")) return parse_int(key, value, &o->n_eval, err);
    if (!strcmp(key, "seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(value, &end, 10);
        if (end == value || *end || errno || value[0] == '-')
            return rlhf_fail(err, "arith: seed \"%s\": want a whole number >= 0", value);
        o->seed = s;
        return 0;
    }
    return rlhf_fail(err,
                     "arith: unknown option \"%s\" (digits, ops, noise, pref_both_wrong, "
                     "n_train, n_pref, n_prompts, n_eval, seed)",
                     key);
}

void arith_print_opts(const arith_opts *o, FILE *f) {
    fprintf(f, "digits %d-%d\nops %s\nnoise %g\npref_both_wrong %g\n", o->min_digits, o->max_digits,
            o->ops, o->noise, o->pref_both_wrong);
    fprintf(f, "n_train %d\nn_pref %d\nn_prompts %d\nn_eval %d\nseed %llu\n", o->n_train, o->n_pref,
            o->n_prompts, o->n_eval, (unsigned long long)o->seed);
}

// ---------------------------------------------------------------- writing the files

typedef struct {
    long long a, b;
    char op;
} problem;

static long long draw_operand(rlhf_rng *r, const arith_opts *o) {
    int d = o->min_digits + (int)rng_below(r, (uint64_t)(o->max_digits - o->min_digits + 1));
    if (d == 1) return (long long)rng_below(r, 10);
    long long lo = pow10ll(d - 1);
    return lo + (long long)rng_below(r, (uint64_t)(9 * lo));
}

// A problem on the chosen side of the held-out split.
static int draw_problem(rlhf_rng *r, const arith_opts *o, int heldout, problem *p, rlhf_err *err) {
    uint64_t n_ops = strlen(o->ops);
    for (int tries = 0; tries < 1000000; tries++) {
        p->op = o->ops[rng_below(r, n_ops)];
        p->a = draw_operand(r, o);
        p->b = draw_operand(r, o);
        if (arith_is_heldout(p->a, p->op, p->b) == heldout) return 0;
    }
    return rlhf_fail(err, "arith: no %s problem found", heldout ? "held-out" : "training");
}

static void format_prompt(const problem *p, char *buf, size_t n) {
    snprintf(buf, n, "%lld%c%lld=", p->a, p->op, p->b);
}

static void format_number(long long v, char *buf, size_t n) {
    snprintf(buf, n, "%lld", v);
}

// one stream per file, so one file's count does not move another file's rows
static void file_rng(rlhf_rng *r, uint64_t seed, uint64_t stream) {
    rng_seed(r, mix64(seed ^ mix64(stream + 0x5851f42d4c957f2dULL)));
}

// Prints obj as one line into f and frees it.
static int put_line(atomic_file *f, cJSON *obj, rlhf_err *err) {
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!s) return rlhf_fail(err, "out of memory writing JSON");
    int rc = atomic_write(f, s, strlen(s), err);
    if (rc == 0) rc = atomic_write(f, "\n", 1, err);
    cJSON_free(s);
    return rc;
}

enum { FILE_SFT, FILE_PREFS, FILE_KTO, FILE_PROMPTS, FILE_EVAL };

// Writes the rows of one file; `which` is one of FILE_*.
static int write_rows(atomic_file *f, int which, const arith_opts *o, rlhf_err *err) {
    static const int stream[] = {1, 2, 3, 4, 5};
    rlhf_rng r;
    file_rng(&r, which == FILE_EVAL ? 0 : o->seed, (uint64_t)stream[which]);
    char prompt[64], gold_s[32], wrong_s[32], near_s[32];
    problem p;

    if (which == FILE_EVAL) {
        // distinct held-out problems, found through an open-addressing set
        size_t cap = 16;
        while (cap < 2 * (size_t)o->n_eval) cap *= 2;
        problem *seen = xcalloc(cap, sizeof *seen);
        char *used = xcalloc(cap, 1);
        long long tries = 0, max_tries = 100LL * o->n_eval + 10000;
        int n = 0, rc = 0;
        while (n < o->n_eval && rc == 0) {
            if (++tries > max_tries) {
                rc = rlhf_fail(err,
                               "arith: found only %d distinct held-out problems for n_eval %d; "
                               "digits %d-%d with ops \"%s\" give too few, lower n_eval",
                               n, o->n_eval, o->min_digits, o->max_digits, o->ops);
                break;
            }
            if ((rc = draw_problem(&r, o, 1, &p, err)) != 0) break;
            size_t h = (size_t)mix64((uint64_t)p.a * 31 + (uint64_t)p.b * 1000003 + p.op);
            size_t i = h & (cap - 1);
            while (used[i] && !(seen[i].a == p.a && seen[i].b == p.b && seen[i].op == p.op))
                i = (i + 1) & (cap - 1);
            if (used[i]) continue;
            used[i] = 1, seen[i] = p, n++;
            format_prompt(&p, prompt, sizeof prompt);
            format_number(arith_answer(p.a, p.op, p.b), gold_s, sizeof gold_s);
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "prompt", prompt);
            cJSON_AddStringToObject(row, "completion", gold_s);
            rc = put_line(f, row, err);
        }
        free(seen);
        free(used);
        return rc;
    }

    int rows = which == FILE_PREFS ? o->n_pref : which == FILE_PROMPTS ? o->n_prompts : o->n_train;
    for (int row_i = 0; row_i < rows; row_i++) {
        if (draw_problem(&r, o, 0, &p, err) != 0) return -1;
        format_prompt(&p, prompt, sizeof prompt);
        long long gold = arith_answer(p.a, p.op, p.b), wrong, near;
        format_number(gold, gold_s, sizeof gold_s);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "prompt", prompt);
        if (which == FILE_SFT || which == FILE_KTO) {
            int correct = !rng_chance(&r, o->noise);
            arith_error kind = 0;
            if (!correct) kind = teacher_mistake(p.a, p.op, p.b, &r, &wrong);
            if (!correct) format_number(wrong, wrong_s, sizeof wrong_s);
            cJSON_AddStringToObject(row, "completion", correct ? gold_s : wrong_s);
            if (which == FILE_KTO) {
                cJSON_AddBoolToObject(row, "label", correct);
            } else {
                cJSON_AddBoolToObject(row, "correct", correct);
                if (!correct) cJSON_AddStringToObject(row, "error", arith_error_name(kind, p.op));
            }
        } else if (which == FILE_PREFS) {
            int both_wrong = rng_chance(&r, o->pref_both_wrong), found = 0;
            teacher_mistake(p.a, p.op, p.b, &r, &wrong);
            // two mistakes at different distances from the gold; off-by-one alone
            // offers distances 1 and 10, so this ends at once in practice
            for (int t = 0; both_wrong && t < 64 && !found; t++) {
                teacher_mistake(p.a, p.op, p.b, &r, &near);
                found = abs_diff(near, gold) != abs_diff(wrong, gold);
            }
            if (found && abs_diff(near, gold) > abs_diff(wrong, gold)) {
                long long t = near;
                near = wrong, wrong = t;
            }
            format_number(wrong, wrong_s, sizeof wrong_s);
            if (found) format_number(near, near_s, sizeof near_s);
            cJSON_AddStringToObject(row, "chosen", found ? near_s : gold_s);
            cJSON_AddStringToObject(row, "rejected", wrong_s);
            cJSON_AddBoolToObject(row, "chosen_correct", !found);
        }
        if (put_line(f, row, err) != 0) return -1;
    }
    return 0;
}

static cJSON *opts_json(const arith_opts *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "task", "arith");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddNumberToObject(j, "min_digits", o->min_digits);
    cJSON_AddNumberToObject(j, "max_digits", o->max_digits);
    cJSON_AddStringToObject(j, "ops", o->ops);
    cJSON_AddNumberToObject(j, "noise", o->noise);
    cJSON_AddNumberToObject(j, "pref_both_wrong", o->pref_both_wrong);
    cJSON_AddNumberToObject(j, "n_train", o->n_train);
    cJSON_AddNumberToObject(j, "n_pref", o->n_pref);
    cJSON_AddNumberToObject(j, "n_prompts", o->n_prompts);
    cJSON_AddNumberToObject(j, "n_eval", o->n_eval);
    if (o->seed < (1ULL << 53)) {
        cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    } else { // a JSON number would lose digits
        char s[32];
        snprintf(s, sizeof s, "%llu", (unsigned long long)o->seed);
        cJSON_AddStringToObject(j, "seed", s);
    }
    cJSON_AddNumberToObject(j, "heldout_percent", ARITH_HELDOUT_PERCENT);
    return j;
}

int arith_write_dir(const char *dir, const arith_opts *o, rlhf_err *err) {
    static const char *names[] = {"sft.jsonl", "prefs.jsonl", "kto.jsonl", "prompts.jsonl",
                                  "eval.jsonl"};
    if (arith_check_opts(o, err) != 0) return -1;
    if (make_dirs(dir, err) != 0) return -1;
    char path[4096];
    // eval first: it is the one that can fail on a too-small problem space
    static const int order[] = {FILE_EVAL, FILE_SFT, FILE_PREFS, FILE_KTO, FILE_PROMPTS};
    for (int k = 0; k < 5; k++) {
        int which = order[k];
        snprintf(path, sizeof path, "%s/%s", dir, names[which]);
        atomic_file f;
        if (atomic_open(&f, path, err) != 0) return -1;
        if (write_rows(&f, which, o, err) != 0) {
            atomic_abort(&f);
            // a failed write names the file already
            return strncmp(err->msg, path, strlen(path)) ? rlhf_fail_ctx(err, "%s", path) : -1;
        }
        if (atomic_commit(&f, err) != 0) return -1;
    }
    // task.json last: its presence says the directory is complete
    cJSON *j = opts_json(o);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s) return rlhf_fail(err, "out of memory writing JSON");
    snprintf(path, sizeof path, "%s/task.json", dir);
    size_t n = strlen(s);
    char *text = xmalloc(n + 2);
    memcpy(text, s, n);
    text[n] = '\n';
    cJSON_free(s);
    int rc = atomic_write_file(path, text, n + 1, err);
    free(text);
    return rc;
}

// ---------------------------------------------------------------- reading task.json

static int get_number(const cJSON *j, const char *path, const char *key, double *v, rlhf_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!x) return rlhf_fail(err, "%s: field \"%s\" missing", path, key);
    if (!cJSON_IsNumber(x)) return rlhf_fail(err, "%s: field \"%s\" is not a number", path, key);
    *v = x->valuedouble;
    return 0;
}

static int get_int(const cJSON *j, const char *path, const char *key, int *v, rlhf_err *err) {
    double d = 0;
    if (get_number(j, path, key, &d, err) != 0) return -1;
    if (d != floor(d) || d < -ARITH_MAX_ROWS || d > ARITH_MAX_ROWS)
        return rlhf_fail(err, "%s: field \"%s\" is not a whole number in range", path, key);
    *v = (int)d;
    return 0;
}

int arith_load_opts(const char *dir, arith_opts *o, rlhf_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/task.json", dir);
    cJSON *j = json_read_object(path, err);
    if (!j) return -1;
    arith_opts t;
    arith_default_opts(&t);
    int rc = -1;
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(j, "task");
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(j, "ops");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (!cJSON_IsString(task) || strcmp(task->valuestring, "arith") != 0) {
        rlhf_fail(err, "%s: field \"task\" is not \"arith\"", path);
        goto done;
    }
    if (get_int(j, path, "min_digits", &t.min_digits, err) ||
        get_int(j, path, "max_digits", &t.max_digits, err) ||
        get_number(j, path, "noise", &t.noise, err) ||
        get_number(j, path, "pref_both_wrong", &t.pref_both_wrong, err) ||
        get_int(j, path, "n_train", &t.n_train, err) ||
        get_int(j, path, "n_pref", &t.n_pref, err) ||
        get_int(j, path, "n_prompts", &t.n_prompts, err) ||
        get_int(j, path, "n_eval", &t.n_eval, err))
        goto done;
    if (!cJSON_IsString(ops) || check_ops(ops->valuestring, NULL) != 0) {
        rlhf_fail(err, "%s: field \"ops\" missing or not \"+\", \"-\" or \"+-\"", path);
        goto done;
    }
    strcpy(t.ops, ops->valuestring);
    if (cJSON_IsNumber(seed) && seed->valuedouble >= 0 && seed->valuedouble < 9007199254740992.0 &&
        seed->valuedouble == floor(seed->valuedouble)) {
        t.seed = (uint64_t)seed->valuedouble;
    } else if (!cJSON_IsString(seed) || arith_set_opt(&t, "seed", seed->valuestring, err) != 0) {
        rlhf_fail(err, "%s: field \"seed\" missing or not a whole number >= 0", path);
        goto done;
    }
    if (arith_check_opts(&t, err) != 0) {
        rlhf_fail_ctx(err, "%s", path);
        goto done;
    }
    *o = t;
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

// ---------------------------------------------------------------- its table entry
static void arith_default_v(void *o) {
    arith_default_opts(o);
}
static int arith_set_v(void *o, const char *k, const char *v, rlhf_err *e) {
    return arith_set_opt(o, k, v, e);
}
static void arith_print_v(const void *o, FILE *f) {
    arith_print_opts(o, f);
}
static int arith_write_v(const char *d, const void *o, rlhf_err *e) {
    return arith_write_dir(d, o, e);
}
static int arith_load_v(const char *d, void *o, rlhf_err *e) {
    return arith_load_opts(d, o, e);
}

static const char *const arith_outputs[] = {
    "sft.jsonl", "prefs.jsonl", "kto.jsonl", "prompts.jsonl", "eval.jsonl", "task.json", NULL};

const rlhf_task task_arith = {
    "arith",
    "addition and subtraction, \"37+485=\" -> \"522\"",
    sizeof(arith_opts),
    arith_default_v,
    arith_set_v,
    arith_print_v,
    arith_write_v,
    arith_load_v,
    arith_reward,
    "sft.jsonl (noisy teacher), prefs.jsonl, prompts.jsonl, kto.jsonl, eval.jsonl (held out)\n"
    "and task.json",
    NULL,
    arith_outputs};
