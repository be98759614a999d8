// ctrl/ctrl_loss: hand-worked values of the targets and weights, and central
// finite differences of every loss against its analytic gradient (the losses
// are quadratic or linear in their inputs, so the differences are exact up to
// rounding; the expectile's inputs keep away from its kink at q = v).
#include "ctrl/ctrl_loss.h"

#include "base/base.h"
#include "test.h"

static void fill(float *x, int n, rlhf_rng *r, float lo, float hi) {
    for (int i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(r);
}

// d loss / d x[i] by central differences; f evaluates the loss at x
typedef double (*loss_fn)(const float *x, void *ctx);
static double fd(float *x, int i, loss_fn f, void *ctx) {
    float x0 = x[i], h = 1e-2f;
    x[i] = x0 + h;
    float xp = x[i];
    double lp = f(x, ctx);
    x[i] = x0 - h;
    float xm = x[i];
    double lm = f(x, ctx);
    x[i] = x0;
    return (lp - lm) / ((double)xp - xm);
}

// max |analytic - fd| over the n inputs, relative to max(1, |fd|)
static double fd_err(float *x, const float *grad, int n, loss_fn f, void *ctx) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double g = fd(x, i, f, ctx), e = fabs(g - grad[i]) / fmax(1.0, fabs(g));
        if (e > worst) worst = e;
    }
    return worst;
}

enum { E = 3, B = 7, A = 2 };
typedef struct {
    float q[E * B], y[B], v[B], pi[B * A], a[B * A], w[B];
    float tau, alpha, weight;
    double lambda;  // td3bc: held fixed for the q differences
    int use_w;
} ctx_t;

static double f_mse(const float *q, void *c_) {
    ctx_t *c = c_;
    return ctrl_critic_mse_loss(NULL, q, c->y, E, B, c->weight);
}
static double f_mse_y(const float *y, void *c_) {  // the target is not differentiated: check it moves
    ctx_t *c = c_;
    return ctrl_critic_mse_loss(NULL, c->q, y, E, B, c->weight);
}
static double f_expectile(const float *v, void *c_) {
    ctx_t *c = c_;
    return ctrl_expectile_loss(NULL, c->q, v, B, c->tau);
}
static double f_nll(const float *logp, void *c_) {
    ctx_t *c = c_;
    return ctrl_weighted_nll_loss(NULL, logp, c->use_w ? c->w : NULL, B);
}
static double f_sq(const float *pi, void *c_) {
    ctx_t *c = c_;
    return ctrl_weighted_sq_loss(NULL, pi, c->a, c->use_w ? c->w : NULL, B, A);
}
static double f_bc(const float *pi, void *c_) {
    ctx_t *c = c_;
    return ctrl_bc_mse_loss(NULL, pi, c->a, B, A);
}
static double f_dpg(const float *q, void *c_) {
    (void)c_;
    return ctrl_dpg_actor_loss(NULL, q, B);
}
static double f_td3bc_pi(const float *pi, void *c_) {
    ctx_t *c = c_;
    return ctrl_td3bc_actor_loss(NULL, NULL, c->q, pi, c->a, B, A, c->alpha, NULL);
}
// the q part with lambda detached: -lambda0 * mean q + the (q-free) BC term
static double f_td3bc_q(const float *q, void *c_) {
    ctx_t *c = c_;
    return c->lambda * ctrl_dpg_actor_loss(NULL, q, B) + ctrl_bc_mse_loss(NULL, c->pi, c->a, B, A);
}

static int test_targets_hand(void) {
    // members (E = 2, B = 3): min per row; y = r + gamma (1 - d) min
    float q[] = {1, 5, -2, 3, 4, -1}, m[3], y[3];
    float rew[] = {0.5f, 1, 2}, done[] = {0, 1, 0};
    ctrl_ensemble_min(m, q, 2, 3);
    CHECK(m[0] == 1 && m[1] == 4 && m[2] == -2);
    ctrl_td_target(y, rew, done, q, 2, 3, 0.9f);
    CHECK_CLOSE(y[0], 0.5 + 0.9 * 1, 1e-6, 0);
    CHECK_CLOSE(y[1], 1.0, 1e-7, 0);  // terminal: no bootstrap
    CHECK_CLOSE(y[2], 2 + 0.9 * -2, 1e-6, 0);
    ctrl_td_target(y, rew, done, q, 1, 3, 0.5f);  // E = 1: V(s') as is
    CHECK_CLOSE(y[2], 2 + 0.5 * -2, 1e-6, 0);
    return 0;
}

static int test_weights_hand(void) {
    float adv[] = {0, 1, -2, 10, 1e30f}, w[5];
    ctrl_exp_adv_weights(w, adv, 5, 3.0f, 100.0f);
    CHECK_CLOSE(w[0], 1.0, 1e-7, 0);
    CHECK_CLOSE(w[1], exp(3.0), 1e-5, 1e-6);
    CHECK_CLOSE(w[2], exp(-6.0), 1e-9, 1e-6);
    CHECK(w[3] == 100.0f && w[4] == 100.0f);  // clipped, overflow included
    ctrl_awac_weights(w, adv, 5, 2.0f, 100.0f);
    CHECK_CLOSE(w[1], exp(0.5), 1e-6, 1e-6);
    CHECK_CLOSE(w[2], exp(-1.0), 1e-7, 1e-6);
    return 0;
}

