// algo/pref: preference losses (the DPO family, IPO, SimPO, AlphaPO, CPO, ORPO, KTO, BCO,
// A-LoL, CPL, VPO, INPO, SRPO, ...) as pure functions over arrays. Losses speak
// log-probs: a trainer hands in per-sequence log-probs SUMMED over completion
// tokens (or the per-token log-probs themselves), the completion lengths, and
// the same under the frozen reference; it gets back the loss, d(loss)/d(policy
// log-prob) to pass to the model's backward, and TRL's metrics. Nothing here
// touches files, threads or models.
//
// Names are the ones users type (--loss_type sigmoid,sft --loss_weights 1,0.5)
// and follow TRL (trl/trainer/dpo_trainer.py, cpo_trainer.py, orpo_trainer.py,
// kto_trainer.py, bco_trainer.py) where TRL has the loss; docs/losses.md gives
// every formula, its source, and where we differ.
//
// Conventions (as algo/rl.h)
//   * n is the number of pairs (paired losses) or of examples (unpaired: kto,
//     bco, alol...). "Mean over pairs" divides by n.
//   * Gradient outputs ACCUMULATE (+=), as in llm.c: zero them first. Pass NULL
//     to skip. Other outputs are overwritten. Nothing is written on error.
//   * Sums run in double; inputs and outputs are float.
//   * Every completion has at least one token: a zero (or negative) length is
//     refused with an error, never turned into a NaN. Non-finite inputs are
//     refused too. Finite inputs of any size (|margins| of 1e4 and beyond) give a
//     finite loss and finite gradients: log-sigmoids are softplus forms and the
//     few exponentials that could overflow have their exponent capped at
//     PREF_EXP_CAP (zero gradient past the cap, as torch.clamp).
#ifndef RLHF_ALGO_PREF_H
#define RLHF_ALGO_PREF_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define PREF_MAX_LOSSES 8 // terms in one --loss_type list
#define PREF_EXP_CAP 80.0 // largest exponent evaluated (TRL clamps alpha-divergence at 80)

// ---------------------------------------------------------------- inputs --
// A set of n completions. Give either the per-sequence sums (logps) or the
// per-token log-probs (tok_logps); with both, the tokens win and logps is not
// read. The reference likewise (ref_logps or ref_tok_logps); NULL for both means
// "no reference" (an error for losses that need one, unless reference_free).
// Token layout: sequence i's len[i] tokens are tok[off[i]], ..., tok[off[i] +
// len[i] - 1]; tok_off NULL means packed (off[0] = 0, off[i+1] = off[i] + len[i]).
// A padded (B,T) array works with off[i] = i*T + (first completion position).
typedef struct {
    const float *logps;         // (n) policy log-prob of the completion, summed over its tokens
    const float *ref_logps;     // (n) the same under the reference
    const int *len;             // (n) completion tokens, each >= 1
    const float *tok_logps;     // per-token policy log-probs (optional)
    const float *ref_tok_logps; // per-token reference log-probs (optional)
    const long *tok_off;        // (n) first token of each sequence; NULL: packed
} pref_seqs;

// SRPO's revision sequences: log pi(y_a | x, y_b), the model asked to improve y_b
// into y_a (Choi et al. 2024).
enum {
    PREF_REV_CHOSEN_GIVEN_REJECTED = 0, // y_w | y_l
    PREF_REV_REJECTED_GIVEN_REJECTED,   // y_l | y_l
    PREF_REV_CHOSEN_GIVEN_CHOSEN,       // y_w | y_w
    PREF_REV_REJECTED_GIVEN_CHOSEN,     // y_l | y_w
    PREF_NREV
};

