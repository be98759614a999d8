// algo/pref_free: the reference-free paired losses (SFT, SimPO, AlphaPO, CPO, ORPO, CPL),
// the unpaired ones (KTO, BCO, APO-zero unpaired) and A-LoL's advantage-weighted
// offline policy gradients. Same contract as pref_pair.c: add w[i] * loss_i and
// its gradients to the view. Formulas and sources: docs/losses.md.
#include <math.h>
#include <stdlib.h>

#include "algo/alol.h"
#include "algo/pref.h"

#define SIG pref_sigmoid
#define SOFTPLUS pref_softplus

static double cdpo(double z, double eps, double *d) {
    *d = -(1 - eps) * SIG(-z) + eps * SIG(z);
    return (1 - eps) * SOFTPLUS(-z) + eps * SOFTPLUS(z);
}

// scale * NLL of the chosen completions per token over the batch, -sum_i pc_i / sum_i lc_i
// (TRL's F.cross_entropy over the chosen tokens: a batch token mean, not a mean of
// per-sequence means). Its per-pair weight is the batch value, so the term adds
// sum_i w[i] * NLL (TRL expands the scalar to every pair before weighting).
static void nll_term(pref_view *v, const double *w, double scale) {
    double s = 0, L = 0, W = 0;
    for (int i = 0; i < v->n; i++) s += v->pc_sum[i], L += v->lc[i], W += w[i];
    v->loss += scale * W * (-s / L);
    for (int i = 0; i < v->n; i++) v->g_pc_sum[i] -= scale * W / L;
}

static int pref_loss_sft(pref_view *v, const double *w, rlhf_err *err) {
    nll_term(v, w, 1.0);
    return 0;
}

// AlphaPO's reward (Gupta et al. 2025; TRL CPOTrainer `alpha`): the log-likelihood
// reward x shaped as (1 - e^(-alpha x))/alpha, *d its derivative e^(-alpha x) (the
// exponent capped at PREF_EXP_CAP: 0 past it). expm1 keeps small alpha exact.
static double alpha_reward(double x, double alpha, double *d) {
    double u = -alpha * x, e = pref_exp_capped(u, d);
    return (u < PREF_EXP_CAP ? -expm1(u) : 1 - e) / alpha;
}

// SimPO with AlphaPO's reward: cDPO on beta*(r(pc/lc) - r(pr/lr)) - gamma - margin.
static void simpo_alpha(pref_view *v, const double *w) {
    double beta = v->o->beta, eps = v->o->label_smoothing, gamma = v->o->simpo_gamma;
    double alpha = v->o->alpha;
    for (int i = 0; i < v->n; i++) {
        double dw, dl, d;
        double rw = alpha_reward(v->pc[i] / v->lc[i], alpha, &dw);
        double rl = alpha_reward(v->pr[i] / v->lr[i], alpha, &dl);
        double z = beta * (rw - rl) - gamma - v->margin[i];
        v->loss += w[i] * cdpo(z, eps, &d);
        v->g_pc[i] += w[i] * d * beta * dw / v->lc[i];
        v->g_pr[i] -= w[i] * d * beta * dl / v->lr[i];
    }
}

// SimPO (Meng et al. 2024): cDPO on beta*(pc/lc - pr/lr) - gamma - margin, no reference
// (TRL CPOTrainer loss_type "simpo" with cpo_alpha = 0). alpha != 0: AlphaPO.
static int pref_loss_simpo(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, eps = v->o->label_smoothing, gamma = v->o->simpo_gamma;
    if (v->o->alpha != 0) {
        simpo_alpha(v, w);
        return 0;
    }
    for (int i = 0; i < v->n; i++) {
        double d, z = beta * (v->pc[i] / v->lc[i] - v->pr[i] / v->lr[i]) - gamma - v->margin[i];
        v->loss += w[i] * cdpo(z, eps, &d);
        v->g_pc[i] += w[i] * d * beta / v->lc[i];
        v->g_pr[i] -= w[i] * d * beta / v->lr[i];
    }
    return 0;
}

// CPO (Xu et al. 2024; TRL CPOTrainer loss_type "sigmoid"): cDPO on beta*(pc - pr) -
// margin, no reference, plus cpo_alpha times the chosen NLL. alpha != 0: AlphaPO's
// reward on the summed log-probs, as TRL's CPOTrainer applies it to every loss type.
static void cpo_alpha(pref_view *v, const double *w) {
    double beta = v->o->beta, eps = v->o->label_smoothing;
    for (int i = 0; i < v->n; i++) {
        double dw, dl, d;
        double rw = alpha_reward(v->pc[i], v->o->alpha, &dw);
        double rl = alpha_reward(v->pr[i], v->o->alpha, &dl);
        double z = beta * (rw - rl) - v->margin[i];
        v->loss += w[i] * cdpo(z, eps, &d);
        v->g_pc[i] += w[i] * d * beta * dw;
        v->g_pr[i] -= w[i] * d * beta * dl;
    }
}

