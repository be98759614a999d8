// fuzz/replay_main.c: a plain main for the fuzz harnesses, so that `make test`
// replays every seed and every regression input without libFuzzer. Built as
// BUILD/tests/test_fuzz_<target> with -DFUZZ_TARGET="<target>"; run from the
// repository root it feeds fuzz/corpus/<target>/* and fuzz/regress/<target>/*
// (or the files and folders given as arguments) to LLVMFuzzerTestOneInput.
// A crash or sanitizer report kills the process (the runner counts that as a
// failure); otherwise it prints one PASS line per folder.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("FAIL fuzz replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    // a copy of exactly n bytes, so reading past the input is caught under ASan
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

// Replays a file, or every file of a folder (sorted); returns the count, -1 on error.
static int run_path(const char *path, int missing_ok) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (missing_ok) return 0;
        printf("FAIL fuzz replay: no such file or folder %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return run_file(path) == 0 ? 1 : -1;
    DIR *d = opendir(path);
    if (!d) return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = realloc(names, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *names);
        size_t k = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(k);
        snprintf(names[n], k, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int done = 0;
    for (int i = 0; i < n; i++) {
        struct stat s2;
        if (stat(names[i], &s2) == 0 && S_ISREG(s2.st_mode)) {
            if (run_file(names[i]) != 0) done = -1;
            else if (done >= 0) done++;
        }
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int fails = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            int n = run_path(argv[i], 0);
            if (n < 0) fails++;
            else printf("PASS fuzz replay %s: %d inputs\n", argv[i], n);
        }
        return fails ? 1 : 0;
    }
#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"name\" or pass files"
#endif
    const char *kinds[2] = {"corpus", "regress"};
    for (int k = 0; k < 2; k++) {
        char dir[512];
        snprintf(dir, sizeof dir, "fuzz/%s/%s", kinds[k], FUZZ_TARGET);
        int n = run_path(dir, k == 1);
        if (n < 0) {
            fails++;
            continue;
        }
        if (k == 0 && n == 0) {
            printf("FAIL fuzz_%s: the seed corpus %s is empty\n", FUZZ_TARGET, dir);
            fails++;
            continue;
        }
        printf("PASS fuzz_%s %s: %d inputs replayed\n", FUZZ_TARGET, kinds[k], n);
    }
    return fails ? 1 : 0;
}
