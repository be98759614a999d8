// ctrl/linmdp: the linear MDP test bed and FTPedel (see linmdp.h).
#include "ctrl/linmdp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PHI(m, s, a) ((m)->phi + ((size_t)(s) * (m)->A + (a)) * (m)->d)
#define CNT(D, h, s, a) ((D)->cnt + ((((size_t)(h) * (D)->S + (s)) * (D)->A + (a)) * (D)->S))
#define IDX3(D, h, s, a) ((((size_t)(h) * (D)->S + (s)) * (D)->A) + (a))

static double unif(rlhf_rng *r) {
    return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

static void alloc_model(linmdp *m, int S, int A, int H, int d) {
    m->S = S, m->A = A, m->H = H, m->d = d;
    m->phi = xcalloc((size_t)S * A * d, sizeof(double));
    m->mu = xcalloc((size_t)H * d * S, sizeof(double));
    m->theta = xcalloc((size_t)H * d, sizeof(double));
    m->rho = xcalloc((size_t)S, sizeof(double));
}

void linmdp_free(linmdp *m) {
    free(m->phi), free(m->mu), free(m->theta), free(m->rho);
    memset(m, 0, sizeof *m);
}

// a random point of the simplex (normalised exponentials), optionally sparse
static void simplex(rlhf_rng *r, int n, double *x) {
    double z = 0;
    for (int i = 0; i < n; i++) z += x[i] = -log(1 - unif(r));
    for (int i = 0; i < n; i++) x[i] /= z;
}

int linmdp_random(linmdp *m, int S, int A, int H, int d, uint64_t seed, rlhf_err *err) {
    if (S < 2 || A < 2 || H < 1 || d < 1 || S > 256 || A > 16 || H > 32 || d > 64)
        return rlhf_fail(err,
                         "linmdp: sizes S=%d A=%d H=%d d=%d outside 2..256, 2..16, 1..32, "
                         "1..64",
                         S, A, H, d);
    alloc_model(m, S, A, H, d);
    rlhf_rng r;
    rng_seed(&r, seed);
    for (int s = 0; s < S; s++)
        for (int a = 0; a < A; a++) simplex(&r, d, PHI(m, s, a));
    double *row = xmalloc((size_t)S * sizeof(double));
    for (int h = 0; h < H; h++)
        for (int i = 0; i < d; i++) {
            simplex(&r, S, row);
            for (int s = 0; s < S; s++) m->mu[((size_t)h * d + i) * S + s] = row[s];
            m->theta[(size_t)h * d + i] = unif(&r);
        }
    free(row);
    m->rho[0] = 1;
    return 0;
}

int linmdp_rare(linmdp *m, int n_common, double p_rare, double gap_rare, double gap_common,
                uint64_t seed, rlhf_err *err) {
    if (n_common < 1 || n_common > 60 || !(p_rare > 0 && p_rare < 1) || !(gap_rare >= 0) ||
        gap_rare > 1 || !(gap_common >= 0) || gap_common > 1)
        return rlhf_fail(err,
                         "linmdp rare: n_common %d (1..60), p_rare %g (0..1), gaps %g %g "
                         "(0..1)",
                         n_common, p_rare, gap_rare, gap_common);
    int S = n_common + 2, A = 2, H = 2, d = S * A, rare = n_common + 1;
    alloc_model(m, S, A, H, d);
    for (int s = 0; s < S; s++)
        for (int a = 0; a < A; a++) PHI(m, s, a)[s * A + a] = 1; // tabular
    rlhf_rng r;
    rng_seed(&r, seed);
    for (int s = 0; s < S; s++) {
        int better = (int)(rng_u64(&r) & 1); // the better action of state s at step 2
        for (int a = 0; a < A; a++) {
            int i = s * A + a;
            double *mu1 = m->mu + (size_t)i * S, *mu2 = m->mu + ((size_t)d + i) * S;
            if (s == 0) {
                mu1[rare] = p_rare;
                for (int c = 1; c <= n_common; c++) mu1[c] = (1 - p_rare) / n_common;
                m->theta[i] = a == 0 ? 0.8 : 0.2;
            } else {
                mu1[s] = 1; // never used at step 1 (only the start state is reached)
                double g = s == rare ? gap_rare : gap_common;
                m->theta[d + i] = a == better ? 0.5 + g / 2 : 0.5 - g / 2;
            }
            mu2[s] = 1; // step 2 is the last: its next state is never used
        }
    }
    m->rho[0] = 1;
    return 0;
}

double linmdp_p(const linmdp *m, int h, int s, int a, int s2) {
    const double *f = PHI(m, s, a), *mu = m->mu + (size_t)h * m->d * m->S;
    double p = 0;
    for (int i = 0; i < m->d; i++) p += f[i] * mu[(size_t)i * m->S + s2];
    return p;
}

double linmdp_r(const linmdp *m, int h, int s, int a) {
    const double *f = PHI(m, s, a), *t = m->theta + (size_t)h * m->d;
    double r = 0;
    for (int i = 0; i < m->d; i++) r += f[i] * t[i];
    return r;
}

// ------------------------------------------------------------- policies --
void linmdp_visits(const linmdp *m, const int *act, double *dist) {
    int S = m->S;
    memcpy(dist, m->rho, (size_t)S * sizeof(double));
    for (int h = 0; h + 1 < m->H; h++) {
        double *cur = dist + (size_t)h * S, *nxt = cur + S;
        memset(nxt, 0, (size_t)S * sizeof(double));
        for (int s = 0; s < S; s++) {
            if (cur[s] == 0) continue;
            for (int s2 = 0; s2 < S; s2++)
                nxt[s2] += cur[s] * linmdp_p(m, h, s, act[h * S + s], s2);
        }
    }
}

void linmdp_features(const linmdp *m, const int *act, double *phi) {
    double *dist = xmalloc((size_t)m->H * m->S * sizeof(double));
    linmdp_visits(m, act, dist);
    memset(phi, 0, (size_t)m->H * m->d * sizeof(double));
    for (int h = 0; h < m->H; h++)
        for (int s = 0; s < m->S; s++) {
            const double *f = PHI(m, s, act[h * m->S + s]);
            for (int i = 0; i < m->d; i++) phi[h * m->d + i] += dist[h * m->S + s] * f[i];
        }
    free(dist);
}

double linmdp_value_feat(const linmdp *m, const int *act) {
    double *phi = xmalloc((size_t)m->H * m->d * sizeof(double)), v = 0;
    linmdp_features(m, act, phi);
    for (int k = 0; k < m->H * m->d; k++) v += phi[k] * m->theta[k];
    free(phi);
    return v;
}

// backward induction; act NULL: the optimal values and actions (into best)
static double backward(const linmdp *m, const int *act, int *best) {
    int S = m->S;
    double *V = xcalloc((size_t)S, sizeof(double)), *W = xcalloc((size_t)S, sizeof(double));
    for (int h = m->H - 1; h >= 0; h--) {
        for (int s = 0; s < S; s++) {
            double vbest = -INFINITY;
            for (int a = 0; a < m->A; a++) {
                if (act && a != act[h * S + s]) continue;
                double q = linmdp_r(m, h, s, a);
                if (h + 1 < m->H)
                    for (int s2 = 0; s2 < S; s2++) q += linmdp_p(m, h, s, a, s2) * V[s2];
                if (q > vbest + 1e-12) {
                    vbest = q;
                    if (best) best[h * S + s] = a;
                }
            }
            W[s] = vbest;
        }
        memcpy(V, W, (size_t)S * sizeof(double));
    }
    double v = 0;
    for (int s = 0; s < S; s++) v += m->rho[s] * V[s];
    free(V), free(W);
    return v;
}

double linmdp_value_dp(const linmdp *m, const int *act) {
    return backward(m, act, NULL);
}
double linmdp_optimal(const linmdp *m, int *act) {
    return backward(m, NULL, act);
}

static int draw(rlhf_rng *r, int n, const double *p) {
    double u = unif(r), c = 0;
    for (int i = 0; i < n; i++)
        if (u < (c += p[i])) return i;
    for (int i = n - 1; i >= 0; i--) // rounding: the last state with mass
        if (p[i] > 0) return i;
    return n - 1;
}

double linmdp_episode(const linmdp *m, const int *act, rlhf_rng *rng, linmdp_data *D) {
    int S = m->S;
    double *p = xmalloc((size_t)S * sizeof(double)), ret = 0;
    int s = draw(rng, S, m->rho);
    for (int h = 0; h < m->H; h++) {
        int a = act[h * S + s];
        for (int s2 = 0; s2 < S; s2++) p[s2] = linmdp_p(m, h, s, a, s2);
        int s2 = draw(rng, S, p);
        double r = unif(rng) < linmdp_r(m, h, s, a) ? 1 : 0;
        ret += r;
        if (D) linmdp_data_add_row(D, h, s, a, r, s2);
        s = s2;
    }
    free(p);
    return ret;
}

double linmdp_value_mc(const linmdp *m, const int *act, int episodes, rlhf_rng *rng) {
    double sum = 0;
    for (int e = 0; e < episodes; e++) sum += linmdp_episode(m, act, rng, NULL);
    return episodes > 0 ? sum / episodes : 0;
}

// (h, s) reachable from rho under some policy: [H][S] flags
static void reachable(const linmdp *m, char *reach) {
    int S = m->S;
    memset(reach, 0, (size_t)m->H * S);
    for (int s = 0; s < S; s++) reach[s] = m->rho[s] > 0;
    for (int h = 0; h + 1 < m->H; h++)
        for (int s = 0; s < S; s++)
            if (reach[h * S + s])
                for (int a = 0; a < m->A; a++)
                    for (int s2 = 0; s2 < S; s2++)
                        if (linmdp_p(m, h, s, a, s2) > 1e-12) reach[(h + 1) * S + s2] = 1;
}

int linmdp_policies_all(const linmdp *m, int maxK, int *pols, int *K, rlhf_err *err) {
    int HS = m->H * m->S, n = 0;
    char *reach = xmalloc((size_t)HS);
    reachable(m, reach);
    double count = 1;
    for (int i = 0; i < HS; i++) count *= reach[i] ? m->A : 1;
    if (count > maxK) {
        free(reach);
        return rlhf_fail(err, "linmdp: %g deterministic policies, more than %d", count, maxK);
    }
    int *cur = xcalloc((size_t)HS, sizeof(int));
    for (;;) {
        memcpy(pols + (size_t)n++ * HS, cur, (size_t)HS * sizeof(int));
        int i = 0; // odometer over the reachable (h, s)
        for (; i < HS; i++) {
            if (!reach[i]) continue;
            if (++cur[i] < m->A) break;
            cur[i] = 0;
        }
        if (i == HS) break;
    }
    *K = n;
    free(cur), free(reach);
    return 0;
}

void linmdp_policies_random(const linmdp *m, int K, double flip, rlhf_rng *rng, int *pols) {
    int HS = m->H * m->S;
    char *reach = xmalloc((size_t)HS);
    reachable(m, reach);
    linmdp_optimal(m, pols);
    for (int k = 1; k < K; k++) {
        int *p = pols + (size_t)k * HS, changed = 0;
        memcpy(p, pols, (size_t)HS * sizeof(int));
        while (!changed)
            for (int i = 0; i < HS; i++)
                if (reach[i] && unif(rng) < flip) {
                    p[i] = (p[i] + 1 + (int)(rng_u64(rng) % (uint64_t)(m->A - 1))) % m->A;
                    changed = 1;
                }
    }
    free(reach);
}

// ----------------------------------------------------------------- data --
void linmdp_data_init(linmdp_data *D, const linmdp *m) {
    D->S = m->S, D->A = m->A, D->H = m->H;
    D->cnt = xcalloc((size_t)m->H * m->S * m->A * m->S, sizeof(double));
    D->nsa = xcalloc((size_t)m->H * m->S * m->A, sizeof(double));
    D->rsum = xcalloc((size_t)m->H * m->S * m->A, sizeof(double));
}

void linmdp_data_free(linmdp_data *D) {
    free(D->cnt), free(D->nsa), free(D->rsum);
    memset(D, 0, sizeof *D);
}

void linmdp_data_copy(linmdp_data *dst, const linmdp_data *src) {
    size_t n3 = (size_t)src->H * src->S * src->A;
    memcpy(dst->cnt, src->cnt, n3 * src->S * sizeof(double));
    memcpy(dst->nsa, src->nsa, n3 * sizeof(double));
    memcpy(dst->rsum, src->rsum, n3 * sizeof(double));
}

void linmdp_data_add_row(linmdp_data *D, int h, int s, int a, double r, int s2) {
    CNT(D, h, s, a)[s2] += 1;
    D->nsa[IDX3(D, h, s, a)] += 1;
    D->rsum[IDX3(D, h, s, a)] += r;
}

void linmdp_offline(const linmdp *m, const double *q, int n, rlhf_rng *rng, linmdp_data *D) {
    int SA = m->S * m->A;
    double *w = xmalloc((size_t)SA * sizeof(double)), *p = xmalloc((size_t)m->S * sizeof(double));
    for (int h = 0; h < m->H; h++) {
        double z = 0;
        for (int i = 0; i < SA; i++) z += w[i] = q[(size_t)h * SA + i] > 0 ? q[h * SA + i] : 0;
        if (z <= 0) continue;
        for (int i = 0; i < SA; i++) w[i] /= z;
        for (int k = 0; k < n; k++) {
            int i = draw(rng, SA, w), s = i / m->A, a = i % m->A;
            for (int s2 = 0; s2 < m->S; s2++) p[s2] = linmdp_p(m, h, s, a, s2);
            int s2 = draw(rng, m->S, p);
            linmdp_data_add_row(D, h, s, a, unif(rng) < linmdp_r(m, h, s, a) ? 1 : 0, s2);
        }
    }
    free(w), free(p);
}

// ----------------------------------------------------------- estimation --
void linmdp_gram(const linmdp *m, const linmdp_data *D, int h, double lambda, double *G) {
    int d = m->d;
    memset(G, 0, (size_t)d * d * sizeof(double));
    for (int i = 0; i < d; i++) G[i * d + i] = lambda;
    for (int s = 0; s < m->S; s++)
        for (int a = 0; a < m->A; a++) {
            double n = D->nsa[IDX3(D, h, s, a)];
            if (n == 0) continue;
            const double *f = PHI(m, s, a);
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) G[i * d + j] += n * f[i] * f[j];
        }
}

