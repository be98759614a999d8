// ctrl_cpl_dump: drives CPL (algo_cpl.c, cpl_prefs.c) for tests/ctrl_cpl_test.py.
//
//   ctrl_cpl_dump VARIANT parity OUT.json   a small agent (obs 3, act 2,
//       hidden 16, 2 layers, uneven bounds) on 60 synthetic rows (episodes of
//       12 ending by timeout, segments of 5, 8 labelled pairs, one tie), its
//       tensors before, three updates and the tensors, metrics and drawn pairs
//       after each, for an independent PyTorch replay. VARIANT cpl: the
//       paper's alpha 0.1, lambda 0.5, one BC step first (Adam restarts after
//       it), 3 pairs per update; cpl_bc: alpha 0.3, lambda 0.8, BC coefficient
//       0.25, no BC steps. cpl_kl (the table cpl_kl, its alpha 0.2 and lambda
//       0.75): two BC steps, then four CPL-KL steps at the full lr (the
//       policy moves away from its reference); cpl_kl_sched: one BC step,
//       BC coefficient 0.3, the lr scaled by 0.5 and warmed up over 2 CPL
//       updates, five updates. cpl_ranked: one BC step, then 2 x 3
//       segments drawn from the pairs' segments and ranked by their scores
//       (lambda 0.7, BC coefficient 0.2).
//   ctrl_cpl_dump roundtrip [VARIANT]   three updates (VARIANT cpl by
//       default), the tensors into a fresh agent; two more updates on both
//       agree bit for bit; with cpl, refusals of bad settings (both tables)
//       and pairs. Prints "ok" or the mismatch.
//   ctrl_cpl_dump learn ALGO STEPS SEED   an offline contextual bandit as a
//       sequence (episodes of 16 steps, states uniform, actions uniform in the
//       box, reward -|a - a*(s)|^2): ALGO cpl learns from 400 pairs of
//       8-step segments labelled by their summed reward (cpl_ranked: with
//       --cpl_ranked 1; cpl_kl: CPL-KL with its table's defaults but BC and
//       warm-up each a sixth of STEPS), ALGO bc clones the data; prints the
//       true mean reward of the greedy policy and of the box centre.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ctrl/algo_cpl.h"
#include "ctrl/cpl_prefs.h"
#include "ctrl_dump_common.h"

extern const ctrl_algo ctrl_algo_bc;

enum { S = 3, A = 2, HIDDEN = 16, LAYERS = 2, BATCH = 6, EP = 12, SEG = 5, NP = 8 };
static const float LOW[A] = {-1.0f, -2.0f}, HIGH[A] = {1.0f, 0.5f};

// the table of VARIANT, its settings and its number of updates
static const ctrl_algo *make_config(const char *variant, ctrl_algo_config *c, int *steps) {
    int kl = !strncmp(variant, "cpl_kl", 6);
    const ctrl_algo *al = kl ? &ctrl_algo_cpl_kl : &ctrl_algo_cpl;
    al->defaults(c);
    c->hidden = HIDDEN;
    c->layers = LAYERS;
    c->actor_lr = 3e-3f;
    c->cpl_batch = 3;
    *steps = 3;
    if (!strcmp(variant, "cpl_kl")) {  // alpha 0.2, lambda 0.75: the table's
        c->cpl_bc_steps = 2;
        c->cpl_lr_scale = 1;
        c->cpl_warmup = 0;
        *steps = 6;
        return al;
    }
    if (!strcmp(variant, "cpl_kl_sched")) {
        c->cpl_bc_steps = 1;
        c->cpl_bc_coeff = 0.3f;
        c->cpl_lr_scale = 0.5f;
        c->cpl_warmup = 2;
        *steps = 5;
        return al;
    }
    if (!strcmp(variant, "cpl_ranked")) {  // 6 segments ranked by score an update
        c->cpl_bc_steps = 1;
        c->cpl_lambda = 0.7f;
        c->cpl_bc_coeff = 0.2f;
        c->cpl_ranked = 1;
        return al;
    }
    if (!strcmp(variant, "cpl")) {
        c->cpl_bc_steps = 1;
        return al;
    }
    if (!strcmp(variant, "cpl_bc")) {
        c->cpl_alpha = 0.3f;
        c->cpl_lambda = 0.8f;
        c->cpl_bc_coeff = 0.25f;
        return al;
    }
    return NULL;
}

