// algo/pref: the driver of the preference losses. It checks the inputs, resolves
// them to double arrays (sums from per-token log-probs, LD-DPO weighting, the
// reference or 0, f-divergence scores, WPO weights), runs each loss of the list
// over the pairs with its weight, maps the gradients back to the caller's
// sequence or token arrays, and fills TRL's metrics. The losses themselves, each
// with its registration entry, are in pref_pair.c (the DPO family, with a
// reference) and pref_free.c (reference-free, unpaired, and offline-RL losses);
// this file joins their tables into the registry and declares the options.
#include "algo/pref.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------- the registry --
// The loss files' tables (each loss's entry sits in the file of its body), then
// the losses added at run time by pref_register.
static const pref_loss_def *const builtin[] = {pref_losses_pair, pref_losses_free};
#define N_BUILTIN_TABLES (int)(sizeof builtin / sizeof *builtin)
static const pref_loss_def *registered[PREF_MAX_REGISTERED];
static int n_registered;

int pref_loss_count(void) {
    int n = n_registered;
    for (int t = 0; t < N_BUILTIN_TABLES; t++)
        for (const pref_loss_def *d = builtin[t]; d->name; d++) n++;
    return n;
}

const pref_loss_def *pref_loss_at(int i) {
    if (i < 0) return NULL;
    for (int t = 0; t < N_BUILTIN_TABLES; t++)
        for (const pref_loss_def *d = builtin[t]; d->name; d++)
            if (i-- == 0) return d;
    return i < n_registered ? registered[i] : NULL;
}

const pref_loss_def *pref_find(const char *name) {
    if (!name) return NULL;
    const pref_loss_def *d;
    for (int i = 0; (d = pref_loss_at(i)); i++)
        if (strcmp(d->name, name) == 0) return d;
    return NULL;
}

int pref_register(const pref_loss_def *def, rlhf_err *err) {
    if (!def || !def->name || !*def->name || !def->fn)
        return rlhf_fail(err, "pref_register: a loss needs a name and a function");
    if ((unsigned)def->kind > PREF_KIND_UNPAIRED)
        return rlhf_fail(err, "pref_register: loss \"%s\" has an unknown kind %d", def->name,
                         (int)def->kind);
    if (pref_find(def->name))
        return rlhf_fail(err, "pref_register: loss \"%s\" exists already", def->name);
    if (n_registered == PREF_MAX_REGISTERED)
        return rlhf_fail(err, "pref_register: more than %d losses registered", PREF_MAX_REGISTERED);
    registered[n_registered++] = def;
    return 0;
}

int pref_loss_needs(const pref_loss_def *def, unsigned need) {
    return def && (def->needs & need) == need;
}

int pref_loss_reads(const pref_loss_def *def, unsigned option) {
    return def && (def->options & option) == option;
}

int pref_list_needs(const pref_loss_list *l, unsigned need) {
    for (int k = 0; k < l->n; k++)
        if (pref_loss_needs(l->def[k], need)) return 1;
    return 0;
}

int pref_list_reads(const pref_loss_list *l, unsigned option) {
    for (int k = 0; k < l->n; k++)
        if (pref_loss_reads(l->def[k], option)) return 1;
    return 0;
}

pref_kind pref_list_kind(const pref_loss_list *l) {
    return l->n > 0 && l->def[0] ? l->def[0]->kind : PREF_KIND_PAIRED;
}

void pref_loss_names(char *buf, size_t cap, int kind, unsigned inputs) {
    size_t k = 0;
    if (cap) buf[0] = 0;
    const pref_loss_def *d;
    for (int i = 0; (d = pref_loss_at(i)); i++) {
        if ((kind >= 0 && (int)d->kind != kind) || (d->needs & ~inputs & ~PREF_PROPERTIES)) continue;
        int w = snprintf(buf + k, cap - k, "%s%s", k ? ", " : "", d->name);
        if (w < 0 || (size_t)w >= cap - k) break; // (cut at the last name that fits)
        k += (size_t)w;
    }
}

static int unknown_loss(rlhf_err *err, const char *name) {
    char list[900];
    pref_loss_names(list, sizeof list, -1, ~0u);
    return rlhf_fail(err, "unknown loss_type \"%s\" (choose from: %s)", name, list);
}