int linmdp_spd_inverse(int d, const double *A, double *inv) {
    double *L = xcalloc((size_t)d * d, sizeof(double));
    for (int j = 0; j < d; j++) {
        double s = A[j * d + j];
        for (int k = 0; k < j; k++) s -= L[j * d + k] * L[j * d + k];
        if (!(s > 0)) {
            free(L);
            return -1;
        }
        L[j * d + j] = sqrt(s);
        for (int i = j + 1; i < d; i++) {
            double t = A[i * d + j];
            for (int k = 0; k < j; k++) t -= L[i * d + k] * L[j * d + k];
            L[i * d + j] = t / L[j * d + j];
        }
    }
    double *y = xmalloc((size_t)d * sizeof(double));
    for (int c = 0; c < d; c++) { // solve L L^T x = e_c
        for (int i = 0; i < d; i++) {
            double t = i == c ? 1 : 0;
            for (int k = 0; k < i; k++) t -= L[i * d + k] * y[k];
            y[i] = t / L[i * d + i];
        }
        for (int i = d - 1; i >= 0; i--) {
            double t = y[i];
            for (int k = i + 1; k < d; k++) t -= L[k * d + i] * inv[k * d + c];
            inv[i * d + c] = t / L[i * d + i];
        }
    }
    free(y), free(L);
    return 0;
}

