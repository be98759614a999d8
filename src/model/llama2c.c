// llama2.c checkpoints (karpathy/llama2.c export.py), float32 only:
//   v0 (legacy): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//      vocab_size, seq_len; vocab_size < 0 = untied classifier), then
//      tok_embeddings, attention_norm[L], wq[L], wk[L], wv[L], wo[L], ffn_norm[L],
//      w1[L], w2[L], w3[L], norm, freq_cis_real/imag (seq_len*head_size/2 each,
//      skipped), output (untied only).
//   v1: 256-byte header: u32 magic 0x616b3432 ("ak42"), i32 version 1, the same
//      7 int32, u8 shared_classifier, zeros; then attention_norm[L], ffn_norm[L],
//      norm, tok_embeddings, wq[L], wk[L], wv[L], wo[L], w1[L], w2[L], w3[L],
//      output (untied only).
// Weights are PyTorch Linear (out, in). w1 = gate, w3 = up, w2 = down. llama2.c
// rotates interleaved pairs (2i, 2i+1) of each head, we rotate halves
// (i, i + HS/2), so wq and wk rows are permuted per head at load. RMSNorm eps
// 1e-5 and RoPE theta 10000 are fixed by run.c.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/hf.h"
#include "model/model_internal.h"

#define LLAMA2C_MAGIC 0x616b3432u

typedef struct {
    int version; // 0 or 1
    int dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len, shared;
    size_t header_bytes;
} l2c_header;

// Sizes in floats of each block, in file order, for a header.
typedef struct {
    const char *name; // llama2.c's PyTorch name, %d = layer
    int per_layer;    // repeated n_layers times
    int64_t rows, cols;
    const char *ours; // NULL: skipped (freq_cis)
    int64_t row0;
    int rope_heads;
} l2c_block;

static int read_header(const unsigned char *p, size_t size, l2c_header *h) {
    memset(h, 0, sizeof *h);
    int32_t v[9];
    if (size < 28) return 0;
    uint32_t magic;
    memcpy(&magic, p, 4);
    if (magic == LLAMA2C_MAGIC) {
        if (size < 256) return 0;
        memcpy(v, p, 36);
        h->version = v[1];
        h->header_bytes = 256;
        h->shared = p[36];
        memmove(v, v + 2, 7 * sizeof(int32_t));
    } else {
        memcpy(v, p, 28);
        h->version = 0;
        h->header_bytes = 28;
        h->shared = v[5] > 0;
        if (v[5] < 0 && v[5] != INT32_MIN) v[5] = -v[5];
    }
    h->dim = v[0];
    h->hidden = v[1];
    h->n_layers = v[2];
    h->n_heads = v[3];
    h->n_kv_heads = v[4];
    h->vocab = v[5];
    h->seq_len = v[6];
    return 1;
}

