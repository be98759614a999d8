// Unit tests of algo/rl against values worked out by hand (the numbers in the
// comments). tests/rl_loss_test.py compares the same functions with an
// independent numpy/PyTorch reference on random arrays.
#include "algo/rl.h"
#include "test.h"

#define TOL 1e-5

static rl_adv_input adv_in(int B, int T, const float *r, const float *v, const float *m,
                           const float *base) {
    return (rl_adv_input){.B = B, .T = T, .token_rewards = r, .values = v, .mask = m,
                          .baselines = base};
}

// r = [0, 0, 1], V = [.5, .6, .7], gamma .9, lambda .5:
//   d2 = 1 - .7 = .3                 A2 = .3
//   d1 = .9*.7 - .6 = .03            A1 = .03 + .45*.3 = .165
//   d0 = .9*.6 - .5 = .04            A0 = .04 + .45*.165 = .11425
//   returns A + V = .61425, .765, 1.0
static int test_gae_by_hand(void) {
    rl_adv_config c;
    rl_adv_config_default(&c);
    c.gamma = 0.9f, c.lambda = 0.5f, c.whiten = 0;
    // a prompt token first and padding last (their junk rewards/values are ignored),
    // and a second row with a masked gap in the middle (skipped, as verl does)
    float r[2 * 5] = {9, 0, 0, 1, 9, /**/ 0, 0, 7, 1, 9};
    float v[2 * 5] = {9, .5f, .6f, .7f, 9, /**/ .5f, .6f, 9, .7f, 9};
    float m[2 * 5] = {0, 1, 1, 1, 0, /**/ 1, 1, 0, 1, 0};
    float adv[10], ret[10];
    rl_adv_input in = adv_in(2, 5, r, v, m, NULL);
    CHECK(rl_adv_gae(&c, &in, adv, ret, NULL) == 0);
    const float A[3] = {.11425f, .165f, .3f}, R[3] = {.61425f, .765f, 1.0f};
    const int pos[2][3] = {{1, 2, 3}, {0, 1, 3}};
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 3; j++) {
            CHECK_CLOSE(adv[b * 5 + pos[b][j]], A[j], TOL, 0);
            CHECK_CLOSE(ret[b * 5 + pos[b][j]], R[j], TOL, 0);
        }
    CHECK(adv[0] == 0 && adv[4] == 0 && adv[7] == 0 && ret[7] == 0);
    // whitened: mean 0 and unbiased variance 1 over the 6 counted tokens
    c.whiten = 1;
    CHECK(rl_adv_gae(&c, &in, adv, ret, NULL) == 0);
    CHECK_CLOSE(rl_masked_mean(10, adv, m), 0, TOL, 0);
    CHECK_CLOSE(rl_masked_var(10, adv, m, 1), 1, 1e-4, 0);
    CHECK_CLOSE(ret[3], 1.0, TOL, 0); // returns are not whitened
    return 0;
}

// Macro actions of 2 tokens, r = [0,0,0,1], V = [.1,.2,.3,.4], gamma = lambda = 1:
//   macro 0: R = 0, V = .15; macro 1: R = 1, V = .35
//   A1 = 1 - .35 = .65; A0 = 0 + .35 - .15 + .65 = .85; returns 1.0 and 1.0
static int test_macro_by_hand(void) {
    rl_adv_config c;
    rl_adv_config_default(&c);
    c.gamma = 1, c.lambda = 1, c.whiten = 0, c.macro_n = 2;
    float r[4] = {0, 0, 0, 1}, v[4] = {.1f, .2f, .3f, .4f}, m[4] = {1, 1, 1, 1}, adv[4], ret[4];
    rl_adv_input in = adv_in(1, 4, r, v, m, NULL);
    CHECK(rl_adv_gae(&c, &in, adv, ret, NULL) == 0);
    const float A[4] = {.85f, .85f, .65f, .65f};
    for (int t = 0; t < 4; t++) {
        CHECK_CLOSE(adv[t], A[t], TOL, 0);
        CHECK_CLOSE(ret[t], 1.0, TOL, 0);
    }
    // first-token values: V = .1, .3 -> A1 = .7, A0 = .3 - .1 + .7 = .9
    c.macro_value = RL_MACRO_VALUE_FIRST;
    CHECK(rl_adv_gae(&c, &in, adv, ret, NULL) == 0);
    CHECK_CLOSE(adv[0], .9, TOL, 0);
    CHECK_CLOSE(adv[3], .7, TOL, 0);
    // 3-grams of 4 tokens: the last macro action is the single token 3
    c.macro_n = 3, c.macro_value = RL_MACRO_VALUE_MEAN;
    CHECK(rl_adv_gae(&c, &in, adv, ret, NULL) == 0);
    CHECK_CLOSE(adv[3], 1 - .4, TOL, 0);
    CHECK_CLOSE(adv[0], 0 + .4 - .2 + .6, TOL, 0);
    int n = 0;
    CHECK(rl_macro_parse("ngram:5", &n, NULL) == 0 && n == 5);
    CHECK(rl_macro_parse("none", &n, NULL) == 0 && n == 1);
    rlhf_err e;
    CHECK(rl_macro_parse("ngram:0", &n, &e) == -1 && strstr(e.msg, "ngram:N"));
    CHECK(rl_macro_parse("parse", &n, NULL) == -1);
    return 0;
}