// ------------------------------------------------------------- options --
void pref_options_default(pref_options *o) {
    memset(o, 0, sizeof *o);
    o->beta = 0.1;
    o->label_smoothing = 0.0;
    o->reference_free = 0;
    o->f_divergence_type = PREF_REVERSE_KL;
    o->f_alpha_divergence_coef = 0.5;
    o->ld_alpha = -1.0;
    o->use_weighting = 0;
    o->discopop_tau = 0.05;
    o->simpo_gamma = 0.5;
    o->cpo_alpha = 1.0;
    o->desirable_weight = 1.0;
    o->undesirable_weight = 1.0;
    o->bco_delta = 0.0;
    o->vpo_alpha = 0.1;
    o->vpo_sign = -1.0;
    o->inpo_tau = 0.1 / 3.0;
    o->srpo_alpha = 0.5;
    o->cpl_lambda = 0.5;
    o->alol_clip = 0.9;
    o->alol_sigmoid_reward = 1;
    o->alpha = 0.0;
}

#define OPT(name, bit, is_bool, lo, hi, help)                                                      \
    { #name, bit, is_bool, offsetof(pref_options, name), lo, hi, help }
static const pref_option_def option_table[] = {
    OPT(beta, PREF_OPT_BETA, 0, 0, 1e6,
        "the loss's temperature (DPO beta, IPO tau, ORPO lambda, CPL alpha, INPO eta)"),
    OPT(label_smoothing, PREF_OPT_LABEL_SMOOTHING, 0, 0, 0.5,
        "cDPO / robust: assumed share of flipped labels (EXO: epsilon)"),
    OPT(reference_free, PREF_OPT_REFERENCE_FREE, 1, 0, 0, "treat the reference log-probs as 0"),
    OPT(f_alpha_divergence_coef, PREF_OPT_F_DIVERGENCE, 0, 0, 1e3, "alpha of alpha_divergence"),
    OPT(ld_alpha, PREF_OPT_LD_ALPHA, 0, -1, 1,
        "LD-DPO: weight of the verbose tail (negative: off)"),
    OPT(use_weighting, PREF_OPT_WEIGHTING, 1, 0, 0, "WPO weighting of pairs"),
    OPT(simpo_gamma, PREF_OPT_SIMPO_GAMMA, 0, -1e6, 1e6, "SimPO target margin gamma"),
    OPT(cpo_alpha, PREF_OPT_CPO_ALPHA, 0, 0, 1e6, "weight of CPO's NLL term"),
    OPT(alpha, PREF_OPT_ALPHA, 0, -100, 100,
        "AlphaPO reward shape (simpo, alphapo, cpo): r = (1 - p^-alpha)/alpha (0: log p)"),
    OPT(desirable_weight, PREF_OPT_DESIRABLE_WEIGHTS, 0, 0, 1e6,
        "KTO/BCO weight of desirable examples"),
    OPT(undesirable_weight, PREF_OPT_DESIRABLE_WEIGHTS, 0, 0, 1e6,
        "KTO/BCO weight of undesirable examples"),
    OPT(bco_delta, PREF_OPT_BCO_DELTA, 0, -1e6, 1e6, "BCO's reward shift delta"),
    OPT(vpo_alpha, PREF_OPT_VPO, 0, 0, 1e6, "VPO's alpha"),
    OPT(vpo_sign, PREF_OPT_VPO, 0, -1, 1, "VPO: -1 pessimistic (offline), +1 optimistic (online)"),
    OPT(inpo_tau, PREF_OPT_INPO_TAU, 0, 0, 1e6, "INPO's tau"),
    OPT(srpo_alpha, PREF_OPT_SRPO_ALPHA, 0, 0, 1,
        "SRPO's weight of the self-improvement term (1 - it: the generative term)"),
    OPT(cpl_lambda, PREF_OPT_CPL_LAMBDA, 0, 0, 1e6, "CPL's weight on the rejected term"),
    OPT(alol_clip, PREF_OPT_ALOL, 0, 0, 1, "A-LoL ratio clip epsilon"),
    OPT(alol_sigmoid_reward, PREF_OPT_ALOL, 1, 0, 0,
        "A-LoL: reward sigmoid(score) (the authors' code); false: the score itself"),
    OPT(discopop_tau, PREF_OPT_DISCOPOP_TAU, 0, 0, 1e6, "DiscoPOP temperature"),
};
#undef OPT

const pref_option_def *pref_option_at(int i) {
    int n = (int)(sizeof option_table / sizeof *option_table);
    return i >= 0 && i < n ? &option_table[i] : NULL;
}

unsigned pref_options_used(int kind, unsigned inputs) {
    unsigned used = 0;
    const pref_loss_def *d;
    for (int i = 0; (d = pref_loss_at(i)); i++) {
        if ((kind >= 0 && (int)d->kind != kind) || (d->needs & ~inputs & ~PREF_PROPERTIES)) continue;
        used |= d->options;
        if (d->needs & PREF_NEED_REFERENCE) used |= PREF_OPT_REFERENCE_FREE;
        if (d->kind == PREF_KIND_PAIRED) used |= PREF_OPT_WEIGHTING;
        if (d->kind == PREF_KIND_PAIRED && (inputs & PREF_NEED_TOKENS)) used |= PREF_OPT_LD_ALPHA;
    }
    return used;
}

static const char *fdiv_names[] = {"reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"};

const char *pref_fdiv_name(pref_fdiv f) {
    return (unsigned)f < 4 ? fdiv_names[f] : "?";
}

int pref_fdiv_from_name(const char *name, pref_fdiv *out, rlhf_err *err) {
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, fdiv_names[i]) == 0) {
            *out = (pref_fdiv)i;
            return 0;
        }
    return rlhf_fail(err,
                     "unknown f_divergence_type \"%s\" (choose from: reverse_kl, forward_kl, "
                     "js_divergence, alpha_divergence)",
                     name ? name : "");
}

