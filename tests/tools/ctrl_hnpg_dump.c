// ctrl_hnpg_dump: HNPG's pieces as JSON for tests/ctrl_hnpg_test.py, which
// replays them in float64 PyTorch / numpy.
//
//   ctrl_hnpg_dump npg SEED N [HID]  a natural step on random data (policy
//                                    obs 5, act 3, linear or with HID a tanh
//                                    HID-HID MLP mean; N rows): inputs, the CG
//                                    solution, theta after, the step's info
//   ctrl_hnpg_dump gae SEED          GAE on 3 episodes of random rewards/values
//   ctrl_hnpg_dump critic SEED [TANH] hnpg_critic_fit (in 6, hidden 8, 2 layers,
//                                    ReLU or with TANH 1 tanh; 10 online + 7
//                                    offline rows, 5 steps, lr 0.01)
//   ctrl_hnpg_dump envraw SEED       400 one-step locks with actions outside the box:
//                                    how often the right choice won (unclipped)
//   ctrl_hnpg_dump env H SEED WRONG  comblock:H=H episodes with the right
//                                    one-hot actions except a uniform one-hot
//                                    wrong choice at step WRONG (-1: none); per
//                                    step latent, h, best, choice, reward, obs
//   ctrl_hnpg_dump data ENV EPISODES PATH   the eps-greedy dataset (eps 1/H)
//   ctrl_hnpg_dump train ENV HYBRID STEPS SEED [BATCH OFFLINE_EPISODES MAX_KL CRITIC_STEPS
//   CRITIC_LR]
//                                    hnpg_train with the defaults otherwise
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/env_comblock.h"
#include "ctrl/hnpg.h"
#include "ctrl/hnpg_math.h"
#include "ctrl/mlp.h"

static void put(const char *name, const float *x, long n, int last) {
    printf("\"%s\":[", name);
    for (long i = 0; i < n; i++) printf("%s%.9g", i ? "," : "", x[i]);
    printf("]%s", last ? "" : ",");
}

static void putd(const char *name, const double *x, long n, int last) {
    printf("\"%s\":[", name);
    for (long i = 0; i < n; i++) printf("%s%.17g", i ? "," : "", x[i]);
    printf("]%s", last ? "" : ",");
}

static float *randn(rlhf_rng *r, long n, float s) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++) x[i] = s * rng_normal(r);
    return x;
}

static int npg(uint64_t seed, int N, int hidden) {
    int S = 5, A = 3;
    hnpg_pol pol = {S, A, hidden};
    rlhf_rng r;
    rng_seed(&r, seed);
    long np = hnpg_policy_nparams(&pol);
    float *theta = randn(&r, np, 0.3f), *st = randn(&r, (long)N * S, 1.0f);
    float *act = randn(&r, (long)N * A, 1.0f), *adv = randn(&r, N, 1.0f);
    double *dir = malloc(sizeof(double) * (size_t)np);
    hnpg_npg_opts o;
    hnpg_npg_default_opts(&o);
    printf("{\"S\":%d,\"A\":%d,\"N\":%d,\"hidden\":%d,", S, A, N, hidden);
    put("theta0", theta, np, 0), put("states", st, (long)N * S, 0);
    put("actions", act, (long)N * A, 0), put("adv", adv, N, 0);
    hnpg_npg_info info;
    hnpg_npg_step(&pol, theta, st, act, adv, N, &o, &info, dir);
    putd("stepdir", dir, np, 0), put("theta1", theta, np, 0);
    printf("\"loss_before\":%.17g,\"loss_after\":%.17g,\"kl\":%.17g,\"step_frac\":%.17g,"
           "\"shs\":%.17g}\n",
           info.loss_before, info.loss_after, info.kl, info.step_frac, info.shs);
    free(theta), free(st), free(act), free(adv), free(dir);
    return 0;
}

static int gae(uint64_t seed) {
    rlhf_rng r;
    rng_seed(&r, seed);
    int n = 12;
    float *rew = randn(&r, n, 1.0f), *val = randn(&r, n, 1.0f), mask[12], ret[12], adv[12];
    for (int i = 0; i < n; i++) mask[i] = (i == 3 || i == 8 || i == 11) ? 0.0f : 1.0f;
    hnpg_gae(rew, val, mask, n, 0.99, 0.97, ret, adv);
    printf("{");
    put("rew", rew, n, 0), put("val", val, n, 0), put("mask", mask, n, 0), put("ret", ret, n, 0);
    put("adv", adv, n, 1);
    printf("}\n");
    free(rew), free(val);
    return 0;
}

static int critic(uint64_t seed, int tanh_act) {
    rlhf_rng r;
    rng_seed(&r, seed);
    ctrl_mlp q;
    ctrl_mlp_init(&q, 6, 8, 2, 1, 1, &r);
    ctrl_mlp_set_tanh(&q, tanh_act);
    float *Xon = randn(&r, 60, 1.0f), *yon = randn(&r, 10, 1.0f);
    float *Xoff = randn(&r, 42, 1.0f), *yoff = randn(&r, 7, 1.0f);
    printf("{");
    put("params0", q.params, q.n_params, 0), put("X_on", Xon, 60, 0), put("y_on", yon, 10, 0);
    put("X_off", Xoff, 42, 0), put("y_off", yoff, 7, 0);
    double lon, loff;
    hnpg_critic_fit(&q, Xon, yon, 10, Xoff, yoff, 7, 5, 0.01f, &lon, &loff);
    put("params1", q.params, q.n_params, 0);
    printf("\"loss_on\":%.17g,\"loss_off\":%.17g}\n", lon, loff);
    ctrl_mlp_free(&q);
    free(Xon), free(yon), free(Xoff), free(yoff);
    return 0;
}