static void matvec(int d, const double *M, const double *x, double *y) {
    for (int i = 0; i < d; i++) {
        double t = 0;
        for (int j = 0; j < d; j++) t += M[i * d + j] * x[j];
        y[i] = t;
    }
}

// Lambda_h^-1 for every h into inv [H][d][d]
static void gram_inverses(const linmdp *m, const linmdp_data *D, double lambda, double *inv) {
    int d = m->d;
    double *G = xmalloc((size_t)d * d * sizeof(double));
    for (int h = 0; h < m->H; h++) {
        linmdp_gram(m, D, h, lambda, G);
        RLHF_ASSERT(linmdp_spd_inverse(d, G, inv + (size_t)h * d * d) == 0); // lambda > 0
    }
    free(G);
}

// theta^_h for every h [H][d]
static void reward_estimates(const linmdp *m, const linmdp_data *D, const double *inv, double *th) {
    int d = m->d;
    double *b = xmalloc((size_t)d * sizeof(double));
    for (int h = 0; h < m->H; h++) {
        memset(b, 0, (size_t)d * sizeof(double));
        for (int s = 0; s < m->S; s++)
            for (int a = 0; a < m->A; a++) {
                double rs = D->rsum[IDX3(D, h, s, a)];
                const double *f = PHI(m, s, a);
                if (rs != 0)
                    for (int i = 0; i < d; i++) b[i] += rs * f[i];
            }
        matvec(d, inv + (size_t)h * d * d, b, th + (size_t)h * d);
    }
    free(b);
}

