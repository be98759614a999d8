// llama2.c's tokenizer.bin: sentencepiece-style pieces with scores, encoded the
// way llama2.c's run.c does (dummy " " prefix, one token per UTF-8 character or
// <0xXX> byte tokens, then greedy merges of the best-scoring adjacent pair).
//
// File format (little-endian): int32 max_token_length, then per token: float32
// score, int32 length, that many bytes. The file does not store the vocabulary
// size; it is given by the caller or is the number of tokens up to the end.
#define RLHF_TOK_INTERNAL
#include "tok/tok.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    // the pieces as the file spells them ("<0x0A>", "\n<s>\n"), which is what
    // llama2.c looks characters and merges up in
    char *blob;
    uint32_t *off, *len;
    tok_strmap strings;
    tok_pairmap merges; // rank = position of the merged token's score, best first
    int byte_id[256];   // <0xXX> token of each byte, -1 if none
    int space_id;       // " ", the dummy prefix
} llama2c_impl;

static void llama2c_impl_free(void *p) {
    llama2c_impl *m = (llama2c_impl *)p;
    tok_strmap_free(&m->strings);
    tok_pairmap_free(&m->merges);
    free(m->blob);
    free(m->off);
    free(m->len);
    free(m);
}

static int push_bytes(const llama2c_impl *m, const unsigned char *s, size_t n, tok_ids *out,
                      rlhf_err *err) {
    for (size_t k = 0; k < n; k++) {
        if (m->byte_id[s[k]] < 0)
            return rlhf_fail(err, "tok_encode: byte 0x%02X has no <0x%02X> token", s[k], s[k]);
        tok_ids_push(out, m->byte_id[s[k]]);
    }
    return 0;
}

static int llama2c_encode_text(const rlhf_tokenizer *t, const unsigned char *s, size_t n,
                               tok_ids *out, tok_merge_work *w, rlhf_err *err) {
    const llama2c_impl *m = (const llama2c_impl *)t->impl;
    if (n == 0) return 0;
    int start = out->n;
    if (!w->no_dummy) { // (a continuation, tok_encode_next, has none)
        if (m->space_id >= 0)
            tok_ids_push(out, m->space_id);
        else if (push_bytes(m, (const unsigned char *)" ", 1, out, err))
            return -1;
    }
    // a "character" is a non-continuation byte and up to 3 continuation bytes
    // after it, exactly as llama2.c groups them (valid UTF-8 or not)
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && (s[j] & 0xC0) == 0x80 && j - i < 4) j++;
        int id = tok_strmap_get(&m->strings, (const char *)s + i, j - i);
        if (id >= 0)
            tok_ids_push(out, id);
        else if (push_bytes(m, s + i, j - i, out, err))
            return -1;
        i = j;
    }
    out->n = start + tok_merge(&m->merges, out->v + start, out->n - start, w);
    return 0;
}

static int read_i32(const unsigned char *p) {
    return (int)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24);
}

