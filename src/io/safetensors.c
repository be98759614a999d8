// io/safetensors: reader (mmap + full header validation), writer (atomic), and
// the fp16 / bf16 conversions shared with the rest of the project.
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "io/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c copies tensor data as-is and so assumes a little-endian host"
#endif

// ----------------------------------------------------------------- dtypes --

static const struct {
    const char *name;
    size_t size;
} dtype_info[ST_NUM_DTYPES] = {
    [ST_NONE] = {"?", 0},    [ST_F64] = {"F64", 8},   [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2},
    [ST_I8] = {"I8", 1},     [ST_U64] = {"U64", 8},   [ST_U32] = {"U32", 4}, [ST_U16] = {"U16", 2},
    [ST_U8] = {"U8", 1},     [ST_BOOL] = {"BOOL", 1},
};

const char *st_dtype_name(st_dtype t) {
    return (t > ST_NONE && t < ST_NUM_DTYPES) ? dtype_info[t].name : "?";
}

st_dtype st_dtype_from_name(const char *s) {
    for (int t = ST_NONE + 1; t < ST_NUM_DTYPES; t++)
        if (strcmp(s, dtype_info[t].name) == 0) return (st_dtype)t;
    return ST_NONE;
}

size_t st_dtype_size(st_dtype t) {
    return (t > ST_NONE && t < ST_NUM_DTYPES) ? dtype_info[t].size : 0;
}

// ------------------------------------------------------------ conversions --

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1); // round to nearest even; overflows into inf as it should
    return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13)); // inf, NaN (payload kept)
    if (e != 0) return bits_f32(sign | ((e + 112) << 23) | (m << 13));
    if (m == 0) return bits_f32(sign);
    // subnormal m * 2^-24: normalise so the leading 1 becomes the implicit bit
    uint32_t shift = 0;
    while (!(m & 0x400)) {
        m <<= 1;
        shift++;
    }
    return bits_f32(sign | ((113 - shift) << 23) | ((m & 0x3ff) << 13));
}

uint16_t f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff); // quiet NaN
    if (a >= 0x477ff000u) return sign | 0x7c00; // >= 65520 (halfway past 65504): inf
    if (a >= 0x38800000u) {                     // normal half (>= 2^-14)
        uint32_t h = (((a >> 23) - 112) << 10) | ((a >> 13) & 0x3ff);
        uint32_t rest = a & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; // a carry walks into the exponent
        return sign | (uint16_t)h;
    }
    if (a <= 0x33000000u) return sign; // <= 2^-25: ties to even go to zero
    // subnormal half: units of 2^-24
    uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e; // 14..24
    uint32_t h = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1))) h++;
    return sign | (uint16_t)h;
}

// ----------------------------------------------------------------- reader --

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

// "path: tensor "name": <message>"
static int tensor_fail(rlhf_err *err, const char *path, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int tensor_fail(rlhf_err *err, const char *path, const char *name, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rlhf_fail(err, "%s: tensor \"%.200s\": %s", path, name, msg);
}

// A JSON number that is a non-negative integer a double holds exactly.
static int json_u53(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0 && d == floor(d))) return -1;
    *out = (uint64_t)d;
    return 0;
}

static void describe_json(char *buf, size_t cap, const cJSON *j) {
    if (cJSON_IsNumber(j))
        snprintf(buf, cap, "%.17g", j->valuedouble);
    else if (cJSON_IsString(j))
        snprintf(buf, cap, "\"%.40s\"", j->valuestring);
    else
        snprintf(buf, cap, "%s",
                 cJSON_IsArray(j)    ? "an array"
                 : cJSON_IsObject(j) ? "an object"
                 : cJSON_IsNull(j)   ? "null"
                                     : "a boolean");
}

