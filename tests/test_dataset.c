// Tests of src/data (datasets, tokenization, batches) and src/tok/chat (chat
// templates): every TRL format with good lines, plain and gzip; each kind of
// bad line giving "FILE:LINE: reason", and skip_bad_lines counting them; the
// implicit-prompt split on hand-written HH pairs and on all of HH-RLHF's
// harmless-base test split; templates rendering exact strings and masks;
// padding, targets, truncation and packing worked out by hand with the byte
// tokenizer; GPT-2 BPE where ../shared/data exists.
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.h"
#include "tok/chat.h"
#include "tok/tok.h"
#include "test.h"

// ---------------------------------------------------------------- helpers --
// Writes lines to DIR/name; in each line ' stands for " (so JSON reads easily
// here) and the lines are joined with "\n". Returns the path (static, 8 slots).
static const char *write_lines(const char *dir, const char *name, const char *const *lines, int n,
                               int gz) {
    static char paths[8][512];
    static int slot = 0;
    char *path = paths[slot++ % 8];
    snprintf(path, 512, "%s/%s", dir, name);
    size_t cap = 1;
    for (int i = 0; i < n; i++) cap += strlen(lines[i]) + 1;
    char *buf = malloc(cap), *o = buf;
    for (int i = 0; i < n; i++) {
        for (const char *s = lines[i]; *s; s++) *o++ = *s == '\'' ? '"' : *s;
        *o++ = '\n';
    }
    if (gz) {
        gzFile g = gzopen(path, "wb");
        gzwrite(g, buf, (unsigned)(o - buf));
        gzclose(g);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, (size_t)(o - buf), f);
        fclose(f);
    }
    free(buf);
    return path;
}
#define WRITE(dir, name, ...)                                                                      \
    write_lines(dir, name, (const char *const[]){__VA_ARGS__},                                     \
                (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)), 0)

static ds_dataset *load(const char *path, ds_format fmt) {
    ds_dataset *ds = NULL;
    ds_load_opts o = {.format = fmt};
    rlhf_err err = {{0}};
    int rc = ds_load(&ds, path, &o, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    return ds;
}

// the load fails with "path:line: ..." containing `what`
static void expect_bad(const char *path, ds_format fmt, int line, const char *what) {
    ds_dataset *ds = NULL;
    ds_load_opts o = {.format = fmt};
    rlhf_err err = {{0}};
    int rc = ds_load(&ds, path, &o, NULL, &err);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    CHECKF(rc != 0 && ds == NULL, "%s loaded", path);
    CHECKF(strncmp(err.msg, prefix, strlen(prefix)) == 0 && strstr(err.msg, what),
           "got \"%s\", want \"%s...%s\"", err.msg, prefix, what);
    ds_free(ds);
}

static int ids_equal(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int)) == 0);
}

static void check_ids(const char *what, const int *got, int ng, const int *want, int nw) {
    if (ids_equal(got, ng, want, nw)) return;
    printf("  %s: got", what);
    for (int i = 0; i < ng; i++) printf(" %d", got[i]);
    printf("; want");
    for (int i = 0; i < nw; i++) printf(" %d", want[i]);
    printf("\n");
    test_failed_++;
}

// the bytes of s as ids (byte tokenizer), appending extra ids (-1 ends)
static int bytes_ids(const char *s, int *out, int bos, int eos) {
    int n = 0;
    if (bos >= 0) out[n++] = bos;
    for (; *s; s++) out[n++] = (unsigned char)*s;
    if (eos >= 0) out[n++] = eos;
    return n;
}

static rlhf_tokenizer *load_gpt2(void) {
    const char *shared = test_shared_data();
    if (!shared) return NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/gpt2", shared);
    rlhf_tokenizer *t = NULL;
    rlhf_err err;
    if (tok_load(&t, path, &err)) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    return t;
}

// bytes of a rendered chat under its mask
static char *masked_bytes(const chat_text *c) {
    char *s = malloc(c->len + 1);
    size_t k = 0;
    for (size_t i = 0; i < c->len; i++)
        if (c->mask[i]) s[k++] = c->text[i];
    s[k] = '\0';
    return s;
}

static const chat_message CONV[5] = {{CHAT_SYSTEM, "S"},
                                     {CHAT_USER, "U1"},
                                     {CHAT_ASSISTANT, "A1"},
                                     {CHAT_USER, "U2"},
                                     {CHAT_ASSISTANT, "A2"}};

