// data/task_market: the marketplace task of RLHS (rules, files and ratings in
// data/task_market.h; docs/rlhs.md).
#include "data/task_market.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/task.h"
#include "io/file.h"

#define MARKET_MAX_ROWS 10000000

typedef struct {
    int n_items;       // items per prompt, 2..MARKET_MAX_ITEMS
    int n_features;    // features 'a'.., 3..26
    int item_features; // features per item, 1..n_features-1
    double p_none;     // share of prompts where no item has the need, [0, 1]
    double noise;      // share of wrong teacher answers in sft.jsonl, [0, 1]
    int n_train, n_pref, n_prompts, n_eval;
    uint64_t seed;
} market_opts;

static const char *const market_views[] = {"best", "utility", "immediate", "hindsight", NULL};

// ---------------------------------------------------------------- the world

static int is_space(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

int market_parse_prompt(const char *prompt, market_prompt *p, rlhf_err *err) {
    memset(p, 0, sizeof *p);
    if (!prompt) return rlhf_fail(err, "market: no prompt");
    const char *s = prompt;
    while (is_space(*s)) s++;
    if (strncmp(s, "need=", 5) || s[5] < 'a' || s[5] > 'z')
        return rlhf_fail(err, "market: prompt \"%.80s\" does not start with need=<letter a-z>",
                         prompt);
    p->need = s[5];
    s += 6;
    while (*s == ' ') {
        s++;
        if (p->n_items == MARKET_MAX_ITEMS)
            return rlhf_fail(err, "market: prompt \"%.80s\" has more than %d items", prompt,
                             MARKET_MAX_ITEMS);
        if (s[0] != 'A' + p->n_items || s[1] != '=')
            return rlhf_fail(err, "market: prompt \"%.80s\": expected item %c=", prompt,
                             'A' + p->n_items);
        s += 2;
        char *f = p->features[p->n_items];
        int k = 0;
        while (*s >= 'a' && *s <= 'z') {
            if (strchr(f, *s))
                return rlhf_fail(err, "market: prompt \"%.80s\": item %c lists feature %c twice",
                                 prompt, 'A' + p->n_items, *s);
            f[k++] = *s++;
        }
        if (k == 0)
            return rlhf_fail(err, "market: prompt \"%.80s\": item %c has no features", prompt,
                             'A' + p->n_items);
        p->n_items++;
    }
    if (p->n_items == 0 || *s != ':')
        return rlhf_fail(err,
                         "market: prompt \"%.80s\": expected \" A=<features>\" items, then "
                         "\":\"",
                         prompt);
    for (s++; is_space(*s); s++) {
    }
    if (*s) return rlhf_fail(err, "market: prompt \"%.80s\" has text after \":\"", prompt);
    return 0;
}

void market_simulate(const market_prompt *p, const char *completion, market_outcome *o, char *text,
                     size_t n) {
    memset(o, 0, sizeof *o);
    int fit = -1;
    for (int i = 0; i < p->n_items; i++)
        if (strchr(p->features[i], p->need)) fit = fit < 0 ? i : fit;
    o->any_fits = fit >= 0;
    const char *s = completion ? completion : "";
    while (is_space(*s)) s++;
    size_t len = strlen(s);
    while (len > 0 && is_space(s[len - 1])) len--;
    if (len == 4 && !strncmp(s, "none", 4))
        o->action = MARKET_NONE;
    else if (len == 5 && !strncmp(s, "buy ", 4) && s[4] >= 'A' && s[4] < 'A' + p->n_items) {
        o->action = MARKET_BUY;
        o->item = s[4] - 'A';
        o->meets = strchr(p->features[o->item], p->need) != NULL;
    }
    if (!text || !n) return;
    if (o->action == MARKET_BUY)
        snprintf(text, n, "bought %c (%s): %s %c", 'A' + o->item, p->features[o->item],
                 o->meets ? "has" : "lacks", p->need);
    else if (o->action == MARKET_NONE && fit >= 0)
        snprintf(text, n, "bought nothing (%c has %c)", 'A' + fit, p->need);
    else if (o->action == MARKET_NONE)
        snprintf(text, n, "bought nothing (no item has %c)", p->need);
    else
        snprintf(text, n, "no answer: bought nothing");
}

double market_rate(const market_outcome *o, int view) {
    int buy = o->action == MARKET_BUY, none = o->action == MARKET_NONE;
    switch (view) {
    case MARKET_VIEW_BEST:
        return (buy && o->meets) || (none && !o->any_fits) ? 1 : 0;
    case MARKET_VIEW_UTILITY:
        return buy ? (o->meets ? 1 : -1) : 0;
    case MARKET_VIEW_IMMEDIATE:
        return buy ? 1 : none ? 0.25 : 0;
    case MARKET_VIEW_HINDSIGHT:
        return buy ? (o->meets ? 1 : 0) : none ? 0.5 : 0;
    default:
        return NAN;
    }
}

static int market_score(const char *prompt, const char *completion, int view, double *reward,
                        rlhf_err *err) {
    market_prompt p;
    market_outcome o;
    if (view < 0 || view >= MARKET_N_VIEWS)
        return rlhf_fail(err,
                         "market: no score view %d (0 best, 1 utility, 2 immediate, "
                         "3 hindsight)",
                         view);
    if (market_parse_prompt(prompt, &p, err)) return -1;
    market_simulate(&p, completion, &o, NULL, 0);
    *reward = market_rate(&o, view);
    return 0;
}

// ---------------------------------------------------------------- options

static void market_default(void *q) {
    *(market_opts *)q = (market_opts){.n_items = 3,
                                      .n_features = 6,
                                      .item_features = 2,
                                      .p_none = 0.4,
                                      .noise = 0.3,
                                      .n_train = 4000,
                                      .n_pref = 4000,
                                      .n_prompts = 2000,
                                      .n_eval = 500,
                                      .seed = 1};
}

static int parse_int(const char *key, const char *v, long lo, long hi, int *out, rlhf_err *err) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return rlhf_fail(err, "market: %s must be a whole number in [%ld, %ld] (got \"%s\")", key,
                         lo, hi, v);
    *out = (int)x;
    return 0;
}

