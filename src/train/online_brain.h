// train/online_brain: the options of the online update method `brain`
// (train/online_brain.c, `rlhf brain`). BRAIn (Pandey et al. 2024) distils the
// reward-conditioned posterior p(y|x,G=1) ∝ p_SFT(y|x) p(G=1|x,y) into the
// policy with self-normalised importance weights and the self-normalised
// baseline (algo/brain.h; docs/brain.md).
#ifndef RLHF_TRAIN_ONLINE_BRAIN_H
#define RLHF_TRAIN_ONLINE_BRAIN_H

#include "algo/brain.h"

typedef struct {
    struct {  // as typed; online_config_resolve fills the typed fields below
        const char *goodness;         // sigmoid | exp: reward -> log p(G=1|x,y)
        const char *reward_baseline;  // sigmoid's r_b: "mean" (the prompt's) or a number
    } name;
    brain_goodness goodness;
    int reward_baseline_mean;         // 1: r_b = the mean reward of the prompt's samples
    double reward_baseline_value;     // else r_b = this
    float beta;                       // temperature: log σ((r − r_b)/β) or r/β
    int baseline;                     // 1: the self-normalised baseline α' (BRAIn); 0: none
} online_brain_options;

#endif
