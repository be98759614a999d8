// GPT-2 byte-level BPE: loading (encoder.json + vocab.bpe, vocab.json +
// merges.txt, HF tokenizer.json), GPT-2's pre-tokenizer, and encoding.
//
// Vocabulary files spell each token's bytes with GPT-2's byte-to-character map
// (printable Latin-1 stands for itself, the other 68 bytes for U+0100..U+0143);
// everything here works on the raw bytes instead, so decoding is a lookup.
//
// There is no word -> ids cache: merging with a heap over a pair -> rank hash
// map already encodes English at ~30-40 MB/s on one core (bench/bench_tok.c),
// and without one the tokenizer stays read-only, so threads can share it.
#define RLHF_TOK_INTERNAL
#include "tok/tok.h"

#include "io/json.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tok_pairmap merges; // (left id, right id) -> (rank, merged id)
    tok_strmap vocab;   // bytes -> id
    int byte_id[256];   // the token of each single byte, -1 if none
    int add_prefix_space, use_regex, ignore_merges;
} bpe_impl;

static void bpe_impl_free(void *p) {
    bpe_impl *b = (bpe_impl *)p;
    tok_pairmap_free(&b->merges);
    tok_strmap_free(&b->vocab);
    free(b);
}

// ------------------------------------------------------- Unicode classes --
int tok_unicode_class(uint32_t cp) {
    if (cp < 128) return tok_ascii_class[cp];
    int lo = 0, hi = tok_unicode_n_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < tok_unicode_ranges[mid].lo)
            hi = mid - 1;
        else if (cp > tok_unicode_ranges[mid].hi)
            lo = mid + 1;
        else
            return tok_unicode_ranges[mid].cls;
    }
    return TOK_CLASS_OTHER;
}

// The character at s[i] (i < n): returns its length in bytes and its class.
// A byte that does not start a well-formed UTF-8 sequence (stray continuation,
// overlong form, surrogate, beyond U+10FFFF, cut short) is a one-byte "other".
static inline int char_at(const unsigned char *s, size_t n, size_t i, int *cls) {
    unsigned c = s[i];
    if (c < 0x80) {
        *cls = tok_ascii_class[c];
        return 1;
    }
    uint32_t cp;
    int len;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *cls = TOK_CLASS_OTHER;
        return 1;
    }
    if (i + (size_t)len > n || s[i + 1] < lo || s[i + 1] > hi) {
        *cls = TOK_CLASS_OTHER;
        return 1;
    }
    for (int k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) {
            *cls = TOK_CLASS_OTHER;
            return 1;
        }
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    *cls = tok_unicode_class(cp);
    return len;
}

// ---------------------------------------------------------- pre-tokenizer --
// End of the piece of GPT-2's pattern that starts at s[i] (i < n):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// tried in that order, as the regex engine does at each position.
static size_t pretok_end(const unsigned char *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char a = s[i + 1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned char b = s[i + 2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
                return i + 3;
        }
    }
    int cls;
    size_t j = i + (size_t)char_at(s, n, i, &cls);
    if (s[i] == ' ' && j < n) { // " ?X+": the space joins a following letter/number/other run
        int next_cls;
        int l = char_at(s, n, j, &next_cls);
        if (next_cls != TOK_CLASS_SPACE) {
            cls = next_cls;
            j += (size_t)l;
        }
    }
    if (cls != TOK_CLASS_SPACE) {
        while (j < n) {
            int c;
            int l = char_at(s, n, j, &c);
            if (c != cls) break;
            j += (size_t)l;
        }
        return j;
    }
    // whitespace run [i, j); last = start of its last character
    size_t last = i;
    while (j < n) {
        int c;
        int l = char_at(s, n, j, &c);
        if (c != TOK_CLASS_SPACE) break;
        last = j;
        j += (size_t)l;
    }
    if (j == n) return n;      // \s+ up to the end
    if (last > i) return last; // \s+(?!\S): leave the last one to prefix the next word
    return j;                  // a single whitespace before a non-space: \s+
}