typedef struct {
    int n;
    // paired losses
    pref_seqs chosen, rejected;
    // unpaired losses (kto, apo_zero_unpaired, bco, alol*): one completion per example
    pref_seqs completion;
    const uint8_t *label; // (n) 1: desirable (TRL label True), 0: undesirable
    double kl;            // kto: the KL reference point z0 (see pref_kto_kl); detached
    // per-pair extras, NULL when absent
    const float *margin;              // (n) subtracted from the logit (losses marked "margin")
    const float *strength;            // (n) osp: preference strength p in [0, 1] that chosen wins
    const float *prev_chosen_logps;   // (n) inpo: log pi_t(y_w), the previous iterate (frozen)
    const float *prev_rejected_logps; // (n) inpo: log pi_t(y_l)
    pref_seqs cal;                    // vpo: calibration sample y ~ pi_cal (policy log-probs
                                      // only); logps and tok_logps NULL: the chosen response
    pref_seqs rev[PREF_NREV];         // srpo: revisions (policy and reference)
    const float *score;               // (n) alol: reward-model score of the completion
    const float *value;               // (n) alol: V_ref(x), the reference policy's value estimate
    const float *weight; // (n) bco: per-example weight (TRL's UDM density ratio); NULL: 1
} pref_batch;

// ---------------------------------------------------------------- options --
// f-divergence behind the implicit reward (f-DPO, Wang et al. 2023, "Beyond
// Reverse KL"; TRL f_divergence_type). score = f'(u), u = pi/pi_ref, constants dropped:
//   reverse_kl        log u                 (DPO)
//   forward_kl        -1/u
//   js_divergence     log(u / (1 + u))
//   alpha_divergence  -u^(-alpha) / alpha   (alpha -> 0: reverse_kl, alpha = 1: forward_kl)
typedef enum {
    PREF_REVERSE_KL = 0,
    PREF_FORWARD_KL,
    PREF_JS_DIVERGENCE,
    PREF_ALPHA_DIVERGENCE
} pref_fdiv;
int pref_fdiv_from_name(const char *name, pref_fdiv *out, rlhf_err *err);
const char *pref_fdiv_name(pref_fdiv f);

typedef struct {
    double beta; // 0.1; the loss's temperature (IPO tau, ORPO lambda, CPL alpha, INPO eta)
    double label_smoothing;      // 0; cDPO/robust flip probability, EXO epsilon
    int reference_free;          // 0; 1: reference log-probs are taken as 0 (and need not be given)
    pref_fdiv f_divergence_type; // reverse_kl
    double f_alpha_divergence_coef; // 0.5; alpha of alpha_divergence (paper's alpha, see docs)
    double ld_alpha;   // < 0: off (default, TRL None); LD-DPO weight of the verbose tail, in [0, 1]
    int use_weighting; // 0; WPO weights (see docs/losses.md: our form uses mean token log-probs)
    double discopop_tau;                         // 0.05
    double simpo_gamma;                          // 0.5 (TRL CPOConfig)
    double cpo_alpha;                            // 1.0; weight of the NLL term of cpo
    double desirable_weight, undesirable_weight; // 1, 1 (kto, bco, apo_zero_unpaired)
    double bco_delta;  // 0; BCO reward shift delta (a running mean, see pref_running_update)
    double vpo_alpha;  // 0.1; VPO's alpha
    double vpo_sign;   // -1: pessimistic (offline); +1: optimistic (online)
    double inpo_tau;   // 0.1/3; INPO's tau, 0 < tau < beta (= eta)
    double srpo_alpha; // 0.5; SRPO's mix of the self-improvement (alpha) and generative terms
    double cpl_lambda; // 0.5; CPL's conservative bias on the rejected segment
    double alol_clip;  // 0.9; A-LoL's epsilon: ratios clipped to [1-eps, 1+eps]; <= 0: no clipping
    int alol_sigmoid_reward; // 1: R = sigmoid(score) (A-LoL's code); 0: R = score
    // 0; AlphaPO's reward shape (TRL CPOConfig alpha), read by simpo, alphapo and cpo:
    // the log-likelihood reward x (simpo: pc/lc, cpo: pc) becomes (1 - e^(-alpha*x))/alpha,
    // i.e. (1 - p^-alpha)/alpha with p = pi^(1/|y|) (simpo); alpha -> 0 gives x back.
    double alpha;
} pref_options;
void pref_options_default(pref_options *o);

