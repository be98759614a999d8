// algo/brme_loss: the BRME loss (formula and shapes in brme_loss.h).
#include "algo/brme_loss.h"

#include <math.h>
#include <string.h>

static double log_sigmoid(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }

static double sigmoid(double z) {
    return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

float brme_sigma(float x) {
    double sp = x > 20 ? (double)x : log1p(exp((double)x));
    return (float)sp + BRME_SIGMA_MIN;
}

double brme_loss(int n, int K, const float *scores, const double *margins, const float *eps,
                 int M, float sigma_prior, float center_coef, long total_pairs, float *dscores,
                 brme_loss_sums *sums) {
    const int W = 2 * K;  // outputs per row
    if (dscores) memset(dscores, 0, (size_t)2 * n * W * sizeof(float));
    double total = 0, scale = 1.0 / ((double)K * (total_pairs > 0 ? total_pairs : 1));
    double lpm[BRME_MAX_SAMPLES];
    if (M > BRME_MAX_SAMPLES) M = BRME_MAX_SAMPLES;
    for (int i = 0; i < n; i++) {
        const float *c = scores + (size_t)i * W, *r = scores + (size_t)(n + i) * W;
        float *dc = dscores ? dscores + (size_t)i * W : NULL;
        float *dr = dscores ? dscores + (size_t)(n + i) * W : NULL;
        double mg = margins ? margins[i] : 0;
        double pl = 0, pn = 0, pa = 0, ps = 0;
        for (int k = 0; k < K; k++) {
            double sc = brme_sigma(c[K + k]), sr = brme_sigma(r[K + k]);
            double d = (double)c[k] - r[k] - mg;
            const float *e = eps + ((size_t)i * K + k) * M * 2;
            // nll = -log mean_m sigmoid(z_m): log-sum-exp over log sigmoid
            double mx = -INFINITY;
            for (int m = 0; m < M; m++) {
                lpm[m] = log_sigmoid(d + sc * e[2 * m] - sr * e[2 * m + 1]);
                if (lpm[m] > mx) mx = lpm[m];
            }
            double se = 0;
            for (int m = 0; m < M; m++) se += exp(lpm[m] - mx);
            double nll = -(mx + log(se / M));
            double prior = sigma_prior * (0.5 * (sc * sc - 1) - log(sc) + 0.5 * (sr * sr - 1) - log(sr));
            double cent = center_coef * ((double)c[k] + r[k]) * ((double)c[k] + r[k]);
            pl += nll + prior + cent, pn += nll;
            pa += c[k] > r[k];
            ps += 0.5 * (sc + sr);
            if (!dscores) continue;
            // d nll / d z_m = -w_m (1 - p_m), w_m = p_m / sum_j p_j
            double gmu = 0, gsc = 0, gsr = 0;
            for (int m = 0; m < M; m++) {
                double w = exp(lpm[m] - mx) / se;
                double z = d + sc * e[2 * m] - sr * e[2 * m + 1];
                double g = -w * sigmoid(-z);
                gmu += g, gsc += g * e[2 * m], gsr -= g * e[2 * m + 1];
            }
            gsc += sigma_prior * (sc - 1 / sc);
            gsr += sigma_prior * (sr - 1 / sr);
            double gcent = 2 * center_coef * ((double)c[k] + r[k]);
            dc[k] = (float)((gmu + gcent) * scale);
            dr[k] = (float)((-gmu + gcent) * scale);
            dc[K + k] = (float)(gsc * sigmoid(c[K + k]) * scale);
            dr[K + k] = (float)(gsr * sigmoid(r[K + k]) * scale);
        }
        total += pl / K;
        if (sums) {
            sums->loss += pl / K, sums->nll += pn / K, sums->acc += pa / K, sums->sigma += ps / K;
            sums->pairs++;
        }
    }
    return total;
}
