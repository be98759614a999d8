// ctrl_sac_dump ALGO OUTDIR [UPDATES]: for tests/ctrl_sac_test.py — creates a
// small SAC / CQL / Cal-QL agent (seed 5; obs 3, act 2 with uneven bounds,
// hidden 16, 2 layers, 2 critics, B 8, 3 CQL actions, lr 1e-2 so a step is
// visible), draws one batch, and writes raw float32 files into OUTDIR:
//   meta.json                  sizes, bounds, hyper-parameters, tensor names
//   init.<tensor>.f32          every span of `tensors` before the first update
//   batch.<field>.f32          obs act rew next_obs done mc_return
//   noise.<k>.f32              the draws of update k (ctrl_sac_draw_noise on a copy of the rng)
//   after.<k>.<tensor>.f32     every span after update k (k = 1 .. UPDATES, default 2)
//   metrics.<k>.json           the metrics update k reported
// The tables are referenced directly (agent.c's registry holds them weakly).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl_dump_common.h"
#include "ctrl/cql_loss.h"

extern const ctrl_algo ctrl_algo_sac, ctrl_algo_cql, ctrl_algo_calql;

static const char *dir;

static void write_f32(const char *name, const float *x, long n) {
    dump_write_f32("ctrl_sac_dump", dir, name, x, n);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ctrl_sac_dump sac|cql|calql OUTDIR [UPDATES]\n");
        return 2;
    }
    const ctrl_algo *algo = !strcmp(argv[1], "sac")     ? &ctrl_algo_sac
                            : !strcmp(argv[1], "cql")   ? &ctrl_algo_cql
                            : !strcmp(argv[1], "calql") ? &ctrl_algo_calql
                                                        : NULL;
    if (!algo) {
        fprintf(stderr, "ctrl_sac_dump: unknown algorithm %s\n", argv[1]);
        return 2;
    }
    dir = argv[2];
    int updates = argc > 3 ? atoi(argv[3]) : 2;
    const int O = 3, A = 2, B = 8;
    const float low[2] = {-1.0f, -2.0f}, high[2] = {1.0f, 0.5f};
    ctrl_algo_config c;
    algo->defaults(&c);
    c.hidden = 16;
    c.layers = 2;
    c.n_critics = 2;
    c.cql_n_actions = 3;
    c.actor_lr = c.critic_lr = c.alpha_lr = 1e-2f;
    rlhf_rng rng;
    rng_seed(&rng, 5);
    rlhf_err err;
    void *agent;
    if (algo->create(&c, O, A, low, high, &rng, &agent, &err)) {
        fprintf(stderr, "ctrl_sac_dump: %s\n", err.msg);
        return 2;
    }
    // the batch: actions inside the box, one terminal, Monte-Carlo returns near Q's scale
    float obs[B * O], act[B * A], rew[B], next_obs[B * O], done[B], mc[B];
    for (int i = 0; i < B * O; i++)
        obs[i] = 2 * rng_uniform(&rng) - 1, next_obs[i] = 2 * rng_uniform(&rng) - 1;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < A; i++)
            act[b * A + i] = low[i] + (high[i] - low[i]) * rng_uniform(&rng);
        rew[b] = 2 * rng_uniform(&rng) - 1;
        done[b] = b == 3 ? 1.0f : 0.0f;
        mc[b] = 0.6f * rng_normal(&rng);
    }
    ctrl_batch batch = {.B = B,
                        .obs_dim = O,
                        .act_dim = A,
                        .obs = obs,
                        .act = act,
                        .rew = rew,
                        .next_obs = next_obs,
                        .done = done,
                        .mc_return = mc};
    write_f32("batch.obs", obs, B * O);
    write_f32("batch.act", act, B * A);
    write_f32("batch.rew", rew, B);
    write_f32("batch.next_obs", next_obs, B * O);
    write_f32("batch.done", done, B);
    write_f32("batch.mc_return", mc, B);
    dump_write_tensors("ctrl_sac_dump", dir, agent, algo, "init.");

    char path[1024];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 2;
    ctrl_tensor t[32];
    int nt = algo->tensors(agent, t, 32);
    int N = !strcmp(algo->name, "sac") ? 0 : c.cql_n_actions;
    fprintf(f,
            "{\"algo\": \"%s\", \"obs\": %d, \"act\": %d, \"B\": %d, \"N\": %d, \"hidden\": %d, "
            "\"layers\": %d, \"E\": %d, \"updates\": %d,\n",
            algo->name, O, A, B, N, c.hidden, c.layers, c.n_critics, updates);
    fprintf(f, " \"low\": [%.9g, %.9g], \"high\": [%.9g, %.9g],\n", low[0], low[1], high[0],
            high[1]);
    fprintf(
        f,
        " \"gamma\": %.9g, \"tau\": %.9g, \"actor_lr\": %.9g, \"critic_lr\": %.9g, "
        "\"alpha_lr\": %.9g, \"sac_alpha\": %.9g, \"autotune\": %d, \"target_entropy\": %.9g, "
        "\"cql_alpha\": %.9g, \"cql_temp\": %.9g, \"log_std_min\": %.9g, \"log_std_max\": %.9g,\n",
        c.gamma, c.tau, c.actor_lr, c.critic_lr, c.alpha_lr, c.sac_alpha, c.autotune_alpha,
        isnan(c.target_entropy) ? -(double)A : c.target_entropy, c.cql_alpha, c.cql_temp,
        c.log_std_min, c.log_std_max);
    fprintf(f, " \"tensors\": [");
    for (int i = 0; i < nt; i++) fprintf(f, "%s\"%s\"", i ? ", " : "", t[i].name);
    fprintf(f, "]}\n");
    fclose(f);

    float *noise = xmalloc(sizeof(float) * ctrl_sac_noise_size(B, A, N));
    for (int k = 1; k <= updates; k++) {
        rlhf_rng copy = rng;
        ctrl_sac_draw_noise(&copy, B, A, N, noise);
        char name[64];
        snprintf(name, sizeof name, "noise.%d", k);
        write_f32(name, noise, ctrl_sac_noise_size(B, A, N));
        ctrl_metrics m = {0};
        if (algo->update(agent, &batch, &rng, &m, &err)) {
            fprintf(stderr, "ctrl_sac_dump: %s\n", err.msg);
            return 2;
        }
        snprintf(name, sizeof name, "after.%d.", k);
        dump_write_tensors("ctrl_sac_dump", dir, agent, algo, name);
        snprintf(path, sizeof path, "%s/metrics.%d.json", dir, k);
        f = fopen(path, "w");
        if (!f) return 2;
        fprintf(f, "{");
        for (int i = 0; i < m.n; i++)
            fprintf(f, "%s\"%s\": %.12g", i ? ", " : "", m.name[i], m.value[i]);
        fprintf(f, "}\n");
        fclose(f);
    }
    free(noise);
    algo->free(agent);
    return 0;
}
