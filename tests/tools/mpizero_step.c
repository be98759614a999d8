// mpizero_step: AdamW steps on a tiny model with gradients made up per "sample",
// for tests/mpizero_test.py (ZeRO-1 optimizer sharding, docs/mpi_scaling.md).
// Built twice: tests/tools/mpizero_step (one process: the plain AdamW) and,
// with the MPI build, mpizero_step-mpi (dist_mpi.o ahead of the archive) to run
// under mpirun. Every step's global gradient is the sum over K = 4 samples of a
// deterministic pseudo-random vector; rank r adds the samples of its share
// (dist_share), so the ranks' sum is the one-process gradient up to the order of
// the float additions.
//
//   mpizero_step OUT STEPS [RESUME]   steps from a fresh model (or from the
//                                     checkpoint RESUME), then checkpoint OUT
//   mpizero_step collectives MB...   (bench/mpi_bench.py) times the collectives on
//                                     buffers of MB megabytes: "allreduce MB SECONDS",
//                                     "allgather MB SECONDS" and "reducescatter MB
//                                     SECONDS" (best of 3, the slowest rank)
// Prints (rank 0) "norm S X" a step, "spread X" (the largest difference between
// a rank's parameters and rank 0's after the last step), and writes OUT/critic
// (a second optimizer, saved from the checkpoint's extra files), "straddle NAME DECAY"
// for each shard boundary inside a tensor, and (each rank) "moments R BYTES".
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/dist.h"
#include "rlhf.h"

enum { K = 4 };

static rlhf_config tiny(void) {
    rlhf_config c = {.arch = ARCH_GPT2, .n_layer = 1, .n_head = 2, .n_kv_head = 2, .n_embd = 8,
                     .vocab_size = 24, .max_seq_len = 8, .tied = 1};  // 24: the 2- and 4-way
                     // shard boundaries cut a decay and a no-decay tensor
    config_fill_defaults(&c);
    return c;
}

// a uniform number in [-1, 1) from (step, sample, index)
static float noise(int s, int k, size_t i) {
    uint64_t x = (uint64_t)s * 0x9E3779B97F4A7C15ull ^ (uint64_t)k * 0xBF58476D1CE4E5B9ull ^
                 (uint64_t)i * 0x94D049BB133111EBull;
    x ^= x >> 31;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 29;
    return (float)((double)(x >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

// rank 0: each boundary of the 2- and 4-way shards that falls inside a tensor
static void print_straddles(const rlhf_model *m) {
    size_t n = model_n_trainable(m);
    for (int size = 2; size <= 4; size += 2)
        for (int r = 1; r < size; r++) {
            long b, e;
            dist_share((long)n, r, size, &b, &e);
            for (int i = 0; i < m->n_tensors; i++) {
                const rlhf_tensor *t = &m->tensors[i];
                size_t off = t->offset - m->n_frozen;
                if ((size_t)b > off && (size_t)b < off + t->numel)
                    printf("straddle %d %s %d\n", size, t->name, t->decay);
            }
        }
}

static double spread(const rlhf_model *m) {
    size_t n = m->n_params;
    float *p0 = malloc(n * sizeof(float));
    memcpy(p0, m->params, n * sizeof(float));
    dist_bcast(p0, n * sizeof(float), 0);
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)p0[i] - m->params[i]));
    free(p0);
    dist_allreduce_max_f64(&d, 1);
    return d;
}

// a second optimizer saved inside the checkpoint's extra files (rank 0 alone),
// as the online trainer saves a PPO critic: its moments are set from the element
// index, m[i] = i / 1024, v[i] = i / 512 over the whole vector
static int save_second(const char *tmp, void *ctx, rlhf_err *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/critic", tmp);
    const rlhf_optim *o2 = ctx;
    rlhf_model *m = NULL;
    rlhf_config c = tiny();
    if (model_create(&m, &c, 2, err)) return -1;
    int rc = checkpoint_save(p, m, o2, NULL, err);
    model_free(m);
    return rc;
}

static rlhf_optim *second_optim(size_t n) {
    rlhf_optim_config oc;
    optim_default_config(&oc);
    rlhf_optim *o2 = optim_create(&oc, n);
    long b, e;
    dist_share((long)n, dist_rank(), dist_size(), &b, &e);
    for (long i = b; i < e; i++) o2->m[i - b] = (float)i / 1024, o2->v[i - b] = (float)i / 512;
    return o2;
}

