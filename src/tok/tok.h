// tok: tokenizers behind one interface. Three kinds:
//
//   "byte"     ids 0..255 are the bytes; then the specials 256 <|bos|> (BOS),
//              257 <|eos|> (EOS), 258 <|pad|> (PAD); vocabulary 259.
//   "bpe"      GPT-2 byte-level BPE: encoder.json + vocab.bpe, vocab.json +
//              merges.txt, or an HF tokenizer.json whose model is BPE with a
//              ByteLevel pre-tokenizer. Text is split by GPT-2's regex
//                's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//              (Unicode classes from src/tok/unicode_tables.c), each piece's bytes
//              are merged by rank. Bytes that are not valid UTF-8 count as
//              "other" characters, one byte each, so any byte string encodes.
//              GPT-2 files: BOS = EOS = <|endoftext|> (50256), no PAD.
//   "llama2c"  llama2.c tokenizer.bin (sentencepiece-style scores): a dummy " "
//              is prepended to non-empty text, each UTF-8 character becomes its
//              token or, when absent, byte tokens <0xXX> (id byte+3), then the
//              adjacent pair whose merge scores best (leftmost on ties) is merged
//              until none is left. BOS 1 (<s>), EOS 2 (</s>), no PAD.
//
// Special tokens. Each tokenizer has a table of special strings (<|endoftext|>,
// <s>, HF added_tokens ...). With allow_special, tok_encode maps each one found
// in the text (leftmost, then longest) to its id and encodes the text between
// them separately; without it they are ordinary text. (HF added tokens that are
// not marked special are always matched, as HF does.) tok_encode never adds
// BOS/EOS by itself; callers add tok_bos()/tok_eos() where they want them
// (prompts get BOS by tok_resolve_add_bos: the tokenizer's convention unless a
// flag says otherwise).
// Decoding a special id gives its string (or nothing with skip_special).
//
// Round trips. decode(encode(x)) == x, byte for byte, for every byte string x
// (valid UTF-8 or not, allow_special 0 or 1) for "byte" and for GPT-2's "bpe"
// vocabulary (any "bpe" vocabulary holding all 256 byte tokens, without
// add_prefix_space). For "llama2c" the same holds for every x when the vocabulary
// has " " and the 256 byte tokens (tok512.bin does), because decode drops one
// leading space from the first ordinary token of the sequence and from the first
// one after each special token: exactly the dummy prefix that encode added to
// each stretch of text. The ambiguity is in sequences made by concatenation:
// decode(encode(a) ++ encode(b)) == a + " " + b, and a sequence whose first
// token is " x" decodes to "x" (as llama2.c and sentencepiece do after BOS).
// A continuation (a completion after its prompt) is decoded with
// tok_decode_next, which knows what came before it.
//
// Thread safety: a loaded tokenizer is read-only; tok_encode and tok_decode may
// run concurrently on one tokenizer.
#ifndef RLHF_TOK_H
#define RLHF_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct rlhf_tokenizer rlhf_tokenizer;

// Loads a tokenizer from `path`, a folder or a file:
//   folder with tokenizer.json                  -> "bpe" (HF)
//   folder with encoder.json + vocab.bpe        -> "bpe" (GPT-2)
//   folder with vocab.json + merges.txt         -> "bpe" (GPT-2, HF names)
//   folder with tokenizer.bin                   -> "llama2c"
//   encoder.json / vocab.json / vocab.bpe / merges.txt -> "bpe" with the sibling file
//   any other *.json, or a file starting with a JSON object -> "bpe" (HF tokenizer.json)
//   *.model (sentencepiece protobuf)            -> refused, with a hint
//   any other file (e.g. tok512.bin)            -> "llama2c", vocabulary size
//                                                   read from the file's length
// Returns 0, or -1 with a message naming the file.
int tok_load(rlhf_tokenizer **t, const char *path, rlhf_err *err);
// The byte tokenizer (documented above). Never fails.
rlhf_tokenizer *tok_byte_create(void);
// GPT-2 byte-level BPE from a vocabulary (encoder.json / vocab.json) and merges
// (vocab.bpe / merges.txt). <|endoftext|>, where present, is the special BOS/EOS.
int tok_load_gpt2(rlhf_tokenizer **t, const char *vocab_path, const char *merges_path,
                  rlhf_err *err);
// An HF tokenizer.json (model BPE, pre-tokenizer ByteLevel). BOS/EOS/PAD come from
// tokenizer_config.json beside it when present, else from well-known names
// (<|endoftext|>, <s>, </s>, <|begin_of_text|>, <|end_of_text|>, <pad>). Files
// needing more than GPT-2's pipeline (a normalizer, another pre-tokenizer such as
// Llama 3's or Qwen's Split regex, subword prefixes) are refused with a message.
// Not applied: added tokens' lstrip/rstrip/single_word, and the post_processor
// (tok_encode adds no BOS/EOS).
int tok_load_hf_json(rlhf_tokenizer **t, const char *path, rlhf_err *err);
// llama2.c tokenizer.bin; vocab_size <= 0 reads tokens to the end of the file.
int tok_load_llama2c(rlhf_tokenizer **t, const char *path, int vocab_size, rlhf_err *err);
void tok_free(rlhf_tokenizer *t);

