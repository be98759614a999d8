// algo/nash: the math of Nash-MD (Munos et al. 2023, "Nash Learning from Human
// Feedback", arXiv:2312.00886) as TRL's NashMDTrainer trains it. Pure
// functions over per-token arrays; the online trainer (train/online_nash.c)
// samples, scores and pushes the gradient back.
//
// Per prompt x: y ~ π (the policy), y' ~ π^β_mix, the geometric mixture of π and
// the reference (train/mixture_gen.h). The preference of y over y' is, with a
// reward r, P(y ≻ y') = σ(r(y) − r(y')) (Bradley-Terry). The loss of one row is
//
//   L = β_KL Σ_t sg(log π_t − log π_ref,t) · log π_t  −  (P(y ≻ y') − ½) Σ_t log π_t
//
// summed over the completion's tokens t, averaged over the rows; sg() stops the
// gradient. The second term is REINFORCE on the preference against the mixture
// (the baseline ½ is the value of a tie); the first is the score-function
// (REINFORCE) gradient of KL(π‖π_ref), token by token, estimated on y:
//
//   ∂L/∂log π_t = β_KL (log π_t − log π_ref,t) − (P(y ≻ y') − ½)    (per row, / rows)
//
// P does not depend on π (the scores are constants: no gradient through the
// judge). docs/nash_md.md relates this to the paper's mirror-descent update.
#ifndef RLHF_ALGO_NASH_H
#define RLHF_ALGO_NASH_H

// prob (n) = P(y_i ≻ y'_i) = σ(score_policy_i − score_mixture_i), stable for any scores.
void nash_preference(int n, const float *score_policy, const float *score_mixture, double *prob);

// What nash_md_loss also reports, each a mean over the B rows.
typedef struct {
    double score;   // (P − ½) Σ_t log π_t             (TRL's loss/score)
    double kl;      // Σ_t (log π_t − log π_ref,t)      (TRL's loss/kl: the k1 estimate on y)
    double kl_term; // Σ_t (log π_t − log π_ref,t) log π_t  (the KL part of the loss / β_KL)
} nash_md_stats;

// The Nash-MD loss of B rows of T positions and its gradient.
//   logp (B,T)        log π of each completion token now (the argument the gradient is of)
//   logp_sg (B,T)     the same numbers seen through sg(): the log-ratio's log π (the
//                     trainer passes logp again; a finite-difference check moves logp only)
//   ref_logp (B,T)    log π_ref of the same tokens
//   mask (B,T)        1 on completion tokens, 0 elsewhere (prompt, padding)
//   prob (B)          P(y ≻ y') of each row (nash_preference)
//   beta              β_KL >= 0, the KL coefficient (--beta)
//   n_rows            the mean's denominator (B, or the whole batch when B is a slice of it)
// Returns Σ_rows L / n_rows; dlogp (B,T) = ∂ of that / ∂logp (0 where mask is 0);
// st (may be NULL) gets the rows' sums of its fields / n_rows. Sums in double.
double nash_md_loss(int B, int T, const float *logp, const float *logp_sg, const float *ref_logp,
                    const float *mask, const double *prob, double beta, int n_rows, float *dlogp,
                    nash_md_stats *st);

#endif
