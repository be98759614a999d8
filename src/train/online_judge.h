// train/online_judge: OSP's self-judging forward (Zhai et al. 2024, "online
// self-preferring"): the policy judges its own samples. For every two samples
// y_i, y_j of a prompt it reads the judging prompt (the template with the
// prompt and the two responses) in both orders and takes its log-probs of the
// two answer tokens; algo/self_judge turns them into p(y_i beats y_j) (the
// answers' normalised likelihoods, averaged over the orders). No gradient.
//
// The template (--judge_template) holds {prompt}, {a} and {b}; the answers are
// the tokens of " A" and " B" after it (their log-probs summed over their
// tokens; the two may differ in length). The default:
//   Question: {prompt}\nResponse A: {a}\nResponse B: {b}\n
//   Which response is better, A or B?\nAnswer:
#ifndef RLHF_TRAIN_ONLINE_JUDGE_H
#define RLHF_TRAIN_ONLINE_JUDGE_H

#include "rlhf.h"
#include "tok/tok.h"

#define ONLINE_JUDGE_TEMPLATE                                                 \
    "Question: {prompt}\nResponse A: {a}\nResponse B: {b}\n"                 \
    "Which response is better, A or B?\nAnswer:"

// p (n_prompts, n, n): p[(g*n + i)*n + j] = p(sample i of prompt g beats sample
// j), from m's judgement (the diagonal is 0.5). prompts (n_prompts), texts
// (n_prompts * n, rows grouped by prompt). micro: rows per forward (0: 64). The
// judging prompt is the template filled by reward/llm_judge's judge_template_fill,
// the rows its judge rows; m is read untempered (its logit_temperature is put
// back after).
int online_judge_self(rlhf_model *m, const rlhf_tokenizer *tok, const char *tmpl,
                      const char *const *prompts, const char *const *texts, int n_prompts, int n,
                      int micro, double *p, rlhf_err *err);

#endif
