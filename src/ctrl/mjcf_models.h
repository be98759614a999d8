// ctrl/mjcf_models: our MJCF descriptions of the three planar locomotion robots
// of Gymnasium's MuJoCo v4 tasks (hopper, halfcheetah, walker2d), kept in the
// library as strings so that nothing is read from disk at run time. The
// physical parameters (link lengths, radii, densities, joint ranges, damping,
// armature, gear ratios, contact settings, timestep) are those of Gymnasium's
// assets hopper.xml, half_cheetah.xml and walker2d.xml; the files themselves
// are written anew (body frames at the joints, capsules by their end points,
// no lights, textures or cameras).
#ifndef RLHF_CTRL_MJCF_MODELS_H
#define RLHF_CTRL_MJCF_MODELS_H

#include "ctrl/env.h"

// the MJCF text of "hopper", "halfcheetah" or "walker2d"; NULL for any other name
const char *ctrl_mjcf_model(const char *name);

// The full physical state of an environment made by ctrl_env_mujoco_make
// (env_mujoco.c): qpos (nq values, x position first) and qvel (nv values).
// get: -1 when e is not a MuJoCo environment. set: Gymnasium's set_state
// (the values, then mj_forward); for tests and for restoring a saved state.
int ctrl_env_mujoco_get_state(const ctrl_env *e, double *qpos, double *qvel);
int ctrl_env_mujoco_set_state(ctrl_env *e, const double *qpos, const double *qvel,
                              rlhf_err *err);

#endif
