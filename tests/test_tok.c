// Tests of src/tok: the byte tokenizer, GPT-2 BPE (ids known from GPT-2 and from
// tests/gpt2_bpe_ref.py), HF tokenizer.json, llama2.c's tokenizer.bin (ids from a
// line-by-line Python port of run.c's encode on tok512.bin), round trips on
// random UTF-8 and random bytes, and bad files. Tests that need ../shared/data
// skip without it. (tests/tokenizer_test.py compares >= 1000 strings too.)
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "tok/tok.h"
#include "test.h"

// ---------------------------------------------------------------- helpers --
static int ids_equal(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int)) == 0);
}

static void print_ids(const char *what, const int *ids, int n) {
    printf("  %s:", what);
    for (int i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
}

// encodes text and checks the ids
static void check_encode(const rlhf_tokenizer *t, const char *text, int allow_special,
                         const int *want, int n_want) {
    int *ids = NULL, n = 0;
    rlhf_err err = {{0}};
    int rc = tok_encode(t, text, strlen(text), &ids, &n, allow_special, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0 && !ids_equal(ids, n, want, n_want)) {
        printf("  text \"%s\"\n", text);
        print_ids("got ", ids, n);
        print_ids("want", want, n_want);
        test_failed_++;
    }
    free(ids);
}

// decode(encode(text)) == text, byte for byte
static int roundtrip_ok(const rlhf_tokenizer *t, const char *text, size_t len, int allow_special) {
    int *ids = NULL, n = 0;
    rlhf_err err;
    if (tok_encode(t, text, len, &ids, &n, allow_special, &err) != 0) {
        printf("  encode failed: %s\n", err.msg);
        return 0;
    }
    size_t out_len;
    char *out = tok_decode_ex(t, ids, n, 0, &out_len);
    int ok = out_len == len && memcmp(out, text, len) == 0;
    free(out);
    free(ids);
    return ok;
}

static void put_utf8(char *s, size_t *o, uint32_t cp) {
    if (cp < 0x80)
        s[(*o)++] = (char)cp;
    else if (cp < 0x800) {
        s[(*o)++] = (char)(0xC0 | cp >> 6);
        s[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s[(*o)++] = (char)(0xE0 | cp >> 12);
        s[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        s[(*o)++] = (char)(0xF0 | cp >> 18);
        s[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[(*o)++] = (char)(0x80 | (cp & 0x3F));
    }
}

// random text: valid UTF-8 from ASCII, Latin, the BMP and the astral planes,
// with runs of spaces, newlines and apostrophes; or (raw) arbitrary bytes
static size_t random_text(rlhf_rng *r, char *s, size_t max_chars, int raw) {
    size_t n = 1 + rng_u64(r) % max_chars, o = 0;
    static const char *bits[] = {" ",   "  ",  "\n",   "\t", "'s", "'RE", "  \n ", "<|endoftext|>",
                                 "<s>", "123", "Hello"};
    for (size_t i = 0; i < n; i++) {
        uint64_t k = rng_u64(r) % 100;
        if (raw)
            s[o++] = (char)(rng_u64(r) & 0xFF);
        else if (k < 40)
            put_utf8(s, &o, 0x20 + (uint32_t)(rng_u64(r) % 95));
        else if (k < 55) {
            const char *b = bits[rng_u64(r) % (sizeof bits / sizeof bits[0])];
            memcpy(s + o, b, strlen(b));
            o += strlen(b);
        } else if (k < 70)
            put_utf8(s, &o, 0x80 + (uint32_t)(rng_u64(r) % 0x580));
        else if (k < 90) {
            uint32_t cp;
            do cp = 0x800 + (uint32_t)(rng_u64(r) % (0x10000 - 0x800));
            while (cp >= 0xD800 && cp < 0xE000);
            put_utf8(s, &o, cp);
        } else
            put_utf8(s, &o, 0x10000 + (uint32_t)(rng_u64(r) % 0x100000));
    }
    return o;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    RLHF_ASSERT(f);
    fwrite(data, 1, len, f);
    fclose(f);
}

// loading fails with a message that contains `needle`
static void check_load_fails(const char *path, const char *needle) {
    rlhf_tokenizer *t = NULL;
    rlhf_err err = {{0}};
    int rc = tok_load(&t, path, &err);
    CHECKF(rc != 0 && t == NULL, "loading %s should fail", path);
    CHECKF(strstr(err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle);
    if (rc == 0) tok_free(t);
}

static rlhf_tokenizer *load_shared(const char *rel) {
    const char *shared = test_shared_data();
    if (!shared) return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", shared, rel);
    struct stat st;
    if (stat(path, &st) != 0) return NULL;
    rlhf_tokenizer *t = NULL;
    rlhf_err err;
    if (tok_load(&t, path, &err)) {
        printf("  %s\n", err.msg);
        test_failed_++;
        return NULL;
    }
    return t;
}

// ------------------------------------------------------------------ byte --
static int test_byte_tokenizer(void) {
    rlhf_tokenizer *t = tok_byte_create();
    CHECK(strcmp(tok_kind(t), "byte") == 0);
    CHECK(tok_vocab_size(t) == 259);
    CHECK(tok_bos(t) == 256 && tok_eos(t) == 257 && tok_pad(t) == 258);
    CHECK(tok_find_special(t, "<|eos|>") == 257);
    CHECK(tok_find_special(t, "<|nope|>") == -1);
    int *ids, n;
    rlhf_err err;
    CHECK(tok_encode(t, "a\0\xff", 3, &ids, &n, 0, &err) == 0);
    CHECK(n == 3 && ids[0] == 'a' && ids[1] == 0 && ids[2] == 255);
    free(ids);
    int want[] = {256, 'h', 'i', 257};
    check_encode(t, "<|bos|>hi<|eos|>", 1, want, 4);
    CHECK(tok_encode(t, "<|bos|>", 7, &ids, &n, 0, &err) == 0);
    CHECK(n == 7 && ids[0] == '<');
    free(ids);
    int seq[] = {256, 'o', 'k', 258, 999, -1};
    char *s = tok_decode(t, seq, 6);
    CHECK(strcmp(s, "<|bos|>ok<|pad|>") == 0); // out-of-range ids are skipped
    free(s);
    s = tok_decode_ex(t, seq, 6, 1, NULL);
    CHECK(strcmp(s, "ok") == 0);
    free(s);
    CHECK(tok_encode(t, "", 0, &ids, &n, 1, &err) == 0 && n == 0);
    free(ids);
    rlhf_rng r;
    rng_seed(&r, 1);
    char buf[4096];
    for (int i = 0; i < 300; i++) {
        size_t len = random_text(&r, buf, 200, i % 2);
        CHECK(roundtrip_ok(t, buf, len, 0));
    }
    tok_free(t);
    return 0;
}

// ----------------------------------------------------------------- GPT-2 --
static int test_gpt2_known_ids(void) {
    rlhf_tokenizer *t = load_shared("gpt2");
    if (!t) SKIP("../shared/data/gpt2 not found");
    CHECK(strcmp(tok_kind(t), "bpe") == 0);
    CHECK(tok_vocab_size(t) == 50257);
    CHECK(tok_bos(t) == 50256 && tok_eos(t) == 50256 && tok_pad(t) == -1);
    CHECK(tok_find_special(t, "<|endoftext|>") == 50256);
    int hello[] = {15496, 995};
    check_encode(t, "Hello world", 0, hello, 2);
    int eot[] = {50256};
    check_encode(t, "<|endoftext|>", 1, eot, 1);
    int eot_text[] = {27, 91, 437, 1659, 5239, 91, 29};
    check_encode(t, "<|endoftext|>", 0, eot_text, 7);
    // from tests/gpt2_bpe_ref.py
    int contractions[] = {40, 1101, 994, 11, 345, 6, 2200, 220, 407, 0, 628, 220, 2124};
    check_encode(t, "I'm here, you'RE  not!\n\n  x", 0, contractions, 13);
    int unicode[] = {71,  2634, 18798, 10545, 245, 98,  17312, 105, 50169, 101,
                     447, 235,  41840, 102,   447, 235, 41840, 100, 17031, 29228};
    check_encode(t,
                 "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f"
                 "\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 123456",
                 0, unicode, 20);
    int spaces[] = {220, 220, 197, 25462, 220, 220, 198};
    check_encode(t, "  \t trailing  \n", 0, spaces, 7);
    int mixed[] = {15496, 50256, 995};
    check_encode(t, "Hello<|endoftext|> world", 1, mixed, 3);
    size_t len;
    const char *p = tok_piece(t, 995, &len);
    CHECK(p && len == 6 && memcmp(p, " world", 6) == 0);
    char *s = tok_decode(t, mixed, 3);
    CHECK(strcmp(s, "Hello<|endoftext|> world") == 0);
    free(s);
    tok_free(t);

    // the same vocabulary reached through either of its files
    const char *shared = test_shared_data();
    char path[1024];
    const char *files[] = {"gpt2/encoder.json", "gpt2/vocab.bpe"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", shared, files[i]);
        rlhf_err err;
        CHECKF(tok_load(&t, path, &err) == 0, "%s", err.msg);
        if (t) check_encode(t, "Hello world", 0, hello, 2), tok_free(t);
    }
    return 0;
}

static int test_gpt2_roundtrip_random(void) {
    rlhf_tokenizer *t = load_shared("gpt2");
    if (!t) SKIP("../shared/data/gpt2 not found");
    rlhf_rng r;
    rng_seed(&r, 2);
    char buf[8192];
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        int raw = i % 4 == 3; // a quarter are arbitrary bytes, mostly invalid UTF-8
        size_t len = random_text(&r, buf, 300, raw);
        if (!roundtrip_ok(t, buf, len, i % 2)) bad++;
    }
    CHECKF(bad == 0, "%d of 1000 strings did not round-trip", bad);
    tok_free(t);
    return 0;
}

// --------------------------------------------------------- tokenizer.json --
// GPT-2's byte -> character map, for writing vocabularies by hand
static void spell_byte(int b, char *out) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    int cp = b;
    if (!printable) {
        cp = 256;
        for (int c = 0; c < b; c++)
            cp += !((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE);
    }
    size_t o = 0;
    put_utf8(out, &o, (uint32_t)cp);
    out[o] = '\0';
}

static int test_hf_json_small(void) {
    // bytes 0..255, then merges he, ll, hell, Ġw; added <|im_start|> (special) and
    // [X] (not special: always matched)
    const char *dir = test_tmpdir();
    RLHF_ASSERT(dir);
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(),
          *vocab = cJSON_CreateObject();
    char sp[8];
    for (int b = 0; b < 256; b++) spell_byte(b, sp), cJSON_AddNumberToObject(vocab, sp, b);
    cJSON_AddNumberToObject(vocab, "he", 256);
    cJSON_AddNumberToObject(vocab, "ll", 257);
    cJSON_AddNumberToObject(vocab, "hell", 258);
    cJSON_AddNumberToObject(vocab, "\xc4\xa0w", 259); // "Ġw"
    const char *merges[] = {"h e", "l l", "he ll", "\xc4\xa0 w"};
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", cJSON_CreateStringArray(merges, 4));
    cJSON_AddItemToObject(root, "model", model);
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddFalseToObject(pre, "add_prefix_space");
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *added = cJSON_CreateArray();
    cJSON *a1 = cJSON_CreateObject(), *a2 = cJSON_CreateObject();
    cJSON_AddNumberToObject(a1, "id", 260);
    cJSON_AddStringToObject(a1, "content", "<|im_start|>");
    cJSON_AddTrueToObject(a1, "special");
    cJSON_AddNumberToObject(a2, "id", 261);
    cJSON_AddStringToObject(a2, "content", "[X]");
    cJSON_AddFalseToObject(a2, "special");
    cJSON_AddItemToArray(added, a1);
    cJSON_AddItemToArray(added, a2);
    cJSON_AddItemToObject(root, "added_tokens", added);
    char *json = cJSON_Print(root);
    char path[1024], cfg_path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, json, strlen(json));
    const char *cfg = "{\"eos_token\": {\"content\": \"<|im_start|>\"}, \"pad_token\": \"[X]\"}";
    snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", dir);
    write_file(cfg_path, cfg, strlen(cfg));
    free(json);

    rlhf_tokenizer *t = NULL;
    rlhf_err err;
    CHECKF(tok_load(&t, dir, &err) == 0, "%s", err.msg);
    if (t) {
        CHECK(tok_vocab_size(t) == 262);
        CHECK(tok_bos(t) == -1 && tok_eos(t) == 260 && tok_pad(t) == 261);
        int hw[] = {258, 'o', 259, 'o', 'r', 'l', 'd'};
        check_encode(t, "hello world", 0, hw, 7);
        int x[] = {'a', 261, 'b'};
        check_encode(t, "a[X]b", 0, x, 3);
        int im[] = {260, 258, 'o'};
        check_encode(t, "<|im_start|>hello", 1, im, 3);
        int *ids, n;
        CHECK(tok_encode(t, "<|im_start|>", 12, &ids, &n, 0, &err) == 0 && n == 12);
        free(ids);
        char *s = tok_decode(t, im, 3);
        CHECK(strcmp(s, "<|im_start|>hello") == 0);
        free(s);
        tok_free(t);
    }
    // merges as ["a", "b"] pairs (newer tokenizers) give the same
    cJSON_DeleteItemFromObject(model, "merges");
    cJSON *pairs = cJSON_CreateArray();
    const char *pa[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"\xc4\xa0", "w"}};
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(pairs, cJSON_CreateStringArray(pa[i], 2));
    cJSON_AddItemToObject(model, "merges", pairs);
    json = cJSON_Print(root);
    write_file(path, json, strlen(json));
    free(json);
    CHECKF(tok_load(&t, path, &err) == 0, "%s", err.msg);
    if (t) {
        int hw[] = {258, 'o', 259, 'o', 'r', 'l', 'd'};
        check_encode(t, "hello world", 0, hw, 7);
        tok_free(t);
    }
    // what we cannot honour is refused, naming the file
    cJSON_ReplaceItemInObject(pre, "type", cJSON_CreateString("Metaspace"));
    json = cJSON_Print(root);
    write_file(path, json, strlen(json));
    free(json);
    check_load_fails(path, "pre_tokenizer \"Metaspace\"");
    check_load_fails(path, path);
    cJSON_ReplaceItemInObject(pre, "type", cJSON_CreateString("ByteLevel"));
    cJSON_ReplaceItemInObject(model, "type", cJSON_CreateString("WordPiece"));
    json = cJSON_Print(root);
    write_file(path, json, strlen(json));
    free(json);
    check_load_fails(path, "WordPiece");
    cJSON_Delete(root);
    return 0;
}

// tokenizer.json made from GPT-2's files encodes as they do
static int test_hf_json_gpt2(void) {
    const char *shared = test_shared_data();
    char path[1024];
    if (!shared) SKIP("../shared/data not found");
    snprintf(path, sizeof path, "%s/gpt2/encoder.json", shared);
    FILE *f = fopen(path, "rb");
    if (!f) SKIP("../shared/data/gpt2 not found");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = (char *)xmalloc((size_t)size + 1);
    RLHF_ASSERT(fread(text, 1, (size_t)size, f) == (size_t)size);
    text[size] = '\0';
    fclose(f);
    cJSON *vocab = cJSON_Parse(text);
    free(text);
    snprintf(path, sizeof path, "%s/gpt2/vocab.bpe", shared);
    f = fopen(path, "rb");
    RLHF_ASSERT(f);
    cJSON *merges = cJSON_CreateArray();
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] && strncmp(line, "#version", 8) != 0)
            cJSON_AddItemToArray(merges, cJSON_CreateString(line));
    }
    fclose(f);
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON *added = cJSON_CreateArray(), *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 50256);
    cJSON_AddStringToObject(a, "content", "<|endoftext|>");
    cJSON_AddTrueToObject(a, "special");
    cJSON_AddItemToArray(added, a);
    cJSON_AddItemToObject(root, "added_tokens", added);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    const char *dir = test_tmpdir();
    snprintf(path, sizeof path, "%s/gpt2.json", dir);
    write_file(path, json, strlen(json));
    free(json);

    rlhf_tokenizer *hf = NULL, *g = load_shared("gpt2");
    rlhf_err err;
    CHECKF(tok_load(&hf, path, &err) == 0, "%s", err.msg);
    if (hf && g) {
        CHECK(tok_vocab_size(hf) == 50257 && tok_eos(hf) == 50256 && tok_bos(hf) == 50256);
        rlhf_rng r;
        rng_seed(&r, 3);
        char buf[4096];
        for (int i = 0; i < 200; i++) {
            size_t len = random_text(&r, buf, 200, 0);
            int *a_ids, na, *b_ids, nb;
            CHECK(tok_encode(hf, buf, len, &a_ids, &na, 1, &err) == 0);
            CHECK(tok_encode(g, buf, len, &b_ids, &nb, 1, &err) == 0);
            if (!ids_equal(a_ids, na, b_ids, nb)) {
                printf("  text \"%.*s\"\n", (int)len, buf);
                print_ids("tokenizer.json", a_ids, na);
                print_ids("encoder.json  ", b_ids, nb);
                test_failed_++;
            }
            free(a_ids);
            free(b_ids);
        }
    }
    tok_free(hf);
    tok_free(g);
    return 0;
}