// the visitation recursion with the inverses given; phihat [H][d], dhat [H][S]
static void visitation(const linmdp *m, const linmdp_data *D, const double *inv, const int *act,
                       double *phihat, double *dhat) {
    int S = m->S, d = m->d;
    double *u = xmalloc((size_t)d * sizeof(double));
    memcpy(dhat, m->rho, (size_t)S * sizeof(double));
    for (int h = 0; h < m->H; h++) {
        double *ph = phihat + (size_t)h * d, *dh = dhat + (size_t)h * S;
        memset(ph, 0, (size_t)d * sizeof(double));
        for (int s = 0; s < S; s++) {
            const double *f = PHI(m, s, act[h * S + s]);
            for (int i = 0; i < d; i++) ph[i] += dh[s] * f[i];
        }
        if (h + 1 == m->H) break;
        matvec(d, inv + (size_t)h * d * d, ph, u);
        double *dn = dh + S;
        memset(dn, 0, (size_t)S * sizeof(double));
        for (int s = 0; s < S; s++)
            for (int a = 0; a < m->A; a++) {
                if (D->nsa[IDX3(D, h, s, a)] == 0) continue;
                const double *f = PHI(m, s, a), *c = CNT(D, h, s, a);
                double w = 0;
                for (int i = 0; i < d; i++) w += f[i] * u[i];
                for (int s2 = 0; s2 < S; s2++) dn[s2] += c[s2] * w;
            }
    }
    free(u);
}

