// io/file: whole-file reads and atomic writes. A result file (checkpoint,
// config, summary) is written to a temp file in the same directory, flushed to
// disk, and renamed over the final path, so a crash or a failed write leaves
// either the old file or the new one, never a torn mix.
#ifndef RLHF_IO_FILE_H
#define RLHF_IO_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "base/base.h"

// The whole file, malloc'd, with a NUL appended (not counted in *len; len may be
// NULL). NULL on failure, with "path: reason" in err.
char *read_file(const char *path, size_t *len, rlhf_err *err);

// Writes n bytes to path atomically (temp file, fsync, rename, fsync of the
// directory). On failure the old file at path, if any, is untouched and no temp
// file is left behind.
int atomic_write_file(const char *path, const void *data, size_t n, rlhf_err *err);

// The streaming form: atomic_open, any number of atomic_write, then either
// atomic_commit (publishes the file) or atomic_abort (throws it away). After a
// failed atomic_write call atomic_abort; a failed atomic_commit has cleaned up.
// The temp file is path + ".tmp.<pid>". A path that names a link to a regular
// file is written at the link's target (the link stays). A path that names no
// regular file but a device, pipe or socket (/dev/null, a FIFO), or any path
// under /dev/ or /proc/ (/dev/stdout, even when the shell sent it to a file), is
// written straight into, as fopen would: nothing can be swapped in there, and
// renaming a file over it would replace /dev/null itself.
typedef struct {
    FILE *f;
    char tmp[4096];
    char path[4096];
    int direct; // writing into a device, pipe or socket: no temp file
} atomic_file;

int atomic_open(atomic_file *a, const char *path, rlhf_err *err);
int atomic_write(atomic_file *a, const void *p, size_t n, rlhf_err *err);
int atomic_commit(atomic_file *a, rlhf_err *err);
void atomic_abort(atomic_file *a); // safe to call more than once, or after a commit

// Whether a and b name one file: the same path, or the same device and inode
// when both exist. NULL names nothing. A device, pipe or socket (/dev/null) is
// nobody's file: writing into it replaces nothing, so it is never the same.
int same_file(const char *a, const char *b);
// Whether path names anything (lstat: a dangling link counts).
int path_exists(const char *path);

// mkdir -p: creates path and its missing parents (mode 0777 & ~umask).
int make_dirs(const char *path, rlhf_err *err);

// ------------------------------------------------------ whole directories --
// A folder written as one unit (a checkpoint): fill `tmp` (a sibling of path
// named path + ".tmp.<pid>", made by atomic_dir_open), then atomic_dir_commit
// fsyncs it and renames it over path in one step. An existing path is replaced
// safely: it is renamed away (path + ".old.tmp.<pid>"), the new folder renamed
// in, then the old one deleted. A crash leaves the old folder or the new one
// under path (or, between the two renames, none: only *.tmp.* folders, which
// remove_stale_tmp deletes).
int atomic_dir_open(const char *path, char *tmp, size_t n, rlhf_err *err);
int atomic_dir_commit(const char *tmp, const char *path, rlhf_err *err);
// rm -rf path; 0 when it is gone (or was never there).
int remove_tree(const char *path);
// Deletes the entries of dir whose names hold ".tmp." (temp files and folders of
// atomic writes a crash left behind), except those of a process still alive.
// Returns how many it deleted; names them on stderr when verbose.
int remove_stale_tmp(const char *dir, int verbose);
// fsync of a directory (best effort).
void fsync_dir(const char *dir);

#endif