// -------------------------------------------------------------- llama2.c --
static int test_llama2c_known(void) {
    rlhf_tokenizer *t = load_shared("llama2c/tok512.bin");
    if (!t) SKIP("../shared/data/llama2c/tok512.bin not found");
    CHECK(strcmp(tok_kind(t), "llama2c") == 0);
    CHECK(tok_vocab_size(t) == 512);
    CHECK(tok_bos(t) == 1 && tok_eos(t) == 2 && tok_pad(t) == -1);
    // expected ids from a Python transcription of llama2.c's encode()
    int once[] = {403, 407, 261, 378}; // " Once" " upon" " a" " time"
    check_encode(t, "Once upon a time", 0, once, 4);
    int lily[] = {317, 439, 419, 357, 336, 432, 313, 440, 411, 306, 414, 443, 436};
    check_encode(t, "Lily's mom said, \"Hello!\"", 0, lily, 13);
    // byte fallback: 日 and 本 are not in the vocabulary, \n is <0x0A> = 13
    int fallback[] = {270, 485, 306, 414, 410, 233, 154, 168, 233, 159, 175, 503, 13};
    check_encode(t, "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\xe2\x82\xac\n", 0, fallback, 13);
    int spaces[] = {410, 410, 259, 424, 414, 262, 427, 412, 331, 419};
    check_encode(t, "  two spaces", 0, spaces, 10);
    check_encode(t, "", 0, NULL, 0);
    int with_bos[] = {1, 403, 407, 261, 378};
    check_encode(t, "<s>Once upon a time", 1, with_bos, 5);
    int *ids, n;
    rlhf_err err;
    CHECK(tok_encode(t, "a\0b", 3, &ids, &n, 0, &err) == 0); // NUL is a byte like any other
    int nul[] = {261, 3, 430};
    CHECK(ids_equal(ids, n, nul, 3));
    free(ids);

    char *s = tok_decode(t, once, 4); // the dummy prefix goes away
    CHECK(strcmp(s, "Once upon a time") == 0);
    free(s);
    s = tok_decode(t, with_bos, 5); // and after BOS, as in llama2.c
    CHECK(strcmp(s, "<s>Once upon a time") == 0);
    free(s);
    s = tok_decode_ex(t, with_bos, 5, 1, NULL);
    CHECK(strcmp(s, "Once upon a time") == 0);
    free(s);
    s = tok_decode(t, fallback, 13); // <0xXX> tokens become raw bytes
    CHECK(strcmp(s, "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\xe2\x82\xac\n") == 0);
    free(s);
    s = tok_decode(t, once + 1, 3); // a sequence that starts mid-text loses its space too
    CHECK(strcmp(s, "upon a time") == 0);
    free(s);
    tok_free(t);
    return 0;
}

