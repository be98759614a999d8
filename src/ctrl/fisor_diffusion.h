// ctrl/fisor_diffusion: the DDPM action policy of FISOR (Zheng et al. 2024,
// "Safe Offline Reinforcement Learning with Feasibility-Guided Diffusion
// Model"; schedule, noising and sampler as the authors' jaxrl5 code,
// networks/diffusion.py) as pure functions: the noise is an input, so a test
// repeats a sample exactly. Actions live in [-1, 1]^A (the agent maps them to
// the environment's bounds).
//
// Schedule ("vp", T steps, b_min 0.1, b_max 10), for i = 0 .. T-1 (t = i + 1):
//     beta_i = 1 - exp(-b_min / T - (b_max - b_min) (2t - 1) / (2 T^2))
//     alpha_i = 1 - beta_i,   alpha_hat_i = prod_{j <= i} alpha_j
// Training input at step i: x = sqrt(alpha_hat_i) a + sqrt(1 - alpha_hat_i) eps.
// The denoiser eps_theta is a ctrl_mlp (ReLU) on the row [x | s | emb(i)],
// emb(i) the fixed sinusoidal features of the integer step (D of them):
//     f_k = exp(-k log(10000) / (D/2 - 1)), emb = [cos(i f_k) | sin(i f_k)], k < D/2
// Reverse step i (i = T-1 down to 0), z ~ N(0, I) drawn for i > 0 only:
//     x <- (x - beta_i / sqrt(1 - alpha_hat_i) * eps_theta(x, s, i)) / sqrt(alpha_i)
//          + [i > 0] sqrt(beta_i) * temp * z
//     x <- clip(x, -1, 1)                    (clip_sampler, the authors' default)
// starting from x ~ N(0, I); the result is clipped to [-1, 1] once more.
#ifndef RLHF_CTRL_FISOR_DIFFUSION_H
#define RLHF_CTRL_FISOR_DIFFUSION_H

#include "ctrl/mlp.h"

#define CTRL_FISOR_MAX_T 100

typedef struct {
    int T;
    float beta[CTRL_FISOR_MAX_T], alpha[CTRL_FISOR_MAX_T], alpha_hat[CTRL_FISOR_MAX_T];
} ctrl_fisor_sched;

// the vp schedule above (1 <= T <= CTRL_FISOR_MAX_T; computed in double)
void ctrl_fisor_vp_schedule(ctrl_fisor_sched *s, int T);

// emb (D) of the integer step i (D even, >= 4)
void ctrl_fisor_time_embed(float *emb, int i, int D);

// the denoiser's input rows (B, A + S + D) = [x | obs | emb(t[b])]
void ctrl_fisor_input(float *in, const float *x, const float *obs, const int *t, int B, int A,
                      int S, int D);

// x (B, A) = sqrt(alpha_hat[t_b]) a + sqrt(1 - alpha_hat[t_b]) eps
void ctrl_fisor_noisy(float *x, const float *a, const float *eps, const int *t,
                      const ctrl_fisor_sched *s, int B, int A);

// one reverse step i on x (B, A) in place, eps_pred (B, A) the denoiser's
// output at step i; z (B, A) is read only when i > 0
void ctrl_fisor_denoise_step(float *x, const float *eps_pred, const float *z, int i,
                             const ctrl_fisor_sched *s, float temp, int clip, int B, int A);

// floats of noise one sample of B rows uses: x_T, then z for i = T-1 .. 1
long ctrl_fisor_noise_size(int T, int B, int A);

// The whole sampler: noise (ctrl_fisor_noise_size floats, standard normal);
// obs (B, S); scratch: in (B, A + S + D), pred (net->ens = 1: (B, A)), it
// (B ints); x (B, A) receives the actions in [-1, 1].
void ctrl_fisor_sample(ctrl_mlp *net, const float *obs, int B, int S, int A, int D,
                       const ctrl_fisor_sched *s, const float *noise, float temp, int clip,
                       float *in, float *pred, int *it, float *x);

#endif
