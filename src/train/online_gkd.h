// train/online_gkd: the options of the online update method `gkd`
// (train/online_gkd.c). GKD / on-policy distillation (Agarwal et al. 2024): the generalised Jensen-Shannon divergence between a teacher and the student on the student's own samples.
// (Being built: the frame only.)
#ifndef RLHF_TRAIN_ONLINE_GKD_H
#define RLHF_TRAIN_ONLINE_GKD_H

typedef struct {
    const char *teacher_model; // placeholder: the helper defines the options
} online_gkd_options;

#endif