static int test_llama2c_roundtrip_random(void) {
    rlhf_tokenizer *t = load_shared("llama2c/tok512.bin");
    if (!t) SKIP("../shared/data/llama2c/tok512.bin not found");
    rlhf_rng r;
    rng_seed(&r, 4);
    char buf[8192];
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        size_t len = random_text(&r, buf, 300, i % 4 == 3);
        if (!roundtrip_ok(t, buf, len, i % 2)) bad++;
    }
    CHECKF(bad == 0, "%d of 1000 strings did not round-trip", bad);
    tok_free(t);
    return 0;
}

// ------------------------------------------------------------- bad input --
static int test_bad_files(void) {
    const char *dir = test_tmpdir();
    RLHF_ASSERT(dir);
    char path[1024], path2[1024];

    check_load_fails("no/such/tokenizer.bin", "no/such/tokenizer.bin");
    check_load_fails(dir, "no tokenizer in this folder");
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    write_file(path, "\x0a\x05hello", 7);
    check_load_fails(path, "sentencepiece .model files are not read");
    remove(path);

    // tokenizer.bin: max_token_length 4, three tokens "abc", then a record cut short
    unsigned char bin[64];
    size_t o = 0;
    int32_t max_len = 4, len3 = 3;
    float score = 0;
    memcpy(bin + o, &max_len, 4), o += 4;
    for (int i = 0; i < 3; i++) {
        memcpy(bin + o, &score, 4), o += 4;
        memcpy(bin + o, &len3, 4), o += 4;
        memcpy(bin + o, "abc", 3), o += 3;
    }
    memcpy(bin + o, &score, 4), o += 4;
    memcpy(bin + o, &len3, 4), o += 4;
    bin[o++] = 'x'; // 1 of 3 bytes
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    write_file(path, bin, o);
    check_load_fails(path, path);
    check_load_fails(path, "truncated");
    write_file(path, bin, 4 + 15 + 3); // cut inside a record header
    check_load_fails(path, "truncated");
    int32_t huge = 1000;
    memcpy(bin + 4 + 4, &huge, 4); // length beyond max_token_length
    write_file(path, bin, o);
    check_load_fails(path, "max_token_length");
    write_file(path, "hello world, not a tokenizer", 28);
    check_load_fails(path, "not a llama2.c tokenizer.bin");
    rlhf_tokenizer *t = NULL;
    rlhf_err err;
    memcpy(bin + 4 + 4, &len3, 4);
    write_file(path, bin, 4 + 33); // three whole records load; a given size beyond them does not
    CHECKF(tok_load_llama2c(&t, path, 0, &err) == 0, "%s", err.msg);
    CHECK(t && tok_vocab_size(t) == 3);
    tok_free(t);
    CHECK(tok_load_llama2c(&t, path, 5, &err) != 0 && strstr(err.msg, "vocabulary size"));
    remove(path);

    // a real file cut short
    const char *shared = test_shared_data();
    if (shared) {
        char real[1024];
        snprintf(real, sizeof real, "%s/llama2c/tok512.bin", shared);
        FILE *f = fopen(real, "rb");
        if (f) {
            char data[3000];
            size_t got = fread(data, 1, sizeof data, f);
            fclose(f);
            snprintf(path, sizeof path, "%s/tok512_cut.bin", dir);
            write_file(path, data, got);
            CHECKF(tok_load_llama2c(&t, path, 512, &err) != 0 && strstr(err.msg, "truncated") &&
                       strstr(err.msg, "tok512_cut.bin"),
                   "%s", err.msg);
        }
    }

    // malformed encoder.json
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    snprintf(path2, sizeof path2, "%s/vocab.bpe", dir);
    write_file(path, "{\"a\": 0,\n \"b\": 1,,}", 19);
    write_file(path2, "#version: 0.2\na b\n", 18);
    check_load_fails(dir, "encoder.json:2:");
    check_load_fails(dir, "invalid JSON");
    write_file(path, "{\"a\": 0, \"b\": \"one\"}", 20);
    check_load_fails(dir, "token \"b\" has no valid id");
    write_file(path, "{\"a\": 0, \"b\": 1, \"ab\": 2}", 25);
    CHECKF(tok_load(&t, dir, &err) == 0, "%s", err.msg); // fine: a two-letter vocabulary
    if (t) {
        int ab[] = {2, 1, 0};
        check_encode(t, "abba", 0, ab, 3);
        int *ids = NULL, n = 0; // no token for "c"
        CHECK(tok_encode(t, "c", 1, &ids, &n, 0, &err) != 0 && strstr(err.msg, "0x63"));
        free(ids);
        tok_free(t);
    }
    // merges naming unknown tokens, with the line
    write_file(path2, "#version: 0.2\na b\nb q\n", 22);
    check_load_fails(dir, "vocab.bpe:3: merge \"b q\": \"q\" is not in the vocabulary");
    write_file(path2, "#version: 0.2\na b c\n", 20);
    check_load_fails(dir, "vocab.bpe:2: expected two tokens");
    // missing merges file
    remove(path2);
    check_load_fails(dir, "vocab.bpe");
    check_load_fails(path, "vocab.bpe: cannot open");
    remove(path);
    return 0;
}

