// ctrl/env_neorl: NeoRL-2-style tasks (Gao et al. 2025, "NeoRL-2: Near
// Real-World Benchmarks for Offline Reinforcement Learning with Extended
// Realistic Scenarios"; the tasks' definitions checked against
// github.com/polixir/NeoRL2, neorl2/envs/) as built-in C simulators with the
// paper's real-world traits: a delayed effect of the action (pipeline), an
// external factor the agent cannot control (the pipeline's target changes,
// the rocket's wind), a terminal safety condition (the rocket's ±100
// landing), and small behaviour datasets from a sub-expert controller
// (neorl_data.c). docs/ctrl_neorl.md has every equation.
//
//   neorl-pipeline  obs 52, act 1, 1000 steps: a water gate; the gate's flow
//                   reaches the downstream sensor `delay` steps later (19)
//   neorl-rocket    obs 7, act 2, 500 steps: a rocket landing in wind
//                   (LunarLander's engines on our own rigid body, no Box2D);
//                   terminal at touchdown height with +100 (safe) / -100
//   neorl-dmsd      obs 6, act 2, 100 steps: a double mass-spring-damper
//                   tracking piecewise-constant targets
//   neorl-simglucose obs 31, act 1, 480 steps: a type-1 diabetic patient
//                   (the UVA/Padova ODE, simglucose's virtual patients) given
//                   basal insulin every 3 minutes through a day of meals;
//                   terminal when the blood glucose leaves [40, 600]
//                   (env_simglucose.c)
// (NeoRL-2's SafetyHalfCheetah and RandomFrictionHopper are MuJoCo tasks in
// env_mujoco.c.)
//
// Parameters follow the name after a colon, comma-separated:
//   neorl-pipeline:delay=30,switch=0.01   delay 0..400 steps, switch in [0, 1]
//   neorl-rocket:wind=12                  wind power 0..20
//   neorl-dmsd:mass=30                    both masses, (0, 1000]
//   neorl-simglucose:patient=11,hour=7    a fixed patient (1-30: adolescent,
//                                         adult, child #001-#010) and start
//                                         hour (0-23); default: drawn per episode
// Unknown tasks, unknown keys and bad values are refused with the list.
#ifndef RLHF_CTRL_ENV_NEORL_H
#define RLHF_CTRL_ENV_NEORL_H

#include "ctrl/env.h"

// "neorl-pipeline, neorl-rocket, neorl-dmsd, neorl-simglucose"
const char *ctrl_env_neorl_names(void);
// builds e (name as given to ctrl_env_make, starting with "neorl-")
int ctrl_env_neorl_make(const char *name, ctrl_env *e, rlhf_err *err);

typedef enum { NEORL_PIPELINE = 1, NEORL_ROCKET, NEORL_DMSD, NEORL_SIMGLUCOSE } neorl_task;
// the task of a NeoRL environment, 0 for any other environment
neorl_task ctrl_env_neorl_task(const ctrl_env *e);

// The simulator's hidden state (for tests and the expert controllers), as
// doubles into out (at most cap); the count, or -1 when e is not a NeoRL task.
//   pipeline: gate flow g, target T, delay d, switch probability, then the
//             channel q[0..d] (q[0] = g, q[d] = the downstream flow)
//   rocket:   x, y, vx, vy, angle, angular velocity (world units), wind
//             index k (the next step's), wind power, mass M, inertia I
//   dmsd:     x1, x2, v1, v2, then per mass its two targets and the step
//             the second starts (T1a, T1b, s1, T2a, T2b, s2), mass, t
//   simglucose: the 13 ODE states, patient id (1-30), start hour, minutes
//             since the start, the last step's mean BG and CGM, the sensor's
//             last reading, the meal still to eat (g), the current meal's
//             starting stomach content (mg) and grams eaten, the last
//             minute's grams, eating (0/1)
int ctrl_env_neorl_state(const ctrl_env *e, double *out, int cap);

// env_simglucose.c, reached through ctrl_env_neorl_make / _task / _state
int ctrl_env_simglucose_make(const char *name, ctrl_env *e, rlhf_err *err);
int ctrl_env_is_simglucose(const ctrl_env *e);
int ctrl_env_simglucose_state(const ctrl_env *e, double *out, int cap);

// ---------------------------------------------------- data (neorl_data.c) --
// The expert controller of each task (the reference "expert" return):
//   pipeline: a = clip(T - g), g the gate flow read from the simulator (for
//             delay <= 25 it equals the downstream flow plus the last `delay`
//             actions of the observation): the gate goes to the target at
//             full rate and the downstream flow follows `delay` steps later
//   rocket:   Gymnasium's LunarLander heuristic (angle, hover and horizontal
//             PD terms; no legs branch), from the observation
//   dmsd:     F = K T + 30 (T - x) - 25 v per mass (K the stiffness matrix),
//             from the observation
//   simglucose: the patient's steady basal u2ss BW / 6000 U/min scaled by
//             clip(1 + (CGM - 140) / 60, 0, 3), from the observation
int ctrl_neorl_expert_act(const ctrl_env *e, const float *obs, float *act, rlhf_err *err);

typedef struct {
    const char *env;      // a neorl-* name (parameters allowed)
    const char *out;      // folder: train.hdf5, val.hdf5, neorl.json
    int train_episodes;   // behaviour episodes in train.hdf5 (default: the task's)
    int val_episodes;     // in val.hdf5 (default train/4, at least 1)
    double noise;         // behaviour = expert + N(0, noise^2) per action element,
                          // clipped; < 0: the task's default (50-80% of expert)
    int eval_episodes;    // episodes for the references (default 10)
    uint64_t seed;        // data seeds seed+1 (train), seed+2 (val); references on
                          // the trainer's evaluation episodes (seed+100)
    int quiet;
} neorl_data_config;
void neorl_data_default_config(neorl_data_config *c);

typedef struct {
    double ref_random, ref_expert;  // the references on the evaluation episodes
    double data_return, data_score; // the train set's mean episode return, its score
    double val_return;
    long train_rows, val_rows;
} neorl_data_result;

// Writes OUT/train.hdf5 and OUT/val.hdf5 (behaviour episodes, env/level
// "train"/"val"/references as attributes) and OUT/neorl.json (the same
// numbers). 0, or -1 + err.
int neorl_data_make(const neorl_data_config *c, neorl_data_result *r, rlhf_err *err);

#endif
