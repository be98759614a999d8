// io/file's atomic writes where the path is not a plain file: a device, a pipe
// or a link. As root (CI, containers) a temp file renamed over /dev/null would
// replace the device itself; these tests make a device node, a FIFO and a link
// in a scratch folder and check each keeps what it is.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/file.h"
#include "test.h"

static char dir[256];

static int is_kind(const char *p, mode_t kind) {
    struct stat st;
    return lstat(p, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

// no "*.tmp.*" entry left in dir
static int no_temp_files(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -q '\\.tmp\\.'", dir);
    return system(cmd) != 0;
}

// /dev/null's kind of file (a character device, made with mknod where we may,
// else /dev/null itself is written, which is harmless) stays a device
static int test_device_written_into(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/null", dir);
    if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) != 0) snprintf(p, sizeof p, "/dev/null");
    rlhf_err err;
    CHECKF(atomic_write_file(p, "hello\n", 6, &err) == 0, "%s", err.msg);
    CHECK(is_kind(p, S_IFCHR));
    atomic_file a;
    CHECKF(atomic_open(&a, p, &err) == 0, "%s", err.msg);
    CHECK(a.direct == 1 && atomic_write(&a, "x", 1, &err) == 0);
    CHECKF(atomic_commit(&a, &err) == 0, "%s", err.msg);
    CHECK(is_kind(p, S_IFCHR));
    CHECKF(atomic_open(&a, p, &err) == 0, "%s", err.msg);
    atomic_abort(&a); // an abort leaves the device alone too
    CHECK(is_kind(p, S_IFCHR));
    CHECK(no_temp_files());
    CHECK(!same_file(p, p) && !same_file("/dev/null", "/dev/null")); // nobody's file
    return 0;
}

// a FIFO: the reader gets the bytes, and it stays a FIFO
static int test_fifo_written_into(void) {
    char p[400], got[400];
    snprintf(p, sizeof p, "%s/fifo", dir);
    snprintf(got, sizeof got, "%s/fifo_got", dir);
    CHECK(mkfifo(p, 0600) == 0);
    pid_t pid = fork();
    if (pid == 0) { // the reader
        char cmd[900];
        snprintf(cmd, sizeof cmd, "cat %s > %s", p, got);
        _exit(system(cmd) == 0 ? 0 : 1);
    }
    rlhf_err err;
    CHECKF(atomic_write_file(p, "through the pipe\n", 17, &err) == 0, "%s", err.msg);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t n = 0;
    char *s = read_file(got, &n, &err);
    CHECK(s && n == 17 && !memcmp(s, "through the pipe\n", 17));
    free(s);
    CHECK(is_kind(p, S_IFIFO));
    CHECK(no_temp_files());
    return 0;
}

// a link to a regular file: the target gets the new contents, the link stays
static int test_link_target_replaced(void) {
    char target[400], link[400];
    snprintf(target, sizeof target, "%s/target.txt", dir);
    snprintf(link, sizeof link, "%s/link.txt", dir);
    rlhf_err err;
    CHECK(atomic_write_file(target, "old", 3, &err) == 0);
    CHECK(symlink("target.txt", link) == 0);
    CHECKF(atomic_write_file(link, "new", 3, &err) == 0, "%s", err.msg);
    CHECK(is_kind(link, S_IFLNK) && is_kind(target, S_IFREG));
    size_t n = 0;
    char *s = read_file(target, &n, &err);
    CHECK(s && n == 3 && !memcmp(s, "new", 3));
    free(s);
    CHECK(no_temp_files());
    return 0;
}

// a regular file reached through /proc (as /dev/stdout is when the shell sent
// stdout to a file): written into the same file, not swapped for a new one that
// the holder of the descriptor would never see
static int test_proc_fd_written_into(void) {
    char p[400], via[64];
    snprintf(p, sizeof p, "%s/held.txt", dir);
    rlhf_err err;
    CHECK(atomic_write_file(p, "old contents", 12, &err) == 0);
    int fd = open(p, O_WRONLY);
    CHECK(fd >= 0);
    if (fd < 0) return 0;
    struct stat s1, s2;
    CHECK(stat(p, &s1) == 0);
    snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
    CHECKF(atomic_write_file(via, "new", 3, &err) == 0, "%s", err.msg);
    close(fd);
    CHECK(stat(p, &s2) == 0 && s1.st_ino == s2.st_ino);
    size_t n = 0;
    char *s = read_file(p, &n, &err);
    CHECK(s && n == 3 && !memcmp(s, "new", 3));
    free(s);
    CHECK(no_temp_files());
    return 0;
}

// a folder is refused by name, and nothing is made beside it
static int test_folder_refused(void) {
    rlhf_err err;
    atomic_file a;
    CHECK(atomic_open(&a, dir, &err) == -1 && strstr(err.msg, dir) && strstr(err.msg, "directory"));
    return 0;
}

// a plain file is still replaced through a temp file (a new inode)
static int test_plain_file_replaced(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/plain.txt", dir);
    rlhf_err err;
    CHECK(atomic_write_file(p, "one", 3, &err) == 0);
    struct stat s1, s2;
    CHECK(stat(p, &s1) == 0);
    atomic_file a;
    CHECK(atomic_open(&a, p, &err) == 0 && a.direct == 0 && a.tmp[0]);
    CHECK(atomic_write(&a, "two", 3, &err) == 0 && atomic_commit(&a, &err) == 0);
    CHECK(stat(p, &s2) == 0 && s1.st_ino != s2.st_ino && s2.st_size == 3);
    char link[400];
    snprintf(link, sizeof link, "%s/plain_link.txt", dir);
    CHECK(symlink("plain.txt", link) == 0);
    CHECK(same_file(p, p) && same_file(link, p) && !same_file(p, dir) && !same_file(p, NULL));
    return 0;
}

int main(void) {
    const char *d = test_tmpdir();
    if (!d) {
        printf("SKIP test_file: no scratch directory\n");
        return 0;
    }
    snprintf(dir, sizeof dir, "%s", d);
    RUN(test_device_written_into);
    RUN(test_fifo_written_into);
    RUN(test_link_target_replaced);
    RUN(test_proc_fd_written_into);
    RUN(test_folder_refused);
    RUN(test_plain_file_replaced);
    TEST_EXIT();
}
