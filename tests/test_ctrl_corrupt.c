// ctrl/corrupt and ctrl/riql_loss: RIQL's data corruption (the rows hit are
// exactly the rows whose draw fell under the rate, only the chosen field
// changes, the noise has the distribution attack.py gives it, a seed repeats
// a corruption bit for bit, the gradient attack lowers the critic's Q more
// than random noise of the same size) and RIQL's losses (quantile by hand,
// Huber by hand and by finite differences).
#include <stdint.h>

#include "base/base.h"
#include "ctrl/corrupt.h"
#include "ctrl/riql_loss.h"
#include "test.h"

extern const ctrl_algo ctrl_algo_riql;

enum { N = 4000, S = 3, A = 2 };

// a dataset whose columns have different scales (std 0.5, 1, 2 ...)
static void make_data(ctrl_transitions *t, uint64_t seed) {
    ctrl_transitions_alloc(t, S, A, N, 0);
    rlhf_rng r;
    rng_seed(&r, seed);
    for (long i = 0; i < N; i++) {
        float o[S], a[A], o2[S];
        for (int j = 0; j < S; j++)
            o[j] = 0.5f * (j + 1) * rng_normal(&r) + j, o2[j] = o[j] + 0.1f * rng_normal(&r);
        for (int j = 0; j < A; j++) a[j] = 0.3f * (j + 1) * rng_normal(&r);
        ctrl_buffer_add(t, o, a, rng_normal(&r) + 2, o2, i % 50 == 49, 0, 0);
    }
}

static void copy_data(ctrl_transitions *dst, const ctrl_transitions *src) {
    ctrl_transitions_alloc(dst, src->obs_dim, src->act_dim, src->n, 0);
    for (long i = 0; i < src->n; i++)
        ctrl_buffer_add(dst, src->obs + i * S, src->act + i * A, src->rew[i], src->next_obs + i * S,
                        src->terminal[i], src->timeout[i], 0);
}

static int rows_equal(const float *x, const float *y, long i, int D) {
    return !memcmp(x + i * D, y + i * D, D * sizeof(float));
}

static double col_std(const float *x, int D, int j) {
    double m = 0, s = 0;
    for (long i = 0; i < N; i++) m += x[i * D + j];
    m /= N;
    for (long i = 0; i < N; i++) s += (x[i * D + j] - m) * (x[i * D + j] - m);
    return sqrt(s / N);
}