// ------------------------------------------------- continuations and BOS --
// decode(a ++ b) == decode(a) + tok_decode_next(last of a, b), byte for byte,
// with and without skip_special, over random id sequences (a fifth of the ids
// special), for one tokenizer. Returns the number of failures.
static int continuation_failures(const rlhf_tokenizer *t, uint64_t seed, int trials) {
    rlhf_rng r;
    rng_seed(&r, seed);
    int V = tok_vocab_size(t), bad = 0, ids[64];
    int specials[3] = {tok_bos(t), tok_eos(t), tok_pad(t)};
    for (int i = 0; i < trials; i++) {
        int na = (int)(rng_u64(&r) % 24), nb = (int)(rng_u64(&r) % 24);
        for (int j = 0; j < na + nb; j++) {
            int sp = specials[rng_u64(&r) % 3];
            ids[j] = rng_u64(&r) % 5 == 0 && sp >= 0 ? sp : (int)(rng_u64(&r) % (uint64_t)V);
        }
        for (int skip = 0; skip < 2; skip++) {
            size_t lf, la, lb;
            char *full = tok_decode_ex(t, ids, na + nb, skip, &lf);
            char *pa = tok_decode_ex(t, ids, na, skip, &la);
            char *pb = tok_decode_next(t, na ? ids[na - 1] : -1, ids + na, nb, skip, &lb);
            if (!(lf == la + lb && memcmp(full, pa, la) == 0 && memcmp(full + la, pb, lb) == 0)) {
                if (bad++ < 3) {
                    printf("  %s: skip_special %d: decode(a++b) \"%s\" != \"%s\" + \"%s\"\n",
                           tok_kind(t), skip, full, pa, pb);
                    print_ids("a", ids, na);
                    print_ids("b", ids + na, nb);
                }
            }
            free(full), free(pa), free(pb);
        }
    }
    return bad;
}