// Encodes text[0..len) (need not be NUL-terminated, may hold any bytes) into a
// malloc'd array *ids of *n ids (free it; allocated even when *n == 0).
// allow_special: special-token strings in the text map to their ids.
// Returns 0, or -1 with err (a byte the vocabulary cannot express, len too large).
int tok_encode(const rlhf_tokenizer *t, const char *text, size_t len, int **ids, int *n,
               int allow_special, rlhf_err *err);
// Encodes text that continues a sequence (a completion after its prompt), the
// inverse of tok_decode_next after an ordinary token: as tok_encode, except that
// "llama2c" adds no dummy " " before the text (it does after each special token
// in it, as decode drops it there). So " was very" gives the ids a model
// generates after "The dragon" ([" was", " very"], not [" ", " was", " very"]),
// ", there" gives [",", " there"], and tok_decode_next(ordinary prev, ids) gives
// the text back, byte for byte, for any text (vocabularies with the 256 byte
// tokens). (Where a prompt/completion split cuts a word, "Once up" + "on", the
// completion's ids need not be those of the whole text: BPE merges stop at the cut.)
int tok_encode_next(const rlhf_tokenizer *t, const char *text, size_t len, int **ids, int *n,
                    int allow_special, rlhf_err *err);
// Decodes ids into a malloc'd NUL-terminated string. Ids outside the vocabulary
// are skipped. The bytes are whatever the tokens hold: a cut in the middle of a
// UTF-8 character stays cut.
char *tok_decode(const rlhf_tokenizer *t, const int *ids, int n);
// The same, dropping special tokens when skip_special, and giving the byte
// length in *len (when len is not NULL; the text may hold NUL bytes).
char *tok_decode_ex(const rlhf_tokenizer *t, const int *ids, int n, int skip_special, size_t *len);
// Decodes a continuation: the text that ids[0..n) add to a sequence whose last
// token is `prev` (-1, or an id outside the vocabulary: they start the sequence).
// For every sequence a (last id prev) and continuation b, with either
// skip_special: decode(a ++ b) == decode(a) + tok_decode_next(prev, b), byte for
// byte. A completion's text is this with prev = the prompt's last token: for
// "llama2c" a completion's leading space is kept after a prompt that ends in an
// ordinary token (" was" after "The dragon") and dropped after BOS, as llama2.c
// prints it. (For "byte" and "bpe" prev changes nothing: decoding concatenates.)
char *tok_decode_next(const rlhf_tokenizer *t, int prev, const int *ids, int n, int skip_special,
                      size_t *len);

int tok_vocab_size(const rlhf_tokenizer *t); // ids are 0 .. vocab_size-1
int tok_bos(const rlhf_tokenizer *t);        // -1 if none
int tok_eos(const rlhf_tokenizer *t);        // -1 if none
int tok_pad(const rlhf_tokenizer *t);        // -1 if none
// id of the special token with this exact string, or -1
int tok_find_special(const rlhf_tokenizer *t, const char *s);
int tok_is_special(const rlhf_tokenizer *t, int id);
// "byte", "bpe" or "llama2c"
const char *tok_kind(const rlhf_tokenizer *t);
// The bytes token `id` decodes to (specials: their string), NUL-terminated, with
// the length in *len when len is not NULL; NULL for an id outside the vocabulary.
const char *tok_piece(const rlhf_tokenizer *t, int id, size_t *len);

// BOS conventions. Whether a prompt starts with BOS by the tokenizer's own
// convention: "llama2c" yes (llama2.c, sentencepiece and llama.cpp prepend it);
// an HF tokenizer.json as its tokenizer_config.json's "add_bos_token" says, or
// without that key, yes where its post_processor template starts with BOS; GPT-2
// files and "byte" no. 0 where the tokenizer has no BOS.
int tok_default_add_bos(const rlhf_tokenizer *t);
// A command's --add_bos: flag < 0 (not given) -> tok_default_add_bos(t); else
// flag != 0 (0 where the tokenizer has no BOS). Every command resolves it here.
int tok_resolve_add_bos(const rlhf_tokenizer *t, int flag);
// Prepends BOS to the malloc'd ids[0..*n) (realloc'd) unless they start with it;
// nothing where the tokenizer has no BOS.
void tok_prepend_bos(const rlhf_tokenizer *t, int **ids, int *n);
// An id other than EOS at which generation ends, or -1: the BOS of "llama2c"
// vocabularies, which delimits texts in llama2.c's data (run.c stops when the
// next token is BOS, rather than printing <s> and going on).
int tok_stop_id(const rlhf_tokenizer *t);

// ---------------------------------------------------------------- internal --
// Shared by src/tok/*.c; not part of the API.
#ifdef RLHF_TOK_INTERNAL