static int fail(rlhf_err *err) {
    fprintf(stderr, "mpizero_step: %s\n", err->msg);
    dist_abort(1, "mpizero_step failed");
}

// the best of 3 times of an all-reduce (sum, float) and of an all-gather
// (ZeRO-1's: each rank's 1/N share to all) of mb megabytes
static void time_collectives(double mb) {
    long n = (long)(mb * 1e6 / 4), *counts = calloc((size_t)dist_size(), sizeof(long));
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = (float)(i % 7), y[i] = 0;
    long b, e;
    for (int r = 0; r < dist_size(); r++) dist_share(n, r, dist_size(), &b, &e), counts[r] = e - b;
    dist_share(n, dist_rank(), dist_size(), &b, &e);
    double best[3] = {1e30, 1e30, 1e30};
    for (int rep = 0; rep < 3; rep++) {
        dist_barrier();
        double t0 = time_now();
        dist_allreduce_sum_f32(x, n);
        double t1 = time_now();
        dist_barrier();
        double t2 = time_now();
        dist_allgatherv_f32(x + b, e - b, y, counts);
        double t3 = time_now();
        dist_barrier();
        double t4 = time_now();
        dist_reduce_scatterv_sum_f32(x, counts);
        double t5 = time_now();
        best[0] = fmin(best[0], t1 - t0);
        best[1] = fmin(best[1], t3 - t2);
        best[2] = fmin(best[2], t5 - t4);
    }
    dist_allreduce_max_f64(best, 3);  // the slowest rank's time
    if (dist_rank() == 0)
        printf("allreduce %g %.6f\nallgather %g %.6f\nreducescatter %g %.6f\n", mb, best[0], mb,
               best[1], mb, best[2]);
    fflush(stdout);
    free(x);
    free(y);
    free(counts);
}

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv)) return 1;
    if (argc >= 2 && strcmp(argv[1], "collectives") == 0) {
        for (int i = 2; i < argc; i++) time_collectives(atof(argv[i]));
        dist_finalize();
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: mpizero_step OUT STEPS [RESUME]\n");
        return 2;
    }
    int steps = atoi(argv[2]);
    rlhf_err err;
    rlhf_model *m;
    rlhf_config c = tiny();
    if (argc > 3 ? checkpoint_load(argv[3], &m, &err) : model_create(&m, &c, 1, &err))
        return fail(&err);
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.lr = 1e-2f;
    oc.weight_decay = 0.1f;
    oc.max_grad_norm = 1.0f;
    oc.warmup_steps = 1;
    oc.schedule = LR_COSINE;
    oc.total_steps = 8;
    rlhf_optim *o = optim_create(&oc, model_n_trainable(m));
    rlhf_rng rng;
    rng_seed(&rng, 5);
    if (argc > 3 && checkpoint_load_optim(argv[3], o, &rng, &err)) return fail(&err);
    model_alloc_grads(m);
    size_t n = model_n_trainable(m);
    long kb, ke;
    dist_share(K, dist_rank(), dist_size(), &kb, &ke);
    for (int s = o->step, end = o->step + steps; s < end; s++) {
        model_zero_grad(m);
        float scale = s % 2 ? 1e-3f : 0.5f;  // even steps clip (norm ~ 20), odd ones do not
        for (long k = kb; k < ke; k++)
            for (size_t i = 0; i < n; i++) m->grads[i] += scale * noise(s, (int)k, i);
        float norm = optim_step(o, m);
        if (dist_rank() == 0) printf("norm %d %.9g\n", s, norm);
    }
    double sp = spread(m);
    if (dist_rank() == 0) {
        printf("spread %.9g\n", sp);
        print_straddles(m);
    }
    printf("moments %d %zu\n", dist_rank(), malloc_usable_size(o->m));
    fflush(stdout);
    rlhf_optim *o2 = second_optim(n);
    if (checkpoint_save_with(argv[1], m, o, &rng, save_second, o2, &err)) return fail(&err);
    optim_free(o2);
    optim_free(o);
    model_free(m);
    dist_finalize();
    return 0;
}
