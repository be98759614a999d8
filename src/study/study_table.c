// study/study_table: every study, in the order `rlhf study --list` shows them.
#include <stddef.h>

#include "study/study.h"

// TEMPORARY weak references while the studies land one by one (integration
// makes them strong)
extern const study_def study_online_vs_offline __attribute__((weak));
extern const study_def study_overoptimization __attribute__((weak));
extern const study_def study_ensembles __attribute__((weak));
extern const study_def study_dporm_vs_exrm __attribute__((weak));
extern const study_def study_par __attribute__((weak));
extern const study_def study_pf_ppo __attribute__((weak));
extern const study_def study_vpo __attribute__((weak));

static const study_def *const STUDIES[] = {
    &study_online_vs_offline,
    &study_overoptimization,
    &study_ensembles,
    &study_dporm_vs_exrm,
    &study_par,
    &study_pf_ppo,
    &study_vpo,
};

const study_def *study_at(int i) {
    int k = 0;
    for (size_t j = 0; j < sizeof STUDIES / sizeof STUDIES[0]; j++)
        if (STUDIES[j] && k++ == i) return STUDIES[j];
    return NULL;
}