static int parse_entry(st_file *f, const cJSON *j, st_entry *e, rlhf_err *err) {
    const char *name = j->string;
    char what[64];
    if (!cJSON_IsObject(j)) return tensor_fail(err, f->path, name, "entry is not a JSON object");

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    if (!cJSON_IsString(dt))
        return tensor_fail(err, f->path, name, "\"dtype\" missing or not a string");
    e->dtype = st_dtype_from_name(dt->valuestring);
    if (e->dtype == ST_NONE)
        return tensor_fail(err, f->path, name, "unknown dtype \"%.32s\"", dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    if (!cJSON_IsArray(sh))
        return tensor_fail(err, f->path, name, "\"shape\" missing or not an array");
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > ST_MAX_DIMS)
        return tensor_fail(err, f->path, name, "shape has %d dimensions, at most %d supported",
                           ndim, ST_MAX_DIMS);
    e->ndim = ndim;
    uint64_t numel = 1;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        uint64_t v;
        if (json_u53(d, &v) != 0) {
            describe_json(what, sizeof what, d);
            return tensor_fail(err, f->path, name, "shape[%d] = %s is not a non-negative integer",
                               i, what);
        }
        e->shape[i] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel) || numel > ((uint64_t)1 << 53))
            return tensor_fail(err, f->path, name, "shape has too many elements");
    }
    e->numel = (int64_t)numel;
    e->nbytes = (size_t)numel * st_dtype_size(e->dtype); // numel <= 2^53, size <= 8: no overflow

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return tensor_fail(err, f->path, name, "\"data_offsets\" missing or not [begin, end]");
    uint64_t b, en;
    if (json_u53(off->child, &b) != 0 || json_u53(off->child->next, &en) != 0)
        return tensor_fail(err, f->path, name, "data_offsets are not non-negative integers");
    if (b > en)
        return tensor_fail(err, f->path, name,
                           "data_offsets [%" PRIu64 ", %" PRIu64 "] are reversed", b, en);
    if (en - b != e->nbytes) {
        char s[200];
        shape_str(s, sizeof s, e->shape, e->ndim);
        return tensor_fail(err, f->path, name,
                           "data_offsets [%" PRIu64 ", %" PRIu64
                           "] but shape %s of %s needs %zu bytes",
                           b, en, s, st_dtype_name(e->dtype), e->nbytes);
    }
    if (en > f->data_len)
        return tensor_fail(err, f->path, name,
                           "data_offsets [%" PRIu64 ", %" PRIu64
                           "] reach past the end of the data section (%zu bytes; file truncated?)",
                           b, en, f->data_len);
    e->begin = b;
    e->end = en;
    e->data = f->data + b;
    e->name = strdup(name);
    if (!e->name) e->name = xmalloc(1); // unreachable in practice; keeps st_close simple
    return 0;
}

