// base/dist: one process, or MPI (RLHF_HAVE_MPI). See dist.h.
#include "base/dist.h"

#include "base/base.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dist_share(long n, int rank, int size, long *begin, long *end) {
    long q = n / size, r = n % size;
    *begin = rank * q + (rank < r ? rank : r);
    *end = *begin + q + (rank < r ? 1 : 0);
}

#ifdef RLHF_HAVE_MPI
#include <malloc.h>
#include <mpi.h>

static int g_rank = 0, g_size = 1, g_init = 0;

int dist_init(int *argc, char ***argv) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "rlhf: MPI_Init failed\n");
        return -1;
    }
    g_init = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_size > 1) {
        // Open MPI's collectives allocate a temporary of the bucket's size per
        // call. With glibc's defaults that was a fresh mmap (or heap trimmed back
        // to the system) each time, and faulting its pages in made a 500 MB
        // reduce-scatter between 2 ranks take 4 s instead of 0.12 s
        // (docs/mpi_scaling.md). Buffers up to 32 MB come from the heap and stay.
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
    return 0;
}
void dist_finalize(void) {
    if (g_init) MPI_Finalize();
    g_init = 0;
}
int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_is_mpi(void) { return 1; }

// Collectives on large buffers go in buckets of RLHF_DIST_BUCKET_MB MiB (default
// 8; 0: one call per buffer, up to MPI's int counts). Measured with `mpizero_step
// collectives` (docs/mpi_scaling.md): between 2 ranks on this machine a 500 MB
// all-reduce took 1.1 s in one call and 0.08 s in 8 MiB buckets. Buckets change
// no result: each element is summed over the
// same ranks (for 2 ranks a + b either way; for more, the collective's
// algorithm may add in another order, within float rounding as before).
#define DIST_INT_MAX_CHUNK (1L << 28)
static long bucket_floats(void) {
    static long floats = -1;
    if (floats < 0) {
        const char *e = getenv("RLHF_DIST_BUCKET_MB");
        double mb = e && *e ? atof(e) : 8.0;
        floats = mb > 0 ? (long)(mb * (1 << 20) / 4) : DIST_INT_MAX_CHUNK;
        if (floats < 256) floats = 256;
        if (floats > DIST_INT_MAX_CHUNK) floats = DIST_INT_MAX_CHUNK;
    }
    return floats;
}
#define DIST_CHUNK DIST_INT_MAX_CHUNK

void dist_allreduce_sum_f32(float *x, long n) {
    if (g_size == 1) return;
    long chunk = bucket_floats();
    for (long i = 0; i < n; i += chunk) {
        long k = n - i < chunk ? n - i : chunk;
        MPI_Allreduce(MPI_IN_PLACE, x + i, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}
void dist_allreduce_sum_f64(double *x, long n) {
    if (g_size == 1) return;
    for (long i = 0; i < n; i += DIST_CHUNK) {
        long k = n - i < DIST_CHUNK ? n - i : DIST_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, x + i, (int)k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
}
void dist_allreduce_max_f64(double *x, long n) {
    if (g_size == 1) return;
    for (long i = 0; i < n; i += DIST_CHUNK) {
        long k = n - i < DIST_CHUNK ? n - i : DIST_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, x + i, (int)k, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    }
}
void dist_bcast(void *buf, size_t bytes, int root) {
    if (g_size == 1) return;
    for (size_t i = 0; i < bytes; i += DIST_CHUNK) {
        size_t k = bytes - i < DIST_CHUNK ? bytes - i : DIST_CHUNK;
        MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

// rank r's part [off[r], off[r] + counts[r]) of the whole vector, cut to the
// bucket [b0, b1): its count c[r] and its offset d[r] from b0
static void bucket_parts(const long *counts, long b0, long b1, int *c, int *d) {
    long off = 0;
    for (int r = 0; r < g_size; off += counts[r], r++) {
        long lo = off > b0 ? off : b0, hi = off + counts[r] < b1 ? off + counts[r] : b1;
        c[r] = hi > lo ? (int)(hi - lo) : 0;
        d[r] = hi > lo ? (int)(lo - b0) : 0;
    }
}

void dist_allgatherv_f32(const float *mine, long count, float *all, const long *counts) {
    if (g_size == 1) {
        if (all != mine) memmove(all, mine, (size_t)count * sizeof(float));
        return;
    }
    long total = 0, at = 0;
    for (int r = 0; r < g_size; r++) at += r < g_rank ? counts[r] : 0, total += counts[r];
    if (all + at != mine) memmove(all + at, mine, (size_t)count * sizeof(float));
    int *c = malloc(sizeof(int) * (size_t)g_size), *d = malloc(sizeof(int) * (size_t)g_size);
    long chunk = bucket_floats();
    for (long b0 = 0; b0 < total; b0 += chunk) {  // in place, one bucket at a time
        long b1 = total - b0 < chunk ? total : b0 + chunk;
        bucket_parts(counts, b0, b1, c, d);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, all + b0, c, d, MPI_FLOAT, MPI_COMM_WORLD);
    }
    free(c);
    free(d);
}
void dist_reduce_scatterv_sum_f32(float *x, const long *counts) {
    if (g_size == 1) return;
    long total = 0;
    for (int r = 0; r < g_size; r++) total += counts[r];
    long chunk = bucket_floats();
    int *c = malloc(sizeof(int) * (size_t)g_size), *d = malloc(sizeof(int) * (size_t)g_size);
    // one receive buffer for the job, reused: a fresh mmap'd buffer per call made
    // every bucket's copy fault its pages in (500 MB: 4 s instead of 0.13 s here)
    static float *mine = NULL;
    static long mine_cap = 0;
    long need = total < chunk ? total : chunk;
    if (need > mine_cap) {
        free(mine);
        mine = xmalloc(sizeof(float) * (size_t)need);
        mine_cap = need;
    }
    for (long b0 = 0; b0 < total; b0 += chunk) {
        long b1 = total - b0 < chunk ? total : b0 + chunk;
        bucket_parts(counts, b0, b1, c, d);
        // the bucket's parts lie in rank order, so MPI_Reduce_scatter's layout holds
        MPI_Reduce_scatter(x + b0, mine, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (c[g_rank] > 0) memcpy(x + b0 + d[g_rank], mine, sizeof(float) * (size_t)c[g_rank]);
    }
    free(c);
    free(d);
}
void dist_barrier(void) {
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}
void dist_abort(int code, const char *msg) {
    fprintf(stderr, "rank %d: %s\n", g_rank, msg);
    fflush(stderr);
    if (g_init && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code);
}

#else  // one process

int dist_init(int *argc, char ***argv) { return 0; }
void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_is_mpi(void) { return 0; }
void dist_allreduce_sum_f32(float *x, long n) {}
void dist_allreduce_sum_f64(double *x, long n) {}
void dist_allreduce_max_f64(double *x, long n) {}
void dist_bcast(void *buf, size_t bytes, int root) {}
void dist_allgatherv_f32(const float *mine, long count, float *all, const long *counts) {
    if (all != mine) memmove(all, mine, (size_t)count * sizeof(float));
}
void dist_reduce_scatterv_sum_f32(float *x, const long *counts) {}
void dist_barrier(void) {}
void dist_abort(int code, const char *msg) {
    fprintf(stderr, "%s\n", msg);
    exit(code);
}
#endif
