// Tests of the built-in arith task: scoring rules on hand-made completions, the
// noisy teacher's mistakes (checked by hand and by independent recomputation),
// the files it writes (TRL field names, noise share, preference order, held-out
// split) and determinism.
#include <cjson/cJSON.h>
#include <dirent.h>

#include "data/task.h"
#include "io/file.h"
#include "test.h"

// ---------------------------------------------------------------- helpers

typedef struct {
    cJSON **rows;
    int n;
} jsonl;

// Parses every line of path as a JSON object; n = -1 on any failure.
static jsonl read_jsonl(const char *dir, const char *name) {
    jsonl out = {NULL, -1};
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = read_file(path, NULL, NULL);
    if (!text) return out;
    int cap = 16, bad = 0;
    out.rows = malloc(cap * sizeof *out.rows);
    out.n = 0;
    for (char *line = text, *next; *line; line = next) {
        char *nl = strchr(line, '\n');
        if (!nl) { // every line, the last too, ends in '\n'
            bad = 1;
            break;
        }
        *nl = 0;
        next = nl + 1;
        cJSON *j = cJSON_Parse(line);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            bad = 1;
            break;
        }
        if (out.n == cap) out.rows = realloc(out.rows, (cap *= 2) * sizeof *out.rows);
        out.rows[out.n++] = j;
    }
    free(text);
    if (bad) out.n = -1;
    return out;
}

static void free_jsonl(jsonl *f) {
    for (int i = 0; i < f->n; i++) cJSON_Delete(f->rows[i]);
    free(f->rows);
}

