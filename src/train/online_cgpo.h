// train/online_cgpo: the options of the online update method `cgpo`
// (train/online_cgpo.c). CGPO (Xu et al. 2024): judges (rules, verifiers, commands, model judges with thresholds) flag constraint violations per sample; the optimisers CRPG, CODPO and CRRAFT.
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_ONLINE_CGPO_H
#define RLHF_TRAIN_ONLINE_CGPO_H

typedef struct {
    const char *optimizer;  // placeholder: the helper defines the options
} online_cgpo_options;

#endif