double linmdp_estimate(const linmdp *m, const linmdp_data *D, double lambda, const int *act,
                       double *phihat, double *dhat) {
    int d = m->d, H = m->H;
    double *inv = xmalloc((size_t)H * d * d * sizeof(double));
    double *th = xmalloc((size_t)H * d * sizeof(double));
    double *ph = phihat ? phihat : xmalloc((size_t)H * d * sizeof(double));
    double *dh = dhat ? dhat : xmalloc((size_t)H * m->S * sizeof(double));
    gram_inverses(m, D, lambda, inv);
    reward_estimates(m, D, inv, th);
    visitation(m, D, inv, act, ph, dh);
    double v = 0;
    for (int k = 0; k < H * d; k++) v += ph[k] * th[k];
    if (!phihat) free(ph);
    if (!dhat) free(dh);
    free(inv), free(th);
    return v;
}

// --------------------------------------------------------------- design --
double linmdp_max_norm(int d, int nv, const double *v, const double *A) {
    double *inv = xmalloc((size_t)d * d * sizeof(double)), *u = xmalloc((size_t)d * sizeof(double));
    double mx = 0;
    if (linmdp_spd_inverse(d, A, inv)) mx = INFINITY;
    for (int i = 0; i < nv && isfinite(mx); i++) {
        matvec(d, inv, v + (size_t)i * d, u);
        double q = 0;
        for (int j = 0; j < d; j++) q += v[(size_t)i * d + j] * u[j];
        if (q > mx) mx = q;
    }
    free(inv), free(u);
    return mx;
}

// A = A0 + T sum_e w_e Sig_e
static void design_matrix(int d, const double *A0, int ne, const double *Sig, double T,
                          const double *w, double *A) {
    memcpy(A, A0, (size_t)d * d * sizeof(double));
    for (int e = 0; e < ne; e++)
        if (w[e] > 0)
            for (int k = 0; k < d * d; k++) A[k] += T * w[e] * Sig[(size_t)e * d * d + k];
}