// byte-level vocabularies: encoding a continuation is plain encoding
static int encode_next_is_encode(const rlhf_tokenizer *t) {
    rlhf_rng r;
    rng_seed(&r, 15);
    char buf[4096];
    rlhf_err err;
    for (int i = 0; i < 300; i++) {
        buf[0] = ' ';
        size_t len = (i % 2) + random_text(&r, buf + (i % 2), 60, i % 4 == 3);
        int *a = NULL, *b = NULL, na = 0, nb = 0;
        int ok = tok_encode(t, buf, len, &a, &na, i % 3 == 0, &err) == 0 &&
                 tok_encode_next(t, buf, len, &b, &nb, i % 3 == 0, &err) == 0 &&
                 ids_equal(a, na, b, nb);
        free(a), free(b);
        if (!ok) return 0;
    }
    return 1;
}

static int test_decode_continuation(void) {
    rlhf_tokenizer *b = tok_byte_create();
    CHECKF(continuation_failures(b, 11, 3000) == 0, "byte");
    CHECK(encode_next_is_encode(b));
    tok_free(b);
    rlhf_tokenizer *g = load_shared("gpt2");
    if (g) {
        CHECKF(continuation_failures(g, 12, 3000) == 0, "gpt2");
        CHECK(encode_next_is_encode(g));
        tok_free(g);
    } else {
        printf("  (../shared/data/gpt2 not found: GPT-2 BPE not checked)\n");
    }
    rlhf_tokenizer *t = load_shared("llama2c/tok512.bin");
    if (!t) SKIP("../shared/data/llama2c/tok512.bin not found (byte checked)");
    CHECKF(continuation_failures(t, 13, 3000) == 0, "llama2c");
    // "The dragon" + " was": the completion keeps its space; after BOS it has none
    int *p = NULL, *c = NULL, np = 0, nc = 0;
    rlhf_err err;
    CHECK(tok_encode(t, "The dragon", 10, &p, &np, 0, &err) == 0);
    CHECK(tok_encode(t, "was very small", 14, &c, &nc, 0, &err) == 0); // " was" " very" ...
    size_t len;
    char *s = tok_decode_next(t, p[np - 1], c, nc, 0, &len);
    CHECKF(strcmp(s, " was very small") == 0 && len == 15, "got \"%s\"", s);
    free(s);
    s = tok_decode_next(t, tok_bos(t), c, nc, 0, NULL);
    CHECKF(strcmp(s, "was very small") == 0, "after BOS: got \"%s\"", s);
    free(s);
    s = tok_decode_next(t, -1, c, nc, 1, NULL);
    CHECKF(strcmp(s, "was very small") == 0, "at the start: got \"%s\"", s);
    free(s);
    // encoding a completion is the inverse: " was very small" gives the ids the
    // model generates after "The dragon" (no dummy " " token first), ", there"
    // gives [",", " there"], and any text decodes back to itself
    int *c2 = NULL, nc2 = 0;
    CHECK(tok_encode_next(t, " was very small", 15, &c2, &nc2, 0, &err) == 0);
    CHECK(ids_equal(c2, nc2, c, nc));
    free(c2);
    int comma_there[] = {432, 383}; // "," " there": run.c's encode of "Once upon a time, there"
    check_encode(t, "Once upon a time, there", 0, (int[]){403, 407, 261, 378, 432, 383}, 6);
    CHECK(tok_encode_next(t, ", there", 7, &c2, &nc2, 0, &err) == 0);
    CHECK(ids_equal(c2, nc2, comma_there, 2));
    free(c2);
    rlhf_rng r;
    rng_seed(&r, 14);
    char buf[4096];
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        buf[0] = ' ';
        int lead = i % 2; // half start with a space
        size_t len = (size_t)lead + random_text(&r, buf + lead, 60, i % 4 == 3);
        int *ids = NULL, n = 0;
        size_t out_len = 0;
        char *out = NULL;
        if (tok_encode_next(t, buf, len, &ids, &n, i % 3 == 0, &err) == 0)
            out = tok_decode_next(t, p[np - 1], ids, n, 0, &out_len);
        if (!out || out_len != len || memcmp(out, buf, len) != 0) bad++;
        free(out), free(ids);
    }
    CHECKF(bad == 0, "%d of 1000 completions did not come back", bad);
    free(p), free(c);
    tok_free(t);
    return 0;
}

