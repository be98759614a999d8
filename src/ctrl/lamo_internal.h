// ctrl/lamo_internal: what LaMo's loop (lamo_train.c) and its checkpoints
// (lamo_ckpt.c) share — the run's state and the steps that rebuild it.
#ifndef RLHF_CTRL_LAMO_INTERNAL_H
#define RLHF_CTRL_LAMO_INTERNAL_H

#include <stdio.h>

#include "ctrl/ctrl_train.h"
#include "ctrl/dataset.h"
#include "ctrl/lamo.h"
#include "train/run.h"

typedef struct {
    const ctrl_train_config *c;
    const ctrl_algo_config *a;
    int S, A, K, H; // H: an evaluation episode's step limit (the timestep table's rows)
    int warm;       // warm-up steps of the lr (--lamo_warmup resolved)
    ctrl_transitions data;
    ctrl_dataset_info info;
    ctrl_obs_norm norm;
    float *obs, *act, *rtg;        // normalised rows, returns-to-go (raw)
    int *tstep;                    // step of each row in its episode
    long *ep_end;                  // one past the last row of the row's episode
    float *lo, *hi, *scale, *bias; // the action box (ctrl_action_box)
    double best_return, target, ref_random, ref_expert;
    rlhf_model *m;
    lamo_net net;
    lamo_scratch sc;
    lamo_batch batch;
    int *text;
    int n_text;
    int *lm_tok, *lm_tgt;
    float *am, *av, *mm, *mv; // AdamW moments: the net's, the model's tail
    rlhf_rng rng;
    int step;               // updates done
    double sum_act, sum_lm; // the losses since the last metrics line
    int n_acc;
    run_dir run;            // --output_dir (run.metrics NULL: nothing is logged)
    char resume_from[4400]; // --resume's checkpoint ("" : a fresh run)
} lamo_run;

// The language model (--lamo_model, LoRA), the net (initialised from t->rng)
// and the AdamW moments; needs t->c, t->a, S, A, K and H.
int lamo_setup_model(lamo_run *t, rlhf_err *err);
// eval_episodes episodes side by side (environment e seeded seed + e), each
// conditioned on t->target; needs the action box, norm, m, net and H
int lamo_evaluate(lamo_run *t, uint64_t seed, double *mean, double *std, rlhf_err *err);
void lamo_run_free(lamo_run *t);

// lamo_ckpt.c. checkpoints/step-N (final: checkpoints/final) of t at t->step,
// written atomically by rank 0 (path: where it is). agent.safetensors holds
// the net, the model's trainable tensors, both spans' AdamW moments and the
// observation normalisation; state.json the settings, counters and stream.
int lamo_ckpt_save(lamo_run *t, int final, char *path, size_t n, rlhf_err *err);
// t set up from this run's flags; refuses a checkpoint of other settings
// (naming the flag), then loads its tensors, stream, step and accumulators
int lamo_ckpt_resume(lamo_run *t, const char *dir, rlhf_err *err);

#endif