static int test_riql_losses(void) {
    // quantile: E = 5 values of one row, shuffled; alpha 0.25 -> 2nd smallest
    float q[5 * 2] = {3, 10, -1, 20, 7, 0, 2, 5, 5, 30}; // (E=5, B=2)
    float out[2];
    ctrl_ensemble_quantile(out, q, 5, 2, 0.25f);
    CHECK_CLOSE(out[0], 2.0, 0, 0);             // row 0: 3,-1,7,2,5 -> -1,2,3,5,7
    CHECK_CLOSE(out[1], 5.0, 0, 0);             // row 1: 10,20,0,5,30 -> 0,5,10,20,30
    ctrl_ensemble_quantile(out, q, 5, 2, 0.3f); // p = 1.2: 2 + 0.2 (3 - 2)
    CHECK_CLOSE(out[0], 2.2, 1e-6, 0);
    CHECK_CLOSE(out[1], 6.0, 1e-6, 0);
    ctrl_ensemble_quantile(out, q, 5, 2, 1.0f);
    CHECK_CLOSE(out[0], 7.0, 0, 0);
    ctrl_ensemble_quantile(out, q, 5, 2, 0.0f);
    CHECK_CLOSE(out[1], 0.0, 0, 0);
    ctrl_ensemble_quantile(out, q, 1, 2, 0.25f); // one member: itself
    CHECK_CLOSE(out[0], 3.0, 0, 0);
    // Huber, sigma 2 -> delta 0.25: u = 0.1 inside (0.01 / 0.5 = 0.02), u = -1
    // outside (1 - 0.125); mean over E*B = 2
    float qq[2] = {0.9f, 2.0f}, y[2] = {1.0f, 1.0f}, dq[2] = {0, 0};
    double l = ctrl_riql_huber_loss(dq, qq, y, 1, 2, 2.0f);
    CHECK_CLOSE(l, (0.02 + 0.875) / 2, 1e-6, 0);
    CHECK_CLOSE(dq[0], -(0.1 / 0.25) / 2, 1e-6, 0);
    CHECK_CLOSE(dq[1], 1.0 / 2, 1e-6, 0);
    // finite differences over an ensemble (E 3, B 7), values away from the kink
    enum { E = 3, B = 7 };
    float qe[E * B], ye[B], g[E * B] = {0};
    rlhf_rng r;
    rng_seed(&r, 5);
    for (int b = 0; b < B; b++) ye[b] = rng_normal(&r);
    for (int k = 0; k < E * B; k++) {
        float u =
            (k % 2 ? 0.3f : 2.0f) * (rng_uniform(&r) < 0.5f ? -1 : 1); // inside / outside delta 1
        qe[k] = ye[k % B] - u;
    }
    ctrl_riql_huber_loss(g, qe, ye, E, B, 1.0f);
    double worst = 0;
    for (int k = 0; k < E * B; k++) {
        float x0 = qe[k];
        qe[k] = x0 + 1e-3f;
        double lp = ctrl_riql_huber_loss(NULL, qe, ye, E, B, 1.0f);
        qe[k] = x0 - 1e-3f;
        double lm = ctrl_riql_huber_loss(NULL, qe, ye, E, B, 1.0f);
        qe[k] = x0;
        worst = fmax(worst, fabs((lp - lm) / 2e-3 - g[k]));
    }
    CHECKF(worst < 1e-4, "huber fd error %g", worst);
    return 0;
}

// rows hit = rows whose draw u < rate (the rng replayed), count within 5 sigma
// of rate * N, only the chosen field of those rows changed
static int check_hits(const ctrl_transitions *x, const ctrl_transitions *y, const uint8_t *hit,
                      long n_hit, int kind, float rate, uint64_t seed) {
    rlhf_rng r;
    rng_seed(&r, seed);
    long count = 0, wrong = 0, others = 0, untouched = 0;
    for (long i = 0; i < N; i++) {
        int h = rng_uniform(&r) < rate;
        count += h;
        wrong += h != hit[i];
        int so = rows_equal(x->obs, y->obs, i, S), sa = rows_equal(x->act, y->act, i, A),
            sr = x->rew[i] == y->rew[i], sn = rows_equal(x->next_obs, y->next_obs, i, S);
        int same[4] = {so, sa, sr, sn};
        for (int k = 0; k < 4; k++)
            if (k != kind && !same[k]) others++;
        if (x->terminal[i] != y->terminal[i] || x->timeout[i] != y->timeout[i]) others++;
        if (h && same[kind]) untouched++;
        if (!h && !same[kind]) others++;
    }
    double sd = sqrt(N * rate * (1 - rate));
    CHECKF(wrong == 0, "%ld rows' hit flags differ from the draws", wrong);
    CHECKF(count == n_hit, "n_hit %ld, draws %ld", n_hit, count);
    CHECKF(fabs(n_hit - rate * N) <= 5 * sd + 1, "hit %ld of %d at rate %g", n_hit, N, rate);
    CHECKF(others == 0, "%ld changes outside the chosen field's hit rows", others);
    CHECKF(untouched == 0, "%ld hit rows unchanged", untouched);
    return 0;
}

