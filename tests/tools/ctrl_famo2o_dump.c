// ctrl_famo2o_dump: drives FamO2O (ctrl_algo_famo2o) for tests/ctrl_famo2o_test.py.
//
//   ctrl_famo2o_dump parity OUT.json   a small agent (obs 3, act 2, hidden 16,
//       2 layers, batch 8, uneven action bounds, beta range [0.5, 3]), its
//       tensors before, three updates (the first in the uniform-beta phase,
//       famo2o_uniform_steps 1; the others with beta from the balance model)
//       with the draws each took (found by replaying a copy of the rng), the
//       metrics and tensors after — for an independent PyTorch replay.
//   ctrl_famo2o_dump roundtrip         three updates, the tensors into a fresh
//       agent from another seed; two more updates on both must agree bit for
//       bit (tensors, metrics, actions). Prints "ok" or the mismatch.
//   ctrl_famo2o_dump behave [N [SEED]] N updates on a one-step bandit whose
//       data is near-optimal for s0 > 0 and uniform for s0 < 0; prints the
//       balance model's mean beta per region and the reward of family members.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ctrl/agent.h"
#include "ctrl_dump_common.h"
#include "ctrl/famo2o_loss.h"

extern const ctrl_algo ctrl_algo_famo2o;
#define ALGO (&ctrl_algo_famo2o)

enum { S = 3, A = 2, B = 8, HIDDEN = 16, LAYERS = 2 };
static const float LOW[A] = {-1.0f, -2.0f}, HIGH[A] = {1.0f, 0.5f};

static ctrl_algo_config make_config(void) {
    ctrl_algo_config c;
    ALGO->defaults(&c);
    c.hidden = HIDDEN;
    c.layers = LAYERS;
    c.actor_lr = 1e-3f; // larger than the default so a step moves visibly
    c.critic_lr = 2e-3f;
    c.value_lr = 1.5e-3f;
    c.alpha_lr = 5e-3f;
    c.tau = 0.05f;
    c.max_steps = 1; // the cosine: lr, 0, lr over 3 updates (parity)
    c.famo2o_beta_min = 0.5f;
    c.famo2o_beta_max = 3.0f;
    c.famo2o_uniform_steps = 1;
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

static int parity(const char *path) {
    ctrl_algo_config c = make_config();
    rlhf_rng rng, data;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    void *agent;
    rlhf_err err;
    if (ALGO->create(&c, S, A, LOW, HIGH, &rng, &agent, &err)) {
        fprintf(stderr, "create: %s\n", err.msg);
        return 1;
    }
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "{\"S\":%d,\"A\":%d,\"B\":%d,\"hidden\":%d,\"layers\":%d,\"low\":", S, A, B, HIDDEN,
            LAYERS);
    dump_put_array(f, LOW, A);
    fprintf(f, ",\"high\":");
    dump_put_array(f, HIGH, A);
    fprintf(f,
            ",\"config\":{\"n_critics\":%d,\"gamma\":%.9g,\"tau\":%.9g,\"actor_lr\":%.9g,"
            "\"critic_lr\":%.9g,\"value_lr\":%.9g,\"alpha_lr\":%.9g,\"iql_tau\":%.9g,"
            "\"adv_clip\":%.9g,\"log_std_min\":%.9g,\"log_std_max\":%.9g,\"max_steps\":%d,"
            "\"target_entropy\":%.9g,\"beta_min\":%.9g,\"beta_max\":%.9g,\"uniform_steps\":%d},",
            c.n_critics, c.gamma, c.tau, c.actor_lr, c.critic_lr, c.value_lr, c.alpha_lr, c.iql_tau,
            c.adv_clip, c.log_std_min, c.log_std_max, c.max_steps, c.target_entropy,
            c.famo2o_beta_min, c.famo2o_beta_max, c.famo2o_uniform_steps);
    fprintf(f, "\"before\":");
    dump_put_tensors(f, agent, ALGO);
    fprintf(f, ",\"steps\":[");
    ctrl_batch b;
    ctrl_batch_alloc(&b, B, S, A);
    int rc = 0;
    for (int step = 0; step < 3; step++) {
        fill_batch(&b, &data);
        // the draws this update will take: eb (B), ea (B A) normals, then B
        // uniforms (uniform phase) or normals
        rlhf_rng copy = rng;
        float noise[B + B * A + B];
        for (int i = 0; i < B + B * A; i++) noise[i] = rng_normal(&copy);
        for (int i = 0; i < B; i++)
            noise[B + B * A + i] =
                step < c.famo2o_uniform_steps ? rng_uniform(&copy) : rng_normal(&copy);
        ctrl_metrics m = {0};
        if (ALGO->update(agent, &b, &rng, &m, &err)) {
            fprintf(stderr, "update: %s\n", err.msg);
            rc = 1;
            break;
        }
        if (memcmp(&copy, &rng, sizeof rng)) {
            fprintf(stderr, "update drew a different number of values than replayed\n");
            rc = 1;
        }
        fprintf(f, "%s{", step ? "," : "");
        dump_put_batch(f, &b);
        fprintf(f, ",\"noise\":");
        dump_put_array(f, noise, B + B * A + B);
        fputc(',', f);
        dump_put_metrics(f, &m);
        fprintf(f, ",\"after\":");
        dump_put_tensors(f, agent, ALGO);
        fputc('}', f);
    }
    // the balance model's deterministic beta and act's mean on the last batch
    float beta[B], act[B * A];
    ctrl_famo2o_betas(agent, b.obs, B, beta);
    rlhf_rng r2 = rng;
    ALGO->act(agent, b.obs, B, 1, &r2, act);
    fprintf(f, "],\"final_beta\":");
    dump_put_array(f, beta, B);
    fprintf(f, ",\"final_act\":");
    dump_put_array(f, act, B * A);
    fprintf(f, "}\n");
    fclose(f);
    ctrl_batch_free(&b);
    ALGO->free(agent);
    return rc;
}