// 0 when every header field is in range, else -1 + a message naming the field
// (err may be NULL). The limits are config_validate's.
static int header_check(const l2c_header *h, const char *path, rlhf_err *err) {
    const struct {
        const char *name;
        int v, lo, hi;
    } f[] = {
        {"dim", h->dim, 1, 1 << 16},          {"hidden_dim", h->hidden, 1, 1 << 20},
        {"n_layers", h->n_layers, 1, 1024},   {"n_heads", h->n_heads, 1, h->dim > 0 ? h->dim : 1},
        {"n_kv_heads", h->n_kv_heads, 1, h->n_heads > 0 ? h->n_heads : 1},
        {"vocab_size", h->vocab, 1, 1 << 24}, {"seq_len", h->seq_len, 1, 1 << 20},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return rlhf_fail(err, "%s: llama2.c header field \"%s\" = %d is out of range [%d, %d]",
                             path, f[i].name, f[i].v, f[i].lo, f[i].hi);
    if (h->dim % h->n_heads)
        return rlhf_fail(err, "%s: llama2.c header field \"dim\" = %d is not a multiple of n_heads %d",
                         path, h->dim, h->n_heads);
    if (h->n_heads % h->n_kv_heads)
        return rlhf_fail(err, "%s: llama2.c header field \"n_kv_heads\" = %d does not divide n_heads %d",
                         path, h->n_kv_heads, h->n_heads);
    if ((h->dim / h->n_heads) % 2)
        return rlhf_fail(err, "%s: llama2.c header: head size dim / n_heads = %d must be even for RoPE",
                         path, h->dim / h->n_heads);
    return 0;
}

static int header_sane(const l2c_header *h) {
    return header_check(h, "", NULL) == 0;
}

// Fills the block list; returns the count. Sizes use int64 (no overflow for sane headers).
static int blocks(const l2c_header *h, l2c_block *b) {
    int64_t C = h->dim, F = h->hidden, V = h->vocab, HS = C / h->n_heads;
    int64_t NQ = h->n_heads * HS, NK = h->n_kv_heads * HS;
    l2c_block emb = {"tok_embeddings.weight", 0, V, C, "tok_emb.weight", 0, 0};
    l2c_block an = {"layers.%d.attention_norm.weight", 1, C, 0, "layers.%d.attn_norm.weight", 0, 0};
    l2c_block fn = {"layers.%d.ffn_norm.weight", 1, C, 0, "layers.%d.mlp_norm.weight", 0, 0};
    l2c_block nrm = {"norm.weight", 0, C, 0, "final_norm.weight", 0, 0};
    l2c_block wq = {"layers.%d.attention.wq.weight", 1, NQ, C, "layers.%d.attn.qkv.weight", 0,
                    h->n_heads};
    l2c_block wk = {"layers.%d.attention.wk.weight", 1, NK, C, "layers.%d.attn.qkv.weight", NQ,
                    h->n_kv_heads};
    l2c_block wv = {"layers.%d.attention.wv.weight", 1, NK, C, "layers.%d.attn.qkv.weight",
                    NQ + NK, 0};
    l2c_block wo = {"layers.%d.attention.wo.weight", 1, C, NQ, "layers.%d.attn.out.weight", 0, 0};
    l2c_block w1 = {"layers.%d.feed_forward.w1.weight", 1, F, C, "layers.%d.mlp.up.weight", 0, 0};
    l2c_block w2 = {"layers.%d.feed_forward.w2.weight", 1, C, F, "layers.%d.mlp.down.weight", 0, 0};
    l2c_block w3 = {"layers.%d.feed_forward.w3.weight", 1, F, C, "layers.%d.mlp.up.weight", F, 0};
    l2c_block fr = {"freq_cis_real", 0, (int64_t)h->seq_len * (HS / 2), 0, NULL, 0, 0};
    l2c_block fi = {"freq_cis_imag", 0, (int64_t)h->seq_len * (HS / 2), 0, NULL, 0, 0};
    l2c_block out = {"output.weight", 0, V, C, "lm_head.weight", 0, 0};
    int n = 0;
    if (h->version == 0) {
        l2c_block order[] = {emb, an, wq, wk, wv, wo, fn, w1, w2, w3, nrm, fr, fi};
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) b[n++] = order[i];
    } else {
        l2c_block order[] = {an, fn, nrm, emb, wq, wk, wv, wo, w1, w2, w3};
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) b[n++] = order[i];
    }
    if (!h->shared) b[n++] = out;
    return n;
}

static int64_t block_floats(const l2c_block *b, const l2c_header *h) {
    return (b->per_layer ? h->n_layers : 1) * b->rows * (b->cols ? b->cols : 1);
}

static int64_t expected_size(const l2c_header *h) {
    l2c_block b[16];
    int n = blocks(h, b);
    int64_t floats = 0;
    for (int i = 0; i < n; i++) floats += block_floats(&b[i], h);
    return (int64_t)h->header_bytes + 4 * floats;
}

// Maps path read-only. Returns the mapping (and size), or NULL + err.
static unsigned char *map_file(const char *path, size_t *size, rlhf_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rlhf_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        rlhf_fail(err, "%s: empty or unreadable", path);
        close(fd);
        return NULL;
    }
    *size = (size_t)st.st_size;
    void *p = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        rlhf_fail(err, "%s: mmap failed: %s", path, strerror(errno));
        return NULL;
    }
    return p;
}

int llama2c_detect(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    unsigned char head[256];
    ssize_t got = read(fd, head, sizeof head);
    struct stat st;
    int ok = fstat(fd, &st) == 0;
    close(fd);
    if (!ok || got < 28) return 0;
    uint32_t magic;
    memcpy(&magic, head, 4);
    if (magic == LLAMA2C_MAGIC) return 2; // any version: load explains what it cannot read
    // a plausible header is enough: a wrong size is then reported as a broken
    // llama2.c file (a safetensors file never passes: its second int32 is 0)
    l2c_header h;
    return read_header(head, (size_t)got, &h) && header_sane(&h) ? 1 : 0;
}

// Reads and checks the header of a file llama2c_detect accepted.
static int parse(const char *path, const unsigned char *p, size_t size, l2c_header *h,
                 rlhf_err *err) {
    if (!read_header(p, size, h))
        return rlhf_fail(err, "%s: too short for a llama2.c header (%zu bytes)", path, size);
    if (h->version == 2)
        return rlhf_fail(err, "%s: llama2.c v2 (int8 Q8_0) checkpoints are not read; export it "
                              "with export.py --version 1 (float32)",
                         path);
    if (h->version != 0 && h->version != 1)
        return rlhf_fail(err, "%s: llama2.c checkpoint version %d is not known (0 and 1 are)",
                         path, h->version);
    if (header_check(h, path, err)) return -1;
    if (h->version == 1 && h->shared > 1)
        return rlhf_fail(err, "%s: llama2.c header field \"shared_classifier\" = %d is not 0 or 1",
                         path, h->shared);
    int64_t want = expected_size(h);
    if (want != (int64_t)size)
        return rlhf_fail(err, "%s: %zu bytes, but its llama2.c v%d header (dim %d, %d layers, "
                              "vocab %d, %s classifier) needs %lld: truncated or not float32",
                         path, size, h->version, h->dim, h->n_layers, h->vocab,
                         h->shared ? "shared" : "separate", (long long)want);
    return 0;
}