static const char *str_field(const cJSON *row, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

// 1 true, 0 false, -1 missing or not a bool
static int bool_field(const cJSON *row, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsBool(x) ? cJSON_IsTrue(x) : -1;
}

static int n_fields(const cJSON *row) {
    return cJSON_GetArraySize(row);
}

static char *read_all(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return read_file(path, NULL, NULL);
}

static int same_contents(const char *d1, const char *d2, const char *name) {
    char *a = read_all(d1, name), *b = read_all(d2, name);
    int same = a && b && !strcmp(a, b);
    free(a);
    free(b);
    return same;
}

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static arith_opts small_opts(void) {
    arith_opts o;
    arith_default_opts(&o);
    o.n_train = 2000, o.n_pref = 2000, o.n_prompts = 500, o.n_eval = 300;
    return o;
}

static const char *files[] = {"sft.jsonl",     "prefs.jsonl", "kto.jsonl",
                              "prompts.jsonl", "eval.jsonl",  "task.json"};

// ---------------------------------------------------------------- scoring

static int test_score_exact(void) {
    CHECK(arith_score("37+485=", "522", 0) == 1.0);
    CHECK(arith_score("37+485=", " 522\n", 0) == 1.0); // surrounding whitespace is stripped
    CHECK(arith_score("37+485=", "522 \t\r\n", 0) == 1.0);
    CHECK(arith_score("37+485=", "523", 0) == 0.0);
    CHECK(arith_score("37+485=", "412", 0) == 0.0);
    CHECK(arith_score("37+485=", "0522", 0) == 0.0); // leading zeros are not canonical
    CHECK(arith_score("37+485=", "+522", 0) == 0.0);
    CHECK(arith_score("37+485=", "-522", 0) == 0.0);
    CHECK(arith_score("37+485=", "", 0) == 0.0);
    CHECK(arith_score("37+485=", "  \n", 0) == 0.0);
    CHECK(arith_score("37+485=", NULL, 0) == 0.0);
    CHECK(arith_score("37+485=", "522abc", 0) == 0.0); // garbage after the answer
    CHECK(arith_score("37+485=", "522\n37+1=38", 0) == 0.0);
    CHECK(arith_score("37+485=", "5 22", 0) == 0.0);
    CHECK(arith_score("37+485=", "522.", 0) == 0.0);
    CHECK(arith_score("37+485=", "522.0", 0) == 0.0);
    CHECK(arith_score("37+485=", "-", 0) == 0.0);
    CHECK(arith_score("37+485=", "\xff\xfe", 0) == 0.0);
    // negative results
    CHECK(arith_score("12-24=", "-12", 0) == 1.0);
    CHECK(arith_score("12-24=", "12", 0) == 0.0);
    CHECK(arith_score("12-24=", "- 12", 0) == 0.0);
    CHECK(arith_score("12-24=", "-012", 0) == 0.0);
    CHECK(arith_score("24-12=", "12", 0) == 1.0);
    CHECK(arith_score("3-3=", "0", 0) == 1.0);
    CHECK(arith_score("3-3=", "-0", 0) == 0.0);
    CHECK(arith_score("3-3=", "00", 0) == 0.0);
    CHECK(arith_score("0+0=", "0", 0) == 1.0);
    CHECK(arith_score("0-9=", "-9", 0) == 1.0);
    // the largest operands, and answers too long to be right (no overflow)
    CHECK(arith_score("999999999999999+999999999999999=", "1999999999999998", 0) == 1.0);
    CHECK(arith_score("0-999999999999999=", "-999999999999999", 0) == 1.0);
    CHECK(arith_score("1+1=", "99999999999999999999999999", 0) == 0.0);
    CHECK(arith_score("1+1=", "-9223372036854775808", 0) == 0.0);
    // spaces in the prompt are allowed
    CHECK(arith_score(" 37 + 485 =\n", "522", 0) == 1.0);
    long long v = 0;
    CHECK(arith_parse_answer(" -45 ", &v) == 0 && v == -45);
    CHECK(arith_parse_answer("0", &v) == 0 && v == 0);
    CHECK(arith_parse_answer("07", &v) != 0);
    CHECK(arith_answer(37, '+', 485) == 522 && arith_answer(12, '-', 24) == -12);
    return 0;
}

static int test_score_shaped(void) {
    double r1 = arith_score("37+485=", "523", 1), r10 = arith_score("37+485=", "512", 1);
    double r100 = arith_score("37+485=", "422", 1), r_far = arith_score("37+485=", "-90000", 1);
    CHECK(arith_score("37+485=", "522", 1) == 1.0);
    CHECK_CLOSE(r1, 0.5 / (1 + log10(2.0)), 1e-12, 0);
    CHECK_CLOSE(r10, 0.5 / (1 + log10(11.0)), 1e-12, 0);
    CHECK_CLOSE(arith_score("37+485=", "521", 1), r1, 1e-15, 0); // symmetric in the sign
    CHECK(0.5 > r1 && r1 > r10 && r10 > r100 && r100 > r_far && r_far > 0);
    CHECK(arith_score("37+485=", "0522", 1) == 0.0); // not an answer: no partial credit
    CHECK(arith_score("37+485=", "abc", 1) == 0.0);
    CHECK(arith_score("37+485=", "", 1) == 0.0);
    CHECK(arith_score("12-24=", "-13", 1) == r1);
    return 0;
}

static int test_malformed_prompts(void) {
    const char *bad[] = {"",
                         "   ",
                         "abc",
                         "37+485",
                         "37+485=522",
                         "37*4=",
                         "-3+4=",
                         "+3+4=",
                         "3++4=",
                         "3+-4=",
                         "=",
                         "+=",
                         "3+=",
                         "+4=",
                         "3 4=",
                         "3+4==",
                         "3+4=x",
                         "1234567890123456+1=",
                         "1+1234567890123456=",
                         "3.5+1=",
                         "3+4\n=",
                         "\xff+1="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rlhf_err err = {{0}};
        double r = 12345;
        CHECKF(arith_reward(bad[i], "7", 0, &r, &err) == -1, "prompt \"%s\"", bad[i]);
        CHECKF(strstr(err.msg, "malformed prompt") != NULL, "prompt \"%s\": %s", bad[i], err.msg);
        CHECK(r == 12345); // untouched
        CHECK(isnan(arith_score(bad[i], "7", 0)));
        CHECK(isnan(arith_score(bad[i], "7", 1)));
    }
    rlhf_err err;
    CHECK(arith_reward(NULL, "7", 0, &(double){0}, &err) == -1);
    long long a, b;
    char op;
    CHECK(arith_parse_prompt("123456789012345-9=", &a, &op, &b, NULL) == 0);
    CHECK(a == 123456789012345LL && op == '-' && b == 9);
    return 0;
}

// ---------------------------------------------------------------- the teacher's mistakes

static int test_mistakes_by_hand(void) {
    long long w = 0;
    // 37+485: 7+5=12 (carry), 3+8+1=12 (carry), 0+4+1=5 -> 522.
    // Dropping all carries: 2, 1, 4 -> 412.
    CHECK(arith_wrong_answer(37, '+', 485, ARITH_DROP_ALL_CARRIES, NULL, &w) == 1 && w == 412);
    // dropping the ones' carry: 3+8=11 (carry still made), 0+4+1 -> 512
    CHECK(arith_wrong_answer(37, '+', 485, ARITH_DROP_CARRY, NULL, &w) == 1 && w == 512);
    rlhf_rng r;
    rng_seed(&r, 7);
    int seen512 = 0, seen422 = 0;
    for (int i = 0; i < 100; i++) {
        CHECK(arith_wrong_answer(37, '+', 485, ARITH_DROP_CARRY, &r, &w) == 1);
        CHECKF(w == 512 || w == 422, "%lld", w);
        seen512 |= w == 512, seen422 |= w == 422;
    }
    CHECK(seen512 && seen422);
    // 95+5: 5+5=10, 9+0+1=10 -> 100; forgetting the first carry gives 90
    CHECK(arith_wrong_answer(95, '+', 5, ARITH_DROP_CARRY, NULL, &w) == 1 && w == 90);
    CHECK(arith_wrong_answer(95, '+', 5, ARITH_DROP_ALL_CARRIES, NULL, &w) == 1 && w == 90);
    // no carry: nothing to drop
    CHECK(arith_wrong_answer(12, '+', 34, ARITH_DROP_CARRY, NULL, &w) == 0);
    CHECK(arith_wrong_answer(12, '+', 34, ARITH_DROP_ALL_CARRIES, NULL, &w) == 0);
    // subtraction: 52-17, 2-7 borrows; without the borrow 5-1=4 -> 45 (gold 35)
    CHECK(arith_wrong_answer(52, '-', 17, ARITH_DROP_ALL_CARRIES, NULL, &w) == 1 && w == 45);
    CHECK(arith_wrong_answer(52, '-', 17, ARITH_DROP_CARRY, NULL, &w) == 1 && w == 45);
    CHECK(arith_wrong_answer(17, '-', 52, ARITH_DROP_ALL_CARRIES, NULL, &w) == 1 && w == -45);
    // 100-1 (gold 99): 10-1=9 in the ones, then tens and hundreds as if nothing was borrowed
    CHECK(arith_wrong_answer(100, '-', 1, ARITH_DROP_ALL_CARRIES, NULL, &w) == 1 && w == 109);
    CHECK(arith_wrong_answer(100, '-', 1, ARITH_DROP_CARRY, NULL, &w) == 1 && w == 109);
    CHECK(arith_wrong_answer(58, '-', 17, ARITH_DROP_CARRY, NULL, &w) == 0);
    // swaps: adjacent different digits, never a leading zero
    CHECK(arith_wrong_answer(12, '+', 34, ARITH_SWAP_DIGITS, NULL, &w) == 1 && w == 64);
    CHECK(arith_wrong_answer(200, '+', 5, ARITH_SWAP_DIGITS, NULL, &w) == 1 && w == 250);
    CHECK(arith_wrong_answer(12, '-', 24, ARITH_SWAP_DIGITS, NULL, &w) == 1 && w == -21);
    CHECK(arith_wrong_answer(5, '+', 6, ARITH_SWAP_DIGITS, NULL, &w) == 0);   // 11
    CHECK(arith_wrong_answer(2, '+', 3, ARITH_SWAP_DIGITS, NULL, &w) == 0);   // 5
    CHECK(arith_wrong_answer(90, '+', 10, ARITH_SWAP_DIGITS, NULL, &w) == 0); // 100
    CHECK(arith_wrong_answer(2, '+', 3, ARITH_OFF_BY_ONE, NULL, &w) == 1 && w == 6);
    CHECK(arith_wrong_answer(2, '+', 3, 0, NULL, &w) == 0);
    CHECK(arith_wrong_answer(2, '+', 3, ARITH_N_ERRORS, NULL, &w) == 0);
    CHECK(arith_wrong_answer(-2, '+', 3, ARITH_OFF_BY_ONE, NULL, &w) == 0);
    CHECK(arith_wrong_answer(2, '*', 3, ARITH_OFF_BY_ONE, NULL, &w) == 0);
    CHECK(arith_wrong_answer(1000000000000000LL, '+', 3, ARITH_OFF_BY_ONE, NULL, &w) == 0);
    CHECK(!strcmp(arith_error_name(ARITH_DROP_CARRY, '+'), "dropped_carry"));
    CHECK(!strcmp(arith_error_name(ARITH_DROP_CARRY, '-'), "dropped_borrow"));
    return 0;
}

// independent checks of each kind, by strings where possible
static int digits_sorted_equal(long long x, long long y) {
    char s[32], t[32];
    snprintf(s, sizeof s, "%lld", x);
    snprintf(t, sizeof t, "%lld", y);
    size_t n = strlen(s);
    if (n != strlen(t)) return 0;
    int cs[256] = {0};
    for (size_t i = 0; i < n; i++) cs[(unsigned char)s[i]]++, cs[(unsigned char)t[i]]--;
    for (int i = 0; i < 256; i++)
        if (cs[i]) return 0;
    return 1;
}

static int is_power_of_ten(long long x) {
    if (x < 10) return 0;
    while (x % 10 == 0) x /= 10;
    return x == 1;
}

// digit-wise a op b with no carries, by schoolbook on strings
static long long no_carry(long long a, char op, long long b) {
    long long x = a, y = b, sign = 1;
    if (op == '-' && a < b) x = b, y = a, sign = -1;
    char s[32], t[32], out[32];
    int n = snprintf(s, sizeof s, "%020lld", x);
    snprintf(t, sizeof t, "%020lld", y);
    for (int i = 0; i < n; i++) {
        int d = op == '+' ? (s[i] - '0') + (t[i] - '0') : (s[i] - '0') - (t[i] - '0') + 10;
        out[i] = (char)('0' + d % 10);
    }
    out[n] = 0;
    return sign * strtoll(out, NULL, 10);
}

// 1 if the wrong answer w to a op b is a mistake of the named kind
static int is_kind(long long a, char op, long long b, long long w, const char *kind) {
    long long g = arith_answer(a, op, b), d = w - g;
    if (w == g) return 0;
    if (!strcmp(kind, "dropped_all_carries") || !strcmp(kind, "dropped_all_borrows"))
        return w == no_carry(a, op, b) && (op == '+') == !strcmp(kind, "dropped_all_carries");
    if (!strcmp(kind, "dropped_carry")) return op == '+' && is_power_of_ten(-d);
    if (!strcmp(kind, "dropped_borrow")) // the magnitude grows by a power of ten
        return op == '-' && is_power_of_ten(a >= b ? d : -d);
    if (!strcmp(kind, "swapped_digits")) return (w < 0) == (g < 0) && digits_sorted_equal(w, g);
    if (!strcmp(kind, "off_by_one")) return d == 1 || d == -1 || d == 10 || d == -10;
    return 0;
}

static int test_mistakes_random(void) {
    rlhf_rng r;
    rng_seed(&r, 3);
    static const char *names[2][ARITH_N_ERRORS] = {
        {"", "dropped_carry", "dropped_all_carries", "swapped_digits", "off_by_one"},
        {"", "dropped_borrow", "dropped_all_borrows", "swapped_digits", "off_by_one"}};
    int applied[ARITH_N_ERRORS] = {0};
    for (int i = 0; i < 20000; i++) {
        int da = 1 + (int)(rng_u64(&r) % 15), db = 1 + (int)(rng_u64(&r) % 15);
        long long ma = 1, mb = 1;
        while (da--) ma *= 10;
        while (db--) mb *= 10;
        long long a = (long long)(rng_u64(&r) % (uint64_t)ma);
        long long b = (long long)(rng_u64(&r) % (uint64_t)mb);
        char op = i & 1 ? '-' : '+';
        for (int k = 1; k < ARITH_N_ERRORS; k++) {
            long long w;
            if (!arith_wrong_answer(a, op, b, k, &r, &w)) continue;
            applied[k]++;
            const char *name = arith_error_name(k, op);
            CHECKF(!strcmp(name, names[op == '-'][k]), "%s", name);
            CHECKF(is_kind(a, op, b, w, name), "%lld%c%lld: %s gave %lld", a, op, b, name, w);
            char ws[32];
            snprintf(ws, sizeof ws, "%lld", w);
            char prompt[64];
            snprintf(prompt, sizeof prompt, "%lld%c%lld=", a, op, b);
            CHECK(arith_score(prompt, ws, 0) == 0.0);
        }
    }
    for (int k = 1; k < ARITH_N_ERRORS; k++)
        CHECKF(applied[k] > 1000, "kind %d: %d", k, applied[k]);
    return 0;
}

// ---------------------------------------------------------------- the files

static int test_files_trl(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch directory");
    char sub[512];
    snprintf(sub, sizeof sub, "%s/a/b", dir); // parents are created
    arith_opts o = small_opts();
    rlhf_err err = {{0}};
    CHECKF(arith_write_dir(sub, &o, &err) == 0, "%s", err.msg);

    jsonl sft = read_jsonl(sub, "sft.jsonl"), prefs = read_jsonl(sub, "prefs.jsonl");
    jsonl kto = read_jsonl(sub, "kto.jsonl"), prompts = read_jsonl(sub, "prompts.jsonl");
    jsonl eval = read_jsonl(sub, "eval.jsonl");
    CHECK(sft.n == o.n_train && kto.n == o.n_train && prefs.n == o.n_pref);
    CHECK(prompts.n == o.n_prompts && eval.n == o.n_eval);
    for (int i = 0; i < sft.n; i++) {
        const cJSON *row = sft.rows[i];
        const char *p = str_field(row, "prompt"), *c = str_field(row, "completion");
        const char *e = str_field(row, "error");
        int correct = bool_field(row, "correct");
        CHECK(p && c && correct >= 0);
        if (!p || !c) continue;
        CHECK(n_fields(row) == (correct ? 3 : 4));
        CHECK(arith_score(p, c, 0) == (correct ? 1.0 : 0.0));
        CHECK((e != NULL) == !correct);
        CHECK(p[strlen(p) - 1] == '=');
        long long v;
        CHECK(arith_parse_answer(c, &v) == 0 && !strchr(c, ' ')); // canonical, bare digits
    }
    for (int i = 0; i < kto.n; i++) {
        const cJSON *row = kto.rows[i];
        const char *p = str_field(row, "prompt"), *c = str_field(row, "completion");
        int label = bool_field(row, "label");
        CHECK(p && c && label >= 0 && n_fields(row) == 3);
        if (p && c) CHECK(arith_score(p, c, 0) == (label ? 1.0 : 0.0));
    }
    for (int i = 0; i < prefs.n; i++) {
        const cJSON *row = prefs.rows[i];
        CHECK(str_field(row, "prompt") && str_field(row, "chosen") && str_field(row, "rejected"));
        CHECK(bool_field(row, "chosen_correct") >= 0 && n_fields(row) == 4);
    }
    for (int i = 0; i < prompts.n; i++) {
        const char *p = str_field(prompts.rows[i], "prompt");
        CHECK(p && n_fields(prompts.rows[i]) == 1);
        long long a, b;
        char op;
        if (p) CHECK(arith_parse_prompt(p, &a, &op, &b, NULL) == 0);
    }
    for (int i = 0; i < eval.n; i++) {
        const cJSON *row = eval.rows[i];
        const char *p = str_field(row, "prompt"), *c = str_field(row, "completion");
        CHECK(p && c && n_fields(row) == 2);
        if (p && c) CHECK(arith_score(p, c, 0) == 1.0); // gold answers
    }
    // operands within the digit range, both ops used, negative answers present
    int n_minus = 0, n_neg = 0;
    for (int i = 0; i < sft.n; i++) {
        long long a, b;
        char op;
        if (arith_parse_prompt(str_field(sft.rows[i], "prompt"), &a, &op, &b, NULL) != 0) continue;
        CHECK(a >= 0 && a <= 999 && b >= 0 && b <= 999);
        n_minus += op == '-';
        n_neg += arith_answer(a, op, b) < 0;
    }
    CHECK(n_minus > sft.n / 3 && n_minus < 2 * sft.n / 3 && n_neg > 0);

    // task.json rebuilds the options, through the table too
    arith_opts back;
    memset(&back, 0xab, sizeof back);
    CHECKF(arith_load_opts(sub, &back, &err) == 0, "%s", err.msg);
    CHECK(back.min_digits == o.min_digits && back.max_digits == o.max_digits);
    CHECK(!strcmp(back.ops, o.ops) && back.noise == o.noise);
    CHECK(back.pref_both_wrong == o.pref_both_wrong && back.n_train == o.n_train);
    CHECK(back.n_pref == o.n_pref && back.n_prompts == o.n_prompts && back.n_eval == o.n_eval);
    CHECK(back.seed == o.seed);
    char *tj = read_all(sub, "task.json");
    cJSON *j = tj ? cJSON_Parse(tj) : NULL;
    CHECK(j && !strcmp(str_field(j, "task"), "arith"));
    cJSON_Delete(j);
    free(tj);
    free_jsonl(&sft), free_jsonl(&prefs), free_jsonl(&kto), free_jsonl(&prompts);
    free_jsonl(&eval);
    return 0;
}

static int test_noise_share_and_kinds(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch directory");
    const double noises[] = {0.0, 0.3, 1.0};
    for (int t = 0; t < 3; t++) {
        arith_opts o = small_opts();
        o.noise = noises[t];
        o.n_train = 20000, o.n_pref = 0, o.n_prompts = 0, o.n_eval = 0;
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%d", dir, t);
        rlhf_err err;
        CHECKF(arith_write_dir(sub, &o, &err) == 0, "%s", err.msg);
        jsonl sft = read_jsonl(sub, "sft.jsonl"), kto = read_jsonl(sub, "kto.jsonl");
        CHECK(sft.n == o.n_train && kto.n == o.n_train);
        int wrong = 0, kto_wrong = 0, kinds[8] = {0};
        static const char *names[] = {"dropped_carry",  "dropped_all_carries",
                                      "dropped_borrow", "dropped_all_borrows",
                                      "swapped_digits", "off_by_one"};
        for (int i = 0; i < sft.n; i++) {
            if (bool_field(sft.rows[i], "correct")) continue;
            wrong++;
            const char *p = str_field(sft.rows[i], "prompt"),
                       *c = str_field(sft.rows[i], "completion");
            const char *e = str_field(sft.rows[i], "error");
            long long a, b, w;
            char op;
            if (!e || arith_parse_prompt(p, &a, &op, &b, NULL) || arith_parse_answer(c, &w)) {
                CHECK(0);
                continue;
            }
            CHECKF(is_kind(a, op, b, w, e), "%s%s: %s", p, c, e);
            for (int k = 0; k < 6; k++) kinds[k] += !strcmp(e, names[k]);
        }
        for (int i = 0; i < kto.n; i++) kto_wrong += bool_field(kto.rows[i], "label") == 0;
        double share = (double)wrong / sft.n, kshare = (double)kto_wrong / kto.n;
        // binomial sd at 0.3 and n=20000 is 0.0032; 0.015 is ~4.6 sd
        CHECK_CLOSE(share, o.noise, 0.015, 0);
        CHECK_CLOSE(kshare, o.noise, 0.015, 0);
        if (o.noise > 0)
            for (int k = 0; k < 6; k++)
                CHECKF(kinds[k] > wrong / 40, "%s: %d of %d", names[k], kinds[k], wrong);
        free_jsonl(&sft), free_jsonl(&kto);
    }
    return 0;
}

static int test_prefs_order(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch directory");
    arith_opts o = small_opts();
    o.n_pref = 10000, o.pref_both_wrong = 0.4;
    rlhf_err err;
    CHECKF(arith_write_dir(dir, &o, &err) == 0, "%s", err.msg);
    jsonl prefs = read_jsonl(dir, "prefs.jsonl");
    CHECK(prefs.n == o.n_pref);
    int both_wrong = 0;
    for (int i = 0; i < prefs.n; i++) {
        const cJSON *row = prefs.rows[i];
        const char *p = str_field(row, "prompt"), *c = str_field(row, "chosen");
        const char *r = str_field(row, "rejected");
        int cc = bool_field(row, "chosen_correct");
        if (!p || !c || !r) {
            CHECK(0);
            continue;
        }
        CHECKF(strcmp(c, r) != 0, "%s %s", p, c);
        CHECK(arith_score(p, r, 0) == 0.0);
        CHECK(arith_score(p, c, 0) == (cc ? 1.0 : 0.0));
        CHECKF(arith_score(p, c, 1) > arith_score(p, r, 1), "%s %s > %s", p, c, r);
        if (!cc) {
            both_wrong++;
            long long a, b, vc, vr;
            char op;
            arith_parse_prompt(p, &a, &op, &b, NULL);
            arith_parse_answer(c, &vc), arith_parse_answer(r, &vr);
            long long g = arith_answer(a, op, b);
            CHECK(llabs(vc - g) < llabs(vr - g));
        }
    }
    CHECK_CLOSE((double)both_wrong / prefs.n, o.pref_both_wrong, 0.025, 0);
    free_jsonl(&prefs);
    return 0;
}

// all training prompts of a directory, sorted
static int training_prompts(const char *dir, char ***out) {
    static const char *names[] = {"sft.jsonl", "prefs.jsonl", "kto.jsonl", "prompts.jsonl"};
    int n = 0, cap = 1024;
    char **v = malloc(cap * sizeof *v);
    for (int f = 0; f < 4; f++) {
        jsonl j = read_jsonl(dir, names[f]);
        for (int i = 0; i < j.n; i++) {
            if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
            const char *p = str_field(j.rows[i], "prompt");
            v[n++] = strdup(p ? p : "");
        }
        free_jsonl(&j);
    }
    qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

static int test_eval_disjoint(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch directory");
    char d1[512], d2[512], d3[512];
    snprintf(d1, sizeof d1, "%s/1", dir);
    snprintf(d2, sizeof d2, "%s/2", dir);
    snprintf(d3, sizeof d3, "%s/3", dir);
    arith_opts o = small_opts(), o2 = small_opts(), o3 = small_opts();
    o.n_eval = 2000;
    o2.seed = 99, o2.min_digits = 1, o2.max_digits = 2; // a small space: heavy reuse
    o2.n_train = 20000;
    o3.min_digits = o3.max_digits = 2, o3.ops[0] = '+', o3.ops[1] = 0, o3.n_eval = 700;
    rlhf_err err;
    CHECKF(arith_write_dir(d1, &o, &err) == 0, "%s", err.msg);
    CHECKF(arith_write_dir(d2, &o2, &err) == 0, "%s", err.msg);
    CHECKF(arith_write_dir(d3, &o3, &err) == 0, "%s", err.msg);
    const char *evals[] = {d1, d3};
    const char *trains[] = {d1, d2, d3};
    for (int e = 0; e < 2; e++) {
        jsonl ev = read_jsonl(evals[e], "eval.jsonl");
        CHECK(ev.n == (e ? o3.n_eval : o.n_eval));
        char **ep = malloc((ev.n + 1) * sizeof *ep);
        for (int i = 0; i < ev.n; i++) {
            const char *p = str_field(ev.rows[i], "prompt");
            long long a, b;
            char op;
            CHECK(p && arith_parse_prompt(p, &a, &op, &b, NULL) == 0 && arith_is_heldout(a, op, b));
            ep[i] = (char *)(p ? p : "");
        }
        qsort(ep, ev.n, sizeof *ep, cmp_str);
        for (int i = 1; i < ev.n; i++) CHECKF(strcmp(ep[i - 1], ep[i]) != 0, "repeated %s", ep[i]);
        // no eval prompt in any training file, of this directory or another seed/range
        for (int t = 0; t < 3; t++) {
            char **tp;
            int n = training_prompts(trains[t], &tp), hits = 0;
            CHECK(n > 0);
            for (int i = 0; i < ev.n; i++)
                hits += bsearch(&ep[i], tp, n, sizeof *tp, cmp_str) != NULL;
            CHECKF(hits == 0, "%d eval prompts of %s in %s", hits, evals[e], trains[t]);
            for (int i = 0; i < n; i++) {
                long long a, b;
                char op;
                CHECK(arith_parse_prompt(tp[i], &a, &op, &b, NULL) == 0 &&
                      !arith_is_heldout(a, op, b));
                free(tp[i]);
            }
            free(tp);
        }
        free(ep);
        free_jsonl(&ev);
    }
    // the split holds out about ARITH_HELDOUT_PERCENT percent of all problems
    int held = 0, total = 0;
    for (long long a = 0; a < 300; a++)
        for (long long b = 0; b < 300; b++, total += 2)
            held += arith_is_heldout(a, '+', b) + arith_is_heldout(a, '-', b);
    CHECK_CLOSE((double)held / total, ARITH_HELDOUT_PERCENT / 100.0, 0.005, 0);
    // a space too small for n_eval distinct held-out problems is an error, not a hang
    arith_opts tiny = small_opts();
    tiny.min_digits = tiny.max_digits = 1;
    snprintf(d1, sizeof d1, "%s/tiny", dir);
    CHECK(arith_write_dir(d1, &tiny, &err) == -1);
    CHECKF(strstr(err.msg, "lower n_eval") != NULL, "%s", err.msg);
    tiny.n_eval = 5;
    CHECKF(arith_write_dir(d1, &tiny, &err) == 0, "%s", err.msg);
    return 0;
}

static int test_determinism(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch directory");
    char d1[512], d2[512], d3[512], d4[512];
    snprintf(d1, sizeof d1, "%s/1", dir);
    snprintf(d2, sizeof d2, "%s/2", dir);
    snprintf(d3, sizeof d3, "%s/3", dir);
    snprintf(d4, sizeof d4, "%s/4", dir);
    arith_opts o = small_opts(), other_seed = small_opts(), more_prefs = small_opts();
    other_seed.seed = 2;
    more_prefs.n_pref = 3000;
    rlhf_err err;
    CHECK(arith_write_dir(d1, &o, &err) == 0);
    CHECK(arith_write_dir(d2, &o, &err) == 0);
    CHECK(arith_write_dir(d3, &other_seed, &err) == 0);
    CHECK(arith_write_dir(d4, &more_prefs, &err) == 0);
    for (int f = 0; f < 6; f++) CHECKF(same_contents(d1, d2, files[f]), "%s differs", files[f]);
    CHECK(!same_contents(d1, d3, "sft.jsonl") && !same_contents(d1, d3, "prefs.jsonl"));
    CHECK(!same_contents(d1, d3, "kto.jsonl") && !same_contents(d1, d3, "prompts.jsonl"));
    CHECK(same_contents(d1, d3, "eval.jsonl")); // the eval set does not move with the seed
    // one count changes only its own file (and task.json)
    CHECK(same_contents(d1, d4, "sft.jsonl") && same_contents(d1, d4, "eval.jsonl"));
    CHECK(same_contents(d1, d4, "kto.jsonl") && same_contents(d1, d4, "prompts.jsonl"));
    CHECK(!same_contents(d1, d4, "prefs.jsonl") && !same_contents(d1, d4, "task.json"));
    // and the first 2000 pairs are the same
    char *a = read_all(d1, "prefs.jsonl"), *b = read_all(d4, "prefs.jsonl");
    CHECK(a && b && !strncmp(a, b, strlen(a)));
    free(a);
    free(b);
    // rewriting over an existing directory works and leaves no temp files
    CHECK(arith_write_dir(d1, &other_seed, &err) == 0);
    for (int f = 0; f < 6; f++) CHECK(same_contents(d1, d3, files[f]));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", d1);
    CHECK(system(cmd) != 0);
    return 0;
}

// ---------------------------------------------------------------- options and the table

static int test_opts(void) {
    arith_opts o;
    arith_default_opts(&o);
    rlhf_err err;
    CHECK(arith_check_opts(&o, &err) == 0);
    CHECK(o.min_digits == 1 && o.max_digits == 3 && !strcmp(o.ops, "+-") && o.noise == 0.3);
    CHECK(arith_set_opt(&o, "digits", "2-4", &err) == 0 && o.min_digits == 2 && o.max_digits == 4);
    CHECK(arith_set_opt(&o, "--digits", "5", &err) == 0 && o.min_digits == 5 && o.max_digits == 5);
    CHECK(arith_set_opt(&o, "min_digits", "3", &err) == 0 && o.min_digits == 3);
    CHECK(arith_set_opt(&o, "max_digits", "15", &err) == 0 && o.max_digits == 15);
    CHECK(arith_set_opt(&o, "ops", "-", &err) == 0 && !strcmp(o.ops, "-"));
    CHECK(arith_set_opt(&o, "noise", "0.1", &err) == 0 && o.noise == 0.1);
    CHECK(arith_set_opt(&o, "pref_both_wrong", "1", &err) == 0 && o.pref_both_wrong == 1);
    CHECK(arith_set_opt(&o, "n_train", "7", &err) == 0 && o.n_train == 7);
    CHECK(arith_set_opt(&o, "n_pref", "8", &err) == 0 && o.n_pref == 8);
    CHECK(arith_set_opt(&o, "n_prompts", "9", &err) == 0 && o.n_prompts == 9);
    CHECK(arith_set_opt(&o, "n_eval", "10", &err) == 0 && o.n_eval == 10);
    CHECK(arith_set_opt(&o, "seed", "18446744073709551615", &err) == 0 && o.seed == UINT64_MAX);
    const char *bad[][2] = {
        {"digits", "0-3"},    {"digits", "3-2"}, {"digits", "1-16"}, {"digits", "x"},
        {"digits", "1-3x"},   {"ops", "*"},      {"ops", "++"},      {"ops", ""},
        {"ops", "+-+-+-+-+"}, {"noise", "1.5"},  {"noise", "-0.1"},  {"noise", "nan"},
        {"noise", "0.3x"},    {"n_train", "-1"}, {"n_train", "1e3"}, {"n_eval", ""},
        {"seed", "-1"},       {"seed", "12a"},   {"colour", "red"},  {"max_digits", "16"}};
    arith_opts keep = o;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECKF(arith_set_opt(&o, bad[i][0], bad[i][1], &err) == -1, "%s %s", bad[i][0], bad[i][1]);
        CHECK(err.msg[0] != 0);
    }
    CHECK(!memcmp(&keep, &o, sizeof o));
    // min > max through the separate keys is caught when writing
    o.min_digits = 9, o.max_digits = 4;
    CHECK(arith_check_opts(&o, &err) == -1);
    CHECK(arith_write_dir("/nonexistent-never-created", &o, &err) == -1);

    // a seed beyond 2^53 survives task.json
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch directory");
    arith_opts s = small_opts(), back;
    s.n_train = s.n_pref = s.n_prompts = 10, s.n_eval = 5, s.seed = 18446744073709551557ULL;
    CHECKF(arith_write_dir(dir, &s, &err) == 0, "%s", err.msg);
    CHECKF(arith_load_opts(dir, &back, &err) == 0, "%s", err.msg);
    CHECK(back.seed == s.seed);
    char *text = NULL;
    size_t text_len = 0;
    FILE *mf = open_memstream(&text, &text_len);
    arith_print_opts(&back, mf);
    fclose(mf);
    CHECKF(strstr(text, "digits 1-3\nops +-\n") && strstr(text, "seed 18446744073709551557\n"),
           "%s", text);
    free(text);
    // bad task.json: an error naming the file, never a crash
    const char *bad_json[] = {"",
                              "[]",
                              "{\"task\":\"arith\"}",
                              "{\"task\":\"other\"}",
                              "{\"task\":\"arith\",\"min_digits\":1,\"max_digits\":3,"
                              "\"ops\":\"*\",\"noise\":0.3,\"pref_both_wrong\":0,"
                              "\"n_train\":1,\"n_pref\":1,\"n_prompts\":1,\"n_eval\":1,\"seed\":1}",
                              "{\"task\":\"arith\",\"min_digits\":1.5,\"max_digits\":3}",
                              // "+\u0000-" would read as "+": refused, not cut
                              "{\"task\":\"arith\",\"min_digits\":1,\"max_digits\":3,"
                              "\"ops\":\"+\\u0000-\",\"noise\":0.3,\"pref_both_wrong\":0,"
                              "\"n_train\":1,\"n_pref\":1,\"n_prompts\":1,\"n_eval\":1,\"seed\":1}"};
    char path[512];
    snprintf(path, sizeof path, "%s/task.json", dir);
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        CHECK(atomic_write_file(path, bad_json[i], strlen(bad_json[i]), &err) == 0);
        CHECKF(arith_load_opts(dir, &back, &err) == -1, "%s", bad_json[i]);
        CHECKF(strstr(err.msg, "task.json") != NULL, "%s", err.msg);
    }
    CHECK(arith_load_opts("/nonexistent-dir", &back, &err) == -1);
    return 0;
}