// Frank-Wolfe on the soft maximum (temperature: 30 / current max) of
// v_i^T A(w)^-1 v_i over the simplex, at fixed T; w in and out
static void design_weights(int d, int nv, const double *v, const double *A0, int ne,
                           const double *Sig, double T, double *w) {
    double *A = xmalloc((size_t)d * d * sizeof(double)),
           *inv = xmalloc((size_t)d * d * sizeof(double));
    double *U = xmalloc((size_t)nv * d * sizeof(double)), *q = xmalloc((size_t)nv * sizeof(double));
    double *M = xmalloc((size_t)d * d * sizeof(double));
    for (int it = 0; it < 60; it++) {
        design_matrix(d, A0, ne, Sig, T, w, A);
        if (linmdp_spd_inverse(d, A, inv)) break;
        double mx = 0;
        for (int i = 0; i < nv; i++) {
            matvec(d, inv, v + (size_t)i * d, U + (size_t)i * d);
            q[i] = 0;
            for (int j = 0; j < d; j++) q[i] += v[(size_t)i * d + j] * U[(size_t)i * d + j];
            if (q[i] > mx) mx = q[i];
        }
        if (mx <= 0) break;
        double z = 0, eta = 30 / mx;
        for (int i = 0; i < nv; i++) z += q[i] = exp(eta * (q[i] - mx));
        memset(M, 0, (size_t)d * d * sizeof(double)); // sum_i alpha_i u_i u_i^T
        for (int i = 0; i < nv; i++) {
            double al = q[i] / z;
            if (al < 1e-12) continue;
            const double *u = U + (size_t)i * d;
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) M[a * d + b] += al * u[a] * u[b];
        }
        int best = 0;
        double gbest = -1;
        for (int e = 0; e < ne; e++) { // the steepest decrease: max tr(Sig_e M)
            double g = 0;
            for (int k = 0; k < d * d; k++) g += Sig[(size_t)e * d * d + k] * M[k];
            if (g > gbest) gbest = g, best = e;
        }
        double step = 2.0 / (it + 3);
        for (int e = 0; e < ne; e++) w[e] *= 1 - step;
        w[best] += step;
    }
    free(A), free(inv), free(U), free(q), free(M);
}

static double design_value(int d, int nv, const double *v, const double *A0, int ne,
                           const double *Sig, double T, const double *w) {
    double *A = xmalloc((size_t)d * d * sizeof(double));
    design_matrix(d, A0, ne, Sig, T, w, A);
    double r = linmdp_max_norm(d, nv, v, A);
    free(A);
    return r;
}

double linmdp_design(int d, int nv, const double *v, const double *A0, int ne, const double *Sig,
                     double tmax, double *w) {
    for (int e = 0; e < ne; e++) w[e] = 1.0 / ne;
    if (linmdp_max_norm(d, nv, v, A0) <= 1) return 0;
    double hi = 1;
    for (;;) { // doubling: the first T whose optimised design reaches 1
        design_weights(d, nv, v, A0, ne, Sig, hi, w);
        if (design_value(d, nv, v, A0, ne, Sig, hi, w) <= 1) break;
        if (hi >= tmax) return -1;
        hi = fmin(2 * hi, tmax);
    }
    double lo = hi / 2, *wt = xmalloc((size_t)ne * sizeof(double));
    for (int it = 0; it < 12 && hi - lo > 0.01 * hi; it++) {
        double mid = (lo + hi) / 2;
        memcpy(wt, w, (size_t)ne * sizeof(double));
        design_weights(d, nv, v, A0, ne, Sig, mid, wt);
        if (design_value(d, nv, v, A0, ne, Sig, mid, wt) <= 1)
            hi = mid, memcpy(w, wt, (size_t)ne * sizeof(double));
        else
            lo = mid;
    }
    free(wt);
    return hi;
}

// ------------------------------------------------------------- FTPedel --
void linmdp_ftp_defaults(linmdp_ftp_opts *o) {
    *o = (linmdp_ftp_opts){.eps = 0.05,
                           .delta = 0.1,
                           .beta = 0,
                           .lambda = 1,
                           .ground = 0.1,
                           .max_episodes = 10000000,
                           .use_offline = 1};
}

