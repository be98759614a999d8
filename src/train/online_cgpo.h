// train/online_cgpo: the options of the online update method `cgpo`
// (train/online_cgpo.c, `rlhf cgpo`). CGPO (Xu et al. 2024): a mixture of judges
// (reward/constraint.h) flags constraint violations per sample; one of three
// constrained optimisers (algo/cgpo.h) updates the policy: CRPG, CODPO, CRRAFT.
#ifndef RLHF_TRAIN_ONLINE_CGPO_H
#define RLHF_TRAIN_ONLINE_CGPO_H

typedef enum { CGPO_CRPG = 0, CGPO_CODPO, CGPO_CRRAFT } online_cgpo_optimizer;
// the reference response ybar of the calibrated reward sigmoid(r(x,y) - r(x,ybar))
typedef enum { CGPO_CAL_MEAN = 0, CGPO_CAL_GREEDY } online_cgpo_calibration;

typedef struct {
    struct {  // as typed; resolved into the enums below
        const char *optimizer;    // crpg | codpo | crraft
        const char *calibration;  // mean | greedy
    } name;
    online_cgpo_optimizer optimizer;
    online_cgpo_calibration calibration;
    const char *judges;       // the mixture of judges (reward/constraint.h's spec)
    const char *tasks;        // several tasks: a JSON file (docs/cgpo.md); NULL: one task
    float kl_threshold;       // a prompt whose samples' mean summed KL to the reference
                              // exceeds this (nats) is left out of the update (0: off)
    int crpg_baseline;        // CRPG: subtract the leave-one-out mean weight of the group
    float beta;               // CODPO: DPO's beta
    float codpo_lambda;       // CODPO: weight of the chosen sample's per-token NLL
    int codpo_fallback;       // CODPO: a prompt with no violating sample pairs its best
                              // against its lowest-reward passing sample
} online_cgpo_options;

#endif
