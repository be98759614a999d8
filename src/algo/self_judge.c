// algo/self_judge: OSP's self-judged preference probabilities, self-scores and
// ranked pairs (algo/self_judge.h).
#include "algo/self_judge.h"

#include <math.h>
#include <stdlib.h>

static double sigmoid(double x) {
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

double self_judge_prob(double la_ab, double lb_ab, double la_ba, double lb_ba) {
    return 0.5 * (sigmoid(la_ab - lb_ab) + sigmoid(lb_ba - la_ba));
}

void self_judge_scores(int n, const double *p, double *score) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            if (j != i) s += p[(size_t)i * n + j];
        score[i] = n > 1 ? s / (n - 1) : 0.5;
    }
}

int self_judge_ranked_pairs(int n, const double *score, int *chosen, int *rejected) {
    int *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 1; i < n; i++) {  // insertion sort: stable, n is a group's size
        int v = idx[i], j = i;
        while (j > 0 && score[idx[j - 1]] < score[v]) idx[j] = idx[j - 1], j--;
        idx[j] = v;
    }
    int k = 0;
    for (int a = 0; a < n / 2; a++) {
        int b = n - 1 - a;
        if (score[idx[a]] > score[idx[b]]) chosen[k] = idx[a], rejected[k] = idx[b], k++;
    }
    free(idx);
    return k;
}