static int pref_loss_cpo(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, eps = v->o->label_smoothing;
    if (v->o->alpha != 0) {
        cpo_alpha(v, w);
        if (v->o->cpo_alpha != 0) nll_term(v, w, v->o->cpo_alpha);
        return 0;
    }
    for (int i = 0; i < v->n; i++) {
        double d, z = beta * (v->pc[i] - v->pr[i]) - v->margin[i];
        v->loss += w[i] * cdpo(z, eps, &d);
        v->g_pc[i] += w[i] * d * beta;
        v->g_pr[i] -= w[i] * d * beta;
    }
    if (v->o->cpo_alpha != 0) nll_term(v, w, v->o->cpo_alpha);
    return 0;
}

// log(1 - e^x), x < 0, without cancellation.
static double log1mexp(double x) {
    return x > -M_LN2 ? log(-expm1(x)) : log1p(-exp(x));
}

#define ORPO_MAX_MEAN_LOGP (-1e-6)

// ORPO (Hong et al. 2024; TRL ORPOTrainer, lambda = beta): NLL of chosen minus
// beta*logsig(log odds ratio), odds from the mean token log-probs x = p/len:
// log odds(x) = x - log(1 - e^x). x is capped at -1e-6 so the odds stay finite (a
// mean token log-prob of 0 has infinite odds); gradient 0 past the cap.
static int pref_loss_orpo(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta;
    for (int i = 0; i < v->n; i++) {
        double xc = v->pc[i] / v->lc[i], xr = v->pr[i] / v->lr[i];
        double kc = 1 / v->lc[i], kr = 1 / v->lr[i];
        if (xc > ORPO_MAX_MEAN_LOGP) xc = ORPO_MAX_MEAN_LOGP, kc = 0;
        if (xr > ORPO_MAX_MEAN_LOGP) xr = ORPO_MAX_MEAN_LOGP, kr = 0;
        double lo = (xc - xr) - (log1mexp(xc) - log1mexp(xr));
        v->loss += w[i] * beta * SOFTPLUS(-lo);
        double d = -beta * SIG(-lo); // d/d lo
        v->g_pc[i] += w[i] * d / -expm1(xc) * kc;
        v->g_pr[i] -= w[i] * d / -expm1(xr) * kr;
    }
    nll_term(v, w, 1.0);
    return 0;
}

// CPL (Hejna et al. 2024): -logsig(alpha*S+ - lambda*alpha*S-), alpha = beta, lambda =
// cpl_lambda; S = log pi (cpl) or log pi - log pi_ref (cpl_kl), summed over the
// segment without discount (as the authors' code).
static void cpl_core(pref_view *v, const double *w, int kl) {
    double beta = v->o->beta, lam = v->o->cpl_lambda;
    for (int i = 0; i < v->n; i++) {
        double sp = v->pc[i] - (kl ? v->rc[i] : 0), sm = v->pr[i] - (kl ? v->rr[i] : 0);
        double z = beta * sp - lam * beta * sm;
        v->loss += w[i] * SOFTPLUS(-z);
        double d = -SIG(-z);
        v->g_pc[i] += w[i] * d * beta;
        v->g_pr[i] -= w[i] * d * lam * beta;
    }
}

static int pref_loss_cpl(pref_view *v, const double *w, rlhf_err *err) {
    cpl_core(v, w, 0);
    return 0;
}

static int pref_loss_cpl_kl(pref_view *v, const double *w, rlhf_err *err) {
    cpl_core(v, w, 1);
    return 0;
}

// ------------------------------------------------------------- unpaired --
static double dsig(double x) {
    return SIG(x) * SIG(-x);
}

