// ctrl/riql_loss: RIQL's two robust estimators as pure functions over arrays
// (Yang et al. 2023, "Towards Robust Offline Reinforcement Learning under
// Diverse Data Corruption"; definitions checked against the authors' code,
// github.com/YangRui2015/RIQL, RIQL.py). Shapes as in ctrl_loss.h: an
// ensemble's values are (E, B), member by member. Sums run in double;
// gradients ACCUMULATE (+=) as in ctrl_loss.h.
#ifndef RLHF_CTRL_RIQL_LOSS_H
#define RLHF_CTRL_RIQL_LOSS_H

// out (B) = the alpha-quantile over the E members of q (E, B), defined as
// torch.quantile's default ("linear"): sort the E values, position
// p = alpha (E - 1), out = v[floor p] + (p - floor p) (v[floor p + 1] - v[floor p]).
// RIQL.py's _update_v takes this of the target-Q ensemble (alpha 0.25: with
// E = 5 the second smallest). A target: no gradient. alpha in [0, 1];
// E <= 64 (members past the 64th are ignored).
void ctrl_ensemble_quantile(float *out, const float *q, int E, int B, float alpha);

// RIQL's critic loss (RIQL.py huber_loss and _update_q): u = y[b] - q[e,b],
// delta = 1 / sigma^2,
//     h(u) = u^2 / (2 delta)   if |u| < delta,   |u| - delta / 2 otherwise,
// loss = mean over all E*B of h (the code's .mean() of the (E, B) array).
// y (B) is the (clipped) target, held fixed; dq (E, B) += d loss / dq
// = -h'(u) / (E B), h'(u) = u / delta inside, sign(u) outside.
double ctrl_riql_huber_loss(float *dq, const float *q, const float *y, int E, int B, float sigma);

#endif
