// algo/vpl: the encoder, decoder and ELBO of variational preference learning,
// forward and backward by hand (the formulas are in algo/vpl.h).
#include "algo/vpl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LEAK 0.2

void vpl_tensor_info(vpl_dims d, int i, const char **name, int *rows, int *cols) {
    static const char *const names[VPL_N_TENSORS] = {
        "pair.w1", "pair.b1", "pair.w2", "pair.b2", "pair.w3", "pair.b3", "attn.wq", "attn.bq",
        "attn.wk", "attn.bk", "attn.wv", "attn.bv", "post.wmu", "post.bmu", "post.wlv", "post.blv",
        "dec.w1",  "dec.b1",  "dec.w2",  "dec.b2",  "dec.w3",  "dec.b3"};
    int E = d.E, H = d.H, Z = d.Z;
    int shape[VPL_N_TENSORS][2] = {{H, 2 * E}, {H, 0}, {H, H}, {H, 0}, {Z, H}, {Z, 0},
                                   {Z, Z},     {Z, 0}, {Z, Z}, {Z, 0}, {Z, Z}, {Z, 0},
                                   {Z, Z},     {Z, 0}, {Z, Z}, {Z, 0}, {H, E + Z}, {H, 0},
                                   {H, H},     {H, 0}, {1, H}, {1, 0}};
    if (Z == 0)  // no encoder
        for (int k = 0; k < 16; k++) shape[k][0] = 0, shape[k][1] = k % 2 ? 0 : 1;
    *name = names[i];
    *rows = shape[i][0];
    *cols = shape[i][1];
}

static long tensor_size(vpl_dims d, int i) {
    const char *nm;
    int r, c;
    vpl_tensor_info(d, i, &nm, &r, &c);
    return (long)r * (c ? c : 1);
}

long vpl_n_params(vpl_dims d) {
    long n = 0;
    for (int i = 0; i < VPL_N_TENSORS; i++) n += tensor_size(d, i);
    return n;
}

void vpl_views_at(vpl_dims d, double *base, vpl_views *v) {
    double **slot[VPL_N_TENSORS] = {&v->pe_w1, &v->pe_b1, &v->pe_w2, &v->pe_b2, &v->pe_w3, &v->pe_b3,
                                    &v->wq,    &v->bq,    &v->wk,    &v->bk,    &v->wv,    &v->bv,
                                    &v->wmu,   &v->bmu,   &v->wlv,   &v->blv,   &v->de_w1, &v->de_b1,
                                    &v->de_w2, &v->de_b2, &v->de_w3, &v->de_b3};
    long off = 0;
    for (int i = 0; i < VPL_N_TENSORS; i++) {
        *slot[i] = base + off;
        off += tensor_size(d, i);
    }
}

void vpl_init(vpl_dims d, double *params, rlhf_rng *rng) {
    long off = 0;
    // a bias takes the bound of the weight before it (the layer's fan-in)
    double bound = 0;
    for (int i = 0; i < VPL_N_TENSORS; i++) {
        const char *nm;
        int r, c;
        vpl_tensor_info(d, i, &nm, &r, &c);
        if (c) bound = 1.0 / sqrt((double)c);
        long n = tensor_size(d, i);
        for (long k = 0; k < n; k++) params[off + k] = bound * (2.0 * rng_uniform(rng) - 1.0);
        off += n;
    }
}

// ------------------------------------------------------------ layers --

// x (n, in) -> y (n, out) = x W^T + b
static void linear_forward(int n, int in, int out, const double *x, const double *W,
                           const double *b, double *y) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            const double *w = W + (size_t)o * in, *xi = x + (size_t)i * in;
            double s = b[o];
            for (int k = 0; k < in; k++) s += w[k] * xi[k];
            y[(size_t)i * out + o] = s;
        }
}