static int parse_metadata(st_file *f, const cJSON *j, rlhf_err *err) {
    if (f->meta) return rlhf_fail(err, "%s: header has two \"__metadata__\" entries", f->path);
    if (!cJSON_IsObject(j))
        return rlhf_fail(err, "%s: \"__metadata__\" is not a JSON object", f->path);
    int n = cJSON_GetArraySize(j);
    f->meta = xcalloc((size_t)n * 2 + 1, sizeof(char *));
    for (const cJSON *m = j->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return rlhf_fail(err, "%s: __metadata__ \"%.200s\" is not a string", f->path,
                             m->string);
        if (st_meta(f, m->string))
            return rlhf_fail(err, "%s: __metadata__ key \"%.200s\" appears twice", f->path,
                             m->string);
        f->meta[2 * f->n_meta] = strdup(m->string);
        f->meta[2 * f->n_meta + 1] = strdup(m->valuestring);
        f->n_meta++;
        if (!f->meta[2 * f->n_meta - 2] || !f->meta[2 * f->n_meta - 1])
            return rlhf_fail(err, "%s: out of memory", f->path);
    }
    return 0;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

static int cmp_entry_begin(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// Duplicate names, overlapping data ranges, and bytes no tensor accounts for.
static int check_layout(st_file *f, rlhf_err *err) {
    int n = f->n_entries;
    f->by_name = xmalloc((size_t)(n ? n : 1) * sizeof *f->by_name);
    for (int i = 0; i < n; i++) f->by_name[i] = &f->entries[i];
    qsort(f->by_name, (size_t)n, sizeof *f->by_name, cmp_entry_name);
    for (int i = 1; i < n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return tensor_fail(err, f->path, f->by_name[i]->name, "appears twice in the header");

    // The data section must be exactly the tensors' bytes, back to back (as the
    // format requires): an overlap, a hole or bytes after the last tensor mean
    // the header and the data disagree, and reading on would give shifted values.
    const st_entry **by_begin = xmalloc((size_t)(n ? n : 1) * sizeof *by_begin);
    memcpy(by_begin, f->by_name, (size_t)n * sizeof *by_begin);
    qsort(by_begin, (size_t)n, sizeof *by_begin, cmp_entry_begin);
    const st_entry *reach = NULL; // the non-empty entry seen so far that ends last
    uint64_t pos = 0;             // bytes accounted for so far
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const st_entry *e = by_begin[i];
        if (e->nbytes == 0) continue; // an empty tensor holds no bytes wherever it points
        if (reach && reach->end > e->begin)
            rc = rlhf_fail(err,
                           "%s: tensors \"%.200s\" [%" PRIu64 ", %" PRIu64
                           "] and \"%.200s\" [%" PRIu64 ", %" PRIu64 "] overlap",
                           f->path, reach->name, reach->begin, reach->end, e->name, e->begin,
                           e->end);
        else if (e->begin > pos)
            rc = rlhf_fail(err,
                           "%s: bytes [%" PRIu64 ", %" PRIu64
                           ") of the data section belong to no tensor (a hole before \"%.200s\"; "
                           "the data must be fully indexed)",
                           f->path, pos, e->begin, e->name);
        if (!reach || e->end > reach->end) reach = e;
        if (e->end > pos) pos = e->end;
    }
    if (rc == 0 && pos != f->data_len)
        rc = rlhf_fail(err,
                       "%s: %" PRIu64 " trailing bytes after the last tensor (data section %zu bytes, "
                       "tensors end at %" PRIu64 "; the data must be fully indexed)",
                       f->path, (uint64_t)f->data_len - pos, f->data_len, pos);
    free(by_begin);
    return rc;
}

static int parse_header(st_file *f, const char *hdr, size_t n, rlhf_err *err) {
    if (memchr(hdr, '\0', n))
        return rlhf_fail(err, "%s: header contains a NUL byte (corrupt file?)", f->path);
    char where[256];
    if (json_find_nul(hdr, n, where, sizeof where))
        return rlhf_fail(err, "%s: header: %s holds a \\u0000 (NUL) character", f->path, where);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(hdr, &end, 1);
    if (!root) {
        size_t at = (end && end >= hdr && end <= hdr + n) ? (size_t)(end - hdr) : 0;
        return rlhf_fail(err, "%s: header is not valid JSON (at byte %zu of %zu: \"%.24s\")",
                         f->path, at, n, hdr + at);
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = rlhf_fail(err, "%s: header is not a JSON object", f->path);
        goto done;
    }
    int count = cJSON_GetArraySize(root);
    f->entries = xcalloc((size_t)(count ? count : 1), sizeof *f->entries);
    for (const cJSON *j = root->child; j && rc == 0; j = j->next) {
        if (strcmp(j->string, "__metadata__") == 0)
            rc = parse_metadata(f, j, err);
        else if ((rc = parse_entry(f, j, &f->entries[f->n_entries], err)) == 0)
            f->n_entries++;
    }
    if (rc == 0) rc = check_layout(f, err);
done:
    cJSON_Delete(root);
    return rc;
}

int st_open(st_file *f, const char *path, rlhf_err *err) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rlhf_fail(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rlhf_fail(err, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rlhf_fail(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return rlhf_fail(err, "%s: %zu bytes is too short for a safetensors file (truncated?)",
                         path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) return rlhf_fail(err, "%s: mmap: %s", path, strerror(map_errno));
    f->map = map;
    f->map_len = size;
    f->path = strdup(path);
    if (!f->path) {
        st_close(f);
        return rlhf_fail(err, "%s: out of memory", path);
    }

    const unsigned char *p = map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > size - 8) {
        rlhf_fail(err,
                  "%s: header length %" PRIu64 " is larger than the file (%zu bytes; truncated?)",
                  path, n, size);
        st_close(f);
        return -1;
    }
    if (n < 2) {
        rlhf_fail(err, "%s: header length %" PRIu64 " is too short for a JSON object", path, n);
        st_close(f);
        return -1;
    }
    f->data = p + 8 + n;
    f->data_len = size - 8 - (size_t)n;
    // the mapped header is not NUL-terminated: parse a terminated copy
    char *hdr = xmalloc((size_t)n + 1);
    memcpy(hdr, p + 8, (size_t)n);
    hdr[n] = '\0';
    int rc = parse_header(f, hdr, (size_t)n, err);
    free(hdr);
    if (rc != 0) {
        st_close(f);
        return -1;
    }
    return 0;
}

void st_close(st_file *f) {
    if (f->map) munmap(f->map, f->map_len);
    for (int i = 0; i < f->n_entries; i++) free((char *)f->entries[i].name);
    free(f->entries);
    free(f->by_name);
    if (f->meta)
        for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->meta);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static int cmp_key_entry(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const st_entry *const *)elem)->name);
}

