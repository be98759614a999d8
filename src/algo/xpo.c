// algo/xpo: XPO's loss and gradient (the formulas are in algo/xpo.h and
// docs/xpo.md).
#include "algo/xpo.h"

#include <math.h>
#include <string.h>

int xpo_loss_type_from_name(const char *name, xpo_loss_type *out) {
    if (!strcmp(name, "sigmoid")) *out = XPO_LOSS_SIGMOID;
    else if (!strcmp(name, "ipo")) *out = XPO_LOSS_IPO;
    else return -1;
    return 0;
}

// −log σ(x) = softplus(−x), without overflow for any x
static double neg_log_sigmoid(double x) {
    return x >= 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
}

// σ(x) without overflow
static double sigmoid(double x) {
    if (x >= 0) return 1 / (1 + exp(-x));
    double e = exp(x);
    return e / (1 + e);
}

double xpo_loss(int N, xpo_loss_type type, double beta, double alpha, const double *pol_y,
                const double *ref_y, const double *pol_t, const double *ref_t,
                const uint8_t *y_chosen, double *d_pol_y, double *d_pol_t, xpo_stats *st) {
    xpo_stats s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < N; i++) {
        double ry = pol_y[i] - ref_y[i], rt = pol_t[i] - ref_t[i];  // the log-ratios
        int yc = y_chosen[i] != 0;
        double h = yc ? ry - rt : rt - ry, dpo, dh;  // chosen minus rejected
        if (type == XPO_LOSS_IPO) {
            double u = h - 1 / (2 * beta);
            dpo = u * u, dh = 2 * u;
        } else {
            dpo = neg_log_sigmoid(beta * h), dh = -beta * sigmoid(-beta * h);
        }
        // ∂h/∂pol_y = +1 when y is chosen, −1 when rejected; ∂h/∂pol_t the opposite
        if (d_pol_y) d_pol_y[i] = (yc ? dh : -dh) / N;
        if (d_pol_t) d_pol_t[i] = ((yc ? -dh : dh) + alpha) / N;
        s.loss_dpo += dpo, s.loss_xpo += alpha * pol_t[i];
        s.rewards_chosen += beta * (yc ? ry : rt), s.rewards_rejected += beta * (yc ? rt : ry);
        s.margins += beta * h, s.accuracies += beta * h > 0;
        s.logps_chosen += yc ? pol_y[i] : pol_t[i], s.logps_rejected += yc ? pol_t[i] : pol_y[i];
        s.policy_chosen += yc, s.logps_ref_samples += pol_t[i];
    }
    if (N > 0) {
        double *f[] = {&s.loss_dpo, &s.loss_xpo, &s.rewards_chosen, &s.rewards_rejected,
                       &s.margins, &s.accuracies, &s.logps_chosen, &s.logps_rejected,
                       &s.policy_chosen, &s.logps_ref_samples};
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) *f[k] /= N;
    }
    s.loss = s.loss_dpo + s.loss_xpo;
    if (st) *st = s;
    return s.loss;
}
