// ctrl/hnpg_internal: what HNPG's loop (hnpg_train.c) and its checkpoints
// (hnpg_ckpt.c) share — the run's state and the steps that rebuild it.
#ifndef RLHF_CTRL_HNPG_INTERNAL_H
#define RLHF_CTRL_HNPG_INTERNAL_H

#include "ctrl/hnpg.h"
#include "train/run.h"

// one iteration's online rows
typedef struct {
    float *s, *a, *r, *mask, *ret, *adv, *val; // (cap, S), (cap, A), (cap) ...
    int *h;
    int n, cap;
} hnpg_rows;

typedef struct {
    const hnpg_config *c;
    ctrl_env *env, *eval_env;
    int H, S, A, in;
    hnpg_pol pol;  // the policies' shape (obs S, act A, --hnpg_policy_hidden)
    long np;       // floats of one policy
    float **theta; // H policies
    ctrl_mlp *q;   // H critics
    rlhf_rng rng;
    int have_off;
    ctrl_transitions off;
    int **off_idx, *off_cnt; // the offline rows at step h
    hnpg_rows on;
    run_dir run; // --output_dir (run.metrics NULL: nothing is logged)
} hnpg_run;

// the environments, H, S, A and the policies and critics initialised from a
// stream seeded c->seed (no offline data, no folder): what an evaluation needs
int hnpg_run_nets(hnpg_run *t, rlhf_err *err);
void hnpg_run_free(hnpg_run *t);
// eval_episodes greedy episodes (the policies' means) on t->eval_env seeded seed
int hnpg_evaluate(hnpg_run *t, uint64_t seed, double *mean, double *std, rlhf_err *err);

// hnpg_ckpt.c. checkpoints/step-N (N: online steps done; final:
// checkpoints/final) of t after r->iterations iterations, written atomically
// by rank 0 (path: where it is; "" with no folder)
int hnpg_ckpt_save(const hnpg_run *t, const hnpg_result *r, int final, char *path, size_t n,
                   rlhf_err *err);
// t set up from this run's flags; refuses a checkpoint of other settings
// (naming the flag), then loads its policies, critics, streams and counters
int hnpg_ckpt_resume(hnpg_run *t, hnpg_result *r, const char *dir, rlhf_err *err);

// algo_hnpg.c: the trainer's config onto hnpg_config (strings point into c)
void hnpg_config_from_train(const ctrl_train_config *c, hnpg_config *h);

#endif
