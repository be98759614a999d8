// test_pref: the preference losses (src/algo/pref.h) on values worked out by
// hand, the registry and --loss_type parsing, combination weights, the
// per-token and LD-DPO paths, and the error messages for bad inputs. The
// PyTorch comparison of every loss and option is tests/pref_loss_test.py.
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/pref.h"
#include "test.h"

static const double LN2 = 0.69314718055994530942;

// softplus(-1) = log(1 + e^-1), sigmoid(-1)
static const double SP1 = 0.31326168751822283;
static const double SIGM1 = 0.26894142136999510;

// One pair or a small batch with sequence sums.
typedef struct {
    float pc[4], pr[4], rc[4], rr[4];
    int lc[4], lr[4];
    float gc[4], gr[4];
    pref_batch b;
    pref_out out;
} pairs;

static void pairs_init(pairs *p, int n, int with_ref) {
    memset(&p->b, 0, sizeof p->b);
    memset(&p->out, 0, sizeof p->out);
    memset(p->gc, 0, sizeof p->gc);
    memset(p->gr, 0, sizeof p->gr);
    p->b.n = n;
    p->b.chosen.logps = p->pc;
    p->b.rejected.logps = p->pr;
    p->b.chosen.len = p->lc;
    p->b.rejected.len = p->lr;
    if (with_ref) {
        p->b.chosen.ref_logps = p->rc;
        p->b.rejected.ref_logps = p->rr;
    }
    p->out.chosen.grad = p->gc;
    p->out.rejected.grad = p->gr;
}

static int run(pairs *p, const char *types, const char *weights, const pref_options *o,
               rlhf_err *err) {
    pref_loss_list l;
    if (pref_parse(&l, types, weights, err)) return -1;
    return pref_loss(&l, o, &p->b, &p->out, err);
}

static int test_dpo_margin_zero(void) {
    // equal log-ratios: loss log 2, d/dpc = -beta/2, d/dpr = +beta/2
    pairs p = {.pc = {-3}, .pr = {-5}, .rc = {-3}, .rr = {-5}, .lc = {4}, .lr = {6}};
    pairs_init(&p, 1, 1);
    pref_options o;
    pref_options_default(&o);
    rlhf_err err;
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, LN2, 1e-12, 0);
    CHECK_CLOSE(p.gc[0], -0.05, 1e-8, 0);
    CHECK_CLOSE(p.gr[0], 0.05, 1e-8, 0);
    CHECK_CLOSE(p.out.m.rewards_margins, 0, 1e-12, 0);
    CHECK(p.out.m.rewards_accuracies == 0); // a tie is not a win
    return 0;
}

static int test_dpo_hand(void) {
    // beta 0.5, log-ratios 1 and -1: z = 0.5*(1 - (-1)) = 1, loss softplus(-1)
    pairs p = {.pc = {-1}, .pr = {-3}, .rc = {-2}, .rr = {-2}, .lc = {1}, .lr = {1}};
    pairs_init(&p, 1, 1);
    pref_options o;
    pref_options_default(&o);
    o.beta = 0.5;
    float rw[1], rl[1];
    p.out.reward_chosen = rw;
    p.out.reward_rejected = rl;
    rlhf_err err;
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, SP1, 1e-12, 0);
    CHECK_CLOSE(p.gc[0], -0.5 * SIGM1, 1e-7, 0);
    CHECK_CLOSE(p.gr[0], 0.5 * SIGM1, 1e-7, 0);
    CHECK_CLOSE(rw[0], 0.5, 1e-7, 0);
    CHECK_CLOSE(rl[0], -0.5, 1e-7, 0);
    CHECK(p.out.m.rewards_accuracies == 1);
    CHECK_CLOSE(p.out.m.logps_chosen, -1, 1e-12, 0);
    // cDPO, eps = 0.25: 0.75*softplus(-1) + 0.25*softplus(1)
    pairs_init(&p, 1, 1);
    o.label_smoothing = 0.25;
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, 0.75 * SP1 + 0.25 * (1 + SP1), 1e-12, 0);
    CHECK_CLOSE(p.gc[0], 0.5 * (-0.75 * SIGM1 + 0.25 * (1 - SIGM1)), 1e-7, 0);
    return 0;
}

static int test_mean_over_pairs(void) {
    // two identical zero-margin pairs: the loss is the mean, each gradient halves
    pairs p = {
        .pc = {-1, -1}, .pr = {-2, -2}, .rc = {-1, -1}, .rr = {-2, -2}, .lc = {1, 1}, .lr = {1, 1}};
    pairs_init(&p, 2, 1);
    pref_options o;
    pref_options_default(&o);
    rlhf_err err;
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, LN2, 1e-12, 0);
    CHECK_CLOSE(p.gc[0], -0.025, 1e-8, 0);
    CHECK_CLOSE(p.gc[1], -0.025, 1e-8, 0);
    // gradients accumulate: a second call doubles them
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.gc[0], -0.05, 1e-8, 0);
    return 0;
}

