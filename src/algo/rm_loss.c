// algo/rm_loss: the reward model's Bradley-Terry loss and ensemble statistics
// (see algo/rm_loss.h).
#include "algo/rm_loss.h"

#include "algo/self_judge.h"

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

void rm_pairwise_loss(int m, const float *logp, const int *label, long total_rows, float *dlogp,
                      rm_pairwise_sums *st) {
    for (int i = 0; i < m; i++) {
        int c = label[i] ? 1 : 0;
        double d = (double)logp[(size_t)i * 2 + c] - logp[(size_t)i * 2 + 1 - c];
        st->loss += softplus(-d);
        st->acc += d > 0;
        if (dlogp) {
            double g = -sigmoid(-d) / (double)total_rows;  // d(-log sigmoid(d))/dd, per row
            dlogp[(size_t)i * 2 + c] = (float)g;
            dlogp[(size_t)i * 2 + 1 - c] = (float)-g;
        }
    }
    st->rows += m;
}

void rm_pairwise_eval(int n, const float *l, rm_pairwise_eval_sums *e) {
    for (int i = 0; i < n; i++) {
        const float *q = l + (size_t)i * 4;
        double p = self_judge_prob(q[0], q[1], q[2], q[3]);
        int v1 = q[0] > q[1], v2 = q[3] > q[2];  // chosen wins as A; chosen wins as B
        e->acc += p > 0.5;
        e->prob += p;
        e->order_acc += 0.5 * (v1 + v2);
        e->consistent += v1 == v2;
        e->bias += fabs(sigmoid((double)q[0] - q[1]) + sigmoid((double)q[2] - q[3]) - 1);
        e->pairs++;
    }
}
