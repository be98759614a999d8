// The tokenizer interface: loading by what a path holds, the parts every kind
// shares (special-token splitting, decoding, the id tables), and the byte
// tokenizer. The kinds' own encoders live in tok_bpe.c and tok_llama2c.c.
#define RLHF_TOK_INTERNAL
#include "tok/tok.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ------------------------------------------------------- building blocks --
rlhf_tokenizer *tok_new(const char *kind, int vocab_size) {
    rlhf_tokenizer *t = (rlhf_tokenizer *)xcalloc(1, sizeof *t);
    t->kind = kind;
    t->vocab_size = vocab_size;
    t->bos = t->eos = t->pad = -1;
    t->add_bos_default = strcmp(kind, "llama2c") == 0; // sentencepiece's convention
    t->special_flag = (uint8_t *)xcalloc((size_t)vocab_size + 1, 1);
    return t;
}

void tok_set_pieces(rlhf_tokenizer *t, char *const *piece, const int *piece_len) {
    int V = t->vocab_size;
    size_t total = 0;
    for (int id = 0; id < V; id++) total += (size_t)(piece[id] ? piece_len[id] : 0) + 1;
    RLHF_ASSERT(total < UINT32_MAX);
    free(t->blob);
    free(t->off);
    free(t->len);
    t->blob = (char *)xmalloc(total);
    t->off = (uint32_t *)xmalloc((size_t)V * sizeof(uint32_t) + 1);
    t->len = (uint32_t *)xmalloc((size_t)V * sizeof(uint32_t) + 1);
    size_t o = 0;
    for (int id = 0; id < V; id++) {
        int n = piece[id] ? piece_len[id] : 0;
        if (n) memcpy(t->blob + o, piece[id], (size_t)n);
        t->off[id] = (uint32_t)o;
        t->len[id] = (uint32_t)n;
        o += (size_t)n;
        t->blob[o++] = '\0';
    }
}

void tok_add_special(rlhf_tokenizer *t, const char *s, int len, int id, int always) {
    RLHF_ASSERT(id >= 0 && id < t->vocab_size);
    if (len <= 0) return;
    t->special =
        (tok_special *)xrealloc(t->special, (size_t)(t->n_special + 1) * sizeof(tok_special));
    tok_special *sp = &t->special[t->n_special++];
    sp->s = (char *)xmalloc((size_t)len + 1);
    memcpy(sp->s, s, (size_t)len);
    sp->s[len] = '\0';
    sp->len = len;
    sp->id = id;
    sp->always = always;
    t->special_flag[id] = 1;
}

// by first byte, then longest first (so the first match at a position is the
// longest), then lowest id
static int special_cmp(const void *pa, const void *pb) {
    const tok_special *a = (const tok_special *)pa, *b = (const tok_special *)pb;
    int ca = (unsigned char)a->s[0], cb = (unsigned char)b->s[0];
    if (ca != cb) return ca - cb;
    if (a->len != b->len) return b->len - a->len;
    return a->id - b->id;
}

void tok_finish(rlhf_tokenizer *t) {
    if (t->n_special) qsort(t->special, (size_t)t->n_special, sizeof(tok_special), special_cmp);
    int k = 0;
    for (int c = 0; c <= 256; c++) {
        while (k < t->n_special && (unsigned char)t->special[k].s[0] < c) k++;
        t->special_start[c] = k;
    }
}

void tok_free(rlhf_tokenizer *t) {
    if (!t) return;
    if (t->free_impl) t->free_impl(t->impl);
    for (int i = 0; i < t->n_special; i++) free(t->special[i].s);
    free(t->special);
    free(t->special_flag);
    free(t->blob);
    free(t->off);
    free(t->len);
    free(t);
}

