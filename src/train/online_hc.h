// train/online_hc: the options of the online update method `hc`
// (train/online_hc.c). HC-RLHF (high-confidence safe RLHF): reward minus a pessimistic cost under a Lagrangian with an upper confidence bound, then a safety test on held-out prompts that returns the model only when the cost bound holds.
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_ONLINE_HC_H
#define RLHF_TRAIN_ONLINE_HC_H

typedef struct {
    const char *cost;       // placeholder: the helper defines the options
} online_hc_options;

#endif
