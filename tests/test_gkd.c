// tests/test_gkd: algo/gkd's generalised JSD. Finite differences of the
// gradient with respect to the student's logits (beta 0, 0.1, 0.5, 0.9, 1; tau
// 1 and 2; weights 0 / 1 / 0.5), the ends against plain KLs written here, the
// mixture's limits, the in-place gradient. Torch parity of loss and gradient:
// tests/gkd_test.py, through this binary's dump mode:
//   test_gkd --dump IN OUT
// IN: int32 N, V; float32 beta, tau, scale; student (N*V), teacher (N*V), weight (N)
// OUT: float64 loss; float32 dstudent (N*V).
#include <stdint.h>

#include "algo/gkd.h"
#include "test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static double urand(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static void fill(float *x, int n, double sd) {
    for (int i = 0; i < n; i++) x[i] = (float)(sd * (2 * urand() - 1));
}

// plain KL(a || b) of softmax(x / tau), softmax(y / tau), in double
static double kl_plain(int V, const float *x, const float *y, double tau) {
    double mx = -1e300, my = -1e300, sx = 0, sy = 0, k = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, x[v] / tau), my = fmax(my, y[v] / tau);
    for (int v = 0; v < V; v++) sx += exp(x[v] / tau - mx), sy += exp(y[v] / tau - my);
    for (int v = 0; v < V; v++) {
        double la = x[v] / tau - mx - log(sx), lb = y[v] / tau - my - log(sy);
        k += exp(la) * (la - lb);
    }
    return k;
}

static int test_ends_are_kls(void) {
    enum { N = 3, V = 11 };
    float s[N * V], t[N * V];
    fill(s, N * V, 3), fill(t, N * V, 3);
    for (int k = 0; k < 2; k++) {
        double tau = k ? 2.0 : 1.0, f = 0, r = 0;
        for (int i = 0; i < N; i++)
            f += kl_plain(V, t + i * V, s + i * V, tau), r += kl_plain(V, s + i * V, t + i * V, tau);
        CHECK_CLOSE(gkd_jsd(N, V, s, t, NULL, 0, (float)tau, 1, NULL), f, 1e-12, 1e-9);
        CHECK_CLOSE(gkd_jsd(N, V, s, t, NULL, 1, (float)tau, 1, NULL), r, 1e-12, 1e-9);
        CHECK(f > 0.1 && r > 0.1 && fabs(f - r) > 1e-3);  // the two directions differ here
    }
    return 0;
}

// the mixture: symmetric at beta 0.5 (the JSD), 0 for equal rows, bounded by
// the entropy bound, ~beta KL(q||p) for small beta
static int test_mixture_properties(void) {
    enum { V = 9 };
    float s[V], t[V];
    fill(s, V, 2), fill(t, V, 2);
    double a = gkd_jsd(1, V, s, t, NULL, 0.5f, 1, 1, NULL), b = gkd_jsd(1, V, t, s, NULL, 0.5f, 1, 1, NULL);
    CHECK_CLOSE(a, b, 1e-12, 1e-9);
    CHECK(a > 0 && a <= log(2.0));
    CHECK_CLOSE(gkd_jsd(1, V, s, s, NULL, 0.3f, 1, 1, NULL), 0, 1e-12, 0);
    double small = gkd_jsd(1, V, s, t, NULL, 1e-4f, 1, 1, NULL) / 1e-4;
    CHECK_CLOSE(small, kl_plain(V, t, s, 1), 0, 2e-3);
    return 0;
}

static int test_gradient_finite_differences(void) {
    enum { N = 4, V = 13 };
    const float betas[] = {0, 0.1f, 0.5f, 0.9f, 1};
    float s[N * V], t[N * V], d[N * V], w[N] = {1, 0, 0.5f, 1};
    fill(t, N * V, 2.5);
    double worst = 0;
    for (int b = 0; b < 5; b++)
        for (int k = 0; k < 2; k++) {
            float tau = k ? 2.0f : 1.0f;
            fill(s, N * V, 2.5);
            double scale = 0.7;
            gkd_jsd(N, V, s, t, w, betas[b], tau, scale, d);
            for (int j = 0; j < N * V; j++) {
                float keep = s[j];
                double h = 1e-2;  // float inputs: central differences in double on a float grid
                s[j] = keep + (float)h;
                double up = gkd_jsd(N, V, s, t, w, betas[b], tau, 1, NULL);
                s[j] = keep - (float)h;
                double dn = gkd_jsd(N, V, s, t, w, betas[b], tau, 1, NULL);
                s[j] = keep;
                double fd = scale * (up - dn) / ((double)(keep + (float)h) - (double)(keep - (float)h));
                double e = fabs(fd - d[j]);
                if (e > worst) worst = e;
                CHECKF(e < 2e-4 + 1e-3 * fabs(fd), "beta %g tau %g [%d]: fd %.8g analytic %.8g",
                       betas[b], tau, j, fd, d[j]);
                if (w[j / V] == 0) CHECK(d[j] == 0);
            }
        }
    printf("  finite differences: max |fd - analytic| %.3g\n", worst);
    return 0;
}

static int test_in_place(void) {
    enum { N = 2, V = 7 };
    float s[N * V], t[N * V], d[N * V];
    fill(s, N * V, 2), fill(t, N * V, 2);
    double a = gkd_jsd(N, V, s, t, NULL, 0.4f, 1.5f, 1, d);
    double b = gkd_jsd(N, V, s, t, NULL, 0.4f, 1.5f, 1, s);  // s becomes its gradient
    CHECK(a == b);
    CHECK(memcmp(s, d, sizeof d) == 0);
    return 0;
}

static int dump(const char *in, const char *out) {
    FILE *f = fopen(in, "rb");
    if (!f) return fprintf(stderr, "%s: cannot open\n", in), 1;
    int32_t nv[2];
    float p[3];
    if (fread(nv, 4, 2, f) != 2 || fread(p, 4, 3, f) != 3) return fprintf(stderr, "%s: short\n", in), 1;
    size_t n = (size_t)nv[0] * nv[1];
    float *s = malloc(n * 4), *t = malloc(n * 4), *w = malloc((size_t)nv[0] * 4), *d = malloc(n * 4);
    if (fread(s, 4, n, f) != n || fread(t, 4, n, f) != n || fread(w, 4, (size_t)nv[0], f) != (size_t)nv[0])
        return fprintf(stderr, "%s: short\n", in), 1;
    fclose(f);
    double loss = gkd_jsd(nv[0], nv[1], s, t, w, p[0], p[1], p[2], d);
    FILE *o = fopen(out, "wb");
    if (!o) return fprintf(stderr, "%s: cannot open for writing\n", out), 1;
    fwrite(&loss, 8, 1, o);
    fwrite(d, 4, n, o);
    fclose(o);
    free(s), free(t), free(w), free(d);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--dump")) return dump(argv[2], argv[3]);
    RUN(test_ends_are_kls);
    RUN(test_mixture_properties);
    RUN(test_gradient_finite_differences);
    RUN(test_in_place);
    return test_total_fail_ ? 1 : 0;
}