// ---------------------------------------------------------------- encoding --
static int encode_word(const rlhf_tokenizer *t, const bpe_impl *b, const unsigned char *s, size_t n,
                       tok_ids *out, tok_merge_work *w, rlhf_err *err) {
    if (b->ignore_merges && n > 1) {
        int id = tok_strmap_get(&b->vocab, (const char *)s, n);
        if (id >= 0) {
            tok_ids_push(out, id);
            return 0;
        }
    }
    while (out->n + (int)n > out->cap) {
        out->cap = out->cap ? 2 * out->cap : 64;
        out->v = (int *)xrealloc(out->v, (size_t)out->cap * sizeof(int));
    }
    int *ids = out->v + out->n;
    for (size_t k = 0; k < n; k++) {
        ids[k] = b->byte_id[s[k]];
        if (ids[k] < 0) return rlhf_fail(err, "tok_encode: byte 0x%02X has no token", s[k]);
    }
    out->n += tok_merge(&b->merges, ids, (int)n, w);
    return 0;
}

static int bpe_encode_text(const rlhf_tokenizer *t, const unsigned char *s, size_t n, tok_ids *out,
                           tok_merge_work *w, rlhf_err *err) {
    const bpe_impl *b = (const bpe_impl *)t->impl;
    unsigned char *copy = NULL;
    if (b->add_prefix_space && n > 0 && s[0] != ' ') { // as HF's ByteLevel does
        copy = (unsigned char *)xmalloc(n + 1);
        copy[0] = ' ';
        memcpy(copy + 1, s, n);
        s = copy;
        n++;
    }
    int rc = 0;
    if (!b->use_regex) rc = encode_word(t, b, s, n, out, w, err);
    for (size_t i = 0; b->use_regex && i < n && rc == 0;) {
        size_t j = pretok_end(s, n, i);
        rc = encode_word(t, b, s + i, j - i, out, w, err);
        i = j;
    }
    free(copy);
    return rc;
}

// ----------------------------------------------------------------- loading --
// GPT-2's byte -> character map: printable Latin-1 maps to itself, the rest (in
// byte order) to U+0100, U+0101, ...
static void byte_level_tables(int byte_to_cp[256], int cp_to_byte[324]) {
    int extra = 0;
    for (int cp = 0; cp < 324; cp++) cp_to_byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        byte_to_cp[b] = printable ? b : 256 + extra++;
        cp_to_byte[byte_to_cp[b]] = b;
    }
}

// Spelled token (UTF-8 of mapped characters) -> raw bytes in out (capacity >=
// strlen(key)). Returns the byte count; a key holding characters outside the map
// (an added token such as "<|im_start|>" is inside it; "日本" is not) is kept as is.
static int unmap_key(const char *key, int key_len, const int cp_to_byte[324], char *out) {
    const unsigned char *s = (const unsigned char *)key;
    int o = 0;
    for (int i = 0; i < key_len;) {
        uint32_t cp;
        int l;
        if (s[i] < 0x80)
            cp = s[i], l = 1;
        else if ((s[i] & 0xE0) == 0xC0 && i + 1 < key_len)
            cp = ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3F), l = 2;
        else
            cp = 1000, l = 1; // not in the map
        if (cp >= 324 || cp_to_byte[cp] < 0) {
            memcpy(out, key, (size_t)key_len);
            return key_len;
        }
        out[o++] = (char)cp_to_byte[cp];
        i += l;
    }
    return o;
}

typedef struct {
    const char *file;
    int V;
    char **piece;
    int *piece_len;
    int cp_to_byte[324];
    rlhf_tokenizer *t;
    bpe_impl *b;
    char *scratch; // for merges: a, b and a+b as bytes
    size_t scratch_cap;
} bpe_loader;

static void loader_free(bpe_loader *L) {
    if (L->piece)
        for (int i = 0; i < L->V; i++) free(L->piece[i]);
    free(L->piece);
    free(L->piece_len);
    free(L->scratch);
    tok_free(L->t);
}