// ---------------------------------------------------------------- parse --
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
    return s;
}

// Splits buf in place at commas (empty fields kept); returns the count (max cap).
static int split(char *buf, char **field, int cap) {
    int k = 0;
    for (char *s = buf;; s++) {
        char *c = strchr(s, ',');
        if (k < cap) field[k] = s;
        k++;
        if (!c) break;
        *c = 0;
        s = c;
    }
    for (int i = 0; i < k && i < cap; i++) field[i] = trim(field[i]);
    return k;
}

int pref_parse(pref_loss_list *l, const char *types, const char *weights, rlhf_err *err) {
    memset(l, 0, sizeof *l);
    char buf[512], *field[PREF_MAX_LOSSES];
    if (!types || strlen(types) >= sizeof buf)
        return rlhf_fail(err, "loss_type is empty or too long");
    strcpy(buf, types);
    if (!*trim(buf)) return rlhf_fail(err, "loss_type is empty");
    int n = split(buf, field, PREF_MAX_LOSSES);
    if (n > PREF_MAX_LOSSES)
        return rlhf_fail(err, "loss_type \"%s\": more than %d losses", types, PREF_MAX_LOSSES);
    for (int k = 0; k < n; k++) {
        if (!*field[k]) return rlhf_fail(err, "loss_type \"%s\": empty entry", types);
        const pref_loss_def *d = pref_find(field[k]);
        if (!d) return unknown_loss(err, field[k]);
        l->def[k] = d;
        l->weight[k] = 1.0;
    }
    l->n = n;
    for (int k = 1; k < l->n; k++)
        if (l->def[k]->kind != l->def[0]->kind)
            return rlhf_fail(
                err, "loss_type \"%s\": cannot combine %s loss \"%s\" with %s loss \"%s\"", types,
                l->def[0]->kind == PREF_KIND_UNPAIRED ? "unpaired" : "paired", l->def[0]->name,
                l->def[k]->kind == PREF_KIND_UNPAIRED ? "unpaired" : "paired", l->def[k]->name);
    if (!weights) return 0;
    if (strlen(weights) >= sizeof buf) return rlhf_fail(err, "loss_weights is too long");
    strcpy(buf, weights);
    if (!*trim(buf)) return 0;
    int nw = split(buf, field, PREF_MAX_LOSSES);
    if (nw != l->n)
        return rlhf_fail(err, "loss_weights \"%s\" has %d weights for %d losses (\"%s\")", weights,
                         nw, l->n, types);
    for (int k = 0; k < nw; k++) {
        char *end = NULL;
        double x = strtod(field[k], &end);
        if (!*field[k] || *end || !isfinite(x))
            return rlhf_fail(err, "loss_weights \"%s\": \"%s\" is not a number", weights, field[k]);
        l->weight[k] = x;
    }
    return 0;
}

// -------------------------------------------------------------- numerics --
// Shared by the loss files.
double pref_softplus(double x) {
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}
double pref_log_sigmoid(double x) {
    return -pref_softplus(-x);
}
double pref_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
// exp(min(x, PREF_EXP_CAP)); *d = its derivative (0 past the cap).
double pref_exp_capped(double x, double *d) {
    double e = exp(x < PREF_EXP_CAP ? x : PREF_EXP_CAP);
    if (d) *d = x < PREF_EXP_CAP ? e : 0.0;
    return e;
}

// ---------------------------------------------------------------- inputs --
// One set of sequences resolved to doubles.
typedef struct {
    int given;   // policy log-probs present
    int has_tok; // per-token policy log-probs
    int has_ref; // reference present (sums or tokens)
    int has_ref_tok;
    double *p, *r;   // policy and reference sums
    double *pe, *re; // LD-weighted sums (== p, r when LD is off)
    double *len;
    long *off;    // token offsets (when any token array is given)
    long span;    // 1 + the last token index used
    double *ld_w; // per token LD weight (NULL: all 1)
} seqset;