static int parse_share(const char *key, const char *v, double *out, rlhf_err *err) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= 0 && x <= 1))
        return rlhf_fail(err, "market: %s must be a number in [0, 1] (got \"%s\")", key, v);
    *out = x;
    return 0;
}

static int market_set(void *q, const char *key, const char *v, rlhf_err *err) {
    market_opts *o = q;
    if (!strncmp(key, "--", 2)) key += 2;
    if (!v) return rlhf_fail(err, "market: option %s needs a value", key);
    if (!strcmp(key, "n_items")) return parse_int(key, v, 2, MARKET_MAX_ITEMS, &o->n_items, err);
    if (!strcmp(key, "n_features")) return parse_int(key, v, 3, 26, &o->n_features, err);
    if (!strcmp(key, "item_features")) return parse_int(key, v, 1, 25, &o->item_features, err);
    if (!strcmp(key, "p_none")) return parse_share(key, v, &o->p_none, err);
    if (!strcmp(key, "noise")) return parse_share(key, v, &o->noise, err);
    if (!strcmp(key, "n_train")) return parse_int(key, v, 1, MARKET_MAX_ROWS, &o->n_train, err);
    if (!strcmp(key, "n_pref")) return parse_int(key, v, 1, MARKET_MAX_ROWS, &o->n_pref, err);
    if (!strcmp(key, "n_prompts")) return parse_int(key, v, 1, MARKET_MAX_ROWS, &o->n_prompts, err);
    if (!strcmp(key, "n_eval")) return parse_int(key, v, 1, 100000, &o->n_eval, err);
    if (!strcmp(key, "seed")) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        if (!*v || *end || *v == '-')
            return rlhf_fail(err, "market: seed must be a whole number >= 0 (got \"%s\")", v);
        o->seed = s;
        return 0;
    }
    return rlhf_fail(err,
                     "unknown option \"%s\" of task market (known: n_items, n_features, "
                     "item_features, p_none, noise, n_train, n_pref, n_prompts, n_eval, seed)",
                     key);
}