static int test_ipo_simpo_hinge_hand(void) {
    pref_options o;
    pref_options_default(&o);
    rlhf_err err;
    // IPO reference-free, beta 0.25: d = -2/2 - (-6/3) = 1, target 2: loss 1,
    // d/dpc = 2*(1-2)/2 = -1, d/dpr = -2*(1-2)/3 = 2/3
    pairs p = {.pc = {-2}, .pr = {-6}, .lc = {2}, .lr = {3}};
    pairs_init(&p, 1, 0);
    o.beta = 0.25;
    o.reference_free = 1;
    CHECK(run(&p, "ipo", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, 1.0, 1e-12, 0);
    CHECK_CLOSE(p.gc[0], -1.0, 1e-7, 0);
    CHECK_CLOSE(p.gr[0], 2.0 / 3, 1e-7, 0);
    // SimPO, beta 2, gamma 1: z = 2*(-4/2 + 9/3) - 1 = 1
    pairs q = {.pc = {-4}, .pr = {-9}, .lc = {2}, .lr = {3}};
    pairs_init(&q, 1, 0);
    pref_options_default(&o);
    o.beta = 2;
    o.simpo_gamma = 1;
    CHECK(run(&q, "simpo", NULL, &o, &err) == 0); // reference-free by definition
    CHECK_CLOSE(q.out.m.loss, SP1, 1e-12, 0);
    CHECK_CLOSE(q.gc[0], -SIGM1 * 2 / 2, 1e-7, 0);
    CHECK_CLOSE(q.gr[0], SIGM1 * 2 / 3, 1e-7, 0);
    // hinge, beta 1: z = 0.5 -> loss 0.5, d/dpc = -1; z = 2 -> 0, no gradient
    pairs h = {.pc = {-1.5f}, .pr = {-2}, .rc = {0}, .rr = {0}, .lc = {1}, .lr = {1}};
    pairs_init(&h, 1, 1);
    pref_options_default(&o);
    o.beta = 1;
    CHECK(run(&h, "hinge", NULL, &o, &err) == 0);
    CHECK_CLOSE(h.out.m.loss, 0.5, 1e-12, 0);
    CHECK_CLOSE(h.gc[0], -1, 1e-7, 0);
    h.pc[0] = 0;
    pairs_init(&h, 1, 1);
    CHECK(run(&h, "hinge", NULL, &o, &err) == 0);
    CHECK_CLOSE(h.out.m.loss, 0, 1e-12, 0);
    CHECK(h.gc[0] == 0);
    return 0;
}

static int test_sft_and_combination(void) {
    // sft = -(sum pc)/(sum lc) = 8/5, d/dpc_i = -1/5; combined with sigmoid at margin 0
    // with weights 1, 0.5: loss log 2 + 0.8, d/dpc = -0.05/2 - 0.5/5
    pairs p = {
        .pc = {-3, -5}, .pr = {-4, -6}, .rc = {-3, -5}, .rr = {-4, -6}, .lc = {2, 3}, .lr = {1, 1}};
    pref_options o;
    pref_options_default(&o);
    rlhf_err err;
    pairs_init(&p, 2, 1);
    CHECK(run(&p, "sft", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, 1.6, 1e-12, 0);
    CHECK_CLOSE(p.gc[0], -0.2, 1e-7, 0);
    CHECK_CLOSE(p.gc[1], -0.2, 1e-7, 0);
    CHECK(p.gr[0] == 0);
    pairs_init(&p, 2, 1);
    CHECK(run(&p, "sigmoid, sft", "1, 0.5", &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, LN2 + 0.8, 1e-12, 0);
    CHECK_CLOSE(p.gc[0], -0.025 - 0.1, 1e-7, 0);
    CHECK_CLOSE(p.gr[1], 0.025, 1e-7, 0);
    // vpo with sign -1, alpha 0.1, beta 0.1 on the chosen response: adds -0.01 * pc
    pairs_init(&p, 2, 1);
    CHECK(run(&p, "vpo", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, LN2 - 0.01 * (-3 - 5) / 2, 1e-12, 0);
    CHECK_CLOSE(p.gc[0], -0.025 - 0.005, 1e-7, 0);
    return 0;
}

static int test_kto_hand(void) {
    // rho = z0 for both: each loss 1 - sig(0) = 0.5; d/dp = -/+ beta/4, mean over 2
    float p[2] = {-2, -5}, r[2] = {-2.5f, -5.5f}, g[2] = {0, 0}, rw[2];
    int len[2] = {3, 4};
    uint8_t label[2] = {1, 0};
    pref_batch b = {0};
    b.n = 2;
    b.completion.logps = p;
    b.completion.ref_logps = r;
    b.completion.len = len;
    b.label = label;
    b.kl = 0.5;
    pref_out out = {0};
    out.completion.grad = g;
    out.reward = rw;
    pref_options o;
    pref_options_default(&o);
    pref_loss_list l;
    rlhf_err err;
    CHECK(pref_parse(&l, "kto", NULL, &err) == 0);
    CHECK(pref_loss(&l, &o, &b, &out, &err) == 0);
    CHECK_CLOSE(out.m.loss, 0.5, 1e-12, 0);
    CHECK_CLOSE(g[0], -0.0125, 1e-8, 0);
    CHECK_CLOSE(g[1], 0.0125, 1e-8, 0);
    CHECK_CLOSE(rw[0], 0.05, 1e-7, 0);
    CHECK(out.m.n_chosen == 1 && out.m.n_rejected == 1);
    CHECK_CLOSE(out.m.kl, 0.5, 0, 0);
    // z0 from mismatched pairs: max(0, mean)
    float a[2] = {1, 2}, z[2] = {0, 0};
    CHECK_CLOSE(pref_kto_kl(a, z, 2), 1.5, 1e-12, 0);
    CHECK_CLOSE(pref_kto_kl(z, a, 2), 0, 0, 0);
    CHECK_CLOSE(pref_kto_kl(NULL, NULL, 0), 0, 0, 0);
    return 0;
}

static int test_tokens_and_ld(void) {
    // chosen tokens [-1,-1,-1], rejected [-2] (packed), reference-free, beta 0.1.
    // Plain: z = 0.1*(-3 + 2) = -0.1. LD alpha 0.5: shared length 1, so
    // chosen = -1 + 0.5*(-2) = -2 = rejected: loss log 2, token grads -0.05*[1, .5, .5].
    float ct[3] = {-1, -1, -1}, rt[1] = {-2}, gct[3] = {0}, grt[1] = {0}, gseq[1] = {7};
    int lc[1] = {3}, lr[1] = {1};
    pref_batch b = {0};
    b.n = 1;
    b.chosen.tok_logps = ct;
    b.chosen.len = lc;
    b.rejected.tok_logps = rt;
    b.rejected.len = lr;
    pref_out out = {0};
    out.chosen.tok_grad = gct;
    out.chosen.grad = gseq; // not written: the set was given per token
    out.rejected.tok_grad = grt;
    pref_options o;
    pref_options_default(&o);
    o.reference_free = 1;
    pref_loss_list l;
    rlhf_err err;
    CHECK(pref_parse(&l, "sigmoid", NULL, &err) == 0);
    CHECK(pref_loss(&l, &o, &b, &out, &err) == 0);
    double g = -0.1 * 1 / (1 + exp(-0.1)); // d/dz softplus(-z) at z = -0.1, times beta
    CHECK_CLOSE(out.m.loss, log1p(exp(0.1)), 1e-12, 0);
    for (int t = 0; t < 3; t++) CHECK_CLOSE(gct[t], g, 1e-7, 0);
    CHECK_CLOSE(grt[0], -g, 1e-7, 0);
    CHECK(gseq[0] == 7);
    memset(gct, 0, sizeof gct);
    grt[0] = 0;
    o.ld_alpha = 0.5;
    CHECK(pref_loss(&l, &o, &b, &out, &err) == 0);
    CHECK_CLOSE(out.m.loss, LN2, 1e-12, 0);
    CHECK_CLOSE(gct[0], -0.05, 1e-8, 0);
    CHECK_CLOSE(gct[1], -0.025, 1e-8, 0);
    CHECK_CLOSE(gct[2], -0.025, 1e-8, 0);
    CHECK_CLOSE(grt[0], 0.05, 1e-8, 0);
    // LD needs tokens
    pairs p = {.pc = {-1}, .pr = {-2}, .lc = {1}, .lr = {1}};
    pairs_init(&p, 1, 0);
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "ld_alpha needs per-token") != NULL);
    return 0;
}

static int test_extreme_finite(void) {
    // |margin| 1e4 with beta 1: softplus(1e4) = 1e4 exactly in double, gradient -1;
    // the exponential forms (discopop, forward KL, alpha-divergence) stay finite too
    pairs p = {.pc = {-1e4f, 0},
               .pr = {0, -1e4f},
               .rc = {0, -1e4f},
               .rr = {-1e4f, 0},
               .lc = {1, 1},
               .lr = {1, 1}};
    pref_options o;
    pref_options_default(&o);
    o.beta = 1;
    rlhf_err err;
    pairs_init(&p, 2, 1);
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == 0);
    CHECK_CLOSE(p.out.m.loss, 2e4 / 2, 1e-9, 1e-12);
    CHECK_CLOSE(p.gc[0], -0.5, 1e-9, 0);
    CHECK(p.gc[1] == 0 || fabs(p.gc[1]) < 1e-30);
    const char *losses[] = {"discopop", "exo_pair",  "robust", "nca_pair", "bco_pair",
                            "apo_down", "sppo_hard", "ipo",    "aot",      "orpo",
                            "simpo",    "cpo",       "cpl"};
    o.label_smoothing = 0.1;
    for (size_t k = 0; k < sizeof losses / sizeof *losses; k++)
        for (int f = 0; f < 4; f++) {
            o.f_divergence_type = (pref_fdiv)f;
            if (f && !pref_loss_reads(pref_find(losses[k]), PREF_OPT_F_DIVERGENCE)) continue;
            pairs_init(&p, 2, 1);
            int rc = run(&p, losses[k], NULL, &o, &err);
            CHECKF(rc == 0, "%s %s: %s", losses[k], pref_fdiv_name(o.f_divergence_type), err.msg);
            CHECKF(isfinite(p.out.m.loss) && isfinite(p.gc[0]) && isfinite(p.gc[1]) &&
                       isfinite(p.gr[0]) && isfinite(p.gr[1]),
                   "%s %s: loss %g", losses[k], pref_fdiv_name(o.f_divergence_type), p.out.m.loss);
        }
    return 0;
}

// ipo and sppo_hard square the scores: with forward KL at beta 0.1 a log-ratio of -50
// once gave a -inf gradient (e^100 past float32). Scores are capped at e^40 there
// (docs/losses.md), so loss and gradients stay in float32 range; below the cap the
// values are the plain formulas, worked out here in double.
static int test_squared_losses_cap(void) {
    const double rhos[] = {-30, -39.5, -41, -50, -79, -1e4};
    const char *losses[] = {"ipo", "sppo_hard"};
    pref_options o;
    pref_options_default(&o);
    o.beta = 0.1;
    rlhf_err err;
    for (int k = 0; k < 2; k++)
        for (int f = 0; f < 2; f++)
            for (size_t j = 0; j < sizeof rhos / sizeof *rhos; j++) {
                o.f_divergence_type = f ? PREF_ALPHA_DIVERGENCE : PREF_FORWARD_KL;
                o.f_alpha_divergence_coef = 1.0; // the same score as forward KL
                pairs p = {.pc = {(float)(-20 + rhos[j])},
                           .pr = {-7},
                           .rc = {-20},
                           .rr = {-7},
                           .lc = {1},
                           .lr = {1}};
                pairs_init(&p, 1, 1);
                CHECKF(run(&p, losses[k], NULL, &o, &err) == 0, "%s", err.msg);
                double rho = (double)p.pc[0] - p.rc[0], cap = exp(40.0);
                double e = exp(-rho), sw = -e, dw = e, sl = -1, h = 0.5 / o.beta;
                if (e > cap) sw = -cap, dw = 0;
                double loss, gw, gl;
                if (k == 0) { // ipo: (s_w - s_l - 1/(2 beta))^2
                    double t = sw - sl - h;
                    loss = t * t, gw = 2 * t * dw, gl = -2 * t * 1;
                } else { // sppo_hard: (s_w - h)^2 + (s_l + h)^2
                    loss = (sw - h) * (sw - h) + (sl + h) * (sl + h), gw = 2 * (sw - h) * dw,
                    gl = 2 * (sl + h);
                }
                CHECKF(fabs(p.out.m.loss) <= FLT_MAX && isfinite(p.gc[0]) && isfinite(p.gr[0]),
                       "%s %s rho %g: loss %g grads %g %g", losses[k],
                       pref_fdiv_name(o.f_divergence_type), rho, p.out.m.loss, p.gc[0], p.gr[0]);
                CHECKF(fabs(p.out.m.loss - loss) <= 1e-12 * fabs(loss) &&
                           fabs(p.gc[0] - gw) <= 1e-6 * fabs(gw) &&
                           fabs(p.gr[0] - gl) <= 1e-6 * fabs(gl),
                       "%s rho %g: loss %g (want %g), grads %g %g (want %g %g)", losses[k], rho,
                       p.out.m.loss, loss, p.gc[0], p.gr[0], gw, gl);
            }
    return 0;
}

static int test_registry(void) {
    const pref_loss_def *d = pref_find("sigmoid");
    CHECK(d && strcmp(d->name, "sigmoid") == 0 && d->about && *d->about);
    CHECK(pref_find("nope") == NULL);
    CHECK(pref_find(NULL) == NULL);
    CHECK(pref_find("aot_unpaired")->fn == pref_find("aot_pair")->fn);
    CHECK(pref_find("kto")->kind == PREF_KIND_UNPAIRED);
    CHECK(pref_loss_needs(pref_find("kto"), PREF_NEED_LABELS | PREF_NEED_KL_POINT));
    CHECK(!pref_loss_needs(pref_find("simpo"), PREF_NEED_REFERENCE));
    CHECK(pref_loss_needs(pref_find("inpo"), PREF_NEED_PREVIOUS));
    CHECK(pref_loss_needs(pref_find("srpo"), PREF_NEED_REVISIONS));
    // A-LoL needs V_ref, R-LoL only the scores (the trainer fits V_ref from these bits)
    CHECK(pref_loss_needs(pref_find("alol"), PREF_NEED_SCORES | PREF_NEED_VALUE));
    CHECK(pref_loss_needs(pref_find("alol_ref_free"), PREF_NEED_VALUE));
    CHECK(pref_loss_needs(pref_find("rlol"), PREF_NEED_SCORES));
    CHECK(!pref_loss_needs(pref_find("rlol"), PREF_NEED_VALUE));
    CHECK(pref_loss_reads(pref_find("simpo"), PREF_OPT_SIMPO_GAMMA));
    int n = 0;
    for (const pref_loss_def *e; (e = pref_loss_at(n)); n++) {
        CHECKF(e->fn && e->about && e->paper, "%s", e->name);
        CHECKF(pref_find(e->name) == e, "%s is listed twice", e->name);
    }
    CHECK(n == pref_loss_count() && n >= 30);
    CHECK(pref_loss_at(n) == NULL && pref_loss_at(-1) == NULL);
    const char *names[] = {
        "sigmoid",   "robust", "hinge",    "ipo",      "exo_pair",      "nca_pair", "bco_pair",
        "sppo_hard", "aot",    "aot_pair", "apo_zero", "apo_down",      "discopop", "sigmoid_norm",
        "sft",       "simpo",  "cpo",      "orpo",     "kto",           "vpo",      "inpo",
        "srpo",      "osp",    "alol",     "alol_seq", "alol_ref_free", "alol_kl",  "cpl",
        "rlol"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECKF(pref_find(names[i]), "%s", names[i]);
    pref_fdiv f;
    rlhf_err err;
    for (int i = 0; i < 4; i++) {
        CHECK(pref_fdiv_from_name(pref_fdiv_name((pref_fdiv)i), &f, &err) == 0 && (int)f == i);
    }
    CHECK(pref_fdiv_from_name("hellinger", &f, &err) == -1);
    CHECK(strstr(err.msg, "unknown f_divergence_type \"hellinger\"") != NULL);
    return 0;
}

// Adding a loss from outside src/algo: one function, one registration, this test.
// The toy is the exponential (boosting) loss exp(-z), z = beta*(s_w - s_l) - margin,
// run through pref_parse and pref_loss as the trainers do; its gradients, mapped
// back through the f-divergence scores and per-token inputs by the driver, must
// match finite differences of the loss.
static int toy_exp_loss(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double z = beta * (v->sc[i] - v->sr[i]) - v->margin[i], e = exp(-z);
        v->loss += w[i] * e;
        v->g_pc[i] -= w[i] * e * beta * v->dsc[i];
        v->g_pr[i] += w[i] * e * beta * v->dsr[i];
    }
    return 0;
}

static const pref_loss_def toy_exp =
    PREF_LOSS("toy_exp", toy_exp_loss, PREF_KIND_PAIRED, PREF_NEED_REFERENCE | PREF_NEED_MARGIN,
              PREF_OPT_BETA | PREF_OPT_F_DIVERGENCE, "exp(-z)", "a test's toy (boosting loss)");

// The loss of "types" on p with chosen log-prob i (or rejected, i >= n) moved by dx.
static double toy_loss_at(pairs *p, const char *types, const pref_options *o, int i, float x) {
    int n = p->b.n;
    float *at = i < n ? &p->pc[i] : &p->pr[i - n], keep = *at;
    *at = x;
    pairs q = *p;
    pairs_init(&q, n, 1);
    q.b.margin = p->b.margin;
    rlhf_err err;
    double loss = run(&q, types, NULL, o, &err) ? NAN : q.out.m.loss;
    *at = keep;
    return loss;
}

// AlphaPO (Gupta et al. 2025; TRL CPOConfig alpha): by hand, alpha -> 0 is SimPO, alpha = 0
// is SimPO bit for bit, finite differences of the C loss, and cpo's shaped reward.
static int test_alphapo(void) {
    pref_options o;
    pref_options_default(&o);
    rlhf_err err;
    CHECK(o.alpha == 0);
    // alpha 1, beta 2, gamma 0.5: x_w = -4/2 = -2, x_l = -9/3 = -3; r = 1 - e^(-x):
    // r_w = 1 - e^2, r_l = 1 - e^3, z = 2*(e^3 - e^2) - 0.5
    pairs p = {.pc = {-4}, .pr = {-9}, .lc = {2}, .lr = {3}};
    pairs_init(&p, 1, 0);
    o.beta = 2;
    o.alpha = 1;
    CHECK(run(&p, "alphapo", NULL, &o, &err) == 0);
    double z = 2 * (exp(3.0) - exp(2.0)) - 0.5, sig_neg = 1 / (1 + exp(z));
    CHECK_CLOSE(p.out.m.loss, log1p(exp(-z)), 1e-9, 1e-9);
    // d/dpc = -sigmoid(-z) * beta * e^(-x_w) / lc
    CHECK_CLOSE(p.gc[0], -sig_neg * 2 * exp(2.0) / 2, 1e-9, 1e-6);
    CHECK_CLOSE(p.gr[0], sig_neg * 2 * exp(3.0) / 3, 1e-9, 1e-6);
    // alpha = 0 is simpo exactly; tiny alpha is simpo to rounding
    pairs q = {.pc = {-3.5f, -1}, .pr = {-7, -0.5f}, .lc = {3, 2}, .lr = {4, 1}};
    pairs a = q, s0 = q;
    pairs_init(&a, 2, 0);
    pairs_init(&s0, 2, 0);
    pref_options_default(&o);
    CHECK(run(&a, "alphapo", NULL, &o, &err) == 0 && run(&s0, "simpo", NULL, &o, &err) == 0);
    CHECK(a.out.m.loss == s0.out.m.loss && a.gc[0] == s0.gc[0] && a.gr[1] == s0.gr[1]);
    pairs_init(&a, 2, 0);
    o.alpha = 1e-7;
    CHECK(run(&a, "alphapo", NULL, &o, &err) == 0);
    CHECK_CLOSE(a.out.m.loss, s0.out.m.loss, 0, 1e-6);
    for (int i = 0; i < 2; i++) {
        CHECK_CLOSE(a.gc[i], s0.gc[i], 0, 1e-5);
        CHECK_CLOSE(a.gr[i], s0.gr[i], 0, 1e-5);
    }
    // finite differences (central, on the float inputs) for alpha = +-0.7, with label
    // smoothing; cpo (summed log-probs) with alpha 0.05 and its NLL term
    const char *types[] = {"alphapo", "alphapo", "cpo"};
    double alphas[] = {0.7, -0.7, 0.05};
    for (int k = 0; k < 3; k++) {
        pref_options_default(&o);
        o.alpha = alphas[k];
        o.label_smoothing = 0.1;
        o.beta = 0.5;
        pairs b = q;
        pairs_init(&b, 2, 0);
        CHECK(run(&b, types[k], NULL, &o, &err) == 0);
        for (int i = 0; i < 4; i++) {
            float *at = i < 2 ? &q.pc[i] : &q.pr[i - 2], keep = *at, h = 1e-2f;
            *at = keep + h;
            pairs up = q;
            pairs_init(&up, 2, 0);
            CHECK(run(&up, types[k], NULL, &o, &err) == 0);
            *at = keep - h;
            pairs dn = q;
            pairs_init(&dn, 2, 0);
            CHECK(run(&dn, types[k], NULL, &o, &err) == 0);
            *at = keep;
            double fd = (up.out.m.loss - dn.out.m.loss) / ((double)(keep + h) - (keep - h));
            double g = i < 2 ? b.gc[i] : b.gr[i - 2];
            CHECKF(fabs(fd - g) <= 1e-4 + 1e-3 * fabs(g), "%s alpha %g input %d: fd %g grad %g",
                   types[k], alphas[k], i, fd, g);
        }
    }
    // simpo reads alpha too (TRL: the shape applies to every CPOTrainer loss type)
    pairs s1 = q, a1 = q;
    pairs_init(&s1, 2, 0);
    pairs_init(&a1, 2, 0);
    pref_options_default(&o);
    o.alpha = 0.3;
    CHECK(run(&s1, "simpo", NULL, &o, &err) == 0 && run(&a1, "alphapo", NULL, &o, &err) == 0);
    CHECK(s1.out.m.loss == a1.out.m.loss && s1.out.m.loss != s0.out.m.loss);
    // a huge exponent is capped (PREF_EXP_CAP): finite loss, zero gradient past the cap
    pairs e = {.pc = {-500}, .pr = {-600}, .lc = {1}, .lr = {1}};
    pairs_init(&e, 1, 0);
    o.alpha = 1;
    CHECK(run(&e, "alphapo", NULL, &o, &err) == 0);
    CHECK(isfinite(e.out.m.loss) && e.gc[0] == 0 && e.gr[0] == 0);
    return 0;
}

static int test_register_toy(void) {
    rlhf_err err;
    CHECK(pref_find("toy_exp") == NULL);
    CHECK(pref_register(&toy_exp, &err) == 0);
    CHECK(pref_find("toy_exp") == &toy_exp);
    CHECK(pref_loss_at(pref_loss_count() - 1) == &toy_exp); // iterated (--help lists it)
    CHECK(pref_register(&toy_exp, &err) == -1);
    CHECK(strstr(err.msg, "\"toy_exp\" exists already") != NULL);
    CHECK(pref_loss_needs(pref_find("toy_exp"), PREF_NEED_REFERENCE));
    const char *types[] = {"toy_exp", "sigmoid,toy_exp"};
    for (int t = 0; t < 2; t++)
        for (int f = 0; f < 2; f++) {
            pref_options o;
            pref_options_default(&o);
            o.beta = 0.7;
            o.f_divergence_type = f ? PREF_JS_DIVERGENCE : PREF_REVERSE_KL;
            pairs p = {.pc = {-1.5f, -4, -2},
                       .pr = {-2, -3, -2.5f},
                       .rc = {-1.8f, -3.5f, -2},
                       .rr = {-2.2f, -3.1f, -2},
                       .lc = {2, 3, 1},
                       .lr = {1, 2, 2}};
            float margin[3] = {0.1f, 0, -0.2f};
            pairs_init(&p, 3, 1);
            p.b.margin = margin;
            CHECKF(run(&p, types[t], NULL, &o, &err) == 0, "%s: %s", types[t], err.msg);
            CHECK(isfinite(p.out.m.loss) && p.out.m.loss > 0);
            for (int i = 0; i < 6; i++) {
                float x = i < 3 ? p.pc[i] : p.pr[i - 3], h = 1e-2f;
                double up = toy_loss_at(&p, types[t], &o, i, x + h);
                double down = toy_loss_at(&p, types[t], &o, i, x - h);
                double fd = (up - down) / ((double)(x + h) - (double)(x - h));
                double g = i < 3 ? p.gc[i] : p.gr[i - 3];
                CHECKF(fabs(g - fd) <= 1e-4 * fabs(fd) + 1e-6, "%s %s d/d%s[%d]: %g, fd %g",
                       types[t], pref_fdiv_name(o.f_divergence_type), i < 3 ? "pc" : "pr", i % 3, g,
                       fd);
            }
        }
    return 0;
}

// The options table behind the dpo/online-dpo flags: every option a loss declares
// has a flag, and the options of the losses online DPO takes leave out the rest.
static int test_option_table(void) {
    unsigned covered = 0;
    const pref_option_def *od;
    for (int i = 0; (od = pref_option_at(i)); i++) {
        CHECKF(od->offset + (od->is_bool ? sizeof(int) : sizeof(double)) <= sizeof(pref_options),
               "%s", od->name);
        for (int j = 0; j < i; j++)
            CHECKF(strcmp(pref_option_at(j)->name, od->name), "%s", od->name);
        covered |= od->option;
    }
    pref_options o;
    pref_options_default(&o);
    const pref_option_def *beta = pref_option_at(0);
    CHECK(strcmp(beta->name, "beta") == 0 && *(double *)((char *)&o + beta->offset) == o.beta);
    const pref_loss_def *d;
    for (int i = 0; (d = pref_loss_at(i)); i++)
        CHECKF((d->options & ~covered) == 0, "%s reads an option without a flag", d->name);
    unsigned online = pref_options_used(PREF_KIND_PAIRED, PREF_NEED_REFERENCE | PREF_NEED_MARGIN |
                                                              PREF_NEED_CAL_SAMPLES);
    CHECK((online & (PREF_OPT_BETA | PREF_OPT_VPO | PREF_OPT_REFERENCE_FREE)) ==
          (PREF_OPT_BETA | PREF_OPT_VPO | PREF_OPT_REFERENCE_FREE));
    CHECK(!(online & (PREF_OPT_INPO_TAU | PREF_OPT_SRPO_ALPHA | PREF_OPT_ALOL |
                      PREF_OPT_DESIRABLE_WEIGHTS | PREF_OPT_LD_ALPHA)));
    CHECK(pref_options_used(-1, ~0u) & PREF_OPT_LD_ALPHA);
    return 0;
}

static int test_parse(void) {
    pref_loss_list l;
    rlhf_err err;
    CHECK(pref_parse(&l, "sigmoid,bco_pair,sft", "0.8,0.2,1.0", &err) == 0);
    CHECK(l.n == 3 && l.def[1] == pref_find("bco_pair"));
    CHECK_CLOSE(l.weight[0], 0.8, 0, 0);
    CHECK_CLOSE(l.weight[2], 1.0, 0, 0);
    CHECK(pref_parse(&l, " ipo , sft ", "", &err) == 0);
    CHECK(l.n == 2 && l.weight[1] == 1.0);
    CHECK(pref_parse(&l, "sigmoid,foo", NULL, &err) == -1);
    CHECK(strstr(err.msg, "unknown loss_type \"foo\"") != NULL);
    CHECK(strstr(err.msg, "sigmoid") != NULL); // the choices are listed
    CHECK(pref_parse(&l, "sigmoid,kto", NULL, &err) == -1);
    CHECK(strstr(err.msg, "cannot combine paired loss \"sigmoid\" with unpaired loss \"kto\"") !=
          NULL);
    CHECK(pref_parse(&l, "sigmoid,sft", "1", &err) == -1);
    CHECK(strstr(err.msg, "has 1 weights for 2 losses") != NULL);
    CHECK(pref_parse(&l, "sigmoid,sft", "1,abc", &err) == -1);
    CHECK(strstr(err.msg, "\"abc\" is not a number") != NULL);
    CHECK(pref_parse(&l, "sigmoid,,sft", NULL, &err) == -1);
    CHECK(strstr(err.msg, "empty entry") != NULL);
    CHECK(pref_parse(&l, "", NULL, &err) == -1);
    CHECK(pref_parse(&l, "sft,sft,sft,sft,sft,sft,sft,sft,sft", NULL, &err) == -1);
    CHECK(strstr(err.msg, "more than 8") != NULL);
    return 0;
}

static int test_errors(void) {
    pref_options o;
    pref_options_default(&o);
    rlhf_err err;
    pairs p = {
        .pc = {-1, -2}, .pr = {-2, -3}, .rc = {-1, -2}, .rr = {-2, -3}, .lc = {1, 0}, .lr = {1, 1}};
    pairs_init(&p, 2, 1);
    p.gc[0] = 42;
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "chosen.len[1] = 0: zero-length completion") != NULL);
    CHECK(p.gc[0] == 42); // nothing written on error
    p.lc[1] = 2;
    p.pr[1] = NAN;
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "rejected.logps[1] is nan: inputs must be finite") != NULL);
    p.pr[1] = -3;
    pairs_init(&p, 2, 0);
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "loss \"sigmoid\" needs reference log-probs for chosen") != NULL);
    CHECK(run(&p, "simpo", NULL, &o, &err) == 0); // reference-free losses need none
    o.reference_free = 1;
    pairs_init(&p, 2, 0);
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == 0);
    pref_options_default(&o);
    pairs_init(&p, 2, 1);
    CHECK(run(&p, "exo_pair", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "exo_pair needs 0 < label_smoothing < 1") != NULL);
    o.label_smoothing = 0.5;
    CHECK(run(&p, "robust", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "robust needs label_smoothing < 0.5") != NULL);
    pref_options_default(&o);
    o.f_divergence_type = PREF_JS_DIVERGENCE;
    CHECK(run(&p, "sft", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "js_divergence: none of the losses uses it") != NULL);
    pref_options_default(&o);
    CHECK(run(&p, "inpo", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "inpo needs") != NULL);
    CHECK(run(&p, "osp", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "osp needs a preference strength") != NULL);
    CHECK(run(&p, "srpo", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "srpo needs the four revision") != NULL);
    p.b.n = 0;
    CHECK(run(&p, "sigmoid", NULL, &o, &err) == -1);
    CHECK(strstr(err.msg, "empty batch") != NULL);
    return 0;
}

