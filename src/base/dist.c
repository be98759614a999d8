// base/dist: one process, or MPI (RLHF_HAVE_MPI). See dist.h.
#include "base/dist.h"

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
    return 0;
}
void dist_finalize(void) {
    if (g_init) MPI_Finalize();
    g_init = 0;
}
int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_is_mpi(void) { return 1; }

// MPI counts are int: large buffers go in chunks
#define DIST_CHUNK (1L << 28)
void dist_allreduce_sum_f32(float *x, long n) {
    if (g_size == 1) return;
    for (long i = 0; i < n; i += DIST_CHUNK) {
        long k = n - i < DIST_CHUNK ? n - i : DIST_CHUNK;
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
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}
void dist_bcast(void *buf, size_t bytes, int root) {
    if (g_size == 1) return;
    for (size_t i = 0; i < bytes; i += DIST_CHUNK) {
        size_t k = bytes - i < DIST_CHUNK ? bytes - i : DIST_CHUNK;
        MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}
void dist_allgatherv_f32(const float *mine, long count, float *all, const long *counts) {
    if (g_size == 1) {
        if (all != mine) memmove(all, mine, (size_t)count * sizeof(float));
        return;
    }
    long total = 0, at = 0;
    for (int r = 0; r < g_size; r++) at += r < g_rank ? counts[r] : 0, total += counts[r];
    if (total > INT_MAX) {  // MPI counts and offsets are int: each rank's part in turn
        if (all + at != mine) memmove(all + at, mine, (size_t)count * sizeof(float));
        long off = 0;
        for (int r = 0; r < g_size; off += counts[r], r++)
            dist_bcast(all + off, (size_t)counts[r] * sizeof(float), r);
        return;
    }
    int *c = malloc(sizeof(int) * (size_t)g_size), *d = malloc(sizeof(int) * (size_t)g_size);
    long off = 0;
    for (int r = 0; r < g_size; r++) c[r] = (int)counts[r], d[r] = (int)off, off += counts[r];
    const void *send = mine == all + at ? MPI_IN_PLACE : (const void *)mine;
    MPI_Allgatherv(send, (int)count, MPI_FLOAT, all, c, d, MPI_FLOAT, MPI_COMM_WORLD);
    free(c);
    free(d);
}
void dist_reduce_scatterv_sum_f32(float *x, const long *counts) {
    if (g_size == 1) return;
    long total = 0, at = 0;
    for (int r = 0; r < g_size; r++) at += r < g_rank ? counts[r] : 0, total += counts[r];
    if (total > INT_MAX) {  // int counts: the whole sum (more traffic, same result)
        dist_allreduce_sum_f32(x, total);
        return;
    }
    int *c = malloc(sizeof(int) * (size_t)g_size);
    for (int r = 0; r < g_size; r++) c[r] = (int)counts[r];
    float *mine = malloc(sizeof(float) * (size_t)(counts[g_rank] > 0 ? counts[g_rank] : 1));
    MPI_Reduce_scatter(x, mine, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    memcpy(x + at, mine, sizeof(float) * (size_t)counts[g_rank]);
    free(mine);
    free(c);
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
