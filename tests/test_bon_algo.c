// src/algo/bon (best-of-n selection, SuperHF's vocabulary KL) and
// model_logits_backward: selection's tie-breaking; the KL's gradient w.r.t. the
// policy's logits against finite differences; the whole prior through a tiny
// GPT-2 (tied head) and Llama (untied head) against finite differences on
// parameters. tests/bon_algo_test.py checks the same functions against PyTorch.
#include <math.h>

#include "algo/bon.h"
#include "base/base.h"
#include "model/logits_grad.h"
#include "rlhf.h"
#include "test.h"

static int test_pick_best_ties(void) {
    // groups of 4: a tie at the top goes to the first of equals
    const float s[] = {1, 3, 3, 2,      // two maxima: index 1
                       5, 5, 5, 5,      // all equal: the first
                       -4, -3, -2, -1,  // the last
                       0, -1e-7f, 0, 1e-7f};
    int best[4];
    bon_pick_best(4, 4, s, best);
    CHECK(best[0] == 1);
    CHECK(best[1] == 4);
    CHECK(best[2] == 11);
    CHECK(best[3] == 15);
    // n = 1: every sample is its group's best
    const float one[] = {2, -1, 7};
    int b1[3];
    bon_pick_best(3, 1, one, b1);
    CHECK(b1[0] == 0 && b1[1] == 1 && b1[2] == 2);
    return 0;
}

// scale * sum over counted rows of KL(q || p), softmax of the logits, in double
static double kl_direct(int N, int V, const float *lp, const float *lq, const int *tg) {
    double total = 0;
    for (int i = 0; i < N; i++) {
        if (tg[i] < 0) continue;
        double zp = 0, zq = 0, k = 0;
        for (int v = 0; v < V; v++) zp += exp(lp[i * V + v]), zq += exp(lq[i * V + v]);
        for (int v = 0; v < V; v++) {
            double p = exp(lp[i * V + v]) / zp, q = exp(lq[i * V + v]) / zq;
            k += q * log(q / p);
        }
        total += k;
    }
    return total;
}

enum { KN = 5, KV = 11 };

static void random_logits(float *x, int n, float sd, uint64_t seed) {
    rlhf_rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = sd * rng_normal(&r);
}

static int test_vocab_kl_finite_differences(void) {
    float lp[KN * KV], lq[KN * KV], d[KN * KV], d2[KN * KV];
    const int tg[KN] = {3, -1, 0, 7, -1};
    random_logits(lp, KN * KV, 1.5f, 1);
    random_logits(lq, KN * KV, 1.5f, 2);
    const double scale = 0.37;
    double kl = superhf_vocab_kl(KN, KV, lp, lq, tg, scale, d);
    CHECK_CLOSE(kl, kl_direct(KN, KV, lp, lq, tg), 1e-9, 1e-9);
    CHECK(kl > 0);
    double worst = 0;
    for (int j = 0; j < KN * KV; j++) {
        float save = lp[j], h = 1e-2f;
        lp[j] = save + h;
        double up = kl_direct(KN, KV, lp, lq, tg);
        float hi = lp[j];
        lp[j] = save - h;
        double down = kl_direct(KN, KV, lp, lq, tg);
        float lo = lp[j];
        lp[j] = save;
        double fd = scale * (up - down) / ((double)hi - lo);
        double e = fabs(fd - d[j]);
        worst = e > worst ? e : worst;
        if (tg[j / KV] < 0) CHECK(d[j] == 0.0f);  // not counted: no value, no gradient
    }
    printf("  %d logits, worst |finite difference - gradient| %.2e\n", KN * KV, worst);
    CHECK(worst < 1e-5);
    // a row's gradient sums to 0 (p and q are both distributions)
    for (int i = 0; i < KN; i++) {
        double sum = 0;
        for (int v = 0; v < KV; v++) sum += d[i * KV + v];
        CHECK_CLOSE(sum, 0, 1e-7, 0);
    }
    // in place (dlogits = logits_p) gives the same bits
    float in_place[KN * KV];
    memcpy(in_place, lp, sizeof lp);
    double kl2 = superhf_vocab_kl(KN, KV, in_place, lq, tg, scale, in_place);
    CHECK(kl2 == kl);
    CHECK(memcmp(in_place, d, sizeof d) == 0);
    // identical distributions (up to a shift of the logits): KL 0, gradient ~0
    for (int j = 0; j < KN * KV; j++) d2[j] = lq[j] + 4.0f;
    double k0 = superhf_vocab_kl(KN, KV, d2, lq, tg, 1.0, d2);
    CHECK(k0 >= 0 && k0 < 1e-6);
    for (int j = 0; j < KN * KV; j++) CHECK(fabsf(d2[j]) < 1e-6f);
    // large logits stay finite (log-sum-exp)
    for (int j = 0; j < KN * KV; j++) d2[j] = lp[j] * 200.0f;
    double kbig = superhf_vocab_kl(KN, KV, d2, lq, tg, 1.0, d);
    CHECK(isfinite(kbig) && kbig > 0);
    for (int j = 0; j < KN * KV; j++) CHECK(isfinite(d[j]));
    return 0;
}

