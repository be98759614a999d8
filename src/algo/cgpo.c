// algo/cgpo: CGPO's calibrated reward and the losses of CRPG, CODPO and CRRAFT
// (algo/cgpo.h has the formulas). DPO's log-sigmoid is algo/pref's stable form.
#include "algo/cgpo.h"

#include <math.h>

#include "algo/pref.h"

double cgpo_calibrated(double r, double r_ref) { return pref_sigmoid(r - r_ref); }

double cgpo_crpg(int B, int n, const float *scores, const float *ref_scores, const uint8_t *pass,
                 const uint8_t *keep, const float *seq_logp, float *w, float *grad) {
    for (int i = 0; i < B; i++) {
        int on = pass[i] && (!keep || keep[i]);
        w[i] = on ? (float)cgpo_calibrated(scores[i], ref_scores[i]) : 0.0f;
    }
    double loss = 0;
    for (int i = 0; i < B; i++) {
        double a = w[i];
        if (n > 1 && (!keep || keep[i])) {  // leave-one-out baseline of the group
            int g0 = i / n * n;
            double others = 0;
            for (int j = g0; j < g0 + n; j++) others += j == i ? 0 : w[j];
            a -= others / (n - 1);
        }
        grad[i] = (float)(-a / B);
        loss -= a * seq_logp[i] / B;
    }
    return loss;
}

int cgpo_codpo_pairs(int n_prompts, int n, const float *scores, const uint8_t *pass,
                     const uint8_t *keep, int fallback, int *chosen, int *rejected) {
    int k = 0;
    for (int g = 0; g < n_prompts; g++) {
        int r0 = g * n, best = -1, worst = -1, low = -1;
        if (keep && !keep[r0]) continue;
        for (int j = 0; j < n; j++) {
            int i = r0 + j;
            if (pass[i]) {
                if (best < 0 || scores[i] > scores[best]) best = i;   // first maximum
                if (low < 0 || scores[i] <= scores[low]) low = i;     // last minimum
            } else if (worst < 0 || scores[i] <= scores[worst]) {
                worst = i;  // last minimum among the violating
            }
        }
        if (best < 0) continue;
        if (worst < 0 && fallback && scores[low] < scores[best]) worst = low;
        if (worst < 0) continue;
        chosen[k] = best, rejected[k] = worst, k++;
    }
    return k;
}

double cgpo_codpo_loss(int P, const float *pc, const float *pr, const float *rc, const float *rr,
                       const int *lc, float beta, float lambda, float *gc, float *gr, double *acc) {
    double loss = 0, right = 0;
    for (int k = 0; k < P; k++) {
        double h = (double)pc[k] - (rc ? rc[k] : 0) - ((double)pr[k] - (rr ? rr[k] : 0));
        double len = lc[k] > 0 ? lc[k] : 1;
        loss += -pref_log_sigmoid(beta * h) - lambda * pc[k] / len;
        // d/dh -log sigmoid(beta h) = -beta sigmoid(-beta h)
        double d = -beta * pref_sigmoid(-beta * h);
        gc[k] = (float)((d - lambda / len) / P);
        gr[k] = (float)(-d / P);
        right += h > 0;
    }
    if (acc) *acc = P ? right / P : 0;
    return P ? loss / P : 0;
}

double cgpo_crraft(int n_prompts, int n, const float *scores, const float *ref_scores,
                   const uint8_t *pass, const uint8_t *keep, const float *seq_logp,
                   const int *len, float *w, float *grad) {
    int B = n_prompts * n, G = 0;
    for (int i = 0; i < B; i++) w[i] = 0, grad[i] = 0;
    for (int g = 0; g < n_prompts; g++) {
        int best = -1;
        for (int i = g * n; i < g * n + n; i++)
            if (pass[i] && (!keep || keep[i]) && (best < 0 || scores[i] > scores[best])) best = i;
        if (best < 0) continue;
        w[best] = (float)cgpo_calibrated(scores[best], ref_scores[best]);
        G++;
    }
    double loss = 0;
    for (int i = 0; i < B && G; i++) {
        if (w[i] == 0) continue;
        double l = len[i] > 0 ? len[i] : 1;
        grad[i] = (float)(-w[i] / (l * G));
        loss -= w[i] * seq_logp[i] / (l * G);
    }
    return loss;
}
