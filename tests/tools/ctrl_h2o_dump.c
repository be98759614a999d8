// ctrl_h2o_dump: drives H2O (algo_h2o.c) for tests/ctrl_h2o_test.py.
//
//   ctrl_h2o_dump parity DIR    a small agent (obs 3, act 2 with uneven
//       bounds, hidden 16, 2 layers, 2 critics, B 8, 3 perturbed s' per sim
//       row): DIR/meta.json, DIR/init.<tensor>.f32, and for updates k = 1..4
//       (real rows 4, 3, 8 = no sim rows, 0 = no real rows) the batch
//       (batch.k.*), the update's noise (noise.k: ctrl_h2o_draw_noise on a
//       copy of the rng), the tensors after it (after.k.<tensor>) and its
//       metrics (in meta.json) — for an independent PyTorch replay.
//   ctrl_h2o_dump roundtrip     three updates, the tensors into a fresh agent
//       from another seed; two more updates on both agree bit for bit; bad
//       settings and batches are refused. Prints "ok" or the mismatch.
//   ctrl_h2o_dump ratio SIM_ENV UPDATES SEED   real rows: 4000 uniform-random
//       transitions of pendulum; sim rows: 4000 of SIM_ENV; UPDATES H2O
//       updates on half-real half-sim batches of 64 (hidden 32); prints
//       "ratio_sim X disc_loss Y": the mean dynamics ratio w on sim rows and
//       the discriminators' loss over the last 100 updates.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ctrl/agent.h"
#include "ctrl/ctrl_train.h"
#include "ctrl/h2o_loss.h"
#include "ctrl_dump_common.h"

extern const ctrl_algo ctrl_algo_h2o;

enum { S = 3, A = 2, B = 8, HIDDEN = 16, LAYERS = 2, K = 3, UPDATES = 4 };
static const float LOW[A] = {-1.0f, -2.0f}, HIGH[A] = {1.0f, 0.5f};
static const int N_REAL[UPDATES] = {4, 3, 8, 0};

static void make_config(ctrl_algo_config *c) {
    ctrl_algo_h2o.defaults(c);
    c->hidden = HIDDEN;
    c->layers = LAYERS;
    c->actor_lr = 1e-3f;
    c->critic_lr = 2e-3f;
    c->alpha_lr = 5e-3f;
    c->h2o_disc_lr = 3e-3f;
    c->tau = 0.05f;
    c->h2o_u_samples = K;
    c->h2o_cql_weight = 0.5f; // larger than 0.01 so the term moves the critic visibly
    c->h2o_disc_noise = 0.1f;
}

static void fill_batch(ctrl_batch *b, rlhf_rng *r, int n_real) {
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
    b->n_offline = n_real;
}

