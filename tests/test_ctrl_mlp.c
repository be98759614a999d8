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

#ifdef _OPENMP
#include <omp.h>
#endif

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
            int ln = m->layer_norm && l < m->layers;
            const double *g = q, *sh = q + co; // layer norm's scale and shift
            if (ln) q += 2L * co;
            double *dst = l == m->layers ? y + (long)e * B * m->out : o;
            for (int n = 0; n < B; n++) {
                double *row = dst + (long)n * co;
                for (int k = 0; k < co; k++) {
                    double s = b[k];
                    for (int c = 0; c < ci; c++) s += W[(long)k * ci + c] * h[(long)n * ci + c];
                    row[k] = s;
                }
                if (l == m->layers) continue;
                if (ln) { // the textbook formula, two passes
                    double mu = 0, var = 0;
                    for (int k = 0; k < co; k++) mu += row[k] / co;
                    for (int k = 0; k < co; k++) var += (row[k] - mu) * (row[k] - mu) / co;
                    for (int k = 0; k < co; k++)
                        row[k] = g[k] * (row[k] - mu) / sqrt(var + CTRL_MLP_LN_EPS) + sh[k];
                }
                for (int k = 0; k < co; k++)
                    row[k] = m->tanh_hidden ? tanh(row[k]) : (row[k] > 0 ? row[k] : 0);
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

// one (in, hidden, layers, out, ens, B) case, ReLU or tanh hidden layers:
// forward vs reference, param grads and dx vs central differences; returns the
// largest relative error seen
static double mlp_fd_case_ln(int in, int hidden, int layers, int out, int ens, int B, uint64_t seed,
                             int tanh_act, int ln) {
    rlhf_rng g;
    rng_seed(&g, seed);
    ctrl_mlp m;
    ctrl_mlp_init_ln(&m, in, hidden, layers, out, ens, ln, &g);
    ctrl_mlp_set_tanh(&m, tanh_act);
    long np = m.n_params, ny = (long)ens * B * out;
    if (ln) // scales and shifts away from their 1 and 0, so that both gradients show
        for (int e = 0; e < ens; e++) {
            float *q = ctrl_mlp_member(&m, e);
            for (int l = 0; l < layers; l++) {
                q += (long)(l ? hidden : in) * hidden + hidden;
                for (int k = 0; k < 2 * hidden; k++)
                    *q++ = (k < hidden ? 1.0f : 0.0f) + 0.5f * rng_normal(&g);
            }
        }
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

static double mlp_fd_case(int in, int hidden, int layers, int out, int ens, int B, uint64_t seed,
                          int tanh_act) {
    return mlp_fd_case_ln(in, hidden, layers, out, ens, B, seed, tanh_act, 0);
}

static int test_mlp_fd(void) {
    for (int t = 0; t < 2; t++) { // ReLU, then tanh hidden layers
        double e1 = mlp_fd_case(5, 7, 2, 3, 3, 4, 1, t);  // E = 3, two hidden layers
        double e2 = mlp_fd_case(3, 6, 1, 2, 1, 1, 2, t);  // B = 1, one layer, one member
        double e3 = mlp_fd_case(4, 5, 3, 1, 2, 9, 3, t);  // odd sizes, three layers, scalar out
        double e4 = mlp_fd_case(9, 6, 2, 20, 2, 5, 4, t); // wide last layer (out > 16)
        double e5 = mlp_fd_case(17, 32, 2, 17, 1, 70, 5, t); // out 17, past the skinny sizes
        printf("  %s: max relative error: %.2g %.2g %.2g %.2g %.2g\n", t ? "tanh" : "relu", e1,
               e2, e3, e4, e5);
    }
    for (int t = 0; t < 2; t++) { // the same shapes with layer norm in the hidden layers
        double e1 = mlp_fd_case_ln(5, 7, 2, 3, 3, 4, 11, t, 1);
        double e2 = mlp_fd_case_ln(3, 6, 1, 2, 1, 1, 12, t, 1);
        double e3 = mlp_fd_case_ln(4, 5, 3, 1, 2, 9, 13, t, 1);
        double e4 = mlp_fd_case_ln(9, 6, 2, 20, 2, 5, 14, t, 1);
        double e5 = mlp_fd_case_ln(17, 32, 2, 17, 1, 70, 15, t, 1);
        printf("  %s + layer norm: max relative error: %.2g %.2g %.2g %.2g %.2g\n",
               t ? "tanh" : "relu", e1, e2, e3, e4, e5);
    }
    return 0;
}

// layer norm's layout: per hidden layer W, b, g (ones), s (zeros); the W and b
// drawn are the plain network's; a network without it has no g or s
static int test_mlp_ln_layout(void) {
    rlhf_rng g1, g2;
    rng_seed(&g1, 7);
    rng_seed(&g2, 7);
    ctrl_mlp a, b;
    ctrl_mlp_init(&a, 6, 8, 2, 3, 2, &g1);
    ctrl_mlp_init_ln(&b, 6, 8, 2, 3, 2, 1, &g2);
    long pa = 6 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3, pb = pa + 2 * 2 * 8;
    CHECK(a.n_params == 2 * pa && b.n_params == 2 * pb);
    for (int e = 0; e < 2; e++) {
        const float *x = a.params + e * pa, *y = b.params + e * pb;
        CHECK(!memcmp(x, y, sizeof(float) * (6 * 8 + 8)));                         // W0, b0
        for (int k = 0; k < 8; k++) CHECK(y[56 + k] == 1.0f && y[64 + k] == 0.0f); // g0, s0
        CHECK(!memcmp(x + 56, y + 72, sizeof(float) * (8 * 8 + 8)));               // W1, b1
        CHECK(!memcmp(x + 128, y + 160, sizeof(float) * (8 * 3 + 3)));             // the last layer
    }
    // ctrl_mlp_weight finds each layer's W in either layout
    CHECK(ctrl_mlp_weight(&a, 1, 1) == a.params + pa + 56 &&
          ctrl_mlp_weight(&a, 0, 2) == a.params + 128);
    CHECK(ctrl_mlp_weight(&b, 1, 1) == b.params + pb + 72 &&
          ctrl_mlp_weight(&b, 0, 2) == b.params + 160);
    // layer norm removes a constant added to all of a row's pre-activations:
    // adding 3 to every b0 leaves y as it was (without it, y would change)
    float x[12], y0[2 * 2 * 3], y1[2 * 2 * 3];
    for (int i = 0; i < 12; i++) x[i] = rng_normal(&g1);
    ctrl_mlp_forward(&b, x, 2, y0);
    for (int e = 0; e < 2; e++)
        for (int k = 0; k < 8; k++) b.params[e * pb + 48 + k] += 3.0f;
    ctrl_mlp_forward(&b, x, 2, y1);
    for (int i = 0; i < 12; i++) CHECK_CLOSE(y0[i], y1[i], 1e-5, 1e-4);
    ctrl_mlp_free(&a);
    ctrl_mlp_free(&b);
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
    // a NaN or an infinity anywhere in the gradient: no change at all (params,
    // moments, t), counted; a finite one after it steps again
    size_t bytes = sizeof(float) * (size_t)a.n_params;
    float *p1 = malloc(bytes), *m1 = malloc(bytes), *v1 = malloc(bytes);
    const float poison[2] = {NAN, -INFINITY};
    for (int k = 0; k < 2; k++) {
        memcpy(p1, a.params, bytes), memcpy(m1, opt.m, bytes), memcpy(v1, opt.v, bytes);
        long bad = ctrl_adam_nonfinite_steps();
        float keep = a.grads[a.n_params - 1 - k];
        a.grads[a.n_params - 1 - k] = poison[k];
        ctrl_adam_step(&opt, a.params, a.grads);
        a.grads[a.n_params - 1 - k] = keep;
        CHECK(ctrl_adam_nonfinite_steps() == bad + 1 && opt.t == 1);
        CHECK(!memcmp(p1, a.params, bytes) && !memcmp(m1, opt.m, bytes) &&
              !memcmp(v1, opt.v, bytes));
    }
    ctrl_adam_step(&opt, a.params, a.grads);
    CHECK(opt.t == 2 && memcmp(p1, a.params, bytes));
    free(p1), free(m1), free(v1);
    ctrl_adam_free(&opt);
    free(b0);
    ctrl_mlp_free(&a);
    ctrl_mlp_free(&b);
    return 0;
}


// members run in parallel when there are threads: the same outputs, grads and dx
// as one thread (each member's dx apart, summed in member order)
static int test_mlp_threads(void) {
#ifndef _OPENMP
    SKIP("built without OpenMP");
#else
    int nt0 = omp_get_max_threads();
    enum { E = 5, B = 37, IN = 11, H = 48, OUT = 2 };
    float *x = malloc(sizeof(float) * B * IN), *dy = malloc(sizeof(float) * E * B * OUT);
    float *y[2], *dx[2], *gr[2];
    rlhf_rng g;
    rng_seed(&g, 21);
    for (int i = 0; i < B * IN; i++) x[i] = rng_normal(&g);
    for (int i = 0; i < E * B * OUT; i++) dy[i] = rng_normal(&g);
    long np = 0;
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r == 0 ? 1 : 4);
        rng_seed(&g, 22);
        ctrl_mlp m;
        ctrl_mlp_init(&m, IN, H, 2, OUT, E, &g);
        np = m.n_params;
        y[r] = malloc(sizeof(float) * E * B * OUT);
        dx[r] = calloc(B * IN, sizeof(float));
        gr[r] = malloc(sizeof(float) * np);
        ctrl_mlp_forward(&m, x, B, y[r]);
        ctrl_mlp_zero_grad(&m);
        ctrl_mlp_backward(&m, dy, dx[r], 1);
        memcpy(gr[r], m.grads, sizeof(float) * np);
        ctrl_mlp_free(&m);
    }
    omp_set_num_threads(nt0);
    for (int i = 0; i < E * B * OUT; i++) CHECK_CLOSE(y[1][i], y[0][i], 1e-6, 1e-6);
    for (int i = 0; i < B * IN; i++) CHECK_CLOSE(dx[1][i], dx[0][i], 1e-6, 1e-6);
    for (long i = 0; i < np; i++) CHECK_CLOSE(gr[1][i], gr[0][i], 1e-6, 1e-6);
    for (int r = 0; r < 2; r++) free(y[r]), free(dx[r]), free(gr[r]);
    free(x), free(dy);
    return 0;
#endif
}