static int test_table(void) {
    CHECK(task_find("nope") == NULL && task_find(NULL) == NULL);
    CHECK(task_at(-1) == NULL && task_at(0) != NULL);
    const rlhf_task *t = task_find("arith");
    CHECK(t != NULL);
    if (!t) return 0;
    CHECK(t == task_at(0) && t->summary && t->opts_size == sizeof(arith_opts));
    void *opts = malloc(t->opts_size);
    t->default_opts(opts);
    rlhf_err err;
    CHECK(t->set_opt(opts, "n_train", "50", &err) == 0);
    CHECK(t->set_opt(opts, "n_pref", "0", &err) == 0 &&
          t->set_opt(opts, "n_prompts", "0", &err) == 0);
    CHECK(t->set_opt(opts, "n_eval", "20", &err) == 0);
    CHECK(t->set_opt(opts, "bogus", "1", &err) == -1);
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch directory");
    CHECKF(t->write_dir(dir, opts, &err) == 0, "%s", err.msg);
    void *back = malloc(t->opts_size);
    CHECK(t->load_opts(dir, back, &err) == 0 && ((arith_opts *)back)->n_train == 50);
    double r = -1;
    CHECK(t->score("37+485=", "522", 0, &r, &err) == 0 && r == 1.0);
    CHECK(t->score("37+485=", "523", 1, &r, &err) == 0 && r > 0 && r < 0.5);
    CHECK(t->score("nonsense", "1", 0, &r, &err) == -1);
    jsonl sft = read_jsonl(dir, "sft.jsonl"), prefs = read_jsonl(dir, "prefs.jsonl");
    CHECK(sft.n == 50 && prefs.n == 0); // an empty file, still there
    free_jsonl(&sft), free_jsonl(&prefs);
    free(opts);
    free(back);
    return 0;
}