static void check_render(const char *tmpl, const chat_message *m, int n, int gen, const char *want,
                         const char *want_mask) {
    chat_text c;
    rlhf_err err;
    int rc = chat_render(tmpl, m, n, gen, &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECKF(strcmp(c.text, want) == 0 && c.len == strlen(want), "%s: got \"%s\"", tmpl, c.text);
    char *mb = masked_bytes(&c);
    CHECKF(strcmp(mb, want_mask) == 0, "%s mask: got \"%s\", want \"%s\"", tmpl, mb, want_mask);
    free(mb);
    // segments cover the text in order, none empty
    size_t at = 0;
    for (int s = 0; s < c.n_seg; s++) {
        CHECK(c.seg[s].start == at && c.seg[s].len > 0);
        at += c.seg[s].len;
    }
    CHECK(at == c.len);
    chat_text_free(&c);
}

// ------------------------------------------------------------ chat tests --
static int test_chat_chatml(void) {
    check_render("chatml", CONV, 5, 0,
                 "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
                 "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
                 "<|im_start|>assistant\nA2<|im_end|>\n",
                 "A1<|im_end|>A2<|im_end|>");
    check_render("chatml", CONV, 2, 1,
                 "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
                 "<|im_start|>assistant\n",
                 "");
    return 0;
}

static int test_chat_llama3(void) {
    check_render("llama3", CONV, 5, 0,
                 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nU1<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\nA2<|eot_id|>",
                 "A1<|eot_id|>A2<|eot_id|>");
    check_render("llama3", CONV + 1, 1, 1,
                 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nU1<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n",
                 "");
    return 0;
}

static int test_chat_hh(void) {
    check_render("hh", CONV, 5, 0, "S\n\nHuman: U1\n\nAssistant: A1\n\nHuman: U2\n\nAssistant: A2",
                 " A1 A2");
    check_render("hh", CONV + 1, 1, 1, "\n\nHuman: U1\n\nAssistant:", "");
    chat_text c;
    rlhf_err err;
    CHECK(chat_render("hh", CONV, 1, 0, &c, &err) == 0 && !c.has_turn_end);
    chat_text_free(&c);
    CHECK(chat_render("zephyr", CONV, 5, 0, &c, &err) != 0 && strstr(err.msg, "zephyr") &&
          strstr(err.msg, "chatml"));
    CHECK(chat_role_from_name("assistant") == CHAT_ASSISTANT && chat_role_from_name("tool") < 0);
    return 0;
}

// Segment-wise encoding: the per-token mask is the byte mask of each token's
// bytes, and decoding gives back the text.
static void check_chat_encode(const rlhf_tokenizer *t, const char *tmpl) {
    chat_text c;
    rlhf_err err;
    CHECK(chat_render(tmpl, CONV, 5, 0, &c, &err) == 0);
    int *ids, n;
    uint8_t *mask;
    int rc = chat_encode(t, &c, 0, c.n_seg, 0, &ids, &mask, &n, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    size_t at = 0;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *p = tok_piece(t, ids[i], &len);
        ok &= p && at + len <= c.len && memcmp(c.text + at, p, len) == 0;
        for (size_t k = 0; ok && k < len; k++) ok &= c.mask[at + k] == mask[i];
        at += len;
    }
    CHECKF(ok && at == c.len, "%s with %s: tokens do not map onto the text and mask", tmpl,
           tok_kind(t));
    free(ids);
    free(mask);
    chat_text_free(&c);
}

static int test_chat_encode(void) {
    rlhf_tokenizer *b = tok_byte_create();
    check_chat_encode(b, "chatml");
    check_chat_encode(b, "llama3");
    check_chat_encode(b, "hh");
    tok_free(b);
    rlhf_tokenizer *g = load_gpt2();
    if (!g) SKIP("GPT-2 part: ../shared/data/gpt2 not found (byte part passed)");
    check_chat_encode(g, "chatml");
    check_chat_encode(g, "llama3");
    check_chat_encode(g, "hh");
    // HH's boundaries sit at GPT-2 pre-token boundaries: same ids as one encode
    chat_text c;
    rlhf_err err;
    chat_render("hh", CONV, 5, 0, &c, &err);
    int *a, na, *w, nw;
    chat_encode(g, &c, 0, c.n_seg, 0, &a, NULL, &na, &err);
    tok_encode(g, c.text, c.len, &w, &nw, 0, &err);
    check_ids("hh segment-wise vs whole", a, na, w, nw);
    free(a);
    free(w);
    chat_text_free(&c);
    tok_free(g);
    return 0;
}

// --------------------------------------------------------- format tests --
static int test_load_text(void) {
    const char *dir = test_tmpdir();
    // a UTF-8 BOM, CRLF line ends, blank lines, an unknown field
    const char *p = WRITE(dir, "t.jsonl", "\xEF\xBB\xBF{'text': 'hello'}\r", "", "   \r",
                          "{'text': 'a\\nb', 'id': 7}");
    ds_dataset *ds = load(p, DS_AUTO);
    if (!ds) return 0;
    CHECK(ds->format == DS_TEXT && ds->n == 2);
    CHECK(strcmp(ds->ex[0].text.text, "hello") == 0 && ds->ex[0].line == 1);
    CHECK(strcmp(ds->ex[1].text.text, "a\nb") == 0 && ds->ex[1].line == 4);
    CHECK(isnan(ds->ex[0].margin) && ds->ex[0].label == -1);
    ds_free(ds);
    return 0;
}

static int test_load_messages(void) {
    const char *dir = test_tmpdir();
    const char *p = WRITE(dir, "m.jsonl",
                          "{'messages': [{'role': 'system', 'content': 'be nice'}, {'role': "
                          "'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'yo'}]}");
    ds_dataset *ds = load(p, DS_AUTO);
    if (!ds) return 0;
    CHECK(ds->format == DS_MESSAGES && ds->n == 1 && ds->ex[0].conversational);
    CHECK(ds->ex[0].messages.n_msgs == 3 && ds->ex[0].messages.msgs[2].role == CHAT_ASSISTANT &&
          strcmp(ds->ex[0].messages.msgs[2].content, "yo") == 0);
    ds_free(ds);
    return 0;
}

static int test_load_prompt_completion(void) {
    const char *dir = test_tmpdir();
    const char *p = WRITE(dir, "pc.jsonl", "{'prompt': 'The sky is', 'completion': ' blue.'}",
                          "{'prompt': [{'role': 'user', 'content': 'sky?'}], 'completion': "
                          "[{'role': 'assistant', 'content': 'blue'}]}");
    ds_dataset *ds = load(p, DS_AUTO);
    if (!ds) return 0;
    CHECK(ds->format == DS_PROMPT_COMPLETION && ds->n == 2);
    CHECK(strcmp(ds->ex[0].prompt.text, "The sky is") == 0 &&
          strcmp(ds->ex[0].completion.text, " blue.") == 0 && !ds->ex[0].conversational);
    CHECK(ds->ex[1].conversational && ds->ex[1].prompt.n_msgs == 1 &&
          ds->ex[1].completion.n_msgs == 1);
    ds_free(ds);
    return 0;
}

static int test_load_preference(void) {
    const char *dir = test_tmpdir();
    const char *p = WRITE(
        dir, "p.jsonl", "{'prompt': 'Q', 'chosen': ' good', 'rejected': ' bad', 'margin': 2.5}",
        "{'prompt': [{'role': 'user', 'content': 'Q'}], 'chosen': [{'role': 'assistant', "
        "'content': 'good'}], 'rejected': [{'role': 'assistant', 'content': 'bad'}], "
        "'strength': 0.25, 'score': null}");
    ds_dataset *ds = load(p, DS_AUTO);
    if (!ds) return 0;
    CHECK(ds->format == DS_PREFERENCE && ds->n == 2);
    CHECK(!ds->ex[0].implicit_prompt && strcmp(ds->ex[0].prompt.text, "Q") == 0);
    CHECK(ds->ex[0].margin == 2.5 && isnan(ds->ex[0].strength));
    CHECK(ds->ex[1].conversational && ds->ex[1].strength == 0.25 && isnan(ds->ex[1].score));
    ds_free(ds);
    // implicit, conversational: the common leading messages are the prompt
    p = WRITE(dir, "pi.jsonl",
              "{'chosen': [{'role': 'user', 'content': 'Q'}, {'role': 'assistant', 'content': "
              "'good'}], 'rejected': [{'role': 'user', 'content': 'Q'}, {'role': 'assistant', "
              "'content': 'bad'}]}");
    ds = load(p, DS_AUTO);
    if (!ds) return 0;
    CHECK(ds->ex[0].implicit_prompt && ds->ex[0].prompt.n_msgs == 1 &&
          ds->ex[0].chosen.n_msgs == 1 && strcmp(ds->ex[0].rejected.msgs[0].content, "bad") == 0);
    ds_free(ds);
    return 0;
}

static int test_load_unpaired_and_prompt_only(void) {
    const char *dir = test_tmpdir();
    const char *p = WRITE(dir, "k.jsonl", "{'prompt': 'Q', 'completion': ' A', 'label': true}",
                          "{'prompt': 'Q', 'completion': ' B', 'label': false}",
                          "{'prompt': 'Q', 'completion': ' C', 'label': 1}");
    ds_dataset *ds = load(p, DS_AUTO);
    if (!ds) return 0;
    CHECK(ds->format == DS_UNPAIRED && ds->n == 3);
    CHECK(ds->ex[0].label == 1 && ds->ex[1].label == 0 && ds->ex[2].label == 1);
    ds_free(ds);
    p = WRITE(dir, "po.jsonl", "{'prompt': 'Q1'}",
              "{'prompt': [{'role': 'user', 'content': 'Q2'}]}");
    ds = load(p, DS_AUTO);
    if (!ds) return 0;
    CHECK(ds->format == DS_PROMPT_ONLY && ds->n == 2 && ds->ex[1].conversational);
    ds_free(ds);
    // forced: a preference file read as prompts
    p = WRITE(dir, "pf.jsonl", "{'prompt': 'Q', 'chosen': ' a', 'rejected': ' b'}");
    ds = load(p, DS_PROMPT_ONLY);
    if (ds) CHECK(ds->format == DS_PROMPT_ONLY && strcmp(ds->ex[0].prompt.text, "Q") == 0);
    ds_free(ds);
    CHECK(ds_format_from_name("preference") == DS_PREFERENCE && ds_format_from_name("x") < 0);
    return 0;
}

static int test_load_gzip(void) {
    const char *dir = test_tmpdir();
    const char *lines[] = {"{'prompt': 'Q', 'chosen': ' good', 'rejected': ' bad'}", "",
                           "{'prompt': 'R', 'chosen': ' yes', 'rejected': ' no'}"};
    // the name says nothing: gzip is told by its magic bytes
    const char *p = write_lines(dir, "data.jsonl", lines, 3, 1);
    ds_dataset *ds = load(p, DS_AUTO);
    if (!ds) return 0;
    CHECK(ds->n == 2 && ds->ex[1].line == 3 && strcmp(ds->ex[1].rejected.text, " no") == 0);
    ds_free(ds);
    // a long line (longer than the reader's first buffer) in a .gz file
    size_t n = 300000;
    char *big = malloc(n + 64);
    strcpy(big, "{'text': '");
    memset(big + 10, 'x', n);
    strcpy(big + 10 + n, "'}");
    const char *bl[] = {big, "{'text': 'y'}"};
    p = write_lines(dir, "big.jsonl.gz", bl, 2, 1);
    ds = load(p, DS_AUTO);
    if (ds) CHECK(ds->n == 2 && strlen(ds->ex[0].text.text) == n && ds->ex[1].line == 2);
    ds_free(ds);
    free(big);
    // a truncated gzip stream fails, naming the file
    char tp[600];
    snprintf(tp, sizeof tp, "%s/cut.jsonl.gz", dir);
    FILE *in = fopen(p, "rb"), *out = fopen(tp, "wb");
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, got / 2, out);
    fclose(in);
    fclose(out);
    ds_dataset *d2 = NULL;
    rlhf_err err;
    CHECK(ds_load(&d2, tp, NULL, NULL, &err) != 0 && strstr(err.msg, tp) &&
          strstr(err.msg, "gzip"));
    // a missing file
    CHECK(ds_load(&d2, "/nonexistent/x.jsonl", NULL, NULL, &err) != 0 &&
          strstr(err.msg, "/nonexistent/x.jsonl"));
    return 0;
}

