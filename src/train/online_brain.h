// train/online_brain: the options of the online update method `brain`
// (train/online_brain.c). BRAIn (Pandey et al. 2024): distils the reward-conditioned posterior p(y|x,G=1) ∝ p_SFT(y|x) p(G=1|x,y) with self-normalised importance weights and the self-normalised baseline.
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_ONLINE_BRAIN_H
#define RLHF_TRAIN_ONLINE_BRAIN_H

typedef struct {
    float beta;              // placeholder: the helper defines the options
} online_brain_options;

#endif