// ---------------------------------------------------------------- policy heads

#define PB 5
#define PA 3
static const float P_SCALE[PA] = {2.0f, 0.5f, 1.0f}, P_BIAS[PA] = {0.1f, -0.2f, 0.0f};
static const double LO = -2.0, HI = 1.0;  // log_std clamp used by the tests

static double clampd_(double x) { return x < LO ? LO : x > HI ? HI : x; }
static double lognorm_(double x, double mu, double ls) {
    double z = (x - mu) / exp(ls);
    return -0.5 * z * z - ls - 0.5 * log(2 * M_PI);
}

// L = sum wa * action + sum wl * logp for the tanh-Gaussian sample (naive formulas)
static double ref_tg_loss(const double *out, const double *eps, const double *wa, const double *wl) {
    double L = 0;
    for (int b = 0; b < PB; b++) {
        double lp = 0;
        for (int i = 0; i < PA; i++) {
            double mu = out[b * 2 * PA + i], ls = clampd_(out[b * 2 * PA + PA + i]);
            double x = mu + exp(ls) * eps[b * PA + i], t = tanh(x);
            L += wa[b * PA + i] * (P_BIAS[i] + P_SCALE[i] * t);
            lp += lognorm_(x, mu, ls) - log(1 - t * t) - log(P_SCALE[i]);
        }
        L += wl[b] * lp;
    }
    return L;
}