// n = 1 macro actions are plain GAE, bit for bit, on ragged random rows
static int test_macro_n1_is_gae(void) {
    enum { B = 4, T = 9 };
    rlhf_rng g;
    rng_seed(&g, 7);
    float r[B * T], v[B * T], m[B * T], a1[B * T], r1[B * T], a2[B * T], r2[B * T];
    for (int i = 0; i < B * T; i++) {
        r[i] = rng_normal(&g), v[i] = rng_normal(&g);
        m[i] = rng_uniform(&g) < 0.7f;
    }
    for (int t = 0; t < T; t++) m[2 * T + t] = 0; // an all-masked row
    rl_adv_config c;
    rl_adv_config_default(&c);
    c.gamma = 0.97f, c.lambda = 0.9f;
    rl_adv_input in = adv_in(B, T, r, v, m, NULL);
    for (int w = 0; w < 2; w++) {
        c.whiten = w, c.macro_n = 1;
        CHECK(rl_adv_gae(&c, &in, a1, r1, NULL) == 0);
        CHECK(rl_adv_gae_macro(&c, &in, a2, r2, NULL) == 0);
        CHECK(memcmp(a1, a2, sizeof a1) == 0);
        CHECK(memcmp(r1, r2, sizeof r1) == 0);
    }
    return 0;
}

// GRPO on a group [1, 0, 0, 1]: mean .5, unbiased std sqrt(1/3) = .57735,
// A = +-.5 / .57735 = +-.866025. Dr. GRPO (scale none): +-.5. Equal rewards: 0.
static int test_grpo_by_hand(void) {
    enum { B = 6, T = 2 };
    float s[B] = {1, 0, 0, 1, 2, 2}, r[B * T] = {0}, m[B * T], adv[B * T], ret[B * T];
    for (int i = 0; i < B * T; i++) m[i] = 1;
    m[2 * T + 1] = 0; // ragged: row 2 has one counted token
    rl_add_outcome_rewards(B, T, s, m, r);
    CHECK(r[1] == 1 && r[0] == 0 && r[5] == 0 && r[4] == 0);
    rl_adv_config c;
    rl_adv_config_default(&c);
    c.group_size = 2; // groups [1,0], [0,1], [2,2]: std .7071, A = +-.5/.7071
    rl_adv_input in = adv_in(B, T, r, NULL, m, NULL);
    CHECK(rl_adv_grpo(&c, &in, adv, ret, NULL) == 0);
    CHECK_CLOSE(adv[0], .5 / (sqrt(.5) + 1e-6), TOL, 0);
    CHECK_CLOSE(adv[10], 0, 0, 0);
    c.group_size = 4;
    rlhf_err e;
    CHECK(rl_adv_grpo(&c, &in, adv, ret, &e) == -1 && strstr(e.msg, "groups of 4"));
    float s4[4] = {1, 0, 0, 1}, r4[4 * T] = {0}, m4[4 * T], a4[4 * T];
    for (int i = 0; i < 4 * T; i++) m4[i] = 1;
    rl_add_outcome_rewards(4, T, s4, m4, r4);
    in = adv_in(4, T, r4, NULL, m4, NULL);
    c.group_size = 4;
    CHECK(rl_adv_grpo(&c, &in, a4, NULL, NULL) == 0);
    const double want = .5 / (sqrt(1.0 / 3) + 1e-6);
    CHECK_CLOSE(a4[0], want, TOL, 0);
    CHECK_CLOSE(a4[1], want, TOL, 0);
    CHECK_CLOSE(a4[2], -want, TOL, 0);
    CHECK_CLOSE(a4[7], want, TOL, 0);
    c.scale = RL_SCALE_NONE;
    CHECK(rl_adv_grpo(&c, &in, a4, NULL, NULL) == 0);
    CHECK_CLOSE(a4[0], .5, TOL, 0);
    CHECK_CLOSE(a4[2], -.5, TOL, 0);
    // a group of one: mean 0, std 1 (verl)
    c.scale = RL_SCALE_GROUP, c.group_size = 1;
    CHECK(rl_adv_grpo(&c, &in, a4, NULL, NULL) == 0);
    CHECK_CLOSE(a4[0], 1 / (1 + 1e-6), TOL, 0);
    // batch scale: group means, the batch std (here the same .57735)
    c.scale = RL_SCALE_BATCH, c.group_size = 2; // groups [1,0], [0,1]
    CHECK(rl_adv_grpo(&c, &in, a4, NULL, NULL) == 0);
    CHECK_CLOSE(a4[0], want, TOL, 0);
    rl_scale sc;
    CHECK(rl_scale_from_name("none", &sc, NULL) == 0 && sc == RL_SCALE_NONE);
    CHECK(rl_scale_from_name("some", &sc, NULL) == -1);
    return 0;
}

