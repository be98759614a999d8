// train/online_xpo: the options of the online update method `xpo`
// (train/online_xpo.c, `rlhf xpo`). XPO (Xie et al. 2024, exploratory
// preference optimisation; TRL XPOTrainer): online DPO on (policy sample,
// reference sample) pairs judged by the reward sources, plus alpha * the
// policy's log-likelihood of the reference's samples (the exploration bonus).
// The loss is algo/xpo's; docs/xpo.md.
#ifndef RLHF_TRAIN_ONLINE_XPO_H
#define RLHF_TRAIN_ONLINE_XPO_H

#include "algo/xpo.h"

typedef struct {
    struct {  // as typed; online_config_resolve fills loss_type
        const char *loss_type;  // sigmoid | ipo
    } name;
    xpo_loss_type loss_type;
    float alpha;                // weight of the exploration term alpha log pi(y~) (TRL 1e-5)
    float beta;                 // DPO's beta (TRL 0.1)
    int log_pairs;              // pairs per iteration written to pairs.jsonl (0: none)
} online_xpo_options;

#endif