static int json_int(const cJSON *v, int *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e8 ||
        v->valuedouble != (double)(int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

// vocab: {"token": id, ...}; V must already cover every id
static int load_vocab(bpe_loader *L, const cJSON *vocab, const char *where, rlhf_err *err) {
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int id;
        if (!json_int(e, &id) || id >= L->V)
            return rlhf_fail(err, "%s: %s: token \"%s\" has no valid id", L->file, where,
                             e->string);
        int n = (int)strlen(e->string);
        if (L->piece[id])
            return rlhf_fail(err, "%s: %s: id %d is given to two tokens (second: \"%s\")", L->file,
                             where, id, e->string);
        L->piece[id] = (char *)xmalloc((size_t)n + 1);
        L->piece_len[id] = unmap_key(e->string, n, L->cp_to_byte, L->piece[id]);
    }
    return 0;
}

static int vocab_max_id(const cJSON *vocab, const char *file, const char *where, int *max_id,
                        rlhf_err *err) {
    if (!cJSON_IsObject(vocab) || !vocab->child)
        return rlhf_fail(err, "%s: %s is not a non-empty object of token -> id", file, where);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int id;
        if (!json_int(e, &id))
            return rlhf_fail(err, "%s: %s: token \"%s\" has no valid id", file, where, e->string);
        if (id > *max_id) *max_id = id;
    }
    return 0;
}

// Every id below the largest one gets a table slot, so a few tokens with a huge
// id would cost gigabytes: ids may leave holes, but no more holes than tokens.
static int check_id_range(const char *file, int max_id, int n_tokens, rlhf_err *err) {
    if (max_id >= 2 * n_tokens + 1024)
        return rlhf_fail(err, "%s: token ids go up to %d but only %d tokens are given (ids must "
                              "be nearly dense from 0)",
                         file, max_id, n_tokens);
    return 0;
}

// Makes the tokenizer from the pieces; merges are added afterwards with add_merge.
static void loader_start(bpe_loader *L) {
    L->t = tok_new("bpe", L->V);
    tok_set_pieces(L->t, L->piece, L->piece_len);
    L->b = (bpe_impl *)xcalloc(1, sizeof(bpe_impl));
    L->b->use_regex = 1;
    L->t->impl = L->b;
    L->t->free_impl = bpe_impl_free;
    L->t->encode_text = bpe_encode_text;
    tok_strmap_build(&L->b->vocab, L->t->blob, L->t->off, L->t->len, L->V);
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        L->b->byte_id[c] = tok_strmap_get(&L->b->vocab, &ch, 1);
    }
    tok_pairmap_init(&L->b->merges, 50000);
}

// the merge "a b" (spelled tokens) of this rank; `where` says where it was read
static int add_merge(bpe_loader *L, const char *a, int alen, const char *b, int blen, int rank,
                     const char *where, rlhf_err *err) {
    size_t need = 2 * ((size_t)alen + (size_t)blen) + 2;
    if (need > L->scratch_cap) {
        L->scratch_cap = 2 * need;
        L->scratch = (char *)xrealloc(L->scratch, L->scratch_cap);
    }
    char *ab = L->scratch, *bb = L->scratch + alen + blen + 1;
    int na = unmap_key(a, alen, L->cp_to_byte, ab);
    int nb = unmap_key(b, blen, L->cp_to_byte, bb);
    int ida = tok_strmap_get(&L->b->vocab, ab, (size_t)na);
    int idb = tok_strmap_get(&L->b->vocab, bb, (size_t)nb);
    const char *missing = ida < 0 ? a : idb < 0 ? b : NULL;
    int missing_len = ida < 0 ? alen : blen;
    if (missing)
        return rlhf_fail(err, "%s: merge \"%.*s %.*s\": \"%.*s\" is not in the vocabulary", where,
                         alen, a, blen, b, missing_len, missing);
    memmove(ab + na, bb, (size_t)nb);
    int idm = tok_strmap_get(&L->b->vocab, ab, (size_t)(na + nb));
    if (idm < 0)
        return rlhf_fail(err, "%s: merge \"%.*s %.*s\": the merged token is not in the vocabulary",
                         where, alen, a, blen, b);
    tok_pairmap_put(&L->b->merges, ida, idb, rank, idm);
    return 0;
}