static void seqset_free(seqset *s) {
    if (s->pe != s->p) free(s->pe);
    if (s->re != s->r) free(s->re);
    free(s->p);
    free(s->r);
    free(s->len);
    free(s->off);
    free(s->ld_w);
    memset(s, 0, sizeof *s);
}

// x[first .. first+n-1] finite, else an error naming set.what[index].
static int check_finite(const float *x, long first, long n, const char *what, const char *set,
                        rlhf_err *err) {
    for (long i = first; i < first + n; i++)
        if (!isfinite(x[i]))
            return rlhf_fail(err, "%s%s%s[%ld] is %g: inputs must be finite", set, *set ? "." : "",
                             what, i, (double)x[i]);
    return 0;
}

static double tok_sum(const float *tok, long off, int len) {
    double s = 0;
    for (int t = 0; t < len; t++) s += tok[off + t];
    return s;
}

// Resolves set s of n sequences. A set that is not given at all (no logps, no
// tok_logps) resolves with given = 0 when optional, else is an error.
static int resolve(const pref_seqs *s, int n, const char *name, int optional, int ref_free,
                   seqset *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    if (!s->logps && !s->tok_logps) {
        if (optional) return 0;
        return rlhf_fail(err, "%s: no policy log-probs (logps or tok_logps)", name);
    }
    if (!s->len) return rlhf_fail(err, "%s: no completion lengths (len)", name);
    for (int i = 0; i < n; i++)
        if (s->len[i] <= 0)
            return rlhf_fail(err,
                             "%s.len[%d] = %d: zero-length completion (a loss over no tokens is "
                             "undefined; drop the example)",
                             name, i, s->len[i]);
    out->given = 1;
    out->has_tok = s->tok_logps != NULL;
    out->has_ref_tok = !ref_free && s->ref_tok_logps != NULL;
    out->has_ref = !ref_free && (s->ref_logps || s->ref_tok_logps);
    out->p = xcalloc((size_t)n, sizeof(double));
    out->r = xcalloc((size_t)n, sizeof(double));
    out->len = xcalloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) out->len[i] = s->len[i];
    if (out->has_tok || out->has_ref_tok) {
        out->off = xcalloc((size_t)n, sizeof(long));
        long o = 0;
        for (int i = 0; i < n; i++) {
            if (s->tok_off) {
                if (s->tok_off[i] < 0)
                    return rlhf_fail(err, "%s.tok_off[%d] = %ld is negative", name, i,
                                     s->tok_off[i]);
                out->off[i] = s->tok_off[i];
            } else {
                out->off[i] = o;
                o += s->len[i];
            }
            if (out->off[i] + s->len[i] > out->span) out->span = out->off[i] + s->len[i];
        }
    }
    for (int i = 0; i < n; i++) {
        if (out->has_tok) {
            if (check_finite(s->tok_logps, out->off[i], s->len[i], "tok_logps", name, err))
                return -1;
            out->p[i] = tok_sum(s->tok_logps, out->off[i], s->len[i]);
        } else {
            if (check_finite(s->logps, i, 1, "logps", name, err)) return -1;
            out->p[i] = s->logps[i];
        }
        if (out->has_ref_tok) {
            if (check_finite(s->ref_tok_logps, out->off[i], s->len[i], "ref_tok_logps", name, err))
                return -1;
            out->r[i] = tok_sum(s->ref_tok_logps, out->off[i], s->len[i]);
        } else if (out->has_ref) {
            if (check_finite(s->ref_logps, i, 1, "ref_logps", name, err)) return -1;
            out->r[i] = s->ref_logps[i];
        }
    }
    out->pe = out->p;
    out->re = out->r;
    return 0;
}

// LD-DPO (Liu et al. 2024, TRL ld_alpha): with l_s = min(lc, lr) per pair, each
// sequence's first l_s tokens count fully and the rest ("verbose" tail) with alpha.
static int apply_ld(seqset *c, seqset *r, const pref_seqs *sc, const pref_seqs *sr, int n,
                    double alpha, int need_ref, rlhf_err *err) {
    if (!c->has_tok || !r->has_tok)
        return rlhf_fail(err, "ld_alpha needs per-token policy log-probs (chosen and rejected "
                              "tok_logps)");
    if (need_ref && (!c->has_ref_tok || !r->has_ref_tok))
        return rlhf_fail(err, "ld_alpha needs per-token reference log-probs (chosen and rejected "
                              "ref_tok_logps), or reference_free");
    seqset *set[2] = {c, r};
    const pref_seqs *in[2] = {sc, sr};
    for (int k = 0; k < 2; k++) {
        seqset *s = set[k];
        s->pe = xcalloc((size_t)n, sizeof(double));
        s->re = xcalloc((size_t)n, sizeof(double));
        s->ld_w = xcalloc((size_t)s->span, sizeof(double));
        for (int i = 0; i < n; i++) {
            int shared = (int)fmin(c->len[i], r->len[i]);
            int L = (int)s->len[i];
            double pe = 0, re = 0;
            for (int t = 0; t < L; t++) {
                double wt = t < shared ? 1.0 : alpha;
                s->ld_w[s->off[i] + t] = wt;
                pe += wt * in[k]->tok_logps[s->off[i] + t];
                if (s->has_ref_tok) re += wt * in[k]->ref_tok_logps[s->off[i] + t];
            }
            s->pe[i] = pe;
            s->re[i] = re;
        }
    }
    return 0;
}

