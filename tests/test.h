// A small test harness. Each test binary runs its cases and prints one line per
// case: "PASS name", "FAIL name: why" or "SKIP name: why"; tests/run.sh counts them.
#ifndef RLHF_TEST_H
#define RLHF_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_ = 0;  // failures within the current case
static int test_total_fail_ = 0;
static const char *test_name_ = "";

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                      \
            test_failed_++;                                                                        \
        }                                                                                          \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                      \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            test_failed_++;                                                                        \
        }                                                                                          \
    } while (0)

// |a-b| <= atol + rtol*|b|
#define CHECK_CLOSE(a, b, atol, rtol)                                                              \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_))) {                                        \
            printf("  %s:%d: %s = %.9g, %s = %.9g\n", __FILE__, __LINE__, #a, a_, #b, b_);         \
            test_failed_++;                                                                        \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        test_failed_ = 0;                                                                          \
        test_name_ = #fn;                                                                          \
        fflush(stdout);                                                                            \
        int skip_ = fn();                                                                          \
        if (test_failed_) {                                                                        \
            printf("FAIL %s\n", #fn);                                                              \
            test_total_fail_++;                                                                    \
        } else if (skip_ == 77)                                                                    \
            printf("SKIP %s\n", #fn);                                                              \
        else                                                                                       \
            printf("PASS %s\n", #fn);                                                              \
        fflush(stdout);                                                                            \
    } while (0)

#define SKIP(...)                                                                                  \
    do {                                                                                           \
        printf("  skip: ");                                                                        \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        return 77;                                                                                 \
    } while (0)

#define TEST_EXIT() return test_total_fail_ ? 1 : 0

// where ../shared/data is, or NULL (tests that need it skip)
static inline const char *test_shared_data(void) {
    static const char *dirs[] = {"../shared/data", "../../shared/data", NULL};
    const char *env = getenv("RLHF_SHARED_DATA");
    if (env) return env;
    for (int i = 0; dirs[i]; i++) {
        FILE *f = fopen(dirs[i], "r");
        if (f) {
            fclose(f);
            return dirs[i];
        }
    }
    return NULL;
}

// a fresh scratch directory under build/tmp
static inline const char *test_tmpdir(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/tmp/%s.XXXXXX", getenv("BUILD") ? getenv("BUILD") : "build",
             test_name_);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/tmp", getenv("BUILD") ? getenv("BUILD") : "build");
    if (system(cmd) != 0) return NULL;
    extern char *mkdtemp(char *);
    return mkdtemp(buf);
}

#endif
