// tests/test_ctrl_cql: the pure losses of SAC / CQL / Cal-QL (src/ctrl/cql_loss.c)
// — each analytic gradient against central finite differences (in double
// through float inputs, so steps are 1e-2 and tolerances ~1e-3 relative),
// the values against hand formulas, and the noise draw's order.
#include <math.h>

#include "ctrl/agent.h"
#include "ctrl/cql_loss.h"
#include "test.h"

// referenced directly: agent.c's registry holds them weakly
extern const ctrl_algo ctrl_algo_sac, ctrl_algo_cql, ctrl_algo_calql;

static void fill(float *x, int n, rlhf_rng *r, float lo, float hi) {
    for (int i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(r);
}

enum { B = 4, N = 3, E = 2 };

typedef struct {
    float q_rand[B * N], q_cur[B * N], logp_cur[B * N], q_next[B * N], logp_next[B * N], q_data[B],
        mc[B];
    int use_mc;
    float temp, weight, logd;
} cql_in;

static double cql_eval(cql_in *in, float *dr, float *dc, float *dn, float *dd) {
    return ctrl_cql_conservative(in->q_rand, in->q_cur, in->logp_cur, in->q_next, in->logp_next,
                                 in->q_data, in->use_mc ? in->mc : NULL, in->logd, in->temp,
                                 in->weight, B, N, dr, dc, dn, dd, NULL);
}

// central difference of the loss in x[i]
static double fd(cql_in *in, float *x, int i) {
    const float h = 1e-2f;
    float keep = x[i];
    x[i] = keep + h;
    double lp = cql_eval(in, NULL, NULL, NULL, NULL);
    x[i] = keep - h;
    double lm = cql_eval(in, NULL, NULL, NULL, NULL);
    x[i] = keep;
    return (lp - lm) / (2 * h);
}

static int check_cql(int use_mc, float temp) {
    rlhf_rng r;
    rng_seed(&r, 7 + use_mc);
    cql_in in;
    fill(in.q_rand, B * N, &r, -2, 2);
    fill(in.q_cur, B * N, &r, -2, 2);
    fill(in.q_next, B * N, &r, -2, 2);
    fill(in.logp_cur, B * N, &r, -3, 1);
    fill(in.logp_next, B * N, &r, -3, 1);
    fill(in.q_data, B, &r, -2, 2);
    fill(in.mc, B, &r, -1, 1); // Cal-QL's bound: wins on some entries, loses on others
    in.use_mc = use_mc;
    in.temp = temp;
    in.weight = 5.0f;
    in.logd = 2 * logf(0.5f);
    float dr[B * N], dc[B * N], dn[B * N], dd[B];
    double loss = cql_eval(&in, dr, dc, dn, dd);
    // the value by its definition, in double
    double want = 0;
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int j = 0; j < N; j++) {
            double qc = in.q_cur[b * N + j], qn = in.q_next[b * N + j];
            if (use_mc) qc = fmax(qc, in.mc[b]), qn = fmax(qn, in.mc[b]);
            s += exp((in.q_rand[b * N + j] - in.logd) / temp);
            s += exp((qc - in.logp_cur[b * N + j]) / temp) +
                 exp((qn - in.logp_next[b * N + j]) / temp);
        }
        want += in.weight * (temp * log(s) - in.q_data[b]) / B;
    }
    CHECK_CLOSE(loss, want, 1e-5, 1e-5);
    int bound_won = 0;
    for (int i = 0; i < B * N; i++) {
        CHECK_CLOSE(dr[i], fd(&in, in.q_rand, i), 1e-3, 1e-2);
        // keep finite differences off the kink of max(q, mc)
        if (!use_mc || fabsf(in.q_cur[i] - in.mc[i / N]) > 0.05f)
            CHECK_CLOSE(dc[i], fd(&in, in.q_cur, i), 1e-3, 1e-2);
        if (!use_mc || fabsf(in.q_next[i] - in.mc[i / N]) > 0.05f)
            CHECK_CLOSE(dn[i], fd(&in, in.q_next, i), 1e-3, 1e-2);
        if (use_mc && in.q_cur[i] < in.mc[i / N]) {
            CHECK(dc[i] == 0.0f);
            bound_won++;
        }
    }
    for (int b = 0; b < B; b++) CHECK_CLOSE(dd[b], fd(&in, in.q_data, b), 1e-3, 1e-2);
    if (use_mc) CHECK(bound_won > 0); // the case exercises the bound
    // the softmax weights sum to weight (per row, over the 3N values) / B
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int j = 0; j < N; j++) s += dr[b * N + j] + dc[b * N + j] + dn[b * N + j];
        if (!use_mc) CHECK_CLOSE(s, in.weight / B, 1e-6, 1e-5);
    }
    return 0;
}