// KTO (Ethayarajh et al. 2024, eq. 7; TRL kto_loss), rho = p - r, z0 = batch.kl:
// desirable w_D*(1 - sig(beta*(rho - z0))), undesirable w_U*(1 - sig(beta*(z0 - rho))),
// mean over all n examples. z0 is an input, detached (TRL computes it from the
// mismatched KL completions: pref_kto_kl).
static int pref_loss_kto(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, z0 = v->b->kl;
    if (!isfinite(z0)) return rlhf_fail(err, "kto: batch.kl (z0) is %g", z0);
    double wd = v->o->desirable_weight, wu = v->o->undesirable_weight;
    for (int i = 0; i < v->n; i++) {
        double u = beta * (v->p[i] - v->r[i] - z0);
        if (v->b->label[i]) {
            v->loss += w[i] * wd * SIG(-u);
            v->g_p[i] -= w[i] * wd * beta * dsig(u);
        } else {
            v->loss += w[i] * wu * SIG(u);
            v->g_p[i] += w[i] * wu * beta * dsig(u);
        }
    }
    return 0;
}

// APO-zero, unpaired (TRL KTOTrainer loss_type "apo_zero_unpaired"):
// desirable w_D*(1 - sig(beta*rho)), undesirable w_U*sig(beta*rho).
static int pref_loss_apo_zero_unpaired(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, wd = v->o->desirable_weight, wu = v->o->undesirable_weight;
    for (int i = 0; i < v->n; i++) {
        double u = beta * (v->p[i] - v->r[i]);
        if (v->b->label[i]) {
            v->loss += w[i] * wd * SIG(-u);
            v->g_p[i] -= w[i] * wd * beta * dsig(u);
        } else {
            v->loss += w[i] * wu * SIG(u);
            v->g_p[i] += w[i] * wu * beta * dsig(u);
        }
    }
    return 0;
}

// BCO (Jung et al. 2024; TRL BCOTrainer), u = beta*rho - delta (delta = bco_delta, a
// running mean of the rewards: pref_running_update): desirable -logsig(u), undesirable
// -logsig(-u), each times batch.weight[i] (TRL's UDM density ratio, which it applies to
// the undesirable examples; pass 1 for the others), mean over n.
static int pref_loss_bco(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, delta = v->o->bco_delta;
    const float *ew = v->b->weight;
    for (int i = 0; i < v->n; i++)
        if (ew && !(ew[i] >= 0 && isfinite(ew[i])))
            return rlhf_fail(err, "weight[%d] = %g must be finite and >= 0", i, (double)ew[i]);
    for (int i = 0; i < v->n; i++) {
        double u = beta * (v->p[i] - v->r[i]) - delta, k = w[i] * (ew ? ew[i] : 1.0);
        if (v->b->label[i]) {
            v->loss += k * SOFTPLUS(-u);
            v->g_p[i] -= k * beta * SIG(-u);
        } else {
            v->loss += k * SOFTPLUS(u);
            v->g_p[i] += k * beta * SIG(u);
        }
    }
    return 0;
}

// ---------------------------------------------------------------- A-LoL --
// A-LoL (Baheti et al. 2024; the authors' lolrl_qlora_llama_hh.py): the advantage
// A = max(0, R - V_ref(x)) with R = sigmoid(score) (alol_sigmoid_reward) and V_ref
// given per example; examples with A <= 0 contribute 0 (the "leftover lunch" filter;
// the authors also drop them from the data) and the loss is the mean over n.
static int alol_adv(pref_view *v, double *A, rlhf_err *err) {
    const float *s = v->b->score, *val = v->b->value;
    if (!s || !val)
        return rlhf_fail(err, "A-LoL needs reward-model scores and value estimates (batch.score "
                              "and batch.value)");
    for (int i = 0; i < v->n; i++) {
        if (!isfinite(s[i]) || !isfinite(val[i]))
            return rlhf_fail(err, "score[%d] = %g, value[%d] = %g must be finite", i, (double)s[i],
                             i, (double)val[i]);
        double R = alol_reward(s[i], v->o->alol_sigmoid_reward);
        A[i] = R - val[i] > 0 ? R - val[i] : 0.0;
    }
    return 0;
}

// The importance weight pi/pi_ref = exp(x), clipped to [1-eps, 1+eps] (eps =
// alol_clip; <= 0: unclipped, exponent capped at PREF_EXP_CAP). A detached weight:
// the gradient is weight * d log pi even when clipped (not PPO clipping).
static int alol_ratio_bounds(const pref_options *o, double *lo, double *hi, rlhf_err *err) {
    double e = o->alol_clip;
    if (e >= 1) return rlhf_fail(err, "alol_clip = %g must be < 1 (ratios in [1-eps, 1+eps])", e);
    *lo = e > 0 ? log1p(-e) : -INFINITY;
    *hi = e > 0 ? log1p(e) : PREF_EXP_CAP;
    return 0;
}