// 60 rows, episodes of EP ending by timeout; actions inside the box
static void make_data(ctrl_transitions *t, rlhf_rng *r, long n) {
    ctrl_transitions_alloc(t, S, A, n, 0);
    float o[S], a[A], o2[S];
    for (long k = 0; k < n; k++) {
        for (int i = 0; i < S; i++) o[i] = 2 * rng_uniform(r) - 1, o2[i] = 2 * rng_uniform(r) - 1;
        for (int i = 0; i < A; i++)
            a[i] = LOW[i] + (HIGH[i] - LOW[i]) * (0.05f + 0.9f * rng_uniform(r));
        ctrl_buffer_add(t, o, a, 2 * rng_uniform(r) - 1, o2, 0, k % EP == EP - 1, 0);
    }
}

static void make_pairs(const ctrl_transitions *t, rlhf_rng *r, cpl_pairs *p) {
    long ns, *starts = cpl_segments(t, SEG, &ns);
    cpl_pairs_make(starts, ns, SEG, t->n, t->rew, NP, r, p);
    p->y[NP - 1] = 0.5f;  // a tie
    free(starts);
}

static void fill_batch(ctrl_batch *b, const ctrl_transitions *t, rlhf_rng *r) {
    ctrl_sample(t, b, r);
}

static int parity(const char *variant, const char *path) {
    ctrl_algo_config c;
    int n_steps;
    const ctrl_algo *al = make_config(variant, &c, &n_steps);
    if (!al) return 2;
    rlhf_rng rng, data;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    ctrl_transitions t;
    make_data(&t, &data, 60);
    cpl_pairs p = {0};
    make_pairs(&t, &data, &p);
    void *agent;
    rlhf_err err;
    if (al->create(&c, S, A, LOW, HIGH, &rng, &agent, &err) ||
        cpl_agent_set_pairs(agent, &t, &p, &err))
        return fprintf(stderr, "create: %s\n", err.msg), 1;
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "{\"S\":%d,\"A\":%d,\"hidden\":%d,\"layers\":%d,\"seg\":%d,\"low\":", S, A, HIDDEN,
            LAYERS, SEG);
    dump_put_array(f, LOW, A);
    fprintf(f, ",\"high\":");
    dump_put_array(f, HIGH, A);
    fprintf(f,
            ",\"algo\":\"%s\",\"config\":{\"actor_lr\":%.9g,\"cpl_alpha\":%.9g,"
            "\"cpl_lambda\":%.9g,\"cpl_bc_coeff\":%.9g,\"cpl_batch\":%d,\"cpl_bc_steps\":%d,"
            "\"cpl_lr_scale\":%.9g,\"cpl_warmup\":%d,\"cpl_ranked\":%d,\"log_std_min\":%.9g,"
            "\"log_std_max\":%.9g},",
            al->name, c.actor_lr, c.cpl_alpha, c.cpl_lambda, c.cpl_bc_coeff, c.cpl_batch,
            c.cpl_bc_steps, c.cpl_lr_scale, c.cpl_warmup, c.cpl_ranked, c.log_std_min,
            c.log_std_max);
    fprintf(f, "\"obs\":");
    dump_put_array(f, t.obs, t.n * S);
    fprintf(f, ",\"act\":");
    dump_put_array(f, t.act, t.n * A);
    fprintf(f, ",\"pair_a\":[");
    for (long k = 0; k < p.n; k++) fprintf(f, "%s%ld", k ? "," : "", p.a[k]);
    fprintf(f, "],\"pair_b\":[");
    for (long k = 0; k < p.n; k++) fprintf(f, "%s%ld", k ? "," : "", p.b[k]);
    fprintf(f, "],\"y\":");
    dump_put_array(f, p.y, p.n);
    fprintf(f, ",\"score_a\":[");
    for (long k = 0; k < p.n; k++) fprintf(f, "%s%.9g", k ? "," : "", p.score_a[k]);
    fprintf(f, "],\"score_b\":[");
    for (long k = 0; k < p.n; k++) fprintf(f, "%s%.9g", k ? "," : "", p.score_b[k]);
    fprintf(f, "]");
    fprintf(f, ",\"before\":");
    dump_put_tensors(f, agent, al);
    fprintf(f, ",\"steps\":[");
    ctrl_batch b;
    ctrl_batch_alloc(&b, BATCH, S, A);
    int rc = 0;
    for (int step = 0; step < n_steps; step++) {
        fill_batch(&b, &t, &data);
        rlhf_rng peek = rng;  // the pairs (ranked: segments) the update draws, one uniform each
        int drawn[32], nd = c.cpl_ranked ? 2 * c.cpl_batch : c.cpl_batch;
        long pool = c.cpl_ranked ? 2 * p.n : p.n;
        for (int k = 0; k < nd; k++) {
            long i = (long)(rng_uniform(&peek) * pool);
            drawn[k] = (int)(i >= pool ? pool - 1 : i);
        }
        ctrl_metrics m = {0};
        if (al->update(agent, &b, &rng, &m, &err)) {
            fprintf(stderr, "update: %s\n", err.msg);
            rc = 1;
            break;
        }
        fprintf(f, "%s{", step ? "," : "");
        dump_put_batch(f, &b);
        fprintf(f, ",\"drawn\":[");
        for (int k = 0; k < nd; k++) fprintf(f, "%s%d", k ? "," : "", drawn[k]);
        fprintf(f, "],");
        dump_put_metrics(f, &m);
        fprintf(f, ",\"after\":");
        dump_put_tensors(f, agent, al);
        fputc('}', f);
    }
    fprintf(f, "]}\n");
    fclose(f);
    ctrl_batch_free(&b);
    al->free(agent);
    cpl_pairs_free(&p);
    ctrl_transitions_free(&t);
    return rc;
}