// RLOO on [1, 2, 3]: 1 - 2.5 = -1.5, 2 - 2 = 0, 3 - 1.5 = 1.5
static int test_rloo_by_hand(void) {
    float s[3] = {1, 2, 3}, r[3] = {0}, m[3] = {1, 1, 1}, adv[3];
    rl_add_outcome_rewards(3, 1, s, m, r);
    rl_adv_config c;
    rl_adv_config_default(&c);
    c.group_size = 3;
    rl_adv_input in = adv_in(3, 1, r, NULL, m, NULL);
    CHECK(rl_adv_compute("rloo", &c, &in, adv, NULL, NULL) == 0);
    CHECK_CLOSE(adv[0], -1.5, TOL, 0);
    CHECK_CLOSE(adv[1], 0, TOL, 0);
    CHECK_CLOSE(adv[2], 1.5, TOL, 0);
    return 0;
}

// ReMax: score .9 on the last token, greedy baseline .4 -> .5 on every counted token;
// REINFORCE++ with gamma 1 and outcome rewards [1, 0] on rows of 2 and 1 tokens:
// returns [1, 1 | 0], whitened over the 3 tokens: mean 2/3, var 1/3 -> [.57735, .57735, -1.1547]
static int test_remax_reinforce_pp(void) {
    float r[4] = {0, .9f, 0, 0}, m[4] = {1, 1, 1, 0}, base[2] = {.4f, 0}, adv[4], ret[4];
    rl_adv_config c;
    rl_adv_config_default(&c);
    rl_adv_input in = adv_in(2, 2, r, NULL, m, base);
    CHECK(rl_adv_compute("remax", &c, &in, adv, ret, NULL) == 0);
    CHECK_CLOSE(adv[0], .5, TOL, 0);
    CHECK_CLOSE(adv[1], .5, TOL, 0);
    CHECK_CLOSE(ret[0], .9, TOL, 0);
    CHECK(adv[3] == 0);
    rlhf_err e;
    in.baselines = NULL;
    CHECK(rl_adv_remax(&c, &in, adv, ret, &e) == -1 && strstr(e.msg, "baselines"));
    float r2[4] = {0, 1, 0, 0};
    in = adv_in(2, 2, r2, NULL, m, NULL);
    CHECK(rl_adv_compute("reinforce_plus_plus", &c, &in, adv, ret, NULL) == 0);
    CHECK_CLOSE(adv[0], 1 / sqrt(3.0), 1e-4, 0);
    CHECK_CLOSE(adv[1], 1 / sqrt(3.0), 1e-4, 0);
    CHECK_CLOSE(adv[2], -2 / sqrt(3.0), 1e-4, 0);
    CHECK_CLOSE(ret[0], 1, TOL, 0);
    CHECK(adv[3] == 0);
    CHECK(rl_adv_compute("ppo", &c, &in, adv, ret, &e) == -1 && strstr(e.msg, "grpo, rloo"));
    CHECK(rl_adv_needs(rl_adv_find("gae"), RL_NEED_VALUES));
    return 0;
}

static float one_token_loss(const rl_policy_config *c, float ratio, float A, float *grad,
                            rl_policy_stats *st) {
    float old = -1.0f, logp = old + logf(ratio), m = 1;
    *grad = 0;
    CHECK(rl_policy_loss(c, 1, 1, &logp, &old, &A, &m, grad, st, NULL) == 0);
    return st->loss;
}