static int roundtrip(void) {
    ctrl_algo_config c = make_config();
    c.max_steps = 100; // no zero lr on the later updates (a counter would not show)
    rlhf_rng rng, data, init2;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    rng_seed(&init2, 99);
    void *x, *y;
    rlhf_err err;
    if (ALGO->create(&c, S, A, LOW, HIGH, &rng, &x, &err) ||
        ALGO->create(&c, S, A, LOW, HIGH, &init2, &y, &err)) {
        fprintf(stderr, "create: %s\n", err.msg);
        return 1;
    }
    ctrl_batch b;
    ctrl_batch_alloc(&b, B, S, A);
    ctrl_metrics m = {0};
    { // bad input is refused with a message
        float bad_high[A] = {1.0f, -2.0f};
        void *z = NULL;
        err.msg[0] = 0;
        if (ALGO->create(&c, S, A, LOW, bad_high, &rng, &z, &err) != -1 ||
            !strstr(err.msg, "bound 1"))
            return printf("empty action range accepted (%s)\n", err.msg), 1;
        ctrl_algo_config bad = c;
        bad.famo2o_beta_max = bad.famo2o_beta_min;
        err.msg[0] = 0;
        if (ALGO->create(&bad, S, A, LOW, HIGH, &rng, &z, &err) != -1 ||
            !strstr(err.msg, "beta range"))
            return printf("empty beta range accepted (%s)\n", err.msg), 1;
        ctrl_batch wrong;
        ctrl_batch_alloc(&wrong, B, S + 1, A);
        err.msg[0] = 0;
        int r = ALGO->update(x, &wrong, &rng, &m, &err);
        ctrl_batch_free(&wrong);
        if (r != -1 || !strstr(err.msg, "obs 4"))
            return printf("wrong batch accepted (%s)\n", err.msg), 1;
    }
    for (int i = 0; i < 3; i++) {
        fill_batch(&b, &data);
        if (ALGO->update(x, &b, &rng, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    ctrl_tensor tx[32], ty[32];
    int nx = ALGO->tensors(x, tx, 32), ny = ALGO->tensors(y, ty, 32), ok = nx == ny;
    for (int i = 0; ok && i < nx; i++) {
        ok = !strcmp(tx[i].name, ty[i].name) && tx[i].n == ty[i].n;
        if (ok) memcpy(ty[i].data, tx[i].data, tx[i].n * sizeof(float));
    }
    if (!ok) printf("tensor lists differ between agents\n");
    ctrl_metrics mx = {0}, my = {0};
    ok = ok && dump_same(ALGO, x, y, &mx, &my, "after load");
    for (int i = 0; ok && i < 2; i++) {
        fill_batch(&b, &data);
        rlhf_rng ry = rng;
        mx.n = my.n = 0;
        if (ALGO->update(x, &b, &rng, &mx, &err) || ALGO->update(y, &b, &ry, &my, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        ok = dump_same(ALGO, x, y, &mx, &my, i ? "second update" : "first update");
        float ax[B * A], ay[B * A];
        rlhf_rng r1 = rng, r2 = rng;
        ALGO->act(x, b.obs, B, 0, &r1, ax);
        ALGO->act(y, b.obs, B, 0, &r2, ay);
        if (ok && memcmp(ax, ay, sizeof ax)) ok = 0, printf("actions differ\n");
    }
    // every counter is state: one off changes the next update (so this can fail)
    for (int which = 0; ok && which < 8; which++) {
        void *z;
        rlhf_rng r0;
        rng_seed(&r0, 5);
        if (ALGO->create(&c, S, A, LOW, HIGH, &r0, &z, &err)) return 1;
        ctrl_tensor tz[32];
        int nz = ALGO->tensors(z, tz, 32);
        nx = ALGO->tensors(x, tx, 32);
        for (int i = 0; i < nz; i++) memcpy(tz[i].data, tx[i].data, tz[i].n * sizeof(float));
        for (int i = 0; i < nz; i++)
            if (!strcmp(tz[i].name, "counters"))
                tz[i].data[which] += which == 0 ? -5 : 1; // step 0: the uniform phase again
        ctrl_metrics m1 = {0}, m2 = {0};
        rlhf_rng ra = rng, rb = rng;
        fill_batch(&b, &data);
        void *x2; // a copy of x, so x's own state stays for the next case
        rng_seed(&r0, 6);
        if (ALGO->create(&c, S, A, LOW, HIGH, &r0, &x2, &err)) return 1;
        ctrl_tensor t2[32];
        ALGO->tensors(x2, t2, 32);
        for (int i = 0; i < nz; i++) memcpy(t2[i].data, tx[i].data, t2[i].n * sizeof(float));
        ALGO->update(x2, &b, &ra, &m1, &err);
        ALGO->update(z, &b, &rb, &m2, &err);
        int eq = 1;
        ALGO->tensors(x2, t2, 32);
        ALGO->tensors(z, tz, 32);
        for (int i = 0; i < nz; i++)
            if (strcmp(tz[i].name, "counters") &&
                memcmp(t2[i].data, tz[i].data, tz[i].n * sizeof(float)))
                eq = 0;
        if (eq && !memcmp(m1.value, m2.value, m1.n * sizeof(double)))
            ok = 0, printf("counter %d is not used\n", which);
        ALGO->free(z);
        ALGO->free(x2);
    }
    ctrl_batch_free(&b);
    ALGO->free(x);
    ALGO->free(y);
    if (ok) printf("ok\n");
    return ok ? 0 : 1;
}

// One-step bandit (every transition terminal, Q(s, a) = r), obs 2, act 1 in
// [-1, 1]: r = -100 (a - a*(s))^2 with a*(s) = 0.7 sin(2 s1). For s0 > 0 the data
// is near-optimal (a* + N(0, 0.05^2)); for s0 < 0 it is uniform on [-1, 1],
// so cloning gives about 0 and only a large beta (strong improvement) finds
// a*. The balance model should pick a larger beta where the data is poor.
enum { BS = 2, BA = 1 };
static float bandit_target(const float *s) {
    return 0.7f * sinf(2.0f * s[1]);
}

static int behave(int steps, int seed) {
    enum { LB = 128 };
    static const float low[BA] = {-1.0f}, high[BA] = {1.0f};
    ctrl_algo_config c;
    ALGO->defaults(&c);
    c.hidden = 64;
    c.layers = 2;
    c.max_steps = 0; // constant lr (the authors' antmaze config)
    c.actor_lr = c.critic_lr = c.value_lr = 1e-3f;
    c.alpha_lr = 1e-3f; // the balance temperature starts at the authors' 1 (sac_alpha)
    // rewards x100 (Q of tens, as in the paper's scaled tasks, so Q's gradient
    // outweighs the balance model's entropy term); beta in [0, 0.05] on this
    // scale spans plain cloning (0) to near-greedy (exp(0.05 * 100 d^2))
    c.famo2o_beta_min = 0.0f;
    c.famo2o_beta_max = 0.05f;
    const float RS = 100.0f;
    c.famo2o_uniform_steps = steps; // all offline: the actor sees uniform beta
    rlhf_rng rng, data;
    rng_seed(&rng, 3 + 2 * seed);
    rng_seed(&data, 4 + 2 * seed);
    void *agent;
    rlhf_err err;
    if (ALGO->create(&c, BS, BA, low, high, &rng, &agent, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, LB, BS, BA);
    ctrl_metrics m;
    for (int it = 0; it < steps; it++) {
        for (int k = 0; k < LB; k++) {
            float *s = b.obs + k * BS;
            for (int i = 0; i < BS; i++) s[i] = 2 * rng_uniform(&data) - 1;
            memcpy(b.next_obs + k * BS, s, BS * sizeof(float));
            float a = s[0] > 0 ? bandit_target(s) + 0.05f * rng_normal(&data)
                               : 2 * rng_uniform(&data) - 1;
            b.act[k] = fminf(fmaxf(a, -1.0f), 1.0f);
            b.rew[k] = -RS * (b.act[k] - bandit_target(s)) * (b.act[k] - bandit_target(s));
            b.done[k] = 1;
        }
        m.n = 0;
        if (ALGO->update(agent, &b, &rng, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    // per region: the balance model's mean beta, and the reward of the
    // family at beta_min, at beta_max and at the balance model's choice
    enum { NE = 512 };
    static float obs[NE * BS], beta[NE], act[NE], bfix[NE];
    for (int region = 0; region < 2; region++) {
        for (int k = 0; k < NE; k++) {
            obs[k * BS] = (region ? -1.0f : 1.0f) * (0.05f + 0.95f * rng_uniform(&data));
            obs[k * BS + 1] = 2 * rng_uniform(&data) - 1;
        }
        ctrl_famo2o_betas(agent, obs, NE, beta);
        double bm = 0, r[3] = {0, 0, 0};
        for (int k = 0; k < NE; k++) bm += beta[k] / NE;
        for (int which = 0; which < 3; which++) {
            for (int k = 0; k < NE; k++)
                bfix[k] = which == 0 ? c.famo2o_beta_min : which == 1 ? c.famo2o_beta_max : beta[k];
            ctrl_famo2o_family_act(agent, obs, bfix, NE, act);
            for (int k = 0; k < NE; k++) {
                double d = act[k] - bandit_target(obs + k * BS);
                r[which] -= d * d / NE;
            }
        }
        printf("%s beta %.4f reward_beta_min %.6f reward_beta_max %.6f reward_balance %.6f\n",
               region ? "poor" : "good", bm, r[0], r[1], r[2]);
    }
    ctrl_batch_free(&b);
    ALGO->free(agent);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "parity")) return parity(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "roundtrip")) return roundtrip();
    if (argc >= 2 && !strcmp(argv[1], "behave"))
        return behave(argc >= 3 ? atoi(argv[2]) : 3000, argc >= 4 ? atoi(argv[3]) : 0);
    fprintf(stderr, "usage: ctrl_famo2o_dump parity OUT.json | roundtrip | behave [N]\n");
    return 2;
}
