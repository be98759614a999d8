// algo/pref_pair: the paired losses with a reference model (the DPO family as
// in TRL's DPOTrainer, and the seed papers' VPO, INPO, SRPO, OSP). One function
// per loss: for every pair i it adds w[i] * loss_i to v->loss and w[i] *
// d(loss_i)/d(log-prob) to the view's accumulators. Notation: s_w = v->sc[i],
// s_l = v->sr[i] are the f-divergence scores of the log-ratios rho = log pi -
// log pi_ref (s = rho for reverse KL), delta = s_w - s_l, z the logit.
// Formulas, sources and where we differ from TRL: docs/losses.md.
#include <math.h>
#include <stdlib.h>

#include "algo/pref.h"

#define SIG pref_sigmoid
#define SOFTPLUS pref_softplus

// d(loss)/d(delta) = g: adds the chain through the scores to the policy inputs.
static void add_delta_grad(pref_view *v, int i, double g) {
    v->g_pc[i] += g * v->dsc[i];
    v->g_pr[i] -= g * v->dsr[i];
}

// cDPO (Mitchell 2023): -(1-eps)*logsig(z) - eps*logsig(-z); *d = d/dz.
static double cdpo(double z, double eps, double *d) {
    *d = -(1 - eps) * SIG(-z) + eps * SIG(z);
    return (1 - eps) * SOFTPLUS(-z) + eps * SOFTPLUS(z);
}

// DPO (Rafailov et al. 2023, eq. 7) with cDPO label smoothing. Older TRL
// smooths "sigmoid" this way; TRL 1.x dropped label_smoothing from "sigmoid" (it
// equals ours at eps = 0, the default).
static int pref_loss_sigmoid(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, eps = v->o->label_smoothing;
    for (int i = 0; i < v->n; i++) {
        double d, z = beta * (v->sc[i] - v->sr[i]) - v->margin[i];
        v->loss += w[i] * cdpo(z, eps, &d);
        add_delta_grad(v, i, w[i] * d * beta);
    }
    return 0;
}

// Robust DPO (Chowdhury et al. 2024): unbiased under label flips with probability eps.
static int pref_loss_robust(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, eps = v->o->label_smoothing;
    if (!(eps < 0.5))
        return rlhf_fail(err, "robust needs label_smoothing < 0.5 (the flip rate), got %g", eps);
    double k = 1.0 / (1 - 2 * eps);
    for (int i = 0; i < v->n; i++) {
        double z = beta * (v->sc[i] - v->sr[i]) - v->margin[i];
        v->loss += w[i] * k * ((1 - eps) * SOFTPLUS(-z) - eps * SOFTPLUS(z));
        double d = k * (-(1 - eps) * SIG(-z) - eps * SIG(z));
        add_delta_grad(v, i, w[i] * d * beta);
    }
    return 0;
}

// SLiC hinge (Zhao et al. 2023): relu(1 - z); gradient 0 at the kink, as torch.relu.
static int pref_loss_hinge(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double z = beta * (v->sc[i] - v->sr[i]) - v->margin[i];
        if (1 - z > 0) {
            v->loss += w[i] * (1 - z);
            add_delta_grad(v, i, -w[i] * beta);
        }
    }
    return 0;
}

// The squared losses (ipo, sppo_hard) square the scores, and with forward KL or the
// alpha-divergence a score is -e^(-alpha rho): a log-ratio of -50 squares to e^100 and
// its gradient to 2e^100, both past float32 (they came out -inf). So there each score's
// magnitude is capped at e^(PREF_EXP_CAP/2) = e^40, with zero gradient past the cap (as
// torch.clamp): the squares stay below e^80 like every other capped exponential, and
// nothing changes below the cap (reverse KL and JS scores of any real log-ratio).
static double sq_score(double s, double ds, double *ds_out) {
    const double cap = 2.3538526683701998e17; // exp(PREF_EXP_CAP / 2)
    if (fabs(s) > cap) {
        *ds_out = 0.0;
        return copysign(cap, s);
    }
    *ds_out = ds;
    return s;
}

// IPO (Azar et al. 2023, eq. 17) on per-token scores, as TRL (confirmed there with
// the IPO authors): (s_w/lc - s_l/lr - 1/(2 beta))^2.
static int pref_loss_ipo(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double dw, dl, sw = sq_score(v->sc[i], v->dsc[i], &dw),
                       sl = sq_score(v->sr[i], v->dsr[i], &dl);
        double t = sw / v->lc[i] - sl / v->lr[i] - 1 / (2 * beta);
        v->loss += w[i] * t * t;
        v->g_pc[i] += w[i] * 2 * t / v->lc[i] * dw;
        v->g_pr[i] -= w[i] * 2 * t / v->lr[i] * dl;
    }
    return 0;
}