// dy (n, out) -> dW (out, in) +=, db (out) += (when dW), dx (n, in) += (when dx)
static void linear_backward(int n, int in, int out, const double *x, const double *W,
                            const double *dy, double *dW, double *db, double *dx) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double g = dy[(size_t)i * out + o];
            if (g == 0) continue;
            const double *xi = x + (size_t)i * in, *w = W + (size_t)o * in;
            if (dW) {
                double *dw = dW + (size_t)o * in;
                for (int k = 0; k < in; k++) dw[k] += g * xi[k];
                db[o] += g;
            }
            if (dx) {
                double *dxi = dx + (size_t)i * in;
                for (int k = 0; k < in; k++) dxi[k] += g * w[k];
            }
        }
}

static void leaky_forward(long n, double *x) {
    for (long i = 0; i < n; i++)
        if (x[i] <= 0) x[i] *= LEAK;
}

// after leaky_forward in place: y is the activation's output (its sign is the input's)
static void leaky_backward(long n, const double *y, double *dy) {
    for (long i = 0; i < n; i++)
        if (y[i] <= 0) dy[i] *= LEAK;
}

// a 3-layer MLP in -> H -> H -> out with its activations kept: h1, h2 (n, H), y (n, out)
static void mlp3_forward(int n, int in, int H, int out, const double *x, const double *w1,
                         const double *b1, const double *w2, const double *b2, const double *w3,
                         const double *b3, double *h1, double *h2, double *y) {
    linear_forward(n, in, H, x, w1, b1, h1);
    leaky_forward((long)n * H, h1);
    linear_forward(n, H, H, h1, w2, b2, h2);
    leaky_forward((long)n * H, h2);
    linear_forward(n, H, out, h2, w3, b3, y);
}

// dy (n, out) -> the grads (when gw1), dx (n, in) += (when dx); scratch d1, d2 (n, H)
static void mlp3_backward(int n, int in, int H, int out, const double *x, const double *w1,
                          const double *w2, const double *w3, const double *h1, const double *h2,
                          const double *dy, double *gw1, double *gb1, double *gw2, double *gb2,
                          double *gw3, double *gb3, double *dx, double *d1, double *d2) {
    memset(d2, 0, (size_t)n * H * sizeof(double));
    linear_backward(n, H, out, h2, w3, dy, gw3, gb3, d2);
    leaky_backward((long)n * H, h2, d2);
    memset(d1, 0, (size_t)n * H * sizeof(double));
    linear_backward(n, H, H, h1, w2, d2, gw2, gb2, d1);
    leaky_backward((long)n * H, h1, d1);
    linear_backward(n, in, H, x, w1, d1, gw1, gb1, dx);
}

static double clampd(double x) { return x < -1 ? -1 : x > 1 ? 1 : x; }

static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

