// ctrl_algo_dump: drives one control algorithm (bc, td3, td3_bc, iql, awac)
// for tests/ctrl_algo_test.py.
//
//   ctrl_algo_dump ALGO parity OUT.json   a small agent (obs 3, act 2, hidden
//       16, 2 layers, batch 8, uneven action bounds), its tensors before, three
//       updates on three batches (with the normal draws each update took, found
//       by replaying a copy of the rng), the metrics and the tensors after —
//       for an independent PyTorch replay.
//   ctrl_algo_dump ALGO roundtrip        three updates, then the tensors into a
//       fresh agent made from another seed; two more updates on both must agree
//       bit for bit (tensors, metrics, actions). Prints "ok" or the mismatch.
//   ctrl_algo_dump ALGO learn [N]       N updates on a contextual bandit; the
//       mean reward of the policy and of the action box's centre.
//   ctrl_algo_dump ALGO bench [N]       ms per update at CORL's sizes.
// ALGO may also be bc_gauss (BC's Gaussian actor) or iql_det (IQL's
// deterministic actor).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "ctrl/agent.h"
#include "ctrl_dump_common.h"

extern const ctrl_algo ctrl_algo_bc, ctrl_algo_td3, ctrl_algo_td3_bc, ctrl_algo_iql,
    ctrl_algo_awac;

enum { S = 3, A = 2, B = 8, HIDDEN = 16, LAYERS = 2 };
static const float LOW[A] = {-1.0f, -2.0f}, HIGH[A] = {1.0f, 0.5f};

typedef struct {
    const char *arg;
    const ctrl_algo *algo;
    int deterministic;  // deterministic_bc
    int draws;          // normals one update draws, per B*A
} variant;

static const variant *find_variant(const char *name) {
    static variant v[7];
    v[0] = (variant){"bc", &ctrl_algo_bc, 1, 0};
    v[1] = (variant){"bc_gauss", &ctrl_algo_bc, 0, 0};
    v[2] = (variant){"td3", &ctrl_algo_td3, 1, 1};
    v[3] = (variant){"td3_bc", &ctrl_algo_td3_bc, 1, 1};
    v[4] = (variant){"iql", &ctrl_algo_iql, 0, 0};
    v[5] = (variant){"iql_det", &ctrl_algo_iql, 1, 0};
    v[6] = (variant){"awac", &ctrl_algo_awac, 0, 2};
    for (int i = 0; i < 7; i++)
        if (!strcmp(v[i].arg, name)) return &v[i];
    return NULL;
}

static ctrl_algo_config make_config(const variant *v) {
    ctrl_algo_config c;
    v->algo->defaults(&c);
    c.hidden = HIDDEN;
    c.layers = LAYERS;
    c.deterministic_bc = v->deterministic;
    c.actor_lr = 1e-3f;  // larger than the default so a step moves visibly
    c.critic_lr = 2e-3f;
    c.value_lr = 1.5e-3f;
    c.tau = 0.05f;
    c.max_steps = 1;  // IQL's cosine: lr, 0, then lr again (PyTorch's period) over 3 updates
    return c;
}

static void fill_batch(ctrl_batch *b, rlhf_rng *r) {
    for (int i = 0; i < B * S; i++) {
        b->obs[i] = 2 * rng_uniform(r) - 1;
        b->next_obs[i] = 2 * rng_uniform(r) - 1;
    }
    for (int k = 0; k < B; k++) {
        for (int i = 0; i < A; i++)
            b->act[k * A + i] = LOW[i] + (HIGH[i] - LOW[i]) * (0.05f + 0.9f * rng_uniform(r));
        b->rew[k] = 2 * rng_uniform(r) - 1;
        b->done[k] = k % 3 == 2;
    }
}

