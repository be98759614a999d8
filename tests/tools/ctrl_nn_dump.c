// ctrl_nn_dump: runs src/ctrl's networks and heads on inputs from files and
// writes the results, for tests/ctrl_nn_test.py to compare with PyTorch.
// Every file is raw little-endian float32, DIR/NAME.f32.
//
//   ctrl_nn_dump mlp DIR SEED IN HIDDEN LAYERS OUT ENS B TAU LR WD
//     reads  x (B,IN), dy (ENS,B,OUT)
//     writes params, y, grads, dx   (net seeded with SEED; backward with dx starting at 0)
//            target0, polyak        (a second net seeded SEED+1, before and after
//                                    ctrl_mlp_polyak(target, net, TAU))
//            adam1, adam2           (net's params after one and two ctrl_adam_step with
//                                    lr LR, weight decay WD, both with `grads`)
//   ctrl_nn_dump heads DIR B A LO HI
//     reads  u (B,A) da (B,A) dl (B) out (B,2A) eps (B,A) scale (A) bias (A) act (B,A)
//            mean (B,A) log_std (A)
//     writes det_a det_du                 ctrl_det_forward/backward(u; upstream da)
//            tg_a tg_logp tg_pre tg_dout  ctrl_tanh_gauss_forward/backward(out, eps; da, dl)
//            tg0_a                        the same with eps = NULL
//            tglp_logp tglp_dout          ctrl_tanh_gauss_logprob(+backward)(out, act; dl)
//            g_logp g_dmean g_dls         ctrl_gauss_logprob(+backward)(mean, log_std, act; dl)
// Exit 2 with a message on a missing or short file.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ctrl/mlp.h"
#include "ctrl/policy.h"

static const char *dir;

static float *load(const char *name, long n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ctrl_nn_dump: cannot open %s\n", path);
        exit(2);
    }
    float *p = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    size_t got = fread(p, sizeof(float), (size_t)n, f);
    fclose(f);
    if ((long)got != n) {
        fprintf(stderr, "ctrl_nn_dump: %s: %ld floats expected, %zu read\n", path, n, got);
        exit(2);
    }
    return p;
}

static void save(const char *name, const float *p, long n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof(float), (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "ctrl_nn_dump: cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

static int run_mlp(char **argv) {
    int seed = atoi(argv[0]), in = atoi(argv[1]), hidden = atoi(argv[2]), layers = atoi(argv[3]);
    int out = atoi(argv[4]), ens = atoi(argv[5]), B = atoi(argv[6]);
    float tau = strtof(argv[7], NULL), lr = strtof(argv[8], NULL), wd = strtof(argv[9], NULL);
    rlhf_rng g;
    rng_seed(&g, (uint64_t)seed);
    ctrl_mlp m, t;
    ctrl_mlp_init(&m, in, hidden, layers, out, ens, &g);
    rng_seed(&g, (uint64_t)seed + 1);
    ctrl_mlp_init(&t, in, hidden, layers, out, ens, &g);
    long ny = (long)ens * B * out;
    float *x = load("x", (long)B * in), *dy = load("dy", ny);
    float *y = xcalloc((size_t)ny, sizeof(float)), *dx = xcalloc((size_t)B * in, sizeof(float));
    save("params", m.params, m.n_params);
    ctrl_mlp_forward(&m, x, B, y);
    ctrl_mlp_zero_grad(&m);
    ctrl_mlp_backward(&m, dy, dx, 1);
    save("y", y, ny);
    save("grads", m.grads, m.n_params);
    save("dx", dx, (long)B * in);
    save("target0", t.params, t.n_params);
    ctrl_mlp_polyak(&t, &m, tau);
    save("polyak", t.params, t.n_params);
    ctrl_adam opt;
    ctrl_adam_init(&opt, m.n_params, lr);
    opt.weight_decay = wd;
    ctrl_adam_step(&opt, m.params, m.grads);
    save("adam1", m.params, m.n_params);
    ctrl_adam_step(&opt, m.params, m.grads);
    save("adam2", m.params, m.n_params);
    ctrl_adam_free(&opt);
    free(x), free(dy), free(y), free(dx);
    ctrl_mlp_free(&m);
    ctrl_mlp_free(&t);
    return 0;
}

static int run_heads(char **argv) {
    int B = atoi(argv[0]), A = atoi(argv[1]);
    float lo = strtof(argv[2], NULL), hi = strtof(argv[3], NULL);
    long n = (long)B * A;
    float *u = load("u", n), *da = load("da", n), *dl = load("dl", B), *out = load("out", 2 * n);
    float *eps = load("eps", n), *scale = load("scale", A), *bias = load("bias", A);
    float *act = load("act", n), *mean = load("mean", n), *log_std = load("log_std", A);
    float *a = xcalloc((size_t)n, sizeof(float)), *d = xcalloc((size_t)n, sizeof(float));
    float *pre = xcalloc((size_t)n, sizeof(float)), *lp = xcalloc((size_t)B, sizeof(float));
    float *dout = xcalloc((size_t)2 * n, sizeof(float)), *dls = xcalloc((size_t)A, sizeof(float));

    ctrl_det_forward(a, u, scale, bias, B, A);
    ctrl_det_backward(d, da, a, scale, bias, B, A);
    save("det_a", a, n);
    save("det_du", d, n);

    ctrl_tanh_gauss_forward(a, lp, pre, out, eps, scale, bias, B, A, lo, hi);
    ctrl_tanh_gauss_backward(dout, da, dl, out, eps, pre, scale, B, A, lo, hi);
    save("tg_a", a, n);
    save("tg_logp", lp, B);
    save("tg_pre", pre, n);
    save("tg_dout", dout, 2 * n);
    ctrl_tanh_gauss_forward(a, NULL, pre, out, NULL, scale, bias, B, A, lo, hi);
    save("tg0_a", a, n);

    memset(dout, 0, sizeof(float) * 2 * n);
    ctrl_tanh_gauss_logprob(lp, out, act, scale, bias, B, A, lo, hi);
    ctrl_tanh_gauss_logprob_backward(dout, dl, out, act, scale, bias, B, A, lo, hi);
    save("tglp_logp", lp, B);
    save("tglp_dout", dout, 2 * n);

    memset(d, 0, sizeof(float) * n);
    ctrl_gauss_logprob(lp, mean, log_std, act, B, A, lo, hi);
    ctrl_gauss_logprob_backward(d, dls, dl, mean, log_std, act, B, A, lo, hi);
    save("g_logp", lp, B);
    save("g_dmean", d, n);
    save("g_dls", dls, A);

    free(u), free(da), free(dl), free(out), free(eps), free(scale), free(bias), free(act);
    free(mean), free(log_std), free(a), free(d), free(pre), free(lp), free(dout), free(dls);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 13 && !strcmp(argv[1], "mlp")) {
        dir = argv[2];
        return run_mlp(argv + 3);
    }
    if (argc == 7 && !strcmp(argv[1], "heads")) {
        dir = argv[2];
        return run_heads(argv + 3);
    }
    fprintf(stderr,
            "usage: ctrl_nn_dump mlp DIR SEED IN HIDDEN LAYERS OUT ENS B TAU LR WD\n"
            "       ctrl_nn_dump heads DIR B A LO HI\n");
    return 2;
}
