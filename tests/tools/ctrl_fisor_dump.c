// ctrl_fisor_dump: for tests/ctrl_fisor_test.py and by hand.
//   ctrl_fisor_dump parity OUTDIR [UPDATES]
//       a small FISOR agent (seed 7; obs 3, act 2 with uneven bounds, hidden
//       16, 2 layers, 2 critics, T 5, 4 candidates, B 8 with costs on some
//       rows, lr 1e-2, Polyak and EMA rates 0.1, lr decay 6), writes raw
//       float32 files into OUTDIR: meta.json; init.<tensor>.f32; batch.<field>.f32;
//       for update k = 1..UPDATES (default 3): noise.<k>.t.f32 (the steps, as
//       floats) and noise.<k>.eps.f32, after.<k>.<tensor>.f32, metrics.<k>.json;
//       then one `act` on 3 states: act.obs.f32, act.noise.f32, act.out.f32.
//   ctrl_fisor_dump data OUT.hdf5 STEPS SEED [P_GREEDY P_DETOUR NOISE]
//       the scripted pointrobot dataset (env_safe.h); prints return and cost
//   ctrl_fisor_dump eval RUN_OR_CHECKPOINT EPISODES SEED
//       the policy's mean return, mean cost and safe share on pointrobot
//   ctrl_fisor_dump roundtrip OUTDIR
//       save -> load -> one more update equals the agent that never stopped
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/algo_fisor.h"
#include "ctrl/ctrl_train.h"
#include "ctrl/dataset.h"
#include "ctrl/env_safe.h"
#include "ctrl/fisor_diffusion.h"
#include "ctrl_dump_common.h"

static const char *dir;
static void write_f32(const char *name, const float *x, long n) {
    dump_write_f32("ctrl_fisor_dump", dir, name, x, n);
}
static int die(const rlhf_err *err) {
    fprintf(stderr, "ctrl_fisor_dump: %s\n", err->msg);
    return 2;
}

enum { O = 3, A = 2, B = 8 };
static const float low[2] = {-1.0f, -2.0f}, high[2] = {1.0f, 0.5f};

static void config(ctrl_algo_config *c) {
    ctrl_algo_fisor.defaults(c);
    c->hidden = 16;
    c->layers = 2;
    c->n_critics = 2;
    c->tau = 0.1f;
    c->fisor_actor_tau = 0.1f;
    c->actor_lr = c->critic_lr = c->value_lr = 1e-2f;
    c->fisor_lr_decay = 6;
    c->fisor_samples = 4;
    c->fisor_time_dim = 8;
    c->fisor_cost_scale = 2.0f; // small, so the unsafe branch's weights stay moderate
}

static void make_batch(rlhf_rng *rng, float *obs, float *act, float *rew, float *next_obs,
                       float *done, float *cost) {
    for (int i = 0; i < B * O; i++)
        obs[i] = 2 * rng_uniform(rng) - 1, next_obs[i] = 2 * rng_uniform(rng) - 1;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < A; i++) act[b * A + i] = low[i] + (high[i] - low[i]) * rng_uniform(rng);
        act[b * A] = b == 1 ? high[0] : act[b * A]; // one action on the bound (clipped to 1 - 1e-5)
        rew[b] = 2 * rng_uniform(rng) - 1;
        done[b] = b == 2 || b == 5 ? 1.0f : 0.0f;
        cost[b] = b % 3 == 0 ? 1.0f : 0.0f;
    }
}

