// ctrl/env_safe: a safe-RL task with a cost signal — "pointrobot", after the
// point-robot task of FISOR (Zheng et al. 2024; the authors' env/point_robot.py),
// and a scripted dataset of safe and unsafe behaviour for it.
//
// State (x, y, v, theta); action (acceleration, turn rate) in [-1, 1]^2;
// Euler steps of dt 0.05: x += v cos(theta) dt, y += v sin(theta) dt,
// v += a0 dt, theta += a1 dt (the derivatives at the state before the step).
// Goal: a disc of radius 0.3 at (2.2, 2.2); hazards: discs of radius 0.8 at
// (0.4, -1.2) and (-0.4, 1.2).
// Reward: the decrease of the distance to the goal's centre, + 1 on reaching
// the goal. Terminated at the goal or when |x| > 3 or |y| > 3. Cost: 1 for a
// step that ends inside a hazard (the authors' `violation`), else 0. Time
// limit 300 steps.
// Observation (11): x, y, v, cos theta, sin theta, then for each hazard its
// distance and the cosine and sine of its bearing in the robot's frame.
// Start (ours; theirs is one fixed state (-1.8, 0, 2, pi/4) or the whole
// map): x ~ U[-2.6, -1.4], y ~ U[-0.6, 0.6], v ~ U[0.5, 1.5], theta ~
// U[-pi/4, pi/4]
// — around their evaluation start, where the straight way to the goal runs
// through the upper hazard.
#ifndef RLHF_CTRL_ENV_SAFE_H
#define RLHF_CTRL_ENV_SAFE_H

#include "ctrl/buffer.h"
#include "ctrl/ctrl_train.h"
#include "ctrl/env.h"

// builds "pointrobot" into e (ctrl_env_make's constructor for this file)
int ctrl_env_safe_make(const char *name, ctrl_env *e, rlhf_err *err);

// Scripted behaviour on a pointrobot env (each action + N(0, noise^2), clipped):
//   CTRL_SAFE_GREEDY  steers straight at the goal at speed 2 (cuts through the hazard)
//   CTRL_SAFE_DETOUR  steers first at (0.8, 0), the gap between the hazards,
//                     while x < 0.6, then at the goal, at speed 1.2 cos(heading
//                     error) (slows down to turn; longer and slower: less
//                     discounted reward)
//   CTRL_SAFE_RANDOM  uniform random actions
enum { CTRL_SAFE_GREEDY, CTRL_SAFE_DETOUR, CTRL_SAFE_RANDOM };
// the scripted action for the env's current state
void ctrl_safe_scripted_action(const ctrl_env *e, int mode, float noise, rlhf_rng *rng,
                               float *action);
// `steps` transitions (raw, with costs) appended to t, whole episodes (the
// last one cut at `steps`, marked timeout); each episode's mode drawn with
// probabilities p_greedy, p_detour, rest random; env reseeded with seed.
// Returns the episodes' mean return and mean cost in *ret, *cost (may be NULL).
int ctrl_safe_scripted_dataset(ctrl_env *e, long steps, float p_greedy, float p_detour, float noise,
                               uint64_t seed, ctrl_transitions *t, double *ret, double *cost,
                               rlhf_err *err);

// Episodes of a policy (NULL: uniform random actions) on any env, counting
// costs as well as rewards (ctrl_evaluate's seeding: env seeded with seed, the
// policy's stream seed ^ 0x5eed0fa11): mean return and mean episode cost, and
// the share of episodes with no cost at all (*safe_frac, may be NULL).
int ctrl_safe_evaluate(ctrl_env *e, ctrl_policy *p, int episodes, uint64_t seed, int deterministic,
                       double *ret, double *cost, double *safe_frac, rlhf_err *err);

#endif
