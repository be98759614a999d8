// bench_tok: tokenizer encoding throughput on English text, one core.
//
//   bench_tok [SHARED_DATA_DIR [TOKENIZER_PATH ...]]   (default ../shared/data)
//
// The text is the "chosen" and "rejected" dialogues of HH-RLHF's harmless-base
// test split (hh-rlhf/harmless-base-test.jsonl.gz, read with zlib), 3.2 MB. The
// tokenizers are GPT-2's, tok512.bin, the byte one, and any given after the data
// folder. Each tokenizer encodes every dialogue as its own call (as a data loader does)
// and then all of them joined as one text; the best of a few passes is
// reported in MB/s (10^6 bytes of input per second). Prints "SKIP" and exits 0
// when the data is absent.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "tok/tok.h"

typedef struct {
    char **text;
    size_t *len;
    int n;
    size_t bytes;
} corpus;

static int read_corpus(const char *path, corpus *c) {
    gzFile f = gzopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 20, n = 0;
    char *buf = (char *)xmalloc(cap);
    int got;
    while ((got = gzread(f, buf + n, (unsigned)(cap - n - 1))) > 0) {
        n += (size_t)got;
        if (n + 1 == cap) buf = (char *)xrealloc(buf, cap *= 2);
    }
    gzclose(f);
    buf[n] = '\0';
    memset(c, 0, sizeof *c);
    int cap_docs = 0;
    for (char *line = buf, *end; line < buf + n; line = end + 1) {
        end = strchr(line, '\n');
        if (!end) end = buf + n;
        *end = '\0';
        cJSON *j = cJSON_Parse(line);
        const char *keys[2] = {"chosen", "rejected"};
        for (int k = 0; k < 2 && j; k++) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
            if (!cJSON_IsString(s)) continue;
            if (c->n == cap_docs) {
                cap_docs = cap_docs ? 2 * cap_docs : 1024;
                c->text = (char **)xrealloc(c->text, (size_t)cap_docs * sizeof(char *));
                c->len = (size_t *)xrealloc(c->len, (size_t)cap_docs * sizeof(size_t));
            }
            c->len[c->n] = strlen(s->valuestring);
            c->text[c->n] = (char *)xmalloc(c->len[c->n] + 1);
            memcpy(c->text[c->n], s->valuestring, c->len[c->n] + 1);
            c->bytes += c->len[c->n++];
        }
        cJSON_Delete(j);
    }
    free(buf);
    return 0;
}

// best of `passes` timings of encoding every document, and of the joined text
static void bench(const char *name, const rlhf_tokenizer *t, const corpus *c, const char *joined) {
    double best_docs = 1e30, best_joined = 1e30;
    long tokens = 0;
    for (int pass = 0; pass < 3; pass++) {
        rlhf_err err;
        double t0 = time_now();
        tokens = 0;
        for (int i = 0; i < c->n; i++) {
            int *ids, n;
            if (tok_encode(t, c->text[i], c->len[i], &ids, &n, 0, &err)) {
                fprintf(stderr, "%s: %s\n", name, err.msg);
                exit(1);
            }
            tokens += n;
            free(ids);
        }
        double t1 = time_now();
        int *ids, n;
        if (tok_encode(t, joined, c->bytes, &ids, &n, 0, &err)) {
            fprintf(stderr, "%s: %s\n", name, err.msg);
            exit(1);
        }
        free(ids);
        double t2 = time_now();
        if (t1 - t0 < best_docs) best_docs = t1 - t0;
        if (t2 - t1 < best_joined) best_joined = t2 - t1;
    }
    printf("%-22s %8.2f MB/s per document  %8.2f MB/s joined  (%ld tokens, %.2f bytes/token)\n",
           name, c->bytes / best_docs / 1e6, c->bytes / best_joined / 1e6, tokens,
           (double)c->bytes / (double)tokens);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared/data";
    char path[1024];
    snprintf(path, sizeof path, "%s/hh-rlhf/harmless-base-test.jsonl.gz", shared);
    corpus c;
    if (read_corpus(path, &c)) {
        printf("SKIP bench_tok: %s not found\n", path);
        return 0;
    }
    char *joined = (char *)xmalloc(c.bytes + 1);
    size_t o = 0;
    for (int i = 0; i < c.n; i++) memcpy(joined + o, c.text[i], c.len[i]), o += c.len[i];
    joined[o] = '\0';
    printf("bench_tok: %d documents, %.2f MB of English dialogue, one thread\n", c.n,
           c.bytes / 1e6);

    const char *which[][2] = {{"gpt2 (encoder.json)", "gpt2"},
                              {"llama2c (tok512.bin)", "llama2c/tok512.bin"}};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", shared, which[k][1]);
        rlhf_tokenizer *t;
        rlhf_err err;
        double t0 = time_now();
        if (tok_load(&t, path, &err)) {
            printf("SKIP %s: %s\n", which[k][0], err.msg);
            continue;
        }
        printf("%-22s loaded in %.1f ms\n", which[k][0], (time_now() - t0) * 1e3);
        bench(which[k][0], t, &c, joined);
        tok_free(t);
    }
    for (int k = 2; k < argc; k++) {
        rlhf_tokenizer *t;
        rlhf_err err;
        if (tok_load(&t, argv[k], &err)) {
            printf("SKIP %s: %s\n", argv[k], err.msg);
            continue;
        }
        const char *base = strrchr(argv[k], '/') ? strrchr(argv[k], '/') + 1 : argv[k];
        bench(base, t, &c, joined);
        tok_free(t);
    }
    rlhf_tokenizer *b = tok_byte_create();
    bench("byte", b, &c, joined);
    tok_free(b);
    for (int i = 0; i < c.n; i++) free(c.text[i]);
    free(c.text);
    free(c.len);
    free(joined);
    return 0;
}