// Unicode classes for GPT-2's pre-tokenizer (unicode_tables.c is generated).
enum { TOK_CLASS_OTHER = 0, TOK_CLASS_LETTER = 1, TOK_CLASS_NUMBER = 2, TOK_CLASS_SPACE = 3 };
typedef struct {
    uint32_t lo, hi;
    int cls;
} tok_unicode_range;
extern const unsigned char tok_ascii_class[128];
extern const tok_unicode_range tok_unicode_ranges[];
extern const int tok_unicode_n_ranges;
extern const char tok_unicode_version[];
int tok_unicode_class(uint32_t cp);

// a growable array of ids
typedef struct {
    int *v;
    int n, cap;
} tok_ids;
static inline void tok_ids_push(tok_ids *a, int id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = (int *)xrealloc(a->v, (size_t)a->cap * sizeof(int));
    }
    a->v[a->n++] = id;
}

// Open-addressing map from byte strings to ids. The keys are not copied: the
// map indexes strings that live in `blob` at `off[id]` with length `len[id]`.
typedef struct {
    const char *blob;
    const uint32_t *off;
    const uint32_t *len;
    uint32_t mask;
    int32_t *slot; // id, or -1 for empty
} tok_strmap;
void tok_strmap_build(tok_strmap *m, const char *blob, const uint32_t *off, const uint32_t *len,
                      int n); // first id wins on duplicate strings
int tok_strmap_get(const tok_strmap *m, const char *s, size_t n); // id or -1
void tok_strmap_free(tok_strmap *m);

// Map from an adjacent pair of ids to (rank, merged id). Lower rank merges first.
typedef struct {
    uint64_t *key; // (a << 32) | b, or UINT64_MAX for empty
    int32_t *rank, *merged;
    uint32_t mask;
    int n;
} tok_pairmap;
void tok_pairmap_init(tok_pairmap *m, int expected);
void tok_pairmap_put(tok_pairmap *m, int a, int b, int rank, int merged); // first put wins
void tok_pairmap_free(tok_pairmap *m);
static inline int tok_pairmap_get(const tok_pairmap *m, int a, int b, int *rank, int *merged) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
    for (;;) {
        if (m->key[i] == k) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return 1;
        }
        if (m->key[i] == UINT64_MAX) return 0;
        i = (i + 1) & m->mask;
    }
}

// Scratch space for merging, reused across the words of one encode call.
typedef struct {
    uint64_t key; // (rank << 32) | position of the left symbol: lowest first
    int a, b, merged;
} tok_merge_cand;
typedef struct {
    int *next, *prev;
    tok_merge_cand *heap;
    int cap; // symbols the arrays hold (the heap holds 3 * cap)
    int no_dummy; // llama2c: this stretch continues a text, no dummy " " (tok_encode_next)
} tok_merge_work;
void tok_merge_work_free(tok_merge_work *w);
// Merges ids[0..n) in place: repeatedly the adjacent pair with the lowest rank
// in `m` (the leftmost among equal ranks) becomes its merged id. Returns the new n.
int tok_merge(const tok_pairmap *m, int *ids, int n, tok_merge_work *w);

typedef struct {
    char *s;
    int len, id;
    int always; // matched even without allow_special (HF added tokens not marked special)
} tok_special;

struct rlhf_tokenizer {
    const char *kind;
    int vocab_size;
    int bos, eos, pad;
    // what each id decodes to: blob[off[id] .. off[id]+len[id]), NUL after each
    char *blob;
    uint32_t *off, *len;
    uint8_t *special_flag; // per id
    int n_special;
    tok_special *special;    // sorted by first byte, then longest first
    int special_start[257];  // specials whose string starts with byte c: [start[c], start[c+1])
    int strip_leading_space; // llama2c: decode drops the dummy-prefix space
    int add_bos_default;     // tok_default_add_bos (loaders may set it; tok_new: llama2c)
    // the kind's encoder for text free of specials, and its state
    int (*encode_text)(const rlhf_tokenizer *t, const unsigned char *s, size_t n, tok_ids *out,
                       tok_merge_work *w, rlhf_err *err);
    void *impl;
    void (*free_impl)(void *impl);
};

// A tokenizer of this kind with vocab_size ids, no pieces yet, no specials.
rlhf_tokenizer *tok_new(const char *kind, int vocab_size);
// Builds the decode table from per-id byte strings (NULL = empty); copies them.
void tok_set_pieces(rlhf_tokenizer *t, char *const *piece, const int *piece_len);
// Registers a special token string for id (the id's piece should decode to it).
// Call tok_finish after the last.
void tok_add_special(rlhf_tokenizer *t, const char *s, int len, int id, int always);
void tok_finish(rlhf_tokenizer *t); // sorts the special table

// Whole file into a malloc'd, NUL-terminated buffer. -1 + "path: why" on failure.
int tok_read_file(const char *path, char **data, size_t *len, rlhf_err *err);

#endif // RLHF_TOK_INTERNAL
#endif
