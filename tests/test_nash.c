// Nash-MD (algo/nash, train/mixture_gen): the loss's gradient equals central
// finite differences (the log-ratio held fixed, as sg() does) and the formula
// term by term; the preference is a stable sigmoid; and the geometric-mixture
// sampler draws, with the same stream, exactly generate()'s tokens from the
// policy at mixture_coef 0 and from the reference at 1, while at any
// coefficient each token's log-prob equals log softmax((c·logits_ref +
// (1−c)·logits_π) / T) recomputed from both models' full forwards.
// tests/nash_md_test.py compares the loss with an independent torch version.
#include "algo/nash.h"
#include "rlhf.h"
#include "train/mixture_gen.h"

#include <stdint.h>

#include "test.h"

static uint64_t rng_state = 88172645463325252ull;
static double unif(void) {  // xorshift64*, in (0, 1)
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0) + 1e-17;
}
static double gauss(void) { return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif()); }

enum { B = 4, T = 7, BT = B * T };

static double loss_at(const float *logp, const float *sg, const float *ref, const float *mask,
                      const double *prob, double beta, float *d) {
    return nash_md_loss(B, T, logp, sg, ref, mask, prob, beta, B, d, NULL);
}

static int test_nash_loss_gradient(void) {
    float logp[BT], ref[BT], mask[BT], d[BT], scratch[BT];
    double prob[B];
    for (int i = 0; i < BT; i++) {
        logp[i] = (float)(-2 + gauss());
        ref[i] = logp[i] + (float)(0.5 * gauss());
        mask[i] = (i % T) >= 2 && !(i / T == 3 && i % T > 4);  // prompt columns, padding
    }
    for (int b = 0; b < B; b++) prob[b] = unif();
    for (int k = 0; k < 3; k++) {
        double beta = (double[]){0.0, 0.1, 2.0}[k];
        nash_md_stats st;
        double L = nash_md_loss(B, T, logp, logp, ref, mask, prob, beta, B, d, &st);
        // term by term
        double want = 0, score = 0, kl = 0;
        for (int b = 0; b < B; b++) {
            double sl = 0, sr = 0, srl = 0;
            for (int t = 0; t < T; t++) {
                int i = b * T + t;
                if (!mask[i]) {
                    CHECK(d[i] == 0);
                    continue;
                }
                double r = (double)logp[i] - ref[i];
                sl += logp[i], sr += r, srl += r * logp[i];
                CHECK_CLOSE(d[i], (beta * r - (prob[b] - 0.5)) / B, 1e-7, 1e-6);
            }
            want += beta * srl - (prob[b] - 0.5) * sl, score += (prob[b] - 0.5) * sl, kl += sr;
        }
        CHECK_CLOSE(L, want / B, 1e-9, 1e-9);
        CHECK_CLOSE(st.score, score / B, 1e-9, 1e-9);
        CHECK_CLOSE(st.kl, kl / B, 1e-9, 1e-9);
        // central differences of the loss in logp, the sg() copy held still
        double h = 1e-2, worst = 0;
        for (int i = 0; i < BT; i++) {
            float x[BT];
            memcpy(x, logp, sizeof x);
            x[i] = logp[i] + (float)h;
            double up = loss_at(x, logp, ref, mask, prob, beta, scratch);
            x[i] = logp[i] - (float)h;
            double dn = loss_at(x, logp, ref, mask, prob, beta, scratch);
            double fd = (up - dn) / (2 * h);
            worst = fabs(fd - d[i]) > worst ? fabs(fd - d[i]) : worst;
        }
        CHECKF(worst < 1e-5, "beta %g: largest |fd - grad| %g", beta, worst);
    }
    // a tie (P = 1/2) on the reference (log-ratio 0) gives no gradient at all
    double half[B] = {0.5, 0.5, 0.5, 0.5};
    nash_md_loss(B, T, logp, logp, logp, mask, half, 0.3, B, d, NULL);
    for (int i = 0; i < BT; i++) CHECK(d[i] == 0);
    return 0;
}

static int test_nash_preference(void) {
    float a[5] = {0, 1, -3, 1e4f, -1e4f}, b[5] = {0, 0, -1, -1e4f, 1e4f};
    double p[5], q[5];
    nash_preference(5, a, b, p);
    nash_preference(5, b, a, q);
    CHECK_CLOSE(p[0], 0.5, 0, 0);
    CHECK_CLOSE(p[1], 1 / (1 + exp(-1.0)), 1e-15, 0);
    CHECK_CLOSE(p[2], 1 / (1 + exp(2.0)), 1e-15, 0);
    CHECK(p[3] == 1 && p[4] == 0);
    for (int i = 0; i < 5; i++) CHECK_CLOSE(p[i] + q[i], 1, 1e-15, 0);
    return 0;
}

