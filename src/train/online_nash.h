// train/online_nash: the options of the online update method `nash-md`
// (train/online_nash.c). Nash-MD (Munos et al. 2023; TRL NashMDTrainer): the policy's samples are judged against samples of a geometric mixture of the policy and the reference; a policy-gradient step on the preference probability, with a KL penalty to the reference.
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_ONLINE_NASH_H
#define RLHF_TRAIN_ONLINE_NASH_H

typedef struct {
    float placeholder;       // the helper defines the options
} online_nash_options;

#endif