// EXO-pref (Ji et al. 2024, eq. 16), K = 2: KL(q || p) with q = softmax of beta*s over
// {chosen, rejected} and p = (1-eps, eps). d/dz = q_w q_l (z - log(1-eps) + log eps).
static int pref_loss_exo_pair(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, eps = v->o->label_smoothing;
    if (!(eps > 0 && eps < 1))
        return rlhf_fail(err,
                         "exo_pair needs 0 < label_smoothing < 1 (its epsilon; the EXO paper "
                         "uses 1e-3), got %g",
                         eps);
    double lpw = log1p(-eps), lpl = log(eps);
    for (int i = 0; i < v->n; i++) {
        double z = beta * (v->sc[i] - v->sr[i]);
        double qw = SIG(z), ql = SIG(-z);
        v->loss += w[i] * (qw * (pref_log_sigmoid(z) - lpw) + ql * (pref_log_sigmoid(-z) - lpl));
        add_delta_grad(v, i, w[i] * qw * ql * (z - lpw + lpl) * beta);
    }
    return 0;
}

// NCA (Chen et al. 2024), pairwise: -logsig(a) - logsig(-a)/2 - logsig(-b)/2, a = beta*s_w, b =
// beta*s_l.
static int pref_loss_nca_pair(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double a = beta * v->sc[i], b = beta * v->sr[i];
        v->loss += w[i] * (SOFTPLUS(-a) + 0.5 * SOFTPLUS(a) + 0.5 * SOFTPLUS(b));
        v->g_pc[i] += w[i] * beta * (-SIG(-a) + 0.5 * SIG(a)) * v->dsc[i];
        v->g_pr[i] += w[i] * beta * 0.5 * SIG(b) * v->dsr[i];
    }
    return 0;
}

// BCO, paired (Jung et al. 2024): -logsig(beta*s_w - delta) - logsig(-(beta*s_l - delta)).
// delta = options.bco_delta: older TRL used a running mean of the batch's rewards,
// TRL 1.x uses 0 (our default).
static int pref_loss_bco_pair(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, delta = v->o->bco_delta;
    for (int i = 0; i < v->n; i++) {
        double a = beta * v->sc[i] - delta, b = beta * v->sr[i] - delta;
        v->loss += w[i] * (SOFTPLUS(-a) + SOFTPLUS(b));
        v->g_pc[i] += w[i] * beta * -SIG(-a) * v->dsc[i];
        v->g_pr[i] += w[i] * beta * SIG(b) * v->dsr[i];
    }
    return 0;
}

// SPPO with hard labels (Wu et al. 2024, eq. 4.7 with P = 1 / 0):
// (s_w - 1/(2 beta))^2 + (s_l + 1/(2 beta))^2, scores capped as ipo's (sq_score).
static int pref_loss_sppo_hard(pref_view *v, const double *w, rlhf_err *err) {
    double h = 0.5 / v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double dw, dl, a = sq_score(v->sc[i], v->dsc[i], &dw) - h,
                       b = sq_score(v->sr[i], v->dsr[i], &dl) + h;
        v->loss += w[i] * (a * a + b * b);
        v->g_pc[i] += w[i] * 2 * a * dw;
        v->g_pr[i] += w[i] * 2 * b * dl;
    }
    return 0;
}

static int cmp_by_key(const void *a, const void *b, void *key) {
    const double *k = key;
    int i = *(const int *)a, j = *(const int *)b;
    if (k[i] < k[j]) return -1;
    if (k[i] > k[j]) return 1;
    return (i > j) - (i < j);
}

// idx = 0..n-1 sorted by key ascending (ties by index).
static void argsort(int n, const double *key, int *idx) {
    for (int i = 0; i < n; i++) idx[i] = i;
    qsort_r(idx, (size_t)n, sizeof(int), cmp_by_key, (void *)key);
}

