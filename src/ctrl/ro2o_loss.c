// ctrl/ro2o_loss: RO2O's value smoothing, OOD penalty and policy smoothing as
// pure functions (contracts in ro2o_loss.h; formulas from RORL's sac.py and
// RO2O's ro2o_mujoco.py, written here from the formulas).
#include "ctrl/ro2o_loss.h"

#include <math.h>
#include <string.h>

double ro2o_q_smooth(const float *q, const float *q_noised, float tau, float weight, int E, int B,
                     int n, float *dq, float *dq_noised) {
    long Bn = (long)B * n;
    if (dq) memset(dq, 0, sizeof(float) * E * B);
    if (dq_noised) memset(dq_noised, 0, sizeof(float) * E * Bn);
    if (B < 1 || n < 1) return 0;
    double loss = 0;
    for (int b = 0; b < B; b++) {
        int arg = 0;
        double best = 0;
        for (int j = 0; j < n; j++) {
            double l = 0;
            for (int e = 0; e < E; e++) {
                double d = (double)q_noised[e * Bn + (long)b * n + j] - q[(long)e * B + b];
                l += (d > 0 ? 1.0 - tau : tau) * d * d;
            }
            l /= E;
            if (j == 0 || l > best) best = l, arg = j; // the first maximum, as torch.argmax
        }
        loss += best;
        // d/d q_noised = weight/B * (1/E) * 2 w(d) d; d/d q = its negative
        for (int e = 0; e < E; e++) {
            long r = e * Bn + (long)b * n + arg;
            double d = (double)q_noised[r] - q[(long)e * B + b];
            float g = (float)((double)weight / B / E * 2.0 * (d > 0 ? 1.0 - tau : tau) * d);
            if (dq_noised) dq_noised[r] = g;
            if (dq) dq[(long)e * B + b] = -g;
        }
    }
    return (double)weight * loss / B;
}

double ro2o_ood_penalty(const float *q, float beta, float weight, int E, int R, float *dq,
                        double *std_mean) {
    double loss = 0, ssum = 0;
    for (int r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int e = 0; e < E; e++) m += q[(long)e * R + r];
        m /= E;
        for (int e = 0; e < E; e++) {
            double d = q[(long)e * R + r] - m;
            v += d * d;
        }
        double sd = E > 1 ? sqrt(v / (E - 1)) : 0; // torch's std: unbiased
        ssum += sd;
        double gap = (double)beta * sd; // q - target, the same for every member
        loss += gap * gap;              // summed over E members below
        if (dq)
            for (int e = 0; e < E; e++)
                dq[(long)e * R + r] = (float)(2.0 * weight * gap / ((double)E * R));
    }
    if (std_mean) *std_mean = R ? ssum / R : 0;
    return R ? (double)weight * loss / R : 0; // mean over (E, R) of E equal terms per row
}

static float clampf(float x, float lo, float hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

double ro2o_jeffreys(const float *out, const float *out_noised, float log_std_min,
                     float log_std_max, float weight, int B, int n, int A, float *dout,
                     float *dout_noised) {
    long Bn = (long)B * n;
    if (dout) memset(dout, 0, sizeof(float) * B * 2 * A);
    if (dout_noised) memset(dout_noised, 0, sizeof(float) * Bn * 2 * A);
    if (B < 1 || n < 1) return 0;
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *p = out + (long)b * 2 * A;
        int arg = 0;
        double best = 0;
        for (int j = 0; j < n; j++) {
            const float *q = out_noised + ((long)b * n + j) * 2 * A;
            double J = 0;
            for (int i = 0; i < A; i++) {
                double lp = clampf(p[A + i], log_std_min, log_std_max);
                double lq = clampf(q[A + i], log_std_min, log_std_max);
                double vp = exp(2 * lp), vq = exp(2 * lq), D = (double)p[i] - q[i];
                J += (vp + D * D) / (2 * vq) + (vq + D * D) / (2 * vp) - 1.0;
            }
            if (j == 0 || J > best) best = J, arg = j;
        }
        loss += best;
        // gradients of J at the arg-max sample, times weight / B
        const float *q = out_noised + ((long)b * n + arg) * 2 * A;
        double s = (double)weight / B;
        for (int i = 0; i < A; i++) {
            double lp = clampf(p[A + i], log_std_min, log_std_max);
            double lq = clampf(q[A + i], log_std_min, log_std_max);
            double vp = exp(2 * lp), vq = exp(2 * lq), D = (double)p[i] - q[i];
            double dD = D / vq + D / vp; // dJ/dmu_p; dJ/dmu_q is its negative
            // dJ/dlp = vp/vq - (vq + D^2)/vp ; dJ/dlq = vq/vp - (vp + D^2)/vq
            double dlp = vp / vq - (vq + D * D) / vp, dlq = vq / vp - (vp + D * D) / vq;
            int inp = p[A + i] >= log_std_min && p[A + i] <= log_std_max;
            int inq = q[A + i] >= log_std_min && q[A + i] <= log_std_max;
            if (dout) {
                dout[(long)b * 2 * A + i] = (float)(s * dD);
                dout[(long)b * 2 * A + A + i] = inp ? (float)(s * dlp) : 0.0f;
            }
            if (dout_noised) {
                float *g = dout_noised + ((long)b * n + arg) * 2 * A;
                g[i] = (float)(-s * dD);
                g[A + i] = inq ? (float)(s * dlq) : 0.0f;
            }
        }
    }
    return (double)weight * loss / B;
}

long ro2o_noise_size(int B, int O, int A, int n) {
    return (long)B * A * 3 + 3L * n * O + (long)B * n * A;
}

void ro2o_draw_noise(rlhf_rng *rng, int B, int O, int A, int n, float *noise) {
    float *z = noise;
    long BA = (long)B * A, nO = (long)n * O;
    for (long i = 0; i < 2 * BA; i++) *z++ = rng_normal(rng);                // eps_alpha, eps_pi
    for (long i = 0; i < nO; i++) *z++ = 2.0f * rng_uniform(rng) - 1.0f;     // u_pol
    for (long i = 0; i < BA; i++) *z++ = rng_normal(rng);                    // eps_next
    for (long i = 0; i < 2 * nO; i++) *z++ = 2.0f * rng_uniform(rng) - 1.0f; // u_q, u_ood
    for (long i = 0; i < BA * n; i++) *z++ = rng_normal(rng);                // eps_ood
}