// a tokenizer.json of the 256 byte tokens and <s> (256), </s> (257), with an
// optional post_processor (JSON text) and tokenizer_config.json (NULL: none)
static rlhf_tokenizer *hf_with_bos(const char *dir, const char *post, const char *config) {
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(),
          *vocab = cJSON_CreateObject();
    char sp[8];
    for (int b = 0; b < 256; b++) spell_byte(b, sp), cJSON_AddNumberToObject(vocab, sp, b);
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", cJSON_CreateArray());
    cJSON_AddItemToObject(root, "model", model);
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON *added = cJSON_CreateArray();
    const char *names[2] = {"<s>", "</s>"};
    for (int i = 0; i < 2; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", 256 + i);
        cJSON_AddStringToObject(a, "content", names[i]);
        cJSON_AddTrueToObject(a, "special");
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddItemToObject(root, "added_tokens", added);
    if (post) cJSON_AddItemToObject(root, "post_processor", cJSON_Parse(post));
    char *json = cJSON_Print(root);
    cJSON_Delete(root);
    char path[1024], cfg_path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, json, strlen(json));
    free(json);
    snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", dir);
    remove(cfg_path);
    if (config) write_file(cfg_path, config, strlen(config));
    rlhf_tokenizer *t = NULL;
    rlhf_err err;
    if (tok_load(&t, dir, &err)) {
        printf("  %s\n", err.msg);
        test_failed_++;
    }
    return t;
}