static double sigmoid(double x) {
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

// ----------------------------------------------------------- encoder --

// What the encoder keeps for backward, for U users of K pairs.
typedef struct {
    double *x;            // (U*K, 2E) pair inputs
    double *h1, *h2;      // (U*K, H)
    double *p;            // (U*K, Z) pair codes
    double *q, *k, *v;    // (U*K, Z)
    double *a;            // (U, K, K) attention weights
    double *g;            // (U, Z) pooled
    double *mu_raw, *lv_raw; // (U, Z) before the clamp
} enc_cache;

static double *take(double **cur, size_t n) {
    double *p = *cur;
    *cur += n;
    return p;
}

static size_t enc_doubles(vpl_dims d, int U, int K) {
    size_t UK = (size_t)U * K;
    return UK * 2 * d.E + 2 * UK * d.H + 4 * UK * d.Z + (size_t)U * K * K + 3 * (size_t)U * d.Z;
}

static void enc_carve(vpl_dims d, int U, int K, double **cur, enc_cache *c) {
    size_t UK = (size_t)U * K;
    c->x = take(cur, UK * 2 * d.E);
    c->h1 = take(cur, UK * d.H);
    c->h2 = take(cur, UK * d.H);
    c->p = take(cur, UK * d.Z);
    c->q = take(cur, UK * d.Z);
    c->k = take(cur, UK * d.Z);
    c->v = take(cur, UK * d.Z);
    c->a = take(cur, (size_t)U * K * K);
    c->g = take(cur, (size_t)U * d.Z);
    c->mu_raw = take(cur, (size_t)U * d.Z);
    c->lv_raw = take(cur, (size_t)U * d.Z);
}

static void enc_forward(vpl_dims d, const vpl_views *w, int U, int K, const double *ctx_w,
                        const double *ctx_l, enc_cache *c, double *mu, double *lv) {
    int E = d.E, H = d.H, Z = d.Z, n = U * K;
    for (int i = 0; i < n; i++) {
        memcpy(c->x + (size_t)i * 2 * E, ctx_w + (size_t)i * E, (size_t)E * sizeof(double));
        memcpy(c->x + (size_t)i * 2 * E + E, ctx_l + (size_t)i * E, (size_t)E * sizeof(double));
    }
    mlp3_forward(n, 2 * E, H, Z, c->x, w->pe_w1, w->pe_b1, w->pe_w2, w->pe_b2, w->pe_w3, w->pe_b3,
                 c->h1, c->h2, c->p);
    linear_forward(n, Z, Z, c->p, w->wq, w->bq, c->q);
    linear_forward(n, Z, Z, c->p, w->wk, w->bk, c->k);
    linear_forward(n, Z, Z, c->p, w->wv, w->bv, c->v);
    double scale = 1.0 / sqrt((double)Z);
    for (int u = 0; u < U; u++) {
        const double *q = c->q + (size_t)u * K * Z, *k = c->k + (size_t)u * K * Z,
                     *v = c->v + (size_t)u * K * Z;
        double *a = c->a + (size_t)u * K * K, *g = c->g + (size_t)u * Z;
        for (int i = 0; i < K; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < K; j++) {
                double s = 0;
                for (int z = 0; z < Z; z++) s += q[i * Z + z] * k[j * Z + z];
                a[i * K + j] = s * scale;
                if (a[i * K + j] > mx) mx = a[i * K + j];
            }
            for (int j = 0; j < K; j++) sum += (a[i * K + j] = exp(a[i * K + j] - mx));
            for (int j = 0; j < K; j++) a[i * K + j] /= sum;
        }
        // g = mean_i sum_j a_ij v_j
        memset(g, 0, (size_t)Z * sizeof(double));
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                for (int z = 0; z < Z; z++) g[z] += a[i * K + j] * v[j * Z + z] / K;
    }
    linear_forward(U, Z, Z, c->g, w->wmu, w->bmu, c->mu_raw);
    linear_forward(U, Z, Z, c->g, w->wlv, w->blv, c->lv_raw);
    for (size_t i = 0; i < (size_t)U * Z; i++) mu[i] = clampd(c->mu_raw[i]), lv[i] = clampd(c->lv_raw[i]);
}

// dmu, dlv (U, Z) of the clamped outputs -> the encoder's grads; scratch of
// enc_scratch_doubles
static size_t enc_scratch_doubles(vpl_dims d, int U, int K) {
    size_t UK = (size_t)U * K;
    return 2 * (size_t)U * d.Z + (size_t)U * d.Z + 4 * UK * d.Z + (size_t)K * K + 2 * UK * d.H;
}