// merges text: an optional "#version" line, then "a b" per line
static int load_merges_text(bpe_loader *L, const char *path, rlhf_err *err) {
    char *text;
    size_t len;
    if (tok_read_file(path, &text, &len, err)) return -1;
    int rank = 0, line = 0, rc = 0;
    for (char *p = text; p < text + len && rc == 0;) {
        char *end = memchr(p, '\n', (size_t)(text + len - p));
        if (!end) end = text + len;
        line++;
        char *q = end;
        if (q > p && q[-1] == '\r') q--;
        int n = (int)(q - p);
        if (n > 0 && !(line == 1 && n >= 8 && memcmp(p, "#version", 8) == 0)) {
            char *sp = memchr(p, ' ', (size_t)n);
            char where[4200];
            snprintf(where, sizeof where, "%s:%d", path, line);
            if (!sp || sp == p || sp + 1 == q || memchr(sp + 1, ' ', (size_t)(q - sp - 1)))
                rc = rlhf_fail(err, "%s: expected two tokens separated by one space, got \"%.*s\"",
                               where, n > 80 ? 80 : n, p);
            else
                rc = add_merge(L, p, (int)(sp - p), sp + 1, (int)(q - sp - 1), rank++, where, err);
        }
        p = end + 1;
    }
    free(text);
    if (rc == 0 && rank == 0) rc = rlhf_fail(err, "%s: no merges", path);
    return rc;
}

static cJSON *parse_json_file(const char *path, rlhf_err *err) {
    char *text;
    size_t len;
    if (tok_read_file(path, &text, &len, err)) return NULL;
    char nul[256];
    if (json_find_nul(text, len, nul, sizeof nul)) { // cJSON would cut the string there
        rlhf_fail(err, "%s: %s holds a \\u0000 (NUL) character, which is not supported", path,
                  nul);
        free(text);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        int line = 1, col = 1;
        for (const char *p = text; end && p < end && p < text + len; p++) {
            if (*p == '\n')
                line++, col = 1;
            else
                col++;
        }
        rlhf_fail(err, "%s:%d:%d: invalid JSON", path, line, col);
    }
    free(text);
    return j;
}

int tok_load_gpt2(rlhf_tokenizer **t, const char *vocab_path, const char *merges_path,
                  rlhf_err *err) {
    *t = NULL;
    cJSON *vocab = parse_json_file(vocab_path, err);
    if (!vocab) return -1;
    bpe_loader L = {.file = vocab_path};
    int byte_to_cp[256], max_id = -1, rc;
    byte_level_tables(byte_to_cp, L.cp_to_byte);
    rc = vocab_max_id(vocab, vocab_path, "vocabulary", &max_id, err);
    if (rc == 0) rc = check_id_range(vocab_path, max_id, cJSON_GetArraySize(vocab), err);
    if (rc == 0) {
        L.V = max_id + 1;
        L.piece = (char **)xcalloc((size_t)L.V, sizeof(char *));
        L.piece_len = (int *)xcalloc((size_t)L.V, sizeof(int));
        rc = load_vocab(&L, vocab, "vocabulary", err);
    }
    cJSON_Delete(vocab);
    if (rc == 0) {
        loader_start(&L);
        rc = load_merges_text(&L, merges_path, err);
    }
    if (rc == 0) {
        int eot = tok_strmap_get(&L.b->vocab, "<|endoftext|>", 13);
        if (eot >= 0) {
            tok_add_special(L.t, "<|endoftext|>", 13, eot, 0);
            L.t->bos = L.t->eos = eot;
        }
        tok_finish(L.t);
        *t = L.t;
        L.t = NULL;
    }
    loader_free(&L);
    return rc;
}