// f-divergence score of the log-ratio x and its derivative.
static double fdiv_score(const pref_options *o, double x, double *d) {
    switch (o->f_divergence_type) {
    case PREF_FORWARD_KL: { // -1/u
        double e = pref_exp_capped(-x, d);
        return -e;
    }
    case PREF_JS_DIVERGENCE: // log(u/(1+u)) = logsig(x)
        *d = pref_sigmoid(-x);
        return pref_log_sigmoid(x);
    case PREF_ALPHA_DIVERGENCE: {
        double a = o->f_alpha_divergence_coef;
        if (a < 1e-6) break;                   // the limit is reverse KL
        double e = pref_exp_capped(-a * x, d); // -u^(-a)/a, d/dx = u^(-a)
        return -e / a;
    }
    default:
        break;
    }
    *d = 1.0;
    return x;
}

// Maps d(loss)/d(sums) back to the caller's arrays. g_eff multiplies the LD weight
// of each token, g_sum does not; g_tok (may be NULL) is per token already.
static void write_grad(const seqset *s, int n, const double *g_eff, const double *g_sum,
                       const double *g_tok, pref_grad *out) {
    if (!s->given) return;
    if (s->has_tok) {
        if (!out->tok_grad) return;
        for (int i = 0; i < n; i++) {
            double a = g_eff ? g_eff[i] : 0.0, b = g_sum ? g_sum[i] : 0.0;
            int L = (int)s->len[i];
            for (int t = 0; t < L; t++) {
                long j = s->off[i] + t;
                double wt = s->ld_w ? s->ld_w[j] : 1.0;
                out->tok_grad[j] += (float)(a * wt + b + (g_tok ? g_tok[j] : 0.0));
            }
        }
    } else if (out->grad) {
        for (int i = 0; i < n; i++)
            out->grad[i] += (float)((g_eff ? g_eff[i] : 0.0) + (g_sum ? g_sum[i] : 0.0));
    }
}

static int check_options(const pref_options *o, rlhf_err *err) {
    if (!(isfinite(o->beta) && o->beta > 0))
        return rlhf_fail(err, "beta = %g must be > 0", o->beta);
    if (!(o->label_smoothing >= 0 && o->label_smoothing <= 1))
        return rlhf_fail(err, "label_smoothing = %g must be in [0, 1]", o->label_smoothing);
    if ((unsigned)o->f_divergence_type > PREF_ALPHA_DIVERGENCE)
        return rlhf_fail(err, "f_divergence_type %d is not one of the four",
                         (int)o->f_divergence_type);
    if (o->f_divergence_type == PREF_ALPHA_DIVERGENCE &&
        !(isfinite(o->f_alpha_divergence_coef) && o->f_alpha_divergence_coef >= 0))
        return rlhf_fail(err, "f_alpha_divergence_coef = %g must be >= 0",
                         o->f_alpha_divergence_coef);
    if (isnan(o->ld_alpha) || o->ld_alpha > 1)
        return rlhf_fail(err, "ld_alpha = %g must be in [0, 1] (or < 0: off)", o->ld_alpha);
    if (!(o->desirable_weight >= 0 && isfinite(o->desirable_weight) && o->undesirable_weight >= 0 &&
          isfinite(o->undesirable_weight)))
        return rlhf_fail(err, "desirable_weight = %g and undesirable_weight = %g must be >= 0",
                         o->desirable_weight, o->undesirable_weight);
    const double *fin[] = {&o->discopop_tau, &o->simpo_gamma, &o->cpo_alpha, &o->bco_delta,
                           &o->vpo_alpha,    &o->vpo_sign,    &o->inpo_tau,  &o->srpo_alpha,
                           &o->cpl_lambda,   &o->alol_clip,   &o->alpha};
    for (size_t i = 0; i < sizeof fin / sizeof *fin; i++)
        if (!isfinite(*fin[i])) return rlhf_fail(err, "an option is not finite");
    return 0;
}