// AOT (Melnyk et al. 2024): the cDPO loss on the k-th smallest of a_i minus the
// k-th smallest of b_i, over the batch. Gradients go to the pairs that sorted into
// position k; the weight of position k is w[k] (as TRL, which multiplies the sorted
// losses by the unsorted per-pair weights).
static void aot_core(pref_view *v, const double *w, const double *a, const double *bb, int paired) {
    int n = v->n;
    double beta = v->o->beta, eps = v->o->label_smoothing;
    int *ia = xmalloc((size_t)n * sizeof(int)), *ib = xmalloc((size_t)n * sizeof(int));
    argsort(n, a, ia);
    argsort(n, bb, ib);
    for (int k = 0; k < n; k++) {
        double d, z = beta * (a[ia[k]] - bb[ib[k]]);
        v->loss += w[k] * cdpo(z, eps, &d);
        double g = w[k] * d * beta;
        if (paired) { // a = pc - pr: the chosen and rejected of the same pair
            v->g_pc[ia[k]] += g;
            v->g_pr[ia[k]] -= g;
        } else { // a = rho_w, b = rho_l sorted separately
            v->g_pc[ia[k]] += g;
            v->g_pr[ib[k]] -= g;
        }
    }
    free(ia);
    free(ib);
}

// AOT paired: a = pc - pr, b = rc - rr (log-probs, not f-divergence scores, as TRL).
static int pref_loss_aot(pref_view *v, const double *w, rlhf_err *err) {
    int n = v->n;
    double *a = xmalloc((size_t)n * sizeof(double)), *bb = xmalloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) a[i] = v->pc[i] - v->pr[i], bb[i] = v->rc[i] - v->rr[i];
    aot_core(v, w, a, bb, 1);
    free(a);
    free(bb);
    return 0;
}

// AOT unpaired (older TRL "aot_pair", TRL 1.x "aot_unpaired"): a = rho_w, b = rho_l.
static int pref_loss_aot_pair(pref_view *v, const double *w, rlhf_err *err) {
    int n = v->n;
    double *a = xmalloc((size_t)n * sizeof(double)), *bb = xmalloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) a[i] = v->pc[i] - v->rc[i], bb[i] = v->pr[i] - v->rr[i];
    aot_core(v, w, a, bb, 0);
    free(a);
    free(bb);
    return 0;
}

// sigmoid'(x) = sig(x) sig(-x), without cancellation.
static double dsig(double x) {
    return SIG(x) * SIG(-x);
}

// APO-zero (D'Oosterlinck et al. 2024, eq. 7): 1 - sig(beta*rho_w) + sig(beta*rho_l),
// on the log-ratios themselves (as TRL).
static int pref_loss_apo_zero(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double a = beta * (v->pc[i] - v->rc[i]), b = beta * (v->pr[i] - v->rr[i]);
        v->loss += w[i] * (SIG(-a) + SIG(b));
        v->g_pc[i] -= w[i] * beta * dsig(a);
        v->g_pr[i] += w[i] * beta * dsig(b);
    }
    return 0;
}

// APO-down (eq. 8): sig(beta*rho_w) + 1 - sig(beta*delta).
static int pref_loss_apo_down(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double a = beta * (v->pc[i] - v->rc[i]), z = beta * (v->sc[i] - v->sr[i]);
        v->loss += w[i] * (SIG(a) + SIG(-z));
        v->g_pc[i] += w[i] * beta * dsig(a);
        add_delta_grad(v, i, -w[i] * beta * dsig(z));
    }
    return 0;
}

// DiscoPOP (Lu et al. 2024, eq. 5), z = beta*delta, m = sig(z/tau):
// -logsig(z)*(1 - m) + exp(-z)*m. The second term is evaluated as exp(-z +
// logsig(z/tau)) with the exponent capped: TRL's exp(-z) alone overflows (inf, then
// NaN when m underflows) for z < -88 in float32.
static int pref_loss_discopop(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, tau = v->o->discopop_tau;
    if (!(tau > 0)) return rlhf_fail(err, "discopop_tau = %g must be > 0", tau);
    for (int i = 0; i < v->n; i++) {
        double z = beta * (v->sc[i] - v->sr[i]);
        double m = SIG(z / tau), om = SIG(-z / tau), lsz = pref_log_sigmoid(z);
        double de, e = pref_exp_capped(-z + pref_log_sigmoid(z / tau), &de);
        v->loss += w[i] * (-lsz * om + e);
        double d = -SIG(-z) * om + lsz * m * om / tau + de * (-1 + om / tau);
        add_delta_grad(v, i, w[i] * d * beta);
    }
    return 0;
}

