// ctrl/fisor_loss: FISOR's feasibility target, reverse expectile, policy
// weights and noise loss (fisor_loss.h)
#include "ctrl/fisor_loss.h"

#include <math.h>

#include "ctrl/ctrl_loss.h"

void ctrl_ensemble_max(float *out, const float *q, int E, int B) {
    for (int b = 0; b < B; b++) {
        float m = q[b];
        for (int e = 1; e < E; e++) m = fmaxf(m, q[(long)e * B + b]);
        out[b] = m;
    }
}

void ctrl_fisor_constraint(float *h, const float *cost, int B, float cost_scale) {
    for (int b = 0; b < B; b++) h[b] = cost && cost[b] > 0 ? cost_scale : -1.0f;
}

void ctrl_fisor_hj_target(float *y, const float *h, const float *next_vh, const float *done, int B,
                          float gamma) {
    for (int b = 0; b < B; b++) {
        float nonterminal = (1 - gamma) * h[b] + gamma * fmaxf(h[b], next_vh[b]);
        y[b] = done[b] > 0 ? h[b] : nonterminal;
    }
}

double ctrl_fisor_reverse_expectile_loss(float *dv, const float *q, const float *v, int B,
                                         float tau) {
    return ctrl_expectile_loss(dv, q, v, B, 1 - tau);
}

int ctrl_fisor_weights(float *w, const float *q, const float *v, const float *qh, const float *vh,
                       int B, float beta_r, float clip_r, float beta_h, float clip_h,
                       int *n_unsafe) {
    int safe = 0, unsafe = 0;
    for (int b = 0; b < B; b++) {
        w[b] = 0;
        if (vh[b] > 0) {
            w[b] = fminf(expf(beta_h * (vh[b] - qh[b])), clip_h);
            unsafe++;
        } else if (qh[b] <= 0) {
            w[b] = fminf(expf(beta_r * (q[b] - v[b])), clip_r);
            safe++;
        }
    }
    if (n_unsafe) *n_unsafe = unsafe;
    return safe;
}

double ctrl_fisor_noise_loss(float *dpred, const float *pred, const float *eps, const float *w,
                             int B, int A) {
    double loss = 0;
    for (int b = 0; b < B; b++) {
        float wb = w ? w[b] : 1.0f;
        double s = 0;
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            float d = pred[k] - eps[k];
            s += (double)d * d;
            if (dpred) dpred[k] += 2 * wb * d / B;
        }
        loss += wb * s;
    }
    return loss / B;
}
