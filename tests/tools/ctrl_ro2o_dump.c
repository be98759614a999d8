// ctrl_ro2o_dump ro2o|sacn OUTDIR [UPDATES]: for tests/ctrl_ro2o_test.py —
// creates a small RO2O / SAC-N agent (seed 11; obs 3, act 2 with uneven
// bounds, hidden 16, 2 layers, 3 critics, B 6, 3 perturbations of radius 0.3,
// weights large enough to show: value smoothing 0.5, policy smoothing 1, OOD
// 0.5, beta 1.0 decaying by 0.3 to 0.5; lr 1e-2), draws one batch and writes
// raw float32 files into OUTDIR:
//   meta.json                  sizes, bounds, hyper-parameters, tensor names
//   init.<tensor>.f32          every span of `tensors` before the first update
//   batch.<field>.f32          obs act rew next_obs done
//   noise.<k>.f32              the draws of update k (ro2o_draw_noise on a copy of the rng)
//   after.<k>.<tensor>.f32     every span after update k (k = 1 .. UPDATES, default 3)
//   metrics.<k>.json           the metrics update k reported
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl_dump_common.h"
#include "ctrl/ro2o_loss.h"

static const char *dir;

static void write_f32(const char *name, const float *x, long n) {
    dump_write_f32("ctrl_ro2o_dump", dir, name, x, n);
}

int main(int argc, char **argv) {
    const ctrl_algo *algo = argc >= 3 ? ctrl_algo_find(argv[1]) : NULL;
    if (!algo || (strcmp(argv[1], "ro2o") && strcmp(argv[1], "sacn"))) {
        fprintf(stderr, "usage: ctrl_ro2o_dump ro2o|sacn OUTDIR [UPDATES]\n");
        return 2;
    }
    dir = argv[2];
    int updates = argc > 3 ? atoi(argv[3]) : 3;
    const int O = 3, A = 2, B = 6;
    const float low[2] = {-1.0f, -2.0f}, high[2] = {1.0f, 0.5f};
    ctrl_algo_config c;
    algo->defaults(&c);
    c.hidden = 16;
    c.layers = 2;
    c.n_critics = 3;
    c.actor_lr = c.critic_lr = c.alpha_lr = 1e-2f;
    c.critic_layer_norm = argc > 4 ? atoi(argv[4]) : 0; // LN: critics with layer norm
    if (!strcmp(algo->name, "ro2o")) {
        c.ro2o_samples = 3;
        c.ro2o_q_eps = c.ro2o_policy_eps = c.ro2o_ood_eps = 0.3f;
        c.ro2o_q_weight = 0.5f;
        c.ro2o_policy_weight = 1.0f;
        c.ro2o_ood_weight = 0.5f;
        c.ro2o_beta = 1.0f;
        c.ro2o_beta_decay = 0.3f;
        c.ro2o_beta_min = 0.5f;
    }
    rlhf_rng rng;
    rng_seed(&rng, 11);
    rlhf_err err;
    void *agent;
    if (algo->create(&c, O, A, low, high, &rng, &agent, &err)) {
        fprintf(stderr, "ctrl_ro2o_dump: %s\n", err.msg);
        return 2;
    }
    float obs[B * O], act[B * A], rew[B], next_obs[B * O], done[B];
    for (int i = 0; i < B * O; i++)
        obs[i] = 2 * rng_uniform(&rng) - 1, next_obs[i] = 2 * rng_uniform(&rng) - 1;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < A; i++)
            act[b * A + i] = low[i] + (high[i] - low[i]) * rng_uniform(&rng);
        rew[b] = 2 * rng_uniform(&rng) - 1;
        done[b] = b == 2 ? 1.0f : 0.0f;
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
    dump_write_tensors("ctrl_ro2o_dump", dir, agent, algo, "init.");

    char path[1024];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 2;
    ctrl_tensor t[32];
    int nt = algo->tensors(agent, t, 32);
    fprintf(f,
            "{\"algo\": \"%s\", \"obs\": %d, \"act\": %d, \"B\": %d, \"n\": %d, \"hidden\": %d, "
            "\"layers\": %d, \"E\": %d, \"updates\": %d, \"layer_norm\": %d,\n",
            algo->name, O, A, B, c.ro2o_samples, c.hidden, c.layers, c.n_critics, updates,
            c.critic_layer_norm);
    fprintf(f, " \"low\": [%.9g, %.9g], \"high\": [%.9g, %.9g],\n", low[0], low[1], high[0],
            high[1]);
    fprintf(f,
            " \"gamma\": %.9g, \"tau\": %.9g, \"actor_lr\": %.9g, \"critic_lr\": %.9g, "
            "\"alpha_lr\": %.9g, \"target_entropy\": %.9g, \"log_std_min\": %.9g, "
            "\"log_std_max\": %.9g,\n",
            c.gamma, c.tau, c.actor_lr, c.critic_lr, c.alpha_lr,
            isnan(c.target_entropy) ? -(double)A : c.target_entropy, c.log_std_min, c.log_std_max);
    fprintf(f,
            " \"q_eps\": %.9g, \"policy_eps\": %.9g, \"ood_eps\": %.9g, \"q_weight\": %.9g, "
            "\"policy_weight\": %.9g, \"ood_weight\": %.9g, \"q_tau\": %.9g, \"beta\": %.9g, "
            "\"beta_min\": %.9g, \"beta_decay\": %.9g,\n",
            c.ro2o_q_eps, c.ro2o_policy_eps, c.ro2o_ood_eps, c.ro2o_q_weight, c.ro2o_policy_weight,
            c.ro2o_ood_weight, c.ro2o_q_tau, c.ro2o_beta, c.ro2o_beta_min, c.ro2o_beta_decay);
    fprintf(f, " \"tensors\": [");
    for (int i = 0; i < nt; i++) fprintf(f, "%s\"%s\"", i ? ", " : "", t[i].name);
    fprintf(f, "]}\n");
    fclose(f);

    int n = c.ro2o_samples;
    long nz = ro2o_noise_size(B, O, A, n);
    float *noise = xmalloc(sizeof(float) * nz);
    for (int k = 1; k <= updates; k++) {
        rlhf_rng copy = rng;
        ro2o_draw_noise(&copy, B, O, A, n, noise);
        char name[64];
        snprintf(name, sizeof name, "noise.%d", k);
        write_f32(name, noise, nz);
        ctrl_metrics m = {0};
        if (algo->update(agent, &batch, &rng, &m, &err)) {
            fprintf(stderr, "ctrl_ro2o_dump: %s\n", err.msg);
            return 2;
        }
        snprintf(name, sizeof name, "after.%d.", k);
        dump_write_tensors("ctrl_ro2o_dump", dir, agent, algo, name);
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
