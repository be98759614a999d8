// train/online_nash: the options of the online update method `nash-md`
// (train/online_nash.c, `rlhf nash-md`). Nash-MD (Munos et al. 2023; TRL's
// NashMDTrainer): each sample of the policy is judged against a sample of the
// geometric mixture of the policy and the reference (train/mixture_gen.h); a
// REINFORCE step on the preference probability, with a KL penalty to the
// reference (algo/nash.h; docs/nash_md.md).
#ifndef RLHF_TRAIN_ONLINE_NASH_H
#define RLHF_TRAIN_ONLINE_NASH_H

typedef struct {
    float mixture_coef;  // c in π_ref^c π^(1−c), [0, 1] (TRL mixture_coef, 0.5)
    float beta;          // the KL coefficient β (TRL beta, 0.1)
} online_nash_options;

#endif