static void market_print(const void *q, FILE *f) {
    const market_opts *o = q;
    fprintf(f, "n_items %d          items per prompt, A.. (2..%d)\n", o->n_items, MARKET_MAX_ITEMS);
    fprintf(f, "n_features %d       features to draw from, a.. (3..26)\n", o->n_features);
    fprintf(f, "item_features %d    features per item (below n_features)\n", o->item_features);
    fprintf(f, "p_none %g         share of prompts where no item has the need\n", o->p_none);
    fprintf(f, "noise %g          share of wrong teacher answers in sft.jsonl\n", o->noise);
    fprintf(f, "n_train %d       rows of sft.jsonl\n", o->n_train);
    fprintf(f, "n_pref %d        rows of prefs.jsonl and of prefs_immediate.jsonl\n", o->n_pref);
    fprintf(f, "n_prompts %d     rows of prompts.jsonl\n", o->n_prompts);
    fprintf(f, "n_eval %d         distinct held-out prompts in eval.jsonl\n", o->n_eval);
    fprintf(f, "seed %llu\n", (unsigned long long)o->seed);
    fprintf(f,
            "Reward sources: task:market (best answer 0/1), task:market:utility (true utility\n"
            "+1/-1/0), task:market:immediate (the foresight rating plain RLHF trains on),\n"
            "task:market:hindsight (the rating after the simulated outcome: RLHS); docs/rlhs.md\n");
}

static int market_check(const market_opts *o, rlhf_err *err) {
    if (o->item_features >= o->n_features)
        return rlhf_fail(err,
                         "market: item_features (%d) must be below n_features (%d): an item "
                         "without the need draws from the other features",
                         o->item_features, o->n_features);
    return 0;
}

// ---------------------------------------------------------------- drawing

static uint64_t mix(uint64_t z) { // splitmix64's finalizer
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t text_hash(const char *s) {
    uint64_t h = 0x243f6a8885a308d3ULL;
    for (; *s; s++) h = mix(h ^ (unsigned char)*s);
    return h;
}

static int is_heldout(const char *prompt) {
    return text_hash(prompt) % 100 < MARKET_HELDOUT_PERCENT;
}

static int below(rlhf_rng *r, int n) {
    return (int)(rng_u64(r) % (uint64_t)n);
}

static int chance(rlhf_rng *r, double p) {
    return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0) < p;
}

// k distinct features out of the first n letters, never `skip`, always `must`
// (0: none), in alphabetical order
static void draw_features(rlhf_rng *r, int n, int k, char skip, char must, char *out) {
    int take[26] = {0}, have = 0;
    if (must) take[must - 'a'] = 1, have = 1;
    while (have < k) {
        int c = below(r, n);
        if (take[c] || 'a' + c == skip) continue;
        take[c] = 1;
        have++;
    }
    int j = 0;
    for (int c = 0; c < n; c++)
        if (take[c]) out[j++] = (char)('a' + c);
    out[j] = 0;
}

// one prompt text in buf (and parsed in *p) on the wanted side of the split
static int draw_prompt(rlhf_rng *r, const market_opts *o, int heldout, char *buf, size_t n,
                       market_prompt *p, rlhf_err *err) {
    for (int tries = 0; tries < 100000; tries++) {
        char need = (char)('a' + below(r, o->n_features));
        int fit = chance(r, o->p_none) ? -1 : below(r, o->n_items);
        size_t len = (size_t)snprintf(buf, n, "need=%c", need);
        for (int i = 0; i < o->n_items; i++) {
            char f[27];
            draw_features(r, o->n_features, o->item_features, i == fit ? 0 : need,
                          i == fit ? need : 0, f);
            len += (size_t)snprintf(buf + len, n - len, " %c=%s", 'A' + i, f);
        }
        snprintf(buf + len, n - len, ":");
        if (is_heldout(buf) == heldout) return market_parse_prompt(buf, p, err);
    }
    return rlhf_fail(err, "market: no %s prompt found", heldout ? "held-out" : "training");
}

// answer a (0..n_items-1: buy item a; n_items: none) as text
static void answer_text(int a, int n_items, char *out) {
    if (a == n_items)
        strcpy(out, "none");
    else
        snprintf(out, 8, "buy %c", 'A' + a);
}

static int best_answer(const market_prompt *p) {
    for (int i = 0; i < p->n_items; i++)
        if (strchr(p->features[i], p->need)) return i;
    return p->n_items;
}