static int test_cql_conservative_grad(void) {
    return check_cql(0, 1.0f);
}
static int test_cql_conservative_temp(void) {
    return check_cql(0, 0.5f);
}
static int test_calql_bound_grad(void) {
    return check_cql(1, 1.0f);
}

// a large Q (1e4) must not overflow the logsumexp
static int test_cql_logsumexp_stable(void) {
    float q[N] = {1e4f, 1e4f - 1, 0}, z[N] = {0, 0, 0}, qd[1] = {0};
    double loss = ctrl_cql_conservative(q, q, z, q, z, qd, NULL, 0.0f, 1.0f, 1.0f, 1, N, NULL, NULL,
                                        NULL, NULL, NULL);
    double want = 1e4 + log(3 * (1 + exp(-1.0) + exp(-1e4)));
    CHECK(isfinite(loss));
    CHECK_CLOSE(loss, want, 1e-2, 1e-7);
    return 0;
}

static int test_sac_losses(void) {
    rlhf_rng r;
    rng_seed(&r, 3);
    float q[E * B], logp[B], y[B], rew[B], done[B] = {0, 1, 0, 0};
    fill(q, E * B, &r, -2, 2);
    fill(logp, B, &r, -3, 1);
    fill(rew, B, &r, -1, 1);
    // target: min over members minus the entropy backup, cut at done
    ctrl_sac_target(y, q, logp, rew, done, 0.9f, 0.5f, E, B);
    for (int b = 0; b < B; b++) {
        double m = fmin(q[b], q[B + b]) - 0.5 * logp[b];
        CHECK_CLOSE(y[b], rew[b] + 0.9 * (1 - done[b]) * m, 1e-6, 1e-6);
    }
    // critic MSE gradient
    float dq[E * B], dlogp[B];
    ctrl_sac_critic_mse(q, y, E, B, dq);
    for (int i = 0; i < E * B; i++) {
        float keep = q[i];
        q[i] = keep + 1e-2f;
        double lp = ctrl_sac_critic_mse(q, y, E, B, NULL);
        q[i] = keep - 1e-2f;
        double lm = ctrl_sac_critic_mse(q, y, E, B, NULL);
        q[i] = keep;
        CHECK_CLOSE(dq[i], (lp - lm) / 2e-2, 1e-4, 1e-3);
    }
    // actor loss gradient (away from ties between members)
    double la = ctrl_sac_actor_loss(q, logp, 0.3f, E, B, dq, dlogp);
    double want = 0;
    for (int b = 0; b < B; b++) want += (0.3 * logp[b] - fmin(q[b], q[B + b])) / B;
    CHECK_CLOSE(la, want, 1e-6, 1e-6);
    for (int i = 0; i < E * B; i++) {
        float keep = q[i];
        q[i] = keep + 1e-3f;
        double lp = ctrl_sac_actor_loss(q, logp, 0.3f, E, B, NULL, NULL);
        q[i] = keep - 1e-3f;
        double lm = ctrl_sac_actor_loss(q, logp, 0.3f, E, B, NULL, NULL);
        q[i] = keep;
        CHECK_CLOSE(dq[i], (lp - lm) / 2e-3, 1e-3, 1e-2);
    }
    for (int b = 0; b < B; b++) CHECK_CLOSE(dlogp[b], 0.3 / B, 1e-7, 1e-6);
    // temperature: d/dlog_alpha of -log_alpha mean(logp + H)
    float dla;
    double l0 = ctrl_sac_alpha_loss(logp, 0.2f, -2.0f, B, &dla);
    double l1 = ctrl_sac_alpha_loss(logp, 0.3f, -2.0f, B, NULL);
    CHECK_CLOSE(dla, (l1 - l0) / 0.1, 1e-4, 1e-3);
    double m = 0;
    for (int b = 0; b < B; b++) m += (logp[b] - 2.0) / B;
    CHECK_CLOSE(l0, -0.2 * m, 1e-6, 1e-6);
    return 0;
}

