// ctrl/ctrl_loss: the control algorithms' losses (see ctrl_loss.h for the
// formulas and their sources). Sums run in double; gradients accumulate.
#include "ctrl/ctrl_loss.h"

#include <math.h>

void ctrl_ensemble_min(float *out, const float *q, int E, int B) {
    for (int b = 0; b < B; b++) {
        float m = q[b];
        for (int e = 1; e < E; e++)
            if (q[(long)e * B + b] < m) m = q[(long)e * B + b];
        out[b] = m;
    }
}

void ctrl_td_target(float *y, const float *rew, const float *done, const float *next_q, int E,
                    int B, float gamma) {
    ctrl_ensemble_min(y, next_q, E, B);
    for (int b = 0; b < B; b++) y[b] = rew[b] + gamma * (1.0f - done[b]) * y[b];
}

double ctrl_critic_mse_loss(float *dq, const float *q, const float *y, int E, int B,
                            float weight) {
    double loss = 0;
    for (int e = 0; e < E; e++) {
        const float *qe = q + (long)e * B;
        double s = 0;
        for (int b = 0; b < B; b++) {
            double d = (double)qe[b] - y[b];
            s += d * d;
            if (dq) dq[(long)e * B + b] += (float)(weight * 2.0 * d / B);
        }
        loss += s / B;
    }
    return weight * loss;
}

double ctrl_expectile_loss(float *dv, const float *q, const float *v, int B, float tau) {
    double loss = 0;
    for (int b = 0; b < B; b++) {
        double u = (double)q[b] - v[b];
        double w = u < 0 ? 1.0 - tau : tau;  // |tau - 1[u < 0]|
        loss += w * u * u;
        if (dv) dv[b] += (float)(-2.0 * w * u / B);  // du/dv = -1
    }
    return loss / B;
}

void ctrl_exp_adv_weights(float *w, const float *adv, int B, float beta, float clip) {
    for (int b = 0; b < B; b++) {
        double x = exp((double)beta * adv[b]);  // inf compares above the clip
        w[b] = (float)(x < clip ? x : clip);
    }
}

void ctrl_awac_weights(float *w, const float *adv, int B, float lambda, float clip) {
    ctrl_exp_adv_weights(w, adv, B, 1.0f / lambda, clip);
}

double ctrl_weighted_nll_loss(float *dlogp, const float *logp, const float *w, int B) {
    double loss = 0;
    for (int b = 0; b < B; b++) {
        double wb = w ? w[b] : 1.0;
        loss -= wb * logp[b];
        if (dlogp) dlogp[b] += (float)(-wb / B);
    }
    return loss / B;
}

double ctrl_weighted_sq_loss(float *dpi, const float *pi, const float *a, const float *w, int B,
                             int A) {
    double loss = 0;
    for (int b = 0; b < B; b++) {
        double wb = w ? w[b] : 1.0, s = 0;
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            double d = (double)pi[k] - a[k];
            s += d * d;
            if (dpi) dpi[k] += (float)(2.0 * wb * d / B);
        }
        loss += wb * s;
    }
    return loss / B;
}

double ctrl_bc_mse_loss(float *dpi, const float *pi, const float *a, int B, int A) {
    long n = (long)B * A;
    double loss = 0;
    for (long k = 0; k < n; k++) {
        double d = (double)pi[k] - a[k];
        loss += d * d;
        if (dpi) dpi[k] += (float)(2.0 * d / n);
    }
    return loss / n;
}

double ctrl_dpg_actor_loss(float *dq, const float *q, int B) {
    double s = 0;
    for (int b = 0; b < B; b++) {
        s += q[b];
        if (dq) dq[b] += -1.0f / B;
    }
    return -s / B;
}

double ctrl_td3bc_actor_loss(float *dq, float *dpi, const float *q, const float *pi,
                             const float *a, int B, int A, float alpha, double *lambda_out) {
    double abs_mean = 0;
    for (int b = 0; b < B; b++) abs_mean += fabs((double)q[b]);
    abs_mean /= B;
    double lambda = alpha / abs_mean;  // detached: a constant for the gradient
    if (lambda_out) *lambda_out = lambda;
    return ctrl_td3bc_actor_loss_at(dq, dpi, q, pi, a, B, A, lambda);
}

double ctrl_td3bc_actor_loss_at(float *dq, float *dpi, const float *q, const float *pi,
                                const float *a, int B, int A, double lambda) {
    double q_mean = 0;
    for (int b = 0; b < B; b++) q_mean += q[b];
    q_mean /= B;
    if (dq)
        for (int b = 0; b < B; b++) dq[b] += (float)(-lambda / B);
    return -lambda * q_mean + ctrl_bc_mse_loss(dpi, pi, a, B, A);
}
