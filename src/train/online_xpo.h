// train/online_xpo: the options of the online update method `xpo`
// (train/online_xpo.c). XPO (Xie et al. 2024, exploratory preference optimisation; TRL XPOTrainer): online DPO on (policy sample, reference sample) pairs judged by the reward sources, plus alpha * the log-likelihood of the reference samples (the exploration bonus).
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_ONLINE_XPO_H
#define RLHF_TRAIN_ONLINE_XPO_H

typedef struct {
    float placeholder;       // the helper defines the options
} online_xpo_options;

#endif