const st_entry *st_find(const st_file *f, const char *name) {
    if (!f->by_name) return NULL;
    const st_entry **hit =
        bsearch(name, f->by_name, (size_t)f->n_entries, sizeof *f->by_name, cmp_key_entry);
    return hit ? *hit : NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

static int check_count(const st_file *f, const st_entry *e, size_t n_expected, rlhf_err *err) {
    if ((uint64_t)e->numel == n_expected) return 0;
    char s[200];
    shape_str(s, sizeof s, e->shape, e->ndim);
    return tensor_fail(err, f->path, e->name, "has %" PRId64 " elements (shape %s), expected %zu",
                       e->numel, s, n_expected);
}

int st_read_f32(const st_file *f, const st_entry *e, float *dst, size_t n_expected, rlhf_err *err) {
    if (check_count(f, e, n_expected, err) != 0) return -1;
    const unsigned char *p = e->data;
    size_t n = n_expected;
    switch (e->dtype) {
    case ST_F32:
        memcpy(dst, p, n * 4);
        return 0;
    case ST_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    default:
        return tensor_fail(err, f->path, e->name,
                           "dtype %s cannot be read as float32 (F32, F16, BF16 or F64 expected)",
                           st_dtype_name(e->dtype));
    }
}

int st_read_raw(const st_file *f, const st_entry *e, st_dtype want, void *dst, size_t n_expected,
                rlhf_err *err) {
    if (e->dtype != want)
        return tensor_fail(err, f->path, e->name, "dtype %s, expected %s", st_dtype_name(e->dtype),
                           st_dtype_name(want));
    if (check_count(f, e, n_expected, err) != 0) return -1;
    if (e->nbytes) memcpy(dst, e->data, e->nbytes);
    return 0;
}

// ----------------------------------------------------------------- writer --

typedef struct {
    char *p;
    size_t n, cap;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t k) {
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = '\0';
}

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    RLHF_ASSERT(k >= 0 && (size_t)k < sizeof tmp); // only used for short numeric pieces
    sb_put(b, tmp, (size_t)k);
}

