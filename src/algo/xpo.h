// algo/xpo: the loss of XPO, exploratory preference optimisation (Xie et al.
// 2024, "Exploratory Preference Optimization: Harnessing Implicit
// Q*-Approximation for Sample-Efficient RLHF", arXiv:2405.21046), in the form
// of TRL's XPOTrainer. Pure functions over per-sequence arrays (one number per
// completion: its summed log-probability); the online trainer
// (train/online_xpo.c) gathers them and pushes the gradient back.
//
// Each prompt x has one completion y of the policy π_θ and one ỹ of the
// reference π_ref; the reward decides which is chosen (y_w) and which is
// rejected (y_l): y is chosen when r(y) >= r(ỹ) (TRL: ties go to the policy's
// sample). With h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]
//
//   loss_dpo = −log σ(β h)              (XPO_LOSS_SIGMOID)
//            = (h − 1/(2β))²            (XPO_LOSS_IPO; summed log-probs, no length
//                                        normalisation, as TRL's XPO)
//   loss_xpo = α log π_θ(ỹ)             (the exploration bonus, on the reference's sample)
//   loss     = mean over the N pairs of (loss_dpo + loss_xpo)
//
// Minimising α log π_θ(ỹ) lowers the policy's likelihood of what the reference
// would say: it pushes the policy off the reference's support (the paper's
// Algorithm 1 adds the same α Σ log π(ỹ) to the DPO objective).
#ifndef RLHF_ALGO_XPO_H
#define RLHF_ALGO_XPO_H

#include <stdint.h>

typedef enum { XPO_LOSS_SIGMOID = 0, XPO_LOSS_IPO } xpo_loss_type;

// "sigmoid" | "ipo" -> *out; 0, or -1 (unknown name)
int xpo_loss_type_from_name(const char *name, xpo_loss_type *out);

// The batch's means (TRL's metric names in train/online_xpo.c).
typedef struct {
    double loss, loss_dpo, loss_xpo; // mean total, DPO part, α log π_θ(ỹ) part
    double rewards_chosen;           // β [log π_θ − log π_ref](y_w)
    double rewards_rejected;         // β [log π_θ − log π_ref](y_l)
    double margins, accuracies;      // β h, and the share of pairs with β h > 0
    double logps_chosen, logps_rejected; // log π_θ(y_w), log π_θ(y_l)
    double policy_chosen;            // the share of pairs whose chosen is the policy's sample
    double logps_ref_samples;        // log π_θ(ỹ) (what the α term lowers)
} xpo_stats;

// N pairs:
//   pol_y (N)  log π_θ(y), the policy's summed log-prob of its own sample
//   ref_y (N)  log π_ref(y)
//   pol_t (N)  log π_θ(ỹ), the policy's summed log-prob of the reference's sample
//   ref_t (N)  log π_ref(ỹ)
//   y_chosen (N) 1: y is chosen (r(y) >= r(ỹ)), 0: ỹ is
// Writes d_pol_y, d_pol_t (N) = ∂loss/∂pol_y, ∂loss/∂pol_t of the MEAN loss (either
// may be NULL) and *st (may be NULL); returns the mean loss. In double;
// log σ without overflow.
double xpo_loss(int N, xpo_loss_type type, double beta, double alpha, const double *pol_y,
                const double *ref_y, const double *pol_t, const double *ref_t,
                const uint8_t *y_chosen, double *d_pol_y, double *d_pol_t, xpo_stats *st);

#endif