static void enc_backward(vpl_dims d, const vpl_views *w, vpl_views *gw, int U, int K,
                         const enc_cache *c, const double *dmu, const double *dlv, double *scratch) {
    int E = d.E, H = d.H, Z = d.Z, n = U * K;
    double *dmu_raw = take(&scratch, (size_t)U * Z), *dlv_raw = take(&scratch, (size_t)U * Z);
    double *dg = take(&scratch, (size_t)U * Z);
    double *dq = take(&scratch, (size_t)n * Z), *dk = take(&scratch, (size_t)n * Z),
           *dv = take(&scratch, (size_t)n * Z), *dp = take(&scratch, (size_t)n * Z);
    double *da = take(&scratch, (size_t)K * K);
    double *d1 = take(&scratch, (size_t)n * H), *d2 = take(&scratch, (size_t)n * H);
    // the clamp passes the gradient where the input was inside [-1, 1] (as torch.clamp)
    for (size_t i = 0; i < (size_t)U * Z; i++) {
        dmu_raw[i] = fabs(c->mu_raw[i]) <= 1 ? dmu[i] : 0;
        dlv_raw[i] = fabs(c->lv_raw[i]) <= 1 ? dlv[i] : 0;
    }
    memset(dg, 0, (size_t)U * Z * sizeof(double));
    linear_backward(U, Z, Z, c->g, w->wmu, dmu_raw, gw->wmu, gw->bmu, dg);
    linear_backward(U, Z, Z, c->g, w->wlv, dlv_raw, gw->wlv, gw->blv, dg);
    memset(dq, 0, (size_t)n * Z * 3 * sizeof(double));  // dq, dk, dv are contiguous
    double scale = 1.0 / sqrt((double)Z);
    for (int u = 0; u < U; u++) {
        const double *q = c->q + (size_t)u * K * Z, *k = c->k + (size_t)u * K * Z,
                     *v = c->v + (size_t)u * K * Z, *a = c->a + (size_t)u * K * K,
                     *gu = dg + (size_t)u * Z;
        double *dqu = dq + (size_t)u * K * Z, *dku = dk + (size_t)u * K * Z,
               *dvu = dv + (size_t)u * K * Z;
        // g = (1/K) sum_i sum_j a_ij v_j: dv_j = (1/K) sum_i a_ij dg; da_ij = (1/K) v_j . dg
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                double s = 0;
                for (int z = 0; z < Z; z++) {
                    dvu[j * Z + z] += a[i * K + j] * gu[z] / K;
                    s += v[j * Z + z] * gu[z];
                }
                da[i * K + j] = s / K;
            }
        // softmax rows: ds_ij = a_ij (da_ij - sum_j' a_ij' da_ij'); s = q.k * scale
        for (int i = 0; i < K; i++) {
            double dot = 0;
            for (int j = 0; j < K; j++) dot += a[i * K + j] * da[i * K + j];
            for (int j = 0; j < K; j++) {
                double ds = a[i * K + j] * (da[i * K + j] - dot) * scale;
                for (int z = 0; z < Z; z++) {
                    dqu[i * Z + z] += ds * k[j * Z + z];
                    dku[j * Z + z] += ds * q[i * Z + z];
                }
            }
        }
    }
    memset(dp, 0, (size_t)n * Z * sizeof(double));
    linear_backward(n, Z, Z, c->p, w->wq, dq, gw->wq, gw->bq, dp);
    linear_backward(n, Z, Z, c->p, w->wk, dk, gw->wk, gw->bk, dp);
    linear_backward(n, Z, Z, c->p, w->wv, dv, gw->wv, gw->bv, dp);
    mlp3_backward(n, 2 * E, H, Z, c->x, w->pe_w1, w->pe_w2, w->pe_w3, c->h1, c->h2, dp, gw->pe_w1,
                  gw->pe_b1, gw->pe_w2, gw->pe_b2, gw->pe_w3, gw->pe_b3, NULL, d1, d2);
}

void vpl_encode(vpl_dims d, const double *params, int U, int K, const double *ctx_w,
                const double *ctx_l, double *mu, double *logvar) {
    vpl_views w;
    vpl_views_at(d, (double *)params, &w);
    double *buf = xmalloc(enc_doubles(d, U, K) * sizeof(double)), *cur = buf;
    enc_cache c;
    enc_carve(d, U, K, &cur, &c);
    enc_forward(d, &w, U, K, ctx_w, ctx_l, &c, mu, logvar);
    free(buf);
}

// ----------------------------------------------------------- decoder --

