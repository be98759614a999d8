// ctrl_moorl_dump MODE OUTDIR [UPDATES]: for tests/ctrl_moorl_test.py.
//
//   parity     a small moorl agent (seed 3; obs 3, act 2 with uneven bounds,
//              hidden 16, 2 layers, 2 critics, K 3, eps 0.4, p_offline 0.5,
//              lr 1e-2) and one batch of B 8 rows whose first 3 are "offline"
//              (n_offline 3); UPDATES meta-epochs (default 3). Writes raw
//              float32 files into OUTDIR:
//                meta.json               sizes, bounds, hyper-parameters
//                init.<tensor>.f32       every span before the first meta-epoch
//                batch.<field>.f32       obs act rew next_obs done
//                draws.<k>.f32           meta-epoch k's draws: the coin u, then
//                                        K blocks of SAC noise for the chosen
//                                        rows (read on a copy of the rng)
//                after.<k>.<tensor>.f32  every span after meta-epoch k
//                metrics.<k>.json        the metrics meta-epoch k reported
//   roundtrip  two meta-epochs, then the agent's tensors copied into a fresh
//              agent (another seed); both take two more meta-epochs from the
//              same rng state: prints "roundtrip ok" when they stay bit-identical
//   refuse     create with K 0, eps 0, eps 1.5, p_offline 2 and a batch of
//              other dims: prints each message, exits 0 when all are refused
// The table is referenced directly (agent.c's registry holds it weakly).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"
#include "ctrl/cql_loss.h"
#include "ctrl_dump_common.h"

extern const ctrl_algo ctrl_algo_moorl;
static const ctrl_algo *algo = &ctrl_algo_moorl;

enum { O = 3, A = 2, B = 8, NOFF = 3 };
static const float low[2] = {-1.0f, -2.0f}, high[2] = {1.0f, 0.5f};
static float obs[B * O], act[B * A], rew[B], next_obs[B * O], done[B];
static const char *dir;

static void write_f32(const char *name, const float *x, long n) {
    dump_write_f32("ctrl_moorl_dump", dir, name, x, n);
}

static void config(ctrl_algo_config *c) {
    algo->defaults(c);
    c->hidden = 16;
    c->layers = 2;
    c->n_critics = 2;
    c->actor_lr = c->critic_lr = c->alpha_lr = 1e-2f;
    c->moorl_inner_steps = 3;
    c->moorl_meta_lr = 0.4f;
    c->moorl_p_offline = 0.5f;
}

static ctrl_batch make_batch(rlhf_rng *rng) {
    for (int i = 0; i < B * O; i++)
        obs[i] = 2 * rng_uniform(rng) - 1, next_obs[i] = 2 * rng_uniform(rng) - 1;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < A; i++) act[b * A + i] = low[i] + (high[i] - low[i]) * rng_uniform(rng);
        rew[b] = 2 * rng_uniform(rng) - 1;
        done[b] = b == 5 ? 1.0f : 0.0f;
    }
    return (ctrl_batch){.B = B,
                        .obs_dim = O,
                        .act_dim = A,
                        .obs = obs,
                        .act = act,
                        .rew = rew,
                        .next_obs = next_obs,
                        .done = done,
                        .n_offline = NOFF};
}

static void die(const char *what, const rlhf_err *err) {
    fprintf(stderr, "ctrl_moorl_dump: %s: %s\n", what, err->msg);
    exit(2);
}

static void write_metrics(int k, const ctrl_metrics *m) {
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.%d.json", dir, k);
    FILE *f = fopen(path, "w");
    if (!f) exit(2);
    fprintf(f, "{");
    for (int i = 0; i < m->n; i++)
        fprintf(f, "%s\"%s\": %.12g", i ? ", " : "", m->name[i], m->value[i]);
    fprintf(f, "}\n");
    fclose(f);
}

static int parity(int updates) {
    ctrl_algo_config c;
    config(&c);
    rlhf_rng rng;
    rng_seed(&rng, 3);
    rlhf_err err;
    void *agent;
    if (algo->create(&c, O, A, low, high, &rng, &agent, &err)) die("create", &err);
    ctrl_batch batch = make_batch(&rng);
    write_f32("batch.obs", obs, B * O);
    write_f32("batch.act", act, B * A);
    write_f32("batch.rew", rew, B);
    write_f32("batch.next_obs", next_obs, B * O);
    write_f32("batch.done", done, B);
    dump_write_tensors("ctrl_moorl_dump", dir, agent, algo, "init.");
    char path[1024];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 2;
    fprintf(f,
            "{\"obs\": %d, \"act\": %d, \"B\": %d, \"n_offline\": %d, \"hidden\": %d, "
            "\"layers\": %d, \"E\": %d, \"updates\": %d, \"K\": %d, \"eps\": %.9g, "
            "\"p_offline\": %.9g,\n \"low\": [%.9g, %.9g], \"high\": [%.9g, %.9g],\n",
            O, A, B, NOFF, c.hidden, c.layers, c.n_critics, updates, c.moorl_inner_steps,
            c.moorl_meta_lr, c.moorl_p_offline, low[0], low[1], high[0], high[1]);
    fprintf(f,
            " \"gamma\": %.9g, \"tau\": %.9g, \"actor_lr\": %.9g, \"critic_lr\": %.9g, "
            "\"alpha_lr\": %.9g, \"target_entropy\": %.9g, \"log_std_min\": %.9g, "
            "\"log_std_max\": %.9g}\n",
            c.gamma, c.tau, c.actor_lr, c.critic_lr, c.alpha_lr,
            isnan(c.target_entropy) ? -(double)A : c.target_entropy, c.log_std_min, c.log_std_max);
    fclose(f);
    int K = c.moorl_inner_steps;
    long per = ctrl_sac_noise_size(B, A, 0);
    float *draws = xmalloc(sizeof(float) * (1 + K * per));
    for (int k = 1; k <= updates; k++) {
        // the draws as the update takes them: u, then K x SAC's noise for the chosen rows
        rlhf_rng copy = rng;
        draws[0] = (float)rng_uniform(&copy);
        int rows = draws[0] < c.moorl_p_offline ? NOFF : B - NOFF;
        long sz = ctrl_sac_noise_size(rows, A, 0);
        for (int i = 0; i < K; i++) ctrl_sac_draw_noise(&copy, rows, A, 0, draws + 1 + i * sz);
        char name[64];
        snprintf(name, sizeof name, "draws.%d", k);
        write_f32(name, draws, 1 + K * sz);
        ctrl_metrics m = {0};
        if (algo->update(agent, &batch, &rng, &m, &err)) die("update", &err);
        snprintf(name, sizeof name, "after.%d.", k);
        dump_write_tensors("ctrl_moorl_dump", dir, agent, algo, name);
        write_metrics(k, &m);
    }
    free(draws);
    algo->free(agent);
    return 0;
}