static void sb_json_string(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static st_dtype disk_dtype(const st_tensor_desc *d) {
    return d->save_as ? d->save_as : d->dtype;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_descs(const char *path, const st_tensor_desc *t, int n, const char *const *meta,
                       rlhf_err *err) {
    if (n < 0) return rlhf_fail(err, "%s: negative tensor count %d", path, n);
    for (int i = 0; i < n; i++) {
        const st_tensor_desc *d = &t[i];
        if (!d->name) return rlhf_fail(err, "%s: tensor %d has no name", path, i);
        if (strcmp(d->name, "__metadata__") == 0)
            return tensor_fail(err, path, d->name, "name is reserved");
        if (d->dtype <= ST_NONE || d->dtype >= ST_NUM_DTYPES)
            return tensor_fail(err, path, d->name, "invalid dtype %d", (int)d->dtype);
        st_dtype to = disk_dtype(d);
        if (to != d->dtype && !(d->dtype == ST_F32 && (to == ST_BF16 || to == ST_F16)))
            return tensor_fail(err, path, d->name, "cannot save %s data as %s",
                               st_dtype_name(d->dtype), st_dtype_name(to));
        if (d->ndim < 0 || d->ndim > ST_MAX_DIMS)
            return tensor_fail(err, path, d->name, "ndim %d out of range 0..%d", d->ndim,
                               ST_MAX_DIMS);
        uint64_t numel = 1;
        for (int k = 0; k < d->ndim; k++) {
            if (d->shape[k] < 0)
                return tensor_fail(err, path, d->name, "shape[%d] = %" PRId64 " is negative", k,
                                   d->shape[k]);
            if (__builtin_mul_overflow(numel, (uint64_t)d->shape[k], &numel) ||
                numel > ((uint64_t)1 << 53))
                return tensor_fail(err, path, d->name, "shape has too many elements");
        }
        if (numel > 0 && !d->data) return tensor_fail(err, path, d->name, "data is NULL");
    }
    int rc = 0;
    const char **names = xmalloc((size_t)(n ? n : 1) * sizeof *names);
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 1; i < n && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = tensor_fail(err, path, names[i], "name given twice");
    free(names);
    if (rc || !meta) return rc;
    for (int i = 0; meta[i]; i += 2) {
        if (!meta[i + 1])
            return rlhf_fail(err, "%s: metadata key \"%.200s\" has no value", path, meta[i]);
        for (int k = 0; k < i; k += 2)
            if (strcmp(meta[k], meta[i]) == 0)
                return rlhf_fail(err, "%s: metadata key \"%.200s\" given twice", path, meta[i]);
    }
    return 0;
}

static uint64_t desc_numel(const st_tensor_desc *d) {
    uint64_t n = 1;
    for (int k = 0; k < d->ndim; k++) n *= (uint64_t)d->shape[k];
    return n;
}

// Writes tensor d's data as its disk dtype.
static int write_data(atomic_file *a, const st_tensor_desc *d, rlhf_err *err) {
    uint64_t numel = desc_numel(d);
    st_dtype to = disk_dtype(d);
    if (to == d->dtype) return atomic_write(a, d->data, (size_t)numel * st_dtype_size(to), err);
    unsigned char buf[8192];
    const unsigned char *src = d->data;
    for (uint64_t i = 0; i < numel;) {
        size_t k = 0;
        for (; k < sizeof buf / 2 && i < numel; k++, i++) {
            float x;
            memcpy(&x, src + 4 * i, 4);
            uint16_t h = to == ST_BF16 ? f32_to_bf16(x) : f32_to_f16(x);
            buf[2 * k] = (unsigned char)(h & 0xff);
            buf[2 * k + 1] = (unsigned char)(h >> 8);
        }
        if (atomic_write(a, buf, 2 * k, err) != 0) return -1;
    }
    return 0;
}

int st_write(const char *path, const st_tensor_desc *tensors, int n, const char *const *meta,
             rlhf_err *err) {
    if (check_descs(path, tensors, n, meta, err) != 0) return -1;

    strbuf h = {0};
    sb_put(&h, "{", 1);
    if (meta && meta[0]) {
        sb_json_string(&h, "__metadata__");
        sb_put(&h, ":{", 2);
        for (int i = 0; meta[i]; i += 2) {
            if (i) sb_put(&h, ",", 1);
            sb_json_string(&h, meta[i]);
            sb_put(&h, ":", 1);
            sb_json_string(&h, meta[i + 1]);
        }
        sb_put(&h, "}", 1);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor_desc *d = &tensors[i];
        if (h.n > 1) sb_put(&h, ",", 1);
        sb_json_string(&h, d->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(disk_dtype(d)));
        for (int k = 0; k < d->ndim; k++) sb_printf(&h, "%s%" PRId64, k ? "," : "", d->shape[k]);
        uint64_t nbytes = desc_numel(d) * st_dtype_size(disk_dtype(d));
        if (offset + nbytes > ((uint64_t)1 << 53)) {
            free(h.p);
            return tensor_fail(err, path, d->name, "data section would exceed 2^53 bytes");
        }
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset, offset + nbytes);
        offset += nbytes;
    }
    sb_put(&h, "}", 1);
    while (h.n % 8) sb_put(&h, " ", 1); // as the HF writer does, so the data starts 8-aligned

    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    atomic_file a;
    int rc = atomic_open(&a, path, err);
    if (rc == 0) rc = atomic_write(&a, len, 8, err);
    if (rc == 0) rc = atomic_write(&a, h.p, h.n, err);
    for (int i = 0; i < n && rc == 0; i++) rc = write_data(&a, &tensors[i], err);
    if (rc == 0)
        rc = atomic_commit(&a, err);
    else
        atomic_abort(&a);
    free(h.p);
    return rc;
}
