// reward/classify: a text classifier (trained by `rlhf rm --objective
// classify`, train/rm_classify.h) as a reward source, classify:PATH — the
// discriminator reward of the health-text-simplification paper. Each
// completion gets P(label true) = sigmoid(score head), or with classify:PATH:logit
// the logit itself. The model reads what it was trained on, as classify.json
// (beside the checkpoint, or in the run directory) records: "text" rows -> the
// completion alone; "prompt_completion" rows -> prompt then completion.
// Loading and running the model is reward/reward_model.h's.
#ifndef RLHF_REWARD_CLASSIFY_H
#define RLHF_REWARD_CLASSIFY_H

#include "base/base.h"

// the metadata file beside a classifier (written by train/rm_classify)
#define CLASSIFY_META "classify.json"

typedef struct classify_rm classify_rm;

// arg: PATH or PATH:logit (a checkpoint or an rm run directory of a classifier).
// tokenizer: NULL = the model's.
int classify_rm_open(classify_rm **out, const char *arg, const char *tokenizer, rlhf_err *err);
// out (n): each completion's P(true) (or logit), batch_size rows per forward.
int classify_rm_score(classify_rm *c, const char *const *prompts, const char *const *completions,
                      int n, int batch_size, float *out, rlhf_err *err);
void classify_rm_close(classify_rm *c);  // NULL is fine

#endif