static int roundtrip(void) {
    ctrl_algo_config c;
    config(&c);
    rlhf_rng rng, other;
    rng_seed(&rng, 3);
    rng_seed(&other, 99);
    rlhf_err err;
    void *x, *y;
    if (algo->create(&c, O, A, low, high, &rng, &x, &err)) die("create", &err);
    if (algo->create(&c, O, A, low, high, &other, &y, &err)) die("create", &err);
    ctrl_batch batch = make_batch(&rng);
    ctrl_metrics mx = {0}, my = {0};
    for (int k = 0; k < 2; k++)
        if (algo->update(x, &batch, &rng, &mx, &err)) die("update", &err);
    if (dump_same(algo, x, y, &mx, &mx, NULL)) {
        printf("fresh agent already equal: the check proves nothing\n");
        return 1;
    }
    // the checkpoint's content: every tensor by name
    ctrl_tensor tx[32], ty[32];
    int nx = algo->tensors(x, tx, 32), ny = algo->tensors(y, ty, 32);
    for (int i = 0; i < nx && i < ny; i++) memcpy(ty[i].data, tx[i].data, tx[i].n * sizeof(float));
    int epochs = 0;
    for (int i = 0; i < nx; i++)
        if (!strcmp(tx[i].name, "moorl_epochs")) epochs = (int)tx[i].data[0];
    if (epochs != 2) {
        printf("moorl_epochs %d after 2 meta-epochs\n", epochs);
        return 1;
    }
    for (int k = 0; k < 2; k++) {
        rlhf_rng r2 = rng;
        mx.n = my.n = 0;
        if (algo->update(x, &batch, &rng, &mx, &err)) die("update", &err);
        if (algo->update(y, &batch, &r2, &my, &err)) die("update", &err);
        if (!dump_same(algo, x, y, &mx, &my, "after the round trip")) return 1;
    }
    printf("roundtrip ok (%d tensors)\n", nx);
    algo->free(x);
    algo->free(y);
    return 0;
}

static int refuse(void) {
    struct {
        const char *what;
        int K;
        float eps, p;
    } bad[] = {{"K 0", 0, 0.5f, 0.5f},
               {"eps 0", 3, 0.0f, 0.5f},
               {"eps 1.5", 3, 1.5f, 0.5f},
               {"p_offline 2", 3, 0.5f, 2.0f},
               {"eps nan", 3, NAN, 0.5f}};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ctrl_algo_config c;
        config(&c);
        c.moorl_inner_steps = bad[i].K;
        c.moorl_meta_lr = bad[i].eps;
        c.moorl_p_offline = bad[i].p;
        rlhf_rng rng;
        rng_seed(&rng, 1);
        rlhf_err err = {0};
        void *g = NULL;
        if (algo->create(&c, O, A, low, high, &rng, &g, &err) == 0) {
            printf("%s: accepted\n", bad[i].what);
            algo->free(g);
            ok = 0;
        } else
            printf("%s: %s\n", bad[i].what, err.msg);
    }
    // a batch of other dims
    ctrl_algo_config c;
    config(&c);
    rlhf_rng rng;
    rng_seed(&rng, 1);
    rlhf_err err = {0};
    void *g;
    if (algo->create(&c, O, A, low, high, &rng, &g, &err)) die("create", &err);
    ctrl_batch b = make_batch(&rng);
    b.obs_dim = O + 1;
    if (algo->update(g, &b, &rng, NULL, &err) == 0)
        printf("batch dims: accepted\n"), ok = 0;
    else
        printf("batch dims: %s\n", err.msg);
    algo->free(g);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: ctrl_moorl_dump parity OUTDIR [UPDATES] | roundtrip | refuse\n");
        return 2;
    }
    if (!strcmp(argv[1], "parity")) {
        if (argc < 3) return 2;
        dir = argv[2];
        return parity(argc > 3 ? atoi(argv[3]) : 3);
    }
    if (!strcmp(argv[1], "roundtrip")) return roundtrip();
    if (!strcmp(argv[1], "refuse")) return refuse();
    fprintf(stderr, "ctrl_moorl_dump: unknown mode %s\n", argv[1]);
    return 2;
}