int tok_read_file(const char *path, char **data, size_t *len, rlhf_err *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return rlhf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = (char *)xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = (char *)xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return rlhf_fail(err, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

// ------------------------------------------------------------- byte kind --
static int byte_encode_text(const rlhf_tokenizer *t, const unsigned char *s, size_t n, tok_ids *out,
                            tok_merge_work *w, rlhf_err *err) {
    for (size_t i = 0; i < n; i++) tok_ids_push(out, s[i]);
    return 0;
}

rlhf_tokenizer *tok_byte_create(void) {
    static const char *names[3] = {"<|bos|>", "<|eos|>", "<|pad|>"};
    rlhf_tokenizer *t = tok_new("byte", 259);
    char bytes[256], *piece[259];
    int piece_len[259];
    for (int b = 0; b < 256; b++) {
        bytes[b] = (char)b;
        piece[b] = &bytes[b];
        piece_len[b] = 1;
    }
    for (int i = 0; i < 3; i++) {
        piece[256 + i] = (char *)names[i];
        piece_len[256 + i] = (int)strlen(names[i]);
    }
    tok_set_pieces(t, piece, piece_len);
    for (int i = 0; i < 3; i++) tok_add_special(t, names[i], piece_len[256 + i], 256 + i, 0);
    tok_finish(t);
    t->bos = 256;
    t->eos = 257;
    t->pad = 258;
    t->encode_text = byte_encode_text;
    return t;
}

// ------------------------------------------------------------- encoding --
// continuation: the text continues a sequence, so its first stretch (before any
// special token) gets no llama2c dummy prefix (tok_encode_next)
static int encode(const rlhf_tokenizer *t, const char *text, size_t len, int **ids, int *n,
                  int allow_special, int continuation, rlhf_err *err) {
    *ids = NULL;
    *n = 0;
    if (!text && len) return rlhf_fail(err, "tok_encode: text is NULL");
    // every kind makes at most one id per byte, plus llama2c's dummy prefixes
    if (len > (size_t)INT_MAX / 2)
        return rlhf_fail(err, "tok_encode: text of %zu bytes is too long", len);
    const unsigned char *s = (const unsigned char *)text;
    tok_ids out = {0};
    tok_merge_work w = {0};
    w.no_dummy = continuation;
    size_t seg = 0; // start of the text not yet encoded
    int rc = 0;
    int any_special = 0;
    for (int k = 0; k < t->n_special; k++) any_special |= allow_special || t->special[k].always;
    if (any_special) {
        for (size_t pos = 0; pos < len && rc == 0;) {
            const tok_special *hit = NULL;
            for (int k = t->special_start[s[pos]]; k < t->special_start[s[pos] + 1]; k++) {
                const tok_special *sp = &t->special[k];
                if ((allow_special || sp->always) && (size_t)sp->len <= len - pos &&
                    memcmp(s + pos, sp->s, (size_t)sp->len) == 0) {
                    hit = sp;
                    break;
                }
            }
            if (!hit) {
                pos++;
                continue;
            }
            if (pos > seg) rc = t->encode_text(t, s + seg, pos - seg, &out, &w, err);
            w.no_dummy = 0; // after a special token text starts afresh
            tok_ids_push(&out, hit->id);
            pos += (size_t)hit->len;
            seg = pos;
        }
    }
    if (rc == 0 && len > seg) rc = t->encode_text(t, s + seg, len - seg, &out, &w, err);
    tok_merge_work_free(&w);
    if (rc != 0) {
        free(out.v);
        return -1;
    }
    *ids = out.v ? out.v : (int *)xmalloc(sizeof(int));
    *n = out.n;
    return 0;
}

int tok_encode(const rlhf_tokenizer *t, const char *text, size_t len, int **ids, int *n,
               int allow_special, rlhf_err *err) {
    return encode(t, text, len, ids, n, allow_special, 0, err);
}

int tok_encode_next(const rlhf_tokenizer *t, const char *text, size_t len, int **ids, int *n,
                    int allow_special, rlhf_err *err) {
    return encode(t, text, len, ids, n, allow_special, 1, err);
}

// ------------------------------------------------------------- decoding --
char *tok_decode_next(const rlhf_tokenizer *t, int prev, const int *ids, int n, int skip_special,
                      size_t *len) {
    size_t cap = 64 + (size_t)(n > 0 ? n : 0) * 8, o = 0;
    char *buf = (char *)xmalloc(cap);
    // at the start of the sequence or just after a special token: the state
    // decoding the sequence up to prev would have left
    int at_start = prev < 0 || prev >= t->vocab_size || t->special_flag[prev];
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->vocab_size) continue;
        const char *p = t->blob + t->off[id];
        size_t l = t->len[id];
        if (t->special_flag[id]) {
            at_start = 1;
            if (skip_special) continue;
        } else {
            if (t->strip_leading_space && at_start && l > 0 && p[0] == ' ') p++, l--;
            at_start = 0;
        }
        if (o + l + 1 > cap) {
            while (o + l + 1 > cap) cap *= 2;
            buf = (char *)xrealloc(buf, cap);
        }
        memcpy(buf + o, p, l);
        o += l;
    }
    buf[o] = '\0';
    if (len) *len = o;
    return buf;
}

char *tok_decode_ex(const rlhf_tokenizer *t, const int *ids, int n, int skip_special, size_t *len) {
    return tok_decode_next(t, -1, ids, n, skip_special, len);
}

char *tok_decode(const rlhf_tokenizer *t, const int *ids, int n) {
    return tok_decode_ex(t, ids, n, 0, NULL);
}

// ------------------------------------------------------------------ BOS --
int tok_default_add_bos(const rlhf_tokenizer *t) {
    return t->bos >= 0 && t->add_bos_default > 0;
}

int tok_resolve_add_bos(const rlhf_tokenizer *t, int flag) {
    if (flag < 0) return tok_default_add_bos(t);
    return flag != 0 && t->bos >= 0;
}