// ---------------------------------------------------------------- sampler --

static rlhf_model *tiny(uint64_t seed, int vocab) {
    rlhf_config c = {.arch = ARCH_GPT2, .n_layer = 2, .n_head = 2, .n_kv_head = 2, .n_embd = 16,
                     .vocab_size = vocab, .max_seq_len = 24, .tied = 1};
    config_fill_defaults(&c);
    rlhf_model *m;
    rlhf_err err;
    if (model_create(&m, &c, seed, &err)) return NULL;
    // larger embeddings: peaked next-token distributions, so two models differ
    for (size_t i = 0; i < (size_t)vocab * 16; i++) m->w.wte[i] *= 40;
    return m;
}

enum { NP = 3, NEW = 10 };
static const int p0[] = {1, 2, 3, 4}, p1[] = {5}, p2[] = {7, 8};
static const int *const prompts[NP] = {p0, p1, p2};
static const int plen[NP] = {4, 1, 2};

static rlhf_gen_opts gen_opts(float temperature) {
    return (rlhf_gen_opts){.max_new_tokens = NEW, .temperature = temperature, .top_p = 1.0f,
                           .eos_id = 0, .pad_id = 0};
}

static int same_tokens(const rlhf_gen_out *a, const rlhf_gen_out *b) {
    for (int r = 0; r < NP; r++) {
        if (a->length[r] != b->length[r] || a->ended_eos[r] != b->ended_eos[r]) return 0;
        for (int j = 0; j < a->length[r]; j++)
            if (a->tokens[r * NEW + j] != b->tokens[r * NEW + j]) return 0;
    }
    return 1;
}

static int test_mixture_ends_are_the_models(void) {
    rlhf_model *pol = tiny(11, 29), *ref = tiny(12, 29);
    rlhf_err err;
    int differ = 0;
    for (int seed = 1; seed <= 5; seed++) {
        rlhf_gen_opts o = gen_opts(seed == 5 ? 0.0f : 1.0f);  // and greedy
        if (seed == 4) o.top_k = 5, o.top_p = 0.9f;
        rlhf_gen_out gp, gr, m0, m1;
        rlhf_rng a, b, c, d;
        rng_seed(&a, seed), rng_seed(&b, seed), rng_seed(&c, seed), rng_seed(&d, seed);
        CHECK(generate(pol, prompts, plen, NP, &o, &a, &gp, &err) == 0);
        CHECK(generate(ref, prompts, plen, NP, &o, &b, &gr, &err) == 0);
        CHECK(mixture_generate(pol, ref, 0.0f, prompts, plen, NP, &o, &c, &m0, &err) == 0);
        CHECK(mixture_generate(pol, ref, 1.0f, prompts, plen, NP, &o, &d, &m1, &err) == 0);
        CHECKF(same_tokens(&gp, &m0), "seed %d: mixture_coef 0 is not the policy's sampling", seed);
        CHECKF(same_tokens(&gr, &m1), "seed %d: mixture_coef 1 is not the reference's", seed);
        for (int i = 0; i < NP * NEW; i++) {
            CHECK(gp.logp[i] == m0.logp[i]);
            CHECK(gr.logp[i] == m1.logp[i]);
        }
        differ += !same_tokens(&gp, &gr);
        CHECK(rng_u64(&a) == rng_u64(&c));  // the same draws consumed
        gen_out_free(&gp), gen_out_free(&gr), gen_out_free(&m0), gen_out_free(&m1);
    }
    CHECKF(differ >= 3, "the two models sample alike (%d of 5 seeds differ): the test cannot "
                        "tell them apart", differ);
    model_free(pol), model_free(ref);
    return 0;
}

// the model's full logits (V) predicting each new token of row r, by a plain forward
static void full_logits(rlhf_model *m, const int *seq, int n, float *out) {
    int tg[32];
    for (int t = 0; t < n; t++) tg[t] = t + 1 < n ? seq[t + 1] : -1;
    rlhf_batch b = {.B = 1, .T = n, .tokens = seq, .targets = tg};
    rlhf_err err;
    if (model_forward(m, &b, &err)) return;
    model_logits(m, out);
}

