// data/task_users: a built-in task whose users disagree — for user-conditioned
// reward models (VPL, train/rm_vpl.h). Prompts are additions "a+b=" (operands
// of 1..digits decimal digits); every pair holds the correct answer written two
// ways: bare ("85") and with a trailing mark ("85!"). Users come from two
// populations with opposite tastes: population A prefers the bare answer,
// population B the marked one. The pairs of both populations are drawn from the
// same distribution, so one Bradley-Terry reward for everybody can do no better
// than ~50% on a user's pairs, while a reward that knows the user (from a few of
// that user's pairs) can reach 100%.
//
// `rlhf data --task users --out DIR` writes:
//   prefs.jsonl    {"prompt","chosen","rejected","user","population"}: n_users
//                  training users (even index: A, odd: B), pairs_per_user rows each,
//                  a user's rows together
//   eval.jsonl     the same for n_eval_users held-out users (ids after the
//                  training users')
//   prompts.jsonl  {"prompt"} for online RL (n_users * pairs_per_user prompts)
//   task.json      the options
// Each file has its own random stream. Scoring a completion: 1 when, after
// stripping whitespace and one trailing mark, it is the correct sum (either
// style is a right answer), else 0 (shaped: the same).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/task.h"
#include "io/file.h"
#include "io/json.h"

#define USERS_MAX_ROWS 10000000

typedef struct {
    int digits;         // operands 0 .. 10^digits - 1, 1..6
    int n_users;        // training users
    int n_eval_users;   // held-out users
    int pairs_per_user; // rows per user
    char mark[8];       // population B's trailing mark
    uint64_t seed;
} users_opts;

static void users_default(void *p) {
    users_opts *o = p;
    *o = (users_opts){.digits = 2, .n_users = 200, .n_eval_users = 40, .pairs_per_user = 12,
                      .seed = 1};
    strcpy(o->mark, "!");
}

static int parse_int(const char *key, const char *v, long lo, long hi, int *out, rlhf_err *err) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return rlhf_fail(err, "%s must be a whole number in [%ld, %ld] (got \"%s\")", key, lo, hi, v);
    *out = (int)x;
    return 0;
}

static int users_set(void *p, const char *key, const char *v, rlhf_err *err) {
    users_opts *o = p;
    if (!strncmp(key, "--", 2)) key += 2;
    if (!strcmp(key, "digits")) return parse_int(key, v, 1, 6, &o->digits, err);
    if (!strcmp(key, "n_users")) return parse_int(key, v, 2, 1000000, &o->n_users, err);
    if (!strcmp(key, "n_eval_users")) return parse_int(key, v, 0, 1000000, &o->n_eval_users, err);
    if (!strcmp(key, "pairs_per_user")) return parse_int(key, v, 2, 10000, &o->pairs_per_user, err);
    if (!strcmp(key, "mark")) {
        size_t n = strlen(v);
        if (n < 1 || n >= sizeof o->mark || strpbrk(v, "0123456789 \t\n\r\"\\"))
            return rlhf_fail(err, "mark must be 1..7 characters, no digits, spaces, quotes or "
                                  "backslashes (got \"%s\")", v);
        strcpy(o->mark, v);
        return 0;
    }
    if (!strcmp(key, "seed")) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        if (!*v || *end || *v == '-') return rlhf_fail(err, "seed must be a whole number >= 0 (got \"%s\")", v);
        o->seed = s;
        return 0;
    }
    return rlhf_fail(err, "unknown option of task users (known: digits, n_users, n_eval_users, "
                          "pairs_per_user, mark, seed)");
}

static void users_print(const void *p, FILE *f) {
    const users_opts *o = p;
    fprintf(f, "digits %d\nn_users %d\nn_eval_users %d\npairs_per_user %d\nmark %s\nseed %llu\n",
            o->digits, o->n_users, o->n_eval_users, o->pairs_per_user, o->mark,
            (unsigned long long)o->seed);
}

static int users_check(const users_opts *o, rlhf_err *err) {
    if ((long)(o->n_users + o->n_eval_users) * o->pairs_per_user > USERS_MAX_ROWS)
        return rlhf_fail(err, "(n_users + n_eval_users) * pairs_per_user is over %d rows",
                         USERS_MAX_ROWS);
    return 0;
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static long long draw_operand(rlhf_rng *r, int digits) {
    long long hi = 1;
    for (int i = 0; i < digits; i++) hi *= 10;
    return (long long)(rng_u64(r) % (uint64_t)hi);  // bias negligible for hi <= 10^6
}

static int put_line(atomic_file *f, cJSON *obj, rlhf_err *err) {
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!s) return rlhf_fail(err, "out of memory writing JSON");
    int rc = atomic_write(f, s, strlen(s), err);
    if (rc == 0) rc = atomic_write(f, "\n", 1, err);
    cJSON_free(s);
    return rc;
}

