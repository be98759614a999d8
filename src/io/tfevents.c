// io/tfevents: TensorBoard event files (the format is in tfevents.h).
#include "io/tfevents.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/file.h"

struct tfevents {
    FILE *f;
    char path[4400];
    unsigned char *buf; // one encoded Event
    size_t cap;
};

// ------------------------------------------------------------- checksums --

uint32_t tfevents_crc32c(const void *data, size_t n) {
    // bit by bit: records are tens of bytes, so a table would buy nothing
    const unsigned char *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

uint32_t tfevents_masked_crc32c(const void *data, size_t n) {
    uint32_t crc = tfevents_crc32c(data, n);
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

double tfevents_wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ------------------------------------------------------ protobuf encoding --

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    for (; v >= 0x80; v >>= 7) n++;
    return n;
}

static unsigned char *put_varint(unsigned char *p, uint64_t v) {
    for (; v >= 0x80; v >>= 7) *p++ = (unsigned char)(v | 0x80);
    *p++ = (unsigned char)v;
    return p;
}

static unsigned char *put_le(unsigned char *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

// key byte of field `field` (< 16) with wire type `wire`
static unsigned char *put_key(unsigned char *p, int field, int wire) {
    *p++ = (unsigned char)(field << 3 | wire);
    return p;
}

static unsigned char *put_bytes(unsigned char *p, int field, const void *s, size_t n) {
    p = put_key(p, field, 2);
    p = put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

static unsigned char *put_double(unsigned char *p, int field, double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    return put_le(put_key(p, field, 1), u, 8);
}

// room for n bytes in w->buf
static unsigned char *event_buffer(tfevents *w, size_t n) {
    if (n > w->cap) {
        w->cap = n + 256;
        w->buf = xrealloc(w->buf, w->cap);
    }
    return w->buf;
}

// ---------------------------------------------------------------- records --

static int write_record(tfevents *w, const unsigned char *data, size_t n, rlhf_err *err) {
    unsigned char head[12], foot[4];
    put_le(head, n, 8);
    put_le(head + 8, tfevents_masked_crc32c(head, 8), 4);
    put_le(foot, tfevents_masked_crc32c(data, n), 4);
    if (fwrite(head, 1, 12, w->f) != 12 || fwrite(data, 1, n, w->f) != n ||
        fwrite(foot, 1, 4, w->f) != 4)
        return rlhf_fail(err, "%s: cannot write: %s", w->path, strerror(errno));
    return 0;
}

int tfevents_scalar(tfevents *w, const char *tag, int64_t step, double wall_time, float value,
                    rlhf_err *err) {
    size_t tag_n = strlen(tag);
    if (tag_n == 0) return rlhf_fail(err, "%s: a scalar needs a non-empty tag", w->path);
    size_t value_n = 1 + varint_len(tag_n) + tag_n + 1 + 4; // Value{tag, simple_value}
    size_t summary_n = 1 + varint_len(value_n) + value_n;   // Summary{value}
    uint64_t step_u = (uint64_t)step;                       // int64 varint: two's complement
    size_t event_n =
        9 + (step ? 1 + varint_len(step_u) : 0) + 1 + varint_len(summary_n) + summary_n;
    unsigned char *p = event_buffer(w, event_n), *start = p;
    p = put_double(p, 1, wall_time);
    if (step) p = put_varint(put_key(p, 2, 0), step_u);
    p = put_varint(put_key(p, 5, 2), summary_n);
    p = put_varint(put_key(p, 1, 2), value_n);
    p = put_bytes(p, 1, tag, tag_n);
    uint32_t bits;
    memcpy(&bits, &value, 4);
    p = put_le(put_key(p, 2, 5), bits, 4);
    RLHF_ASSERT((size_t)(p - start) == event_n);
    return write_record(w, start, event_n, err);
}

// --------------------------------------------------------------- the file --

// events.out.tfevents.<seconds>.<host>.<pid>[.k] in dir, created exclusively
static int create_event_file(const char *dir, char *path, size_t n, FILE **f, rlhf_err *err) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++) // a file name, not a path
        if (!(*c == '-' || *c == '.' || *c == '_' || (*c >= '0' && *c <= '9') ||
              (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
            *c = '_';
    long long now = (long long)time(NULL);
    int pid = (int)getpid();
    for (int k = 0; k < 100; k++) {
        int len =
            k ? snprintf(path, n, "%s/events.out.tfevents.%lld.%s.%d.%d", dir, now, host, pid, k)
              : snprintf(path, n, "%s/events.out.tfevents.%lld.%s.%d", dir, now, host, pid);
        if (len < 0 || (size_t)len >= n) return rlhf_fail(err, "%s: folder name too long", dir);
        if ((*f = fopen(path, "wbx"))) return 0;
        if (errno != EEXIST) return rlhf_fail(err, "%s: cannot create: %s", path, strerror(errno));
    }
    return rlhf_fail(err, "%s: no free event file name", dir);
}

int tfevents_open(tfevents **out, const char *dir, rlhf_err *err) {
    *out = NULL;
    if (!dir || !*dir) return rlhf_fail(err, "TensorBoard: no folder given for the event file");
    if (make_dirs(dir, err)) return rlhf_fail_ctx(err, "TensorBoard folder");
    tfevents *w = xcalloc(1, sizeof *w);
    if (create_event_file(dir, w->path, sizeof w->path, &w->f, err)) {
        free(w);
        return -1;
    }
    static const char version[] = "brain.Event:2";
    unsigned char *p = event_buffer(w, 64), *start = p;
    p = put_double(p, 1, tfevents_wall_time());
    p = put_bytes(p, 3, version, sizeof version - 1);
    if (write_record(w, start, (size_t)(p - start), err) || tfevents_flush(w, err)) {
        remove(w->path); // no event file that TensorBoard cannot read
        rlhf_err ignored;
        tfevents_close(w, &ignored);
        return -1;
    }
    *out = w;
    return 0;
}

int tfevents_flush(tfevents *w, rlhf_err *err) {
    if (fflush(w->f) != 0) return rlhf_fail(err, "%s: cannot write: %s", w->path, strerror(errno));
    return 0;
}

int tfevents_close(tfevents *w, rlhf_err *err) {
    if (!w) return 0;
    int bad = ferror(w->f) || fflush(w->f) != 0;
    if (fclose(w->f) != 0) bad = 1;
    int rc = bad ? rlhf_fail(err, "%s: cannot write: %s", w->path, strerror(errno)) : 0;
    free(w->buf);
    free(w);
    return rc;
}

const char *tfevents_path(const tfevents *w) {
    return w->path;
}
