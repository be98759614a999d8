// ctrl/h2o_loss: H2O's discriminator losses, dynamics ratio, u, weighted
// Bellman error and sim-weighted conservative term (contracts in h2o_loss.h).
#include "ctrl/h2o_loss.h"

#include <math.h>

#include "ctrl/cql_loss.h"

static double softplus(double x) {
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

double ctrl_h2o_disc_loss(const float *l_sa, const float *l_adv, int n_real, int n_sim,
                          float *dl_sa, float *dl_adv, double *sa_loss, double *sas_loss) {
    double sa = 0, sas = 0;
    for (int b = 0; b < n_real + n_sim; b++) {
        int real = b < n_real;
        double n = real ? n_real : n_sim, x = l_sa[b], z = (double)l_adv[b] + l_sa[b];
        // real rows: -log sigmoid(x) = softplus(-x); sim rows: -log(1 - sigmoid(x)) = softplus(x)
        sa += softplus(real ? -x : x) / n;
        sas += softplus(real ? -z : z) / n;
        double gx = (sigmoid(x) - real) / n, gz = (sigmoid(z) - real) / n;
        if (dl_sa) dl_sa[b] = (float)(gx + gz);
        if (dl_adv) dl_adv[b] = (float)gz;
    }
    if (sa_loss) *sa_loss = sa;
    if (sas_loss) *sas_loss = sas;
    return sa + sas;
}

void ctrl_h2o_ratio(const float *l_adv, int n, float lo, float hi, float *w) {
    for (int b = 0; b < n; b++) {
        double r = exp((double)l_adv[b]);
        w[b] = (float)(r < lo ? lo : r > hi ? hi : r);
    }
}

void ctrl_h2o_u(const float *l_adv, int n, int K, double lo, double hi, double *u) {
    for (int b = 0; b < n; b++) {
        double s = 0;
        for (int k = 0; k < K; k++) s -= l_adv[(long)b * K + k];
        s /= K;
        u[b] = s < lo ? lo : s > hi ? hi : s;
    }
}

double ctrl_h2o_weighted_mse(const float *q, const float *y, const float *w, int n, float *dq) {
    double loss = 0;
    for (int b = 0; b < n; b++) {
        double d = (double)q[b] - y[b], wb = w ? w[b] : 1.0;
        loss += wb * d * d / n;
        if (dq) dq[b] = (float)(2.0 * wb * d / n);
    }
    return loss;
}

double ctrl_h2o_penalty(const float *q_sim, const double *u, int n_sim, const float *q_real,
                        int n_real, float temp, float weight, float *dq_sim, float *dq_real,
                        double *gap_out) {
    double usum = 0, mx = -INFINITY, s = 0, real_mean = 0;
    for (int b = 0; b < n_sim; b++) usum += u[b];
    for (int b = 0; b < n_sim; b++) mx = fmax(mx, ((double)q_sim[b] + log(u[b] / usum)) / temp);
    for (int b = 0; b < n_sim; b++) s += exp(((double)q_sim[b] + log(u[b] / usum)) / temp - mx);
    double gap = temp * (mx + log(s));
    for (int b = 0; b < n_real; b++) real_mean += (double)q_real[b] / n_real;
    if (dq_sim)
        for (int b = 0; b < n_sim; b++)
            dq_sim[b] =
                (float)(weight * exp(((double)q_sim[b] + log(u[b] / usum)) / temp - mx) / s);
    if (dq_real)
        for (int b = 0; b < n_real; b++) dq_real[b] = (float)(-(double)weight / n_real);
    if (gap_out) *gap_out = gap;
    return weight * (gap - real_mean);
}

long ctrl_h2o_noise_size(int B, int S, int A, int n_sim, int K) {
    return (long)B * (2 * S + A) + (long)n_sim * K * S + ctrl_sac_noise_size(B, A, 0);
}

void ctrl_h2o_draw_noise(rlhf_rng *rng, int B, int S, int A, int n_sim, int K, float *noise) {
    long n = (long)B * (2 * S + A) + (long)n_sim * K * S;
    for (long i = 0; i < n; i++) noise[i] = rng_normal(rng);
    ctrl_sac_draw_noise(rng, B, A, 0, noise + n);
}