// The options as flags and config keys name them, each with the PREF_OPT_* bit of
// the losses that read it, its field and its accepted range: `rlhf dpo` and
// `rlhf online-dpo` make their flags from this table. (f_divergence_type, an enum,
// is not in it: read its name with pref_fdiv_from_name.)
typedef struct {
    const char *name;
    unsigned option; // PREF_OPT_*
    int is_bool;     // an int field, 0 or 1; else a double
    size_t offset;   // offsetof(pref_options, field)
    double lo, hi;
    const char *help;
} pref_option_def;
const pref_option_def *pref_option_at(int i); // NULL past the end
// The PREF_OPT_* bits that matter to the losses of `kind` (< 0: both) that need
// nothing outside `inputs` (PREF_NEED_*; ~0u: any): the options they read, and the
// driver's reference_free (when one needs a reference), use_weighting (paired)
// and ld_alpha (paired, with per-token inputs).
unsigned pref_options_used(int kind, unsigned inputs);

// ---------------------------------------------------------- the registry --
// Every loss is one static function in pref_pair.c or pref_free.c and one
// PREF_LOSS(...) entry in that file's table, right below the functions: its
// name, kind, what it needs from the batch, which options it reads, a one-line
// formula and its paper. pref.c joins the files' tables; pref_register adds a
// loss at run time (a test, a plugin). Trainers and the CLI ask the declarations
// (pref_loss_needs, kind) instead of comparing names. Adding a loss: one
// function, one entry, one test (docs/losses.md, "Adding a preference loss").
typedef struct pref_view pref_view;
// Adds to v->loss the sum over i of w[i] * (pair i's loss) and to v's gradient
// accumulators the matching gradients; w[i] = term weight / n (times the WPO weight).
typedef int (*pref_loss_fn)(pref_view *v, const double *w, rlhf_err *err);

typedef enum {
    PREF_KIND_PAIRED = 0, // reads batch.chosen and batch.rejected
    PREF_KIND_UNPAIRED,   // reads batch.completion (and batch.label): one completion per example
} pref_kind;

// What a loss needs from the batch beyond its kind's log-probs (PREF_NEED_*).
enum {
    PREF_NEED_REFERENCE = 1 << 0,   // reference log-probs (unless options.reference_free)
    PREF_NEED_TOKENS = 1 << 1,      // per-token log-probs, policy and reference
    PREF_NEED_LABELS = 1 << 2,      // batch.label (desirable / undesirable)
    PREF_NEED_MARGIN = 1 << 3,      // reads batch.margin when given (subtracted from the logit)
    PREF_NEED_STRENGTH = 1 << 4,    // batch.strength, the preference strength of each pair
    PREF_NEED_SCORES = 1 << 5,      // batch.score, the reward-model score (A-LoL, R-LoL)
    PREF_NEED_PREVIOUS = 1 << 6,    // batch.prev_*_logps, the previous iterate pi_t (INPO)
    PREF_NEED_REVISIONS = 1 << 7,   // batch.rev[0..3], the model's revisions (SRPO)
    PREF_NEED_CAL_SAMPLES = 1 << 8, // reads batch.cal, samples of pi_cal (else the chosen one)
    PREF_NEED_KL_POINT = 1 << 9,    // batch.kl, KTO's z0 from mismatched completions
    PREF_NEED_WEIGHTS = 1 << 10,    // reads batch.weight when given (per-example weight)
    PREF_NEED_VALUE = 1 << 11,      // batch.value, V_ref(x): the reference's value estimate
                                    // (A-LoL's baseline; train/alol_value.c fits it)
    PREF_NEED_WHOLE_BATCH = 1 << 12, // the loss reads the whole batch at once (a ratio of
                                     // sums, a sort): not a mean of per-example terms, so
                                     // a batch split over MPI ranks is gathered first
                                     // (train/pref_dist.h; a property, not an input:
                                     // PREF_PROPERTIES)
};
// needs bits that are properties of the loss, not batch inputs (the filters by
// the inputs a caller provides ignore them)
#define PREF_PROPERTIES PREF_NEED_WHOLE_BATCH

