// ctrl/env: environments for continuous control behind one interface —
// classic control in C (Pendulum, MountainCarContinuous, a continuous
// CartPole), MuJoCo locomotion (hopper, halfcheetah, walker2d; our own MJCF,
// Gymnasium v4's rewards and terminations) and an external program over pipes
// (one JSON object a line). Each environment owns its random stream
// (ctrl_env_seed), so an episode depends only on the seed and the actions.
//
// Conventions (Gymnasium's): reset gives the first observation; step applies
// an action (clipped to [act_low, act_high] by ctrl_env_step, as Gymnasium's
// ClipAction wrapper would, unless the environment sets raw_actions) and reports reward, an optional cost (safe RL; 0
// where the task has none), `terminated` (a terminal state: no bootstrapping)
// and `truncated` (the time limit max_episode_steps was reached).
#ifndef RLHF_CTRL_ENV_H
#define RLHF_CTRL_ENV_H

#include "base/base.h"

#define CTRL_MAX_DIM 512  // observation and action sizes are checked against it

typedef struct {
    float reward;
    float cost;      // per-step cost (safe RL); 0 when the environment defines none
    int terminated;  // terminal state (fell over, reached the goal)
    int truncated;   // time limit reached (t == max_episode_steps) and not terminated
} ctrl_step_info;

typedef struct ctrl_env ctrl_env;

typedef struct {
    // first observation of an episode -> obs (obs_dim); draws from e->rng
    int (*reset)(ctrl_env *e, float *obs, rlhf_err *err);
    // one step with an action already clipped to the bounds (unless e->raw_actions);
    // fills obs (obs_dim),
    // info->reward, info->cost, info->terminated (ctrl_env_step sets truncated)
    int (*step)(ctrl_env *e, const float *action, float *obs, ctrl_step_info *info,
                rlhf_err *err);
    void (*free)(ctrl_env *e);  // releases e->state (not e)
    // optional (NULL: nothing to do beyond e->rng): told the new seed after
    // ctrl_env_seed has reseeded e->rng (the external protocol passes it on)
    void (*seed)(ctrl_env *e, uint64_t seed);
} ctrl_env_ops;

struct ctrl_env {
    char name[256];           // as given to ctrl_env_make ("pendulum", "hopper:gravity=2", ...)
    int obs_dim, act_dim;
    float act_low[CTRL_MAX_DIM], act_high[CTRL_MAX_DIM];
    int max_episode_steps;    // Gymnasium's TimeLimit (0: none)
    int has_cost;             // the task defines a per-step cost: datasets keep a "costs" column
    // 1: step takes actions unclipped; the box is what policies aim for, not a
    // limit (the combination lock: its authors' softmax reads the raw values)
    int raw_actions;
    int t;                    // steps taken in the current episode
    rlhf_rng rng;             // the environment's stream (initial states, noise)
    const ctrl_env_ops *ops;
    void *state;
};

// Makes an environment by name: "pendulum", "mountaincar" (MountainCarContinuous),
// "cartpole" (continuous CartPole), "hopper", "halfcheetah", "walker2d",
// "neorl-safety-halfcheetah", "neorl-random-friction-hopper" (MuJoCo; an error
// naming the missing library when built without it), or
// "cmd:PROGRAM ARGS" (the external protocol, see env_external.c). Unknown names
// are refused with the list of known ones. The environment is seeded with 0.
// Pendulum with other physics (a simulator with a dynamics gap, H2O):
// "pendulum:gravity=20" or "pendulum:gravity=G,mass=M,length=L" (any subset,
// any order; each finite and > 0; unset ones keep 10, 1, 1). The MuJoCo tasks
// with a dynamics gap, as in H2O's own experiments (env_mujoco.c):
// "hopper:gravity=2", "walker2d:friction=0.3", "halfcheetah:joint_noise=1"
// (gravity: a multiplier of the model's gravity vector; friction: of every
// geom's sliding friction; joint_noise: the std of N(0, s^2) noise added to
// each action before it is applied; defaults 1, 1, 0 give the plain task bit
// for bit). A malformed setting is refused naming it and the known keys.
int ctrl_env_make(const char *name, ctrl_env **out, rlhf_err *err);
void ctrl_env_free(ctrl_env *e);
void ctrl_env_seed(ctrl_env *e, uint64_t seed);
// reset (t = 0) and step (clip the action, count t, set truncated at the limit);
// a non-finite action is an error naming the element.
int ctrl_env_reset(ctrl_env *e, float *obs, rlhf_err *err);
int ctrl_env_step(ctrl_env *e, const float *action, float *obs, ctrl_step_info *info,
                  rlhf_err *err);
// "pendulum, mountaincar, ..." (for --help and errors)
const char *ctrl_env_names(void);

// "KEY=VALUE,KEY=VALUE" (spec, the text after "task:" in the env string name)
// into dst[i] for keys[i] (n keys; a key not given leaves dst as it is); each
// value finite and > 0, or >= 0 where zero_ok[i] (zero_ok may be NULL). Errors
// name the env string and the known keys; example is shown for an empty spec.
int ctrl_env_settings(const char *name, const char *spec, const char *const *keys, int n,
                      const int *zero_ok, double *dst, const char *example, rlhf_err *err);

// constructors used by ctrl_env_make (one per file)
int ctrl_env_classic_make(const char *name, ctrl_env *e, rlhf_err *err);   // env_classic.c
int ctrl_env_mujoco_make(const char *name, ctrl_env *e, rlhf_err *err);    // env_mujoco.c
int ctrl_env_external_make(const char *cmd, ctrl_env *e, rlhf_err *err);   // env_external.c

// Classic-control tasks only: puts the dynamics state (pendulum: th, thdot;
// mountaincar: position, velocity; cartpole: x, x_dot, theta, theta_dot) as
// if an episode had reached it (for tests and for replaying Gymnasium's
// trajectories); obs gets the matching observation. Refuses other environments
// and a wrong n.
int ctrl_env_classic_set_state(ctrl_env *e, const double *state, int n, float *obs, rlhf_err *err);

// External programs: seconds allowed for each reply, for the programs that
// ctrl_env_make starts after the call (a CLI flag would set it). Without a call:
// the environment variable RLHF_ENV_TIMEOUT when set, else 30.
void ctrl_env_external_set_timeout(double seconds);

#endif
