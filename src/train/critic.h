// train/critic: PPO's separate critic (value model), as TRL's value_model and
// OpenRLHF's critic: a model of its own with a value head and its own AdamW
// and learning rate, trained on the clipped value loss only, so the policy's
// gradient has no value-loss part. `rlhf ppo --critic_model SPEC` makes one;
// SPEC is any --model spec (a reward model, a run directory, an HF folder, a
// named size) or "policy" (a copy of the initial policy, --model). The online
// loop owns it (ONLINE_NEED_CRITIC, train/online_update.h): the rollout's old
// values come from it, each checkpoint holds it as critic/ (weights and
// optimizer state), --resume restores both; the update method (online_pg.c)
// trains it with critic_step. docs/ppo_critic.md.
#ifndef RLHF_TRAIN_CRITIC_H
#define RLHF_TRAIN_CRITIC_H

#include "train/rollout.h"
#include "train/trainer.h"

typedef struct online_critic {
    rlhf_model *m;      // trunk + value head (its LM head is carried but unused)
    rlhf_optim *o;      // its own AdamW: --critic_learning_rate, the policy's schedule
    char spec[1024];    // as given (--critic_model)
    int from_score_head; // the value head started as the source's score head (a reward model)
} online_critic;

// Loads SPEC ("policy": the run's --model) as a critic for t's policy: a value
// head added (a reward model's one-output score head becomes it; otherwise a
// fresh seeded head), LoRA adapters merged; an AdamW of lr (the policy's
// schedule, warm-up, weight decay and --max_grad_norm) over optim_steps steps.
// -1 + err naming --critic_model when the path does not load, its vocabulary is
// not the policy's, or its max_seq_len is shorter than the policy's.
int critic_open(trainer *t, const char *spec, float lr, long optim_steps, online_critic **out,
                rlhf_err *err);
void critic_free(online_critic *cr);

// The critic's values (B,T) of rollout rb, 0 off the completion mask (no gradient,
// micro rows per forward).
int critic_values(online_critic *cr, const rollout_batch *rb, int micro, float *values,
                  rlhf_err *err);

// The critic as a checkpoint folder dir (config.json, model.safetensors,
// optimizer.safetensors), written atomically (checkpoint_save).
int critic_save(const online_critic *cr, const char *dir, rlhf_err *err);
// Its weights and optimizer state back from dir (a checkpoint's critic/); -1 + err
// naming the folder when its architecture or moments do not fit.
int critic_restore(online_critic *cr, const char *dir, rlhf_err *err);

#endif