static int test_random_corruption(void) {
    ctrl_transitions base;
    make_data(&base, 1);
    for (int kind = 0; kind < 4; kind++) {
        ctrl_transitions t;
        copy_data(&t, &base);
        ctrl_corrupt_opts o;
        ctrl_corrupt_defaults(&o);
        o.kind = kind;
        o.rate = 0.3f;
        o.scale = 1.5f;
        o.seed = 11 + kind;
        uint8_t *hit = xmalloc(N);
        long n_hit = -1;
        rlhf_err err;
        CHECK(ctrl_corrupt(&t, &o, hit, &n_hit, &err) == 0);
        check_hits(&base, &t, hit, n_hit, kind, o.rate, o.seed);
        if (kind == CTRL_CORRUPT_REW) {
            // replaced by U(-scale, scale) * 30: mean 0, variance (30 scale)^2 / 3, inside the
            // bounds
            double m = 0, v = 0, mx = 0;
            for (long i = 0; i < N; i++)
                if (hit[i])
                    m += t.rew[i], v += (double)t.rew[i] * t.rew[i], mx = fmax(mx, fabs(t.rew[i]));
            m /= n_hit, v /= n_hit;
            double half = 30 * o.scale;
            CHECKF(mx <= half, "reward %g outside +-%g", mx, half);
            CHECKF(fabs(m) < 5 * half / sqrt(3.0 * n_hit), "reward mean %g", m);
            CHECKF(fabs(v / (half * half / 3) - 1) < 0.1, "reward variance %g vs %g", v,
                   half * half / 3);
        } else {
            int D = kind == CTRL_CORRUPT_ACT ? A : S;
            const float *x0 = kind == CTRL_CORRUPT_OBS   ? base.obs
                              : kind == CTRL_CORRUPT_ACT ? base.act
                                                         : base.next_obs;
            const float *x1 = kind == CTRL_CORRUPT_OBS   ? t.obs
                              : kind == CTRL_CORRUPT_ACT ? t.act
                                                         : t.next_obs;
            for (int j = 0; j < D; j++) {
                // (x' - x) / std_j ~ U(-scale, scale): mean 0, variance scale^2 / 3
                double sd = col_std(x0, D, j), m = 0, v = 0, mx = 0;
                for (long i = 0; i < N; i++)
                    if (hit[i]) {
                        double z = ((double)x1[i * D + j] - x0[i * D + j]) / sd;
                        m += z, v += z * z, mx = fmax(mx, fabs(z));
                    }
                m /= n_hit, v /= n_hit;
                CHECKF(mx <= o.scale * (1 + 1e-5), "kind %d col %d: |noise| / std %g", kind, j, mx);
                CHECKF(mx > 0.9 * o.scale, "kind %d col %d: |noise| / std at most %g", kind, j, mx);
                CHECKF(fabs(m) < 5 * o.scale / sqrt(3.0 * n_hit), "kind %d col %d: mean %g", kind,
                       j, m);
                CHECKF(fabs(v / (o.scale * o.scale / 3) - 1) < 0.1, "kind %d col %d: variance %g",
                       kind, j, v);
            }
        }
        // the same seed repeats it bit for bit; another seed does not
        ctrl_transitions t2, t3;
        copy_data(&t2, &base);
        copy_data(&t3, &base);
        CHECK(ctrl_corrupt(&t2, &o, NULL, NULL, &err) == 0);
        o.seed += 100;
        CHECK(ctrl_corrupt(&t3, &o, NULL, NULL, &err) == 0);
        size_t so = N * S * sizeof(float), sa = N * A * sizeof(float), sr = N * sizeof(float);
        CHECK(!memcmp(t.obs, t2.obs, so) && !memcmp(t.act, t2.act, sa) &&
              !memcmp(t.rew, t2.rew, sr) && !memcmp(t.next_obs, t2.next_obs, so));
        CHECK(memcmp(t.obs, t3.obs, so) || memcmp(t.act, t3.act, sa) || memcmp(t.rew, t3.rew, sr) ||
              memcmp(t.next_obs, t3.next_obs, so));
        ctrl_transitions_free(&t2);
        ctrl_transitions_free(&t3);
        ctrl_transitions_free(&t);
        free(hit);
    }
    // rate 0 and 1
    for (int k = 0; k < 2; k++) {
        ctrl_transitions t;
        copy_data(&t, &base);
        ctrl_corrupt_opts o;
        ctrl_corrupt_defaults(&o);
        o.kind = CTRL_CORRUPT_REW;
        o.rate = (float)k;
        long n_hit;
        rlhf_err err;
        CHECK(ctrl_corrupt(&t, &o, NULL, &n_hit, &err) == 0);
        CHECK(n_hit == k * N);
        ctrl_transitions_free(&t);
    }
    ctrl_transitions_free(&base);
    return 0;
}

