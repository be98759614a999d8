// VPL's math (algo/vpl): the gradient of vpl_loss equals central finite
// differences on every parameter, with a sampled latent, with z = mu and without
// a latent; the latent has norm sqrt(Z) in training; the encoder's outputs lie
// in [-1, 1]; the KL weight's annealing cycle; a decoder that ignores z gives
// the same loss as the Bradley-Terry MLP. (tests/vpl_test.py compares all of it
// with torch; this one also runs under `make asan`.)
#include "algo/vpl.h"

#include "test.h"

static double gauss(rlhf_rng *r) { return rng_normal(r); }

typedef struct {
    vpl_dims d;
    int U, K, M;
    double *p, *cw, *cl, *tw, *tl, *eps;
} fixture;

static void make(fixture *f, int E, int H, int Z, int U, int K, int M, double scale, uint64_t seed) {
    rlhf_rng r;
    rng_seed(&r, seed);
    f->d = (vpl_dims){E, H, Z};
    f->U = U, f->K = K, f->M = M;
    long n = vpl_n_params(f->d);
    f->p = malloc((size_t)n * sizeof(double));
    vpl_init(f->d, f->p, &r);
    for (long i = 0; i < n; i++) f->p[i] *= scale;
    size_t nc = (size_t)U * K * E, nt = (size_t)U * M * E;
    f->cw = malloc(nc * sizeof(double)), f->cl = malloc(nc * sizeof(double));
    f->tw = malloc(nt * sizeof(double)), f->tl = malloc(nt * sizeof(double));
    f->eps = malloc((size_t)(U * (Z ? Z : 1)) * sizeof(double));
    for (size_t i = 0; i < nc; i++) f->cw[i] = gauss(&r), f->cl[i] = gauss(&r);
    for (size_t i = 0; i < nt; i++) f->tw[i] = gauss(&r), f->tl[i] = gauss(&r);
    for (int i = 0; i < U * Z; i++) f->eps[i] = gauss(&r);
}

static void drop(fixture *f) {
    free(f->p), free(f->cw), free(f->cl), free(f->tw), free(f->tl), free(f->eps);
}

static double loss_of(const fixture *f, const double *p, int sampled, double *g) {
    vpl_batch b = {f->U, f->K, f->M, f->cw, f->cl, f->tw, f->tl};
    return vpl_loss(f->d, p, &b, sampled ? f->eps : NULL, 0.3, g, NULL);
}

static int check_fd(int E, int H, int Z, int sampled, double scale) {
    fixture f;
    make(&f, E, H, Z, 3, 3, 2, scale, 7 + (uint64_t)Z + 100 * (uint64_t)sampled);
    long n = vpl_n_params(f.d);
    double *g = calloc((size_t)n, sizeof(double)), *q = malloc((size_t)n * sizeof(double));
    loss_of(&f, f.p, sampled, g);
    double worst = 0;
    for (long i = 0; i < n; i++) {
        memcpy(q, f.p, (size_t)n * sizeof(double));
        q[i] += 1e-6;
        double lp = loss_of(&f, q, sampled, NULL);
        q[i] -= 2e-6;
        double lm = loss_of(&f, q, sampled, NULL);
        double fd = (lp - lm) / 2e-6, e = fabs(fd - g[i]) / fmax(1e-3, fabs(fd) + fabs(g[i]));
        if (e > worst) worst = e;
    }
    CHECKF(worst < 1e-5, "E %d H %d Z %d sampled %d: worst relative error %.2e", E, H, Z, sampled, worst);
    free(g), free(q);
    drop(&f);
    return 0;
}

static int test_gradient_finite_differences(void) {
    check_fd(4, 5, 3, 1, 1.0);
    check_fd(4, 5, 3, 0, 1.0);
    check_fd(4, 5, 3, 1, 3.0);  // larger weights: clamped encoder outputs
    check_fd(5, 4, 0, 0, 1.0);  // the Bradley-Terry MLP
    return 0;
}

static int test_encoder_range(void) {
    fixture f;
    make(&f, 6, 8, 4, 5, 4, 1, 4.0, 3);
    double mu[20], lv[20];
    vpl_encode(f.d, f.p, 5, 4, f.cw, f.cl, mu, lv);
    int clamped = 0;
    for (int i = 0; i < 20; i++) {
        CHECK(mu[i] >= -1 && mu[i] <= 1 && lv[i] >= -1 && lv[i] <= 1);
        clamped += fabs(mu[i]) == 1 || fabs(lv[i]) == 1;
    }
    CHECK(clamped > 0);
    drop(&f);
    return 0;
}

// a decoder whose z columns are zero is the Bradley-Terry MLP with the same weights
static int test_zero_latent_columns_is_bradley_terry(void) {
    fixture f, g;
    make(&f, 4, 5, 3, 2, 2, 3, 1.0, 11);
    make(&g, 4, 5, 0, 2, 2, 3, 1.0, 11);
    memcpy(g.tw, f.tw, sizeof(double) * 2 * 3 * 4), memcpy(g.tl, f.tl, sizeof(double) * 2 * 3 * 4);
    vpl_views vf, vg;
    vpl_views_at(f.d, f.p, &vf);
    vpl_views_at(g.d, g.p, &vg);
    int E = 4, H = 5, Z = 3;
    for (int h = 0; h < H; h++)
        for (int k = 0; k < E + Z; k++) {
            if (k < E) vg.de_w1[h * E + k] = vf.de_w1[h * (E + Z) + k];
            else vf.de_w1[h * (E + Z) + k] = 0;
        }
    memcpy(vg.de_b1, vf.de_b1, sizeof(double) * (size_t)(H + H * H + H + H + 1));  // b1, w2, b2, w3, b3
    vpl_batch bf = {2, 2, 3, f.cw, f.cl, f.tw, f.tl}, bg = {2, 2, 3, NULL, NULL, g.tw, g.tl};
    vpl_stats sf, sg;
    vpl_loss(f.d, f.p, &bf, f.eps, 0, NULL, &sf);
    vpl_loss(g.d, g.p, &bg, NULL, 0, NULL, &sg);
    CHECK_CLOSE(sf.nll, sg.nll, 1e-14, 0);
    CHECK(sf.acc == sg.acc && sg.kl == 0);
    drop(&f), drop(&g);
    return 0;
}

static int test_kl_weight_cycle(void) {
    CHECK_CLOSE(vpl_kl_weight(0.01, 0, 100, 0.1), 0.001, 1e-15, 0);
    CHECK_CLOSE(vpl_kl_weight(0.01, 50, 100, 0.1), 0.0055, 1e-15, 0);
    CHECK_CLOSE(vpl_kl_weight(0.01, 99, 100, 0.1), 0.01 * (0.1 + 0.9 * (1 - cos(3.141592653589793 * 0.99)) / 2), 1e-15, 0);
    CHECK_CLOSE(vpl_kl_weight(0.01, 250, 100, 0.1), 0.0055, 1e-15, 0);
    CHECK(vpl_kl_weight(0.01, 12345, 0, 0.1) == 0.01);
    return 0;
}

int main(void) {
    RUN(test_gradient_finite_differences);
    RUN(test_encoder_range);
    RUN(test_zero_latent_columns_is_bradley_terry);
    RUN(test_kl_weight_cycle);
    TEST_EXIT();
}