static int test_losses_hand(void) {
    // expectile tau 0.7: u = q - v = {2, -1}: (0.7*4 + 0.3*1) / 2 = 1.55
    float q[] = {3, 0}, v[] = {1, 1}, dv[2] = {0, 0};
    CHECK_CLOSE(ctrl_expectile_loss(dv, q, v, 2, 0.7f), 1.55, 1e-6, 0);  // tau is a float
    CHECK_CLOSE(dv[0], -2 * 0.7 * 2 / 2.0, 1e-6, 0);
    CHECK_CLOSE(dv[1], -2 * 0.3 * -1 / 2.0, 1e-6, 0);
    // TD3+BC: q = {1, -3}: lambda = 2.5 / 2; loss = -1.25 * (-1) + mse
    float qq[] = {1, -3}, pi[] = {0, 1, 0, 0}, a[] = {0, 0, 0, 0};
    double lam;
    CHECK_CLOSE(ctrl_td3bc_actor_loss(NULL, NULL, qq, pi, a, 2, 2, 2.5f, &lam), 1.25 + 0.25, 1e-9,
                0);
    CHECK_CLOSE(lam, 1.25, 1e-12, 0);
    // critic: weight 0.5 over 2 members of 1 row: 0.5 * ((1-0)^2 + (3-0)^2)
    float qc[] = {1, 3}, yc[] = {0};
    CHECK_CLOSE(ctrl_critic_mse_loss(NULL, qc, yc, 2, 1, 0.5f), 5.0, 1e-9, 0);
    return 0;
}

static int test_fd_all(void) {
    rlhf_rng r;
    rng_seed(&r, 7);
    ctx_t c;
    fill(c.q, E * B, &r, -2, 2);
    fill(c.y, B, &r, -2, 2);
    fill(c.pi, B * A, &r, -1, 1);
    fill(c.a, B * A, &r, -1, 1);
    fill(c.w, B, &r, 0.1f, 3);
    for (int b = 0; b < B; b++)  // |q - v| >= 0.5: away from the expectile's kink
        c.v[b] = c.q[b] + (b % 2 ? 1 : -1) * (0.5f + rng_uniform(&r));
    c.tau = 0.7f;
    c.alpha = 2.5f;
    const double tol = 2e-4;  // float inputs; the losses are exact quadratics

    for (int k = 0; k < 2; k++) {  // sum (TD3) and mean (IQL) over members
        c.weight = k ? 1.0f / E : 1.0f;
        float dq[E * B] = {0};
        ctrl_critic_mse_loss(dq, c.q, c.y, E, B, c.weight);
        CHECK(fd_err(c.q, dq, E * B, f_mse, &c) < tol);
        float y2[B];  // the target moves the loss (it is data, not a constant of the code)
        for (int b = 0; b < B; b++) y2[b] = c.y[b];
        CHECK(fabs(fd(y2, 0, f_mse_y, &c)) > 1e-3);
    }
    {
        float dv[B] = {0};
        ctrl_expectile_loss(dv, c.q, c.v, B, c.tau);
        CHECK(fd_err(c.v, dv, B, f_expectile, &c) < tol);
    }
    for (int k = 0; k < 2; k++) {
        c.use_w = k;
        float logp[B], dlogp[B] = {0}, dpi[B * A] = {0};
        fill(logp, B, &r, -3, 1);
        ctrl_weighted_nll_loss(dlogp, logp, k ? c.w : NULL, B);
        CHECK(fd_err(logp, dlogp, B, f_nll, &c) < tol);
        ctrl_weighted_sq_loss(dpi, c.pi, c.a, k ? c.w : NULL, B, A);
        CHECK(fd_err(c.pi, dpi, B * A, f_sq, &c) < tol);
    }
    {
        float dpi[B * A] = {0}, dq[B] = {0};
        ctrl_bc_mse_loss(dpi, c.pi, c.a, B, A);
        CHECK(fd_err(c.pi, dpi, B * A, f_bc, &c) < tol);
        ctrl_dpg_actor_loss(dq, c.q, B);
        CHECK(fd_err(c.q, dq, B, f_dpg, &c) < tol);
    }
    {
        float dpi[B * A] = {0}, dq[B] = {0};
        ctrl_td3bc_actor_loss(dq, dpi, c.q, c.pi, c.a, B, A, c.alpha, &c.lambda);
        CHECK(fd_err(c.pi, dpi, B * A, f_td3bc_pi, &c) < tol);
        CHECK(fd_err(c.q, dq, B, f_td3bc_q, &c) < tol);
        // and lambda really is detached: differencing through it gives another gradient
        double through = 0, g[B];
        for (int b = 0; b < B; b++) {
            float x0 = c.q[b];
            c.q[b] = x0 + 1e-2f;
            double lp = ctrl_td3bc_actor_loss(NULL, NULL, c.q, c.pi, c.a, B, A, c.alpha, NULL);
            c.q[b] = x0 - 1e-2f;
            double lm = ctrl_td3bc_actor_loss(NULL, NULL, c.q, c.pi, c.a, B, A, c.alpha, NULL);
            c.q[b] = x0;
            g[b] = (lp - lm) / 2e-2;
            through = fmax(through, fabs(g[b] - dq[b]));
        }
        CHECK(through > 1e-3);
    }
    return 0;
}

int main(void) {
    RUN(test_targets_hand);
    RUN(test_weights_hand);
    RUN(test_losses_hand);
    RUN(test_fd_all);
    TEST_EXIT();
}
