// FamO2O's pure pieces (src/ctrl/famo2o_loss.h) without torch: the sin-cos
// code against the authors' formula written out, its gradient against central
// differences, the balance and temperature losses and their gradients; and
// the agent's balance choice stays inside the beta range and follows the
// balance model (betas and act agree with family_act at those betas).
#include <math.h>

#include "base/base.h"
#include "ctrl/agent.h"
#include "ctrl/famo2o_loss.h"
#include "test.h"

extern const ctrl_algo ctrl_algo_famo2o;

static int test_encoding(void) {
    enum { B = 5, D = CTRL_FAMO2O_ENC_DIM };
    const float beta[B] = {0.0f, 1.0f, 3.3f, 8.0f, 14.0f};
    float enc[B * D];
    ctrl_famo2o_encode(enc, beta, B, D, CTRL_FAMO2O_ENC_BASE);
    // family_utils.py: k = beta / n^(2i/d); sin at even columns, cos at odd
    const double div[3] = {1.0, pow(10000.0, 1.0 / 3.0), pow(10000.0, 2.0 / 3.0)};
    for (int b = 0; b < B; b++)
        for (int i = 0; i < 3; i++) {
            CHECK_CLOSE(enc[b * D + 2 * i], sin(beta[b] / div[i]), 1e-6, 0);
            CHECK_CLOSE(enc[b * D + 2 * i + 1], cos(beta[b] / div[i]), 1e-6, 0);
        }
    // gradient: L = sum_j c_j enc_j, c fixed; central differences in double
    float c[B * D], dbeta[B] = {0};
    for (int j = 0; j < B * D; j++) c[j] = (float)sin(1.7 * j + 0.3);
    ctrl_famo2o_encode_backward(dbeta, c, beta, B, D, CTRL_FAMO2O_ENC_BASE);
    for (int b = 0; b < B; b++) {
        double h = 1e-4, fd = 0;
        for (int i = 0; i < 3; i++) {
            double kp = (beta[b] + h) / div[i], km = (beta[b] - h) / div[i];
            fd += (c[b * D + 2 * i] * (sin(kp) - sin(km)) +
                   c[b * D + 2 * i + 1] * (cos(kp) - cos(km))) /
                  (2 * h);
        }
        CHECK_CLOSE(dbeta[b], fd, 1e-5, 1e-4);
    }
    // accumulates
    ctrl_famo2o_encode_backward(dbeta, c, beta, B, D, CTRL_FAMO2O_ENC_BASE);
    float once[B] = {0};
    ctrl_famo2o_encode_backward(once, c, beta, B, D, CTRL_FAMO2O_ENC_BASE);
    for (int b = 0; b < B; b++) CHECK_CLOSE(dbeta[b], 2 * once[b], 1e-6, 1e-6);
    return 0;
}

static int test_losses(void) {
    const float logp[3] = {-0.5f, 0.25f, 1.0f}, q[3] = {2.0f, -1.0f, 0.5f};
    float dlogp[3] = {0}, dq[3] = {0};
    double loss = ctrl_famo2o_balance_loss(dlogp, dq, logp, q, 3, 0.4);
    CHECK_CLOSE(loss, ((0.4 * -0.5 - 2.0) + (0.4 * 0.25 + 1.0) + (0.4 * 1.0 - 0.5)) / 3, 1e-7, 0);
    for (int b = 0; b < 3; b++) {
        CHECK_CLOSE(dlogp[b], 0.4 / 3, 1e-7, 0);
        CHECK_CLOSE(dq[b], -1.0 / 3, 1e-7, 0);
    }
    float g = 0.5f; // accumulates onto 0.5
    double la = ctrl_famo2o_alpha_loss(&g, logf(0.3f), 0.2, -0.5);
    CHECK_CLOSE(la, 0.3 * 0.7, 1e-6, 0);
    CHECK_CLOSE(g, 0.5 + 0.3 * 0.7, 1e-6, 0); // d(e^l (H - H*)) / dl = e^l (H - H*)
    return 0;
}

static int test_agent_choice(void) {
    enum { S = 4, A = 2, B = 16 };
    const float low[A] = {-1, -3}, high[A] = {1, 2};
    ctrl_algo_config c;
    ctrl_algo_famo2o.defaults(&c);
    c.hidden = 32;
    c.famo2o_beta_min = 8.0f; // the authors' antmaze range
    c.famo2o_beta_max = 14.0f;
    rlhf_rng rng;
    rng_seed(&rng, 7);
    void *agent;
    rlhf_err err;
    CHECK(ctrl_algo_famo2o.create(&c, S, A, low, high, &rng, &agent, &err) == 0);
    float obs[B * S], beta[B], a1[B * A], a2[B * A];
    for (int i = 0; i < B * S; i++) obs[i] = 3 * rng_normal(&rng);
    ctrl_famo2o_betas(agent, obs, B, beta);
    double spread = 0;
    for (int b = 0; b < B; b++) {
        CHECK(beta[b] >= 8.0f && beta[b] <= 14.0f);
        spread = fmax(spread, fabs(beta[b] - beta[0]));
    }
    CHECK(spread > 0); // per state, not one global beta
    ctrl_algo_famo2o.act(agent, obs, B, 1, &rng, a1);
    ctrl_famo2o_family_act(agent, obs, beta, B, a2);
    for (int i = 0; i < B * A; i++) CHECK(a1[i] == a2[i]);
    // another member of the family acts differently
    for (int b = 0; b < B; b++) beta[b] = beta[b] > 11 ? 8.0f : 14.0f;
    ctrl_famo2o_family_act(agent, obs, beta, B, a2);
    int differ = 0;
    for (int i = 0; i < B * A; i++) differ += a1[i] != a2[i];
    CHECK(differ > 0);
    // exploration stays in the bounds
    ctrl_algo_famo2o.act(agent, obs, B, 0, &rng, a2);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < A; i++) CHECK(a2[b * A + i] >= low[i] && a2[b * A + i] <= high[i]);
    ctrl_algo_famo2o.free(agent);
    // refusals
    c.sac_alpha = 0;
    CHECK(ctrl_algo_famo2o.create(&c, S, A, low, high, &rng, &agent, &err) == -1);
    CHECK(strstr(err.msg, "sac_alpha") != NULL);
    return 0;
}

int main(void) {
    RUN(test_encoding);
    RUN(test_losses);
    RUN(test_agent_choice);
    TEST_EXIT();
}