// The options (pref_options fields) a loss reads besides the driver's own
// (reference_free, ld_alpha, use_weighting apply to every paired loss).
enum {
    PREF_OPT_BETA = 1 << 0,
    PREF_OPT_LABEL_SMOOTHING = 1 << 1,
    PREF_OPT_F_DIVERGENCE = 1 << 2, // f_divergence_type, f_alpha_divergence_coef
    PREF_OPT_DISCOPOP_TAU = 1 << 3,
    PREF_OPT_SIMPO_GAMMA = 1 << 4,
    PREF_OPT_CPO_ALPHA = 1 << 5,
    PREF_OPT_DESIRABLE_WEIGHTS = 1 << 6, // desirable_weight, undesirable_weight
    PREF_OPT_BCO_DELTA = 1 << 7,
    PREF_OPT_VPO = 1 << 8, // vpo_alpha, vpo_sign
    PREF_OPT_INPO_TAU = 1 << 9,
    PREF_OPT_SRPO_ALPHA = 1 << 10,
    PREF_OPT_CPL_LAMBDA = 1 << 11,
    PREF_OPT_ALOL = 1 << 12, // alol_clip, alol_sigmoid_reward
    // the driver's own, for every loss they apply to (see pref_options_used)
    PREF_OPT_REFERENCE_FREE = 1 << 13, // losses that need a reference
    PREF_OPT_LD_ALPHA = 1 << 14,       // paired losses, given per-token log-probs
    PREF_OPT_WEIGHTING = 1 << 15,      // use_weighting: paired losses
    PREF_OPT_ALPHA = 1 << 16,          // alpha, AlphaPO's reward shape (simpo, alphapo, cpo)
};

typedef struct {
    const char *name; // --loss_type NAME
    pref_loss_fn fn;
    pref_kind kind;
    unsigned needs;    // PREF_NEED_*
    unsigned options;  // PREF_OPT_*
    const char *about; // the formula, one line
    const char *paper; // where it comes from
} pref_loss_def;

// One table entry. The _Generic makes a function whose signature is not
// pref_loss_fn a compile error (a plain initializer would only warn).
#define PREF_LOSS(name, fn, kind, needs, options, about, paper)                                    \
    { (name), _Generic((fn), pref_loss_fn : (fn)), (kind), (needs), (options), (about), (paper) }

// The loss files' tables, each ended by an entry with name NULL.
extern const pref_loss_def pref_losses_pair[]; // pref_pair.c: paired, with a reference
extern const pref_loss_def pref_losses_free[]; // pref_free.c: reference-free, unpaired, A-LoL

// NULL if unknown.
const pref_loss_def *pref_find(const char *name);
// Iteration over every loss (built-in, then registered): i = 0 .. pref_loss_count() - 1.
int pref_loss_count(void);
const pref_loss_def *pref_loss_at(int i);
// Adds a loss at run time (before use; not thread-safe). def must outlive its use.
// Refused: no name or function, a name already taken, more than PREF_MAX_REGISTERED.
#define PREF_MAX_REGISTERED 16
int pref_register(const pref_loss_def *def, rlhf_err *err);
// Nonzero when def declares every bit of need (PREF_NEED_*) / reads every option bit.
int pref_loss_needs(const pref_loss_def *def, unsigned need);
int pref_loss_reads(const pref_loss_def *def, unsigned option);
// "name, name, ...": the losses of a kind (or of both, kind < 0) that need nothing
// outside `inputs` (PREF_NEED_* a caller can provide; ~0u: any), into buf.
void pref_loss_names(char *buf, size_t cap, int kind, unsigned inputs);

// A weighted sum of losses (MPO-style): types "sigmoid,sft", weights "1,0.5"
// (NULL or "": all 1). All terms must be paired, or all unpaired.
typedef struct {
    int n;
    const pref_loss_def *def[PREF_MAX_LOSSES];
    double weight[PREF_MAX_LOSSES];
} pref_loss_list;
int pref_parse(pref_loss_list *l, const char *types, const char *weights, rlhf_err *err);
// The same questions of a whole list: does any term need (read) it; the terms' kind.
int pref_list_needs(const pref_loss_list *l, unsigned need);
int pref_list_reads(const pref_loss_list *l, unsigned option);
pref_kind pref_list_kind(const pref_loss_list *l);

// --------------------------------------------------------------- outputs --
// d(loss)/d(log-prob) of one set of completions: grad (n) for sequence-level
// inputs; tok_grad (same layout as the inputs' tokens) when the set was given
// per token, in which case grad is not written. Nothing for the reference.
typedef struct {
    float *grad;
    float *tok_grad;
} pref_grad;