// the draw's layout: 2(1+N)·B·A normals first, then B·N·A uniforms in [-1, 1)
static int test_noise_order(void) {
    const int b = 3, a = 2, n = 2;
    long size = ctrl_sac_noise_size(b, a, n);
    CHECK(size == (long)b * a * (2 + 3 * n));
    float noise[3 * 2 * 8];
    rlhf_rng r1, r2;
    rng_seed(&r1, 11);
    r2 = r1;
    ctrl_sac_draw_noise(&r1, b, a, n, noise);
    long n_norm = (long)b * a * (2 + 2 * n);
    for (long i = 0; i < n_norm; i++) CHECK(noise[i] == rng_normal(&r2));
    for (long i = n_norm; i < size; i++) {
        CHECK(noise[i] == 2.0f * rng_uniform(&r2) - 1.0f);
        CHECK(noise[i] >= -1.0f && noise[i] < 1.0f);
    }
    return 0;
}

// checkpoint round trip: agent X takes an update; its tensors are copied into a
// fresh agent Y created from another seed; both take the same next update
// (same batch, same rng state) and every tensor must agree bit for bit, as must
// the deterministic and sampled actions
static int roundtrip(const ctrl_algo *algo) {
    enum { O = 3, A = 2, BB = 6 };
    const float low[A] = {-1, -3}, high[A] = {2, 1};
    ctrl_algo_config c;
    algo->defaults(&c);
    c.hidden = 8;
    c.layers = 2;
    c.cql_n_actions = 2;
    rlhf_rng r1, r2, data;
    rng_seed(&r1, 1);
    rng_seed(&r2, 2);
    rng_seed(&data, 3);
    void *x = NULL, *y = NULL;
    rlhf_err err;
    CHECK(algo->create(&c, O, A, low, high, &r1, &x, &err) == 0);
    CHECK(algo->create(&c, O, A, low, high, &r2, &y, &err) == 0);
    if (!x || !y) return 0;
    float obs[BB * O], act[BB * A], rew[BB], nobs[BB * O], done[BB] = {0, 0, 1, 0, 0, 0}, mc[BB];
    fill(obs, BB * O, &data, -1, 1);
    fill(nobs, BB * O, &data, -1, 1);
    fill(act, BB * A, &data, -1, 1);
    fill(rew, BB, &data, -1, 1);
    fill(mc, BB, &data, -1, 1);
    ctrl_batch b = {.B = BB,
                    .obs_dim = O,
                    .act_dim = A,
                    .obs = obs,
                    .act = act,
                    .rew = rew,
                    .next_obs = nobs,
                    .done = done,
                    .mc_return = mc};
    ctrl_metrics m = {0};
    CHECK(algo->update(x, &b, &r1, &m, &err) == 0);
    CHECK(algo->update(x, &b, &r1, &m, &err) == 0);
    ctrl_tensor tx[32], ty[32];
    int nx = algo->tensors(x, tx, 32), ny = algo->tensors(y, ty, 32);
    CHECK(nx == ny && nx > 0);
    int differed = 0;
    for (int i = 0; i < nx && i < ny; i++) {
        CHECK(!strcmp(tx[i].name, ty[i].name) && tx[i].n == ty[i].n);
        differed |= memcmp(tx[i].data, ty[i].data, sizeof(float) * tx[i].n) != 0;
        memcpy(ty[i].data, tx[i].data, sizeof(float) * tx[i].n);
    }
    CHECK(differed); // the copy is what makes them equal
    r2 = r1;
    ctrl_metrics mx = {0}, my = {0};
    CHECK(algo->update(x, &b, &r1, &mx, &err) == 0);
    CHECK(algo->update(y, &b, &r2, &my, &err) == 0);
    for (int i = 0; i < nx; i++)
        CHECKF(!memcmp(tx[i].data, ty[i].data, sizeof(float) * tx[i].n), "%s differs", tx[i].name);
    CHECK(mx.n == my.n && mx.n > 0);
    for (int i = 0; i < mx.n; i++) CHECK(mx.value[i] == my.value[i]);
    float ax[BB * A], ay[BB * A];
    algo->act(x, obs, BB, 0, &r1, ax);
    algo->act(y, obs, BB, 0, &r2, ay);
    CHECK(!memcmp(ax, ay, sizeof ax));
    for (int i = 0; i < BB * A; i++) CHECK(ax[i] >= low[i % A] && ax[i] <= high[i % A]);
    algo->act(x, obs, BB, 1, NULL, ax);
    algo->act(y, obs, BB, 1, NULL, ay);
    CHECK(!memcmp(ax, ay, sizeof ax));
    // the step counter is part of the state (Adam's bias correction)
    for (int i = 0; i < nx; i++)
        if (!strcmp(tx[i].name, "step")) CHECK(tx[i].data[0] == 3.0f);
    algo->free(x);
    algo->free(y);
    return 0;
}