// the prior sum_i KL_i(ref || pol) through the model: forward both, the
// logits' gradient from superhf_vocab_kl, model_logits_backward, model_backward
static double prior_loss(rlhf_model *pol, const float *ref_logits, const rlhf_batch *b,
                         float *lp, float *d) {
    rlhf_err err;
    if (model_forward(pol, b, &err)) return NAN;
    model_logits(pol, lp);
    return superhf_vocab_kl(b->B * b->T, pol->cfg.vocab_size, lp, ref_logits, b->targets, 1.0, d);
}

static int prior_gradcheck(rlhf_arch arch) {
    rlhf_config c = {.arch = arch, .n_layer = 2, .n_head = 4, .n_kv_head = arch == ARCH_LLAMA ? 2 : 4,
                     .n_embd = 16, .d_ff = arch == ARCH_LLAMA ? 24 : 0, .vocab_size = 23,
                     .max_seq_len = 16, .tied = arch == ARCH_GPT2};
    config_fill_defaults(&c);
    rlhf_model *pol = NULL, *ref = NULL;
    rlhf_err err;
    CHECK(model_create(&pol, &c, 7, &err) == 0 && model_create(&ref, &c, 8, &err) == 0);
    if (!pol || !ref) return 0;
    rlhf_rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < pol->n_params; i++) pol->params[i] += 0.15f * rng_normal(&r);
    for (size_t i = 0; i < ref->n_params; i++) ref->params[i] += 0.15f * rng_normal(&r);
    enum { B = 2, T = 6 };
    int tok[B * T], tgt[B * T];
    uint8_t mask[B * T];
    for (int i = 0; i < B * T; i++) {
        mask[i] = !(i >= T && i < T + 2);  // row 1 left-padded by 2
        tok[i] = mask[i] ? (int)(rng_u64(&r) % c.vocab_size) : 0;
        tgt[i] = mask[i] && i % T >= 2 ? (int)(rng_u64(&r) % c.vocab_size) : -1;  // completion
    }
    rlhf_batch b = {.B = B, .T = T, .tokens = tok, .targets = tgt, .mask = mask};
    int N = B * T, V = c.vocab_size;
    float *lq = xmalloc((size_t)N * V * sizeof(float)), *lp = xmalloc((size_t)N * V * sizeof(float));
    float *d = xmalloc((size_t)N * V * sizeof(float)), *dh = xmalloc((size_t)N * c.n_embd * sizeof(float));
    CHECK(model_forward(ref, &b, &err) == 0);
    model_logits(ref, lq);
    prior_loss(pol, lq, &b, lp, d);
    model_zero_grad(pol);
    model_logits_backward(pol, d, dh);
    model_backward(pol, NULL, dh, NULL, NULL);
    int checked = 0, bad = 0;
    double worst = 0;
    for (int ti = 0; ti < pol->n_tensors; ti++) {
        const rlhf_tensor *t = &pol->tensors[ti];
        for (int k = 0; k < 4; k++) {
            size_t j = t->offset + (size_t)(rng_u64(&r) % t->numel);
            float save = pol->params[j], eps = 1e-2f * fmaxf(1.0f, fabsf(save));
            pol->params[j] = save + eps;
            double up = prior_loss(pol, lq, &b, lp, lp);
            pol->params[j] = save - eps;
            double down = prior_loss(pol, lq, &b, lp, lp);
            pol->params[j] = save;
            double fd = (up - down) / (2.0 * eps), an = pol->grads[j];
            double e = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
            worst = e > worst ? e : worst;
            if (e > 2e-2) {
                bad++;
                printf("  %s[%zu]: finite difference %.6g, backward %.6g\n", t->name,
                       j - t->offset, fd, an);
            }
            checked++;
        }
    }
    printf("  %d parameters checked, worst relative error %.2e\n", checked, worst);
    CHECK(bad == 0);
    free(lq), free(lp), free(d), free(dh);
    model_free(pol);
    model_free(ref);
    return 0;
}

static int test_prior_gradcheck_gpt2_tied(void) { return prior_gradcheck(ARCH_GPT2); }
static int test_prior_gradcheck_llama_untied(void) { return prior_gradcheck(ARCH_LLAMA); }

int main(void) {
    RUN(test_pick_best_ties);
    RUN(test_vocab_kl_finite_differences);
    RUN(test_prior_gradcheck_gpt2_tied);
    RUN(test_prior_gradcheck_llama_untied);
    TEST_EXIT();
}