static double *dvec(int n) {
    return xcalloc((size_t)(n > 0 ? n : 1), sizeof(double));
}

// ------------------------------------------------------------- the driver --

// pref_loss's working state: the resolved sequences, the view the losses read and
// write, and every double array it allocated (freed by work_free)
typedef struct {
    seqset sc, sr, scal, srev[PREF_NREV], su;
    pref_view v;
    double *bufs[64];
    int nb;
    double *w, *wpo;  // each pair's weight in the current term; WPO's weights (or NULL)
} pref_work;

static double *work_vec(pref_work *x) {
    return x->bufs[x->nb++] = dvec(x->v.n);
}

static void work_free(pref_work *x) {
    for (int i = 0; i < x->nb; i++) free(x->bufs[i]);
    free(x->v.g_tok);
    seqset_free(&x->sc);
    seqset_free(&x->sr);
    seqset_free(&x->scal);
    seqset_free(&x->su);
    for (int k = 0; k < PREF_NREV; k++) seqset_free(&x->srev[k]);
}

// the name of the list's first loss that needs `need`
static const char *first_needing(const pref_loss_list *l, unsigned need) {
    for (int k = 0; k < l->n; k++)
        if (pref_loss_needs(l->def[k], need)) return l->def[k]->name;
    return "";
}

// the list and the options together: one kind of loss, finite weights, every option
// and input given read by some loss; *any / *reads: what the losses need and read
static int check_list(const pref_loss_list *l, const pref_options *o, const pref_batch *b,
                      unsigned *any, unsigned *reads, rlhf_err *err) {
    if (!l || l->n <= 0) return rlhf_fail(err, "no loss to compute (empty loss list)");
    if (check_options(o, err)) return -1;
    if (b->n <= 0) return rlhf_fail(err, "empty batch (n = %d)", b->n);
    pref_kind kind = l->def[0] ? l->def[0]->kind : PREF_KIND_PAIRED;
    *any = *reads = 0;
    for (int k = 0; k < l->n; k++) {
        if (!l->def[k] || !l->def[k]->fn) return rlhf_fail(err, "loss list entry %d is empty", k);
        if (l->def[k]->kind != kind)
            return rlhf_fail(err, "cannot combine paired and unpaired losses (\"%s\", \"%s\")",
                             l->def[0]->name, l->def[k]->name);
        if (!isfinite(l->weight[k])) return rlhf_fail(err, "loss weight %d is not finite", k);
        *any |= l->def[k]->needs;
        *reads |= l->def[k]->options;
    }
    if (o->f_divergence_type != PREF_REVERSE_KL && !(*reads & PREF_OPT_F_DIVERGENCE))
        return rlhf_fail(err, "f_divergence_type %s: none of the losses uses it",
                         pref_fdiv_name(o->f_divergence_type));
    if (b->margin && !(*any & PREF_NEED_MARGIN))
        return rlhf_fail(err, "a margin was given but none of the losses uses one");
    if (kind == PREF_KIND_UNPAIRED && (o->ld_alpha >= 0 || o->use_weighting))
        return rlhf_fail(err, "ld_alpha and use_weighting apply to paired losses only");
    if (b->margin && check_finite(b->margin, 0, b->n, "margin", "", err)) return -1;
    return 0;
}