static int test_adversarial(void) {
    ctrl_transitions base;
    make_data(&base, 2);
    rlhf_err err;
    // rewards: -scale r on the hit rows
    {
        ctrl_transitions t;
        copy_data(&t, &base);
        ctrl_corrupt_opts o;
        ctrl_corrupt_defaults(&o);
        o.kind = CTRL_CORRUPT_REW;
        o.mode = CTRL_CORRUPT_ADVERSARIAL;
        o.scale = 0.5f;
        o.seed = 3;
        uint8_t *hit = xmalloc(N);
        long n_hit;
        CHECK(ctrl_corrupt(&t, &o, hit, &n_hit, &err) == 0);
        check_hits(&base, &t, hit, n_hit, CTRL_CORRUPT_REW, o.rate, o.seed);
        long bad = 0;
        for (long i = 0; i < N; i++)
            if (hit[i] && t.rew[i] != -0.5f * base.rew[i]) bad++;
        CHECKF(bad == 0, "%ld rewards are not -0.5 r", bad);
        free(hit);
        ctrl_transitions_free(&t);
    }
    // observations / actions: the gradient attack against a critic lowers its
    // Q below the clean data's and below random noise of the same size
    ctrl_mlp q;
    rlhf_rng r;
    rng_seed(&r, 9);
    ctrl_mlp_init(&q, S + A, 16, 2, 1, 3, &r);
    for (int kind = 0; kind < 2; kind++) {
        ctrl_transitions ta, tr;
        copy_data(&ta, &base);
        copy_data(&tr, &base);
        ctrl_corrupt_opts o;
        ctrl_corrupt_defaults(&o);
        o.kind = kind;
        o.seed = 4;
        o.scale = 0.5f;
        // fewer, longer steps under the sanitizer (the same travel, 0.15 of scale)
        int quick = getenv("RLHF_SANITIZE") != NULL;
        o.attack_steps = quick ? 6 : 30;
        o.attack_step_size = quick ? 0.05f : 0.01f;
        o.critic = &q;
        uint8_t *hit = xmalloc(N);
        long n_hit;
        o.mode = CTRL_CORRUPT_ADVERSARIAL;
        CHECK(ctrl_corrupt(&ta, &o, hit, &n_hit, &err) == 0);
        check_hits(&base, &ta, hit, n_hit, kind, o.rate, o.seed);
        o.mode = CTRL_CORRUPT_RANDOM;
        CHECK(ctrl_corrupt(&tr, &o, NULL, NULL, &err) == 0);
        // mean Q over the hit rows, clean / adversarial / random
        double qs[3] = {0, 0, 0}, worst = 0;
        const ctrl_transitions *ds[3] = {&base, &ta, &tr};
        int D = kind ? A : S;
        const float *x0 = kind ? base.act : base.obs, *x1 = kind ? ta.act : ta.obs;
        for (int j = 0; j < D; j++) {
            double sd = col_std(x0, D, j);
            for (long i = 0; i < N; i++)
                worst = fmax(worst, fabs(x1[i * D + j] - x0[i * D + j]) / sd);
        }
        CHECKF(worst <= o.scale * (1 + 1e-4), "adversarial noise %g std > scale", worst);
        for (int d = 0; d < 3; d++) {
            float sa[S + A], y[3];
            for (long i = 0; i < N; i++) {
                if (!hit[i]) continue;
                memcpy(sa, ds[d]->obs + i * S, S * sizeof(float));
                memcpy(sa + S, ds[d]->act + i * A, A * sizeof(float));
                ctrl_mlp_forward(&q, sa, 1, y);
                qs[d] += (y[0] + y[1] + y[2]) / 3 / n_hit;
            }
        }
        printf("  adversarial %s: mean Q clean %.4f, adversarial %.4f, random %.4f\n",
               kind ? "act" : "obs", qs[0], qs[1], qs[2]);
        // the attack's drop is several times what random noise of the same size does
        CHECKF(qs[0] - qs[1] > 1e-3 && qs[0] - qs[1] > 3 * fabs(qs[0] - qs[2]),
               "drop %g (random %g)", qs[0] - qs[1], qs[0] - qs[2]);
        // the same seed repeats it
        ctrl_transitions t2;
        copy_data(&t2, &base);
        o.mode = CTRL_CORRUPT_ADVERSARIAL;
        CHECK(ctrl_corrupt(&t2, &o, NULL, NULL, &err) == 0);
        CHECK(!memcmp(t2.obs, ta.obs, N * S * sizeof(float)) &&
              !memcmp(t2.act, ta.act, N * A * sizeof(float)));
        ctrl_transitions_free(&t2);
        free(hit);
        ctrl_transitions_free(&ta);
        ctrl_transitions_free(&tr);
    }
    // refusals name the problem
    ctrl_corrupt_opts o;
    ctrl_corrupt_defaults(&o);
    o.mode = CTRL_CORRUPT_ADVERSARIAL;
    o.kind = CTRL_CORRUPT_DYN;
    o.critic = &q;
    CHECK(ctrl_corrupt(&base, &o, NULL, NULL, &err) == -1 && strstr(err.msg, "dyn"));
    o.kind = CTRL_CORRUPT_OBS;
    o.critic = NULL;
    CHECK(ctrl_corrupt(&base, &o, NULL, NULL, &err) == -1 && strstr(err.msg, "critic"));
    ctrl_mlp wrong;
    ctrl_mlp_init(&wrong, S + A + 1, 8, 1, 1, 1, &r);
    o.critic = &wrong;
    CHECK(ctrl_corrupt(&base, &o, NULL, NULL, &err) == -1 && strstr(err.msg, "inputs"));
    ctrl_mlp_free(&wrong);
    o.mode = CTRL_CORRUPT_RANDOM;
    o.rate = 1.5f;
    CHECK(ctrl_corrupt(&base, &o, NULL, NULL, &err) == -1 && strstr(err.msg, "--rate"));
    o.rate = 0.3f;
    o.scale = NAN;
    CHECK(ctrl_corrupt(&base, &o, NULL, NULL, &err) == -1 && strstr(err.msg, "--scale"));
    int kind = -1, mode = -1;
    CHECK(ctrl_corrupt_kind_parse("dyn", &kind, &err) == 0 && kind == CTRL_CORRUPT_DYN);
    CHECK(ctrl_corrupt_kind_parse("next_obs", &kind, &err) == -1 && strstr(err.msg, "next_obs"));
    CHECK(ctrl_corrupt_mode_parse("adversarial", &mode, &err) == 0 &&
          mode == CTRL_CORRUPT_ADVERSARIAL);
    CHECK(ctrl_corrupt_mode_parse("worst", &mode, &err) == -1);
    ctrl_mlp_free(&q);
    ctrl_transitions_free(&base);
    return 0;
}