// Length-normalised DPO (TRL 1.7 "sigmoid_norm"): -logsig(beta*(s_w/lc - s_l/lr) - m).
// It keeps the reference (unlike SimPO).
static int pref_loss_sigmoid_norm(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double z = beta * (v->sc[i] / v->lc[i] - v->sr[i] / v->lr[i]) - v->margin[i];
        v->loss += w[i] * SOFTPLUS(-z);
        double d = -SIG(-z) * beta;
        v->g_pc[i] += w[i] * d / v->lc[i] * v->dsc[i];
        v->g_pr[i] -= w[i] * d / v->lr[i] * v->dsr[i];
    }
    return 0;
}

// OSP (Zhai et al. 2024): the soft-preference cross-entropy
// -(p*logsig(z) + (1-p)*logsig(-z)), p = batch.strength[i].
static int pref_loss_osp(pref_view *v, const double *w, rlhf_err *err) {
    const float *p = v->b->strength;
    if (!p) return rlhf_fail(err, "osp needs a preference strength per pair (batch.strength)");
    for (int i = 0; i < v->n; i++)
        if (!(p[i] >= 0 && p[i] <= 1))
            return rlhf_fail(err, "strength[%d] = %g must be in [0, 1]", i, (double)p[i]);
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double z = beta * (v->sc[i] - v->sr[i]) - v->margin[i];
        v->loss += w[i] * (p[i] * SOFTPLUS(-z) + (1 - p[i]) * SOFTPLUS(z));
        double d = -p[i] * SIG(-z) + (1 - p[i]) * SIG(z);
        add_delta_grad(v, i, w[i] * d * beta);
    }
    return 0;
}

// VPO (Cen et al. 2024): the DPO loss plus sign*alpha*beta*log pi(y_cal), y_cal the
// calibration sample (batch.cal, else the chosen response). Derived from
// r = argmax_r  l_BT(r) + sign*alpha*max_pi J(r, pi) with r = beta*rho + beta*log Z and
// E_{pi_cal}[r] = 0, so max_pi J = -beta*E_cal[rho]; minimising -l_BT - sign*alpha*J*
// gives DPO + sign*alpha*beta*E_cal[log pi] (+ a constant). sign = -1 (offline,
// pessimistic) raises log pi(y_cal), an SFT-like term; +1 (online) lowers it.
static int pref_loss_vpo(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, eps = v->o->label_smoothing;
    double k = v->o->vpo_sign * v->o->vpo_alpha * beta;
    for (int i = 0; i < v->n; i++) {
        double d, z = beta * (v->sc[i] - v->sr[i]) - v->margin[i];
        v->loss += w[i] * (cdpo(z, eps, &d) + k * v->cal[i]);
        add_delta_grad(v, i, w[i] * d * beta);
        v->g_cal[i] += w[i] * k;
    }
    return 0;
}

// INPO (Zhang et al. 2024): (h - 1/(2 eta))^2 with eta = beta, tau = inpo_tau and
// h = (pc - pr) - tau/eta*(rc - rr) - (eta - tau)/eta*(tc - tr), t = pi_t the
// previous iterate (batch.prev_*_logps). Checked against a third-party
// reimplementation (the card's [C3]); summed log-probs, not length-normalised.
static int pref_loss_inpo(pref_view *v, const double *w, rlhf_err *err) {
    double eta = v->o->beta, tau = v->o->inpo_tau;
    if (!v->prev_c)
        return rlhf_fail(err, "inpo needs log-probs of the previous iterate pi_t "
                              "(batch.prev_chosen_logps and prev_rejected_logps)");
    if (!(tau > 0 && tau < eta))
        return rlhf_fail(err, "inpo_tau = %g must be in (0, beta = %g)", tau, eta);
    for (int i = 0; i < v->n; i++) {
        double h = (v->pc[i] - v->pr[i]) - tau / eta * (v->rc[i] - v->rr[i]) -
                   (eta - tau) / eta * (v->prev_c[i] - v->prev_r[i]);
        double t = h - 1 / (2 * eta);
        v->loss += w[i] * t * t;
        v->g_pc[i] += w[i] * 2 * t;
        v->g_pr[i] -= w[i] * 2 * t;
    }
    return 0;
}