static double rate_answer(const market_prompt *p, int a, int view) {
    char t[8];
    market_outcome o;
    answer_text(a, p->n_items, t);
    market_simulate(p, t, &o, NULL, 0);
    return market_rate(&o, view);
}

// ---------------------------------------------------------------- files

static int put_line(atomic_file *f, cJSON *obj, rlhf_err *err) {
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!s) return rlhf_fail(err, "out of memory writing JSON");
    int rc = atomic_write(f, s, strlen(s), err);
    if (rc == 0) rc = atomic_write(f, "\n", 1, err);
    cJSON_free(s);
    return rc;
}

enum { F_SFT, F_PREFS, F_PREFS_IMMEDIATE, F_PROMPTS, F_EVAL };

// a pair of different answers whose `view` ratings differ: chosen the higher
static void draw_pair(rlhf_rng *r, const market_prompt *p, int view, int *chosen, int *rejected) {
    for (;;) {
        int a = below(r, p->n_items + 1), b = below(r, p->n_items + 1);
        double ra = rate_answer(p, a, view), rb = rate_answer(p, b, view);
        if (a == b || ra == rb) continue;
        *chosen = ra > rb ? a : b;
        *rejected = ra > rb ? b : a;
        return;
    }
}

// one row of file `which` for prompt p (text pt)
static cJSON *make_row(rlhf_rng *r, const market_opts *o, int which, const char *pt,
                       const market_prompt *p) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "prompt", pt);
    char a[8], b[8];
    int best = best_answer(p);
    if (which == F_SFT) {
        int ans = best, wrong = chance(r, o->noise);
        if (wrong) { // uniform among the other answers
            ans = below(r, o->n_items);
            if (ans >= best) ans++;
        }
        answer_text(ans, o->n_items, a);
        cJSON_AddStringToObject(j, "completion", a);
        cJSON_AddBoolToObject(j, "correct", !wrong);
    } else if (which == F_PREFS || which == F_PREFS_IMMEDIATE) {
        int c, w;
        draw_pair(r, p, which == F_PREFS ? MARKET_VIEW_HINDSIGHT : MARKET_VIEW_IMMEDIATE, &c, &w);
        answer_text(c, o->n_items, a);
        answer_text(w, o->n_items, b);
        cJSON_AddStringToObject(j, "chosen", a);
        cJSON_AddStringToObject(j, "rejected", b);
    } else if (which == F_EVAL) {
        answer_text(best, o->n_items, a);
        cJSON_AddStringToObject(j, "completion", a);
    }
    return j;
}

// 1 if h was already in the set (open addressing, cap a power of two)
static int seen_before(uint64_t *set, size_t cap, uint64_t h) {
    h |= 1; // 0 marks an empty slot
    for (size_t i = (size_t)mix(h) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (set[i] == h) return 1;
        if (!set[i]) {
            set[i] = h;
            return 0;
        }
    }
}

static int write_file(const char *dir, const char *name, int which, int rows, const market_opts *o,
                      rlhf_err *err) {
    char path[4200], pt[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    atomic_file f;
    if (atomic_open(&f, path, err)) return -1;
    rlhf_rng r; // eval.jsonl's stream ignores the seed: every run sees the same eval set
    rng_seed(&r, mix((which == F_EVAL ? 0 : mix(o->seed)) ^ mix((uint64_t)which + 0x5851f42dULL)));
    size_t cap = 1;
    while (which == F_EVAL && cap < 2 * (size_t)rows) cap *= 2;
    uint64_t *set = which == F_EVAL ? xcalloc(cap, sizeof *set) : NULL;
    int rc = 0;
    long tries = 0;
    for (int i = 0; i < rows && rc == 0; i++) {
        market_prompt p;
        rc = draw_prompt(&r, o, which == F_EVAL, pt, sizeof pt, &p, err);
        if (rc == 0 && set && seen_before(set, cap, text_hash(pt))) {
            if (++tries > 1000L * rows + 100000)
                rc = rlhf_fail(err,
                               "market: found only %d distinct held-out prompts for "
                               "eval.jsonl; lower n_eval or widen n_features/item_features",
                               i);
            i--;
            continue;
        }
        if (rc == 0) rc = put_line(&f, make_row(&r, o, which, pt, &p), err);
    }
    free(set);
    if (rc) {
        atomic_abort(&f);
        return -1;
    }
    return atomic_commit(&f, err);
}

static cJSON *opts_json(const market_opts *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "task", "market");
    cJSON_AddNumberToObject(j, "n_items", o->n_items);
    cJSON_AddNumberToObject(j, "n_features", o->n_features);
    cJSON_AddNumberToObject(j, "item_features", o->item_features);
    cJSON_AddNumberToObject(j, "p_none", o->p_none);
    cJSON_AddNumberToObject(j, "noise", o->noise);
    cJSON_AddNumberToObject(j, "n_train", o->n_train);
    cJSON_AddNumberToObject(j, "n_pref", o->n_pref);
    cJSON_AddNumberToObject(j, "n_prompts", o->n_prompts);
    cJSON_AddNumberToObject(j, "n_eval", o->n_eval);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed); // a string: exact for any 64-bit seed
    cJSON_AddNumberToObject(j, "heldout_percent", MARKET_HELDOUT_PERCENT);
    return j;
}

