// Tests of io/tfevents (TensorBoard event files) and of its use by train/run:
// CRC-32C against published check values, the masked CRC against the header
// every TensorFlow event file starts with, written files read back by a small
// reader here (framing, both CRCs, the Event / Summary / Value fields byte for
// byte), file names, refusals (a bad folder, bad --report_to values), and
// run_log turning metrics lines into scalars.
#include <dirent.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "io/file.h"
#include "io/tfevents.h"
#include "test.h"
#include "train/run.h"

// ----------------------------------------------------------------- reader --

typedef struct {
    const unsigned char *data;
    size_t len;
} record;

static uint64_t le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

// Splits a file image into records, checking the framing and both CRCs;
// returns the count, or -1 at the first bad record.
static int read_records(const unsigned char *p, size_t n, record *out, int cap) {
    int k = 0;
    size_t at = 0;
    while (at < n) {
        if (n - at < 12 || k == cap) return -1;
        uint64_t len = le(p + at, 8);
        if (le(p + at + 8, 4) != tfevents_masked_crc32c(p + at, 8)) return -1;
        if (len > n - at - 12 || n - at - 12 - len < 4) return -1;
        const unsigned char *d = p + at + 12;
        if (le(d + len, 4) != tfevents_masked_crc32c(d, len)) return -1;
        out[k++] = (record){d, len};
        at += 12 + len + 4;
    }
    return k;
}

// the event files in dir (names into names[cap][256]); returns how many
static int event_files(const char *dir, char names[][256], int cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int k = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, "events.out.tfevents.", 20) && k < cap) {
            int w = snprintf(names[k], 256, "%s/%s", dir, e->d_name);
            if (w > 0 && w < 256) k++;
        }
    closedir(d);
    return k;
}

static uint64_t varint(const unsigned char **p, const unsigned char *end) {
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    return v;
}

// One scalar event decoded: the summary's first Value (tag, simple_value).
typedef struct {
    double wall;
    int64_t step;
    char version[32], tag[128];
    float value;
    int n_values;
} event;

static void decode_value(const unsigned char *p, const unsigned char *end, event *e) {
    while (p < end) {
        uint64_t key = varint(&p, end);
        if (key == 0x0a) {
            uint64_t n = varint(&p, end);
            snprintf(e->tag, sizeof e->tag, "%.*s", (int)n, (const char *)p);
            p += n;
        } else if (key == 0x15) {
            uint32_t u = (uint32_t)le(p, 4);
            memcpy(&e->value, &u, 4);
            p += 4;
        } else {
            return;
        }
    }
}

static int decode_event(record r, event *e) {
    memset(e, 0, sizeof *e);
    const unsigned char *p = r.data, *end = r.data + r.len;
    while (p < end) {
        uint64_t key = varint(&p, end);
        if (key == 0x09) { // wall_time, 64-bit
            uint64_t u = le(p, 8);
            memcpy(&e->wall, &u, 8);
            p += 8;
        } else if (key == 0x10) { // step, varint
            e->step = (int64_t)varint(&p, end);
        } else if (key == 0x1a) { // file_version
            uint64_t n = varint(&p, end);
            snprintf(e->version, sizeof e->version, "%.*s", (int)n, (const char *)p);
            p += n;
        } else if (key == 0x2a) { // summary: Value messages (field 1)
            const unsigned char *s_end = p + varint(&p, end);
            while (p < s_end) {
                if (varint(&p, s_end) != 0x0a) return -1;
                uint64_t n = varint(&p, s_end);
                if (e->n_values++ == 0) decode_value(p, p + n, e);
                p += n;
            }
        } else {
            return -1;
        }
    }
    return p == end ? 0 : -1;
}

// ------------------------------------------------------------------ tests --

