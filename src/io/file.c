// io/file: whole-file reads, atomic writes (temp file + fsync + rename), mkdir -p.
#include "io/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *read_file(const char *path, size_t *len, rlhf_err *err) {
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rlhf_fail(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rlhf_fail(err, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        rlhf_fail(err, "%s: %s", path, strerror(EISDIR));
        close(fd);
        return NULL;
    }
    // st_size is a hint only: pipes report 0 and a file may grow while we read
    size_t cap = (S_ISREG(st.st_mode) && st.st_size > 0) ? (size_t)st.st_size + 1 : 4096;
    size_t n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            rlhf_fail(err, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

// --------------------------------------------------------------- atomic --

// Flushes the directory entry of a rename to disk. Best effort: some file
// systems refuse fsync on directories, and the rename has already happened.
void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

static void fsync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t k = (size_t)(slash - path);
        if (k >= sizeof dir) return;
        memcpy(dir, path, k);
        dir[k] = '\0';
    }
    fsync_dir(dir);
}

int atomic_open(atomic_file *a, const char *path, rlhf_err *err) {
    a->f = NULL;
    a->tmp[0] = '\0';
    a->path[0] = '\0';
    a->direct = 0;
    size_t k = strlen(path);
    if (k == 0) return rlhf_fail(err, "atomic write: empty path");
    if (k >= sizeof a->path) return rlhf_fail(err, "%.200s...: path too long", path);
    memcpy(a->path, path, k + 1);
    struct stat st, lst;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return rlhf_fail(err, "%s: %s", path, strerror(EISDIR));
        // a device, pipe or socket, or a file reached through /dev or /proc
        // (/dev/stdout redirected to a file: the shell holds it open, so a
        // rename would send the rest of stdout to a deleted file): written into
        if (!S_ISREG(st.st_mode) || !strncmp(path, "/dev/", 5) || !strncmp(path, "/proc/", 6)) {
            a->f = fopen(path, "wb");
            if (!a->f)
                return rlhf_fail(err, "%s: cannot open for writing: %s", path, strerror(errno));
            a->direct = 1;
            return 0;
        }
        if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) { // the link's target is replaced
            char *real = realpath(path, NULL);
            if (!real) return rlhf_fail(err, "%s: %s", path, strerror(errno));
            k = strlen(real);
            if (k >= sizeof a->path) {
                free(real);
                return rlhf_fail(err, "%.200s...: path too long", path);
            }
            memcpy(a->path, real, k + 1);
            free(real);
            path = a->path;
        }
    }
    int w = snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    if (w < 0 || (size_t)w >= sizeof a->tmp) {
        a->tmp[0] = '\0';
        return rlhf_fail(err, "%.200s...: path too long", path);
    }
    int fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        a->tmp[0] = '\0'; // nothing was created
        return rlhf_fail(err, "%s: cannot create temp file: %s", path, strerror(e));
    }
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        int e = errno;
        close(fd);
        atomic_abort(a);
        return rlhf_fail(err, "%s: %s", path, strerror(e));
    }
    return 0;
}

int atomic_write(atomic_file *a, const void *p, size_t n, rlhf_err *err) {
    if (!a->f) return rlhf_fail(err, "%s: write to a closed atomic file", a->path);
    if (n == 0) return 0;
    errno = 0;
    if (fwrite(p, 1, n, a->f) != n) {
        int e = errno ? errno : EIO;
        return rlhf_fail(err, "%s: write failed: %s", a->path, strerror(e));
    }
    return 0;
}

int atomic_commit(atomic_file *a, rlhf_err *err) {
    if (!a->f) {
        atomic_abort(a);
        return rlhf_fail(err, "%s: commit of a closed atomic file", a->path);
    }
    const char *what = NULL;
    int e = 0;
    if (a->direct) { // no temp file, nothing to rename or sync
        FILE *f = a->f;
        a->f = NULL;
        errno = 0;
        int bad = ferror(f) | fflush(f);
        e = errno;
        if (fclose(f) != 0 && !bad) bad = 1, e = errno;
        if (bad) return rlhf_fail(err, "%s: write failed: %s", a->path, strerror(e ? e : EIO));
        return 0;
    }
    if (fflush(a->f) != 0) {
        what = "write failed";
        e = errno;
    } else if (fsync(fileno(a->f)) != 0) {
        what = "fsync failed";
        e = errno;
    }
    FILE *f = a->f;
    a->f = NULL;
    if (fclose(f) != 0 && !what) {
        what = "close failed";
        e = errno;
    }
    if (!what && rename(a->tmp, a->path) != 0) {
        what = "cannot rename temp file into place";
        e = errno;
    }
    if (what) {
        atomic_abort(a);
        return rlhf_fail(err, "%s: %s: %s", a->path, what, strerror(e ? e : EIO));
    }
    a->tmp[0] = '\0'; // it is the final file now
    fsync_parent_dir(a->path);
    return 0;
}

