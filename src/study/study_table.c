// study/study_table: every study, in the order `rlhf study --list` shows them.
#include <stddef.h>

#include "study/study.h"

extern const study_def study_online_vs_offline;
extern const study_def study_overoptimization;
extern const study_def study_ensembles;
extern const study_def study_dporm_vs_exrm;
extern const study_def study_par;
extern const study_def study_pf_ppo;
extern const study_def study_vpo;
extern const study_def study_cpl;
extern const study_def study_riql;
extern const study_def study_wsrl;
extern const study_def study_famo2o;
extern const study_def study_ro2o;
extern const study_def study_ftpedel;
extern const study_def study_moorl;
extern const study_def study_hnpg;
extern const study_def study_h2o;
extern const study_def study_neorl;
extern const study_def study_lamo;
extern const study_def study_fisor;

static const study_def *const STUDIES[] = {
    &study_online_vs_offline,
    &study_overoptimization,
    &study_ensembles,
    &study_dporm_vs_exrm,
    &study_par,
    &study_pf_ppo,
    &study_vpo,
    &study_cpl,
    &study_riql,
    &study_wsrl,
    &study_famo2o,
    &study_ro2o,
    &study_ftpedel,
    &study_moorl,
    &study_hnpg,
    &study_h2o,
    &study_neorl,
    &study_lamo,
    &study_fisor,
};

const study_def *study_at(int i) {
    return i >= 0 && (size_t)i < sizeof STUDIES / sizeof STUDIES[0] ? STUDIES[i] : NULL;
}