// refusals: each must fail naming `what` (c: a valid cpl config)
static int refusals(const ctrl_algo_config *c, const ctrl_transitions *t, cpl_pairs *p) {
    struct {
        const ctrl_algo *al;
        float alpha, lambda, bc, lr_scale;
        int batch, steps, warmup;
        const char *what;
    } bad[] = {{&ctrl_algo_cpl, 0, 0.5f, 0, 1, 3, 0, 0, "cpl_alpha"},
               {&ctrl_algo_cpl, 0.1f, 0, 0, 1, 3, 0, 0, "cpl_lambda"},
               {&ctrl_algo_cpl, 0.1f, 1.5f, 0, 1, 3, 0, 0, "cpl_lambda"},
               {&ctrl_algo_cpl, 0.1f, 0.5f, -1, 1, 3, 0, 0, "cpl_bc_coeff"},
               {&ctrl_algo_cpl, 0.1f, 0.5f, 0, 1, 0, 0, 0, "cpl_batch"},
               {&ctrl_algo_cpl, 0.1f, 0.5f, 0, 1, 3, -2, 0, "cpl_bc_steps"},
               {&ctrl_algo_cpl, 0.1f, 0.5f, 0, 0, 3, 0, 0, "cpl_lr_scale"},
               {&ctrl_algo_cpl, 0.1f, 0.5f, 0, NAN, 3, 0, 0, "cpl_lr_scale"},
               {&ctrl_algo_cpl, 0.1f, 0.5f, 0, 1, 3, 0, -1, "cpl_warmup"},
               {&ctrl_algo_cpl_kl, 0.2f, 0.75f, 0, 0.1f, 3, 0, 10, "cpl_bc_steps"},
               {&ctrl_algo_cpl_kl, 0.2f, 0.75f, 0, -0.1f, 3, 5, 10, "cpl_lr_scale"},
               {&ctrl_algo_cpl_kl, 0.2f, 2.0f, 0, 0.1f, 3, 5, 10, "cpl_lambda"}};
    rlhf_rng rng;
    rng_seed(&rng, 5);
    rlhf_err err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ctrl_algo_config x = *c;
        x.cpl_alpha = bad[i].alpha, x.cpl_lambda = bad[i].lambda, x.cpl_bc_coeff = bad[i].bc;
        x.cpl_batch = bad[i].batch, x.cpl_bc_steps = bad[i].steps;
        x.cpl_lr_scale = bad[i].lr_scale, x.cpl_warmup = bad[i].warmup;
        void *z = NULL;
        if (bad[i].al->create(&x, S, A, LOW, HIGH, &rng, &z, &err) != -1 ||
            !strstr(err.msg, bad[i].what) || !strstr(err.msg, bad[i].al->name))
            return printf("%s: bad %s accepted (or not named)\n", bad[i].al->name, bad[i].what), 1;
    }
    void *z;
    if (ctrl_algo_cpl.create(c, S, A, LOW, HIGH, &rng, &z, &err)) return 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, BATCH, S, A);
    ctrl_metrics m = {0};
    int r1 = ctrl_algo_cpl.update(z, &b, &rng, &m, &err);  // no pairs yet
    int ok = r1 == -1 && strstr(err.msg, "pairs");
    cpl_pairs q = *p;
    q.rows = t->n + 1;
    ok = ok && cpl_agent_set_pairs(z, t, &q, &err) == -1 && strstr(err.msg, "rows");
    ctrl_algo_cpl.free(z);
    ctrl_algo_config x = *c;  // cpl_ranked: 0 or 1, and pairs with scores
    x.cpl_ranked = 2;
    ok = ok && ctrl_algo_cpl.create(&x, S, A, LOW, HIGH, &rng, &z, &err) == -1 &&
         strstr(err.msg, "cpl_ranked");
    x.cpl_ranked = 1;
    if (ctrl_algo_cpl.create(&x, S, A, LOW, HIGH, &rng, &z, &err)) return 1;
    double keep = p->score_b[2];
    p->score_b[2] = NAN;
    ok = ok && cpl_agent_set_pairs(z, t, p, &err) == -1 && strstr(err.msg, "score_a / score_b") &&
         strstr(err.msg, "pair 2");
    p->score_b[2] = keep;
    ctrl_batch_free(&b);
    ctrl_algo_cpl.free(z);
    if (!ok) printf("an update without pairs, pairs of another dataset, cpl_ranked 2 or ranking "
                    "without scores accepted\n");
    return !ok;
}

