// reward/pairwise: a generative pairwise reward model (Pairwise-RL, paper card
// 33). A causal LM reads a judging prompt holding the prompt and two answers,
// shown as A and B, and names the better one with its next token: P(A wins) =
// sigmoid(logp(" A") - logp(" B")), the softmax restricted to the two answer
// tokens (reward/llm_judge.h builds the rows). Asked in both orders and
// averaged (self_judge_prob, algo/self_judge.h), P(y > z) + P(z > y) = 1
// exactly and the position bias cancels.
//
// `rlhf rm --objective pairwise` trains one (train/rm.c) and writes the
// template it used to OUTPUT_DIR/pairwise.json; the reward source
// pairwise:PATH (reward/sources.h) reads it from there, or from the run
// directory two levels above a checkpoint (PATH/../../pairwise.json), else
// uses PAIRWISE_TEMPLATE.
//
// The anchor. The RL reward of a completion y is P(y > anchor). The paper's
// anchor is a reference answer: the online trainers pass the dataset's
// completion of each prompt (reward_set_anchors, --pairwise_anchor reference,
// the default). Where a row has none (prompt-only data, or --pairwise_anchor
// group) the anchor is the first completion of y's group: reward_set_score
// receives a group's samples next to each other with the same prompt, so a run
// of equal prompt texts is a group and its first member the anchor (it scores
// exactly 1/2). With group anchors a batch with one sample per prompt scores 1/2
// everywhere: use num_generations >= 2.
#ifndef RLHF_REWARD_PAIRWISE_H
#define RLHF_REWARD_PAIRWISE_H

#include "rlhf.h"
#include "tok/tok.h"

#define PAIRWISE_TEMPLATE \
    "Question: {prompt}\nAnswer A: {a}\nAnswer B: {b}\nWhich answer is better? Better answer:"
#define PAIRWISE_META "pairwise.json"

// The two judging texts of (prompt, y, z): out[0] shows y as A and z as B,
// out[1] shows z as A and y as B (each malloc'd). tmpl NULL: PAIRWISE_TEMPLATE.
void pairwise_texts(const char *tmpl, const char *prompt, const char *y, const char *z,
                    char *out[2]);

typedef struct pairwise_rm pairwise_rm;
// Loads the judge at path (model_load_any) with its tokenizer (NULL: its own)
// and the template of its pairwise.json (above).
int pairwise_rm_open(pairwise_rm **out, const char *path, const char *tokenizer, rlhf_err *err);
// out (n) = P(y_i > z_i), both orders averaged; micro pairs per forward.
int pairwise_rm_prob(pairwise_rm *p, const char *const *prompts, const char *const *y,
                     const char *const *z, int n, int micro, double *out, rlhf_err *err);
// out (n) = P(completion_i > anchor_i): anchors[i] where anchors and anchors[i]
// are not NULL, else the group anchor described above.
int pairwise_rm_score(pairwise_rm *p, const char *const *prompts, const char *const *completions,
                      const char *const *anchors, int n, int micro, float *out, rlhf_err *err);
const char *pairwise_rm_template(const pairwise_rm *p);
void pairwise_rm_close(pairwise_rm *p);

#endif