static double clipped_ratio(double x, double lo, double hi) {
    return exp(x < lo ? lo : x > hi ? hi : x);
}

// alol: -A * sg(clip(pi/pi_ref)) * log pi, sequence-level ratio.
static int pref_loss_alol(pref_view *v, const double *w, rlhf_err *err) {
    double lo = 0, hi = 0, *A = xmalloc((size_t)v->n * sizeof(double));
    if (alol_ratio_bounds(v->o, &lo, &hi, err) || alol_adv(v, A, err)) {
        free(A);
        return -1;
    }
    for (int i = 0; i < v->n; i++) {
        double q = clipped_ratio(v->p[i] - v->r[i], lo, hi);
        v->loss += w[i] * -A[i] * q * v->p[i];
        v->g_p[i] -= w[i] * A[i] * q;
    }
    free(A);
    return 0;
}

// alol_seq: -A * sum_t sg(clip(pi_t/pi_ref_t)) * log pi_t, per-token ratios.
static int pref_loss_alol_seq(pref_view *v, const double *w, rlhf_err *err) {
    double lo = 0, hi = 0, *A = xmalloc((size_t)v->n * sizeof(double));
    if (alol_ratio_bounds(v->o, &lo, &hi, err) || alol_adv(v, A, err)) {
        free(A);
        return -1;
    }
    const float *tp = v->b->completion.tok_logps, *tr = v->b->completion.ref_tok_logps;
    int ref = !v->o->reference_free;
    for (int i = 0; i < v->n; i++) {
        int L = (int)v->l[i];
        for (int t = 0; t < L; t++) {
            long j = v->off[i] + t;
            double q = clipped_ratio(tp[j] - (ref ? tr[j] : 0.0), lo, hi);
            v->loss += w[i] * -A[i] * q * tp[j];
            v->g_tok[j] -= w[i] * A[i] * q;
        }
    }
    free(A);
    return 0;
}

// alol_ref_free: -A * log pi.
static int pref_loss_alol_ref_free(pref_view *v, const double *w, rlhf_err *err) {
    double *A = xmalloc((size_t)v->n * sizeof(double));
    if (alol_adv(v, A, err)) {
        free(A);
        return -1;
    }
    for (int i = 0; i < v->n; i++) {
        v->loss += w[i] * -A[i] * v->p[i];
        v->g_p[i] -= w[i] * A[i];
    }
    free(A);
    return 0;
}

// alol_kl: -A * log pi + beta*(log pi - log pi_ref) (the authors' kl_beta = beta; no clipping).
static int pref_loss_alol_kl(pref_view *v, const double *w, rlhf_err *err) {
    double beta = v->o->beta, *A = xmalloc((size_t)v->n * sizeof(double));
    if (alol_adv(v, A, err)) {
        free(A);
        return -1;
    }
    for (int i = 0; i < v->n; i++) {
        v->loss += w[i] * (-A[i] * v->p[i] + beta * (v->p[i] - v->r[i]));
        v->g_p[i] += w[i] * (-A[i] + beta);
    }
    free(A);
    return 0;
}