// VARIANT's agent: three updates, its tensors into a fresh agent, two more
// updates on both must agree bit for bit (cpl_kl: the reference included)
static int roundtrip(const char *variant) {
    ctrl_algo_config c;
    int n_steps;
    const ctrl_algo *al = make_config(variant, &c, &n_steps);
    if (!al) return 2;
    rlhf_rng rng, data, init2;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    rng_seed(&init2, 99);
    ctrl_transitions t;
    make_data(&t, &data, 60);
    cpl_pairs p = {0};
    make_pairs(&t, &data, &p);
    if (al == &ctrl_algo_cpl && refusals(&c, &t, &p)) return 1;
    void *x, *y;
    rlhf_err err;
    if (al->create(&c, S, A, LOW, HIGH, &rng, &x, &err) ||
        al->create(&c, S, A, LOW, HIGH, &init2, &y, &err) ||
        cpl_agent_set_pairs(x, &t, &p, &err) || cpl_agent_set_pairs(y, &t, &p, &err))
        return fprintf(stderr, "create: %s\n", err.msg), 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, BATCH, S, A);
    ctrl_metrics m = {0};
    for (int i = 0; i < 3; i++) {
        fill_batch(&b, &t, &data);
        if (al->update(x, &b, &rng, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    ctrl_tensor tx[32], ty[32];
    int nx = al->tensors(x, tx, 32), ny = al->tensors(y, ty, 32), ok = nx == ny;
    for (int i = 0; ok && i < nx; i++) {
        ok = !strcmp(tx[i].name, ty[i].name) && tx[i].n == ty[i].n;
        if (ok) memcpy(ty[i].data, tx[i].data, tx[i].n * sizeof(float));
    }
    ctrl_metrics mx = {0}, my = {0};
    ok = ok && dump_same(al, x, y, &mx, &my, "after load");
    for (int i = 0; ok && i < 2; i++) {
        fill_batch(&b, &t, &data);
        rlhf_rng ry = rng;
        mx.n = my.n = 0;
        if (al->update(x, &b, &rng, &mx, &err) || al->update(y, &b, &ry, &my, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        ok = dump_same(al, x, y, &mx, &my, i ? "second update" : "first update");
    }
    ctrl_batch_free(&b);
    al->free(x);
    al->free(y);
    cpl_pairs_free(&p);
    ctrl_transitions_free(&t);
    if (ok) printf("ok\n");
    return ok ? 0 : 1;
}

// the bandit's best action: a*(s) = bias + 0.6 scale tanh(s0 - s1 + s2/2), sign flipped in dim 1
static void best(const float *s, float *a) {
    float t = tanhf(s[0] - s[1] + 0.5f * s[2]);
    for (int i = 0; i < A; i++) {
        float sc = (HIGH[i] - LOW[i]) / 2, bi = (HIGH[i] + LOW[i]) / 2;
        a[i] = bi + 0.6f * sc * (i ? -t : t);
    }
}

static float reward(const float *s, const float *a) {
    float b[A], r = 0;
    best(s, b);
    for (int i = 0; i < A; i++) r -= (a[i] - b[i]) * (a[i] - b[i]);
    return r;
}

static int learn(const char *algo, int steps, uint64_t seed) {
    rlhf_rng data, rng;
    rng_seed(&data, 1000 + seed);
    rng_seed(&rng, seed);
    long N = 4000;
    ctrl_transitions t;
    ctrl_transitions_alloc(&t, S, A, N, 0);
    float o[S], a[A];
    for (long k = 0; k < N; k++) {
        for (int i = 0; i < S; i++) o[i] = 2 * rng_uniform(&data) - 1;
        for (int i = 0; i < A; i++) a[i] = LOW[i] + (HIGH[i] - LOW[i]) * rng_uniform(&data);
        ctrl_buffer_add(&t, o, a, reward(o, a), o, 0, k % 16 == 15, 0);
    }
    long ns, *starts = cpl_segments(&t, 8, &ns);
    cpl_pairs p = {0};
    cpl_pairs_make(starts, ns, 8, t.n, t.rew, 400, &data, &p);
    free(starts);
    int ranked = !strcmp(algo, "cpl_ranked"), kl = !strcmp(algo, "cpl_kl");
    const ctrl_algo *al = kl ? &ctrl_algo_cpl_kl
                          : ranked || !strcmp(algo, "cpl") ? &ctrl_algo_cpl
                                                           : &ctrl_algo_bc;
    ctrl_algo_config c;
    al->defaults(&c);
    c.hidden = 64;
    c.cpl_batch = 8;
    c.cpl_ranked = ranked;
    if (kl) {  // the table's schedule scaled to a 600-update run: BC first, then a warm-up
        c.cpl_bc_steps = steps / 6;
        c.cpl_warmup = steps / 6;
    }
    void *ag;
    rlhf_err err;
    if (al->create(&c, S, A, LOW, HIGH, &rng, &ag, &err) ||
        (al != &ctrl_algo_bc && cpl_agent_set_pairs(ag, &t, &p, &err)))
        return fprintf(stderr, "%s\n", err.msg), 1;
    ctrl_batch b;
    ctrl_batch_alloc(&b, 64, S, A);
    for (int i = 0; i < steps; i++) {
        ctrl_metrics m = {0};
        ctrl_sample(&t, &b, &rng);
        if (al->update(ag, &b, &rng, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    double r_pol = 0, r_mid = 0;
    int M = 1000;
    rlhf_rng ev;
    rng_seed(&ev, 77);
    for (int k = 0; k < M; k++) {
        float s[S], act[A], mid[A];
        for (int i = 0; i < S; i++) s[i] = 2 * rng_uniform(&ev) - 1;
        al->act(ag, s, 1, 1, &ev, act);
        for (int i = 0; i < A; i++) mid[i] = (HIGH[i] + LOW[i]) / 2;
        r_pol += reward(s, act);
        r_mid += reward(s, mid);
    }
    printf("policy %.4f centre %.4f\n", r_pol / M, r_mid / M);
    ctrl_batch_free(&b);
    al->free(ag);
    cpl_pairs_free(&p);
    ctrl_transitions_free(&t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[2], "parity")) return parity(argv[1], argv[3]);
    if (argc >= 2 && !strcmp(argv[1], "roundtrip")) return roundtrip(argc >= 3 ? argv[2] : "cpl");
    if (argc >= 5 && !strcmp(argv[1], "learn"))
        return learn(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
    fprintf(stderr, "usage: ctrl_cpl_dump VARIANT parity OUT | roundtrip [VARIANT] | learn ALGO STEPS SEED\n");
    return 2;
}
