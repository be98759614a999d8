// train/vpl_policy: a policy conditioned on the user's VPL latent z (Poddar et
// al. 2024, arXiv:2408.10075; docs/vpl.md, "Policies conditioned on z").
//
// A VPL run (`rlhf rm --objective vpl`) gives, for a user with K labelled pairs,
// a latent z = mu(context) and a reward r(x, y, z) for that user
// (reward/vpl_model.h). This trainer teaches ONE policy to serve every user:
//
//   conditioning  the policy reads z as text before the prompt: each coordinate
//                 of z (in [-1, 1], the encoder's clamp) quantised to one of L
//                 letters, "z:" + letters + "\n" + prompt (vpl_policy_render);
//                 --vpl_condition none leaves the prompt as it is (one policy
//                 for all users, the baseline)
//   training      GRPO, on-policy: an iteration draws --batch_size users, one of
//                 each user's own prompts (pairs after its K context pairs),
//                 --num_generations samples per (user, prompt); every sample is
//                 scored by r(x, y, z_user) with the user's own z; group-relative
//                 advantages A = (r - mean_group) / (std_group + 1e-6); one
//                 gradient step of the token-mean policy gradient -A log pi
//                 (PPO's clipped loss at ratio 1, algo/rl.h) + beta * KL_k3(pi || pi_0)
//                 to the starting policy, as GRPO (--beta; 0: no reference)
//   eval          held-out users (--eval_data): their z from their first K pairs,
//                 samples on their other prompts, the mean reward by their own z
//                 (by "population" when the rows have one); every sample is
//                 written to eval_samples.jsonl (user, population, prompt,
//                 completion, reward) so a gold judge can score them
//
// The run directory is an ordinary one (checkpoints/final is the policy) plus
// vpl_policy.json (the VPL run, the conditioning, L), which `--generate` reads.
#ifndef RLHF_TRAIN_VPL_POLICY_H
#define RLHF_TRAIN_VPL_POLICY_H

#include "train/common.h"

typedef struct {
    train_config base;     // --model (the starting policy), --data (the users' labelled
                           // pairs: prompt/chosen/rejected/user[/population]), --eval_data
                           // (held-out users), --batch_size (users per iteration),
                           // --max_steps (iterations), --learning_rate, --seed, --output_dir
    const char *vpl_run;   // the VPL reward model: an `rm --objective vpl` run directory
    const char *condition; // "z" (the policy reads z) or "none" (it does not)
    int z_levels;          // L: letters per coordinate of z, 2..26
    int num_generations;   // samples per (user, prompt)
    int max_new_tokens;
    float temperature;
    float beta;            // weight of the k3 KL to the initial policy in the loss (0: none)
    int eval_prompts;      // prompts per held-out user in eval (0: all)
    // --generate: samples for one user, no training
    int generate;
    const char *context;   // the user's labelled pairs (the first K are read)
    const char *user;      // the user in --context when it holds several (NULL: it must hold one)
    const char *prompt;    // the prompt to complete
    int best_of;           // 1: print only the sample with the highest reward for the user
} vpl_policy_config;

void vpl_policy_default_config(vpl_policy_config *c);
// Checks the options named by their flags (-1 + err).
int vpl_policy_check(const vpl_policy_config *c, rlhf_err *err);
int vpl_policy_train(const vpl_policy_config *c, rlhf_err *err);
// --generate: prints one JSON line per sample (prompt, policy_prompt, completion,
// reward for the user) on stdout; with best_of only the best one.
int vpl_policy_generate(const vpl_policy_config *c, rlhf_err *err);

// The policy's prompt for a user with latent z (Z): "z:" + one letter per
// coordinate ('a' + min(L - 1, floor((z_i + 1) / 2 * L)), z_i clamped to
// [-1, 1]) + "\n" + prompt; with z NULL the prompt itself. malloc'd.
char *vpl_policy_render(const double *z, int Z, int levels, const char *prompt);

#endif