// paired inputs into the view: chosen, rejected (LD-DPO applied), the calibration
// and revision sequences, f-divergence scores, the previous iterate, WPO weights
static int prepare_paired(pref_work *x, const pref_loss_list *l, unsigned any, rlhf_err *err) {
    pref_view *v = &x->v;
    const pref_options *o = v->o;
    const pref_batch *b = v->b;
    int n = v->n, ref_free = o->reference_free != 0;
    int need_ref = (any & PREF_NEED_REFERENCE) && !ref_free;
    if (resolve(&b->chosen, n, "chosen", 0, ref_free, &x->sc, err) ||
        resolve(&b->rejected, n, "rejected", 0, ref_free, &x->sr, err))
        return -1;
    seqset *sc = &x->sc, *sr = &x->sr;
    if (need_ref && (!sc->has_ref || !sr->has_ref))
        return rlhf_fail(err,
                         "loss \"%s\" needs reference log-probs for %s (ref_logps or "
                         "ref_tok_logps), or reference_free",
                         first_needing(l, PREF_NEED_REFERENCE), sc->has_ref ? "rejected" : "chosen");
    if (o->ld_alpha >= 0 &&
        apply_ld(sc, sr, &b->chosen, &b->rejected, n, o->ld_alpha, need_ref, err))
        return -1;
    if (resolve(&b->cal, n, "cal", 1, 1, &x->scal, err)) return -1;
    for (int k = 0; k < PREF_NREV; k++) {
        char name[24];
        snprintf(name, sizeof name, "rev[%d]", k);
        seqset *s = &x->srev[k];
        if (resolve(&b->rev[k], n, name, 1, ref_free, s, err)) return -1;
        v->rev_p[k] = s->p;
        v->rev_r[k] = s->has_ref || ref_free ? s->r : NULL;
        if (s->given) v->g_rev[k] = work_vec(x);
    }
    double *sc_s = work_vec(x), *sr_s = work_vec(x), *dsc = work_vec(x), *dsr = work_vec(x);
    for (int i = 0; i < n; i++) {
        sc_s[i] = fdiv_score(o, sc->pe[i] - sc->re[i], &dsc[i]);
        sr_s[i] = fdiv_score(o, sr->pe[i] - sr->re[i], &dsr[i]);
    }
    v->pc = sc->pe, v->pr = sr->pe, v->rc = sc->re, v->rr = sr->re;
    v->pc_sum = sc->p, v->pr_sum = sr->p, v->lc = sc->len, v->lr = sr->len;
    v->sc = sc_s, v->sr = sr_s, v->dsc = dsc, v->dsr = dsr;
    v->g_pc = work_vec(x);
    v->g_pr = work_vec(x);
    v->g_pc_sum = work_vec(x);
    v->g_pr_sum = work_vec(x);
    if (x->scal.given) {
        v->cal = x->scal.p;
        v->g_cal = work_vec(x);
    } else {
        v->cal = sc->p;
        v->g_cal = v->g_pc_sum;
    }
    if (b->prev_chosen_logps && b->prev_rejected_logps) {
        if (check_finite(b->prev_chosen_logps, 0, n, "prev_chosen_logps", "", err) ||
            check_finite(b->prev_rejected_logps, 0, n, "prev_rejected_logps", "", err))
            return -1;
        double *prev_c = work_vec(x), *prev_r = work_vec(x);
        for (int i = 0; i < n; i++)
            prev_c[i] = b->prev_chosen_logps[i], prev_r[i] = b->prev_rejected_logps[i];
        v->prev_c = prev_c, v->prev_r = prev_r;
    }
    // WPO (Zhou et al. 2024): w_i = exp(mean token log-prob of chosen + of rejected), detached
    if (o->use_weighting) {
        x->wpo = work_vec(x);
        for (int i = 0; i < n; i++)
            x->wpo[i] = pref_exp_capped(sc->p[i] / sc->len[i] + sr->p[i] / sr->len[i], NULL);
    }
    return 0;
}

// unpaired inputs (one completion and a label per example) into the view
static int prepare_unpaired(pref_work *x, const pref_loss_list *l, unsigned any, rlhf_err *err) {
    pref_view *v = &x->v;
    const pref_batch *b = v->b;
    int n = v->n, ref_free = v->o->reference_free != 0;
    seqset *su = &x->su;
    if (resolve(&b->completion, n, "completion", 0, ref_free, su, err)) return -1;
    if ((any & PREF_NEED_REFERENCE) && !ref_free && !su->has_ref)
        return rlhf_fail(err,
                         "loss \"%s\" needs reference log-probs for completion (ref_logps or "
                         "ref_tok_logps), or reference_free",
                         l->def[0]->name);
    if ((any & PREF_NEED_TOKENS) && (!su->has_tok || (!ref_free && !su->has_ref_tok)))
        return rlhf_fail(err,
                         "%s needs per-token log-probs: completion.tok_logps and "
                         "completion.ref_tok_logps",
                         first_needing(l, PREF_NEED_TOKENS));
    if (!b->label && (any & PREF_NEED_LABELS))
        return rlhf_fail(err, "loss \"%s\" needs a label per example (batch.label)",
                         first_needing(l, PREF_NEED_LABELS));
    v->p = su->p, v->r = su->r, v->l = su->len, v->off = su->off;
    v->g_p = work_vec(x);
    if (any & PREF_NEED_TOKENS)
        v->g_tok = xcalloc((size_t)(su->span > 0 ? su->span : 1), sizeof(double));
    return 0;
}