// every task's outputs list (what `rlhf data` guards) names exactly the files
// its write_dir writes: a file added to write_dir and not to the list would be
// written over a user's file of that name
static int test_outputs_listed(void) {
    for (int i = 0; task_at(i); i++) {
        const rlhf_task *t = task_at(i);
        CHECKF(t->outputs != NULL, "task %s lists no outputs", t->name);
        if (!t->outputs) continue;
        void *opts = malloc(t->opts_size);
        t->default_opts(opts);
        char dir[256];
        const char *d = test_tmpdir();
        if (!d) SKIP("no scratch directory");
        snprintf(dir, sizeof dir, "%s", d);
        rlhf_err err;
        CHECKF(t->write_dir(dir, opts, &err) == 0, "%s: %s", t->name, err.msg);
        free(opts);
        char *names[64];
        int n = 0, want = 0;
        DIR *dp = opendir(dir);
        CHECK(dp != NULL);
        if (!dp) continue;
        for (struct dirent *e; (e = readdir(dp)) && n < 64;)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
        closedir(dp);
        while (t->outputs[want]) want++;
        CHECKF(n == want, "task %s: write_dir wrote %d files, outputs lists %d", t->name, n, want);
        for (int k = 0; k < n; k++) {
            int listed = 0;
            for (int j = 0; t->outputs[j]; j++) listed |= !strcmp(t->outputs[j], names[k]);
            CHECKF(listed, "task %s writes %s, not in its outputs", t->name, names[k]);
            free(names[k]);
        }
    }
    return 0;
}

int main(void) {
    RUN(test_score_exact);
    RUN(test_score_shaped);
    RUN(test_malformed_prompts);
    RUN(test_mistakes_by_hand);
    RUN(test_mistakes_random);
    RUN(test_files_trl);
    RUN(test_noise_share_and_kinds);
    RUN(test_prefs_order);
    RUN(test_eval_disjoint);
    RUN(test_determinism);
    RUN(test_opts);
    RUN(test_table);
    RUN(test_outputs_listed);
    TEST_EXIT();
}