// SRPO (Choi et al. 2024), offline loss on one model used as generator pi(y|x) and
// reviser pi(y'|x, y). With r(a|b) = log-ratio of the revision of y_b into y_a and
// rho_w, rho_l the generator's log-ratios:
//   self = (1/2 - beta*(r(w|l) - r(l|l)))^2 + (1/2 - beta*(r(w|w) - r(l|w)))^2
//   gen  = (beta*(r(w|l) + rho_w - r(l|w) - rho_l) - 1)^2
//   loss = alpha*self + (1 - alpha)*gen
// The targets follow from beta*log(pi*/pi_ref)(y2|y1) = P(y2 > y1) - beta*log Z(y1)
// with P(y > y) = 1/2; the exact form is checked against the SRPO trainer proposed
// for TRL (PR #1772, not merged), as the card asks.
static int pref_loss_srpo(pref_view *v, const double *w, rlhf_err *err) {
    for (int k = 0; k < PREF_NREV; k++)
        if (!v->rev_p[k] || !v->rev_r[k])
            return rlhf_fail(err,
                             "srpo needs the four revision log-probs, policy and reference "
                             "(batch.rev[0..3]: w|l, l|l, w|w, l|w); rev[%d] is missing",
                             k);
    double beta = v->o->beta, al = v->o->srpo_alpha;
    if (!(al >= 0 && al <= 1)) return rlhf_fail(err, "srpo_alpha = %g must be in [0, 1]", al);
    for (int i = 0; i < v->n; i++) {
        double r[PREF_NREV];
        for (int k = 0; k < PREF_NREV; k++) r[k] = v->rev_p[k][i] - v->rev_r[k][i];
        double rw = v->pc[i] - v->rc[i], rl = v->pr[i] - v->rr[i];
        double a =
            0.5 - beta * (r[PREF_REV_CHOSEN_GIVEN_REJECTED] - r[PREF_REV_REJECTED_GIVEN_REJECTED]);
        double c =
            0.5 - beta * (r[PREF_REV_CHOSEN_GIVEN_CHOSEN] - r[PREF_REV_REJECTED_GIVEN_CHOSEN]);
        double g = beta * (r[PREF_REV_CHOSEN_GIVEN_REJECTED] + rw -
                           r[PREF_REV_REJECTED_GIVEN_CHOSEN] - rl) -
                   1;
        v->loss += w[i] * (al * (a * a + c * c) + (1 - al) * g * g);
        double ga = w[i] * al * 2 * a * beta, gc = w[i] * al * 2 * c * beta;
        double gg = w[i] * (1 - al) * 2 * g * beta;
        v->g_rev[PREF_REV_CHOSEN_GIVEN_REJECTED][i] += -ga + gg;
        v->g_rev[PREF_REV_REJECTED_GIVEN_REJECTED][i] += ga;
        v->g_rev[PREF_REV_CHOSEN_GIVEN_CHOSEN][i] += -gc;
        v->g_rev[PREF_REV_REJECTED_GIVEN_CHOSEN][i] += gc - gg;
        v->g_pc[i] += gg;
        v->g_pr[i] -= gg;
    }
    return 0;
}