static int parity(int updates) {
    ctrl_algo_config c;
    config(&c);
    rlhf_rng rng;
    rng_seed(&rng, 7);
    rlhf_err err;
    void *agent;
    const ctrl_algo *algo = &ctrl_algo_fisor;
    if (algo->create(&c, O, A, low, high, &rng, &agent, &err)) return die(&err);
    // output biases of the feasibility networks: Q_h = -0.1, V_h = 0 (plus the
    // networks' spread), so that rows fall into both weight branches at once
    ctrl_tensor ts[32];
    int nts = algo->tensors(agent, ts, 32);
    for (int i = 0; i < nts; i++) {
        int E = !strcmp(ts[i].name, "safe_value") ? 1 : c.n_critics;
        float bias = !strcmp(ts[i].name, "safe_value") ? 0.0f : -0.1f;
        if (strcmp(ts[i].name, "safe_critic") && strcmp(ts[i].name, "safe_critic_target") &&
            strcmp(ts[i].name, "safe_value"))
            continue;
        for (int e = 0; e < E; e++) ts[i].data[(e + 1) * (ts[i].n / E) - 1] = bias;
    }
    float obs[B * O], act[B * A], rew[B], next_obs[B * O], done[B], cost[B];
    make_batch(&rng, obs, act, rew, next_obs, done, cost);
    ctrl_batch batch = {.B = B,
                        .obs_dim = O,
                        .act_dim = A,
                        .obs = obs,
                        .act = act,
                        .rew = rew,
                        .next_obs = next_obs,
                        .done = done,
                        .cost = cost,
                        .n_offline = B};
    write_f32("batch.obs", obs, B * O);
    write_f32("batch.act", act, B * A);
    write_f32("batch.rew", rew, B);
    write_f32("batch.next_obs", next_obs, B * O);
    write_f32("batch.done", done, B);
    write_f32("batch.cost", cost, B);
    dump_write_tensors("ctrl_fisor_dump", dir, agent, algo, "init.");
    char path[1024];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 2;
    fprintf(f,
            "{\"obs\": %d, \"act\": %d, \"B\": %d, \"hidden\": %d, \"layers\": %d, \"E\": %d, "
            "\"T\": %d, \"N\": %d, \"D\": %d, \"updates\": %d, \"low\": [%.9g, %.9g], "
            "\"high\": [%.9g, %.9g], \"gamma\": %.9g, \"tau\": %.9g, \"actor_tau\": %.9g, "
            "\"lr\": %.9g, \"lr_decay\": %.9g, \"iql_tau\": %.9g, \"iql_beta\": %.9g, "
            "\"adv_clip\": %.9g, \"cost_tau\": %.9g, \"cost_temp\": %.9g, \"cost_ub\": %.9g, "
            "\"cost_scale\": %.9g, \"ddpm_temp\": %.9g}\n",
            O, A, B, c.hidden, c.layers, c.n_critics, c.fisor_T, c.fisor_samples, c.fisor_time_dim,
            updates, low[0], low[1], high[0], high[1], c.gamma, c.tau, c.fisor_actor_tau,
            c.actor_lr, c.fisor_lr_decay, c.iql_tau, c.iql_beta, c.adv_clip, c.fisor_cost_tau,
            c.fisor_cost_temp, c.fisor_cost_ub, c.fisor_cost_scale, c.fisor_ddpm_temp);
    fclose(f);
    for (int k = 1; k <= updates; k++) {
        rlhf_rng copy = rng;
        int t[B];
        float tf[B], eps[B * A];
        ctrl_fisor_draw_update_noise(&copy, B, A, c.fisor_T, t, eps);
        for (int b = 0; b < B; b++) tf[b] = (float)t[b];
        char name[64];
        snprintf(name, sizeof name, "noise.%d.t", k);
        write_f32(name, tf, B);
        snprintf(name, sizeof name, "noise.%d.eps", k);
        write_f32(name, eps, B * A);
        ctrl_metrics m = {0};
        if (algo->update(agent, &batch, &rng, &m, &err)) return die(&err);
        snprintf(name, sizeof name, "after.%d.", k);
        dump_write_tensors("ctrl_fisor_dump", dir, agent, algo, name);
        snprintf(path, sizeof path, "%s/metrics.%d.json", dir, k);
        f = fopen(path, "w");
        if (!f) return 2;
        fputc('{', f);
        for (int i = 0; i < m.n; i++)
            fprintf(f, "%s\"%s\": %.12g", i ? ", " : "", m.name[i], m.value[i]);
        fprintf(f, "}\n");
        fclose(f);
    }
    // act on 3 states
    const int NB = 3;
    long nz = ctrl_fisor_noise_size(c.fisor_T, NB * c.fisor_samples, A);
    float *noise = xmalloc(sizeof(float) * nz), aout[NB * A];
    rlhf_rng copy = rng;
    for (long k = 0; k < nz; k++) noise[k] = rng_normal(&copy);
    algo->act(agent, obs, NB, 1, &rng, aout);
    write_f32("act.obs", obs, NB * O);
    write_f32("act.noise", noise, nz);
    write_f32("act.out", aout, NB * A);
    free(noise);
    algo->free(agent);
    return 0;
}

static int data(const char *out, long steps, uint64_t seed, float pg, float pd, float noise) {
    rlhf_err err;
    ctrl_env *e;
    if (ctrl_env_make("pointrobot", &e, &err)) return die(&err);
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, e->obs_dim, e->act_dim, steps, 1);
    double ret, cost;
    if (ctrl_safe_scripted_dataset(e, steps, pg, pd, noise, seed, &t, &ret, &cost, &err))
        return die(&err);
    ctrl_dataset_info info = {.ref_random_return = NAN, .ref_expert_return = NAN};
    snprintf(info.env, sizeof info.env, "pointrobot");
    snprintf(info.level, sizeof info.level, "scripted");
    if (ctrl_dataset_save(out, &t, &info, &err)) return die(&err);
    printf("{\"rows\": %ld, \"return\": %.6f, \"cost\": %.6f}\n", t.n, ret, cost);
    ctrl_transitions_free(&t);
    ctrl_env_free(e);
    return 0;
}

static int eval(const char *run, int episodes, uint64_t seed) {
    rlhf_err err;
    char ck[4400];
    ctrl_policy p;
    ctrl_env *e;
    if (ctrl_run_checkpoint(run, ck, sizeof ck, &err)) snprintf(ck, sizeof ck, "%s", run);
    if (ctrl_policy_load(ck, &p, &err)) return die(&err);
    if (ctrl_env_make("pointrobot", &e, &err)) return die(&err);
    double ret, cost, safe;
    if (ctrl_safe_evaluate(e, &p, episodes, seed, 1, &ret, &cost, &safe, &err)) return die(&err);
    printf("{\"return\": %.6f, \"cost\": %.6f, \"safe_frac\": %.6f}\n", ret, cost, safe);
    ctrl_env_free(e);
    ctrl_policy_free(&p);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "parity")) {
        dir = argv[2];
        return parity(argc > 3 ? atoi(argv[3]) : 3);
    }
    if (argc >= 5 && !strcmp(argv[1], "data"))
        return data(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10),
                    argc > 5 ? (float)atof(argv[5]) : 0.4f, argc > 6 ? (float)atof(argv[6]) : 0.4f,
                    argc > 7 ? (float)atof(argv[7]) : 0.3f);
    if (argc >= 5 && !strcmp(argv[1], "eval"))
        return eval(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
    fprintf(stderr, "usage: ctrl_fisor_dump parity OUTDIR [UPDATES] | data OUT.hdf5 STEPS SEED "
                    "[P_GREEDY P_DETOUR NOISE] | eval RUN EPISODES SEED\n");
    return 2;
}