void tok_prepend_bos(const rlhf_tokenizer *t, int **ids, int *n) {
    if (t->bos < 0 || (*n > 0 && (*ids)[0] == t->bos)) return;
    *ids = (int *)xrealloc(*ids, (size_t)(*n + 1) * sizeof(int));
    memmove(*ids + 1, *ids, (size_t)*n * sizeof(int));
    (*ids)[0] = t->bos;
    (*n)++;
}

int tok_stop_id(const rlhf_tokenizer *t) {
    return strcmp(t->kind, "llama2c") == 0 && t->bos >= 0 && t->bos != t->eos ? t->bos : -1;
}

// ------------------------------------------------------------- questions --
int tok_vocab_size(const rlhf_tokenizer *t) {
    return t->vocab_size;
}
int tok_bos(const rlhf_tokenizer *t) {
    return t->bos;
}
int tok_eos(const rlhf_tokenizer *t) {
    return t->eos;
}
int tok_pad(const rlhf_tokenizer *t) {
    return t->pad;
}
const char *tok_kind(const rlhf_tokenizer *t) {
    return t->kind;
}

int tok_find_special(const rlhf_tokenizer *t, const char *s) {
    size_t n = strlen(s);
    for (int k = 0; k < t->n_special; k++)
        if ((size_t)t->special[k].len == n && memcmp(t->special[k].s, s, n) == 0)
            return t->special[k].id;
    return -1;
}

int tok_is_special(const rlhf_tokenizer *t, int id) {
    return id >= 0 && id < t->vocab_size && t->special_flag[id];
}

const char *tok_piece(const rlhf_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    if (len) *len = t->len[id];
    return t->blob + t->off[id];
}

// --------------------------------------------------------------- loading --
static int path_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// dir + "/" + name into buf
static const char *join(char *buf, size_t cap, const char *dir, const char *name) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    snprintf(buf, cap, "%.*s/%s", (int)n, dir, name);
    return buf;
}

// the folder holding path (into buf), "." for a bare name
static const char *dir_of(char *buf, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, cap, ".");
    else if (slash == path)
        snprintf(buf, cap, "/");
    else
        snprintf(buf, cap, "%.*s", (int)(slash - path), path);
    return buf;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int tok_load(rlhf_tokenizer **t, const char *path, rlhf_err *err) {
    *t = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return rlhf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char a[4096], b[4096], dir[4096];
    if (S_ISDIR(st.st_mode)) {
        if (path_is_file(join(a, sizeof a, path, "tokenizer.json")))
            return tok_load_hf_json(t, a, err);
        if (path_is_file(join(a, sizeof a, path, "encoder.json")))
            return tok_load_gpt2(t, a, join(b, sizeof b, path, "vocab.bpe"), err);
        if (path_is_file(join(a, sizeof a, path, "vocab.json")))
            return tok_load_gpt2(t, a, join(b, sizeof b, path, "merges.txt"), err);
        if (path_is_file(join(a, sizeof a, path, "tokenizer.bin")))
            return tok_load_llama2c(t, a, 0, err);
        return rlhf_fail(err,
                         "%s: no tokenizer in this folder (looked for tokenizer.json, "
                         "encoder.json + vocab.bpe, vocab.json + merges.txt, tokenizer.bin)",
                         path);
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    dir_of(dir, sizeof dir, path);
    if (strcmp(base, "encoder.json") == 0)
        return tok_load_gpt2(t, path, join(b, sizeof b, dir, "vocab.bpe"), err);
    if (strcmp(base, "vocab.json") == 0)
        return tok_load_gpt2(t, path, join(b, sizeof b, dir, "merges.txt"), err);
    if (strcmp(base, "vocab.bpe") == 0)
        return tok_load_gpt2(t, join(a, sizeof a, dir, "encoder.json"), path, err);
    if (strcmp(base, "merges.txt") == 0)
        return tok_load_gpt2(t, join(a, sizeof a, dir, "vocab.json"), path, err);
    if (ends_with(base, ".json")) return tok_load_hf_json(t, path, err);
    if (ends_with(base, ".model"))
        return rlhf_fail(err,
                         "%s: sentencepiece .model files are not read; export a tokenizer.bin "
                         "with llama2.c's tokenizer.py, or use the model's tokenizer.json",
                         path);
    // otherwise sniff: a JSON object starts with '{' then '"' or '}' (after blanks);
    // tokenizer.bin starts with a little-endian int32 max_token_length, whose
    // second byte is 0 for any length below 256
    FILE *f = fopen(path, "rb");
    if (!f) return rlhf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    int c[2];
    for (int i = 0; i < 2; i++)
        while ((c[i] = fgetc(f)) == ' ' || c[i] == '\n' || c[i] == '\r' || c[i] == '\t') {
        }
    fclose(f);
    if (c[0] == '{' && (c[1] == '"' || c[1] == '}')) return tok_load_hf_json(t, path, err);
    return tok_load_llama2c(t, path, 0, err);
}