// L = sum wl * logp(action) under the tanh-Gaussian
static double ref_tglp_loss(const double *out, const double *act, const double *wl) {
    double L = 0;
    for (int b = 0; b < PB; b++) {
        double lp = 0;
        for (int i = 0; i < PA; i++) {
            double mu = out[b * 2 * PA + i], ls = clampd_(out[b * 2 * PA + PA + i]);
            double y = (act[b * PA + i] - P_BIAS[i]) / P_SCALE[i];
            double x = 0.5 * log((1 + y) / (1 - y));
            lp += lognorm_(x, mu, ls) - log(1 - y * y) - log(P_SCALE[i]);
        }
        L += wl[b] * lp;
    }
    return L;
}

// central differences of f over v[0..n) -> fd
typedef double (*loss_fn)(const double *v, void *ctx);
static void fd_grad(loss_fn f, double *v, int n, void *ctx, double *fd) {
    const double h = 1e-6;
    for (int i = 0; i < n; i++) {
        double s = v[i];
        v[i] = s + h;
        double Lp = f(v, ctx);
        v[i] = s - h;
        double Lm = f(v, ctx);
        v[i] = s;
        fd[i] = (Lp - Lm) / (2 * h);
    }
}

typedef struct {
    const double *eps, *wa, *wl, *act;
} pctx;
static double tg_f(const double *v, void *c) {
    pctx *p = c;
    return ref_tg_loss(v, p->eps, p->wa, p->wl);
}
static double tglp_f(const double *v, void *c) {
    pctx *p = c;
    return ref_tglp_loss(v, p->act, p->wl);
}