// rlol (R-LoL): -R * sg(clip(pi/pi_ref)) * log pi, the reward R itself in place of
// the advantage (the authors' r_lol: no value estimate).
static int pref_loss_rlol(pref_view *v, const double *w, rlhf_err *err) {
    const float *s = v->b->score;
    double lo = 0, hi = 0;
    if (!s) return rlhf_fail(err, "R-LoL needs reward-model scores (batch.score)");
    if (alol_ratio_bounds(v->o, &lo, &hi, err)) return -1;
    for (int i = 0; i < v->n; i++)
        if (!isfinite(s[i])) return rlhf_fail(err, "score[%d] = %g must be finite", i, (double)s[i]);
    for (int i = 0; i < v->n; i++) {
        double R = alol_reward(s[i], v->o->alol_sigmoid_reward);
        double q = clipped_ratio(v->p[i] - v->r[i], lo, hi);
        v->loss += w[i] * -R * q * v->p[i];
        v->g_p[i] -= w[i] * R * q;
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
#define SV (PREF_NEED_SCORES | PREF_NEED_VALUE)
const pref_loss_def pref_losses_free[] = {
    PREF_LOSS("sft", pref_loss_sft, PAIRED, PREF_NEED_WHOLE_BATCH, 0, "-sum_i pc_i / sum_i lc_i",
              "NLL of chosen per token (TRL sft)"),
    PREF_LOSS("simpo", pref_loss_simpo, PAIRED, M, B | LS | PREF_OPT_SIMPO_GAMMA | PREF_OPT_ALPHA,
              "cDPO on beta*(pc/lc - pr/lr) - gamma - m",
              "SimPO (Meng et al. 2024), reference-free"),
    PREF_LOSS("alphapo", pref_loss_simpo, PAIRED, M,
              B | LS | PREF_OPT_SIMPO_GAMMA | PREF_OPT_ALPHA,
              "cDPO on beta*(r(pc/lc) - r(pr/lr)) - gamma - m, r(x) = (1 - e^(-alpha*x))/alpha",
              "AlphaPO (Gupta et al. 2025): SimPO with --alpha"),
    PREF_LOSS("cpo", pref_loss_cpo, PAIRED, M | PREF_NEED_WHOLE_BATCH, B | LS | PREF_OPT_CPO_ALPHA | PREF_OPT_ALPHA,
              "cDPO on beta*(pc - pr) - m, + cpo_alpha * sft",
              "CPO (Xu et al. 2024), reference-free"),
    PREF_LOSS("orpo", pref_loss_orpo, PAIRED, PREF_NEED_WHOLE_BATCH, B,
              "sft - beta*logsig(log odds(pc/lc) - log odds(pr/lr))", "ORPO (Hong et al. 2024)"),
    PREF_LOSS("cpl", pref_loss_cpl, PAIRED, 0, B | PREF_OPT_CPL_LAMBDA,
              "-logsig(beta*pc - lambda*beta*pr)",
              "CPL (Hejna et al. 2024), log pi (reference-free)"),
    PREF_LOSS("cpl_kl", pref_loss_cpl_kl, PAIRED, R, B | PREF_OPT_CPL_LAMBDA,
              "-logsig(beta*rho_w - lambda*beta*rho_l)", "CPL-KL (Hejna et al. 2024)"),
    PREF_LOSS("kto", pref_loss_kto, UNPAIRED, PREF_NEED_LABELS | R | PREF_NEED_KL_POINT,
              B | PREF_OPT_DESIRABLE_WEIGHTS,
              "w_D*(1 - sig(beta*(rho - z0))) | w_U*(1 - sig(beta*(z0 - rho)))",
              "KTO (Ethayarajh et al. 2024)"),
    PREF_LOSS("apo_zero_unpaired", pref_loss_apo_zero_unpaired, UNPAIRED, PREF_NEED_LABELS | R,
              B | PREF_OPT_DESIRABLE_WEIGHTS, "w_D*(1 - sig(beta*rho)) | w_U*sig(beta*rho)",
              "APO-zero, unpaired (TRL KTOTrainer)"),
    PREF_LOSS("bco", pref_loss_bco, UNPAIRED, PREF_NEED_LABELS | R | PREF_NEED_WEIGHTS,
              B | PREF_OPT_BCO_DELTA,
              "-logsig(beta*rho - delta) | -logsig(-(beta*rho - delta)), times weight",
              "BCO (Jung et al. 2024)"),
    PREF_LOSS("alol", pref_loss_alol, UNPAIRED, R | SV, PREF_OPT_ALOL,
              "-A * sg(clip(pi/pi_ref)) * log pi, A = max(0, R - V)", "A-LoL (Baheti et al. 2024)"),
    PREF_LOSS("alol_seq", pref_loss_alol_seq, UNPAIRED, R | PREF_NEED_TOKENS | SV,
              PREF_OPT_ALOL, "-A * sum_t sg(clip(pi_t/pi_ref_t)) * log pi_t",
              "A-LoL seq, per-token ratios (Baheti et al. 2024)"),
    PREF_LOSS("alol_ref_free", pref_loss_alol_ref_free, UNPAIRED, SV, PREF_OPT_ALOL,
              "-A * log pi", "A-LoL ref-free (Baheti et al. 2024)"),
    PREF_LOSS("alol_kl", pref_loss_alol_kl, UNPAIRED, R | SV, B | PREF_OPT_ALOL,
              "-A * log pi + beta*(log pi - log pi_ref)", "A-LoL KL (Baheti et al. 2024)"),
    PREF_LOSS("rlol", pref_loss_rlol, UNPAIRED, R | PREF_NEED_SCORES, PREF_OPT_ALOL,
              "-R * sg(clip(pi/pi_ref)) * log pi", "R-LoL (Baheti et al. 2024), reward for A"),
    {NULL},
};
#undef PAIRED
#undef UNPAIRED
#undef R
#undef M
#undef B
#undef LS
#undef FD
#undef SV
