// ctrl/algo_cpl: Contrastive Preference Learning (Hejna et al. 2024) as a
// ctrl_algo ("cpl", table ctrl_algo_cpl) and its KL variant ("cpl_kl",
// ctrl_algo_cpl_kl). See algo_cpl.c for the losses.
#ifndef RLHF_CTRL_ALGO_CPL_H
#define RLHF_CTRL_ALGO_CPL_H

#include "ctrl/agent.h"
#include "ctrl/cpl_prefs.h"

extern const ctrl_algo ctrl_algo_cpl, ctrl_algo_cpl_kl;

// gives the agent its segment pairs over the rows of t (the agent keeps
// pointers to both: they must outlive it); the pairs are checked against t
// (row count, segments inside it); 0 or -1 + err
int cpl_agent_set_pairs(void *agent, const ctrl_transitions *t, const cpl_pairs *p, rlhf_err *err);

#endif