// mean over the ensemble of Q(s, pi(s)) for one row s (no normaliser)
static double q_of_pi(ctrl_mlp *q, ctrl_mlp *pi, const float *s, const float *lo, const float *hi) {
    float u[2 * A], sa[S + A], y[3];
    ctrl_mlp_forward(pi, s, 1, u);
    memcpy(sa, s, S * sizeof(float));
    for (int i = 0; i < A; i++)
        sa[S + i] = (float)((hi[i] + lo[i]) / 2.0 + (hi[i] - lo[i]) / 2.0 * tanh((double)u[i]));
    ctrl_mlp_forward(q, sa, 1, y);
    return ((double)y[0] + y[1] + y[2]) / 3;
}

// adversarial dyn (attack.py loss_Q_for_next_obs): only next observations
// change, within scale * std; the attack lowers Q(s', pi(s')) several times
// more than random noise of the same size; one step moves each unclipped
// entry against the sign of a finite-difference gradient of Q(s', pi(s'))
// through both paths (the critic's s' input and the actor's action)
static int test_adversarial_dyn(void) {
    ctrl_transitions base;
    make_data(&base, 5);
    rlhf_rng r;
    rng_seed(&r, 19);
    ctrl_mlp q, pi;
    ctrl_mlp_init(&q, S + A, 16, 2, 1, 3, &r);
    ctrl_mlp_init(&pi, S, 16, 2, 2 * A, 1, &r);
    const float lo[A] = {-1.5f, -1.0f}, hi[A] = {0.5f, 1.0f};
    ctrl_corrupt_opts o;
    ctrl_corrupt_defaults(&o);
    o.kind = CTRL_CORRUPT_DYN;
    o.mode = CTRL_CORRUPT_ADVERSARIAL;
    o.seed = 6;
    o.scale = 0.5f;
    int quick = getenv("RLHF_SANITIZE") != NULL;
    o.attack_steps = quick ? 6 : 30;
    o.attack_step_size = quick ? 0.05f : 0.01f;
    o.critic = &q;
    o.actor = &pi;
    o.act_low = lo, o.act_high = hi;
    rlhf_err err;
    ctrl_transitions ta, tr;
    copy_data(&ta, &base);
    copy_data(&tr, &base);
    uint8_t *hit = xmalloc(N);
    long n_hit;
    CHECK(ctrl_corrupt(&ta, &o, hit, &n_hit, &err) == 0);
    check_hits(&base, &ta, hit, n_hit, CTRL_CORRUPT_DYN, o.rate, o.seed);
    o.mode = CTRL_CORRUPT_RANDOM;
    CHECK(ctrl_corrupt(&tr, &o, NULL, NULL, &err) == 0);
    double worst = 0, qs[3] = {0, 0, 0};
    for (int j = 0; j < S; j++) {
        double sd = col_std(base.next_obs, S, j);
        for (long i = 0; i < N; i++)
            worst = fmax(worst, fabs(ta.next_obs[i * S + j] - base.next_obs[i * S + j]) / sd);
    }
    CHECKF(worst <= o.scale * (1 + 1e-4), "adversarial noise %g std > scale", worst);
    const ctrl_transitions *ds[3] = {&base, &ta, &tr};
    for (int d = 0; d < 3; d++)
        for (long i = 0; i < N; i++)
            if (hit[i]) qs[d] += q_of_pi(&q, &pi, ds[d]->next_obs + i * S, lo, hi) / n_hit;
    printf("  adversarial dyn: mean Q(s', pi(s')) clean %.4f, adversarial %.4f, random %.4f\n",
           qs[0], qs[1], qs[2]);
    CHECKF(qs[0] - qs[1] > 1e-3 && qs[0] - qs[1] > 3 * fabs(qs[0] - qs[2]), "drop %g (random %g)",
           qs[0] - qs[1], qs[0] - qs[2]);

    // one step from the start: p1 - p0 = -lr sign(g) where p stays inside the box
    ctrl_transitions t0, t1;
    copy_data(&t0, &base);
    copy_data(&t1, &base);
    o.mode = CTRL_CORRUPT_ADVERSARIAL;
    o.attack_steps = 0;
    CHECK(ctrl_corrupt(&t0, &o, NULL, NULL, &err) == 0);
    o.attack_steps = 1;
    o.attack_step_size = 1e-3f;
    CHECK(ctrl_corrupt(&t1, &o, NULL, NULL, &err) == 0);
    double lr = 1e-3 * o.scale, h = 1e-3;
    long checked = 0, wrong = 0;
    for (long i = 0; i < N; i++) {
        if (!hit[i]) continue;
        for (int j = 0; j < S; j++) {
            double sd = col_std(base.next_obs, S, j);
            double p0 = (t0.next_obs[i * S + j] - base.next_obs[i * S + j]) / sd;
            double dp = (t1.next_obs[i * S + j] - t0.next_obs[i * S + j]) / sd;
            if (fabs(p0) > o.scale - 2 * lr) continue;  // clipped by the box
            float z[S];
            memcpy(z, t0.next_obs + i * S, sizeof z);
            z[j] += (float)h;
            double up = q_of_pi(&q, &pi, z, lo, hi);
            z[j] -= (float)(2 * h);
            double g = (up - q_of_pi(&q, &pi, z, lo, hi)) / (2 * h);
            if (fabs(g) < 1e-3) continue;
            checked++;
            wrong += fabs(dp + lr * (g > 0 ? 1 : -1)) > 0.1 * lr;
        }
    }
    CHECKF(checked > 200 && wrong == 0, "%ld of %ld steps against the gradient's sign", wrong,
           checked);
    printf("  adversarial dyn: %ld first steps follow -sign(finite-difference gradient)\n",
           checked);
    // refusals: no actor, an actor of the wrong width
    o.actor = NULL;
    CHECK(ctrl_corrupt(&t1, &o, NULL, NULL, &err) == -1 && strstr(err.msg, "actor"));
    ctrl_mlp wide;
    ctrl_mlp_init(&wide, S, 8, 1, 3 * A, 1, &r);
    o.actor = &wide;
    CHECK(ctrl_corrupt(&t1, &o, NULL, NULL, &err) == -1 && strstr(err.msg, "actor reads"));
    ctrl_mlp_free(&wide);
    free(hit);
    ctrl_transitions_free(&t0), ctrl_transitions_free(&t1);
    ctrl_transitions_free(&ta), ctrl_transitions_free(&tr), ctrl_transitions_free(&base);
    ctrl_mlp_free(&q), ctrl_mlp_free(&pi);
    return 0;
}