static void header_config(const l2c_header *h, const char *path, rlhf_config *c) {
    memset(c, 0, sizeof *c);
    c->arch = ARCH_LLAMA;
    c->n_layer = h->n_layers;
    c->n_head = h->n_heads;
    c->n_kv_head = h->n_kv_heads;
    c->n_embd = h->dim;
    c->d_ff = h->hidden;
    c->vocab_size = h->vocab;
    c->max_seq_len = h->seq_len;
    c->tied = h->shared;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    // the vocabulary beside it: tok<vocab>.bin (as llama2.c names them) or tokenizer.bin
    char dir[4096], p[4096 + 32];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    const char *names[2] = {NULL, "tokenizer.bin"};
    char tokv[32];
    snprintf(tokv, sizeof tokv, "tok%d.bin", h->vocab);
    names[0] = tokv;
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        struct stat st;
        char abs[PATH_MAX];
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && realpath(p, abs) &&
            strlen(abs) < sizeof c->tokenizer) {
            memcpy(c->tokenizer, abs, strlen(abs) + 1);
            break;
        }
    }
}

int llama2c_load(const char *path, rlhf_model **out, rlhf_err *err) {
    size_t size;
    unsigned char *map = map_file(path, &size, err);
    if (!map) return -1;
    l2c_header h;
    rlhf_model *m = NULL;
    int rc = -1;
    if (parse(path, map, size, &h, err)) goto done;
    rlhf_config c;
    header_config(&h, path, &c);
    if (model_create_empty(&m, &c, err)) {
        rlhf_fail_ctx(err, "%s", path);
        goto done;
    }
    l2c_block b[16];
    int nb = blocks(&h, b);
    const float *src = (const float *)(map + h.header_bytes); // 4-aligned: header is 28 or 256
    for (int i = 0; i < nb; i++) {
        int reps = b[i].per_layer ? h.n_layers : 1;
        for (int l = 0; l < reps; l++) {
            fmt_piece p = {.row0 = b[i].row0, .rows = b[i].rows, .cols = b[i].cols,
                           .rope_heads = b[i].rope_heads};
            snprintf(p.name, sizeof p.name, b[i].name, l);
            size_t k = fmt_piece_numel(&p);
            if (b[i].ours) {
                snprintf(p.ours, sizeof p.ours, b[i].ours, l);
                const rlhf_tensor *t = model_find_tensor(m, p.ours);
                RLHF_ASSERT(t);
                float *dst = m->params + t->offset + p.row0 * (p.cols ? p.cols : 1);
                fmt_place(dst, &p, src);
                for (size_t j = 0; j < k; j++)
                    if (!isfinite(dst[j])) {
                        rlhf_fail(err, "%s: %s contains NaN or inf", path, p.name);
                        goto done;
                    }
            }
            src += k;
        }
    }
    rc = 0;
done:
    munmap(map, size);
    if (rc) model_free(m);
    else *out = m;
    return rc;
}

int llama2c_inspect(const char *path, model_file_info *info, rlhf_err *err) {
    memset(info, 0, sizeof *info);
    size_t size;
    unsigned char *map = map_file(path, &size, err);
    if (!map) return -1;
    l2c_header h;
    int rc = parse(path, map, size, &h, err);
    munmap(map, size);
    if (rc) return -1;
    header_config(&h, path, &info->cfg);
    snprintf(info->format, sizeof info->format, "llama2.c v%d (%s)", h.version,
             h.version ? "256-byte header" : "legacy 7-int header");
    snprintf(info->model_type, sizeof info->model_type, "llama");
    snprintf(info->dtype, sizeof info->dtype, "F32");
    info->n_files = 1;
    l2c_block b[16];
    int nb = blocks(&h, b);
    for (int i = 0; i < nb; i++) {
        if (!b[i].ours) continue;
        info->n_tensors += b[i].per_layer ? h.n_layers : 1;
        info->n_params += (size_t)block_floats(&b[i], &h);
    }
    info->file_bytes = size - h.header_bytes;
    snprintf(info->note, sizeof info->note,
             "RoPE rows of wq/wk permuted from llama2.c's interleaved pairs at load");
    return 0;
}