// TRL's logged metrics, batch means. Paired: rewards/chosen = mean beta*(pc - rc)
// (rc = 0 reference-free), rewards/rejected, rewards/accuracies (chosen reward >
// rejected reward), rewards/margins, logps/chosen, logps/rejected (policy sums).
// Unpaired: means over desirable (chosen) and undesirable (rejected) examples
// (0 when there are none), margins = their difference, accuracies 0; kl = z0.
typedef struct {
    double loss;
    double rewards_chosen, rewards_rejected, rewards_accuracies, rewards_margins;
    double logps_chosen, logps_rejected;
    double kl;
    int n_chosen, n_rejected; // unpaired: examples of each label; paired: n, n
} pref_metrics;

typedef struct {
    pref_grad chosen, rejected, completion, cal, rev[PREF_NREV];
    float *reward_chosen, *reward_rejected; // (n) paired: beta*(pc - rc), beta*(pr - rr)
    float *reward;                          // (n) unpaired: beta*(p - r)
    pref_metrics m;
} pref_out;

// The loss of the list on the batch. Returns 0, or -1 with err (unknown or
// incompatible inputs, a zero-length completion, a missing input a loss needs,
// an option out of range) and nothing written.
int pref_loss(const pref_loss_list *l, const pref_options *o, const pref_batch *b, pref_out *out,
              rlhf_err *err);

// ---------------------------------------------------------------- helpers --
// KTO's z0 (TRL kto_loss): max(0, mean_j (policy_kl_logps[j] - ref_kl_logps[j]))
// over m mismatched (prompt, completion) pairs, detached. m = 0 gives 0.
double pref_kto_kl(const float *policy_kl_logps, const float *ref_kl_logps, int m);

// A running mean and variance (TRL's RunningMoments, used for BCO's delta):
// count starts at 1e-24, so the first update sets the mean. For bco_pair (older
// TRL) update with one value per batch, the mean of beta*(pc - rc) and
// beta*(pr - rr); for the unpaired bco with every example's beta*(p - r); both
// before computing the loss, then pass mean as options.bco_delta.
typedef struct {
    double mean, var, count;
} pref_running;
void pref_running_init(pref_running *r);
void pref_running_update(pref_running *r, const float *x, int n);

// ------------------------------------------------- for loss implementations --
// What a loss function sees: the inputs resolved to double arrays of n, with the
// options applied (reference_free, ld_alpha, f-divergence), and the gradient
// accumulators it adds into. Each g_X is d(loss)/d(X); the driver maps them back
// to the caller's sequence or token gradients.
struct pref_view {
    int n;
    const pref_options *o;
    const pref_batch *b;
    // paired
    const double *pc, *pr;         // policy log-probs (LD-weighted when ld_alpha >= 0)
    const double *rc, *rr;         // reference log-probs, the same way (0: reference-free)
    const double *pc_sum, *pr_sum; // policy plain sums (likelihood terms: sft, NLL, vpo)
    const double *lc, *lr;         // completion lengths
    const double *sc, *sr;         // f-divergence scores of pc - rc, pr - rr
    const double *dsc, *dsr;       // d score / d log-ratio
    const double *margin;          // batch.margin or 0
    const double *cal;             // vpo calibration log-prob (pc_sum when not given)
    const double *rev_p[PREF_NREV], *rev_r[PREF_NREV];
    const double *prev_c, *prev_r; // inpo
    // unpaired
    const double *p, *r, *l;
    const long *off; // resolved token offsets of batch.completion
    // accumulators
    double loss;
    double *g_pc, *g_pr, *g_pc_sum, *g_pr_sum, *g_cal, *g_rev[PREF_NREV], *g_p;
    double *g_tok; // unpaired, per token (alol_seq), indexed like completion.tok_logps
};

// Numerics shared by the loss files: stable softplus, log-sigmoid, sigmoid, and
// exp(min(x, PREF_EXP_CAP)) with *d its derivative (0 past the cap; d may be NULL).
double pref_softplus(double x);
double pref_log_sigmoid(double x);
double pref_sigmoid(double x);
double pref_exp_capped(double x, double *d);

#endif