void atomic_abort(atomic_file *a) {
    if (a->f) {
        fclose(a->f);
        a->f = NULL;
    }
    if (a->tmp[0]) {
        unlink(a->tmp);
        a->tmp[0] = '\0';
    }
}

int atomic_write_file(const char *path, const void *data, size_t n, rlhf_err *err) {
    atomic_file a;
    if (atomic_open(&a, path, err) != 0) return -1;
    if (atomic_write(&a, data, n, err) != 0) {
        atomic_abort(&a);
        return -1;
    }
    return atomic_commit(&a, err);
}

// ------------------------------------------------------------- make_dirs --

static int mkdir_one(const char *dir, const char *full, rlhf_err *err) {
    if (mkdir(dir, 0777) == 0) return 0;
    int e = errno;
    struct stat st;
    if (e == EEXIST) {
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        return rlhf_fail(err, "%s: cannot create directory: %s exists and is not a directory", full,
                         dir);
    }
    // mkdir reports e.g. EACCES even for a directory that exists
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return rlhf_fail(err, "%s: cannot create directory %s: %s", full, dir, strerror(e));
}

int same_file(const char *a, const char *b) {
    if (!a || !b) return 0;
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && !S_ISREG(sa.st_mode) && !S_ISDIR(sa.st_mode)) return 0; // a device, pipe, socket
    if (!strcmp(a, b)) return 1;
    return ea && eb && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

int make_dirs(const char *path, rlhf_err *err) {
    size_t k = strlen(path);
    if (k == 0) return rlhf_fail(err, "make_dirs: empty path");
    char buf[4096];
    if (k >= sizeof buf) return rlhf_fail(err, "%.200s...: path too long", path);
    memcpy(buf, path, k + 1);
    for (size_t i = 1; i < k; i++) {
        if (buf[i] != '/' || buf[i - 1] == '/') continue;
        buf[i] = '\0';
        int rc = mkdir_one(buf, path, err);
        buf[i] = '/';
        if (rc != 0) return -1;
    }
    return mkdir_one(buf, path, err);
}

// ------------------------------------------------------ whole directories --

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    int rc = flag == FTW_DP ? rmdir(p) : unlink(p);
    return rc != 0 && errno != ENOENT ? -1 : 0;
}

int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int atomic_dir_open(const char *path, char *tmp, size_t n, rlhf_err *err) {
    int w = snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    if (w < 0 || (size_t)w >= n) return rlhf_fail(err, "%.200s...: path too long", path);
    if (remove_tree(tmp) != 0)
        return rlhf_fail(err, "%s: cannot remove an old temp folder: %s", tmp, strerror(errno));
    return make_dirs(tmp, err);
}

// fsyncs every file and folder below (and including) dir
static int fsync_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    int fd = open(p, (flag == FTW_DP ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    // some file systems refuse fsync on directories
    return rc != 0 && flag != FTW_DP ? -1 : 0;
}

int atomic_dir_commit(const char *tmp, const char *path, rlhf_err *err) {
    if (nftw(tmp, fsync_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        int e = errno;
        remove_tree(tmp);
        return rlhf_fail(err, "%s: fsync failed: %s", path, strerror(e ? e : EIO));
    }
    char old[4200] = "";
    struct stat st;
    if (lstat(path, &st) == 0) {  // replace: move the old one away first
        int w = snprintf(old, sizeof old, "%s.old.tmp.%ld", path, (long)getpid());
        if (w < 0 || (size_t)w >= sizeof old) {
            remove_tree(tmp);
            return rlhf_fail(err, "%.200s...: path too long", path);
        }
        remove_tree(old);
        if (rename(path, old) != 0) {
            int e = errno;
            remove_tree(tmp);
            return rlhf_fail(err, "%s: cannot move the old folder aside: %s", path, strerror(e));
        }
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        if (old[0]) (void)rename(old, path);  // put the old one back
        remove_tree(tmp);
        return rlhf_fail(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(e));
    }
    fsync_parent_dir(path);
    if (old[0]) {
        remove_tree(old);
        fsync_parent_dir(path);
    }
    return 0;
}

int remove_stale_tmp(const char *dir, int verbose) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".tmp.");
        if (!t) continue;
        char *end;
        long pid = strtol(t + 5, &end, 10);
        if (*end || end == t + 5) continue;  // not one of ours
        if (pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
            continue;  // a live process is writing it
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (remove_tree(p) == 0) {
            count++;
            if (verbose) fprintf(stderr, "removed %s (left behind by an interrupted write)\n", p);
        }
    }
    closedir(d);
    return count;
}