static int parity(const char *dir) {
    ctrl_algo_config c;
    make_config(&c);
    rlhf_rng rng, data;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    void *agent;
    rlhf_err err;
    if (ctrl_algo_h2o.create(&c, S, A, LOW, HIGH, &rng, &agent, &err))
        return fprintf(stderr, "create: %s\n", err.msg), 1;
    dump_write_tensors("ctrl_h2o_dump", dir, agent, &ctrl_algo_h2o, "init.");
    char path[1024], name[256];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f,
            "{\"S\":%d,\"A\":%d,\"B\":%d,\"hidden\":%d,\"layers\":%d,\"E\":%d,\"K\":%d,"
            "\"updates\":%d,\"gamma\":%.9g,\"tau\":%.9g,\"actor_lr\":%.9g,\"critic_lr\":%.9g,"
            "\"alpha_lr\":%.9g,\"disc_lr\":%.9g,\"cql_weight\":%.9g,\"cql_temp\":%.9g,"
            "\"disc_noise\":%.9g,\"ratio_min\":%.9g,\"ratio_max\":%.9g,\"u_max\":%.9g,"
            "\"log_std_min\":%.9g,\"log_std_max\":%.9g,\"target_entropy\":%d,\"low\":",
            S, A, B, HIDDEN, LAYERS, c.n_critics, K, UPDATES, c.gamma, c.tau, c.actor_lr,
            c.critic_lr, c.alpha_lr, c.h2o_disc_lr, c.h2o_cql_weight, c.cql_temp,
            c.h2o_disc_noise, c.h2o_ratio_min, c.h2o_ratio_max, c.h2o_u_max, c.log_std_min,
            c.log_std_max, -A);
    dump_put_array(f, LOW, A);
    fprintf(f, ",\"high\":");
    dump_put_array(f, HIGH, A);
    fprintf(f, ",\"n_real\":[%d,%d,%d,%d],\"metrics\":[", N_REAL[0], N_REAL[1], N_REAL[2],
            N_REAL[3]);
    ctrl_batch b;
    ctrl_batch_alloc(&b, B, S, A);
    float *noise = xmalloc(sizeof(float) * ctrl_h2o_noise_size(B, S, A, B, K));
    int rc = 0;
    for (int k = 1; k <= UPDATES; k++) {
        fill_batch(&b, &data, N_REAL[k - 1]);
        rlhf_rng copy = rng;
        int n_sim = B - b.n_offline;
        ctrl_h2o_draw_noise(&copy, B, S, A, n_sim, K, noise);
        snprintf(name, sizeof name, "noise.%d", k);
        dump_write_f32("ctrl_h2o_dump", dir, name, noise, ctrl_h2o_noise_size(B, S, A, n_sim, K));
        const char *fields[] = {"obs", "act", "rew", "next_obs", "done"};
        const float *vals[] = {b.obs, b.act, b.rew, b.next_obs, b.done};
        long ns[] = {B * S, B * A, B, B * S, B};
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof name, "batch.%d.%s", k, fields[i]);
            dump_write_f32("ctrl_h2o_dump", dir, name, vals[i], ns[i]);
        }
        ctrl_metrics m = {0};
        if (ctrl_algo_h2o.update(agent, &b, &rng, &m, &err)) {
            fprintf(stderr, "update %d: %s\n", k, err.msg);
            rc = 1;
            break;
        }
        snprintf(name, sizeof name, "after.%d.", k);
        dump_write_tensors("ctrl_h2o_dump", dir, agent, &ctrl_algo_h2o, name);
        fprintf(f, "%s{", k > 1 ? "," : "");
        dump_put_metrics(f, &m);
        fputc('}', f);
    }
    fprintf(f, "]}\n");
    fclose(f);
    free(noise);
    ctrl_batch_free(&b);
    ctrl_algo_h2o.free(agent);
    return rc;
}

static int refusals(void *x, rlhf_rng *rng) {
    ctrl_algo_config c, bad;
    make_config(&c);
    rlhf_err err;
    void *z = NULL;
    bad = c, bad.h2o_ratio_min = 0;
    if (ctrl_algo_h2o.create(&bad, S, A, LOW, HIGH, rng, &z, &err) != -1 ||
        !strstr(err.msg, "h2o_ratio_min"))
        return printf("ratio_min 0 accepted\n"), 1;
    bad = c, bad.h2o_u_samples = 0;
    if (ctrl_algo_h2o.create(&bad, S, A, LOW, HIGH, rng, &z, &err) != -1 ||
        !strstr(err.msg, "h2o_u_samples"))
        return printf("u_samples 0 accepted\n"), 1;
    ctrl_batch wrong;
    ctrl_batch_alloc(&wrong, B, S + 1, A);
    ctrl_metrics m = {0};
    int r = ctrl_algo_h2o.update(x, &wrong, rng, &m, &err);
    ctrl_batch_free(&wrong);
    if (r != -1 || !strstr(err.msg, "obs 4")) return printf("wrong batch accepted\n"), 1;
    ctrl_batch odd;
    ctrl_batch_alloc(&odd, B, S, A);
    odd.n_offline = B + 1;
    r = ctrl_algo_h2o.update(x, &odd, rng, &m, &err);
    ctrl_batch_free(&odd);
    if (r != -1 || !strstr(err.msg, "n_offline")) return printf("n_offline 9 accepted\n"), 1;
    return 0;
}