// ---------------------------------------------------------- registration --
// One entry per loss (algo/pref.h, PREF_LOSS): name, kind, needs, options
// read, formula, source. z = beta*(s_w - s_l) - margin; rho = log pi - log pi_ref;
// pc, pr policy log-probs; lc, lr lengths; eps = label_smoothing.
#define PAIRED PREF_KIND_PAIRED
#define UNPAIRED PREF_KIND_UNPAIRED
#define R PREF_NEED_REFERENCE
#define M PREF_NEED_MARGIN
#define B PREF_OPT_BETA
#define LS PREF_OPT_LABEL_SMOOTHING
#define FD PREF_OPT_F_DIVERGENCE
const pref_loss_def pref_losses_pair[] = {
    PREF_LOSS("sigmoid", pref_loss_sigmoid, PAIRED, R | M, B | LS | FD,
              "-(1-eps)*logsig(z) - eps*logsig(-z)",
              "DPO (Rafailov et al. 2023), cDPO label smoothing"),
    PREF_LOSS("robust", pref_loss_robust, PAIRED, R | M, B | LS | FD,
              "(-(1-eps)*logsig(z) + eps*logsig(-z)) / (1-2eps)",
              "Robust DPO (Chowdhury et al. 2024)"),
    PREF_LOSS("hinge", pref_loss_hinge, PAIRED, R | M, B | FD, "relu(1 - z)",
              "SLiC (Zhao et al. 2023)"),
    PREF_LOSS("ipo", pref_loss_ipo, PAIRED, R, B | FD, "(s_w/lc - s_l/lr - 1/(2beta))^2",
              "IPO (Azar et al. 2023), TRL's per-token normalisation"),
    PREF_LOSS("exo_pair", pref_loss_exo_pair, PAIRED, R, B | LS | FD,
              "KL(softmax(beta*s) || (1-eps, eps))", "EXO (Ji et al. 2024), needs 0 < eps < 1"),
    PREF_LOSS("nca_pair", pref_loss_nca_pair, PAIRED, R, B | FD,
              "-logsig(beta*s_w) - logsig(-beta*s_w)/2 - logsig(-beta*s_l)/2",
              "NCA (Chen et al. 2024)"),
    PREF_LOSS("bco_pair", pref_loss_bco_pair, PAIRED, R, B | FD | PREF_OPT_BCO_DELTA,
              "-logsig(beta*s_w - delta) - logsig(-(beta*s_l - delta))", "BCO (Jung et al. 2024)"),
    PREF_LOSS("sppo_hard", pref_loss_sppo_hard, PAIRED, R, B | FD,
              "(s_w - 1/(2beta))^2 + (s_l + 1/(2beta))^2", "SPPO, hard labels (Wu et al. 2024)"),
    PREF_LOSS("aot", pref_loss_aot, PAIRED, R | PREF_NEED_WHOLE_BATCH, B | LS,
              "cDPO on sort(pc - pr) - sort(rc - rr) over the batch",
              "AOT paired (Melnyk et al. 2024)"),
    PREF_LOSS("aot_pair", pref_loss_aot_pair, PAIRED, R | PREF_NEED_WHOLE_BATCH, B | LS,
              "cDPO on sort(rho_w) - sort(rho_l) over the batch",
              "AOT unpaired (TRL 1.x: aot_unpaired)"),
    PREF_LOSS("aot_unpaired", pref_loss_aot_pair, PAIRED, R | PREF_NEED_WHOLE_BATCH, B | LS, "the same as aot_pair",
              "TRL 1.x name of aot_pair"),
    PREF_LOSS("apo_zero", pref_loss_apo_zero, PAIRED, R, B, "1 - sig(beta*rho_w) + sig(beta*rho_l)",
              "APO-zero (D'Oosterlinck et al. 2024)"),
    PREF_LOSS("apo_down", pref_loss_apo_down, PAIRED, R, B | FD,
              "sig(beta*rho_w) + 1 - sig(beta*(s_w - s_l))",
              "APO-down (D'Oosterlinck et al. 2024)"),
    PREF_LOSS("discopop", pref_loss_discopop, PAIRED, R, B | FD | PREF_OPT_DISCOPOP_TAU,
              "-logsig(z)*(1-sig(z/tau)) + exp(-z)*sig(z/tau)", "DiscoPOP (Chris Lu et al. 2024)"),
    PREF_LOSS("sigmoid_norm", pref_loss_sigmoid_norm, PAIRED, R | M, B | FD,
              "-logsig(beta*(s_w/lc - s_l/lr) - m)",
              "length-normalised DPO (TRL 1.7 sigmoid_norm)"),
    PREF_LOSS("osp", pref_loss_osp, PAIRED, R | M | PREF_NEED_STRENGTH, B | FD,
              "-(p*logsig(z) + (1-p)*logsig(-z)), p = strength",
              "OSP soft preferences (Zhai et al. 2024)"),
    PREF_LOSS("vpo", pref_loss_vpo, PAIRED, R | M | PREF_NEED_CAL_SAMPLES,
              B | LS | FD | PREF_OPT_VPO, "sigmoid + sign*alpha*beta*log pi(y_cal)",
              "VPO (Cen et al. 2024), sign -1 offline"),
    PREF_LOSS("inpo", pref_loss_inpo, PAIRED, R | PREF_NEED_PREVIOUS, B | PREF_OPT_INPO_TAU,
              "(h - 1/(2eta))^2, h = (pc-pr) - tau/eta (rc-rr) - (eta-tau)/eta (tc-tr)",
              "INPO (Zhang et al. 2024)"),
    PREF_LOSS("srpo", pref_loss_srpo, PAIRED, R | PREF_NEED_REVISIONS, B | PREF_OPT_SRPO_ALPHA,
              "alpha*self-improvement + (1-alpha)*generative squared losses",
              "SRPO (Choi et al. 2024)"),
    {NULL},
};
#undef PAIRED
#undef UNPAIRED
#undef R
#undef M
#undef B
#undef LS
#undef FD
