// ctrl/mlp and ctrl/policy against finite differences: each C backward is
// compared with central differences of an independent double-precision
// reference written here (plain loops; only the test has them).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"
#include "nn/nn.h"
#include "test.h"

// ---------------------------------------------------------------- MLP reference

// y (ens, B, out) in double from double params laid out as ctrl_mlp's span
static void ref_mlp(const ctrl_mlp *m, const double *p, const double *x, int B, double *y) {
    int maxw = m->hidden > m->in ? m->hidden : m->in;
    double *h = malloc(sizeof(double) * B * maxw), *o = malloc(sizeof(double) * B * maxw);
    long per = m->n_params / m->ens;
    for (int e = 0; e < m->ens; e++) {
        const double *q = p + e * per;
        memcpy(h, x, sizeof(double) * B * m->in);
        for (int l = 0; l <= m->layers; l++) {
            int ci = l == 0 ? m->in : m->hidden, co = l == m->layers ? m->out : m->hidden;
            const double *W = q, *b = q + (long)ci * co;
            q += (long)ci * co + co;
            double *dst = l == m->layers ? y + (long)e * B * m->out : o;
            for (int n = 0; n < B; n++)
                for (int k = 0; k < co; k++) {
                    double s = b[k];
                    for (int c = 0; c < ci; c++) s += W[(long)k * ci + c] * h[(long)n * ci + c];
                    dst[(long)n * co + k] = l == m->layers ? s : (s > 0 ? s : 0);
                }
            if (l < m->layers) memcpy(h, o, sizeof(double) * B * co);
        }
    }
    free(h);
    free(o);
}

// L = sum w * y
static double ref_mlp_loss(const ctrl_mlp *m, const double *p, const double *x, int B,
                           const double *w) {
    long ny = (long)m->ens * B * m->out;
    double *y = malloc(sizeof(double) * ny), L = 0;
    ref_mlp(m, p, x, B, y);
    for (long i = 0; i < ny; i++) L += w[i] * y[i];
    free(y);
    return L;
}

// one (in, hidden, layers, out, ens, B) case: forward vs reference, param grads
// and dx vs central differences; returns the largest relative error seen
static double mlp_fd_case(int in, int hidden, int layers, int out, int ens, int B, uint64_t seed) {
    rlhf_rng g;
    rng_seed(&g, seed);
    ctrl_mlp m;
    ctrl_mlp_init(&m, in, hidden, layers, out, ens, &g);
    long np = m.n_params, ny = (long)ens * B * out;
    float *x = malloc(sizeof(float) * B * in), *y = malloc(sizeof(float) * ny);
    float *dy = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * B * in);
    double *xd = malloc(sizeof(double) * B * in), *w = malloc(sizeof(double) * ny);
    double *pd = malloc(sizeof(double) * np), *yd = malloc(sizeof(double) * ny);
    for (int i = 0; i < B * in; i++) x[i] = rng_normal(&g), xd[i] = x[i];
    for (long i = 0; i < ny; i++) dy[i] = rng_normal(&g), w[i] = dy[i];
    for (long i = 0; i < np; i++) pd[i] = m.params[i];

    ctrl_mlp_forward(&m, x, B, y);
    ref_mlp(&m, pd, xd, B, yd);
    double maxerr = 0;
    for (long i = 0; i < ny; i++) {
        CHECK_CLOSE(y[i], yd[i], 1e-5, 1e-4);
        if (fabs(y[i] - yd[i]) > maxerr) maxerr = fabs(y[i] - yd[i]);
    }
    ctrl_mlp_zero_grad(&m);
    for (int i = 0; i < B * in; i++) dx[i] = 0.5f;  // backward accumulates onto this
    ctrl_mlp_backward(&m, dy, dx, 1);

    const double h = 1e-6;
    double gmax = 0;
    for (long i = 0; i < np; i++) gmax = fmax(gmax, fabs(m.grads[i]));
    for (long i = 0; i < np; i++) {
        double s = pd[i];
        pd[i] = s + h;
        double Lp = ref_mlp_loss(&m, pd, xd, B, w);
        pd[i] = s - h;
        double Lm = ref_mlp_loss(&m, pd, xd, B, w);
        pd[i] = s;
        double fd = (Lp - Lm) / (2 * h), err = fabs(m.grads[i] - fd) / (1e-3 * gmax + fabs(fd));
        if (err > maxerr) maxerr = err;
        CHECKF(fabs(m.grads[i] - fd) <= 1e-4 * gmax + 1e-3 * fabs(fd), "param %ld: %g vs fd %g",
               i, m.grads[i], fd);
    }
    for (int i = 0; i < B * in; i++) {
        double s = xd[i];
        xd[i] = s + h;
        double Lp = ref_mlp_loss(&m, pd, xd, B, w);
        xd[i] = s - h;
        double Lm = ref_mlp_loss(&m, pd, xd, B, w);
        xd[i] = s;
        double fd = (Lp - Lm) / (2 * h) + 0.5;
        CHECK_CLOSE(dx[i], fd, 1e-4, 1e-3);
    }
    // without param_grads the grads stay, dx still accumulates
    float g0 = m.grads[0];
    ctrl_mlp_backward(&m, dy, NULL, 0);
    CHECK(m.grads[0] == g0);
    // a second backward with param grads accumulates exactly twice
    float *g1 = malloc(sizeof(float) * np);
    memcpy(g1, m.grads, sizeof(float) * np);
    ctrl_mlp_backward(&m, dy, NULL, 1);
    for (long i = 0; i < np; i++) CHECK_CLOSE(m.grads[i], 2 * g1[i], 1e-6, 1e-5);
    free(g1);
    free(x), free(y), free(dy), free(dx), free(xd), free(w), free(pd), free(yd);
    ctrl_mlp_free(&m);
    return maxerr;
}

