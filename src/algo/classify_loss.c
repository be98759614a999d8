// algo/classify_loss: the logistic loss of a text classifier (classify_loss.h).
#include "algo/classify_loss.h"

#include <math.h>

double classify_prob(double s) {
    if (s >= 0) return 1 / (1 + exp(-s));
    double e = exp(s);
    return e / (1 + e);
}

// log(1 + e^x) without overflow
static double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

void classify_bce_loss(int n, const float *score, const int *label, float pos_weight,
                       long total_rows, float *dscore, classify_sums *sums) {
    for (int i = 0; i < n; i++) {
        double s = score[i], y = label[i] ? 1 : 0, w = label[i] ? pos_weight : 1;
        double bce = softplus(s) - y * s, p = classify_prob(s);
        sums->loss += w * bce;
        sums->log_loss += bce;
        sums->correct += (s > 0) == (label[i] != 0);
        sums->prob_true += p;
        sums->positives += label[i] != 0;
        sums->rows++;
        if (dscore) dscore[i] = (float)(w * (p - y) / (double)total_rows);
    }
}
