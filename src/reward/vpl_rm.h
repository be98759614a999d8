// reward/vpl_rm: a VPL reward model (trained by `rlhf rm --objective vpl`,
// train/rm_vpl.h) conditioned on one user, as a scorer: the user's latent is
// z = mu of the encoder over the first K pairs of a context file (that user's
// labelled prompt/chosen/rejected rows), and each (prompt, completion) gets
// r = MLP([e(prompt, completion); z]), e the frozen trunk's embedding that the
// run recorded in vpl.json (trunk, its seed, pooling).
//
// Texts are tokenized as the trainer's data were with default flags: BOS by the
// tokenizer's convention, the prompt, the completion as its continuation, EOS;
// over-long sequences keep their end.
#ifndef RLHF_REWARD_VPL_RM_H
#define RLHF_REWARD_VPL_RM_H

#include "base/base.h"

typedef struct vpl_rm vpl_rm;

// arg: "DIR:CONTEXT" — an `rm --objective vpl` run directory and, after its last
// ':', the user's context file (JSONL, at least K prompt/chosen/rejected rows).
// tokenizer: NULL = the trunk's.
int vpl_rm_open(vpl_rm **out, const char *arg, const char *tokenizer, rlhf_err *err);
// out (n): each completion's reward for the user, batch_size rows per trunk forward.
int vpl_rm_score(vpl_rm *v, const char *const *prompts, const char *const *completions, int n,
                 int batch_size, float *out, rlhf_err *err);
void vpl_rm_close(vpl_rm *v);  // NULL is fine

#endif
