// ctrl/famo2o_loss: FamO2O's encoding and balance losses (famo2o_loss.h).
#include "ctrl/famo2o_loss.h"

#include <math.h>

void ctrl_famo2o_encode(float *enc, const float *beta, int B, int D, double n) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D / 2; i++) {
            double k = beta[b] / pow(n, 2.0 * i / D);
            enc[(long)b * D + 2 * i] = (float)sin(k);
            enc[(long)b * D + 2 * i + 1] = (float)cos(k);
        }
}

void ctrl_famo2o_encode_backward(float *dbeta, const float *denc, const float *beta, int B, int D,
                                 double n) {
    for (int b = 0; b < B; b++) {
        double g = 0;
        for (int i = 0; i < D / 2; i++) {
            double div = pow(n, 2.0 * i / D), k = beta[b] / div;
            g +=
                (denc[(long)b * D + 2 * i] * cos(k) - denc[(long)b * D + 2 * i + 1] * sin(k)) / div;
        }
        dbeta[b] += (float)g;
    }
}

double ctrl_famo2o_balance_loss(float *dlogp, float *dq, const float *logp, const float *q, int B,
                                double alpha) {
    double loss = 0;
    for (int b = 0; b < B; b++) {
        loss += alpha * logp[b] - q[b];
        if (dlogp) dlogp[b] += (float)(alpha / B);
        if (dq) dq[b] += (float)(-1.0 / B);
    }
    return loss / B;
}

double ctrl_famo2o_alpha_loss(float *dlog_alpha, float log_alpha, double entropy,
                              double target_entropy) {
    double alpha = exp((double)log_alpha), loss = alpha * (entropy - target_entropy);
    if (dlog_alpha) *dlog_alpha += (float)loss;
    return loss;
}