typedef struct {
    const linmdp *m;
    int K;
    const int *pols;
    const linmdp_ftp_opts *o;
    linmdp_data D;  // the rows the estimates use: offline (unless ignored) and online
    double *inv;    // [H][d][d] Lambda_h^-1
    double *th;     // [H][d] theta^_h
    double *phihat; // [K][H][d]
    double *dhat;   // [K][H][S]
    double *vhat;   // [K]
    long episodes;
} ftp_state;

static void refresh(ftp_state *st) {
    const linmdp *m = st->m;
    int H = m->H, d = m->d, HS = H * m->S;
    gram_inverses(m, &st->D, st->o->lambda, st->inv);
    reward_estimates(m, &st->D, st->inv, st->th);
    for (int k = 0; k < st->K; k++) {
        double *ph = st->phihat + (size_t)k * H * d;
        visitation(m, &st->D, st->inv, st->pols + (size_t)k * HS, ph, st->dhat + (size_t)k * HS);
        double v = 0;
        for (int i = 0; i < H * d; i++) v += ph[i] * st->th[i];
        st->vhat[k] = v;
    }
}

// the constraint vectors of step h, each scaled so that its bound is 1:
// (phi^_pi - phi^_lead) / sqrt(thr) for the active pi, and, before the last
// step, phi^_pi / sqrt(gthr) (the visitations propagated to step h+1 must be
// accurate themselves, not only their differences)
static int constraints(const ftp_state *st, int h, const int *active, int lead, double thr,
                       double gthr, double *v) {
    int d = st->m->d, H = st->m->H, nv = 0;
    const double *pl = st->phihat + ((size_t)lead * H + h) * d;
    for (int k = 0; k < st->K; k++) {
        if (!active[k]) continue;
        const double *pk = st->phihat + ((size_t)k * H + h) * d;
        if (k != lead) {
            for (int i = 0; i < d; i++) v[(size_t)nv * d + i] = (pk[i] - pl[i]) / sqrt(thr);
            nv++;
        }
        if (h + 1 < H && gthr > 0) {
            for (int i = 0; i < d; i++) v[(size_t)nv * d + i] = pk[i] / sqrt(gthr);
            nv++;
        }
    }
    return nv;
}

// estimated second moment of every policy's features at step h (the
// estimated state distribution, negative masses clipped)
static void policy_covariances(const ftp_state *st, int h, double *Sig) {
    const linmdp *m = st->m;
    int d = m->d, S = m->S, HS = m->H * S;
    memset(Sig, 0, (size_t)st->K * d * d * sizeof(double));
    for (int k = 0; k < st->K; k++) {
        double *C = Sig + (size_t)k * d * d;
        for (int s = 0; s < S; s++) {
            double p = st->dhat[(size_t)k * HS + (size_t)h * S + s];
            if (!(p > 0)) continue;
            const double *f = PHI(m, s, st->pols[(size_t)k * HS + h * S + s]);
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) C[i * d + j] += p * f[i] * f[j];
        }
    }
}

static void collect(ftp_state *st, long n, const double *w, rlhf_rng *rng) {
    int HS = st->m->H * st->m->S;
    for (long t = 0; t < n; t++) {
        int e = draw(rng, st->K, w);
        linmdp_episode(st->m, st->pols + (size_t)e * HS, rng, &st->D);
    }
    st->episodes += n;
}

// online episodes (designed) until step h's constraints hold; 0 when they
// do, 1 when the budget ran out first
static int cover_step(ftp_state *st, int h, const int *active, int lead, double thr, double gthr,
                      rlhf_rng *rng) {
    const linmdp *m = st->m;
    int d = m->d, K = st->K;
    double *v = xmalloc((size_t)2 * K * d * sizeof(double)),
           *A0 = xmalloc((size_t)d * d * sizeof(double));
    double *Sig = xmalloc((size_t)K * d * d * sizeof(double)),
           *w = xmalloc((size_t)K * sizeof(double));
    int rc = 1;
    for (int round = 0; round < 100; round++) {
        int nv = constraints(st, h, active, lead, thr, gthr, v);
        linmdp_gram(m, &st->D, h, st->o->lambda, A0);
        if (nv == 0 || linmdp_max_norm(d, nv, v, A0) <= 1) {
            rc = 0;
            break;
        }
        long left = st->o->max_episodes - st->episodes;
        if (left <= 0) break;
        policy_covariances(st, h, Sig);
        double T = linmdp_design(d, nv, v, A0, K, Sig, (double)left, w);
        long n = T < 0 ? left : (long)ceil(T);
        if (n < 1) n = 1;
        if (n > left) n = left;
        collect(st, n, w, rng);
        refresh(st);
    }
    free(v), free(A0), free(Sig), free(w);
    return rc;
}