// ------------------------------------------------------------- bad lines --
static int test_bad_lines(void) {
    const char *dir = test_tmpdir();
#define PREF_OK "{'prompt': 'Q', 'chosen': ' a', 'rejected': ' b'}"
    expect_bad(WRITE(dir, "b1.jsonl", PREF_OK, "", "{'prompt': 'Q', 'chosen': ' a',"), DS_AUTO, 3,
               "invalid JSON");
    expect_bad(WRITE(dir, "b2.jsonl", PREF_OK, "[1, 2]"), DS_AUTO, 2,
               "expected a JSON object, found a list");
    expect_bad(WRITE(dir, "b3.jsonl", PREF_OK, PREF_OK, "{'prompt': 'Q', 'chosen': ' a'}"), DS_AUTO,
               3, "field \"rejected\" missing");
    expect_bad(WRITE(dir, "b4.jsonl", PREF_OK, "{'prompt': 'Q', 'chosen': 3, 'rejected': ' b'}"),
               DS_AUTO, 2, "field \"chosen\" is a number, expected a string or a list of messages");
    expect_bad(WRITE(dir, "b5.jsonl", PREF_OK, "{'prompt': 'Q', 'chosen': ' a', 'rejected': ' a'}"),
               DS_AUTO, 2, "\"chosen\" and \"rejected\" are identical");
    expect_bad(WRITE(dir, "b6.jsonl", PREF_OK, "{'prompt': 'Q', 'chosen': '', 'rejected': ' b'}"),
               DS_AUTO, 2, "field \"chosen\" is empty");
    expect_bad(WRITE(dir, "b7.jsonl", "{'prompt': 'Q', 'completion': ' a'}",
                     "{'prompt': 'Q', 'completion': ''}"),
               DS_AUTO, 2, "field \"completion\" is empty");
    expect_bad(WRITE(dir, "b8.jsonl", "{'prompt': 'Q', 'completion': ' a', 'label': true}",
                     "{'prompt': 'Q', 'completion': ' b'}"),
               DS_AUTO, 2, "field \"label\" missing");
    expect_bad(WRITE(dir, "b9.jsonl", "{'prompt': 'Q', 'completion': ' a', 'label': 'yes'}"),
               DS_AUTO, 1, "field \"label\" is a string, expected true or false");
    expect_bad(WRITE(dir, "b10.jsonl",
                     "{'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'tool', "
                     "'content': 'x'}]}"),
               DS_AUTO, 1, "messages[1]: unknown role \"tool\"");
    expect_bad(WRITE(dir, "b11.jsonl", "{'messages': [{'role': 'user', 'content': 'hi'}]}"),
               DS_AUTO, 1, "no assistant message");
    expect_bad(WRITE(dir, "b12.jsonl",
                     "{'prompt': 'Q', 'completion': [{'role': 'assistant', 'content': 'x'}]}"),
               DS_AUTO, 1, "\"prompt\" is a string but \"completion\" is a list of messages");
    expect_bad(WRITE(dir, "b13.jsonl",
                     "{'chosen': 'Human: a? Assistant: b', 'rejected': 'Human: "
                     "a? Assistant: c'}"),
               DS_AUTO, 1, "share no prompt ending in");
    expect_bad(WRITE(dir, "b14.jsonl", "{'id': 3}"), DS_AUTO, 1, "cannot tell the format");
    // a first line missing a field is an error, not a guess of another format
    expect_bad(WRITE(dir, "b14b.jsonl", "{'prompt': 'Q', 'chosen': ' a'}", PREF_OK), DS_AUTO, 1,
               "field \"rejected\" missing");
    expect_bad(WRITE(dir, "b15.jsonl", PREF_OK), DS_TEXT, 1, "field \"text\" missing");
    expect_bad(WRITE(dir, "b16.jsonl", PREF_OK,
                     "{'prompt': 'Q', 'chosen': ' a', 'rejected': ' b', "
                     "'margin': 'big'}"),
               DS_AUTO, 2, "field \"margin\" is a string, expected a number");
    expect_bad(WRITE(dir, "b17.jsonl", "{'messages': [{'role': 'user'}]}"), DS_AUTO, 1,
               "messages[0]: field \"content\" missing");
    expect_bad(WRITE(dir, "b18.jsonl", "{'text': 'a'} x"), DS_AUTO, 1, "invalid JSON at column");
    // no examples at all: "FILE: no examples ..."
    const char *p = WRITE(dir, "b19.jsonl", "", "");
    ds_dataset *ds = NULL;
    rlhf_err err;
    char want[600];
    snprintf(want, sizeof want, "%s: no examples", p);
    CHECK(ds_load(&ds, p, NULL, NULL, &err) != 0 && strncmp(err.msg, want, strlen(want)) == 0);
    return 0;
}

static int test_skip_bad_lines(void) {
    const char *dir = test_tmpdir();
    const char *p = WRITE(dir, "s.jsonl", PREF_OK, "not json", PREF_OK,
                          "{'prompt': 'Q', 'chosen': 1, 'rejected': ' b'}",
                          "{'prompt': 'Q', 'chosen': ' a', 'rejected': ' a'}", "",
                          "{'prompt': 'Q', 'chosen': ' a'}", PREF_OK,
                          "{'prompt': 'Q', 'chosen': ' a', 'rejected': ''}",
                          "{'prompt': 'Q', 'chosen': ' a', 'rejected': ' b', 'margin': []}");
    ds_dataset *ds = NULL;
    ds_load_opts o = {.skip_bad_lines = 1};
    ds_report rep;
    rlhf_err err;
    CHECKF(ds_load(&ds, p, &o, &rep, &err) == 0, "%s", err.msg);
    if (!ds) return 0;
    CHECK(ds->n == 3 && ds->ex[0].line == 1 && ds->ex[1].line == 3 && ds->ex[2].line == 8);
    CHECK(rep.n_lines == 9 && rep.n_kept == 3 && rep.n_skipped == 6 &&
          rep.n_reasons == DS_REPORT_KEEP);
    char want[600];
    snprintf(want, sizeof want, "%s:2: invalid JSON", p);
    CHECKF(strncmp(rep.reason[0], want, strlen(want)) == 0, "%s", rep.reason[0]);
    snprintf(want, sizeof want, "%s:7: field \"rejected\" missing", p);
    CHECKF(strcmp(rep.reason[3], want) == 0, "%s", rep.reason[3]);
    char sum[4096];
    ds_report_format(&rep, sum, sizeof sum);
    CHECKF(strstr(sum, "kept 3 of 9, skipped 6") != NULL, "%s", sum);
    ds_free(ds);
    // every line bad: an error even when skipping
    p = WRITE(dir, "s2.jsonl", "x", "y");
    CHECK(ds_load(&ds, p, &o, &rep, &err) != 0 && strstr(err.msg, "no examples"));
    return 0;
}