static int parity(const variant *v, const char *path) {
    ctrl_algo_config c = make_config(v);
    rlhf_rng rng, data;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    void *agent;
    rlhf_err err;
    if (v->algo->create(&c, S, A, LOW, HIGH, &rng, &agent, &err)) {
        fprintf(stderr, "create: %s\n", err.msg);
        return 1;
    }
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "{\"algo\":\"%s\",\"S\":%d,\"A\":%d,\"B\":%d,\"hidden\":%d,\"layers\":%d,", v->arg,
            S, A, B, HIDDEN, LAYERS);
    fprintf(f, "\"low\":");
    dump_put_array(f, LOW, A);
    fprintf(f, ",\"high\":");
    dump_put_array(f, HIGH, A);
    fprintf(f,
            ",\"config\":{\"n_critics\":%d,\"gamma\":%.9g,\"tau\":%.9g,\"actor_lr\":%.9g,"
            "\"critic_lr\":%.9g,\"value_lr\":%.9g,\"policy_freq\":%d,\"policy_noise\":%.9g,"
            "\"noise_clip\":%.9g,\"td3bc_alpha\":%.9g,\"iql_tau\":%.9g,\"iql_beta\":%.9g,"
            "\"adv_clip\":%.9g,\"awac_lambda\":%.9g,\"log_std_min\":%.9g,\"log_std_max\":%.9g,"
            "\"max_steps\":%d,\"deterministic\":%d},",
            c.n_critics, c.gamma, c.tau, c.actor_lr, c.critic_lr, c.value_lr, c.policy_freq,
            c.policy_noise, c.noise_clip, c.td3bc_alpha, c.iql_tau, c.iql_beta, c.adv_clip,
            c.awac_lambda, c.log_std_min, c.log_std_max, c.max_steps, c.deterministic_bc);
    fprintf(f, "\"before\":");
    dump_put_tensors(f, agent, v->algo);
    fprintf(f, ",\"steps\":[");
    ctrl_batch b;
    ctrl_batch_alloc(&b, B, S, A);
    int rc = 0;
    for (int step = 0; step < 3; step++) {
        fill_batch(&b, &data);
        // the normals this update will draw: replay a copy of its rng
        rlhf_rng copy = rng;
        float noise[2 * B * A];
        int nn = v->draws * B * A;
        for (int i = 0; i < nn; i++) noise[i] = rng_normal(&copy);
        ctrl_metrics m = {0};
        if (v->algo->update(agent, &b, &rng, &m, &err)) {
            fprintf(stderr, "update: %s\n", err.msg);
            rc = 1;
            break;
        }
        if (memcmp(&copy, &rng, sizeof rng)) {  // it drew more or fewer than the test replays
            fprintf(stderr, "update drew a different number of normals than %d\n", nn);
            rc = 1;
        }
        fprintf(f, "%s{", step ? "," : "");
        dump_put_batch(f, &b);
        fprintf(f, ",\"noise\":");
        dump_put_array(f, noise, nn);
        fputc(',', f);
        dump_put_metrics(f, &m);
        fprintf(f, ",\"after\":");
        dump_put_tensors(f, agent, v->algo);
        fputc('}', f);
    }
    fprintf(f, "]}\n");
    fclose(f);
    ctrl_batch_free(&b);
    v->algo->free(agent);
    return rc;
}

