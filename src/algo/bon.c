// algo/bon: best-of-n selection and SuperHF's vocabulary KL (see algo/bon.h).
#include "algo/bon.h"

#include <math.h>
#include <string.h>

void bon_pick_best(int np, int n, const float *scores, int *best) {
    for (int j = 0; j < np; j++) {
        int b = j * n;
        for (int k = 1; k < n; k++)
            if (scores[j * n + k] > scores[b]) b = j * n + k;
        best[j] = b;
    }
}

// log-sum-exp of x (V) in double
static double log_sum_exp(int V, const float *x) {
    double mx = -INFINITY, z = 0;
    for (int v = 0; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    for (int v = 0; v < V; v++) z += exp(x[v] - mx);
    return mx + log(z);
}

double superhf_vocab_kl(int N, int V, const float *logits_p, const float *logits_q,
                        const int *targets, double scale, float *dlogits) {
    double kl = 0;
    for (int i = 0; i < N; i++) {
        const float *a = logits_p + (size_t)i * V, *b = logits_q + (size_t)i * V;
        float *d = dlogits + (size_t)i * V;
        if (targets[i] < 0) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        double la = log_sum_exp(V, a), lb = log_sum_exp(V, b), k = 0;
        for (int v = 0; v < V; v++) {  // a[v] is read before d[v] (maybe a[v]) is written
            double lpv = a[v] - la, lqv = b[v] - lb, q = exp(lqv);
            k += q * (lqv - lpv);
            d[v] = (float)(scale * (exp(lpv) - q));
        }
        kl += k > 0 ? k : 0;
    }
    return kl;
}