// PPO clip, eps .2, one token (loss = max(-A rho, -A clip(rho))):
//   A=+1 rho 1.1: -1.1, grad -1.1     A=+1 rho 1.5: -1.2, grad 0 (clipped)
//   A=+1 rho .5:  -.5, grad -.5        A=-1 rho .5:  .8, grad 0 (clipped)
//   A=-1 rho 1.5: 1.5, grad 1.5        dual clip c=3, A=-1: rho 4 -> 3 (grad 0), rho 2 -> 2
//   DAPO eps_high .28, A=+1 rho 1.25: -1.25, grad -1.25 (clipped at .2)
static int test_ppo_clip_by_hand(void) {
    rl_policy_config c;
    rl_policy_config_default(&c);
    rl_policy_stats st;
    float g;
    const struct {
        float ratio, A, loss, grad, clipped;
    } cases[] = {
        {1.1f, 1, -1.1f, -1.1f, 0}, {1.5f, 1, -1.2f, 0, 1}, {.5f, 1, -.5f, -.5f, 0},
        {.5f, -1, .8f, 0, 1},       {1.5f, -1, 1.5f, 1.5f, 0}, {1.25f, 1, -1.2f, 0, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        float l = one_token_loss(&c, cases[k].ratio, cases[k].A, &g, &st);
        CHECK_CLOSE(l, cases[k].loss, TOL, 0);
        CHECK_CLOSE(g, cases[k].grad, TOL, 0);
        CHECK(st.clip_frac == cases[k].clipped);
        CHECK_CLOSE(st.ratio_mean, cases[k].ratio, TOL, 0);
    }
    c.clip_high = 0.28f;
    CHECK_CLOSE(one_token_loss(&c, 1.25f, 1, &g, &st), -1.25, TOL, 0);
    CHECK_CLOSE(g, -1.25, TOL, 0);
    c.clip_high = 0.2f, c.clip_c = 3;
    CHECK_CLOSE(one_token_loss(&c, 4, -1, &g, &st), 3, TOL, 0);
    CHECK(g == 0 && st.clip_frac_lower == 1);
    CHECK_CLOSE(one_token_loss(&c, 2, -1, &g, &st), 2, TOL, 0);
    CHECK_CLOSE(g, 2, TOL, 0);
    CHECK(st.clip_frac_lower == 0);
    CHECK_CLOSE(one_token_loss(&c, 4, 1, &g, &st), -1.2, TOL, 0); // dual clip: A < 0 only
    // approx KL at rho = 2: k1 = -log 2, k3 = (2 - 1) - log 2
    CHECK_CLOSE(st.kl_k1, -log(4.0), TOL, 0);
    one_token_loss(&c, 2, 1, &g, &st);
    CHECK_CLOSE(st.kl_k3, 1 - log(2.0), TOL, 0);
    rlhf_err e;
    c.clip_c = 0.5f;
    float lp = 0, A = 1, m = 1;
    CHECK(rl_policy_loss(&c, 1, 1, &lp, &lp, &A, &m, NULL, &st, &e) == -1 && strstr(e.msg, "> 1"));
    return 0;
}

// GSPO: one sequence with token log-ratios .05 and .15 -> s = exp(.1) = 1.10517 for both
// tokens; A = 1, seq-mean-token-mean: loss = -s, d/dlogp_t = -s/2 each.
// Under token-mean over two such sequences the same numbers hold (constant A per row).
static int test_gspo_by_hand(void) {
    rl_policy_config c;
    rl_policy_config_default(&c);
    c.seq_ratio = 1, c.agg = RL_AGG_SEQ_MEAN_TOKEN_MEAN;
    float old[3] = {-1, -2, -3}, lp[3] = {-0.95f, -1.85f, 0}, A[3] = {1, 1, 1}, m[3] = {1, 1, 0};
    float g[3] = {0};
    rl_policy_stats st;
    CHECK(rl_policy_loss(&c, 1, 3, lp, old, A, m, g, &st, NULL) == 0);
    double s = exp(0.1);
    CHECK_CLOSE(st.loss, -s, 1e-5, 0);
    CHECK_CLOSE(g[0], -s / 2, 1e-5, 0);
    CHECK_CLOSE(g[1], -s / 2, 1e-5, 0);
    CHECK(g[2] == 0);
    CHECK_CLOSE(st.ratio_min, s, 1e-5, 0);
    return 0;
}

// l = [[1, 2, x], [4, x, x], [x, x, x]] with masks [[1,1,0],[1,0,0],[0,0,0]]:
//   token-mean 7/3; seq-mean-token-mean (1.5 + 4)/2 = 2.75; seq-mean-token-sum 3.5;
//   seq-mean-token-sum-norm 7/(2*3); the empty third row does not count
static int test_aggregation_by_hand(void) {
    float l[9] = {1, 2, 99, 4, 99, 99, 99, 99, 99}, m[9] = {1, 1, 0, 1, 0, 0, 0, 0, 0};
    const double want[4] = {7.0 / 3, 2.75, 3.5, 7.0 / 6};
    const rl_agg modes[4] = {RL_AGG_TOKEN_MEAN, RL_AGG_SEQ_MEAN_TOKEN_MEAN,
                             RL_AGG_SEQ_MEAN_TOKEN_SUM, RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM};
    for (int k = 0; k < 4; k++) {
        float dx[9] = {0};
        CHECK_CLOSE(rl_agg_loss(modes[k], 3, 3, l, m, 0, dx), want[k], TOL, 0);
        CHECK(dx[2] == 0 && dx[6] == 0);
        rl_agg back;
        CHECK(rl_agg_from_name(rl_agg_name(modes[k]), &back, NULL) == 0 && back == modes[k]);
    }
    float dx[9] = {0};
    rl_agg_loss(RL_AGG_SEQ_MEAN_TOKEN_MEAN, 3, 3, l, m, 0, dx);
    CHECK_CLOSE(dx[0], .25, TOL, 0);
    CHECK_CLOSE(dx[3], .5, TOL, 0);
    CHECK_CLOSE(rl_agg_loss(RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM, 3, 3, l, m, 7, NULL), .5, TOL, 0);
    rl_agg a;
    CHECK(rl_agg_from_name("dr_grpo", &a, NULL) == 0 && a == RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM);
    CHECK(rl_agg_from_name("bnpo", &a, NULL) == 0 && a == RL_AGG_TOKEN_MEAN);
    rlhf_err e;
    CHECK(rl_agg_from_name("sum", &a, &e) == -1 && strstr(e.msg, "token-mean"));
    float z[2] = {0, 0};
    CHECK(rl_agg_loss(RL_AGG_TOKEN_MEAN, 1, 2, l, z, 0, NULL) == 0); // nothing counted
    return 0;
}

// KL at logp = -1, ref = -1.5 (d = .5): k1 .5 (grad 1); k2 .125 (grad .5);
// k3 exp(-.5) + .5 - 1 = .1065307 (grad 1 - exp(-.5) = .3934693); abs .5 (grad 1)
static int test_kl_by_hand(void) {
    float lp = -1, ref = -1.5f, v, d;
    const double want[4][2] = {{.5, 1}, {.125, .5}, {exp(-.5) - .5, 1 - exp(-.5)}, {.5, 1}};
    for (int k = 0; k < 4; k++) {
        rl_kl_token((rl_kl_kind)k, 1, &lp, &ref, &v, &d);
        CHECK_CLOSE(v, want[k][0], TOL, 0);
        CHECK_CLOSE(d, want[k][1], TOL, 0);
        rl_kl_kind back;
        CHECK(rl_kl_from_name(rl_kl_name((rl_kl_kind)k), &back, NULL) == 0 && (int)back == k);
    }
    rl_kl_kind kk;
    CHECK(rl_kl_from_name("low_var_kl", &kk, NULL) == 0 && kk == RL_KL_K3);
    // k3's clamp: a huge gap saturates at 10 with zero gradient
    float lp2 = -30, ref2 = 0;
    rl_kl_token(RL_KL_K3, 1, &lp2, &ref2, &v, &d);
    CHECK(v == 10 && d == 0);
    // in the reward: r -= .1 * k1 on counted tokens; returns the mean of row means
    float lps[4] = {-1, -2, -1, 0}, refs[4] = {-1.5f, -1, -2, 0}, m[4] = {1, 1, 1, 0};
    float r[4] = {0, 0, 1, 0};
    float kl = rl_kl_in_reward(RL_KL_K1, 2, 2, 0.1f, lps, refs, m, r);
    CHECK_CLOSE(r[0], -.05, TOL, 0);
    CHECK_CLOSE(r[1], .1, TOL, 0);
    CHECK_CLOSE(r[2], .9, TOL, 0);
    CHECK(r[3] == 0);
    CHECK_CLOSE(kl, ((.5 - 1) / 2 + 1) / 2, TOL, 0); // rows: (.5 - 1)/2, 1
    // in the loss: coef * token-mean of k2 = .2 * (.125 + .5 + .5) / 3
    float g[4] = {0}, mean;
    float loss = rl_kl_loss(RL_KL_K2, RL_AGG_TOKEN_MEAN, 0, 0.2f, 2, 2, lps, refs, m, g, &mean);
    CHECK_CLOSE(loss, .2 * 1.125 / 3, TOL, 0);
    CHECK_CLOSE(mean, 1.125 / 3, TOL, 0);
    CHECK_CLOSE(g[1], .2 * -1 / 3, TOL, 0);
    return 0;
}

// Adaptive controller, target 6, horizon 10000, value .1: KL 12 -> error clipped to .2,
// 100 samples -> .1 * (1 + .2 * 100/10000) = .1002; KL 5.4 -> error -.1 -> * (1 - .001)
static int test_kl_controller(void) {
    rl_kl_ctl k;
    rl_kl_ctl_adaptive(&k, 0.1f, 6, 10000);
    rl_kl_ctl_update(&k, 12, 100);
    CHECK_CLOSE(k.value, .1002, 1e-7, 0);
    rl_kl_ctl_update(&k, 5.4f, 100);
    CHECK_CLOSE(k.value, .1002 * .999, 1e-7, 0);
    rl_kl_ctl_fixed(&k, 0.05f);
    rl_kl_ctl_update(&k, 100, 100);
    CHECK(k.value == 0.05f);
    return 0;
}

// Value loss, clip .2: v 1.5, v_old 1, R 2: v_clip 1.2, max(.25, .64) -> .32, grad 0 (clipped);
// v .5, v_old 1, R 2: v_clip .8, max(2.25, 1.44) -> 1.125, grad -1.5. Token-mean of both.
static int test_value_loss_by_hand(void) {
    float v[2] = {1.5f, .5f}, vo[2] = {1, 1}, R[2] = {2, 2}, m[2] = {1, 1}, dv[2] = {0};
    rl_value_stats st;
    rl_value_loss(1, 2, 0.2f, RL_AGG_TOKEN_MEAN, 0, v, vo, R, m, dv, &st);
    CHECK_CLOSE(st.loss, (.32 + 1.125) / 2, TOL, 0);
    CHECK_CLOSE(dv[0], 0, TOL, 0);
    CHECK_CLOSE(dv[1], -1.5 / 2, TOL, 0);
    CHECK_CLOSE(st.clip_frac, .5, TOL, 0);
    rl_value_loss(1, 2, 0, RL_AGG_TOKEN_MEAN, 0, v, vo, R, m, NULL, &st); // no clipping
    CHECK_CLOSE(st.loss, (.125 + 1.125) / 2, TOL, 0);
    return 0;
}

// whiten [1, 2, 3, junk]: mean 2, unbiased var 1 -> [-1, 0, 1, 0];
// explained variance of V = [1, 2, 2] for R = [1, 2, 3]: 1 - Var[0,0,1]/Var[1,2,3] = 1 - (1/3)/1
static int test_stats_by_hand(void) {
    float x[4] = {1, 2, 3, 50}, m[4] = {1, 1, 1, 0}, w[4];
    rl_masked_whiten(4, x, m, 1, w);
    CHECK_CLOSE(w[0], -1, 1e-6, 0);
    CHECK_CLOSE(w[1], 0, 1e-6, 0);
    CHECK_CLOSE(w[2], 1, 1e-6, 0);
    CHECK(w[3] == 0);
    rl_masked_whiten(4, x, m, 0, w);
    CHECK_CLOSE(w[0], 1, 1e-6, 0);
    CHECK_CLOSE(rl_masked_var(4, x, m, 0), 2.0 / 3, TOL, 0);
    float v[4] = {1, 2, 2, 0};
    CHECK_CLOSE(rl_explained_variance(4, v, x, m), 1 - 1.0 / 3, TOL, 0);
    float same[4] = {5, 5, 5, 5};
    CHECK(isnan(rl_explained_variance(4, v, same, m)));
    return 0;
}

// PF-PPO on a group [.1, .9, .5, .9]: best = 1 (first max), worst = 0;
// reweight (power 2): 4 * s^2 / 1.88
static int test_filters_by_hand(void) {
    float s[8] = {.1f, .9f, .5f, .9f, 3, 3, 3, 3}, w[8];
    CHECK(rl_filter_weights(RL_FILTER_BEST, 8, 4, s, 2, NULL, w, NULL) == 0);
    const float best[8] = {0, 1, 0, 0, 1, 0, 0, 0};
    CHECK(memcmp(w, best, sizeof w) == 0);
    CHECK(rl_filter_weights(RL_FILTER_BEST_WORST, 8, 4, s, 2, NULL, w, NULL) == 0);
    const float bw[8] = {1, 1, 0, 0, 1, 0, 0, 1}; // equal scores: first and last
    CHECK(memcmp(w, bw, sizeof w) == 0);
    CHECK(rl_filter_weights(RL_FILTER_REWEIGHT, 8, 4, s, 2, NULL, w, NULL) == 0);
    CHECK_CLOSE(w[0], 4 * .01 / 1.88, 1e-6, 0);
    CHECK_CLOSE(w[1], 4 * .81 / 1.88, 1e-6, 0);
    CHECK_CLOSE(w[5], 1, 1e-6, 0);
    rlhf_rng g;
    rng_seed(&g, 3);
    int seen[4] = {0};
    for (int k = 0; k < 200; k++) {
        CHECK(rl_filter_weights(RL_FILTER_BEST_RANDOM, 8, 4, s, 2, &g, w, NULL) == 0);
        CHECK(w[1] == 1 && w[0] + w[1] + w[2] + w[3] == 2);
        for (int j = 0; j < 4; j++) seen[j] += w[j] == 1;
    }
    CHECK(seen[0] > 30 && seen[2] > 30 && seen[3] > 30); // each other sample gets picked
    rlhf_err e;
    CHECK(rl_filter_weights(RL_FILTER_BEST_RANDOM, 8, 4, s, 2, NULL, w, &e) == -1);
    CHECK(rl_filter_weights(RL_FILTER_BEST, 8, 3, s, 2, NULL, w, &e) == -1);
    rl_filter f;
    CHECK(rl_filter_from_name("best_worst", &f, NULL) == 0 && f == RL_FILTER_BEST_WORST);
    CHECK(rl_filter_from_name("worst", &f, &e) == -1 && strstr(e.msg, "reweight"));
    // dropping a row masks it; keeping scales the advantages
    float mask[4] = {1, 1, 1, 1}, adv[4] = {1, 2, 3, 4}, ww[2] = {0, 2};
    rl_apply_seq_weights(2, 2, ww, mask, adv);
    CHECK(mask[0] == 0 && mask[1] == 0 && mask[2] == 1 && adv[2] == 6 && adv[3] == 8);
    return 0;
}

// PAR: r 1, refs [0, 1]: (sigmoid(1) + sigmoid(0)) / 2 = (.7310586 + .5) / 2;
// ensembles over [1, 2, 3]: mean 2, wco 1, uwo(.5) 2 - .5 * 2/3; DAPO overlong
// (max 100, cache 20): 80 -> 0, 90 -> -.5, 101 -> -1; missing EOS subtracts.
static int test_shaping_by_hand(void) {
    float refs[2] = {0, 1};
    CHECK_CLOSE(rl_par_reward(1, 2, refs, 1), (.7310586 + .5) / 2, 1e-6, 0);
    CHECK_CLOSE(rl_par_reward(1, 1, refs, 2), .8807971, 1e-6, 0);
    float sc[6] = {1, 2, 3, 0, 0, 0}, out[2];
    rl_ensemble_reduce(RL_ENSEMBLE_MEAN, 2, 3, sc, 0.5f, out);
    CHECK_CLOSE(out[0], 2, TOL, 0);
    rl_ensemble_reduce(RL_ENSEMBLE_WCO, 2, 3, sc, 0.5f, out);
    CHECK_CLOSE(out[0], 1, TOL, 0);
    rl_ensemble_reduce(RL_ENSEMBLE_UWO, 2, 3, sc, 0.5f, out);
    CHECK_CLOSE(out[0], 2 - .5 * 2 / 3.0, TOL, 0);
    CHECK_CLOSE(out[1], 0, TOL, 0);
    rl_ensemble en;
    CHECK(rl_ensemble_from_name("uwo", &en, NULL) == 0 && en == RL_ENSEMBLE_UWO);
    CHECK(rl_overlong_penalty(80, 100, 20) == 0);
    CHECK_CLOSE(rl_overlong_penalty(90, 100, 20), -.5, TOL, 0);
    CHECK(rl_overlong_penalty(101, 100, 20) == -1);
    CHECK_CLOSE(rl_length_penalty(10, .01f), -.1, TOL, 0);
    float s[2] = {1, 1};
    uint8_t eos[2] = {1, 0};
    rl_missing_eos_penalty(2, s, eos, 0.5f);
    CHECK(s[0] == 1 && s[1] == .5f);
    return 0;
}

// A toy estimator registered from this file: one function, one registration, one
// test. A_i = s_i - max of its group's scores (s = the row's masked reward sum),
// on counted tokens; ret = adv.
static int toy_group_max(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                         rlhf_err *err) {
    if (c->group_size < 1 || in->B % c->group_size)
        return rlhf_fail(err, "toy_group_max: groups of %d do not divide %d", c->group_size,
                         in->B);
    for (int g = 0; g < in->B; g += c->group_size) {
        double best = -1e300;
        for (int b = g; b < g + c->group_size; b++) {
            double s = rl_masked_sum((size_t)in->T, in->token_rewards + (size_t)b * in->T,
                                     in->mask + (size_t)b * in->T);
            if (s > best) best = s;
        }
        for (int b = g; b < g + c->group_size; b++) {
            double s = rl_masked_sum((size_t)in->T, in->token_rewards + (size_t)b * in->T,
                                     in->mask + (size_t)b * in->T);
            for (int t = 0; t < in->T; t++) {
                size_t i = (size_t)b * in->T + t;
                adv[i] = in->mask[i] != 0 ? (float)(s - best) : 0.0f;
                if (ret) ret[i] = adv[i];
            }
        }
    }
    return 0;
}
static const rl_adv_def toy_def = RL_ADV("toy_group_max", toy_group_max, RL_NEED_GROUPS, 0,
                                         "A_i = s_i - max_group s", "this test");

// Two groups of 2, T = 2; scores (masked row sums) 1, 3 | 2, 2 (row 2 has a masked
// token worth 5): A = -2, 0 | 0, 0 on counted tokens, 0 elsewhere.
static int test_register_toy_estimator(void) {
    rlhf_err e;
    CHECK(rl_adv_register(&toy_def, &e) == 0);
    CHECK(rl_adv_register(&toy_def, &e) == -1 && strstr(e.msg, "already"));
    const rl_adv_def *d = rl_adv_find("toy_group_max");
    CHECK(d == &toy_def && rl_adv_needs(d, RL_NEED_GROUPS) && !rl_adv_needs(d, RL_NEED_VALUES));
    CHECK(rl_adv_at(rl_adv_count() - 1) == &toy_def);
    char names[512];
    rl_adv_names(names, sizeof names);
    CHECK(strstr(names, "remax, toy_group_max"));
    rl_adv_config c;
    rl_adv_config_default(&c);
    c.group_size = 2;
    float r[8] = {0, 1, 1, 2, 2, 5, 1, 1}, m[8] = {1, 1, 1, 1, 1, 0, 1, 1}, adv[8], ret[8];
    rl_adv_input in = adv_in(4, 2, r, NULL, m, NULL);
    CHECK(rl_adv_compute("toy_group_max", &c, &in, adv, ret, &e) == 0); // the trainer's dispatch
    const float want[8] = {-2, -2, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) CHECK_CLOSE(adv[i], want[i], TOL, 0);
    CHECK(ret[0] == adv[0]);
    CHECK(rl_adv_compute("nope", &c, &in, adv, ret, &e) == -1 && strstr(e.msg, "toy_group_max"));
    return 0;
}

// The policy-loss registry: ppo and gspo by name and by level; the variant a
// config names is what rl_policy_loss runs (gspo here, whatever seq_ratio says).
static int test_policy_registry(void) {
    rlhf_err e;
    CHECK(rl_policy_find("ppo") == rl_policy_find("token") && rl_policy_find("ppo"));
    CHECK(rl_policy_find("gspo") == rl_policy_find("sequence") && rl_policy_find("gspo"));
    const rl_policy_loss_def *d;
    CHECK(rl_policy_lookup("tokens", &d, &e) == -1 && strstr(e.msg, "gspo (sequence)"));
    rl_policy_config a, b;
    rl_policy_config_default(&a);
    rl_policy_config_default(&b);
    a.seq_ratio = 1;
    b.variant = rl_policy_find("gspo");
    float lp[2] = {-1.0f, -0.5f}, old[2] = {-1.2f, -0.6f}, A[2] = {1, 1}, m[2] = {1, 1};
    float ga[2] = {0}, gb[2] = {0};
    rl_policy_stats sa, sb;
    CHECK(rl_policy_loss(&a, 1, 2, lp, old, A, m, ga, &sa, NULL) == 0);
    CHECK(rl_policy_loss(&b, 1, 2, lp, old, A, m, gb, &sb, NULL) == 0);
    CHECK(sa.loss == sb.loss && ga[0] == gb[0] && ga[1] == gb[1]);
    // s = exp(mean(.2, .1)) = exp(.15): loss -s, inside the clip range
    CHECK_CLOSE(sb.loss, -exp(0.15), TOL, 0);
    return 0;
}

// TRL's other loss types, by hand on two tokens (rl_loss_test.py checks them against
// TRL-form references on random arrays, with finite differences)
static int test_trl_variants_by_hand(void) {
    rlhf_err e;
    const rl_policy_loss_def *d;
    CHECK(rl_policy_lookup("vespos", &d, &e) == -1 && strstr(e.msg, "cispo") &&
          strstr(e.msg, "sapo") && strstr(e.msg, "luspo") && strstr(e.msg, "vespo"));
    rl_policy_config c;
    rl_policy_config_default(&c);
    CHECK(c.sapo_temperature_pos == 1.0f && c.sapo_temperature_neg == 1.05f); // TRL's defaults
    CHECK(c.vespo_k_pos == 2 && c.vespo_lambda_pos == 3 && c.vespo_k_neg == 3 &&
          c.vespo_lambda_neg == 2);
    rl_agg a;
    CHECK(rl_agg_from_name("dapo", &a, NULL) == 0 && a == RL_AGG_TOKEN_MEAN);
    CHECK(rl_policy_agg(&c) == RL_AGG_TOKEN_MEAN); // ppo: the configured one
    c.variant = rl_policy_find("luspo");
    CHECK(c.variant && rl_policy_agg(&c) == RL_AGG_SEQ_MEAN_TOKEN_SUM);
    c.variant = NULL;
    // cispo, cap 1.1: rho = e^.2, e^.1 both capped -> w = 1.1;
    // loss = mean(-1.1*1*(-1), -1.1*(-1)*(-0.5)) = 0.275, dlogp = -w*A/2
    float lp[2] = {-1.0f, -0.5f}, old[2] = {-1.2f, -0.6f}, A[2] = {1, -1}, m[2] = {1, 1};
    float g[2] = {0};
    rl_policy_stats st;
    c.variant = rl_policy_find("cispo");
    c.clip_high = 1.1f;
    CHECK(c.variant && rl_policy_loss(&c, 1, 2, lp, old, A, m, g, &st, NULL) == 0);
    CHECK_CLOSE(st.loss, 0.275, 1e-6, 0);
    CHECK_CLOSE(g[0], -0.55, 1e-6, 0);
    CHECK_CLOSE(g[1], 0.55, 1e-6, 0);
    CHECK_CLOSE(st.clip_frac, 1.0, 0, 0);
    // sapo on policy (rho = 1), A = 1: loss -(4/tau)/2 = -2, gradient -A = -1
    float on[1] = {-0.7f}, one[1] = {1}, g1[1] = {0};
    rl_policy_config_default(&c);
    c.variant = rl_policy_find("sapo");
    CHECK(c.variant && rl_policy_loss(&c, 1, 1, on, on, one, one, g1, &st, NULL) == 0);
    CHECK_CLOSE(st.loss, -2.0, 1e-6, 0);
    CHECK_CLOSE(g1[0], -1.0, 1e-6, 0);
    // luspo, one row of two tokens, A = 1: s = exp(mean(.2, .1)) = e^.15 inside the clip;
    // loss = |y| * (-s) = -2 e^.15 (mean over the one row), d/dlogp_t = -s each
    float A1[2] = {1, 1}, g2[2] = {0};
    rl_policy_config_default(&c);
    c.variant = rl_policy_find("luspo");
    c.agg = RL_AGG_SEQ_MEAN_TOKEN_MEAN; // not read: luspo fixes its aggregation
    CHECK(c.variant && rl_policy_loss(&c, 1, 2, lp, old, A1, m, g2, &st, NULL) == 0);
    CHECK_CLOSE(st.loss, -2 * exp(0.15), 1e-6, 0);
    CHECK_CLOSE(g2[0], -exp(0.15), 1e-6, 0);
    CHECK_CLOSE(g2[1], -exp(0.15), 1e-6, 0);
    rl_policy_config_default(&c);
    // vespo on policy: w = 1, phi = e^(lambda + 0 - lambda) = 1: loss -A*logp = 0.7
    g1[0] = 0;
    c.variant = rl_policy_find("vespo");
    CHECK(c.variant && rl_policy_loss(&c, 1, 1, on, on, one, one, g1, &st, NULL) == 0);
    CHECK_CLOSE(st.loss, 0.7, 1e-6, 0);
    CHECK_CLOSE(g1[0], -1.0, 1e-6, 0);
    return 0;
}

int main(void) {
    RUN(test_gae_by_hand);
    RUN(test_macro_by_hand);
    RUN(test_macro_n1_is_gae);
    RUN(test_grpo_by_hand);
    RUN(test_rloo_by_hand);
    RUN(test_remax_reinforce_pp);
    RUN(test_ppo_clip_by_hand);
    RUN(test_gspo_by_hand);
    RUN(test_aggregation_by_hand);
    RUN(test_kl_by_hand);
    RUN(test_kl_controller);
    RUN(test_value_loss_by_hand);
    RUN(test_stats_by_hand);
    RUN(test_filters_by_hand);
    RUN(test_shaping_by_hand);
    RUN(test_register_toy_estimator);
    RUN(test_policy_registry);
    RUN(test_trl_variants_by_hand);
    TEST_EXIT();
}
