// train/online_gkd: the options of the online update method `gkd`
// (train/online_gkd.c, `rlhf gkd`): GKD / on-policy distillation (Agarwal et
// al. 2024) — the student (the policy) learns a teacher's next-token
// distributions through the generalised Jensen-Shannon divergence (algo/gkd),
// on its own samples (a share --lmbda of the batches) and otherwise on the
// dataset's completions or, with --seq_kd, the teacher's samples. Flag names
// and defaults are TRL's GKDConfig's.
#ifndef RLHF_TRAIN_ONLINE_GKD_H
#define RLHF_TRAIN_ONLINE_GKD_H

typedef struct {
    const char *teacher_model;  // the teacher (same vocabulary as the student); required
    float lmbda;                // share of batches on the student's own samples (TRL 0.5)
    float beta;                 // the generalised JSD's beta: 0 forward KL, 1 reverse KL (TRL 0.5)
    float loss_temperature;     // divides both models' logits in the divergence (TRL's trainer: 1)
    int seq_kd;                 // off-policy batches on the teacher's samples (TRL seq_kd)
} online_gkd_options;

#endif
