// ctrl/fisor_diffusion: FISOR's DDPM schedule, noising and sampler (fisor_diffusion.h)
#include "ctrl/fisor_diffusion.h"

#include <math.h>
#include <string.h>

void ctrl_fisor_vp_schedule(ctrl_fisor_sched *s, int T) {
    RLHF_ASSERT(T >= 1 && T <= CTRL_FISOR_MAX_T);
    const double b_min = 0.1, b_max = 10.0;
    double hat = 1.0;
    s->T = T;
    for (int i = 0; i < T; i++) {
        double t = i + 1;
        double a = exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / ((double)T * T));
        hat *= a;
        s->beta[i] = (float)(1 - a);
        s->alpha[i] = (float)a;
        s->alpha_hat[i] = (float)hat;
    }
}

void ctrl_fisor_time_embed(float *emb, int i, int D) {
    int half = D / 2;
    double step = log(10000.0) / (half - 1);
    for (int k = 0; k < half; k++) {
        double f = i * exp(-k * step);
        emb[k] = (float)cos(f);
        emb[half + k] = (float)sin(f);
    }
}

void ctrl_fisor_input(float *in, const float *x, const float *obs, const int *t, int B, int A,
                      int S, int D) {
    int W = A + S + D;
    for (int b = 0; b < B; b++) {
        float *row = in + (long)b * W;
        memcpy(row, x + (long)b * A, A * sizeof(float));
        memcpy(row + A, obs + (long)b * S, S * sizeof(float));
        ctrl_fisor_time_embed(row + A + S, t[b], D);
    }
}

void ctrl_fisor_noisy(float *x, const float *a, const float *eps, const int *t,
                      const ctrl_fisor_sched *s, int B, int A) {
    for (int b = 0; b < B; b++) {
        float c1 = sqrtf(s->alpha_hat[t[b]]), c2 = sqrtf(1 - s->alpha_hat[t[b]]);
        for (int i = 0; i < A; i++) {
            long k = (long)b * A + i;
            x[k] = c1 * a[k] + c2 * eps[k];
        }
    }
}

void ctrl_fisor_denoise_step(float *x, const float *eps_pred, const float *z, int i,
                             const ctrl_fisor_sched *s, float temp, int clip, int B, int A) {
    float c1 = 1 / sqrtf(s->alpha[i]), c2 = (1 - s->alpha[i]) / sqrtf(1 - s->alpha_hat[i]);
    float sd = sqrtf(s->beta[i]) * temp;
    for (long k = 0; k < (long)B * A; k++) {
        float v = c1 * (x[k] - c2 * eps_pred[k]);
        if (i > 0) v += sd * z[k];
        if (clip) v = fminf(fmaxf(v, -1.0f), 1.0f);
        x[k] = v;
    }
}

long ctrl_fisor_noise_size(int T, int B, int A) {
    return (long)T * B * A;
}

void ctrl_fisor_sample(ctrl_mlp *net, const float *obs, int B, int S, int A, int D,
                       const ctrl_fisor_sched *s, const float *noise, float temp, int clip,
                       float *in, float *pred, int *it, float *x) {
    long BA = (long)B * A;
    memcpy(x, noise, BA * sizeof(float));
    const float *z = noise + BA;
    for (int i = s->T - 1; i >= 0; i--) {
        for (int b = 0; b < B; b++) it[b] = i;
        ctrl_fisor_input(in, x, obs, it, B, A, S, D);
        ctrl_mlp_forward(net, in, B, pred);
        ctrl_fisor_denoise_step(x, pred, z, i, s, temp, clip, B, A);
        if (i > 0) z += BA;
    }
    for (long k = 0; k < BA; k++) x[k] = fminf(fmaxf(x[k], -1.0f), 1.0f);
}
