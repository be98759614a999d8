// ctrl_riql_dump: drives RIQL (algo_riql.c) for tests/ctrl_riql_test.py.
//
//   ctrl_riql_dump VARIANT parity OUT.json   a small agent (obs 3, act 2,
//       hidden 16, 2 layers, batch 8, uneven action bounds), its tensors
//       before, three updates on three batches (one reward far above and one
//       far below the target clip [-100, 1000]) and the metrics and tensors
//       after each — for an independent PyTorch replay. VARIANT riql: the
//       defaults (5 critics, quantile 0.25, sigma 1); riql_q3: 3 critics,
//       quantile 0.3 (interpolated), sigma 2.
//   ctrl_riql_dump VARIANT roundtrip        three updates, the tensors into a
//       fresh agent from another seed; two more updates on both agree bit for
//       bit. Prints "ok" or the mismatch.
//   ctrl_riql_dump learn ALGO STEPS MODE RATE SEED   an offline contextual
//       bandit (below) whose rewards are corrupted by ctrl_corrupt (MODE
//       random | adversarial | none, RATE the share of rows); ALGO riql, iql
//       or iql_det learns STEPS updates from it; prints the true reward of the
//       deterministic policy, of the box centre and of the best action.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ctrl/agent.h"
#include "ctrl_dump_common.h"
#include "ctrl/corrupt.h"

extern const ctrl_algo ctrl_algo_riql, ctrl_algo_iql;

enum { S = 3, A = 2, B = 8, HIDDEN = 16, LAYERS = 2 };
static const float LOW[A] = {-1.0f, -2.0f}, HIGH[A] = {1.0f, 0.5f};

static int make_config(const char *variant, ctrl_algo_config *c) {
    ctrl_algo_riql.defaults(c);
    c->hidden = HIDDEN;
    c->layers = LAYERS;
    c->actor_lr = 1e-3f; // larger than the default so a step moves visibly
    c->critic_lr = 2e-3f;
    c->value_lr = 1.5e-3f;
    c->tau = 0.05f;
    c->max_steps = 1; // the cosine: lr, 0, then lr again over 3 updates
    if (!strcmp(variant, "riql")) return 0;
    if (!strcmp(variant, "riql_q3")) {
        c->n_critics = 3;
        c->riql_quantile = 0.3f;
        c->riql_sigma = 2.0f;
        return 0;
    }
    return -1;
}

static void fill_batch(ctrl_batch *b, rlhf_rng *r, int step) {
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
    if (step == 1) b->rew[2] = 1500.0f, b->rew[5] = -300.0f; // both clipped (rows 2, 5 terminal)
}

static int parity(const char *variant, const char *path) {
    ctrl_algo_config c;
    if (make_config(variant, &c)) return 2;
    rlhf_rng rng, data;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    void *agent;
    rlhf_err err;
    if (ctrl_algo_riql.create(&c, S, A, LOW, HIGH, &rng, &agent, &err))
        return fprintf(stderr, "create: %s\n", err.msg), 1;
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "{\"algo\":\"%s\",\"S\":%d,\"A\":%d,\"B\":%d,\"hidden\":%d,\"layers\":%d,\"low\":",
            variant, S, A, B, HIDDEN, LAYERS);
    dump_put_array(f, LOW, A);
    fprintf(f, ",\"high\":");
    dump_put_array(f, HIGH, A);
    fprintf(f,
            ",\"config\":{\"n_critics\":%d,\"gamma\":%.9g,\"tau\":%.9g,\"actor_lr\":%.9g,"
            "\"critic_lr\":%.9g,\"value_lr\":%.9g,\"iql_tau\":%.9g,\"iql_beta\":%.9g,"
            "\"adv_clip\":%.9g,\"max_steps\":%d,\"riql_quantile\":%.9g,\"riql_sigma\":%.9g},",
            c.n_critics, c.gamma, c.tau, c.actor_lr, c.critic_lr, c.value_lr, c.iql_tau, c.iql_beta,
            c.adv_clip, c.max_steps, c.riql_quantile, c.riql_sigma);
    fprintf(f, "\"before\":");
    dump_put_tensors(f, agent, &ctrl_algo_riql);
    fprintf(f, ",\"steps\":[");
    ctrl_batch b;
    ctrl_batch_alloc(&b, B, S, A);
    int rc = 0;
    for (int step = 0; step < 3; step++) {
        fill_batch(&b, &data, step);
        ctrl_metrics m = {0};
        if (ctrl_algo_riql.update(agent, &b, &rng, &m, &err)) {
            fprintf(stderr, "update: %s\n", err.msg);
            rc = 1;
            break;
        }
        fprintf(f, "%s{", step ? "," : "");
        dump_put_batch(f, &b);
        fputc(',', f);
        dump_put_metrics(f, &m);
        fprintf(f, ",\"after\":");
        dump_put_tensors(f, agent, &ctrl_algo_riql);
        fputc('}', f);
    }
    fprintf(f, "]}\n");
    fclose(f);
    ctrl_batch_free(&b);
    ctrl_algo_riql.free(agent);
    return rc;
}

