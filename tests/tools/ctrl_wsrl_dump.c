// ctrl_wsrl_dump OUTDIR [UPDATES [LN]]: for tests/ctrl_wsrl_test.py — creates a
// small WSRL agent (seed 13; obs 3, act 2 with uneven bounds, hidden 16, 2
// layers, 4 critics, policy_freq 2, B 8: two critic minibatches of 4; lr 1e-2),
// draws one batch and writes raw float32 files into OUTDIR:
//   meta.json              sizes, bounds, hyper-parameters, tensor names
//   init.<tensor>.f32      every span of `tensors` before the first update
//   batch.<field>.f32      obs act rew next_obs done
//   noise.<k>.f32          the draws of update k (ctrl_wsrl_draw_noise on a copy of the rng)
//   after.<k>.<tensor>.f32 every span after update k (k = 1 .. UPDATES, default 3)
//   metrics.<k>.json       the metrics update k reported
// LN: 1 the critics with layer norm (critic_layer_norm; meta.json's "layer_norm"),
// 2 the policy (actor_layer_norm; "actor_layer_norm"), 3 both.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/algo_wsrl.h"
#include "ctrl_dump_common.h"

static const char *dir;

static void write_f32(const char *name, const float *x, long n) {
    dump_write_f32("ctrl_wsrl_dump", dir, name, x, n);
}

int main(int argc, char **argv) {
    const ctrl_algo *algo = ctrl_algo_find("wsrl");
    if (argc < 2 || !algo) {
        fprintf(stderr, "usage: ctrl_wsrl_dump OUTDIR [UPDATES [LN]]\n");
        return 2;
    }
    dir = argv[1];
    int updates = argc > 2 ? atoi(argv[2]) : 3;
    const int O = 3, A = 2, B = 8;
    const float low[2] = {-1.0f, -2.0f}, high[2] = {1.0f, 0.5f};
    ctrl_algo_config c;
    algo->defaults(&c);
    c.hidden = 16;
    c.layers = 2;
    c.n_critics = 4;
    c.policy_freq = 2;
    c.tau = 0.1f;
    c.actor_lr = c.critic_lr = c.alpha_lr = 1e-2f;
    int ln = argc > 3 ? atoi(argv[3]) : 0;
    c.critic_layer_norm = ln & 1;
    c.actor_layer_norm = (ln >> 1) & 1;
    rlhf_rng rng;
    rng_seed(&rng, 13);
    rlhf_err err;
    void *agent;
    if (algo->create(&c, O, A, low, high, &rng, &agent, &err)) {
        fprintf(stderr, "ctrl_wsrl_dump: %s\n", err.msg);
        return 2;
    }
    float obs[B * O], act[B * A], rew[B], next_obs[B * O], done[B];
    for (int i = 0; i < B * O; i++)
        obs[i] = 2 * rng_uniform(&rng) - 1, next_obs[i] = 2 * rng_uniform(&rng) - 1;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < A; i++)
            act[b * A + i] = low[i] + (high[i] - low[i]) * rng_uniform(&rng);
        rew[b] = 2 * rng_uniform(&rng) - 1;
        done[b] = b == 2 || b == 5 ? 1.0f : 0.0f;
    }
    ctrl_batch batch = {.B = B,
                        .obs_dim = O,
                        .act_dim = A,
                        .obs = obs,
                        .act = act,
                        .rew = rew,
                        .next_obs = next_obs,
                        .done = done};
    write_f32("batch.obs", obs, B * O);
    write_f32("batch.act", act, B * A);
    write_f32("batch.rew", rew, B);
    write_f32("batch.next_obs", next_obs, B * O);
    write_f32("batch.done", done, B);
    dump_write_tensors("ctrl_wsrl_dump", dir, agent, algo, "init.");

    char path[1024];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 2;
    ctrl_tensor t[32];
    int nt = algo->tensors(agent, t, 32);
    fprintf(f,
            "{\"obs\": %d, \"act\": %d, \"B\": %d, \"hidden\": %d, \"layers\": %d, \"E\": %d, "
            "\"U\": %d, \"K\": %d, \"updates\": %d, \"layer_norm\": %d, "
            "\"actor_layer_norm\": %d,\n",
            O, A, B, c.hidden, c.layers, c.n_critics, c.policy_freq, CTRL_WSRL_SUBSAMPLE, updates,
            c.critic_layer_norm, c.actor_layer_norm);
    fprintf(f, " \"low\": [%.9g, %.9g], \"high\": [%.9g, %.9g],\n", low[0], low[1], high[0],
            high[1]);
    fprintf(f,
            " \"gamma\": %.9g, \"tau\": %.9g, \"actor_lr\": %.9g, \"critic_lr\": %.9g, "
            "\"alpha_lr\": %.9g, \"target_entropy\": %.9g, \"log_std_min\": %.9g, "
            "\"log_std_max\": %.9g,\n",
            c.gamma, c.tau, c.actor_lr, c.critic_lr, c.alpha_lr,
            isnan(c.target_entropy) ? -(double)A : c.target_entropy, c.log_std_min, c.log_std_max);
    fprintf(f, " \"tensors\": [");
    for (int i = 0; i < nt; i++) fprintf(f, "%s\"%s\"", i ? ", " : "", t[i].name);
    fprintf(f, "]}\n");
    fclose(f);

    long nz = ctrl_wsrl_noise_size(B, A, c.policy_freq);
    float *noise = xmalloc(sizeof(float) * nz);
    for (int k = 1; k <= updates; k++) {
        rlhf_rng copy = rng;
        ctrl_wsrl_draw_noise(&copy, B, A, c.policy_freq, c.n_critics, noise);
        char name[64];
        snprintf(name, sizeof name, "noise.%d", k);
        write_f32(name, noise, nz);
        ctrl_metrics m = {0};
        if (algo->update(agent, &batch, &rng, &m, &err)) {
            fprintf(stderr, "ctrl_wsrl_dump: %s\n", err.msg);
            return 2;
        }
        snprintf(name, sizeof name, "after.%d.", k);
        dump_write_tensors("ctrl_wsrl_dump", dir, agent, algo, name);
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