static int market_write(const char *dir, const void *q, rlhf_err *err) {
    const market_opts *o = q;
    if (market_check(o, err) || make_dirs(dir, err)) return -1;
    if (write_file(dir, "sft.jsonl", F_SFT, o->n_train, o, err) ||
        write_file(dir, "prefs.jsonl", F_PREFS, o->n_pref, o, err) ||
        write_file(dir, "prefs_immediate.jsonl", F_PREFS_IMMEDIATE, o->n_pref, o, err) ||
        write_file(dir, "prompts.jsonl", F_PROMPTS, o->n_prompts, o, err) ||
        write_file(dir, "eval.jsonl", F_EVAL, o->n_eval, o, err))
        return -1;
    cJSON *j = opts_json(o);
    char *s = cJSON_Print(j), path[4200];
    cJSON_Delete(j);
    if (!s) return rlhf_fail(err, "out of memory writing JSON");
    snprintf(path, sizeof path, "%s/task.json", dir);
    int rc = atomic_write_file(path, s, strlen(s), err);
    cJSON_free(s);
    return rc;
}

static int market_load(const char *dir, void *q, rlhf_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/task.json", dir);
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    market_opts o;
    market_default(&o);
    int rc = -1;
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(j, "task");
    if (!cJSON_IsObject(j) || !cJSON_IsString(task) || strcmp(task->valuestring, "market")) {
        rlhf_fail(err, "%s: not a task.json of task market (field \"task\")", path);
        goto done;
    }
    static const char *const keys[] = {"n_items", "n_features", "item_features", "p_none", "noise",
                                       "n_train", "n_pref",     "n_prompts",     "n_eval", "seed"};
    for (int k = 0; k < 10; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        char num[64];
        const char *v = NULL;
        if (cJSON_IsString(x))
            v = x->valuestring;
        else if (cJSON_IsNumber(x))
            snprintf(num, sizeof num, "%.17g", x->valuedouble), v = num;
        if (!v) {
            rlhf_fail(err, "%s: field \"%s\" missing or not a number", path, keys[k]);
            goto done;
        }
        if (market_set(&o, keys[k], v, err)) {
            rlhf_fail_ctx(err, "%s: field \"%s\"", path, keys[k]);
            goto done;
        }
    }
    if (market_check(&o, err)) {
        rlhf_fail_ctx(err, "%s", path);
        goto done;
    }
    *(market_opts *)q = o;
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

static const char *const market_outputs[] = {
    "sft.jsonl", "prefs.jsonl", "prefs_immediate.jsonl", "prompts.jsonl", "eval.jsonl",
    "task.json", NULL};

const rlhf_task task_market = {
    "market",
    "RLHS's marketplace: \"need=c A=ab B=de C=cf:\" -> \"buy C\" or \"none\"; views best, "
    "utility (true), immediate (misled by claims) and hindsight (after the outcome)",
    sizeof(market_opts),
    market_default,
    market_set,
    market_print,
    market_write,
    market_load,
    market_score,
    "sft.jsonl (a noisy teacher), prefs.jsonl (hindsight labels), prefs_immediate.jsonl\n"
    "(immediate labels), prompts.jsonl, eval.jsonl (held-out, best answers) and task.json",
    market_views,
    market_outputs};