static int argmax_active(const double *x, const int *active, int K) {
    int b = -1;
    for (int k = 0; k < K; k++)
        if (active[k] && (b < 0 || x[k] > x[b])) b = k;
    return b;
}

int linmdp_ftpedel(const linmdp *m, int K, const int *pols, const linmdp_data *D_off,
                   const linmdp_ftp_opts *o, rlhf_rng *rng, linmdp_ftp_result *res, int *active,
                   rlhf_err *err) {
    if (K < 1 || !(o->eps > 0) || !(o->lambda > 0) || !(o->delta > 0 && o->delta < 1) ||
        o->beta < 0 || o->ground < 0 || o->max_episodes < 0)
        return rlhf_fail(err,
                         "ftpedel: needs K >= 1 (%d), eps > 0 (%g), lambda > 0 (%g), delta "
                         "in (0, 1) (%g), beta >= 0 (%g), ground >= 0 (%g), max_episodes >= "
                         "0 (%ld)",
                         K, o->eps, o->lambda, o->delta, o->beta, o->ground, o->max_episodes);
    int H = m->H, d = m->d;
    double L = ceil(log2(1.5 * H / o->eps)) + 1;
    double beta = o->beta > 0 ? o->beta : 2 * log((K > 1 ? (double)K * K : 2.0) * H * L / o->delta);
    ftp_state st = {.m = m, .K = K, .pols = pols, .o = o};
    linmdp_data_init(&st.D, m);
    if (D_off && o->use_offline) linmdp_data_copy(&st.D, D_off);
    st.inv = xmalloc((size_t)H * d * d * sizeof(double));
    st.th = xmalloc((size_t)H * d * sizeof(double));
    st.phihat = xmalloc((size_t)K * H * d * sizeof(double));
    st.dhat = xmalloc((size_t)K * H * m->S * sizeof(double));
    st.vhat = xmalloc((size_t)K * sizeof(double));
    int *act = xmalloc((size_t)K * sizeof(int));
    for (int k = 0; k < K; k++) act[k] = 1;
    refresh(&st);
    *res = (linmdp_ftp_result){.beta = beta};
    int lead = argmax_active(st.vhat, act, K), n_act = K;
    for (int l = 1; n_act > 1; l++) {
        double eps_l = H * ldexp(1.0, -l), thr = pow(eps_l / (2 * H), 2) / beta;
        double gthr = o->ground * o->ground / beta;
        int short_of = 0;
        for (int h = 0; h < H && !short_of; h++)
            short_of = cover_step(&st, h, act, lead, thr, gthr, rng);
        if (short_of) break;
        lead = argmax_active(st.vhat, act, K);
        n_act = 0;
        for (int k = 0; k < K; k++) {
            if (act[k] && st.vhat[lead] - st.vhat[k] > eps_l) act[k] = 0;
            n_act += act[k];
        }
        res->epochs = l;
        if (o->verbose)
            fprintf(stderr, "ftpedel: epoch %d eps_l %.4g episodes %ld active %d lead %d\n", l,
                    eps_l, st.episodes, n_act, lead);
        if (1.5 * eps_l <= o->eps) break;
    }
    res->certified =
        n_act == 1 || (res->epochs >= 1 && 1.5 * H * ldexp(1.0, -res->epochs) <= o->eps);
    res->chosen = argmax_active(st.vhat, act, K);
    res->survivors = n_act;
    res->episodes = st.episodes;
    if (active) memcpy(active, act, (size_t)K * sizeof(int));
    linmdp_data_free(&st.D);
    free(st.inv), free(st.th), free(st.phihat), free(st.dhat), free(st.vhat), free(act);
    return 0;
}