static int test_running(void) {
    pref_running r;
    pref_running_init(&r);
    float x[3] = {1, 2, 3};
    pref_running_update(&r, x, 3);
    CHECK_CLOSE(r.mean, 2, 1e-12, 0); // the first update sets the mean (count starts at 1e-24)
    CHECK_CLOSE(r.var, 2.0 / 3, 1e-12, 0);
    float y[1] = {6};
    pref_running_update(&r, y, 1);
    CHECK_CLOSE(r.mean, 3, 1e-12, 0);  // (1+2+3+6)/4
    CHECK_CLOSE(r.var, 3.5, 1e-12, 0); // population variance of {1,2,3,6}
    CHECK_CLOSE(r.count, 4, 1e-12, 0);
    return 0;
}

int main(void) {
    RUN(test_dpo_margin_zero);
    RUN(test_dpo_hand);
    RUN(test_mean_over_pairs);
    RUN(test_ipo_simpo_hinge_hand);
    RUN(test_sft_and_combination);
    RUN(test_kto_hand);
    RUN(test_tokens_and_ld);
    RUN(test_extreme_finite);
    RUN(test_squared_losses_cap);
    RUN(test_registry);
    RUN(test_register_toy);
    RUN(test_alphapo);
    RUN(test_option_table);
    RUN(test_parse);
    RUN(test_errors);
    RUN(test_running);
    TEST_EXIT();
}
