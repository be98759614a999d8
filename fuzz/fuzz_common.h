// fuzz/fuzz_common.h: what the loader harnesses share. Every loader takes a
// path, so a harness writes the fuzzer's bytes into files in a private
// temporary folder (under /dev/shm when there is one) and calls the loader.
//
// Multi-file inputs (an HF folder, a GPT-2 vocabulary pair, a checkpoint) are
// one input split at the line FUZZ_SEP ("\n~~~~\n"): part 0, part 1, ...
//
// The folder is under $FUZZ_TMPDIR when set (make fuzz: FUZZ_BUILD/tmp, since
// libFuzzer's -fork children killed at the time limit cannot remove theirs).
//
// Each harness defines LLVMFuzzerTestOneInput. `make fuzz` links it with
// libFuzzer (clang -fsanitize=fuzzer,address,undefined); `make test` links the
// same source with fuzz/replay_main.c (plain gcc) and replays the seed corpus
// and every regression input (fuzz/corpus/<target>, fuzz/regress/<target>).
#ifndef RLHF_FUZZ_COMMON_H
#define RLHF_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#define FUZZ_SEP "\n~~~~\n"
#define FUZZ_MAX_PARTS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir_path[256];

static inline void fuzz_rm_dir(void) {
    if (!fuzz_dir_path[0]) return;
    DIR *d = opendir(fuzz_dir_path);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(fuzz_dir_path);
}

// The harness's private folder (created once per process, removed at exit).
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        struct stat st;
        const char *base = getenv("FUZZ_TMPDIR") ? getenv("FUZZ_TMPDIR")
                           : stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
                                   access("/dev/shm", W_OK) == 0
                               ? "/dev/shm"
                           : getenv("TMPDIR") ? getenv("TMPDIR")
                                              : "/tmp";
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/rlhf-fuzz-XXXXXX", base);
        if (!mkdtemp(fuzz_dir_path)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fuzz_rm_dir);
    }
    return fuzz_dir_path;
}

// Removes every file of the private folder (so one input's files never leak
// into the next).
static inline void fuzz_clear(void) {
    const char *dir = fuzz_dir();
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
}

// Writes n bytes to <dir>/name; returns the path (static buffer per call site
// is the caller's: pass out[4096]).
static inline const char *fuzz_write(const char *name, const void *data, size_t n, char *out) {
    snprintf(out, 4096, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(out, "wb");
    if (!f) {
        perror(out);
        abort();
    }
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
    return out;
}

typedef struct {
    const uint8_t *p[FUZZ_MAX_PARTS];
    size_t n[FUZZ_MAX_PARTS];
    int count;
} fuzz_parts;

// Splits data at FUZZ_SEP into at most FUZZ_MAX_PARTS parts (the last part
// keeps any further separators).
static inline void fuzz_split(const uint8_t *data, size_t size, fuzz_parts *parts) {
    const size_t k = sizeof FUZZ_SEP - 1;
    memset(parts, 0, sizeof *parts);
    size_t start = 0;
    for (size_t i = 0; i + k <= size && parts->count < FUZZ_MAX_PARTS - 1;) {
        if (memcmp(data + i, FUZZ_SEP, k) == 0) {
            parts->p[parts->count] = data + start;
            parts->n[parts->count++] = i - start;
            i += k;
            start = i;
        } else {
            i++;
        }
    }
    parts->p[parts->count] = data + start;
    parts->n[parts->count++] = size - start;
}

// With FUZZ_VERBOSE set (replaying by hand), says why an input was refused.
static inline void fuzz_note(const char *what, const char *msg) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "  %s: %s\n", what, msg);
}

// A NUL-terminated malloc'd copy.
static inline char *fuzz_strdup(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

#endif