// a trained agent's critic, copied out, is the agent's Q
static int test_critic_from_agent(void) {
    ctrl_algo_config c;
    ctrl_algo_riql.defaults(&c);
    c.hidden = 8;
    c.layers = 1;
    float low[A] = {-1, -1}, high[A] = {1, 1};
    rlhf_rng r;
    rng_seed(&r, 1);
    void *agent;
    rlhf_err err;
    CHECK(ctrl_algo_riql.create(&c, S, A, low, high, &r, &agent, &err) == 0);
    ctrl_mlp q;
    CHECK(ctrl_corrupt_critic_from_agent(&ctrl_algo_riql, agent, &c, S, A, &q, &err) == 0);
    ctrl_tensor t[16];
    int n = ctrl_algo_riql.tensors(agent, t, 16);
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, "critic"))
            CHECK(t[i].n == q.n_params && !memcmp(t[i].data, q.params, t[i].n * sizeof(float)));
    CHECK(q.ens == 5);
    ctrl_mlp_free(&q);
    c.hidden = 9; // a config that does not fit the agent
    CHECK(ctrl_corrupt_critic_from_agent(&ctrl_algo_riql, agent, &c, S, A, &q, &err) == -1 &&
          strstr(err.msg, "not an ensemble"));
    ctrl_algo_riql.free(agent);
    return 0;
}

int main(void) {
    RUN(test_riql_losses);
    RUN(test_random_corruption);
    RUN(test_adversarial);
    RUN(test_adversarial_dyn);
    RUN(test_critic_from_agent);
    TEST_EXIT();
}