static int roundtrip(void) {
    ctrl_algo_config c;
    make_config(&c);
    rlhf_rng rng, data, init2;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    rng_seed(&init2, 99);
    void *x, *y;
    rlhf_err err;
    if (ctrl_algo_h2o.create(&c, S, A, LOW, HIGH, &rng, &x, &err) ||
        ctrl_algo_h2o.create(&c, S, A, LOW, HIGH, &init2, &y, &err))
        return fprintf(stderr, "create: %s\n", err.msg), 1;
    if (refusals(x, &rng)) return 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, B, S, A);
    ctrl_metrics m = {0};
    for (int i = 0; i < 3; i++) {
        fill_batch(&b, &data, 4);
        if (ctrl_algo_h2o.update(x, &b, &rng, &m, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
    }
    ctrl_tensor tx[32], ty[32];
    int nx = ctrl_algo_h2o.tensors(x, tx, 32), ny = ctrl_algo_h2o.tensors(y, ty, 32), ok = nx == ny;
    for (int i = 0; ok && i < nx; i++) {
        ok = !strcmp(tx[i].name, ty[i].name) && tx[i].n == ty[i].n;
        if (ok) memcpy(ty[i].data, tx[i].data, tx[i].n * sizeof(float));
    }
    if (!ok) printf("tensor lists differ between agents\n");
    ctrl_metrics mx = {0}, my = {0};
    ok = ok && dump_same(&ctrl_algo_h2o, x, y, &mx, &my, "after load");
    for (int i = 0; ok && i < 2; i++) {
        fill_batch(&b, &data, 5);
        rlhf_rng ry = rng;
        mx.n = my.n = 0;
        if (ctrl_algo_h2o.update(x, &b, &rng, &mx, &err) ||
            ctrl_algo_h2o.update(y, &b, &ry, &my, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        ok = dump_same(&ctrl_algo_h2o, x, y, &mx, &my, i ? "second update" : "first update");
        float ax[B * A], ay[B * A];
        rlhf_rng r1 = rng, r2 = rng;
        ctrl_algo_h2o.act(x, b.obs, B, 0, &r1, ax);
        ctrl_algo_h2o.act(y, b.obs, B, 0, &r2, ay);
        if (ok && memcmp(ax, ay, sizeof ax)) ok = 0, printf("actions differ\n");
    }
    ctrl_batch_free(&b);
    ctrl_algo_h2o.free(x);
    ctrl_algo_h2o.free(y);
    if (ok) printf("ok\n");
    return ok ? 0 : 1;
}

static int rollout(const char *env_name, uint64_t seed, ctrl_transitions *t) {
    ctrl_env *e;
    rlhf_err err;
    if (ctrl_env_make(env_name, &e, &err) ||
        (ctrl_transitions_alloc(t, e->obs_dim, e->act_dim, 4000, 0), 0) ||
        ctrl_rollout(e, NULL, 4000, seed, 0, t, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    ctrl_env_free(e);
    return 0;
}

static int ratio(const char *sim_env, int updates, int seed) {
    enum { LB = 64 };
    ctrl_transitions real, sim;
    if (rollout("pendulum", 10 + seed, &real) || rollout(sim_env, 20 + seed, &sim)) return 1;
    ctrl_algo_config c;
    ctrl_algo_h2o.defaults(&c);
    c.hidden = 32;
    c.h2o_disc_lr = 1e-3f;
    rlhf_rng rng;
    rng_seed(&rng, 30 + seed);
    void *agent;
    rlhf_err err;
    float low = -2.0f, high = 2.0f;
    if (ctrl_algo_h2o.create(&c, 3, 1, &low, &high, &rng, &agent, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, LB, 3, 1);
    double w = 0, d = 0;
    int n = 0;
    for (int it = 0; it < updates; it++) {
        ctrl_sample_mixed(&real, &sim, 0.5f, &b, &rng);
        ctrl_metrics m = {0};
        if (ctrl_algo_h2o.update(agent, &b, &rng, &m, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        if (it < updates - 100) continue;
        for (int i = 0; i < m.n; i++) {
            if (!strcmp(m.name[i], "ratio_sim")) w += m.value[i];
            if (!strcmp(m.name[i], "disc_loss")) d += m.value[i];
        }
        n++;
    }
    printf("ratio_sim %.6f disc_loss %.6f\n", w / n, d / n);
    ctrl_batch_free(&b);
    ctrl_transitions_free(&real);
    ctrl_transitions_free(&sim);
    ctrl_algo_h2o.free(agent);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "parity")) return parity(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "roundtrip")) return roundtrip();
    if (argc == 5 && !strcmp(argv[1], "ratio")) return ratio(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: ctrl_h2o_dump parity DIR | roundtrip | ratio SIM_ENV UPDATES SEED\n");
    return 2;
}