static double max_err_ = 0;
static void check_grad(const float *g, const double *fd, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        double e = fabs(g[i] - fd[i]);
        if (e > max_err_) max_err_ = e;
        CHECKF(e <= 1e-5 + 1e-4 * fabs(fd[i]), "%s[%d]: %g vs fd %g", what, i, g[i], fd[i]);
    }
}

static void fill_out(rlhf_rng *g, float *out, double *outd) {
    for (int b = 0; b < PB; b++)
        for (int i = 0; i < 2 * PA; i++) {
            // log_std raw values in [-3, 2] so some fall outside the clamp [-2, 1]
            float v = i < PA ? rng_normal(g) : -3.0f + 5.0f * rng_uniform(g);
            out[b * 2 * PA + i] = v;
            outd[b * 2 * PA + i] = v;
        }
}

static int test_det_head(void) {
    rlhf_rng g;
    rng_seed(&g, 11);
    float u[PB * PA], a[PB * PA], da[PB * PA], du[PB * PA];
    for (int k = 0; k < PB * PA; k++) u[k] = 2 * rng_normal(&g), da[k] = rng_normal(&g), du[k] = 1;
    ctrl_det_forward(a, u, P_SCALE, P_BIAS, PB, PA);
    for (int k = 0; k < PB * PA; k++) {
        int i = k % PA;
        double t = tanh((double)u[k]);
        CHECK_CLOSE(a[k], P_BIAS[i] + P_SCALE[i] * t, 1e-6, 1e-6);
        CHECK(fabsf(a[k] - P_BIAS[i]) <= P_SCALE[i]);
    }
    ctrl_det_backward(du, da, a, P_SCALE, P_BIAS, PB, PA);
    for (int k = 0; k < PB * PA; k++) {
        int i = k % PA;
        double h = 1e-6, x = u[k];
        double fd = (P_SCALE[i] * (tanh(x + h) - tanh(x - h)) / (2 * h)) * da[k] + 1.0;
        CHECK_CLOSE(du[k], fd, 1e-4, 1e-3);  // the action is float: tanh recovered from it
    }
    return 0;
}

static int test_tanh_gauss_fd(void) {
    rlhf_rng g;
    rng_seed(&g, 12);
    float out[PB * 2 * PA], eps[PB * PA], a[PB * PA], lp[PB], pre[PB * PA], wa[PB * PA], wl[PB];
    double outd[PB * 2 * PA], epsd[PB * PA], wad[PB * PA], wld[PB], fd[PB * 2 * PA];
    fill_out(&g, out, outd);
    for (int k = 0; k < PB * PA; k++) eps[k] = rng_normal(&g), epsd[k] = eps[k];
    for (int k = 0; k < PB * PA; k++) wa[k] = rng_normal(&g), wad[k] = wa[k];
    for (int b = 0; b < PB; b++) wl[b] = rng_normal(&g), wld[b] = wl[b];
    ctrl_tanh_gauss_forward(a, lp, pre, out, eps, P_SCALE, P_BIAS, PB, PA, LO, HI);
    // forward values against the naive reference (one row at a time via unit weights)
    for (int b = 0; b < PB; b++) {
        double lpb = 0;
        for (int i = 0; i < PA; i++) {
            double mu = outd[b * 2 * PA + i], ls = clampd_(outd[b * 2 * PA + PA + i]);
            double x = mu + exp(ls) * epsd[b * PA + i], t = tanh(x);
            CHECK_CLOSE(pre[b * PA + i], x, 1e-6, 1e-6);
            CHECK_CLOSE(a[b * PA + i], P_BIAS[i] + P_SCALE[i] * t, 1e-6, 1e-6);
            lpb += lognorm_(x, mu, ls) - log(1 - t * t) - log(P_SCALE[i]);
        }
        CHECK_CLOSE(lp[b], lpb, 1e-5, 1e-5);
    }
    pctx c = {epsd, wad, wld, NULL};
    fd_grad(tg_f, outd, PB * 2 * PA, &c, fd);
    int outside = 0;
    for (int b = 0; b < PB; b++)
        for (int i = 0; i < PA; i++) outside += fd[b * 2 * PA + PA + i] == 0;
    CHECK(outside > 0);  // the clamp was exercised: zero gradient there
    float dout[PB * 2 * PA] = {0};
    ctrl_tanh_gauss_backward(dout, wa, wl, out, eps, pre, P_SCALE, PB, PA, LO, HI);
    check_grad(dout, fd, PB * 2 * PA, "dout (action + logp)");
    // either upstream may be NULL: logp only, then action only, sum to the same
    float d1[PB * 2 * PA] = {0};
    ctrl_tanh_gauss_backward(d1, NULL, wl, out, eps, pre, P_SCALE, PB, PA, LO, HI);
    ctrl_tanh_gauss_backward(d1, wa, NULL, out, eps, pre, P_SCALE, PB, PA, LO, HI);
    for (int k = 0; k < PB * 2 * PA; k++) CHECK_CLOSE(d1[k], dout[k], 1e-6, 1e-5);
    // eps = NULL: the deterministic action tanh(mu), logp still defined
    float a0[PB * PA];
    ctrl_tanh_gauss_forward(a0, NULL, pre, out, NULL, P_SCALE, P_BIAS, PB, PA, LO, HI);
    for (int b = 0; b < PB; b++)
        for (int i = 0; i < PA; i++)
            CHECK_CLOSE(a0[b * PA + i], P_BIAS[i] + P_SCALE[i] * tanh(outd[b * 2 * PA + i]), 1e-6,
                        1e-6);
    return 0;
}