static int test_sac_roundtrip(void) {
    return roundtrip(&ctrl_algo_sac);
}
static int test_cql_roundtrip(void) {
    return roundtrip(&ctrl_algo_cql);
}
static int test_calql_roundtrip(void) {
    return roundtrip(&ctrl_algo_calql);
}

// bad input is refused with a message, not a crash
static int test_sac_refuses(void) {
    ctrl_algo_config c;
    ctrl_algo_calql.defaults(&c);
    const float low[1] = {1}, high[1] = {0};
    rlhf_rng r;
    rng_seed(&r, 1);
    void *g = NULL;
    rlhf_err err = {{0}};
    CHECK(ctrl_algo_calql.create(&c, 2, 1, low, high, &r, &g, &err) == -1);
    CHECK(strstr(err.msg, "bound") != NULL);
    const float lo2[1] = {-1}, hi2[1] = {1};
    CHECK(ctrl_algo_calql.create(&c, 2, 1, lo2, hi2, &r, &g, &err) == 0);
    float obs[2] = {0, 0}, act[1] = {0}, rew[1] = {0}, done[1] = {0};
    ctrl_batch b = {.B = 1,
                    .obs_dim = 2,
                    .act_dim = 1,
                    .obs = obs,
                    .act = act,
                    .rew = rew,
                    .next_obs = obs,
                    .done = done,
                    .mc_return = NULL};
    CHECK(ctrl_algo_calql.update(g, &b, &r, NULL, &err) == -1); // Cal-QL without mc_return
    CHECK(strstr(err.msg, "mc_return") != NULL);
    b.act_dim = 2;
    CHECK(ctrl_algo_calql.update(g, &b, &r, NULL, &err) == -1);
    ctrl_algo_calql.free(g);
    return 0;
}

int main(void) {
    RUN(test_cql_conservative_grad);
    RUN(test_cql_conservative_temp);
    RUN(test_calql_bound_grad);
    RUN(test_cql_logsumexp_stable);
    RUN(test_sac_losses);
    RUN(test_noise_order);
    RUN(test_sac_roundtrip);
    RUN(test_cql_roundtrip);
    RUN(test_calql_roundtrip);
    RUN(test_sac_refuses);
    TEST_EXIT();
}
