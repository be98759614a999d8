// linmdp_dump: prints, as one JSON object, a random linear MDP, data (offline
// rows and episodes), the C estimates (Gram matrices, theta^, visitations,
// V^), exact values (DP and feature form) of a few policies, and an experiment
// design problem with the C solution, for tests/ctrl_linmdp_test.py to
// recompute with numpy.  Usage: linmdp_dump SEED
#include <stdio.h>
#include <stdlib.h>

#include "ctrl/linmdp.h"

static void arr(const char *name, const double *x, size_t n, int comma) {
    printf("\"%s\": [", name);
    for (size_t i = 0; i < n; i++) printf("%s%.17g", i ? "," : "", x[i]);
    printf("]%s\n", comma ? "," : "");
}

int main(int argc, char **argv) {
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    int S = 6, A = 3, H = 3, d = 4, K = 4;
    linmdp m;
    rlhf_err err;
    if (linmdp_random(&m, S, A, H, d, seed, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    rlhf_rng r;
    rng_seed(&r, seed + 7);
    int *pols = malloc(sizeof(int) * K * H * S);
    linmdp_policies_random(&m, K, 0.5, &r, pols);
    linmdp_data D;
    linmdp_data_init(&D, &m);
    double *q = malloc(sizeof(double) * H * S * A);
    for (int i = 0; i < H * S * A; i++) q[i] = (i % 3) ? 1 : 0; // partial coverage
    linmdp_offline(&m, q, 40, &r, &D);
    for (int e = 0; e < 30; e++) linmdp_episode(&m, pols + (e % K) * H * S, &r, &D);
    double lambda = 0.5;
    printf("{\"S\": %d, \"A\": %d, \"H\": %d, \"d\": %d, \"K\": %d, \"lambda\": %g,\n", S, A, H, d,
           K, lambda);
    arr("phi", m.phi, (size_t)S * A * d, 1);
    arr("mu", m.mu, (size_t)H * d * S, 1);
    arr("theta", m.theta, (size_t)H * d, 1);
    arr("rho", m.rho, (size_t)S, 1);
    arr("cnt", D.cnt, (size_t)H * S * A * S, 1);
    arr("nsa", D.nsa, (size_t)H * S * A, 1);
    arr("rsum", D.rsum, (size_t)H * S * A, 1);
    double *pd = malloc(sizeof(double) * K * H * S);
    for (int i = 0; i < K * H * S; i++) pd[i] = pols[i];
    arr("pols", pd, (size_t)K * H * S, 1);
    double G[64 * 64], ph[32 * 64], dh[32 * 256], v[16], vdp[16], vf[16];
    double *gram = malloc(sizeof(double) * H * d * d), *phs = malloc(sizeof(double) * K * H * d),
           *dhs = malloc(sizeof(double) * K * H * S);
    for (int h = 0; h < H; h++) {
        linmdp_gram(&m, &D, h, lambda, G);
        for (int i = 0; i < d * d; i++) gram[h * d * d + i] = G[i];
    }
    for (int k = 0; k < K; k++) {
        v[k] = linmdp_estimate(&m, &D, lambda, pols + k * H * S, ph, dh);
        for (int i = 0; i < H * d; i++) phs[k * H * d + i] = ph[i];
        for (int i = 0; i < H * S; i++) dhs[k * H * S + i] = dh[i];
        vdp[k] = linmdp_value_dp(&m, pols + k * H * S);
        vf[k] = linmdp_value_feat(&m, pols + k * H * S);
    }
    arr("gram", gram, (size_t)H * d * d, 1);
    arr("phihat", phs, (size_t)K * H * d, 1);
    arr("dhat", dhs, (size_t)K * H * S, 1);
    arr("vhat", v, (size_t)K, 1);
    arr("v_dp", vdp, (size_t)K, 1);
    arr("v_feat", vf, (size_t)K, 1);
    // a design problem: nv random vectors, A0 = 0.1 I + a rank-one part,
    // ne random PSD candidates (one of them rank-deficient)
    int nv = 5, ne = 4;
    double V[5 * 4], A0[16] = {0}, Sig[4 * 16] = {0}, w[4];
    for (int i = 0; i < nv * d; i++) V[i] = (rng_uniform(&r) - 0.5) * 2;
    for (int i = 0; i < d; i++) A0[i * d + i] = 0.1;
    for (int e = 0; e < ne; e++)
        for (int k = 0; k < (e == 0 ? 1 : 3); k++) {
            double x[4];
            for (int i = 0; i < d; i++) x[i] = rng_uniform(&r) - 0.5;
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) Sig[e * 16 + i * d + j] += x[i] * x[j];
        }
    double T = linmdp_design(d, nv, V, A0, ne, Sig, 1e9, w);
    arr("dv", V, (size_t)nv * d, 1);
    arr("dA0", A0, 16, 1);
    arr("dSig", Sig, (size_t)ne * 16, 1);
    arr("dw", w, (size_t)ne, 1);
    printf("\"dT\": %.17g}\n", T);
    linmdp_data_free(&D);
    linmdp_free(&m);
    free(q), free(pols), free(pd), free(gram), free(phs), free(dhs);
    return 0;
}
