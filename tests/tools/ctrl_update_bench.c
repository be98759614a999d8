// ctrl_update_bench ALGO LAYERS [UPDATES] [HIDDEN] [BATCH]: gradient updates per
// second of one control algorithm (issue 14's benchmark; bench/ctrl_bench.py
// runs it beside the same update in PyTorch). HalfCheetah's sizes (obs 17,
// act 6, bounds [-1, 1]), 2 critics, the algorithm's other defaults, one random
// batch (with Monte-Carlo returns) reused every update. After 5 warm-up updates
// it times UPDATES (default 200) and prints one JSON line:
//   {"algo": ..., "layers": ..., "hidden": ..., "batch": ..., "threads": ..., "updates_per_s": ...}
// The tables are referenced directly (agent.c's registry holds them weakly).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctrl/agent.h"

extern const ctrl_algo ctrl_algo_sac, ctrl_algo_cql, ctrl_algo_calql, ctrl_algo_iql;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr,
                "usage: ctrl_update_bench sac|cql|calql|iql LAYERS [UPDATES] [HIDDEN] [BATCH]\n");
        return 2;
    }
    const ctrl_algo *algo = !strcmp(argv[1], "sac")     ? &ctrl_algo_sac
                            : !strcmp(argv[1], "cql")   ? &ctrl_algo_cql
                            : !strcmp(argv[1], "calql") ? &ctrl_algo_calql
                            : !strcmp(argv[1], "iql")   ? &ctrl_algo_iql
                                                        : NULL;
    if (!algo) {
        fprintf(stderr, "ctrl_update_bench: unknown algorithm %s\n", argv[1]);
        return 3;
    }
    int layers = atoi(argv[2]);
    int updates = argc > 3 ? atoi(argv[3]) : 200;
    int hidden = argc > 4 ? atoi(argv[4]) : 256;
    int B = argc > 5 ? atoi(argv[5]) : 256;
    if (layers < 1 || updates < 1 || hidden < 1 || B < 1) {
        fprintf(stderr, "ctrl_update_bench: LAYERS, UPDATES, HIDDEN, BATCH must be >= 1\n");
        return 2;
    }
    const int O = 17, A = 6;
    float low[6], high[6];
    for (int i = 0; i < A; i++) low[i] = -1, high[i] = 1;
    ctrl_algo_config c;
    algo->defaults(&c);
    c.hidden = hidden;
    c.layers = layers;
    c.n_critics = 2;
    rlhf_rng rng;
    rng_seed(&rng, 1);
    rlhf_err err;
    void *agent;
    if (algo->create(&c, O, A, low, high, &rng, &agent, &err)) {
        fprintf(stderr, "ctrl_update_bench: %s\n", err.msg);
        return 2;
    }
    ctrl_batch b = {.B = B, .obs_dim = O, .act_dim = A};
    b.obs = xmalloc(sizeof(float) * B * O);
    b.next_obs = xmalloc(sizeof(float) * B * O);
    b.act = xmalloc(sizeof(float) * B * A);
    b.rew = xmalloc(sizeof(float) * B);
    b.done = xmalloc(sizeof(float) * B);
    b.mc_return = xmalloc(sizeof(float) * B);
    for (long i = 0; i < (long)B * O; i++)
        b.obs[i] = rng_normal(&rng), b.next_obs[i] = rng_normal(&rng);
    for (long i = 0; i < (long)B * A; i++) b.act[i] = 2 * rng_uniform(&rng) - 1;
    for (int i = 0; i < B; i++) {
        b.rew[i] = rng_normal(&rng);
        b.done[i] = rng_uniform(&rng) < 0.01f;
        b.mc_return[i] = 10 * rng_normal(&rng);
    }
    ctrl_metrics m;
    for (int k = 0; k < 5 + updates; k++) {
        static double t0;
        if (k == 5) t0 = now();
        m.n = 0;
        if (algo->update(agent, &b, &rng, &m, &err)) {
            fprintf(stderr, "ctrl_update_bench: %s\n", err.msg);
            return 2;
        }
        if (k == 5 + updates - 1) {
            double dt = now() - t0;
            printf("{\"impl\": \"rlhf.c\", \"algo\": \"%s\", \"layers\": %d, \"hidden\": %d, "
                   "\"batch\": %d, \"threads\": %d, \"updates_per_s\": %.2f}\n",
                   algo->name, layers, hidden, B, omp_get_max_threads(), updates / dt);
        }
    }
    algo->free(agent);
    free(b.obs), free(b.next_obs), free(b.act), free(b.rew), free(b.done), free(b.mc_return);
    return 0;
}
