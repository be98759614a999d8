// reward/llm_judge: a language model (any model this project loads) as a judge,
// read from the log-probs of its answer tokens after a judging prompt, with no
// text generated. Two uses sit on the same rows:
//
//   llm:PATH       a pointwise judge, reward source (reward/sources.h): the
//                  template shows {prompt} and {completion} and asks a yes/no
//                  question; the score is P(" Yes") / (P(" Yes") + P(" No")) =
//                  sigmoid(logp_Yes - logp_No), in [0, 1].
//   pairwise:PATH  a pairwise judge (reward/pairwise.h) whose answers are " A"
//                  and " B", trained by `rlhf rm --objective pairwise`.
//
// A judged row is the judging text (its last max_seq_len - answer tokens kept:
// the question and the cue stay) followed by one answer's tokens; an answer's
// log-prob is the sum over its tokens (tokenized as a continuation,
// tok_encode_next), so answers of different lengths (" Yes" and " No" in bytes)
// compare as sequence probabilities. Rows are left-padded: every answer ends in
// the last column.
#ifndef RLHF_REWARD_LLM_JUDGE_H
#define RLHF_REWARD_LLM_JUDGE_H

#include "rlhf.h"
#include "tok/tok.h"

// The default pointwise judging template and answers (llm: sources).
#define LLM_JUDGE_TEMPLATE                                                             \
    "Question: {prompt}\nProposed answer: {completion}\nIs the proposed answer correct " \
    "(Yes or No)? Answer:"

// A template with {prompt}, {completion}, {a} and {b} filled in (malloc'd); any
// other brace is kept as it is. NULL arguments fill as "".
char *judge_template_fill(const char *tmpl, const char *prompt, const char *completion,
                          const char *a, const char *b);

// The answers a judge chooses among: n answers, answer w = ids[w][0 .. len[w]).
typedef struct {
    int n;
    int *len, **ids;
} judge_answers;

// Tokenizes the answers (continuations of a text). -1 + err when one has no
// tokens, two are equal, or one leaves no room in max_seq_len.
int judge_answers_init(judge_answers *a, const rlhf_tokenizer *tok, const char *const *answers,
                       int n, int max_seq_len, rlhf_err *err);
void judge_answers_free(judge_answers *a);

// The rows of n judging texts, each followed by each answer: row i*A + w is
// text i + answer w (A = a->n), left-padded with pad, targets on the answer
// tokens only. b's arrays are malloc'd (judge_rows_free).
int judge_rows_build(const rlhf_tokenizer *tok, const judge_answers *a, const char *const *texts,
                     int n, int max_seq_len, int pad, rlhf_batch *b, rlhf_err *err);
void judge_rows_free(rlhf_batch *b);
// After model_forward on such rows: out (n, A) = each answer's summed log-prob.
void judge_rows_logp(const rlhf_model *m, const rlhf_batch *b, const judge_answers *a, float *out);
// The gradient of the rows' per-token log-probs, dlogp (B, T) OVERWRITTEN, from
// d(loss)/d(answer log-prob) dans (n, A): each answer token gets its answer's.
void judge_rows_dlogp(const rlhf_batch *b, const judge_answers *a, const float *dans, float *dlogp);

// out (n, A): the answers' log-probs after each text, micro texts per forward.
int judge_answer_logp(rlhf_model *m, const rlhf_tokenizer *tok, const judge_answers *a,
                      const char *const *texts, int n, int micro, float *out, rlhf_err *err);

// ---------------------------------------------------------- llm: source --
typedef struct llm_judge llm_judge;
// Loads the judge model (model_load_any: a named size, checkpoint, run directory,
// HF folder) and its own tokenizer (tokenizer NULL) or the named one; tmpl NULL
// = LLM_JUDGE_TEMPLATE (it must hold {completion}). Answers " Yes" / " No".
int llm_judge_open(llm_judge **out, const char *path, const char *tmpl, const char *tokenizer,
                   rlhf_err *err);
// out (n) = sigmoid(logp(" Yes") - logp(" No")) after each filled template.
int llm_judge_score(llm_judge *j, const char *const *prompts, const char *const *completions,
                    int n, int micro, float *out, rlhf_err *err);
void llm_judge_close(llm_judge *j);

#endif