// which: 0 prefs (training users), 1 eval (held-out users), 2 prompts
static int write_file(const char *dir, const char *name, int which, const users_opts *o,
                      rlhf_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    atomic_file f;
    if (atomic_open(&f, path, err)) return -1;
    rlhf_rng r;
    rng_seed(&r, mix(o->seed ^ mix((uint64_t)which + 0x5851f42d4c957f2dULL)));
    int u0 = which == 1 ? o->n_users : 0, nu = which == 1 ? o->n_eval_users : o->n_users;
    for (int u = u0; u < u0 + nu; u++)
        for (int i = 0; i < o->pairs_per_user; i++) {
            long long a = draw_operand(&r, o->digits), b = draw_operand(&r, o->digits);
            char prompt[64], bare[32], marked[48], user[32];
            snprintf(prompt, sizeof prompt, "%lld+%lld=", a, b);
            snprintf(bare, sizeof bare, "%lld", a + b);
            snprintf(marked, sizeof marked, "%lld%s", a + b, o->mark);
            snprintf(user, sizeof user, "u%04d", u);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "prompt", prompt);
            if (which != 2) {
                int pop_b = u % 2;
                cJSON_AddStringToObject(j, "chosen", pop_b ? marked : bare);
                cJSON_AddStringToObject(j, "rejected", pop_b ? bare : marked);
                cJSON_AddStringToObject(j, "user", user);
                cJSON_AddStringToObject(j, "population", pop_b ? "B" : "A");
            }
            if (put_line(&f, j, err)) {
                atomic_abort(&f);
                return -1;
            }
        }
    return atomic_commit(&f, err);
}

static cJSON *opts_json(const users_opts *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "task", "users");
    cJSON_AddNumberToObject(j, "digits", o->digits);
    cJSON_AddNumberToObject(j, "n_users", o->n_users);
    cJSON_AddNumberToObject(j, "n_eval_users", o->n_eval_users);
    cJSON_AddNumberToObject(j, "pairs_per_user", o->pairs_per_user);
    cJSON_AddStringToObject(j, "mark", o->mark);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed);  // a string: exact for any 64-bit seed
    return j;
}

static int users_write(const char *dir, const void *p, rlhf_err *err) {
    const users_opts *o = p;
    if (users_check(o, err) || make_dirs(dir, err)) return -1;
    if (write_file(dir, "prefs.jsonl", 0, o, err) || write_file(dir, "eval.jsonl", 1, o, err) ||
        write_file(dir, "prompts.jsonl", 2, o, err))
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

static int users_load(const char *dir, void *p, rlhf_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/task.json", dir);
    cJSON *j = json_read_doc(path, err);
    if (!j) return -1;
    users_opts o;
    users_default(&o);
    int rc = -1;
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(j, "task");
    if (!cJSON_IsObject(j) || !cJSON_IsString(task) || strcmp(task->valuestring, "users")) {
        rlhf_fail(err, "%s: not a task.json of task users (field \"task\")", path);
        goto done;
    }
    static const char *const keys[] = {"digits", "n_users", "n_eval_users", "pairs_per_user",
                                       "mark", "seed"};
    for (int k = 0; k < 6; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        char num[64];
        const char *v = NULL;
        if (cJSON_IsString(x)) v = x->valuestring;
        else if (cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble))
            snprintf(num, sizeof num, "%.0f", x->valuedouble), v = num;
        if (!v) {
            rlhf_fail(err, "%s: field \"%s\" missing or not a string / whole number", path, keys[k]);
            goto done;
        }
        if (users_set(&o, keys[k], v, err)) {
            rlhf_fail_ctx(err, "%s: field \"%s\"", path, keys[k]);
            goto done;
        }
    }
    *(users_opts *)p = o;
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

// 1 when the completion is the right sum, bare or with a trailing mark (any
// non-digit tail of at most 7 characters)
static int users_score(const char *prompt, const char *completion, int shaped, double *reward,
                       rlhf_err *err) {
    (void)shaped;
    long long a, b;
    char op;
    if (arith_parse_prompt(prompt, &a, &op, &b, err)) return -1;
    char buf[64];
    size_t n = strlen(completion);
    while (n > 0 && strchr(" \t\n\r\v\f", completion[n - 1])) n--;
    size_t start = 0;
    while (start < n && strchr(" \t\n\r\v\f", completion[start])) start++;
    size_t end = n;
    while (end > start && n - end < 7 && !(completion[end - 1] >= '0' && completion[end - 1] <= '9'))
        end--;
    long long v;
    *reward = 0;
    if (end > start && end - start < sizeof buf) {
        memcpy(buf, completion + start, end - start);
        buf[end - start] = 0;
        if (arith_parse_answer(buf, &v) == 0 && v == arith_answer(a, op, b)) *reward = 1;
    }
    return 0;
}

static const char *const users_outputs[] = {"prefs.jsonl", "eval.jsonl", "prompts.jsonl",
                                            "task.json", NULL};

const rlhf_task task_users = {
    "users",
    "users who disagree: \"37+48=\" -> \"85\" (population A) vs \"85!\" (population B), for "
    "user-conditioned reward models (rm --objective vpl)",
    sizeof(users_opts),
    users_default,
    users_set,
    users_print,
    users_write,
    users_load,
    users_score,
    "prefs.jsonl (pairs with \"user\" and \"population\"), eval.jsonl (held-out users),\n"
    "prompts.jsonl and task.json",
    NULL,
    users_outputs};
