// ctrl/ctrl_fields: the table of every algorithm's settings (ctrl_algo_config's
// fields, ctrl_train.h): name, int or float, offset and help. `ctrl train` builds
// its --flags from it, and state.json / config.json carry the values by name.
#include <stddef.h>

#include "ctrl/ctrl_train.h"

#define F(name, is_int, help)                                                                      \
    { #name, is_int, offsetof(ctrl_algo_config, name), help }
const ctrl_algo_field ctrl_algo_fields[] = {
    F(hidden, 1, "MLP width"),
    F(layers, 1, "MLP hidden layers"),
    F(n_critics, 1, "Q ensemble size"),
    F(gamma, 0, "discount"),
    F(tau, 0, "Polyak rate of the target networks"),
    F(actor_lr, 0, "actor learning rate"),
    F(critic_lr, 0, "critic learning rate"),
    F(value_lr, 0, "value network learning rate (IQL)"),
    F(alpha_lr, 0, "entropy coefficient learning rate (SAC, CQL)"),
    F(policy_freq, 1, "TD3: actor and target update every k critic updates"),
    F(policy_noise, 0, "TD3: target smoothing noise std (in [-1,1] action units)"),
    F(noise_clip, 0, "TD3: target smoothing noise clip"),
    F(expl_noise, 0, "TD3: exploration noise std online"),
    F(td3bc_alpha, 0, "TD3+BC: alpha (the Q term's weight is alpha / mean|Q|)"),
    F(iql_tau, 0, "IQL: expectile of the value loss"),
    F(iql_beta, 0, "IQL: inverse temperature of the advantage weights"),
    F(adv_clip, 0, "IQL/AWAC: clip of exp(advantage) weights"),
    F(awac_lambda, 0, "AWAC: temperature"),
    F(sac_alpha, 0, "SAC/CQL: initial entropy coefficient"),
    F(autotune_alpha, 1, "SAC/CQL: learn alpha towards target_entropy (1/0)"),
    F(target_entropy, 0, "SAC/CQL: target entropy (nan: -act_dim)"),
    F(cql_alpha, 0, "CQL: conservative penalty weight"),
    F(cql_n_actions, 1, "CQL: sampled actions per state for the logsumexp"),
    F(cql_temp, 0, "CQL: logsumexp temperature"),
    F(calql, 1, "Cal-QL: lower-bound policy Q-values by Monte-Carlo returns (1/0)"),
    F(deterministic_bc, 1, "BC: MSE on a deterministic policy (1) or Gaussian NLL (0)"),
    F(log_std_min, 0, "policy log-std lower clamp"),
    F(log_std_max, 0, "policy log-std upper clamp"),
    F(riql_quantile, 0, "RIQL: quantile of the target-Q ensemble that V regresses to"),
    F(riql_sigma, 0, "RIQL: Huber threshold delta = 1/sigma^2 of the critic loss"),
    F(ro2o_samples, 1, "RO2O: perturbed states per state (the max is over them)"),
    F(ro2o_q_eps, 0, "RO2O: eps-ball radius of value smoothing"),
    F(ro2o_policy_eps, 0, "RO2O: eps-ball radius of policy smoothing"),
    F(ro2o_ood_eps, 0, "RO2O: eps-ball radius of the OOD penalty's states"),
    F(ro2o_q_weight, 0, "RO2O: weight of value smoothing"),
    F(ro2o_policy_weight, 0, "RO2O: weight of policy smoothing (Jeffreys divergence)"),
    F(ro2o_ood_weight, 0, "RO2O: weight of the OOD penalty"),
    F(ro2o_q_tau, 0, "RO2O: expectile of value smoothing's asymmetric loss"),
    F(ro2o_beta, 0, "RO2O: initial OOD uncertainty coefficient"),
    F(ro2o_beta_min, 0, "RO2O: floor of the OOD uncertainty coefficient"),
    F(ro2o_beta_decay, 0, "RO2O: OOD coefficient decay per update"),
    F(famo2o_beta_min, 0, "FamO2O: smallest balance (inverse temperature)"),
    F(famo2o_beta_max, 0, "FamO2O: largest balance (inverse temperature)"),
    F(famo2o_uniform_steps, 1, "FamO2O: updates drawing the balance uniformly (-1: --offline_steps)"),
    // H2O
    // (h2o rows)
    F(h2o_cql_weight, 0, "H2O: weight of the conservative term (sim-weighted logsumexp - real Q)"),
    F(h2o_disc_noise, 0, "H2O: std of the Gaussian noise on the discriminators' inputs"),
    F(h2o_disc_lr, 0, "H2O: learning rate of the discriminators D_sa and D_sas"),
    F(h2o_ratio_min, 0, "H2O: lower clip of the dynamics ratio P_real/P_sim weighting sim TD errors"),
    F(h2o_ratio_max, 0, "H2O: upper clip of the dynamics ratio"),
    F(h2o_u_samples, 1, "H2O: perturbed next states per sim row for the penalty's weights u"),
    F(h2o_u_max, 0, "H2O: upper clip of u = mean log(P_sim/P_real)"),
    // MOORL
    // (moorl rows)
    F(moorl_inner_steps, 1, "MOORL: K, inner SAC updates per meta-epoch on the chosen buffer's rows"),
    F(moorl_meta_lr, 0, "MOORL: Reptile step eps: meta += eps (inner after K steps - meta), in (0, 1]"),
    F(moorl_p_offline, 0, "MOORL: chance that a meta-epoch learns on the offline buffer's rows"),
    // HNPG
    // (hnpg rows)
    F(hnpg_batch_steps, 1, "HNPG: online environment steps per iteration (whole episodes)"),
    F(hnpg_critic_steps, 1, "HNPG: Adam steps per critic Q_h per iteration"),
    F(hnpg_value_samples, 1, "HNPG: actions drawn from pi_h to estimate V_h(s)"),
    F(hnpg_hybrid, 1, "HNPG: 1 uses the offline data (critic FQE + actor rows), 0 is on-policy NPG"),
    F(hnpg_offline_episodes, 1, "HNPG: eps-greedy episodes made for comblock when no --dataset"),
    F(hnpg_cg_iters, 1, "HNPG: conjugate-gradient iterations of the natural step"),
    F(hnpg_gamma, 0, "HNPG: discount of returns and GAE (1: the finite-horizon task)"),
    F(hnpg_lambda, 0, "HNPG: GAE lambda on online episodes"),
    F(hnpg_max_kl, 0, "HNPG: KL radius of the natural step"),
    F(hnpg_damping, 0, "HNPG: damping added to the Fisher matrix in CG"),
    F(hnpg_solve_return, 0, "HNPG: greedy mean return that counts as solved (stops the run)"),
    F(hnpg_offline_eps, 0, "HNPG: eps of the made eps-greedy data (-1: 1/H)"),
    // FISOR
    // (fisor rows)
    F(fisor_cost_tau, 0, "FISOR: reverse expectile of the feasibility value V_h (near the min of Q_h)"),
    F(fisor_cost_temp, 0, "FISOR: temperature of exp(V_h - Q_h) weights in infeasible states"),
    F(fisor_cost_ub, 0, "FISOR: clip of the infeasible states' weights"),
    F(fisor_cost_scale, 0, "FISOR: constraint h = this where cost > 0, else -1"),
    F(fisor_actor_tau, 0, "FISOR: EMA rate of the denoiser copy that samples actions"),
    F(fisor_ddpm_temp, 0, "FISOR: noise temperature of the DDPM sampler"),
    F(fisor_lr_decay, 0, "FISOR: cosine decay length (updates) of the actor lr (0: constant)"),
    F(fisor_T, 1, "FISOR: diffusion steps"),
    F(fisor_samples, 1, "FISOR: candidate actions per state; the one of least Q_h is taken"),
    F(fisor_time_dim, 1, "FISOR: sinusoidal features of the diffusion step (even, >= 4)"),
    // CPL
    // (cpl rows)
    F(cpl_alpha, 0, "CPL: inverse temperature alpha of the segment log-likelihood sums"),
    F(cpl_lambda, 0, "CPL: contrastive bias lambda on the dispreferred segment (0 < lambda <= 1)"),
    F(cpl_bc_coeff, 0, "CPL: weight of a BC term (mean -log pi over the pairs' rows) in the CPL loss"),
    F(cpl_batch, 1, "CPL: segment pairs per update"),
    F(cpl_bc_steps, 1, "CPL: BC updates on the trainer's batches before the CPL loss (Adam restarts after them)"),
    // (lamo rows)
    F(lamo_K, 1, "LaMo: context length K in steps (3K tokens: return-to-go, state, action)"),
    F(lamo_lora_r, 1, "LaMo: LoRA rank on the LM's q/k/v (GPT-2 c_attn); 0: no adapters, every LM weight trains"),
    F(lamo_lora_alpha, 0, "LaMo: LoRA alpha (scale alpha / r)"),
    F(lamo_lm_coeff, 0, "LaMo: lambda, the weight of the LM's next-token NLL on --lamo_text (0: no text loss)"),
    F(lamo_lr, 0, "LaMo: AdamW learning rate of every trained tensor"),
    F(lamo_weight_decay, 0, "LaMo: AdamW weight decay"),
    F(lamo_warmup, 1, "LaMo: linear warm-up steps of the lr (-1: min(2500, steps / 10))"),
    F(lamo_clip, 0, "LaMo: clip of the global gradient norm (0: none)"),
    F(lamo_target_return, 0, "LaMo: the return the evaluation conditions on (nan: the dataset's best episode return)"),
    F(lamo_rtg_scale, 0, "LaMo: returns-to-go are divided by this"),
    F(lamo_pretrained, 1, "LaMo: 1 the LM's pre-trained weights, 0 its shape with a fresh random init (the DT baseline)"),
    F(lamo_tanh, 1, "LaMo: 1 tanh on the action head (actions in the box), 0 none"),
    F(lamo_lm_batch, 1, "LaMo: text rows per step for the LM loss"),
    F(lamo_lm_len, 1, "LaMo: tokens per text row"),
    {NULL, 0, 0, NULL},
};
#undef F
