// alol_fit: reads "n d lambda" and n rows of "x_1 ... x_d y" (text) on stdin,
// prints b and w_1 .. w_d of algo/alol's ridge fit, one per line (%.17g), for
// tests/alol_test.py to compare with numpy.
#include <stdio.h>
#include <stdlib.h>

#include "algo/alol.h"

int main(void) {
    int n, d;
    double lambda;
    if (scanf("%d %d %lf", &n, &d, &lambda) != 3 || n < 1 || d < 1) return 2;
    float *X = malloc((size_t)n * d * sizeof(float));
    double *y = malloc((size_t)n * sizeof(double)), *w = malloc((size_t)d * sizeof(double)), b;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++)
            if (scanf("%f", &X[(size_t)i * d + j]) != 1) return 2;
        if (scanf("%lf", &y[i]) != 1) return 2;
    }
    rlhf_err err;
    if (alol_ridge_fit(X, y, n, d, lambda, w, &b, &err)) {
        fprintf(stderr, "alol_fit: %s\n", err.msg);
        return 1;
    }
    printf("%.17g\n", b);
    for (int j = 0; j < d; j++) printf("%.17g\n", w[j]);
    free(X), free(y), free(w);
    return 0;
}