// --------------------------------------------------------- implicit split --
static int test_implicit_hh(void) {
    const char *dir = test_tmpdir();
    const char *p = WRITE(
        dir, "hh.jsonl",
        // 1: ordinary: the last turn differs
        "{'chosen': '\\n\\nHuman: hi\\n\\nAssistant: hello\\n\\nHuman: how?\\n\\nAssistant: fine',"
        " 'rejected': '\\n\\nHuman: hi\\n\\nAssistant: hello\\n\\nHuman: how?\\n\\nAssistant: go'}",
        // 2: rejected goes on for more turns
        "{'chosen': '\\n\\nHuman: hi\\n\\nAssistant: yes', 'rejected': '\\n\\nHuman: "
        "hi\\n\\nAssistant: no\\n\\nHuman: why\\n\\nAssistant: because'}",
        // 3: they part at an earlier assistant turn: the fallback
        "{'chosen': '\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant: d', "
        "'rejected': '\\n\\nHuman: a\\n\\nAssistant: x\\n\\nHuman: c\\n\\nAssistant: d'}",
        // 4: chosen ends at the marker itself: empty after the prompt
        "{'chosen': '\\n\\nHuman: a\\n\\nAssistant:', 'rejected': '\\n\\nHuman: a\\n\\nAssistant: "
        "z'}");
    ds_dataset *ds = NULL;
    ds_load_opts o = {.skip_bad_lines = 1};
    ds_report rep;
    rlhf_err err;
    CHECKF(ds_load(&ds, p, &o, &rep, &err) == 0, "%s", err.msg);
    if (!ds) return 0;
    CHECK(ds->n == 3 && rep.n_skipped == 1 && rep.n_fallback == 1 && ds->n_fallback == 1);
    CHECK(strstr(rep.reason[0], ":4: field \"chosen\" is empty after the prompt") != NULL);
    ds_example *e = ds->ex;
    CHECK(e[0].implicit_prompt && !e[0].prompt_fallback);
    CHECK(strcmp(e[0].prompt.text,
                 "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant:") == 0);
    CHECK(strcmp(e[0].chosen.text, " fine") == 0 && strcmp(e[0].rejected.text, " go") == 0);
    CHECK(strcmp(e[1].prompt.text, "\n\nHuman: hi\n\nAssistant:") == 0);
    CHECK(strcmp(e[1].chosen.text, " yes") == 0 &&
          strcmp(e[1].rejected.text, " no\n\nHuman: why\n\nAssistant: because") == 0);
    CHECK(e[2].prompt_fallback && strcmp(e[2].prompt.text, "\n\nHuman: a\n\nAssistant:") == 0);
    CHECK(strcmp(e[2].chosen.text, " b\n\nHuman: c\n\nAssistant: d") == 0 &&
          strcmp(e[2].rejected.text, " x\n\nHuman: c\n\nAssistant: d") == 0);
    ds_free(ds);
    return 0;
}