// ------------------------------------------------------- tokenizer.json --
static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int json_true(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

// the pre-tokenizer must be ByteLevel (or a Sequence of just that)
static int check_pre_tokenizer(const cJSON *pre, const char *path, bpe_impl *b, rlhf_err *err) {
    const char *type = json_str(pre, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        if (cJSON_GetArraySize(list) == 1) return check_pre_tokenizer(list->child, path, b, err);
    }
    if (!type || strcmp(type, "ByteLevel") != 0)
        return rlhf_fail(err, "%s: pre_tokenizer \"%s\" is not supported (only ByteLevel, GPT-2's)",
                         path, type ? type : "null");
    b->add_prefix_space = json_true(pre, "add_prefix_space", 0);
    b->use_regex = json_true(pre, "use_regex", 1);
    return 0;
}

// a token named in tokenizer_config.json: "<s>" or {"content": "<s>", ...}
static int config_token(const rlhf_tokenizer *t, const bpe_impl *b, const cJSON *cfg,
                        const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return dflt;
    int id = tok_find_special(t, v->valuestring);
    return id >= 0 ? id : tok_strmap_get(&b->vocab, v->valuestring, strlen(v->valuestring));
}

static int first_special(const rlhf_tokenizer *t, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        int id = tok_find_special(t, names[i]);
        if (id >= 0) return id;
    }
    return -1;
}

// the special token a TemplateProcessing post_processor (alone or in a
// Sequence) puts first in a single sequence: "<s>" for [<s>, $A], else NULL
static const char *template_first_special(const cJSON *pp) {
    const char *type = json_str(pp, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors");
        for (const cJSON *q = cJSON_IsArray(list) ? list->child : NULL; q; q = q->next) {
            const char *s = template_first_special(q);
            if (s) return s;
        }
        return NULL;
    }
    if (!type || strcmp(type, "TemplateProcessing") != 0) return NULL;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *first = cJSON_IsArray(single) ? single->child : NULL;
    return json_str(cJSON_GetObjectItemCaseSensitive(first, "SpecialToken"), "id");
}