// rows x (n, E + Z) -> r (n); h1, h2 (n, H) kept
static void dec_forward(vpl_dims d, const vpl_views *w, int n, const double *x, double *h1,
                        double *h2, double *r) {
    mlp3_forward(n, d.E + d.Z, d.H, 1, x, w->de_w1, w->de_b1, w->de_w2, w->de_b2, w->de_w3,
                 w->de_b3, h1, h2, r);
}

void vpl_reward(vpl_dims d, const double *params, int n, const double *e, const double *z,
                double *r) {
    vpl_views w;
    vpl_views_at(d, (double *)params, &w);
    int D = d.E + d.Z;
    double *x = xmalloc((size_t)n * (D + 2 * d.H) * sizeof(double));
    double *h1 = x + (size_t)n * D, *h2 = h1 + (size_t)n * d.H;
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)i * D, e + (size_t)i * d.E, (size_t)d.E * sizeof(double));
        if (d.Z) memcpy(x + (size_t)i * D + d.E, z + (size_t)i * d.Z, (size_t)d.Z * sizeof(double));
    }
    dec_forward(d, &w, n, x, h1, h2, r);
    free(x);
}

// -------------------------------------------------------------- ELBO --

double vpl_loss(vpl_dims d, const double *params, const vpl_batch *b, const double *eps,
                double kl_weight, double *grads, vpl_stats *st) {
    int E = d.E, H = d.H, Z = d.Z, U = b->U, K = b->K, M = b->M, D = E + Z;
    int rows = 2 * U * M;  // chosen rows u*M+m, then rejected rows U*M + u*M+m
    vpl_views w, gw;
    vpl_views_at(d, (double *)params, &w);
    if (grads) vpl_views_at(d, grads, &gw);
    size_t need = (size_t)4 * U * Z + (size_t)U * Z  // mu, lv, zt, z, norms(U)
                  + (size_t)rows * (D + 2 * H) * 2 + (size_t)rows * 2 + (size_t)U * Z;
    if (Z) need += enc_doubles(d, U, K) + enc_scratch_doubles(d, U, K);
    double *buf = xcalloc(need, sizeof(double)), *cur = buf;
    double *mu = take(&cur, (size_t)U * Z), *lv = take(&cur, (size_t)U * Z),
           *zt = take(&cur, (size_t)U * Z), *z = take(&cur, (size_t)U * Z),
           *norm = take(&cur, (size_t)U * Z);
    double *x = take(&cur, (size_t)rows * D), *h1 = take(&cur, (size_t)rows * H),
           *h2 = take(&cur, (size_t)rows * H), *dx = take(&cur, (size_t)rows * D),
           *d1 = take(&cur, (size_t)rows * H), *d2 = take(&cur, (size_t)rows * H);
    double *r = take(&cur, (size_t)rows), *dr = take(&cur, (size_t)rows);
    double *dz = take(&cur, (size_t)U * Z);
    enc_cache c;
    double kl = 0;
    if (Z) {
        enc_carve(d, U, K, &cur, &c);
        enc_forward(d, &w, U, K, b->ctx_w, b->ctx_l, &c, mu, lv);
        double sq = sqrt((double)Z);
        for (int u = 0; u < U; u++) {
            double nn = 0;
            for (int k = 0; k < Z; k++) {
                size_t i = (size_t)u * Z + k;
                zt[i] = eps ? mu[i] + exp(0.5 * lv[i]) * eps[i] : mu[i];
                nn += zt[i] * zt[i];
                kl += -0.5 * (1 + lv[i] - mu[i] * mu[i] - exp(lv[i]));
            }
            nn = sqrt(nn);
            norm[u] = nn > 1e-12 ? nn : 1e-12;  // F.normalize's floor
            for (int k = 0; k < Z; k++) {
                size_t i = (size_t)u * Z + k;
                z[i] = eps ? sq * zt[i] / norm[u] : mu[i];
            }
        }
        kl /= U;
    }
    for (int s = 0; s < 2; s++)
        for (int u = 0; u < U; u++)
            for (int m = 0; m < M; m++) {
                int row = s * U * M + u * M + m;
                const double *e = (s ? b->tgt_l : b->tgt_w) + ((size_t)u * M + m) * E;
                memcpy(x + (size_t)row * D, e, (size_t)E * sizeof(double));
                if (Z) memcpy(x + (size_t)row * D + E, z + (size_t)u * Z, (size_t)Z * sizeof(double));
            }
    dec_forward(d, &w, rows, x, h1, h2, r);
    double nll = 0, acc = 0;
    int N = U * M;
    for (int i = 0; i < N; i++) {
        double delta = r[i] - r[N + i];
        nll -= log_sigmoid(delta);
        acc += delta > 0;
        dr[i] = (sigmoid(delta) - 1) / N;
        dr[N + i] = -dr[i];
    }
    nll /= N;
    double loss = nll + (Z ? kl_weight * kl : 0);
    if (st) *st = (vpl_stats){loss, nll, Z ? kl : 0, acc / N};
    if (grads) {
        mlp3_backward(rows, D, H, 1, x, w.de_w1, w.de_w2, w.de_w3, h1, h2, dr, gw.de_w1, gw.de_b1,
                      gw.de_w2, gw.de_b2, gw.de_w3, gw.de_b3, Z ? dx : NULL, d1, d2);
        if (Z) {
            // dz: each user's latent feeds its 2M decoder rows
            for (int row = 0; row < rows; row++) {
                int u = (row % N) / M;
                for (int k = 0; k < Z; k++) dz[(size_t)u * Z + k] += dx[(size_t)row * D + E + k];
            }
            double *dmu = zt, *dlv = norm;  // reuse: zt, norm are read before being overwritten
            double sq = sqrt((double)Z);
            for (int u = 0; u < U; u++) {
                double *dzu = dz + (size_t)u * Z;
                if (eps) {
                    // z = sq * zt / |zt|: dzt = (sq / |zt|) (dz - uhat (uhat . dz)), uhat = zt / |zt|
                    double nu = norm[u], dot = 0;
                    for (int k = 0; k < Z; k++) dot += zt[(size_t)u * Z + k] / nu * dzu[k];
                    for (int k = 0; k < Z; k++) {
                        size_t i = (size_t)u * Z + k;
                        double dzt = sq / nu * (dzu[k] - zt[i] / nu * dot);
                        dzu[k] = dzt;  // dz now holds dzt
                    }
                }
            }
            for (int u = 0; u < U; u++)
                for (int k = 0; k < Z; k++) {
                    size_t i = (size_t)u * Z + k;
                    double g = dz[i];
                    double dm = g + kl_weight / U * mu[i];
                    double dl = (eps ? g * eps[i] * 0.5 * exp(0.5 * lv[i]) : 0) +
                                kl_weight / U * (-0.5) * (1 - exp(lv[i]));
                    dmu[i] = dm;
                    dlv[i] = dl;
                }
            enc_backward(d, &w, &gw, U, K, &c, dmu, dlv, cur);
        }
    }
    free(buf);
    return loss;
}

double vpl_kl_weight(double beta, long step, long period, double floor) {
    if (period <= 0) return beta;
    double s = (double)(step % period) / (double)period;
    return beta * (floor + (1 - floor) * (1 - cos(3.14159265358979323846 * s)) / 2);
}

void vpl_adamw(long n, double *params, const double *grads, double *m, double *v, long t,
               double lr, double weight_decay) {
    const double b1 = 0.9, b2 = 0.999, epsilon = 1e-8;
    double c1 = 1 - pow(b1, (double)(t + 1)), c2 = 1 - pow(b2, (double)(t + 1));
    for (long i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * grads[i];
        v[i] = b2 * v[i] + (1 - b2) * grads[i] * grads[i];
        params[i] -= lr * (weight_decay * params[i] + (m[i] / c1) / (sqrt(v[i] / c2) + epsilon));
    }
}