// tensors, metrics and actions of two agents, bit for bit
// (when is NULL: quiet)
static int roundtrip(const variant *v) {
    ctrl_algo_config c = make_config(v);
    rlhf_rng rng, data, init2;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    rng_seed(&init2, 99);
    void *x, *y;
    rlhf_err err;
    if (v->algo->create(&c, S, A, LOW, HIGH, &rng, &x, &err) ||
        v->algo->create(&c, S, A, LOW, HIGH, &init2, &y, &err)) {
        fprintf(stderr, "create: %s\n", err.msg);
        return 1;
    }
    ctrl_batch b;
    ctrl_batch_alloc(&b, B, S, A);
    ctrl_metrics m = {0};
    // bad input is refused with a message, not a crash
    {
        float bad_high[A] = {1.0f, -2.0f};  // high == low in dim 1
        void *z = NULL;
        err.msg[0] = 0;
        if (v->algo->create(&c, S, A, LOW, bad_high, &rng, &z, &err) != -1 ||
            !strstr(err.msg, "bound 1"))
            return printf("empty action range accepted (%s)\n", err.msg), 1;
        ctrl_batch wrong;
        ctrl_batch_alloc(&wrong, B, S + 1, A);
        err.msg[0] = 0;
        int r = v->algo->update(x, &wrong, &rng, &m, &err);
        ctrl_batch_free(&wrong);
        if (r != -1 || !strstr(err.msg, "obs 4")) return printf("wrong batch accepted (%s)\n", err.msg), 1;
    }
    for (int i = 0; i < 3; i++) {
        fill_batch(&b, &data);
        if (v->algo->update(x, &b, &rng, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    // checkpoint: x's spans copied into y's (as a save and a load would)
    ctrl_tensor tx[32], ty[32];
    int nx = v->algo->tensors(x, tx, 32), ny = v->algo->tensors(y, ty, 32), ok = nx == ny;
    for (int i = 0; ok && i < nx; i++) {
        ok = !strcmp(tx[i].name, ty[i].name) && tx[i].n == ty[i].n;
        if (ok) memcpy(ty[i].data, tx[i].data, tx[i].n * sizeof(float));
    }
    if (!ok) printf("tensor lists differ between agents\n");
    ctrl_metrics mx = {0}, my = {0};
    ok = ok && dump_same(v->algo, x, y, &mx, &my, "after load");
    for (int i = 0; ok && i < 2; i++) {
        fill_batch(&b, &data);
        rlhf_rng ry = rng;
        mx.n = my.n = 0;
        if (v->algo->update(x, &b, &rng, &mx, &err) || v->algo->update(y, &b, &ry, &my, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        ok = dump_same(v->algo, x, y, &mx, &my, i ? "second update" : "first update");
        float ax[B * A], ay[B * A];
        rlhf_rng r1 = rng, r2 = rng;
        v->algo->act(x, b.obs, B, 0, &r1, ax);
        v->algo->act(y, b.obs, B, 0, &r2, ay);
        if (ok && memcmp(ax, ay, sizeof ax)) ok = 0, printf("actions differ\n");
    }
    // the counters are state: a load that missed the actor's Adam step count
    // would not repeat the next update (so this check can fail)
    if (ok) {
        ctrl_tensor t[32];
        int n = v->algo->tensors(y, t, 32);
        for (int i = 0; i < n; i++)
            if (!strcmp(t[i].name, "counters")) t[i].data[1] += 1;
        ctrl_metrics m1 = {0}, m2 = {0};
        rlhf_rng ry = rng;
        fill_batch(&b, &data);
        v->algo->update(x, &b, &rng, &m1, &err);
        v->algo->update(y, &b, &ry, &m2, &err);
        if (dump_same(v->algo, x, y, &m1, &m2, NULL)) ok = 0, printf("the Adam step count is not used\n");
    }
    ctrl_batch_free(&b);
    v->algo->free(x);
    v->algo->free(y);
    if (ok) printf("ok\n");
    return ok ? 0 : 1;
}

// updates per second at CORL's sizes (hidden 256, 2 layers, batch 256;
// obs 17, act 6 as HalfCheetah) on random data
static int bench(const variant *v, int steps) {
    enum { BS = 17, BA = 6, BB = 256 };
    ctrl_algo_config c;
    v->algo->defaults(&c);
    c.layers = 2;
    float low[BA], high[BA];
    for (int i = 0; i < BA; i++) low[i] = -1, high[i] = 1;
    rlhf_rng rng;
    rng_seed(&rng, 1);
    void *agent;
    rlhf_err err;
    if (v->algo->create(&c, BS, BA, low, high, &rng, &agent, &err)) return 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, BB, BS, BA);
    for (int i = 0; i < BB * BS; i++) b.obs[i] = rng_normal(&rng), b.next_obs[i] = rng_normal(&rng);
    for (int i = 0; i < BB * BA; i++) b.act[i] = 2 * rng_uniform(&rng) - 1;
    for (int i = 0; i < BB; i++) b.rew[i] = rng_normal(&rng), b.done[i] = 0;
    ctrl_metrics m = {0};
    v->algo->update(agent, &b, &rng, &m, &err);  // warm-up (buffers)
    double t0 = time_now();
    clock_t c0 = clock();
    for (int i = 0; i < steps; i++) {
        m.n = 0;
        v->algo->update(agent, &b, &rng, &m, &err);
    }
    double dt = time_now() - t0, cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("%s: %.3f ms/update wall, %.3f ms CPU (hidden 256, 2 layers, batch 256, obs %d, act %d; "
           "%d updates)\n",
           v->arg, 1e3 * dt / steps, 1e3 * cpu / steps, BS, BA, steps);
    ctrl_batch_free(&b);
    v->algo->free(agent);
    return 0;
}

// A contextual bandit (every transition terminal, so Q(s, a) = r):
// r = -|a - a*(s)|^2 with a*(s) = bias + 0.6 scale tanh(s0 - s1 + s2 / 2).
// BC learns from a* plus small noise; the others from uniform actions, where
// cloning would give the centre of the box, so beating the centre shows the
// critic steering the actor. Prints the mean reward of the deterministic
// policy and of the centre on fresh states.
static void bandit_target(const float *s, float *a) {
    float t = tanhf(s[0] - s[1] + 0.5f * s[2]);
    for (int i = 0; i < A; i++) {
        float scale = (HIGH[i] - LOW[i]) / 2, bias = (HIGH[i] + LOW[i]) / 2;
        a[i] = bias + 0.6f * scale * (i ? -t : t);
    }
}

static double bandit_reward(const float *s, const float *a) {
    float t[A];
    bandit_target(s, t);
    double r = 0;
    for (int i = 0; i < A; i++) r -= (double)(a[i] - t[i]) * (a[i] - t[i]);
    return r;
}

static int learn(const variant *v, int steps) {
    enum { LB = 64 };
    ctrl_algo_config c;
    v->algo->defaults(&c);
    c.hidden = 64;
    c.layers = 2;
    c.deterministic_bc = v->deterministic;
    c.max_steps = steps;
    c.actor_lr = c.critic_lr = c.value_lr = 1e-3f;
    rlhf_rng rng, data;
    rng_seed(&rng, 3);
    rng_seed(&data, 4);
    void *agent;
    rlhf_err err;
    if (v->algo->create(&c, S, A, LOW, HIGH, &rng, &agent, &err)) return 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, LB, S, A);
    ctrl_metrics m;
    for (int it = 0; it < steps; it++) {
        for (int k = 0; k < LB; k++) {
            float *s = b.obs + k * S, *a = b.act + k * A;
            for (int i = 0; i < S; i++) s[i] = 2 * rng_uniform(&data) - 1;
            for (int i = 0; i < S; i++) b.next_obs[k * S + i] = s[i];
            if (v->algo == &ctrl_algo_bc) {
                bandit_target(s, a);
                for (int i = 0; i < A; i++)
                    a[i] = fminf(fmaxf(a[i] + 0.05f * rng_normal(&data), LOW[i]), HIGH[i]);
            } else {
                for (int i = 0; i < A; i++) a[i] = LOW[i] + (HIGH[i] - LOW[i]) * rng_uniform(&data);
            }
            b.rew[k] = (float)bandit_reward(s, a);
            b.done[k] = 1;
        }
        m.n = 0;
        if (v->algo->update(agent, &b, &rng, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    double r_pi = 0, r_centre = 0;
    int n = 512;
    for (int k = 0; k < n; k++) {
        float s[S], a[A], centre[A];
        for (int i = 0; i < S; i++) s[i] = 2 * rng_uniform(&data) - 1;
        v->algo->act(agent, s, 1, 1, &rng, a);
        for (int i = 0; i < A; i++) centre[i] = (HIGH[i] + LOW[i]) / 2;
        r_pi += bandit_reward(s, a) / n;
        r_centre += bandit_reward(s, centre) / n;
    }
    printf("reward_policy %.6f reward_centre %.6f\n", r_pi, r_centre);
    ctrl_batch_free(&b);
    v->algo->free(agent);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[2], "learn") && find_variant(argv[1]))
        return learn(find_variant(argv[1]), argc >= 4 ? atoi(argv[3]) : 1000);
    if (argc >= 3 && !strcmp(argv[2], "bench") && find_variant(argv[1]))
        return bench(find_variant(argv[1]), argc >= 4 ? atoi(argv[3]) : 200);
    const variant *v = argc >= 3 ? find_variant(argv[1]) : NULL;
    if (!v || (strcmp(argv[2], "parity") && strcmp(argv[2], "roundtrip")) ||
        (!strcmp(argv[2], "parity") && argc < 4)) {
        fprintf(stderr, "usage: ctrl_algo_dump bc|bc_gauss|td3|td3_bc|iql|iql_det|awac parity OUT.json | roundtrip\n");
        return 2;
    }
    return !strcmp(argv[2], "parity") ? parity(v, argv[3]) : roundtrip(v);
}