// saturated pre-activations: the stable log(1 - tanh^2) keeps logp finite and exact
static int test_tanh_gauss_saturated(void) {
    float out[2] = {20.0f, 0.0f}, eps[1] = {0.0f}, a[1], lp[1], pre[1], s[1] = {1}, bz[1] = {0};
    ctrl_tanh_gauss_forward(a, lp, pre, out, eps, s, bz, 1, 1, -5, 2);
    // log(1 - tanh(20)^2) = log(4) - 40 - 2 log(1 + e^-40)
    double want = -0.5 * log(2 * M_PI) - (2 * log(2.0) - 40.0);
    CHECK(isfinite(lp[0]));
    CHECK_CLOSE(lp[0], want, 1e-4, 1e-6);
    float d[2] = {0}, dl[1] = {1};
    ctrl_tanh_gauss_backward(d, NULL, dl, out, eps, pre, s, 1, 1, -5, 2);
    CHECK_CLOSE(d[0], 2.0, 1e-6, 1e-6);  // d/dx -log(1 - tanh^2) = 2 tanh(x)
    return 0;
}

static int test_tanh_gauss_logprob_fd(void) {
    rlhf_rng g;
    rng_seed(&g, 13);
    float out[PB * 2 * PA], act[PB * PA], lp[PB], wl[PB];
    double outd[PB * 2 * PA], actd[PB * PA], wld[PB], fd[PB * 2 * PA];
    fill_out(&g, out, outd);
    for (int b = 0; b < PB; b++)
        for (int i = 0; i < PA; i++) {
            act[b * PA + i] = P_BIAS[i] + P_SCALE[i] * (1.8f * rng_uniform(&g) - 0.9f);
            actd[b * PA + i] = act[b * PA + i];
        }
    for (int b = 0; b < PB; b++) wl[b] = rng_normal(&g), wld[b] = wl[b];
    ctrl_tanh_gauss_logprob(lp, out, act, P_SCALE, P_BIAS, PB, PA, LO, HI);
    for (int b = 0; b < PB; b++) {
        double one[PB] = {0};
        one[b] = 1;
        CHECK_CLOSE(lp[b], ref_tglp_loss(outd, actd, one), 1e-5, 1e-5);
    }
    pctx c = {NULL, NULL, wld, actd};
    fd_grad(tglp_f, outd, PB * 2 * PA, &c, fd);
    float dout[PB * 2 * PA] = {0};
    ctrl_tanh_gauss_logprob_backward(dout, wl, out, act, P_SCALE, P_BIAS, PB, PA, LO, HI);
    check_grad(dout, fd, PB * 2 * PA, "dout (logprob)");
    // the sample's own action gets back (close to) the sample's logp
    float eps[PB * PA], a[PB * PA], lps[PB], pre[PB * PA];
    for (int k = 0; k < PB * PA; k++) eps[k] = 0.5f * rng_normal(&g);
    for (int b = 0; b < PB; b++)
        for (int i = 0; i < PA; i++) out[b * 2 * PA + i] *= 0.3f;  // stay away from saturation
    ctrl_tanh_gauss_forward(a, lps, pre, out, eps, P_SCALE, P_BIAS, PB, PA, LO, HI);
    ctrl_tanh_gauss_logprob(lp, out, a, P_SCALE, P_BIAS, PB, PA, LO, HI);
    for (int b = 0; b < PB; b++) CHECK_CLOSE(lp[b], lps[b], 1e-2, 1e-3);
    // actions on the bounds stay finite (atanh of the clipped value)
    float edge[PA] = {P_BIAS[0] + P_SCALE[0], P_BIAS[1] - P_SCALE[1], 1.0f};
    ctrl_tanh_gauss_logprob(lp, out, edge, P_SCALE, P_BIAS, 1, PA, LO, HI);
    CHECK(isfinite(lp[0]));
    return 0;
}