// tensors, metrics and actions of two agents, bit for bit
static int roundtrip(const char *variant) {
    ctrl_algo_config c;
    if (make_config(variant, &c)) return 2;
    rlhf_rng rng, data, init2;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    rng_seed(&init2, 99);
    void *x, *y;
    rlhf_err err;
    if (ctrl_algo_riql.create(&c, S, A, LOW, HIGH, &rng, &x, &err) ||
        ctrl_algo_riql.create(&c, S, A, LOW, HIGH, &init2, &y, &err))
        return fprintf(stderr, "create: %s\n", err.msg), 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, B, S, A);
    ctrl_metrics m = {0};
    // bad input is refused with a message
    {
        ctrl_algo_config bad = c;
        bad.riql_quantile = 1.5f;
        void *z = NULL;
        if (ctrl_algo_riql.create(&bad, S, A, LOW, HIGH, &rng, &z, &err) != -1 ||
            !strstr(err.msg, "riql_quantile"))
            return printf("quantile 1.5 accepted\n"), 1;
        bad = c;
        bad.riql_sigma = 0;
        if (ctrl_algo_riql.create(&bad, S, A, LOW, HIGH, &rng, &z, &err) != -1 ||
            !strstr(err.msg, "riql_sigma"))
            return printf("sigma 0 accepted\n"), 1;
        ctrl_batch wrong;
        ctrl_batch_alloc(&wrong, B, S + 1, A);
        int r = ctrl_algo_riql.update(x, &wrong, &rng, &m, &err);
        ctrl_batch_free(&wrong);
        if (r != -1 || !strstr(err.msg, "obs 4")) return printf("wrong batch accepted\n"), 1;
    }
    for (int i = 0; i < 3; i++) {
        fill_batch(&b, &data, i);
        if (ctrl_algo_riql.update(x, &b, &rng, &m, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
    }
    ctrl_tensor tx[32], ty[32];
    int nx = ctrl_algo_riql.tensors(x, tx, 32), ny = ctrl_algo_riql.tensors(y, ty, 32),
        ok = nx == ny;
    for (int i = 0; ok && i < nx; i++) {
        ok = !strcmp(tx[i].name, ty[i].name) && tx[i].n == ty[i].n;
        if (ok) memcpy(ty[i].data, tx[i].data, tx[i].n * sizeof(float));
    }
    if (!ok) printf("tensor lists differ between agents\n");
    ctrl_metrics mx = {0}, my = {0};
    ok = ok && dump_same(&ctrl_algo_riql, x, y, &mx, &my, "after load");
    for (int i = 0; ok && i < 2; i++) {
        fill_batch(&b, &data, i);
        rlhf_rng ry = rng;
        mx.n = my.n = 0;
        if (ctrl_algo_riql.update(x, &b, &rng, &mx, &err) ||
            ctrl_algo_riql.update(y, &b, &ry, &my, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        ok = dump_same(&ctrl_algo_riql, x, y, &mx, &my, i ? "second update" : "first update");
        float ax[B * A], ay[B * A];
        rlhf_rng r1 = rng, r2 = rng;
        ctrl_algo_riql.act(x, b.obs, B, 0, &r1, ax);
        ctrl_algo_riql.act(y, b.obs, B, 0, &r2, ay);
        if (ok && memcmp(ax, ay, sizeof ax)) ok = 0, printf("actions differ\n");
    }
    ctrl_batch_free(&b);
    ctrl_algo_riql.free(x);
    ctrl_algo_riql.free(y);
    if (ok) printf("ok\n");
    return ok ? 0 : 1;
}

// The contextual bandit of ctrl_algo_dump (every transition terminal, so
// Q(s, a) = r): r = -|a - a*(s)|^2, a*(s) = bias + 0.6 scale tanh(s0 - s1 +
// s2 / 2) (sign flipped in dim 1). The dataset: N rows, states and actions
// uniform in their boxes — cloning it gives the box centre, so a policy
// beating the centre was steered by its critic.
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

static int learn(const char *algo_name, int steps, const char *mode, float rate, int seed) {
    enum { N = 2000, LB = 64 };
    const ctrl_algo *algo = !strcmp(algo_name, "riql") ? &ctrl_algo_riql : &ctrl_algo_iql;
    ctrl_algo_config c;
    algo->defaults(&c);
    c.hidden = 64;
    c.layers = 2;
    if (!strcmp(algo_name, "iql_det")) c.deterministic_bc = 1;
    c.max_steps = steps;
    c.actor_lr = c.critic_lr = c.value_lr = 1e-3f;
    rlhf_rng rng, data;
    rng_seed(&rng, 3 + 100 * seed);
    rng_seed(&data, 4 + 100 * seed);
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, S, A, N, 0);
    for (int k = 0; k < N; k++) {
        float s[S], a[A];
        for (int i = 0; i < S; i++) s[i] = 2 * rng_uniform(&data) - 1;
        for (int i = 0; i < A; i++) a[i] = LOW[i] + (HIGH[i] - LOW[i]) * rng_uniform(&data);
        ctrl_buffer_add(&t, s, a, (float)bandit_reward(s, a), s, 1, 0, 0);
    }
    rlhf_err err;
    if (strcmp(mode, "none")) {
        ctrl_corrupt_opts o;
        ctrl_corrupt_defaults(&o);
        o.kind = CTRL_CORRUPT_REW;
        o.rate = rate;
        o.seed = 7 + seed;
        if (ctrl_corrupt_mode_parse(mode, &o.mode, &err) || ctrl_corrupt(&t, &o, NULL, NULL, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
    }
    void *agent;
    if (algo->create(&c, S, A, LOW, HIGH, &rng, &agent, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, LB, S, A);
    ctrl_metrics m;
    for (int it = 0; it < steps; it++) {
        ctrl_sample(&t, &b, &rng);
        m.n = 0;
        if (algo->update(agent, &b, &rng, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    double r_pi = 0, r_centre = 0;
    int n = 1024;
    for (int k = 0; k < n; k++) {
        float s[S], a[A], centre[A];
        for (int i = 0; i < S; i++) s[i] = 2 * rng_uniform(&data) - 1;
        algo->act(agent, s, 1, 1, &rng, a);
        for (int i = 0; i < A; i++) centre[i] = (HIGH[i] + LOW[i]) / 2;
        r_pi += bandit_reward(s, a) / n;
        r_centre += bandit_reward(s, centre) / n;
    }
    printf("reward_policy %.6f reward_centre %.6f reward_best 0\n", r_pi, r_centre);
    ctrl_batch_free(&b);
    ctrl_transitions_free(&t);
    algo->free(agent);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 7 && !strcmp(argv[1], "learn"))
        return learn(argv[2], atoi(argv[3]), argv[4], (float)atof(argv[5]), atoi(argv[6]));
    if (argc >= 4 && !strcmp(argv[2], "parity")) return parity(argv[1], argv[3]);
    if (argc >= 3 && !strcmp(argv[2], "roundtrip")) return roundtrip(argv[1]);
    fprintf(
        stderr,
        "usage: ctrl_riql_dump riql|riql_q3 parity OUT.json | roundtrip\n"
        "       ctrl_riql_dump learn riql|iql|iql_det STEPS random|adversarial|none RATE SEED\n");
    return 2;
}