static void set_bos_eos_pad(rlhf_tokenizer *t, const bpe_impl *b, const char *path,
                            const cJSON *root) {
    static const char *bos[] = {"<|endoftext|>", "<s>", "<|begin_of_text|>", "<bos>", NULL};
    static const char *eos[] = {"<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", NULL};
    static const char *pad[] = {"<pad>", "<|pad|>", "[PAD]", "<|padding|>", NULL};
    t->bos = first_special(t, bos);
    t->eos = first_special(t, eos);
    t->pad = first_special(t, pad);
    // prompts start with BOS where the post_processor adds it, unless
    // tokenizer_config.json's add_bos_token says otherwise
    const char *pp_first =
        template_first_special(cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    t->add_bos_default = pp_first && t->bos >= 0 && tok_find_special(t, pp_first) == t->bos;
    char cfg_path[4200];
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(cfg_path, sizeof cfg_path, "%.*s/tokenizer_config.json", (int)(slash - path),
                 path);
    else
        snprintf(cfg_path, sizeof cfg_path, "tokenizer_config.json");
    FILE *f = fopen(cfg_path, "rb");
    if (!f) return;
    fclose(f);
    cJSON *cfg = parse_json_file(cfg_path, NULL); // a broken config only loses these three
    if (!cfg) return;
    t->bos = config_token(t, b, cfg, "bos_token", t->bos);
    t->eos = config_token(t, b, cfg, "eos_token", t->eos);
    t->pad = config_token(t, b, cfg, "pad_token", t->pad);
    if (pp_first) t->add_bos_default = t->bos >= 0 && tok_find_special(t, pp_first) == t->bos;
    t->add_bos_default = json_true(cfg, "add_bos_token", t->add_bos_default);
    cJSON_Delete(cfg);
}

static int load_hf(bpe_loader *L, const cJSON *root, const char *path, rlhf_err *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return rlhf_fail(err, "%s: no \"model\" object", path);
    const char *type = json_str(model, "type");
    if (type && strcmp(type, "BPE") != 0)
        return rlhf_fail(err, "%s: model type \"%s\" is not supported (only BPE)", path, type);
    const char *prefix = json_str(model, "continuing_subword_prefix");
    const char *suffix = json_str(model, "end_of_word_suffix");
    if ((prefix && *prefix) || (suffix && *suffix))
        return rlhf_fail(
            err, "%s: continuing_subword_prefix / end_of_word_suffix are not supported", path);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm))
        return rlhf_fail(err, "%s: normalizer \"%s\" is not supported", path,
                         json_str(norm, "type") ? json_str(norm, "type") : "?");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    bpe_impl opts = {0};
    if (check_pre_tokenizer(pre, path, &opts, err)) return -1;

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int max_id = -1;
    if (vocab_max_id(vocab, path, "model.vocab", &max_id, err)) return -1;
    int n_added = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    for (const cJSON *a = n_added ? added->child : NULL; a; a = a->next) {
        int id;
        if (!json_int(cJSON_GetObjectItemCaseSensitive(a, "id"), &id) || !json_str(a, "content"))
            return rlhf_fail(err, "%s: added_tokens: an entry lacks \"id\" or \"content\"", path);
        if (id > max_id) max_id = id;
    }
    if (check_id_range(path, max_id, cJSON_GetArraySize(vocab) + n_added, err)) return -1;
    L->V = max_id + 1;
    L->piece = (char **)xcalloc((size_t)L->V, sizeof(char *));
    L->piece_len = (int *)xcalloc((size_t)L->V, sizeof(int));
    if (load_vocab(L, vocab, "model.vocab", err)) return -1;
    for (const cJSON *a = n_added ? added->child : NULL; a; a = a->next) {
        int id = 0;
        json_int(cJSON_GetObjectItemCaseSensitive(a, "id"), &id); // checked above
        const char *s = json_str(a, "content");
        free(L->piece[id]); // an added token decodes to its content
        L->piece_len[id] = (int)strlen(s);
        L->piece[id] = (char *)xmalloc((size_t)L->piece_len[id] + 1);
        memcpy(L->piece[id], s, (size_t)L->piece_len[id]);
    }
    loader_start(L);
    L->b->add_prefix_space = opts.add_prefix_space;
    L->b->use_regex = opts.use_regex;
    L->b->ignore_merges = json_true(model, "ignore_merges", 0);

    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return rlhf_fail(err, "%s: model.merges is not an array", path);
    int rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        char where[4200];
        snprintf(where, sizeof where, "%s: model.merges[%d]", path, rank);
        const char *a = NULL, *b = NULL;
        int alen = 0, blen = 0;
        if (cJSON_IsString(m)) { // "a b"
            const char *sp = strchr(m->valuestring, ' ');
            if (sp && sp != m->valuestring && sp[1] && !strchr(sp + 1, ' ')) {
                a = m->valuestring, alen = (int)(sp - a);
                b = sp + 1, blen = (int)strlen(b);
            }
        } else if (cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) { // ["a", "b"]
            a = m->child->valuestring, alen = (int)strlen(a);
            b = m->child->next->valuestring, blen = (int)strlen(b);
        }
        if (!a || !alen || !blen)
            return rlhf_fail(err, "%s: expected \"a b\" or [\"a\", \"b\"]", where);
        if (add_merge(L, a, alen, b, blen, rank, where, err)) return -1;
    }
    for (const cJSON *a = n_added ? added->child : NULL; a; a = a->next) {
        int id = 0;
        json_int(cJSON_GetObjectItemCaseSensitive(a, "id"), &id); // checked above
        const char *s = json_str(a, "content");
        tok_add_special(L->t, s, (int)strlen(s), id, !json_true(a, "special", 1));
    }
    tok_finish(L->t);
    set_bos_eos_pad(L->t, L->b, path, root);
    return 0;
}

int tok_load_hf_json(rlhf_tokenizer **t, const char *path, rlhf_err *err) {
    *t = NULL;
    cJSON *root = parse_json_file(path, err);
    if (!root) return -1;
    bpe_loader L = {.file = path};
    int byte_to_cp[256];
    byte_level_tables(byte_to_cp, L.cp_to_byte);
    int rc = load_hf(&L, root, path, err);
    cJSON_Delete(root);
    if (rc == 0) {
        *t = L.t;
        L.t = NULL;
    }
    loader_free(&L);
    return rc;
}