static float read_f32(const unsigned char *p) {
    uint32_t u = (uint32_t)read_i32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// the byte of a "<0xXX>" piece, or -1
static int byte_piece(const char *s, uint32_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

typedef struct {
    float score;
    int id;
} scored_id;

static int by_score_desc(const void *pa, const void *pb) {
    const scored_id *a = (const scored_id *)pa, *b = (const scored_id *)pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->id - b->id;
}

// Checks the header and the records: vocab_size of them, or (0) all up to the
// file's end. *n_tokens: how many, *text_bytes: their text with a NUL each.
static int check_records(const char *path, const unsigned char *d, size_t size, int vocab_size,
                         int *n_tokens, size_t *text_bytes, rlhf_err *err) {
    if (size < 4)
        return rlhf_fail(err, "%s: %zu bytes is too short for a llama2.c tokenizer.bin", path,
                         size);
    int max_len = read_i32(d);
    if (max_len <= 0 || max_len > (1 << 16))
        return rlhf_fail(err, "%s: not a llama2.c tokenizer.bin (max_token_length %d)", path,
                         max_len);
    int V = 0;
    size_t p = 4;
    *text_bytes = 0;
    while (vocab_size > 0 ? V < vocab_size : p < size) {
        const char *hint = vocab_size > 0 ? "; is the vocabulary size right?" : "";
        if (size - p < 8)
            return rlhf_fail(err, "%s: truncated: token %d at byte %zu: file ends at %zu%s", path,
                             V, p, size, hint);
        int n = read_i32(d + p + 4);
        if (n < 0 || n > max_len)
            return rlhf_fail(err,
                             "%s: token %d at byte %zu has length %d (max_token_length %d): "
                             "not a llama2.c tokenizer.bin?",
                             path, V, p, n, max_len);
        if ((size_t)n > size - p - 8)
            return rlhf_fail(
                err, "%s: truncated: token %d at byte %zu needs %d bytes, file ends at %zu%s", path,
                V, p, 8 + n, size, hint);
        p += 8 + (size_t)n;
        *text_bytes += (size_t)n + 1;
        V++;
    }
    if (V < 3)
        return rlhf_fail(err, "%s: %d tokens; a llama2.c vocabulary has at least <unk>, <s>, </s>",
                         path, V);
    *n_tokens = V;
    return 0;
}

// The V checked records of d: the pieces as the file spells them (for lookups),
// and their scores into score (V).
static llama2c_impl *read_pieces(const unsigned char *d, int V, size_t text_bytes, float *score) {
    llama2c_impl *m = (llama2c_impl *)xcalloc(1, sizeof *m);
    m->blob = (char *)xmalloc(text_bytes);
    m->off = (uint32_t *)xmalloc((size_t)V * sizeof(uint32_t));
    m->len = (uint32_t *)xmalloc((size_t)V * sizeof(uint32_t));
    size_t p = 4, o = 0;
    for (int id = 0; id < V; id++) {
        score[id] = read_f32(d + p);
        int n = read_i32(d + p + 4);
        memcpy(m->blob + o, d + p + 8, (size_t)n);
        m->blob[o + (size_t)n] = '\0';
        m->off[id] = (uint32_t)o;
        m->len[id] = (uint32_t)n;
        o += (size_t)n + 1;
        p += 8 + (size_t)n;
    }
    return m;
}

// The tokenizer over m's V pieces. It decodes a <0xXX> piece to its byte (the
// first such piece of a byte is m->byte_id's) and ids 0-2 to <unk>, <s>, </s>.
static rlhf_tokenizer *new_tokenizer(llama2c_impl *m, int V) {
    char **piece = (char **)xmalloc((size_t)V * sizeof(char *));
    int *piece_len = (int *)xmalloc((size_t)V * sizeof(int));
    char byte_char[256];
    for (int b = 0; b < 256; b++) m->byte_id[b] = -1, byte_char[b] = (char)b;
    for (int id = 0; id < V; id++) {
        piece[id] = m->blob + m->off[id];
        piece_len[id] = (int)m->len[id];
        int byte = byte_piece(piece[id], m->len[id]);
        if (byte >= 0) {
            if (m->byte_id[byte] < 0) m->byte_id[byte] = id;
            piece[id] = &byte_char[byte]; // decodes to the raw byte
            piece_len[id] = 1;
        }
    }
    static const char *names[3] = {"<unk>", "<s>", "</s>"};
    for (int id = 0; id < 3; id++)
        piece[id] = (char *)names[id], piece_len[id] = (int)strlen(names[id]);
    rlhf_tokenizer *tk = tok_new("llama2c", V);
    tok_set_pieces(tk, piece, piece_len);
    for (int id = 0; id < 3; id++) tok_add_special(tk, names[id], piece_len[id], id, 0);
    tok_finish(tk);
    free(piece);
    free(piece_len);
    tk->bos = 1;
    tk->eos = 2;
    tk->strip_leading_space = 1;
    tk->impl = m;
    tk->free_impl = llama2c_impl_free;
    tk->encode_text = llama2c_encode_text;
    tok_strmap_build(&m->strings, m->blob, m->off, m->len, V);
    m->space_id = tok_strmap_get(&m->strings, " ", 1);
    return tk;
}

// Merges: every split of a piece into two pieces is a pair that merges into
// it. llama2.c takes the best score (first on ties; scores at or below its
// starting best of -1e10, and NaN, never win), so ranks are score positions.
static void build_merges(llama2c_impl *m, const float *score, int V) {
    scored_id *order = (scored_id *)xmalloc((size_t)V * sizeof(scored_id));
    int n_order = 0;
    for (int id = 0; id < V; id++)
        if (score[id] > -1e10f && m->len[id] >= 2) order[n_order++] = (scored_id){score[id], id};
    qsort(order, (size_t)n_order, sizeof(scored_id), by_score_desc);
    tok_pairmap_init(&m->merges, 2 * n_order);
    for (int k = 0, rank = -1; k < n_order; k++) {
        int id = order[k].id;
        if (k == 0 || order[k].score != order[k - 1].score) rank++;
        const char *s = m->blob + m->off[id];
        int merged = tok_strmap_get(&m->strings, s, m->len[id]); // first of duplicates
        for (uint32_t cut = 1; cut < m->len[id]; cut++) {
            int a = tok_strmap_get(&m->strings, s, cut);
            int b = tok_strmap_get(&m->strings, s + cut, m->len[id] - cut);
            if (a >= 0 && b >= 0) tok_pairmap_put(&m->merges, a, b, rank, merged);
        }
    }
    free(order);
}

int tok_load_llama2c(rlhf_tokenizer **t, const char *path, int vocab_size, rlhf_err *err) {
    *t = NULL;
    char *data;
    size_t size, text_bytes = 0;
    int V = 0;
    if (tok_read_file(path, &data, &size, err)) return -1;
    const unsigned char *d = (const unsigned char *)data;
    if (check_records(path, d, size, vocab_size, &V, &text_bytes, err)) {
        free(data);
        return -1;
    }
    float *score = (float *)xmalloc((size_t)V * sizeof(float));
    llama2c_impl *m = read_pieces(d, V, text_bytes, score);
    free(data);
    rlhf_tokenizer *tk = new_tokenizer(m, V);
    build_merges(m, score, V);
    free(score);
    *t = tk;
    return 0;
}
