// algo/rm_loss: the reward model's Bradley-Terry loss and ensemble statistics
// (see algo/rm_loss.h).
#include "algo/rm_loss.h"

#include <math.h>
#include <stddef.h>

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

void rm_bt_loss(int n, int K, const float *s, const double *margins, float cc, long total_pairs,
                float *dsc, rm_loss_sums *st) {
    for (int i = 0; i < n; i++) {
        double margin = margins ? margins[i] : 0;
        for (int k = 0; k < K; k++) {
            double sc = s[(size_t)i * K + k], sr = s[(size_t)(n + i) * K + k];
            double d = sc - sr - margin;
            st->loss += softplus(-d) / K + cc * (sc + sr) * (sc + sr) / K;
            st->acc += (sc > sr) / (double)K;
            st->margin += (sc - sr) / K;
            if (dsc) {
                double g = -sigmoid(-d) / ((double)total_pairs * K);
                double gc = 2.0 * cc * (sc + sr) / ((double)total_pairs * K);
                dsc[(size_t)i * K + k] = (float)(g + gc);
                dsc[(size_t)(n + i) * K + k] = (float)(-g + gc);
            }
        }
    }
    st->pairs += n;
}

void rm_ensemble_eval(int n, int K, const float *s, rm_ensemble_sums *e) {
    for (int i = 0; i < n; i++) {
        double mc = 0, mr = 0;
        for (int k = 0; k < K; k++) {
            double sc = s[(size_t)i * K + k], sr = s[(size_t)(n + i) * K + k];
            mc += sc / K, mr += sr / K;
            e->member_acc += (sc > sr) / (double)K;
        }
        for (int k = 0; k < K; k++) {
            double sc = s[(size_t)i * K + k];
            e->var += (sc - mc) * (sc - mc) / K;
        }
        e->acc += mc > mr;
    }
}
