// train/online_hc: the options of the online update method `hc` (`rlhf
// hc-rlhf`, train/online_hc.c). HC-RLHF (high-confidence safe RLHF, Chittepu
// et al. 2025): REINFORCE with leave-one-out baselines on the KL-regularised
// reward minus lambda times a pessimistic surrogate of a separate cost, lambda
// raised in log space while the cost's upper bound mu + k sigma exceeds tau;
// then a safety test on held-out prompts returns the model only when the
// Student-t upper confidence bound of its mean cost is <= tau. algo/hc.h holds
// the math; docs/hc_rlhf.md the method, the flags and their sources.
#ifndef RLHF_TRAIN_ONLINE_HC_H
#define RLHF_TRAIN_ONLINE_HC_H

typedef struct {
    const char *cost;        // a reward-source spec scoring the cost (higher = more harmful)
    const char *safety_data; // held-out prompts (JSONL) for the safety test
    int safety_size;         // n: prompts of safety_data the test uses (default 100)
    float tau;               // the bound: the mean cost must be <= tau (default 0)
    float delta;             // the test's failure probability (default 0.1)
    float c1, c2;            // k's inflation of the batch and safety-set terms (4, 2)
    float lambda_init;       // the multiplier's start (1)
    float lambda_lr;         // its SGD step in log space (0.1)
    float lambda_max;        // its cap (0: none)
} online_hc_options;

#endif
