// BRAIn's weights, loss and gradient (algo/brain): the weights are
// self-normalised, the gradient equals central finite differences of the loss,
// the no-baseline ablation is the α-weighted log-likelihood, and n = 2 with a
// vanishing temperature (argmax) and samples of the reference is DPO's sigmoid
// loss on SFT samples. tests/brain_test.py compares against numpy/torch.
#include "algo/brain.h"

#include <stdint.h>

#include "test.h"

static uint64_t rng_state = 88172645463325252ull;
static double unif(void) {  // xorshift64*, in (0, 1)
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0) + 1e-17;
}
static double gauss(void) { return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif()); }

enum { G = 3, N = 5, GN = G * N };

typedef struct {
    double logq[GN], prop[GN], prior[GN], logg[GN];
    float rewards[GN];
} inputs;

static void random_inputs(inputs *in) {
    for (int i = 0; i < GN; i++) {
        in->prop[i] = -10 + 3 * gauss();
        in->logq[i] = in->prop[i] + 0.5 * gauss();
        in->prior[i] = in->prop[i] + gauss();
        in->rewards[i] = (float)gauss();
    }
    brain_log_goodness(BRAIN_GOODNESS_SIGMOID, 0.5, 1, 0, G, N, in->rewards, in->logg);
}

static int test_weights_self_normalised(void) {
    inputs in;
    random_inputs(&in);
    double al[GN], ap[GN], d[GN];
    for (int base = 0; base <= 1; base++) {
        brain_loss(G, N, in.logq, in.prop, in.prior, in.logg, base, al, ap, d);
        for (int g = 0; g < G; g++) {
            double sa = 0, sp = 0, sd = 0;
            for (int i = 0; i < N; i++) {
                CHECK(al[g * N + i] >= 0 && ap[g * N + i] >= 0);
                sa += al[g * N + i], sp += ap[g * N + i], sd += d[g * N + i];
            }
            CHECK_CLOSE(sa, 1, 1e-12, 0);
            CHECK_CLOSE(sp, 1, 1e-12, 0);
            // with the baseline the gradient sums to 0 in each group (Σα = Σα' = 1):
            // shifting every log q_θ of a prompt by a constant changes nothing
            if (base) CHECK_CLOSE(sd, 0, 1e-12, 0);
            else CHECK_CLOSE(sd, -1.0 / G, 1e-12, 0);
        }
    }
    // huge log-weights do not overflow
    for (int i = 0; i < GN; i++) in.prior[i] += 1e4 * (i % 3);
    brain_loss(G, N, in.logq, in.prop, in.prior, in.logg, 1, al, ap, d);
    for (int i = 0; i < GN; i++) CHECK(isfinite(al[i]) && isfinite(d[i]));
    return 0;
}

static int test_gradient_finite_differences(void) {
    inputs in;
    random_inputs(&in);
    double al[GN], ap[GN], d[GN], d2[GN];
    for (int base = 0; base <= 1; base++) {
        brain_loss(G, N, in.logq, in.prop, in.prior, in.logg, base, al, ap, d);
        for (int i = 0; i < GN; i++) {
            double h = 1e-5, keep = in.logq[i];
            in.logq[i] = keep + h;
            double lp = brain_loss(G, N, in.logq, in.prop, in.prior, in.logg, base, al, ap, d2);
            in.logq[i] = keep - h;
            double lm = brain_loss(G, N, in.logq, in.prop, in.prior, in.logg, base, al, ap, d2);
            in.logq[i] = keep;
            CHECK_CLOSE(d[i], (lp - lm) / (2 * h), 1e-8, 1e-6);
        }
    }
    return 0;
}

// α does not depend on θ; at θ = proposal α' is uniform, so the BRAIn gradient
// is −(α_i − 1/n): the importance weights centred on their mean
static int test_on_policy_baseline_is_uniform(void) {
    inputs in;
    random_inputs(&in);
    double al[GN], ap[GN], d[GN];
    brain_loss(G, N, in.prop, in.prop, in.prior, in.logg, 1, al, ap, d);
    for (int i = 0; i < GN; i++) {
        CHECK_CLOSE(ap[i], 1.0 / N, 1e-15, 0);
        CHECK_CLOSE(d[i], -(al[i] - 1.0 / N) / G, 1e-15, 0);
    }
    return 0;
}

// n = 2, the proposal = the reference (SFT samples), a vanishing temperature:
// α is the one-hot of the better sample and the loss is −log σ(h), h the DPO
// margin (log q_θ − log p_SFT)(y_w) − (log q_θ − log p_SFT)(y_l), its gradient
// DPO's: −(1 − σ(h)) on y_w, +(1 − σ(h)) on y_l
static int test_dpo_limit(void) {
    for (int trial = 0; trial < 20; trial++) {
        double ref[2], logq[2], logg[2], al[2], ap[2], d[2];
        float r[2] = {(float)gauss(), (float)gauss()};
        for (int i = 0; i < 2; i++) ref[i] = -5 + 2 * gauss(), logq[i] = ref[i] + gauss();
        for (int kind = 0; kind <= 1; kind++) {
            brain_log_goodness((brain_goodness)kind, 1e-6, 1, 0, 1, 2, r, logg);
            double loss = brain_loss(1, 2, logq, ref, ref, logg, 1, al, ap, d);
            int w = r[0] > r[1] ? 0 : 1, l = 1 - w;
            double h = (logq[w] - ref[w]) - (logq[l] - ref[l]);
            double sig = 1 / (1 + exp(-h));
            CHECK_CLOSE(al[w], 1, 1e-12, 0);
            CHECK_CLOSE(loss, log1p(exp(-h)), 1e-9, 1e-9);
            CHECK_CLOSE(d[w], -(1 - sig), 1e-9, 1e-9);
            CHECK_CLOSE(d[l], 1 - sig, 1e-9, 1e-9);
        }
    }
    return 0;
}

static int test_goodness(void) {
    float r[4] = {0, 1, 2, 5};
    double lg[4];
    brain_log_goodness(BRAIN_GOODNESS_SIGMOID, 2, 1, 0, 1, 4, r, lg);  // mean 2
    for (int i = 0; i < 4; i++) CHECK_CLOSE(lg[i], -log1p(exp(-(r[i] - 2) / 2.0)), 1e-14, 1e-14);
    brain_log_goodness(BRAIN_GOODNESS_SIGMOID, 1, 0, 1, 1, 4, r, lg);  // constant 1
    CHECK_CLOSE(lg[1], log(0.5), 1e-15, 0);
    float big[2] = {-1e30f, 1e30f};
    brain_log_goodness(BRAIN_GOODNESS_SIGMOID, 1, 0, 0, 1, 2, big, lg);
    CHECK(lg[0] == -1e30f && lg[1] == 0);
    brain_log_goodness(BRAIN_GOODNESS_EXP, 0.25, 1, 0, 1, 4, r, lg);
    CHECK(lg[3] == 20);
    brain_goodness k;
    CHECK(brain_goodness_from_name("exp", &k) == 0 && k == BRAIN_GOODNESS_EXP);
    CHECK(brain_goodness_from_name("bt", &k) == -1);
    double a[3] = {0.5, 0.5, 0};
    CHECK_CLOSE(brain_ess(3, a), 2, 1e-15, 0);
    return 0;
}

int main(void) {
    RUN(test_weights_self_normalised);
    RUN(test_gradient_finite_differences);
    RUN(test_on_policy_baseline_is_uniform);
    RUN(test_dpo_limit);
    RUN(test_goodness);
    TEST_EXIT();
}