static int test_crc32c(void) {
    CHECK(tfevents_crc32c("123456789", 9) == 0xE3069283u); // the CRC catalogue's check value
    CHECK(tfevents_crc32c("", 0) == 0);
    unsigned char b[32]; // RFC 3720 (iSCSI) B.4 test vectors
    memset(b, 0, 32);
    CHECK(tfevents_crc32c(b, 32) == 0x8A9136AAu);
    memset(b, 0xff, 32);
    CHECK(tfevents_crc32c(b, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
    CHECK(tfevents_crc32c(b, 32) == 0x46DD794Eu);
    return 0;
}

static int test_masked_crc(void) {
    // 0xE3069283 rotated right by 15 is 0x25070DC6; + 0xa282ead8 = 0xC78AB0E5
    CHECK(tfevents_masked_crc32c("123456789", 9) == 0xC78AB0E5u);
    // every TensorFlow event file starts with the 24-byte file_version record:
    // 18 00 00 00 00 00 00 00 a3 7f 4b 22
    unsigned char len24[8] = {24, 0, 0, 0, 0, 0, 0, 0};
    CHECK(tfevents_masked_crc32c(len24, 8) == 0x224B7FA3u);
    return 0;
}

// the bytes of Event{wall_time 1.5, step, summary{value{tag "loss", simple_value 0.25}}}
static size_t expected_event(unsigned char *out, const unsigned char *step, size_t step_n) {
    static const unsigned char wall[] = {0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f};
    static const unsigned char summary[] = {0x2a, 0x0d, 0x0a, 0x0b, 0x0a, 0x04, 'l', 'o',
                                            's',  's',  0x15, 0x00, 0x00, 0x80, 0x3e};
    memcpy(out, wall, sizeof wall);
    size_t n = sizeof wall;
    if (step_n) memcpy(out + n, step, step_n); // step is NULL when step_n is 0
    n += step_n;
    memcpy(out + n, summary, sizeof summary);
    return n + sizeof summary;
}

static int test_written_file(void) {
    const char *tmp = test_tmpdir();
    if (!tmp) SKIP("no scratch folder");
    char dir[400];
    snprintf(dir, sizeof dir, "%s/a/b", tmp); // created as needed
    tfevents *w;
    rlhf_err err;
    double t0 = tfevents_wall_time();
    CHECKF(tfevents_open(&w, dir, &err) == 0, "%s", err.msg);
    if (!w) return 0;
    CHECK(tfevents_scalar(w, "loss", 5, 1.5, 0.25f, &err) == 0);
    CHECK(tfevents_scalar(w, "loss", 0, 1.5, 0.25f, &err) == 0);
    CHECK(tfevents_scalar(w, "loss", 300, 1.5, 0.25f, &err) == 0);
    CHECK(tfevents_scalar(w, "loss", -1, 1.5, 0.25f, &err) == 0);
    CHECK(tfevents_scalar(w, "eval/return_mean", (int64_t)1 << 40, 2.0, -3.5f, &err) == 0);
    CHECK(tfevents_scalar(w, "", 1, 1.5, 0.25f, &err) == -1); // a tag is needed
    char path[4400];
    snprintf(path, sizeof path, "%s", tfevents_path(w));
    CHECK(tfevents_close(w, &err) == 0);

    char names[4][256];
    CHECK(event_files(dir, names, 4) == 1);
    size_t n;
    unsigned char *img = (unsigned char *)read_file(path, &n, &err);
    CHECKF(img != NULL, "%s", err.msg);
    if (!img) return 0;
    record r[8];
    int k = read_records(img, n, r, 8);
    CHECKF(k == 6, "%d records", k);
    // the file_version event: 12 bytes of framing that every event file starts with
    static const unsigned char head[12] = {24, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0x7f, 0x4b, 0x22};
    CHECK(n >= 12 && !memcmp(img, head, 12));
    event e;
    if (k == 6) {
        CHECK(decode_event(r[0], &e) == 0 && !strcmp(e.version, "brain.Event:2"));
        CHECK(e.step == 0 && e.n_values == 0 && e.wall >= t0 - 1 && e.wall <= t0 + 60);
        unsigned char want[64];
        static const unsigned char s5[] = {0x10, 0x05}, s300[] = {0x10, 0xac, 0x02};
        static const unsigned char sneg[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0xff,
                                             0xff, 0xff, 0xff, 0xff, 0x01};
        size_t m = expected_event(want, s5, sizeof s5);
        CHECK(r[1].len == m && !memcmp(r[1].data, want, m));
        m = expected_event(want, NULL, 0); // a zero step is left out (proto3)
        CHECK(r[2].len == m && !memcmp(r[2].data, want, m));
        m = expected_event(want, s300, sizeof s300);
        CHECK(r[3].len == m && !memcmp(r[3].data, want, m));
        m = expected_event(want, sneg, sizeof sneg);
        CHECK(r[4].len == m && !memcmp(r[4].data, want, m));
        CHECK(decode_event(r[5], &e) == 0 && e.step == (int64_t)1 << 40 && e.wall == 2.0);
        CHECK(!strcmp(e.tag, "eval/return_mean") && e.value == -3.5f && e.n_values == 1);
    }
    // a flipped bit anywhere is caught by one of the two CRCs
    for (size_t i = 0; i < n; i += 7) {
        img[i] ^= 0x10;
        CHECKF(read_records(img, n, r, 8) == -1, "byte %zu", i);
        img[i] ^= 0x10;
    }
    free(img);
    return 0;
}

// events.out.tfevents.<seconds>.<host>.<pid>; two writers never share a file
static int test_file_name(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch folder");
    tfevents *a, *b;
    rlhf_err err;
    long long t0 = (long long)time(NULL);
    CHECK(tfevents_open(&a, dir, &err) == 0);
    CHECK(tfevents_open(&b, dir, &err) == 0);
    if (!a || !b) return 0;
    CHECK(strcmp(tfevents_path(a), tfevents_path(b)) != 0);
    const char *base = strrchr(tfevents_path(a), '/') + 1;
    long long t;
    char host[256];
    int pid = 0, used = 0;
    CHECK(sscanf(base, "events.out.tfevents.%lld.%255[^.]%n", &t, host, &used) == 2);
    CHECK(t >= t0 && t <= t0 + 60);
    const char *tail = strrchr(base, '.');
    CHECK(sscanf(tail, ".%d", &pid) == 1 && pid == (int)getpid());
    CHECK(tfevents_close(a, &err) == 0 && tfevents_close(b, &err) == 0);
    char names[4][256];
    CHECK(event_files(dir, names, 4) == 2);
    CHECK(tfevents_close(NULL, &err) == 0);
    return 0;
}

static int test_bad_folder(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch folder");
    char file[400], under[500];
    snprintf(file, sizeof file, "%s/plain_file", dir);
    CHECK(atomic_write_file(file, "x", 1, NULL) == 0);
    snprintf(under, sizeof under, "%s/sub", file); // a folder inside a regular file
    tfevents *w = (tfevents *)1;
    rlhf_err err = {""};
    CHECK(tfevents_open(&w, under, &err) == -1 && w == NULL);
    CHECKF(strstr(err.msg, "plain_file") != NULL, "%s", err.msg);
    CHECK(tfevents_open(&w, "", &err) == -1 && w == NULL);
    CHECK(tfevents_open(&w, file, &err) == -1 && w == NULL); // the folder is a file
    return 0;
}

static int test_report_to(void) {
    rlhf_err err;
    int tb = -1;
    CHECK(run_report_to(NULL, &tb, &err) == 0 && tb == 0);
    CHECK(run_report_to("", &tb, &err) == 0 && tb == 0);
    CHECK(run_report_to("none", &tb, &err) == 0 && tb == 0);
    CHECK(run_report_to("tensorboard", &tb, &err) == 0 && tb == 1);
    CHECK(run_report_to(" tensorboard, all", &tb, &err) == 0 && tb == 1);
    CHECK(run_report_to("all", &tb, &err) == 0 && tb == 1);
    CHECK(run_report_to("tensorboard", NULL, &err) == 0);
    const char *bad[] = {"wandb", "tensorboard,wandb", "none,tensorboard", "TensorBoard", "tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECKF(run_report_to(bad[i], &tb, &err) == -1, "%s", bad[i]);
        CHECKF(strstr(err.msg, "--report_to") != NULL, "%s: %s", bad[i], err.msg);
    }
    return 0;
}

// run_log: numeric fields at the line's step, nested objects as parent/child,
// "step" itself and non-numbers left out, lines without a step skipped
static int test_run_log(void) {
    const char *dir = test_tmpdir();
    if (!dir) SKIP("no scratch folder");
    run_dir r;
    rlhf_err err;
    CHECKF(run_open(&r, dir, "{\"report_to\": \"tensorboard\"}", -1, &err) == 0, "%s", err.msg);
    CHECK(r.tb != NULL);
    run_log(&r, "{\"step\":3,\"loss\":1.25,\"phase\":\"online\",\"ok\":true,\"eval\":{\"acc\":0.5,"
                "\"deep\":{\"x\":-2}},\"list\":[1,2]}");
    run_log(&r, "{\"loss\":9}"); // no step: metrics.jsonl only
    run_log(&r, "{\"step\":4,\"eval/return_mean\":-7.5}");
    run_close(&r);
    char tbdir[600], names[4][256];
    snprintf(tbdir, sizeof tbdir, "%s/tensorboard", dir);
    CHECK(event_files(tbdir, names, 4) == 1);
    size_t n;
    unsigned char *img = (unsigned char *)read_file(names[0], &n, &err);
    CHECKF(img != NULL, "%s", err.msg);
    if (!img) return 0;
    record rec[16];
    int k = read_records(img, n, rec, 16);
    const struct {
        const char *tag;
        int step;
        float value;
    } want[] = {{"loss", 3, 1.25f},
                {"eval/acc", 3, 0.5f},
                {"eval/deep/x", 3, -2},
                {"eval/return_mean", 4, -7.5f}};
    CHECKF(k == 5, "%d records", k);
    for (int i = 1; i < k && i <= 4; i++) {
        event e;
        CHECK(decode_event(rec[i], &e) == 0);
        CHECKF(!strcmp(e.tag, want[i - 1].tag) && e.step == want[i - 1].step &&
                   e.value == want[i - 1].value,
               "record %d: %s %lld %g", i, e.tag, (long long)e.step, e.value);
    }
    free(img);
    // settings without report_to (or none): no tensorboard folder
    const char *dir2 = test_tmpdir();
    CHECK(run_open(&r, dir2, "{\"report_to\": null}", -1, &err) == 0 && r.tb == NULL);
    run_close(&r);
    CHECK(run_open(&r, dir2, "{\"report_to\": \"wandb\"}", 0, &err) == -1);
    CHECK(strstr(err.msg, "--report_to") != NULL);
    run_close(&r);
    return 0;
}

int main(void) {
    RUN(test_crc32c);
    RUN(test_masked_crc);
    RUN(test_written_file);
    RUN(test_file_name);
    RUN(test_bad_folder);
    RUN(test_report_to);
    RUN(test_run_log);
    TEST_EXIT();
}