static int env(int H, uint64_t seed, int wrong) {
    char name[64];
    snprintf(name, sizeof name, "comblock:H=%d", H);
    ctrl_env *e;
    rlhf_err err;
    if (ctrl_env_make(name, &e, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    ctrl_env_seed(e, seed);
    float obs[CTRL_MAX_DIM], a[10];
    rlhf_rng r;
    rng_seed(&r, seed + 1);
    for (int ep = 0; ep < 20; ep++) {
        ctrl_env_reset(e, obs, &err);
        for (int h = 0; h < H; h++) {
            int latent, hh, best;
            ctrl_comblock_state(e, &latent, &hh, &best, &err);
            int k = best < 0 ? 0 : best;
            if (h == wrong) k = (k + 1 + (int)(rng_u64(&r) % 9)) % 10;
            for (int j = 0; j < 10; j++) a[j] = j == k ? 1.0f : 0.0f;
            printf("{\"episode\":%d,\"latent\":%d,\"h\":%d,\"best\":%d,", ep, latent, hh, best);
            put("obs", obs, e->obs_dim, 0);
            ctrl_step_info info;
            if (ctrl_env_step(e, a, obs, &info, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
            printf("\"action\":%d,\"choice\":%d,\"reward\":%.9g,\"terminated\":%d,"
                   "\"truncated\":%d}\n",
                   k, ctrl_comblock_last_choice(e), info.reward, info.terminated, info.truncated);
        }
    }
    ctrl_env_free(e);
    return 0;
}

// N one-step episodes of comblock:H=1 with the right choice's entry 1.5, one
// wrong entry 1.2 and the rest -5 (outside the [0, 1] box): prints how often
// the right one was chosen (unclipped, softmax(a / 0.1) picks it with
// probability 1 / (1 + e^-3) = 0.953; clipped to the box, about 1/2)
static int envraw(uint64_t seed, int N) {
    ctrl_env *e;
    rlhf_err err;
    if (ctrl_env_make("comblock:H=1", &e, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    ctrl_env_seed(e, seed);
    float obs[CTRL_MAX_DIM], a[10];
    int right = 0;
    for (int i = 0; i < N; i++) {
        int latent, hh, best;
        ctrl_env_reset(e, obs, &err);
        ctrl_comblock_state(e, &latent, &hh, &best, &err);
        for (int j = 0; j < 10; j++) a[j] = -5.0f;
        a[best] = 1.5f, a[(best + 1) % 10] = 1.2f;
        ctrl_step_info info;
        if (ctrl_env_step(e, a, obs, &info, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        right += ctrl_comblock_last_choice(e) == best;
    }
    printf("{\"n\":%d,\"right\":%d}\n", N, right);
    ctrl_env_free(e);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "npg"))
        return npg(strtoull(argv[2], 0, 10), atoi(argv[3]), argc >= 5 ? atoi(argv[4]) : 0);
    if (argc >= 3 && !strcmp(argv[1], "gae")) return gae(strtoull(argv[2], 0, 10));
    if (argc >= 3 && !strcmp(argv[1], "critic"))
        return critic(strtoull(argv[2], 0, 10), argc >= 4 && atoi(argv[3]));
    if (argc >= 3 && !strcmp(argv[1], "envraw")) return envraw(strtoull(argv[2], 0, 10), 400);
    if (argc >= 5 && !strcmp(argv[1], "env"))
        return env(atoi(argv[2]), strtoull(argv[3], 0, 10), atoi(argv[4]));
    if (argc >= 5 && !strcmp(argv[1], "data")) {
        rlhf_err err;
        char *end;
        long H = 10;
        const char *p = strstr(argv[2], "H=");
        if (p) H = strtol(p + 2, &end, 10);
        if (hnpg_comblock_dataset(argv[2], atoi(argv[3]), 1.0 / (double)H, 1, argv[4], &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        return 0;
    }
    if (argc >= 6 && !strcmp(argv[1], "train")) { // train ENV HYBRID STEPS SEED [BATCH
                                                  // OFFLINE_EPISODES MAX_KL CRITIC_STEPS CRITIC_LR]
        hnpg_config c;
        hnpg_default_config(&c);
        c.env = argv[2], c.hybrid = atoi(argv[3]), c.online_steps = atol(argv[4]);
        c.seed = strtoull(argv[5], 0, 10);
        if (argc >= 7) c.batch_steps = atoi(argv[6]);
        if (argc >= 8) c.offline_episodes = atoi(argv[7]);
        if (argc >= 9) c.npg.max_kl = atof(argv[8]);
        if (argc >= 10) c.critic_steps = atoi(argv[9]);
        if (argc >= 11) c.critic_lr = (float)atof(argv[10]);
        hnpg_result r;
        rlhf_err err;
        if (hnpg_train(&c, &r, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        printf("{\"solved\":%d,\"episodes_to_solve\":%ld,\"online_episodes\":%ld,"
               "\"best_eval\":%g,\"seconds\":%.2f}\n",
               r.solved, r.episodes_to_solve, r.online_episodes, r.best_eval, r.seconds);
        return 0;
    }
    fprintf(stderr, "usage: ctrl_hnpg_dump npg SEED N | gae SEED | critic SEED [TANH] | env H SEED WRONG | envraw SEED "
                    "| data ENV EPISODES PATH | train ENV HYBRID STEPS SEED [BATCH "
                    "OFFLINE_EPISODES MAX_KL CRITIC_STEPS CRITIC_LR]\n");
    return 2;
}