static int test_hh_rlhf_harmless(void) {
    const char *shared = test_shared_data();
    if (!shared) SKIP("../shared/data not found");
    char path[512];
    snprintf(path, sizeof path, "%s/hh-rlhf/harmless-base-test.jsonl.gz", shared);
    FILE *f = fopen(path, "rb");
    if (!f) SKIP("%s not found", path);
    fclose(f);
    ds_dataset *ds = NULL;
    ds_report rep;
    rlhf_err err;
    int rc = ds_load(&ds, path, NULL, &rep, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return 0;
    CHECK(ds->format == DS_PREFERENCE && ds->n == 2312 && rep.n_lines == 2312);
    int ok = 1;
    for (int i = 0; i < ds->n; i++) {
        const ds_example *e = &ds->ex[i];
        size_t pl = strlen(e->prompt.text);
        int good = e->implicit_prompt && pl >= 12 &&
                   strcmp(e->prompt.text + pl - 12, "\n\nAssistant:") == 0 && e->chosen.text[0] &&
                   e->rejected.text[0] && e->line == i + 1;
        if (!good && ok) printf("  line %d: bad split\n", e->line);
        ok &= good;
    }
    CHECK(ok);
    printf("  %d of %d lines needed the longest-common-prefix fallback:", ds->n_fallback, ds->n);
    for (int i = 0; i < ds->n; i++)
        if (ds->ex[i].prompt_fallback) printf(" %d", ds->ex[i].line);
    printf("\n");
    CHECK(ds->n_fallback == rep.n_fallback && ds->n_fallback < 20);

    // GPT-2: tokenize every pair and check prompt + completion decode back
    rlhf_tokenizer *g = load_gpt2();
    if (!g) {
        ds_free(ds);
        SKIP("GPT-2 part: ../shared/data/gpt2 not found");
    }
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    rc = ds_tokenize(ds, g, &to, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    ok = 1;
    for (int i = 0; rc == 0 && i < ds->n; i++) {
        const ds_tokens *k = &ds->tok[i];
        char *pd = tok_decode(g, k->prompt, k->n_prompt);
        char *cd = tok_decode(g, k->completion[0], k->n_completion[0] - 1);
        char *rd = tok_decode(g, k->completion[1], k->n_completion[1] - 1);
        ok &= strcmp(pd, ds->ex[i].prompt.text) == 0 && strcmp(cd, ds->ex[i].chosen.text) == 0 &&
              strcmp(rd, ds->ex[i].rejected.text) == 0 &&
              k->completion[0][k->n_completion[0] - 1] == 50256 &&
              k->completion[1][k->n_completion[1] - 1] == 50256;
        free(pd);
        free(cd);
        free(rd);
    }
    CHECK(ok);
    // a left-padded preference batch of the first 4 pairs
    ds_batch b = {0};
    int idx[4] = {0, 1, 2, 3};
    ds_batch_opts bo = {.padding_side = DS_PAD_LEFT};
    CHECK(ds_make_batch(ds, idx, 4, &bo, &b, &err) == 0);
    CHECK(b.B == 8 && b.n_pairs == 4);
    for (int r = 0; r < b.B; r++) {
        int targets = 0;
        for (int t = 0; t < b.T; t++) targets += b.loss_mask[r * b.T + t];
        CHECK(targets == b.completion_len[r]);
        CHECK(b.mask[r * b.T + b.T - 1] == 1);
    }
    ds_batch_free(&b);
    tok_free(g);
    ds_free(ds);
    return 0;
}

// ----------------------------------------------------------- tokenizing --
static ds_dataset *load_tok(const char *path, const rlhf_tokenizer *t, const ds_tok_opts *o) {
    ds_dataset *ds = load(path, DS_AUTO);
    if (!ds) return NULL;
    rlhf_err err;
    int rc = ds_tokenize(ds, t, o, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) {
        ds_free(ds);
        return NULL;
    }
    return ds;
}

static int test_tokenize_byte(void) {
    const char *dir = test_tmpdir();
    rlhf_tokenizer *t = tok_byte_create();
    const int BOS = 256, EOS = 257;
    int want[64], n;
    ds_tok_opts o;
    ds_tok_opts_default(&o);
    // prompt / completion: EOS on the completion, BOS only when asked
    const char *p = WRITE(dir, "pc.jsonl", "{'prompt': 'ab', 'completion': 'cd'}");
    ds_dataset *ds = load_tok(p, t, &o);
    if (!ds) return 0;
    n = bytes_ids("ab", want, -1, -1);
    check_ids("prompt", ds->tok[0].prompt, ds->tok[0].n_prompt, want, n);
    n = bytes_ids("cd", want, -1, EOS);
    check_ids("completion", ds->tok[0].completion[0], ds->tok[0].n_completion[0], want, n);
    CHECK(ds->tok[0].loss[0] == NULL && ds->pad_id == 258);
    o.add_bos = 1;
    o.add_eos = 0;
    rlhf_err err;
    CHECK(ds_tokenize(ds, t, &o, NULL, &err) == 0);
    n = bytes_ids("ab", want, BOS, -1);
    check_ids("prompt+bos", ds->tok[0].prompt, ds->tok[0].n_prompt, want, n);
    n = bytes_ids("cd", want, -1, -1);
    check_ids("completion no eos", ds->tok[0].completion[0], ds->tok[0].n_completion[0], want, n);
    ds_free(ds);
    // text: BOS is the prompt, the text the completion
    ds_tok_opts_default(&o);
    o.add_bos = 1;
    ds = load_tok(WRITE(dir, "t.jsonl", "{'text': 'hi'}"), t, &o);
    if (ds) {
        CHECK(ds->tok[0].n_prompt == 1 && ds->tok[0].prompt[0] == BOS);
        n = bytes_ids("hi", want, -1, EOS);
        check_ids("text", ds->tok[0].completion[0], ds->tok[0].n_completion[0], want, n);
    }
    ds_free(ds);
    // parse_special: "<|eos|>" in data text is the EOS id (as HF does) unless turned off
    ds_tok_opts_default(&o);
    ds = load_tok(WRITE(dir, "s.jsonl", "{'prompt': 'a', 'completion': 'b<|eos|>'}"), t, &o);
    if (ds) {
        int w[2] = {'b', EOS}; // EOS already there: not doubled
        check_ids("special", ds->tok[0].completion[0], ds->tok[0].n_completion[0], w, 2);
        o.parse_special = 0;
        CHECK(ds_tokenize(ds, t, &o, NULL, &err) == 0);
        n = bytes_ids("b<|eos|>", want, -1, EOS);
        check_ids("special off", ds->tok[0].completion[0], ds->tok[0].n_completion[0], want, n);
    }
    ds_free(ds);
    // conversational data needs a template
    ds_tok_opts_default(&o);
    ds = load(WRITE(dir, "c.jsonl",
                    "{'messages': [{'role': 'user', 'content': 'a'}, {'role': "
                    "'assistant', 'content': 'b'}]}"),
              DS_AUTO);
    if (ds) {
        CHECK(ds_tokenize(ds, t, &o, NULL, &err) != 0 && strstr(err.msg, ":1: conversational") &&
              strstr(err.msg, "chat template"));
        o.chat_template = "nope";
        CHECK(ds_tokenize(ds, t, &o, NULL, &err) != 0 && strstr(err.msg, "nope"));
    }
    ds_free(ds);
    tok_free(t);
    return 0;
}

// targets >= 0 of row r, as bytes (byte tokenizer; specials as '#')
static void row_targets(const ds_batch *b, int r, char *out) {
    int k = 0;
    for (int t = 0; t < b->T; t++) {
        int v = b->targets[r * b->T + t];
        if (v >= 0) out[k++] = v < 256 ? (char)v : '#';
    }
    out[k] = '\0';
}

static int test_tokenize_messages(void) {
    const char *dir = test_tmpdir();
    rlhf_tokenizer *t = tok_byte_create();
    const char *p = WRITE(dir, "m.jsonl",
                          "{'messages': [{'role': 'user', 'content': 'a'}, {'role': 'assistant', "
                          "'content': 'b'}, {'role': 'user', 'content': 'c'}, {'role': "
                          "'assistant', 'content': 'd'}]}");
    ds_tok_opts o;
    ds_tok_opts_default(&o);
    o.chat_template = "chatml";
    ds_dataset *ds = load_tok(p, t, &o);
    if (!ds) return 0;
    const ds_tokens *k = &ds->tok[0];
    char *pd = tok_decode(t, k->prompt, k->n_prompt);
    CHECKF(strcmp(pd, "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n") == 0, "%s", pd);
    free(pd);
    char *cd = tok_decode(t, k->completion[0], k->n_completion[0]);
    // no EOS: chatml ends turns with <|im_end|>
    CHECKF(
        strcmp(
            cd,
            "b<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\nd<|im_end|>\n") ==
            0,
        "%s", cd);
    free(cd);
    ds_batch b = {0};
    int idx = 0;
    rlhf_err err;
    CHECK(ds_make_batch(ds, &idx, 1, NULL, &b, &err) == 0);
    char got[256];
    row_targets(&b, 0, got);
    CHECKF(strcmp(got, "b<|im_end|>d<|im_end|>") == 0, "targets \"%s\"", got);
    CHECK(b.prompt_len[0] == k->n_prompt && b.completion_len[0] == k->n_completion[0]);
    // hh: no turn marker, so EOS closes the last assistant turn and is a target
    o.chat_template = "hh";
    CHECK(ds_tokenize(ds, t, &o, NULL, &err) == 0);
    CHECK(ds_make_batch(ds, &idx, 1, NULL, &b, &err) == 0);
    row_targets(&b, 0, got);
    CHECKF(strcmp(got, " b d#") == 0, "targets \"%s\"", got);
    CHECK(b.tokens[b.T - 1] == 257);
    // llama3 with add_bos: the template's own <|begin_of_text|> text stays, no extra BOS
    // unless the vocabulary's BOS differs (the byte tokenizer's <|bos|> does, so it is added)
    o.chat_template = "llama3";
    o.add_bos = 1;
    CHECK(ds_tokenize(ds, t, &o, NULL, &err) == 0);
    CHECK(ds->tok[0].prompt[0] == 256 && ds->tok[0].prompt[1] == '<');
    CHECK(ds_make_batch(ds, &idx, 1, NULL, &b, &err) == 0);
    row_targets(&b, 0, got);
    CHECKF(strcmp(got, "b<|eot_id|>d<|eot_id|>") == 0, "targets \"%s\"", got);
    ds_batch_free(&b);
    ds_free(ds);

    // conversational prompt/completion: the prompt ends with the assistant header and every
    // completion token counts (including chatml's "\n" after <|im_end|>, as TRL)
    o.chat_template = "chatml";
    o.add_bos = 0;
    ds = load_tok(WRITE(dir, "pc.jsonl",
                        "{'prompt': [{'role': 'user', 'content': 'q'}], "
                        "'completion': [{'role': 'assistant', 'content': 'r'}]}"),
                  t, &o);
    if (ds) {
        k = &ds->tok[0];
        pd = tok_decode(t, k->prompt, k->n_prompt);
        cd = tok_decode(t, k->completion[0], k->n_completion[0]);
        CHECKF(strcmp(pd, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n") == 0, "%s", pd);
        CHECKF(strcmp(cd, "r<|im_end|>\n") == 0, "%s", cd);
        free(pd);
        free(cd);
    }
    ds_free(ds);
    // conversational prompt-only: rendered with the generation prompt
    ds = load_tok(WRITE(dir, "po.jsonl", "{'prompt': [{'role': 'user', 'content': 'q'}]}"), t, &o);
    if (ds) {
        pd = tok_decode(t, ds->tok[0].prompt, ds->tok[0].n_prompt);
        CHECKF(strcmp(pd, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n") == 0, "%s", pd);
        free(pd);
    }
    ds_free(ds);
    // conversational preference (explicit prompt), hh template
    o.chat_template = "hh";
    ds = load_tok(WRITE(dir, "pr.jsonl",
                        "{'prompt': [{'role': 'user', 'content': 'q'}], 'chosen': [{'role': "
                        "'assistant', 'content': 'good'}], 'rejected': [{'role': 'assistant', "
                        "'content': 'bad'}]}"),
                  t, &o);
    if (ds) {
        k = &ds->tok[0];
        pd = tok_decode(t, k->prompt, k->n_prompt);
        cd = tok_decode(t, k->completion[0], k->n_completion[0]);
        char *rd = tok_decode(t, k->completion[1], k->n_completion[1]);
        CHECKF(strcmp(pd, "\n\nHuman: q\n\nAssistant:") == 0, "%s", pd);
        CHECKF(strcmp(cd, " good<|eos|>") == 0 && strcmp(rd, " bad<|eos|>") == 0, "%s / %s", cd,
               rd);
        free(pd);
        free(cd);
        free(rd);
    }
    ds_free(ds);
    tok_free(t);
    return 0;
}

static int test_truncation(void) {
    const char *dir = test_tmpdir();
    rlhf_tokenizer *t = tok_byte_create();
    const int BOS = 256, EOS = 257;
    const char *p = WRITE(dir, "tr.jsonl", "{'prompt': 'abcdef', 'completion': 'XYZ'}",
                          "{'prompt': 'ab', 'completion': 'Q'}");
    ds_dataset *ds = load(p, DS_AUTO);
    if (!ds) return 0;
    ds_tok_opts o;
    ds_tok_opts_default(&o);
    o.add_bos = 1;
    rlhf_err err;
    ds_report rep;
    // prompt over max_prompt_length: keep_end keeps BOS + the last tokens
    o.max_prompt_length = 4;
    CHECK(ds_tokenize(ds, t, &o, &rep, &err) == 0 && rep.n_truncated == 1);
    int w1[] = {BOS, 'd', 'e', 'f'}, w2[] = {BOS, 'a', 'b', 'c'}, w3[] = {'X', 'Y', 'Z', EOS};
    check_ids("keep_end", ds->tok[0].prompt, ds->tok[0].n_prompt, w1, 4);
    check_ids("completion", ds->tok[0].completion[0], ds->tok[0].n_completion[0], w3, 4);
    CHECK(ds->tok[0].truncated == 1 && ds->tok[1].truncated == 0);
    o.truncation = DS_KEEP_START;
    CHECK(ds_tokenize(ds, t, &o, NULL, &err) == 0);
    check_ids("keep_start", ds->tok[0].prompt, ds->tok[0].n_prompt, w2, 4);
    // ... and over max_length: the completion is cut at its end (EOS goes)
    o.max_length = 6;
    CHECK(ds_tokenize(ds, t, &o, NULL, &err) == 0);
    check_ids("cut completion", ds->tok[0].completion[0], ds->tok[0].n_completion[0], w3, 2);
    CHECK(ds->tok[0].truncated == 3);
    // a prompt filling max_length alone is cut to max_length - 1: one completion token stays
    o.max_prompt_length = 0;
    o.max_length = 5;
    o.truncation = DS_KEEP_END;
    CHECK(ds_tokenize(ds, t, &o, NULL, &err) == 0);
    check_ids("prompt to max_length-1", ds->tok[0].prompt, ds->tok[0].n_prompt, w1, 4);
    check_ids("one completion token", ds->tok[0].completion[0], ds->tok[0].n_completion[0], w3, 1);
    int w4[] = {BOS, 'a', 'b'}, w5[] = {'Q', EOS};
    check_ids("short prompt untouched", ds->tok[1].prompt, ds->tok[1].n_prompt, w4, 3);
    check_ids("short completion untouched", ds->tok[1].completion[0], ds->tok[1].n_completion[0],
              w5, 2);
    // truncation off: over-long lines are bad, with their file:line
    o.truncation = DS_TRUNCATE_OFF;
    o.max_length = 0;
    o.max_prompt_length = 4;
    char want[600];
    snprintf(want, sizeof want, "%s:1: prompt is 7 tokens, over max_prompt_length 4", p);
    CHECK(ds_tokenize(ds, t, &o, NULL, &err) != 0);
    CHECKF(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    CHECK(ds->tok == NULL && ds->n == 2);
    o.max_prompt_length = 0;
    o.max_length = 5;
    snprintf(want, sizeof want, "%s:1: sequence is 11 tokens, over max_length 5", p);
    CHECK(ds_tokenize(ds, t, &o, NULL, &err) != 0);
    CHECKF(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    // ... or skipped and counted
    o.skip_bad_lines = 1;
    CHECK(ds_tokenize(ds, t, &o, &rep, &err) == 0 && ds->n == 1 && rep.n_skipped == 1 &&
          rep.n_kept == 1 && ds->ex[0].line == 2 && strstr(rep.reason[0], ":1: sequence is 11"));
    ds_free(ds);
    // text: cut at the end
    ds_tok_opts_default(&o);
    o.max_length = 3;
    ds = load_tok(WRITE(dir, "t.jsonl", "{'text': 'hello'}"), t, &o);
    if (ds) {
        int w[] = {'h', 'e', 'l'};
        check_ids("text cut", ds->tok[0].completion[0], ds->tok[0].n_completion[0], w, 3);
    }
    ds_free(ds);
    o.max_length = 1;
    ds = load(WRITE(dir, "t2.jsonl", "{'text': 'hello'}"), DS_AUTO);
    if (ds) CHECK(ds_tokenize(ds, t, &o, NULL, &err) != 0 && strstr(err.msg, "max_length"));
    ds_free(ds);
    tok_free(t);
    return 0;
}

// ---------------------------------------------------------------- batches --
static int test_batch_padding(void) {
    const char *dir = test_tmpdir();
    rlhf_tokenizer *t = tok_byte_create();
    const int EOS = 257, P = 258, BOS = 256;
    ds_tok_opts o;
    ds_tok_opts_default(&o);
    ds_dataset *ds = load_tok(WRITE(dir, "pc.jsonl", "{'prompt': 'ab', 'completion': 'cd'}",
                                    "{'prompt': 'x', 'completion': 'y'}"),
                              t, &o);
    if (!ds) return 0;
    ds_batch b = {0};
    int idx[2] = {0, 1};
    rlhf_err err;
    CHECK(ds_make_batch(ds, idx, 2, NULL, &b, &err) == 0);
    int tok_r[] = {'a', 'b', 'c', 'd', EOS, 'x', 'y', EOS, P, P};
    int tgt_r[] = {-1, 'c', 'd', EOS, -1, 'y', EOS, -1, -1, -1};
    uint8_t mask_r[] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    CHECK(b.B == 2 && b.T == 5);
    check_ids("tokens right", b.tokens, 10, tok_r, 10);
    check_ids("targets right", b.targets, 10, tgt_r, 10);
    CHECK(memcmp(b.mask, mask_r, 10) == 0);
    for (int i = 0; i < 10; i++) CHECK(b.loss_mask[i] == (tgt_r[i] >= 0));
    CHECK(b.prompt_len[0] == 2 && b.completion_len[0] == 3 && b.prompt_len[1] == 1 &&
          b.completion_len[1] == 2 && b.example[1] == 1 && b.label[0] == -1);
    CHECK(b.view.B == 2 && b.view.T == 5 && b.view.tokens == b.tokens && b.view.mask == b.mask &&
          b.view.segment == NULL);
    ds_batch_opts bo = {.padding_side = DS_PAD_LEFT};
    CHECK(ds_make_batch(ds, idx, 2, &bo, &b, &err) == 0);
    int tok_l[] = {'a', 'b', 'c', 'd', EOS, P, P, 'x', 'y', EOS};
    int tgt_l[] = {-1, 'c', 'd', EOS, -1, -1, -1, 'y', EOS, -1};
    uint8_t mask_l[] = {1, 1, 1, 1, 1, 0, 0, 1, 1, 1};
    check_ids("tokens left", b.tokens, 10, tok_l, 10);
    check_ids("targets left", b.targets, 10, tgt_l, 10);
    CHECK(memcmp(b.mask, mask_l, 10) == 0);
    // fixed T, and prompts only (for generation)
    bo.pad_to = 4;
    CHECK(ds_make_batch(ds, idx, 2, &bo, &b, &err) != 0 && strstr(err.msg, "pad_to 4"));
    bo.pad_to = 0;
    bo.prompts_only = 1;
    CHECK(ds_make_batch(ds, idx, 2, &bo, &b, &err) == 0);
    int tok_p[] = {'a', 'b', P, 'x'}, tgt_p[] = {-1, -1, -1, -1};
    CHECK(b.T == 2);
    check_ids("prompts", b.tokens, 4, tok_p, 4);
    check_ids("prompt targets", b.targets, 4, tgt_p, 4);
    ds_free(ds);

    // preference: 2n rows, chosen first, sharing the prompt; summed-logprob masks
    o.add_bos = 1;
    ds = load_tok(WRITE(dir, "pr.jsonl", "{'prompt': 'P', 'chosen': 'c1', 'rejected': 'r12'}",
                        "{'prompt': 'QQ', 'chosen': 'k', 'rejected': 'z'}"),
                  t, &o);
    if (!ds) return 0;
    idx[0] = 1;
    idx[1] = 0;
    bo.prompts_only = 0;
    bo.padding_side = DS_PAD_RIGHT;
    CHECK(ds_make_batch(ds, idx, 2, &bo, &b, &err) == 0);
    CHECK(b.B == 4 && b.T == 6 && b.n_pairs == 2);
    int want[] = {BOS, 'Q', 'Q', 'k', EOS, P, BOS, 'P', 'c', '1', EOS, P,
                  BOS, 'Q', 'Q', 'z', EOS, P, BOS, 'P', 'r', '1', '2', EOS};
    int wt[] = {-1, -1, 'k', EOS, -1, -1, -1, 'c', '1', EOS, -1,  -1,
                -1, -1, 'z', EOS, -1, -1, -1, 'r', '1', '2', EOS, -1};
    check_ids("pref tokens", b.tokens, 24, want, 24);
    check_ids("pref targets", b.targets, 24, wt, 24);
    CHECK(b.example[0] == 1 && b.example[2] == 1 && b.example[3] == 0 && b.completion_len[3] == 4);
    CHECK(ds_make_batch(ds, idx, 0, &bo, &b, &err) != 0);
    ds_free(ds);

    // unpaired: labels per row
    ds = load_tok(WRITE(dir, "k.jsonl", "{'prompt': 'P', 'completion': 'a', 'label': false}",
                        "{'prompt': 'P', 'completion': 'b', 'label': true}"),
                  t, &o);
    if (ds) {
        idx[0] = 0;
        idx[1] = 1;
        CHECK(ds_make_batch(ds, idx, 2, NULL, &b, &err) == 0 && b.label[0] == 0 && b.label[1] == 1);
    }
    ds_free(ds);
    ds_batch_free(&b);
    tok_free(t);
    return 0;
}

static int test_packing(void) {
    const char *dir = test_tmpdir();
    rlhf_tokenizer *t = tok_byte_create();
    const int E = 257, P = 258;
    ds_tok_opts o;
    ds_tok_opts_default(&o);
    ds_dataset *ds = load_tok(WRITE(dir, "t.jsonl", "{'text': 'abc'}", "{'text': 'de'}",
                                    "{'text': 'fghij'}", "{'text': 'k'}", "{'text': 'lmnopqrstu'}"),
                              t, &o);
    if (!ds) return 0;
    ds_batch b = {0};
    int order[5] = {0, 1, 2, 3, 4}, next = 0;
    rlhf_err err;
    int rows = ds_pack_batch(ds, order, 5, &next, 2, 8, &b, &err);
    CHECK(rows == 2 && next == 4 && b.B == 2 && b.T == 8);
    // row 0: abcE deE + pad; row 1: fghijE kE
    int tk[] = {'a', 'b', 'c', E, 'd', 'e', E, P, 'f', 'g', 'h', 'i', 'j', E, 'k', E};
    int tg[] = {'b', 'c', E, -1, 'e', E, -1, -1, 'g', 'h', 'i', 'j', E, -1, E, -1};
    check_ids("packed tokens", b.tokens, 16, tk, 16);
    check_ids("packed targets", b.targets, 16, tg, 16);
    CHECK(b.mask[6] == 1 && b.mask[7] == 0 && b.mask[15] == 1);
    CHECK(b.example[0] == 0 && b.example[1] == 2 && b.completion_len[0] == 7 &&
          b.completion_len[1] == 8 && b.prompt_len[0] == 0);
    // segment ids: each example its own document (attention and positions stay inside it)
    int sg[] = {0, 0, 0, 0, 1, 1, 1, -1, 0, 0, 0, 0, 0, 0, 1, 1};
    check_ids("packed segments", b.segment, 16, sg, 16);
    CHECK(b.view.segment == b.segment);
    // the long example is cut to T, then the epoch ends
    rows = ds_pack_batch(ds, order, 5, &next, 2, 8, &b, &err);
    int tk2[] = {'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', P, P, P, P, P, P, P, P};
    CHECK(rows == 1 && next == 5);
    check_ids("long example", b.tokens, 16, tk2, 16);
    CHECK(b.targets[6] == 's' && b.targets[7] == -1 && b.mask[8] == 0 && b.example[1] == -1);
    CHECK(ds_pack_batch(ds, order, 5, &next, 2, 8, &b, &err) == 0);
    ds_free(ds);
    // messages: loss flags survive packing
    o.chat_template = "hh";
    ds = load_tok(WRITE(dir, "m.jsonl",
                        "{'messages': [{'role': 'user', 'content': 'a'}, {'role': "
                        "'assistant', 'content': 'b'}]}"),
                  t, &o);
    if (ds) {
        next = 0;
        order[0] = 0;
        CHECK(ds_pack_batch(ds, order, 1, &next, 1, 64, &b, &err) == 1);
        char got[64];
        row_targets(&b, 0, got);
        CHECKF(strcmp(got, " b#") == 0, "%s", got);
        // preference data cannot be packed
        ds_dataset *pr = load_tok(WRITE(dir, "p.jsonl", PREF_OK), t, &o);
        next = 0;
        if (pr) CHECK(ds_pack_batch(pr, order, 1, &next, 1, 8, &b, &err) < 0);
        ds_free(pr);
    }
    ds_free(ds);
    ds_batch_free(&b);
    tok_free(t);
    return 0;
}

// ------------------------------------------------------- split / shuffle --
static int test_split_and_shuffle(void) {
    const char *dir = test_tmpdir();
    const char *lines[10];
    char buf[10][64];
    for (int i = 0; i < 10; i++) {
        snprintf(buf[i], sizeof buf[i], "{'text': 't%d'}", i);
        lines[i] = buf[i];
    }
    const char *p = write_lines(dir, "s.jsonl", lines, 10, 0);
    int seen_eval[2][10];
    for (int rep = 0; rep < 2; rep++) {
        ds_dataset *all = load(p, DS_AUTO), *tr, *ev;
        rlhf_err err;
        if (!all) return 0;
        CHECK(ds_split(all, 0.3, 42, &tr, &ev, &err) == 0);
        CHECK(tr->n == 7 && ev->n == 3);
        int seen[11] = {0};
        for (int i = 0; i < tr->n; i++) seen[tr->ex[i].line]++;
        for (int i = 0; i < ev->n; i++) seen[ev->ex[i].line]++;
        for (int l = 1; l <= 10; l++) CHECK(seen[l] == 1);
        for (int i = 1; i < tr->n; i++) CHECK(tr->ex[i].line > tr->ex[i - 1].line); // file order
        for (int l = 0; l < 10; l++) seen_eval[rep][l] = 0;
        for (int i = 0; i < ev->n; i++) seen_eval[rep][ev->ex[i].line - 1] = 1;
        ds_free(tr);
        ds_free(ev);
    }
    CHECK(memcmp(seen_eval[0], seen_eval[1], sizeof seen_eval[0]) == 0); // same seed, same split
    ds_dataset *all = load(p, DS_AUTO), *tr, *ev;
    rlhf_err err;
    CHECK(ds_split(all, 1.0, 1, &tr, &ev, &err) != 0);
    CHECK(ds_split(all, 0.01, 1, &tr, &ev, &err) == 0 && ev->n == 1 && tr->n == 9);
    ds_free(tr);
    ds_free(ev);
    // epoch orders: permutations, reproducible, different across epochs
    int a[100], b2[100], c[100], cnt[100] = {0};
    ds_epoch_order(100, 7, 0, a);
    ds_epoch_order(100, 7, 0, b2);
    ds_epoch_order(100, 7, 1, c);
    for (int i = 0; i < 100; i++) cnt[a[i]]++;
    for (int i = 0; i < 100; i++) CHECK(cnt[i] == 1);
    CHECK(memcmp(a, b2, sizeof a) == 0 && memcmp(a, c, sizeof a) != 0);
    return 0;
}

// ------------------------------------------------------------------ GPT-2 --
static int test_gpt2_tokenize(void) {
    rlhf_tokenizer *g = load_gpt2();
    if (!g) SKIP("../shared/data/gpt2 not found");
    const char *dir = test_tmpdir();
    ds_tok_opts o;
    ds_tok_opts_default(&o);
    ds_dataset *ds =
        load_tok(WRITE(dir, "pc.jsonl", "{'prompt': 'Hello', 'completion': ' world'}"), g, &o);
    if (ds) {
        int wp[] = {15496}, wc[] = {995, 50256};
        check_ids("gpt2 prompt", ds->tok[0].prompt, ds->tok[0].n_prompt, wp, 1);
        check_ids("gpt2 completion", ds->tok[0].completion[0], ds->tok[0].n_completion[0], wc, 2);
        CHECK(ds->pad_id == 50256);
    }
    ds_free(ds);
    // messages with chatml: prompt ++ completion decode to the rendered text, and the
    // loss flags are exactly the tokens of the assistant bytes
    o.chat_template = "chatml";
    ds = load_tok(WRITE(dir, "m.jsonl",
                        "{'messages': [{'role': 'system', 'content': 'You are terse.'}, {'role': "
                        "'user', 'content': 'Name a colour.'}, {'role': 'assistant', 'content': "
                        "'Blue, of course.'}, {'role': 'user', 'content': 'Another?'}, {'role': "
                        "'assistant', 'content': 'Red.'}]}"),
                  g, &o);
    if (ds) {
        const ds_tokens *k = &ds->tok[0];
        chat_text c;
        rlhf_err err;
        chat_render("chatml", ds->ex[0].messages.msgs, ds->ex[0].messages.n_msgs, 0, &c, &err);
        int n = k->n_prompt + k->n_completion[0];
        int *all = malloc((size_t)n * sizeof(int));
        memcpy(all, k->prompt, (size_t)k->n_prompt * sizeof(int));
        memcpy(all + k->n_prompt, k->completion[0], (size_t)k->n_completion[0] * sizeof(int));
        char *d = tok_decode(g, all, n);
        CHECKF(strcmp(d, c.text) == 0, "%s", d);
        free(d);
        // the loss tokens decode to the masked bytes
        int m = 0;
        for (int i = 0; i < k->n_completion[0]; i++)
            if (k->loss[0][i]) all[m++] = k->completion[0][i];
        d = tok_decode(g, all, m);
        char *mb = masked_bytes(&c);
        CHECKF(strcmp(d, mb) == 0, "\"%s\" vs \"%s\"", d, mb);
        free(d);
        free(mb);
        free(all);
        chat_text_free(&c);
    }
    ds_free(ds);
    tok_free(g);
    return 0;
}

// A string holding \u0000 is refused with FILE:LINE and the field (issue 9,
// An endless stream without a newline (/dev/zero named as --data) is refused once
// the line passes 256 MiB, naming the file and the line; before, the reader grew
// its buffer until the memory ran out.
static int test_endless_line(void) {
    if (access("/dev/zero", R_OK) != 0) {
        printf("  skipped: no /dev/zero\n");
        return 0;
    }
    ds_dataset *ds = NULL;
    rlhf_err err = {{0}};
    CHECK(ds_load(&ds, "/dev/zero", NULL, NULL, &err) != 0 && ds == NULL);
    CHECK(strstr(err.msg, "/dev/zero: line 1 runs past 256 MiB without a newline") != NULL);
    return 0;
}

// item 7): cJSON would cut it at the NUL and the example would silently change
// ("ab\u0000cd" read as "ab").
static int test_nul_escape(void) {
    const char *dir = test_tmpdir();
    expect_bad(WRITE(dir, "n1.jsonl", "{'text': 'ok'}", "{'text': 'ab\\u0000cd'}"), DS_AUTO, 2,
               "field \"text\" holds a \\u0000 (NUL) character");
    expect_bad(WRITE(dir, "n2.jsonl", "{'prompt': 'Q\\u0000', 'chosen': ' a', 'rejected': ' b'}"),
               DS_AUTO, 1, "field \"prompt\" holds a \\u0000");
    expect_bad(WRITE(dir, "n3.jsonl", "{'prompt': 'Q', 'chosen': ' a', 'rejected': ' b'}", "",
                     "{'prompt': 'Q', 'chosen': ' a', 'rejected': '\\u0000 b'}"),
               DS_AUTO, 3, "field \"rejected\" holds");
    expect_bad(WRITE(dir, "n4.jsonl",
                     "{'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', "
                     "'content': 'x\\u0000'}]}"),
               DS_AUTO, 1, "field \"messages[1].content\" holds");
    expect_bad(WRITE(dir, "n5.jsonl", "{'prompt': 'Q', 'completion': 'a', 'b\\u0000': 1}"), DS_AUTO, 1,
               "a key of the top-level object holds");
    // with skip_bad_lines the line is dropped and counted, its reason kept
    const char *p = WRITE(dir, "n6.jsonl", "{'text': 'a'}", "{'text': 'b\\u0000'}", "{'text': 'c'}");
    ds_dataset *ds = NULL;
    ds_load_opts o = {.format = DS_AUTO, .skip_bad_lines = 1};
    ds_report rep;
    rlhf_err err = {{0}};
    CHECKF(ds_load(&ds, p, &o, &rep, &err) == 0, "%s", err.msg);
    CHECK(ds && ds->n == 2 && rep.n_skipped == 1);
    CHECK(rep.n_reasons == 1 && strstr(rep.reason[0], ":2: field \"text\" holds"));
    ds_free(ds);
    // numbers too large for a double (they parse as inf) are refused as well
    expect_bad(WRITE(dir, "n8.jsonl", "{'prompt': 'Q', 'chosen': ' a', 'rejected': ' b', 'margin': 1e999}"),
               DS_AUTO, 1, "field \"margin\" is not a finite number");
    // an escaped backslash before "u0000" is ordinary text, and so are other escapes
    ds = load(WRITE(dir, "n7.jsonl", "{'text': 'a\\\\u0000 \\u0001'}"), DS_AUTO);
    CHECK(ds && ds->n == 1 && strcmp(ds->ex[0].text.text, "a\\u0000 \x01") == 0);
    ds_free(ds);
    return 0;
}

int main(void) {
    RUN(test_chat_chatml);
    RUN(test_chat_llama3);
    RUN(test_chat_hh);
    RUN(test_chat_encode);
    RUN(test_load_text);
    RUN(test_load_messages);
    RUN(test_load_prompt_completion);
    RUN(test_load_preference);
    RUN(test_load_unpaired_and_prompt_only);
    RUN(test_load_gzip);
    RUN(test_bad_lines);
    RUN(test_skip_bad_lines);
    RUN(test_nul_escape);
    RUN(test_endless_line);
    RUN(test_implicit_hh);
    RUN(test_hh_rlhf_harmless);
    RUN(test_tokenize_byte);
    RUN(test_tokenize_messages);
    RUN(test_truncation);
    RUN(test_batch_padding);
    RUN(test_packing);
    RUN(test_split_and_shuffle);
    RUN(test_gpt2_tokenize);
    TEST_EXIT();
}