static int test_bos_defaults(void) {
    const char *dir = test_tmpdir();
    RLHF_ASSERT(dir);
    const char *tmpl = "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
                       "\"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]}";
    char seq[600];
    snprintf(seq, sizeof seq, "{\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}, %s]}",
             tmpl);
    struct {
        const char *post, *config;
        int want;
    } cases[] = {
        {NULL, NULL, 0},                                       // GPT-2-like: no BOS
        {"{\"type\": \"ByteLevel\"}", NULL, 0},
        {NULL, "{\"add_bos_token\": true}", 1},                // tokenizer_config.json says so
        {tmpl, NULL, 1},                                       // the post_processor adds <s>
        {seq, NULL, 1},
        {tmpl, "{\"add_bos_token\": false}", 0},               // the config wins
        {tmpl, "{\"bos_token\": \"</s>\"}", 0},                // the template's <s> is not BOS
        {NULL, "{\"add_bos_token\": true, \"bos_token\": null}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rlhf_tokenizer *t = hf_with_bos(dir, cases[i].post, cases[i].config);
        if (!t) continue;
        CHECKF(tok_default_add_bos(t) == cases[i].want, "case %zu: got %d", i, tok_default_add_bos(t));
        CHECK(tok_resolve_add_bos(t, -1) == cases[i].want);
        CHECK(tok_resolve_add_bos(t, 0) == 0 && tok_resolve_add_bos(t, 1) == (tok_bos(t) >= 0));
        CHECK(tok_stop_id(t) == -1);
        tok_free(t);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir), remove(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir), remove(path);

    rlhf_tokenizer *b = tok_byte_create(); // byte: no BOS by default, BOS when asked
    CHECK(tok_default_add_bos(b) == 0 && tok_resolve_add_bos(b, -1) == 0);
    CHECK(tok_resolve_add_bos(b, 1) == 1 && tok_stop_id(b) == -1);
    int *ids = xmalloc(2 * sizeof(int)), n = 2;
    ids[0] = 'h', ids[1] = 'i';
    tok_prepend_bos(b, &ids, &n);
    tok_prepend_bos(b, &ids, &n); // once only
    CHECK(n == 3 && ids[0] == 256 && ids[1] == 'h' && ids[2] == 'i');
    free(ids);
    tok_free(b);
    rlhf_tokenizer *g = load_shared("gpt2"); // GPT-2 files: no
    if (g) {
        CHECK(tok_default_add_bos(g) == 0 && tok_resolve_add_bos(g, -1) == 0 && tok_stop_id(g) == -1);
        tok_free(g);
    }
    rlhf_tokenizer *t = load_shared("llama2c/tok512.bin"); // sentencepiece / llama2.c: yes
    if (!t) SKIP("../shared/data/llama2c/tok512.bin not found (HF, byte checked)");
    CHECK(tok_default_add_bos(t) == 1 && tok_resolve_add_bos(t, -1) == 1);
    CHECK(tok_resolve_add_bos(t, 0) == 0);
    CHECK(tok_stop_id(t) == 1); // llama2.c's run.c stops at BOS
    tok_free(t);
    return 0;
}

// Found by fuzz_tok_json: a 3.6 KB tokenizer.json whose ids went up to ~1e8
// made the loader allocate over 2 GB. Ids may leave holes, but no more holes
// than tokens; and a \u0000 in a vocabulary is refused (cJSON would cut it).
static int test_sparse_ids_and_nul(void) {
    const char *dir = test_tmpdir();
    char path[1024], enc[1024], bpe[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    const char *sparse = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 99999999}, "
                         "\"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    write_file(path, sparse, strlen(sparse));
    check_load_fails(path, "nearly dense");
    const char *added = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                        "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"added_tokens\": "
                        "[{\"id\": 50000000, \"content\": \"<x>\", \"special\": true}]}";
    write_file(path, added, strlen(added));
    check_load_fails(path, "nearly dense");
    const char *nul = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\\u0000\": 0}, \"merges\": []}, "
                      "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    write_file(path, nul, strlen(nul));
    check_load_fails(path, "\\u0000");
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(bpe, sizeof bpe, "%s/vocab.bpe", dir);
    const char *e = "{\"a\": 0, \"b\": 1, \"c\": 70000000}";
    write_file(enc, e, strlen(e));
    write_file(bpe, "#version: 0.2\na b\n", 18);
    check_load_fails(enc, "nearly dense");
    return 0;
}

int main(void) {
    RUN(test_byte_tokenizer);
    RUN(test_gpt2_known_ids);
    RUN(test_gpt2_roundtrip_random);
    RUN(test_hf_json_small);
    RUN(test_hf_json_gpt2);
    RUN(test_llama2c_known);
    RUN(test_llama2c_roundtrip_random);
    RUN(test_bad_files);
    RUN(test_sparse_ids_and_nul);
    RUN(test_decode_continuation);
    RUN(test_bos_defaults);
    TEST_EXIT();
}