static int test_mixture_logp_recomputed(void) {
    rlhf_model *pol = tiny(21, 29), *ref = tiny(22, 29);
    int V = 29;
    rlhf_err err;
    float *lp = xmalloc(32 * V * sizeof(float)), *lr = xmalloc(32 * V * sizeof(float));
    double worst = 0;
    int checked = 0;
    for (int k = 0; k < 3; k++) {
        float coef = (float[]){0.25f, 0.5f, 0.8f}[k], temp = (float[]){1.0f, 0.7f, 1.3f}[k];
        rlhf_gen_opts o = gen_opts(temp);
        rlhf_rng rng;
        rng_seed(&rng, 100 + k);
        rlhf_gen_out g;
        CHECK(mixture_generate(pol, ref, coef, prompts, plen, NP, &o, &rng, &g, &err) == 0);
        for (int r = 0; r < NP; r++) {
            int seq[32], n = 0;
            for (int j = 0; j < plen[r]; j++) seq[n++] = prompts[r][j];
            for (int j = 0; j < g.length[r]; j++) seq[n++] = g.tokens[r * NEW + j];
            full_logits(pol, seq, n, lp);
            full_logits(ref, seq, n, lr);
            for (int j = 0; j < g.length[r]; j++) {
                const float *a = lp + (size_t)(plen[r] - 1 + j) * V;
                const float *b = lr + (size_t)(plen[r] - 1 + j) * V;
                double z[64], mx = -1e300, s = 0;
                for (int v = 0; v < V; v++) {
                    z[v] = (coef * (double)b[v] + (1 - coef) * (double)a[v]) / temp;
                    mx = z[v] > mx ? z[v] : mx;
                }
                for (int v = 0; v < V; v++) s += exp(z[v] - mx);
                double want = z[seq[plen[r] + j]] - mx - log(s);
                double diff = fabs(want - g.logp[r * NEW + j]);
                worst = diff > worst ? diff : worst;
                checked++;
            }
        }
        gen_out_free(&g);
    }
    CHECKF(worst < 2e-4 && checked > 20, "largest log-prob difference %g over %d tokens", worst,
           checked);
    printf("  mixture log-probs: %d tokens, largest difference from the recomputation %.2e\n",
           checked, worst);
    free(lp), free(lr);
    model_free(pol), model_free(ref);
    return 0;
}

static int test_mixture_rollout_layout(void) {
    rlhf_model *pol = tiny(31, 29), *ref = tiny(32, 29);
    rlhf_err err;
    rollout_opts ro = {.n_samples = 2, .gen = gen_opts(1.0f), .batch_size = 4};
    rollout_batch rb;
    rlhf_rng a, b;
    rng_seed(&a, 5), rng_seed(&b, 5);
    CHECK(mixture_rollout(pol, ref, 0.0f, prompts, plen, NP, &ro, &a, &rb, &err) == 0);
    rollout_batch want;  // at coefficient 0: the policy's own rollout
    CHECK(rollout_generate(pol, prompts, plen, NP, &ro, &b, &want, &err) == 0);
    CHECK(rb.B == 6 && rb.T == want.T && rb.P == want.P);
    for (int i = 0; i < rb.B * rb.T && rb.T == want.T; i++) {
        CHECK(rb.tokens[i] == want.tokens[i] && rb.targets[i] == want.targets[i]);
        CHECK(rb.mask[i] == want.mask[i] && rb.attn[i] == want.attn[i]);
        CHECK(rb.sample_logp[i] == want.sample_logp[i]);
    }
    for (int r = 0; r < rb.B; r++) CHECK(rb.prompt_index[r] == r / 2);
    rollout_free(&rb), rollout_free(&want);
    model_free(pol), model_free(ref);
    return 0;
}

static int test_mixture_bad_input(void) {
    rlhf_model *pol = tiny(41, 29), *other = tiny(42, 31);
    rlhf_err err;
    rlhf_gen_opts o = gen_opts(1.0f);
    rlhf_rng rng;
    rng_seed(&rng, 1);
    rlhf_gen_out g;
    CHECK(mixture_generate(pol, pol, 1.5f, prompts, plen, NP, &o, &rng, &g, &err) == -1);
    CHECK(strstr(err.msg, "mixture_coef") != NULL);
    CHECK(mixture_generate(pol, pol, NAN, prompts, plen, NP, &o, &rng, &g, &err) == -1);
    CHECK(mixture_generate(pol, other, 0.5f, prompts, plen, NP, &o, &rng, &g, &err) == -1);
    CHECK(strstr(err.msg, "vocabulary") != NULL);
    o.max_new_tokens = 30;
    CHECK(mixture_generate(pol, pol, 0.5f, prompts, plen, NP, &o, &rng, &g, &err) == -1);
    CHECK(strstr(err.msg, "max_seq_len") != NULL);
    model_free(pol), model_free(other);
    return 0;
}

int main(void) {
    RUN(test_nash_loss_gradient);
    RUN(test_nash_preference);
    RUN(test_mixture_ends_are_the_models);
    RUN(test_mixture_logp_recomputed);
    RUN(test_mixture_rollout_layout);
    RUN(test_mixture_bad_input);
    TEST_EXIT();
}