typedef struct {
    const double *act, *wl;
} gctx;
// v = [mean (PB*PA) | log_std (PA)]
static double gauss_f(const double *v, void *c) {
    gctx *p = c;
    double L = 0;
    for (int b = 0; b < PB; b++) {
        double lp = 0;
        for (int i = 0; i < PA; i++) lp += lognorm_(p->act[b * PA + i], v[b * PA + i], clampd_(v[PB * PA + i]));
        L += p->wl[b] * lp;
    }
    return L;
}

static int test_gauss_logprob_fd(void) {
    rlhf_rng g;
    rng_seed(&g, 14);
    float mean[PB * PA], ls[PA] = {-2.7f, 0.3f, 1.6f}, act[PB * PA], lp[PB], wl[PB];
    double v[PB * PA + PA], actd[PB * PA], wld[PB], fd[PB * PA + PA];
    for (int k = 0; k < PB * PA; k++) mean[k] = rng_normal(&g), v[k] = mean[k];
    for (int i = 0; i < PA; i++) v[PB * PA + i] = ls[i];
    for (int k = 0; k < PB * PA; k++) act[k] = rng_normal(&g), actd[k] = act[k];
    for (int b = 0; b < PB; b++) wl[b] = rng_normal(&g), wld[b] = wl[b];
    ctrl_gauss_logprob(lp, mean, ls, act, PB, PA, LO, HI);
    gctx c = {actd, wld};
    for (int b = 0; b < PB; b++) {
        double one[PB] = {0};
        one[b] = 1;
        gctx c1 = {actd, one};
        CHECK_CLOSE(lp[b], gauss_f(v, &c1), 1e-5, 1e-5);
    }
    fd_grad(gauss_f, v, PB * PA + PA, &c, fd);
    CHECK(fd[PB * PA] == 0 && fd[PB * PA + 2] == 0);  // both clamped ends
    float dm[PB * PA] = {0}, dls[PA] = {0};
    ctrl_gauss_logprob_backward(dm, dls, wl, mean, ls, act, PB, PA, LO, HI);
    check_grad(dm, fd, PB * PA, "dmean");
    check_grad(dls, fd + PB * PA, PA, "dlog_std");
    // either output may be NULL
    float dm2[PB * PA] = {0};
    ctrl_gauss_logprob_backward(dm2, NULL, wl, mean, ls, act, PB, PA, LO, HI);
    CHECK(!memcmp(dm, dm2, sizeof dm));
    float dls2[PA] = {0};
    ctrl_gauss_logprob_backward(NULL, dls2, wl, mean, ls, act, PB, PA, LO, HI);
    CHECK(!memcmp(dls, dls2, sizeof dls));
    printf("  max abs gradient error over the heads: %.2g\n", max_err_);
    return 0;
}

int main(void) {
    RUN(test_mlp_fd);
    RUN(test_mlp_layout_init);
    RUN(test_mlp_ln_layout);
    RUN(test_polyak_adam);
    RUN(test_mlp_threads);
    RUN(test_det_head);
    RUN(test_tanh_gauss_fd);
    RUN(test_tanh_gauss_saturated);
    RUN(test_tanh_gauss_logprob_fd);
    RUN(test_gauss_logprob_fd);
    TEST_EXIT();
}