static int test_mlp_fd(void) {
    double e1 = mlp_fd_case(5, 7, 2, 3, 3, 4, 1);  // E = 3, two hidden layers
    double e2 = mlp_fd_case(3, 6, 1, 2, 1, 1, 2);  // B = 1, one layer, one member
    double e3 = mlp_fd_case(4, 5, 3, 1, 2, 9, 3);  // odd sizes, three layers, scalar out
    printf("  max relative error: %.2g %.2g %.2g\n", e1, e2, e3);
    return 0;
}

// the layout the header promises: member e's W0 (hidden, in) starts the member's span,
// init bounds 1/sqrt(fan_in), and a batch larger than any before grows the buffers
static int test_mlp_layout_init(void) {
    rlhf_rng g;
    rng_seed(&g, 5);
    ctrl_mlp m;
    ctrl_mlp_init(&m, 16, 64, 2, 4, 2, &g);
    long per = 16 * 64 + 64 + 64 * 64 + 64 + 64 * 4 + 4;
    CHECK(m.n_params == 2 * per);
    CHECK(ctrl_mlp_member(&m, 1) == m.params + per);
    CHECK(((uintptr_t)m.params & 63) == 0 && ((uintptr_t)m.grads & 63) == 0);
    float mx0 = 0, mx1 = 0;
    for (long i = 0; i < 16 * 64 + 64; i++) mx0 = fmaxf(mx0, fabsf(m.params[i]));
    for (long i = 16 * 64 + 64; i < 16 * 64 + 64 + 64 * 64 + 64; i++)
        mx1 = fmaxf(mx1, fabsf(m.params[i]));
    CHECK(mx0 <= 0.25f && mx0 > 0.24f);     // 1/sqrt(16)
    CHECK(mx1 <= 0.125f && mx1 > 0.12f);    // 1/sqrt(64)
    // a different seed gives different parameters; the same seed the same ones
    rlhf_rng g2;
    rng_seed(&g2, 5);
    ctrl_mlp m2;
    ctrl_mlp_init(&m2, 16, 64, 2, 4, 2, &g2);
    CHECK(!memcmp(m.params, m2.params, sizeof(float) * m.n_params));
    // members differ
    CHECK(memcmp(m.params, m.params + per, sizeof(float) * per) != 0);
    // init_last scales the last layer only
    float w_last = m.params[per - 64 * 4 - 4], w_first = m.params[0];
    ctrl_mlp_init_last(&m, 1e-3f);
    CHECK_CLOSE(m.params[per - 64 * 4 - 4], w_last * 1e-3f, 1e-12, 1e-6);
    CHECK(m.params[0] == w_first);
    CHECK_CLOSE(m.params[2 * per - 1], m2.params[2 * per - 1] * 1e-3f, 1e-12, 1e-6);
    // forward at B = 3 then B = 300 (grows) gives the same rows for the same input
    float *x = malloc(sizeof(float) * 300 * 16), *y3 = malloc(sizeof(float) * 2 * 3 * 4);
    float *y300 = malloc(sizeof(float) * 2 * 300 * 4);
    for (int i = 0; i < 300 * 16; i++) x[i] = rng_normal(&g);
    ctrl_mlp_forward(&m, x, 3, y3);
    ctrl_mlp_forward(&m, x, 300, y300);
    CHECK(m.cap_batch >= 300);
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 3 * 4; i++) CHECK_CLOSE(y3[e * 12 + i], y300[e * 1200 + i], 1e-6, 1e-5);
    free(x), free(y3), free(y300);
    ctrl_mlp_free(&m);
    ctrl_mlp_free(&m2);
    return 0;
}

static int test_polyak_adam(void) {
    rlhf_rng g;
    rng_seed(&g, 9);
    ctrl_mlp a, b;
    ctrl_mlp_init(&a, 3, 8, 1, 2, 2, &g);
    ctrl_mlp_init(&b, 3, 8, 1, 2, 2, &g);
    float *b0 = malloc(sizeof(float) * b.n_params);
    memcpy(b0, b.params, sizeof(float) * b.n_params);
    ctrl_mlp_polyak(&b, &a, 0.005f);
    for (long i = 0; i < b.n_params; i++)
        CHECK_CLOSE(b.params[i], 0.995 * b0[i] + 0.005 * a.params[i], 1e-7, 1e-6);
    ctrl_mlp_polyak(&b, &a, 1.0f);
    CHECK(!memcmp(a.params, b.params, sizeof(float) * a.n_params));
    // AdamW: the first step moves every parameter by lr * sign(g) (bias-corrected)
    ctrl_adam opt;
    ctrl_adam_init(&opt, a.n_params, 1e-2f);
    CHECK(((uintptr_t)opt.m & 63) == 0 && ((uintptr_t)opt.v & 63) == 0);
    for (long i = 0; i < a.n_params; i++) a.grads[i] = rng_normal(&g);
    memcpy(b0, a.params, sizeof(float) * a.n_params);
    ctrl_adam_step(&opt, a.params, a.grads);
    CHECK(opt.t == 1);
    for (long i = 0; i < a.n_params; i++)
        CHECK_CLOSE(a.params[i], b0[i] - 1e-2 * (a.grads[i] > 0 ? 1 : -1), 1e-5, 1e-4);
    ctrl_adam_free(&opt);
    free(b0);
    ctrl_mlp_free(&a);
    ctrl_mlp_free(&b);
    return 0;
}

int main(void) {
    RUN(test_mlp_fd);
    RUN(test_mlp_layout_init);
    RUN(test_polyak_adam);
    TEST_EXIT();
}