// the gradients back to the caller's arrays, the implicit rewards and TRL's metrics
static void paired_outputs(const pref_work *x, pref_out *out) {
    const pref_view *v = &x->v;
    const seqset *sc = &x->sc, *sr = &x->sr;
    int n = v->n;
    double beta = v->o->beta;
    pref_metrics *m = &out->m;
    write_grad(sc, n, v->g_pc, v->g_pc_sum, NULL, &out->chosen);
    write_grad(sr, n, v->g_pr, v->g_pr_sum, NULL, &out->rejected);
    if (x->scal.given) write_grad(&x->scal, n, NULL, v->g_cal, NULL, &out->cal);
    for (int k = 0; k < PREF_NREV; k++)
        if (x->srev[k].given) write_grad(&x->srev[k], n, NULL, v->g_rev[k], NULL, &out->rev[k]);
    for (int i = 0; i < n; i++) {
        double rwc = beta * (sc->pe[i] - sc->re[i]), rwr = beta * (sr->pe[i] - sr->re[i]);
        if (out->reward_chosen) out->reward_chosen[i] = (float)rwc;
        if (out->reward_rejected) out->reward_rejected[i] = (float)rwr;
        m->rewards_chosen += rwc / n;
        m->rewards_rejected += rwr / n;
        m->rewards_accuracies += (rwc > rwr) / (double)n;
        m->rewards_margins += (rwc - rwr) / n;
        m->logps_chosen += sc->pe[i] / n;
        m->logps_rejected += sr->pe[i] / n;
    }
    m->n_chosen = m->n_rejected = n;
}

static void unpaired_outputs(const pref_work *x, pref_out *out) {
    const pref_view *v = &x->v;
    const seqset *su = &x->su;
    const pref_batch *b = v->b;
    double beta = v->o->beta, lc = 0, lr = 0;
    pref_metrics *m = &out->m;
    write_grad(su, v->n, NULL, v->g_p, v->g_tok, &out->completion);
    for (int i = 0; i < v->n; i++) {
        double rw = beta * (su->p[i] - su->r[i]);
        if (out->reward) out->reward[i] = (float)rw;
        if (b->label && b->label[i]) {
            m->n_chosen++;
            m->rewards_chosen += rw;
            lc += su->p[i];
        } else {
            m->n_rejected++;
            m->rewards_rejected += rw;
            lr += su->p[i];
        }
    }
    if (m->n_chosen) m->rewards_chosen /= m->n_chosen, m->logps_chosen = lc / m->n_chosen;
    if (m->n_rejected) m->rewards_rejected /= m->n_rejected, m->logps_rejected = lr / m->n_rejected;
    m->rewards_margins = m->rewards_chosen - m->rewards_rejected;
    m->kl = b->kl;
}

int pref_loss(const pref_loss_list *l, const pref_options *o, const pref_batch *b, pref_out *out,
              rlhf_err *err) {
    unsigned any = 0, reads = 0;
    if (check_list(l, o, b, &any, &reads, err)) return -1;
    int n = b->n, unpaired = l->def[0]->kind == PREF_KIND_UNPAIRED;
    pref_work x;
    memset(&x, 0, sizeof x);
    x.v.n = n;
    x.v.o = o;
    x.v.b = b;
    x.w = work_vec(&x);
    int rc = -1;
    if (unpaired ? prepare_unpaired(&x, l, any, err) : prepare_paired(&x, l, any, err)) goto done;
    double *margin = work_vec(&x);
    if (b->margin)
        for (int i = 0; i < n; i++) margin[i] = b->margin[i];
    x.v.margin = margin;
    for (int k = 0; k < l->n; k++) {
        for (int i = 0; i < n; i++) x.w[i] = l->weight[k] / n * (x.wpo ? x.wpo[i] : 1.0);
        if (l->def[k]->fn(&x.v, x.w, err)) goto done;
    }
    if (!isfinite(x.v.loss)) {
        rlhf_fail(err, "loss is %g (a bug: please report with the inputs)", x.v.loss);
        goto done;
    }
    memset(&out->m, 0, sizeof out->m);
    out->m.loss = x.v.loss;
    if (unpaired)
        unpaired_outputs(&x, out);
    else
        paired_outputs(&x, out);
    rc = 0;
done:
    work_free(&x);
    return rc;
}

// ---------------------------------------------------------------- helpers --
double pref_kto_kl(const float *policy_kl_logps, const float *ref_kl_logps, int m) {
    if (m <= 0) return 0.0;
    double s = 0;
    for (int j = 0; j < m; j++) s += (double)policy_kl_logps[j] - ref_kl_logps[j];
    s /= m;
    return s > 0 ? s : 0.0;
}

void pref_running_init(pref_running *r) {
    r->mean = 0.0;
    r->var = 1.0;
    r->count = 1e-24;
}

// Chan et al.'s parallel update, as TRL's RunningMoments (population variance of the batch).
void pref_running_update(pref_running *r, const float *x, int n) {
    if (n <= 0) return;
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    var /= n;
    double delta = mean - r->mean, tot = r->count + n;
    double m2 = r->var * r->count + var * n + delta * delta * r->count * n / tot;
    r->mean += delta * n / tot;
    r->var = m2 / tot;
    r->count = tot;
}
